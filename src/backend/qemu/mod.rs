//! The QEMU/KVM backend: every domain is a daemonized `qemu-system-x86_64`
//! driven over QMP, with its files in one directory under the runtime
//! directory (see [`launch`]). QEMU processes outlive domus; any domus
//! process finds them again from those directories.
//!
//! Construction maps onto the engine's pipeline: `create_domain` only
//! reserves the domid and directory, `build_image` starts QEMU paused
//! (`-S`), devices are hot-plugged like later attaches, and `unpause` is
//! QMP `cont`.

pub mod accel;
mod console;
mod devices;
mod host;
mod io;
pub mod launch;
mod meta;
pub mod qmp;
pub mod supervisor;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use self::launch::{DomainDir, LaunchSpec};
use self::meta::{DomainMeta, Phase, RunState, Runtime};
use self::qmp::Qmp;
use super::{
    BackendError, BackendKind, BackendResult, BootImage, CallKind, Capabilities, Capability,
    ConsoleStream, CreateSpec, DomId, DomainInfo, HostInfo, Hypervisor, Notice, ShutdownReason,
    StateFlags,
};
use crate::clock::Clock;
use crate::config::{DeviceRef, DeviceSpec};

pub use self::devices::vfio_problem;

/// The QEMU binary domus runs.
pub const QEMU: &str = "qemu-system-x86_64";
const CMD: Duration = Duration::from_secs(10);
/// A construction that has not launched QEMU within this long was left by
/// a domus that died mid-build.
const STALE_BUILD_NS: u64 = 120 * 1_000_000_000;

pub struct QemuOptions {
    pub runtime_dir: PathBuf,
    /// Where the supervisor's engine keeps its records (domus's state dir).
    pub state_dir: PathBuf,
    /// `kvm` or `tcg`; `None` detects.
    pub accel: Option<String>,
    pub binary: PathBuf,
    /// The `domus` executable to run as each domain's supervisor; `None`
    /// watches from a thread of this process instead.
    pub supervisor: Option<PathBuf>,
    /// Restart dead supervisors of running domains on open (not in a
    /// supervisor itself).
    pub adopt: bool,
    pub clock: Arc<dyn Clock>,
}

/// Whether a QEMU binary is on `PATH`.
pub fn installed(binary: &Path) -> bool {
    if binary.components().count() > 1 {
        return binary.is_file();
    }
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(binary).is_file()))
}

pub struct QemuHypervisor {
    rt: Runtime,
    opts: QemuOptions,
    accel: String,
    version: OnceLock<String>,
    notes: Mutex<Vec<String>>,
    /// Records as last read, by domid, with the file's stamp: a refresh
    /// tick re-reads only those that changed.
    seen: Mutex<std::collections::HashMap<DomId, (meta::Stamp, Arc<DomainMeta>)>>,
}

fn qmp_err(domid: DomId) -> impl Fn(qmp::QmpError) -> BackendError {
    move |source| BackendError::Qmp {
        domid: Some(domid),
        source: Box::new(source),
    }
}

impl QemuHypervisor {
    /// Open the runtime directory and re-discover the domains in it:
    /// running ones are picked up (their supervisor restarted if it died),
    /// directories whose QEMU is gone are removed and reported.
    pub fn open(opts: QemuOptions) -> BackendResult<QemuHypervisor> {
        let rt = Runtime::new(&opts.runtime_dir)?;
        Self::claim_runtime(&opts)?;
        let accel = opts
            .accel
            .clone()
            .unwrap_or_else(|| accel::detect().to_string());
        let hv = QemuHypervisor {
            rt,
            opts,
            accel,
            version: OnceLock::new(),
            notes: Mutex::new(Vec::new()),
            seen: Mutex::default(),
        };
        hv.rediscover();
        Ok(hv)
    }

    /// A runtime dir belongs to one state dir: another state dir opening it
    /// would adopt its domains (rebuilding their records with default
    /// policies) while their own supervisors still apply the real ones.
    fn claim_runtime(opts: &QemuOptions) -> BackendResult<()> {
        let marker = opts.runtime_dir.join("state-dir");
        let mine = std::fs::canonicalize(&opts.state_dir)
            .unwrap_or_else(|_| opts.state_dir.clone())
            .display()
            .to_string();
        match crate::fsx::read_to_string_bounded(&marker, 4096) {
            Ok(owner) if owner.trim_end() == mine => Ok(()),
            Ok(owner) => Err(BackendError::Start {
                what: "the QEMU backend".into(),
                why: format!(
                    "the runtime dir {} holds the domains of the state dir {}; give {mine} a runtime dir of its own (--runtime-dir), or remove {} if that state dir moved here",
                    opts.runtime_dir.display(),
                    owner.trim_end(),
                    marker.display()
                ),
            }),
            Err(_) => crate::fsx::write_atomic(&marker, format!("{mine}\n").as_bytes())
                .map_err(|e| BackendError::io("marking the runtime dir", std::io::Error::other(e))),
        }
    }

