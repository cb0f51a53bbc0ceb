//! The real `domus` binary against the simulated backend: each command is
//! a separate process sharing one state directory, as an operator's shell.

mod common;

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use predicates::prelude::*;

use common::sim_cli::SimHost as Host;

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("assets/examples")
        .join(name)
}

#[test]
fn create_list_pause_attach_console_shutdown_destroy() {
    let host = Host::new();
    host.domus()
        .arg("create")
        .arg(example("web1.sxp"))
        .assert()
        .success()
        .stdout("web1 created as domain 1\n");

    let list = host.stdout(&["list"]);
    let mut lines = list.lines();
    assert_eq!(
        lines.next(),
        Some("Name                                        ID   Mem VCPUs\tState\tTime(s)")
    );
    assert!(
        lines
            .next()
            .is_some_and(|l| l.starts_with("Domain-0") && l.contains(" r----- ")),
        "{list}"
    );
    let row = host
        .list_row("web1")
        .unwrap_or_else(|| panic!("web1 missing:\n{list}"));
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cols[1..4], ["1", "256", "2"], "{row}");
    assert!(cols[4] == "r-----" || cols[4] == "-b----", "{row}");

    host.domus().args(["pause", "web1"]).assert().success();
    assert_eq!(host.state("web1").as_deref(), Some("--p---"));
    host.domus()
        .args(["pause", "1"])
        .assert()
        .code(1)
        .stderr("domus: cannot pause web1: it is paused\n");
    host.domus().args(["unpause", "1"]).assert().success();

    host.domus()
        .args(["attach", "web1", "vbd", "file:/srv/extra.img", "xvdb", "w"])
        .assert()
        .success()
        .stdout("attached vbd xvdb file:/srv/extra.img (w)\n");
    host.domus()
        .args(["console", "web1"])
        .write_stdin("cat /proc/partitions\n")
        .assert()
        .success()
        .stdout(predicate::str::contains("Welcome to web1"))
        .stdout(predicate::str::contains(" 202       16    8388608 xvdb"));

    host.domus()
        .args(["detach", "web1", "xvdb"])
        .assert()
        .success();
    host.domus()
        .args(["console", "web1"])
        .write_stdin("cat /proc/partitions\n")
        .assert()
        .success()
        .stdout(predicate::str::contains("xvdb: device removed"))
        .stdout(predicate::str::ends_with(
            "cat /proc/partitions\r\nmajor minor  #blocks  name\r\n\r\n 202        0    8388608 xvda\r\n/ # ",
        ));

    // web1's on_poweroff is destroy: a clean shutdown removes it.
    host.domus()
        .args(["shutdown", "web1"])
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "web1 (domain 1) shut down (poweroff); on_poweroff destroy: destroyed",
        ));
    assert_eq!(host.list_row("web1"), None);

    host.domus()
        .arg("create")
        .arg(example("plan9.sxp"))
        .assert()
        .success();
    host.domus()
        .args(["destroy", "plan9term"])
        .assert()
        .success();
    assert_eq!(
        host.stdout(&["list"]).lines().count(),
        2,
        "only the header and Domain-0 remain"
    );
}

#[test]
fn a_guest_crash_typed_on_the_console_applies_on_crash_restart() {
    let host = Host::new();
    host.domus()
        .arg("create")
        .arg(example("web1.sxp"))
        .assert()
        .success();
    host.domus()
        .args(["console", "web1"])
        .write_stdin("crash\n")
        .assert()
        .success()
        .stdout(predicate::str::contains("Kernel panic - not syncing"))
        .stderr(predicate::str::contains(
            "on_crash restart: restarted as domain 2",
        ));
    let row = host.list_row("web1").unwrap_or_default();
    assert_eq!(row.split_whitespace().nth(1), Some("2"), "{row}");
    let info = host.stdout(&["info", "web1"]);
    assert!(info.contains("restarted as domain 2"), "{info}");
}

