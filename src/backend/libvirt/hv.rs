//! The libvirt backend: domains libvirt drives at a connection URI, every
//! one of them (domus's and others'), through libvirt's own library (the
//! `virt` crate).
//!
//! A domus domain is a transient libvirt domain created paused from its
//! config (`xml::domain`), its devices hot-plugged, then resumed — the
//! engine's pipeline unchanged. The devices domus attached are kept in the
//! domain's own metadata, so another domus process lists and detaches them.

use std::sync::Mutex;
use std::time::Duration;

use virt::connect::Connect;
use virt::domain::Domain;
use virt::stream::Stream;

use super::{state, xml};
use crate::backend::{
    BackendError, BackendKind, BackendResult, BootImage, CallKind, Capabilities, Capability,
    ConsoleStream, CreateSpec, DomId, DomainInfo, HostInfo, Hypervisor, Notice, ReadOutcome,
    ShutdownReason, ToolFailure,
};
use crate::config::{DeviceRef, DeviceSpec, Policy};

/// The namespace of domus's metadata in a libvirt domain: the devices it
/// attached (live), and the id it had when domus built it (persistent, so
/// the domain keeps its id while it is off).
const META_URI: &str = "https://domus.invalid/devices";
const META_ID_URI: &str = "https://domus.invalid/id";
/// What the engine keeps with a save image (its config), hex, in the
/// domain's live XML, which libvirt writes into the image.
const META_SAVE_URI: &str = "https://domus.invalid/saved";
/// `VIR_DOMAIN_METADATA_ELEMENT`, `VIR_DOMAIN_AFFECT_LIVE`/`_CONFIG`,
/// `VIR_DOMAIN_START_PAUSED`, `VIR_CONNECT_LIST_DOMAINS_ACTIVE`,
/// `VIR_DOMAIN_UNDEFINE_MANAGED_SAVE`/`_SNAPSHOTS_METADATA`/`_NVRAM`.
const METADATA_ELEMENT: i32 = 2;
const AFFECT_LIVE: u32 = 1;
const AFFECT_CONFIG: u32 = 2;
const START_PAUSED: u32 = 1;
const LIST_ACTIVE: u32 = 1;
const UNDEFINE_ALL: u32 = 1 | 2 | 4;

// A domain that is off has no libvirt id. One domus built keeps the id it
// had (kept in its definition); any other gets one from its uuid, at or
// above `NO_ID_BASE` (shown as `-`, as `virsh list --all` does).
use crate::backend::NO_ID_BASE;

/// The id shown for a domain that is off and was not domus's.
fn id_from_uuid(uuid: &uuid::Uuid) -> DomId {
    // FNV-1a: stable across processes and versions.
    let mut h: u32 = 0x811c_9dc5;
    for b in uuid.as_bytes() {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    NO_ID_BASE + h % (u32::MAX - NO_ID_BASE)
}

/// Keep-alive probes: one every 2 s, the connection closed after 3
/// unanswered.
const KEEPALIVE_INTERVAL_S: i32 = 2;
const KEEPALIVE_COUNT: u32 = 3;

pub struct LibvirtHypervisor {
    uri: String,
    /// Whose records these are in the state store: the daemon's host (its
    /// uuid), so the same daemon reached by two URIs (`qemu:///system`,
    /// `qemu+tcp://…`) has one set of records, not two that disagree.
    key: String,
    /// libvirt's connections are thread-safe: no lock of ours, so a long
    /// call (a restore) holds up none of the others.
    conn: Connect,
    /// Event callbacks registered on the connection (removed on drop).
    watches: Mutex<Vec<i32>>,
}

impl Drop for LibvirtHypervisor {
    /// The callbacks go (their threads end), then the connection: a
    /// reconnected host must not leave the old one open.
    fn drop(&mut self) {
        for id in self
            .watches
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            super::ffi::deregister(&self.conn, id);
        }
        let _ = self.conn.close();
    }
}

/// Every domain libvirt has, with the id it is listed under: a running one
/// by libvirt's id; one that is off by the id domus kept for it, unless a
/// running domain (after a libvirtd restart) or another that is off has
/// it, else by its uuid's. Listing and lookups agree on these.
fn shown(conn: &Connect) -> BackendResult<Vec<(Domain, DomId)>> {
    let domains = conn.list_all_domains(0).map_err(err("list"))?;
    let mut taken: std::collections::HashSet<DomId> =
        domains.iter().filter_map(|d| d.get_id()).collect();
    let mut out = Vec::with_capacity(domains.len());
    for d in domains {
        let id = match d.get_id() {
            Some(id) => id,
            None => {
                let kept = LibvirtHypervisor::domus_id(&d)
                    .filter(|k| *k < NO_ID_BASE && !taken.contains(k));
                let id = kept.unwrap_or_else(|| {
                    let uuid = d
                        .get_uuid_string()
                        .ok()
                        .and_then(|u| uuid::Uuid::parse_str(&u).ok())
                        .unwrap_or_default();
                    id_from_uuid(&uuid)
                });
                taken.insert(id);
                id
            }
        };
        out.push((d, id));
    }
    Ok(out)
}

