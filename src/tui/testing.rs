//! A deterministic driver for the whole TUI, for snapshot tests and
//! benchmarks: the simulator in memory with a manual clock, effects run
//! inline, drawing into ratatui's `TestBackend`.

use std::path::Path;
use std::sync::Arc;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers, MouseButton, MouseEvent, MouseEventKind};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;

use super::action::{Action, Effect};
use super::app::App;
use super::theme::{Theme, pick};
use super::worker::Worker;
use crate::backend::Hypervisor;
use crate::backend::sim::SimHypervisor;
use crate::clock::ManualClock;
use crate::engine::Engine;

/// 2026-11-22 00:00:00 UTC.
pub const T0: u64 = 1_795_305_600 * 1_000_000_000;

pub struct Harness {
    pub app: App,
    engine: Arc<Engine>,
    pub worker: Worker,
    pub clock: Arc<ManualClock>,
    pub sim: SimHypervisor,
    terminal: Terminal<TestBackend>,
}

pub struct HarnessOptions<'a> {
    pub size: (u16, u16),
    pub theme: &'a str,
    pub read_only: bool,
    /// Config library directory (seeded with the examples if absent).
    pub config_dir: &'a Path,
    pub recovery_dir: &'a Path,
    /// A state directory shared with other engines (other "processes"):
    /// the simulated host and the store persist there. `None`: in memory.
    pub state_dir: Option<&'a Path>,
}

/// The pid the harness's TUI records its journal entries under, so that
/// snapshots do not change from run to run.
pub const TEST_PID: u32 = 4242;

/// A simulated host persisting in `state_dir`, as every domus process on
/// it opens it.
pub fn shared_sim(state_dir: &Path, clock: Arc<ManualClock>) -> SimHypervisor {
    let opened = SimHypervisor::open(crate::backend::sim::SimOptions {
        state_dir: Some(state_dir.join("sim")),
        clock,
        console_archive: Some(state_dir.to_path_buf()),
        ..Default::default()
    });
    match opened {
        Ok(sim) => sim,
        Err(e) => panic!("opening the simulated host: {e}"),
    }
}

/// An engine over a simulated host in memory, recording its entries as
/// the harness's TUI (another host of a fleet, in tests).
pub fn sim_engine(clock: Arc<ManualClock>) -> (SimHypervisor, Arc<Engine>) {
    let sim = SimHypervisor::in_memory(clock.clone());
    let hv: Arc<dyn Hypervisor> = Arc::new(sim.clone());
    match Engine::in_memory(hv, clock) {
        Ok(e) => (
            sim,
            Arc::new(e.with_source(crate::engine::Source {
                kind: crate::engine::SourceKind::Tui,
                pid: Some(TEST_PID),
            })),
        ),
        Err(e) => panic!("an in-memory engine: {e}"),
    }
}

impl Harness {
    pub fn new(o: HarnessOptions<'_>) -> Harness {
        Self::fleet(o, |_| Vec::new())
    }

