//! A hostile guest on `domus console`, through the real binary in a pty:
//! the sim guest's `printf` writes every sequence the console filter must
//! stop, and the test reads the raw bytes the terminal received.
//!
//! The guest shell echoes the typed command line, so every escape is
//! written in octal (`\033`): its echo is the text backslash-0-3-3, which
//! can never match the raw bytes looked for.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::pty::Pty;
use portable_pty::CommandBuilder;

/// Sequences a guest must not get to the operator's terminal: the bytes to
/// look for, and how `printf` is told to write them.
const FORBIDDEN: &[(&str, &[u8], &str)] = &[
    ("DECID", b"\x1bZ", r"\033Z"),
    ("DECREQTPARM", b"\x1b[0x", r"\033[0x"),
    ("DECRQTSR", b"\x1b[1$u", r"\033[1$u"),
    ("private SGR", b"\x1b[?1m", r"\033[?1m"),
    ("modifyOtherKeys", b"\x1b[>4m", r"\033[>4m"),
    ("ENQ", b"\x05", r"\005"),
    ("BEL", b"\x07", r"\007"),
    ("raw 8-bit CSI", b"\x9b", r"\23331m"),
    ("raw 8-bit OSC", b"\x9d", r"\2350;c1-title\007"),
    ("UTF-8 encoded CSI", b"\xc2\x9b", r"\302\23331m"),
    ("mouse 1000", b"\x1b[?1000h", r"\033[?1000h"),
    ("mouse 1002", b"\x1b[?1002h", r"\033[?1002h"),
    ("mouse 1003", b"\x1b[?1003h", r"\033[?1003h"),
    ("mouse SGR", b"\x1b[?1006h", r"\033[?1006h"),
    ("mouse urxvt", b"\x1b[?1015h", r"\033[?1015h"),
    ("focus events", b"\x1b[?1004h", r"\033[?1004h"),
    ("bracketed paste", b"\x1b[?2004h", r"\033[?2004h"),
    ("alternate screen 1049", b"\x1b[?1049h", r"\033[?1049h"),
    ("alternate screen 47", b"\x1b[?47h", r"\033[?47h"),
    ("alternate screen 1047", b"\x1b[?1047h", r"\033[?1047h"),
    ("G0 line drawing", b"\x1b(0", r"\033(0"),
    ("G1 line drawing", b"\x1b)0", r"\033)0"),
    ("SO", b"\x0e", r"\016"),
    ("SI", b"\x0f", r"\017"),
    ("hidden cursor", b"\x1b[?25l", r"\033[?25l"),
    ("cursor position request", b"\x1b[6n", r"\033[6n"),
    ("window title", b"\x1b]", r"\033]0;pwned\007"),
    ("clipboard write", b"\x1b]52", r"\033]52;c;ZXZpbA==\033\\"),
    ("DCS", b"\x1bP", r"\033P+q544e\033\\"),
    ("full reset", b"\x1bc", r"\033c"),
    ("DECALN", b"\x1b#8", r"\033#8"),
    ("keypad mode", b"\x1b=", r"\033="),
];

/// Sequences a guest may send: colours, cursor movement, erasing.
const ALLOWED: &[(&[u8], &str)] = &[
    (b"\x1b[31m", r"\033[31m"),
    (b"\x1b[38;5;208m", r"\033[38;5;208m"),
    (b"\x1b[0m", r"\033[0m"),
    (b"\x1b[2C", r"\033[2C"),
    (b"\x1b[1A", r"\033[1A"),
    (b"\x1b[1B", r"\033[1B"),
    (b"\x1b7", r"\0337"),
    (b"\x1b8", r"\0338"),
    (b"\x1b[K", r"\033[K"),
    (b"\x1b[1P", r"\033[1P"),
];

/// What the reset written on detach must undo, listed here rather than
/// taken from the constant, so a reset that loses a part fails.
const RESET_PARTS: &[&[u8]] = &[
    b"\x1b[?1000l",
    b"\x1b[?1002l",
    b"\x1b[?1003l",
    b"\x1b[?1005l",
    b"\x1b[?1006l",
    b"\x1b[?1015l",
    b"\x1b[?1004l",
    b"\x1b[?2004l",
    b"\x1b[?1049l",
    b"\x1b(B",
    b"\x0f",
    b"\x1b[?25h",
    b"\x1b[0m",
    b"\x1b[r",
];

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn rfind(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).rposition(|w| w == needle)
}

fn raw(pty: &Pty) -> Vec<u8> {
    pty.shared
        .lock()
        .map(|g| g.1.clone())
        .unwrap_or_else(|e| e.into_inner().1.clone())
}

fn wait_raw(pty: &Pty, needle: &[u8], what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = raw(pty);
        if find(&got, needle).is_some() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; got {:?}",
            String::from_utf8_lossy(&got)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The bytes between two markers printed by the guest.
fn between<'a>(hay: &'a [u8], start: &[u8], end: &[u8]) -> &'a [u8] {
    let from = find(hay, start).unwrap_or_else(|| panic!("no {start:?}")) + start.len();
    let to = from + find(&hay[from..], end).unwrap_or_else(|| panic!("no {end:?} after {start:?}"));
    &hay[from..to]
}

fn domus(state: &Path) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_domus"));
    cmd.arg("--state-dir")
        .arg(state)
        .args(["--backend", "sim"])
        .env_remove("DOMUS_SIM_FAULTS");
    cmd
}

