//! Injectable time: the engine and the simulator read the clock only
//! through [`Clock`], so tests can fix it and step it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

pub const NS_PER_SEC: u64 = 1_000_000_000;

/// Nanoseconds since the Unix epoch.
pub trait Clock: Send + Sync {
    fn now_ns(&self) -> u64;
}

#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ns(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
            .unwrap_or(0)
    }
}

/// The wall clock, for stamps that are not part of any modelled behaviour
/// (file names, store bookkeeping).
pub fn wall_ns() -> u64 {
    SystemClock.now_ns()
}

/// A clock that moves only when told to.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicU64);

impl ManualClock {
    pub fn new(start_ns: u64) -> Arc<Self> {
        Arc::new(ManualClock(AtomicU64::new(start_ns)))
    }

    pub fn advance_secs(&self, secs: f64) {
        // Float seconds read best in tests; sub-ns precision is irrelevant.
        let ns = (secs * NS_PER_SEC as f64) as u64;
        self.0.fetch_add(ns, Ordering::SeqCst);
    }

    pub fn set_ns(&self, ns: u64) {
        self.0.store(ns, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ns(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// Format a clock reading as UTC `YYYY-MM-DD HH:MM:SS`.
pub fn format_utc(ns: u64) -> String {
    let secs = ns / NS_PER_SEC;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    // Civil-from-days (Howard Hinnant's algorithm), for dates after 1970.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(mo <= 2);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{m:02}:{s:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_formatting() {
        assert_eq!(format_utc(0), "1970-01-01 00:00:00");
        assert_eq!(
            format_utc(1_700_000_000 * NS_PER_SEC),
            "2023-11-14 22:13:20"
        );
        assert_eq!(format_utc(951_782_400 * NS_PER_SEC), "2000-02-29 00:00:00");
    }
}
