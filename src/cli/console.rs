//! `domus console DOM`: the domain's console on this terminal, as
//! `xl console`. Ctrl-] detaches. Guest output goes through the escape
//! filter's allow-list, so it cannot retitle the terminal, write the
//! clipboard, make the terminal answer or switch its modes; whatever way
//! the session ends, the terminal gets a reset and its saved modes back.

use std::io::{IsTerminal, Read, Write};
use std::os::fd::AsFd;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::termios::{self, SetArg, Termios};

use super::{CliResult, Failure, apply_policies};
use crate::backend::{DomId, ReadOutcome};
use crate::console::{EscapeFilter, RESET_TERMINAL};
use crate::engine::Engine;

const DETACH: u8 = 0x1d; // Ctrl-]

/// Puts the terminal in raw mode and restores it when dropped (also when
/// unwinding from a panic).
struct RawMode(Termios);

impl RawMode {
    fn enter() -> Option<RawMode> {
        let stdin = std::io::stdin();
        let saved = termios::tcgetattr(stdin.as_fd()).ok()?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw).ok()?;
        Some(RawMode(saved))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(std::io::stdin().as_fd(), SetArg::TCSANOW, &self.0);
    }
}

/// The operator's terminal for the session. Dropped on every way out (a
/// detach, the guest going away, an error, a panic): first the reset
/// sequence, so nothing a guest set outlives the session (and closing
/// messages land on the normal screen), then the saved termios.
struct Terminal {
    raw: Option<RawMode>,
    /// Only a terminal gets the reset; a pipe or file gets the guest's
    /// bytes alone.
    reset: bool,
}

impl Drop for Terminal {
    fn drop(&mut self) {
        if self.reset {
            let mut stdout = std::io::stdout();
            let _ = stdout.write_all(RESET_TERMINAL);
            let _ = stdout.flush();
        }
        // Then the saved termios, now that the reset is out.
        drop(self.raw.take());
    }
}

enum Input {
    Bytes(Vec<u8>),
    Eof,
}

pub fn run(engine: &Engine, domid: DomId) -> CliResult<()> {
    let view = engine.view(domid)?;
    let name = view.info.name.clone();
    if view.info.flags.paused {
        eprint!("[{name} is paused: input waits until it is unpaused]\r\n");
    } else if view.info.flags.shutdown {
        eprint!(
            "[{name} is {}: it reads no input]\r\n",
            view.info.state_word()
        );
    }
    let mut stream = engine.console(domid)?;
    // The journal notes when this process lets go, however it ends.
    let _closed = ClosedOnDrop { engine, domid };
    let interactive = nix::unistd::isatty(std::io::stdin().as_fd()).unwrap_or(false);
    let terminal = Terminal {
        raw: if interactive { RawMode::enter() } else { None },
        reset: std::io::stdout().is_terminal(),
    };
    if interactive {
        eprint!("[connected to {name}'s console; Ctrl-] detaches]\r\n");
    }

    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin();
        let mut buf = [0u8; 1024];
        loop {
            match stdin.read(&mut buf) {
                Ok(0) | Err(_) => {
                    let _ = tx.send(Input::Eof);
                    return;
                }
                Ok(n) => {
                    if tx.send(Input::Bytes(buf[..n].to_vec())).is_err() {
                        return;
                    }
                }
            }
        }
    });

    let mut stdout = std::io::stdout();
    let mut filter = EscapeFilter::new();
    let mut buf = vec![0u8; 16 * 1024];
    let mut out = Vec::new();
    let mut input_done: Option<Instant> = None;
    let mut last_output = Instant::now();
    let mut last_policy_check = Instant::now();
    let result = loop {
        // Keyboard (or piped) input to the guest.
        let mut detach = false;
        while let Ok(input) = rx.try_recv() {
            match input {
                Input::Bytes(bytes) => {
                    let upto = if interactive {
                        bytes.iter().position(|b| *b == DETACH)
                    } else {
                        None
                    };
                    let send = &bytes[..upto.unwrap_or(bytes.len())];
                    if !send.is_empty() {
                        stream.write(send)?;
                    }
                    if upto.is_some() {
                        detach = true;
                        break;
                    }
                }
                Input::Eof => input_done = Some(Instant::now()),
            }
        }
        if detach {
            break Ok(());
        }

        match stream.read(&mut buf, Duration::from_millis(50))? {
            ReadOutcome::Data(n) => {
                out.clear();
                filter.feed(&buf[..n], &mut out);
                stdout.write_all(&out).map_err(Failure::from)?;
                stdout.flush().map_err(Failure::from)?;
                last_output = Instant::now();
            }
            ReadOutcome::Idle => {}
            ReadOutcome::Closed => {
                drop(terminal);
                eprintln!("\r\n[{name}'s console closed: the domain is gone]");
                return Ok(());
            }
        }

        if last_policy_check.elapsed() > Duration::from_millis(500) {
            last_policy_check = Instant::now();
            if let Ok(info) = engine.hypervisor().domain_info(domid)
                && info.flags.shutdown
            {
                drop(terminal);
                eprintln!(
                    "\r\n[{name} shut down ({})]",
                    info.shutdown_reason.map_or("unknown", |r| r.as_str())
                );
                apply_policies(engine)?;
                return Ok(());
            }
        }
        // Scripted use: once input has ended, stop when the guest goes quiet.
        if let Some(t) = input_done {
            let quiet = last_output.elapsed() > Duration::from_millis(300);
            if (quiet && t.elapsed() > Duration::from_millis(300))
                || t.elapsed() > Duration::from_secs(5)
            {
                break Ok(());
            }
        }
    };
    drop(terminal);
    if interactive {
        eprintln!("\r\n[detached from {name}]");
    }
    // Whatever the guest did while we watched (a poweroff typed in), apply it.
    if let Ok(info) = engine.hypervisor().domain_info(domid)
        && info.flags.shutdown
    {
        apply_policies(engine)?;
    }
    result
}

/// `domus console --log DOM`: the console log of a live domain, or the last
/// one kept of a domain that is gone, through the same escape filter.
pub fn print_log(engine: &Engine, dom: &str) -> CliResult<()> {
    let (name, path) = engine.console_log(dom)?;
    let bytes = crate::fsx::read_bounded(&path, 64 << 20)?;
    let mut filter = EscapeFilter::new();
    let mut out = Vec::with_capacity(bytes.len());
    filter.feed(&bytes, &mut out);
    // On a terminal: what the guest's sequences set (a scroll region, a
    // charset) is undone, and the prompt starts on a line of its own.
    if std::io::stdout().is_terminal() {
        if !out.is_empty() && !out.ends_with(b"\n") {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(RESET_TERMINAL);
    }
    let mut stdout = std::io::stdout().lock();
    // A reader that went away (`| head`) is not an error.
    if stdout
        .write_all(&out)
        .and_then(|()| stdout.flush())
        .is_err()
    {
        return Ok(());
    }
    if bytes.is_empty() {
        eprintln!("domus: {name}'s console log is empty ({})", path.display());
    }
    Ok(())
}

/// Notes in the journal that this process let go of a console.
struct ClosedOnDrop<'a> {
    engine: &'a Engine,
    domid: DomId,
}

impl Drop for ClosedOnDrop<'_> {
    fn drop(&mut self) {
        self.engine.console_closed(self.domid);
    }
}