/// `domus console web1` in a pty, on a fresh sim host with web1 built
/// from the example, once the guest's prompt is showing.
fn console_on_web1(dir: &Path) -> Pty {
    let state = dir.join("state");
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/examples/web1.sxp");
    let out = domus(&state)
        .arg("create")
        .arg(&example)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        out.status.success(),
        "create: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let mut cmd = CommandBuilder::new(env!("CARGO_BIN_EXE_domus"));
    cmd.arg("--state-dir");
    cmd.arg(&state);
    cmd.args(["--backend", "sim", "console", "web1"]);
    cmd.env("TERM", "xterm-256color");
    cmd.env("XDG_CONFIG_HOME", dir.join("config"));
    cmd.env_remove("DOMUS_SIM_FAULTS");
    let pty = Pty::spawn(cmd, 36, 120, |_| {});
    wait_raw(&pty, b"Welcome to web1", "the boot log");
    wait_raw(&pty, b"/ # ", "the prompt");
    pty
}

#[test]
fn a_hostile_guest_cannot_reach_the_operators_terminal() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut pty = console_on_web1(dir.path());

    // Markers are written with an escape too (`\055` is `-`), so only the
    // guest's output, not the echo, matches them.
    let mut bad = String::from(r"printf hostile\055begin");
    for (_, _, format) in FORBIDDEN {
        bad.push_str(format);
        bad.push('|');
    }
    bad.push_str(r"hostile\055end\n");
    pty.press(bad.as_bytes());
    pty.press(b"\r");
    wait_raw(&pty, b"hostile-end", "the hostile printf");

    let mut good = String::from(r"printf allowed\055begin");
    for (_, format) in ALLOWED {
        good.push_str(format);
        good.push('.');
    }
    good.push_str(r"allowed\055end\n");
    pty.press(good.as_bytes());
    pty.press(b"\r");
    wait_raw(&pty, b"allowed-end", "the allowed printf");

    pty.press(&[0x1d]);
    pty.wait_exit("Ctrl-]");
    wait_raw(&pty, b"[detached from web1]", "the detach message");
    let got = raw(&pty);

    // The reset comes after everything the guest printed.
    let reset_at = rfind(&got, domus::console::RESET_TERMINAL).unwrap_or_else(|| {
        panic!(
            "no reset sequence after detach: {:?}",
            String::from_utf8_lossy(&got)
        )
    });
    let end_at = rfind(&got, b"allowed-end").unwrap_or_else(|| panic!("no end marker"));
    assert!(reset_at > end_at, "the reset follows the guest's output");
    let reset = &got[reset_at..];
    for part in RESET_PARTS {
        assert!(
            find(reset, part).is_some(),
            "the reset holds {:?}",
            String::from_utf8_lossy(part)
        );
    }
    let guest = &got[..reset_at];

    for (what, bytes, _) in FORBIDDEN {
        assert!(
            find(guest, bytes).is_none(),
            "{what} ({:?}) reached the terminal",
            String::from_utf8_lossy(bytes)
        );
    }
    let text = std::str::from_utf8(guest)
        .unwrap_or_else(|e| panic!("the guest's output is not UTF-8: {e}"));
    assert!(
        !text.chars().any(|c| ('\u{80}'..='\u{9f}').contains(&c)),
        "a C1 control reached the terminal"
    );
    // Between the markers only the separators are left (the text inside
    // dropped strings goes with them; a dropped 8-bit CSI leaves its
    // parameters as text).
    let hostile = between(guest, b"hostile-begin", b"hostile-end");
    let mut expected = Vec::new();
    for (what, _, _) in FORBIDDEN {
        if what.starts_with("raw 8-bit CSI") || what.starts_with("UTF-8 encoded CSI") {
            expected.extend_from_slice(b"31m");
        }
        if *what == "raw 8-bit OSC" {
            expected.extend_from_slice(b"0;c1-title");
        }
        expected.push(b'|');
    }
    assert_eq!(
        String::from_utf8_lossy(hostile),
        String::from_utf8_lossy(&expected),
        "exactly the text survives"
    );

    // Allowed sequences arrive unchanged, in order.
    let allowed = between(guest, b"allowed-begin", b"allowed-end");
    let mut expected = Vec::new();
    for (bytes, _) in ALLOWED {
        expected.extend_from_slice(bytes);
        expected.push(b'.');
    }
    assert_eq!(
        String::from_utf8_lossy(allowed),
        String::from_utf8_lossy(&expected),
        "allowed sequences pass"
    );
}

/// The guest going away is another way out; the terminal is reset then too.
#[test]
fn the_terminal_is_reset_when_the_guest_powers_off() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut pty = console_on_web1(dir.path());
    pty.press(b"poweroff\r");
    pty.wait_exit("the guest's poweroff");
    wait_raw(&pty, b"shut down (poweroff)", "the closing message");
    let got = raw(&pty);
    let down = find(&got, b"reboot: Power down").unwrap_or_else(|| panic!("no power-down line"));
    let reset = rfind(&got, domus::console::RESET_TERMINAL).unwrap_or_else(|| {
        panic!(
            "no reset sequence after poweroff: {:?}",
            String::from_utf8_lossy(&got)
        )
    });
    assert!(reset > down, "the reset follows the guest's last words");
}
