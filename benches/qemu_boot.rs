//! Build → first console byte of the test guest: through domus (engine,
//! QEMU backend, supervisor, console stream) and through a raw
//! `qemu-system-x86_64` launch of the same guest with the same machine,
//! printed with their ratio in one run (`cargo bench --bench qemu_boot`).
//! Needs scripts/build-guest. Prints figures; asserts nothing about them.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use domus::backend::qemu::launch::{self, DomainDir, LaunchSpec};
use domus::backend::qemu::{self, QemuHypervisor, QemuOptions, accel};
use domus::backend::{BootImage, ReadOutcome};
use domus::clock::SystemClock;
use domus::engine::Engine;

fn guest() -> (PathBuf, PathBuf) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/guest");
    (dir.join("vmlinux"), dir.join("initramfs.cpio.gz"))
}

fn first_byte_in(path: &Path, started: Instant) -> Duration {
    let deadline = started + Duration::from_secs(120);
    while Instant::now() < deadline {
        if std::fs::metadata(path).is_ok_and(|m| m.len() > 0) {
            return started.elapsed();
        }
        std::thread::sleep(Duration::from_micros(500));
    }
    panic!("no console output in {}", path.display());
}

fn raw(root: &Path, i: usize) -> Duration {
    let (k, initrd) = guest();
    let dir = DomainDir::new(&root.join("raw"), i as u32 + 1);
    dir.create().unwrap_or_else(|e| panic!("{e}"));
    let image = BootImage {
        ostype: "linux".into(),
        kernel: Some(k.display().to_string()),
        ramdisk: Some(initrd.display().to_string()),
        cmdline: "quiet".into(),
        memmap: None,
        device_model: None,
        vnc: false,
        boot_from_disk: false,
        ..Default::default()
    };
    let args: Vec<String> = launch::args(&LaunchSpec {
        name: "raw",
        uuid: uuid::Uuid::nil(),
        memory_mib: 128,
        vcpus: 1,
        vcpus_online: None,
        accel: accel::detect(),
        image: &image,
        dir: &dir,
        incoming: false,
        console_log: &dir.console_log(),
    })
    .into_iter()
    // Running at once: the raw launch has no paused build phase.
    .filter(|a| a != "-S")
    .collect();
    let started = Instant::now();
    let ok = Command::new(qemu::QEMU)
        .args(&args)
        .status()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(ok.success());
    let t = first_byte_in(&dir.console_log(), started);
    if let Some(pid) = std::fs::read_to_string(dir.pidfile())
        .ok()
        .and_then(|p| p.trim().parse().ok())
    {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    t
}

fn through_domus(engine: &Engine, i: usize) -> Duration {
    let (k, initrd) = guest();
    let (config, _) = domus::config::parse_str(
        &format!(
            "(vm (name bench{i}) (memory 128) (vcpus 1)
               (image (linux (kernel {}) (ramdisk {}) (args quiet))))",
            k.display(),
            initrd.display()
        ),
        "bench",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let started = Instant::now();
    let domid = engine
        .create(&config, None)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut console = engine.console(domid).unwrap_or_else(|e| panic!("{e}"));
    let mut buf = [0u8; 256];
    let t = loop {
        match console.read(&mut buf, Duration::from_millis(100)) {
            Ok(ReadOutcome::Data(_)) => break started.elapsed(),
            Ok(ReadOutcome::Idle) if started.elapsed() < Duration::from_secs(120) => {}
            other => panic!("console: {other:?}"),
        }
    };
    drop(console);
    engine.destroy(domid).unwrap_or_else(|e| panic!("{e}"));
    t
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let (k, _) = guest();
    if !k.exists() {
        println!("qemu_boot: the test guest is missing: run scripts/build-guest");
        return;
    }
    if !qemu::installed(Path::new(qemu::QEMU)) {
        println!("qemu_boot: {} is not installed", qemu::QEMU);
        return;
    }
    // Outside `cargo bench` one round, to prove the bench still works.
    let rounds = if bench { 5 } else { 1 };
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
    let engine = Engine::persistent(
        hv.clone(),
        Arc::new(SystemClock),
        &root.path().join("state"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let mut raws = Vec::new();
    let mut ours = Vec::new();
    // Interleaved, so drift in the machine's load hits both alike.
    for i in 0..rounds {
        raws.push(raw(root.path(), i));
        ours.push(through_domus(&engine, i));
    }
    let (r, d) = (median(raws), median(ours));
    println!(
        "qemu_boot ({}, {} rounds): build → first console byte: raw qemu {:.0} ms, domus {:.0} ms, ratio {:.2}",
        hv.accel(),
        rounds,
        r.as_secs_f64() * 1e3,
        d.as_secs_f64() * 1e3,
        d.as_secs_f64() / r.as_secs_f64()
    );
}
