//! Where the real loop runs its effects: each on a *lane*, one at a time
//! per lane and lanes side by side. A domain's operations queue behind that
//! domain's previous one only; a 20 s detach or a 3-minute Xen build never
//! holds up the refresh, another domain, or typing into a console (which
//! has a lane of its own). Domain and build work shares a small pool of
//! slots; refresh, files and consoles do not wait for one. Work that waits
//! its turn on a domain is shown to the app (`Action::Queued`) and can be
//! cancelled (`Effect::CancelQueued`); work that has started runs to its
//! end, as no backend can take a half-done operation back.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use super::action::{Action, Done, Effect};
use super::worker::{Sink, Worker};
use std::collections::HashSet;

use crate::fleet::{DomKey, HostId};

/// At most this many domain or build operations run at once.
const SLOW_SLOTS: usize = 8;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Lane {
    /// Each host's reads have lanes of their own: a host that does not
    /// answer holds up only itself.
    Refresh(HostId),
    Policies(HostId),
    /// I/O counters: a QMP round trip per domain, beside the refresh.
    Io(HostId),
    Files,
    Console(DomKey),
    Domain(DomKey),
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
        Effect::Refresh | Effect::Stats => Lane::Refresh(HostId::default()),
        Effect::RefreshHost(h) => Lane::Refresh(*h),
        Effect::LoadTimeline(h, _) => Lane::Refresh(*h),
        Effect::LoadNative(d) | Effect::EditNative(d) => Lane::Refresh(d.host),
        Effect::DefineNative { key, .. } => Lane::Domain(*key),
        Effect::Policies => Lane::Policies(HostId::default()),
        Effect::IoStats => Lane::Io(HostId::default()),
        Effect::OpenConsole(d)
        | Effect::CloseConsole(d)
        | Effect::ConsoleInput(d, _)
        | Effect::ConsoleResize(d, _, _) => Lane::Console(*d),
        Effect::Pause(ids)
        | Effect::TogglePause(ids)
        | Effect::Unpause(ids)
        | Effect::Shutdown(ids, _)
        | Effect::Destroy(ids)
        | Effect::Start(ids) => ids.first().map_or(Lane::Files, |d| Lane::Domain(*d)),
        Effect::Save(d, _)
        | Effect::Attach(d, _)
        | Effect::Detach(d, _)
        | Effect::MemTarget(d, _) => Lane::Domain(*d),
        Effect::Build(_, p) | Effect::Restore(_, p) => Lane::Build(p.display().to_string()),
        Effect::Create(_, c) => Lane::Build(c.name.clone()),
        _ => Lane::Files,
    }
}

/// A bulk operation split into one effect per domain.
fn split(effect: &Effect) -> Option<Vec<Effect>> {
    let one = |ids: &[DomKey], f: &dyn Fn(Vec<DomKey>) -> Effect| {
        (ids.len() > 1).then(|| ids.iter().map(|d| f(vec![*d])).collect())
    };
    match effect {
        Effect::Pause(ids) => one(ids, &Effect::Pause),
        Effect::TogglePause(ids) => one(ids, &Effect::TogglePause),
        Effect::Unpause(ids) => one(ids, &Effect::Unpause),
        Effect::Destroy(ids) => one(ids, &Effect::Destroy),
        Effect::Start(ids) => one(ids, &Effect::Start),
        Effect::Shutdown(ids, r) => one(ids, &|v| Effect::Shutdown(v, *r)),
        _ => None,
    }
}

/// What an effect is called while it waits (`web1 +2 queued: pause, save`).
fn label_of(effect: &Effect) -> &'static str {
    match effect {
        Effect::Pause(_) => "pause",
        Effect::TogglePause(_) => "pause/unpause",
        Effect::Unpause(_) => "unpause",
        Effect::Shutdown(_, r) => match r {
            crate::backend::ShutdownReason::Reboot => "reboot",
            crate::backend::ShutdownReason::Suspend => "suspend",
            _ => "shutdown",
        },
        Effect::Destroy(_) => "destroy",
        Effect::Start(_) => "start",
        Effect::Save(_, _) => "save",
        Effect::Attach(_, _) => "attach",
        Effect::Detach(_, _) => "detach",
        Effect::MemTarget(_, _) => "memory target",
        _ => "work",
    }
}

