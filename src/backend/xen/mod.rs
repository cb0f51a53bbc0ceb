//! The Xen backend, for operators at a dom0: domains are Xen's own, driven
//! through the `xl` toolstack CLI (see [`xl`] for why), with every call
//! under a timeout. State, memory and CPU time come from `xl list -v` and
//! `xl vcpu-list`, exactly as `xl` reports them. domus keeps a small record
//! per domain it built (maximum memory and the devices it attached) in the
//! state store, since `xl`'s listings do not give those back cheaply.

mod cfg;
mod console;
mod io;
mod watch;
mod xl;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use self::xl::ListRow;
use super::supervisor::Slot;
use super::{
    BackendError, BackendKind, BackendResult, BootImage, Capabilities, Capability, ConsoleStream,
    CreateSpec, DomId, DomainInfo, HostInfo, Hypervisor, Notice, ShutdownReason, ToolFailure,
};
use crate::clock::Clock;
use crate::config::{DeviceRef, DeviceSpec};

const QUICK: Duration = Duration::from_secs(15);
/// `xl create` of a PV guest takes 12–15 s under TCG.
const SLOW: Duration = Duration::from_secs(180);

/// Whether this host is a Xen dom0 (xenfs mounted, or the privcmd device).
pub fn present() -> bool {
    Path::new("/proc/xen/capabilities").exists() || Path::new("/dev/xen/privcmd").exists()
}

pub struct XenOptions {
    /// `xl` (on Debian, /usr/sbin/xl).
    pub xl: PathBuf,
    pub xenstore_read: PathBuf,
    /// Tells a supervisor when a domain shut down or went, instead of
    /// polling `xl list`.
    pub xenstore_watch: PathBuf,
    /// `STATE/xen/`: supervisor pidfiles and locks (the records of the
    /// domains domus built are in the state store).
    pub state_dir: PathBuf,
    /// xenconsoled's guest logs (`--log=guest --log-dir=…`).
    pub console_log_dir: PathBuf,
    pub clock: Arc<dyn Clock>,
    /// The `domus` executable that supervises each domain it builds
    /// (`domus supervise`): policies apply with no other domus running.
    pub supervisor: Option<PathBuf>,
    /// Start missing supervisors for the domains domus built, on open.
    pub adopt: bool,
    /// domus's state directory, for the supervisors' engines.
    pub domus_state_dir: PathBuf,
}

impl XenOptions {
    pub fn new(state_dir: &Path, clock: Arc<dyn Clock>) -> Self {
        XenOptions {
            xl: PathBuf::from("xl"),
            xenstore_read: PathBuf::from("xenstore-read"),
            xenstore_watch: PathBuf::from("xenstore-watch"),
            state_dir: state_dir.join("xen"),
            console_log_dir: PathBuf::from("/var/log/xen/console"),
            clock,
            supervisor: None,
            adopt: false,
            domus_state_dir: state_dir.to_path_buf(),
        }
    }
}

/// What domus remembers about a domain it built.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Record {
    uuid: uuid::Uuid,
    name: String,
    max_memory_kib: u64,
    devices: Vec<DeviceSpec>,
    created_ns: u64,
}

type Records = BTreeMap<DomId, Record>;

pub struct XenHypervisor {
    opts: XenOptions,
    /// domus's small records of the domains it built, in the state store
    /// (a namespace of its own beside the engine's records).
    store: crate::store::Store,
}

/// The state store's namespace for them.
const RECORDS: &str = "xen-domains";

fn store_err(e: crate::store::StoreError) -> BackendError {
    BackendError::data("domus's Xen records", e)
}

impl XenHypervisor {
    pub fn open(opts: XenOptions) -> BackendResult<XenHypervisor> {
        std::fs::create_dir_all(&opts.state_dir)
            .map_err(|e| BackendError::io(format!("creating {}", opts.state_dir.display()), e))?;
        let store = crate::store::Store::open(&opts.domus_state_dir, "xen").map_err(store_err)?;
        let hv = XenHypervisor { opts, store };
        hv.import_json_records()?;
        // A dom0 without a working toolstack is an error to report now,
        // not a blank table later.
        hv.xl(&["info"], QUICK)?;
        if hv.opts.adopt {
            hv.adopt();
        }
        Ok(hv)
    }

    /// Give every domain domus built a supervisor again (after a reboot of
    /// dom0's userland, or one that died).
    fn adopt(&self) {
        let Ok(live) = self.rows(None) else {
            return;
        };
        let Ok(recs) = self.load() else {
            return;
        };
        for (domid, rec) in recs {
            let alive = live.iter().any(|r| r.domid == domid && r.uuid == rec.uuid);
            if alive
                && self.slot(domid).running().is_none()
                && let Err(e) = self.start_supervisor(domid)
            {
                tracing::warn!(domid, error = %e, "restarting a supervisor");
            }
        }
    }

