//! The simulated hypervisor: a product feature, not a stand-in. It models a
//! Xen host deterministically (seeded, injectable clock): a Domain-0 that
//! cannot be destroyed, domids that only grow, memory accounting, per-vCPU
//! CPU time, shutdown reasons, and a guest console with a boot log and a
//! tiny shell. With a state directory it persists, so separate processes
//! share one host.

mod faults;
mod guest;
mod model;
mod store;

pub use faults::Faults;
pub use model::{HostState, SIM_VERSION, mix};

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use self::model::SimDomain;
use self::store::{ConsoleOut, SimTx, Store};
use super::{
    BackendError, BackendKind, BackendResult, BootImage, CallKind, Capabilities, Capability,
    ConsoleStream, CreateSpec, DomId, DomainInfo, HostInfo, Hypervisor, ReadOutcome,
    ShutdownReason,
};
use crate::clock::{Clock, SystemClock};
use crate::config::{DeviceRef, DeviceSpec};

pub const DEFAULT_SEED: u64 = 0x5eed_d0e5;

/// How to open a simulated host.
#[derive(Clone)]
pub struct SimOptions {
    /// `None`: in memory only.
    pub state_dir: Option<PathBuf>,
    pub seed: u64,
    pub clock: Arc<dyn Clock>,
    pub faults: Faults,
    /// domus's state dir, whose console archive keeps the logs of domains
    /// that are gone; `None`: their logs go with them.
    pub console_archive: Option<PathBuf>,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            state_dir: None,
            seed: DEFAULT_SEED,
            clock: Arc::new(SystemClock),
            faults: Faults::default(),
            console_archive: None,
        }
    }
}

struct Inner {
    store: Store,
    seed: u64,
    clock: Arc<dyn Clock>,
    faults: Mutex<Faults>,
}

/// A handle to a simulated host; clones share it.
#[derive(Clone)]
pub struct SimHypervisor(Arc<Inner>);

/// What `save` writes: the domain and the caller's metadata.
#[derive(Serialize, Deserialize)]
struct SaveImage {
    magic: String,
    domain: SimDomain,
    console_tail: Vec<u8>,
    meta: Vec<u8>,
}

const SAVE_MAGIC: &str = "domus-sim-save-1";

impl SimHypervisor {
    pub fn open(opts: SimOptions) -> BackendResult<Self> {
        let archive = opts
            .console_archive
            .as_deref()
            .map(crate::console::archive::Archive::in_state_dir);
        let store = match &opts.state_dir {
            Some(dir) => Store::disk(dir, archive)?,
            None => Store::memory()?,
        };
        Ok(SimHypervisor(Arc::new(Inner {
            store,
            seed: opts.seed,
            clock: opts.clock,
            faults: Mutex::new(opts.faults),
        })))
    }

    /// An in-memory host with the given clock (tests, benchmarks).
    pub fn in_memory(clock: Arc<dyn Clock>) -> Self {
        match Self::open(SimOptions {
            clock,
            ..SimOptions::default()
        }) {
            Ok(sim) => sim,
            // SQLite in memory fails only when the process is out of memory.
            Err(e) => panic!("opening an in-memory simulated host: {e}"),
        }
    }

    /// Make call number `nth` (counted from now) of `call` fail.
    pub fn fail_nth(&self, call: CallKind, nth: u64) {
        if let Ok(mut f) = self.0.faults.lock() {
            f.fail_nth(call, nth);
        }
    }

    /// Make every call of `call` take `delay` (tests of slow operations).
    pub fn slow(&self, call: CallKind, delay: Duration) {
        let mut f = self.0.faults.lock().unwrap_or_else(|p| p.into_inner());
        let secs = delay.as_secs_f64();
        let _ = f.parse_slow(&format!("{call}:{secs}"));
    }

    /// How many calls of a kind this handle has seen.
    pub fn call_count(&self, call: CallKind) -> u64 {
        self.0.faults.lock().map(|f| f.count(call)).unwrap_or(0)
    }

    fn now(&self) -> u64 {
        self.0.clock.now_ns()
    }

    fn fault(&self, call: CallKind) -> BackendResult<()> {
        let delay = {
            let mut f = self.0.faults.lock().unwrap_or_else(|p| p.into_inner());
            f.check(call)?;
            f.delay(call)
        };
        // Slowed down outside any transaction, as a slow hypervisor call
        // would be: other callers carry on meanwhile.
        if let Some(d) = delay {
            std::thread::sleep(d);
        }
        Ok(())
    }

