//! Running Xen's toolstack CLI (`xl`, `xenstore-read`) with a timeout on
//! every call, and reading its output. domus drives `xl` rather than
//! linking libxl or libxenctrl: nothing of Xen is needed to build domus,
//! and `xl` is the interface Xen supports and documents for toolstacks
//! outside its own tree; its error text reaches the operator unchanged.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::backend::{BackendError, BackendResult, DomId, ShutdownReason, StateFlags, ToolFailure};

/// Run `program args…`; its stdout, or an error carrying its stderr. A
/// program the dynamic loader failed to start never ran, so it is started
/// again; a query (`list`, `vcpu-list`, `info`, `xenstore-read`) that
/// crashed or hung is asked again too, since asking twice changes nothing.
/// Both happen now and then in a dom0 under TCG emulation.
pub fn run(program: &Path, args: &[&str], timeout: Duration) -> BackendResult<String> {
    let query = is_query(program, args);
    let mut tries = 0;
    loop {
        match run_once(program, args, timeout) {
            Ok(out) => return Ok(out),
            Err(f) if tries < 3 && (f.never_started || (query && f.crashed)) => {
                tries += 1;
                tracing::warn!(error = %f.error, "it did not run through; again");
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(f) => return Err(f.error),
        }
    }
}

fn is_query(program: &Path, args: &[&str]) -> bool {
    program.file_name().is_some_and(|n| n == "xenstore-read")
        || matches!(args.first(), Some(&("list" | "vcpu-list" | "info")))
}

/// A run that failed, and how.
struct Failed {
    error: BackendError,
    /// The loader gave up before `main`.
    never_started: bool,
    /// Killed by a signal, or stopped at the timeout.
    crashed: bool,
}

impl Failed {
    fn plain(error: BackendError) -> Failed {
        Failed {
            error,
            never_started: false,
            crashed: false,
        }
    }
}

fn run_once(program: &Path, args: &[&str], timeout: Duration) -> Result<String, Failed> {
    use std::os::unix::process::ExitStatusExt;
    let what = format!("{} {}", program.display(), args.join(" "));
    let started = crate::backend::spawn(
        Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    );
    let mut child =
        started.map_err(|e| Failed::plain(BackendError::io(format!("running {what}"), e)))?;
    // Drain both pipes on threads so a chatty xl never blocks on a full pipe.
    let mut out_pipe = child.stdout.take();
    let mut err_pipe = child.stderr.take();
    // Each hands its bytes over a channel: a daemonized grandchild that
    // keeps a pipe open must not hold this call past xl's own exit.
    let (out_tx, out_rx) = std::sync::mpsc::channel();
    let (err_tx, err_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut s = Vec::new();
        if let Some(p) = out_pipe.as_mut() {
            let _ = p.read_to_end(&mut s);
        }
        let _ = out_tx.send(s);
    });
    std::thread::spawn(move || {
        let mut s = Vec::new();
        if let Some(p) = err_pipe.as_mut() {
            let _ = p.read_to_end(&mut s);
        }
        let _ = err_tx.send(s);
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(Failed {
                    error: BackendError::Tool {
                        command: what,
                        failure: ToolFailure::TimedOut,
                        message: format!("did not finish within {} s", timeout.as_secs()),
                    },
                    never_started: false,
                    crashed: true,
                });
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => {
                return Err(Failed::plain(BackendError::io(
                    format!("waiting for {what}"),
                    e,
                )));
            }
        }
    };
    const DRAIN: Duration = Duration::from_secs(5);
    let out = String::from_utf8_lossy(&out_rx.recv_timeout(DRAIN).unwrap_or_default()).into_owned();
    let err = String::from_utf8_lossy(&err_rx.recv_timeout(DRAIN).unwrap_or_default()).into_owned();
    if status.success() {
        if !err.trim().is_empty() {
            tracing::debug!(%what, stderr = %err.trim(), "xl said");
        }
        Ok(out)
    } else {
        let crashed = status.signal().is_some();
        Err(Failed {
            error: BackendError::Tool {
                command: what,
                failure: if crashed {
                    ToolFailure::Crashed
                } else {
                    classify(&err)
                },
                message: error_text(&err, &out, &status.to_string()),
            },
            never_started: err.contains("Inconsistency detected by ld.so")
                || err.contains("error while loading shared libraries"),
            crashed,
        })
    }
}

