//! Fixtures for tests that drive real guests: the cached test guest, a
//! QEMU-backed engine, and console helpers that work on every backend.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use domus::backend::qemu::{self, QemuHypervisor, QemuOptions};
use domus::backend::{DomId, Hypervisor, ReadOutcome};
use domus::clock::SystemClock;
use domus::engine::Engine;

/// The kernel and initramfs `scripts/build-guest` caches.
pub fn guest_files() -> (PathBuf, PathBuf) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/guest");
    let (k, i) = (dir.join("vmlinux"), dir.join("initramfs.cpio.gz"));
    assert!(
        k.exists() && i.exists(),
        "the test guest is missing: run scripts/build-guest (scripts/test does it for you)"
    );
    (k, i)
}

/// Say loudly when real guests run without hardware acceleration.
pub fn announce_accel() {
    if qemu::accel::detect() == "tcg" {
        eprintln!(
            "NOTE: no hardware virtualisation (vmx/svm) on this CPU: QEMU guests run under TCG"
        );
    }
}

pub struct QemuRig {
    pub engine: Engine,
    pub hv: Arc<QemuHypervisor>,
    pub root: tempfile::TempDir,
}

/// A failed test must not leave guests running.
impl Drop for QemuRig {
    fn drop(&mut self) {
        kill_qemus_under(&self.runtime());
    }
}

pub fn kill_qemus_under(dir: &Path) {
    for pid in qemu_processes_under(dir) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL);
    }
}

impl QemuRig {
    pub fn runtime(&self) -> PathBuf {
        self.root.path().join("run")
    }

    pub fn state(&self) -> PathBuf {
        self.root.path().join("state")
    }
}

/// A QEMU backend in a fresh runtime and state directory, supervised by
/// the real `domus` binary.
pub fn qemu_rig() -> QemuRig {
    announce_accel();
    let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (engine, hv) = qemu_engine(root.path());
    QemuRig { engine, hv, root }
}

/// Open (or re-open, as a new domus process would) the backend and engine.
pub fn qemu_engine(root: &Path) -> (Engine, Arc<QemuHypervisor>) {
    assert!(
        qemu::installed(Path::new(qemu::QEMU)),
        "{} is missing: scripts/test installs qemu-system-x86",
        qemu::QEMU
    );
    let hv = Arc::new(
        QemuHypervisor::open(QemuOptions {
            runtime_dir: root.join("run"),
            state_dir: root.join("state"),
            accel: None,
            binary: PathBuf::from(qemu::QEMU),
            supervisor: Some(PathBuf::from(env!("CARGO_BIN_EXE_domus"))),
            adopt: true,
            clock: Arc::new(SystemClock),
        })
        .unwrap_or_else(|e| panic!("opening the QEMU backend: {e}")),
    );
    let mut engine = Engine::persistent(hv.clone(), Arc::new(SystemClock), &root.join("state"))
        .unwrap_or_else(|e| panic!("opening the engine: {e}"));
    engine.set_dump_dir(&root.join("dumps"));
    (engine, hv)
}

/// An sxp config booting the test guest.
pub fn guest_config(name: &str, extra: &str) -> String {
    let (k, i) = guest_files();
    format!(
        "(vm (name {name}) (memory 128) (vcpus 1)
           (image (linux (kernel {}) (ramdisk {}) (args quiet)))
           {extra})",
        k.display(),
        i.display()
    )
}

/// Poll `f` until it gives `Some`, or fail after `secs`.
pub fn wait_for<T>(what: &str, secs: u64, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {secs} s waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Everything the console says until `done` holds for it (or `secs` pass).
pub fn console_until(
    engine: &Engine,
    domid: DomId,
    input: Option<&str>,
    secs: u64,
    done: impl Fn(&str) -> bool,
) -> String {
    let mut stream = engine
        .console(domid)
        .unwrap_or_else(|e| panic!("console: {e}"));
    let mut all = Vec::new();
    let mut buf = [0u8; 8192];
    // Skip what was there before the command.
    if input.is_some() {
        while let Ok(ReadOutcome::Data(_)) = stream.read(&mut buf, Duration::from_millis(50)) {}
    }
    if let Some(line) = input {
        stream
            .write(format!("{line}\r").as_bytes())
            .unwrap_or_else(|e| panic!("console write: {e}"));
    }
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        match stream.read(&mut buf, Duration::from_millis(100)) {
            Ok(ReadOutcome::Data(n)) => all.extend_from_slice(&buf[..n]),
            Ok(ReadOutcome::Idle) => {}
            Ok(ReadOutcome::Closed) => break,
            Err(e) => panic!("console read: {e}"),
        }
        if done(&String::from_utf8_lossy(&all)) {
            break;
        }
    }
    String::from_utf8_lossy(&all).into_owned()
}

/// Run a shell command and return its output (what follows the echoed
/// command line, up to the next prompt).
pub fn run(engine: &Engine, domid: DomId, cmd: &str) -> String {
    let text = console_until(engine, domid, Some(cmd), 20, |t| {
        t.find(cmd)
            .is_some_and(|at| t[at + cmd.len()..].contains("# "))
    });
    let Some(at) = text.find(cmd) else {
        panic!("the guest never echoed {cmd:?}: {text:?}");
    };
    let out = &text[at + cmd.len()..];
    out[..out.rfind("# ").unwrap_or(out.len())].to_string()
}

/// The device names in the guest's /proc/partitions.
pub fn partitions(engine: &Engine, domid: DomId) -> Vec<String> {
    run(engine, domid, "cat /proc/partitions")
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() == 4 && f[0].parse::<u32>().is_ok()).then(|| f[3].to_string())
        })
        .collect()
}

/// The interfaces in the guest's /sys/class/net.
pub fn interfaces(engine: &Engine, domid: DomId) -> Vec<String> {
    let mut v: Vec<String> = run(engine, domid, "ls /sys/class/net")
        .split_whitespace()
        .filter(|w| w.chars().all(|c| c.is_ascii_alphanumeric()))
        .map(str::to_string)
        .collect();
    v.sort();
    v
}

/// Wait until the guest's shell answers.
pub fn wait_for_shell(engine: &Engine, domid: DomId) {
    let text = console_until(engine, domid, None, 60, |t| t.contains("# "));
    assert!(
        text.contains("# "),
        "the guest never reached its shell: {text:?}"
    );
}

/// QEMU processes whose command line names `dir`.
pub fn qemu_processes_under(dir: &Path) -> Vec<i32> {
    let needle = dir.display().to_string();
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                let c = String::from_utf8_lossy(&c);
                c.contains("qemu-system") && c.contains(&needle)
            })
        })
        .collect()
}

pub fn make_image(path: &Path, format: &str, size: &str) {
    let ok = std::process::Command::new("qemu-img")
        .args(["create", "-q", "-f", format])
        .arg(path)
        .arg(size)
        .status()
        .unwrap_or_else(|e| panic!("qemu-img (scripts/test installs qemu-utils): {e}"));
    assert!(ok.success(), "qemu-img create failed");
}

/// The domain list, as the backend has it.
pub fn list(hv: &dyn Hypervisor) -> Vec<domus::backend::DomainInfo> {
    hv.list_domains().unwrap_or_else(|e| panic!("list: {e}"))
}
