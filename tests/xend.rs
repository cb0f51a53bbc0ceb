//! Configs as xend wrote them, built through the real binary on the
//! simulator: what the guest sees must be what the file says (boot order,
//! an empty CD drive, a blktap disk, several PCI functions in one entry,
//! vCPUs online at start), and what domus does not use is kept.

mod common;

use std::path::{Path, PathBuf};

use common::sim_cli::SimHost as Host;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/configs/valid")
        .join(name)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap_or_else(|| panic!("non-UTF-8 path {p:?}"))
}

#[test]
fn an_hvm_listing_boots_by_its_boot_order_with_its_cd_tap_disk_and_both_pci_functions() {
    let h = Host::new();
    let file = fixture("xend-hvm-listing.sxp");
    let (ok, _, warnings) = h.run(&["create", s(&file)]);
    assert!(ok, "create failed: {warnings}");
    assert!(
        warnings.contains("cpu_weight 1.0 read as 256"),
        "the float weight is reported: {warnings}"
    );
    let log = h.stdout(&["console", "--log", "winxp"]);
    // boot dc: the empty CD fails, then the disk boots (never the loader
    // as a kernel).
    let cd = log
        .find("Booting from DVD/CD...")
        .unwrap_or_else(|| panic!("no CD boot attempt:\n{log}"));
    let disk = log
        .find("Booting from Hard Disk...")
        .unwrap_or_else(|| panic!("no disk boot:\n{log}"));
    assert!(cd < disk, "the CD is tried first (boot dc):\n{log}");
    assert!(log.contains("Could not read from CDROM"), "{log}");
    assert!(
        !log.contains("hvmloader"),
        "the loader is no kernel:\n{log}"
    );
    for want in [
        "Allowing 4 CPUs, 2 hotplug CPUs",
        "hdc: CD-ROM, no media",
        "hdb: tap:qcow2:/srv/data.qcow2 read-write",
        "probing 0000:07:00.0",
        "probing 0000:07:00.1",
    ] {
        assert!(
            log.contains(want),
            "{want:?} missing from the boot log:\n{log}"
        );
    }
    let info = h.stdout(&["info", "winxp"]);
    for want in [
        "vbd hdc:cdrom (no media)",
        "(device (vfb (vnc 1) (vncunused 1)))",
        "(device (console (protocol vt100)))",
        "(vcpu_avail 3)",
        "(boot dc)",
        "(shadow_memory 9)",
    ] {
        assert!(info.contains(want), "{want:?} missing from info:\n{info}");
    }
    assert!(
        !info.contains("(domid") && !info.contains("(cpu_time"),
        "runtime fields of the listing are dropped:\n{info}"
    );
}

#[test]
fn a_bootloader_domain_builds_on_the_simulator_and_its_arguments_are_kept() {
    let h = Host::new();
    let file = fixture("xend-pv-listing.sxp");
    let (ok, _, err) = h.run(&["create", s(&file)]);
    assert!(ok, "create failed: {err}");
    let info = h.stdout(&["info", "mail"]);
    assert!(info.contains("(bootloader /usr/bin/pygrub)"), "{info}");
    assert!(info.contains("(bootloader_args -q)"), "{info}");
    assert!(info.contains("(device (vkbd))"), "{info}");
}

fn xl_fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/configs/xl")
        .join(name)
}

