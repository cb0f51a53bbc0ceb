//! The host journal on the simulator: what one domus process does reaches
//! every other — `domus events`, a running TUI that did nothing, the
//! details and the Gone tab — and console logs outlive their domain.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossterm::event::KeyCode;
use domus::backend::CallKind;
use domus::engine::{DomainEvent, Engine, JournalEntry, Source, SourceKind};
use domus::tui::testing::{Harness, HarnessOptions, shared_sim};

fn domus(state: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_domus"));
    cmd.arg("--state-dir").arg(state).args(["--backend", "sim"]);
    cmd.env_remove("DOMUS_SIM_FAULTS")
        .env_remove("DOMUS_SIM_SLOW");
    cmd
}

fn run(state: &Path, args: &[&str]) -> String {
    let out = domus(state)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        out.status.success(),
        "domus {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn config(dir: &Path, name: &str, extra: &str) -> std::path::PathBuf {
    let p = dir.join(format!("{name}.sxp"));
    std::fs::write(
        &p,
        format!("(vm (name {name}) (memory 64) (image (linux (kernel /boot/vmlinuz))) {extra})"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    p
}

fn events_json(state: &Path, dom: &str) -> Vec<JournalEntry> {
    run(
        state,
        &["events", "--json", "--all", "--limit", "1000", dom],
    )
    .lines()
    .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
    .collect()
}

/// A TUI (120×36) on the shared state dir `state`, one tick in.
fn tui_on(dir: &Path, state: &Path) -> Harness {
    let (lib, rec) = (dir.join("lib"), dir.join("rec"));
    let mut h = Harness::new(HarnessOptions {
        size: (120, 36),
        theme: "dark",
        read_only: false,
        config_dir: &lib,
        recovery_dir: &rec,
        state_dir: Some(state),
    });
    h.tick(1.0);
    h
}

/// Another process crashes a guest twice: the restart and the loop
/// guard's refusal reach a TUI that did nothing, with their causes.
#[test]
fn a_crash_a_restart_and_the_loop_guard_reach_a_tui_that_did_nothing() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let state = dir.path().join("state");
    let mut h = tui_on(dir.path(), &state);
    // The other process: its own engine on the same state dir and clock.
    let sim = shared_sim(&state, h.clock.clone());
    let other = Engine::persistent(Arc::new(sim), h.clock.clone(), &state)
        .unwrap_or_else(|e| panic!("{e}"))
        .with_source(Source {
            kind: SourceKind::Cli,
            pid: Some(777),
        });
    let cfg = common::config(
        "(vm (name crashy) (memory 64) (on_crash restart) (image (linux (kernel /k))))",
    );
    let d = other.create(&cfg, None).unwrap_or_else(|e| panic!("{e}"));
    h.clock.advance_secs(2.0);
    common::type_line(&other, d, "crash");
    let first = other.refresh().unwrap_or_else(|e| panic!("{e}"));
    let new = match first.first().map(|e| &e.outcome) {
        Some(domus::engine::PolicyOutcome::Restarted { new_domid }) => *new_domid,
        other => panic!("{other:?}"),
    };
    h.clock.advance_secs(3.0);
    common::type_line(&other, new, "crash");
    other.refresh().unwrap_or_else(|e| panic!("{e}"));
    // The TUI only refreshes, as its store watcher makes it.
    h.dispatch(domus::tui::action::Action::StoreChanged);
    let status = h.screen();
    assert!(
        status.contains("restart refused"),
        "the loop guard is announced:\n{status}"
    );
    h.key(KeyCode::Char('3'));
    insta::assert_snapshot!("events_from_another_process", h.screen());
    // The Gone tab keeps it, with its timeline.
    h.key(KeyCode::Char('4'));
    let gone = h.screen();
    assert!(gone.contains("crashy"), "{gone}");
    h.key(KeyCode::Enter);
    insta::assert_snapshot!("gone_details", h.screen());
}

/// What happened before a TUI started is history: it is in the Events
/// tab, not announced on the status line as news at every start.
#[test]
fn a_new_tui_does_not_announce_old_events_as_news() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let state = dir.path().join("state");
    let mut first = tui_on(dir.path(), &state);
    let sim = shared_sim(&state, first.clock.clone());
    let other = Engine::persistent(Arc::new(sim), first.clock.clone(), &state)
        .unwrap_or_else(|e| panic!("{e}"))
        .with_source(Source {
            kind: SourceKind::Cli,
            pid: Some(777),
        });
    let cfg = common::config("(vm (name crashy) (memory 64) (image (linux (kernel /k))))");
    let d = other.create(&cfg, None).unwrap_or_else(|e| panic!("{e}"));
    common::type_line(&other, d, "crash");
    other.refresh().unwrap_or_else(|e| panic!("{e}"));
    first.dispatch(domus::tui::action::Action::StoreChanged);
    let status = |screen: &str| screen.lines().rev().nth(1).unwrap_or("").to_string();
    let news = status(&first.screen());
    assert!(
        news.contains("crashy") && news.contains("crashed"),
        "news to a running TUI: {news}"
    );
    first.clock.advance_secs(60.0);
    let mut later = tui_on(dir.path(), &state);
    let screen = later.screen();
    assert!(
        !status(&screen).contains("crashy"),
        "old news on the status line:\n{screen}"
    );
    later.key(KeyCode::Char('3'));
    let events = later.screen();
    assert!(
        events.contains("crashy") && events.contains("crashed"),
        "{events}"
    );
}

