//! A fleet of real hosts: the local simulator, a real libvirtd reached two
//! ways (`qemu:///system`, and `qemu+tcp://127.0.0.1/system` through
//! libvirt's remote driver on loopback), and libvirt's `test:///default`
//! driver. The TUI shows them all with HOST; a bulk pause spans two hosts;
//! a daemon killed mid-run shows as unreachable while the others keep
//! refreshing, and comes back once it is up again; a daemon that stops
//! answering (SIGSTOP) holds up none of the others. Every part needs the
//! daemon (scripts/libvirtd-up starts it as root, as
//! ../shared/recipes/libvirt.md says).

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use common::guests::guest_files;
use crossterm::event::KeyCode;
use domus::backend::libvirt::LibvirtHypervisor;
use domus::clock::SystemClock;
use domus::engine::Engine;
use domus::fleet::{Fleet, HostId, HostSpec, Member, Target};
use domus::tui::action::{Action, Effect};
use domus::tui::lanes::Lanes;
use domus::tui::testing::{Harness, HarnessOptions};
use domus::tui::worker::Worker;

const SYS: &str = "qemu:///system";
const TCP: &str = "qemu+tcp://127.0.0.1/system";
const LAB: &str = "test:///default";

fn libvirtd_up() {
    let up = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/libvirtd-up"))
        .status()
        .unwrap_or_else(|e| panic!("scripts/libvirtd-up: {e}"));
    assert!(
        up.success(),
        "libvirtd did not start (scripts/packages installs libvirt)"
    );
}

fn libvirtd_pid() -> i32 {
    std::fs::read_to_string("/run/libvirtd.pid")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| panic!("no /run/libvirtd.pid"))
}

fn answers(uri: &str) -> bool {
    Command::new("virsh")
        .args(["-c", uri, "version"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The tests here stop and kill the one daemon: one at a time.
static DAEMON: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn daemon_to_myself() -> std::sync::MutexGuard<'static, ()> {
    DAEMON.lock().unwrap_or_else(|p| p.into_inner())
}

/// Whatever happens, the daemon runs again afterwards (and is not left
/// stopped) for the tests that follow.
struct Restore;

impl Drop for Restore {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string("/run/libvirtd.pid")
            && let Ok(pid) = pid.trim().parse::<i32>()
        {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGCONT,
            );
        }
        let _ = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/libvirtd-up")).status();
    }
}

fn signal(sig: nix::sys::signal::Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(libvirtd_pid()), sig)
        .unwrap_or_else(|e| panic!("signalling libvirtd: {e}"));
}

/// A libvirt host of the fleet, opened (and opened again) as domus does.
fn libvirt_member(name: &str, uri: &str, state: &Path) -> Member {
    let (uri_owned, state) = (uri.to_string(), state.to_path_buf());
    Member::lazy(
        HostSpec {
            name: name.into(),
            target: Target::Libvirt(uri.into()),
        },
        Box::new(move || {
            let hv = LibvirtHypervisor::open(&uri_owned).map_err(|e| e.to_string())?;
            let e = Engine::persistent(Arc::new(hv), Arc::new(SystemClock), &state)
                .map_err(|e| e.to_string())?;
            e.start().map_err(|e| e.to_string())?;
            Ok(e)
        }),
    )
}

/// A domain libvirt runs for another tool (the tiny guest, paused at once:
/// nothing here needs it to boot).
fn foreign_domain(dir: &Path, name: &str) {
    let (kernel, initrd) = guest_files();
    let xml = format!(
        "<domain type='qemu'><name>{name}</name><memory unit='MiB'>128</memory><vcpu>1</vcpu>\
         <os><type arch='x86_64' machine='q35'>hvm</type><kernel>{}</kernel><initrd>{}</initrd>\
         <cmdline>console=ttyS0 quiet</cmdline></os><features><acpi/></features>\
         <devices><serial type='pty'><target port='0'/></serial>\
         <console type='pty'><target type='serial' port='0'/></console></devices></domain>",
        kernel.display(),
        initrd.display()
    );
    let file = dir.join("foreign.xml");
    std::fs::write(&file, xml).unwrap_or_else(|e| panic!("{e}"));
    let made = Command::new("virsh")
        .args(["-c", SYS, "create"])
        .arg(&file)
        .status()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(made.success(), "virsh create");
}

struct Destroy(String);

impl Drop for Destroy {
    fn drop(&mut self) {
        for verb in ["destroy", "undefine"] {
            let _ = Command::new("virsh")
                .args(["-c", SYS, verb, &self.0])
                .output();
        }
    }
}

