//! The simulated host's persistent state and its accounting rules.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::backend::BackendKind;
use crate::backend::{
    BootImage, DomId, DomainInfo, DomainStats, HostInfo, ShutdownReason, StateFlags,
};
use crate::clock::NS_PER_SEC;
use crate::config::DeviceSpec;

pub const SIM_VERSION: &str = "domus-sim 1.0 (models Xen 4.17 domain semantics)";
/// 2: the host in SQLite, one row per domain (1 was one JSON file).
pub const STATE_FORMAT: u32 = 2;

/// splitmix64: a tiny, well-known mixing function. It is all the simulator
/// needs for seeded, reproducible choices, and its output must never change
/// between releases because it is part of the persisted host's behaviour.
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The host's own facts; its domains are rows of their own (see `store`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostState {
    pub format: u32,
    pub seed: u64,
    pub hostname: String,
    pub cpus: u32,
    pub total_kib: u64,
    /// Never decreases: domids are not reused while the host lives (and a
    /// new domid is also above every domain that exists).
    pub next_domid: DomId,
    /// How many uuids the host has handed out (feeds the seeded generator).
    pub uuid_counter: u64,
    pub booted_ns: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimDomain {
    pub domid: DomId,
    pub name: String,
    pub uuid: uuid::Uuid,
    pub memory_kib: u64,
    pub max_kib: u64,
    pub target_kib: u64,
    pub vcpus: u32,
    /// vCPUs online at boot when fewer than `vcpus` (xend's `vcpu_avail`).
    #[serde(default)]
    pub vcpus_online: Option<u32>,
    pub cpu_weight: u32,
    pub pinned: BTreeMap<u32, u32>,
    pub paused: bool,
    pub shutdown: Option<ShutdownReason>,
    pub image: Option<BootImage>,
    pub device_model: bool,
    /// Set once the guest has printed its boot log (first unpause).
    pub booted_ns: Option<u64>,
    pub devices: Vec<DeviceSpec>,
    /// CPU time per vCPU up to `accounted_ns`.
    pub vcpu_ns: Vec<u64>,
    pub accounted_ns: u64,
    /// Share of each vCPU the guest keeps busy, in thousandths.
    pub load_permille: u32,
    pub created_ns: u64,
    /// The shell's unfinished input line.
    pub line: String,
    /// Input typed while paused, handled on unpause.
    pub pending_input: Vec<u8>,
}

impl HostState {
    /// A freshly booted host and its Domain-0.
    pub fn new(seed: u64, now_ns: u64) -> (Self, SimDomain) {
        let cpus = 4;
        let mut host = HostState {
            format: STATE_FORMAT,
            seed,
            hostname: "simhost".into(),
            cpus,
            total_kib: 16 * 1024 * 1024,
            next_domid: 1,
            uuid_counter: 0,
            booted_ns: now_ns,
        };
        let uuid = host.next_uuid();
        let dom0 = SimDomain {
            domid: 0,
            name: "Domain-0".into(),
            uuid,
            memory_kib: 2048 * 1024,
            max_kib: 2048 * 1024,
            target_kib: 2048 * 1024,
            vcpus: cpus,
            vcpus_online: None,
            cpu_weight: 256,
            pinned: BTreeMap::new(),
            paused: false,
            shutdown: None,
            image: None,
            device_model: false,
            booted_ns: Some(now_ns),
            devices: Vec::new(),
            vcpu_ns: vec![0; cpus as usize],
            accounted_ns: now_ns,
            load_permille: 30,
            created_ns: now_ns,
            line: String::new(),
            pending_input: Vec::new(),
        };
        (host, dom0)
    }