/// The same story through the real binary: `domus events --json` says what
/// happened, who did it and why.
#[test]
fn events_json_shows_a_crash_its_restart_and_the_refusal_with_their_sources() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let state = dir.path().join("state");
    let cfg = config(dir.path(), "crashy", "(on_crash restart)");
    run(&state, &["create", cfg.to_str().unwrap_or_default()]);
    for _ in 0..2 {
        // `domus console` applies the policy once the guest is down.
        let mut c = domus(&state)
            .args(["console", "crashy"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{e}"));
        if let Some(mut stdin) = c.stdin.take() {
            use std::io::Write;
            let _ = stdin.write_all(b"crash\n");
        }
        let _ = c.wait();
    }
    let events = events_json(&state, "crashy");
    let kinds: Vec<(&str, SourceKind)> = events
        .iter()
        .map(|e| (e.event_kind(), e.source.kind))
        .filter(|(k, _)| !k.starts_with("op_") && !k.starts_with("console"))
        .collect();
    let crash = |e: &JournalEntry| {
        matches!(
            e.event,
            DomainEvent::ShutDown {
                reason: domus::backend::ShutdownReason::Crash
            }
        )
    };
    assert_eq!(events.iter().filter(|e| crash(e)).count(), 2, "{kinds:?}");
    assert!(
        events
            .iter()
            .filter(|e| crash(e))
            .all(|e| e.source.kind == SourceKind::Guest),
        "a crash is the guest's doing: {kinds:?}"
    );
    let order: Vec<&str> = kinds.iter().map(|(k, _)| *k).collect();
    let pos = |k: &str| order.iter().position(|x| *x == k);
    assert!(pos("restarted") < pos("restart_refused"), "{order:?}");
    assert_eq!(order.last(), Some(&"destroyed"), "{order:?}");
    assert!(
        events
            .iter()
            .all(|e| e.source.pid.is_some_and(|p| p != std::process::id())),
        "each event names the domus process that recorded it"
    );
    // And in text, for people.
    let text = run(&state, &["events", "crashy"]);
    assert!(text.contains("restart refused"), "{text}");
    assert!(text.contains("guest: crashed"), "{text}");
}

trait Kind {
    fn event_kind(&self) -> &'static str;
}

impl Kind for JournalEntry {
    fn event_kind(&self) -> &'static str {
        self.event.kind()
    }
}

#[test]
fn the_console_log_of_a_destroyed_domain_is_still_readable() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let state = dir.path().join("state");
    let cfg = config(dir.path(), "logged", "");
    run(&state, &["create", cfg.to_str().unwrap_or_default()]);
    let mut c = domus(&state)
        .args(["console", "logged"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    if let Some(mut stdin) = c.stdin.take() {
        use std::io::Write;
        let _ = stdin.write_all(b"echo last-words-before-destroy\n");
    }
    let _ = c.wait();
    run(&state, &["destroy", "logged"]);
    let log = run(&state, &["console", "--log", "logged"]);
    assert!(log.contains("last-words-before-destroy"), "{log}");
    assert!(log.contains("Linux version"), "the boot log too: {log}");
    // A name that never existed is an error.
    let out = domus(&state)
        .args(["console", "--log", "never"])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!out.status.success());
}