#[test]
fn list_json_is_machine_readable() {
    let host = Host::new();
    host.domus()
        .arg("create")
        .arg(example("hvm.sxp"))
        .assert()
        .success();
    let out = host.stdout(&["list", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}\n{out}"));
    assert_eq!(v["host"]["backend"], "sim");
    assert_eq!(v["host"]["cpus"], 4);
    let win = &v["domains"][1];
    assert_eq!(win["name"], "win1");
    assert_eq!(win["devices"]["vbd"], 2);
    assert_eq!(win["devices"]["vif"], 1);
    assert_eq!(win["managed"], true);
    assert_eq!(v["domains"][0]["managed"], false);
}

#[test]
fn errors_are_one_line_with_exit_code_1_and_usage_is_2() {
    let host = Host::new();
    host.domus()
        .args(["destroy", "nosuch"])
        .assert()
        .code(1)
        .stderr("domus: no domain nosuch\n");
    host.domus()
        .args(["destroy", "0"])
        .assert()
        .code(1)
        .stderr("domus: Domain-0 cannot be destroyed\n");
    host.domus().args(["frobnicate"]).assert().code(2);
    host.domus()
        .args(["attach", "0", "usb", "x"])
        .assert()
        .code(2)
        .stderr(predicate::str::starts_with(
            "domus: unknown device type 'usb'",
        ));
    let bad = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/configs/invalid/memory-lots.sxp");
    host.domus()
        .arg("create")
        .arg(&bad)
        .assert()
        .code(1)
        .stderr(predicate::str::ends_with(
            "memory-lots.sxp:2:13: memory must be a positive number of MiB, got \"lots\"\n",
        ));
}

#[test]
fn check_validates_many_files_and_lists_every_error() {
    let host = Host::new();
    let invalid = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/configs/invalid");
    host.domus()
        .current_dir(&invalid)
        .args(["check", "several-errors.sxp", "vbd-missing-uname.sxp"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "several-errors.sxp:3:12: vcpus must be a number from 1 to 128, got \"many\"",
        ))
        .stderr(predicate::str::contains(
            "vbd-missing-uname.sxp:3:13: vbd: missing uname",
        ));
    host.domus()
        .arg("check")
        .arg(example("web1.sxp"))
        .arg(example("hvm.sxp"))
        .assert()
        .success();
}

#[test]
fn a_failed_build_leaves_nothing_behind() {
    let host = Host::new();
    host.domus()
        .env("DOMUS_SIM_FAULTS", "attach_device:2")
        .arg("create")
        .arg(example("web1.sxp"))
        .assert()
        .code(1)
        .stderr(predicate::str::contains("failed at stage 'create devices'"))
        .stderr(predicate::str::contains("partial domain 1 destroyed"));
    assert_eq!(host.stdout(&["list"]).lines().count(), 2);
    host.domus()
        .arg("create")
        .arg(example("web1.sxp"))
        .assert()
        .success()
        .stdout("web1 created as domain 2\n");
}

#[test]
fn save_and_restore() {
    let host = Host::new();
    host.domus()
        .arg("create")
        .arg(example("web1.sxp"))
        .assert()
        .success();
    let file = host.dir.path().join("web1.save");
    host.domus()
        .args(["save", "web1"])
        .arg(&file)
        .assert()
        .success();
    assert_eq!(host.list_row("web1"), None);
    host.domus()
        .arg("restore")
        .arg(&file)
        .assert()
        .success()
        .stdout("restored as domain 2\n");
    let state = host.state("web1").unwrap_or_default();
    assert!(state == "r-----" || state == "-b----", "{state}");
}

#[test]
fn attach_checks_devices_like_a_config_file_and_refuses_shared_ones() {
    let host = Host::new();
    host.domus()
        .arg("create")
        .arg(example("web1.sxp"))
        .assert()
        .success();
    host.domus()
        .args([
            "attach",
            "web1",
            "vif",
            "bridge=averyveryverylongbridgename",
        ])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "vif: invalid bridge name 'averyveryverylongbridgename'",
        ));
    host.domus()
        .arg("create")
        .arg(example("plan9.sxp"))
        .assert()
        .success();
    host.domus()
        .args(["attach", "plan9term", "pci", "0000:00:1f.2"])
        .assert()
        .code(1)
        .stderr("domus: PCI device 0000:00:1f.2 is already assigned to web1 (id 1)\n");
    host.domus()
        .args([
            "attach",
            "plan9term",
            "vbd",
            "file:/var/lib/domus/images/web1.img",
            "xvdb",
        ])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "is already attached to web1 (id 1) as xvda",
        ));
    // The record still parses, so the policy still applies after a crash.
    host.domus()
        .args(["detach", "web1", "0000:00:1f.2"])
        .assert()
        .success();
    host.domus()
        .args(["console", "web1"])
        .write_stdin("crash\n")
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "on_crash restart: restarted as domain 3",
        ));
}

