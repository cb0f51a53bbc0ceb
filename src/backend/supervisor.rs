//! The per-domain supervisor slot, shared by the backends that keep one
//! process per domain (QEMU, Xen), as `xl` does: a lock the supervisor holds
//! for its lifetime (one per domain, a second one started in a race just
//! leaves) and a pidfile it writes once it is watching.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};

use super::{BackendError, BackendResult, DomId};

#[derive(Debug, Clone)]
pub struct Slot {
    pub lock: PathBuf,
    pub pid: PathBuf,
}

impl Slot {
    /// `supervisor.lock` and `supervisor.pid` in a domain's directory.
    pub fn in_dir(dir: &Path) -> Slot {
        Slot {
            lock: dir.join("supervisor.lock"),
            pid: dir.join("supervisor.pid"),
        }
    }

    /// The lock, held for the supervisor's lifetime; `None` when another
    /// supervisor holds it.
    pub fn try_lock(&self) -> Option<Flock<File>> {
        if let Some(dir) = self.lock.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&self.lock)
            .ok()?;
        Flock::lock(file, FlockArg::LockExclusiveNonblock).ok()
    }

    /// Say the supervisor is watching (after it holds the lock).
    pub fn mark_ready(&self) {
        let _ = std::fs::write(&self.pid, std::process::id().to_string());
    }

    /// The supervisor's pid while one runs (0 if it has not said yet).
    pub fn running(&self) -> Option<i32> {
        if self.try_lock().is_some() {
            return None;
        }
        Some(
            std::fs::read_to_string(&self.pid)
                .ok()
                .and_then(|p| p.trim().parse().ok())
                .unwrap_or(0),
        )
    }

    /// Start `exe ARGS supervise DOMID` in its own process group, reaped by
    /// a thread of this process, and wait until it is watching.
    pub fn spawn(&self, domid: DomId, exe: &Path, args: &[String]) -> BackendResult<()> {
        use std::os::unix::process::CommandExt;
        if self.running().is_some() {
            return Ok(());
        }
        let _ = std::fs::remove_file(&self.pid);
        let mut child = Command::new(exe)
            .args(args)
            .arg("supervise")
            .arg(domid.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(|e| BackendError::io(format!("starting {}", exe.display()), e))?;
        let pid = child.id();
        std::thread::spawn(move || {
            let _ = child.wait();
        });
        tracing::debug!(domid, pid, "supervisor started");
        self.wait_ready(domid)
    }

    pub fn wait_ready(&self, domid: DomId) -> BackendResult<()> {
        let deadline = Instant::now() + Duration::from_secs(15);
        while !self.pid.exists() {
            if Instant::now() >= deadline {
                return Err(BackendError::Other(format!(
                    "the supervisor of domain {domid} did not start within 15 s"
                )));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }
}
