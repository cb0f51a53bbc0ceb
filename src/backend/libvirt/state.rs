//! libvirt's domain states (`virDomainState`) and their reasons, as the
//! six xl letters and domus's shutdown reasons. The numbers are libvirt's
//! ABI (`libvirt-domain.h`), stable since 0.9.

use crate::backend::{ShutdownReason, StateFlags};

pub const NOSTATE: i32 = 0;
pub const RUNNING: i32 = 1;
pub const BLOCKED: i32 = 2;
pub const PAUSED: i32 = 3;
/// Being shut down: still running.
pub const SHUTDOWN: i32 = 4;
pub const SHUTOFF: i32 = 5;
pub const CRASHED: i32 = 6;
pub const PMSUSPENDED: i32 = 7;

/// `virDomainShutoffReason`.
pub const SHUTOFF_SHUTDOWN: i32 = 1;
pub const SHUTOFF_DESTROYED: i32 = 2;
pub const SHUTOFF_CRASHED: i32 = 3;
pub const SHUTOFF_SAVED: i32 = 5;

/// The state (and reason) libvirt reports, as domus shows it: a domain
/// that is off is shut down (`---s--`) with why, a crashed one `---sc-`,
/// one suspended to RAM `---ss-`. An unknown state is shown as blocked,
/// never as something that would invite an action it cannot take.
pub fn flags(state: i32, reason: i32) -> (StateFlags, Option<ShutdownReason>) {
    let mut f = StateFlags::default();
    let why = match state {
        RUNNING | SHUTDOWN => {
            f.running = true;
            None
        }
        PAUSED => {
            f.paused = true;
            None
        }
        SHUTOFF => {
            f.shutdown = true;
            Some(match reason {
                SHUTOFF_CRASHED => ShutdownReason::Crash,
                SHUTOFF_SAVED => ShutdownReason::Suspend,
                // Powered off by the guest, destroyed, never started,
                // migrated away: domus's "poweroff".
                _ => ShutdownReason::Poweroff,
            })
        }
        CRASHED => {
            f.shutdown = true;
            Some(ShutdownReason::Crash)
        }
        PMSUSPENDED => {
            f.shutdown = true;
            Some(ShutdownReason::Suspend)
        }
        // BLOCKED, NOSTATE and anything newer.
        _ => {
            f.blocked = true;
            None
        }
    };
    (f, why)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::test_info;

    fn letters(state: i32, reason: i32) -> String {
        let (f, why) = flags(state, reason);
        test_info(f, why).state_string()
    }

    #[test]
    fn libvirt_states_read_as_xl_letters() {
        assert_eq!(letters(RUNNING, 1), "r-----");
        assert_eq!(letters(BLOCKED, 0), "-b----");
        assert_eq!(letters(PAUSED, 1), "--p---");
        assert_eq!(letters(SHUTDOWN, 1), "r-----");
        assert_eq!(letters(SHUTOFF, SHUTOFF_SHUTDOWN), "---s--");
        assert_eq!(letters(SHUTOFF, SHUTOFF_DESTROYED), "---s--");
        assert_eq!(letters(SHUTOFF, SHUTOFF_CRASHED), "---sc-");
        assert_eq!(letters(CRASHED, 0), "---sc-");
        assert_eq!(letters(PMSUSPENDED, 0), "---ss-");
        assert_eq!(letters(NOSTATE, 0), "-b----");
        assert_eq!(letters(42, 0), "-b----");
    }
}