/// A second reference to a connection, closed when dropped (the `virt`
/// crate's `Connect` is not): a thread that ends, or never starts, leaves
/// no connection open.
struct Closing(Connect);

impl Drop for Closing {
    fn drop(&mut self) {
        let _ = self.0.close();
    }
}

/// libvirt takes C strings; the `virt` crate panics on a NUL inside one.
fn no_nul(text: &str) -> BackendResult<()> {
    if text.contains('\0') {
        return Err(BackendError::Invalid("a NUL byte in the device".into()));
    }
    Ok(())
}

/// A path for libvirt: UTF-8, no NUL.
fn path_str(path: &std::path::Path) -> BackendResult<String> {
    let s = std::path::absolute(path)
        .map_err(|e| BackendError::io(format!("resolving {}", path.display()), e))?
        .to_str()
        .map(str::to_string)
        .ok_or_else(|| BackendError::Invalid(format!("{} is not UTF-8", path.display())))?;
    if s.contains('\0') {
        return Err(BackendError::Invalid("a NUL byte in the path".into()));
    }
    Ok(s)
}

/// The text between the first `open` and the `close` after it.
fn text_between(text: &str, open: &str, close: &str) -> Option<String> {
    let start = text.find(open)? + open.len();
    let len = text[start..].find(close)?;
    Some(text[start..start + len].trim().to_string())
}

fn unhex(h: &str) -> Vec<u8> {
    h.as_bytes()
        .chunks(2)
        .filter_map(|p| std::str::from_utf8(p).ok())
        .filter_map(|p| u8::from_str_radix(p, 16).ok())
        .collect()
}

/// What a lifecycle event means for domus, with the domain's id now.
fn notice_of(conn: &Connect, ev: &super::ffi::Lifecycle) -> Option<(DomId, Notice)> {
    use super::ffi::*;
    let notice = match (ev.event, ev.detail) {
        (EVENT_SUSPENDED, _) => Notice::Paused,
        (EVENT_RESUMED, _) => Notice::Resumed,
        (EVENT_STOPPED, STOPPED_SHUTDOWN) => Notice::ShutDown {
            reason: ShutdownReason::Poweroff,
            by_guest: true,
        },
        (EVENT_STOPPED, STOPPED_CRASHED) | (EVENT_CRASHED, _) => Notice::ShutDown {
            reason: ShutdownReason::Crash,
            by_guest: true,
        },
        (EVENT_STOPPED, STOPPED_DESTROYED) => Notice::ShutDown {
            reason: ShutdownReason::Poweroff,
            by_guest: false,
        },
        // Saved, migrated, started, defined, undefined (the next refresh
        // sees a domain that is gone): nothing to record here.
        _ => return None,
    };
    let d = Domain::lookup_by_uuid_string(conn, &ev.uuid).ok()?;
    let domid = match d.get_id() {
        Some(id) => id,
        None => {
            shown(conn)
                .ok()?
                .into_iter()
                .find(|(x, _)| x.get_uuid_string().ok().as_deref() == Some(ev.uuid.as_str()))?
                .1
        }
    };
    Some((domid, notice))
}

fn err(call: &str) -> impl Fn(virt::error::Error) -> BackendError + '_ {
    move |e| BackendError::Tool {
        command: format!("libvirt {call}"),
        failure: if e.code() == virt::error::ErrorNumber::NoDomain {
            ToolFailure::NoSuchDomain
        } else {
            ToolFailure::Refused
        },
        message: e.message().to_string(),
    }
}

impl LibvirtHypervisor {
    pub fn open(uri: &str) -> BackendResult<Self> {
        // libvirt takes C strings (and the `virt` crate panics on a NUL).
        if uri.contains('\0') {
            return Err(BackendError::Invalid("a NUL byte in the URI".into()));
        }
        event_loop();
        let conn = Connect::open(Some(uri)).map_err(|e| BackendError::Start {
            what: format!("the libvirt backend at {uri}"),
            why: e.message().to_string(),
        })?;
        // A daemon that stops answering is noticed within a few seconds
        // (the connection closes, and calls fail rather than hang);
        // drivers without keep-alive (test:///) refuse, which is fine.
        let _ = conn.set_keep_alive(KEEPALIVE_INTERVAL_S, KEEPALIVE_COUNT);
        let key = conn
            .get_capabilities()
            .ok()
            .and_then(|caps| text_between(&caps, "<uuid>", "</uuid>"))
            .filter(|u| uuid::Uuid::parse_str(u).is_ok())
            .map_or_else(|| format!("libvirt {uri}"), |u| format!("libvirt host {u}"));
        Ok(LibvirtHypervisor {
            key,
            uri: uri.to_string(),
            watches: Mutex::new(Vec::new()),
            conn,
        })
    }

