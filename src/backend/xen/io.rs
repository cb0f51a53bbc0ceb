//! A Xen domain's I/O counters, as xentop reads them in Domain-0: each
//! blkback device's statistics (`/sys/bus/xen-backend/devices/vbd-D-N/
//! statistics/{rd,wr}_{req,sect}`, 512-byte sectors) and each netback
//! interface's (`/sys/class/net/vifD.N/statistics`, where what the guest
//! sends arrives as received).

use std::collections::BTreeMap;
use std::path::Path;

use crate::backend::{DomId, IoCounters, NetCounters, VbdCounters};

fn read_u64(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// `vbd-5-51728` → (5, "51728").
fn backend_name(name: &str, kind: &str) -> Option<DomId> {
    let rest = name.strip_prefix(kind)?.strip_prefix('-')?;
    let (domid, dev) = rest.split_once('-')?;
    (!dev.is_empty() && dev.bytes().all(|b| b.is_ascii_digit()))
        .then(|| domid.parse().ok())
        .flatten()
}

/// Every guest's counters from the backend devices under `xen_backend`
/// and the interfaces under `net`. A domain with no backend device is
/// not listed (nothing to count).
pub fn from_sysfs(xen_backend: &Path, net: &Path) -> Vec<IoCounters> {
    let mut out: BTreeMap<DomId, IoCounters> = BTreeMap::new();
    let Ok(dir) = std::fs::read_dir(xen_backend) else {
        return Vec::new();
    };
    for entry in dir.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(domid) = backend_name(&name, "vbd") {
            let s = entry.path().join("statistics");
            let (Some(rd), Some(wr)) = (read_u64(&s.join("rd_sect")), read_u64(&s.join("wr_sect")))
            else {
                continue;
            };
            let c = out.entry(domid).or_insert(IoCounters {
                domid,
                ..Default::default()
            });
            let v = c.vbd.get_or_insert_with(VbdCounters::default);
            let reqs = |n: &str| read_u64(&s.join(n)).unwrap_or(0);
            v.rd_bytes = v.rd_bytes.saturating_add(rd.saturating_mul(512));
            v.wr_bytes = v.wr_bytes.saturating_add(wr.saturating_mul(512));
            v.rd_reqs = v.rd_reqs.saturating_add(reqs("rd_req"));
            v.wr_reqs = v.wr_reqs.saturating_add(reqs("wr_req"));
        } else if let Some(domid) = backend_name(&name, "vif") {
            let Some((_, dev)) = name.rsplit_once('-') else {
                continue;
            };
            let ifname = format!("vif{domid}.{dev}");
            let stat = |name| crate::backend::netdev::counter(net, &ifname, name);
            let (Some(rx), Some(tx)) = (stat("rx_bytes"), stat("tx_bytes")) else {
                continue;
            };
            let c = out.entry(domid).or_insert(IoCounters {
                domid,
                ..Default::default()
            });
            let n = c.net.get_or_insert_with(NetCounters::default);
            n.tx_bytes = n.tx_bytes.saturating_add(rx);
            n.rx_bytes = n.rx_bytes.saturating_add(tx);
        }
    }
    out.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, text: &str) {
        if let Some(p) = path.parent() {
            std::fs::create_dir_all(p).unwrap_or_else(|e| panic!("{e}"));
        }
        std::fs::write(path, text).unwrap_or_else(|e| panic!("{e}"));
    }

    /// The layout of a Xen 4.17 Domain-0 (blkback, netback), in miniature.
    #[test]
    fn counters_come_from_blkback_and_netback() {
        let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let be = root.path().join("xen-backend");
        let net = root.path().join("net");
        for (dev, rd, wr) in [("51712", "8", "2048"), ("51728", "0", "16")] {
            let s = be.join(format!("vbd-3-{dev}/statistics"));
            write(&s.join("rd_sect"), rd);
            write(&s.join("wr_sect"), wr);
            write(&s.join("rd_req"), "1\n");
            write(&s.join("wr_req"), "4\n");
        }
        std::fs::create_dir_all(be.join("vif-3-0")).unwrap_or_else(|e| panic!("{e}"));
        write(&net.join("vif3.0/statistics/rx_bytes"), "900\n");
        write(&net.join("vif3.0/statistics/tx_bytes"), "60\n");
        // A console backend and a stray name are not I/O.
        std::fs::create_dir_all(be.join("console-3-0")).unwrap_or_else(|e| panic!("{e}"));
        std::fs::create_dir_all(be.join("vbd-x-1")).unwrap_or_else(|e| panic!("{e}"));
        let io = from_sysfs(&be, &net);
        assert_eq!(
            io,
            vec![IoCounters {
                domid: 3,
                net: Some(NetCounters {
                    tx_bytes: 900,
                    rx_bytes: 60
                }),
                vbd: Some(VbdCounters {
                    rd_bytes: 8 * 512,
                    wr_bytes: 2064 * 512,
                    rd_reqs: 2,
                    wr_reqs: 8
                }),
            }]
        );
    }
}
