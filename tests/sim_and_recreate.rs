//! The simulator as a product: deterministic, persistent across processes
//! (here: across handles on one state directory), with a Domain-0 that
//! stays; and the engine's start-up re-discovery (xend's recreate).

mod common;

use std::sync::Arc;

use common::*;
use domus::backend::sim::{SimHypervisor, SimOptions};
use domus::backend::{Hypervisor, ShutdownReason};
use domus::clock::ManualClock;
use domus::engine::{Engine, PolicyOutcome};

fn persistent(dir: &std::path::Path, clock: Arc<ManualClock>) -> (SimHypervisor, Engine) {
    let sim = SimHypervisor::open(SimOptions {
        state_dir: Some(dir.join("sim")),
        clock: clock.clone(),
        ..Default::default()
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let engine =
        Engine::persistent(Arc::new(sim.clone()), clock, dir).unwrap_or_else(|e| panic!("{e}"));
    (sim, engine)
}

#[test]
fn same_seed_and_clock_give_the_same_host() {
    let run = || {
        let r = rig();
        r.engine
            .create(&config(WEB1), None)
            .unwrap_or_else(|e| panic!("{e}"));
        r.clock.advance_secs(7.3);
        let out = type_line(&r.engine, 1, "uname -a");
        let infos = r.sim.list_domains().unwrap_or_default();
        (format!("{infos:?}"), out)
    };
    assert_eq!(run(), run());
}

#[test]
fn domain0_cannot_be_destroyed_and_domids_are_never_reused() {
    let r = rig();
    assert!(r.sim.destroy(0).is_err());
    let a = r
        .engine
        .create(&config("(vm (name a) (image (linux (kernel /k))))"), None)
        .unwrap_or_else(|e| panic!("{e}"));
    r.engine.destroy(a).unwrap_or_else(|e| panic!("{e}"));
    let b = r
        .engine
        .create(&config("(vm (name a) (image (linux (kernel /k))))"), None)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((a, b), (1, 2));
    let dom0 = r.sim.domain_info(0).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(dom0.name, "Domain-0");
    assert_eq!(dom0.state_string(), "r-----");
}

#[test]
fn the_boot_log_reflects_the_config() {
    let r = rig();
    let d = r
        .engine
        .create(&config(WEB1), None)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut stream = r.engine.console(d).unwrap_or_else(|e| panic!("{e}"));
    let log = drain(&mut stream);
    for expected in [
        "Command line: root=/dev/xvda1 console=hvc0",
        "Memory: 254279K/262144K available",
        "Allowing 2 CPUs",
        "blkfront: xvda: file:/srv/web1.img read-write",
        "netfront: eth0: mac 00:16:3e:",
        "on bridge xenbr0",
        "pcifront: probing 0000:00:1f.2",
        "Welcome to web1",
    ] {
        assert!(log.contains(expected), "{expected:?} missing from:\n{log}");
    }
    assert!(log.ends_with("/ # "), "{log}");
    let out = type_line(&r.engine, d, "echo hello there");
    assert!(out.contains("hello there\r\n"), "{out:?}");
    let out = type_line(&r.engine, d, "frobnicate");
    assert!(out.contains("sh: frobnicate: not found"), "{out:?}");
}

#[test]
fn input_typed_while_paused_runs_on_unpause() {
    let r = rig();
    let d = r
        .engine
        .create(&config(WEB1), None)
        .unwrap_or_else(|e| panic!("{e}"));
    r.engine.pause(d).unwrap_or_else(|e| panic!("{e}"));
    let out = type_line(&r.engine, d, "hostname");
    assert!(
        !out.contains("web1"),
        "a paused guest does not answer: {out:?}"
    );
    let mut stream = r.engine.console(d).unwrap_or_else(|e| panic!("{e}"));
    drain(&mut stream);
    r.engine.unpause(d).unwrap_or_else(|e| panic!("{e}"));
    let out = drain(&mut stream);
    assert!(out.contains("hostname\r\nweb1\r\n"), "{out:?}");
}

#[test]
fn two_handles_on_one_state_directory_see_one_host() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let clock = ManualClock::new(T0);
    let (sim_a, engine_a) = persistent(dir.path(), clock.clone());
    let d = engine_a
        .create(&config(WEB1), None)
        .unwrap_or_else(|e| panic!("{e}"));
    let (sim_b, engine_b) = persistent(dir.path(), clock.clone());
    assert_eq!(names(&sim_b), ["Domain-0", "web1"]);
    engine_b.pause(d).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        sim_a
            .domain_info(d)
            .map(|i| i.state_string())
            .unwrap_or_default(),
        "--p---"
    );
    // The console log is shared too.
    engine_b.unpause(d).unwrap_or_else(|e| panic!("{e}"));
    let out = type_line(&engine_a, d, "cat /proc/partitions");
    assert!(out.contains("xvda"), "{out}");
    drop(engine_a);
    drop(engine_b);
}