/// `domus import` brings xl.cfg and xm configs into the library (0600),
/// naming each key it could not carry at file:line:col; what it wrote
/// builds, and `domus export` writes xl.cfg that imports to the same
/// domain.
#[test]
fn xl_configs_import_build_and_export_back() {
    let h = Host::new();
    let lib = h.dir.path().join("library");
    let lib_s = s(&lib).to_string();
    let pv = xl_fixture("pv-guest.cfg");
    let hvm = xl_fixture("xmexample.hvm");
    let out = h
        .domus()
        .args(["--config-dir", &lib_s, "import", s(&pv), s(&hvm)])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "import failed: {err}");
    for want in [
        "pv-guest.cfg:21:1: warning: spice is not carried",
        "pv-guest.cfg:20:1: warning: on_watchdog is not carried",
        "pv-guest.cfg:18:9: warning: pci 0000:07:00.0: its options are not carried",
    ] {
        assert!(err.contains(want), "{want:?} missing from:\n{err}");
    }
    let mail = lib.join("mail.sxp");
    let mode = std::fs::metadata(&mail)
        .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(mode, 0o600);
    let sxp = std::fs::read_to_string(&mail).unwrap_or_else(|e| panic!("{e}"));
    for want in [
        "(vcpus 4)",
        "(vcpu_avail 3)",
        "(bootloader_args \"-q --entry=1\")",
        "(uname tap:qcow2:/srv/mail-data.qcow2)",
        "(dev xvdc:cdrom)",
        "(on_crash preserve)",
        "(cpu_cap 50)",
    ] {
        assert!(sxp.contains(want), "{want:?} missing from:\n{sxp}");
    }
    // A second import of the same name is refused without --force.
    let again = h
        .domus()
        .args(["--config-dir", &lib_s, "import", s(&pv)])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));

    // The imported HVM config builds: xm's boot "cda" tries the empty CD.
    let hvm_sxp = lib.join("ExampleHVMDomain.sxp");
    h.stdout(&["create", s(&hvm_sxp)]);
    let log = h.stdout(&["console", "--log", "ExampleHVMDomain"]);
    assert!(log.contains("hdc: CD-ROM, no media"), "{log}");
    assert!(log.contains("Booting from Hard Disk"), "{log}");

    // Export to xl.cfg and import that again: the same domain.
    let exported = h.stdout(&["export", "ExampleHVMDomain"]);
    assert!(exported.contains("type = \"hvm\""), "{exported}");
    assert!(exported.contains("boot = \"cda\""), "{exported}");
    let file = h.dir.path().join("back.cfg");
    std::fs::write(&file, &exported).unwrap_or_else(|e| panic!("{e}"));
    // The domain (its built config: MACs filled in) against its xl.cfg
    // read back; xl has no device_model or loader (xl picks its own), said on
    // stderr.
    let a = h.stdout(&["export", "--format", "sxp", "ExampleHVMDomain"]);
    let b = h.stdout(&["export", "--format", "sxp", s(&file)]);
    let devices = |t: &str| -> Vec<String> {
        t.lines()
            .map(str::trim)
            .filter(|l| {
                !l.starts_with("(device_model") && !l.starts_with("(loader") && !l.starts_with('#')
            })
            .map(str::to_string)
            .collect()
    };
    assert_eq!(devices(&a), devices(&b), "xl:\n{exported}");
}

#[test]
fn python_xml_and_json_are_named_not_misread() {
    let h = Host::new();
    let py = xl_fixture("xmexample2");
    let (ok, _, err) = h.run(&["check", s(&py)]);
    assert!(!ok);
    assert!(
        err.contains("xmexample2:3:") && err.contains("this is a Python program, not data"),
        "{err}"
    );
    let xml = h.dir.path().join("dom.xml");
    std::fs::write(&xml, "<domain type='kvm'><name>x</name></domain>")
        .unwrap_or_else(|e| panic!("{e}"));
    let (ok, _, err) = h.run(&["check", s(&xml)]);
    assert!(!ok);
    assert!(err.contains("this is XML (libvirt or Xen-API)"), "{err}");
    let (ok, out, _) = h.run(&["check", s(&xl_fixture("pv-guest.cfg"))]);
    assert!(ok);
    assert!(out.contains("ok (xl.cfg;"), "{out}");
}

