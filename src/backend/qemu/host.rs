//! What the host's /proc says about a QEMU process: whether it is alive,
//! its vCPU threads' CPU time and scheduler state, and host memory.

use std::path::Path;

/// A process is alive when it exists and is not a zombie (an exited,
/// daemonized QEMU lingers briefly as one).
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !matches!(stat_state(&stat), Some('Z' | 'X')),
        Err(_) => false,
    }
}

/// The state letter of a `/proc/…/stat` line (after the `(comm)`, which may
/// itself hold spaces and parentheses).
fn stat_state(stat: &str) -> Option<char> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().next()?.chars().next()
}

/// Whether `pid` is a QEMU whose command line names `marker` (the domain's
/// directory): a recycled pid never passes for the domain's QEMU.
pub fn is_our_qemu(pid: i32, marker: &Path) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let marker = marker.as_os_str().as_encoded_bytes();
    alive(pid)
        && cmdline
            .split(|b| *b == 0)
            .any(|arg| arg.windows(marker.len()).any(|w| w == marker))
}

/// Nanoseconds a thread has spent on a CPU (`schedstat`'s first field), and
/// whether it is runnable right now.
pub fn thread_time(pid: i32, tid: i32) -> Option<(u64, bool)> {
    let base = format!("/proc/{pid}/task/{tid}");
    let sched = std::fs::read_to_string(format!("{base}/schedstat")).ok()?;
    let ns = sched.split_whitespace().next()?.parse().ok()?;
    let stat = std::fs::read_to_string(format!("{base}/stat")).ok()?;
    Some((ns, stat_state(&stat) == Some('R')))
}

/// The pid in a pidfile.
pub fn read_pidfile(path: &Path) -> Option<i32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// `MemTotal` and `MemAvailable` in KiB.
pub fn meminfo() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("MemTotal:"), field("MemAvailable:"))
}

/// Send a signal, ignoring a process that is already gone.
pub fn signal(pid: i32, sig: nix::sys::signal::Signal) {
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_after_odd_comm() {
        assert_eq!(stat_state("42 (a) b) c) R 1 2 3"), Some('R'));
        assert_eq!(stat_state("42 (qemu) Z 1"), Some('Z'));
        assert_eq!(stat_state("garbage"), None);
    }

    #[test]
    fn this_process_is_alive_and_has_cpu_time() {
        let pid = std::process::id() as i32;
        assert!(alive(pid));
        let tid = nix::unistd::gettid().as_raw();
        let (ns, running) = thread_time(pid, tid).unwrap_or((0, false));
        assert!(ns > 0, "a running test thread has used some CPU");
        assert!(running, "the calling thread is on a CPU");
        assert!(!alive(i32::MAX));
    }
}
