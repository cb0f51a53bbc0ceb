//! The TUI, unchanged, on the QEMU backend: the real binary in a
//! pseudo-terminal builds the test guest from the library, shows its real
//! console, attaches a disk through the device form that the guest then
//! sees, and destroys it, leaving no QEMU behind. TCG where the CPU has no
//! vmx/svm (said loudly).

mod common;

use std::path::Path;
use std::time::Duration;

use common::guests::{
    announce_accel, console_until, guest_config, guest_files, kill_qemus_under, list, make_image,
    qemu_engine, qemu_processes_under, wait_for, wait_for_shell,
};
use common::pty::Pty;
use domus::engine::{DomainEvent, JournalEntry, SourceKind};
use portable_pty::CommandBuilder;

/// A key as a person types it, not all at once.
fn key(pty: &mut Pty, bytes: &[u8]) {
    pty.press(bytes);
    std::thread::sleep(Duration::from_millis(150));
}

struct Cleanup<'a>(&'a Path);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        kill_qemus_under(self.0);
    }
}

#[test]
fn the_tui_drives_a_real_guest() {
    announce_accel();
    let (kernel, _) = guest_files();
    let guest_dir = kernel.parent().unwrap_or(Path::new("."));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let runtime = dir.path().join("run");
    let _cleanup = Cleanup(&runtime);
    let disk = dir.path().join("disk.qcow2");
    make_image(&disk, "qcow2", "16M");

    let mut cmd = CommandBuilder::new(env!("CARGO_BIN_EXE_domus"));
    cmd.args(["--backend", "qemu", "--state-dir"]);
    cmd.arg(dir.path().join("state"));
    cmd.arg("--runtime-dir");
    cmd.arg(&runtime);
    cmd.arg("--config-dir");
    cmd.arg(dir.path().join("domains"));
    cmd.env("XDG_CONFIG_HOME", dir.path().join("config"));
    cmd.env("DOMUS_GUEST_DIR", guest_dir);
    cmd.env("TERM", "xterm-256color");
    let mut pty = Pty::spawn(cmd, 36, 120, |_| {});
    pty.wait_for("qemu backend", "the header", 30);
    // The library offers the test guest; the files sort hvm, plan9, tiny, web1.
    key(&mut pty, b"2");
    pty.wait_for("tiny.sxp", "the library", 10);
    key(&mut pty, b"g");
    key(&mut pty, b"jj");
    key(&mut pty, b"\r");
    pty.wait_for("built tiny as domain 1", "the build", 60);

    // Its real console: the test guest's banner and shell.
    key(&mut pty, b"1");
    key(&mut pty, b"c");
    pty.wait_for("domus test guest", "the guest's banner", 60);
    pty.wait_for("# ", "the guest's shell", 30);
    key(&mut pty, b"\x1d");

    // Attach a disk through the form; the guest sees it.
    key(&mut pty, b"a");
    pty.wait_for("Attach a device to tiny", "the attach form", 10);
    key(&mut pty, disk.display().to_string().as_bytes());
    key(&mut pty, b"\x1b[B"); // Down to the dev field
    key(&mut pty, b"\x15xvdb"); // Ctrl-U, then the name
    key(&mut pty, b"\r");
    pty.wait_for("attached vbd xvdb", "the attach", 30);
    key(&mut pty, b"c");
    key(&mut pty, b"cat /proc/partitions\r");
    pty.wait_for(" vda", "the disk in the guest", 20);
    key(&mut pty, b"\x1d");

    // Leaving the view lets go of the console: the CLI may attach now.
    std::thread::sleep(Duration::from_millis(300));
    let cli = std::process::Command::new(env!("CARGO_BIN_EXE_domus"))
        .args(["--backend", "qemu", "--state-dir"])
        .arg(dir.path().join("state"))
        .arg("--runtime-dir")
        .arg(&runtime)
        .args(["console", "tiny"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        cli.status.success(),
        "domus console after the TUI detached: {}",
        String::from_utf8_lossy(&cli.stderr)
    );

    key(&mut pty, b"d");
    key(&mut pty, b"y");
    pty.wait_for("destroyed tiny", "the destroy", 30);
    key(&mut pty, b"q");
    pty.wait_exit("q");
    assert!(qemu_processes_under(&runtime).is_empty(), "no QEMU left");
}

/// A guest on QEMU crashes twice while a TUI watches and does nothing:
/// its supervisor restarts it, then the restart-loop guard destroys it.
/// Both reach the TUI (status line and Events tab) and `domus events
/// --json`, with who did what: the guest crashed, the supervisor acted.
#[test]
fn a_crash_and_the_loop_guard_reach_a_tui_that_did_nothing() {
    announce_accel();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let runtime = dir.path().join("run");
    let _cleanup = Cleanup(&runtime);
    let mut cmd = CommandBuilder::new(env!("CARGO_BIN_EXE_domus"));
    cmd.args(["--backend", "qemu", "--state-dir"]);
    cmd.arg(dir.path().join("state"));
    cmd.arg("--runtime-dir");
    cmd.arg(&runtime);
    cmd.arg("--config-dir");
    cmd.arg(dir.path().join("domains"));
    cmd.env("XDG_CONFIG_HOME", dir.path().join("config"));
    cmd.env("TERM", "xterm-256color");
    let mut pty = Pty::spawn(cmd, 36, 120, |_| {});
    pty.wait_for("qemu backend", "the header", 30);
    key(&mut pty, b"3");

    // Another process (this test's engine) builds the guest and crashes it.
    let (engine, hv) = qemu_engine(dir.path());
    let config = domus::config::parse_str(&guest_config("crashy", "(on_crash restart)"), "t")
        .map(|(c, _)| c)
        .unwrap_or_else(|e| panic!("{e}"));
    let first = engine
        .create(&config, None)
        .unwrap_or_else(|e| panic!("{e}"));
    wait_for_shell(&engine, first);
    let crash = |domid| {
        let said = console_until(
            &engine,
            domid,
            Some("echo c > /proc/sysrq-trigger"),
            20,
            |t| t.contains("Kernel panic"),
        );
        assert!(said.contains("Kernel panic"), "no panic: {said:?}");
    };
    crash(first);
    let second = wait_for("the supervisor to restart the guest", 60, || {
        list(hv.as_ref())
            .into_iter()
            .find(|d| d.name == "crashy" && d.domid > first && d.is_active())
            .filter(|d| engine.view(d.domid).is_ok_and(|v| v.record.is_some()))
    });
    wait_for_shell(&engine, second.domid);
    // Again, well within xend's 20 s: the loop guard refuses and destroys.
    crash(second.domid);
    pty.wait_for(
        "restart refused",
        "the loop guard on the TUI's status line",
        60,
    );
    let screen = pty.text();
    for line in ["restarted as domain", "restart refused"] {
        assert!(
            screen.contains(line),
            "the Events tab lacks {line:?}:\n{screen}"
        );
    }

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_domus"))
        .args(["--backend", "qemu", "--state-dir"])
        .arg(dir.path().join("state"))
        .arg("--runtime-dir")
        .arg(&runtime)
        .args(["events", "--json", "--all", "crashy"])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let entries: Vec<JournalEntry> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let by = |f: &dyn Fn(&DomainEvent) -> bool| {
        entries
            .iter()
            .filter(|e| f(&e.event))
            .map(|e| e.source.kind)
            .collect::<Vec<_>>()
    };
    let crashes = by(&|e| {
        matches!(
            e,
            DomainEvent::ShutDown {
                reason: domus::backend::ShutdownReason::Crash
            }
        )
    });
    assert_eq!(
        crashes,
        [SourceKind::Guest, SourceKind::Guest],
        "{entries:#?}"
    );
    assert_eq!(
        by(&|e| matches!(e, DomainEvent::Restarted { .. })),
        [SourceKind::Supervisor]
    );
    assert_eq!(
        by(&|e| matches!(e, DomainEvent::RestartRefused { .. })),
        [SourceKind::Supervisor]
    );
    assert!(
        by(&|e| matches!(e, DomainEvent::Destroyed)).contains(&SourceKind::Supervisor),
        "{entries:#?}"
    );
    key(&mut pty, b"q");
    pty.wait_exit("q");
    assert!(qemu_processes_under(&runtime).is_empty(), "no QEMU left");
}