#[test]
fn mem_set_balloons_up_to_maxmem_and_info_outlives_the_domain() {
    let host = Host::new();
    host.domus()
        .arg("create")
        .arg(example("web1.sxp"))
        .assert()
        .success();
    let free = |h: &Host| -> u64 {
        let v: serde_json::Value =
            serde_json::from_str(&h.stdout(&["list", "--json"])).unwrap_or_default();
        v["host"]["free_mib"].as_u64().unwrap_or(0)
    };
    let before = free(&host);
    host.domus()
        .args(["mem-set", "web1", "512"])
        .assert()
        .success();
    assert_eq!(
        host.list_row("web1")
            .and_then(|r| r.split_whitespace().nth(2).map(str::to_string))
            .as_deref(),
        Some("512")
    );
    assert_eq!(free(&host), before - 256);
    host.domus()
        .args(["mem-set", "web1", "1024"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "above the domain's maximum 512 MiB",
        ));
    host.domus().args(["destroy", "web1"]).assert().success();
    let info = host.stdout(&["info", "web1"]);
    assert!(info.contains("state:     gone"), "{info}");
    assert!(info.contains("memory target set to 512 MiB"), "{info}");
    assert!(info.trim_end().ends_with("destroyed"), "{info}");
}

#[test]
fn the_tui_without_a_terminal_says_so_instead_of_crashing() {
    let host = Host::new();
    host.domus()
        .arg("--config-dir")
        .arg(host.dir.path().join("domains"))
        .write_stdin("")
        .assert()
        .code(1)
        .stderr(predicate::str::starts_with(
            "domus: the TUI needs a terminal",
        ));
}

fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(p)
        .map(|m| m.mode() & 0o7777)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Run `domus` with `--state-dir DIR` under umask 022 (the child inherits
/// it; this test binary's other tests do not care).
fn domus_in(state: &Path) -> Command {
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));
    let mut cmd = Command::cargo_bin("domus").unwrap_or_else(|e| panic!("domus binary: {e}"));
    cmd.arg("--state-dir")
        .arg(state)
        .arg("--backend")
        .arg("sim");
    cmd.env_remove("DOMUS_SIM_FAULTS");
    cmd
}

