//! The live view with real QEMU domains (run with `cargo bench --bench
//! qemu_scale`; prints figures, asserts nothing). Paused tiny guests cost no
//! guest CPU, so `DOMUS_BENCH_QEMU` (default 100) of them fit here:
//!
//! - `domus list` with N domains beside 1 (the cost per domain), and beside
//!   `virsh list` for N libvirt guests in the same run when libvirt answers
//!   on `qemu:///system`;
//! - the TUI's CPU while idle with N domains (`DOMUS_BENCH_IDLE_SECS`,
//!   default 60);
//! - from a guest's crash to the Events line on the TUI's screen.
//!
//! Outside `cargo bench` (cargo test --benches) it builds 2 domains and
//! idles 2 s, to prove the bench still works.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use domus::backend::qemu::{self, QemuHypervisor, QemuOptions};
use domus::clock::SystemClock;
use domus::engine::Engine;
use portable_pty::{CommandBuilder, PtySize, native_pty_system};

#[path = "common/idle.rs"]
mod idle;

fn guest() -> (PathBuf, PathBuf) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/guest");
    (dir.join("vmlinux"), dir.join("initramfs.cpio.gz"))
}

fn config(name: &str, extra: &str) -> domus::config::DomainConfig {
    let (k, i) = guest();
    domus::config::parse_str(
        &format!(
            "(vm (name {name}) (memory 128) (image (linux (kernel {}) (ramdisk {}) (args quiet))) {extra})",
            k.display(),
            i.display()
        ),
        "bench",
    )
    .map(|(c, _)| c)
    .unwrap_or_else(|e| panic!("{e}"))
}

struct Host {
    root: tempfile::TempDir,
    engine: Engine,
}

impl Host {
    fn new() -> Host {
        let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let hv = Arc::new(
            QemuHypervisor::open(QemuOptions {
                runtime_dir: root.path().join("run"),
                state_dir: root.path().join("state"),
                accel: None,
                binary: PathBuf::from(qemu::QEMU),
                supervisor: Some(PathBuf::from(env!("CARGO_BIN_EXE_domus"))),
                adopt: true,
                clock: Arc::new(SystemClock),
            })
            .unwrap_or_else(|e| panic!("{e}")),
        );
        let engine = Engine::persistent(hv, Arc::new(SystemClock), &root.path().join("state"))
            .unwrap_or_else(|e| panic!("{e}"));
        Host { root, engine }
    }

    /// `n` guests, each paused right after it is built.
    fn fill(&self, n: usize, prefix: &str) {
        for i in 0..n {
            let d = self
                .engine
                .create(&config(&format!("{prefix}{i}"), ""), None)
                .unwrap_or_else(|e| panic!("{e}"));
            self.engine.pause(d).unwrap_or_else(|e| panic!("{e}"));
        }
    }

    fn args(&self) -> Vec<String> {
        vec![
            "--backend".into(),
            "qemu".into(),
            "--state-dir".into(),
            self.root.path().join("state").display().to_string(),
            "--runtime-dir".into(),
            self.root.path().join("run").display().to_string(),
        ]
    }

    fn list_time(&self) -> Duration {
        let t = Instant::now();
        let out = Command::new(env!("CARGO_BIN_EXE_domus"))
            .args(self.args())
            .arg("list")
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        t.elapsed()
    }