    fn with<T>(&self, f: impl FnOnce(&Connect) -> BackendResult<T>) -> BackendResult<T> {
        f(&self.conn)
    }

    fn domain(&self, domid: DomId) -> BackendResult<Domain> {
        let running = if domid < NO_ID_BASE {
            self.with(|c| match Domain::lookup_by_id(c, domid) {
                Ok(d) => Ok(Some(d)),
                Err(e) if e.code() == virt::error::ErrorNumber::NoDomain => Ok(None),
                Err(e) => Err(err("lookup")(e)),
            })?
        } else {
            None
        };
        if let Some(d) = running {
            return Ok(d);
        }
        // One that is off, by the id it is listed under.
        shown(&self.conn)?
            .into_iter()
            .find(|(d, id)| *id == domid && d.get_id().is_none())
            .map(|(d, _)| d)
            .ok_or(BackendError::NoSuchDomain(domid))
    }

    /// The id domus gave the domain when it built it (`None`: not domus's).
    fn domus_id(d: &Domain) -> Option<DomId> {
        let text = d
            .get_metadata(METADATA_ELEMENT, Some(META_ID_URI), 0)
            .ok()?;
        let inner = text.split_once('>')?.1.rsplit_once('<')?.0;
        inner.trim().parse().ok()
    }

    /// The devices domus attached, from the domain's metadata.
    fn devices(d: &Domain) -> Vec<DeviceSpec> {
        let Ok(text) = d.get_metadata(METADATA_ELEMENT, Some(META_URI), 0) else {
            return Vec::new();
        };
        let inner = text
            .split_once('>')
            .and_then(|(_, rest)| rest.rsplit_once('<'))
            .map_or(String::new(), |(body, _)| xml::unescape(body));
        serde_json::from_str(&inner).unwrap_or_default()
    }

    fn set_devices(d: &Domain, devices: &[DeviceSpec]) -> BackendResult<()> {
        let json = serde_json::to_string(devices).map_err(|e| BackendError::Data {
            what: "the devices' metadata".into(),
            source: Box::new(e),
        })?;
        let element = format!("<devices>{}</devices>", xml::escape(&json));
        d.set_metadata(
            METADATA_ELEMENT,
            Some(&element),
            Some("domus"),
            Some(META_URI),
            AFFECT_LIVE,
        )
        .map(drop)
        .map_err(err("set metadata"))
    }

    fn info_of(d: &Domain, domid: DomId) -> BackendResult<DomainInfo> {
        let info = d.get_info().map_err(err("get info"))?;
        let (st, reason) = d.get_state().map_err(err("get state"))?;
        let (flags, why) = state::flags(st as i32, reason);
        Ok(DomainInfo {
            domid,
            name: d.get_name().map_err(err("get name"))?,
            uuid: d
                .get_uuid_string()
                .ok()
                .and_then(|u| uuid::Uuid::parse_str(&u).ok())
                .unwrap_or_default(),
            memory_kib: info.memory,
            max_memory_kib: info.max_mem,
            vcpus: info.nr_virt_cpu,
            flags,
            shutdown_reason: why,
            cpu_time_ns: info.cpu_time,
            vcpu_time_ns: Vec::new(),
            devices: Self::devices(d),
            start_ns: None,
            notes: Vec::new(),
        })
    }

    /// Files libvirt's daemon writes or reads (save images, core dumps)
    /// are on its machine: only a daemon on this one may be given a path
    /// domus checks and shows here.
    fn local_files(&self, what: &str) -> BackendResult<()> {
        let server = self
            .uri
            .split_once("://")
            .map(|(_, rest)| rest.split('/').next().unwrap_or(""))
            .map(|s| s.rsplit('@').next().unwrap_or(s))
            .unwrap_or("");
        let host = server.rsplit_once(':').map_or(server, |(h, _)| h);
        if matches!(host, "" | "localhost" | "127.0.0.1" | "[::1]") {
            return Ok(());
        }
        Err(BackendError::Invalid(format!(
            "{what}: the file would be on {host}, where libvirt's daemon runs, not here: use domus on that host, or virsh"
        )))
    }

