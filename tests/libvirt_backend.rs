//! The libvirt backend against a real libvirtd (started by
//! scripts/libvirtd-up, as root, as ../shared/recipes/libvirt.md says) and
//! the tiny test guest under TCG: build from sxp, console, pause, a vbd
//! hot-plugged and seen by the guest, destroy; and a domain another tool
//! made with `virsh create` listed and reachable by its console.

mod common;

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use common::guests::*;
use domus::backend::libvirt::LibvirtHypervisor;
use domus::backend::{Hypervisor, ShutdownReason};
use domus::clock::SystemClock;
use domus::engine::Engine;

const URI: &str = "qemu:///system";

fn libvirt() -> (Engine, Arc<LibvirtHypervisor>, tempfile::TempDir) {
    let up = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/libvirtd-up"))
        .status()
        .unwrap_or_else(|e| panic!("scripts/libvirtd-up: {e}"));
    assert!(
        up.success(),
        "libvirtd did not start (scripts/packages installs libvirt)"
    );
    let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let hv = Arc::new(LibvirtHypervisor::open(URI).unwrap_or_else(|e| panic!("{e}")));
    let engine = Engine::persistent(
        hv.clone(),
        Arc::new(SystemClock),
        &root.path().join("state"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    (engine, hv, root)
}

fn virsh(args: &[&str]) -> String {
    let out = Command::new("virsh")
        .arg("-c")
        .arg(URI)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("virsh: {e}"));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_domus_guest_and_a_foreign_one_on_libvirt() {
    let (engine, hv, root) = libvirt();
    let name = format!("domus-lv-{}", std::process::id());
    let config = domus::config::parse_str(&guest_config(&name, ""), "test")
        .map(|(c, _)| c)
        .unwrap_or_else(|e| panic!("{e}"));
    let domid = engine
        .create(&config, None)
        .unwrap_or_else(|e| panic!("{e}"));
    struct Destroy<'a>(&'a Engine, u32);
    impl Drop for Destroy<'_> {
        fn drop(&mut self) {
            let _ = self.0.destroy(self.1);
        }
    }
    let _guard = Destroy(&engine, domid);
    // libvirt has it, running, under domus's name.
    assert!(virsh(&["list"]).contains(&name), "{}", virsh(&["list"]));
    wait_for_shell(&engine, domid);
    let said = run(&engine, domid, "echo LIBVIRT-$((6*7))");
    assert!(said.contains("LIBVIRT-42"), "{said}");
    // Pause freezes the CPU time; unpause runs it again.
    engine.pause(domid).unwrap_or_else(|e| panic!("{e}"));
    let info = hv.domain_info(domid).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(info.state_string(), "--p---");
    let t0 = info.cpu_time_ns;
    std::thread::sleep(Duration::from_millis(500));
    let t1 = hv.domain_info(domid).map(|i| i.cpu_time_ns).unwrap_or(0);
    assert!(t1.saturating_sub(t0) < 50_000_000, "frozen: {t0} -> {t1}");
    engine.unpause(domid).unwrap_or_else(|e| panic!("{e}"));
    // A disk hot-plugged through libvirt, seen by the guest, listed from
    // the domain's metadata, and unplugged.
    let img = root.path().join("extra.img");
    make_image(&img, "raw", "8M");
    let disk = domus::config::device_args::parse_device_args(
        "vbd",
        &[format!("file:{}", img.display()), "xvdb".into(), "w".into()],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    engine
        .attach(domid, &disk)
        .unwrap_or_else(|e| panic!("{e}"));
    wait_for("the disk in the guest", 30, || {
        (partitions(&engine, domid).len() == 1).then_some(())
    });
    let listed = hv.domain_info(domid).map(|i| i.devices).unwrap_or_default();
    assert_eq!(listed.len(), 1, "{listed:?}");
    // What the guest writes shows in the counters (virDomainBlockStats).
    let disks = partitions(&engine, domid);
    let [disk] = disks.as_slice() else {
        panic!("one disk: {disks:?}");
    };
    let said = run(
        &engine,
        domid,
        &format!("dd if=/dev/zero of=/dev/{disk} bs=64k count=32 conv=fsync"),
    );
    assert!(said.contains("32+0 records out"), "{said}");
    let io = hv
        .io_stats()
        .unwrap_or_else(|e| panic!("{e}"))
        .into_iter()
        .find(|c| c.domid == domid)
        .and_then(|c| c.vbd)
        .unwrap_or_else(|| panic!("no block counters"));
    assert!(io.wr_bytes >= 2 * 1024 * 1024 && io.wr_reqs > 0, "{io:?}");

    // A domain libvirt runs for someone else: listed, and its console
    // reachable through domus.
    let (kernel, initrd) = guest_files();
    let foreign = format!("foreign-{}", std::process::id());
    let xml = format!(
        "<domain type='qemu'><name>{foreign}</name><memory unit='MiB'>128</memory><vcpu>1</vcpu>\
         <os><type arch='x86_64' machine='q35'>hvm</type><kernel>{}</kernel><initrd>{}</initrd>\
         <cmdline>console=ttyS0 quiet</cmdline></os><features><acpi/></features>\
         <devices><serial type='pty'><target port='0'/></serial>\
         <console type='pty'><target type='serial' port='0'/></console></devices></domain>",
        kernel.display(),
        initrd.display()
    );
    let file = root.path().join("foreign.xml");
    std::fs::write(&file, xml).unwrap_or_else(|e| panic!("{e}"));
    let made = Command::new("virsh")
        .args(["-c", URI, "create"])
        .arg(&file)
        .status()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(made.success(), "virsh create");
    let other = hv
        .list_domains()
        .unwrap_or_else(|e| panic!("{e}"))
        .into_iter()
        .find(|i| i.name == foreign)
        .unwrap_or_else(|| panic!("{foreign} is not listed"));
    assert!(!hv.built_by_domus(&other), "not domus's");
    wait_for_shell(&engine, other.domid);
    let _ = Command::new("virsh")
        .args(["-c", URI, "destroy", &foreign])
        .status();
    engine.destroy(domid).unwrap_or_else(|e| panic!("{e}"));
    assert!(!virsh(&["list"]).contains(&name), "destroyed");
}

/// A domain another tool defined and never started: listed as off, with
/// no id (`-`, as `virsh list --all`), its definition left alone by
/// `destroy`.
#[test]
fn a_defined_domain_that_is_off_is_listed_and_left_to_its_tool() {
    let (_engine, _hv, root) = libvirt();
    let name = format!("defined-{}", std::process::id());
    let (kernel, initrd) = guest_files();
    let xml = format!(
        "<domain type='qemu'><name>{name}</name><memory unit='MiB'>128</memory><vcpu>1</vcpu>\
         <os><type arch='x86_64' machine='q35'>hvm</type><kernel>{}</kernel><initrd>{}</initrd>\
         </os></domain>",
        kernel.display(),
        initrd.display()
    );
    let file = root.path().join("defined.xml");
    std::fs::write(&file, xml).unwrap_or_else(|e| panic!("{e}"));
    let defined = Command::new("virsh")
        .args(["-c", URI, "define"])
        .arg(&file)
        .status()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(defined.success(), "virsh define");
    struct Undefine(String);
    impl Drop for Undefine {
        fn drop(&mut self) {
            let _ = Command::new("virsh")
                .args(["-c", URI, "undefine", &self.0])
                .output();
        }
    }
    let _gone = Undefine(name.clone());
    let domus = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_domus"))
            .arg("--state-dir")
            .arg(root.path().join("cli"))
            .args(["--connect", URI])
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let out = domus(&["list"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = text
        .lines()
        .find(|l| l.starts_with(&name))
        .unwrap_or_else(|| panic!("{name} is not listed: {text}"));
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(fields.get(1), Some(&"-"), "no id: {line}");
    assert!(line.contains("---s--"), "off: {line}");
    let out = domus(&["destroy", &name]);
    assert!(
        !out.status.success(),
        "destroy refuses another tool's definition"
    );
    let why = String::from_utf8_lossy(&out.stderr);
    assert!(why.contains("virsh undefine"), "{why}");
    let still = Command::new("virsh")
        .args(["-c", URI, "list", "--all", "--name"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    assert!(still.contains(&name), "still defined: {still}");
    // Started from libvirt's definition (`virsh start`), then stopped
    // again by destroy, its definition kept.
    let out = domus(&["start", &name]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("started as domain"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(virsh(&["domstate", &name]).contains("running"));
    let out = domus(&["destroy", &name]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(virsh(&["domstate", &name]).contains("shut off"));
}

/// A bridge for the test's vif, removed when dropped.
struct Bridge(String);

impl Bridge {
    fn new() -> Bridge {
        let name = format!("dblv{}", std::process::id() % 100_000);
        let ip = |args: &[&str]| {
            Command::new("ip")
                .args(args)
                .status()
                .is_ok_and(|s| s.success())
        };
        assert!(
            ip(&["link", "add", &name, "type", "bridge"]) && ip(&["link", "set", &name, "up"]),
            "creating bridge {name} (the tests run as root; scripts/test installs iproute2)"
        );
        Bridge(name)
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", &self.0]).status();
    }
}

/// A guest writing to its disk and sending on its vif in a loop shows
/// VBD_WR and NETTX: in `domus list --json` (another process) and in the
/// TUI's table.
#[test]
fn a_guest_writing_and_sending_in_a_loop_shows_in_list_and_the_table() {
    use crossterm::event::KeyCode;
    let (engine, _hv, root) = libvirt();
    let bridge = Bridge::new();
    let img = root.path().join("loop.img");
    make_image(&img, "raw", "16M");
    let name = format!("domus-io-{}", std::process::id());
    let config = domus::config::parse_str(
        &guest_config(
            &name,
            &format!(
                "(device (vbd (uname file:{}) (dev xvdb) (mode w))) (device (vif (bridge {})))",
                img.display(),
                bridge.0
            ),
        ),
        "test",
    )
    .map(|(c, _)| c)
    .unwrap_or_else(|e| panic!("{e}"));
    let domid = engine
        .create(&config, None)
        .unwrap_or_else(|e| panic!("{e}"));
    struct Destroy<'a>(&'a Engine, u32, String);
    impl Drop for Destroy<'_> {
        fn drop(&mut self) {
            if let Err(e) = self.0.destroy(self.1) {
                eprintln!("destroying {}: {e}; by virsh instead", self.2);
                for verb in ["destroy", "undefine"] {
                    let _ = Command::new("virsh")
                        .args(["-c", URI, verb, &self.2])
                        .output();
                }
            }
        }
    }
    let _guard = Destroy(&engine, domid, name.clone());
    wait_for_shell(&engine, domid);
    let disks = partitions(&engine, domid);
    let [disk] = disks.as_slice() else {
        panic!("one disk in the guest: {disks:?}");
    };
    // Short lines: the guest's terminal wraps at 80 columns.
    run(&engine, domid, "ip link set eth0 up");
    run(&engine, domid, "ip addr add 10.214.0.2/24 dev eth0");
    // The host answers on the bridge: the pings flow both ways.
    let _ = Command::new("ip")
        .args(["addr", "add", "10.214.0.1/24", "dev", &bridge.0])
        .status();
    run(
        &engine,
        domid,
        &format!("w(){{ dd if=/dev/zero of=/dev/{disk} bs=64k count=8 conv=fsync; }}"),
    );
    run(&engine, domid, "(while :;do w;done)>/dev/null 2>&1 &");
    run(&engine, domid, "p(){ ping -c 1 -W 1 10.214.0.1; }");
    run(&engine, domid, "(while :;do p;done)>/dev/null 2>&1 &");
    std::thread::sleep(Duration::from_secs(2));
    // Another process's list.
    let out = Command::new(env!("CARGO_BIN_EXE_domus"))
        .arg("--state-dir")
        .arg(root.path().join("cli"))
        .args(["--connect", URI, "list", "--json", &name])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    let me = &v["domains"][0];
    assert!(
        me["vbd"]["wr_bytes"].as_u64().is_some_and(|b| b > 0),
        "{me}"
    );
    assert!(
        me["net"]["tx_bytes"].as_u64().is_some_and(|b| b > 0),
        "{me}"
    );
    // The TUI's table (wide enough for the I/O columns): rates, not zero.
    let lib = root.path().join("domains");
    let state = root.path().join("tui");
    let mut h = domus::tui::testing::Harness::fleet(
        domus::tui::testing::HarnessOptions {
            size: (200, 30),
            theme: "dark",
            read_only: false,
            config_dir: &lib,
            recovery_dir: &root.path().join("recovery"),
            state_dir: None,
        },
        |_| {
            let state = state.clone();
            vec![domus::fleet::Member::lazy(
                domus::fleet::HostSpec {
                    name: "sys".into(),
                    target: domus::fleet::Target::Libvirt(URI.into()),
                },
                Box::new(move || {
                    let hv = LibvirtHypervisor::open(URI).map_err(|e| e.to_string())?;
                    Engine::persistent(Arc::new(hv), Arc::new(SystemClock), &state)
                        .map_err(|e| e.to_string())
                }),
            )]
        },
    );
    // Rates need two reads a moment apart (the I/O read is on a real clock).
    h.tick(1.0);
    std::thread::sleep(Duration::from_millis(1500));
    h.tick(1.0);
    h.key(KeyCode::Home);
    let screen = h.screen();
    let header = screen
        .lines()
        .find(|l| l.contains("VBD_WR/s"))
        .unwrap_or_else(|| panic!("I/O columns at 200 columns: {screen}"));
    let row = screen
        .lines()
        .find(|l| l.contains(&name))
        .unwrap_or_else(|| panic!("{name}: {screen}"));
    // By character columns: the borders are wider than a byte.
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
    let (wr, tx) = (cell("VBD_WR/s"), cell("NETTX/s"));
    let zero = |s: &str| s.is_empty() || s == "-" || s.starts_with("0 ") || s == "0" || s == "0B";
    assert!(!zero(&wr), "VBD_WR/s {wr:?}: {screen}");
    assert!(!zero(&tx), "NETTX/s {tx:?}: {screen}");
}

/// libvirt's lifecycle events reach the journal as they happen (no
/// refresh in between): another tool's pause and resume, then the guest's
/// poweroff with its policy applied. And save/restore through libvirt's
/// daemon, the config kept in the image.
#[test]
fn libvirt_events_reach_the_journal_and_save_restore_keeps_the_domain() {
    use domus::engine::DomainEvent;
    use domus::tui::action::Effect;
    let (engine, _hv, root) = libvirt();
    let engine = Arc::new(engine);
    let name = format!("domus-ev-{}", std::process::id());
    let config = domus::config::parse_str(&guest_config(&name, "(on_poweroff destroy)"), "test")
        .map(|(c, _)| c)
        .unwrap_or_else(|e| panic!("{e}"));
    let domid = engine
        .create(&config, None)
        .unwrap_or_else(|e| panic!("{e}"));
    struct Gone(String);
    impl Drop for Gone {
        fn drop(&mut self) {
            for verb in ["destroy", "undefine"] {
                let _ = Command::new("virsh")
                    .args(["-c", URI, verb, &self.0])
                    .output();
            }
        }
    }
    let _gone = Gone(name.clone());
    let uuid = engine
        .view(domid)
        .ok()
        .and_then(|v| v.record.map(|r| r.uuid))
        .unwrap_or_else(|| panic!("no record"));
    wait_for_shell(&engine, domid);

    // Save and restore: the image holds the config; the domain is back
    // (paused by libvirt, resumed by the engine) and answers.
    let image = root.path().join("saved.img");
    engine
        .save(domid, &image)
        .unwrap_or_else(|e| panic!("save: {e}"));
    assert!(image.exists(), "the image is written");
    assert!(
        !virsh(&["list", "--all", "--name"]).contains(&name),
        "saved: gone from libvirt"
    );
    let domid = engine
        .restore(&image)
        .unwrap_or_else(|e| panic!("restore: {e}"));
    let v = engine.view(domid).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(v.info.name, name);
    assert!(v.info.is_active(), "{}", v.info.state_string());
    assert!(v.record.is_some(), "its record came back from the image");
    let said = run(&engine, domid, "echo BACK-$((6*7))");
    assert!(said.contains("BACK-42"), "{said}");

    // Events: followed from here on, with no refresh after this one.
    let dir = root.path().join("worker");
    let fleet = Arc::new(domus::fleet::Fleet::single("sys", Arc::clone(&engine)));
    let worker =
        domus::tui::worker::Worker::for_fleet(fleet, dir.join("lib"), dir.join("rec"), None);
    let _ = worker.run(Effect::Refresh);
    let seen = |what: &dyn Fn(&DomainEvent) -> bool| {
        wait_for("the event in the journal", 20, || {
            engine
                .timeline(uuid)
                .ok()?
                .iter()
                .any(|e| what(&e.event))
                .then_some(())
        })
    };
    assert!(virsh(&["suspend", &name]).contains("suspended"));
    seen(&|e| matches!(e, DomainEvent::StateChanged { to, .. } if to == "paused"));
    assert!(virsh(&["resume", &name]).contains("resumed"));
    seen(
        &|e| matches!(e, DomainEvent::StateChanged { from, to } if from == "paused" && to == "running"),
    );
    // The guest powers off: on_poweroff destroy applies, by the event.
    console_until(&engine, domid, Some("poweroff"), 1, |_| false);
    seen(&|e| matches!(e, DomainEvent::PolicyApplied { field, .. } if field == "on_poweroff"));
    wait_for("the domain to go", 20, || {
        (!virsh(&["list", "--all", "--name"]).contains(&name)).then_some(())
    });
}

/// A guest's kernel panic (pvpanic) is a crash: libvirt stops the domain,
/// domus's on_crash applies (preserve: it stays, crashed).
#[test]
fn a_kernel_panic_is_a_crash_with_its_policy() {
    use domus::engine::DomainEvent;
    let (engine, hv, _root) = libvirt();
    let name = format!("domus-crash-{}", std::process::id());
    let config = domus::config::parse_str(&guest_config(&name, "(on_crash preserve)"), "test")
        .map(|(c, _)| c)
        .unwrap_or_else(|e| panic!("{e}"));
    let domid = engine
        .create(&config, None)
        .unwrap_or_else(|e| panic!("{e}"));
    struct Gone(String);
    impl Drop for Gone {
        fn drop(&mut self) {
            for verb in ["destroy", "undefine"] {
                let _ = Command::new("virsh")
                    .args(["-c", URI, verb, &self.0])
                    .output();
            }
        }
    }
    let _gone = Gone(name.clone());
    wait_for_shell(&engine, domid);
    console_until(
        &engine,
        domid,
        Some("echo c > /proc/sysrq-trigger"),
        1,
        |_| false,
    );
    let info = wait_for("the crash", 60, || {
        let _ = engine.refresh();
        let i = hv.domain_info(domid).ok()?;
        i.flags.shutdown.then_some(i)
    });
    assert_eq!(
        info.shutdown_reason,
        Some(ShutdownReason::Crash),
        "{info:?}"
    );
    let uuid = info.uuid;
    wait_for("on_crash to be applied", 20, || {
        let _ = engine.refresh();
        engine
            .timeline(uuid)
            .ok()?
            .iter()
            .any(|e| matches!(&e.event, DomainEvent::PolicyApplied { field, .. } if field == "on_crash"))
            .then_some(())
    });
    assert!(
        hv.domain_info(domid).is_ok_and(|i| i.flags.shutdown),
        "preserved"
    );
    engine.destroy(domid).unwrap_or_else(|e| panic!("{e}"));
}