    fn slot(&self, domid: DomId) -> Slot {
        let dir = self.opts.state_dir.join("supervise");
        Slot {
            lock: dir.join(format!("{domid}.lock")),
            pid: dir.join(format!("{domid}.pid")),
        }
    }

    fn start_supervisor(&self, domid: DomId) -> BackendResult<()> {
        let Some(exe) = &self.opts.supervisor else {
            return Ok(());
        };
        let args = vec![
            "--backend".to_string(),
            "xen".into(),
            "--state-dir".into(),
            self.opts.domus_state_dir.display().to_string(),
        ];
        self.slot(domid).spawn(domid, exe, &args)
    }

    /// The supervisor's loop (`domus supervise` on Xen): follow the domain
    /// and report what happens to it — paused, resumed, shut down (with
    /// xl's reason), gone — until it is gone.
    fn watch(&self, domid: DomId, sink: &mut dyn FnMut(Notice)) -> BackendResult<()> {
        let slot = self.slot(domid);
        let Some(_lock) = slot.try_lock() else {
            return Ok(());
        };
        slot.mark_ready();
        tracing::info!(domid, pid = std::process::id(), "supervisor: watching");
        let mut last: Option<(bool, bool)> = None;
        let mut seen: Option<(uuid::Uuid, String)> = None;
        let mut xs: Option<watch::XsWatch> = None;
        // A domain is gone once xl says so twice in a row: one odd answer
        // from xl on a busy dom0 must not leave a domain unsupervised.
        let mut gone = 0;
        while gone < 2 {
            match self.rows(Some(domid)) {
                Ok(rows) => match rows.into_iter().find(|r| r.domid == domid) {
                    Some(r) => {
                        gone = 0;
                        seen = Some((r.uuid, r.name.clone()));
                        let now = (r.flags.paused, r.flags.shutdown);
                        if let Some((paused, down)) = last {
                            if now.1 && !down {
                                sink(Notice::ShutDown {
                                    reason: r.reason.unwrap_or(ShutdownReason::Poweroff),
                                    by_guest: true,
                                });
                            } else if !now.1 && now.0 != paused {
                                sink(if now.0 {
                                    Notice::Paused
                                } else {
                                    Notice::Resumed
                                });
                            }
                        } else if now.1 {
                            // Shut down before the supervisor started.
                            sink(Notice::ShutDown {
                                reason: r.reason.unwrap_or(ShutdownReason::Poweroff),
                                by_guest: true,
                            });
                        }
                        last = Some(now);
                    }
                    None => gone += 1,
                },
                Err(BackendError::NoSuchDomain(_)) => gone += 1,
                Err(e) => tracing::warn!(domid, error = %e, "supervisor: xl list"),
            }
            if gone == 1 {
                // One odd answer: look again soon rather than at the next
                // xenstore event.
                std::thread::sleep(Duration::from_secs(1));
            } else if gone == 0 {
                self.wait_for_change(&mut xs);
            }
        }
        tracing::info!(domid, "supervisor: the domain is gone; exiting");
        if let Some((uuid, name)) = seen {
            let archive =
                crate::console::archive::Archive::in_state_dir(&self.opts.domus_state_dir);
            // Destroyed behind domus's back: the log is all that is left.
            if !archive.path(uuid, domid).exists()
                && let Err(e) = archive.keep(uuid, domid, &self.guest_log(&name))
            {
                tracing::warn!(domid, error = %e, "keeping the console log");
            }
        }
        sink(Notice::Gone {
            cause: "Xen no longer has it (destroyed outside domus, or it died)".into(),
            requested: false,
        });
        let _ = std::fs::remove_file(&slot.pid);
        Ok(())
    }

    /// Wait until something may have changed for the domain: xenstore's
    /// `@releaseDomain` fires when any domain shuts down or goes. A slow
    /// look now and then still catches what xenstore does not announce (a
    /// pause by another tool); without `xenstore-watch`, `xl list` is
    /// polled once a second.
    fn wait_for_change(&self, watch: &mut Option<watch::XsWatch>) {
        if watch.as_mut().is_none_or(|w| !w.alive()) {
            *watch = watch::XsWatch::spawn(&self.opts.xenstore_watch, "@releaseDomain");
        }
        match watch {
            Some(w) => w.next(Duration::from_secs(30)),
            None => std::thread::sleep(Duration::from_secs(1)),
        }
    }

