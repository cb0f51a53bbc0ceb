//! The serial console of a QEMU domain. QEMU writes every byte to
//! `console.log` (kept from creation, whoever is attached) and to the
//! `console.sock` client if there is one. Reading follows the log, so a
//! viewer gets the whole boot log and then new output in order, with no
//! byte twice; the socket is for typing, and is drained all the time
//! because a connected client that stops reading stalls the guest's serial
//! port. One viewer at a time, enforced with a lock that names its holder.

use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use super::launch::DomainDir;
use crate::backend::{BackendError, BackendResult, ConsoleStream, DomId, ReadOutcome};

pub struct QemuConsole {
    log: File,
    socket: UnixStream,
    socket_closed: bool,
    // Held for the stream's lifetime.
    _lock: Flock<File>,
}

impl QemuConsole {
    pub fn open(dir: &DomainDir, domid: DomId) -> BackendResult<QemuConsole> {
        let lock_path = dir.dir.join("console.lock");
        let lock_file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&lock_path)
            .map_err(|e| BackendError::io(format!("opening {}", lock_path.display()), e))?;
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

        let log = File::open(dir.console_log())
            .map_err(|e| BackendError::io(format!("opening {}", dir.console_log().display()), e))?;
        let socket = UnixStream::connect(dir.console())
            .map_err(|e| BackendError::io(format!("domain {domid}'s console"), e))?;
        socket
            .set_nonblocking(true)
            .map_err(|e| BackendError::io("console socket", e))?;
        Ok(QemuConsole {
            log,
            socket,
            socket_closed: false,
            _lock: lock,
        })
    }

    /// Read and discard what the socket holds (the log has it too).
    fn drain_socket(&mut self) {
        let mut scratch = [0u8; 4096];
        while !self.socket_closed {
            match self.socket.read(&mut scratch) {
                Ok(0) => self.socket_closed = true,
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(_) => self.socket_closed = true,
            }
        }
    }

    fn read_log(&mut self, buf: &mut [u8]) -> BackendResult<usize> {
        loop {
            match self.log.read(buf) {
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
            if self.socket_closed {
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
            let mut fds = [PollFd::new(self.socket.as_fd(), PollFlags::POLLIN)];
            let _ = poll(&mut fds, PollTimeout::from(ms));
        }
    }

    fn write(&mut self, bytes: &[u8]) -> BackendResult<()> {
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut rest = bytes;
        while !rest.is_empty() {
            match self.socket.write(rest) {
                Ok(0) => return Err(BackendError::Other("the console closed".into())),
                Ok(n) => rest = &rest[n..],
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    if Instant::now() >= deadline {
                        return Err(BackendError::Other(
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
