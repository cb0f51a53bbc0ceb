//! QEMU-only behaviour, on real guests (TCG where the CPU has no vmx/svm,
//! said loudly): the supervisor applies on_crash with no other domus
//! running, one console viewer at a time, re-discovery by a new domus
//! process (devices included, stale directories cleaned), and failed
//! builds that leave no QEMU behind.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::guests::*;
use domus::backend::{Hypervisor, ReadOutcome, ShutdownReason};
use domus::config::parse_str;
use domus::engine::{DomainEvent, EngineError, Stage};

fn parse(text: &str) -> domus::config::DomainConfig {
    parse_str(text, "test")
        .map(|(c, _)| c)
        .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn a_guest_panic_is_a_crash_and_on_crash_restart_gives_a_new_domid_and_a_reboot_is_graceful() {
    let rig = qemu_rig();
    let config = parse(&guest_config("crashy", "(on_crash restart)"));
    let domid = rig
        .engine
        .create(&config, None)
        .unwrap_or_else(|e| panic!("{e}"));
    wait_for_shell(&rig.engine, domid);

    // One process at a time on a console; another hears who holds it.
    let first = rig.engine.console(domid).unwrap_or_else(|e| panic!("{e}"));
    let also_here = rig.engine.console(domid);
    assert!(
        also_here.is_ok(),
        "a second stream in the same process (the TUI's writer) shares it"
    );
    let other = Command::new(env!("CARGO_BIN_EXE_domus"))
        .args(["--backend", "qemu", "--state-dir"])
        .arg(rig.state())
        .arg("--runtime-dir")
        .arg(rig.runtime())
        .args(["console", "crashy"])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let said = String::from_utf8_lossy(&other.stderr);
    let pid = std::process::id().to_string();
    assert!(!other.status.success(), "{said}");
    assert!(
        said.contains("in use by PID") && said.contains(&pid),
        "{said}"
    );
    drop(also_here);
    drop(first);

    let said = console_until(
        &rig.engine,
        domid,
        Some("echo c > /proc/sysrq-trigger"),
        10,
        |t| t.contains("Kernel panic"),
    );
    assert!(
        said.contains("Kernel panic"),
        "the guest did not panic: {said:?}"
    );
    // No refresh here: the domain's supervisor process applies the policy.
    let new = wait_for("the supervisor to restart the crashed guest", 60, || {
        // Listed as soon as it is being built; done once the engine has
        // its record and it runs.
        list(rig.hv.as_ref())
            .into_iter()
            .find(|d| d.name == "crashy" && d.domid != domid && d.is_active())
            .filter(|d| rig.engine.view(d.domid).is_ok_and(|v| v.record.is_some()))
    });
    let restarted = Instant::now();
    assert!(new.domid > domid, "domids only grow");
    assert!(
        rig.hv.domain_info(domid).is_err(),
        "the crashed QEMU is gone"
    );
    let rec = rig
        .engine
        .view(new.domid)
        .ok()
        .and_then(|v| v.record)
        .unwrap_or_else(|| panic!("no record for the restarted domain"));
    let tl = rig.engine.timeline(rec.uuid).unwrap_or_default();
    assert!(
        tl.iter().any(|e| matches!(
            e.event,
            DomainEvent::ShutDown {
                reason: ShutdownReason::Crash
            }
        )),
        "{tl:?}"
    );
    wait_for_shell(&rig.engine, new.domid);

    // A reboot the operator asks for is graceful, as `xl reboot` is: the
    // guest powers itself off (its kernel says so; a reset would not) and
    // on_reboot (restart, xl's default) builds it again. Past xend's
    // restart-loop guard first, or the restart would be refused.
    let guard = Duration::from_secs(domus::engine::MIN_RESTART_INTERVAL_SECS + 1);
    std::thread::sleep(guard.saturating_sub(restarted.elapsed()));
    let mut stream = rig
        .engine
        .console(new.domid)
        .unwrap_or_else(|e| panic!("console: {e}"));
    let mut buf = [0u8; 8192];
    while let Ok(ReadOutcome::Data(_)) = stream.read(&mut buf, Duration::from_millis(50)) {}
    rig.engine
        .shutdown(new.domid, ShutdownReason::Reboot)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut said = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline && !String::from_utf8_lossy(&said).contains("Power down") {
        match stream.read(&mut buf, Duration::from_millis(100)) {
            Ok(ReadOutcome::Data(n)) => said.extend_from_slice(&buf[..n]),
            Ok(ReadOutcome::Idle) => {}
            Ok(ReadOutcome::Closed) | Err(_) => break,
        }
    }
    drop(stream);
    let said = String::from_utf8_lossy(&said);
    assert!(
        said.contains("reboot: Power down"),
        "the guest did not shut itself down: {said:?}"
    );
    let third = wait_for("on_reboot to build the guest again", 60, || {
        list(rig.hv.as_ref())
            .into_iter()
            .find(|d| d.name == "crashy" && d.domid > new.domid && d.is_active())
            .filter(|d| rig.engine.view(d.domid).is_ok_and(|v| v.record.is_some()))
    });
    let rec = rig
        .engine
        .view(third.domid)
        .ok()
        .and_then(|v| v.record)
        .unwrap_or_else(|| panic!("no record for the rebooted domain"));
    let tl = rig.engine.timeline(rec.uuid).unwrap_or_default();
    assert!(
        tl.iter().any(|e| matches!(
            e.event,
            DomainEvent::ShutDown {
                reason: ShutdownReason::Reboot
            }
        )),
        "a requested reboot is reason reboot: {tl:?}"
    );
    wait_for_shell(&rig.engine, third.domid);
    rig.engine
        .destroy(third.domid)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(qemu_processes_under(&rig.runtime()).is_empty());
}

struct KillOnDrop(std::path::PathBuf);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        kill_qemus_under(&self.0);
    }
}

