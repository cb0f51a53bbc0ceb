//! Where domus keeps its files, following the XDG base directories.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

use crate::fsx::{self, FsxError};

/// The file in the state directory that remembers the runtime directory
/// made under /tmp when there is no `XDG_RUNTIME_DIR`.
pub const RUNTIME_POINTER: &str = "runtime-dir";

/// The home directory: `$HOME`, else the password database's entry (a
/// service or `env -i` has no `HOME`; falling back to /tmp would put the
/// state under a path anyone can prepare), /tmp only when both fail.
fn home() -> PathBuf {
    if let Some(h) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        return PathBuf::from(h);
    }
    match nix::unistd::User::from_uid(nix::unistd::geteuid()) {
        Ok(Some(user)) if !user.dir.as_os_str().is_empty() => user.dir,
        _ => PathBuf::from("/tmp"),
    }
}

fn xdg(var: &str, fallback: &str) -> PathBuf {
    match std::env::var_os(var).filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => home().join(fallback),
    }
}

/// `$XDG_STATE_HOME/domus`: the simulated host, engine records, logs.
/// Callers make it private with [`fsx::ensure_private_dir`].
pub fn default_state_dir() -> PathBuf {
    xdg("XDG_STATE_HOME", ".local/state").join("domus")
}

/// `$XDG_CONFIG_HOME/domus`: domain configs and themes.
pub fn default_config_dir() -> PathBuf {
    xdg("XDG_CONFIG_HOME", ".config").join("domus")
}

/// The QEMU runtime directory, checked and ready (0700, ours, not a link):
/// `explicit` (`--runtime-dir`) if given, else `$XDG_RUNTIME_DIR/domus`,
/// else a directory with a random name under the temporary directory
/// (`/tmp/domus-UID-XXXXXX`), remembered in `STATE/runtime-dir` so later
/// processes find the same one, and made anew when it has vanished (a
/// reboot). Never a predictable /tmp path: anyone can create that first.
pub fn runtime_dir(explicit: Option<&Path>, state_dir: &Path) -> Result<PathBuf, FsxError> {
    let xdg = std::env::var_os("XDG_RUNTIME_DIR");
    runtime_dir_from(explicit, xdg.as_deref(), &std::env::temp_dir(), state_dir)
}

/// [`runtime_dir`] with the environment passed in, for tests.
fn runtime_dir_from(
    explicit: Option<&Path>,
    xdg_runtime_dir: Option<&OsStr>,
    tmp: &Path,
    state_dir: &Path,
) -> Result<PathBuf, FsxError> {
    let dir = match (explicit, xdg_runtime_dir.filter(|x| !x.is_empty())) {
        (Some(dir), _) => dir.to_path_buf(),
        (None, Some(xdg)) => PathBuf::from(xdg).join("domus"),
        (None, None) => return private_tmp_dir(tmp, state_dir),
    };
    fsx::ensure_private_dir(&dir).map_err(|e| e.with_option("--runtime-dir"))?;
    Ok(dir)
}

fn private_tmp_dir(tmp: &Path, state_dir: &Path) -> Result<PathBuf, FsxError> {
    fsx::ensure_private_dir(state_dir).map_err(|e| e.with_option("--state-dir"))?;
    let pointer = state_dir.join(RUNTIME_POINTER);
    // One process decides at a time, or two first runs would make two
    // directories and lose each other's domains.
    let lock_path = state_dir.join("runtime-dir.lock");
    let lock_file = fsx::open_private_append(&lock_path)?;
    let _lock =
        Flock::lock(lock_file, FlockArg::LockExclusive).map_err(|(_, errno)| FsxError::Io {
            op: "lock",
            path: lock_path.clone(),
            source: errno.into(),
        })?;
    if let Some(dir) = remembered(&pointer)? {
        match std::fs::symlink_metadata(&dir) {
            // Gone (a reboot emptied /tmp): make a new one below.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            // Whatever is there now must pass the same checks as the day
            // it was made; a stranger's directory is refused, not adopted.
            _ => {
                fsx::ensure_private_dir(&dir).map_err(|e| e.with_option("--runtime-dir"))?;
                return Ok(dir);
            }
        }
    }
    let template = tmp.join(format!("domus-{}-XXXXXX", nix::unistd::geteuid()));
    // mkdtemp: a random name, created 0700 by this call or not at all.
    let dir = nix::unistd::mkdtemp(&template).map_err(|errno| FsxError::Io {
        op: "create a directory in",
        path: tmp.to_path_buf(),
        source: errno.into(),
    })?;
    fsx::ensure_private_dir(&dir)?;
    let mut line = dir.as_os_str().as_bytes().to_vec();
    line.push(b'\n');
    fsx::write_atomic(&pointer, &line)?;
    tracing::info!(dir = %dir.display(), "made a runtime directory (no XDG_RUNTIME_DIR)");
    Ok(dir)
}

