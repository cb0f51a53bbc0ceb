//! The TUI's CPU use while nothing happens: the real binary in a pty,
//! measured from /proc after it has settled.

use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use portable_pty::{CommandBuilder, PtySize, native_pty_system};

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = stat.rfind(')').map_or("", |i| &stat[i + 1..]);
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of the line are the 12th and 13th after the name.
    let get = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    get(11) + get(12)
}

/// Percent of one core the TUI used over `secs` seconds of idling, after
/// its first frame and a settling pause.
pub fn tui_idle_cpu(args: &[&str], state: &Path, runtime: Option<&Path>, secs: u64) -> f64 {
    let pair = native_pty_system()
        .openpty(PtySize {
            rows: 36,
            cols: 120,
            pixel_width: 0,
            pixel_height: 0,
        })
        .unwrap_or_else(|e| panic!("{e}"));
    let mut cmd = CommandBuilder::new(env!("CARGO_BIN_EXE_domus"));
    cmd.args(args);
    cmd.arg("--state-dir");
    cmd.arg(state);
    if let Some(r) = runtime {
        cmd.arg("--runtime-dir");
        cmd.arg(r);
    }
    cmd.arg("--config-dir");
    cmd.arg(state.join("domains"));
    cmd.env("XDG_CONFIG_HOME", state.join("config"));
    cmd.env("TERM", "xterm-256color");
    let mut child = pair
        .slave
        .spawn_command(cmd)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut reader = pair
        .master
        .try_clone_reader()
        .unwrap_or_else(|e| panic!("{e}"));
    let (tx, rx) = std::sync::mpsc::channel::<usize>();
    std::thread::spawn(move || {
        let mut buf = [0u8; 65536];
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 || tx.send(n).is_err() {
                break;
            }
        }
    });
    let pid = child.process_id().unwrap_or(0);
    // The first frame, then settling (the first refreshes fill caches).
    let _ = rx.recv_timeout(Duration::from_secs(60));
    std::thread::sleep(Duration::from_secs(5));
    let ticks_per_s = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as f64;
    let (c0, t0) = (cpu_ticks(pid), Instant::now());
    let deadline = t0 + Duration::from_secs(secs);
    while Instant::now() < deadline {
        // Keep draining the pty so the TUI never blocks on output.
        let _ = rx.recv_timeout(Duration::from_millis(200));
    }
    let (c1, t1) = (cpu_ticks(pid), Instant::now());
    let mut writer = pair.master.take_writer().unwrap_or_else(|e| panic!("{e}"));
    let _ = writer.write_all(b"q");
    let _ = child.wait();
    (c1 - c0) as f64 / ticks_per_s / (t1 - t0).as_secs_f64() * 100.0
}
