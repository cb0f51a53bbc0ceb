//! The real `domus` binary in a pseudo-terminal: what it draws (through a
//! vt100 parser, with the raw bytes kept) and a way to press keys.

use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use portable_pty::{Child, CommandBuilder, MasterPty, PtySize, native_pty_system};

pub struct Pty {
    pub master: Box<dyn MasterPty + Send>,
    pub child: Box<dyn Child + Send + Sync>,
    /// The screen and every byte the program wrote.
    pub shared: Arc<Mutex<(vt100::Parser, Vec<u8>)>>,
    keys: Box<dyn Write + Send>,
}

impl Pty {
    /// Start `cmd` in a fresh pty of `rows`×`cols`; `before` runs on the
    /// master before the program starts (to record its modes).
    pub fn spawn(
        cmd: CommandBuilder,
        rows: u16,
        cols: u16,
        before: impl FnOnce(&dyn MasterPty),
    ) -> Pty {
        let pair = native_pty_system()
            .openpty(PtySize {
                rows,
                cols,
                pixel_width: 0,
                pixel_height: 0,
            })
            .unwrap_or_else(|e| panic!("openpty: {e}"));
        before(pair.master.as_ref());
        let child = pair
            .slave
            .spawn_command(cmd)
            .unwrap_or_else(|e| panic!("spawn: {e}"));
        drop(pair.slave);
        let shared = Arc::new(Mutex::new((vt100::Parser::new(rows, cols, 0), Vec::new())));
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
        let keys = pair.master.take_writer().unwrap_or_else(|e| panic!("{e}"));
        Pty {
            master: pair.master,
            child,
            shared,
            keys,
        }
    }

    pub fn text(&self) -> String {
        self.shared
            .lock()
            .map(|g| g.0.screen().contents())
            .unwrap_or_default()
    }

    pub fn wait_for(&self, needle: &str, what: &str, secs: u64) {
        let deadline = Instant::now() + Duration::from_secs(secs);
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

    pub fn press(&mut self, bytes: &[u8]) {
        self.keys.write_all(bytes).unwrap_or_else(|e| panic!("{e}"));
        self.keys.flush().unwrap_or_else(|e| panic!("{e}"));
    }

    /// Wait for the program to exit; its status must be success.
    pub fn wait_exit(&mut self, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(s)) = self.child.try_wait() {
                assert!(s.success(), "exit status {s:?}");
                return;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("domus did not quit on {what}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
