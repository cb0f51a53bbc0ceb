//! The domain table's state: rows from the last engine snapshot, CPU %
//! from deltas, sort, filter, tags and selection. Sorting and filtering
//! happen when the data or the settings change, never while drawing.

use std::collections::{BTreeSet, HashMap, VecDeque};

use crate::backend::DomainInfo;
use crate::config::count_devices;
use crate::engine::DomainView;
use crate::fleet::{DomKey, HostId};

/// CPU% samples kept per domain for the sparkline.
pub const HISTORY: usize = 60;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    Id,
    Name,
    State,
    CpuTime,
    CpuPct,
    Mem,
    Vcpus,
    Uptime,
    Devices,
    /// I/O rates (xentop's NETTX, NETRX, VBD_RD, VBD_WR), in bytes/s.
    NetTx,
    NetRx,
    VbdRd,
    VbdWr,
    /// The host, in a fleet (hidden with one host). Last here so the
    /// default sort stays ID; drawn first.
    Host,
}

impl Column {
    pub const ALL: [Column; 14] = [
        Column::Id,
        Column::Name,
        Column::State,
        Column::CpuTime,
        Column::CpuPct,
        Column::Mem,
        Column::Vcpus,
        Column::Uptime,
        Column::Devices,
        Column::NetTx,
        Column::NetRx,
        Column::VbdRd,
        Column::VbdWr,
        Column::Host,
    ];

    pub fn is_io(self) -> bool {
        matches!(
            self,
            Column::NetTx | Column::NetRx | Column::VbdRd | Column::VbdWr
        )
    }

    pub fn title(self) -> &'static str {
        match self {
            Column::Id => "ID",
            Column::Name => "NAME",
            Column::State => "STATE",
            Column::CpuTime => "CPU(s)",
            Column::CpuPct => "CPU%",
            Column::Mem => "MEM(MiB)",
            Column::Vcpus => "VCPUS",
            Column::Uptime => "UPTIME",
            Column::Devices => "DEVICES",
            Column::NetTx => "NETTX/s",
            Column::NetRx => "NETRX/s",
            Column::VbdRd => "VBD_RD/s",
            Column::VbdWr => "VBD_WR/s",
            Column::Host => "HOST",
        }
    }

    /// Display width of the column.
    pub fn width(self) -> u16 {
        match self {
            Column::Id => 5,
            Column::Name => 24,
            Column::State => 7,
            Column::CpuTime => 10,
            Column::CpuPct => 7,
            Column::Mem => 9,
            Column::Vcpus => 6,
            Column::Uptime => 11,
            Column::Devices => 18,
            Column::NetTx | Column::NetRx | Column::VbdRd | Column::VbdWr => 9,
            Column::Host => 10,
        }
    }
}

/// The columns that fit in `width` cells (inside the borders), with their
/// widths. Less important columns go first; NAME takes what is left. Numbers
/// are never cut.
pub fn visible_columns(width: u16) -> Vec<(Column, u16)> {
    columns_for(width, false, false, None)
}

/// [`visible_columns`] on a backend that counts I/O (`io`): the four I/O
/// columns show when they all fit beside the others with a 24-wide NAME
/// (150 columns); with `io_first` (the `I` key) they take the place of
/// DEVICES, UPTIME and CPU(s) first. In a fleet (`host_width`: as wide as
/// its longest host name) HOST comes first and stays.
pub fn columns_for(
    width: u16,
    io: bool,
    io_first: bool,
    host_width: Option<u16>,
) -> Vec<(Column, u16)> {
    let avail = width.saturating_sub(2);
    let fixed_width = |c: Column| match (c, host_width) {
        (Column::Host, Some(w)) => w,
        _ => c.width(),
    };
    let mut cols: Vec<Column> = std::iter::once(Column::Host)
        .filter(|_| host_width.is_some())
        .chain(
            Column::ALL
                .iter()
                .copied()
                .filter(|c| *c != Column::Host && (io || !c.is_io())),
        )
        .collect();
    let total = |cols: &[Column], name: u16| -> u16 {
        cols.iter()
            .map(|c| {
                if *c == Column::Name {
                    name
                } else {
                    fixed_width(*c)
                }
            })
            .sum::<u16>()
            + cols.len() as u16
            - 1
    };
    if io && !io_first && total(&cols, 24) > avail {
        cols.retain(|c| !c.is_io());
    }
    for drop in [
        Column::Devices,
        Column::Uptime,
        Column::CpuTime,
        Column::NetRx,
        Column::VbdRd,
        Column::NetTx,
        Column::VbdWr,
        Column::Vcpus,
        Column::CpuPct,
    ] {
        if total(&cols, 12) <= avail {
            break;
        }
        cols.retain(|c| *c != drop);
    }
    // NAME takes what the others leave, up to a whole name (64) with an
    // operation's note after it; beyond that the table ends early rather
    // than stretch DEVICES.
    let fixed = total(&cols, 0);
    let name = avail.saturating_sub(fixed).clamp(8, 80);
    cols.into_iter()
        .map(|c| {
            (
                c,
                if c == Column::Name {
                    name
                } else {
                    fixed_width(c)
                },
            )
        })
        .collect()
}