fn domus(root: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_domus"));
    c.args(["--backend", "qemu", "--state-dir"])
        .arg(root.join("state"))
        .arg("--runtime-dir")
        .arg(root.join("run"));
    c
}

fn out(c: &mut Command) -> (bool, String, String) {
    let o = c.output().unwrap_or_else(|e| panic!("running domus: {e}"));
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn a_new_domus_process_rediscovers_running_domains_and_cleans_stale_ones() {
    announce_accel();
    let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let _cleanup = KillOnDrop(root.path().join("run"));
    let img = root.path().join("disk.img");
    make_image(&img, "raw", "8M");
    let cfg = root.path().join("keep.sxp");
    std::fs::write(
        &cfg,
        guest_config(
            "keep",
            &format!(
                "(device (vbd (uname file:{}) (dev xvda) (mode w)))",
                img.display()
            ),
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let (ok, _, err) = out(domus(root.path()).arg("create").arg(&cfg));
    assert!(ok, "create: {err}");
    let (ok, _, err) = out(domus(root.path()).args(["attach", "keep", "vif"]));
    assert!(ok, "attach: {err}");

    // Its supervisor dies: the next domus restarts it (and says so).
    let domdir = std::fs::read_dir(root.path().join("run"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.is_dir())
        .unwrap_or_else(|| panic!("no domain directory"));
    let sup: i32 = std::fs::read_to_string(domdir.join("supervisor.pid"))
        .ok()
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("no supervisor pid"));
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(sup), nix::sys::signal::SIGKILL);
    wait_for("the supervisor to die", 10, || {
        (!Path::new(&format!("/proc/{sup}")).exists()
            || std::fs::read_to_string(format!("/proc/{sup}/stat"))
                .is_ok_and(|s| s.contains(") Z")))
        .then_some(())
    });

    // Another domus process (a restarted TUI) finds it with its devices.
    let (engine, hv) = qemu_engine(root.path());
    let notes = domus::backend::Hypervisor::startup_notes(hv.as_ref());
    assert!(
        notes
            .iter()
            .any(|n| n.contains("restarted the supervisor of keep")),
        "{notes:?}"
    );
    let report = engine.recreate().unwrap_or_else(|e| panic!("{e}"));
    assert!(report.vanished.is_empty(), "{report:?}");
    let keep = list(hv.as_ref())
        .into_iter()
        .find(|d| d.name == "keep")
        .unwrap_or_else(|| panic!("keep was not re-discovered"));
    let names: Vec<String> = keep.devices.iter().map(ToString::to_string).collect();
    assert!(names.iter().any(|d| d.starts_with("vbd xvda")), "{names:?}");
    assert!(names.iter().any(|d| d.starts_with("vif ")), "{names:?}");
    assert!(
        keep.notes
            .iter()
            .any(|n| n.contains("user-mode networking")),
        "the vif's user-mode networking is said: {:?}",
        keep.notes
    );
    wait_for_shell(&engine, keep.domid);
    assert_eq!(partitions(&engine, keep.domid).len(), 1);
    assert!(
        engine
            .view(keep.domid)
            .ok()
            .and_then(|v| v.record)
            .is_some_and(|r| r.source.is_some()),
        "the record (and its config source) carries over"
    );
    drop(engine);
    drop(hv);

    // The domain's QEMU dies behind domus's back: the next domus says so
    // and removes the stale directory.
    let dir = root.path().join("run").join(keep.domid.to_string());
    let pid: i32 = std::fs::read_to_string(dir.join("qemu.pid"))
        .ok()
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("no pidfile"));
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL);
    wait_for("QEMU to die", 10, || {
        qemu_processes_under(&root.path().join("run"))
            .is_empty()
            .then_some(())
    });
    let (ok, stdout, stderr) = out(domus(root.path()).arg("list"));
    assert!(ok, "{stderr}");
    assert!(
        stderr.contains("its QEMU is no longer running"),
        "the cleaned directory is reported: {stderr}"
    );
    assert!(!stdout.contains("keep"), "{stdout}");
    assert!(!dir.exists(), "the stale directory is gone");

    // The journal says it vanished, and why, whoever noticed first (its
    // supervisor, which saw QEMU's monitor close, or that `list`).
    let (ok, events, err) = out(domus(root.path()).args(["events", "--json", "keep"]));
    assert!(ok, "{err}");
    let vanished = events
        .lines()
        .filter_map(|l| serde_json::from_str::<domus::engine::JournalEntry>(l).ok())
        .find(|e| matches!(e.event, DomainEvent::Vanished { .. }))
        .unwrap_or_else(|| panic!("no vanished event: {events}"));
    assert_eq!(vanished.source.kind, domus::engine::SourceKind::Hypervisor);
    assert!(
        vanished.event.to_string().contains("QEMU"),
        "the cause is said: {}",
        vanished.event
    );
    // Its console log outlives it: the boot banner is still there.
    let (ok, log, err) = out(domus(root.path()).args(["console", "--log", "keep"]));
    assert!(ok, "{err}");
    assert!(log.contains("domus test guest"), "{log}");
}

