//! Save and restore through QEMU migration: the guest's state streams to
//! a file (`migrate` to `exec:cat`), and a new QEMU started with `-incoming
//! defer` and the same devices on the same root ports reads it back. The
//! save file is a magic line, one JSON line (the domain's record and the
//! engine's metadata), then QEMU's migration stream.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::meta::{DomainMeta, Phase};
use super::{QemuHypervisor, devices, qmp_err};
use crate::backend::{BackendError, BackendResult, DomId, Hypervisor};
use crate::fsx::{self, FsxError};

const MAGIC: &str = "DOMUS-QEMU-SAVE 1";
const MIGRATE: Duration = Duration::from_secs(300);

#[derive(Serialize, Deserialize)]
struct Header {
    domain: DomainMeta,
    meta: Vec<u8>,
}

/// Quote for `/bin/sh`: QEMU's `exec:` migration runs a shell command.
fn sh_quote(p: &Path) -> String {
    format!("'{}'", p.display().to_string().replace('\'', r"'\''"))
}

fn wait_migration(q: &mut super::Qmp, domid: DomId) -> BackendResult<()> {
    let deadline = Instant::now() + MIGRATE;
    loop {
        let v = q
            .execute("query-migrate", json!({}), super::CMD)
            .map_err(qmp_err(domid))?;
        match v.get("status").and_then(Value::as_str) {
            Some("completed") => return Ok(()),
            Some("failed" | "cancelled") => {
                let why = v
                    .get("error-desc")
                    .and_then(Value::as_str)
                    .unwrap_or("no reason given");
                return Err(BackendError::Guest(format!(
                    "domain {domid}: migration failed: {why}"
                )));
            }
            _ if Instant::now() >= deadline => {
                return Err(BackendError::Guest(format!(
                    "domain {domid}: migration did not finish within {} s",
                    MIGRATE.as_secs()
                )));
            }
            _ => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

fn fsx_err(e: FsxError) -> BackendError {
    match e {
        FsxError::Io { op, path, source } => {
            BackendError::io(format!("cannot {op} {}", path.display()), source)
        }
        other => BackendError::Invalid(other.to_string()),
    }
}

pub fn save(hv: &QemuHypervisor, m: &DomainMeta, path: &Path, meta: &[u8]) -> BackendResult<()> {
    // The image holds the guest's memory: 0600 from its first byte, never
    // over an existing file or through a link, and made before the guest
    // is stopped so a bad name costs nothing.
    let mut out = fsx::create_private(path).map_err(fsx_err)?;
    if let Err(e) = save_into(hv, m, &mut out, path, meta) {
        // The domain stays, paused, as before a failed xl save.
        let _ = std::fs::remove_file(path);
        return Err(e);
    }
    hv.destroy(m.domid)
}

fn save_into(
    hv: &QemuHypervisor,
    m: &DomainMeta,
    out: &mut std::fs::File,
    path: &Path,
    meta: &[u8],
) -> BackendResult<()> {
    let domid = m.domid;
    let dir = hv.rt.dir(domid);
    let stream = dir.dir.join("save.stream");
    // `cat >` keeps the mode of a file that exists: make it 0600 first
    // (a leftover of an interrupted save goes).
    let _ = std::fs::remove_file(&stream);
    drop(fsx::create_private(&stream).map_err(fsx_err)?);
    let result = (|| {
        let mut q = hv.qmp(domid)?;
        q.execute("stop", json!({}), super::CMD)
            .map_err(qmp_err(domid))?;
        q.execute(
            "migrate",
            json!({ "uri": format!("exec:cat > {}", sh_quote(&stream)) }),
            super::CMD,
        )
        .map_err(qmp_err(domid))?;
        wait_migration(&mut q, domid)?;
        let header = serde_json::to_string(&Header {
            domain: m.clone(),
            meta: meta.to_vec(),
        })
        .map_err(|e| BackendError::data("the save image's header", e))?;
        let io = |e| BackendError::io(format!("writing {}", path.display()), e);
        writeln!(out, "{MAGIC}").map_err(io)?;
        writeln!(out, "{header}").map_err(io)?;
        let mut input = std::fs::File::open(&stream).map_err(io)?;
        std::io::copy(&mut input, out).map_err(io)?;
        out.sync_all().map_err(io)
    })();
    let _ = std::fs::remove_file(&stream);
    result
}

pub fn restore(hv: &QemuHypervisor, path: &Path) -> BackendResult<(DomId, Vec<u8>)> {
    let io = |e| BackendError::io(format!("reading {}", path.display()), e);
    // A FIFO or a device is refused rather than waited on.
    let mut reader = BufReader::new(fsx::open_regular(path).map_err(fsx_err)?);
    let mut magic = String::new();
    reader.read_line(&mut magic).map_err(io)?;
    if magic.trim_end() != MAGIC {
        return Err(BackendError::Invalid(format!(
            "{} is not a domus QEMU save file",
            path.display()
        )));
    }
    let mut line = String::new();
    reader.read_line(&mut line).map_err(io)?;
    let header: Header = serde_json::from_str(&line)
        .map_err(|e| BackendError::Invalid(format!("{}: damaged header: {e}", path.display())))?;
    // Where the migration stream starts.
    let offset = magic.len() + line.len();
    let old = header.domain;
    if let Some(d) = hv
        .list_domains()?
        .into_iter()
        .find(|d| d.name == old.name || d.uuid == old.uuid)
    {
        return Err(BackendError::Invalid(format!(
            "cannot restore {}: domain {} ({}) has that name or uuid",
            old.name, d.domid, d.name
        )));
    }
    let image = old
        .image
        .clone()
        .ok_or_else(|| BackendError::Invalid(format!("{}: no boot image", path.display())))?;
    let domid = hv.rt.allocate_domid(1)?;
    let mut meta = DomainMeta {
        domid,
        phase: Phase::Building,
        created_ns: hv.opts.clock.now_ns(),
        devices: Vec::new(),
        qemu_pid: None,
        vcpu_threads: Vec::new(),
        accel: hv.accel.clone(),
        run_state: None,
        console_log: None,
        builder: super::meta::this_builder(),
        ..old.clone()
    };
    hv.rt.create(&meta)?;
    let result = (|| {
        hv.launch(&mut meta, &image, true)?;
        let mut q = hv.qmp(domid)?;
        // The same devices on the same ports, or the stream will not load.
        for p in &old.devices {
            devices::replug(&mut q, &mut meta, p)?;
        }
        hv.rt.store(&meta)?;
        q.execute(
            "migrate-incoming",
            json!({ "uri": format!("exec:tail -c +{} {}", offset + 1, sh_quote(path)) }),
            super::CMD,
        )
        .map_err(qmp_err(domid))?;
        wait_migration(&mut q, domid)?;
        if old.memory_kib < old.max_memory_kib {
            let _ = q.execute(
                "balloon",
                json!({ "value": old.memory_kib * 1024 }),
                super::CMD,
            );
        }
        Ok::<_, BackendError>(())
    })();
    if let Err(e) = result {
        let _ = hv.destroy(domid);
        return Err(e);
    }
    Ok((domid, header.meta))
}