    /// An attach whose hotplug script failed is tried again, up to twice.
    /// Xen's block and vif-bridge scripts fail now and then on a busy dom0
    /// ("Writing … to xenstore failed", even a segfault in the shell) with
    /// nothing wrong in the request; `cleanup` clears what a failed attempt
    /// left behind. Every other failure is reported at once.
    ///
    /// `xl` itself crashing mid-attach (a dom0 under TCG does that now and
    /// then) is not repeated blindly: `present` asks Xen whether the device
    /// is there (the query `xl …-list DOMID` and a token of its line), and
    /// only a device that is not is attached again.
    fn attach_retrying(
        &self,
        domid: DomId,
        args: &[&str],
        cleanup: Option<&[&str]>,
        present: Option<(&[&str], &str)>,
    ) -> BackendResult<()> {
        let mut tries = 0;
        loop {
            let e = match self.xl(args, SLOW) {
                Ok(_) => return Ok(()),
                Err(e) => e,
            };
            let failure = match &e {
                BackendError::Tool { failure, .. } => *failure,
                _ => return Err(e),
            };
            let again = match failure {
                ToolFailure::HotplugScript => true,
                ToolFailure::Crashed | ToolFailure::TimedOut => match present {
                    Some((query, token)) => {
                        let listed = self.xl(query, QUICK)?;
                        if listed.split_whitespace().any(|w| w == token) {
                            tracing::warn!(domid, error = %e, "{} did not run through, but the device is there", args[0]);
                            return Ok(());
                        }
                        true
                    }
                    None => false,
                },
                _ => false,
            };
            if !again || tries >= 2 {
                return Err(e);
            }
            tries += 1;
            tracing::warn!(domid, error = %e, "{} failed; cleaning up and trying again", args[0]);
            if let Some(c) = cleanup {
                let _ = self.xl(c, SLOW);
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    }

    fn xl(&self, args: &[&str], timeout: Duration) -> BackendResult<String> {
        xl::run(&self.opts.xl, args, timeout)
    }

    fn read_records(tx: &crate::store::Tx<'_>) -> crate::store::StoreResult<Records> {
        Ok(tx
            .kv_all(RECORDS)?
            .into_iter()
            .filter_map(|(k, v)| Some((k.parse().ok()?, serde_json::from_str(&v).ok()?)))
            .collect())
    }

    fn load(&self) -> BackendResult<Records> {
        self.store.read(Self::read_records).map_err(store_err)
    }

    /// Change the records in one transaction; only what changed is written
    /// (every list prunes, and most find nothing to prune).
    fn update<T>(&self, f: impl FnOnce(&mut Records) -> T) -> BackendResult<T> {
        self.store
            .write(|tx| {
                let before = Self::read_records(tx)?;
                let mut r = before.clone();
                let out = f(&mut r);
                for (domid, rec) in &r {
                    if before.get(domid) == Some(rec) {
                        continue;
                    }
                    let json = serde_json::to_string(rec).map_err(|e| {
                        crate::store::StoreError::Corrupt {
                            what: "a Xen record",
                            message: e.to_string(),
                        }
                    })?;
                    tx.kv_set(RECORDS, &domid.to_string(), &json)?;
                }
                for domid in before.keys().filter(|d| !r.contains_key(d)) {
                    tx.kv_delete(RECORDS, &domid.to_string())?;
                }
                Ok(out)
            })
            .map_err(store_err)
    }

    /// `STATE/xen/domains.json` of an older domus, brought into the store
    /// once.
    fn import_json_records(&self) -> BackendResult<()> {
        let old = self.opts.state_dir.join("domains.json");
        let Ok(bytes) = crate::fsx::read_bounded(&old, 16 << 20) else {
            return Ok(());
        };
        let recs: Records = serde_json::from_slice(&bytes).unwrap_or_default();
        self.update(|r| r.extend(recs))?;
        let _ = std::fs::rename(&old, old.with_extension("json.migrated"));
        Ok(())
    }

    fn rows(&self, which: Option<DomId>) -> BackendResult<Vec<ListRow>> {
        let id = which.map(|d| d.to_string());
        let mut args = vec!["list", "-v"];
        if let Some(id) = &id {
            args.push(id);
        }
        // xl list can fail while another domain is being built or torn
        // down (it reads each domain's xenstore entries in turn): try again
        // briefly before reporting.
        let mut result = self.xl(&args, QUICK);
        for _ in 0..3 {
            match &result {
                Err(e) if which.is_none() => {
                    tracing::warn!(error = %e, "xl list failed; retrying");
                    std::thread::sleep(Duration::from_millis(300));
                    result = self.xl(&args, QUICK);
                }
                _ => break,
            }
        }
        match (result, which) {
            (Ok(text), _) => Ok(xl::parse_list(&text)),
            // What xl says for a domain that is gone.
            (
                Err(BackendError::Tool {
                    failure: ToolFailure::NoSuchDomain,
                    ..
                }),
                Some(domid),
            ) => Err(BackendError::NoSuchDomain(domid)),
            (Err(e), _) => Err(e),
        }
    }

    fn to_info(row: ListRow, vcpus: Option<Vec<u64>>, rec: Option<&Record>) -> DomainInfo {
        let rec = rec.filter(|r| r.uuid == row.uuid);
        let memory_kib = row.memory_mib.saturating_mul(1024);
        DomainInfo {
            domid: row.domid,
            name: row.name,
            uuid: row.uuid,
            memory_kib,
            max_memory_kib: rec.map_or(memory_kib, |r| r.max_memory_kib.max(memory_kib)),
            vcpus: row.vcpus,
            flags: row.flags,
            shutdown_reason: row.reason,
            cpu_time_ns: row.cpu_time_ns,
            vcpu_time_ns: vcpus.unwrap_or_default(),
            devices: rec.map(|r| r.devices.clone()).unwrap_or_default(),
            start_ns: rec.map(|r| r.created_ns),
            notes: Vec::new(),
        }
    }

    /// xenconsoled's log of a guest, when its guest logging is on.
    fn guest_log(&self, name: &str) -> PathBuf {
        self.opts.console_log_dir.join(format!("guest-{name}.log"))
    }

    /// Copy a domain's console log into domus's archive before it goes
    /// (xenconsoled reuses the file for the next guest of that name).
    fn keep_console_log(&self, domid: DomId) {
        let Ok(Some(row)) = self
            .rows(Some(domid))
            .map(|r| r.into_iter().find(|r| r.domid == domid))
        else {
            return;
        };
        let archive = crate::console::archive::Archive::in_state_dir(&self.opts.domus_state_dir);
        if let Err(e) = archive.keep(row.uuid, domid, &self.guest_log(&row.name)) {
            tracing::warn!(domid, error = %e, "keeping the console log");
        }
    }

    fn cfg_path(&self, name: &str) -> PathBuf {
        self.opts.state_dir.join("cfg").join(format!("{name}.cfg"))
    }
}

fn unsupported(what: &str, why: &str) -> BackendError {
    BackendError::UnsupportedFeature {
        backend: BackendKind::Xen,
        what: what.into(),
        why: why.into(),
    }
}

impl Hypervisor for XenHypervisor {
    fn kind(&self) -> BackendKind {
        BackendKind::Xen
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
            Bootloader,
        ])
    }

