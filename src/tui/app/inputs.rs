//! What the runtime reports besides keys: console bytes, library scans,
//! ticks and statistics.

use super::{App, CHECK_OTHERS_EVERY, FULL_REFRESH_EVERY, Mode};
use crate::backend::DomainStats;
use crate::fleet::{DomKey, HostId};
use crate::tui::action::Effect;
use crate::tui::console::ConsoleBuffer;
use crate::tui::library::LibraryEntry;
use crate::tui::ui::layout;

impl App {
    pub(super) fn on_console_bytes(&mut self, domid: DomKey, bytes: &[u8]) -> Vec<Effect> {
        let (rows, cols) = layout::console_size(self.size);
        self.consoles
            .entry(domid)
            .or_insert_with(|| ConsoleBuffer::new(rows, cols))
            .feed(bytes);
        Vec::new()
    }

    /// Nothing to show; `c` tries again.
    pub(super) fn on_console_failed(&mut self, domid: DomKey) -> Vec<Effect> {
        self.consoles.remove(&domid);
        if matches!(&self.mode, Mode::Console(v) if v.domid == domid) {
            self.mode = Mode::Normal;
        }
        Vec::new()
    }

    pub(super) fn on_library(&mut self, entries: Vec<LibraryEntry>) -> Vec<Effect> {
        self.library.entries = entries;
        self.library.selected = self
            .library
            .selected
            .min(self.library.entries.len().saturating_sub(1));
        self.library_scan_pending = false;
        if std::mem::take(&mut self.library_rescan) {
            self.library_scan_pending = true;
            return vec![Effect::LoadLibrary];
        }
        Vec::new()
    }

    /// A burst of file events (2000 files copied in) is one scan at a
    /// time, not one per event.
    pub(super) fn on_library_changed(&mut self) -> Vec<Effect> {
        if self.library_scan_pending {
            self.library_rescan = true;
            return Vec::new();
        }
        self.library_scan_pending = true;
        vec![Effect::LoadLibrary]
    }

    /// Most ticks read only what changes by itself; now and then a whole
    /// refresh catches what no event announced.
    pub(super) fn on_tick(&mut self) -> Vec<Effect> {
        self.ticks += 1;
        let mut effects = self.tick_reads();
        if self.loaded && self.io_shown() {
            effects.push(Effect::IoStats);
        }
        effects
    }

    fn tick_reads(&self) -> Vec<Effect> {
        if !self.loaded || self.ticks.is_multiple_of(FULL_REFRESH_EVERY) {
            vec![Effect::Refresh]
        } else if self.ticks.is_multiple_of(CHECK_OTHERS_EVERY) && self.others_at_work() {
            // Another process's operation in flight: if it died, its repair
            // should not wait for the next whole refresh.
            vec![Effect::Stats, Effect::Policies]
        } else {
            vec![Effect::Stats]
        }
    }

    pub(super) fn on_stats(
        &mut self,
        host: HostId,
        at_ns: u64,
        stats: &[DomainStats],
    ) -> Vec<Effect> {
        if !self.loaded {
            return vec![Effect::Refresh];
        }
        self.now_ns = at_ns;
        let changed = self.table.apply_stats(host, stats, at_ns);
        let (_, h) = layout::table_rows(self.size);
        self.table.scroll_into_view(h);
        if changed {
            vec![Effect::RefreshHost(host)]
        } else {
            Vec::new()
        }
    }
}