#[test]
fn recreate_reattaches_configs_after_a_restart_of_domus() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let clock = ManualClock::new(T0);
    let d = {
        let (_, engine) = persistent(dir.path(), clock.clone());
        let d = engine
            .create(
                &with_policy("(on_crash restart)"),
                Some(std::path::Path::new("/etc/domus/pol.sxp")),
            )
            .unwrap_or_else(|e| panic!("{e}"));
        let vbd = domus::config::device_args::parse_device_args(
            "vbd",
            &["file:/srv/hot.img".into(), "xvdc".into()],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        engine.attach(d, &vbd).unwrap_or_else(|e| panic!("{e}"));
        d
    };
    // "domus" starts again: a new engine on the same state.
    clock.advance_secs(60.0);
    let (sim, engine) = persistent(dir.path(), clock.clone());
    let report = engine.recreate().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.reattached, [("pol".to_string(), d)]);
    assert_eq!(report.unmanaged, [("Domain-0".to_string(), 0)]);
    assert!(report.vanished.is_empty());
    let view = engine.view(d).unwrap_or_else(|e| panic!("{e}"));
    let config = view
        .config()
        .unwrap_or_else(|| panic!("config re-attached"));
    assert_eq!(
        config.devices.len(),
        2,
        "the hot-plugged vbd is part of the config now"
    );
    assert_eq!(
        view.record.and_then(|r| r.source.clone()).as_deref(),
        Some(std::path::Path::new("/etc/domus/pol.sxp"))
    );

    // Its policy works from the re-attached config.
    type_line(&engine, d, "crash");
    let events = engine.refresh().unwrap_or_else(|e| panic!("{e}"));
    let PolicyOutcome::Restarted { new_domid } = events[0].outcome else {
        panic!("{events:?}")
    };
    let info = sim.domain_info(new_domid).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(info.devices.len(), 2);

    // A host that lost its domains: the records are reported as vanished.
    std::fs::remove_dir_all(dir.path().join("sim")).unwrap_or_else(|e| panic!("{e}"));
    let (_, engine) = persistent(dir.path(), clock.clone());
    let report = engine.recreate().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.vanished, ["pol"]);
}

#[test]
fn a_shutdown_is_handled_by_exactly_one_of_two_engines() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let clock = ManualClock::new(T0);
    let (_, a) = persistent(dir.path(), clock.clone());
    let (_, b) = persistent(dir.path(), clock.clone());
    let d = a
        .create(&with_policy("(on_reboot restart)"), None)
        .unwrap_or_else(|e| panic!("{e}"));
    a.shutdown(d, ShutdownReason::Reboot)
        .unwrap_or_else(|e| panic!("{e}"));
    let first = b.refresh().unwrap_or_else(|e| panic!("{e}"));
    let second = a.refresh().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(first.len() + second.len(), 1);
}

#[test]
fn a_policy_claim_left_by_a_dead_process_is_taken_over() {
    use domus::store::{Intent, OpKind, Owner, SourceKind, Store};
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let clock = ManualClock::new(T0);
    let (_, engine) = persistent(dir.path(), clock.clone());
    let d = engine
        .create(&with_policy("(on_crash restart)"), None)
        .unwrap_or_else(|e| panic!("{e}"));
    type_line(&engine, d, "crash");
    // Another process claimed this shutdown; plant its claim.
    let store = Store::open(dir.path(), "sim").unwrap_or_else(|e| panic!("{e}"));
    let claim = |owner: Owner| {
        store
            .write(|tx| {
                let mut rec = tx
                    .record_by_domid(d)?
                    .unwrap_or_else(|| panic!("no record"));
                rec.handled_shutdown = Some(d);
                tx.put_record(&rec)?;
                tx.insert_intent(&Intent {
                    id: 0,
                    op: OpKind::Policy,
                    uuid: Some(rec.uuid),
                    name: Some(rec.name.clone()),
                    domid: Some(d),
                    stage: "started".into(),
                    owner,
                    started_ns: T0,
                    detail: None,
                })
            })
            .unwrap_or_else(|e| panic!("{e}"))
    };
    // While its owner lives, the claim is respected, however old.
    let live = claim(Owner::me(SourceKind::Supervisor));
    clock.advance_secs(600.0);
    assert!(
        engine.refresh().unwrap_or_default().is_empty(),
        "a live owner's claim is respected"
    );
    store
        .write(|tx| tx.delete_intent(live))
        .unwrap_or_else(|e| panic!("{e}"));
    // A dead owner's claim is taken over at once.
    let mut child = std::process::Command::new("true")
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let pid = child.id();
    let start = domus::store::start_time(pid).unwrap_or(1);
    let _ = child.wait();
    claim(Owner {
        pid,
        start,
        kind: SourceKind::Supervisor,
    });
    let events = engine.refresh().unwrap_or_else(|e| panic!("{e}"));
    assert!(
        matches!(
            events.first().map(|e| &e.outcome),
            Some(PolicyOutcome::Restarted { .. })
        ),
        "{events:?}"
    );
    // A preserved domain is not mistaken for an abandoned claim later.
    let p = engine
        .create(
            &config("(vm (name keep) (on_crash preserve) (image (linux (kernel /k))))"),
            None,
        )
        .unwrap_or_else(|e| panic!("{e}"));
    type_line(&engine, p, "crash");
    assert_eq!(engine.refresh().unwrap_or_default().len(), 1);
    clock.advance_secs(120.0);
    assert!(engine.refresh().unwrap_or_default().is_empty());
}

#[test]
fn arrow_keys_are_not_echoed_as_text() {
    let r = rig();
    let d = r
        .engine
        .create(&config(WEB1), None)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut stream = r.engine.console(d).unwrap_or_else(|e| panic!("{e}"));
    drain(&mut stream);
    stream
        .write(b"ec\x1b[A\x1b[Dho hi\r")
        .unwrap_or_else(|e| panic!("{e}"));
    let out = drain(&mut stream);
    assert!(out.contains("echo hi\r\nhi\r\n"), "{out:?}");
    assert!(!out.contains("[A"), "{out:?}");
}
