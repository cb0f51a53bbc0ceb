//! A Xen domain's console: the pty xenconsoled publishes in xenstore
//! (`/local/domain/ID/console/tty`), opened directly. When xenconsoled
//! logs guest output (`--log=guest`), output is read from that log — the
//! boot log from creation, then live, with no byte twice — and the pty is
//! drained and used for typing; without a log, the pty is read directly.

use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::AsFd;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::fcntl::OFlag;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::termios;

use crate::backend::{BackendError, BackendResult, ConsoleStream, ReadOutcome};

pub struct XenConsole {
    pty: File,
    log: Option<File>,
    closed: bool,
}

impl XenConsole {
    pub fn open(tty: &Path, log: Option<&Path>) -> BackendResult<XenConsole> {
        use std::os::unix::fs::OpenOptionsExt;
        let pty = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags((OFlag::O_NOCTTY | OFlag::O_NONBLOCK).bits())
            .open(tty)
            .map_err(|e| BackendError::io(format!("opening the console {}", tty.display()), e))?;
        // Raw: no echo, no line discipline between the guest and domus.
        if let Ok(mut t) = termios::tcgetattr(pty.as_fd()) {
            termios::cfmakeraw(&mut t);
            let _ = termios::tcsetattr(pty.as_fd(), termios::SetArg::TCSANOW, &t);
        }
        let log = log.and_then(|p| File::open(p).ok());
        Ok(XenConsole {
            pty,
            log,
            closed: false,
        })
    }

    fn read_pty(&mut self, buf: &mut [u8]) -> usize {
        match self.pty.read(buf) {
            Ok(0) => {
                self.closed = true;
                0
            }
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => 0,
            Err(_) => {
                self.closed = true;
                0
            }
        }
    }
}

impl ConsoleStream for XenConsole {
    fn read(&mut self, buf: &mut [u8], timeout: Duration) -> BackendResult<ReadOutcome> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.log.is_some() {
                let mut scratch = [0u8; 4096];
                while !self.closed && self.read_pty(&mut scratch) > 0 {}
                if let Some(log) = self.log.as_mut() {
                    let n = log
                        .read(buf)
                        .map_err(|e| BackendError::io("reading the console log", e))?;
                    if n > 0 {
                        return Ok(ReadOutcome::Data(n));
                    }
                }
            } else {
                let n = self.read_pty(buf);
                if n > 0 {
                    return Ok(ReadOutcome::Data(n));
                }
            }
            if self.closed {
                return Ok(ReadOutcome::Closed);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(ReadOutcome::Idle);
            }
            let wait = (deadline - now).min(Duration::from_millis(20));
            let ms = u16::try_from(wait.as_millis()).unwrap_or(20).max(1);
            let mut fds = [PollFd::new(self.pty.as_fd(), PollFlags::POLLIN)];
            let _ = poll(&mut fds, PollTimeout::from(ms));
        }
    }

    fn write(&mut self, bytes: &[u8]) -> BackendResult<()> {
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut rest = bytes;
        while !rest.is_empty() {
            match self.pty.write(rest) {
                Ok(n) => rest = &rest[n..],
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err(e) => return Err(BackendError::io("writing to the console", e)),
            }
        }
        Ok(())
    }
}