    fn unsupported(call: CallKind) -> BackendError {
        BackendError::Unsupported {
            backend: BackendKind::Libvirt,
            call,
        }
    }
}

impl Hypervisor for LibvirtHypervisor {
    fn kind(&self) -> BackendKind {
        BackendKind::Libvirt
    }

    fn capabilities(&self) -> Capabilities {
        use Capability::*;
        Capabilities::of(&[
            Pause,
            Shutdown,
            Reboot,
            HotplugVbd,
            HotplugVif,
            MemoryTarget,
            Console,
            IoStats,
            SaveRestore,
            CoreDump,
            NativeConfig,
            ImageLinux,
            ImageHvm,
            HostFiles,
        ])
    }

    /// How it boots, from its XML (records lost with a store are rebuilt
    /// from it).
    fn boot_image(&self, domid: DomId) -> BackendResult<Option<BootImage>> {
        let text = self
            .domain(domid)?
            .get_xml_desc(0)
            .map_err(err("domain XML"))?;
        Ok(xml::boot_image(&text))
    }

    /// `virsh start`: libvirt starts it from its definition.
    fn start_native(&self, domid: DomId) -> BackendResult<Option<DomId>> {
        let d = self.domain(domid)?;
        d.create().map_err(err("start"))?;
        Ok(d.get_id())
    }

    /// libvirt checks the XML against its schema (`VALIDATE`) and keeps
    /// it as the domain's definition; a running domain takes it at its
    /// next start. The same domain only: another uuid is refused.
    fn define_native(&self, domid: DomId, text: &str) -> BackendResult<()> {
        const DEFINE_VALIDATE: u32 = 1;
        if text.contains('\0') {
            return Err(BackendError::Invalid("a NUL byte in the XML".into()));
        }
        let d = self.domain(domid)?;
        let uuid = d.get_uuid_string().map_err(err("uuid"))?;
        if text_between(text, "<uuid>", "</uuid>").is_some_and(|u| !u.eq_ignore_ascii_case(&uuid)) {
            return Err(BackendError::Invalid(format!(
                "the XML names another domain (uuid is not {uuid})"
            )));
        }
        self.with(|c| {
            Domain::define_xml_flags(c, text, DEFINE_VALIDATE)
                .map(drop)
                .map_err(err("define"))
        })
    }

    fn native_description(&self, domid: DomId) -> BackendResult<Option<String>> {
        self.domain(domid)?
            .get_xml_desc(0)
            .map(Some)
            .map_err(err("domain XML"))
    }

    /// libvirt's domain lifecycle events, as they happen: its event loop
    /// hands each to a thread of ours, which finds the domain's id and
    /// gives `sink` a notice.
    fn watch(&self, sink: Box<dyn Fn(DomId, Notice) + Send>) -> BackendResult<bool> {
        let (tx, rx) = std::sync::mpsc::channel::<super::ffi::Lifecycle>();
        let (id, conn) = self.with(|c| {
            let id = super::ffi::register_lifecycle(c, tx).map_err(err("domain events"))?;
            Ok((id, Closing(c.clone())))
        })?;
        self.watches
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(id);
        let spawned = std::thread::Builder::new()
            .name("domus-libvirt-events".into())
            .spawn(move || {
                // Ends when the callback is removed (its sender freed).
                for ev in rx {
                    if let Some((domid, notice)) = notice_of(&conn.0, &ev) {
                        sink(domid, notice);
                    }
                }
            });
        spawned
            .map_err(|e| BackendError::io("starting the libvirt event thread".to_string(), e))?;
        Ok(true)
    }

    fn connected(&self) -> bool {
        self.with(|c| Ok(c.is_alive().unwrap_or(false)))
            .unwrap_or(false)
    }

    fn host_key(&self) -> String {
        self.key.clone()
    }

    fn host_info(&self) -> BackendResult<HostInfo> {
        self.with(|c| {
            let node = c.get_node_info().map_err(err("node info"))?;
            // Some drivers (a test node without cells) cannot say: a
            // figure missing is not a host missing.
            let free = c.get_free_memory().unwrap_or(0);
            let v = c.get_lib_version().map_err(err("version"))?;
            Ok(HostInfo {
                hostname: c.get_hostname().map_err(err("hostname"))?,
                backend: BackendKind::Libvirt,
                version: format!(
                    "libvirt {}.{}.{} at {}",
                    v / 1_000_000,
                    v / 1000 % 1000,
                    v % 1000,
                    self.uri
                ),
                accel: None,
                cpus: node.cpus,
                total_kib: node.memory,
                free_kib: free / 1024,
            })
        })
    }