    pub fn accel(&self) -> &str {
        &self.accel
    }

    pub fn runtime_dir(&self) -> &Path {
        &self.rt.root
    }

    fn note(&self, msg: String) {
        tracing::info!("{msg}");
        if let Ok(mut n) = self.notes.lock() {
            n.push(msg);
        }
    }

    fn rediscover(&self) {
        let now = self.opts.clock.now_ns();
        self.rt
            .remove_stale_new(std::time::Duration::from_secs(600));
        for domid in self.rt.domids() {
            let dir = self.rt.dir(domid);
            let meta = match self.rt.load(domid) {
                Ok(m) => m,
                Err(e) => {
                    // Whatever QEMU was started for it goes with it.
                    for stray in host::qemus_for(&dir.dir) {
                        host::signal(stray, nix::sys::signal::Signal::SIGKILL);
                    }
                    let _ = self.rt.remove(domid);
                    self.note(format!(
                        "removed {}: unreadable domain record ({e})",
                        dir.dir.display()
                    ));
                    continue;
                }
            };
            // A build is stale when its builder died (or, for a record
            // that does not say who builds it, after a while).
            let stale = match meta.builder {
                Some((pid, start)) => crate::store::start_time(pid).is_none_or(|s| s != start),
                None => now.saturating_sub(meta.created_ns) > STALE_BUILD_NS,
            };
            match meta.phase {
                Phase::Building if stale => {
                    // A QEMU it may have started dies with the record.
                    self.kill(&meta);
                    self.forget(&meta);
                    self.note(format!(
                        "removed {} ({}, id {domid}): its construction never finished",
                        dir.dir.display(),
                        meta.name
                    ));
                }
                Phase::Building => {}
                Phase::Launched if self.qemu_alive(&meta, &dir) => {
                    if self.opts.adopt && supervisor::running(&dir).is_none() {
                        match self.start_supervisor(&dir, domid) {
                            Ok(()) => self.note(format!(
                                "restarted the supervisor of {} (id {domid})",
                                meta.name
                            )),
                            Err(e) => tracing::warn!(domid, error = %e, "restarting a supervisor"),
                        }
                    }
                }
                Phase::Launched => {
                    self.forget(&meta);
                    self.note(format!(
                        "removed {} ({}, id {domid}): its QEMU is no longer running",
                        dir.dir.display(),
                        meta.name
                    ));
                }
            }
        }
    }

    fn qemu_alive(&self, meta: &DomainMeta, dir: &DomainDir) -> bool {
        Self::qemu_pid(meta, dir).is_some()
    }

    /// The domain's QEMU, while it runs: the recorded pid, or the pidfile
    /// QEMU wrote itself (a build interrupted before domus recorded it).
    fn qemu_pid(meta: &DomainMeta, dir: &DomainDir) -> Option<i32> {
        meta.qemu_pid
            .or_else(|| host::read_pidfile(&dir.pidfile()))
            .filter(|pid| host::is_our_qemu(*pid, &dir.dir))
    }

    /// Drop a domain whose QEMU is gone: its taps and its directory.
    fn forget(&self, meta: &DomainMeta) {
        for p in &meta.devices {
            devices::remove_tap(p);
        }
        if let Err(e) = self.rt.remove(meta.domid) {
            tracing::warn!(domid = meta.domid, error = %e, "removing a domain directory");
        }
    }

    fn qmp(&self, domid: DomId) -> BackendResult<Qmp> {
        Qmp::connect(&self.rt.dir(domid).qmp(), CMD).map_err(qmp_err(domid))
    }

    fn exec(&self, domid: DomId, cmd: &str, args: Value) -> BackendResult<Value> {
        self.qmp(domid)?
            .execute(cmd, args, CMD)
            .map_err(qmp_err(domid))
    }

