//! Cost at scale, whole processes (run with `cargo bench --bench scale`;
//! prints figures, asserts nothing):
//!
//! - `domus create` + `domus destroy` through the CLI with 10,000 existing
//!   sim domains, beside the same on an empty host (the state store's cost
//!   must not grow with the host);
//! - `domus list` with 10,000 sim domains;
//! - the TUI's CPU while idle with 10,000 sim domains.
//!
//! `DOMUS_BENCH_DOMAINS` (default 10000) and `DOMUS_BENCH_IDLE_SECS`
//! (default 60) change the sizes. The QEMU figures are in `qemu_scale`.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use domus::backend::sim::{SimHypervisor, SimOptions};
use domus::clock::SystemClock;
use domus::engine::Engine;

#[path = "common/idle.rs"]
mod idle;

fn env_num(key: &str, default: u64) -> u64 {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Build `n` sim domains in `dir` through the engine (in-process: the
/// figures below are for one more, through the CLI).
fn populate(dir: &Path, n: u64) -> Duration {
    let sim = SimHypervisor::open(SimOptions {
        state_dir: Some(dir.join("sim")),
        console_archive: Some(dir.to_path_buf()),
        ..Default::default()
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let engine = Engine::persistent(Arc::new(sim), Arc::new(SystemClock), dir)
        .unwrap_or_else(|e| panic!("{e}"));
    let t = Instant::now();
    for i in 0..n {
        let (config, _) = domus::config::parse_str(
            &format!(
                "(vm (name dom-{i}) (memory 1) (image (linux (kernel /k)))
                   (device (vbd (uname file:/srv/d{i}.img) (dev xvda) (mode w))))"
            ),
            "bench",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        engine
            .create(&config, None)
            .unwrap_or_else(|e| panic!("{e}"));
    }
    t.elapsed()
}

fn domus(dir: &Path, args: &[&str]) -> Duration {
    let t = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_domus"))
        .args(["--backend", "sim", "--state-dir"])
        .arg(dir)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        out.status.success(),
        "domus {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    t.elapsed()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Median time of `domus create` + `domus destroy` of one more domain.
fn cycle(dir: &Path, rounds: usize) -> Duration {
    let cfg = dir.join("one.sxp");
    std::fs::write(
        &cfg,
        "(vm (name one-more) (memory 1) (image (linux (kernel /k)))
           (device (vbd (uname file:/srv/one.img) (dev xvda) (mode w))))",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let cfg = cfg.display().to_string();
    let times = (0..rounds)
        .map(|_| domus(dir, &["create", &cfg]) + domus(dir, &["destroy", "one-more"]))
        .collect();
    median(times)
}

fn main() {
    // Outside `cargo bench` (cargo test --benches): small, to prove it works.
    let bench = std::env::args().any(|a| a == "--bench");
    let n = if bench {
        env_num("DOMUS_BENCH_DOMAINS", 10_000)
    } else {
        20
    };
    let idle_secs = if bench {
        env_num("DOMUS_BENCH_IDLE_SECS", 60)
    } else {
        2
    };
    let empty = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    populate(empty.path(), 0);
    let full = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let built = populate(full.path(), n);
    println!(
        "scale: built {n} sim domains in {:.1} s ({:.2} ms each, in-process)",
        built.as_secs_f64(),
        built.as_secs_f64() * 1e3 / n.max(1) as f64
    );
    let (e, f) = (cycle(empty.path(), 9), cycle(full.path(), 9));
    println!(
        "scale: domus create + destroy through the CLI: {:.1} ms on an empty host, {:.1} ms with {n} domains: ratio {:.2}",
        e.as_secs_f64() * 1e3,
        f.as_secs_f64() * 1e3,
        f.as_secs_f64() / e.as_secs_f64()
    );
    let one = median((0..5).map(|_| domus(empty.path(), &["list"])).collect());
    let many = median((0..5).map(|_| domus(full.path(), &["list"])).collect());
    println!(
        "scale: domus list: {:.1} ms with 1 domain, {:.1} ms with {n}: {:.1} µs per domain",
        one.as_secs_f64() * 1e3,
        many.as_secs_f64() * 1e3,
        (many.as_secs_f64() - one.as_secs_f64()) * 1e6 / n.max(1) as f64
    );
    let cpu = idle::tui_idle_cpu(&["--backend", "sim"], full.path(), None, idle_secs);
    println!(
        "scale: TUI idle {idle_secs} s with {n} sim domains, 1 s refresh: {cpu:.2} % of one core"
    );
}
