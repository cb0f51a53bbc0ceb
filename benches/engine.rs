//! Figures, not pass/fail: config parsing, full-pipeline create+destroy on
//! the simulator, and `domus list` wall time with 1,000 domains.

use std::hint::black_box;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use domus::backend::sim::{SimHypervisor, SimOptions};
use domus::clock::SystemClock;
use domus::config::parse_str;
use domus::engine::Engine;

/// A corpus of 1,000 varied configs: every image type, 0–4 devices, comments,
/// quoting, optional fields.
fn corpus() -> Vec<String> {
    (0..1000)
        .map(|i| {
            let image = match i % 3 {
                0 => format!("(linux (kernel /boot/vmlinuz-{i}) (ramdisk /boot/initrd-{i}) (root /dev/xvda1) (args \"console=hvc0 quiet id={i}\"))"),
                1 => format!("(plan9 (kernel /boot/9xen) (ip 10.0.{}.{}))", i / 250, i % 250 + 1),
                _ => "(hvm (vnc 1) (device_model /usr/lib/xen/bin/qemu-dm))".to_string(),
            };
            let mut devices = String::new();
            for d in 0..(i % 5) {
                let letter = (b'a' + d as u8) as char;
                devices.push_str(&format!("\n    (device (vbd (uname file:/srv/img/{i}-{d}.img) (dev xvd{letter}) (mode w)))"));
            }
            if i % 2 == 0 {
                devices.push_str(&format!("\n    (device (vif (mac 00:16:3e:00:{:02x}:{:02x}) (bridge xenbr0)))", i / 256, i % 256));
            }
            if i % 7 == 0 {
                devices.push_str("\n    (device (pci (bus 0x00) (dev 0x1f) (func 2)))");
            }
            format!(
                "# generated config {i}\n(vm (name 'dom-{i}') (memory {}) (vcpus {}) (cpu_weight 256)\n    (image {image}){devices}\n    (on_crash restart))\n",
                64 + i % 512,
                1 + i % 4
            )
        })
        .collect()
}

fn parse(c: &mut Criterion) {
    let corpus = corpus();
    let mut g = c.benchmark_group("config");
    g.throughput(Throughput::Elements(corpus.len() as u64));
    g.bench_function("parse+validate 1000 configs", |b| {
        b.iter(|| {
            for text in &corpus {
                let parsed = parse_str(black_box(text), "bench.sxp");
                assert!(parsed.is_ok());
            }
        })
    });
    g.finish();
}

fn cycles(c: &mut Criterion) {
    let clock = Arc::new(SystemClock);
    let sim = SimHypervisor::in_memory(clock.clone());
    let engine = Engine::in_memory(Arc::new(sim), clock).unwrap_or_else(|e| panic!("{e}"));
    let (config, _) = parse_str(
        "(vm (name cycle) (memory 128) (vcpus 1) (cpu_weight 256)
            (image (linux (kernel /boot/vmlinuz) (root /dev/xvda1)))
            (device (vbd (uname file:/srv/cycle.img) (dev xvda) (mode w)))
            (device (vif (mac 00:16:3e:00:00:99) (bridge xenbr0))))",
        "bench",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let mut g = c.benchmark_group("engine");
    g.throughput(Throughput::Elements(1));
    g.bench_function("sim create+destroy cycle (full pipeline)", |b| {
        b.iter(|| {
            let domid = engine
                .create(black_box(&config), None)
                .unwrap_or_else(|e| panic!("{e}"));
            engine.destroy(domid).unwrap_or_else(|e| panic!("{e}"));
        })
    });
    g.finish();
}

/// Fill a state directory with 1,000 running sim domains (50 when
/// `cargo test` runs the benches once as a smoke test).
fn populate(dir: &Path) -> usize {
    let n = if std::env::args().any(|a| a == "--bench") {
        1000
    } else {
        50
    };
    let clock = Arc::new(SystemClock);
    let sim = SimHypervisor::open(SimOptions {
        state_dir: Some(dir.join("sim")),
        ..Default::default()
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let engine = Engine::persistent(Arc::new(sim), clock, dir).unwrap_or_else(|e| panic!("{e}"));
    for i in 0..n {
        let text = format!(
            "(vm (name dom-{i}) (memory 8) (image (linux (kernel /boot/vmlinuz)))
                (device (vbd (uname file:/srv/{i}.img) (dev xvda) (mode w))))"
        );
        let (config, _) = parse_str(&text, "bench").unwrap_or_else(|e| panic!("{e}"));
        engine
            .create(&config, None)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    n
}

fn list(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let n = populate(dir.path());
    let bin = env!("CARGO_BIN_EXE_domus");
    let mut g = c.benchmark_group("cli");
    g.sample_size(20).measurement_time(Duration::from_secs(10));
    g.bench_function("domus list, 1000 sim domains (process wall time)", |b| {
        b.iter(|| {
            let out = Command::new(bin)
                .args(["--backend", "sim", "--state-dir"])
                .arg(dir.path())
                .arg("list")
                .output()
                .unwrap_or_else(|e| panic!("{e}"));
            assert!(out.status.success());
            assert_eq!(out.stdout.iter().filter(|b| **b == b'\n').count(), n + 2);
        })
    });
    g.finish();
}

criterion_group!(benches, parse, cycles, list);
criterion_main!(benches);
