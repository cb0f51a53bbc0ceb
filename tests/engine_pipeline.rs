//! The construction pipeline: a fault at every stage leaves no domain and
//! no memory behind, and the error names the stage.

mod common;

use common::*;
use domus::backend::{CallKind, Hypervisor};
use domus::engine::{EngineError, Stage};

const HVM: &str = "(vm (name win1) (memory 256) (cpu_weight 300)
    (image (hvm (vnc 1)))
    (device (vbd (uname file:/srv/win1.img) (dev hda) (mode w))))";

fn assert_clean(r: &Rig, free_before: u64) {
    assert_eq!(
        names(&r.sim),
        ["Domain-0"],
        "a partial domain was left behind"
    );
    assert_eq!(free_kib(&r.sim), free_before, "memory leaked");
    let views = r.engine.domains().unwrap_or_else(|e| panic!("{e}"));
    assert!(
        views.iter().all(|v| v.record.is_none()),
        "a record was left behind"
    );
}

#[test]
fn successful_build_runs_every_stage() {
    let r = rig();
    let free = free_kib(&r.sim);
    let domid = r
        .engine
        .create(&config(WEB1), None)
        .unwrap_or_else(|e| panic!("{e}"));
    let info = r.sim.domain_info(domid).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        info.is_active(),
        "built domain should run: {}",
        info.state_string()
    );
    assert_eq!(info.devices.len(), 3);
    assert_eq!(free_kib(&r.sim), free - 256 * 1024);
    for call in [
        CallKind::CreateDomain,
        CallKind::SetMaxMemory,
        CallKind::BuildImage,
        CallKind::SetCpuWeight,
        CallKind::PinVcpu,
        CallKind::Unpause,
    ] {
        assert_eq!(r.sim.call_count(call), 1, "{call}");
    }
    assert_eq!(r.sim.call_count(CallKind::AttachDevice), 3);
}

/// Each backend call the pipeline makes, the stage it belongs to, and the config to build.
#[test]
fn a_fault_at_every_stage_rolls_back() {
    let cases: [(CallKind, u64, Stage, &str); 10] = [
        (CallKind::List, 1, Stage::Validate, WEB1),
        (CallKind::HostInfo, 1, Stage::CheckResources, WEB1),
        (CallKind::CreateDomain, 1, Stage::CreateDomain, WEB1),
        (CallKind::SetMaxMemory, 1, Stage::CreateDomain, WEB1),
        (CallKind::BuildImage, 1, Stage::BuildImage, WEB1),
        (CallKind::AttachDevice, 2, Stage::CreateDevices, WEB1),
        (CallKind::StartDeviceModel, 1, Stage::DeviceModel, HVM),
        (CallKind::SetCpuWeight, 1, Stage::ConfigureFields, WEB1),
        (CallKind::PinVcpu, 1, Stage::ConfigureFields, WEB1),
        (CallKind::Unpause, 1, Stage::Unpause, WEB1),
    ];
    for (call, nth, stage, text) in cases {
        let r = rig();
        let free = free_kib(&r.sim);
        r.sim.fail_nth(call, nth);
        let err = match r.engine.create(&config(text), None) {
            Ok(d) => panic!("{call}: build should fail, got domain {d}"),
            Err(e) => e,
        };
        assert_eq!(err.stage(), Some(stage), "{call}: {err}");
        let msg = err.to_string();
        assert!(msg.contains(&format!("at stage '{stage}'")), "{msg}");
        assert!(msg.contains("injected fault"), "{msg}");
        if stage >= Stage::BuildImage || call == CallKind::SetMaxMemory {
            assert!(
                msg.contains("partial domain") && msg.contains("destroyed"),
                "{msg}"
            );
        }
        assert_clean(&r, free);
        // And the engine still works afterwards.
        r.engine
            .create(&config(text), None)
            .unwrap_or_else(|e| panic!("{call}: rebuild: {e}"));
    }
}

#[test]
fn validation_failures_touch_nothing() {
    let r = rig();
    let free = free_kib(&r.sim);
    // The parser rejects this combination too; the engine checks typed
    // configs from any source.
    let mut driver = config(
        "(vm (name drv) (image (linux (kernel /k))) (device (vbd (uname phy:/dev/sdb) (dev xvda))))",
    );
    driver.backends.push(domus::config::BackendRole::Blkif);
    let err = r.engine.create(&driver, None).err().map(|e| e.to_string());
    assert_eq!(
        err.as_deref(),
        Some("building drv failed at stage 'validate': vbd: vbd in blkif backend domain")
    );
    assert_eq!(r.sim.call_count(CallKind::CreateDomain), 0);
    assert_clean(&r, free);

    r.engine
        .create(&config(WEB1), None)
        .unwrap_or_else(|e| panic!("{e}"));
    let dup = r
        .engine
        .create(&config(WEB1), None)
        .err()
        .map(|e| e.to_string());
    assert_eq!(
        dup.as_deref(),
        Some("building web1 failed at stage 'validate': a domain named web1 already exists (id 1)")
    );
}

#[test]
fn a_build_that_does_not_fit_fails_at_check_resources() {
    let r = rig();
    let free = free_kib(&r.sim);
    let huge = config("(vm (name huge) (memory 15000) (image (linux (kernel /k))))");
    let err = r.engine.create(&huge, None).err().map(|e| e.to_string());
    assert_eq!(
        err.as_deref(),
        Some(
            "building huge failed at stage 'check resources': not enough free memory: huge needs 15000 MiB, the host has 14336 MiB free"
        )
    );
    assert_eq!(r.sim.call_count(CallKind::CreateDomain), 0);
    assert_clean(&r, free);
    let bad_cpu = config("(vm (name pin) (cpu 9) (image (linux (kernel /k))))");
    let err = r.engine.create(&bad_cpu, None).err();
    assert!(
        matches!(
            err,
            Some(EngineError::Construct {
                stage: Stage::CheckResources,
                ..
            })
        ),
        "{err:?}"
    );
}

#[test]
fn hvm_domains_reserve_page_table_memory() {
    let r = rig();
    let free = free_kib(&r.sim);
    r.engine
        .create(&config(HVM), None)
        .unwrap_or_else(|e| panic!("{e}"));
    // (1 + ((256 + 3) >> 2)) * 4 KiB of page tables on top of 256 MiB.
    assert_eq!(free - free_kib(&r.sim), 256 * 1024 + 260);
}

#[test]
fn destroy_releases_devices_and_memory() {
    let r = rig();
    let free = free_kib(&r.sim);
    let domid = r
        .engine
        .create(&config(WEB1), None)
        .unwrap_or_else(|e| panic!("{e}"));
    r.engine.destroy(domid).unwrap_or_else(|e| panic!("{e}"));
    // As `xl destroy` (and xend's forced release): the devices go with the
    // domain, no unplug asks a guest that may never answer.
    assert_eq!(r.sim.call_count(CallKind::DetachDevice), 0);
    assert_eq!(free_kib(&r.sim), free);
    assert_eq!(names(&r.sim), ["Domain-0"]);
    let gone = r.engine.gone(10).unwrap_or_else(|e| panic!("{e}"));
    let last = gone
        .first()
        .and_then(|rec| timeline(&r.engine, rec.uuid).pop());
    assert_eq!(last.as_deref(), Some("destroyed"));
    // Its disks, MACs and PCI functions are free for the next domain.
    r.engine
        .create(&config(WEB1), None)
        .unwrap_or_else(|e| panic!("the same devices again: {e}"));
}
