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

/// Leave a running child to a thread that collects its exit status.
fn reap(mut child: std::process::Child) {
    std::thread::spawn(move || {
        let _ = child.wait();
    });
}

/// How long a new supervisor may take to say it is watching.
const READY_WITHIN: Duration = Duration::from_secs(15);

fn not_ready(domid: DomId) -> BackendError {
    BackendError::Start {
        what: format!("the supervisor of domain {domid}"),
        why: format!("not watching within {} s", READY_WITHIN.as_secs()),
    }
}

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
        let file = crate::fsx::open_lock(&self.lock).ok()?;
        Flock::lock(file, FlockArg::LockExclusiveNonblock).ok()
    }

    /// Say the supervisor is watching (after it holds the lock).
    pub fn mark_ready(&self) {
        let _ = crate::fsx::write_atomic(&self.pid, std::process::id().to_string().as_bytes());
    }

    /// The supervisor's pid while one runs (0 if it has not said yet, or
    /// the lock is held for a moment by a process looking, as this one
    /// does): never a pid to signal unless above 1.
    pub fn running(&self) -> Option<i32> {
        // Looked at with a shared lock: two processes looking at once do
        // not take each other for the supervisor.
        // No lock file (or none this process may open): no supervisor.
        let Ok(file) = crate::fsx::open_lock(&self.lock) else {
            return None;
        };
        if Flock::lock(file, FlockArg::LockSharedNonblock).is_ok() {
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
    /// a thread of this process, and wait until it is watching. A child that
    /// exits before it is ready (on a loaded host the dynamic loader
    /// occasionally fails to start a program at all) is started again, up to
    /// three times, so a domain is not left without its supervisor.
    pub fn spawn(&self, domid: DomId, exe: &Path, args: &[String]) -> BackendResult<()> {
        const ATTEMPTS: u32 = 3;
        let mut last = String::new();
        for attempt in 1..=ATTEMPTS {
            if self.running().is_some() {
                return Ok(());
            }
            match self.spawn_once(domid, exe, args)? {
                None => return Ok(()),
                Some(why) => {
                    tracing::warn!(domid, attempt, %why, "the supervisor exited before it was ready");
                    last = why;
                }
            }
        }
        Err(BackendError::Start {
            what: format!("the supervisor of domain {domid}"),
            why: format!("{ATTEMPTS} attempts; last: {last}"),
        })
    }

    /// One start: `None` once the supervisor is watching, `Some(why)` when
    /// it exited first.
    fn spawn_once(
        &self,
        domid: DomId,
        exe: &Path,
        args: &[String],
    ) -> BackendResult<Option<String>> {
        use std::os::unix::process::CommandExt;
        if let Some(dir) = self.lock.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let _ = std::fs::remove_file(&self.pid);
        let mut child = super::spawn(
            Command::new(exe)
                .args(args)
                .arg("supervise")
                .arg(domid.to_string())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .process_group(0),
        )
        .map_err(|e| BackendError::io(format!("starting {}", exe.display()), e))?;
        let pid = child.id();
        tracing::debug!(domid, pid, "supervisor started");
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            if self.pid.exists() {
                reap(child);
                return Ok(None);
            }
            match child.try_wait() {
                // A second supervisor that lost the race for the lock also
                // exits at once; the winner is then running.
                Ok(Some(status)) if self.running().is_some() => {
                    tracing::debug!(domid, %status, "supervisor already running");
                    return Ok(None);
                }
                Ok(Some(status)) => return Ok(Some(status.to_string())),
                Ok(None) => {}
                Err(e) => return Err(BackendError::io("waiting for the supervisor", e)),
            }
            if Instant::now() >= deadline {
                reap(child);
                return Err(not_ready(domid));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn wait_ready(&self, domid: DomId) -> BackendResult<()> {
        let deadline = Instant::now() + READY_WITHIN;
        while !self.pid.exists() {
            if Instant::now() >= deadline {
                return Err(not_ready(domid));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A stand-in `domus` that fails to start `fail_first` times (as when
    /// the dynamic loader gives up), then supervises: holds the lock and
    /// writes its pid, as `domus supervise` does.
    fn fake_exe(dir: &Path, slot: &Slot, fail_first: u32) -> PathBuf {
        let exe = dir.join("fake-domus");
        let tries = dir.join("tries");
        let script = format!(
            "#!/bin/sh\n\
             n=$(cat {tries} 2>/dev/null || echo 0); n=$((n + 1)); echo $n > {tries}\n\
             [ $n -le {fail_first} ] && exit 127\n\
             exec flock -n {lock} sh -c 'echo $$ > {pid}; exec sleep 30'\n",
            tries = tries.display(),
            lock = slot.lock.display(),
            pid = slot.pid.display(),
        );
        std::fs::write(&exe, script).unwrap();
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        exe
    }

    fn tries(dir: &Path) -> String {
        std::fs::read_to_string(dir.join("tries"))
            .unwrap()
            .trim()
            .to_string()
    }

    fn stop(slot: &Slot) {
        if let Some(pid) = slot.running().filter(|p| *p > 0) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }

    #[test]
    fn a_supervisor_that_dies_at_start_is_started_again() {
        let tmp = tempfile::tempdir().unwrap();
        let slot = Slot::in_dir(&tmp.path().join("dom"));
        let exe = fake_exe(tmp.path(), &slot, 2);
        slot.spawn(7, &exe, &[]).unwrap();
        assert_eq!(
            tries(tmp.path()),
            "3",
            "two failed starts, then one that runs"
        );
        assert!(
            slot.running().is_some_and(|p| p > 0),
            "the third start is watching"
        );
        stop(&slot);
    }

    #[test]
    fn a_supervisor_that_never_starts_is_an_error_naming_the_domain() {
        let tmp = tempfile::tempdir().unwrap();
        let slot = Slot::in_dir(&tmp.path().join("dom"));
        let exe = fake_exe(tmp.path(), &slot, 99);
        let err = slot.spawn(7, &exe, &[]).unwrap_err().to_string();
        assert!(
            err.contains("domain 7") && err.contains("3 attempts"),
            "{err}"
        );
        assert_eq!(tries(tmp.path()), "3");
        assert!(slot.running().is_none());
    }
}
