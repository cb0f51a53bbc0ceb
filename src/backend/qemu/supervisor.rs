//! One small supervisor per domain, as `xl` keeps one per domain. It holds
//! the domain's second QMP socket (`events.sock`; QMP takes one client per
//! socket) and turns QEMU's events into the domain's recorded run state and
//! into [`Notice`]s: STOP/RESUME, SHUTDOWN with its cause (QEMU tells the
//! cause only in the event, never in `query-status`), GUEST_PANICKED,
//! RESET, DEVICE_DELETED, and the process's end. Run as its own process
//! (`domus supervise`), its notices reach the engine, which journals them
//! and applies the domain's policy even when no other domus runs.
//!
//! It also makes sure a shutdown request is not silently lost: an ACPI
//! power button pressed before the guest listens (early in its boot) is
//! pressed again, and a guest that never answers is reported.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::launch::DomainDir;
use super::meta::{RunState, Runtime};
use super::qmp::Qmp;
use crate::backend::supervisor::Slot;
use crate::backend::{BackendError, BackendResult, DomId, Notice, ShutdownReason};

/// Press the power button again this long after a request went unanswered…
const PRESS_AGAIN: [Duration; 3] = [
    Duration::from_secs(5),
    Duration::from_secs(15),
    Duration::from_secs(30),
];
/// …and report the guest as not answering after this long.
const GIVE_UP: Duration = Duration::from_secs(60);

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

/// The run state `query-status` reports, where it tells one.
fn state_of(status: &str, known: Option<RunState>) -> Option<RunState> {
    Some(match status {
        "running" => RunState::Running,
        "paused" | "prelaunch" | "inmigrate" | "postmigrate" | "finish-migrate" | "save-vm"
        | "restore-vm" | "suspended" | "debug" | "watchdog" => RunState::Paused,
        // The cause of a shutdown is only in the event: keep a known one.
        "shutdown" => match known {
            Some(s @ RunState::Shutdown { .. }) => s,
            _ => RunState::Shutdown {
                reason: ShutdownReason::Poweroff,
            },
        },
        "guest-panicked" | "internal-error" | "io-error" => RunState::Shutdown {
            reason: ShutdownReason::Crash,
        },
        _ => return None,
    })
}

fn slot(dir: &DomainDir) -> Slot {
    Slot::in_dir(&dir.dir)
}

/// A shutdown request the supervisor is seeing through.
struct Pending {
    since: Instant,
    presses: usize,
}

