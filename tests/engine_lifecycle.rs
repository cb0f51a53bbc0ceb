//! Requests checked against the domain's state, policies on shutdown (with
//! the 20 s restart-loop guard on an injected clock), and the timeline.

mod common;

use common::*;
use domus::backend::{CallKind, Hypervisor, ShutdownReason};
use domus::config::{DeviceRef, DeviceSpec};
use domus::engine::{EngineError, PolicyOutcome};

#[test]
fn requests_that_do_not_fit_the_state_get_a_typed_error_and_no_backend_call() {
    let r = rig();
    let domid = r
        .engine
        .create(&config(WEB1), None)
        .unwrap_or_else(|e| panic!("{e}"));
    let unpauses = r.sim.call_count(CallKind::Unpause);
    let err = r.engine.unpause(domid).err();
    assert!(
        matches!(err, Some(EngineError::InvalidState { op: "unpause", .. })),
        "{err:?}"
    );
    assert_eq!(
        err.map(|e| e.to_string()).as_deref(),
        Some("cannot unpause web1: it is running")
    );
    assert_eq!(r.sim.call_count(CallKind::Unpause), unpauses);

    r.engine.pause(domid).unwrap_or_else(|e| panic!("{e}"));
    let pauses = r.sim.call_count(CallKind::Pause);
    assert!(matches!(
        r.engine.pause(domid),
        Err(EngineError::InvalidState { .. })
    ));
    assert!(matches!(
        r.engine.shutdown(domid, ShutdownReason::Poweroff),
        Err(EngineError::InvalidState { .. })
    ));
    assert_eq!(r.sim.call_count(CallKind::Pause), pauses);
    r.engine.unpause(domid).unwrap_or_else(|e| panic!("{e}"));

    assert!(matches!(r.engine.destroy(0), Err(EngineError::Domain0(_))));
    assert_eq!(r.sim.call_count(CallKind::Destroy), 0);
    assert!(matches!(
        r.engine.resolve("nosuch"),
        Err(EngineError::NoSuchDomain(_))
    ));
}

#[test]
fn attach_to_a_shut_down_domain_is_refused() {
    let r = rig();
    let domid = r
        .engine
        .create(&with_policy("(on_poweroff preserve)"), None)
        .unwrap_or_else(|e| panic!("{e}"));
    type_line(&r.engine, domid, "poweroff");
    r.engine.refresh().unwrap_or_else(|e| panic!("{e}"));
    let attaches = r.sim.call_count(CallKind::AttachDevice);
    let dev = DeviceSpec::Pci(domus::config::Pci {
        domain: 0,
        bus: 0,
        dev: 2,
        func: 0,
    });
    let err = r.engine.attach(domid, &dev).err().map(|e| e.to_string());
    assert_eq!(
        err.as_deref(),
        Some("cannot attach a device to pol: it is shut down")
    );
    assert_eq!(r.sim.call_count(CallKind::AttachDevice), attaches);
}

#[test]
fn paused_domains_accrue_no_cpu_time_running_ones_do() {
    let r = rig();
    let domid = r
        .engine
        .create(&config(WEB1), None)
        .unwrap_or_else(|e| panic!("{e}"));
    let t = |r: &Rig| r.sim.domain_info(domid).map(|i| i.cpu_time_ns).unwrap_or(0);
    let t0 = t(&r);
    r.clock.advance_secs(10.0);
    let t1 = t(&r);
    assert!(t1 > t0, "running domain must accrue CPU time");
    let per_vcpu = r
        .sim
        .domain_info(domid)
        .map(|i| i.vcpu_time_ns)
        .unwrap_or_default();
    assert_eq!(per_vcpu.len(), 2);
    assert_eq!(per_vcpu.iter().sum::<u64>(), t1);
    r.engine.pause(domid).unwrap_or_else(|e| panic!("{e}"));
    r.clock.advance_secs(10.0);
    assert_eq!(t(&r), t1, "paused domain must not accrue CPU time");
    r.engine.unpause(domid).unwrap_or_else(|e| panic!("{e}"));
    r.clock.advance_secs(10.0);
    assert!(t(&r) > t1);
}