#[derive(Debug, Clone, Default)]
pub struct Stats {
    pub prev_cpu_ns: u64,
    pub prev_at_ns: u64,
    pub pct: f64,
    pub history: VecDeque<u64>,
    /// The last I/O counters read, and when.
    pub io: Option<(crate::backend::IoCounters, u64)>,
    pub io_rates: IoRates,
    /// All I/O (network both ways and disk), bytes/s, for the sparkline.
    pub io_history: VecDeque<u64>,
}

#[derive(Debug, Clone)]
pub struct Row {
    pub host: HostId,
    pub view: DomainView,
    pub name: String,
    pub devices: (usize, usize, usize),
    /// CPU% and its history, carried from one refresh to the next.
    pub cpu: Stats,
}

impl Row {
    pub fn key(&self) -> DomKey {
        DomKey::new(self.host, self.view.info.domid)
    }
}

/// I/O rates from the last two counter reads, in bytes (and requests)
/// per second; `None` where the backend does not count.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct IoRates {
    pub net_tx: Option<f64>,
    pub net_rx: Option<f64>,
    pub vbd_rd: Option<f64>,
    pub vbd_wr: Option<f64>,
    pub vbd_rd_reqs: Option<f64>,
    pub vbd_wr_reqs: Option<f64>,
}

/// Rates from two counter reads `secs` apart.
fn io_rates(
    prev: &crate::backend::IoCounters,
    now: &crate::backend::IoCounters,
    secs: f64,
) -> IoRates {
    let rate = |a: u64, b: u64| b.saturating_sub(a) as f64 / secs;
    let net = prev.net.zip(now.net);
    let vbd = prev.vbd.zip(now.vbd);
    IoRates {
        net_tx: net.map(|(a, b)| rate(a.tx_bytes, b.tx_bytes)),
        net_rx: net.map(|(a, b)| rate(a.rx_bytes, b.rx_bytes)),
        vbd_rd: vbd.map(|(a, b)| rate(a.rd_bytes, b.rd_bytes)),
        vbd_wr: vbd.map(|(a, b)| rate(a.wr_bytes, b.wr_bytes)),
        vbd_rd_reqs: vbd.map(|(a, b)| rate(a.rd_reqs, b.rd_reqs)),
        vbd_wr_reqs: vbd.map(|(a, b)| rate(a.wr_reqs, b.wr_reqs)),
    }
}

/// Take a CPU time sample: CPU% from the delta since the last.
fn sample(s: &mut Stats, cpu_ns: u64, at_ns: u64) {
    if s.prev_at_ns > 0 && at_ns > s.prev_at_ns {
        let d_cpu = cpu_ns.saturating_sub(s.prev_cpu_ns) as f64;
        s.pct = d_cpu / (at_ns - s.prev_at_ns) as f64 * 100.0;
        s.history.push_back(s.pct.round() as u64);
        while s.history.len() > HISTORY {
            s.history.pop_front();
        }
    }
    s.prev_cpu_ns = cpu_ns;
    s.prev_at_ns = at_ns;
}