/// A unit of work on a lane: run, or (still waiting) cancelled.
struct Job {
    label: &'static str,
    run: Box<dyn FnOnce() + Send>,
    cancel: Box<dyn FnOnce() + Send>,
}

impl Job {
    fn new(label: &'static str, run: impl FnOnce() + Send + 'static) -> Job {
        Job {
            label,
            run: Box::new(run),
            cancel: Box::new(|| {}),
        }
    }
}

/// Each domain's result of a bulk operation, by name.
type Results = Vec<(String, Result<(), String>)>;

/// The parts of a bulk operation finished so far.
#[derive(Default)]
struct Collected {
    done: usize,
    op: &'static str,
    results: Results,
}

/// One part of a bulk operation: it counts as finished when dropped, so
/// a part that panicked still lets the whole report come back.
struct Part {
    collected: Arc<Mutex<Collected>>,
    total: usize,
    sink: Sink,
    domid: Option<DomKey>,
    results: Option<(&'static str, Results)>,
}

impl Part {
    fn who(&self) -> String {
        self.domid
            .map_or_else(|| "a domain".to_string(), |d| format!("domain {d}"))
    }
}

impl Drop for Part {
    fn drop(&mut self) {
        let (op, results) = self.results.take().unwrap_or_else(|| {
            (
                "",
                vec![(
                    self.who(),
                    Err("the operation failed unexpectedly (see the log)".to_string()),
                )],
            )
        });
        let mut c = self.collected.lock().unwrap_or_else(|p| p.into_inner());
        c.done += 1;
        if !op.is_empty() {
            c.op = op;
        }
        c.results.extend(results);
        if c.done == self.total {
            let results = std::mem::take(&mut c.results);
            let op = c.op;
            drop(c);
            (self.sink)(Action::Done(Done::Ops { op, results }));
        }
    }
}

#[derive(Default)]
struct Queues {
    /// The jobs of each lane that have not started yet; a lane is here
    /// while it has a thread or waits for a slot.
    queues: HashMap<Lane, VecDeque<Job>>,
    /// Slow lanes with work and no thread yet: each waits for a slot, so
    /// a bulk operation over many domains starts at most `SLOW_SLOTS`
    /// threads.
    waiting: VecDeque<Lane>,
    busy_slots: usize,
    /// What the app was last told waits on each domain.
    shown: HashMap<DomKey, Vec<&'static str>>,
    /// Per host: a refresh waiting answers another (and a tick's read); a
    /// tick's read waiting answers another tick.
    refresh_queued: HashSet<HostId>,
    stats_queued: HashSet<HostId>,
    policies_queued: HashSet<HostId>,
    io_queued: HashSet<HostId>,
}

impl Queues {
    /// The next job of `lane`; when it has none, the lane ends and a slow
    /// lane's thread moves on to a waiting lane (keeping its slot).
    fn next(&mut self, lane: &mut Lane) -> Option<Job> {
        loop {
            if let Some(job) = self.queues.get_mut(lane).and_then(VecDeque::pop_front) {
                return Some(job);
            }
            self.queues.remove(lane);
            if !lane.slow() {
                return None;
            }
            match self.waiting.pop_front() {
                Some(other) => *lane = other,
                None => {
                    self.busy_slots = self.busy_slots.saturating_sub(1);
                    return None;
                }
            }
        }
    }

    /// What waits on a domain now, when the app has not been told yet.
    fn news(&mut self, lane: &Lane) -> Option<Action> {
        let Lane::Domain(d) = lane else { return None };
        let ops: Vec<&'static str> = self
            .queues
            .get(lane)
            .into_iter()
            .flatten()
            .map(|j| j.label)
            .collect();
        let before = self.shown.get(d).map_or(&[][..], Vec::as_slice);
        if before == ops.as_slice() {
            return None;
        }
        if ops.is_empty() {
            self.shown.remove(d);
        } else {
            self.shown.insert(*d, ops.clone());
        }
        Some(Action::Queued { domid: *d, ops })
    }
}

#[derive(Clone)]
pub struct Lanes {
    worker: Arc<Worker>,
    sink: Sink,
    queues: Arc<Mutex<Queues>>,
}

impl Lanes {
    pub fn new(worker: Arc<Worker>, sink: Sink) -> Lanes {
        Lanes {
            worker,
            sink,
            queues: Arc::default(),
        }
    }