fn shut(r: &Rig, domid: u32, how: &str) -> domus::engine::PolicyEvent {
    match how {
        "guest-poweroff" => {
            type_line(&r.engine, domid, "poweroff");
        }
        "guest-crash" => {
            type_line(&r.engine, domid, "crash");
        }
        "guest-reboot" => {
            type_line(&r.engine, domid, "reboot");
        }
        "host-poweroff" => r
            .engine
            .shutdown(domid, ShutdownReason::Poweroff)
            .unwrap_or_else(|e| panic!("{e}")),
        "host-reboot" => r
            .engine
            .shutdown(domid, ShutdownReason::Reboot)
            .unwrap_or_else(|e| panic!("{e}")),
        "host-suspend" => r
            .engine
            .shutdown(domid, ShutdownReason::Suspend)
            .unwrap_or_else(|e| panic!("{e}")),
        other => panic!("{other}"),
    }
    let events = r.engine.refresh().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(
        r.engine.refresh().unwrap_or_default().is_empty(),
        "a shutdown is handled once"
    );
    events
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("no event"))
}

#[test]
fn destroy_and_preserve() {
    let r = rig();
    let d = r
        .engine
        .create(&with_policy(""), None)
        .unwrap_or_else(|e| panic!("{e}"));
    let ev = shut(&r, d, "guest-poweroff");
    assert_eq!(
        ev.outcome,
        PolicyOutcome::Destroyed,
        "xl's default on_poweroff is destroy"
    );
    assert_eq!(names(&r.sim), ["Domain-0"]);

    let d = r
        .engine
        .create(&with_policy("(on_crash preserve)"), None)
        .unwrap_or_else(|e| panic!("{e}"));
    let ev = shut(&r, d, "guest-crash");
    assert_eq!(ev.outcome, PolicyOutcome::Preserved);
    let info = r.sim.domain_info(d).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(info.state_string(), "---sc-");

    let d2 = r
        .engine
        .create(&config("(vm (name s) (image (linux (kernel /k))))"), None)
        .unwrap_or_else(|e| panic!("{e}"));
    let ev = shut(&r, d2, "host-suspend");
    assert_eq!(
        ev.outcome,
        PolicyOutcome::Preserved,
        "suspend waits for save"
    );
}

#[test]
fn restart_gives_a_new_domid_keeps_uuid_and_devices_and_logs_the_timeline() {
    let r = rig();
    let d = r
        .engine
        .create(&with_policy(""), None)
        .unwrap_or_else(|e| panic!("{e}"));
    let uuid = r.sim.domain_info(d).map(|i| i.uuid).unwrap_or_default();
    let ev = shut(&r, d, "guest-reboot");
    let PolicyOutcome::Restarted { new_domid } = ev.outcome else {
        panic!("xl's default on_reboot is restart: {ev:?}");
    };
    assert!(new_domid > d, "domids only grow");
    let info = r
        .sim
        .domain_info(new_domid)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(info.uuid, uuid);
    assert!(info.is_active());
    assert_eq!(info.devices.len(), 1);
    let events = timeline(&r.engine, uuid);
    let expected = [
        "created (linux, 128 MiB, 1 vCPU)",
        "device attached: vbd xvda file:/srv/pol.img (w)",
        "shut down (reboot)",
        "on_reboot policy applied: restart",
        "destroyed",
        &format!("restarted as domain {new_domid}"),
        "created (linux, 128 MiB, 1 vCPU)",
        "device attached: vbd xvda file:/srv/pol.img (w)",
    ];
    assert_eq!(events, expected);
}

