//! Safe file operations: domus's own directories and files are private
//! (0700, 0600, whatever the umask) and never reached through a symbolic
//! link; input files are read only when they are regular files of bounded
//! size, so a FIFO or `/dev/zero` cannot hang or swamp a reader.
//!
//! Policy for a directory domus is asked to use that already exists:
//! a symbolic link, a non-directory or a directory owned by another user is
//! refused (never followed, never re-moded); a directory we own that is
//! merely too open (an older domus created it under umask 022) is tightened
//! to 0700 with a warning, since refusing would break every upgrade.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;

/// Mode of every directory domus creates for itself.
pub const PRIVATE_DIR_MODE: u32 = 0o700;
/// Mode of every file domus creates for itself.
pub const PRIVATE_FILE_MODE: u32 = 0o600;

/// What a path turned out to be, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Regular,
    Directory,
    Symlink,
    Fifo,
    Socket,
    CharDevice,
    BlockDevice,
    Unknown,
}

impl FileKind {
    pub fn of(t: std::fs::FileType) -> FileKind {
        if t.is_file() {
            FileKind::Regular
        } else if t.is_dir() {
            FileKind::Directory
        } else if t.is_symlink() {
            FileKind::Symlink
        } else if t.is_fifo() {
            FileKind::Fifo
        } else if t.is_socket() {
            FileKind::Socket
        } else if t.is_char_device() {
            FileKind::CharDevice
        } else if t.is_block_device() {
            FileKind::BlockDevice
        } else {
            FileKind::Unknown
        }
    }
}

impl fmt::Display for FileKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FileKind::Regular => "a regular file",
            FileKind::Directory => "a directory",
            FileKind::Symlink => "a symbolic link",
            FileKind::Fifo => "a FIFO",
            FileKind::Socket => "a socket",
            FileKind::CharDevice => "a character device",
            FileKind::BlockDevice => "a block device",
            FileKind::Unknown => "an unknown kind of file",
        })
    }
}

/// A refused or failed file operation: the path, the problem and the fix.
#[derive(Debug, thiserror::Error)]
pub enum FsxError {
    #[error(
        "{} is a symbolic link, which domus does not follow for its own files: remove it or choose another path{}",
        path.display(),
        via(*option)
    )]
    Symlink {
        path: PathBuf,
        /// The command-line option that picks another path, if any.
        option: Option<&'static str>,
    },
    #[error(
        "{} is {kind}, not a directory: remove it or choose another directory{}",
        path.display(),
        via(*option)
    )]
    NotADirectory {
        path: PathBuf,
        kind: FileKind,
        option: Option<&'static str>,
    },
    #[error(
        "{} is owned by uid {owner}, not you (uid {me}): remove it or choose another {}{}",
        path.display(),
        if *kind == FileKind::Directory { "directory" } else { "file" },
        via(*option)
    )]
    ForeignOwner {
        path: PathBuf,
        kind: FileKind,
        owner: u32,
        me: u32,
        option: Option<&'static str>,
    },
    #[error("{} is not a regular file ({kind}): domus uses only regular files here", path.display())]
    NotRegular { path: PathBuf, kind: FileKind },
    #[error("{} is {}; domus reads files of at most {}", path.display(), size.map_or_else(|| "larger".to_string(), human), human(*limit))]
    TooLarge {
        path: PathBuf,
        /// `None` when the file grew past the limit while being read.
        size: Option<u64>,
        limit: u64,
    },
    #[error("{} is not UTF-8 text (bad byte at offset {}): save it as UTF-8", path.display(), source.valid_up_to())]
    NotUtf8 {
        path: PathBuf,
        #[source]
        source: std::str::Utf8Error,
    },
    #[error("{} exists; choose another name or remove it", path.display())]
    Exists { path: PathBuf },
    #[error("cannot {op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn via(option: Option<&'static str>) -> String {
    option.map_or_else(String::new, |o| format!(" with {o}"))
}

