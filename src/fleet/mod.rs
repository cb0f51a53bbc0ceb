//! A fleet: several hosts at once, each an [`Engine`] over its own backend
//! and store, each reached on its own (a slow or unreachable host never
//! holds up the others). A host whose connection is lost is opened again
//! with back-off. One host is the common case and works the same way.

pub mod hosts;

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::backend::DomId;
use crate::engine::Engine;
pub use hosts::{HostSpec, Target};

/// A host's place in the fleet (its position in the hosts list).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct HostId(pub u16);

/// A domain anywhere in the fleet: domain ids are per host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct DomKey {
    pub host: HostId,
    pub domid: DomId,
}

impl DomKey {
    pub fn new(host: HostId, domid: DomId) -> Self {
        DomKey { host, domid }
    }

    /// Domain-0 of a Xen host (which domus never stops or moves).
    pub fn is_dom0(&self) -> bool {
        self.domid == 0
    }

    /// A domain of the only host (tests, single-host code).
    pub fn local(domid: DomId) -> Self {
        DomKey {
            host: HostId(0),
            domid,
        }
    }
}

impl std::fmt::Display for DomKey {
    /// The domain id as shown (`-` for one that is off and has none); the
    /// host's name is for the caller to add, which knows it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&crate::backend::shown_id(self.domid))
    }
}

/// Opens a host's engine (again, after a lost connection).
pub type Opener = Box<dyn Fn() -> Result<Engine, String> + Send + Sync>;

/// Why a host cannot be used now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostDown {
    #[error("host {host} is unreachable: {why}")]
    Unreachable {
        host: String,
        why: String,
        retry_in: Duration,
    },
    #[error("host {host}: connecting…")]
    Connecting { host: String },
    #[error("no host {0}")]
    NoSuchHost(u16),
}

impl HostDown {
    /// What is wrong, without the host's name (said beside it).
    pub fn short(&self) -> String {
        match self {
            HostDown::Unreachable { why, retry_in, .. } => format!(
                "unreachable: {why} (next try in {} s)",
                retry_in.as_secs_f64().ceil().max(1.0)
            ),
            HostDown::Connecting { .. } => "connecting…".into(),
            HostDown::NoSuchHost(_) => self.to_string(),
        }
    }

    /// When the host is tried again.
    pub fn retry_in(&self) -> Option<Duration> {
        match self {
            HostDown::Unreachable { retry_in, .. } => Some(*retry_in),
            _ => None,
        }
    }
}

/// Back-off between attempts to reach a host: doubling, at most this.
const BACKOFF_MAX: Duration = Duration::from_secs(30);
const BACKOFF_FIRST: Duration = Duration::from_secs(1);
/// How long an opening may take (a daemon that accepts and then says
/// nothing would hold it for minutes): then the host is down, for now.
const OPEN_DEADLINE: Duration = Duration::from_secs(20);
/// How long a caller waits for another's opening of the same host: until
/// its outcome.
const OPENING_WAIT: Duration = Duration::from_secs(21);

enum Link {
    Up(Arc<Engine>),
    /// Being opened by some thread: others wait a while for it.
    Opening,
    Down {
        why: String,
        retry_at: Instant,
        backoff: Duration,
    },
}

pub struct Member {
    pub name: String,
    pub target: Target,
    open: Arc<dyn Fn() -> Result<Engine, String> + Send + Sync>,
    link: Mutex<Link>,
    /// Signalled when an opening ends (either way).
    opened: Condvar,
}

fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Member {
    /// A host whose engine opens on first use (and after a lost
    /// connection, with back-off).
    pub fn lazy(spec: HostSpec, open: Opener) -> Member {
        Member {
            name: spec.name,
            target: spec.target,
            open: Arc::from(open),
            opened: Condvar::new(),
            link: Mutex::new(Link::Down {
                why: "not connected yet".into(),
                retry_at: Instant::now(),
                backoff: BACKOFF_FIRST,
            }),
        }
    }

    /// A host whose engine is already open.
    pub fn open(spec: HostSpec, engine: Arc<Engine>, open: Opener) -> Member {
        Member {
            name: spec.name,
            target: spec.target,
            open: Arc::from(open),
            opened: Condvar::new(),
            link: Mutex::new(Link::Up(engine)),
        }
    }

    /// The engine, opening it when due. Opening runs on the caller's
    /// thread, without holding the link; another caller meanwhile waits
    /// for it a while (only this host's work waits), then is told the host
    /// is still connecting.
    pub fn engine(&self) -> Result<Arc<Engine>, HostDown> {
        let backoff = {
            let mut link = locked(&self.link);
            let until = Instant::now() + OPENING_WAIT;
            while matches!(&*link, Link::Opening) {
                let left = until.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(HostDown::Connecting {
                        host: self.name.clone(),
                    });
                }
                link = self
                    .opened
                    .wait_timeout(link, left)
                    .map(|(g, _)| g)
                    .unwrap_or_else(|p| p.into_inner().0);
            }
            match &*link {
                Link::Up(e) => return Ok(Arc::clone(e)),
                Link::Opening => {
                    return Err(HostDown::Connecting {
                        host: self.name.clone(),
                    });
                }
                Link::Down {
                    why,
                    retry_at,
                    backoff,
                } => {
                    let now = Instant::now();
                    if now < *retry_at {
                        return Err(HostDown::Unreachable {
                            host: self.name.clone(),
                            why: why.clone(),
                            retry_in: *retry_at - now,
                        });
                    }
                    let b = *backoff;
                    *link = Link::Opening;
                    b
                }
            }
        };
        let opened = self.open_within(OPEN_DEADLINE);
        let mut link = locked(&self.link);
        self.opened.notify_all();
        match opened {
            Ok(engine) => {
                let e = Arc::new(engine);
                *link = Link::Up(Arc::clone(&e));
                Ok(e)
            }
            Err(why) => {
                *link = Link::Down {
                    why: why.clone(),
                    retry_at: Instant::now() + backoff,
                    backoff: (backoff * 2).min(BACKOFF_MAX),
                };
                Err(HostDown::Unreachable {
                    host: self.name.clone(),
                    why,
                    retry_in: backoff,
                })
            }
        }
    }

    /// Run the opener on a thread of its own, waiting at most `deadline`;
    /// an opening that answers later is dropped (its connection closed).
    fn open_within(&self, deadline: Duration) -> Result<Engine, String> {
        let open = Arc::clone(&self.open);
        let (tx, rx) = std::sync::mpsc::channel();
        let spawned = std::thread::Builder::new()
            .name("domus-open-host".into())
            .spawn(move || {
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| open()))
                    .unwrap_or_else(|_| Err("opening the host failed unexpectedly".into()));
                let _ = tx.send(r);
            });
        if let Err(e) = spawned {
            return Err(format!("starting a thread to open the host: {e}"));
        }
        rx.recv_timeout(deadline).unwrap_or_else(|_| {
            Err(format!(
                "no answer within {} s (the daemon may be stopped)",
                deadline.as_secs()
            ))
        })
    }

    /// An operation on this host failed: when the backend says its
    /// connection is gone, drop the engine, to be opened again later.
    /// Returns whether it was dropped.
    pub fn check_lost(&self, engine: &Arc<Engine>, why: &str) -> bool {
        if engine.hypervisor().connected() {
            return false;
        }
        let mut link = locked(&self.link);
        if matches!(&*link, Link::Up(e) if Arc::ptr_eq(e, engine)) {
            *link = Link::Down {
                why: why.to_string(),
                retry_at: Instant::now() + BACKOFF_FIRST,
                backoff: BACKOFF_FIRST * 2,
            };
        }
        true
    }

    /// The engine when open, without trying to open it.
    pub fn current(&self) -> Option<Arc<Engine>> {
        match &*locked(&self.link) {
            Link::Up(e) => Some(Arc::clone(e)),
            _ => None,
        }
    }
}

/// The hosts domus shows and acts on.
pub struct Fleet {
    members: Vec<Member>,
}

impl Fleet {
    pub fn new(members: Vec<Member>) -> Fleet {
        Fleet { members }
    }

    /// One host, already open: what a single `--backend` gives.
    pub fn single(name: &str, engine: Arc<Engine>) -> Fleet {
        let spec = HostSpec {
            name: name.to_string(),
            target: Target::Local,
        };
        let open: Opener = Box::new(|| Err("this host cannot be opened again".into()));
        Fleet {
            members: vec![Member::open(spec, engine, open)],
        }
    }

    pub fn len(&self) -> usize {
        self.members.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    pub fn ids(&self) -> impl Iterator<Item = HostId> + '_ {
        (0..self.members.len()).map(|i| HostId(i as u16))
    }

    pub fn member(&self, h: HostId) -> Result<&Member, HostDown> {
        self.members
            .get(usize::from(h.0))
            .ok_or(HostDown::NoSuchHost(h.0))
    }

    pub fn members(&self) -> impl Iterator<Item = (HostId, &Member)> {
        self.members
            .iter()
            .enumerate()
            .map(|(i, m)| (HostId(i as u16), m))
    }

    pub fn engine(&self, h: HostId) -> Result<Arc<Engine>, HostDown> {
        self.member(h)?.engine()
    }

    pub fn name(&self, h: HostId) -> &str {
        self.member(h).map_or("?", |m| m.name.as_str())
    }

    /// The host named `name`.
    pub fn by_name(&self, name: &str) -> Option<HostId> {
        self.members().find(|(_, m)| m.name == name).map(|(h, _)| h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::sim::{SimHypervisor, SimOptions};
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn sim_engine() -> Engine {
        let hv = SimHypervisor::open(SimOptions::default()).unwrap();
        Engine::in_memory(Arc::new(hv), Arc::new(crate::clock::SystemClock)).unwrap()
    }

    #[test]
    fn a_host_that_fails_to_open_is_tried_again_after_a_back_off() {
        let tries = Arc::new(AtomicUsize::new(0));
        let t = Arc::clone(&tries);
        let m = Member::lazy(
            HostSpec {
                name: "lab".into(),
                target: Target::Libvirt("test:///default".into()),
            },
            Box::new(move || {
                if t.fetch_add(1, Ordering::SeqCst) == 0 {
                    Err("connection refused".into())
                } else {
                    Ok(sim_engine())
                }
            }),
        );
        let first = m.engine().err().unwrap();
        assert!(first.to_string().contains("connection refused"), "{first}");
        // Within the back-off: no second try.
        let again = m.engine().err().unwrap();
        assert!(matches!(again, HostDown::Unreachable { .. }), "{again}");
        assert_eq!(tries.load(Ordering::SeqCst), 1);
        std::thread::sleep(BACKOFF_FIRST + Duration::from_millis(50));
        assert!(m.engine().is_ok());
        assert_eq!(tries.load(Ordering::SeqCst), 2);
        // An engine whose backend is still connected is kept.
        let e = m.current().unwrap();
        assert!(!m.check_lost(&e, "x"));
        assert!(m.current().is_some());
    }
}