    fn init(&self) -> impl Fn() -> (HostState, SimDomain) + '_ {
        let now = self.now();
        move || HostState::new(self.0.seed, now)
    }

    fn read<R>(&self, f: impl FnOnce(&SimTx<'_>, u64) -> BackendResult<R>) -> BackendResult<R> {
        let now = self.now();
        self.0.store.read(&self.init(), |tx| f(tx, now))
    }

    fn write<R>(
        &self,
        f: impl FnOnce(&mut SimTx<'_>, &mut ConsoleOut, u64) -> BackendResult<R>,
    ) -> BackendResult<R> {
        let now = self.now();
        self.0.store.write(&self.init(), |tx, out| f(tx, out, now))
    }

    /// Change one guest domain (never Domain-0 unless `allow_dom0`).
    fn with_domain<R>(
        &self,
        call: CallKind,
        domid: DomId,
        allow_dom0: bool,
        f: impl FnOnce(&mut SimDomain, &mut ConsoleOut, u64) -> BackendResult<R>,
    ) -> BackendResult<R> {
        self.fault(call)?;
        self.write(|tx, out, now| {
            if domid == 0 && !allow_dom0 {
                return Err(BackendError::BadState {
                    domid,
                    state: "Domain-0".into(),
                    call,
                });
            }
            let mut d = tx.domain(domid)?.ok_or(BackendError::NoSuchDomain(domid))?;
            let r = f(&mut d, out, now)?;
            tx.put(&d)?;
            Ok(r)
        })
    }

    fn deliver_shutdown(d: &mut SimDomain, reason: ShutdownReason, now: u64) {
        d.settle(now);
        d.shutdown = Some(reason);
        d.line.clear();
    }
}

fn bad_state(d: &SimDomain, call: CallKind) -> BackendError {
    let state = if d.shutdown.is_some() {
        "shut down"
    } else if d.paused {
        "paused"
    } else {
        "running"
    };
    BackendError::BadState {
        domid: d.domid,
        state: state.into(),
        call,
    }
}

impl Hypervisor for SimHypervisor {
    fn kind(&self) -> BackendKind {
        BackendKind::Sim
    }

    fn capabilities(&self) -> Capabilities {
        use Capability::*;
        Capabilities::of(&[
            Pause,
            Shutdown,
            Reboot,
            Suspend,
            HotplugVbd,
            HotplugVif,
            HotplugPci,
            MemoryTarget,
            Console,
            SaveRestore,
            CoreDump,
            Rename,
            IoStats,
            ImageLinux,
            ImagePlan9,
            ImageHvm,
            Bootloader,
        ])
    }

    fn host_info(&self) -> BackendResult<HostInfo> {
        self.fault(CallKind::HostInfo)?;
        self.read(|tx, _| Ok(tx.host.host_info(tx.used_kib()?)))
    }

    fn list_domains(&self) -> BackendResult<Vec<DomainInfo>> {
        self.fault(CallKind::List)?;
        let now = self.now();
        let (host, domains) = self.0.store.domains(&self.init())?;
        Ok(domains.iter().map(|d| host.info(d, now)).collect())
    }

    fn stats(&self) -> BackendResult<Vec<crate::backend::DomainStats>> {
        self.fault(CallKind::List)?;
        let now = self.now();
        let (host, domains) = self.0.store.domains(&self.init())?;
        Ok(domains.iter().map(|d| host.stats(d, now)).collect())
    }

    fn io_stats(&self) -> BackendResult<Vec<crate::backend::IoCounters>> {
        self.fault(CallKind::List)?;
        let now = self.now();
        let (host, domains) = self.0.store.domains(&self.init())?;
        Ok(domains.iter().map(|d| host.io(d, now)).collect())
    }

    fn domain_info(&self, domid: DomId) -> BackendResult<DomainInfo> {
        self.read(|tx, now| Ok(tx.domain(domid)?.map(|d| tx.host.info(&d, now))))?
            .ok_or(BackendError::NoSuchDomain(domid))
    }

    fn new_uuid(&self) -> BackendResult<uuid::Uuid> {
        self.write(|tx, _, _| Ok(tx.host.next_uuid()))
    }

    fn lookup(&self, name: &str) -> BackendResult<Option<DomainInfo>> {
        // A lookup is a query of the domain list, for fault injection too.
        self.fault(CallKind::List)?;
        self.read(|tx, now| {
            Ok(match tx.domid_by_name(name)? {
                Some(id) => tx.domain(id)?.map(|d| tx.host.info(&d, now)),
                None => None,
            })
        })
    }

    fn shut_down_domains(&self) -> BackendResult<Vec<DomainInfo>> {
        self.read(|tx, now| {
            Ok(tx
                .shut_down()?
                .iter()
                .map(|d| tx.host.info(d, now))
                .collect())
        })
    }

    fn console_log(&self, domid: DomId) -> BackendResult<Option<PathBuf>> {
        Ok(self.0.store.console_file(domid))
    }

    fn boot_image(&self, domid: DomId) -> BackendResult<Option<BootImage>> {
        self.read(|tx, _| Ok(tx.domain(domid)?.and_then(|d| d.image)))
    }

    fn create_domain(&self, spec: &CreateSpec) -> BackendResult<DomId> {
        self.fault(CallKind::CreateDomain)?;
        self.write(|tx, _, now| {
            if spec.vcpus == 0 || spec.memory_kib == 0 {
                return Err(BackendError::Invalid(
                    "a domain needs memory and at least one vCPU".into(),
                ));
            }
            if tx.domid_by_name(&spec.name)?.is_some() {
                return Err(BackendError::Invalid(format!(
                    "a domain named {} already exists",
                    spec.name
                )));
            }
            if let Some(uuid) = spec.uuid
                && tx.domid_by_uuid(&uuid)?.is_some()
            {
                return Err(BackendError::Invalid(format!(
                    "a domain with uuid {uuid} already exists"
                )));
            }
            let free = tx.free_kib()?;
            if spec.memory_kib > free {
                return Err(BackendError::OutOfMemory {
                    need_kib: spec.memory_kib,
                    free_kib: free,
                });
            }
            // Never backwards: above the counter, every domain that exists
            // and every domid domus has seen.
            let domid = tx
                .host
                .next_domid
                .max(tx.above_max_domid()?)
                .max(spec.min_domid);
            tx.host.next_domid = domid.checked_add(1).ok_or_else(|| {
                BackendError::Invalid("the simulated host has no domain id left".into())
            })?;
            let uuid = match spec.uuid {
                Some(u) => u,
                None => tx.host.next_uuid(),
            };
            let load = tx.host.load_for(domid);
            tx.put(&SimDomain {
                domid,
                name: spec.name.clone(),
                uuid,
                memory_kib: spec.memory_kib,
                max_kib: spec.memory_kib,
                target_kib: spec.memory_kib,
                vcpus: spec.vcpus,
                vcpus_online: spec.vcpus_online,
                cpu_weight: 256,
                pinned: Default::default(),
                paused: true,
                shutdown: None,
                image: None,
                device_model: false,
                booted_ns: None,
                devices: Vec::new(),
                vcpu_ns: vec![0; spec.vcpus as usize],
                accounted_ns: now,
                load_permille: load,
                created_ns: now,
                line: String::new(),
                pending_input: Vec::new(),
            })?;
            Ok(domid)
        })
    }

    fn set_max_memory(&self, domid: DomId, kib: u64) -> BackendResult<()> {
        self.with_domain(CallKind::SetMaxMemory, domid, false, |d, _, _| {
            if kib < d.memory_kib {
                return Err(BackendError::Invalid(format!(
                    "max memory {kib} KiB is below the domain's current {} KiB",
                    d.memory_kib
                )));
            }
            d.max_kib = kib;
            Ok(())
        })
    }

    fn set_vcpus(&self, domid: DomId, vcpus: u32) -> BackendResult<()> {
        self.with_domain(CallKind::SetVcpus, domid, false, |d, _, now| {
            if vcpus == 0 || vcpus > 128 {
                return Err(BackendError::Invalid(format!(
                    "vcpus must be 1 to 128, got {vcpus}"
                )));
            }
            d.settle(now);
            d.vcpus = vcpus;
            d.vcpu_ns.resize(vcpus as usize, 0);
            Ok(())
        })
    }

    fn pin_vcpu(&self, domid: DomId, vcpu: u32, cpu: u32) -> BackendResult<()> {
        self.fault(CallKind::PinVcpu)?;
        self.write(|tx, _, _| {
            if cpu >= tx.host.cpus {
                return Err(BackendError::Invalid(format!(
                    "cannot pin to CPU {cpu}: the host has CPUs 0 to {}",
                    tx.host.cpus - 1
                )));
            }
            let mut d = tx.domain(domid)?.ok_or(BackendError::NoSuchDomain(domid))?;
            if vcpu >= d.vcpus {
                return Err(BackendError::Invalid(format!("domain has no vCPU {vcpu}")));
            }
            d.pinned.insert(vcpu, cpu);
            tx.put(&d)
        })
    }

    fn set_cpu_weight(&self, domid: DomId, weight: u32) -> BackendResult<()> {
        self.with_domain(CallKind::SetCpuWeight, domid, true, |d, _, _| {
            d.cpu_weight = weight;
            Ok(())
        })
    }

    fn build_image(&self, domid: DomId, image: &BootImage) -> BackendResult<()> {
        self.with_domain(CallKind::BuildImage, domid, false, |d, _, _| {
            if d.image.is_some() {
                return Err(BackendError::Invalid(format!(
                    "domain {domid} is already built"
                )));
            }
            if image.kernel.is_none() && !image.boot_from_disk {
                return Err(BackendError::Invalid(
                    "nothing to boot: no kernel and no boot disk".into(),
                ));
            }
            d.image = Some(image.clone());
            Ok(())
        })
    }

    fn start_device_model(&self, domid: DomId, _image: &BootImage) -> BackendResult<()> {
        self.with_domain(CallKind::StartDeviceModel, domid, false, |d, _, _| {
            d.device_model = true;
            Ok(())
        })
    }

    fn pause(&self, domid: DomId) -> BackendResult<()> {
        self.with_domain(CallKind::Pause, domid, false, |d, _, now| {
            if d.paused || d.shutdown.is_some() {
                return Err(bad_state(d, CallKind::Pause));
            }
            d.settle(now);
            d.paused = true;
            Ok(())
        })
    }

    fn unpause(&self, domid: DomId) -> BackendResult<()> {
        self.with_domain(CallKind::Unpause, domid, false, |d, out, now| {
            if !d.paused || d.shutdown.is_some() {
                return Err(bad_state(d, CallKind::Unpause));
            }
            if d.image.is_none() {
                return Err(BackendError::Invalid(format!(
                    "domain {domid} has no image built"
                )));
            }
            d.settle(now);
            d.paused = false;
            if d.booted_ns.is_none() {
                // The guest's uptime clock starts when its kernel does, a
                // moment before the boot log ends.
                d.booted_ns = Some(now.saturating_sub(guest::BOOT_DURATION_NS));
                d.accounted_ns = now;
                out.push(domid, guest::boot_log(d, now));
            }
            let pending = std::mem::take(&mut d.pending_input);
            if !pending.is_empty() {
                let mut text = Vec::new();
                if let Some(reason) = guest::type_input(d, &pending, now, &mut text) {
                    Self::deliver_shutdown(d, reason, now);
                }
                out.push(domid, text);
            }
            Ok(())
        })
    }

    fn shutdown(&self, domid: DomId, reason: ShutdownReason) -> BackendResult<()> {
        self.with_domain(CallKind::Shutdown, domid, false, |d, out, now| {
            if d.paused || d.shutdown.is_some() || d.booted_ns.is_none() {
                return Err(bad_state(d, CallKind::Shutdown));
            }
            out.push(
                domid,
                format!("\r\n{}", guest::shutdown_log(d, reason, now)),
            );
            Self::deliver_shutdown(d, reason, now);
            Ok(())
        })
    }

    fn destroy(&self, domid: DomId) -> BackendResult<()> {
        self.fault(CallKind::Destroy)?;
        self.write(|tx, out, _| {
            if domid == 0 {
                return Err(BackendError::Invalid("Domain-0 cannot be destroyed".into()));
            }
            let d = tx.domain(domid)?.ok_or(BackendError::NoSuchDomain(domid))?;
            tx.remove(domid)?;
            out.removals.push((domid, d.uuid));
            Ok(())
        })
    }

    fn rename(&self, domid: DomId, name: &str) -> BackendResult<()> {
        self.fault(CallKind::Rename)?;
        self.write(|tx, _, _| {
            if tx.domid_by_name(name)?.is_some_and(|d| d != domid) {
                return Err(BackendError::Invalid(format!(
                    "a domain named {name} already exists"
                )));
            }
            if domid == 0 {
                return Err(BackendError::Invalid("Domain-0 cannot be renamed".into()));
            }
            let mut d = tx.domain(domid)?.ok_or(BackendError::NoSuchDomain(domid))?;
            d.name = name.to_string();
            tx.put(&d)
        })
    }

    fn attach_device(&self, domid: DomId, device: &DeviceSpec) -> BackendResult<()> {
        self.with_domain(CallKind::AttachDevice, domid, false, |d, out, now| {
            if d.shutdown.is_some() {
                return Err(bad_state(d, CallKind::AttachDevice));
            }
            let clash = d.devices.iter().find(|x| match (x, device) {
                (DeviceSpec::Vbd(a), DeviceSpec::Vbd(b)) => a.dev == b.dev,
                (DeviceSpec::Vif(a), DeviceSpec::Vif(b)) => a.mac.is_some() && a.mac == b.mac,
                (DeviceSpec::Pci(a), DeviceSpec::Pci(b)) => a == b,
                _ => false,
            });
            if let Some(x) = clash {
                return Err(BackendError::Invalid(format!(
                    "domain {domid} already has {x}"
                )));
            }
            d.devices.push(device.clone());
            if d.booted_ns.is_some() {
                out.push(domid, guest::hotplug_log(d, device, true, now));
            }
            Ok(())
        })
    }

    fn detach_device(&self, domid: DomId, device: &DeviceRef) -> BackendResult<DeviceSpec> {
        self.with_domain(CallKind::DetachDevice, domid, false, |d, out, now| {
            let pos = device.position_in(&d.devices).ok_or_else(|| {
                BackendError::Invalid(format!("domain {domid} has no device {device}"))
            })?;
            if d.booted_ns.is_some() && d.shutdown.is_none() {
                let msg = guest::hotplug_log(d, &d.devices[pos], false, now);
                out.push(domid, msg);
            }
            Ok(d.devices.remove(pos))
        })
    }

    fn set_memory_target(&self, domid: DomId, kib: u64) -> BackendResult<()> {
        self.fault(CallKind::SetMemoryTarget)?;
        self.write(|tx, _, _| {
            let free = tx.free_kib()?;
            let mut d = tx.domain(domid)?.ok_or(BackendError::NoSuchDomain(domid))?;
            if kib > d.max_kib {
                return Err(BackendError::Invalid(format!(
                    "memory target {} MiB is above the domain's maximum {} MiB",
                    kib / 1024,
                    d.max_kib / 1024
                )));
            }
            // The balloon takes memory from the host or gives it back.
            let grow = kib.saturating_sub(d.memory_kib);
            if grow > free {
                return Err(BackendError::OutOfMemory {
                    need_kib: grow,
                    free_kib: free,
                });
            }
            d.memory_kib = kib;
            d.target_kib = kib;
            tx.put(&d)
        })
    }

    fn open_console(&self, domid: DomId) -> BackendResult<Box<dyn ConsoleStream>> {
        self.fault(CallKind::OpenConsole)?;
        if domid == 0 {
            return Err(BackendError::UnsupportedFeature {
                backend: BackendKind::Sim,
                what: "a console for Domain-0".into(),
                why: "Domain-0's console is the host's own terminal".into(),
            });
        }
        self.domain_info(domid)?;
        Ok(Box::new(SimConsole {
            sim: self.clone(),
            domid,
            offset: 0,
        }))
    }

    fn save(&self, domid: DomId, path: &Path, meta: &[u8]) -> BackendResult<()> {
        self.fault(CallKind::Save)?;
        let (bytes, _) = self.0.store.console_read(domid, 0)?;
        let tail = bytes[bytes.len().saturating_sub(16 * 1024)..].to_vec();
        self.write(|tx, out, now| {
            let d = tx.domain(domid)?.ok_or(BackendError::NoSuchDomain(domid))?;
            if domid == 0 {
                return Err(BackendError::Invalid("Domain-0 cannot be saved".into()));
            }
            if d.shutdown.is_some_and(|r| r != ShutdownReason::Suspend) {
                return Err(bad_state(&d, CallKind::Save));
            }
            let mut domain = d.clone();
            domain.settle(now);
            let image = SaveImage {
                magic: SAVE_MAGIC.into(),
                domain,
                console_tail: tail,
                meta: meta.to_vec(),
            };
            let json =
                serde_json::to_vec(&image).map_err(|e| BackendError::data("a save image", e))?;
            crate::fsx::write_atomic(path, &json)
                .map_err(|e| BackendError::io(format!("writing {}", path.display()), e.into()))?;
            tx.remove(domid)?;
            out.removals.push((domid, d.uuid));
            Ok(())
        })
    }

    fn restore(&self, path: &Path) -> BackendResult<(DomId, Vec<u8>)> {
        self.fault(CallKind::Restore)?;
        let bytes = std::fs::read(path)
            .map_err(|e| BackendError::io(format!("reading {}", path.display()), e))?;
        let image: SaveImage = serde_json::from_slice(&bytes)
            .ok()
            .filter(|i: &SaveImage| i.magic == SAVE_MAGIC)
            .ok_or_else(|| {
                BackendError::Invalid(format!("{} is not a domus sim save file", path.display()))
            })?;
        self.write(|tx, out, now| {
            let mut d = image.domain;
            if tx.domid_by_name(&d.name)?.is_some() || tx.domid_by_uuid(&d.uuid)?.is_some() {
                return Err(BackendError::Invalid(format!(
                    "cannot restore {}: a domain with that name or uuid exists",
                    d.name
                )));
            }
            let free = tx.free_kib()?;
            if d.memory_kib > free {
                return Err(BackendError::OutOfMemory {
                    need_kib: d.memory_kib,
                    free_kib: free,
                });
            }
            let domid = tx.host.next_domid.max(tx.above_max_domid()?);
            tx.host.next_domid = domid.checked_add(1).ok_or_else(|| {
                BackendError::Invalid("the simulated host has no domain id left".into())
            })?;
            if d.vcpus == 0
                || d.vcpus > 128
                || d.vcpu_ns.len() != d.vcpus as usize
                || d.load_permille > 1000
            {
                return Err(BackendError::Invalid(format!(
                    "{} is damaged: impossible vCPU data",
                    path.display()
                )));
            }
            d.domid = domid;
            d.paused = true;
            // A suspended guest resumes where it stopped.
            d.shutdown = None;
            d.accounted_ns = now;
            out.push(domid, &image.console_tail);
            out.push(domid, "\r\n[restored]\r\n");
            tx.put(&d)?;
            Ok((domid, image.meta))
        })
    }

    fn core_dump(&self, domid: DomId, path: &Path) -> BackendResult<()> {
        self.fault(CallKind::CoreDump)?;
        let text = self.read(|tx, now| {
            Ok(tx.domain(domid)?.map(|d| {
                format!(
                    "domus simulated core dump\nname: {}\ndomid: {}\nuuid: {}\nmemory_kib: {}\nvcpus: {}\nshutdown: {}\nuptime_s: {:.3}\n",
                    d.name, d.domid, d.uuid, d.memory_kib, d.vcpus, d.shutdown.map_or("no", |r| r.as_str()), d.uptime_secs(now)
                )
            }))
        })?;
        let text = text.ok_or(BackendError::NoSuchDomain(domid))?;
        crate::fsx::write_atomic(path, text.as_bytes()).map_err(|e| {
            BackendError::io(format!("writing core dump {}", path.display()), e.into())
        })
    }
}

/// A console stream on the simulated guest.
struct SimConsole {
    sim: SimHypervisor,
    domid: DomId,
    offset: u64,
}

impl SimConsole {
    fn alive(&self) -> BackendResult<bool> {
        self.sim.read(|tx, _| Ok(tx.domain(self.domid)?.is_some()))
    }
}

impl ConsoleStream for SimConsole {
    fn read(&mut self, buf: &mut [u8], timeout: Duration) -> BackendResult<ReadOutcome> {
        let deadline = Instant::now() + timeout;
        loop {
            let (bytes, _) = self.sim.0.store.console_read(self.domid, self.offset)?;
            if !bytes.is_empty() {
                let n = bytes.len().min(buf.len());
                buf[..n].copy_from_slice(&bytes[..n]);
                self.offset += n as u64;
                return Ok(ReadOutcome::Data(n));
            }
            if !self.alive()? {
                return Ok(ReadOutcome::Closed);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(ReadOutcome::Idle);
            }
            std::thread::sleep((deadline - now).min(Duration::from_millis(20)));
        }
    }

    fn write(&mut self, bytes: &[u8]) -> BackendResult<()> {
        let domid = self.domid;
        self.sim.write(|tx, out, now| {
            let mut d = tx.domain(domid)?.ok_or(BackendError::NoSuchDomain(domid))?;
            if d.shutdown.is_some() {
                return Ok(());
            }
            if d.paused || d.booted_ns.is_none() {
                d.pending_input.extend_from_slice(bytes);
                return tx.put(&d);
            }
            let mut text = Vec::new();
            if let Some(reason) = guest::type_input(&mut d, bytes, now, &mut text) {
                SimHypervisor::deliver_shutdown(&mut d, reason, now);
            }
            out.push(domid, text);
            tx.put(&d)
        })
    }
}