    /// The domain's record, provided its QEMU runs.
    fn launched(&self, domid: DomId, call: CallKind) -> BackendResult<DomainMeta> {
        let meta = self.rt.load(domid)?;
        if meta.phase != Phase::Launched {
            return Err(BackendError::BadState {
                domid,
                state: "still being built".into(),
                call,
            });
        }
        if !self.qemu_alive(&meta, &self.rt.dir(domid)) {
            self.forget(&meta);
            return Err(BackendError::NoSuchDomain(domid));
        }
        Ok(meta)
    }

    fn supervisor_args(&self) -> Vec<String> {
        vec![
            "--backend".into(),
            "qemu".into(),
            "--state-dir".into(),
            self.opts.state_dir.display().to_string(),
            "--runtime-dir".into(),
            self.rt.root.display().to_string(),
            "--accel".into(),
            self.accel.clone(),
        ]
    }

    fn start_supervisor(&self, _dir: &DomainDir, domid: DomId) -> BackendResult<()> {
        supervisor::spawn(
            &self.rt,
            domid,
            self.opts.supervisor.as_deref(),
            &self.supervisor_args(),
        )
    }

    /// Ask QEMU for the state of a domain whose state was never recorded
    /// (launched by an older domus).
    fn ask_state(
        &self,
        meta: &DomainMeta,
        any_running: bool,
        flags: &mut StateFlags,
        reason: &mut Option<ShutdownReason>,
    ) {
        let status = self.exec(meta.domid, "query-status", json!({})).map(|v| {
            v.get("status")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        });
        match status.as_deref() {
            Ok("running") => {
                flags.running = any_running;
                flags.blocked = !any_running;
            }
            Ok("shutdown") => {
                flags.shutdown = true;
                *reason = Some(ShutdownReason::Poweroff);
            }
            Ok("guest-panicked" | "internal-error") => {
                flags.shutdown = true;
                *reason = Some(ShutdownReason::Crash);
            }
            Ok(_) => flags.paused = true,
            Err(e) => {
                // Another process holds the monitor (a long detach): say
                // what the threads say rather than fail a list.
                tracing::debug!(domid = meta.domid, error = %e, "query-status");
                flags.running = any_running;
                flags.blocked = !any_running;
            }
        }
    }

    fn info(&self, meta: &DomainMeta) -> BackendResult<DomainInfo> {
        let mut flags = StateFlags::default();
        let mut reason = None;
        // Bounded: the record is a file someone could edit.
        let mut vcpu_time_ns = vec![0; meta.vcpus.min(crate::config::MAX_VCPUS) as usize];
        match meta.phase {
            Phase::Building => flags.paused = true,
            Phase::Launched => {
                let pid = meta.qemu_pid.unwrap_or(0);
                let mut any_running = false;
                for (i, tid) in meta.vcpu_threads.iter().enumerate() {
                    if let Some((ns, running)) = host::thread_time(pid, *tid) {
                        if let Some(slot) = vcpu_time_ns.get_mut(i) {
                            *slot = ns;
                        }
                        any_running |= running;
                    }
                }
                // The state the supervisor recorded from QEMU's events: no
                // QMP round trip per domain per refresh.
                match meta.run_state {
                    Some(RunState::Running) => {
                        flags.running = any_running;
                        flags.blocked = !any_running;
                    }
                    Some(RunState::Paused) => flags.paused = true,
                    Some(RunState::Shutdown { reason: r }) => {
                        flags.shutdown = true;
                        reason = Some(r);
                    }
                    None => self.ask_state(meta, any_running, &mut flags, &mut reason),
                }
            }
        }
        let notes = meta.devices.iter().filter_map(|p| {
            p.note
                .as_ref()
                .filter(|n| n.starts_with("user-mode"))
                .map(|n| format!("{}: {n}", p.spec))
        });
        Ok(DomainInfo {
            domid: meta.domid,
            name: meta.name.clone(),
            uuid: meta.uuid,
            memory_kib: meta.memory_kib,
            max_memory_kib: meta.max_memory_kib,
            vcpus: meta.vcpus,
            flags,
            shutdown_reason: reason,
            cpu_time_ns: vcpu_time_ns.iter().sum(),
            vcpu_time_ns,
            devices: meta.devices.iter().map(|p| p.spec.clone()).collect(),
            start_ns: Some(meta.created_ns),
            notes: notes.collect(),
        })
    }