fn row_of<'a>(screen: &'a str, host: &str, name: &str) -> Option<&'a str> {
    screen
        .lines()
        .find(|l| l.contains(&format!(" {host} ")) && l.contains(&format!(" {name} ")))
}

fn select(h: &mut Harness, host: &str, name: &str) {
    h.key(KeyCode::Home);
    for _ in 0..h.app.table.order.len() {
        if let Some(r) = h.app.table.selected_row()
            && r.name == name
            && h.app.hosts.name(r.host) == host
        {
            return;
        }
        h.key(KeyCode::Down);
    }
    panic!("{host}:{name} is not in the table");
}

/// The first line of the screen: every host and how it answers.
fn hosts_line(h: &mut Harness) -> String {
    h.screen().lines().next().unwrap_or_default().to_string()
}

#[test]
fn a_fleet_of_three_libvirt_connections_and_the_simulator() {
    let _mine = daemon_to_myself();
    libvirtd_up();
    let _restore = Restore;
    let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let state = root.path().join("state");
    let foreign = format!("fleet-{}", std::process::id());
    foreign_domain(root.path(), &foreign);
    let _gone = Destroy(foreign.clone());
    let config = root.path().join("domains");
    let mut h = Harness::fleet(
        HarnessOptions {
            size: (160, 40),
            theme: "dark",
            read_only: false,
            config_dir: &config,
            recovery_dir: &root.path().join("recovery"),
            state_dir: None,
        },
        |_| {
            vec![
                libvirt_member("sys", SYS, &state),
                libvirt_member("tcp", TCP, &state),
                libvirt_member("lab", LAB, &state),
            ]
        },
    );
    h.tick(1.0);
    h.tick(1.0);
    let screen = h.screen();
    assert!(
        screen.contains("domus  local · sys · tcp · lab"),
        "every host answers: {screen}"
    );
    // The same daemon's domain through both connections, the test
    // driver's own, and the simulator's Domain-0.
    for (host, name) in [
        ("sys", foreign.as_str()),
        ("tcp", foreign.as_str()),
        ("lab", "test"),
        ("local", "Domain-0"),
    ] {
        assert!(
            row_of(&screen, host, name).is_some(),
            "{host}:{name}: {screen}"
        );
    }
    // The table's HOST and NAME of this test's domains, as a snapshot:
    // the figures of real hosts vary from run to run, and other domains
    // a daemon may have are not this test's.
    let ours: Vec<String> = screen
        .lines()
        .filter_map(|l| {
            let cells: Vec<&str> = l.trim_matches('│').split_whitespace().collect();
            let (host, name) = (*cells.first()?, *cells.get(2)?);
            let name = if name == foreign { "FOREIGN" } else { name };
            ["FOREIGN", "test", "Domain-0"]
                .contains(&name)
                .then(|| format!("{host:<6} {name}"))
        })
        .collect();
    let header = screen
        .lines()
        .find(|l| l.contains("ID▲ NAME"))
        .map(|l| {
            l.trim_matches('│')
                .split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default();
    insta::assert_snapshot!(
        "real_fleet_hosts",
        format!(
            "{}\n{header}\n{}",
            screen.lines().next().unwrap_or_default(),
            ours.join("\n")
        )
    );

    // Another tool's domain: its XML in Details, read-only.
    select(&mut h, "sys", &foreign);
    h.key(KeyCode::Enter);
    let screen = h.screen();
    assert!(
        screen.contains("x XML"),
        "the details offer the XML: {screen}"
    );
    h.key(KeyCode::Char('x'));
    let screen = h.screen();
    assert!(
        screen.contains("<domain type='qemu'")
            && screen.contains(&format!("<name>{foreign}</name>")),
        "{screen}"
    );
    assert!(screen.contains("read-only"), "{screen}");
    h.key(KeyCode::Char('x'));
    h.key(KeyCode::Esc);

    // Edited through its XML: libvirt validates it; a refusal says why and
    // keeps the editor open, an accepted one becomes its definition.
    select(&mut h, "sys", &foreign);
    h.key(KeyCode::Char('e'));
    let screen = h.screen();
    assert!(screen.contains("the hypervisor's definition"), "{screen}");
    // After <uuid> (line 3), where libvirt's schema takes a description.
    h.key(KeyCode::Down);
    h.key(KeyCode::Down);
    h.key(KeyCode::End);
    h.key(KeyCode::Enter);
    h.type_text("<bogus-element/>");
    h.ctrl('s');
    let screen = h.screen();
    assert!(screen.contains("refused"), "libvirt validates: {screen}");
    for _ in 0.."<bogus-element/>".len() {
        h.key(KeyCode::Backspace);
    }
    h.type_text("<description>edited-by-domus</description>");
    h.ctrl('s');
    let screen = h.screen();
    assert!(screen.contains("took the new definition"), "{screen}");
    let defined = Command::new("virsh")
        .args(["-c", SYS, "dumpxml", "--inactive", &foreign])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    assert!(defined.contains("edited-by-domus"), "{defined}");
    h.key(KeyCode::Esc);

    // Its console in the TUI: what is typed reaches the guest (libvirt
    // allows one session: reading and writing share it).
    select(&mut h, "sys", &foreign);
    h.key(KeyCode::Char('c'));
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut answered = false;
    while Instant::now() < deadline && !answered {
        h.type_text("echo FLEET-$((6*7))\r");
        for _ in 0..10 {
            std::thread::sleep(Duration::from_millis(200));
            h.tick(0.2);
            if h.screen().contains("FLEET-42") {
                answered = true;
                break;
            }
        }
    }
    let screen = h.screen();
    assert!(
        answered,
        "the guest answered in the TUI's console: {screen}"
    );
    h.ctrl(']');

    // A bulk pause across two hosts: the daemon's domain and the test
    // driver's, each on its own connection.
    select(&mut h, "sys", &foreign);
    h.key(KeyCode::Char(' '));
    select(&mut h, "lab", "test");
    h.key(KeyCode::Char(' '));
    h.key(KeyCode::Char('p'));
    h.tick(1.0);
    let screen = h.screen();
    assert!(
        screen.contains(&format!("sys:{foreign}")) && screen.contains("lab:test"),
        "a result per domain: {screen}"
    );
    for (host, name) in [
        ("sys", foreign.as_str()),
        ("tcp", foreign.as_str()),
        ("lab", "test"),
    ] {
        assert!(
            row_of(&screen, host, name).is_some_and(|l| l.contains("--p---")),
            "{host}:{name} paused: {screen}"
        );
    }
    let virsh = Command::new("virsh")
        .args(["-c", SYS, "domstate", &foreign])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    assert!(virsh.contains("paused"), "libvirt says: {virsh}");

    // The daemon is killed: its two connections are unreachable, and the
    // simulator and the test driver go on refreshing.
    signal(nix::sys::signal::Signal::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(20);
    while answers(SYS) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!answers(SYS), "libvirtd did not stop");
    let before = h
        .app
        .table
        .rows
        .iter()
        .find(|r| r.host == HostId(0))
        .map(|r| r.view.info.cpu_time_ns);
    h.tick(1.0);
    h.tick(1.0);
    let line = hosts_line(&mut h);
    assert!(
        line.contains("sys unreachable") && line.contains("tcp unreachable"),
        "{line}"
    );
    assert!(
        !line.contains("lab unreachable") && !line.contains("local unreachable"),
        "{line}"
    );
    let after = h
        .app
        .table
        .rows
        .iter()
        .find(|r| r.host == HostId(0))
        .map(|r| r.view.info.cpu_time_ns);
    assert!(
        after > before,
        "the simulator refreshed: {before:?} -> {after:?}"
    );
    let screen = h.screen();
    // The lost hosts' rows stay, marked as not current.
    assert!(
        row_of(&screen, "sys!", &foreign).is_some(),
        "sys's rows are marked: {screen}"
    );
    assert!(row_of(&screen, "lab", "test").is_some(), "{screen}");

    // Up again: each lost host is opened again (with back-off) and
    // answers; the guest kept running meanwhile (libvirt keeps it).
    libvirtd_up();
    let back = Instant::now() + Duration::from_secs(40);
    loop {
        std::thread::sleep(Duration::from_millis(500));
        h.tick(0.5);
        let line = hosts_line(&mut h);
        if !line.contains("unreachable") {
            break;
        }
        assert!(Instant::now() < back, "not back after 40 s: {line}");
    }
    let screen = h.screen();
    assert!(row_of(&screen, "sys", &foreign).is_some(), "{screen}");

    // domus list across the same fleet, from the command line.
    let out = Command::new(env!("CARGO_BIN_EXE_domus"))
        .args(["--state-dir"])
        .arg(root.path().join("cli-state"))
        .args(["--backend", "sim"])
        .args(["--connect", "local", "--connect", &format!("sys={SYS}")])
        .args([
            "--connect",
            &format!("tcp={TCP}"),
            "--connect",
            &format!("lab={LAB}"),
        ])
        .args(["list", "--json"])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    let hosts: Vec<&str> = v["hosts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|h| h["reachable"] == true)
        .filter_map(|h| h["name"].as_str())
        .collect();
    assert_eq!(hosts, ["local", "sys", "tcp", "lab"], "{text}");
    let on = |host: &str, name: &str| {
        v["domains"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|d| d["host"] == host && d["name"] == name)
    };
    assert!(
        on("sys", &foreign) && on("tcp", &foreign) && on("lab", "test") && on("local", "Domain-0"),
        "{text}"
    );
}

#[test]
fn a_daemon_that_stops_answering_holds_up_no_other_host() {
    let _mine = daemon_to_myself();
    libvirtd_up();
    let _restore = Restore;
    let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let state = root.path().join("state");
    let sim = domus::backend::sim::SimHypervisor::in_memory(Arc::new(SystemClock));
    let local =
        Engine::in_memory(Arc::new(sim), Arc::new(SystemClock)).unwrap_or_else(|e| panic!("{e}"));
    let fleet = Fleet::new(vec![
        Member::open(
            HostSpec {
                name: "local".into(),
                target: Target::Local,
            },
            Arc::new(local),
            Box::new(|| Err("not again".into())),
        ),
        libvirt_member("sys", SYS, &state),
        libvirt_member("lab", LAB, &state),
    ]);
    let (tx, rx) = mpsc::channel::<(Instant, Action)>();
    let sink: domus::tui::worker::Sink = Arc::new(move |a| {
        let _ = tx.send((Instant::now(), a));
    });
    let worker = Arc::new(Worker::for_fleet(
        Arc::new(fleet),
        root.path().join("lib"),
        root.path().join("rec"),
        Some(Arc::clone(&sink)),
    ));
    let lanes = Lanes::new(worker, sink);
    // Every host answers first.
    lanes.submit(Effect::Refresh);
    let mut seen = [false; 3];
    let deadline = Instant::now() + Duration::from_secs(20);
    while seen.iter().any(|s| !s) && Instant::now() < deadline {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok((_, Action::Snapshot(s))) => seen[usize::from(s.host_id.0)] = true,
            Ok((_, Action::HostDown { host, why })) => panic!("host {host:?} down: {why}"),
            _ => {}
        }
    }
    assert_eq!(seen, [true; 3], "every host answered");
    while rx.try_recv().is_ok() {}

    // The daemon stops (SIGSTOP): its connection hangs. The ticks go on.
    signal(nix::sys::signal::Signal::SIGSTOP);
    let stopped = Instant::now();
    let mut answers_by_host = [0usize; 3];
    let mut sys_down = None;
    while stopped.elapsed() < Duration::from_secs(20) && sys_down.is_none() {
        lanes.submit(Effect::Stats);
        let tick_end = Instant::now() + Duration::from_millis(300);
        while let Ok((at, a)) = rx.recv_timeout(tick_end.saturating_duration_since(Instant::now()))
        {
            match a {
                Action::Stats { host, .. } => answers_by_host[usize::from(host.0)] += 1,
                Action::HostDown {
                    host: HostId(1),
                    why,
                } => {
                    sys_down = Some((at.duration_since(stopped), why));
                }
                _ => {}
            }
        }
        if stopped.elapsed() > Duration::from_secs(3) && sys_down.is_none() {
            // Within the first seconds the others answered every tick.
            assert!(
                answers_by_host[0] >= 5 && answers_by_host[2] >= 5,
                "{answers_by_host:?}"
            );
        }
    }
    signal(nix::sys::signal::Signal::SIGCONT);
    // The stopped daemon's host is said to be down once its keep-alive
    // gives up, not never; the others never waited for it.
    let (after, why) =
        sys_down.unwrap_or_else(|| panic!("sys never reported down: {answers_by_host:?}"));
    assert!(after < Duration::from_secs(20), "{after:?}");
    assert!(
        answers_by_host[0] >= 5 && answers_by_host[2] >= 5,
        "{answers_by_host:?}"
    );
    eprintln!(
        "a stopped libvirtd was reported down after {after:?}: {why}; meanwhile local answered {} ticks and lab {}",
        answers_by_host[0], answers_by_host[2]
    );
}