    fn list_domains(&self) -> BackendResult<Vec<DomainInfo>> {
        // Running and defined ones alike (`virsh list --all`).
        let mut out: Vec<DomainInfo> = shown(&self.conn)?
            .iter()
            .filter_map(|(d, id)| Self::info_of(d, *id).ok())
            .collect();
        out.sort_by_key(|i| i.domid);
        Ok(out)
    }

    fn domain_info(&self, domid: DomId) -> BackendResult<DomainInfo> {
        Self::info_of(&self.domain(domid)?, domid)
    }

    fn create_domain(&self, spec: &CreateSpec) -> BackendResult<DomId> {
        let image = spec.image.as_ref().ok_or_else(|| {
            BackendError::Invalid("the libvirt backend builds domain and image in one step".into())
        })?;
        let virt_type = crate::backend::qemu::accel::detect();
        let virt_type = if virt_type == "kvm" { "kvm" } else { "qemu" };
        let text = xml::domain(
            spec,
            image,
            virt_type,
            (Policy::Destroy, Policy::Restart, Policy::Destroy),
        )
        .map_err(|e| BackendError::UnsupportedFeature {
            backend: BackendKind::Libvirt,
            what: "this config".into(),
            why: e.to_string(),
        })?;
        if text.contains('\0') {
            return Err(BackendError::Invalid("a NUL byte in the config".into()));
        }
        // Defined, so that a guest's poweroff leaves it (off) for domus's
        // policy to apply, as Xen and QEMU do; undefined again if it does
        // not start.
        let d = self.with(|c| Domain::define_xml(c, &text).map_err(err("define")))?;
        let started = d
            .create_with_flags(START_PAUSED)
            .map_err(err("start"))
            .and_then(|_| {
                d.get_id().ok_or_else(|| {
                    BackendError::Invalid("libvirt gave the new domain no id".into())
                })
            })
            .and_then(|domid| {
                let id = format!("<id>{domid}</id>");
                d.set_metadata(
                    METADATA_ELEMENT,
                    Some(&id),
                    Some("domus"),
                    Some(META_ID_URI),
                    AFFECT_LIVE | AFFECT_CONFIG,
                )
                .map_err(err("set metadata"))?;
                Self::set_devices(&d, &[])?;
                Ok(domid)
            });
        if started.is_err() {
            if d.is_active().unwrap_or(false) {
                let _ = d.destroy();
            }
            let _ = d.undefine_flags(UNDEFINE_ALL);
        }
        started
    }

    fn set_max_memory(&self, _domid: DomId, _kib: u64) -> BackendResult<()> {
        Ok(())
    }

    fn set_vcpus(&self, _domid: DomId, _vcpus: u32) -> BackendResult<()> {
        Ok(())
    }

    fn pin_vcpu(&self, _domid: DomId, _vcpu: u32, _cpu: u32) -> BackendResult<()> {
        Ok(())
    }

    fn set_cpu_weight(&self, _domid: DomId, _weight: u32) -> BackendResult<()> {
        Ok(())
    }

    fn build_image(&self, _domid: DomId, _image: &BootImage) -> BackendResult<()> {
        Ok(())
    }

    fn start_device_model(&self, _domid: DomId, _image: &BootImage) -> BackendResult<()> {
        Ok(())
    }

    fn pause(&self, domid: DomId) -> BackendResult<()> {
        self.domain(domid)?
            .suspend()
            .map(drop)
            .map_err(err("suspend"))
    }

    fn unpause(&self, domid: DomId) -> BackendResult<()> {
        self.domain(domid)?
            .resume()
            .map(drop)
            .map_err(err("resume"))
    }

    fn shutdown(&self, domid: DomId, reason: ShutdownReason) -> BackendResult<()> {
        let d = self.domain(domid)?;
        match reason {
            ShutdownReason::Reboot => d.reboot(0).map_err(err("reboot")),
            ShutdownReason::Poweroff => d.shutdown().map(drop).map_err(err("shutdown")),
            _ => Err(Self::unsupported(CallKind::Shutdown)),
        }
    }

    /// Gone, as on Xen: a domain domus built is stopped and undefined. One
    /// another tool defined is only stopped (`virsh destroy`), its
    /// definition left to that tool.
    fn destroy(&self, domid: DomId) -> BackendResult<()> {
        let d = self.domain(domid)?;
        let ours = Self::domus_id(&d).is_some();
        let active = d.is_active().map_err(err("state"))?;
        if active {
            d.destroy().map_err(err("destroy"))?;
        } else if !ours {
            return Err(BackendError::Invalid(format!(
                "domain {domid} is off and was defined by another tool: undefine it with virsh undefine"
            )));
        }
        if ours && d.is_persistent().unwrap_or(false) {
            d.undefine_flags(UNDEFINE_ALL).map_err(err("undefine"))?;
        }
        Ok(())
    }

