//! Whole-process TUI figures (run with `cargo bench --bench tui_process`):
//! start-up to first frame with 1,000 sim domains, and CPU used while idle
//! for 10 s with 100 domains at the default 1 s refresh. Prints figures;
//! asserts nothing about them.

use std::io::Read;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use domus::backend::sim::{SimHypervisor, SimOptions};
use domus::clock::SystemClock;
use domus::engine::Engine;
use portable_pty::{CommandBuilder, PtySize, native_pty_system};

fn populate(dir: &Path, n: usize) {
    let sim = SimHypervisor::open(SimOptions {
        state_dir: Some(dir.join("sim")),
        ..Default::default()
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let engine = Engine::persistent(Arc::new(sim), Arc::new(SystemClock), dir)
        .unwrap_or_else(|e| panic!("{e}"));
    for i in 0..n {
        let (config, _) = domus::config::parse_str(
            &format!("(vm (name dom-{i}) (memory 8) (image (linux (kernel /k))))"),
            "bench",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        engine
            .create(&config, None)
            .unwrap_or_else(|e| panic!("{e}"));
    }
}

struct Running {
    child: Box<dyn portable_pty::Child + Send + Sync>,
    screen: Arc<Mutex<vt100::Parser>>,
    started: Instant,
    _master: Box<dyn portable_pty::MasterPty + Send>,
}

fn start(dir: &Path) -> Running {
    let pair = native_pty_system()
        .openpty(PtySize {
            rows: 36,
            cols: 120,
            pixel_width: 0,
            pixel_height: 0,
        })
        .unwrap_or_else(|e| panic!("{e}"));
    let mut cmd = CommandBuilder::new(env!("CARGO_BIN_EXE_domus"));
    cmd.args(["--backend", "sim", "--state-dir"]);
    cmd.arg(dir);
    cmd.arg("--config-dir");
    cmd.arg(dir.join("domains"));
    cmd.env("XDG_CONFIG_HOME", dir.join("config"));
    let started = Instant::now();
    let child = pair
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
    Running {
        child,
        screen,
        started,
        _master: pair.master,
    }
}

fn wait_for(r: &Running, needle: &str) -> Duration {
    loop {
        if r.screen
            .lock()
            .map(|p| p.screen().contents().contains(needle))
            .unwrap_or(false)
        {
            return r.started.elapsed();
        }
        if r.started.elapsed() > Duration::from_secs(60) {
            panic!("no {needle:?} on screen");
        }
        std::thread::sleep(Duration::from_micros(500));
    }
}

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name: utime is 14th, stime 15th overall.
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    f.get(11).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0)
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("tui_process: figures only under `cargo bench`");
        return;
    }
    // /proc reports CPU time in USER_HZ ticks, which Linux fixes at 100.
    let ticks_per_s = 100.0;

    let big = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    populate(big.path(), 1000);
    let mut firsts = Vec::new();
    let mut tables = Vec::new();
    for _ in 0..5 {
        let mut r = start(big.path());
        firsts.push(wait_for(&r, "domus"));
        tables.push(wait_for(&r, "dom-0"));
        let _ = r.child.kill();
        let _ = r.child.wait();
    }
    firsts.sort();
    tables.sort();
    println!(
        "startup, 1000 sim domains: first frame {:.1} ms, table with domains {:.1} ms (median of 5)",
        firsts[2].as_secs_f64() * 1000.0,
        tables[2].as_secs_f64() * 1000.0
    );

    let small = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    populate(small.path(), 100);
    let mut r = start(small.path());
    wait_for(&r, "dom-0");
    std::thread::sleep(Duration::from_secs(1));
    let pid = r.child.process_id().unwrap_or(0);
    let t0 = cpu_ticks(pid);
    let w0 = Instant::now();
    std::thread::sleep(Duration::from_secs(10));
    let used = (cpu_ticks(pid) - t0) as f64 / ticks_per_s;
    let wall = w0.elapsed().as_secs_f64();
    println!(
        "idle, 100 sim domains, 1 s refresh: {:.2} % of one core over {wall:.1} s ({used:.2} s CPU)",
        used / wall * 100.0
    );
    let _ = r.child.kill();
    let _ = r.child.wait();
}