    /// Read in Domain-0's sysfs, as xentop does: no hypercall, no `xl`.
    fn io_stats(&self) -> BackendResult<Vec<crate::backend::IoCounters>> {
        Ok(io::from_sysfs(
            std::path::Path::new("/sys/bus/xen-backend/devices"),
            std::path::Path::new("/sys/class/net"),
        ))
    }

    fn supervised(&self) -> bool {
        self.opts.supervisor.is_some()
    }

    fn supervise(&self, domid: DomId, sink: &mut dyn FnMut(Notice)) -> BackendResult<()> {
        self.watch(domid, sink)
    }

    fn console_log(&self, domid: DomId) -> BackendResult<Option<PathBuf>> {
        let log = self.guest_log(&self.domain_info(domid)?.name);
        Ok(log.exists().then_some(log))
    }

    fn vanish_cause(&self) -> String {
        "Xen no longer has it (destroyed outside domus, or it died)".into()
    }

    fn built_by_domus(&self, info: &DomainInfo) -> bool {
        // domus writes an xl.cfg for every domain it builds.
        info.domid != 0 && self.cfg_path(&info.name).exists()
    }

    fn host_info(&self) -> BackendResult<HostInfo> {
        let info = xl::parse_info(&self.xl(&["info"], QUICK)?);
        let num = |k: &str| info.get(k).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        let version = format!(
            "Xen {}.{}{}",
            info.get("xen_major").map_or("?", String::as_str),
            info.get("xen_minor").map_or("?", String::as_str),
            info.get("xen_extra").map_or("", String::as_str),
        );
        Ok(HostInfo {
            hostname: info.get("host").cloned().unwrap_or_else(|| "dom0".into()),
            backend: BackendKind::Xen,
            version,
            accel: None,
            cpus: u32::try_from(num("nr_cpus")).unwrap_or(1),
            total_kib: num("total_memory").saturating_mul(1024),
            free_kib: num("free_memory").saturating_mul(1024),
        })
    }

