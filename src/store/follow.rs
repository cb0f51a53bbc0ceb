//! Following the store without polling: every commit of any domus process
//! writes SQLite's WAL file (`domus.db-wal`), so an inotify watch on the
//! state directory wakes a reader exactly when there may be something new
//! (`domus events --follow`, the TUI, `shutdown --wait`).

use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};

pub struct Changes {
    rx: mpsc::Receiver<()>,
    _watcher: Option<RecommendedWatcher>,
}

impl Changes {
    /// Watch the store in `state_dir`. Where inotify is unavailable (or
    /// out of watches) `wait` falls back to sleeping its timeout, which a
    /// caller treats like a change: slower, never stuck.
    pub fn watch(state_dir: &Path) -> Changes {
        let (tx, rx) = mpsc::channel();
        let handler = move |res: notify::Result<notify::Event>| {
            let Ok(ev) = res else { return };
            if !matches!(ev.kind, EventKind::Modify(_) | EventKind::Create(_)) {
                return;
            }
            // Readers touch only `-shm`; a commit writes the WAL (or, after
            // a checkpoint, the database itself).
            let commit = ev.paths.iter().any(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n == "domus.db-wal" || n == "domus.db")
            });
            if commit {
                let _ = tx.send(());
            }
        };
        let watcher = notify::recommended_watcher(handler).and_then(|mut w| {
            w.watch(state_dir, RecursiveMode::NonRecursive)?;
            Ok(w)
        });
        match watcher {
            Ok(w) => Changes {
                rx,
                _watcher: Some(w),
            },
            Err(e) => {
                tracing::warn!(dir = %state_dir.display(), error = %e, "cannot watch the state store; checking it now and then instead");
                let (_, rx) = mpsc::channel();
                Changes { rx, _watcher: None }
            }
        }
    }

    /// A follower with nothing to watch (an in-memory store): `wait`
    /// sleeps its timeout.
    pub fn none() -> Changes {
        let (_, rx) = mpsc::channel();
        Changes { rx, _watcher: None }
    }

    /// Wait up to `timeout` for a commit; true when one came (several
    /// pending ones count as one), or when nothing can be watched.
    pub fn wait(&self, timeout: Duration) -> bool {
        if self._watcher.is_none() {
            std::thread::sleep(timeout);
            return true;
        }
        match self.rx.recv_timeout(timeout) {
            Ok(()) => {
                while self.rx.try_recv().is_ok() {}
                true
            }
            Err(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::journal::Subject;
    use crate::store::{DomainEvent, Source, SourceKind, Store};

    #[test]
    fn a_commit_in_another_connection_wakes_the_follower() {
        let dir = tempfile::tempdir().unwrap();
        let writer = Store::open(dir.path(), "sim").unwrap();
        let changes = Changes::watch(dir.path());
        assert!(!changes.wait(Duration::from_millis(100)), "nothing yet");
        writer
            .write(|tx| {
                tx.append(
                    1,
                    &Subject::default(),
                    Source::new(SourceKind::Cli),
                    &DomainEvent::Paused,
                )
                .map(drop)
            })
            .unwrap();
        assert!(changes.wait(Duration::from_secs(5)), "woken by the commit");
        // A reader does not wake followers.
        let reader = Store::open(dir.path(), "sim").unwrap();
        let _ = changes.wait(Duration::from_millis(200));
        reader.read(|tx| tx.last_seq()).unwrap();
        assert!(
            !changes.wait(Duration::from_millis(300)),
            "a read is no change"
        );
    }
}
