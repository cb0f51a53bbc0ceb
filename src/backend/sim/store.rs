//! Where the simulated host lives: in memory (tests, benchmarks) or in a
//! state directory shared by every domus process, under a file lock, so a
//! `domus create` in one process and a `domus list` in another see one host.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::model::{HostState, STATE_FORMAT};
use crate::backend::{BackendError, BackendResult, DomId};
use crate::persist::{JsonFile, PersistError};

impl From<PersistError> for BackendError {
    fn from(e: PersistError) -> Self {
        BackendError::Other(e.to_string())
    }
}

/// Console logs are trimmed to the newest half once they pass this size.
const CONSOLE_CAP: usize = 1 << 20;

/// Console output produced inside a transaction, written when it commits.
#[derive(Default)]
pub struct ConsoleOut {
    pub appends: Vec<(DomId, Vec<u8>)>,
    pub removals: Vec<DomId>,
}

impl ConsoleOut {
    pub fn push(&mut self, domid: DomId, bytes: impl AsRef<[u8]>) {
        let bytes = bytes.as_ref();
        match self.appends.last_mut() {
            Some((d, buf)) if *d == domid => buf.extend_from_slice(bytes),
            _ => self.appends.push((domid, bytes.to_vec())),
        }
    }
}

pub enum Store {
    Memory(Mutex<MemStore>),
    Disk(DiskStore),
}

#[derive(Default)]
pub struct MemStore {
    host: Option<HostState>,
    consoles: HashMap<DomId, Vec<u8>>,
}

pub struct DiskStore {
    dir: PathBuf,
    host: JsonFile,
}

fn io_err(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> BackendError {
    let context = context.into();
    move |e| BackendError::io(context, e)
}

fn trim(buf: &mut Vec<u8>) {
    if buf.len() > CONSOLE_CAP {
        let cut = buf.len() - CONSOLE_CAP / 2;
        buf.drain(..cut);
    }
}

impl Store {
    pub fn memory() -> Self {
        Store::Memory(Mutex::new(MemStore::default()))
    }

    pub fn disk(dir: &Path) -> BackendResult<Self> {
        fs::create_dir_all(dir.join("console")).map_err(io_err(format!(
            "creating sim state directory {}",
            dir.display()
        )))?;
        Ok(Store::Disk(DiskStore {
            dir: dir.to_path_buf(),
            host: JsonFile::new(&dir.join("host.json")),
        }))
    }

    /// Run `f` on the host state without changing it.
    pub fn read<R>(
        &self,
        init: &dyn Fn() -> HostState,
        f: impl FnOnce(&HostState) -> R,
    ) -> BackendResult<R> {
        match self {
            Store::Memory(m) => {
                let mut m = m
                    .lock()
                    .map_err(|_| BackendError::Other("sim state lock poisoned".into()))?;
                let host = m.host.get_or_insert_with(init);
                Ok(f(host))
            }
            Store::Disk(d) => {
                let _lock = d.host.lock(false)?;
                match d.load()? {
                    Some(host) => Ok(f(&host)),
                    None => {
                        drop(_lock);
                        self.write(init, |h, _| Ok(f(h)))
                    }
                }
            }
        }
    }

    /// Run `f` as a transaction: its changes and console output are kept
    /// only if it succeeds.
    pub fn write<R>(
        &self,
        init: &dyn Fn() -> HostState,
        f: impl FnOnce(&mut HostState, &mut ConsoleOut) -> BackendResult<R>,
    ) -> BackendResult<R> {
        let mut out = ConsoleOut::default();
        match self {
            Store::Memory(m) => {
                let mut m = m
                    .lock()
                    .map_err(|_| BackendError::Other("sim state lock poisoned".into()))?;
                let mut host = m.host.clone().unwrap_or_else(init);
                let r = f(&mut host, &mut out)?;
                m.host = Some(host);
                for domid in out.removals {
                    m.consoles.remove(&domid);
                }
                for (domid, bytes) in out.appends {
                    let buf = m.consoles.entry(domid).or_default();
                    buf.extend_from_slice(&bytes);
                    trim(buf);
                }
                Ok(r)
            }
            Store::Disk(d) => {
                let _lock = d.host.lock(true)?;
                let mut host = d.load()?.unwrap_or_else(init);
                let r = f(&mut host, &mut out)?;
                d.host.save(&host)?;
                for domid in out.removals {
                    let _ = fs::remove_file(d.console_path(domid));
                }
                for (domid, bytes) in out.appends {
                    d.append_console(domid, &bytes)?;
                }
                Ok(r)
            }
        }
    }

    /// Console bytes from `offset` on, and the offset after them. An offset
    /// past the end (the log was trimmed) starts again from the beginning.
    pub fn console_read(&self, domid: DomId, offset: u64) -> BackendResult<(Vec<u8>, u64)> {
        match self {
            Store::Memory(m) => {
                let m = m
                    .lock()
                    .map_err(|_| BackendError::Other("sim state lock poisoned".into()))?;
                let buf = m.consoles.get(&domid).map(Vec::as_slice).unwrap_or(&[]);
                let start = usize::try_from(offset).unwrap_or(usize::MAX);
                let start = if start > buf.len() { 0 } else { start };
                Ok((buf[start..].to_vec(), buf.len() as u64))
            }
            Store::Disk(d) => {
                let path = d.console_path(domid);
                let mut file = match File::open(&path) {
                    Ok(f) => f,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        return Ok((Vec::new(), offset));
                    }
                    Err(e) => {
                        return Err(BackendError::io(format!("reading {}", path.display()), e));
                    }
                };
                let len = file.metadata().map_err(io_err("console log"))?.len();
                let start = if offset > len { 0 } else { offset };
                file.seek(SeekFrom::Start(start))
                    .map_err(io_err("console log"))?;
                let mut bytes = Vec::new();
                file.read_to_end(&mut bytes)
                    .map_err(io_err("console log"))?;
                let end = start + bytes.len() as u64;
                Ok((bytes, end))
            }
        }
    }
}

impl DiskStore {
    fn console_path(&self, domid: DomId) -> PathBuf {
        self.dir.join("console").join(format!("{domid}.log"))
    }

    fn load(&self) -> BackendResult<Option<HostState>> {
        let host: Option<HostState> = self.host.load()?;
        match host {
            Some(h) if h.format != STATE_FORMAT => Err(BackendError::Other(format!(
                "{} has state format {}, this domus reads format {}",
                self.host.path().display(),
                h.format,
                STATE_FORMAT
            ))),
            other => Ok(other),
        }
    }

    fn append_console(&self, domid: DomId, bytes: &[u8]) -> BackendResult<()> {
        let path = self.console_path(domid);
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io_err(format!("opening {}", path.display())))?;
        file.write_all(bytes)
            .map_err(io_err(format!("writing {}", path.display())))?;
        let len = file.metadata().map_err(io_err("console log"))?.len();
        if len as usize > CONSOLE_CAP {
            let mut buf = fs::read(&path).map_err(io_err("console log"))?;
            trim(&mut buf);
            fs::write(&path, buf).map_err(io_err("console log"))?;
        }
        Ok(())
    }
}
