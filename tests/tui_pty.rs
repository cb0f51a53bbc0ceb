//! The real `domus` binary in a pseudo-terminal: it draws, answers keys,
//! and leaves the terminal as it found it.

use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use portable_pty::{CommandBuilder, PtySize, native_pty_system};

struct Screen(Arc<Mutex<(vt100::Parser, Vec<u8>)>>);

impl Screen {
    fn text(&self) -> String {
        self.0
            .lock()
            .map(|g| g.0.screen().contents())
            .unwrap_or_default()
    }

    fn wait_for(&self, needle: &str, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if self.text().contains(needle) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "timed out waiting for {what} ({needle:?}); screen:\n{}",
            self.text()
        );
    }
}

#[test]
fn the_binary_draws_answers_keys_and_restores_the_terminal() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let pty = native_pty_system();
    let pair = pty
        .openpty(PtySize {
            rows: 36,
            cols: 120,
            pixel_width: 0,
            pixel_height: 0,
        })
        .unwrap_or_else(|e| panic!("openpty: {e}"));
    let lflag_before = pair.master.get_termios().map(|t| t.local_flags.bits());

    let mut cmd = CommandBuilder::new(env!("CARGO_BIN_EXE_domus"));
    cmd.args(["--backend", "sim", "--state-dir"]);
    cmd.arg(dir.path().join("state"));
    cmd.arg("--config-dir");
    cmd.arg(dir.path().join("domains"));
    cmd.env("XDG_CONFIG_HOME", dir.path().join("config"));
    cmd.env("TERM", "xterm-256color");
    let mut child = pair
        .slave
        .spawn_command(cmd)
        .unwrap_or_else(|e| panic!("spawn: {e}"));
    drop(pair.slave);

    let shared = Arc::new(Mutex::new((vt100::Parser::new(36, 120, 0), Vec::new())));
    let mut reader = pair
        .master
        .try_clone_reader()
        .unwrap_or_else(|e| panic!("{e}"));
    let sink = Arc::clone(&shared);
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        while let Ok(n) = reader.read(&mut buf) {
            if n == 0 {
                break;
            }
            if let Ok(mut g) = sink.lock() {
                g.0.process(&buf[..n]);
                g.1.extend_from_slice(&buf[..n]);
            }
        }
    });
    let screen = Screen(Arc::clone(&shared));
    let mut keys = pair.master.take_writer().unwrap_or_else(|e| panic!("{e}"));
    let mut press = |bytes: &[u8]| {
        keys.write_all(bytes).unwrap_or_else(|e| panic!("{e}"));
        keys.flush().unwrap_or_else(|e| panic!("{e}"));
    };

    screen.wait_for("Domain-0", "the domain table");
    assert!(
        screen.text().contains("1 domains: 1 running"),
        "{}",
        screen.text()
    );

    // Build web1 from the library tab, then see it in the table.
    press(b"2");
    screen.wait_for("web1.sxp", "the config library");
    press(b"G");
    press(b"\r");
    screen.wait_for("built web1 as domain 1", "the build");

    press(b"?");
    screen.wait_for("Help", "the help overlay");
    press(b"\x1b");
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !screen.text().contains("Esc closes"),
        "help closed: {}",
        screen.text()
    );

    press(b"q");
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Ok(Some(s)) = child.try_wait() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("domus did not quit on q");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "exit status {status:?}");
    std::thread::sleep(Duration::from_millis(200));

    let (alternate, cursor_hidden, raw) = {
        let g = shared.lock().unwrap_or_else(|e| e.into_inner());
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
    let lflag_after = pair.master.get_termios().map(|t| t.local_flags.bits());
    assert_eq!(lflag_after, lflag_before, "terminal local modes restored");
}