    pub fn next_uuid(&mut self) -> uuid::Uuid {
        self.uuid_counter += 1;
        let a = mix(self.seed ^ mix(self.uuid_counter));
        let b = mix(a);
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&a.to_le_bytes());
        bytes[8..].copy_from_slice(&b.to_le_bytes());
        uuid::Builder::from_random_bytes(bytes).into_uuid()
    }

    pub fn host_info(&self, used_kib: u64) -> HostInfo {
        HostInfo {
            hostname: self.hostname.clone(),
            backend: BackendKind::Sim,
            version: SIM_VERSION.into(),
            accel: None,
            cpus: self.cpus,
            total_kib: self.total_kib,
            free_kib: self.total_kib.saturating_sub(used_kib),
        }
    }

    /// A deterministic load for a new domain: 5–60 % per vCPU.
    pub fn load_for(&self, domid: DomId) -> u32 {
        50 + (mix(self.seed ^ u64::from(domid).rotate_left(17)) % 551) as u32
    }

    /// The state flags at `now_ns`. Running and blocked alternate
    /// deterministically in half-second slots, in proportion to the
    /// domain's load; Domain-0 is the one asking, so it is always running,
    /// as on Xen.
    pub fn flags(&self, d: &SimDomain, now_ns: u64) -> StateFlags {
        let active = d.is_active();
        let slot = now_ns / (NS_PER_SEC / 2);
        let busy = d.domid == 0
            || mix(self.seed ^ (u64::from(d.domid) << 32) ^ slot) % 1000
                < u64::from(d.load_permille);
        StateFlags {
            running: active && busy,
            blocked: active && !busy,
            paused: d.paused && d.shutdown.is_none(),
            shutdown: d.shutdown.is_some(),
            dying: false,
        }
    }

    /// What changes by itself, without copying anything else.
    pub fn stats(&self, d: &SimDomain, now_ns: u64) -> DomainStats {
        let elapsed = if d.is_active() {
            now_ns.saturating_sub(d.accounted_ns) / 1000
        } else {
            0
        };
        let cpu = d
            .vcpu_ns
            .iter()
            .enumerate()
            .map(|(i, t)| t + elapsed * d.vcpu_load(i))
            .sum();
        DomainStats {
            domid: d.domid,
            flags: self.flags(d, now_ns),
            shutdown_reason: d.shutdown,
            cpu_time_ns: cpu,
            memory_kib: d.memory_kib,
        }
    }

    /// The simulated I/O: it grows with the domain's CPU time (a paused
    /// or shut-down guest does none), at rates fixed per domain from its
    /// uuid, on the devices it has: no vif, no network counters.
    pub fn io(&self, d: &SimDomain, now_ns: u64) -> crate::backend::IoCounters {
        let cpu_us = self.stats(d, now_ns).cpu_time_ns / 1000;
        let k = mix(d.uuid.as_u128() as u64 ^ self.seed);
        // Bytes per µs of CPU: 1–4 each way.
        let rate = |shift: u32| (k >> shift) % 4 + 1;
        let (vbds, vifs, _) = crate::config::count_devices(&d.devices);
        let net = (vifs > 0).then(|| crate::backend::NetCounters {
            tx_bytes: cpu_us * rate(0),
            rx_bytes: cpu_us * rate(8),
        });
        let vbd = (vbds > 0).then(|| {
            let (rd, wr) = (cpu_us * rate(16), cpu_us * rate(24));
            crate::backend::VbdCounters {
                rd_bytes: rd,
                wr_bytes: wr,
                // Requests of 16 KiB, as a guest's page cache writes back.
                rd_reqs: rd / 16384,
                wr_reqs: wr / 16384,
            }
        });
        crate::backend::IoCounters {
            domid: d.domid,
            net,
            vbd,
        }
    }

    pub fn info(&self, d: &SimDomain, now_ns: u64) -> DomainInfo {
        let vcpu_time_ns = d.vcpu_times(now_ns);
        DomainInfo {
            domid: d.domid,
            name: d.name.clone(),
            uuid: d.uuid,
            memory_kib: d.memory_kib,
            max_memory_kib: d.max_kib,
            vcpus: d.vcpus,
            flags: self.flags(d, now_ns),
            shutdown_reason: d.shutdown,
            cpu_time_ns: vcpu_time_ns.iter().sum(),
            vcpu_time_ns,
            devices: d.devices.clone(),
            start_ns: Some(d.created_ns),
            notes: vec![],
        }
    }
}

impl SimDomain {
    /// vCPUs the guest runs at boot.
    pub fn online_vcpus(&self) -> u32 {
        self.vcpus_online
            .filter(|n| *n >= 1 && *n < self.vcpus)
            .unwrap_or(self.vcpus)
    }

    /// Scheduled: built, booted, not paused and not shut down.
    pub fn is_active(&self) -> bool {
        !self.paused && self.shutdown.is_none() && self.booted_ns.is_some()
    }

    fn vcpu_load(&self, vcpu: usize) -> u64 {
        // vCPU 0 does a little more than the others, as real guests do.
        let base = u64::from(self.load_permille);
        if vcpu == 0 { base } else { base * 3 / 4 }
    }

    /// CPU time per vCPU at `now_ns`, without changing the account.
    pub fn vcpu_times(&self, now_ns: u64) -> Vec<u64> {
        let elapsed = if self.is_active() {
            now_ns.saturating_sub(self.accounted_ns)
        } else {
            0
        };
        self.vcpu_ns
            .iter()
            .enumerate()
            .map(|(i, t)| t + elapsed / 1000 * self.vcpu_load(i))
            .collect()
    }

    /// Fold the time since the last account into the totals; call before
    /// any change that starts or stops the clock for this domain.
    pub fn settle(&mut self, now_ns: u64) {
        self.vcpu_ns = self.vcpu_times(now_ns);
        self.accounted_ns = now_ns;
    }

    pub fn uptime_secs(&self, now_ns: u64) -> f64 {
        self.booted_ns
            .map_or(0.0, |b| now_ns.saturating_sub(b) as f64 / NS_PER_SEC as f64)
    }
}
