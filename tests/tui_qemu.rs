//! The TUI, unchanged, on the QEMU backend: the real binary in a
//! pseudo-terminal builds the test guest from the library, shows its real
//! console, attaches a disk through the device form that the guest then
//! sees, and destroys it, leaving no QEMU behind. TCG where the CPU has no
//! vmx/svm (said loudly).

mod common;

use std::io::{Read, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::guests::{
    announce_accel, guest_files, kill_qemus_under, make_image, qemu_processes_under,
};
use portable_pty::{CommandBuilder, PtySize, native_pty_system};

struct Screen(Arc<Mutex<vt100::Parser>>);

impl Screen {
    fn text(&self) -> String {
        self.0
            .lock()
            .map(|g| g.screen().contents())
            .unwrap_or_default()
    }

    fn wait_for(&self, needle: &str, what: &str, secs: u64) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < deadline {
            if self.text().contains(needle) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "timed out waiting for {what} ({needle:?}); screen:\n{}",
            self.text()
        );
    }
}

struct Cleanup<'a>(&'a Path);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        kill_qemus_under(self.0);
    }
}

#[test]
fn the_tui_drives_a_real_guest() {
    announce_accel();
    let (kernel, _) = guest_files();
    let guest_dir = kernel.parent().unwrap_or(Path::new("."));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let runtime = dir.path().join("run");
    let _cleanup = Cleanup(&runtime);
    let disk = dir.path().join("disk.qcow2");
    make_image(&disk, "qcow2", "16M");

    let pair = native_pty_system()
        .openpty(PtySize {
            rows: 36,
            cols: 120,
            pixel_width: 0,
            pixel_height: 0,
        })
        .unwrap_or_else(|e| panic!("openpty: {e}"));
    let mut cmd = CommandBuilder::new(env!("CARGO_BIN_EXE_domus"));
    cmd.args(["--backend", "qemu", "--state-dir"]);
    cmd.arg(dir.path().join("state"));
    cmd.arg("--runtime-dir");
    cmd.arg(&runtime);
    cmd.arg("--config-dir");
    cmd.arg(dir.path().join("domains"));
    cmd.env("XDG_CONFIG_HOME", dir.path().join("config"));
    cmd.env("DOMUS_GUEST_DIR", guest_dir);
    cmd.env("TERM", "xterm-256color");
    let mut child = pair
        .slave
        .spawn_command(cmd)
        .unwrap_or_else(|e| panic!("spawn: {e}"));
    drop(pair.slave);
    let parser = Arc::new(Mutex::new(vt100::Parser::new(36, 120, 0)));
    let mut reader = pair
        .master
        .try_clone_reader()
        .unwrap_or_else(|e| panic!("{e}"));
    let sink = Arc::clone(&parser);
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 {
                break;
            }
            if let Ok(mut g) = sink.lock() {
                g.process(&buf[..n]);
            }
        }
    });
    let screen = Screen(parser);
    let mut keys = pair.master.take_writer().unwrap_or_else(|e| panic!("{e}"));
    let mut press = |bytes: &[u8]| {
        keys.write_all(bytes).unwrap_or_else(|e| panic!("{e}"));
        keys.flush().unwrap_or_else(|e| panic!("{e}"));
        std::thread::sleep(Duration::from_millis(150));
    };

    screen.wait_for("qemu backend", "the header", 30);
    // The library offers the test guest; the files sort hvm, plan9, tiny, web1.
    press(b"2");
    screen.wait_for("tiny.sxp", "the library", 10);
    press(b"g");
    press(b"jj");
    press(b"\r");
    screen.wait_for("built tiny as domain 1", "the build", 60);

    // Its real console: the test guest's banner and shell.
    press(b"1");
    press(b"c");
    screen.wait_for("domus test guest", "the guest's banner", 60);
    screen.wait_for("# ", "the guest's shell", 30);
    press(b"\x1d");

    // Attach a disk through the form; the guest sees it.
    press(b"a");
    screen.wait_for("Attach a device to tiny", "the attach form", 10);
    press(disk.display().to_string().as_bytes());
    press(b"\x1b[B"); // Down to the dev field
    press(b"\x15xvdb"); // Ctrl-U, then the name
    press(b"\r");
    screen.wait_for("attached vbd xvdb", "the attach", 30);
    press(b"c");
    press(b"cat /proc/partitions\r");
    screen.wait_for(" vda", "the disk in the guest", 20);
    press(b"\x1d");

    // Leaving the view lets go of the console: the CLI may attach now.
    std::thread::sleep(Duration::from_millis(300));
    let cli = std::process::Command::new(env!("CARGO_BIN_EXE_domus"))
        .args(["--backend", "qemu", "--state-dir"])
        .arg(dir.path().join("state"))
        .arg("--runtime-dir")
        .arg(&runtime)
        .args(["console", "tiny"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        cli.status.success(),
        "domus console after the TUI detached: {}",
        String::from_utf8_lossy(&cli.stderr)
    );

    press(b"d");
    press(b"y");
    screen.wait_for("destroyed tiny", "the destroy", 30);
    press(b"q");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(Some(s)) = child.try_wait() {
            assert!(s.success(), "exit status {s:?}");
            break;
        }
        assert!(Instant::now() < deadline, "domus did not quit on q");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(qemu_processes_under(&runtime).is_empty(), "no QEMU left");
}