/// Sizes as an operator reads them: `1 MiB`, `8.0 GiB`, `512 bytes`.
fn human(bytes: u64) -> String {
    const UNITS: [(u64, &str); 3] = [(1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
    for (unit, name) in UNITS {
        if bytes >= unit {
            return if bytes.is_multiple_of(unit) {
                format!("{} {name}", bytes / unit)
            } else {
                // Display only: the precision lost by the cast does not matter.
                #[allow(clippy::cast_precision_loss)]
                let v = bytes as f64 / unit as f64;
                format!("{v:.1} {name}")
            };
        }
    }
    format!("{bytes} bytes")
}

impl FsxError {
    /// Name the command-line option that picks another path, so the
    /// message's fix says how (`… choose another directory with --state-dir`).
    #[must_use]
    pub fn with_option(mut self, flag: &'static str) -> Self {
        match &mut self {
            FsxError::Symlink { option, .. }
            | FsxError::NotADirectory { option, .. }
            | FsxError::ForeignOwner { option, .. } => *option = Some(flag),
            _ => {}
        }
        self
    }

    /// The path the error is about.
    pub fn path(&self) -> &Path {
        match self {
            FsxError::Symlink { path, .. }
            | FsxError::NotADirectory { path, .. }
            | FsxError::ForeignOwner { path, .. }
            | FsxError::NotRegular { path, .. }
            | FsxError::TooLarge { path, .. }
            | FsxError::NotUtf8 { path, .. }
            | FsxError::Exists { path }
            | FsxError::Io { path, .. } => path,
        }
    }

    fn io(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> FsxError {
        let path = path.to_path_buf();
        move |source| FsxError::Io { op, path, source }
    }
}

/// For callers whose signature speaks `io::Error` (the QEMU backend's
/// directory helpers): the kind follows the problem, the message is kept.
impl From<FsxError> for io::Error {
    fn from(e: FsxError) -> io::Error {
        let kind = match &e {
            FsxError::Io { source, .. } => source.kind(),
            FsxError::Exists { .. } => io::ErrorKind::AlreadyExists,
            FsxError::Symlink { .. } | FsxError::ForeignOwner { .. } => {
                io::ErrorKind::PermissionDenied
            }
            FsxError::TooLarge { .. } => io::ErrorKind::FileTooLarge,
            FsxError::NotUtf8 { .. } => io::ErrorKind::InvalidData,
            FsxError::NotADirectory { .. } => io::ErrorKind::NotADirectory,
            FsxError::NotRegular { .. } => io::ErrorKind::InvalidInput,
        };
        io::Error::new(kind, e)
    }
}

fn euid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

/// What is at `path` itself (not following a link), if anything.
fn kind_at(path: &Path) -> Option<FileKind> {
    std::fs::symlink_metadata(path)
        .ok()
        .map(|m| FileKind::of(m.file_type()))
}

/// Make sure `path` is a directory only we can use, creating it (0700)
/// and any missing parents (with the usual modes) if needed. Refuses a
/// symbolic link, a non-directory and a directory owned by another user;
/// tightens a directory of ours that others can access to 0700, with a
/// warning in the log.
pub fn ensure_private_dir(path: &Path) -> Result<(), FsxError> {
    if let Some(old) = ensure_private_dir_report(path)? {
        tracing::warn!(
            path = %path.display(),
            "tightened from {old:04o} to 0700: it was open to other users"
        );
    }
    Ok(())
}

/// [`ensure_private_dir`] without the log line: returns the old mode when
/// the directory was tightened, for a caller whose log is not open yet
/// (the state directory holds the log).
pub fn ensure_private_dir_report(path: &Path) -> Result<Option<u32>, FsxError> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(FsxError::io("create", parent))?;
    }
    let created = match std::fs::DirBuilder::new()
        .mode(PRIVATE_DIR_MODE)
        .create(path)
    {
        Ok(()) => true,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => false,
        Err(e) => return Err(FsxError::io("create", path)(e)),
    };
    // Check and change the directory through one descriptor opened without
    // following a link, so nothing can be swapped in between.
    let dir = match OpenOptions::new()
        .read(true)
        .custom_flags((OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW).bits())
        .open(path)
    {
        Ok(d) => d,
        Err(e) => {
            return Err(match kind_at(path) {
                Some(FileKind::Symlink) => FsxError::Symlink {
                    path: path.to_path_buf(),
                    option: None,
                },
                Some(kind) if kind != FileKind::Directory => FsxError::NotADirectory {
                    path: path.to_path_buf(),
                    kind,
                    option: None,
                },
                _ => FsxError::io("open", path)(e),
            });
        }
    };
    let meta = dir.metadata().map_err(FsxError::io("inspect", path))?;
    let me = euid();
    if meta.uid() != me {
        return Err(FsxError::ForeignOwner {
            path: path.to_path_buf(),
            kind: FileKind::Directory,
            owner: meta.uid(),
            me,
            option: None,
        });
    }
    let mode = meta.mode() & 0o7777;
    if mode == PRIVATE_DIR_MODE {
        return Ok(None);
    }
    if created || mode & 0o077 != 0 {
        dir.set_permissions(std::fs::Permissions::from_mode(PRIVATE_DIR_MODE))
            .map_err(FsxError::io("tighten the permissions of", path))?;
    }
    // A fresh directory only needs its mode made independent of the umask.
    Ok((!created && mode & 0o077 != 0).then_some(mode))
}

/// Create a new file only we can read and write (0600, whatever the
/// umask). Refuses to reuse anything already at `path`, a dangling
/// symbolic link included.
pub fn create_private(path: &Path) -> Result<File, FsxError> {
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(PRIVATE_FILE_MODE)
        .custom_flags(OFlag::O_NOFOLLOW.bits())
        .open(path)
        .map_err(|e| match e.kind() {
            io::ErrorKind::AlreadyExists => match kind_at(path) {
                Some(FileKind::Symlink) => FsxError::Symlink {
                    path: path.to_path_buf(),
                    option: None,
                },
                _ => FsxError::Exists {
                    path: path.to_path_buf(),
                },
            },
            _ => FsxError::io("create", path)(e),
        })?;
    file.set_permissions(std::fs::Permissions::from_mode(PRIVATE_FILE_MODE))
        .map_err(FsxError::io("set the permissions of", path))?;
    Ok(file)
}

/// Open (creating it 0600) a lock file: read-write, never through a
/// symbolic link, never blocking on a FIFO planted in its place.
pub fn open_lock(path: &Path) -> Result<File, FsxError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(PRIVATE_FILE_MODE)
        .custom_flags((OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC).bits())
        .open(path)
        .map_err(|e| match kind_at(path) {
            Some(FileKind::Symlink) => FsxError::Symlink {
                path: path.to_path_buf(),
                option: None,
            },
            _ => FsxError::io("open", path)(e),
        })
}

