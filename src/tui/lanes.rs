//! Where the real loop runs its effects: each on a *lane*, one at a time
//! per lane and lanes side by side. A domain's operations queue behind that
//! domain's previous one only; a 20 s detach or a 3-minute Xen build never
//! holds up the refresh, another domain, or typing into a console (which
//! has a lane of its own). Domain and build work shares a small pool of
//! slots; refresh, files and consoles do not wait for one.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex};

use super::action::{Action, Done, Effect};
use super::worker::{Sink, Worker};
use crate::backend::DomId;

/// At most this many domain or build operations run at once.
const SLOW_SLOTS: usize = 8;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Lane {
    Refresh,
    Files,
    Console(DomId),
    Domain(DomId),
    Build(String),
}

impl Lane {
    fn slow(&self) -> bool {
        matches!(self, Lane::Domain(_) | Lane::Build(_))
    }
}

/// The lane of an effect on one domain (or none).
pub fn lane_of(effect: &Effect) -> Lane {
    match effect {
        Effect::Refresh | Effect::Stats | Effect::LoadTimeline(_) => Lane::Refresh,
        Effect::OpenConsole(d)
        | Effect::CloseConsole(d)
        | Effect::ConsoleInput(d, _)
        | Effect::ConsoleResize(d, _, _) => Lane::Console(*d),
        Effect::Pause(ids)
        | Effect::TogglePause(ids)
        | Effect::Unpause(ids)
        | Effect::Shutdown(ids, _)
        | Effect::Destroy(ids) => ids.first().map_or(Lane::Files, |d| Lane::Domain(*d)),
        Effect::Save(d, _)
        | Effect::Attach(d, _)
        | Effect::Detach(d, _)
        | Effect::MemTarget(d, _) => Lane::Domain(*d),
        Effect::Build(p) | Effect::Restore(p) => Lane::Build(p.display().to_string()),
        Effect::Create(c) => Lane::Build(c.name.clone()),
        _ => Lane::Files,
    }
}

/// A bulk operation split into one effect per domain.
fn split(effect: &Effect) -> Option<Vec<Effect>> {
    let one = |ids: &[DomId], f: &dyn Fn(Vec<DomId>) -> Effect| {
        (ids.len() > 1).then(|| ids.iter().map(|d| f(vec![*d])).collect())
    };
    match effect {
        Effect::Pause(ids) => one(ids, &Effect::Pause),
        Effect::TogglePause(ids) => one(ids, &Effect::TogglePause),
        Effect::Unpause(ids) => one(ids, &Effect::Unpause),
        Effect::Destroy(ids) => one(ids, &Effect::Destroy),
        Effect::Shutdown(ids, r) => one(ids, &|v| Effect::Shutdown(v, *r)),
        _ => None,
    }
}

type Job = Box<dyn FnOnce() + Send>;

/// The parts of a bulk operation finished so far.
#[derive(Default)]
struct Collected {
    done: usize,
    op: &'static str,
    results: Vec<(String, Result<(), String>)>,
}

#[derive(Default)]
struct Queues {
    queues: HashMap<Lane, VecDeque<Job>>,
    /// A refresh waiting answers another (and a tick's read); a tick's
    /// read waiting answers another tick.
    refresh_queued: bool,
    stats_queued: bool,
}

/// Counting slots for slow work.
struct Slots {
    free: Mutex<usize>,
    cv: Condvar,
}

impl Slots {
    fn take(&self) {
        let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        while *free == 0 {
            free = self.cv.wait(free).unwrap_or_else(|p| p.into_inner());
        }
        *free -= 1;
    }

    fn give(&self) {
        *self.free.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        self.cv.notify_one();
    }
}

#[derive(Clone)]
pub struct Lanes {
    worker: Arc<Worker>,
    sink: Sink,
    queues: Arc<Mutex<Queues>>,
    slots: Arc<Slots>,
}

impl Lanes {
    pub fn new(worker: Arc<Worker>, sink: Sink) -> Lanes {
        Lanes {
            worker,
            sink,
            queues: Arc::default(),
            slots: Arc::new(Slots {
                free: Mutex::new(SLOW_SLOTS),
                cv: Condvar::new(),
            }),
        }
    }

    /// Carry out an effect on its lane; its actions go to the sink.
    pub fn submit(&self, effect: Effect) {
        if let Some(parts) = split(&effect) {
            self.submit_bulk(parts);
            return;
        }
        let lane = lane_of(&effect);
        let full = effect == Effect::Refresh;
        let stats = effect == Effect::Stats;
        if full || stats {
            let mut q = self.queues.lock().unwrap_or_else(|p| p.into_inner());
            if q.refresh_queued || (stats && q.stats_queued) {
                return;
            }
            if full {
                q.refresh_queued = true;
            } else {
                q.stats_queued = true;
            }
        }
        let worker = Arc::clone(&self.worker);
        let sink = Arc::clone(&self.sink);
        let queues = Arc::clone(&self.queues);
        self.push(
            lane,
            Box::new(move || {
                if full || stats {
                    let mut q = queues.lock().unwrap_or_else(|p| p.into_inner());
                    if full {
                        q.refresh_queued = false;
                    } else {
                        q.stats_queued = false;
                    }
                }
                for a in worker.run(effect) {
                    sink(a);
                }
            }),
        );
    }

    /// One job per domain, on each domain's lane; their results come back
    /// as one `Done::Ops` once the last has finished.
    fn submit_bulk(&self, parts: Vec<Effect>) {
        let total = parts.len();
        let collected: Arc<Mutex<Collected>> = Arc::default();
        for effect in parts {
            let lane = lane_of(&effect);
            let worker = Arc::clone(&self.worker);
            let sink = Arc::clone(&self.sink);
            let collected = Arc::clone(&collected);
            self.push(
                lane,
                Box::new(move || {
                    for a in worker.run(effect) {
                        let Action::Done(Done::Ops { op, results }) = a else {
                            sink(a);
                            continue;
                        };
                        let mut c = collected.lock().unwrap_or_else(|p| p.into_inner());
                        c.done += 1;
                        c.op = op;
                        c.results.extend(results);
                        if c.done == total {
                            let results = std::mem::take(&mut c.results);
                            sink(Action::Done(Done::Ops { op: c.op, results }));
                        }
                    }
                }),
            );
        }
    }

    fn push(&self, lane: Lane, job: Job) {
        let mut q = self.queues.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(waiting) = q.queues.get_mut(&lane) {
            // The lane's thread runs it after the jobs before it.
            waiting.push_back(job);
            return;
        }
        q.queues.insert(lane.clone(), VecDeque::new());
        drop(q);
        let queues = Arc::clone(&self.queues);
        let slots = Arc::clone(&self.slots);
        let name = format!("domus-lane-{lane:?}");
        let this_lane = lane.clone();
        let started = std::thread::Builder::new().name(name).spawn(move || {
            let mut next = Some(job);
            while let Some(job) = next {
                let slow = lane.slow();
                if slow {
                    slots.take();
                }
                // A panicking operation must not take the lane with it.
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                if slow {
                    slots.give();
                }
                let mut q = queues.lock().unwrap_or_else(|p| p.into_inner());
                next = q.queues.get_mut(&lane).and_then(VecDeque::pop_front);
                if next.is_none() {
                    q.queues.remove(&lane);
                }
            }
        });
        if let Err(e) = started {
            tracing::error!(error = %e, "starting a worker thread");
            self.queues
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .queues
                .remove(&this_lane);
            (self.sink)(Action::Done(Done::Error(format!(
                "cannot start a worker thread: {e}"
            ))));
        }
    }
}