/// Watch one domain until its QEMU exits, keeping its recorded run state
/// and handing each notice to `sink` after the state is recorded (so a
/// reader of the state already sees what the notice says). Returns at once
/// when another supervisor holds the domain.
pub fn watch(rt: &Runtime, domid: DomId, sink: &mut dyn FnMut(Notice)) -> BackendResult<()> {
    let dir = rt.dir(domid);
    // One supervisor per domain: a second one started in a race leaves.
    let Some(_lock) = slot(&dir).try_lock() else {
        return Ok(());
    };
    let mut qmp = connect_events(&dir)?;
    slot(&dir).mark_ready();
    tracing::info!(domid, pid = std::process::id(), "supervisor: watching");
    let mut quitting = false;
    let mut pending: Option<Pending> = None;
    let mut last_log_check = Instant::now();
    sync(rt, domid, &mut qmp, sink);
    loop {
        let wait = match &pending {
            Some(p) => next_deadline(p).saturating_duration_since(Instant::now()),
            None => LOG_CHECK,
        };
        let event = match qmp.next_event(wait.max(Duration::from_millis(10))) {
            Ok(Some(e)) => e,
            Ok(None) => {
                if let Some(p) = &mut pending {
                    pending = resend(&mut qmp, domid, p, sink);
                }
                if last_log_check.elapsed() >= LOG_CHECK {
                    last_log_check = Instant::now();
                    bound_log(rt, domid);
                }
                continue;
            }
            // QEMU closed the monitor: it has exited.
            Err(_) => break,
        };
        let name = event.get("event").and_then(Value::as_str).unwrap_or("");
        let data = event.get("data").cloned().unwrap_or(Value::Null);
        tracing::debug!(domid, name, %data, "QEMU event");
        match name {
            "STOP" => {
                // A STOP also follows a shutdown or a panic (the VM stays
                // for inspection): only a plain pause is a pause.
                let status = query_status(&mut qmp);
                if status.as_deref() == Some("paused") && set_state(rt, domid, RunState::Paused) {
                    sink(Notice::Paused);
                }
            }
            "RESUME" if set_state(rt, domid, RunState::Running) => sink(Notice::Resumed),
            // Someone pressed the power button (domus's shutdown, or our
            // own press again): see the request through.
            "POWERDOWN" if pending.is_none() => {
                pending = Some(Pending {
                    since: Instant::now(),
                    presses: 0,
                });
            }
            "SHUTDOWN" => {
                let cause = data.get("reason").and_then(Value::as_str).unwrap_or("");
                if cause == "host-qmp-quit" {
                    quitting = true;
                    continue;
                }
                let Some(reason) = reason_from_cause(cause) else {
                    continue;
                };
                pending = None;
                let reason = requested(rt, domid, reason);
                let by_guest = data.get("guest").and_then(Value::as_bool).unwrap_or(true);
                // A panic is also followed by a shutdown; keep the first reason.
                if !is_crashed(rt, domid) {
                    set_state(rt, domid, RunState::Shutdown { reason });
                    sink(Notice::ShutDown { reason, by_guest });
                }
            }
            "GUEST_PANICKED" => {
                pending = None;
                let reason = ShutdownReason::Crash;
                set_state(rt, domid, RunState::Shutdown { reason });
                sink(Notice::ShutDown {
                    reason,
                    by_guest: true,
                });
            }
            "RESET" => {
                let guest = data.get("guest").and_then(Value::as_bool).unwrap_or(false);
                if guest {
                    sink(Notice::Reset);
                }
            }
            "DEVICE_DELETED" => {
                if let Some(id) = data.get("device").and_then(Value::as_str) {
                    sink(Notice::DeviceRemoved { id: id.to_string() });
                }
            }
            _ => {}
        }
    }
    let cause = if quitting {
        "its QEMU was told to quit".to_string()
    } else {
        "its QEMU process exited without being asked to (killed, or it failed)".to_string()
    };
    tracing::info!(domid, %cause, "supervisor: QEMU is gone; exiting");
    sink(Notice::Gone {
        cause,
        requested: quitting,
    });
    let _ = std::fs::remove_file(&slot(&dir).pid);
    Ok(())
}

/// How often the console log's size is checked (QEMU itself never bounds it).
const LOG_CHECK: Duration = Duration::from_secs(60);

fn bound_log(rt: &Runtime, domid: DomId) {
    let Ok(meta) = rt.load(domid) else { return };
    let log = meta.console_log(&rt.dir(domid));
    match crate::console::archive::bound(&log) {
        Ok(true) => {
            tracing::info!(domid, log = %log.display(), "console log cut to its newest part")
        }
        Ok(false) => {}
        Err(e) => tracing::debug!(domid, error = %e, "checking the console log"),
    }
}

/// When the next press (or the give-up) of a pending request is due.
fn next_deadline(p: &Pending) -> Instant {
    match PRESS_AGAIN.get(p.presses) {
        Some(after) => p.since + *after,
        None => p.since + GIVE_UP,
    }
}

/// A request still unanswered at its deadline: press again, or report.
fn resend(
    qmp: &mut Qmp,
    domid: DomId,
    p: &mut Pending,
    sink: &mut dyn FnMut(Notice),
) -> Option<Pending> {
    if Instant::now() < next_deadline(p) {
        return Some(Pending {
            since: p.since,
            presses: p.presses,
        });
    }
    if p.presses < PRESS_AGAIN.len() {
        p.presses += 1;
        tracing::info!(
            domid,
            presses = p.presses,
            "the guest has not answered the power button; pressing it again"
        );
        let _ = qmp.execute("system_powerdown", json!({}), Duration::from_secs(5));
        return Some(Pending {
            since: p.since,
            presses: p.presses,
        });
    }
    tracing::warn!(domid, "the guest did not answer the shutdown request");
    sink(Notice::ShutdownIgnored {
        seconds: GIVE_UP.as_secs(),
    });
    None
}

fn query_status(qmp: &mut Qmp) -> Option<String> {
    qmp.execute("query-status", json!({}), Duration::from_secs(5))
        .ok()
        .and_then(|v| v.get("status").and_then(Value::as_str).map(str::to_string))
}