/// Open a file of ours for appending (a log), creating it 0600. Refuses a
/// symbolic link, a non-regular file and a file owned by someone else;
/// tightens ours to 0600 if others could read it.
pub fn open_private_append(path: &Path) -> Result<File, FsxError> {
    // O_NONBLOCK: opening a FIFO for writing would otherwise wait for a
    // reader; it changes nothing for the regular file we accept.
    let file = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(PRIVATE_FILE_MODE)
        .custom_flags((OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK).bits())
        .open(path)
        .map_err(|e| match kind_at(path) {
            Some(FileKind::Symlink) => FsxError::Symlink {
                path: path.to_path_buf(),
                option: None,
            },
            Some(kind) if kind != FileKind::Regular => FsxError::NotRegular {
                path: path.to_path_buf(),
                kind,
            },
            _ => FsxError::io("open", path)(e),
        })?;
    make_private(&file, path)?;
    Ok(file)
}

/// Make an existing regular file of ours 0600: for a file another program
/// (xl, a backend) wrote with the umask's mode. A link is not followed;
/// someone else's file is refused.
pub fn restrict_file(path: &Path) -> Result<(), FsxError> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags((OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK).bits())
        .open(path)
        .map_err(|e| match kind_at(path) {
            Some(FileKind::Symlink) => FsxError::Symlink {
                path: path.to_path_buf(),
                option: None,
            },
            _ => FsxError::io("open", path)(e),
        })?;
    make_private(&file, path)
}