#[derive(Debug, Default)]
pub struct DomainTable {
    pub rows: Vec<Row>,
    /// Where each domain's row is in `rows`.
    by_domid: HashMap<DomKey, usize>,
    /// Indices into `rows`, filtered and sorted.
    pub order: Vec<usize>,
    /// Position in `order`.
    pub selected: usize,
    pub offset: usize,
    pub sort: usize,
    pub descending: bool,
    pub filter: String,
    pub filter_error: Option<String>,
    pub tags: BTreeSet<DomKey>,
    pub now_ns: u64,
    /// The selected domain went away (a restart policy between its destroy
    /// and its rebuild): selected again when it comes back, unless the
    /// operator has moved meanwhile. Else the next `d` would meet whatever
    /// row slid under the cursor.
    pub vanished: Option<(HostId, uuid::Uuid, String)>,
    /// The I/O columns take the place of DEVICES, UPTIME and CPU(s) (`I`).
    pub io_first: bool,
    /// The fleet's host names, by `HostId` (for HOST and `host:` filters).
    pub host_names: Vec<String>,
}

/// Where a domain goes when sorting by STATE: live ones first, then paused,
/// crashed, otherwise shut down, dying. Running and blocked count as one:
/// a guest flips between them every second, and its row must not jump.
pub fn state_rank(info: &DomainInfo) -> u8 {
    let f = info.flags;
    if f.dying {
        4
    } else if f.shutdown {
        if info.is_crashed() { 2 } else { 3 }
    } else if f.paused {
        1
    } else {
        0
    }
}

/// Strip control characters: names may come from guests or other tools.
pub fn clean(s: &str) -> String {
    s.chars().filter(|c| !crate::fsx::is_sneaky(*c)).collect()
}

impl DomainTable {
    pub fn column(&self) -> Column {
        Column::ALL[self.sort % Column::ALL.len()]
    }

    pub fn selected_row(&self) -> Option<&Row> {
        self.order
            .get(self.selected)
            .and_then(|i| self.rows.get(*i))
    }

    pub fn selected_domid(&self) -> Option<DomKey> {
        self.selected_row().map(Row::key)
    }

    pub fn row(&self, key: DomKey) -> Option<&Row> {
        self.by_domid.get(&key).and_then(|i| self.rows.get(*i))
    }

    pub fn with_hosts(host_names: Vec<String>) -> Self {
        DomainTable {
            host_names,
            ..Default::default()
        }
    }

    /// A host's name ("?" for one not known).
    pub fn host_name(&self, h: HostId) -> &str {
        self.host_names
            .get(usize::from(h.0))
            .map_or("?", String::as_str)
    }

    /// Whether the table spans several hosts.
    pub fn fleet(&self) -> bool {
        self.host_names.len() > 1
    }

    /// How long it has been up; a shut-down or dying domain is not up.
    pub fn uptime_secs(&self, info: &DomainInfo) -> Option<u64> {
        if info.flags.shutdown || info.flags.dying {
            return None;
        }
        info.start_ns
            .map(|s| self.now_ns.saturating_sub(s) / 1_000_000_000)
    }

    /// Take a new snapshot of one host's domains, updating CPU% from
    /// deltas; other hosts' rows stay as they are.
    pub fn update(&mut self, host: HostId, views: Vec<DomainView>, at_ns: u64) {
        let keep = self.selected_domid();
        // A domain rebuilt under a new id (start, a restart policy) stays
        // selected: found again by its uuid or name, also when a snapshot
        // in between did not have it.
        let previous = self
            .selected_row()
            .map(|r| (r.host, r.view.info.uuid, r.name.clone()));
        self.now_ns = at_ns;
        let live: BTreeSet<DomKey> = views
            .iter()
            .map(|v| DomKey::new(host, v.info.domid))
            .collect();
        self.tags.retain(|d| d.host != host || live.contains(d));
        let (mine, others): (Vec<Row>, Vec<Row>) = std::mem::take(&mut self.rows)
            .into_iter()
            .partition(|r| r.host == host);
        let mut before: HashMap<DomKey, Stats> =
            mine.into_iter().map(|r| (r.key(), r.cpu)).collect();
        // Hosts in their order, each host's domains as it lists them.
        let mut rows = others;
        let at = rows.partition_point(|r| r.host < host);
        let new: Vec<Row> = views
            .into_iter()
            .map(|view| {
                let mut cpu = before
                    .remove(&DomKey::new(host, view.info.domid))
                    .unwrap_or_default();
                sample(&mut cpu, view.info.cpu_time_ns, at_ns);
                Row {
                    host,
                    name: clean(&view.info.name),
                    devices: count_devices(&view.info.devices),
                    cpu,
                    view,
                }
            })
            .collect();
        rows.splice(at..at, new);
        self.rows = rows;
        self.by_domid = self
            .rows
            .iter()
            .enumerate()
            .map(|(i, r)| (r.key(), i))
            .collect();
        // On its own host only: another host's domain of that name is
        // another domain.
        let find = |rows: &[Row], (h, uuid, name): &(HostId, uuid::Uuid, String)| {
            rows.iter()
                .find(|r| r.host == *h && (r.view.info.uuid == *uuid || r.name == *name))
                .map(Row::key)
        };
        let keep = match self.vanished.as_ref().and_then(|v| find(&self.rows, v)) {
            Some(back) => {
                self.vanished = None;
                Some(back)
            }
            None => {
                let here = keep.filter(|d| self.by_domid.contains_key(d));
                let again = here.or_else(|| previous.as_ref().and_then(|p| find(&self.rows, p)));
                if again.is_none() && self.vanished.is_none() {
                    self.vanished = previous;
                }
                again
            }
        };
        self.reorder(keep);
    }

