//! `domus list` and `domus info` output.

use std::fmt::Write as _;

use serde::Serialize;

use crate::backend::HostInfo;
use crate::clock::{NS_PER_SEC, format_utc};
use crate::config::count_devices;
use crate::engine::{DomainView, JournalEntry};

/// Names can come from guests or other tools: never print control characters.
pub fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| if crate::fsx::is_sneaky(c) { '?' } else { c })
        .collect()
}

/// A fleet's table: `xl list`'s with the host first.
pub fn fleet_table(hosts: &[(&str, &[DomainView])]) -> String {
    // As wide as the longest host name.
    let w = hosts
        .iter()
        .map(|(h, _)| h.chars().count())
        .max()
        .unwrap_or(4)
        .max(4);
    let mut out = String::new();
    for (i, line) in table(&[]).lines().enumerate().take(1) {
        let _ = writeln!(out, "{:<w$} {line}", if i == 0 { "Host" } else { "" });
    }
    for (host, domains) in hosts {
        for line in table(domains).lines().skip(1) {
            let _ = writeln!(out, "{:<w$} {line}", sanitize(host));
        }
    }
    out
}

/// The table exactly as `xl list` prints it.
pub fn table(domains: &[DomainView]) -> String {
    let mut out = String::from(
        "Name                                        ID   Mem VCPUs\tState\tTime(s)\n",
    );
    for d in domains {
        let i = &d.info;
        let _ = writeln!(
            out,
            "{:<40} {:>5} {:5} {:5}     {}  {:8.1}",
            sanitize(&i.name),
            crate::backend::shown_id(i.domid),
            i.memory_kib / 1024,
            i.vcpus,
            i.state_string(),
            i.cpu_time_ns as f64 / NS_PER_SEC as f64
        );
    }
    out
}

/// `xm list -l`: each domain as xend's `(domain …)` listing, its runtime
/// fields first, then its config (a domain domus did not build has only
/// the runtime fields).
pub fn long(domains: &[DomainView]) -> String {
    use lexpr::Value;
    let mut out = String::new();
    for d in domains {
        let i = &d.info;
        let field = |k: &str, v: String| Value::list(vec![Value::string(k), Value::string(v)]);
        let mut fields = vec![
            Value::string("domain"),
            field("domid", crate::backend::shown_id(i.domid)),
            field("name", i.name.clone()),
            field("uuid", i.uuid.to_string()),
            field("state", i.state_string()),
            field(
                "cpu_time",
                format!("{:.3}", i.cpu_time_ns as f64 / NS_PER_SEC as f64),
            ),
            field("online_vcpus", i.vcpus.to_string()),
        ];
        match d.config() {
            Some(c) => {
                let value = c.to_value();
                // The config's fields, less the name already given.
                if let Some(items) = value.list_iter() {
                    fields.extend(
                        items
                            .skip(1)
                            .filter(|f| {
                                f.list_iter()
                                    .and_then(|mut l| l.next())
                                    .and_then(Value::as_str)
                                    != Some("name")
                            })
                            .cloned(),
                    );
                }
            }
            None => {
                fields.push(field("memory", (i.memory_kib / 1024).to_string()));
                fields.push(field("maxmem", (i.max_memory_kib / 1024).to_string()));
                fields.push(field("vcpus", i.vcpus.to_string()));
            }
        }
        // `say` shows any control character as '?'.
        out.push_str(&crate::sxp::print_pretty(&Value::list(fields)));
        out.push('\n');
    }
    out
}

#[derive(Serialize)]
struct JsonHost<'a> {
    hostname: &'a str,
    backend: &'a str,
    version: &'a str,
    accel: Option<&'a str>,
    cpus: u32,
    total_mib: u64,
    free_mib: u64,
}

#[derive(Serialize)]
struct JsonDevices {
    vbd: usize,
    vif: usize,
    pci: usize,
}