    fn rename(&self, _domid: DomId, _name: &str) -> BackendResult<()> {
        Err(Self::unsupported(CallKind::Rename))
    }

    fn attach_device(&self, domid: DomId, device: &DeviceSpec) -> BackendResult<()> {
        let d = self.domain(domid)?;
        let text = xml::device(device).map_err(|e| BackendError::UnsupportedFeature {
            backend: BackendKind::Libvirt,
            what: device.to_string(),
            why: e.to_string(),
        })?;
        no_nul(&text)?;
        d.attach_device_flags(&text, AFFECT_LIVE)
            .map_err(err("attach device"))?;
        let mut devices = Self::devices(&d);
        devices.push(device.clone());
        Self::set_devices(&d, &devices)
    }

    fn detach_device(&self, domid: DomId, device: &DeviceRef) -> BackendResult<DeviceSpec> {
        let d = self.domain(domid)?;
        let mut devices = Self::devices(&d);
        let at = devices
            .iter()
            .position(|s| crate::engine::device_ref(s, &devices) == *device)
            .ok_or_else(|| {
                BackendError::Invalid(format!("domain {domid} has no device {device}"))
            })?;
        let spec = devices.remove(at);
        let text = xml::device(&spec).map_err(|e| BackendError::Invalid(e.to_string()))?;
        no_nul(&text)?;
        d.detach_device_flags(&text, AFFECT_LIVE)
            .map_err(err("detach device"))?;
        Self::set_devices(&d, &devices)?;
        Ok(spec)
    }

    fn set_memory_target(&self, domid: DomId, kib: u64) -> BackendResult<()> {
        self.domain(domid)?
            .set_memory(kib)
            .map(drop)
            .map_err(err("set memory"))
    }

    fn open_console(&self, domid: DomId) -> BackendResult<Box<dyn ConsoleStream>> {
        let d = self.domain(domid)?;
        let stream =
            self.with(|c| Stream::new(c, STREAM_NONBLOCK).map_err(err("console stream")))?;
        d.open_console(None, &stream, 0)
            .map_err(err("open console"))?;
        Ok(Box::new(LibvirtConsole::new(stream)?))
    }

    /// libvirt's daemon writes the image (`virDomainSave`), with the
    /// engine's `meta` in the domain's XML inside it; domus's definition
    /// then goes, as the domain does on Xen.
    fn save(&self, domid: DomId, path: &std::path::Path, meta: &[u8]) -> BackendResult<()> {
        self.local_files("save")?;
        let to = path_str(path)?;
        let d = self.domain(domid)?;
        let hex: String = meta.iter().map(|b| format!("{b:02x}")).collect();
        d.set_metadata(
            METADATA_ELEMENT,
            Some(&format!("<saved>{hex}</saved>")),
            Some("domus"),
            Some(META_SAVE_URI),
            AFFECT_LIVE,
        )
        .map_err(err("set metadata"))?;
        let to = std::ffi::CString::new(to)
            .map_err(|_| BackendError::Invalid("a NUL byte in the path".into()))?;
        super::ffi::save(&d, &to).map_err(err("save"))?;
        // Saved: the guest is in the image whatever happens next.
        if Self::domus_id(&d).is_some()
            && d.is_persistent().unwrap_or(false)
            && let Err(e) = d.undefine_flags(UNDEFINE_ALL)
        {
            tracing::warn!(domid, error = %e, "undefining a saved domain");
        }
        Ok(())
    }

