//! The real `domus` binary in a pseudo-terminal: it draws, answers keys,
//! and leaves the terminal as it found it.

mod common;

use std::time::Duration;

use common::pty::Pty;
use portable_pty::CommandBuilder;

/// The TUI on the simulator, everything it keeps under `dir`.
fn sim_tui(dir: &std::path::Path) -> CommandBuilder {
    let mut cmd = CommandBuilder::new(env!("CARGO_BIN_EXE_domus"));
    cmd.args(["--backend", "sim", "--state-dir"]);
    cmd.arg(dir.join("state"));
    cmd.arg("--config-dir");
    cmd.arg(dir.join("domains"));
    cmd.env("XDG_CONFIG_HOME", dir.join("config"));
    cmd.env("TERM", "xterm-256color");
    cmd
}

#[test]
fn the_binary_draws_answers_keys_and_restores_the_terminal() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut lflag_before = None;
    let cmd = sim_tui(dir.path());
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

/// The theme, sort and filter chosen are there again at the next start.
#[test]
fn preferences_persist_between_runs() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let start = || Pty::spawn(sim_tui(dir.path()), 36, 120, |_| {});
    let mut pty = start();
    pty.wait_for("Domain-0", "the domain table", 30);
    pty.press(b":theme light\r");
    pty.wait_for("theme: light", "the theme switched", 10);
    pty.press(b">");
    pty.wait_for("sort: NAME", "the sort switched", 10);
    pty.press(b"/dom\r");
    std::thread::sleep(Duration::from_millis(300));
    pty.press(b"q");
    pty.wait_exit("q");
    let prefs = dir.path().join("config/domus/prefs.json");
    let text =
        std::fs::read_to_string(&prefs).unwrap_or_else(|e| panic!("{}: {e}", prefs.display()));
    assert!(
        text.contains("\"light\"") && text.contains("\"NAME\""),
        "{text}"
    );
    let mode = std::fs::metadata(&prefs)
        .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777)
        .unwrap_or(0);
    assert_eq!(mode, 0o600);

    let mut pty = start();
    pty.wait_for("Domain-0", "the domain table again", 30);
    let text = pty.text();
    assert!(
        text.contains("theme: light") && text.contains("sort: NAME"),
        "{text}"
    );
    assert!(
        text.contains("filter: dom") || text.contains("Domains (1 of"),
        "{text}"
    );
    pty.press(b"q");
    pty.wait_exit("q");
}

/// The operator's keys file changes the keys of the real binary, and a
/// bad line is reported at its file:line:col without stopping the TUI.
#[test]
fn the_keys_file_rebinds_keys() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let keys = dir.path().join("config/domus/keys");
    std::fs::create_dir_all(dir.path().join("config/domus")).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(&keys, "global.quit = Q\nglobal.hlep = h\n").unwrap_or_else(|e| panic!("{e}"));
    let cmd = sim_tui(dir.path());
    let mut pty = Pty::spawn(cmd, 36, 120, |_| {});
    pty.wait_for("Domain-0", "the domain table", 30);
    pty.wait_for(" Q quit", "the footer names the new key", 10);
    pty.press(b"3");
    pty.wait_for(
        ":2:8: expected a command of global",
        "the bad line, placed",
        10,
    );
    // `q` no longer quits; `Q` does.
    pty.press(b"q");
    std::thread::sleep(Duration::from_millis(500));
    pty.press(b"1");
    pty.wait_for("Domain-0", "still running after q", 10);
    pty.press(b"Q");
    pty.wait_exit("Q");
}

/// The real binary asks the terminal for bracketed paste and treats a
/// paste as text: pasted "dy" on the table destroys nothing; the same in
/// the filter is typed.
#[test]
fn a_paste_is_text_not_keys() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut pty = Pty::spawn(sim_tui(dir.path()), 36, 120, |_| {});
    pty.wait_for("Domain-0", "the domain table", 30);
    let asked = {
        let g = pty.shared.lock().unwrap_or_else(|e| e.into_inner());
        String::from_utf8_lossy(&g.1).contains("\x1b[?2004h")
    };
    assert!(asked, "bracketed paste was turned on");
    pty.press(b"\x1b[200~dy\x1b[201~");
    pty.wait_for("paste ignored here", "the paste refused on the table", 10);
    assert!(!pty.text().contains("Destroy"), "{}", pty.text());
    pty.press(b"/");
    pty.press(b"\x1b[200~Domain\x1b[201~");
    pty.wait_for("/ Domain", "the paste typed into the filter", 10);
    pty.press(b"\r");
    pty.press(b"q");
    pty.wait_exit("q");
    let g = pty.shared.lock().unwrap_or_else(|e| e.into_inner());
    assert!(
        String::from_utf8_lossy(&g.1).contains("\x1b[?2004l"),
        "bracketed paste turned off at exit"
    );
}
