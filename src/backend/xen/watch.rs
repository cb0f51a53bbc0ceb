//! `xenstore-watch PATH` as a source of wake-ups: it prints a line each
//! time the watch fires (once on registration, then per change), so a
//! supervisor sleeps until Xen has news instead of polling `xl list`.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub struct XsWatch {
    child: Child,
    fired: mpsc::Receiver<()>,
}

impl XsWatch {
    /// Start watching `path` (`@releaseDomain`, a xenstore key); `None`
    /// when the tool is missing or does not start.
    pub fn spawn(program: &Path, path: &str) -> Option<XsWatch> {
        let mut child = Command::new(program)
            .arg(path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| tracing::warn!(error = %e, "xenstore-watch: falling back to polling"))
            .ok()?;
        let out = child.stdout.take()?;
        let (tx, fired) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                if line.is_err() || tx.send(()).is_err() {
                    return;
                }
            }
        });
        Some(XsWatch { child, fired })
    }

    /// Wait up to `timeout` for the watch to fire (what is pending counts
    /// once).
    pub fn next(&self, timeout: Duration) {
        if self.fired.recv_timeout(timeout).is_ok() {
            while self.fired.try_recv().is_ok() {}
        }
    }

    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for XsWatch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::time::Instant;

    #[test]
    fn each_line_wakes_the_waiter() {
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("xenstore-watch");
        std::fs::write(
            &fake,
            "#!/bin/sh\necho \"$1\"\nsleep 0.3\necho \"$1\"\nsleep 30\n",
        )
        .unwrap();
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut w = XsWatch::spawn(&fake, "@releaseDomain").unwrap();
        let t = Instant::now();
        w.next(Duration::from_secs(10));
        w.next(Duration::from_secs(10));
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "woken by lines, not the timeout"
        );
        assert!(w.alive());
        let t = Instant::now();
        w.next(Duration::from_millis(200));
        assert!(
            t.elapsed() >= Duration::from_millis(200),
            "nothing more: waits"
        );
    }

    #[test]
    fn a_missing_tool_is_none() {
        assert!(XsWatch::spawn(Path::new("/nonexistent/xenstore-watch"), "x").is_none());
    }
}
