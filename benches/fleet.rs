//! A fleet's refresh with real libvirt domains (run with `cargo bench
//! --bench fleet`; prints figures, asserts nothing). `DOMUS_BENCH_FLEET`
//! (default 20) paused tiny guests are created with `virsh create` on
//! `qemu:///system`, and the same figures are printed in one run for:
//!
//! - domus's whole refresh of a fleet of `qemu:///system` (the N guests),
//!   `qemu+tcp://127.0.0.1/system` (the same N through the remote driver)
//!   and `test:///default`, each host on its own lane as the TUI reads
//!   them; and the tick's cheap read of the same fleet;
//! - domus's refresh of `qemu:///system` alone;
//! - `virsh list --all` + `virsh domstats` for the same N, one process
//!   each (as a script would poll), and `domus list --json` for the same
//!   host, one process;
//!
//! Outside `cargo bench` (cargo test --benches) it uses 2 guests and one
//! round, to prove the bench still works. Needs libvirtd (root, started
//! by scripts/libvirtd-up); without it, it says so and measures nothing.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use domus::backend::libvirt::LibvirtHypervisor;
use domus::clock::SystemClock;
use domus::engine::Engine;
use domus::fleet::{Fleet, HostSpec, Member, Target};
use domus::tui::action::{Action, Effect};
use domus::tui::lanes::Lanes;
use domus::tui::worker::Worker;

const SYS: &str = "qemu:///system";
const TCP: &str = "qemu+tcp://127.0.0.1/system";
const LAB: &str = "test:///default";

fn guest() -> (PathBuf, PathBuf) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/guest");
    (dir.join("vmlinux"), dir.join("initramfs.cpio.gz"))
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn virsh(args: &[&str]) -> bool {
    Command::new("virsh")
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success())
}

/// N paused guests libvirt runs; destroyed when dropped.
struct Guests(Vec<String>);

impl Guests {
    fn create(n: usize, dir: &Path) -> Guests {
        let (k, i) = guest();
        let mut names = Vec::new();
        for j in 0..n {
            let name = format!("domus-fleet-bench-{j}");
            let xml = format!(
                "<domain type='qemu'><name>{name}</name><memory unit='MiB'>128</memory><vcpu>1</vcpu>
                 <os><type arch='x86_64' machine='q35'>hvm</type><kernel>{}</kernel><initrd>{}</initrd>
                 <cmdline>console=ttyS0 quiet</cmdline></os><features><acpi/></features>
                 <devices><serial type='pty'><target port='0'/></serial></devices></domain>",
                k.display(),
                i.display()
            );
            let file = dir.join(format!("{name}.xml"));
            if std::fs::write(&file, xml).is_ok()
                && virsh(&["-c", SYS, "create", &file.to_string_lossy(), "--paused"])
            {
                names.push(name);
            }
        }
        Guests(names)
    }
}

impl Drop for Guests {
    fn drop(&mut self) {
        for name in &self.0 {
            let _ = virsh(&["-c", SYS, "destroy", name]);
        }
    }
}

fn member(name: &str, uri: &str, state: &Path) -> Member {
    let (u, state) = (uri.to_string(), state.to_path_buf());
    Member::lazy(
        HostSpec {
            name: name.into(),
            target: Target::Libvirt(uri.into()),
        },
        Box::new(move || {
            let hv = LibvirtHypervisor::open(&u).map_err(|e| e.to_string())?;
            Engine::persistent(Arc::new(hv), Arc::new(SystemClock), &state)
                .map_err(|e| e.to_string())
        }),
    )
}

/// How long until every host of the fleet has answered `effect`, each on
/// its own lane as in the TUI.
fn fleet_read(
    lanes: &Lanes,
    rx: &mpsc::Receiver<Action>,
    hosts: usize,
    effect: Effect,
) -> Duration {
    while rx.try_recv().is_ok() {}
    let t = Instant::now();
    lanes.submit(effect.clone());
    let mut answered = 0;
    while answered < hosts {
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(Action::Snapshot(_)) if effect == Effect::Refresh => answered += 1,
            Ok(Action::Stats { .. }) if effect == Effect::Stats => answered += 1,
            Ok(Action::HostDown { why, .. }) => panic!("a host is down: {why}"),
            Ok(_) => {}
            Err(e) => panic!("no answer: {e}"),
        }
    }
    t.elapsed()
}

