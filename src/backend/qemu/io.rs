//! A QEMU domain's I/O counters: block from QMP's `query-blockstats`, the
//! network from the counters of the taps domus put its vifs on (a vif on
//! user-mode networking has none, so the domain's network is not counted).

use std::path::Path;

use serde_json::Value;

use super::meta::DomainMeta;
use crate::backend::netdev::counter;
use crate::backend::{IoCounters, NetCounters, VbdCounters};
use crate::config::DeviceSpec;

/// Block counters summed over the drives `query-blockstats` lists.
pub fn vbd_from_blockstats(reply: &Value) -> Option<VbdCounters> {
    let drives = reply.as_array()?;
    let mut sum = VbdCounters::default();
    for d in drives {
        let s = d.get("stats")?;
        let n = |k: &str| s.get(k).and_then(Value::as_u64).unwrap_or(0);
        sum.rd_bytes = sum.rd_bytes.saturating_add(n("rd_bytes"));
        sum.wr_bytes = sum.wr_bytes.saturating_add(n("wr_bytes"));
        sum.rd_reqs = sum.rd_reqs.saturating_add(n("rd_operations"));
        sum.wr_reqs = sum.wr_reqs.saturating_add(n("wr_operations"));
    }
    Some(sum)
}

/// The guest's traffic over its taps: what the guest sends arrives on the
/// host side of a tap as received, and the other way round. `None` when
/// the domain has no vif or one without a tap.
pub fn net_from_taps(meta: &DomainMeta, root: &Path) -> Option<NetCounters> {
    let vifs: Vec<_> = meta
        .devices
        .iter()
        .filter(|p| matches!(p.spec, DeviceSpec::Vif(_)))
        .collect();
    if vifs.is_empty() {
        return None;
    }
    let mut sum = NetCounters::default();
    for p in vifs {
        let tap = p.tap.as_deref()?;
        sum.tx_bytes = sum.tx_bytes.saturating_add(counter(root, tap, "rx_bytes")?);
        sum.rx_bytes = sum.rx_bytes.saturating_add(counter(root, tap, "tx_bytes")?);
    }
    Some(sum)
}

pub fn counters(meta: &DomainMeta, blockstats: Option<&Value>) -> IoCounters {
    let has_vbd = meta
        .devices
        .iter()
        .any(|p| matches!(p.spec, DeviceSpec::Vbd(_)));
    IoCounters {
        domid: meta.domid,
        net: net_from_taps(meta, Path::new("/sys/class/net")),
        vbd: if has_vbd {
            blockstats.and_then(vbd_from_blockstats)
        } else {
            None
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn blockstats_are_summed_over_drives() {
        // The shape QEMU 7.2 answers with (fields trimmed).
        let reply = json!([
            {"device": "", "qdev": "vbd0", "stats": {"rd_bytes": 4096, "wr_bytes": 1000, "rd_operations": 2, "wr_operations": 1}},
            {"device": "", "qdev": "vbd1", "stats": {"rd_bytes": 1, "wr_bytes": 2, "rd_operations": 3, "wr_operations": 4}}
        ]);
        assert_eq!(
            vbd_from_blockstats(&reply),
            Some(VbdCounters {
                rd_bytes: 4097,
                wr_bytes: 1002,
                rd_reqs: 5,
                wr_reqs: 5
            })
        );
        assert_eq!(vbd_from_blockstats(&json!({"error": 1})), None);
    }

    #[test]
    fn tap_counters_are_read_from_the_guests_side() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let stats = dir.path().join("domus5.0/statistics");
        std::fs::create_dir_all(&stats).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(stats.join("rx_bytes"), "700\n").unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(stats.join("tx_bytes"), "30\n").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(counter(dir.path(), "domus5.0", "rx_bytes"), Some(700));
        assert_eq!(counter(dir.path(), "../etc", "rx_bytes"), None);
    }
}