/// What xl's complaint means, read once here where its text comes in:
/// everything past this point branches on the kind, never on the text.
fn classify(stderr: &str) -> ToolFailure {
    if stderr.contains("/etc/xen/scripts/") || stderr.contains("hotplug script") {
        ToolFailure::HotplugScript
    } else if stderr.lines().any(|l| {
        l.contains("invalid domain")
            || l.contains("No such domain")
            || (l.contains("Domain ") && l.contains("does not exist"))
    }) {
        ToolFailure::NoSuchDomain
    } else {
        ToolFailure::Refused
    }
}

/// The lines of xl's stderr that explain a failure (libxl's own messages),
/// without its debug chatter; how it ended when it said nothing.
fn error_text(stderr: &str, stdout: &str, status: &str) -> String {
    let lines: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .filter(|l| !l.contains(": debug: ") && !l.contains(": detail: "))
        .collect();
    let text = if lines.is_empty() {
        match stdout.trim().lines().last() {
            Some(line) => line.to_string(),
            None => format!("failed ({status}) and said nothing"),
        }
    } else {
        lines[lines.len().saturating_sub(3)..].join(" / ")
    };
    text.chars().take(600).collect()
}

/// One row of `xl list -v`.
#[derive(Debug, Clone, PartialEq)]
pub struct ListRow {
    pub name: String,
    pub domid: DomId,
    pub memory_mib: u64,
    pub vcpus: u32,
    pub flags: StateFlags,
    pub reason: Option<ShutdownReason>,
    pub cpu_time_ns: u64,
    pub uuid: uuid::Uuid,
}

fn secs_to_ns(s: &str) -> Option<u64> {
    let f: f64 = s.parse().ok()?;
    Some((f * 1e9) as u64)
}

/// `xl list -v`: `Name ID Mem VCPUs State Time(s) UUID Reason-Code …`,
/// the reason in hex and `-` while the domain is not shut down.
pub fn parse_list(text: &str) -> Vec<ListRow> {
    text.lines()
        .skip_while(|l| !l.starts_with("Name"))
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 6 {
                return None;
            }
            let state = f[4].as_bytes();
            if state.len() != 6 {
                return None;
            }
            let flags = StateFlags {
                running: state[0] == b'r',
                blocked: state[1] == b'b',
                paused: state[2] == b'p',
                shutdown: state[3] == b's',
                dying: state[5] == b'd',
            };
            let mut reason = f
                .get(7)
                .and_then(|r| u8::from_str_radix(r, 16).ok())
                .and_then(ShutdownReason::from_code);
            if state[4] == b'c' {
                reason = Some(ShutdownReason::Crash);
            }
            Some(ListRow {
                name: f[0].to_string(),
                domid: f[1].parse().ok()?,
                memory_mib: f[2].parse().ok()?,
                vcpus: f[3].parse().ok()?,
                flags,
                reason: reason.filter(|_| flags.shutdown || state[4] == b'c'),
                cpu_time_ns: secs_to_ns(f[5])?,
                uuid: f.get(6).and_then(|u| u.parse().ok()).unwrap_or_default(),
            })
        })
        .collect()
}

/// `xl vcpu-list`: per domain, each vCPU's time in ns, in vCPU order.
pub fn parse_vcpu_list(text: &str) -> std::collections::HashMap<DomId, Vec<u64>> {
    let mut out: std::collections::HashMap<DomId, Vec<(u32, u64)>> = Default::default();
    for line in text.lines().skip_while(|l| !l.starts_with("Name")).skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 6 {
            continue;
        }
        let (Ok(domid), Ok(vcpu), Some(ns)) = (f[1].parse(), f[2].parse(), secs_to_ns(f[5])) else {
            continue;
        };
        out.entry(domid).or_default().push((vcpu, ns));
    }
    out.into_iter()
        .map(|(d, mut v)| {
            v.sort_unstable();
            (d, v.into_iter().map(|(_, ns)| ns).collect())
        })
        .collect()
}