#[test]
fn a_second_restart_within_20_seconds_is_refused() {
    let r = rig();
    let d = r
        .engine
        .create(&with_policy("(on_crash restart)"), None)
        .unwrap_or_else(|e| panic!("{e}"));
    let ev = shut(&r, d, "guest-crash");
    let PolicyOutcome::Restarted { new_domid } = ev.outcome else {
        panic!("{ev:?}")
    };

    // Crashing again 25 s later is fine.
    r.clock.advance_secs(25.0);
    let ev = shut(&r, new_domid, "guest-crash");
    let PolicyOutcome::Restarted { new_domid: third } = ev.outcome else {
        panic!("{ev:?}")
    };

    // But 5 s after that restart it is a loop: refused and destroyed.
    r.clock.advance_secs(5.0);
    let ev = shut(&r, third, "guest-crash");
    assert_eq!(
        ev.outcome,
        PolicyOutcome::RestartRefused {
            seconds_since_last: 5.0
        }
    );
    assert!(
        ev.to_string()
            .contains("restart refused, last restart 5.0 s ago (< 20 s); destroyed"),
        "{ev}"
    );
    assert_eq!(names(&r.sim), ["Domain-0"]);
    let gone = r.engine.gone(1).unwrap_or_default();
    let timeline: Vec<String> = gone
        .first()
        .map(|x| timeline(&r.engine, x.uuid))
        .unwrap_or_default();
    assert!(
        timeline
            .iter()
            .any(|e| e.starts_with("restart refused: last restart was 5.0 s ago")),
        "{timeline:?}"
    );
}

#[test]
fn rename_restart_keeps_the_old_domain_under_a_new_name() {
    let r = rig();
    let d = r
        .engine
        .create(&with_policy("(on_crash rename-restart)"), None)
        .unwrap_or_else(|e| panic!("{e}"));
    let ev = shut(&r, d, "guest-crash");
    let PolicyOutcome::Restarted { new_domid } = ev.outcome else {
        panic!("{ev:?}")
    };
    let old = r.sim.domain_info(d).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(old.name, format!("pol-{d}"));
    assert_eq!(old.state_string(), "---sc-");
    let new = r
        .sim
        .domain_info(new_domid)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(new.name, "pol");
    assert_ne!(new.uuid, old.uuid);
}

#[test]
fn coredump_policies_write_a_core_file() {
    let r = rig();
    let d = r
        .engine
        .create(&with_policy("(on_crash coredump-destroy)"), None)
        .unwrap_or_else(|e| panic!("{e}"));
    let ev = shut(&r, d, "guest-crash");
    assert_eq!(ev.outcome, PolicyOutcome::Destroyed);
    let dump = ev.core_dump.unwrap_or_else(|| panic!("no core dump"));
    assert!(dump.starts_with(r.dumps.path()));
    let text = std::fs::read_to_string(&dump).unwrap_or_default();
    assert!(text.contains("name: pol"), "{text}");

    let d = r
        .engine
        .create(&with_policy("(on_crash coredump-restart)"), None)
        .unwrap_or_else(|e| panic!("{e}"));
    let ev = shut(&r, d, "guest-crash");
    assert!(
        matches!(ev.outcome, PolicyOutcome::Restarted { .. }),
        "{ev:?}"
    );
    assert!(ev.core_dump.is_some_and(|p| p.exists()));
}

#[test]
fn host_requested_shutdowns_carry_their_reason() {
    let r = rig();
    let d = r
        .engine
        .create(&with_policy("(on_poweroff preserve)"), None)
        .unwrap_or_else(|e| panic!("{e}"));
    r.engine
        .shutdown(d, ShutdownReason::Poweroff)
        .unwrap_or_else(|e| panic!("{e}"));
    let info = r.sim.domain_info(d).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(info.state_string(), "---s--");
    assert_eq!(info.shutdown_reason, Some(ShutdownReason::Poweroff));
    let events = r.engine.refresh().unwrap_or_default();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].outcome, PolicyOutcome::Preserved);
    let ev = shut(
        &r,
        r.engine
            .create(
                &config("(vm (name rb) (on_reboot destroy) (image (linux (kernel /k))))"),
                None,
            )
            .unwrap_or_else(|e| panic!("{e}")),
        "host-reboot",
    );
    assert_eq!(ev.reason, ShutdownReason::Reboot);
    assert_eq!(ev.outcome, PolicyOutcome::Destroyed);
}