#[test]
fn failed_builds_leave_no_qemu_and_no_directory() {
    let rig = qemu_rig();
    // A missing kernel fails before QEMU starts.
    let missing =
        parse("(vm (name nokernel) (memory 128) (image (linux (kernel /nonexistent/vmlinux))))");
    let err = rig.engine.create(&missing, None).err();
    assert!(
        matches!(
            err,
            Some(EngineError::Construct {
                stage: Stage::BuildImage,
                ..
            })
        ),
        "{err:?}"
    );
    let msg = err.map(|e| e.to_string()).unwrap_or_default();
    assert!(
        msg.contains("/nonexistent/vmlinux"),
        "the path is named: {msg}"
    );

    // An unreadable disk fails after QEMU started: it must be stopped.
    let baddisk = parse(&guest_config(
        "baddisk",
        "(device (vbd (uname file:/nonexistent/disk.img) (dev xvda) (mode w)))",
    ));
    let err = rig.engine.create(&baddisk, None).err();
    assert!(
        matches!(
            err,
            Some(EngineError::Construct {
                stage: Stage::CreateDevices,
                ..
            })
        ),
        "{err:?}"
    );
    let msg = err.map(|e| e.to_string()).unwrap_or_default();
    assert!(msg.contains("/nonexistent/disk.img"), "{msg}");

    // plan9 has no QEMU image handler: a typed refusal naming the backend.
    let plan9 = parse("(vm (name p9) (memory 64) (image (plan9 (kernel /boot/9pc))))");
    let err = rig.engine.create(&plan9, None).err().map(|e| e.to_string());
    assert!(
        err.as_deref()
            .is_some_and(|m| m.contains("not supported by the qemu backend")),
        "{err:?}"
    );

    assert!(list(rig.hv.as_ref()).is_empty());
    assert!(
        qemu_processes_under(&rig.runtime()).is_empty(),
        "no QEMU left"
    );
    let dirs = std::fs::read_dir(rig.runtime())
        .map(|d| d.flatten().filter(|e| e.path().is_dir()).count())
        .unwrap_or(0);
    assert_eq!(dirs, 0, "no domain directory left");
}

