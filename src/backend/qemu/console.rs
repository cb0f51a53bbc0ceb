//! The serial console of a QEMU domain. QEMU writes every byte to
//! `console.log` (kept from creation, whoever is attached) and to the
//! `console.sock` client if there is one. Reading follows the log, so a
//! viewer gets the whole boot log and then new output in order, with no
//! byte twice; the socket is for typing, and is drained all the time
//! because a connected client that stops reading stalls the guest's serial
//! port. One process at a time, enforced with a lock that names its holder.

use std::collections::HashMap;
use std::fs::File;
use std::io::{ErrorKind, Read, Seek, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use super::launch::DomainDir;
use crate::backend::{BackendError, BackendResult, ConsoleStream, DomId, ReadOutcome};

/// The one connection this process holds to a domain's console socket
/// (QEMU serves one client at a time), shared by every stream this process
/// opens on it: the TUI reads on one thread and writes from another.
struct Connection {
    socket: UnixStream,
    closed: AtomicBool,
    // Held while any stream of this process uses the console.
    _lock: Flock<File>,
}

fn connections() -> &'static Mutex<HashMap<PathBuf, Weak<Connection>>> {
    static HELD: OnceLock<Mutex<HashMap<PathBuf, Weak<Connection>>>> = OnceLock::new();
    HELD.get_or_init(Default::default)
}

pub struct QemuConsole {
    log: File,
    conn: Arc<Connection>,
}

fn connect(dir: &DomainDir, domid: DomId) -> BackendResult<Arc<Connection>> {
    let mut held = connections().lock().unwrap_or_else(|p| p.into_inner());
    held.retain(|_, w| w.strong_count() > 0);
    if let Some(c) = held.get(&dir.dir).and_then(Weak::upgrade) {
        return Ok(c);
    }
    let lock_path = dir.dir.join("console.lock");
    let lock_file = crate::fsx::open_lock(&lock_path)
        .map_err(|e| BackendError::io(format!("opening {}", lock_path.display()), e.into()))?;
    let mut lock = match Flock::lock(lock_file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => lock,
        Err((file, _)) => {
            let mut holder = String::new();
            let _ = (&file).read_to_string(&mut holder);
            let holder = holder.trim();
            let who = if holder.is_empty() {
                "another process".to_string()
            } else {
                format!("PID {holder}")
            };
            return Err(BackendError::Invalid(format!(
                "the console of domain {domid} is in use by {who}; close it there first"
            )));
        }
    };
    let _ = lock.set_len(0);
    let _ = write!(*lock, "{}", std::process::id());
    let _ = lock.flush();
    let socket = UnixStream::connect(dir.console())
        .map_err(|e| BackendError::io(format!("domain {domid}'s console"), e))?;
    socket
        .set_nonblocking(true)
        .map_err(|e| BackendError::io("console socket", e))?;
    let conn = Arc::new(Connection {
        socket,
        closed: AtomicBool::new(false),
        _lock: lock,
    });
    held.insert(dir.dir.clone(), Arc::downgrade(&conn));
    Ok(conn)
}

impl QemuConsole {
    pub fn open(dir: &DomainDir, domid: DomId, log: &Path) -> BackendResult<QemuConsole> {
        let conn = connect(dir, domid)?;
        let log = File::open(log)
            .map_err(|e| BackendError::io(format!("opening {}", log.display()), e))?;
        Ok(QemuConsole { log, conn })
    }

    fn socket_closed(&self) -> bool {
        self.conn.closed.load(Ordering::Relaxed)
    }

    /// Read and discard what the socket holds (the log has it too).
    fn drain_socket(&mut self) {
        let mut scratch = [0u8; 4096];
        while !self.socket_closed() {
            match (&self.conn.socket).read(&mut scratch) {
                Ok(0) => self.conn.closed.store(true, Ordering::Relaxed),
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(_) => self.conn.closed.store(true, Ordering::Relaxed),
            }
        }
    }

    fn read_log(&mut self, buf: &mut [u8]) -> BackendResult<usize> {
        loop {
            match self.log.read(buf) {
                Ok(0) => {
                    // Cut to its tail while we followed it (see
                    // console::archive::bound): start over from its start.
                    let at = self.log.stream_position().unwrap_or(0);
                    let len = self.log.metadata().map(|m| m.len()).unwrap_or(at);
                    if len < at {
                        let _ = self.log.seek(std::io::SeekFrom::Start(0));
                        continue;
                    }
                    return Ok(0);
                }
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(BackendError::io("reading the console log", e)),
            }
        }
    }
}

impl ConsoleStream for QemuConsole {
    fn read(&mut self, buf: &mut [u8], timeout: Duration) -> BackendResult<ReadOutcome> {
        let deadline = Instant::now() + timeout;
        loop {
            self.drain_socket();
            let n = self.read_log(buf)?;
            if n > 0 {
                return Ok(ReadOutcome::Data(n));
            }
            if self.socket_closed() {
                // QEMU is gone; the log may still get its last bytes.
                let n = self.read_log(buf)?;
                return Ok(if n > 0 {
                    ReadOutcome::Data(n)
                } else {
                    ReadOutcome::Closed
                });
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(ReadOutcome::Idle);
            }
            // The socket turning readable means the log has grown; the
            // short cap covers QEMU writing the log just after the socket.
            let wait = (deadline - now).min(Duration::from_millis(20));
            let ms = u16::try_from(wait.as_millis()).unwrap_or(20).max(1);
            let mut fds = [PollFd::new(self.conn.socket.as_fd(), PollFlags::POLLIN)];
            let _ = poll(&mut fds, PollTimeout::from(ms));
        }
    }

    fn write(&mut self, bytes: &[u8]) -> BackendResult<()> {
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut rest = bytes;
        while !rest.is_empty() {
            match (&self.conn.socket).write(rest) {
                Ok(0) => return Err(BackendError::Guest("the console closed".into())),
                Ok(n) => rest = &rest[n..],
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    if Instant::now() >= deadline {
                        return Err(BackendError::Guest(
                            "the guest is not reading its console".into(),
                        ));
                    }
                    self.drain_socket();
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err(e) => return Err(BackendError::io("writing to the console", e)),
            }
        }
        Ok(())
    }
}
