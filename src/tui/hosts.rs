//! What the TUI knows of each host of the fleet: its last answer, its
//! capabilities, and whether it answers at all.

use crate::backend::{Capabilities, HostInfo};
use crate::fleet::HostId;

/// A host that has not answered for this many ticks is shown as slow.
pub const SLOW_TICKS: u64 = 5;

#[derive(Debug, Clone, Default)]
pub struct HostView {
    pub name: String,
    /// From its last snapshot.
    pub info: Option<HostInfo>,
    pub caps: Capabilities,
    /// Why it cannot be reached now (cleared by its next answer).
    pub down: Option<String>,
    /// The tick of its last answer (snapshot or cheap read).
    pub answered_tick: u64,
}

/// How a host is doing, as the header says it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reach {
    /// Not heard from yet.
    Connecting,
    Up,
    /// Has not answered for this many ticks.
    Slow(u64),
    Down(String),
}

impl HostView {
    pub fn named(name: &str) -> HostView {
        HostView {
            name: name.to_string(),
            ..Default::default()
        }
    }

    pub fn reach(&self, tick: u64) -> Reach {
        if let Some(why) = &self.down {
            return Reach::Down(why.clone());
        }
        if self.info.is_none() {
            return Reach::Connecting;
        }
        let quiet = tick.saturating_sub(self.answered_tick);
        if quiet > SLOW_TICKS {
            Reach::Slow(quiet)
        } else {
            Reach::Up
        }
    }
}

/// The hosts, by `HostId`.
#[derive(Debug, Clone)]
pub struct Hosts(pub Vec<HostView>);

impl Default for Hosts {
    fn default() -> Self {
        Hosts(vec![HostView::named("local")])
    }
}

impl Hosts {
    pub fn get(&self, h: HostId) -> Option<&HostView> {
        self.0.get(usize::from(h.0))
    }

    pub fn get_mut(&mut self, h: HostId) -> Option<&mut HostView> {
        self.0.get_mut(usize::from(h.0))
    }

    pub fn caps(&self, h: HostId) -> Capabilities {
        self.get(h).map(|v| v.caps.clone()).unwrap_or_default()
    }

    pub fn name(&self, h: HostId) -> &str {
        self.get(h).map_or("?", |v| v.name.as_str())
    }

    pub fn is_fleet(&self) -> bool {
        self.0.len() > 1
    }

    pub fn iter(&self) -> impl Iterator<Item = (HostId, &HostView)> {
        self.0
            .iter()
            .enumerate()
            .map(|(i, v)| (HostId(i as u16), v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_is_slow_after_some_silent_ticks_and_down_when_told() {
        let mut h = HostView::named("web");
        assert_eq!(h.reach(0), Reach::Connecting);
        h.info = Some(HostInfo {
            hostname: "web".into(),
            backend: crate::backend::BackendKind::Sim,
            version: String::new(),
            accel: None,
            cpus: 1,
            total_kib: 0,
            free_kib: 0,
        });
        h.answered_tick = 10;
        assert_eq!(h.reach(10 + SLOW_TICKS), Reach::Up);
        assert_eq!(h.reach(11 + SLOW_TICKS), Reach::Slow(1 + SLOW_TICKS));
        h.down = Some("connection refused".into());
        assert_eq!(h.reach(11), Reach::Down("connection refused".into()));
    }
}