/// Check that an open file is a regular file of ours, and make it 0600
/// (saying so when others could read it).
fn make_private(file: &File, path: &Path) -> Result<(), FsxError> {
    let meta = file.metadata().map_err(FsxError::io("inspect", path))?;
    let kind = FileKind::of(meta.file_type());
    if kind != FileKind::Regular {
        return Err(FsxError::NotRegular {
            path: path.to_path_buf(),
            kind,
        });
    }
    let me = euid();
    if meta.uid() != me {
        return Err(FsxError::ForeignOwner {
            path: path.to_path_buf(),
            kind,
            owner: meta.uid(),
            me,
            option: None,
        });
    }
    let mode = meta.mode() & 0o7777;
    if mode != PRIVATE_FILE_MODE {
        file.set_permissions(std::fs::Permissions::from_mode(PRIVATE_FILE_MODE))
            .map_err(FsxError::io("tighten the permissions of", path))?;
        if mode & 0o077 != 0 {
            tracing::warn!(
                path = %path.display(),
                "tightened from {mode:04o} to 0600: it was open to other users"
            );
        }
    }
    Ok(())
}

/// Replace `path` with `bytes` so that a crash leaves the old or the new
/// content, never a mix: a 0600 temporary with an unguessable name in the
/// same directory, synced, renamed over `path`, the directory synced.
/// `path` must not be a symbolic link (its target is never written); the
/// result is 0600 whatever `path`'s mode was.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), FsxError> {
    match kind_at(path) {
        Some(FileKind::Symlink) => {
            return Err(FsxError::Symlink {
                path: path.to_path_buf(),
                option: None,
            });
        }
        Some(kind) if kind != FileKind::Regular => {
            return Err(FsxError::NotRegular {
                path: path.to_path_buf(),
                kind,
            });
        }
        _ => {}
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path.file_name().ok_or_else(|| FsxError::Io {
        op: "write",
        path: path.to_path_buf(),
        source: io::Error::new(io::ErrorKind::InvalidInput, "no file name"),
    })?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".{}.tmp", uuid::Uuid::new_v4().simple()));
    let tmp = dir.join(tmp_name);
    let result = (|| {
        let mut file = create_private(&tmp)?;
        file.write_all(bytes).map_err(FsxError::io("write", &tmp))?;
        file.sync_all().map_err(FsxError::io("sync", &tmp))?;
        std::fs::rename(&tmp, path).map_err(FsxError::io("replace", path))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
        return result;
    }
    // Make the rename itself durable. Some file systems cannot sync a
    // directory; the data is written either way.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Open `path` for reading if it is a regular file, following symbolic
/// links (operators link their configs). The open does not block on a
/// FIFO, and nothing is read from anything else.
pub fn open_regular(path: &Path) -> Result<File, FsxError> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(OFlag::O_NONBLOCK.bits())
        .open(path)
        .map_err(|e| match std::fs::metadata(path) {
            // A socket cannot be opened at all: name it rather than ENXIO.
            Ok(m) if !m.is_file() => FsxError::NotRegular {
                path: path.to_path_buf(),
                kind: FileKind::of(m.file_type()),
            },
            _ => FsxError::io("read", path)(e),
        })?;
    let meta = file.metadata().map_err(FsxError::io("inspect", path))?;
    let kind = FileKind::of(meta.file_type());
    if kind != FileKind::Regular {
        return Err(FsxError::NotRegular {
            path: path.to_path_buf(),
            kind,
        });
    }
    Ok(file)
}

/// Read a regular file of at most `limit` bytes.
pub fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>, FsxError> {
    let file = open_regular(path)?;
    let size = file
        .metadata()
        .map_err(FsxError::io("inspect", path))?
        .len();
    if size > limit {
        return Err(FsxError::TooLarge {
            path: path.to_path_buf(),
            size: Some(size),
            limit,
        });
    }
    let mut buf = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    // One byte past the limit tells a file that grew since the fstat.
    file.take(limit.saturating_add(1))
        .read_to_end(&mut buf)
        .map_err(FsxError::io("read", path))?;
    if buf.len() as u64 > limit {
        return Err(FsxError::TooLarge {
            path: path.to_path_buf(),
            size: None,
            limit,
        });
    }
    Ok(buf)
}

