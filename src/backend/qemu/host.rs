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
    // The directory with its slash: domain 3's must not match domain 31's.
    let mut marker = marker.as_os_str().as_encoded_bytes().to_vec();
    marker.push(b'/');
    alive(pid)
        && cmdline
            .split(|b| *b == 0)
            .any(|arg| arg.windows(marker.len()).any(|w| w == marker.as_slice()))
}

/// Every QEMU process whose command line names `marker` (a domain's
/// directory), read from /proc: found even before it wrote its pidfile.
pub fn qemus_for(marker: &Path) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()))
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                c.split(|b| *b == 0)
                    .next()
                    .is_some_and(|argv0| argv0.windows(4).any(|w| w == b"qemu"))
            }) && is_our_qemu(*pid, marker)
        })
        .collect()
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

/// QEMU's version (`10.0.2`), asked of the binary once and kept in the
/// runtime directory, keyed by the binary's path, size and mtime: `domus
/// list` must not start a QEMU process every time.
pub fn qemu_version(binary: &Path, runtime: &Path) -> String {
    use std::os::unix::fs::MetadataExt;
    let resolved = if binary.components().count() > 1 {
        Some(binary.to_path_buf())
    } else {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join(binary))
                .find(|p| p.is_file())
        })
    };
    let key = resolved.as_ref().and_then(|p| {
        let m = std::fs::metadata(p).ok()?;
        Some(format!(
            "{} {} {}.{}",
            p.display(),
            m.len(),
            m.mtime(),
            m.mtime_nsec()
        ))
    });
    let cache = runtime.join("qemu-version");
    if let Some(key) = &key
        && let Ok(text) = crate::fsx::read_to_string_bounded(&cache, 4096)
        && let Some((k, v)) = text.trim_end().split_once('\t')
        && k == key
    {
        return v.to_string();
    }
    let version = std::process::Command::new(binary)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .and_then(|l| l.split("version ").nth(1))
                .map(|v| v.split_whitespace().next().unwrap_or(v).to_string())
        });
    match (version, key) {
        (Some(v), Some(key)) => {
            let _ = crate::fsx::write_atomic(&cache, format!("{key}\t{v}\n").as_bytes());
            v
        }
        (Some(v), None) => v,
        (None, _) => "unknown".into(),
    }
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
    // kill(0) is this process group, kill(-1) every process we may signal,
    // 1 is init: a pid read from a file that was empty or half-written must
    // never become one of those.
    if pid > 1 {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pid of 0 (an empty pidfile) must not signal this process group:
    /// if it did, this test run would end here with SIGTERM.
    #[test]
    fn pid_zero_or_below_signals_nobody() {
        signal(0, nix::sys::signal::Signal::SIGTERM);
        signal(1, nix::sys::signal::Signal::SIGCONT);
    }

    #[test]
    fn state_after_odd_comm() {
        assert_eq!(stat_state("42 (a) b) c) R 1 2 3"), Some('R'));
        assert_eq!(stat_state("42 (qemu) Z 1"), Some('Z'));
        assert_eq!(stat_state("garbage"), None);
    }

    #[test]
    fn a_domain_directory_does_not_match_a_longer_one() {
        let mut child = std::process::Command::new("sh")
            .args(["-c", "sleep 30", "/tmp/domus-run/31/qmp.sock"])
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        std::thread::sleep(std::time::Duration::from_millis(100));
        assert!(is_our_qemu(pid, Path::new("/tmp/domus-run/31")));
        assert!(!is_our_qemu(pid, Path::new("/tmp/domus-run/3")));
        let _ = child.kill();
        let _ = child.wait();
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