#[test]
fn hot_plugged_devices_show_in_the_guest_and_survive_a_restart() {
    let r = rig();
    let d = r
        .engine
        .create(&with_policy("(on_crash restart)"), None)
        .unwrap_or_else(|e| panic!("{e}"));
    let out = type_line(&r.engine, d, "cat /proc/partitions");
    assert!(out.contains(" 202        0    8388608 xvda"), "{out}");
    assert!(!out.contains("xvdb"));
    let vbd = domus::config::device_args::parse_device_args(
        "vbd",
        &["file:/srv/extra.img".into(), "xvdb".into(), "r".into()],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    r.engine.attach(d, &vbd).unwrap_or_else(|e| panic!("{e}"));
    let vif = r
        .engine
        .attach(
            d,
            &DeviceSpec::Vif(domus::config::Vif {
                mac: None,
                bridge: None,
                ip: None,
                extra: Vec::new(),
            }),
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let DeviceSpec::Vif(v) = &vif else {
        panic!("{vif:?}")
    };
    let mac = v.mac.unwrap_or_else(|| panic!("a fresh MAC is assigned"));
    assert_eq!(mac.to_string()[..8], *"00:16:3e");
    let out = type_line(&r.engine, d, "cat /proc/partitions");
    assert!(out.contains(" 202       16    8388608 xvdb"), "{out}");
    let out = type_line(&r.engine, d, "ip link");
    assert!(out.contains(&format!("link/ether {mac}")), "{out}");

    let ev = shut(&r, d, "guest-crash");
    let PolicyOutcome::Restarted { new_domid } = ev.outcome else {
        panic!("{ev:?}")
    };
    let out = type_line(&r.engine, new_domid, "cat /proc/partitions");
    assert!(
        out.contains("xvdb"),
        "the restarted domain keeps hot-plugged devices: {out}"
    );

    r.engine
        .detach(new_domid, &DeviceRef::Vbd("xvdb".into()))
        .unwrap_or_else(|e| panic!("{e}"));
    let out = type_line(&r.engine, new_domid, "cat /proc/partitions");
    assert!(!out.contains("xvdb"), "{out}");
}

#[test]
fn memory_target_and_save_restore() {
    let r = rig();
    let d = r
        .engine
        .create(&config(WEB1), None)
        .unwrap_or_else(|e| panic!("{e}"));
    r.engine
        .set_memory_target(d, 128)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        r.sim.domain_info(d).map(|i| i.memory_kib).unwrap_or(0),
        128 * 1024
    );
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let file = dir.path().join("web1.save");
    let free = free_kib(&r.sim);
    r.engine.save(d, &file).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(names(&r.sim), ["Domain-0"]);
    assert!(free_kib(&r.sim) > free);
    let back = r.engine.restore(&file).unwrap_or_else(|e| panic!("{e}"));
    assert!(back > d);
    let view = r.engine.view(back).unwrap_or_else(|e| panic!("{e}"));
    assert!(view.info.is_active());
    assert_eq!(view.config().map(|c| c.name.as_str()), Some("web1"));
}

#[test]
fn a_suspended_domain_can_be_saved_and_restored() {
    let r = rig();
    let d = r
        .engine
        .create(&config(WEB1), None)
        .unwrap_or_else(|e| panic!("{e}"));
    r.engine
        .shutdown(d, ShutdownReason::Suspend)
        .unwrap_or_else(|e| panic!("{e}"));
    r.engine.refresh().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        r.sim
            .domain_info(d)
            .map(|i| i.state_string())
            .unwrap_or_default(),
        "---ss-"
    );
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let file = dir.path().join("suspended.save");
    r.engine
        .save(d, &file)
        .unwrap_or_else(|e| panic!("a suspended domain must be saveable: {e}"));
    let back = r.engine.restore(&file).unwrap_or_else(|e| panic!("{e}"));
    let info = r.sim.domain_info(back).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        info.is_active(),
        "restored guest runs again: {}",
        info.state_string()
    );
}