#[derive(Serialize)]
struct JsonDomain<'a> {
    /// The host's name in the fleet.
    host: &'a str,
    domid: u32,
    name: String,
    uuid: String,
    state: String,
    status: &'static str,
    shutdown_reason: Option<&'static str>,
    memory_mib: u64,
    max_memory_mib: u64,
    vcpus: u32,
    cpu_time_s: f64,
    vcpu_time_s: Vec<f64>,
    devices: JsonDevices,
    device_list: Vec<String>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    notes: &'a [String],
    managed: bool,
    config_source: Option<&'a std::path::Path>,
    /// Network and block I/O since the domain was built (as xentop's
    /// NETTX/NETRX/VBD_RD/VBD_WR totals); absent where not counted.
    #[serde(skip_serializing_if = "Option::is_none")]
    net: Option<crate::backend::NetCounters>,
    #[serde(skip_serializing_if = "Option::is_none")]
    vbd: Option<crate::backend::VbdCounters>,
}

#[derive(Serialize)]
struct JsonList<'a> {
    /// The first host's (the only one's, without a fleet).
    host: Option<JsonHost<'a>>,
    /// Every host, reachable or not.
    hosts: Vec<JsonFleetHost<'a>>,
    domains: Vec<JsonDomain<'a>>,
}

#[derive(Serialize)]
struct JsonFleetHost<'a> {
    name: &'a str,
    uri: &'a str,
    reachable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    info: Option<JsonHost<'a>>,
}

/// What one host answered for `list`.
pub struct HostListing {
    pub info: HostInfo,
    pub domains: Vec<DomainView>,
    pub io: Vec<crate::backend::IoCounters>,
}

impl HostListing {
    /// Read a host: its domains, and (`io`) their I/O counters, a failed
    /// read of which leaves them out rather than the whole list.
    pub fn read(e: &crate::engine::Engine, io: bool) -> Result<HostListing, String> {
        Ok(HostListing {
            info: e.host_info().map_err(|x| x.to_string())?,
            domains: e.domains().map_err(|x| x.to_string())?,
            io: if io {
                e.io_stats().unwrap_or_default()
            } else {
                Vec::new()
            },
        })
    }
}

fn json_host(host: &HostInfo) -> JsonHost<'_> {
    JsonHost {
        hostname: &host.hostname,
        backend: host.backend.as_str(),
        version: &host.version,
        accel: host.accel.as_deref(),
        cpus: host.cpus,
        total_mib: host.total_kib / 1024,
        free_mib: host.free_kib / 1024,
    }
}

/// Every host's listing as JSON: each domain names its host.
pub fn json_fleet(
    hosts: &[(&str, &str, Result<&HostListing, &str>)],
) -> Result<String, serde_json::Error> {
    let list = JsonList {
        host: hosts
            .first()
            .and_then(|(_, _, r)| r.ok())
            .map(|l| json_host(&l.info)),
        hosts: hosts
            .iter()
            .map(|(name, uri, r)| JsonFleetHost {
                name,
                uri,
                reachable: r.is_ok(),
                error: r.err(),
                info: r.ok().map(|l| json_host(&l.info)),
            })
            .collect(),
        domains: hosts
            .iter()
            .filter_map(|(name, _, r)| r.ok().map(|l| (*name, l)))
            .flat_map(|(name, l)| json_domains(name, &l.domains, &l.io))
            .collect(),
    };
    let mut s = serde_json::to_string_pretty(&list)?;
    s.push('\n');
    Ok(s)
}