fn lanes_for(members: Vec<Member>, dir: &Path) -> (Lanes, mpsc::Receiver<Action>) {
    let (tx, rx) = mpsc::channel();
    let tx = std::sync::Mutex::new(tx);
    let sink: domus::tui::worker::Sink = Arc::new(move |a| {
        let _ = tx.lock().unwrap_or_else(|p| p.into_inner()).send(a);
    });
    let worker = Arc::new(Worker::for_fleet(
        Arc::new(Fleet::new(members)),
        dir.join("lib"),
        dir.join("rec"),
        Some(Arc::clone(&sink)),
    ));
    (Lanes::new(worker, sink), rx)
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let up = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/libvirtd-up")).status();
    if !up.is_ok_and(|s| s.success()) {
        println!("fleet: libvirtd does not start here (it needs root): NOTHING MEASURED");
        return;
    }
    let n: usize = if bench {
        std::env::var("DOMUS_BENCH_FLEET")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(20)
    } else {
        2
    };
    let rounds = if bench { 7 } else { 1 };
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let guests = Guests::create(n, dir.path());
    if guests.0.len() != n {
        println!(
            "fleet: only {} of {n} guests started: NOTHING MEASURED",
            guests.0.len()
        );
        return;
    }
    let state = dir.path().join("state");
    let (fleet, frx) = lanes_for(
        vec![
            member("sys", SYS, &state),
            member("tcp", TCP, &state),
            member("lab", LAB, &state),
        ],
        dir.path(),
    );
    let (one, orx) = lanes_for(vec![member("sys", SYS, &state)], dir.path());
    // The first read opens the connections.
    fleet_read(&fleet, &frx, 3, Effect::Refresh);
    fleet_read(&one, &orx, 1, Effect::Refresh);
    let runs = |f: &dyn Fn() -> Duration| median((0..rounds).map(|_| f()).collect());
    let fleet_refresh = runs(&|| fleet_read(&fleet, &frx, 3, Effect::Refresh));
    let fleet_tick = runs(&|| fleet_read(&fleet, &frx, 3, Effect::Stats));
    let one_refresh = runs(&|| fleet_read(&one, &orx, 1, Effect::Refresh));
    let one_tick = runs(&|| fleet_read(&one, &orx, 1, Effect::Stats));
    let virsh_both = runs(&|| {
        let t = Instant::now();
        virsh(&["-c", SYS, "list", "--all"]);
        virsh(&["-c", SYS, "domstats"]);
        t.elapsed()
    });
    let virsh_list = runs(&|| {
        let t = Instant::now();
        virsh(&["-c", SYS, "list", "--all"]);
        t.elapsed()
    });
    let domus_list = runs(&|| {
        let t = Instant::now();
        let _ = Command::new(env!("CARGO_BIN_EXE_domus"))
            .args(["--state-dir"])
            .arg(dir.path().join("cli"))
            .args(["--connect", SYS, "list", "--json"])
            .output();
        t.elapsed()
    });
    drop(guests);
    println!("fleet: {n} paused TCG guests on {SYS}, median of {rounds} rounds");
    println!(
        "fleet: domus whole refresh, 3 hosts (sys + tcp: {n} each, lab: 1): {:.1} ms; tick's read: {:.1} ms",
        ms(fleet_refresh),
        ms(fleet_tick)
    );
    println!(
        "fleet: domus whole refresh, {SYS} alone ({n} domains): {:.1} ms; tick's read: {:.1} ms",
        ms(one_refresh),
        ms(one_tick)
    );
    println!(
        "fleet: virsh list --all + virsh domstats, {n} domains (two processes): {:.1} ms (virsh list alone: {:.1} ms); domus list --json (one process, with I/O counters): {:.1} ms",
        ms(virsh_both),
        ms(virsh_list),
        ms(domus_list)
    );
}