#[test]
fn a_fresh_build_does_not_inherit_the_restart_loop_guard() {
    let r = rig();
    let text = "(vm (name u) (uuid 6a0e6c0e-4f4c-4c79-9d3f-1f1f3a7c2b11) (on_crash restart) (image (linux (kernel /k))))";
    let d = r
        .engine
        .create(&config(text), None)
        .unwrap_or_else(|e| panic!("{e}"));
    type_line(&r.engine, d, "crash");
    let ev = r.engine.refresh().unwrap_or_default();
    let Some(PolicyOutcome::Restarted { new_domid }) = ev.first().map(|e| e.outcome.clone()) else {
        panic!("{ev:?}")
    };
    r.engine
        .destroy(new_domid)
        .unwrap_or_else(|e| panic!("{e}"));
    // Built again by hand a moment later: its first crash restarts it.
    r.clock.advance_secs(2.0);
    let d = r
        .engine
        .create(&config(text), None)
        .unwrap_or_else(|e| panic!("{e}"));
    type_line(&r.engine, d, "crash");
    let ev = r.engine.refresh().unwrap_or_default();
    assert!(
        matches!(
            ev.first().map(|e| &e.outcome),
            Some(PolicyOutcome::Restarted { .. })
        ),
        "{ev:?}"
    );
}

#[test]
fn watchdog_and_crash_name_the_field_that_applied() {
    let (field, policy) = domus::engine::policy_for(
        &with_policy("(on_crash preserve)"),
        ShutdownReason::Watchdog,
    );
    assert_eq!(
        (field, policy),
        ("on_crash", domus::config::Policy::Preserve)
    );
    let (field, _) = domus::engine::policy_for(&with_policy(""), ShutdownReason::SoftReset);
    assert_eq!(field, "on_reboot");
}

/// An attach of what the domain already has (its own MAC, the same disk
/// writable twice, a disk name twice) is refused before anything is
/// recorded: the stored config stays readable and whole (it once got the
/// MAC twice, became unreadable, and a later attach replaced it with a
/// stand-in that had lost the kernel and the policies).
#[test]
fn attaching_what_the_domain_already_has_leaves_its_record_whole() {
    let r = rig();
    let cfg = config(
        "(vm (name keep) (memory 64) (image (linux (kernel /k)))
           (device (vbd (uname file:/srv/keep.img) (dev xvda) (mode w)))
           (device (vif (mac 00:16:3e:00:00:42)))
           (on_poweroff preserve))",
    );
    let d = r
        .engine
        .create(&cfg, None)
        .unwrap_or_else(|e| panic!("{e}"));
    let dup = |args: &[&str]| {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        domus::config::device_args::parse_device_args(&args[0], &args[1..])
            .unwrap_or_else(|e| panic!("{e}"))
    };
    for dev in [
        dup(&["vif", "mac=00:16:3e:00:00:42"]),
        dup(&["vbd", "file:/srv/keep.img", "xvdc", "w"]),
        dup(&["vbd", "file:/srv/other.img", "xvda", "r"]),
    ] {
        let err = r
            .engine
            .attach(d, &dev)
            .map(|_| ())
            .unwrap_err()
            .to_string();
        assert!(err.contains("keep already has"), "{dev}: {err}");
    }
    // A fine attach afterwards keeps everything the config said.
    r.engine
        .attach(d, &dup(&["vbd", "file:/srv/data.img", "xvdb", "r"]))
        .unwrap_or_else(|e| panic!("{e}"));
    let view = r.engine.view(d).unwrap_or_else(|e| panic!("{e}"));
    let rec = view.record.unwrap_or_else(|| panic!("no record"));
    assert!(rec.note.is_none(), "{:?}", rec.note);
    assert_eq!(rec.config.image.boot().kernel.as_deref(), Some("/k"));
    assert_eq!(
        rec.config.on_poweroff,
        Some(domus::config::Policy::Preserve)
    );
    assert_eq!(rec.config.devices.len(), 3, "{:?}", rec.config.devices);
}