/// The directory the pointer file names, if it names one.
fn remembered(pointer: &Path) -> Result<Option<PathBuf>, FsxError> {
    let bytes = match fsx::read_bounded(pointer, 4096) {
        Ok(b) => b,
        Err(FsxError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    let line = bytes.strip_suffix(b"\n").unwrap_or(&bytes);
    let dir = PathBuf::from(OsStr::from_bytes(line));
    if dir.is_absolute() {
        Ok(Some(dir))
    } else {
        tracing::warn!(
            pointer = %pointer.display(),
            "does not name a directory; making a new runtime directory"
        );
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};

    use super::*;

    fn tmp() -> tempfile::TempDir {
        tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"))
    }

    fn mode(p: &Path) -> u32 {
        std::fs::symlink_metadata(p)
            .map(|m| m.mode() & 0o7777)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    fn ok(r: Result<PathBuf, FsxError>) -> PathBuf {
        r.unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn xdg_runtime_dir_and_an_explicit_dir_are_made_private() {
        let t = tmp();
        let state = t.path().join("state");
        let xdg = t.path().join("run-user");
        let dir = ok(crate::fsx::tests::with_umask_022(|| {
            runtime_dir_from(None, Some(xdg.as_os_str()), t.path(), &state)
        }));
        assert_eq!(dir, xdg.join("domus"));
        assert_eq!(mode(&dir), 0o700);
        let explicit = t.path().join("mine");
        let dir = ok(runtime_dir_from(
            Some(&explicit),
            Some(xdg.as_os_str()),
            t.path(),
            &state,
        ));
        assert_eq!(dir, explicit, "--runtime-dir wins over XDG_RUNTIME_DIR");
        assert_eq!(mode(&dir), 0o700);
        assert!(
            !state.join(RUNTIME_POINTER).exists(),
            "no pointer when nothing was made under /tmp"
        );
    }

    #[test]
    fn a_symlinked_runtime_dir_is_refused_not_followed() {
        let t = tmp();
        let target = t.path().join("target");
        std::fs::create_dir(&target).unwrap_or_else(|e| panic!("{e}"));
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|e| panic!("{e}"));
        let link = t.path().join("link");
        symlink(&target, &link).unwrap_or_else(|e| panic!("{e}"));
        let err = runtime_dir_from(Some(&link), None, t.path(), &t.path().join("state"))
            .map(|_| "accepted")
            .unwrap_err();
        assert!(
            err.to_string()
                .ends_with("choose another path with --runtime-dir"),
            "{err}"
        );
        assert_eq!(mode(&target), 0o755);
    }

    #[test]
    fn without_xdg_a_random_private_dir_is_made_remembered_and_reused() {
        let t = tmp();
        let tmpdir = t.path().join("tmp");
        std::fs::create_dir(&tmpdir).unwrap_or_else(|e| panic!("{e}"));
        let state = t.path().join("state");
        let uid = nix::unistd::geteuid();
        // The old predictable name, planted: never used.
        let planted = tmpdir.join(format!("domus-{uid}"));
        std::fs::create_dir(&planted).unwrap_or_else(|e| panic!("{e}"));

        let first = ok(crate::fsx::tests::with_umask_022(|| {
            runtime_dir_from(None, None, &tmpdir, &state)
        }));
        assert_ne!(first, planted);
        assert_eq!(first.parent(), Some(tmpdir.as_path()));
        let name = first
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let random = name.strip_prefix(&format!("domus-{uid}-")).unwrap_or("");
        assert_eq!(random.len(), 6, "{name}");
        assert_ne!(random, "XXXXXX", "the template was not filled in");
        assert_eq!(mode(&first), 0o700);
        let pointer = state.join(RUNTIME_POINTER);
        assert_eq!(mode(&pointer), 0o600);
        assert_eq!(
            std::fs::read_to_string(&pointer).ok(),
            Some(format!("{}\n", first.display()))
        );

        // A later process finds the same one.
        assert_eq!(ok(runtime_dir_from(None, None, &tmpdir, &state)), first);

        // Ours but opened up: tightened and reused.
        std::fs::set_permissions(&first, std::fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ok(runtime_dir_from(None, None, &tmpdir, &state)), first);
        assert_eq!(mode(&first), 0o700);

        // Vanished (a reboot): a new one, remembered instead.
        std::fs::remove_dir(&first).unwrap_or_else(|e| panic!("{e}"));
        let second = ok(runtime_dir_from(None, None, &tmpdir, &state));
        assert_ne!(second, first);
        assert_eq!(mode(&second), 0o700);
        assert_eq!(
            std::fs::read_to_string(&pointer).ok(),
            Some(format!("{}\n", second.display()))
        );

        // Replaced by a link to somewhere else: refused, not followed.
        std::fs::remove_dir(&second).unwrap_or_else(|e| panic!("{e}"));
        let elsewhere = t.path().join("elsewhere");
        std::fs::create_dir(&elsewhere).unwrap_or_else(|e| panic!("{e}"));
        symlink(&elsewhere, &second).unwrap_or_else(|e| panic!("{e}"));
        let err = runtime_dir_from(None, None, &tmpdir, &state)
            .map(|_| "accepted")
            .unwrap_err();
        assert!(matches!(err, FsxError::Symlink { .. }), "{err}");
    }

    #[test]
    fn a_remembered_dir_taken_over_by_someone_else_is_refused() {
        if nix::unistd::geteuid().as_raw() != 0 {
            eprintln!(
                "SKIPPED a_remembered_dir_taken_over_by_someone_else_is_refused: \
                 needs root to chown a directory to another uid"
            );
            return;
        }
        let t = tmp();
        let state = t.path().join("state");
        let dir = ok(runtime_dir_from(None, None, t.path(), &state));
        nix::unistd::chown(&dir, Some(nix::unistd::Uid::from_raw(65534)), None)
            .unwrap_or_else(|e| panic!("{e}"));
        let err = runtime_dir_from(None, None, t.path(), &state)
            .map(|_| "accepted")
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "{} is owned by uid 65534, not you (uid 0): remove it or choose another \
                 directory with --runtime-dir",
                dir.display()
            )
        );
    }

    #[test]
    fn a_pointer_that_names_no_absolute_path_is_replaced() {
        let t = tmp();
        let state = t.path().join("state");
        std::fs::create_dir(&state).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(state.join(RUNTIME_POINTER), "relative/dir\n")
            .unwrap_or_else(|e| panic!("{e}"));
        let dir = ok(runtime_dir_from(None, None, t.path(), &state));
        assert!(dir.is_absolute());
        assert_eq!(mode(&dir), 0o700);
    }
}