/// Bring the recorded state in line with QEMU's (a supervisor that starts
/// after a change it missed), and report the change.
fn sync(rt: &Runtime, domid: DomId, qmp: &mut Qmp, sink: &mut dyn FnMut(Notice)) {
    let known = rt.load(domid).ok().and_then(|m| m.run_state);
    let Some(now) = query_status(qmp).and_then(|s| state_of(&s, known)) else {
        return;
    };
    if known == Some(now) || !set_state(rt, domid, now) {
        return;
    }
    // The first state recorded is no change to report.
    if known.is_none() {
        return;
    }
    sink(match now {
        RunState::Paused => Notice::Paused,
        RunState::Running => Notice::Resumed,
        RunState::Shutdown { reason } => Notice::ShutDown {
            reason,
            by_guest: true,
        },
    });
}

/// Record the run state; whether it changed.
fn set_state(rt: &Runtime, domid: DomId, state: RunState) -> bool {
    match rt.update(domid, |m| {
        let changed = m.run_state != Some(state);
        m.run_state = Some(state);
        Ok(changed)
    }) {
        Ok(changed) => changed,
        Err(e) => {
            tracing::warn!(domid, error = %e, "recording the run state");
            false
        }
    }
}

fn is_crashed(rt: &Runtime, domid: DomId) -> bool {
    rt.load(domid).ok().and_then(|m| m.run_state)
        == Some(RunState::Shutdown {
            reason: ShutdownReason::Crash,
        })
}

/// A guest poweroff after a reboot request is that reboot (once).
fn requested(rt: &Runtime, domid: DomId, reason: ShutdownReason) -> ShutdownReason {
    rt.update(domid, |m| {
        let asked = m.reboot_requested;
        m.reboot_requested = false;
        Ok(if reason == ShutdownReason::Poweroff && asked {
            ShutdownReason::Reboot
        } else {
            reason
        })
    })
    .unwrap_or(reason)
}

fn connect_events(dir: &DomainDir) -> BackendResult<Qmp> {
    let sock = dir.events();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match Qmp::connect(&sock, Duration::from_secs(10)) {
            Ok(q) => return Ok(q),
            Err(e) if Instant::now() >= deadline => {
                return Err(BackendError::Start {
                    what: "the supervisor's QMP connection".into(),
                    why: e.to_string(),
                });
            }
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// Start the supervisor for a domain: `exe supervise` as its own process
/// when there is an executable, else a thread of this process (which keeps
/// the run state but leaves policies to the engine's refresh). Returns once
/// it holds the event socket, so no event of the guest is missed.
pub fn spawn(rt: &Runtime, domid: DomId, exe: Option<&Path>, args: &[String]) -> BackendResult<()> {
    let dir = rt.dir(domid);
    let slot = slot(&dir);
    match exe {
        Some(exe) => slot.spawn(domid, exe, args),
        None => {
            if slot.running().is_some() {
                return Ok(());
            }
            let _ = std::fs::remove_file(&slot.pid);
            let rt = rt.clone();
            std::thread::Builder::new()
                .name(format!("domus-watch-{domid}"))
                .spawn(move || {
                    if let Err(e) = watch(&rt, domid, &mut |_| {}) {
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

    #[test]
    fn statuses_map_to_run_states_keeping_a_known_shutdown_cause() {
        let reboot = RunState::Shutdown {
            reason: ShutdownReason::Reboot,
        };
        assert_eq!(state_of("running", None), Some(RunState::Running));
        assert_eq!(state_of("paused", None), Some(RunState::Paused));
        assert_eq!(state_of("shutdown", Some(reboot)), Some(reboot));
        assert_eq!(
            state_of("shutdown", Some(RunState::Running)),
            Some(RunState::Shutdown {
                reason: ShutdownReason::Poweroff
            })
        );
        assert_eq!(
            state_of("guest-panicked", None),
            Some(RunState::Shutdown {
                reason: ShutdownReason::Crash
            })
        );
        assert_eq!(state_of("no-such-status", None), None);
    }

    #[test]
    fn presses_come_at_5_15_and_30_s_then_the_request_is_given_up_at_60() {
        let since = Instant::now();
        let at = |presses| next_deadline(&Pending { since, presses }) - since;
        assert_eq!(
            (0..4).map(at).collect::<Vec<_>>(),
            [5, 15, 30, 60].map(Duration::from_secs)
        );
    }
}