    /// A harness over a fleet: its own simulated host first (named
    /// `local`), then the hosts `others` makes (given the harness's clock).
    pub fn fleet(
        o: HarnessOptions<'_>,
        others: impl FnOnce(Arc<ManualClock>) -> Vec<crate::fleet::Member>,
    ) -> Harness {
        let clock = ManualClock::new(T0);
        let (sim, engine) = match o.state_dir {
            None => {
                let sim = SimHypervisor::in_memory(clock.clone());
                let hv: Arc<dyn Hypervisor> = Arc::new(sim.clone());
                (sim, Engine::in_memory(hv, clock.clone()))
            }
            Some(dir) => {
                let sim = shared_sim(dir, clock.clone());
                let hv: Arc<dyn Hypervisor> = Arc::new(sim.clone());
                (sim, Engine::persistent(hv, clock.clone(), dir))
            }
        };
        let engine = match engine {
            Ok(e) => Arc::new(e.with_source(crate::engine::Source {
                kind: crate::engine::SourceKind::Tui,
                pid: Some(TEST_PID),
            })),
            Err(e) => panic!("an in-memory engine: {e}"),
        };
        let _ = super::library::seed(o.config_dir);
        let (themes, _) = Theme::load_all(None);
        let theme = pick(&themes, o.theme).unwrap_or_else(|_| themes[0].clone());
        let mut app = App::new(
            theme,
            themes,
            o.read_only,
            o.config_dir.to_path_buf(),
            o.size,
        );
        app.pid = TEST_PID;
        let local = crate::fleet::Member::open(
            crate::fleet::HostSpec {
                name: "local".into(),
                target: crate::fleet::Target::Local,
            },
            Arc::clone(&engine),
            Box::new(|| Err("the test's host cannot be opened again".into())),
        );
        let mut members = vec![local];
        members.extend(others(clock.clone()));
        let names: Vec<String> = members.iter().map(|m| m.name.clone()).collect();
        app.set_hosts(&names);
        let worker = Worker::for_fleet(
            Arc::new(crate::fleet::Fleet::new(members)),
            o.config_dir.to_path_buf(),
            o.recovery_dir.to_path_buf(),
            None,
        );
        let terminal = match Terminal::new(TestBackend::new(o.size.0, o.size.1)) {
            Ok(t) => t,
            Err(e) => match e {},
        };
        let mut h = Harness {
            app,
            engine,
            worker,
            clock,
            sim,
            terminal,
        };
        h.run_effects(App::init());
        h
    }

    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    fn run_effects(&mut self, effects: Vec<Effect>) {
        let mut queue: std::collections::VecDeque<Effect> = effects.into();
        let mut guard = 0;
        while let Some(effect) = queue.pop_front() {
            guard += 1;
            if guard > 1000 {
                break;
            }
            // As the real loop: a whole refresh looks for shutdowns too
            // (there on a lane of its own; here first, so one step shows
            // the policy's outcome).
            if effect == Effect::Refresh {
                for action in self.worker.run(Effect::Policies) {
                    queue.extend(self.app.update(action));
                }
            }
            for action in self.worker.run(effect) {
                queue.extend(self.app.update(action));
            }
        }
        for action in self.worker.poll_consoles() {
            let more = self.app.update(action);
            self.run_effects(more);
        }
    }

    pub fn dispatch(&mut self, action: Action) {
        let effects = self.app.update(action);
        self.run_effects(effects);
    }

    pub fn key_event(&mut self, key: KeyEvent) {
        self.dispatch(Action::Key(key));
    }

    pub fn key(&mut self, code: KeyCode) {
        self.key_event(KeyEvent::new(code, KeyModifiers::NONE));
    }

    pub fn ctrl(&mut self, c: char) {
        self.key_event(KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL));
    }

    pub fn shift(&mut self, code: KeyCode) {
        self.key_event(KeyEvent::new(code, KeyModifiers::SHIFT));
    }

    /// Type each character as a key press (`\r` and `\n` are Enter).
    pub fn type_text(&mut self, text: &str) {
        for c in text.chars() {
            match c {
                '\r' | '\n' => self.key(KeyCode::Enter),
                c => self.key(KeyCode::Char(c)),
            }
        }
    }

    pub fn click(&mut self, column: u16, row: u16) {
        self.dispatch(Action::Mouse(MouseEvent {
            kind: MouseEventKind::Down(MouseButton::Left),
            column,
            row,
            modifiers: KeyModifiers::NONE,
        }));
    }

    /// Let time pass and poll the engine, as the refresh tick does.
    pub fn tick(&mut self, secs: f64) {
        self.clock.advance_secs(secs);
        self.run_effects(vec![Effect::Refresh]);
        // As the tick does while I/O is on screen.
        if self.app.io_shown() {
            self.run_effects(vec![Effect::IoStats]);
        }
    }

    /// Draw one frame (render + diff against the previous one).
    pub fn draw(&mut self) {
        let app = &self.app;
        let _ = self.terminal.draw(|f| super::ui::draw(f, app));
    }

    pub fn buffer(&mut self) -> Buffer {
        let app = &self.app;
        let _ = self.terminal.draw(|f| super::ui::draw(f, app));
        self.terminal.backend().buffer().clone()
    }

    /// The screen as text, one line per row, trailing spaces trimmed.
    pub fn screen(&mut self) -> String {
        let buf = self.buffer();
        let area = buf.area;
        let mut out = String::new();
        for y in 0..area.height {
            let mut line = String::new();
            for x in 0..area.width {
                line.push_str(buf[(x, y)].symbol());
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}
