//! Console logs that outlive their domain: `STATE/consoles/UUID/DOMID.log`,
//! one file per incarnation, so the oops that explains a crash is still
//! there after the domain is gone (`domus console --log DOM`). Backends
//! write a running domain's log there directly (QEMU) or move it there when
//! the domain goes (the simulator, Xen's xenconsoled log).
//!
//! Bounds: a log is cut to its newest [`LOG_CAP`] bytes once it passes
//! twice that (the older half is dropped); logs of domains that are gone
//! are kept [`KEEP_DAYS`] days, and at most [`KEEP_LOGS`] of them.

use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::backend::DomId;

/// The newest bytes a log keeps when it is cut.
pub const LOG_CAP: u64 = 2 << 20;
pub const KEEP_DAYS: u64 = 30;
pub const KEEP_LOGS: usize = 200;

#[derive(Debug, Clone)]
pub struct Archive {
    dir: PathBuf,
}

impl Archive {
    /// The archive of a state directory.
    pub fn in_state_dir(state_dir: &Path) -> Archive {
        Archive {
            dir: state_dir.join("consoles"),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where one incarnation's log lives.
    pub fn path(&self, uuid: uuid::Uuid, domid: DomId) -> PathBuf {
        self.dir.join(uuid.to_string()).join(format!("{domid}.log"))
    }

    /// Create the directories for one incarnation's log (0700).
    pub fn prepare(&self, uuid: uuid::Uuid) -> std::io::Result<()> {
        crate::fsx::ensure_private_dir(&self.dir)?;
        crate::fsx::ensure_private_dir(&self.dir.join(uuid.to_string()))?;
        Ok(())
    }

    /// The logs of a domain (every incarnation), oldest first.
    pub fn logs(&self, uuid: uuid::Uuid) -> Vec<(DomId, PathBuf)> {
        let dir = self.dir.join(uuid.to_string());
        let mut logs: Vec<(DomId, PathBuf)> = std::fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let domid = name.strip_suffix(".log")?.parse().ok()?;
                Some((domid, e.path()))
            })
            .collect();
        logs.sort_by_key(|(d, _)| *d);
        logs
    }

    /// Keep the newest [`LOG_CAP`] bytes of `src` as the archived log of an
    /// incarnation (a backend's own log, about to be removed).
    pub fn keep(&self, uuid: uuid::Uuid, domid: DomId, src: &Path) -> std::io::Result<()> {
        let Ok(mut from) = crate::fsx::open_regular(src) else {
            return Ok(());
        };
        let len = from.metadata()?.len();
        from.seek(SeekFrom::Start(len.saturating_sub(LOG_CAP)))?;
        let mut bytes = Vec::new();
        from.read_to_end(&mut bytes)?;
        self.prepare(uuid)?;
        let mut to = open_log(&self.path(uuid, domid))?;
        to.write_all(&bytes)
    }

    /// Drop logs past the retention: older than [`KEEP_DAYS`] or beyond the
    /// newest [`KEEP_LOGS`]; logs of live domains (`live`) are kept.
    pub fn prune(&self, live: &[(uuid::Uuid, DomId)], now_ns: u64) {
        let mut all: Vec<(std::time::SystemTime, PathBuf)> = Vec::new();
        for d in std::fs::read_dir(&self.dir).into_iter().flatten().flatten() {
            let Ok(uuid) = d.file_name().to_string_lossy().parse::<uuid::Uuid>() else {
                continue;
            };
            for f in std::fs::read_dir(d.path()).into_iter().flatten().flatten() {
                let name = f.file_name().to_string_lossy().into_owned();
                let domid = name.strip_suffix(".log").and_then(|x| x.parse().ok());
                if domid.is_some_and(|id| live.contains(&(uuid, id))) {
                    continue;
                }
                if let Ok(m) = f.metadata() {
                    all.push((m.modified().unwrap_or(std::time::UNIX_EPOCH), f.path()));
                }
            }
        }
        all.sort_by_key(|e| std::cmp::Reverse(e.0));
        let cutoff = std::time::UNIX_EPOCH
            + std::time::Duration::from_nanos(
                now_ns.saturating_sub(KEEP_DAYS * 86_400 * crate::clock::NS_PER_SEC),
            );
        for (i, (mtime, path)) in all.iter().enumerate() {
            if i >= KEEP_LOGS || *mtime < cutoff {
                let _ = std::fs::remove_file(path);
                if let Some(parent) = path.parent() {
                    // Removes the domain's directory once it is empty.
                    let _ = std::fs::remove_dir(parent);
                }
            }
        }
    }
}

/// Open a log for appending: owner-only, never through a symlink.
pub fn open_log(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
        .open(path)
}

/// Cut a log that a running writer appends to (QEMU opens it with
/// O_APPEND) down to its newest [`LOG_CAP`] bytes once it passes twice
/// that. A reader following it by offset starts over when it shrinks.
pub fn bound(path: &Path) -> std::io::Result<bool> {
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
        .open(path)?;
    let len = f.metadata()?.len();
    if len <= 2 * LOG_CAP {
        return Ok(false);
    }
    f.seek(SeekFrom::Start(len - LOG_CAP))?;
    let mut tail = Vec::new();
    f.read_to_end(&mut tail)?;
    f.set_len(0)?;
    f.seek(SeekFrom::Start(0))?;
    f.write_all(&tail)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_log_is_the_tail_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let a = Archive::in_state_dir(dir.path());
        let src = dir.path().join("src.log");
        let mut big = vec![b'a'; 100];
        big.extend(vec![b'z'; LOG_CAP as usize]);
        std::fs::write(&src, &big).unwrap();
        let u = uuid::Uuid::new_v4();
        a.keep(u, 7, &src).unwrap();
        let kept = std::fs::read(a.path(u, 7)).unwrap();
        assert_eq!(kept.len() as u64, LOG_CAP);
        assert!(kept.iter().all(|b| *b == b'z'));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(a.path(u, 7))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(a.logs(u), vec![(7, a.path(u, 7))]);
    }

    #[test]
    fn a_growing_log_is_cut_to_its_tail() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.log");
        std::fs::write(&p, vec![b'x'; 2 * LOG_CAP as usize]).unwrap();
        assert!(!bound(&p).unwrap(), "at the bound, nothing to do");
        let mut f = open_log(&p).unwrap();
        f.write_all(b"tail!").unwrap();
        assert!(bound(&p).unwrap());
        let left = std::fs::read(&p).unwrap();
        assert_eq!(left.len() as u64, LOG_CAP);
        assert!(left.ends_with(b"tail!"));
        // The writer keeps appending at the new end.
        f.write_all(b"more").unwrap();
        assert!(std::fs::read(&p).unwrap().ends_with(b"tail!more"));
    }

    #[test]
    fn pruning_keeps_live_logs_and_drops_old_ones() {
        let dir = tempfile::tempdir().unwrap();
        let a = Archive::in_state_dir(dir.path());
        let (live, gone) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
        for (u, d) in [(live, 1), (gone, 2)] {
            a.prepare(u).unwrap();
            std::fs::write(a.path(u, d), b"log").unwrap();
        }
        let far_future = crate::clock::wall_ns() + 40 * 86_400 * crate::clock::NS_PER_SEC;
        a.prune(&[(live, 1)], far_future);
        assert!(a.path(live, 1).exists());
        assert!(!a.path(gone, 2).exists());
        assert!(!a.dir().join(gone.to_string()).exists());
    }
}