#[test]
fn save_and_restore_keep_the_guest_and_its_disk() {
    let rig = qemu_rig();
    let img = rig.root.path().join("data.qcow2");
    make_image(&img, "qcow2", "16M");
    let config = parse(&guest_config("saver", "(on_poweroff destroy)"));
    let domid = rig
        .engine
        .create(&config, None)
        .unwrap_or_else(|e| panic!("{e}"));
    wait_for_shell(&rig.engine, domid);
    let disk = domus::config::device_args::parse_device_args(
        "vbd",
        &[format!("file:{}", img.display()), "xvdb".into(), "w".into()],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    rig.engine
        .attach(domid, &disk)
        .unwrap_or_else(|e| panic!("{e}"));
    wait_for("the disk in the guest", 20, || {
        (partitions(&rig.engine, domid).len() == 1).then_some(())
    });
    // A mark in guest memory that must survive the round trip.
    run(&rig.engine, domid, "echo kept-across-save > /tmp/mark");

    // An existing file is never overwritten, and the guest is not stopped.
    let taken = rig.root.path().join("taken.sav");
    std::fs::write(&taken, "precious").unwrap_or_else(|e| panic!("{e}"));
    let err = rig
        .engine
        .save(domid, &taken)
        .map(|()| "saved")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("exists; choose another name or remove it"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(&taken).ok().as_deref(),
        Some("precious")
    );
    assert!(
        rig.hv
            .domain_info(domid)
            .is_ok_and(|i| !i.flags.paused && !i.flags.shutdown),
        "the guest runs on"
    );

    let file = rig.root.path().join("saver.sav");
    rig.engine
        .save(domid, &file)
        .unwrap_or_else(|e| panic!("save: {e}"));
    assert!(
        rig.hv.domain_info(domid).is_err(),
        "the saved domain is gone"
    );
    assert!(
        qemu_processes_under(&rig.runtime()).is_empty(),
        "its QEMU too"
    );
    assert!(std::fs::metadata(&file).is_ok_and(|m| m.len() > 1 << 20));
    assert_eq!(
        std::fs::metadata(&file)
            .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777)
            .ok(),
        Some(0o600),
        "the image holds guest memory: owner-only"
    );

    let new = rig
        .engine
        .restore(&file)
        .unwrap_or_else(|e| panic!("restore: {e}"));
    assert_ne!(new, domid);
    let info = rig.hv.domain_info(new).unwrap_or_else(|e| panic!("{e}"));
    assert!(info.is_active(), "{}", info.state_string());
    assert_eq!(info.name, "saver");
    assert!(
        info.devices
            .iter()
            .any(|d| d.to_string().starts_with("vbd xvdb"))
    );
    let mark = run(&rig.engine, new, "cat /tmp/mark");
    assert!(mark.contains("kept-across-save"), "{mark:?}");
    assert_eq!(partitions(&rig.engine, new).len(), 1, "the disk came back");
    rig.engine.destroy(new).unwrap_or_else(|e| panic!("{e}"));
}