    fn list_domains(&self) -> BackendResult<Vec<DomainInfo>> {
        let listed_at = self.opts.clock.now_ns();
        let rows = self.rows(None)?;
        let mut vcpus = self
            .xl(&["vcpu-list"], QUICK)
            .map(|t| xl::parse_vcpu_list(&t))
            .unwrap_or_default();
        let live: Vec<DomId> = rows.iter().map(|r| r.domid).collect();
        // Forget records of domains Xen no longer has (a record written
        // since the listing began is another process's new domain).
        let recs = self.update(|r| {
            r.retain(|d, rec| live.contains(d) || rec.created_ns >= listed_at);
            r.clone()
        })?;
        Ok(rows
            .into_iter()
            .map(|row| {
                let v = vcpus.remove(&row.domid);
                let rec = recs.get(&row.domid);
                Self::to_info(row, v, rec)
            })
            .collect())
    }

    fn domain_info(&self, domid: DomId) -> BackendResult<DomainInfo> {
        let row = self
            .rows(Some(domid))?
            .into_iter()
            .find(|r| r.domid == domid)
            .ok_or(BackendError::NoSuchDomain(domid))?;
        let id = domid.to_string();
        let v = self
            .xl(&["vcpu-list", &id], QUICK)
            .ok()
            .and_then(|t| xl::parse_vcpu_list(&t).remove(&domid));
        let recs = self.load()?;
        Ok(Self::to_info(row, v, recs.get(&domid)))
    }

