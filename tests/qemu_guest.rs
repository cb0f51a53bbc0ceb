//! The test guest under real QEMU (TCG unless the CPU has vmx/svm), driven
//! through domus's QMP client: boot banner, a command over the serial
//! console, disk hot-plug and unplug, ACPI poweroff. Needs
//! `qemu-system-x86_64` and `scripts/build-guest` (scripts/test provides
//! both); without them it fails loudly instead of skipping.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::guests::guest_files;
use domus::backend::BootImage;
use domus::backend::qemu::launch::{self, DomainDir, LaunchSpec};
use domus::backend::qemu::{accel, qmp::Qmp};
use serde_json::json;

struct Console(UnixStream);

impl Console {
    /// Run a shell command; return its output between two markers (the tty
    /// echoes input, so the markers are split in the command line).
    fn run(&mut self, cmd: &str) -> String {
        self.0
            .write_all(format!("echo BEG''IN; {cmd}; echo EN''D\n").as_bytes())
            .unwrap_or_else(|e| panic!("{e}"));
        let mut all = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut buf = [0u8; 4096];
        while Instant::now() < deadline {
            if let Ok(n) = self.0.read(&mut buf) {
                all.extend_from_slice(&buf[..n]);
            }
            let text = String::from_utf8_lossy(&all);
            if let (Some(a), Some(b)) = (text.find("BEGIN\r\n"), text.rfind("END\r\n"))
                && b > a
            {
                return text[a + 7..b].to_string();
            }
        }
        panic!("no answer to {cmd:?}: {}", String::from_utf8_lossy(&all));
    }
}

fn wait_for_file_text(path: &Path, needle: &str, secs: u64) -> Duration {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(secs) {
        if std::fs::read_to_string(path).is_ok_and(|t| t.contains(needle)) {
            return start.elapsed();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "{needle:?} never appeared in {}:\n{}",
        path.display(),
        std::fs::read_to_string(path).unwrap_or_default()
    );
}

#[test]
fn the_test_guest_boots_answers_hotplugs_and_powers_off() {
    let (kernel, initrd) = guest_files();
    let which = accel::detect();
    if which == "tcg" {
        eprintln!(
            "NOTE: no hardware virtualisation (vmx/svm) on this CPU: running the guest under TCG"
        );
    }
    let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let dir = DomainDir::new(&root.path().join("runtime"), 1);
    dir.create().unwrap_or_else(|e| panic!("{e}"));
    let image = BootImage {
        ostype: "linux".into(),
        kernel: Some(kernel.display().to_string()),
        ramdisk: Some(initrd.display().to_string()),
        cmdline: "quiet".into(),
        memmap: None,
        device_model: None,
        vnc: false,
        boot_from_disk: false,
        ..Default::default()
    };
    let argv = launch::args(&LaunchSpec {
        name: "domus-test",
        uuid: uuid::Uuid::nil(),
        memory_mib: 128,
        vcpus: 1,
        vcpus_online: None,
        accel: which,
        image: &image,
        dir: &dir,
        incoming: false,
        console_log: &dir.console_log(),
    });
    let status = Command::new("qemu-system-x86_64")
        .args(&argv)
        .status()
        .unwrap_or_else(|e| panic!("qemu-system-x86_64 could not be started ({e}); scripts/test installs qemu-system-x86"));
    assert!(status.success(), "qemu failed to start: {argv:?}");
    dir.lock_down_sockets().unwrap_or_else(|e| panic!("{e}"));
    let d = dir.dir.clone();
    let d = d.as_path();
    let pid: i32 = std::fs::read_to_string(d.join("qemu.pid"))
        .unwrap_or_default()
        .trim()
        .parse()
        .unwrap_or(0);
    let kill = || {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    };
    let result = std::panic::catch_unwind(|| {
        // Created paused: nothing runs until the engine's unpause (cont).
        let mut qmp = Qmp::connect(&d.join("qmp.sock"), Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("{e}"));
        let t = Duration::from_secs(10);
        let status = qmp
            .execute("query-status", json!({}), t)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(status["running"], false, "{status}");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(d.join("qmp.sock"))
            .map(|m| m.permissions().mode() & 0o777)
            .unwrap_or(0);
        assert_eq!(mode, 0o600, "the monitor socket is owner-only");
        qmp.execute("cont", json!({}), t)
            .unwrap_or_else(|e| panic!("{e}"));
        let boot = wait_for_file_text(&d.join("console.log"), "domus test guest:", 60);
        eprintln!("guest booted in {:.1} s ({which})", boot.as_secs_f64());

        let stream = UnixStream::connect(d.join("console.sock")).unwrap_or_else(|e| panic!("{e}"));
        stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap_or_else(|e| panic!("{e}"));
        let mut con = Console(stream);
        assert!(con.run("uname -r").contains("amd64"));
        let before = con.run("cat /proc/partitions");
        assert!(!before.contains("vda"), "{before}");

        let status = qmp
            .execute("query-status", json!({}), t)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(status["status"], "running");

        // Hot-plug a 16 MiB raw disk on the pre-created root port.
        let img = d.join("disk.img");
        std::fs::File::create(&img)
            .and_then(|f| f.set_len(16 << 20))
            .unwrap_or_else(|e| panic!("{e}"));
        qmp.execute(
            "blockdev-add",
            json!({"driver": "raw", "node-name": "disk1", "file": {"driver": "file", "filename": img.display().to_string()}}),
            t,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        qmp.execute(
            "device_add",
            json!({"driver": "virtio-blk-pci", "id": "vdisk1", "drive": "disk1", "bus": "rp1"}),
            t,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let mut seen = String::new();
        for _ in 0..50 {
            seen = con.run("cat /proc/partitions");
            if seen.contains("vda") {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        assert!(
            seen.contains("16384 vda"),
            "the guest sees the hot-plugged disk: {seen}"
        );
        // Errors from QEMU come back typed, with its own text.
        let dup = qmp.execute("blockdev-add", json!({"driver": "raw", "node-name": "disk1", "file": {"driver": "file", "filename": "/nonexistent"}}), t);
        assert!(
            matches!(
                dup,
                Err(domus::backend::qemu::qmp::QmpError::Command { .. })
            ),
            "{dup:?}"
        );

        qmp.execute("device_del", json!({"id": "vdisk1"}), t)
            .unwrap_or_else(|e| panic!("{e}"));
        qmp.wait_event(
            "DEVICE_DELETED",
            |d| d["device"] == "vdisk1",
            Duration::from_secs(30),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        qmp.execute("blockdev-del", json!({"node-name": "disk1"}), t)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(!con.run("cat /proc/partitions").contains("vda"));

        // The ACPI power button: acpid in the guest powers off.
        qmp.execute("system_powerdown", json!({}), t)
            .unwrap_or_else(|e| panic!("{e}"));
        let ev = qmp
            .wait_event("SHUTDOWN", |_| true, Duration::from_secs(60))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ev["data"]["reason"], "guest-shutdown", "{ev}");
        let status = qmp
            .execute("query-status", json!({}), t)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            status["status"], "shutdown",
            "-no-shutdown keeps the domain inspectable"
        );
        let _ = qmp.execute("quit", json!({}), t);
    });
    // Never leave a QEMU behind, whatever happened.
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline && Path::new(&format!("/proc/{pid}")).exists() {
        std::thread::sleep(Duration::from_millis(100));
    }
    kill();
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}