    /// Carry out an effect on its lane; its actions go to the sink.
    pub fn submit(&self, effect: Effect) {
        if let Effect::CancelQueued(ids) = &effect {
            for d in ids {
                self.cancel(*d);
            }
            return;
        }
        if let Some(parts) = split(&effect) {
            self.submit_bulk(parts);
            return;
        }
        if let Effect::RefreshHost(h) = effect {
            self.submit_host(h, Effect::Refresh);
            return;
        }
        if matches!(
            effect,
            Effect::Refresh | Effect::Stats | Effect::Policies | Effect::IoStats
        ) {
            for h in self.worker.fleet().ids() {
                self.submit_host(h, effect.clone());
            }
            return;
        }
        let lane = lane_of(&effect);
        let worker = Arc::clone(&self.worker);
        let sink = Arc::clone(&self.sink);
        let label = label_of(&effect);
        self.push(
            lane,
            Job::new(label, move || {
                for a in worker.run(effect) {
                    sink(a);
                }
            }),
        );
    }

    /// A host's read on that host's lane. One waiting answers the same
    /// asked again meanwhile (a whole refresh answers a tick's read too),
    /// so a host that is slow to answer collects no backlog.
    fn submit_host(&self, host: HostId, effect: Effect) {
        let full = effect == Effect::Refresh;
        if full {
            // Every whole refresh looks for shutdowns too, beside it.
            self.submit_host(host, Effect::Policies);
        }
        let (lane, flag): (Lane, fn(&mut Queues) -> &mut HashSet<HostId>) = match effect {
            Effect::Refresh => (Lane::Refresh(host), |q| &mut q.refresh_queued),
            Effect::Stats => (Lane::Refresh(host), |q| &mut q.stats_queued),
            Effect::Policies => (Lane::Policies(host), |q| &mut q.policies_queued),
            _ => (Lane::Io(host), |q| &mut q.io_queued),
        };
        {
            let mut q = self.queues.lock().unwrap_or_else(|p| p.into_inner());
            let covered = flag(&mut q).contains(&host)
                || (effect == Effect::Stats && q.refresh_queued.contains(&host));
            if covered {
                return;
            }
            flag(&mut q).insert(host);
        }
        let worker = Arc::clone(&self.worker);
        let sink = Arc::clone(&self.sink);
        let queues = Arc::clone(&self.queues);
        self.push(
            lane,
            Job::new("work", move || {
                flag(&mut queues.lock().unwrap_or_else(|p| p.into_inner())).remove(&host);
                for a in worker.run_host(host, &effect) {
                    sink(a);
                }
            }),
        );
    }

    /// One job per domain, on each domain's lane; their results come back
    /// as one `Done::Ops` once the last has finished (or was cancelled).
    fn submit_bulk(&self, parts: Vec<Effect>) {
        let total = parts.len();
        let collected: Arc<Mutex<Collected>> = Arc::default();
        for effect in parts {
            let lane = lane_of(&effect);
            let domid = match lane {
                Lane::Domain(d) => Some(d),
                _ => None,
            };
            let label = label_of(&effect);
            let worker = Arc::clone(&self.worker);
            let part = Arc::new(Mutex::new(Some(Part {
                collected: Arc::clone(&collected),
                total,
                sink: Arc::clone(&self.sink),
                domid,
                results: None,
            })));
            let for_cancel = Arc::clone(&part);
            let run = move || {
                let taken = part.lock().unwrap_or_else(|p| p.into_inner()).take();
                let Some(mut part) = taken else { return };
                for a in worker.run(effect) {
                    match a {
                        Action::Done(Done::Ops { op, results }) => {
                            let mine = part.results.get_or_insert((op, Vec::new()));
                            mine.1.extend(results);
                        }
                        a => (part.sink)(a),
                    }
                }
                if part.results.is_none() {
                    part.results = Some(("", Vec::new()));
                }
            };
            let cancel = move || {
                let taken = for_cancel.lock().unwrap_or_else(|p| p.into_inner()).take();
                if let Some(mut part) = taken {
                    let who = part.who();
                    part.results = Some((
                        label,
                        vec![(who, Err("cancelled before it started".to_string()))],
                    ));
                }
            };
            self.push(
                lane,
                Job {
                    label,
                    run: Box::new(run),
                    cancel: Box::new(cancel),
                },
            );
        }
    }