    fn teardown(&self) {
        for v in self.engine.domains().unwrap_or_default() {
            let _ = self.engine.destroy(v.info.domid);
        }
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// `virsh list` with `n` libvirt guests of the same kind, when libvirt is
/// there.
fn virsh_list(n: usize) -> Option<Duration> {
    let ok = Command::new("virsh")
        .args(["-c", "qemu:///system", "list"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        println!("qemu_scale: libvirt does not answer on qemu:///system: no virsh figure");
        return None;
    }
    let (k, i) = guest();
    let dir = tempfile::tempdir().ok()?;
    let mut names = Vec::new();
    for j in 0..n {
        let name = format!("domus-bench-{j}");
        let xml = format!(
            "<domain type='qemu'><name>{name}</name><memory unit='MiB'>128</memory><vcpu>1</vcpu>
             <os><type arch='x86_64' machine='q35'>hvm</type><kernel>{}</kernel><initrd>{}</initrd>
             <cmdline>console=ttyS0 quiet</cmdline></os><features><acpi/></features>
             <devices><serial type='pty'><target port='0'/></serial></devices></domain>",
            k.display(),
            i.display()
        );
        let file = dir.path().join(format!("{name}.xml"));
        std::fs::write(&file, xml).ok()?;
        let created = Command::new("virsh")
            .args(["-c", "qemu:///system", "create"])
            .arg(&file)
            .args(["--paused"])
            .output()
            .is_ok_and(|o| o.status.success());
        if created {
            names.push(name);
        }
    }
    let times = (0..5)
        .map(|_| {
            let t = Instant::now();
            let _ = Command::new("virsh")
                .args(["-c", "qemu:///system", "list"])
                .output();
            t.elapsed()
        })
        .collect();
    for name in &names {
        let _ = Command::new("virsh")
            .args(["-c", "qemu:///system", "destroy", name])
            .output();
    }
    (names.len() == n).then(|| median(times))
}

/// From a guest's crash to its Events line on a TUI's screen.
fn crash_to_screen(host: &Host) -> Duration {
    let d = host
        .engine
        .create(&config("crashme", "(on_crash preserve)"), None)
        .unwrap_or_else(|e| panic!("{e}"));
    // Wait for its shell, so the crash command lands.
    let mut c = host.engine.console(d).unwrap_or_else(|e| panic!("{e}"));
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let t = Instant::now();
    while !String::from_utf8_lossy(&seen).contains("domus test guest")
        && t.elapsed() < Duration::from_secs(120)
    {
        if let Ok(domus::backend::ReadOutcome::Data(n)) =
            c.read(&mut buf, Duration::from_millis(100))
        {
            seen.extend_from_slice(&buf[..n]);
        }
    }
    let pair = native_pty_system()
        .openpty(PtySize {
            rows: 36,
            cols: 120,
            pixel_width: 0,
            pixel_height: 0,
        })
        .unwrap_or_else(|e| panic!("{e}"));
    let mut cmd = CommandBuilder::new(env!("CARGO_BIN_EXE_domus"));
    cmd.args(host.args());
    cmd.arg("--config-dir");
    cmd.arg(host.root.path().join("domains"));
    cmd.env("XDG_CONFIG_HOME", host.root.path().join("config"));
    cmd.env("TERM", "xterm-256color");
    let mut child = pair
        .slave
        .spawn_command(cmd)
        .unwrap_or_else(|e| panic!("{e}"));
    let screen = Arc::new(Mutex::new(vt100::Parser::new(36, 120, 0)));
    let mut reader = pair
        .master
        .try_clone_reader()
        .unwrap_or_else(|e| panic!("{e}"));
    let sink = Arc::clone(&screen);
    std::thread::spawn(move || {
        let mut buf = [0u8; 65536];
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 {
                break;
            }
            if let Ok(mut p) = sink.lock() {
                p.process(&buf[..n]);
            }
        }
    });
    let shows = |s: &str| {
        screen
            .lock()
            .map(|p| p.screen().contents().contains(s))
            .unwrap_or(false)
    };
    let t = Instant::now();
    while !shows("crashme") && t.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut keys = pair.master.take_writer().unwrap_or_else(|e| panic!("{e}"));
    let _ = keys.write_all(b"3");
    std::thread::sleep(Duration::from_millis(500));
    let crashed = Instant::now();
    let _ = c.write(b"echo c > /proc/sysrq-trigger\n");
    // Keep reading: a connected client that does not read stalls the
    // guest's serial port, and the panic message with it.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let drain = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok(domus::backend::ReadOutcome::Closed) =
                    c.read(&mut buf, Duration::from_millis(50))
                {
                    break;
                }
            }
        })
    };
    // The Events line ("crashme [N] · guest: crashed"), not the header's
    // "0 crashed".
    while !shows("guest: crashed") && crashed.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(5));
    }
    let took = crashed.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = drain.join();
    let _ = keys.write_all(b"q");
    let _ = child.wait();
    let _ = host.engine.destroy(d);
    took
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    if !guest().0.exists() || !qemu::installed(Path::new(qemu::QEMU)) {
        println!("qemu_scale: needs QEMU and the test guest (scripts/test installs both)");
        return;
    }
    let n: usize = if bench {
        std::env::var("DOMUS_BENCH_QEMU")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(100)
    } else {
        2
    };
    let idle_secs: u64 = if bench {
        std::env::var("DOMUS_BENCH_IDLE_SECS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(60)
    } else {
        2
    };
    let one = Host::new();
    one.fill(1, "one");
    let many = Host::new();
    let t = Instant::now();
    many.fill(n, "q");
    println!(
        "qemu_scale: built and paused {n} QEMU guests in {:.0} s ({}, supervisor each)",
        t.elapsed().as_secs_f64(),
        domus::backend::qemu::accel::detect()
    );
    let l1 = median((0..5).map(|_| one.list_time()).collect());
    let ln = median((0..5).map(|_| many.list_time()).collect());
    println!(
        "qemu_scale: domus list: {:.1} ms with 1 domain, {:.1} ms with {n}: {:.0} µs per domain",
        ms(l1),
        ms(ln),
        (ln.as_secs_f64() - l1.as_secs_f64()) * 1e6 / (n.max(2) - 1) as f64
    );
    let args: Vec<String> = many.args();
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let cpu = idle::tui_idle_cpu(
        &argv[..2],
        &many.root.path().join("state"),
        Some(&many.root.path().join("run")),
        idle_secs,
    );
    println!(
        "qemu_scale: TUI idle {idle_secs} s with {n} QEMU domains, 1 s refresh: {cpu:.2} % of one core"
    );
    let crash = crash_to_screen(&one);
    println!(
        "qemu_scale: a guest's crash to its line in the TUI's Events tab: {:.0} ms",
        ms(crash)
    );
    many.teardown();
    one.teardown();
    if let Some(v) = virsh_list(n) {
        println!(
            "qemu_scale: virsh list with {n} libvirt guests: {:.1} ms (domus list: {:.1} ms)",
            ms(v),
            ms(ln)
        );
    }
}