    fn check_boot_files(image: &BootImage) -> BackendResult<()> {
        for (what, path) in [("kernel", &image.kernel), ("ramdisk", &image.ramdisk)] {
            if let Some(p) = path
                && let Err(e) = std::fs::File::open(p)
            {
                return Err(BackendError::io(format!("{what} {p}"), e));
            }
        }
        Ok(())
    }

    /// Start QEMU for a built domain and wait until it is ready, paused;
    /// `incoming`: waiting for a migration stream (a restore).
    fn launch(
        &self,
        meta: &mut DomainMeta,
        image: &BootImage,
        incoming: bool,
    ) -> BackendResult<()> {
        let dir = self.rt.dir(meta.domid);
        let archive = crate::console::archive::Archive::in_state_dir(&self.opts.state_dir);
        archive
            .prepare(meta.uuid)
            .map_err(|e| BackendError::io("creating the console archive", e))?;
        let log = archive.path(meta.uuid, meta.domid);
        // Made here, 0600: QEMU would create it with the umask's mode.
        crate::console::archive::open_log(&log)
            .map_err(|e| BackendError::io(format!("creating {}", log.display()), e))?;
        meta.console_log = Some(log.clone());
        let spec = LaunchSpec {
            name: &meta.name,
            uuid: meta.uuid,
            memory_mib: meta.max_memory_kib.div_ceil(1024),
            vcpus: meta.vcpus,
            vcpus_online: meta.vcpus_online,
            accel: &self.accel,
            image,
            dir: &dir,
            incoming,
            console_log: &log,
        };
        let out = Command::new(&self.opts.binary)
            .args(launch::args(&spec))
            .stdin(Stdio::null())
            .output()
            .map_err(|e| BackendError::io(format!("running {}", self.opts.binary.display()), e))?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            let msg = err.trim().lines().last().unwrap_or("").to_string();
            return Err(BackendError::Start {
                what: self.opts.binary.display().to_string(),
                why: if msg.is_empty() {
                    out.status.to_string()
                } else {
                    msg
                },
            });
        }
        let pid = host::read_pidfile(&dir.pidfile()).ok_or_else(|| BackendError::Start {
            what: "QEMU".into(),
            why: format!("it left no pidfile in {}", dir.dir.display()),
        })?;
        meta.qemu_pid = Some(pid);
        meta.phase = Phase::Launched;
        // Started with -S (or waiting for a migration): paused until `cont`.
        meta.run_state = Some(RunState::Paused);
        meta.image = Some(image.clone());
        dir.lock_down_sockets()
            .map_err(|e| BackendError::io("locking down the sockets", e))?;
        let cpus = self.exec(meta.domid, "query-cpus-fast", json!({}))?;
        meta.vcpu_threads = cpus
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|c| c.get("thread-id").and_then(Value::as_i64))
                    .filter_map(|t| i32::try_from(t).ok())
                    .collect()
            })
            .unwrap_or_default();
        if !incoming && meta.memory_kib < meta.max_memory_kib {
            // memory below maxmem: the balloon driver picks the target up
            // when the guest loads it.
            self.exec(
                meta.domid,
                "balloon",
                json!({ "value": meta.memory_kib * 1024 }),
            )?;
        }
        self.rt.store(meta)?;
        self.start_supervisor(&dir, meta.domid)
    }

    fn set_run_state(&self, domid: DomId, state: RunState) -> BackendResult<()> {
        self.rt.update(domid, |m| {
            m.run_state = Some(state);
            Ok(())
        })
    }

    /// Stop QEMU: `quit`, then SIGKILL if it lingers.
    fn kill(&self, meta: &DomainMeta) {
        let dir = self.rt.dir(meta.domid);
        // A launch its builder did not see through (killed while QEMU was
        // starting) has no pid on record, nor perhaps a pidfile yet: every
        // QEMU process started for this directory goes.
        for stray in host::qemus_for(&dir.dir) {
            if Some(stray) != Self::qemu_pid(meta, &dir) {
                tracing::warn!(
                    domid = meta.domid,
                    pid = stray,
                    "killing a QEMU started for this domain"
                );
                host::signal(stray, nix::sys::signal::Signal::SIGKILL);
            }
        }
        let Some(pid) = Self::qemu_pid(meta, &dir) else {
            return;
        };
        if let Ok(mut q) = Qmp::connect(&dir.qmp(), Duration::from_secs(2)) {
            let _ = q.execute("quit", json!({}), Duration::from_secs(2));
        }
        let gone = |limit: Duration| {
            let deadline = Instant::now() + limit;
            while Instant::now() < deadline {
                if !host::alive(pid) {
                    return true;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            !host::alive(pid)
        };
        if !gone(Duration::from_secs(5)) {
            tracing::warn!(domid = meta.domid, pid, "QEMU ignored quit; killing it");
            host::signal(pid, nix::sys::signal::Signal::SIGKILL);
            gone(Duration::from_secs(5));
        }
    }
}

impl Hypervisor for QemuHypervisor {
    fn kind(&self) -> BackendKind {
        BackendKind::Qemu
    }

    fn capabilities(&self) -> Capabilities {
        use Capability::*;
        Capabilities::of(&[
            Pause,
            Shutdown,
            Reboot,
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
            ImageHvm,
            HostFiles,
        ])
    }

    fn host_info(&self) -> BackendResult<HostInfo> {
        let version = self
            .version
            .get_or_init(|| host::qemu_version(&self.opts.binary, &self.rt.root));
        let (total_kib, free_kib) = host::meminfo();
        Ok(HostInfo {
            hostname: nix::unistd::gethostname()
                .map(|h| h.to_string_lossy().into_owned())
                .unwrap_or_else(|_| "localhost".into()),
            backend: BackendKind::Qemu,
            version: format!("QEMU {version}"),
            accel: Some(self.accel.clone()),
            cpus: std::thread::available_parallelism()
                .map(|n| u32::try_from(n.get()).unwrap_or(1))
                .unwrap_or(1),
            total_kib,
            free_kib,
        })
    }

    fn list_domains(&self) -> BackendResult<Vec<DomainInfo>> {
        let mut out = Vec::new();
        for domid in self.rt.domids() {
            let Ok(meta) = self.rt.load(domid) else {
                continue;
            };
            if meta.phase == Phase::Launched && !self.qemu_alive(&meta, &self.rt.dir(domid)) {
                // Killed behind domus's back: gone, as on Xen.
                self.forget(&meta);
                continue;
            }
            out.push(self.info(&meta)?);
        }
        Ok(out)
    }

    fn domain_info(&self, domid: DomId) -> BackendResult<DomainInfo> {
        let meta = self.rt.load(domid)?;
        if meta.phase == Phase::Launched && !self.qemu_alive(&meta, &self.rt.dir(domid)) {
            self.forget(&meta);
            return Err(BackendError::NoSuchDomain(domid));
        }
        self.info(&meta)
    }

    fn create_domain(&self, spec: &CreateSpec) -> BackendResult<DomId> {
        // Names are unique among domains; the records say, no QMP needed.
        if let Some(d) = self.rt.all().iter().find(|d| d.name == spec.name) {
            return Err(BackendError::Invalid(format!(
                "a domain named {} already exists (id {})",
                spec.name, d.domid
            )));
        }
        let domid = self.rt.allocate_domid(spec.min_domid)?;
        let meta = DomainMeta {
            domid,
            name: spec.name.clone(),
            uuid: spec.uuid.unwrap_or_else(uuid::Uuid::new_v4),
            phase: Phase::Building,
            memory_kib: spec.memory_kib,
            max_memory_kib: spec.memory_kib,
            vcpus: spec.vcpus.max(1),
            accel: self.accel.clone(),
            created_ns: self.opts.clock.now_ns(),
            image: None,
            devices: Vec::new(),
            qemu_pid: None,
            vcpu_threads: Vec::new(),
            cpu_weight: None,
            pins: Default::default(),
            next_device: 0,
            run_state: None,
            reboot_requested: false,
            console_log: None,
            builder: meta::this_builder(),
            vcpus_online: spec.vcpus_online.filter(|n| *n >= 1 && *n < spec.vcpus),
        };
        self.rt.create(&meta)?;
        Ok(domid)
    }

    fn set_max_memory(&self, domid: DomId, kib: u64) -> BackendResult<()> {
        self.rt.update(domid, |m| {
            if m.phase == Phase::Launched && kib > m.max_memory_kib {
                return Err(BackendError::UnsupportedFeature {
                    backend: BackendKind::Qemu,
                    what: "raising maxmem of a running domain".into(),
                    why: "QEMU's memory size is fixed at start".into(),
                });
            }
            m.max_memory_kib = kib.max(m.memory_kib);
            Ok(())
        })
    }

    fn set_vcpus(&self, domid: DomId, vcpus: u32) -> BackendResult<()> {
        self.rt.update(domid, |m| {
            if m.phase == Phase::Launched && vcpus != m.vcpus {
                return Err(BackendError::UnsupportedFeature {
                    backend: BackendKind::Qemu,
                    what: "changing the vCPU count of a running domain".into(),
                    why: "QEMU's -smp is fixed at start".into(),
                });
            }
            m.vcpus = vcpus.max(1);
            Ok(())
        })
    }

    fn pin_vcpu(&self, domid: DomId, vcpu: u32, cpu: u32) -> BackendResult<()> {
        let meta = self.rt.update(domid, |m| {
            m.pins.insert(vcpu, cpu);
            Ok(m.clone())
        })?;
        // Pin the vCPU's host thread, as Xen pins a vCPU to a pCPU.
        if let Some(tid) = meta.vcpu_threads.get(vcpu as usize) {
            let mut set = nix::sched::CpuSet::new();
            set.set(cpu as usize)
                .map_err(|e| BackendError::Invalid(format!("cpu {cpu}: {e}")))?;
            nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(*tid), &set).map_err(|e| {
                BackendError::io(format!("pinning vCPU {vcpu} to CPU {cpu}"), e.into())
            })?;
        }
        Ok(())
    }

    fn set_cpu_weight(&self, domid: DomId, weight: u32) -> BackendResult<()> {
        // Recorded; QEMU threads are scheduled by the host kernel.
        self.rt.update(domid, |m| {
            m.cpu_weight = Some(weight);
            Ok(())
        })
    }

    fn build_image(&self, domid: DomId, image: &BootImage) -> BackendResult<()> {
        if image.ostype == "plan9" {
            return Err(BackendError::UnsupportedFeature {
                backend: BackendKind::Qemu,
                what: "plan9 images".into(),
                why: "QEMU boots Linux kernels and disks".into(),
            });
        }
        if let Some(b) = &image.bootloader {
            return Err(BackendError::UnsupportedFeature {
                backend: BackendKind::Qemu,
                what: format!("the PV bootloader {b}"),
                why: "a bootloader such as pygrub runs in Xen's toolstack; give the domain a kernel, or make it hvm and boot it from its disk".into(),
            });
        }
        Self::check_boot_files(image)?;
        let _lock = self.rt.lock(domid)?;
        let mut meta = self.rt.load_unlocked(domid)?;
        if meta.phase != Phase::Building {
            return Err(BackendError::BadState {
                domid,
                state: "already built".into(),
                call: CallKind::BuildImage,
            });
        }
        meta.image = Some(image.clone());
        self.rt.store_unlocked(&meta)?;
        drop(_lock);
        self.launch(&mut meta, image, false)
    }

    fn start_device_model(&self, _domid: DomId, _image: &BootImage) -> BackendResult<()> {
        // QEMU is the device model; it runs from build_image on.
        Ok(())
    }

    fn pause(&self, domid: DomId) -> BackendResult<()> {
        self.launched(domid, CallKind::Pause)?;
        self.exec(domid, "stop", json!({}))?;
        self.set_run_state(domid, RunState::Paused)
    }

    fn unpause(&self, domid: DomId) -> BackendResult<()> {
        self.launched(domid, CallKind::Unpause)?;
        self.exec(domid, "cont", json!({}))?;
        self.set_run_state(domid, RunState::Running)
    }

    fn shutdown(&self, domid: DomId, reason: ShutdownReason) -> BackendResult<()> {
        self.launched(domid, CallKind::Shutdown)?;
        match reason {
            // ACPI power button: the guest powers off if it listens.
            ShutdownReason::Poweroff => self.exec(domid, "system_powerdown", json!({})).map(drop),
            // Graceful, as `xl reboot` asks a PV guest: the ACPI power
            // button with a note that the operator asked for a reboot, so
            // the guest's clean poweroff counts as reason reboot and
            // on_reboot applies. (`system_reset` would pull the plug.)
            ShutdownReason::Reboot => {
                self.rt.update(domid, |m| {
                    m.reboot_requested = true;
                    Ok(())
                })?;
                self.exec(domid, "system_powerdown", json!({})).map(drop)
            }
            other => Err(BackendError::UnsupportedFeature {
                backend: BackendKind::Qemu,
                what: format!("shutdown with reason {other}"),
                why: "QEMU guests can be powered off or reset; use save to suspend".into(),
            }),
        }
    }

    fn destroy(&self, domid: DomId) -> BackendResult<()> {
        let meta = self.rt.load(domid)?;
        let dir = self.rt.dir(domid);
        self.kill(&meta);
        // The supervisor exits with QEMU; make sure of it, unless it is
        // this very process applying a restart policy.
        if let Some(pid) = supervisor::running(&dir).filter(|p| *p > 1)
            && pid != std::process::id() as i32
            && self.opts.supervisor.is_some()
        {
            host::signal(pid, nix::sys::signal::Signal::SIGTERM);
        }
        self.forget(&meta);
        Ok(())
    }

    fn rename(&self, domid: DomId, name: &str) -> BackendResult<()> {
        self.rt.update(domid, |m| {
            m.name = name.to_string();
            Ok(())
        })
    }

    fn attach_device(&self, domid: DomId, device: &DeviceSpec) -> BackendResult<()> {
        let meta = self.launched(domid, CallKind::AttachDevice)?;
        let _lock = self.rt.lock(domid)?;
        let mut meta = self.rt.load_unlocked(meta.domid)?;
        let mut qmp = self.qmp(domid)?;
        devices::attach(&mut qmp, &mut meta, device)?;
        self.rt.store_unlocked(&meta)
    }

    fn detach_device(&self, domid: DomId, device: &DeviceRef) -> BackendResult<DeviceSpec> {
        let info = self.domain_info(domid)?;
        let _lock = self.rt.lock(domid)?;
        let mut meta = self.rt.load_unlocked(domid)?;
        let pos = devices::find(&meta, device).ok_or_else(|| {
            BackendError::Invalid(format!("domain {domid} has no device {device}"))
        })?;
        let plugged = meta.devices[pos].clone();
        let mut qmp = self.qmp(domid)?;
        if info.is_active() {
            devices::detach(&mut qmp, &plugged)?;
        } else {
            // A paused or stopped guest cannot answer the unplug request;
            // QEMU keeps the device until it does. Take the whole device
            // away only when the guest will never run again.
            if !info.flags.shutdown {
                return Err(BackendError::Invalid(format!(
                    "cannot detach {} from {} while it is {}: the guest must run to release the device; unpause it first",
                    plugged.spec,
                    info.name,
                    info.state_word()
                )));
            }
            devices::release_backend(&mut qmp, &plugged);
        }
        meta.devices.remove(pos);
        self.rt.store_unlocked(&meta)?;
        Ok(plugged.spec)
    }

    fn set_memory_target(&self, domid: DomId, kib: u64) -> BackendResult<()> {
        let meta = self.launched(domid, CallKind::SetMemoryTarget)?;
        if kib > meta.max_memory_kib {
            return Err(BackendError::Invalid(format!(
                "memory target {} MiB is above the domain's maximum {} MiB",
                kib / 1024,
                meta.max_memory_kib / 1024
            )));
        }
        self.exec(domid, "balloon", json!({ "value": kib * 1024 }))?;
        self.rt.update(domid, |m| {
            m.memory_kib = kib;
            Ok(())
        })
    }

    fn open_console(&self, domid: DomId) -> BackendResult<Box<dyn ConsoleStream>> {
        self.launched(domid, CallKind::OpenConsole)?;
        let meta = self.rt.load(domid)?;
        let dir = self.rt.dir(domid);
        Ok(Box::new(console::QemuConsole::open(
            &dir,
            domid,
            &meta.console_log(&dir),
        )?))
    }

    fn save(&self, domid: DomId, path: &Path, meta: &[u8]) -> BackendResult<()> {
        let m = self.launched(domid, CallKind::Save)?;
        save::save(self, &m, path, meta)
    }

    fn restore(&self, path: &Path) -> BackendResult<(DomId, Vec<u8>)> {
        save::restore(self, path)
    }

    fn core_dump(&self, domid: DomId, path: &Path) -> BackendResult<()> {
        self.launched(domid, CallKind::CoreDump)?;
        let mut q = self.qmp(domid)?;
        q.execute(
            "dump-guest-memory",
            json!({ "paging": false, "protocol": format!("file:{}", path.display()) }),
            Duration::from_secs(120),
        )
        .map_err(qmp_err(domid))
        .map(drop)
    }

    /// One QMP round trip per running domain: read when the I/O columns
    /// are shown, not on every tick.
    fn io_stats(&self) -> BackendResult<Vec<crate::backend::IoCounters>> {
        let mut out = Vec::new();
        for domid in self.rt.domids() {
            let Ok(meta) = self.rt.load(domid) else {
                continue;
            };
            if meta.phase != Phase::Launched {
                continue;
            }
            // Briefly: a monitor busy with an operation leaves this read
            // out (the block columns show "-") rather than hold the view.
            let quick = Duration::from_millis(300);
            let blockstats = Qmp::connect(&self.rt.dir(domid).qmp(), quick)
                .ok()
                .and_then(|mut q| q.execute("query-blockstats", json!({}), quick).ok());
            out.push(io::counters(&meta, blockstats.as_ref()));
        }
        Ok(out)
    }

    fn stats(&self) -> BackendResult<Vec<crate::backend::DomainStats>> {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        let ids = self.rt.domids();
        seen.retain(|d, _| ids.binary_search(d).is_ok()); // ids are sorted
        let mut out = Vec::with_capacity(ids.len());
        for domid in ids {
            let Some(stamp) = self.rt.stamp(domid) else {
                continue;
            };
            let meta = match seen.get(&domid) {
                Some((s, m)) if *s == stamp => Arc::clone(m),
                _ => match self.rt.load(domid) {
                    Ok(m) => {
                        let m = Arc::new(m);
                        seen.insert(domid, (stamp, Arc::clone(&m)));
                        m
                    }
                    Err(_) => continue,
                },
            };
            let mut flags = StateFlags::default();
            let mut reason = None;
            let mut cpu = 0;
            let mut any_running = false;
            let mut alive = meta.phase == Phase::Building;
            if let Some(pid) = meta.qemu_pid {
                for tid in &meta.vcpu_threads {
                    if let Some((ns, running)) = host::thread_time(pid, *tid) {
                        cpu += ns;
                        any_running |= running;
                        alive = true;
                    }
                }
            }
            if !alive {
                // Gone, or not what the record says: a whole refresh
                // (which looks properly) follows from the missing row.
                continue;
            }
            match meta.run_state {
                Some(RunState::Running) | None if meta.phase == Phase::Launched => {
                    flags.running = any_running;
                    flags.blocked = !any_running;
                }
                Some(RunState::Shutdown { reason: r }) => {
                    flags.shutdown = true;
                    reason = Some(r);
                }
                _ => flags.paused = true,
            }
            out.push(crate::backend::DomainStats {
                domid,
                flags,
                shutdown_reason: reason,
                cpu_time_ns: cpu,
                memory_kib: meta.memory_kib,
            });
        }
        Ok(out)
    }

    fn vanish_cause(&self) -> String {
        "its QEMU process is gone (killed, or it failed)".into()
    }

    fn shut_down_domains(&self) -> BackendResult<Vec<DomainInfo>> {
        // The recorded run states say which; only those are looked at.
        let mut out = Vec::new();
        for meta in self.rt.all() {
            if matches!(meta.run_state, Some(RunState::Shutdown { .. }) | None)
                && meta.phase == Phase::Launched
                && let Ok(info) = self.domain_info(meta.domid)
                && info.flags.shutdown
            {
                out.push(info);
            }
        }
        Ok(out)
    }

    fn lookup(&self, name: &str) -> BackendResult<Option<DomainInfo>> {
        // The records name the domains: no QMP needed to find one.
        match self.rt.all().into_iter().find(|m| m.name == name) {
            Some(m) => match self.domain_info(m.domid) {
                Ok(info) => Ok(Some(info)),
                Err(BackendError::NoSuchDomain(_)) => Ok(None),
                Err(e) => Err(e),
            },
            None => Ok(None),
        }
    }

    fn console_log(&self, domid: DomId) -> BackendResult<Option<PathBuf>> {
        let meta = self.rt.load(domid)?;
        Ok(Some(meta.console_log(&self.rt.dir(domid))))
    }

    fn boot_image(&self, domid: DomId) -> BackendResult<Option<BootImage>> {
        Ok(self.rt.load(domid)?.image)
    }

    fn supervised(&self) -> bool {
        self.opts.supervisor.is_some()
    }

    fn supervise(&self, domid: DomId, sink: &mut dyn FnMut(Notice)) -> BackendResult<()> {
        supervisor::watch(&self.rt, domid, sink)
    }

    fn startup_notes(&self) -> Vec<String> {
        self.notes.lock().map(|n| n.clone()).unwrap_or_default()
    }
}

mod save;