    /// Returns true when it shows more than that changed (a domain came,
    /// went, paused or shut down): time for a whole refresh.
    /// Take an I/O counter read: rates from the delta since the last.
    pub fn apply_io(&mut self, host: HostId, io: &[crate::backend::IoCounters], at_ns: u64) {
        for row in self.rows.iter_mut().filter(|r| r.host == host) {
            let now = io.iter().find(|c| c.domid == row.view.info.domid);
            let s = &mut row.cpu;
            s.io_rates = match (now, &s.io) {
                (Some(now), Some((prev, then))) if at_ns > *then => {
                    io_rates(prev, now, (at_ns - then) as f64 / 1e9)
                }
                _ => IoRates::default(),
            };
            s.io = now.map(|c| (*c, at_ns));
            let r = s.io_rates;
            let total = [r.net_tx, r.net_rx, r.vbd_rd, r.vbd_wr];
            if total.iter().any(Option::is_some) {
                s.io_history
                    .push_back(total.iter().flatten().sum::<f64>().round() as u64);
                while s.io_history.len() > HISTORY {
                    s.io_history.pop_front();
                }
            }
        }
        if self.column().is_io() {
            let keep = self.selected_domid();
            self.reorder(keep);
        }
    }

    /// Take a tick's cheap read: CPU time, running or blocked, memory.
    pub fn apply_stats(
        &mut self,
        host: HostId,
        stats: &[crate::backend::DomainStats],
        at_ns: u64,
    ) -> bool {
        let keep = self.selected_domid();
        self.now_ns = at_ns;
        let first = self.rows.partition_point(|r| r.host < host);
        let mine = self.rows[first..]
            .iter()
            .take_while(|r| r.host == host)
            .count();
        let mut changed = stats.len() != mine;
        for (i, s) in stats.iter().enumerate() {
            // Backends list domains in a stable order: the row is usually
            // at the same place.
            let at = match self.rows.get(first + i) {
                Some(r) if r.host == host && r.view.info.domid == s.domid => Some(first + i),
                _ => self.by_domid.get(&DomKey::new(host, s.domid)).copied(),
            };
            let Some(row) = at.and_then(|i| self.rows.get_mut(i)) else {
                changed = true;
                continue;
            };
            let info = &mut row.view.info;
            let (a, b) = (info.flags, s.flags);
            if (a.paused, a.shutdown, a.dying) != (b.paused, b.shutdown, b.dying)
                || info.shutdown_reason != s.shutdown_reason
            {
                changed = true;
            }
            info.flags = s.flags;
            info.shutdown_reason = s.shutdown_reason;
            info.cpu_time_ns = s.cpu_time_ns;
            info.memory_kib = s.memory_kib;
            sample(&mut row.cpu, s.cpu_time_ns, at_ns);
        }
        // Only an order that depends on what changed is redone.
        if matches!(
            self.column(),
            Column::CpuTime | Column::CpuPct | Column::Mem | Column::State
        ) {
            self.reorder(keep);
        }
        changed
    }

    pub fn set_filter(&mut self, filter: &str) {
        self.filter = filter.to_string();
        let keep = self.selected_domid();
        self.reorder(keep);
    }

