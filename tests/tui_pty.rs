//! The real `domus` binary in a pseudo-terminal: it draws, answers keys,
//! and leaves the terminal as it found it.

mod common;

use std::time::Duration;

use common::pty::Pty;
use portable_pty::CommandBuilder;

#[test]
fn the_binary_draws_answers_keys_and_restores_the_terminal() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut lflag_before = None;
    let mut cmd = CommandBuilder::new(env!("CARGO_BIN_EXE_domus"));
    cmd.args(["--backend", "sim", "--state-dir"]);
    cmd.arg(dir.path().join("state"));
    cmd.arg("--config-dir");
    cmd.arg(dir.path().join("domains"));
    cmd.env("XDG_CONFIG_HOME", dir.path().join("config"));
    cmd.env("TERM", "xterm-256color");
    let mut pty = Pty::spawn(cmd, 36, 120, |m| {
        lflag_before = m.get_termios().map(|t| t.local_flags.bits());
    });
    pty.wait_for("Domain-0", "the domain table", 30);
    assert!(pty.text().contains("1 domain: 1 running"), "{}", pty.text());

    // Build web1 from the library tab, then see it in the table.
    pty.press(b"2");
    pty.wait_for("web1.sxp", "the config library", 30);
    // A config copied in by hand (scp, vim) shows without a key pressed.
    std::fs::write(
        dir.path().join("domains").join("copied.cfg"),
        "name = \"copied\"\nmemory = 64\nkernel = \"/k\"\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    pty.wait_for("copied.cfg", "the copied config, from the library watch", 5);
    pty.press(b"G");
    pty.press(b"\r");
    pty.wait_for("built web1 as domain 1", "the build", 30);

    pty.press(b"?");
    pty.wait_for("Help", "the help overlay", 30);
    pty.press(b"\x1b");
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !pty.text().contains("Esc closes"),
        "help closed: {}",
        pty.text()
    );

    pty.press(b"q");
    pty.wait_exit("q");
    std::thread::sleep(Duration::from_millis(200));

    let (alternate, cursor_hidden, raw) = {
        let g = pty.shared.lock().unwrap_or_else(|e| e.into_inner());
        (
            g.0.screen().alternate_screen(),
            g.0.screen().hide_cursor(),
            g.1.clone(),
        )
    };
    assert!(!alternate, "left the alternate screen");
    assert!(!cursor_hidden, "the cursor is visible again");
    let text = String::from_utf8_lossy(&raw);
    assert!(
        text.contains("\x1b[?1000l") || text.contains("\x1b[?1003l"),
        "mouse capture was turned off"
    );
    // Raw mode is undone: the terminal is canonical and echoes again.
    let lflag_after = pty.master.get_termios().map(|t| t.local_flags.bits());
    assert_eq!(lflag_after, lflag_before, "terminal local modes restored");
}