    /// Restored paused (the engine resumes it), defined again, its id
    /// kept; the engine's `meta` read back from the image's XML.
    fn restore(&self, path: &std::path::Path) -> BackendResult<(DomId, Vec<u8>)> {
        self.local_files("restore")?;
        let from = path_str(path)?;
        let text = self.with(|c| {
            Domain::save_image_get_xml_desc(c, &from, 0).map_err(err("read the save image"))
        })?;
        let uuid = text_between(&text, "<uuid>", "</uuid>")
            .ok_or_else(|| BackendError::Invalid(format!("{from}: no domain uuid in the image")))?;
        // `<domus:saved xmlns:domus="URI">HEX</domus:saved>`, by its URI.
        let meta = [format!("{META_SAVE_URI}\">"), format!("{META_SAVE_URI}'>")]
            .iter()
            .find_map(|open| text_between(&text, open, "<"))
            .map(|h| unhex(&h))
            .unwrap_or_default();
        const SAVE_PAUSED: u32 = 4;
        self.with(|c| {
            Domain::domain_restore_flags(c, &from, None, SAVE_PAUSED).map_err(err("restore"))
        })?;
        let d = self.with(|c| Domain::lookup_by_uuid_string(c, &uuid).map_err(err("lookup")))?;
        let adopted = (|| {
            let domid = d
                .get_id()
                .ok_or_else(|| BackendError::Invalid("the restored domain has no id".into()))?;
            // Persistent again, as domus builds them, under its new id: its
            // definition from the inactive, secure XML (no runtime state,
            // passwords kept), without the saved blob.
            const XML_SECURE_INACTIVE: u32 = 1 | 2;
            let xml = d
                .get_xml_desc(XML_SECURE_INACTIVE)
                .map_err(err("domain XML"))?;
            self.with(|c| Domain::define_xml(c, &xml).map(drop).map_err(err("define")))?;
            let _ = d.set_metadata(
                METADATA_ELEMENT,
                None,
                None,
                Some(META_SAVE_URI),
                AFFECT_LIVE | AFFECT_CONFIG,
            );
            d.set_metadata(
                METADATA_ELEMENT,
                Some(&format!("<id>{domid}</id>")),
                Some("domus"),
                Some(META_ID_URI),
                AFFECT_LIVE | AFFECT_CONFIG,
            )
            .map_err(err("set metadata"))?;
            Ok(domid)
        })();
        match adopted {
            Ok(domid) => Ok((domid, meta)),
            Err(e) => {
                // Not left running unknown to domus.
                let _ = d.destroy();
                let _ = d.undefine_flags(UNDEFINE_ALL);
                Err(e)
            }
        }
    }

    /// The guest's memory, by libvirt's daemon; the domain goes on.
    fn core_dump(&self, domid: DomId, path: &std::path::Path) -> BackendResult<()> {
        self.local_files("core dump")?;
        let to = path_str(path)?;
        self.domain(domid)?
            .core_dump(&to, 0)
            .map(drop)
            .map_err(err("core dump"))
    }

    /// Each running domain's disks and interfaces, by the names in its XML
    /// (libvirt reports interfaces from the guest's side).
    fn io_stats(&self) -> BackendResult<Vec<crate::backend::IoCounters>> {
        let domains = self.with(|c| c.list_all_domains(LIST_ACTIVE).map_err(err("list")))?;
        let n = |v: i64| u64::try_from(v).unwrap_or(0);
        let mut out = Vec::new();
        for d in &domains {
            let (Some(domid), Ok(text)) = (d.get_id(), d.get_xml_desc(0)) else {
                continue;
            };
            let mut vbd: Option<crate::backend::VbdCounters> = None;
            for disk in xml::targets(&text, "disk") {
                if let Ok(s) = d.get_block_stats(&disk) {
                    let v = vbd.get_or_insert_with(Default::default);
                    v.rd_bytes = v.rd_bytes.saturating_add(n(s.rd_bytes));
                    v.wr_bytes = v.wr_bytes.saturating_add(n(s.wr_bytes));
                    v.rd_reqs = v.rd_reqs.saturating_add(n(s.rd_req));
                    v.wr_reqs = v.wr_reqs.saturating_add(n(s.wr_req));
                }
            }
            let mut net: Option<crate::backend::NetCounters> = None;
            for ifname in xml::targets(&text, "interface") {
                if let Ok(s) = d.interface_stats(&ifname) {
                    let c = net.get_or_insert_with(Default::default);
                    c.tx_bytes = c.tx_bytes.saturating_add(n(s.tx_bytes));
                    c.rx_bytes = c.rx_bytes.saturating_add(n(s.rx_bytes));
                }
            }
            out.push(crate::backend::IoCounters { domid, net, vbd });
        }
        Ok(out)
    }

    /// A domain domus built carries its id in its metadata; others' do not.
    fn built_by_domus(&self, info: &DomainInfo) -> bool {
        self.domain(info.domid)
            .ok()
            .is_some_and(|d| Self::domus_id(&d).is_some())
    }
}

/// A console stream, non-blocking (a blocking `virStreamRecv` would hold
/// the connection's lock until the guest printed), read by a thread of
/// its own that polls it. No libvirt callback points into this object:
/// the `virt` crate's stream callbacks run on libvirt's event loop with a
/// pointer to the Rust stream, which a close could free under them.
struct LibvirtConsole {
    /// Shared with the reader thread and any writer.
    stream: std::sync::Arc<Stream>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    rx: std::sync::mpsc::Receiver<Option<Vec<u8>>>,
    pending: Vec<u8>,
    closed: bool,
}

