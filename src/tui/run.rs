//! The real event loop: terminal input, engine results and console bytes,
//! and a refresh tick, batched into actions; one draw per batch.

use std::io::stdout;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crossterm::event::{
    DisableBracketedPaste, DisableMouseCapture, EnableBracketedPaste, EnableMouseCapture, Event,
    EventStream,
};
use crossterm::execute;
use futures::StreamExt;
use tokio::sync::mpsc;

use super::action::{Action, Effect};
use super::app::{App, Level};
use super::lanes::Lanes;
use super::theme::{Theme, pick};
use super::worker::Worker;
use crate::fleet::Fleet;
use crate::store::follow::Changes;

pub struct TuiOptions {
    /// `--theme`; `None`: the saved preference, else dark.
    pub theme: Option<String>,
    /// Where the TUI keeps its preferences (theme, sort, filter).
    pub prefs_path: PathBuf,
    /// The operator's key overrides (see `keymap::overrides`).
    pub keys_path: PathBuf,
    pub read_only: bool,
    pub delay: Duration,
    pub config_dir: PathBuf,
    pub state_dir: PathBuf,
    pub user_theme_dir: PathBuf,
}

/// Run the TUI until the operator quits. The terminal is restored on every
/// way out, panics included.
pub fn run(fleet: Arc<Fleet>, opts: TuiOptions) -> Result<(), String> {
    let (themes, problems) = Theme::load_all(Some(&opts.user_theme_dir));
    let (prefs, prefs_problem) = super::prefs::Prefs::load(&opts.prefs_path);
    let theme =
        pick(&themes, opts.theme.as_deref().unwrap_or("dark")).map_err(|e| e.to_string())?;
    let seeded = super::library::seed(&opts.config_dir).map_err(|e| {
        format!(
            "cannot create the config directory {}: {e}",
            opts.config_dir.display()
        )
    })?;
    if let Some(guest) = std::env::var_os("DOMUS_GUEST_DIR")
        && let Err(e) = super::library::offer_test_guest(&opts.config_dir, Path::new(&guest))
    {
        tracing::warn!(error = %e, "adding the test guest to the library");
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;

    use std::io::IsTerminal;
    if !std::io::stdin().is_terminal() || !std::io::stdout().is_terminal() {
        return Err("the TUI needs a terminal (run it in one, or use ssh -t); for scripts use domus list, create, …".into());
    }
    let mut terminal =
        ratatui::try_init().map_err(|e| format!("cannot set up the terminal: {e}"))?;
    // A paste arrives as one event, never as keys: pasted "dy" must not
    // destroy the selected domain.
    let _ = execute!(stdout(), EnableMouseCapture, EnableBracketedPaste);
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let _ = execute!(stdout(), DisableMouseCapture, DisableBracketedPaste);
        default_hook(info);
    }));
    let size = terminal
        .size()
        .map(|s| (s.width, s.height))
        .unwrap_or((80, 24));
    let mut app = App::new(theme, themes, opts.read_only, opts.config_dir.clone(), size);
    let names: Vec<String> = fleet.members().map(|(_, m)| m.name.clone()).collect();
    app.set_hosts(&names);
    let (keys, notes) = super::keymap::Keymap::load(&opts.keys_path);
    app.keys = keys;
    app.key_notes(&notes);
    app.apply_prefs(&prefs, opts.theme.is_some());
    if let Some(p) = prefs_problem {
        app.log(Level::Warn, p);
    }
    for p in problems {
        app.log(Level::Warn, format!("theme skipped: {p}"));
    }
    if seeded {
        app.log(
            Level::Info,
            format!("created {} with example configs", opts.config_dir.display()),
        );
    }
    let result = runtime.block_on(event_loop(&mut terminal, app, fleet, &opts));
    let _ = execute!(stdout(), DisableMouseCapture, DisableBracketedPaste);
    ratatui::restore();
    result
}

async fn event_loop(
    terminal: &mut ratatui::DefaultTerminal,
    mut app: App,
    fleet: Arc<Fleet>,
    opts: &TuiOptions,
) -> Result<(), String> {
    let (action_tx, mut actions) = mpsc::unbounded_channel::<Action>();

    // Effects run on lanes: one domain's slow operation never holds up the
    // refresh, another domain or a console (see lanes.rs).
    let sink_tx = action_tx.clone();
    let sink: super::worker::Sink = Arc::new(move |a| {
        let _ = sink_tx.send(a);
    });
    let mut worker = Worker::for_fleet(
        fleet,
        opts.config_dir.clone(),
        opts.state_dir.join("recovery"),
        Some(Arc::clone(&sink)),
    );
    worker.set_prefs_path(opts.prefs_path.clone());
    let worker = Arc::new(worker);
    let lanes = Lanes::new(worker, sink);

    // Any domus process's commit to the state store (a CLI command, a
    // supervisor applying a policy) refreshes the view at once, without
    // polling the store.
    let changed_tx = action_tx.clone();
    let state_dir = opts.state_dir.clone();
    std::thread::Builder::new()
        .name("domus-store-watch".into())
        .spawn(move || {
            let changes = Changes::watch(&state_dir);
            loop {
                if changes.wait(Duration::from_secs(3600))
                    && changed_tx.send(Action::StoreChanged).is_err()
                {
                    return;
                }
            }
        })
        .map_err(|e| format!("starting the store watcher: {e}"))?;

    // Configs copied into the library by hand show within a moment.
    let library_tx = action_tx.clone();
    let _library_watch = super::library::watch(&opts.config_dir, move || {
        let _ = library_tx.send(Action::LibraryChanged);
    });

    let send = |effects: Vec<Effect>| {
        for e in effects {
            lanes.submit(e);
        }
    };
    send(App::init());
    terminal
        .draw(|f| super::ui::draw(f, &app))
        .map_err(|e| e.to_string())?;

    let mut input = EventStream::new();
    let mut tick = tokio::time::interval(opts.delay);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| e.to_string())?;
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .map_err(|e| e.to_string())?;
    loop {
        let first = tokio::select! {
            ev = input.next() => match ev {
                Some(Ok(Event::Key(k))) => Action::Key(k),
                Some(Ok(Event::Mouse(m))) => Action::Mouse(m),
                Some(Ok(Event::Resize(w, h))) => Action::Resize(w, h),
                Some(Ok(Event::Paste(text))) => Action::Paste(text),
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(format!("reading the terminal: {e}")),
                None => return Ok(()),
            },
            Some(a) = actions.recv() => a,
            _ = tick.tick() => Action::Tick,
            _ = term.recv() => return Ok(()),
            _ = hup.recv() => return Ok(()),
        };
        send(app.update(first));
        // Batch whatever else is already waiting, then draw once. The
        // budget bounds a batch under a console flood, so a key pressed
        // meanwhile waits at most one batch (select! picks ready branches
        // at random).
        let budget = std::time::Instant::now() + Duration::from_millis(30);
        while std::time::Instant::now() < budget {
            match actions.try_recv() {
                Ok(a) => send(app.update(a)),
                Err(_) => break,
            }
        }
        if app.quit {
            return Ok(());
        }
        terminal
            .draw(|f| super::ui::draw(f, &app))
            .map_err(|e| e.to_string())?;
    }
}
