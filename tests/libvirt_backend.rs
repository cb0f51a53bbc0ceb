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
use domus::backend::Hypervisor;
use domus::backend::libvirt::LibvirtHypervisor;
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
}