    fn create_domain(&self, spec: &CreateSpec) -> BackendResult<DomId> {
        let image = spec.image.as_ref().ok_or_else(|| {
            BackendError::Invalid(
                "the xen backend builds domain and image in one step: no boot image given".into(),
            )
        })?;
        let text = cfg::xl_cfg(spec, spec.memory_kib, image)?;
        let path = self.cfg_path(&spec.name);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| BackendError::io(format!("creating {}", dir.display()), e))?;
        }
        crate::fsx::write_atomic(&path, text.as_bytes())
            .map_err(|e| BackendError::io(format!("writing {}", path.display()), e.into()))?;
        let p = path.display().to_string();
        // Paused (-p), and no xl process left waiting on it (-e): domus's
        // engine handles what happens when it stops.
        self.xl(&["create", "-p", "-e", &p], SLOW)?;
        let domid: DomId = self
            .xl(&["domid", &spec.name], QUICK)?
            .trim()
            .parse()
            .map_err(|_| BackendError::Tool {
                command: format!("xl domid {}", spec.name),
                failure: crate::backend::ToolFailure::Refused,
                message: "it printed no domain id".into(),
            })?;
        let uuid = self
            .rows(Some(domid))?
            .first()
            .map(|r| r.uuid)
            .unwrap_or_default();
        let now = self.opts.clock.now_ns();
        self.update(|r| {
            r.insert(
                domid,
                Record {
                    uuid,
                    name: spec.name.clone(),
                    max_memory_kib: spec.memory_kib,
                    devices: Vec::new(),
                    created_ns: now,
                },
            );
        })?;
        // A domain without a supervisor still works: any domus applies its
        // policies on refresh; failing here would leave it half-built.
        if let Err(e) = self.start_supervisor(domid) {
            tracing::warn!(domid, error = %e, "starting the supervisor");
        }
        Ok(domid)
    }

    fn set_max_memory(&self, domid: DomId, kib: u64) -> BackendResult<()> {
        self.xl(&["mem-max", &domid.to_string(), &format!("{kib}k")], QUICK)?;
        self.update(|r| {
            if let Some(rec) = r.get_mut(&domid) {
                rec.max_memory_kib = kib;
            }
        })
    }

    fn set_vcpus(&self, domid: DomId, vcpus: u32) -> BackendResult<()> {
        self.xl(&["vcpu-set", &domid.to_string(), &vcpus.to_string()], QUICK)
            .map(drop)
    }

    fn pin_vcpu(&self, domid: DomId, vcpu: u32, cpu: u32) -> BackendResult<()> {
        self.xl(
            &[
                "vcpu-pin",
                &domid.to_string(),
                &vcpu.to_string(),
                &cpu.to_string(),
            ],
            QUICK,
        )
        .map(drop)
    }

    fn set_cpu_weight(&self, domid: DomId, weight: u32) -> BackendResult<()> {
        let (d, w) = (domid.to_string(), weight.to_string());
        // credit2 is Xen 4.17's default scheduler; credit the older one.
        self.xl(&["sched-credit2", "-d", &d, "-w", &w], QUICK)
            .or_else(|_| self.xl(&["sched-credit", "-d", &d, "-w", &w], QUICK))
            .map(drop)
    }

    fn build_image(&self, _domid: DomId, image: &BootImage) -> BackendResult<()> {
        // xl create loaded the image with the domain.
        if image.ostype == "plan9" {
            return Err(unsupported(
                "plan9 images",
                "Xen builds linux (PV) and hvm guests",
            ));
        }
        Ok(())
    }

    fn start_device_model(&self, _domid: DomId, _image: &BootImage) -> BackendResult<()> {
        Ok(())
    }

    fn pause(&self, domid: DomId) -> BackendResult<()> {
        self.xl(&["pause", &domid.to_string()], QUICK).map(drop)
    }

    fn unpause(&self, domid: DomId) -> BackendResult<()> {
        self.xl(&["unpause", &domid.to_string()], QUICK).map(drop)
    }

    fn shutdown(&self, domid: DomId, reason: ShutdownReason) -> BackendResult<()> {
        let d = domid.to_string();
        match reason {
            ShutdownReason::Poweroff => self.xl(&["shutdown", "-F", &d], QUICK).map(drop),
            ShutdownReason::Reboot => self.xl(&["reboot", "-F", &d], QUICK).map(drop),
            other => Err(unsupported(
                &format!("shutdown with reason {other}"),
                "use domus save to suspend a Xen domain to a file",
            )),
        }
    }

    fn destroy(&self, domid: DomId) -> BackendResult<()> {
        self.keep_console_log(domid);
        if let Err(e) = self.xl(&["destroy", &domid.to_string()], SLOW) {
            if self.rows(Some(domid)).is_err() {
                return Err(BackendError::NoSuchDomain(domid));
            }
            return Err(e);
        }
        self.update(|r| {
            r.remove(&domid);
        })
    }

    fn rename(&self, domid: DomId, name: &str) -> BackendResult<()> {
        self.xl(&["rename", &domid.to_string(), name], QUICK)?;
        self.update(|r| {
            if let Some(rec) = r.get_mut(&domid) {
                rec.name = name.to_string();
            }
        })
    }

    fn attach_device(&self, domid: DomId, device: &DeviceSpec) -> BackendResult<()> {
        let d = domid.to_string();
        match device {
            DeviceSpec::Vbd(v) => {
                let path = Path::new(&v.uname.path);
                let mut magic = [0u8; 4];
                let mut f = std::fs::File::open(path).map_err(|e| {
                    BackendError::Invalid(format!(
                        "vbd {}: cannot open {}: {e}",
                        v.dev,
                        path.display()
                    ))
                })?;
                let qcow2 = std::io::Read::read(&mut f, &mut magic).is_ok_and(|n| n == 4)
                    && magic == *b"QFI\xfb";
                let spec = cfg::disk_spec(v, qcow2);
                // `xl block-list` names disks by their vdev number.
                let (major, minor) = crate::config::vdev_numbers(&v.dev);
                let vdev = (major * 256 + minor).to_string();
                self.attach_retrying(
                    domid,
                    &["block-attach", &d, &spec],
                    Some(&["block-detach", &d, &v.dev]),
                    Some((&["block-list", &d], &vdev)),
                )?;
            }
            DeviceSpec::Vif(v) => {
                let args = cfg::nic_args(v);
                let mut a: Vec<&str> = vec!["network-attach", &d];
                a.extend(args.iter().map(String::as_str));
                let mac = v.mac.map(|m| m.to_string());
                let cleanup = mac.as_deref().map(|m| ["network-detach", &d, m]);
                let query = ["network-list", d.as_str()];
                let present = mac.as_deref().map(|m| (&query[..], m));
                self.attach_retrying(domid, &a, cleanup.as_ref().map(|c| &c[..]), present)?;
            }
            DeviceSpec::Pci(p) => {
                let bdf = p.to_string();
                self.attach_retrying(
                    domid,
                    &["pci-attach", &d, &bdf],
                    None,
                    Some((&["pci-list", &d], &bdf)),
                )?;
            }
        }
        self.update(|r| {
            if let Some(rec) = r.get_mut(&domid) {
                rec.devices.push(device.clone());
            }
        })
    }

    fn detach_device(&self, domid: DomId, device: &DeviceRef) -> BackendResult<DeviceSpec> {
        let recs = self.load()?;
        let devices = recs
            .get(&domid)
            .map(|r| r.devices.clone())
            .unwrap_or_default();
        let pos = device.position_in(&devices).ok_or_else(|| {
            BackendError::Invalid(format!("domain {domid} has no device {device}"))
        })?;
        let spec = devices[pos].clone();
        let d = domid.to_string();
        match &spec {
            DeviceSpec::Vbd(v) => self.xl(&["block-detach", &d, &v.dev], SLOW)?,
            DeviceSpec::Vif(v) => {
                let mac = v.mac.map(|m| m.to_string()).ok_or_else(|| {
                    BackendError::Invalid("a vif without a MAC cannot be named to xl".into())
                })?;
                self.xl(&["network-detach", &d, &mac], SLOW)?
            }
            DeviceSpec::Pci(p) => self.xl(&["pci-detach", &d, &p.to_string()], SLOW)?,
        };
        // Found again: another process may have changed the list since.
        self.update(|r| {
            if let Some(rec) = r.get_mut(&domid)
                && let Some(i) = rec.devices.iter().position(|x| x == &spec)
            {
                rec.devices.remove(i);
            }
        })?;
        Ok(spec)
    }

    fn set_memory_target(&self, domid: DomId, kib: u64) -> BackendResult<()> {
        self.xl(&["mem-set", &domid.to_string(), &format!("{kib}k")], QUICK)
            .map(drop)
    }

    fn open_console(&self, domid: DomId) -> BackendResult<Box<dyn ConsoleStream>> {
        let key = format!("/local/domain/{domid}/console/tty");
        let tty = xl::run(&self.opts.xenstore_read, &[&key], QUICK)
            .map_err(|_| BackendError::Guest(format!("domain {domid} has no console pty")))?;
        let name = self.domain_info(domid)?.name;
        let log = self.guest_log(&name);
        let console = console::XenConsole::open(
            Path::new(tty.trim()),
            Some(&log).filter(|p| p.exists()).map(|p| p.as_path()),
        )?;
        Ok(Box::new(console))
    }

    fn save(&self, domid: DomId, path: &Path, meta: &[u8]) -> BackendResult<()> {
        let p = path.display().to_string();
        self.xl(&["save", &domid.to_string(), &p], SLOW)?;
        let rec = self.load()?.remove(&domid).unwrap_or_default();
        let side = SaveMeta {
            record: rec,
            meta: meta.to_vec(),
        };
        let json =
            serde_json::to_vec(&side).map_err(|e| BackendError::data("a save's metadata", e))?;
        let side_path = sidecar(path);
        crate::fsx::write_atomic(&side_path, &json)
            .map_err(|e| BackendError::io(format!("writing {}", side_path.display()), e.into()))?;
        self.update(|r| {
            r.remove(&domid);
        })
    }

    fn restore(&self, path: &Path) -> BackendResult<(DomId, Vec<u8>)> {
        let side: SaveMeta = std::fs::read(sidecar(path))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let before: Vec<DomId> = self.rows(None)?.iter().map(|r| r.domid).collect();
        self.xl(&["restore", "-p", "-e", &path.display().to_string()], SLOW)?;
        let row = self
            .rows(None)?
            .into_iter()
            // Names are unique on Xen, and the image keeps its domain's:
            // another process's new domain is not taken for this one.
            .find(|r| {
                !before.contains(&r.domid)
                    && (side.record.name.is_empty() || r.name == side.record.name)
            })
            .ok_or_else(|| BackendError::Tool {
                command: "xl restore".into(),
                failure: crate::backend::ToolFailure::Refused,
                message: "it created no domain".into(),
            })?;
        let now = self.opts.clock.now_ns();
        let mut rec = side.record;
        rec.uuid = row.uuid;
        rec.name = row.name.clone();
        rec.created_ns = now;
        self.update(|r| {
            r.insert(row.domid, rec);
        })?;
        if let Err(e) = self.start_supervisor(row.domid) {
            tracing::warn!(domid = row.domid, error = %e, "starting the supervisor");
        }
        Ok((row.domid, side.meta))
    }

    fn core_dump(&self, domid: DomId, path: &Path) -> BackendResult<()> {
        self.xl(
            &["dump-core", &domid.to_string(), &path.display().to_string()],
            SLOW,
        )
        .map(drop)
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct SaveMeta {
    record: Record,
    meta: Vec<u8>,
}

/// domus's metadata beside an `xl save` image.
fn sidecar(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".domus");
    PathBuf::from(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SystemClock;
    use std::os::unix::fs::PermissionsExt;

    /// A stand-in `xl` that logs its calls and fails `network-attach` the
    /// way a crashed vif-bridge script does, `fails` times.
    fn fake_xl(dir: &Path, fails: u32, message: &str) -> XenHypervisor {
        let xl = dir.join("xl");
        let script = format!(
            "#!/bin/sh\n\
             echo \"$*\" >> {calls}\n\
             case $1 in\n\
             network-attach)\n\
               n=$(grep -c '^network-attach' {calls})\n\
               if [ $n -le {fails} ]; then echo '{message}' >&2; exit 1; fi ;;\n\
             esac\n\
             exit 0\n",
            calls = dir.join("calls").display(),
        );
        std::fs::write(&xl, script).unwrap();
        std::fs::set_permissions(&xl, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut opts = XenOptions::new(&dir.join("state"), Arc::new(SystemClock));
        opts.xl = xl;
        XenHypervisor::open(opts).unwrap()
    }

    fn calls(dir: &Path) -> Vec<String> {
        std::fs::read_to_string(dir.join("calls"))
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect()
    }

    const SEGV: &str = "libxl: error: libxl_exec.c:127:libxl_report_child_exitstatus: /etc/xen/scripts/vif-bridge online [1538] died due to fatal signal Segmentation fault";

    #[test]
    fn an_attach_whose_hotplug_script_crashed_is_cleaned_up_and_tried_again() {
        let tmp = tempfile::tempdir().unwrap();
        let hv = fake_xl(tmp.path(), 1, SEGV);
        let args = ["network-attach", "1", "mac=00:16:3e:00:00:01"];
        hv.attach_retrying(
            1,
            &args,
            Some(&["network-detach", "1", "00:16:3e:00:00:01"]),
            None,
        )
        .unwrap();
        let c = calls(tmp.path());
        assert_eq!(
            &c[1..],
            [
                "network-attach 1 mac=00:16:3e:00:00:01",
                "network-detach 1 00:16:3e:00:00:01",
                "network-attach 1 mac=00:16:3e:00:00:01",
            ],
            "after `xl info`: {c:?}"
        );
    }

    /// A stand-in `xl` whose `block-attach` attaches (or not) and then
    /// crashes with SIGSEGV the first time.
    fn crashing_xl(dir: &Path, attaches_before_crash: bool) -> XenHypervisor {
        let xl = dir.join("xl");
        let calls = dir.join("calls");
        let disk = dir.join("attached");
        let script = format!(
            "#!/bin/sh\n\
             echo \"$*\" >> {calls}\n\
             case $1 in\n\
             block-attach)\n\
               n=$(grep -c '^block-attach' {calls})\n\
               if [ $n -eq 1 ]; then {first} kill -SEGV $$; fi\n\
               touch {disk} ;;\n\
             block-list) echo 'Vdev  BE  handle state'; [ -e {disk} ] && echo '51728 0 0 4' ;;\n\
             esac\n\
             exit 0\n",
            calls = calls.display(),
            disk = disk.display(),
            first = if attaches_before_crash {
                format!("touch {};", disk.display())
            } else {
                String::new()
            },
        );
        std::fs::write(&xl, script).unwrap();
        std::fs::set_permissions(&xl, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut opts = XenOptions::new(&dir.join("state"), Arc::new(SystemClock));
        opts.xl = xl;
        XenHypervisor::open(opts).unwrap()
    }

    #[test]
    fn a_crashed_block_attach_is_checked_not_repeated_blindly() {
        let args = ["block-attach", "1", "format=raw,vdev=xvdb"];
        let cleanup = ["block-detach", "1", "xvdb"];
        let present = (&["block-list", "1"][..], "51728");
        // The disk got attached before xl crashed: nothing to do again.
        let tmp = tempfile::tempdir().unwrap();
        let hv = crashing_xl(tmp.path(), true);
        hv.attach_retrying(1, &args, Some(&cleanup), Some(present))
            .unwrap();
        let c = calls(tmp.path());
        assert_eq!(
            c.iter().filter(|x| x.starts_with("block-attach")).count(),
            1,
            "{c:?}"
        );
        // It did not: cleaned up and attached again.
        let tmp = tempfile::tempdir().unwrap();
        let hv = crashing_xl(tmp.path(), false);
        hv.attach_retrying(1, &args, Some(&cleanup), Some(present))
            .unwrap();
        let c = calls(tmp.path());
        assert_eq!(
            c.iter().filter(|x| x.starts_with("block-attach")).count(),
            2,
            "{c:?}"
        );
        assert!(c.iter().any(|x| x.starts_with("block-detach")), "{c:?}");
    }

    #[test]
    fn other_attach_failures_and_a_script_that_keeps_failing_are_reported() {
        let tmp = tempfile::tempdir().unwrap();
        let hv = fake_xl(tmp.path(), 9, "libxl: error: bridge xenbr9 does not exist");
        let err = hv
            .attach_retrying(1, &["network-attach", "1"], None, None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("xenbr9"), "{err}");
        assert_eq!(calls(tmp.path()).len(), 2, "one attach, no retry");

        let tmp = tempfile::tempdir().unwrap();
        let hv = fake_xl(tmp.path(), 9, SEGV);
        let err = hv
            .attach_retrying(1, &["network-attach", "1"], None, None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("vif-bridge"), "{err}");
        assert_eq!(calls(tmp.path()).len(), 4, "three attaches in all");
    }
}