/// A field of 100,000 atoms or 200,000 unknown fields once overflowed the
/// stack (exit 134) and left a built domain with no record: now both are
/// refused with the reason, and nothing is built.
#[test]
fn huge_configs_are_refused_not_a_crash_and_build_nothing() {
    let h = Host::new();
    let wide = h.dir.path().join("wide.sxp");
    std::fs::write(
        &wide,
        format!(
            "(vm (name wide) (memory 64) (image (linux (kernel /k) (args {}))))",
            "x ".repeat(100_000)
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let many = h.dir.path().join("many.sxp");
    std::fs::write(
        &many,
        format!(
            "(vm (name many) (memory 64) (image (linux (kernel /k))) {})",
            "(u) ".repeat(200_000)
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    for f in [&wide, &many] {
        for cmd in ["check", "create"] {
            let out = h
                .domus()
                .args([cmd, s(f)])
                .output()
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(out.status.code(), Some(1), "{cmd} {f:?}: {out:?}");
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                err.contains("more than 4096 items") || err.contains("at most 1 MiB"),
                "{err}"
            );
        }
    }
    let list = h.stdout(&["list"]);
    assert!(!list.contains("wide") && !list.contains("many"), "{list}");
}

/// `check` refuses what `create` would refuse for reasons in the file
/// alone (an HVM image with nothing to boot); `check --host` also what
/// this host would refuse (a kernel or disk missing, a CPU beyond the
/// host's).
#[test]
fn check_and_check_host_refuse_what_create_would() {
    let h = Host::new();
    let nothing = h.dir.path().join("nothing.sxp");
    std::fs::write(
        &nothing,
        "(vm (name nb) (memory 64) (image (hvm (boot d))) (device (vbd (uname file:/x.img) (dev hda) (mode w))))",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let (ok, _, err) = h.run(&["check", s(&nothing)]);
    assert!(!ok);
    assert!(err.contains("nothing to boot"), "{err}");

    let far = h.dir.path().join("far.sxp");
    std::fs::write(
        &far,
        "(vm (name far) (memory 64) (cpu 4000) (image (linux (kernel /nonexistent/vmlinuz))))",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let (ok, _, _) = h.run(&["check", s(&far)]);
    assert!(ok, "without --host the file is fine");
    let (ok, _, err) = h.run(&["check", "--host", s(&far)]);
    assert!(!ok);
    assert!(err.contains("cpu 4000: the host has CPUs 0 to"), "{err}");
    assert!(
        !err.contains("does not exist"),
        "the simulator never opens the kernel: {err}"
    );
    // A backend that opens the kernel says it is missing.
    let qemu = std::path::Path::new("/usr/bin/qemu-system-x86_64");
    assert!(
        qemu.exists(),
        "{} is missing: scripts/test installs qemu-system-x86",
        qemu.display()
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_domus"))
        .arg("--backend")
        .arg("qemu")
        .arg("--state-dir")
        .arg(h.dir.path().join("qstate"))
        .arg("--runtime-dir")
        .arg(h.dir.path().join("qrun"))
        .args(["check", "--host", s(&far)])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("kernel /nonexistent/vmlinuz does not exist"),
        "{err}"
    );
}

/// From the adversarial trial: a file name cannot inject settings into an
/// export, values with commas are not split into new settings, control
/// bytes never reach the terminal, a failed write is an error, a closed
/// stderr is no crash, and one run never imports two files over one name.
#[test]
fn hostile_names_values_and_outputs_are_handled() {
    let h = Host::new();
    let dir = h.dir.path();
    // A newline in the file name: the export's header stays one line.
    let nl = dir.join("x\ndisk=[\"vdev=xvdz,access=rw,target=sda\"]\n#.cfg");
    std::fs::write(&nl, "name=\"nl\"\nkernel=\"/k\"\n").unwrap_or_else(|e| panic!("{e}"));
    let out = h.stdout(&["export", s(&nl)]);
    assert!(!out.lines().any(|l| l.starts_with("disk")), "{out}");

    // A comma inside a vif value or a vfb setting is left out and said.
    let comma = dir.join("comma.sxp");
    std::fs::write(
        &comma,
        "(vm (name comma) (image (linux (kernel /k)))
           (device (vif (mac 00:16:3e:00:00:01) (rate '1Mb/s,mac=00:16:3e:00:00:09,bridge=evil')))
           (device (vfb (vnc 1) (vnclisten '127.0.0.1,vnc=0'))))",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let (ok, xl, err) = h.run(&["export", s(&comma)]);
    assert!(ok, "{err}");
    assert!(!xl.contains("evil") && !xl.contains("vnc=0"), "{xl}");
    assert!(err.contains("cannot hold a ','"), "{err}");

    // Control bytes in a file name: errors show them as '?'.
    let esc = dir.join("e\x1b]0;TITLE\x07x.cfg");
    std::fs::write(&esc, "name = 'e'\nmemory = 'x'\n").unwrap_or_else(|e| panic!("{e}"));
    let out = h
        .domus()
        .args(["check", s(&esc)])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        !out.stderr.contains(&0x1b) && !out.stderr.contains(&0x07),
        "{:?}",
        out.stderr
    );

    // An export that cannot be written fails.
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap_or_else(|e| panic!("/dev/full: {e}"));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_domus"))
        .args([
            "--backend",
            "sim",
            "--state-dir",
            s(&dir.join("st")),
            "export",
            s(&comma),
        ])
        .stdout(full)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.status.code(), Some(1), "{out:?}");

    // Warnings into a stderr nobody reads: no panic.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_domus"))
        .args(["check", s(&xl_fixture("pv-guest.cfg"))])
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    drop(child.stderr.take());
    let status = child.wait().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(status.code(), Some(0), "a closed stderr is no crash");

    // Two files of one name in one import: the second is refused.
    let a = dir.join("a.cfg");
    let b = dir.join("b.cfg");
    std::fs::write(&a, "name = 'twin'\nmemory = 100\nkernel = '/k'\n")
        .unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(&b, "name = 'twin'\nmemory = 200\nkernel = '/k'\n")
        .unwrap_or_else(|e| panic!("{e}"));
    let lib = dir.join("lib");
    let (ok, _, err) = h.run(&["--config-dir", s(&lib), "import", "--force", s(&a), s(&b)]);
    assert!(!ok);
    assert!(err.contains("was imported from"), "{err}");
    let kept = std::fs::read_to_string(lib.join("twin.sxp")).unwrap_or_else(|e| panic!("{e}"));
    assert!(kept.contains("(memory 100)"), "{kept}");
}