    pub fn cycle_sort(&mut self, forward: bool) {
        let n = Column::ALL.len();
        let step = |s: usize| {
            if forward {
                (s + 1) % n
            } else {
                (s + n - 1) % n
            }
        };
        self.sort = step(self.sort);
        // HOST is a column only in a fleet.
        if self.column() == Column::Host && !self.fleet() {
            self.sort = step(self.sort);
        }
        let keep = self.selected_domid();
        self.reorder(keep);
    }

    pub fn sort_by(&mut self, column: Column) {
        let idx = Column::ALL.iter().position(|c| *c == column).unwrap_or(0);
        if idx == self.sort {
            self.descending = !self.descending;
        } else {
            self.sort = idx;
            self.descending = false;
        }
        let keep = self.selected_domid();
        self.reorder(keep);
    }

    /// Sort by the column headed `title`, in the given direction (the
    /// saved preference); an unknown title leaves the sort as it is and
    /// gives false.
    pub fn set_sort(&mut self, title: &str, descending: bool) -> bool {
        let Some(idx) = Column::ALL.iter().position(|c| c.title() == title) else {
            return false;
        };
        self.sort = idx;
        self.descending = descending;
        let keep = self.selected_domid();
        self.reorder(keep);
        true
    }

    pub fn reverse(&mut self) {
        self.descending = !self.descending;
        let keep = self.selected_domid();
        self.reorder(keep);
    }

    /// The filter's `host:WORD` terms (hosts whose name contains WORD) and
    /// the rest (matched against names).
    fn split_filter(&self) -> (Vec<String>, String) {
        let mut hosts = Vec::new();
        let mut rest = Vec::new();
        for w in self.filter.split_whitespace() {
            match w.strip_prefix("host:") {
                Some(h) => hosts.push(h.to_lowercase()),
                None => rest.push(w),
            }
        }
        (hosts, rest.join(" "))
    }

    fn matcher(&mut self) -> Box<dyn Fn(&Row) -> bool> {
        let (hosts, rest) = self.split_filter();
        let names: Vec<bool> = self
            .host_names
            .iter()
            .map(|n| {
                let n = n.to_lowercase();
                hosts.is_empty() || hosts.iter().any(|h| n.contains(h.as_str()))
            })
            .collect();
        let name = self.name_matcher(&rest);
        Box::new(move |r: &Row| {
            names
                .get(usize::from(r.host.0))
                .copied()
                .unwrap_or(hosts.is_empty())
                && name(&r.name)
        })
    }

    fn name_matcher(&mut self, f: &str) -> Box<dyn Fn(&str) -> bool> {
        self.filter_error = None;
        let f = f.trim().to_string();
        if f.is_empty() {
            return Box::new(|_| true);
        }
        // Plain words match as case-insensitive substrings; anything with
        // regex syntax is a regex.
        if f.chars().any(|c| "^$.*+?()[]{}|\\".contains(c)) {
            match regex::RegexBuilder::new(&f).case_insensitive(true).build() {
                Ok(re) => return Box::new(move |name| re.is_match(name)),
                Err(e) => {
                    self.filter_error = Some(
                        e.to_string()
                            .lines()
                            .last()
                            .unwrap_or("bad regex")
                            .trim()
                            .to_string(),
                    );
                }
            }
        }
        let needle = f.to_lowercase();
        Box::new(move |name: &str| name.to_lowercase().contains(&needle))
    }