/// `domus events --follow` is woken by another process's commit.
#[test]
fn events_follow_prints_what_another_process_does() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let state = dir.path().join("state");
    let cfg = config(dir.path(), "followed", "");
    run(&state, &["create", cfg.to_str().unwrap_or_default()]);
    let mut follow = domus(&state)
        .args(["events", "--follow", "--limit", "0", "followed"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    std::thread::sleep(Duration::from_millis(500));
    run(&state, &["pause", "followed"]);
    let mut out = follow.stdout.take().unwrap_or_else(|| panic!("no stdout"));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        let mut line = String::new();
        let _ = std::io::BufReader::new(&mut out).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(Duration::from_secs(10))
        .unwrap_or_else(|_| panic!("--follow printed nothing"));
    let _ = follow.kill();
    let _ = follow.wait();
    assert!(
        line.contains("followed") && line.contains("paused"),
        "{line}"
    );
}

/// A slow operation on one domain (a detach the guest takes 3 s to answer)
/// holds up neither the refresh nor the console of another domain.
#[test]
fn a_slow_detach_holds_up_neither_refresh_nor_another_console() {
    use domus::tui::action::{Action, Effect};
    use domus::tui::lanes::Lanes;
    use domus::tui::worker::Worker;
    let clock = Arc::new(domus::clock::SystemClock);
    let sim = domus::backend::sim::SimHypervisor::in_memory(clock.clone());
    sim.slow(CallKind::DetachDevice, Duration::from_secs(3));
    let engine = Arc::new(
        Engine::in_memory(Arc::new(sim.clone()), clock.clone()).unwrap_or_else(|e| panic!("{e}")),
    );
    let web = common::config(
        "(vm (name slow) (image (linux (kernel /k))) (device (vbd (uname file:/x.img) (dev xvdb) (mode w))))",
    );
    let other = common::config("(vm (name quick) (image (linux (kernel /k))))");
    let a = engine.create(&web, None).unwrap_or_else(|e| panic!("{e}"));
    let b = engine
        .create(&other, None)
        .unwrap_or_else(|e| panic!("{e}"));
    let (tx, rx) = std::sync::mpsc::channel::<(Instant, Action)>();
    let sink: domus::tui::worker::Sink = Arc::new(move |act| {
        let _ = tx.send((Instant::now(), act));
    });
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let worker = Arc::new(Worker::new(
        engine,
        dir.path().join("lib"),
        dir.path().join("rec"),
        Some(Arc::clone(&sink)),
    ));
    let lanes = Lanes::new(worker, sink);
    let (a, b) = (
        domus::fleet::DomKey::local(a),
        domus::fleet::DomKey::local(b),
    );
    let t0 = Instant::now();
    lanes.submit(Effect::Detach(
        a,
        domus::config::DeviceRef::Vbd("xvdb".into()),
    ));
    std::thread::sleep(Duration::from_millis(100));
    lanes.submit(Effect::Refresh);
    lanes.submit(Effect::OpenConsole(b));
    lanes.submit(Effect::ConsoleInput(b, b"echo still-typing\r".to_vec()));
    let (mut refreshed, mut echoed, mut detached) = (None, None, None);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut console = Vec::new();
    while detached.is_none() && Instant::now() < deadline {
        let Ok((at, act)) = rx.recv_timeout(Duration::from_millis(100)) else {
            continue;
        };
        match act {
            Action::Snapshot(_) => {
                refreshed.get_or_insert(at);
            }
            Action::ConsoleBytes(d, bytes) if d == b => {
                console.extend(bytes);
                if String::from_utf8_lossy(&console).contains("still-typing\r\nstill-typing") {
                    echoed.get_or_insert(at);
                }
            }
            Action::Done(domus::tui::action::Done::Detached { .. }) => detached = Some(at),
            _ => {}
        }
    }
    let detached = detached.unwrap_or_else(|| panic!("the detach never finished"));
    let refreshed = refreshed.unwrap_or_else(|| panic!("no refresh at all"));
    let echoed = echoed.unwrap_or_else(|| panic!("the other console never echoed"));
    assert!(
        detached - t0 >= Duration::from_secs(3),
        "the detach was slow"
    );
    assert!(
        refreshed < detached,
        "the refresh did not wait for the detach"
    );
    assert!(
        echoed < detached,
        "the other console did not wait for the detach"
    );
}

/// A TUI sees another process's action through the store watcher, not its
/// refresh tick (set to a minute here).
#[test]
fn a_running_tui_sees_another_process_pause_at_once() {
    use common::pty::Pty;
    use portable_pty::CommandBuilder;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let state = dir.path().join("state");
    let cfg = config(dir.path(), "watched", "");
    run(&state, &["create", cfg.to_str().unwrap_or_default()]);
    let mut cmd = CommandBuilder::new(env!("CARGO_BIN_EXE_domus"));
    cmd.args(["--backend", "sim", "--delay", "60", "--state-dir"]);
    cmd.arg(&state);
    cmd.arg("--config-dir");
    cmd.arg(dir.path().join("domains"));
    cmd.env("XDG_CONFIG_HOME", dir.path().join("config"));
    cmd.env("TERM", "xterm-256color");
    let mut pty = Pty::spawn(cmd, 36, 120, |_| {});
    pty.wait_for("watched", "the domain table", 30);
    let started = Instant::now();
    run(&state, &["pause", "watched"]);
    let ran = started.elapsed();
    pty.wait_for("--p---", "the pause in the table", 5);
    let seen = started.elapsed();
    pty.press(b"3");
    pty.wait_for(
        "watched [1] · cli",
        "the pause in Events, with its source",
        5,
    );
    pty.press(b"q");
    pty.wait_exit("q");
    eprintln!("pause by another process: command {ran:?}, on the TUI's screen after {seen:?}");
}

/// The journal keeps its order and loses nothing with several writers.
#[test]
fn concurrent_cli_processes_each_leave_their_events() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let state = dir.path().join("state");
    let names: Vec<String> = (0..6).map(|i| format!("par{i}")).collect();
    // Started together, so they race for the store.
    let kids: Vec<_> = names
        .iter()
        .map(|n| {
            let cfg = config(dir.path(), n, "");
            domus(&state)
                .arg("create")
                .arg(cfg)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap_or_else(|e| panic!("{e}"))
        })
        .collect();
    for k in kids {
        let k = k.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
        assert!(k.status.success(), "{}", String::from_utf8_lossy(&k.stderr));
    }
    for n in &names {
        let ev = events_json(&state, n);
        assert!(
            ev.iter().any(|e| e.event.kind() == "created"),
            "{n}: {ev:?}"
        );
    }
    let all = run(&state, &["events", "--json", "--all", "--limit", "10000"]);
    let seqs: Vec<i64> = all
        .lines()
        .filter_map(|l| serde_json::from_str::<JournalEntry>(l).ok())
        .map(|e| e.seq)
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]));
}

