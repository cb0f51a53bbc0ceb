//! The host's network interface counters (`/sys/class/net/IF/statistics`),
//! which the QEMU backend reads for its taps and the Xen backend for its
//! netback vifs.

use std::path::Path;

/// One counter (`rx_bytes`, `tx_bytes` …) of interface `ifname` under
/// `sys_net`; `None` when it cannot be read.
pub fn counter(sys_net: &Path, ifname: &str, name: &str) -> Option<u64> {
    // Names domus made or read from sysfs: no separators, but check.
    if ifname.contains('/') || ifname.starts_with('.') {
        return None;
    }
    let path = sys_net.join(ifname).join("statistics").join(name);
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}