    /// Drop what waits on a domain's lane (not what runs) and say so.
    fn cancel(&self, domid: DomKey) {
        let lane = Lane::Domain(domid);
        let mut q = self.queues.lock().unwrap_or_else(|p| p.into_inner());
        let jobs: Vec<Job> = if q.waiting.contains(&lane) {
            // No thread yet: the lane goes altogether.
            q.waiting.retain(|l| *l != lane);
            q.queues.remove(&lane).map(Vec::from).unwrap_or_default()
        } else {
            // Its thread finds the queue empty and ends the lane.
            q.queues
                .get_mut(&lane)
                .map(|w| w.drain(..).collect())
                .unwrap_or_default()
        };
        let news = q.news(&lane);
        drop(q);
        let ops: Vec<&'static str> = jobs.iter().map(|j| j.label).collect();
        for job in jobs {
            (job.cancel)();
        }
        if let Some(a) = news {
            (self.sink)(a);
        }
        (self.sink)(Action::Done(Done::Cancelled { domid, ops }));
    }

    fn push(&self, lane: Lane, job: Job) {
        let mut q = self.queues.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(waiting) = q.queues.get_mut(&lane) {
            // The lane's thread (or its turn for a slot) runs it after the
            // jobs before it.
            waiting.push_back(job);
            let news = q.news(&lane);
            drop(q);
            if let Some(a) = news {
                (self.sink)(a);
            }
            return;
        }
        q.queues.insert(lane.clone(), VecDeque::from([job]));
        if lane.slow() {
            if q.busy_slots >= SLOW_SLOTS {
                q.waiting.push_back(lane.clone());
                let news = q.news(&lane);
                drop(q);
                if let Some(a) = news {
                    (self.sink)(a);
                }
                return;
            }
            q.busy_slots += 1;
        }
        drop(q);
        let queues = Arc::clone(&self.queues);
        let sink = Arc::clone(&self.sink);
        let name = format!("domus-lane-{lane:?}");
        let first = lane.clone();
        let started = std::thread::Builder::new().name(name).spawn(move || {
            let mut lane = first;
            loop {
                let (job, news) = {
                    let mut q = queues.lock().unwrap_or_else(|p| p.into_inner());
                    let job = q.next(&mut lane);
                    (job, q.news(&lane))
                };
                if let Some(a) = news {
                    sink(a);
                }
                let Some(job) = job else { break };
                // A panicking operation must not take the lane with it.
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job.run));
            }
        });
        if let Err(e) = started {
            tracing::error!(error = %e, "starting a worker thread");
            let mut q = self.queues.lock().unwrap_or_else(|p| p.into_inner());
            let dropped = q.queues.remove(&lane);
            if lane.slow() {
                q.busy_slots = q.busy_slots.saturating_sub(1);
            }
            // Dropped jobs must not leave a refresh marked as queued forever.
            q.refresh_queued.clear();
            q.stats_queued.clear();
            q.policies_queued.clear();
            q.io_queued.clear();
            drop(q);
            for job in dropped.into_iter().flatten() {
                (job.cancel)();
            }
            (self.sink)(Action::Done(Done::Error(format!(
                "cannot start a worker thread: {e}"
            ))));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Hypervisor;
    use crate::backend::sim::SimHypervisor;
    use crate::clock::ManualClock;
    use crate::engine::Engine;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::mpsc;
    use std::time::Duration;

    fn lanes(sink: Sink) -> Lanes {
        let clock = ManualClock::new(1);
        let hv: Arc<dyn Hypervisor> = Arc::new(SimHypervisor::in_memory(clock.clone()));
        let engine = match Engine::in_memory(hv, clock) {
            Ok(e) => Arc::new(e),
            Err(e) => panic!("engine: {e}"),
        };
        let dir = std::env::temp_dir();
        let worker = Arc::new(Worker::new(engine, dir.clone(), dir, None));
        Lanes::new(worker, sink)
    }

    #[test]
    fn many_domains_start_at_most_the_slots_worth_of_threads() {
        let l = lanes(Arc::new(|_| {}));
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = mpsc::channel();
        for d in 0..100 {
            let (running, most, tx) = (running.clone(), most.clone(), tx.clone());
            l.push(
                Lane::Domain(DomKey::local(d)),
                Job::new("test", move || {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(2));
                    running.fetch_sub(1, Ordering::SeqCst);
                    let _ = tx.send(d);
                }),
            );
        }
        let mut seen: Vec<u32> = (0..100)
            .map(|_| match rx.recv_timeout(Duration::from_secs(20)) {
                Ok(d) => d,
                Err(e) => panic!("a job never ran: {e}"),
            })
            .collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..100).collect::<Vec<_>>());
        let most = most.load(Ordering::SeqCst);
        assert!(most <= SLOW_SLOTS, "{most} ran at once");
        assert!(most > 1, "domains ran one at a time");
        // Every slot is given back.
        let q = l.queues.lock().unwrap_or_else(|p| p.into_inner());
        assert!(q.waiting.is_empty());
    }

    #[test]
    fn a_bulk_part_that_panics_still_reports_the_whole() {
        let (tx, rx) = mpsc::channel();
        let tx = Mutex::new(tx);
        let l = lanes(Arc::new(move |a| {
            if let Action::Done(Done::Ops { results, .. }) = a {
                let _ = tx.lock().unwrap_or_else(|p| p.into_inner()).send(results);
            }
        }));
        let collected: Arc<Mutex<Collected>> = Arc::default();
        for d in [1, 2] {
            let mut part = Part {
                collected: Arc::clone(&collected),
                total: 2,
                sink: Arc::clone(&l.sink),
                domid: Some(DomKey::local(d)),
                results: None,
            };
            l.push(
                Lane::Domain(DomKey::local(d)),
                Job::new("pause", move || {
                    if d == 2 {
                        panic!("an operation that panics");
                    }
                    part.results = Some(("pause", vec![("one".into(), Ok(()))]));
                    drop(part);
                }),
            );
        }
        let results = match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(r) => r,
            Err(e) => panic!("no report: {e}"),
        };
        assert_eq!(results.len(), 2, "{results:?}");
        assert!(
            results
                .iter()
                .any(|(who, r)| who == "domain 2" && r.is_err()),
            "{results:?}"
        );
    }

    #[test]
    fn waiting_work_is_reported_and_cancelled_without_running() {
        let (tx, rx) = mpsc::channel();
        let tx = Mutex::new(tx);
        let l = lanes(Arc::new(move |a| {
            let _ = tx.lock().unwrap_or_else(|p| p.into_inner()).send(a);
        }));
        let (release, hold) = mpsc::channel::<()>();
        let ran = Arc::new(AtomicUsize::new(0));
        let hold = Mutex::new(hold);
        l.push(
            Lane::Domain(DomKey::local(3)),
            Job::new("detach", move || {
                let _ = hold
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .recv_timeout(Duration::from_secs(10));
            }),
        );
        for label in ["pause", "save"] {
            let ran = ran.clone();
            l.push(
                Lane::Domain(DomKey::local(3)),
                Job::new(label, move || {
                    ran.fetch_add(1, Ordering::SeqCst);
                }),
            );
        }
        let next = || match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(a) => a,
            Err(e) => panic!("nothing came: {e}"),
        };
        // The first started at once; the others wait, and the app hears.
        let mut last = None;
        while let Action::Queued { domid, ops } = next() {
            assert_eq!(domid, DomKey::local(3));
            last = Some(ops.clone());
            if ops == ["pause", "save"] {
                break;
            }
        }
        assert_eq!(last, Some(vec!["pause", "save"]));
        l.submit(Effect::CancelQueued(vec![DomKey::local(3)]));
        assert!(
            matches!(next(), Action::Queued { domid, ops } if ops.is_empty() && domid == DomKey::local(3))
        );
        assert!(
            matches!(next(), Action::Done(Done::Cancelled { domid, ops }) if ops == ["pause", "save"] && domid == DomKey::local(3))
        );
        let _ = release.send(());
        // The lane ends; the cancelled jobs never run.
        for _ in 0..100 {
            if l.queues
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .queues
                .is_empty()
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(ran.load(Ordering::SeqCst), 0);
        let q = l.queues.lock().unwrap_or_else(|p| p.into_inner());
        assert!(q.queues.is_empty() && q.busy_slots == 0);
    }
}
