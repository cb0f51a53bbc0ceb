//! A small QMP client: one connection to a QEMU monitor socket, commands
//! with a timeout, and the events QEMU sends in between kept for waiting on.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

#[derive(Debug, thiserror::Error)]
pub enum QmpError {
    #[error("QMP {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("QMP {command}: {class}: {desc}")]
    Command {
        command: String,
        class: String,
        desc: String,
    },
    #[error("QMP: no answer to {0} within the timeout")]
    Timeout(String),
    #[error("QMP: unexpected reply {0}")]
    Protocol(String),
}

pub struct Qmp {
    path: String,
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    events: VecDeque<Value>,
}

impl Qmp {
    /// Connect, read the greeting and enter command mode.
    pub fn connect(socket: &Path, timeout: Duration) -> Result<Qmp, QmpError> {
        let path = socket.display().to_string();
        let io = |source| QmpError::Io {
            path: path.clone(),
            source,
        };
        let stream = UnixStream::connect(socket).map_err(io)?;
        stream
            .set_read_timeout(Some(Duration::from_millis(100)))
            .map_err(io)?;
        let writer = stream.try_clone().map_err(io)?;
        let mut qmp = Qmp {
            path: path.clone(),
            reader: BufReader::new(stream),
            writer,
            events: VecDeque::new(),
        };
        let deadline = Instant::now() + timeout;
        loop {
            match qmp.read_message(deadline)? {
                Some(v) if v.get("QMP").is_some() => break,
                Some(v) => qmp.events.push_back(v),
                None => return Err(QmpError::Timeout("the greeting".into())),
            }
        }
        qmp.execute("qmp_capabilities", json!({}), timeout)?;
        Ok(qmp)
    }

    /// One JSON message, or `None` when the deadline passes first.
    fn read_message(&mut self, deadline: Instant) -> Result<Option<Value>, QmpError> {
        let mut line = String::new();
        loop {
            match self.reader.read_line(&mut line) {
                Ok(0) => {
                    return Err(QmpError::Io {
                        path: self.path.clone(),
                        source: std::io::Error::new(
                            std::io::ErrorKind::UnexpectedEof,
                            "QEMU closed the monitor",
                        ),
                    });
                }
                Ok(_) if line.ends_with('\n') => {
                    return serde_json::from_str(&line)
                        .map(Some)
                        .map_err(|_| QmpError::Protocol(line.trim().to_string()));
                }
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    if Instant::now() >= deadline {
                        return Ok(None);
                    }
                }
                Err(source) => {
                    return Err(QmpError::Io {
                        path: self.path.clone(),
                        source,
                    });
                }
            }
        }
    }

    /// Run a command and return its `return` value.
    pub fn execute(
        &mut self,
        command: &str,
        arguments: Value,
        timeout: Duration,
    ) -> Result<Value, QmpError> {
        let msg = if arguments.as_object().is_some_and(|o| o.is_empty()) {
            json!({ "execute": command })
        } else {
            json!({ "execute": command, "arguments": arguments })
        };
        let mut text = msg.to_string();
        text.push('\n');
        self.writer
            .write_all(text.as_bytes())
            .map_err(|source| QmpError::Io {
                path: self.path.clone(),
                source,
            })?;
        let deadline = Instant::now() + timeout;
        loop {
            let Some(v) = self.read_message(deadline)? else {
                return Err(QmpError::Timeout(command.to_string()));
            };
            if v.get("event").is_some() {
                self.events.push_back(v);
            } else if let Some(ret) = v.get("return") {
                return Ok(ret.clone());
            } else if let Some(err) = v.get("error") {
                let field = |k: &str| err.get(k).and_then(Value::as_str).unwrap_or("").to_string();
                return Err(QmpError::Command {
                    command: command.to_string(),
                    class: field("class"),
                    desc: field("desc"),
                });
            } else {
                return Err(QmpError::Protocol(v.to_string()));
            }
        }
    }

    /// Wait for an event named `name` whose data satisfies `pred`.
    pub fn wait_event(
        &mut self,
        name: &str,
        pred: impl Fn(&Value) -> bool,
        timeout: Duration,
    ) -> Result<Value, QmpError> {
        let matches = |v: &Value| {
            v.get("event").and_then(Value::as_str) == Some(name)
                && pred(v.get("data").unwrap_or(&Value::Null))
        };
        if let Some(i) = self.events.iter().position(matches) {
            return Ok(self.events.remove(i).unwrap_or_default());
        }
        let deadline = Instant::now() + timeout;
        loop {
            match self.read_message(deadline)? {
                Some(v) if matches(&v) => return Ok(v),
                Some(v) => self.events.push_back(v),
                None => return Err(QmpError::Timeout(format!("event {name}"))),
            }
        }
    }

    /// The next event, or `None` when `timeout` passes first.
    pub fn next_event(&mut self, timeout: Duration) -> Result<Option<Value>, QmpError> {
        if let Some(v) = self.events.pop_front() {
            return Ok(Some(v));
        }
        let deadline = Instant::now() + timeout;
        loop {
            match self.read_message(deadline)? {
                Some(v) if v.get("event").is_some() => return Ok(Some(v)),
                Some(_) => {}
                None => return Ok(None),
            }
        }
    }

    /// Events received so far and not yet waited for.
    pub fn take_events(&mut self) -> Vec<Value> {
        self.events.drain(..).collect()
    }
}