#[test]
fn the_state_dir_and_its_files_are_private_under_umask_022() {
    let host = Host::new();
    let state = host.dir.path().join("fresh/state");
    domus_in(&state)
        .arg("create")
        .arg(example("web1.sxp"))
        .assert()
        .success();
    assert_eq!(mode(&state), 0o700);
    assert_eq!(mode(&state.join("domus.log")), 0o600);
    let file = host.dir.path().join("web1.save");
    domus_in(&state)
        .args(["save", "web1"])
        .arg(&file)
        .assert()
        .success();
    assert_eq!(mode(&file), 0o600, "the saved image holds guest memory");

    // A state directory of ours left open by an older domus: tightened.
    let old = host.dir.path().join("old");
    std::fs::create_dir(&old).unwrap_or_else(|e| panic!("{e}"));
    std::fs::set_permissions(&old, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(old.join("domus.log"), "").unwrap_or_else(|e| panic!("{e}"));
    domus_in(&old).arg("list").assert().success();
    assert_eq!(mode(&old), 0o700);
    assert_eq!(mode(&old.join("domus.log")), 0o600);
    let log = std::fs::read_to_string(old.join("domus.log")).unwrap_or_default();
    assert!(log.contains("tightened from 0755 to 0700"), "{log}");
}

#[test]
fn a_symlinked_state_dir_is_refused_with_one_line_and_left_alone() {
    let host = Host::new();
    let target = host.dir.path().join("target");
    std::fs::create_dir(&target).unwrap_or_else(|e| panic!("{e}"));
    std::fs::set_permissions(&target, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .unwrap_or_else(|e| panic!("{e}"));
    let link = host.dir.path().join("state");
    std::os::unix::fs::symlink(&target, &link).unwrap_or_else(|e| panic!("{e}"));
    domus_in(&link).arg("list").assert().code(1).stderr(format!(
        "domus: {} is a symbolic link, which domus does not follow for its own files: \
         remove it or choose another path with --state-dir\n",
        link.display()
    ));
    assert_eq!(mode(&target), 0o755);
    assert!(!target.join("domus.log").exists());
}

#[test]
fn save_never_overwrites_a_file() {
    let host = Host::new();
    host.domus()
        .arg("create")
        .arg(example("web1.sxp"))
        .assert()
        .success();
    let file = host.dir.path().join("keep.txt");
    std::fs::write(&file, "precious").unwrap_or_else(|e| panic!("{e}"));
    host.domus()
        .args(["save", "web1"])
        .arg(&file)
        .assert()
        .code(1)
        .stderr(format!(
            "domus: {} exists; choose another name or remove it\n",
            file.display()
        ));
    assert_eq!(
        std::fs::read_to_string(&file).ok().as_deref(),
        Some("precious")
    );
    assert!(host.list_row("web1").is_some(), "the domain is untouched");
}

#[test]
fn check_refuses_fifos_and_devices_at_once_and_goes_on() {
    let host = Host::new();
    let fifo = host.dir.path().join("blocked.sxp");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600))
        .unwrap_or_else(|e| panic!("{e}"));
    let big = host.dir.path().join("big.sxp");
    std::fs::File::create(&big)
        .and_then(|f| f.set_len(8 << 30))
        .unwrap_or_else(|e| panic!("{e}"));
    host.domus()
        .timeout(std::time::Duration::from_secs(20))
        .arg("check")
        .arg(&fifo)
        .arg("/dev/zero")
        .arg(&big)
        .arg(example("web1.sxp"))
        .assert()
        .code(1)
        .stdout(predicate::str::contains("web1.sxp: ok"))
        .stderr(format!(
            "{} is not a regular file (a FIFO): domus uses only regular files here\n\
             /dev/zero is not a regular file (a character device): domus uses only regular files here\n\
             {} is 8 GiB; domus reads files of at most 1 MiB\n",
            fifo.display(),
            big.display()
        ));
}

#[test]
fn mem_set_below_the_floor_needs_force() {
    let host = Host::new();
    host.domus()
        .args(["mem-set", "0", "1"])
        .assert()
        .code(1)
        .stderr(
            "domus: setting Domain-0's memory below 512 MiB can starve the host's toolstack; \
             add --force if you mean it\n",
        );
    host.domus()
        .arg("create")
        .arg(example("web1.sxp"))
        .assert()
        .success();
    host.domus()
        .args(["mem-set", "web1", "32"])
        .assert()
        .code(1)
        .stderr(
            "domus: setting web1's memory below 64 MiB can make its kernel kill processes; \
             add --force if you mean it\n",
        );
    host.domus()
        .args(["mem-set", "web1", "64"])
        .assert()
        .success();
    host.domus()
        .args(["mem-set", "--force", "web1", "32"])
        .assert()
        .success();
    let row = host.list_row("web1").unwrap_or_default();
    assert_eq!(row.split_whitespace().nth(2), Some("32"), "{row}");
    host.domus()
        .args(["mem-set", "Domain-0", "1024", "--force"])
        .assert()
        .success();
}