/// A command killed in the middle of a build while a TUI runs: the TUI
/// repairs it on its next whole refresh (no other command needed), says
/// so, and nothing is left in flight.
#[test]
fn a_running_tui_repairs_a_command_killed_beside_it() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let state = dir.path().join("state");
    let mut h = tui_on(dir.path(), &state);
    let cfg = config(dir.path(), "half", "(device (vif))");
    let out = domus(&state)
        .env("DOMUS_KILL_AT", "create:create devices")
        .arg("create")
        .arg(&cfg)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!out.status.success(), "the create was not killed");
    let intents = |state: &Path| {
        domus::store::Store::open(state, "sim")
            .and_then(|s| s.read(|tx| tx.intents()))
            .unwrap_or_else(|e| panic!("{e}"))
    };
    assert_eq!(
        intents(&state).len(),
        1,
        "the killed create left its intent"
    );
    h.dispatch(domus::tui::action::Action::StoreChanged);
    let screen = h.screen();
    assert!(
        screen.contains("repaired: rolled back the interrupted create of half"),
        "{screen}"
    );
    assert!(intents(&state).is_empty());
    let names: Vec<String> = h
        .engine()
        .domains()
        .unwrap_or_else(|e| panic!("{e}"))
        .into_iter()
        .map(|v| v.info.name)
        .collect();
    assert!(!names.contains(&"half".to_string()), "{names:?}");
}

/// The same with no commit after the kill (the command died while the
/// backend was slow): the TUI notices the dead owner within a few ticks
/// rather than at the next whole refresh.
#[test]
fn a_running_tui_notices_a_dead_command_within_ticks() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let state = dir.path().join("state");
    let mut h = tui_on(dir.path(), &state);
    let cfg = config(dir.path(), "slowpoke", "");
    let mut child = domus(&state)
        .env("DOMUS_SIM_SLOW", "build_image:60")
        .arg("create")
        .arg(&cfg)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let intents = |state: &Path| {
        domus::store::Store::open(state, "sim")
            .and_then(|s| s.read(|tx| tx.intents()))
            .unwrap_or_else(|e| panic!("{e}"))
    };
    // Until the domain exists (the intent has its id): a stage before
    // that (validation) has nothing on the hypervisor to show yet.
    let deadline = Instant::now() + Duration::from_secs(20);
    while intents(&state).iter().all(|i| i.domid.is_none()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    // The TUI sees the build in flight, its owner alive.
    h.dispatch(domus::tui::action::Action::StoreChanged);
    assert!(h.screen().contains("slowpoke create…"), "{}", h.screen());
    let _ = child.kill();
    let _ = child.wait();
    // Refresh ticks: the cheap reads only, no whole refresh.
    for _ in 0..5 {
        h.clock.advance_secs(1.0);
        h.dispatch(domus::tui::action::Action::Tick);
    }
    let screen = h.screen();
    assert!(
        screen.contains("repaired: rolled back the interrupted create of slowpoke"),
        "{screen}"
    );
    assert!(intents(&state).is_empty());
}