/// `VIR_STREAM_NONBLOCK`.
const STREAM_NONBLOCK: u32 = 1;
/// How often the reader looks for output while there is none.
const CONSOLE_POLL: Duration = Duration::from_millis(15);

/// libvirt's default event loop, registered before the first connection
/// and run on a thread of its own for the rest of the process (it carries
/// the remote driver's traffic, keep-alive and domain events).
fn event_loop() {
    static STARTED: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    STARTED.get_or_init(|| {
        // Errors come back as values; libvirt's own handler would print
        // each one on the terminal as well.
        virt::error::clear_error_callback();
        if virt::event::event_register_default_impl().is_ok() {
            std::thread::spawn(|| {
                loop {
                    if virt::event::event_run_default_impl().is_err() {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
            });
        }
    });
}

impl LibvirtConsole {
    fn new(stream: Stream) -> BackendResult<Self> {
        use std::sync::atomic::{AtomicBool, Ordering};
        let stream = std::sync::Arc::new(stream);
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let (tx, rx) = std::sync::mpsc::channel();
        let (reader, stopped) = (std::sync::Arc::clone(&stream), std::sync::Arc::clone(&stop));
        std::thread::Builder::new()
            .name("domus-libvirt-console".into())
            .spawn(move || {
                let mut buf = [0u8; 8192];
                while !stopped.load(Ordering::Relaxed) {
                    match super::ffi::recv(&reader, &mut buf) {
                        super::ffi::Recv::Data(n) => {
                            if tx.send(Some(buf[..n].to_vec())).is_err() {
                                return;
                            }
                        }
                        super::ffi::Recv::WouldBlock => std::thread::sleep(CONSOLE_POLL),
                        super::ffi::Recv::End | super::ffi::Recv::Failed => {
                            let _ = tx.send(None);
                            return;
                        }
                    }
                }
            })
            .map_err(|e| BackendError::io("starting the console reader".to_string(), e))?;
        Ok(LibvirtConsole {
            stream,
            stop,
            rx,
            pending: Vec::new(),
            closed: false,
        })
    }
}

impl Drop for LibvirtConsole {
    /// The session ends now (not when libvirt notices): the reader stops
    /// and the stream is aborted; the last reference frees it.
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        super::ffi::abort(&self.stream);
    }
}

impl ConsoleStream for LibvirtConsole {
    fn read(&mut self, buf: &mut [u8], timeout: Duration) -> BackendResult<ReadOutcome> {
        if self.pending.is_empty() && !self.closed {
            match self.rx.recv_timeout(timeout) {
                Ok(Some(bytes)) => self.pending = bytes,
                Ok(None) | Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    self.closed = true;
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => return Ok(ReadOutcome::Idle),
            }
        }
        if self.pending.is_empty() {
            return Ok(if self.closed {
                ReadOutcome::Closed
            } else {
                ReadOutcome::Idle
            });
        }
        let n = buf.len().min(self.pending.len());
        buf[..n].copy_from_slice(&self.pending[..n]);
        self.pending.drain(..n);
        Ok(ReadOutcome::Data(n))
    }

    fn write(&mut self, bytes: &[u8]) -> BackendResult<()> {
        send_all(&self.stream, bytes)
    }

    /// libvirt allows one console session per domain: the writer shares
    /// this one.
    fn writer(&self) -> Option<Box<dyn ConsoleStream>> {
        Some(Box::new(LibvirtConsoleWriter {
            stream: std::sync::Arc::clone(&self.stream),
        }))
    }
}

/// Writes to a console session a [`LibvirtConsole`] reads.
struct LibvirtConsoleWriter {
    stream: std::sync::Arc<Stream>,
}

impl ConsoleStream for LibvirtConsoleWriter {
    /// The reader has the bytes.
    fn read(&mut self, _buf: &mut [u8], timeout: Duration) -> BackendResult<ReadOutcome> {
        std::thread::sleep(timeout);
        Ok(ReadOutcome::Idle)
    }

    fn write(&mut self, bytes: &[u8]) -> BackendResult<()> {
        send_all(&self.stream, bytes)
    }
}

/// Send all of `bytes` on a non-blocking stream: a moment, a few times,
/// while it would block.
fn send_all(stream: &Stream, bytes: &[u8]) -> BackendResult<()> {
    let mut rest = bytes;
    let mut tries = 0;
    while !rest.is_empty() {
        match stream.send(rest) {
            Ok(n) if n > 0 => rest = &rest[n.min(rest.len())..],
            _ if tries < 100 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(10));
            }
            Ok(_) => break,
            Err(e) => return Err(err("console write")(e)),
        }
    }
    Ok(())
}