    fn reorder(&mut self, keep: Option<DomKey>) {
        let matcher = self.matcher();
        let mut order: Vec<usize> = (0..self.rows.len())
            .filter(|i| matcher(&self.rows[*i]))
            .collect();
        let col = self.column();
        let rows = &self.rows;

        let now = self.now_ns;
        let key_f64 = |i: usize| -> f64 {
            let info = &rows[i].view.info;
            match col {
                Column::CpuTime => info.cpu_time_ns as f64,
                Column::CpuPct => rows[i].cpu.pct,
                Column::Mem => info.memory_kib as f64,
                Column::Vcpus => f64::from(info.vcpus),
                Column::Uptime => {
                    if info.flags.shutdown || info.flags.dying {
                        0.0
                    } else {
                        info.start_ns.map_or(0.0, |s| now.saturating_sub(s) as f64)
                    }
                }
                Column::Devices => info.devices.len() as f64,
                // Not counted sorts below none.
                Column::NetTx => rows[i].cpu.io_rates.net_tx.unwrap_or(-1.0),
                Column::NetRx => rows[i].cpu.io_rates.net_rx.unwrap_or(-1.0),
                Column::VbdRd => rows[i].cpu.io_rates.vbd_rd.unwrap_or(-1.0),
                Column::VbdWr => rows[i].cpu.io_rates.vbd_wr.unwrap_or(-1.0),
                _ => 0.0,
            }
        };
        order.sort_by(|&a, &b| {
            let (ia, ib) = (&rows[a].view.info, &rows[b].view.info);
            let primary = match col {
                // Ids are per host: by host first.
                Column::Id => rows[a]
                    .host
                    .cmp(&rows[b].host)
                    .then(ia.domid.cmp(&ib.domid)),
                Column::Name => rows[a]
                    .name
                    .to_lowercase()
                    .cmp(&rows[b].name.to_lowercase()),
                Column::State => state_rank(ia).cmp(&state_rank(ib)),
                Column::Host => rows[a].host.cmp(&rows[b].host),
                _ => key_f64(a).total_cmp(&key_f64(b)),
            };
            let primary = if self.descending {
                primary.reverse()
            } else {
                primary
            };
            primary
                .then(rows[a].host.cmp(&rows[b].host))
                .then(ia.domid.cmp(&ib.domid))
        });
        self.order = order;
        self.selected = keep
            .and_then(|d| self.order.iter().position(|i| self.rows[*i].key() == d))
            .unwrap_or(self.selected)
            .min(self.order.len().saturating_sub(1));
    }

    /// Select the row at `pos` in the order: the operator's (or the app's)
    /// choice, so a domain that went away no longer claims the cursor.
    pub fn select(&mut self, pos: usize) {
        self.vanished = None;
        self.selected = pos.min(self.order.len().saturating_sub(1));
    }

    pub fn move_by(&mut self, delta: isize) {
        self.vanished = None;
        if self.order.is_empty() {
            self.selected = 0;
            return;
        }
        let max = self.order.len() as isize - 1;
        self.selected = (self.selected as isize + delta).clamp(0, max) as usize;
    }

    /// Keep the selection inside a window of `height` rows.
    pub fn scroll_into_view(&mut self, height: usize) {
        if height == 0 {
            return;
        }
        if self.selected < self.offset {
            self.offset = self.selected;
        } else if self.selected >= self.offset + height {
            self.offset = self.selected + 1 - height;
        }
        self.offset = self.offset.min(self.order.len().saturating_sub(height));
    }

    pub fn toggle_tag(&mut self) {
        if let Some(d) = self.selected_domid()
            && !self.tags.remove(&d)
        {
            self.tags.insert(d);
        }
    }

    /// Tagged domains, or the selected one when none are tagged.
    pub fn targets(&self) -> Vec<DomKey> {
        if self.tags.is_empty() {
            self.selected_domid().into_iter().collect()
        } else {
            self.tags.iter().copied().collect()
        }
    }

    pub fn name_of(&self, domid: DomKey) -> String {
        self.row(domid)
            .map_or_else(|| format!("domain {domid}"), |r| r.name.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{ShutdownReason, StateFlags};

    fn with(flags: StateFlags, reason: Option<ShutdownReason>) -> u8 {
        state_rank(&crate::backend::test_info(flags, reason))
    }

    #[test]
    fn running_and_blocked_sort_together_then_paused_crashed_shut_dying() {
        let flags = |set: fn(&mut StateFlags)| {
            let mut f = StateFlags::default();
            set(&mut f);
            f
        };
        let running = flags(|f| f.running = true);
        let blocked = flags(|f| f.blocked = true);
        let paused = flags(|f| f.paused = true);
        let shut = flags(|f| f.shutdown = true);
        let dying = flags(|f| f.dying = true);
        assert_eq!(with(running, None), with(blocked, None));
        let order = [
            with(running, None),
            with(paused, None),
            with(shut, Some(ShutdownReason::Crash)),
            with(shut, Some(ShutdownReason::Poweroff)),
            with(dying, None),
        ];
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{order:?}");
    }
}