/// `xl info`'s `key : value` lines.
pub fn parse_info(text: &str) -> std::collections::HashMap<String, String> {
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            Some((k.trim().to_string(), v.trim().to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIST: &str = "\
Name                                        ID   Mem VCPUs\tState\tTime(s)   UUID                            Reason-Code\tSecurity Label
Domain-0                                     0   512     2     r-----      23.4 00000000-0000-0000-0000-000000000000        -                -
tiny                                         1   128     1     -b----       1.2 5f526dbb-bf68-4ceb-b383-b05a8072d0df        -                -
off                                          2   128     1     ---s--       0.8 5f526dbb-bf68-4ceb-b383-b05a8072d0e0        0                -
boom                                         3   128     1     ---sc-       0.3 5f526dbb-bf68-4ceb-b383-b05a8072d0e1        3                -
";

    #[test]
    fn xl_complaints_are_read_into_kinds() {
        assert_eq!(
            classify("Domain 'tiny' does not exist."),
            ToolFailure::NoSuchDomain
        );
        assert_eq!(
            classify("invalid domain identifier: 42"),
            ToolFailure::NoSuchDomain
        );
        assert_eq!(
            classify(
                "libxl: error: libxl_exec.c:127: /etc/xen/scripts/block add [2126] exited with error status 1"
            ),
            ToolFailure::HotplugScript
        );
        assert_eq!(
            classify("libxl: error: bridge xenbr9 does not exist"),
            ToolFailure::Refused
        );
    }

    #[test]
    fn list_rows() {
        let rows = parse_list(LIST);
        assert_eq!(rows.len(), 4);
        assert_eq!(rows[0].name, "Domain-0");
        assert_eq!(rows[0].memory_mib, 512);
        assert!(rows[0].flags.running);
        assert_eq!(rows[0].cpu_time_ns, 23_400_000_000);
        assert!(rows[1].flags.blocked && !rows[1].flags.running);
        assert_eq!(rows[1].reason, None);
        assert_eq!(rows[2].reason, Some(ShutdownReason::Poweroff));
        assert!(rows[2].flags.shutdown);
        assert_eq!(rows[3].reason, Some(ShutdownReason::Crash));
        assert_eq!(
            rows[1].uuid.to_string(),
            "5f526dbb-bf68-4ceb-b383-b05a8072d0df"
        );
    }

    #[test]
    fn vcpu_times() {
        let text = "Name  ID  VCPU   CPU State   Time(s) Affinity (Hard / Soft)
Domain-0  0  1  1  -b-  3.5  all / all
Domain-0  0  0  0  r--  20.0  all / all
tiny  1  0  -  --p  1.2  all / all
";
        let v = parse_vcpu_list(text);
        assert_eq!(v[&0], vec![20_000_000_000, 3_500_000_000]);
        assert_eq!(v[&1], vec![1_200_000_000]);
    }

    #[test]
    fn errors_keep_libxl_text_and_drop_debug() {
        let err = "libxl: debug: libxl.c:1: noise\nlibxl: error: libxl_create.c:1234: Domain 3:cannot make domain: -3\nxl: parsing failed\n";
        let t = error_text(err, "", "exit status: 1");
        assert!(t.contains("cannot make domain"), "{t}");
        assert!(!t.contains("noise"), "{t}");
    }

    #[test]
    fn queries_that_crashed_are_asked_again_and_changes_are_not() {
        let tmp = tempfile::tempdir().unwrap();
        let xl = tmp.path().join("xl");
        let calls = tmp.path().join("calls");
        // Crashes the first time it is run for each subcommand.
        let script = format!(
            "#!/bin/sh\necho \"$1\" >> {c}\n[ $(grep -c \"^$1$\" {c}) -gt 1 ] && {{ echo ok; exit 0; }}\nkill -SEGV $$\n",
            c = calls.display()
        );
        std::fs::write(&xl, script).unwrap();
        std::fs::set_permissions(&xl, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let t = Duration::from_secs(10);
        assert_eq!(run(&xl, &["list", "-v"], t).unwrap().trim(), "ok");
        let err = run(&xl, &["block-attach", "1", "x"], t)
            .unwrap_err()
            .to_string();
        assert!(err.contains("SIGSEGV"), "{err}");
        let n = std::fs::read_to_string(&calls).unwrap();
        assert_eq!(
            n.lines().collect::<Vec<_>>(),
            ["list", "list", "block-attach"]
        );
    }

    #[test]
    fn a_silent_failure_says_how_xl_ended() {
        let t = error_text("", "", "signal: 11 (SIGSEGV)");
        assert_eq!(t, "failed (signal: 11 (SIGSEGV)) and said nothing");
    }
}