fn json_domains<'a>(
    host: &'a str,
    domains: &'a [DomainView],
    io: &'a [crate::backend::IoCounters],
) -> Vec<JsonDomain<'a>> {
    let secs = |ns: u64| ns as f64 / NS_PER_SEC as f64;
    domains
        .iter()
        .map(|d| {
            let i = &d.info;
            let (vbd, vif, pci) = count_devices(&i.devices);
            let counted = io.iter().find(|c| c.domid == i.domid);
            JsonDomain {
                host,
                domid: i.domid,
                name: sanitize(&i.name),
                uuid: i.uuid.to_string(),
                state: i.state_string(),
                status: i.state_word(),
                shutdown_reason: i
                    .flags
                    .shutdown
                    .then(|| i.shutdown_reason.map(|r| r.as_str()))
                    .flatten(),
                memory_mib: i.memory_kib / 1024,
                max_memory_mib: i.max_memory_kib / 1024,
                vcpus: i.vcpus,
                cpu_time_s: secs(i.cpu_time_ns),
                vcpu_time_s: i.vcpu_time_ns.iter().map(|t| secs(*t)).collect(),
                devices: JsonDevices { vbd, vif, pci },
                device_list: i.devices.iter().map(|d| d.to_string()).collect(),
                notes: &i.notes,
                managed: d.record.is_some(),
                config_source: d.record.as_ref().and_then(|r| r.source.as_deref()),
                net: counted.and_then(|c| c.net),
                vbd: counted.and_then(|c| c.vbd),
            }
        })
        .collect()
}

/// A domain that is gone: its config and last timeline.
pub fn info_gone(rec: &crate::engine::DomainRecord, timeline: &[JournalEntry]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "name:      {}", sanitize(&rec.name));
    let _ = writeln!(out, "uuid:      {}", rec.uuid);
    out.push_str("state:     gone (no longer on the hypervisor)\n");
    append_record(&mut out, rec, timeline);
    out
}

fn append_record(out: &mut String, r: &crate::engine::DomainRecord, timeline: &[JournalEntry]) {
    if let Some(src) = &r.source {
        let _ = writeln!(out, "source:    {}", src.display());
    }
    if let Some(note) = &r.note {
        let _ = writeln!(out, "note:      {note}");
    }
    out.push_str("\nconfig:\n");
    for line in r.config.to_sxp_string().lines() {
        let _ = writeln!(out, "  {line}");
    }
    out.push_str("\ntimeline:\n");
    for e in timeline.iter().filter(|e| !e.event.is_op()) {
        let _ = writeln!(out, "  {}", timeline_line(e));
    }
}

/// One journal entry as a line: time, domid, source and the event.
pub fn timeline_line(e: &JournalEntry) -> String {
    let dom = e.domid.map_or_else(String::new, |d| format!(" [{d}]"));
    format!(
        "{} UTC{dom} {}: {}",
        format_utc(e.at_ns),
        e.source,
        sanitize(&e.event.to_string())
    )
}

/// One domain in detail, with its timeline.
pub fn info(view: &DomainView, timeline: &[JournalEntry]) -> String {
    let i = &view.info;
    let mut out = String::new();
    let _ = writeln!(out, "name:      {}", sanitize(&i.name));
    let _ = writeln!(out, "domid:     {}", i.domid);
    let _ = writeln!(out, "uuid:      {}", i.uuid);
    let _ = writeln!(out, "state:     {} ({})", i.state_string(), i.state_word());
    let _ = writeln!(
        out,
        "memory:    {} MiB (max {} MiB)",
        i.memory_kib / 1024,
        i.max_memory_kib / 1024
    );
    let _ = writeln!(out, "vcpus:     {}", i.vcpus);
    let _ = writeln!(
        out,
        "cpu time:  {:.1} s",
        i.cpu_time_ns as f64 / NS_PER_SEC as f64
    );
    for d in &i.devices {
        let _ = writeln!(out, "device:    {d}");
    }
    for n in &i.notes {
        let _ = writeln!(out, "note:      {n}");
    }
    for p in &view.pending {
        let _ = writeln!(
            out,
            "pending:   {} (by {} {}, at stage '{}')",
            p.op,
            p.owner.kind.as_str(),
            p.owner.pid,
            p.stage
        );
    }
    match &view.record {
        None => out.push_str("config:    (not built by domus)\n"),
        Some(r) => append_record(&mut out, r, timeline),
    }
    out
}
