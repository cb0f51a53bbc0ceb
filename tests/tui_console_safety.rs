//! Hostile guest output through the console view: nothing the guest sends
//! may reach the host terminal except as drawn cells.

use crossterm::event::KeyCode;
use domus::tui::action::Action;
use domus::tui::testing::{Harness, HarnessOptions};
use ratatui::backend::CrosstermBackend;
use ratatui::layout::Rect;
use ratatui::{Terminal, TerminalOptions, Viewport};

const FIXTURE: &[u8] = include_bytes!("fixtures/hostile-console.bin");

/// Collects what the backend writes.
#[derive(Clone, Default)]
struct Capture(std::rc::Rc<std::cell::RefCell<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.borrow_mut().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn hostile_escape_sequences_never_reach_the_host_terminal() {
    let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let config = root.path().join("domains");
    let mut h = Harness::new(HarnessOptions {
        size: (120, 36),
        theme: "dark",
        read_only: false,
        config_dir: &config,
        recovery_dir: &root.path().join("recovery"),
        state_dir: None,
    });
    let (cfg, _) =
        domus::config::load_file(&config.join("web1.sxp")).unwrap_or_else(|e| panic!("{e}"));
    let domid = h
        .engine()
        .create(&cfg, None)
        .unwrap_or_else(|e| panic!("{e}"));
    h.tick(1.0);
    h.key(KeyCode::Down);
    h.key(KeyCode::Char('c'));
    // Replay the recorded stream in awkward chunk sizes.
    for chunk in FIXTURE.chunks(7) {
        h.dispatch(Action::ConsoleBytes(
            domus::fleet::DomKey::local(domid),
            chunk.to_vec(),
        ));
    }
    let screen = h.screen();
    assert!(screen.contains("red text and after the storm"), "{screen}");
    insta::assert_snapshot!("hostile_console", screen);

    // Draw the same state through the real crossterm backend into a buffer:
    // these are the bytes the host terminal would receive.
    let capture = Capture::default();
    let backend = CrosstermBackend::new(capture.clone());
    let mut term = Terminal::with_options(
        backend,
        TerminalOptions {
            viewport: Viewport::Fixed(Rect::new(0, 0, 120, 36)),
        },
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let app = &h.app;
    term.draw(|f| domus::tui::ui::draw(f, app))
        .unwrap_or_else(|e| panic!("{e}"));
    let out = capture.0.borrow().clone();
    // The diff skips blank cells, so words arrive separately.
    for word in [&b"red text"[..], b"after", b"storm"] {
        assert!(contains(&out, word), "the guest's text is drawn");
    }
    for bad in [
        &b"\x1b]"[..],
        b"\x1bP",
        b"PWNED",
        b"NESTED-PWN",
        b"C1-PWN",
        b"ZXZpbCBjbGlwYm9hcmQ",
        b"\x1b[?1000h",
        b"\x1b[?1049h",
        b"\x1b[8;100;300t",
        b"\xc2\x9d",
    ] {
        assert!(
            !contains(&out, bad),
            "{:?} reached the host output",
            String::from_utf8_lossy(bad)
        );
    }
}
