//! One small supervisor per domain, as `xl` keeps one per domain. It holds
//! the domain's second QMP socket (`events.sock`; QMP takes one client per
//! socket), records why the guest stopped — QEMU tells that only in the
//! `SHUTDOWN` event, never in `query-status` — and, when it runs as its own
//! process (`domus supervise`), applies the domain's restart policy at once
//! even when no other domus is running. It exits when QEMU does.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::launch::DomainDir;
use super::qmp::Qmp;
use crate::backend::supervisor::Slot;
use crate::backend::{BackendError, BackendResult, DomId, ShutdownReason};

/// QEMU's shutdown cause as the Xen reason the engine's policies use.
pub fn reason_from_cause(cause: &str) -> Option<ShutdownReason> {
    Some(match cause {
        "guest-shutdown" | "host-signal" | "host-ui" => ShutdownReason::Poweroff,
        "guest-reset" | "host-qmp-system-reset" | "subsystem-reset" => ShutdownReason::Reboot,
        "guest-panic" | "host-error" => ShutdownReason::Crash,
        // host-qmp-quit: domus is destroying the domain.
        _ => return None,
    })
}

pub fn reason_file(dir: &DomainDir) -> PathBuf {
    dir.dir.join("shutdown-reason")
}

/// Set by a reboot request: the guest's next clean poweroff is a reboot.
fn reboot_marker(dir: &DomainDir) -> PathBuf {
    dir.dir.join("reboot-requested")
}

/// Note that the operator asked for a reboot (before pressing the power
/// button), so the poweroff that follows is taken as one.
pub fn request_reboot(dir: &DomainDir) -> BackendResult<()> {
    let path = reboot_marker(dir);
    std::fs::write(&path, b"")
        .map_err(|e| BackendError::io(format!("writing {}", path.display()), e))
}

/// A guest poweroff after a reboot request is that reboot (once).
fn requested(dir: &DomainDir, reason: ShutdownReason) -> ShutdownReason {
    if reason == ShutdownReason::Poweroff && std::fs::remove_file(reboot_marker(dir)).is_ok() {
        ShutdownReason::Reboot
    } else {
        reason
    }
}

fn slot(dir: &DomainDir) -> Slot {
    Slot::in_dir(&dir.dir)
}

/// The recorded reason the guest stopped, if it has.
pub fn recorded_reason(dir: &DomainDir) -> Option<ShutdownReason> {
    let text = std::fs::read_to_string(reason_file(dir)).ok()?;
    ShutdownReason::from_code(text.trim().parse().ok()?)
}

fn record(dir: &DomainDir, reason: ShutdownReason) {
    let path = reason_file(dir);
    let tmp = path.with_extension("tmp");
    let ok =
        std::fs::write(&tmp, reason.code().to_string()).and_then(|()| std::fs::rename(&tmp, &path));
    if let Err(e) = ok {
        tracing::warn!(error = %e, path = %path.display(), "recording the shutdown reason");
    }
}

/// Watch one domain until its QEMU exits. `on_stop` runs after every
/// shutdown or panic has been recorded.
pub fn watch(dir: &DomainDir, mut on_stop: impl FnMut()) -> BackendResult<()> {
    // One supervisor per domain: a second one started in a race leaves.
    let Some(_lock) = slot(dir).try_lock() else {
        return Ok(());
    };
    let mut qmp = connect_events(dir)?;
    slot(dir).mark_ready();
    loop {
        let event = match qmp.next_event(Duration::from_secs(3600)) {
            Ok(Some(e)) => e,
            Ok(None) => continue,
            // QEMU closed the monitor: it has exited.
            Err(_) => return Ok(()),
        };
        let name = event.get("event").and_then(Value::as_str).unwrap_or("");
        let data = event.get("data").cloned().unwrap_or(Value::Null);
        tracing::debug!(dir = %dir.dir.display(), name, %data, "QEMU event");
        let reason = match name {
            "SHUTDOWN" => data
                .get("reason")
                .and_then(Value::as_str)
                .and_then(reason_from_cause)
                .map(|r| requested(dir, r)),
            "GUEST_PANICKED" => Some(ShutdownReason::Crash),
            _ => None,
        };
        if let Some(reason) = reason {
            // A panic is also followed by a stop; keep the first reason.
            if recorded_reason(dir) != Some(ShutdownReason::Crash) {
                record(dir, reason);
            }
            on_stop();
        }
    }
}

fn connect_events(dir: &DomainDir) -> BackendResult<Qmp> {
    let sock = dir.events();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match Qmp::connect(&sock, Duration::from_secs(10)) {
            Ok(q) => return Ok(q),
            Err(e) if Instant::now() >= deadline => {
                return Err(BackendError::Other(format!("supervisor: {e}")));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// Start the supervisor for a domain: `exe supervise` as its own process
/// when there is an executable, else a thread of this process (which
/// records reasons but leaves policies to the engine's refresh). Returns
/// once it holds the event socket, so no event of the guest is missed.
pub fn spawn(
    dir: &DomainDir,
    domid: DomId,
    exe: Option<&Path>,
    args: &[String],
) -> BackendResult<()> {
    let slot = slot(dir);
    match exe {
        Some(exe) => slot.spawn(domid, exe, args),
        None => {
            if slot.running().is_some() {
                return Ok(());
            }
            let _ = std::fs::remove_file(&slot.pid);
            let d = dir.clone();
            std::thread::Builder::new()
                .name(format!("domus-watch-{domid}"))
                .spawn(move || {
                    if let Err(e) = watch(&d, || {}) {
                        tracing::warn!(error = %e, "watching a domain");
                    }
                })
                .map_err(|e| BackendError::io("starting a watcher thread", e))?;
            slot.wait_ready(domid)
        }
    }
}

/// The supervisor's pid, while one runs.
pub fn running(dir: &DomainDir) -> Option<i32> {
    slot(dir).running()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_map_to_xen_reasons() {
        assert_eq!(
            reason_from_cause("guest-shutdown"),
            Some(ShutdownReason::Poweroff)
        );
        assert_eq!(
            reason_from_cause("guest-reset"),
            Some(ShutdownReason::Reboot)
        );
        assert_eq!(
            reason_from_cause("host-qmp-system-reset"),
            Some(ShutdownReason::Reboot)
        );
        assert_eq!(
            reason_from_cause("guest-panic"),
            Some(ShutdownReason::Crash)
        );
        assert_eq!(reason_from_cause("host-qmp-quit"), None);
    }
}