/// A shutdown sent while the guest is still booting (before it listens
/// for the power button) is not lost: the supervisor presses the button
/// again until the guest answers.
#[test]
fn a_shutdown_sent_during_boot_is_honoured() {
    announce_accel();
    let rig = qemu_rig();
    let cfg = parse(&guest_config("early", "(on_poweroff destroy)"));
    let domid = rig
        .engine
        .create(&cfg, None)
        .unwrap_or_else(|e| panic!("{e}"));
    let uuid = rig
        .hv
        .domain_info(domid)
        .map(|i| i.uuid)
        .unwrap_or_default();
    // At once: the kernel has not even started its ACPI driver.
    rig.engine
        .shutdown(domid, ShutdownReason::Poweroff)
        .unwrap_or_else(|e| panic!("{e}"));
    wait_for(
        "the guest to power off and on_poweroff to destroy it",
        90,
        || {
            rig.engine
                .timeline(uuid)
                .ok()?
                .iter()
                .any(|e| matches!(e.event, DomainEvent::Destroyed))
                .then_some(())
        },
    );
    let tl = rig.engine.timeline(uuid).unwrap_or_default();
    assert!(
        tl.iter().any(|e| matches!(
            e.event,
            DomainEvent::ShutDown {
                reason: ShutdownReason::Poweroff
            }
        )),
        "{tl:?}"
    );
    assert!(qemu_processes_under(&rig.runtime()).is_empty());
}

/// A runtime dir belongs to one state dir: a second state dir opening it
/// would adopt the first one's domains with default policies. It is
/// refused, with the way out.
#[test]
fn a_runtime_dir_serves_one_state_dir() {
    use domus::backend::qemu::{QemuHypervisor, QemuOptions};
    let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let open = |state: &str| {
        let state = root.path().join(state);
        std::fs::create_dir_all(&state).unwrap_or_else(|e| panic!("{e}"));
        QemuHypervisor::open(QemuOptions {
            runtime_dir: root.path().join("run"),
            state_dir: state,
            accel: Some("tcg".into()),
            binary: std::path::PathBuf::from(domus::backend::qemu::QEMU),
            supervisor: None,
            adopt: false,
            clock: std::sync::Arc::new(domus::clock::SystemClock),
        })
    };
    assert!(open("first").is_ok());
    assert!(open("first").is_ok(), "its own state dir opens it again");
    match open("second") {
        Ok(_) => panic!("a second state dir shared the runtime dir"),
        Err(e) => {
            let said = e.to_string();
            assert!(said.contains("--runtime-dir"), "{said}");
            assert!(said.contains("first"), "{said}");
        }
    }
}