/// `domus create NAME` finds the library's config by file or domain name.
#[test]
fn create_resolves_library_names() {
    let host = Host::new();
    let lib = host.dir.path().join("lib");
    let lib_s = lib.to_string_lossy().to_string();
    // The library is seeded with the examples on this first create.
    let (ok, out, err) = host.run(&["--config-dir", &lib_s, "create", "web1"]);
    assert!(ok, "{err}");
    assert!(out.contains("web1 created"), "{out}");
    // plan9.sxp holds the domain plan9term: either name works.
    let (ok, out, err) = host.run(&["--config-dir", &lib_s, "create", "plan9term"]);
    assert!(ok, "{err}");
    assert!(out.contains("plan9term created"), "{out}");
    let (ok, _, err) = host.run(&["--config-dir", &lib_s, "create", "nosuch"]);
    assert!(!ok);
    assert!(
        err.contains("no config of that name in the library"),
        "{err}"
    );
}

/// `start` refuses a suspended domain (a fresh boot would lose its
/// memory); `--wait --timeout` past what a clock holds is no crash.
#[test]
fn start_refuses_a_suspended_domain_and_huge_timeouts_do_not_crash() {
    let host = Host::new();
    let cfg = host.dir.path().join("s.sxp");
    std::fs::write(
        &cfg,
        "(vm (name susp) (memory 64) (image (linux (kernel /k))) (on_poweroff preserve))",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let (ok, _, err) = host.run(&["create", &cfg.to_string_lossy()]);
    assert!(ok, "{err}");
    let out = host
        .domus()
        .args([
            "reboot",
            "susp",
            "--wait",
            "--timeout",
            "18446744073709551615",
        ])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_ne!(out.status.code(), Some(101), "{out:?}");
    let (ok, _, err) = host.run(&["shutdown", "susp", "--suspend", "--wait"]);
    assert!(ok, "{err}");
    let (ok, _, err) = host.run(&["start", "susp"]);
    assert!(!ok);
    assert!(err.contains("suspended"), "{err}");
}

/// `domus keys` prints the keymap in the keys file's form with the
/// operator's overrides applied; a moved key is a note (exit 0), a line
/// that cannot be used a problem at file:line:col (exit 1).
#[test]
fn keys_prints_the_keymap_and_judges_the_keys_file() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let keys = dir.path().join("domus/keys");
    std::fs::create_dir_all(dir.path().join("domus")).unwrap_or_else(|e| panic!("{e}"));
    let run = |text: &str| {
        std::fs::write(&keys, text).unwrap_or_else(|e| panic!("{e}"));
        let mut cmd = Command::cargo_bin("domus").unwrap_or_else(|e| panic!("{e}"));
        cmd.env("XDG_CONFIG_HOME", dir.path()).arg("keys");
        cmd.assert()
    };
    run("# none\n")
        .success()
        .stdout(predicate::str::contains(
            "domains.pause = p  # Pause / unpause",
        ))
        .stdout(predicate::str::contains("global.prev-tab = Shift-Tab  #"))
        .stdout(predicate::str::contains(
            "# domains.unpause =   # no key (:unpause)",
        ))
        .stderr("");
    run("global.quit = j\n")
        .success()
        .stdout(predicate::str::contains("global.quit = j  #"))
        .stderr(format!(
            "domus: {}:1:15: j moved from global.down to global.quit\n",
            keys.display()
        ));
    run("domains.pause = Alt-p\ndomains.pause = :\n")
        .code(1)
        .stdout(predicate::str::contains("domains.pause = Alt-p  #"))
        .stderr(predicate::str::contains(format!(
            "{}:2:17: : is global.palette's everywhere it applies",
            keys.display()
        )));
}

