//! A JSON file shared between processes: readers take a shared `flock`,
//! writers an exclusive one and replace the file atomically (temp + rename).

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use serde::Serialize;
use serde::de::DeserializeOwned;

#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    #[error("{context} {path}: {source}")]
    Io {
        context: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path} is damaged ({message}); move it away to start afresh")]
    Damaged { path: PathBuf, message: String },
}

#[derive(Debug, Clone)]
pub struct JsonFile {
    path: PathBuf,
    lock_path: PathBuf,
}

/// Holds the lock until dropped.
pub struct LockGuard(#[allow(dead_code)] Flock<File>);

impl JsonFile {
    /// `path` is the data file; its lock lives beside it as `NAME.lock`.
    pub fn new(path: &Path) -> Self {
        let mut lock_path = path.as_os_str().to_owned();
        lock_path.push(".lock");
        JsonFile {
            path: path.to_path_buf(),
            lock_path: PathBuf::from(lock_path),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io(&self, context: &'static str, path: &Path) -> impl FnOnce(io::Error) -> PersistError {
        let path = path.to_path_buf();
        move |source| PersistError::Io {
            context,
            path,
            source,
        }
    }

    pub fn lock(&self, exclusive: bool) -> Result<LockGuard, PersistError> {
        if let Some(dir) = self.path.parent() {
            fs::create_dir_all(dir).map_err(self.io("creating", dir))?;
        }
        let file = crate::fsx::open_lock(&self.lock_path)
            .map_err(|e| self.io("opening", &self.lock_path)(e.into()))?;
        let arg = if exclusive {
            FlockArg::LockExclusive
        } else {
            FlockArg::LockShared
        };
        Flock::lock(file, arg)
            .map(LockGuard)
            .map_err(|(_, errno)| PersistError::Io {
                context: "locking",
                path: self.lock_path.clone(),
                source: io::Error::from(errno),
            })
    }

    /// The stored value, or `None` when the file does not exist yet.
    pub fn load<T: DeserializeOwned>(&self) -> Result<Option<T>, PersistError> {
        Ok(self.load_raw()?.map(|(v, _)| v))
    }

    /// The stored value and the bytes it was read from.
    pub fn load_raw<T: DeserializeOwned>(&self) -> Result<Option<(T, Vec<u8>)>, PersistError> {
        let bytes = match fs::read(&self.path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.io("reading", &self.path)(e)),
        };
        serde_json::from_slice(&bytes)
            .map(|v| Some((v, bytes)))
            .map_err(|e| PersistError::Damaged {
                path: self.path.clone(),
                message: e.to_string(),
            })
    }

    /// Save unless the value serialises to exactly `previous`.
    pub fn save_if_changed<T: Serialize>(
        &self,
        value: &T,
        previous: Option<&[u8]>,
    ) -> Result<(), PersistError> {
        let bytes = serde_json::to_vec(value).map_err(|e| PersistError::Damaged {
            path: self.path.clone(),
            message: e.to_string(),
        })?;
        if previous == Some(bytes.as_slice()) {
            return Ok(());
        }
        self.write_bytes(&bytes)
    }

    pub fn save<T: Serialize>(&self, value: &T) -> Result<(), PersistError> {
        self.save_if_changed(value, None)
    }

    /// Replace the file atomically: a temporary with an unguessable name
    /// (O_EXCL, O_NOFOLLOW, 0600), synced, renamed over the file — never
    /// through a symbolic link.
    fn write_bytes(&self, bytes: &[u8]) -> Result<(), PersistError> {
        crate::fsx::write_atomic(&self.path, bytes).map_err(|e| PersistError::Io {
            context: "replacing",
            path: self.path.clone(),
            source: e.into(),
        })
    }
}