/// An xend HVM domain on QEMU: the boot order becomes `bootindex`
/// (`boot dc`: the CD first, then the disk), the CD drive holds its media
/// read-only, a blktap qcow2 disk is opened as qcow2, `vcpu_avail` starts
/// 2 of 4 vCPUs, and a PV bootloader is refused with the reason.
#[test]
fn an_xend_hvm_domain_gets_its_boot_order_cd_tap_format_and_online_vcpus() {
    use domus::backend::qemu::qmp::Qmp;
    use serde_json::json;
    announce_accel();
    let rig = qemu_rig();
    let disk = rig.root.path().join("disk.img");
    make_image(&disk, "raw", "8M");
    let data = rig.root.path().join("data.qcow2");
    make_image(&data, "qcow2", "8M");
    let iso = rig.root.path().join("install.iso");
    make_image(&iso, "raw", "1M");
    let text = format!(
        "(vm (name hvm1) (memory 128) (vcpus 4) (vcpu_avail 3)
           (image (hvm (kernel /usr/lib/xen/boot/hvmloader) (boot dc)))
           (device (vbd (uname file:{}) (dev hda) (mode w)))
           (device (vbd (uname file:{}) (dev hdc:cdrom) (mode r)))
           (device (tap (uname tap:qcow2:{}) (dev hdb) (mode w))))",
        disk.display(),
        iso.display(),
        data.display()
    );
    let domid = rig
        .engine
        .create(&parse(&text), None)
        .unwrap_or_else(|e| panic!("create: {e}"));
    let sock = rig.runtime().join(domid.to_string()).join("qmp.sock");
    let mut qmp = Qmp::connect(&sock, Duration::from_secs(10)).unwrap_or_else(|e| panic!("{e}"));
    let t = Duration::from_secs(10);
    let bootindex = |qmp: &mut Qmp, id: &str| {
        qmp.execute(
            "qom-get",
            json!({ "path": format!("/machine/peripheral/{id}"), "property": "bootindex" }),
            t,
        )
        .unwrap_or_else(|e| panic!("qom-get {id}: {e}"))
    };
    // Devices are plugged in config order: vbd0 the disk, vbd1 the CD
    // (its scsi-cd is vbd1-cd), vbd2 the tap disk.
    assert_eq!(bootindex(&mut qmp, "vbd1-cd"), json!(0), "boot d first");
    assert_eq!(bootindex(&mut qmp, "vbd0"), json!(1), "then c");
    assert_eq!(bootindex(&mut qmp, "vbd2"), json!(-1), "one disk boots");
    let blocks = qmp
        .execute("query-block", json!({}), t)
        .unwrap_or_else(|e| panic!("{e}"));
    let by_node = |node: &str| {
        blocks
            .as_array()
            .and_then(|a| {
                a.iter()
                    .find(|b| b["inserted"]["node-name"].as_str() == Some(node))
            })
            .cloned()
            .unwrap_or_else(|| panic!("no block node {node} in {blocks}"))
    };
    let cd = by_node("vbd1-node");
    assert_eq!(cd["qdev"], json!("vbd1-cd"), "{cd}");
    assert_eq!(cd["removable"], json!(true), "a CD drive: {cd}");
    assert_eq!(
        cd["inserted"]["ro"],
        json!(true),
        "its media read-only: {cd}"
    );
    let tap = by_node("vbd2-node");
    assert_eq!(tap["inserted"]["drv"], json!("qcow2"), "{tap}");
    let cpus = qmp
        .execute("query-cpus-fast", json!({}), t)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        cpus.as_array().map(Vec::len),
        Some(2),
        "vcpu_avail 3: vCPUs 0 and 1 online: {cpus}"
    );
    drop(qmp);
    // Devices go with the domain: no unplug waits on a guest that never
    // answers (here SeaBIOS, with nothing to boot).
    let t0 = Instant::now();
    rig.engine.destroy(domid).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        t0.elapsed() < Duration::from_secs(10),
        "destroy took {:?}",
        t0.elapsed()
    );

    let (k, _) = guest_files();
    let pygrub = format!(
        "(vm (name grubby) (memory 128) (bootloader pygrub)
           (image (linux (kernel {}))))",
        k.display()
    );
    let err = rig
        .engine
        .create(&parse(&pygrub), None)
        .map(|_| "built")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("pygrub") && err.contains("Xen's toolstack"),
        "{err}"
    );
    assert!(qemu_processes_under(&rig.runtime()).is_empty());
}

