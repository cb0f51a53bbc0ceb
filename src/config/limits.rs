//! Limits shared by config loading, the CLI and the TUI.

/// The largest config file domus reads. A domain config is a few KiB; the
/// bound keeps `domus check /dev/zero`-style mistakes (or a hostile
/// library file) from filling memory.
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// Below this memory target (MiB) a guest's kernel starts killing
/// processes to give the memory back: the TUI asks first, the CLI wants
/// `--force`.
pub const LOW_GUEST_MIB: u64 = 64;

/// Below this memory target (MiB) Domain-0, which runs the toolstack and
/// every guest's backends, can starve and take them all down.
pub const LOW_DOM0_MIB: u64 = 512;

/// The memory target below which a domain's target needs confirming.
pub fn low_memory_floor(domid: u32) -> u64 {
    if domid == 0 {
        LOW_DOM0_MIB
    } else {
        LOW_GUEST_MIB
    }
}

/// The most vCPUs a domain may have (as xend's `vcpus` accepted).
pub const MAX_VCPUS: u32 = 128;