/// [`read_bounded`] for UTF-8 text.
pub fn read_to_string_bounded(path: &Path, limit: u64) -> Result<String, FsxError> {
    let bytes = read_bounded(path, limit)?;
    String::from_utf8(bytes).map_err(|e| FsxError::NotUtf8 {
        path: path.to_path_buf(),
        source: e.utf8_error(),
    })
}

/// A character that changes how the text around it is shown without
/// being seen itself: controls, and the bidirectional overrides (a name
/// with U+202E would print the rest of the line reversed).
pub fn is_sneaky(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// A short, one-line excerpt of `s` for a message: control characters
/// and other invisible ones escaped (`\n`, `\u{1b}`), at most `max_chars`
/// characters of `s`, then `…` and the full length when it was cut.
pub fn excerpt(s: &str, max_chars: usize) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    for c in chars.by_ref().take(max_chars) {
        match c {
            // Printable, and escape_debug would add a backslash.
            '\\' | '\'' | '"' => out.push(c),
            _ => out.extend(c.escape_debug()),
        }
    }
    if chars.next().is_some() {
        let total = s.chars().count();
        out.push_str(&format!("… ({total} characters)"));
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn bidirectional_overrides_are_sneaky_like_controls() {
        assert!(is_sneaky('\u{202e}') && is_sneaky('\u{2066}') && is_sneaky('\u{1b}'));
        assert!(!is_sneaky('a') && !is_sneaky('é') && !is_sneaky('…'));
    }
    use std::sync::Mutex;
    use std::time::{Duration, Instant};

    use nix::sys::stat::Mode;

    /// The umask is per process: tests that change it take turns.
    pub(crate) static UMASK: Mutex<()> = Mutex::new(());

    /// Run `f` under umask 022, the permissive default the issue names.
    pub(crate) fn with_umask_022<T>(f: impl FnOnce() -> T) -> T {
        let _guard = UMASK
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let old = nix::sys::stat::umask(Mode::from_bits_truncate(0o022));
        let out = f();
        nix::sys::stat::umask(old);
        out
    }

    fn tmp() -> tempfile::TempDir {
        tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"))
    }

    fn mode(p: &Path) -> u32 {
        std::fs::symlink_metadata(p)
            .map(|m| m.mode() & 0o7777)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    fn is_root() -> bool {
        euid() == 0
    }

    #[test]
    fn private_dirs_are_0700_under_umask_022_with_parents_created() {
        let t = tmp();
        let dir = t.path().join("a/b/state");
        with_umask_022(|| ensure_private_dir(&dir)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(mode(&dir), 0o700);
        // Parents get the usual modes: only the leaf is ours to lock down.
        assert_eq!(mode(&t.path().join("a")), 0o755);
        // Again: nothing to do, still fine.
        ensure_private_dir(&dir).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(mode(&dir), 0o700);
    }

    #[test]
    fn a_symlinked_dir_is_refused_and_its_target_untouched() {
        let t = tmp();
        let target = t.path().join("elsewhere");
        std::fs::create_dir(&target).unwrap_or_else(|e| panic!("{e}"));
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|e| panic!("{e}"));
        let link = t.path().join("runtime");
        symlink(&target, &link).unwrap_or_else(|e| panic!("{e}"));
        let err = ensure_private_dir(&link).map(|()| "accepted").unwrap_err();
        assert!(matches!(err, FsxError::Symlink { .. }), "{err}");
        assert_eq!(mode(&target), 0o755, "the target was re-moded");
        assert_eq!(
            err.with_option("--runtime-dir").to_string(),
            format!(
                "{} is a symbolic link, which domus does not follow for its own files: \
                 remove it or choose another path with --runtime-dir",
                link.display()
            )
        );
    }

    #[test]
    fn a_file_where_a_dir_should_be_is_refused() {
        let t = tmp();
        let f = t.path().join("state");
        std::fs::write(&f, "x").unwrap_or_else(|e| panic!("{e}"));
        let err = ensure_private_dir(&f).map(|()| "accepted").unwrap_err();
        assert!(
            err.to_string()
                .contains("is a regular file, not a directory: remove it"),
            "{err}"
        );
    }

    #[test]
    fn our_own_open_dir_is_tightened_and_reported() {
        let t = tmp();
        let dir = t.path().join("old-state");
        std::fs::create_dir(&dir).unwrap_or_else(|e| panic!("{e}"));
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o757))
            .unwrap_or_else(|e| panic!("{e}"));
        let old = ensure_private_dir_report(&dir).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(old, Some(0o757));
        assert_eq!(mode(&dir), 0o700);
    }

    #[test]
    fn a_dir_owned_by_someone_else_is_refused_not_remoded() {
        if !is_root() {
            eprintln!(
                "SKIPPED a_dir_owned_by_someone_else_is_refused_not_remoded: \
                 needs root to chown a directory to another uid"
            );
            return;
        }
        let t = tmp();
        let dir = t.path().join("domus-0");
        std::fs::create_dir(&dir).unwrap_or_else(|e| panic!("{e}"));
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777))
            .unwrap_or_else(|e| panic!("{e}"));
        nix::unistd::chown(&dir, Some(nix::unistd::Uid::from_raw(65534)), None)
            .unwrap_or_else(|e| panic!("{e}"));
        let err = ensure_private_dir(&dir).map(|()| "accepted").unwrap_err();
        assert_eq!(
            err.with_option("--runtime-dir").to_string(),
            format!(
                "{} is owned by uid 65534, not you (uid 0): remove it or choose another \
                 directory with --runtime-dir",
                dir.display()
            )
        );
        assert_eq!(mode(&dir), 0o777, "someone else's directory was re-moded");

        // A log file of someone else's is refused too.
        let own = t.path().join("mine");
        ensure_private_dir(&own).unwrap_or_else(|e| panic!("{e}"));
        let log = own.join("domus.log");
        std::fs::write(&log, "").unwrap_or_else(|e| panic!("{e}"));
        nix::unistd::chown(&log, Some(nix::unistd::Uid::from_raw(65534)), None)
            .unwrap_or_else(|e| panic!("{e}"));
        let err = open_private_append(&log).map(|_| "opened").unwrap_err();
        assert!(
            matches!(err, FsxError::ForeignOwner { owner: 65534, .. }),
            "{err}"
        );
    }

    #[test]
    fn private_files_are_0600_under_umask_022_and_never_reused() {
        let t = tmp();
        let f = t.path().join("save.img");
        with_umask_022(|| create_private(&f)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(mode(&f), 0o600);
        let err = create_private(&f).map(|_| "created").unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("{} exists; choose another name or remove it", f.display())
        );
        // A dangling link is not a way in either.
        let victim = t.path().join("victim");
        let link = t.path().join("planted");
        symlink(&victim, &link).unwrap_or_else(|e| panic!("{e}"));
        let err = create_private(&link).map(|_| "created").unwrap_err();
        assert!(matches!(err, FsxError::Symlink { .. }), "{err}");
        assert!(!victim.exists(), "created through the link");
    }

    #[test]
    fn the_log_is_appended_0600_and_a_link_or_fifo_is_refused() {
        let t = tmp();
        let log = t.path().join("domus.log");
        with_umask_022(|| -> Result<(), FsxError> {
            let mut f = open_private_append(&log)?;
            writeln!(f, "one").map_err(FsxError::io("write", &log))?;
            let mut f = open_private_append(&log)?;
            writeln!(f, "two").map_err(FsxError::io("write", &log))
        })
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(mode(&log), 0o600);
        assert_eq!(
            std::fs::read_to_string(&log).ok().as_deref(),
            Some("one\ntwo\n")
        );

        // An old log of ours, 0644: tightened.
        let old = t.path().join("old.log");
        std::fs::write(&old, "x\n").unwrap_or_else(|e| panic!("{e}"));
        std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o644))
            .unwrap_or_else(|e| panic!("{e}"));
        open_private_append(&old).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(mode(&old), 0o600);

        let target = t.path().join("target");
        std::fs::write(&target, "keep").unwrap_or_else(|e| panic!("{e}"));
        let link = t.path().join("linked.log");
        symlink(&target, &link).unwrap_or_else(|e| panic!("{e}"));
        let err = open_private_append(&link).map(|_| "opened").unwrap_err();
        assert!(matches!(err, FsxError::Symlink { .. }), "{err}");
        assert_eq!(
            std::fs::read_to_string(&target).ok().as_deref(),
            Some("keep")
        );

        let fifo = t.path().join("fifo.log");
        nix::unistd::mkfifo(&fifo, Mode::from_bits_truncate(0o600))
            .unwrap_or_else(|e| panic!("{e}"));
        let started = Instant::now();
        let err = open_private_append(&fifo).map(|_| "opened").unwrap_err();
        assert!(
            matches!(
                err,
                FsxError::NotRegular {
                    kind: FileKind::Fifo,
                    ..
                }
            ),
            "{err}"
        );
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn restrict_file_tightens_ours_and_does_not_follow_links() {
        let t = tmp();
        let f = t.path().join("saved");
        std::fs::write(&f, "x").unwrap_or_else(|e| panic!("{e}"));
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644))
            .unwrap_or_else(|e| panic!("{e}"));
        restrict_file(&f).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(mode(&f), 0o600);
        let target = t.path().join("target");
        std::fs::write(&target, "x").unwrap_or_else(|e| panic!("{e}"));
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o644))
            .unwrap_or_else(|e| panic!("{e}"));
        let link = t.path().join("link");
        symlink(&target, &link).unwrap_or_else(|e| panic!("{e}"));
        let err = restrict_file(&link).map(|()| "done").unwrap_err();
        assert!(matches!(err, FsxError::Symlink { .. }), "{err}");
        assert_eq!(mode(&target), 0o644);
    }

    #[test]
    fn write_atomic_replaces_and_leaves_0600_and_no_temporaries() {
        let t = tmp();
        let f = t.path().join("next-domid.json");
        with_umask_022(|| write_atomic(&f, b"{\"next_domid\":1}"))
            .unwrap_or_else(|e| panic!("{e}"));
        write_atomic(&f, b"{\"next_domid\":2}").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            std::fs::read_to_string(&f).ok().as_deref(),
            Some("{\"next_domid\":2}")
        );
        assert_eq!(mode(&f), 0o600);
        let names: Vec<_> = std::fs::read_dir(t.path())
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("next-domid.json")]);
    }

    #[test]
    fn write_atomic_is_not_tricked_by_planted_links() {
        let t = tmp();
        let victim = t.path().join("root-owned-file");
        std::fs::write(&victim, "precious").unwrap_or_else(|e| panic!("{e}"));
        let f = t.path().join("next-domid.json");
        // The names a predictable writer would use.
        for planted in [
            "next-domid.json.tmp",
            ".next-domid.json.tmp",
            ".next-domid.json.domus-tmp",
        ] {
            symlink(&victim, t.path().join(planted)).unwrap_or_else(|e| panic!("{e}"));
        }
        write_atomic(&f, b"new").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            std::fs::read_to_string(&victim).ok().as_deref(),
            Some("precious")
        );
        assert_eq!(std::fs::read_to_string(&f).ok().as_deref(), Some("new"));

        // `path` itself a link: refused, the target unchanged.
        let link = t.path().join("linked.json");
        symlink(&victim, &link).unwrap_or_else(|e| panic!("{e}"));
        let err = write_atomic(&link, b"overwritten")
            .map(|()| "written")
            .unwrap_err();
        assert!(matches!(err, FsxError::Symlink { .. }), "{err}");
        assert_eq!(
            std::fs::read_to_string(&victim).ok().as_deref(),
            Some("precious")
        );
        assert!(
            std::fs::symlink_metadata(&link).is_ok_and(|m| m.file_type().is_symlink()),
            "the link was replaced"
        );
    }

    #[test]
    fn a_fifo_is_refused_at_once_without_blocking() {
        let t = tmp();
        let fifo = t.path().join("evil.sxp");
        nix::unistd::mkfifo(&fifo, Mode::from_bits_truncate(0o600))
            .unwrap_or_else(|e| panic!("{e}"));
        let started = Instant::now();
        let err = read_to_string_bounded(&fifo, 1 << 20)
            .map(|_| "read")
            .unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "the read blocked"
        );
        assert_eq!(
            err.to_string(),
            format!(
                "{} is not a regular file (a FIFO): domus uses only regular files here",
                fifo.display()
            )
        );
        // Through a link, the same.
        let link = t.path().join("link.sxp");
        symlink(&fifo, &link).unwrap_or_else(|e| panic!("{e}"));
        let err = read_bounded(&link, 10).map(|_| "read").unwrap_err();
        assert!(
            matches!(
                err,
                FsxError::NotRegular {
                    kind: FileKind::Fifo,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn devices_directories_and_sockets_are_refused() {
        let err = read_bounded(Path::new("/dev/zero"), 1 << 20)
            .map(|_| "read")
            .unwrap_err();
        assert!(
            matches!(
                err,
                FsxError::NotRegular {
                    kind: FileKind::CharDevice,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("(a character device)"), "{err}");
        let t = tmp();
        let err = read_bounded(t.path(), 10).map(|_| "read").unwrap_err();
        assert!(err.to_string().contains("(a directory)"), "{err}");
        let sock = t.path().join("s.sxp");
        let _listener =
            std::os::unix::net::UnixListener::bind(&sock).unwrap_or_else(|e| panic!("{e}"));
        let err = read_bounded(&sock, 10).map(|_| "read").unwrap_err();
        assert!(err.to_string().contains("(a socket)"), "{err}");
    }

    #[test]
    fn sizes_are_bounded_and_links_are_read_through() {
        let t = tmp();
        let f = t.path().join("big.sxp");
        std::fs::write(&f, vec![b'x'; 2048]).unwrap_or_else(|e| panic!("{e}"));
        let err = read_bounded(&f, 1024).map(|_| "read").unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "{} is 2 KiB; domus reads files of at most 1 KiB",
                f.display()
            )
        );
        assert_eq!(read_bounded(&f, 2048).map(|v| v.len()).ok(), Some(2048));
        let sparse = t.path().join("sparse");
        File::create(&sparse)
            .and_then(|f| f.set_len(8 << 30))
            .unwrap_or_else(|e| panic!("{e}"));
        let err = read_bounded(&sparse, 1 << 20).map(|_| "read").unwrap_err();
        assert!(
            err.to_string()
                .ends_with("is 8 GiB; domus reads files of at most 1 MiB"),
            "{err}"
        );
        let link = t.path().join("link.sxp");
        symlink(&f, &link).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(read_bounded(&link, 4096).map(|v| v.len()).ok(), Some(2048));
        std::fs::write(&f, [0xff, 0xfe]).unwrap_or_else(|e| panic!("{e}"));
        let err = read_to_string_bounded(&f, 10).map(|_| "read").unwrap_err();
        assert!(
            err.to_string()
                .contains("is not UTF-8 text (bad byte at offset 0)"),
            "{err}"
        );
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human(512), "512 bytes");
        assert_eq!(human(1 << 20), "1 MiB");
        assert_eq!(human((1 << 20) + (1 << 19)), "1.5 MiB");
        assert_eq!(human(8 << 30), "8 GiB");
    }

    #[test]
    fn excerpts_are_short_and_one_line() {
        assert_eq!(excerpt("web1", 60), "web1");
        assert_eq!(excerpt("a\nb\t\u{1b}[2J\"'", 60), "a\\nb\\t\\u{1b}[2J\"'");
        let huge = "x".repeat(8 << 20);
        let e = excerpt(&huge, 60);
        assert_eq!(e, format!("{}… (8388608 characters)", "x".repeat(60)));
        assert_eq!(
            excerpt(&"é".repeat(61), 60)
                .chars()
                .filter(|c| *c == 'é')
                .count(),
            60
        );
        // A right-to-left override cannot reorder the rest of the line.
        assert_eq!(excerpt("a\u{202e}b", 60), "a\\u{202e}b");
    }
}