/// On QEMU the library marks what QEMU cannot build (plan9, a pygrub
/// domain) as not valid, with the reason; the simulator's marks differ.
#[test]
fn library_marks_fit_the_backend() {
    let rig = qemu_rig();
    let lib = rig.root.path().join("lib");
    domus::tui::library::seed(&lib).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(
        lib.join("grub.sxp"),
        "(vm (name grub) (memory 64) (bootloader pygrub) (device (vbd (uname phy:/dev/vg/g) (dev xvda) (mode w))))",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let entries =
        domus::tui::library::scan_with(&lib, |c| rig.engine.unbuildable(c).into_iter().next());
    let status = |file: &str| {
        entries
            .iter()
            .find(|e| e.file == file)
            .map(|e| e.status.clone())
            .unwrap_or_else(|| panic!("{file} not listed"))
    };
    assert!(
        status("plan9.sxp").is_err_and(|e| e.contains("does not build plan9 images")),
        "{:?}",
        status("plan9.sxp")
    );
    assert!(
        status("grub.sxp").is_err_and(|e| e.contains("pygrub")),
        "{:?}",
        status("grub.sxp")
    );
    assert!(status("web1.sxp").is_ok(), "{:?}", status("web1.sxp"));
}

/// A bridge for a test's taps, removed when dropped.
struct Bridge(String);

impl Bridge {
    fn new() -> Bridge {
        // Interface names are at most 15 bytes.
        let name = format!("dbio{}", std::process::id() % 100_000);
        let ip = |args: &[&str]| {
            Command::new("ip")
                .args(args)
                .status()
                .is_ok_and(|s| s.success())
        };
        assert!(
            ip(&["link", "add", &name, "type", "bridge"]) && ip(&["link", "set", &name, "up"]),
            "creating bridge {name} (the QEMU tests run as root; scripts/test installs iproute2)"
        );
        Bridge(name)
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", &self.0]).status();
    }
}

/// A guest that writes to its disk and sends on its vif shows it in its
/// counters: the engine's, `domus list --json`'s, and the TUI's rates come
/// from the same read (block from QMP, the network from the tap).
#[test]
fn a_guest_writing_and_sending_shows_in_its_io_counters() {
    let rig = qemu_rig();
    let bridge = Bridge::new();
    let img = rig.root.path().join("io.img");
    make_image(&img, "raw", "16M");
    let config = parse(&guest_config(
        "ioer",
        &format!(
            "(device (vbd (uname file:{}) (dev xvdb) (mode w))) (device (vif (bridge {})))",
            img.display(),
            bridge.0
        ),
    ));
    // What a domain killed with kill -9 leaves: its tap, held by nobody.
    // The next domain of that id (the first, here) must not trip on it.
    let stale = "dm1.1";
    for args in [
        &["tuntap", "add", "dev", stale, "mode", "tap"][..],
        &["link", "set", "dev", stale, "up"][..],
    ] {
        let _ = Command::new("ip").args(args).status();
    }
    let domid = rig
        .engine
        .create(&config, None)
        .unwrap_or_else(|e| panic!("{e}"));
    // Destroyed however the test ends: a tap is a host-wide name.
    struct Destroy<'a>(&'a domus::engine::Engine, domus::backend::DomId);
    impl Drop for Destroy<'_> {
        fn drop(&mut self) {
            let _ = self.0.destroy(self.1);
        }
    }
    let _destroy = Destroy(&rig.engine, domid);
    wait_for_shell(&rig.engine, domid);
    // The name is the domain's own tap now, held by its QEMU.
    let carrier = std::fs::read_to_string(format!("/sys/class/net/{stale}/carrier"));
    assert_eq!(
        carrier.ok().as_deref().map(str::trim),
        Some("1"),
        "the stale tap was replaced by one the guest's QEMU holds"
    );
    let io = || {
        rig.engine
            .io_stats()
            .unwrap_or_else(|e| panic!("{e}"))
            .into_iter()
            .find(|c| c.domid == domid)
            .unwrap_or_else(|| panic!("no counters for {domid}"))
    };
    let before = io();
    let (Some(vbd0), Some(net0)) = (before.vbd, before.net) else {
        panic!("a disk and a tap are counted: {before:?}");
    };
    // 4 MiB to the disk, written through.
    let disks = partitions(&rig.engine, domid);
    let [disk] = disks.as_slice() else {
        panic!("one disk in the guest: {disks:?}");
    };
    let said = run(
        &rig.engine,
        domid,
        &format!("dd if=/dev/zero of=/dev/{disk} bs=64k count=64 conv=fsync"),
    );
    assert!(said.contains("64+0 records out"), "{said}");
    // Traffic out of the vif: ARP for an address nobody has.
    // (Short lines: the guest's terminal wraps at 80 columns.)
    run(&rig.engine, domid, "ip link set eth0 up");
    run(&rig.engine, domid, "ip addr add 10.213.0.2/24 dev eth0");
    run(
        &rig.engine,
        domid,
        "ping -c 3 -W 1 10.213.0.1 >/dev/null 2>&1",
    );
    let after = io();
    let (Some(vbd1), Some(net1)) = (after.vbd, after.net) else {
        panic!("{after:?}");
    };
    assert!(
        vbd1.wr_bytes >= vbd0.wr_bytes + 4 * 1024 * 1024,
        "4 MiB written: {vbd0:?} -> {vbd1:?}"
    );
    assert!(vbd1.wr_reqs > vbd0.wr_reqs, "{vbd0:?} -> {vbd1:?}");
    assert!(net1.tx_bytes > net0.tx_bytes, "sent: {net0:?} -> {net1:?}");
    // The same counters through the CLI, as another process reads them.
    let (ok, text, err) = out(domus(rig.root.path()).args(["list", "--json"]));
    assert!(ok, "{err}");
    let v: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    let me = v["domains"]
        .as_array()
        .and_then(|a| a.iter().find(|d| d["domid"] == domid))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        me["vbd"]["wr_bytes"]
            .as_u64()
            .is_some_and(|b| b >= vbd1.wr_bytes),
        "{me}"
    );
    assert!(
        me["net"]["tx_bytes"].as_u64().is_some_and(|b| b > 0),
        "{me}"
    );
    // Writing and sending in a loop: rates in the TUI's table (wide enough
    // for the I/O columns), from a second engine on the same runtime, as
    // another domus process would read them.
    run(
        &rig.engine,
        domid,
        &format!("w(){{ dd if=/dev/zero of=/dev/{disk} bs=64k count=8 conv=fsync; }}"),
    );
    run(&rig.engine, domid, "(while :;do w;done)>/dev/null 2>&1 &");
    run(&rig.engine, domid, "p(){ ping -c 1 -W 1 10.213.0.1; }");
    run(&rig.engine, domid, "(while :;do p;done)>/dev/null 2>&1 &");
    let lib = rig.root.path().join("domains");
    let root = rig.root.path().to_path_buf();
    let mut h = domus::tui::testing::Harness::fleet(
        domus::tui::testing::HarnessOptions {
            size: (200, 30),
            theme: "dark",
            read_only: false,
            config_dir: &lib,
            recovery_dir: &rig.root.path().join("recovery"),
            state_dir: None,
        },
        |_| {
            let (engine, _) = qemu_engine(&root);
            vec![domus::fleet::Member::open(
                domus::fleet::HostSpec {
                    name: "q".into(),
                    target: domus::fleet::Target::Local,
                },
                std::sync::Arc::new(engine),
                Box::new(|| Err("not again".into())),
            )]
        },
    );
    h.tick(1.0);
    std::thread::sleep(Duration::from_millis(1500));
    h.tick(1.0);
    let screen = h.screen();
    let header = screen
        .lines()
        .find(|l| l.contains("VBD_WR/s"))
        .unwrap_or_else(|| panic!("I/O columns at 200 columns: {screen}"));
    let row = screen
        .lines()
        .find(|l| l.contains(" ioer "))
        .unwrap_or_else(|| panic!("ioer: {screen}"));
    let cell = |title: &str| -> String {
        let h: Vec<char> = header.chars().collect();
        let r: Vec<char> = row.chars().collect();
        let t: Vec<char> = title.chars().collect();
        let at = h
            .windows(t.len())
            .position(|w| w == t.as_slice())
            .unwrap_or(0);
        r.get(at..(at + t.len()).min(r.len()))
            .map(|c| c.iter().collect::<String>())
            .unwrap_or_default()
            .trim()
            .to_string()
    };
    let zero = |s: &str| s.is_empty() || s == "-" || s == "0";
    let (wr, tx) = (cell("VBD_WR/s"), cell("NETTX/s"));
    assert!(!zero(&wr), "VBD_WR/s {wr:?}: {screen}");
    assert!(!zero(&tx), "NETTX/s {tx:?}: {screen}");
}