/// `list --json` carries each domain's I/O totals where the backend counts
/// them, and leaves them out where there is nothing to count.
#[test]
fn list_json_carries_io_counters() {
    let host = Host::new();
    host.domus()
        .arg("create")
        .arg(example("web1.sxp"))
        .assert()
        .success();
    std::thread::sleep(std::time::Duration::from_millis(200));
    let text = host.stdout(&["list", "--json"]);
    let v: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    let domains = v["domains"].as_array().unwrap_or_else(|| panic!("{text}"));
    let web1 = domains
        .iter()
        .find(|d| d["name"] == "web1")
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        web1["vbd"]["wr_bytes"].as_u64().is_some_and(|b| b > 0),
        "{web1}"
    );
    assert!(
        web1["net"]["tx_bytes"].as_u64().is_some_and(|b| b > 0),
        "{web1}"
    );
    let dom0 = domains
        .iter()
        .find(|d| d["domid"] == 0)
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        dom0.get("vbd").is_none() && dom0.get("net").is_none(),
        "{dom0}"
    );
}

/// A config file whose name has a line break is named escaped: each
/// message of `check` stays on one line.
#[test]
fn check_names_a_file_with_a_line_break_on_one_line() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let file = dir.path().join("bad\nname.sxp");
    std::fs::write(&file, "").unwrap_or_else(|e| panic!("{e}"));
    let out = Command::cargo_bin("domus")
        .unwrap_or_else(|e| panic!("{e}"))
        .arg("check")
        .arg(&file)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("bad\\nname.sxp"), "{err}");
}

/// A fleet from the command line: the simulator as `local` and libvirt's
/// test driver (in-process, no daemon) as `lab`. HOST:DOMAIN and --on name
/// the host; a bare name on one host is found there; the table and JSON
/// name each domain's host; a hosts file others may write is refused.
#[test]
fn a_fleet_from_the_command_line() {
    let host = Host::new();
    let fleet = || {
        let mut c = host.domus();
        c.args(["--connect", "local", "--connect", "lab=test:///default"]);
        c
    };
    // create needs a host in a fleet.
    fleet()
        .arg("create")
        .arg(example("web1.sxp"))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("choose one with --on HOST"));
    fleet()
        .args(["--on", "local", "create"])
        .arg(example("web1.sxp"))
        .assert()
        .success();
    fleet().args(["pause", "local:web1"]).assert().success();
    assert_eq!(host.state("web1").as_deref(), Some("--p---"));
    fleet().args(["unpause", "web1"]).assert().success();
    fleet()
        .args(["info", "lab:test"])
        .assert()
        .success()
        .stdout(predicate::str::contains("name:      test"));
    let table = String::from_utf8_lossy(
        &fleet()
            .arg("list")
            .output()
            .unwrap_or_else(|e| panic!("{e}"))
            .stdout,
    )
    .into_owned();
    assert!(table.starts_with("Host "), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("local ") && l.contains("web1")),
        "{table}"
    );
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("lab ") && l.contains("test")),
        "{table}"
    );
    let json = String::from_utf8_lossy(
        &fleet()
            .args(["list", "--json"])
            .output()
            .unwrap_or_else(|e| panic!("{e}"))
            .stdout,
    )
    .into_owned();
    let v: serde_json::Value =
        serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}"));
    let hosts: Vec<&str> = v["hosts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|h| h["name"].as_str())
        .collect();
    assert_eq!(hosts, ["local", "lab"], "{json}");
    assert!(
        v["domains"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|d| d["host"] == "lab" && d["name"] == "test"),
        "{json}"
    );
    // A hosts file others may write names what domus runs: refused.
    let file = host.dir.path().join("hosts");
    std::fs::write(&file, "lab = test:///default\n").unwrap_or_else(|e| panic!("{e}"));
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o666))
        .unwrap_or_else(|e| panic!("{e}"));
    host.domus()
        .arg("--hosts-file")
        .arg(&file)
        .arg("list")
        .assert()
        .code(1)
        .stderr(predicate::str::contains("writable by others"));
    // A NUL in it is reported where it is.
    std::fs::write(&file, "lab = test:///default\0\n").unwrap_or_else(|e| panic!("{e}"));
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))
        .unwrap_or_else(|e| panic!("{e}"));
    host.domus()
        .arg("--hosts-file")
        .arg(&file)
        .arg("list")
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            ":1:7: expected a URI without control characters",
        ));
}
