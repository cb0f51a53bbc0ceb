//! The scriptable command line: the same engine as the TUI, one verb per
//! operation. Exit codes: 0 ok, 1 domain or config error (one line on
//! stderr), 2 usage.

mod console;
mod convert;
use crate::config::device_args;
mod events;
mod fleet;
mod list;
mod wait;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use crate::backend::select::{self, BackendChoice, OpenOptions};
use crate::backend::sim::{DEFAULT_SEED, Faults};
use crate::backend::{DomId, ShutdownReason};
use crate::clock::{Clock, SystemClock};
use crate::config::{self, DeviceRef};
use crate::engine::{Engine, SourceKind};
use crate::fsx::{self, FsxError};

#[derive(Debug, Parser)]
#[command(
    name = "domus",
    version,
    about = "A console manager for virtual-machine domains"
)]
pub struct Cli {
    /// Hypervisor backend.
    #[arg(
        long,
        value_enum,
        default_value = "auto",
        env = "DOMUS_BACKEND",
        global = true
    )]
    pub backend: BackendChoice,

    /// Where domus keeps state: the simulated host, records, logs
    /// [default: $XDG_STATE_HOME/domus].
    #[arg(long, env = "DOMUS_STATE_DIR", global = true)]
    pub state_dir: Option<PathBuf>,

    /// QEMU backend: where running domains keep their sockets, logs and
    /// records [default: $XDG_RUNTIME_DIR/domus].
    #[arg(long, env = "DOMUS_RUNTIME_DIR", global = true)]
    pub runtime_dir: Option<PathBuf>,

    /// QEMU backend: acceleration [default: kvm when the CPU has vmx/svm, else tcg].
    #[arg(long, env = "DOMUS_ACCEL", global = true, value_parser = ["kvm", "tcg"])]
    pub accel: Option<String>,

    /// A libvirt connection URI (`qemu:///system`, `qemu+tcp://HOST/system`,
    /// `test:///default`), as `[NAME=]URI`; implies --backend libvirt.
    /// Repeat it for a fleet of hosts; `local` is domus's own backend here
    /// (--backend) [default: the hosts file, when there is one].
    #[arg(long, env = "DOMUS_CONNECT", global = true, action = clap::ArgAction::Append)]
    pub connect: Vec<String>,

    /// In a fleet: the host a command goes to, by its name (a domain may
    /// also be given as HOST:DOMAIN).
    #[arg(long = "on", value_name = "HOST", env = "DOMUS_ON", global = true)]
    pub on: Option<String>,

    /// The fleet's hosts, one `NAME = URI` per line
    /// [default: $XDG_CONFIG_HOME/domus/hosts].
    #[arg(long, env = "DOMUS_HOSTS_FILE", global = true)]
    pub hosts_file: Option<PathBuf>,

    /// The config library for the TUI [default: $XDG_CONFIG_HOME/domus/domains].
    #[arg(long, env = "DOMUS_CONFIG_DIR")]
    pub config_dir: Option<PathBuf>,

    /// TUI theme: dark, light, high-contrast, or one from
    /// $XDG_CONFIG_HOME/domus/themes [default: the last one chosen, else dark].
    #[arg(long)]
    pub theme: Option<String>,

    /// TUI: no action that changes a domain or a file.
    #[arg(long)]
    pub read_only: bool,

    /// TUI refresh interval in seconds.
    #[arg(long, default_value_t = 1.0, value_parser = parse_delay)]
    pub delay: f64,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List domains, as `xl list` does.
    List {
        /// Machine-readable output.
        #[arg(long, conflicts_with = "long")]
        json: bool,
        /// The long form, as `xm list -l`: each domain as xend's
        /// `(domain …)` listing, runtime fields and config (domus reads it
        /// back as a config).
        #[arg(short, long)]
        long: bool,
        /// Only these domains (names or ids), in this order.
        domains: Vec<String>,
    },
    /// Build a domain from a config file (sxp or xl.cfg).
    Create {
        /// The config file: sxp or xl.cfg (see README: Config format), or
        /// the name of a config in the library.
        file: PathBuf,
    },
    /// Destroy a domain at once.
    Destroy {
        /// Domain name or id.
        domain: String,
    },
    /// Pause a domain.
    Pause {
        /// Domain name or id.
        domain: String,
    },
    /// Unpause a domain.
    Unpause {
        /// Domain name or id.
        domain: String,
    },
    /// Reboot a domain: its guest shuts down and on_reboot applies (as
    /// `shutdown --reboot`).
    Reboot {
        /// Domain name or id.
        domain: String,
        /// Wait until the reboot's policy has run; exit 1 if it has not
        /// within --timeout.
        #[arg(long, short)]
        wait: bool,
        /// With --wait: how long to wait, in seconds.
        #[arg(long, default_value_t = 60, requires = "wait")]
        timeout: u64,
    },
    /// Start a shut-down domain again from its config (one whose policy
    /// preserved it, `---s--`): same uuid, a new id.
    Start {
        /// Domain name or id.
        domain: String,
    },
    /// Ask a domain to shut down (power off unless told otherwise).
    Shutdown {
        /// Domain name or id.
        domain: String,
        /// Reboot instead (on_reboot applies).
        #[arg(long, conflicts_with = "suspend")]
        reboot: bool,
        /// Suspend, to be saved with `domus save`.
        #[arg(long)]
        suspend: bool,
        /// Wait until the domain has shut down and its policy has run;
        /// exit 1 if it has not within --timeout.
        #[arg(long, short)]
        wait: bool,
        /// With --wait: how long to wait, in seconds.
        #[arg(long, default_value_t = 60, requires = "wait")]
        timeout: u64,
    },
    /// Hot-plug a device: vbd UNAME DEV [r|w] | vif [mac=…] [bridge=…] [ip=…] | pci BDF.
    Attach {
        /// Domain name or id.
        domain: String,
        /// vbd, vif or pci.
        kind: String,
        /// vbd: UNAME DEV [r|w] (default w, as xl block-attach); vif: KEY=VALUE…; pci: BDF.
        #[arg(allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Remove a device: a vbd name (xvdb), a vif MAC or vifN, or a PCI address.
    Detach {
        /// Domain name or id.
        domain: String,
        /// xvdb, 00:16:3e:01:02:03, vif0, or 0000:00:1f.2.
        device: String,
    },
    /// Set a domain's memory target in MiB (balloon, up to maxmem).
    MemSet {
        /// Domain name or id.
        domain: String,
        /// Target in MiB.
        mib: u64,
        /// Allow a target low enough to hurt (below 64 MiB, 512 MiB for
        /// Domain-0), which the TUI would ask about.
        #[arg(long)]
        force: bool,
    },
    /// Attach to a domain's console; Ctrl-] detaches.
    Console {
        /// Domain name or id (with --log, also a domain that is gone).
        domain: String,
        /// Print the console log instead of attaching: a live domain's, or
        /// the last one kept of a domain that is gone.
        #[arg(long)]
        log: bool,
    },
    /// Show the host's journal: every lifecycle event, from any domus
    /// process, the guests and the hypervisor (as `virsh event`).
    Events {
        /// Only this domain (a name: every incarnation, gone ones too; an
        /// id: the live domain).
        domain: Option<String>,
        /// Keep printing events as they happen.
        #[arg(short, long)]
        follow: bool,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
        /// Also the bookkeeping of operations (started, done).
        #[arg(long)]
        all: bool,
        /// How many past events to print first.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Import configs (xl.cfg, xm configs of plain assignments, sxp) into
    /// the library as NAME.sxp, reporting every key not carried.
    Import {
        /// xl.cfg or sxp files (e.g. /etc/xen/*.cfg).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Replace a config of the same name already in the library.
        #[arg(long)]
        force: bool,
    },
    /// Print a domain's config (or a config file's) as xl.cfg or sxp; what
    /// the format cannot say goes to stderr.
    Export {
        /// A domain name or id (also one that is gone), or a config file.
        target: String,
        #[arg(long, value_enum, default_value_t = convert::ExportFormat::Xl)]
        format: convert::ExportFormat,
    },
    /// Validate config files; prints every error and exits 1 if any.
    Check {
        /// Config files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Also what `create` would check on this host: files exist, the
        /// backend builds the image type, CPUs exist, memory fits, devices
        /// are free.
        #[arg(long)]
        host: bool,
    },
    /// Show one domain: state, config and its timeline (also for domains
    /// that are gone).
    Info {
        /// Domain name or id.
        domain: String,
    },
    /// Save a domain's state to a file (the domain stops).
    Save {
        /// Domain name or id.
        domain: String,
        /// Where to write the saved state.
        file: PathBuf,
    },
    /// Restore a domain saved with `save`.
    Restore {
        /// A file written by `domus save`.
        file: PathBuf,
    },
    /// Print the TUI's keymap in the keys file's own form (every scope,
    /// command and key, the overrides in CONFIG/domus/keys applied), and
    /// any problem with that file; exit 1 if it has one.
    Keys,
    /// Internal: watch one QEMU domain and apply its restart policy (started
    /// by domus for every domain it builds).
    #[command(hide = true)]
    Supervise {
        /// The domain's id.
        domid: DomId,
    },
}

fn parse_delay(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(d) if (0.1..=3600.0).contains(&d) => Ok(d),
        _ => Err(format!("expected seconds between 0.1 and 3600, got {s:?}")),
    }
}

/// `create NAME`: a file when there is one by that name here, else the
/// library's config of that name (file name with or without `.sxp`/`.cfg`,
/// or the domain name inside).
fn library_config(cli: &Cli, file: &Path) -> CliResult<PathBuf> {
    if file.exists() || file.components().count() > 1 {
        return Ok(file.to_path_buf());
    }
    let dir = library_dir(cli);
    let lib = crate::tui::library::Library {
        entries: crate::tui::library::scan(&dir),
        dir,
        selected: 0,
    };
    lib.find(&file.to_string_lossy())
        .map(|e| e.path.clone())
        .ok_or_else(|| {
            Failure::new(format!(
                "no file {}, and no config of that name in the library ({})",
                file.display(),
                lib.dir.display()
            ))
        })
}

/// `domus keys`: the keymap in use as a keys file, problems on stderr.
fn print_keys(path: &Path) -> ExitCode {
    let (keys, problems) = crate::tui::keymap::Keymap::load(path);
    let mut out = format!(
        "# domus keys: SCOPE.COMMAND = KEY[, KEY…]; overrides go in {}\n",
        path.display()
    );
    out.push_str(&keys.to_file_text());
    say(&out);
    for p in problems.problems.iter().chain(&problems.moved) {
        eprintln!("domus: {}", clean(p));
    }
    if problems.problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// The config library: `--config-dir`, else the user's.
fn library_dir(cli: &Cli) -> PathBuf {
    cli.config_dir
        .clone()
        .unwrap_or_else(|| crate::paths::default_config_dir().join("domains"))
}

/// Open the TUI on the chosen backend.
pub fn run_tui(cli: &Cli) -> ExitCode {
    let opened = fleet::specs(cli).and_then(|specs| match specs {
        // A fleet: each host opens on its own lane, so one that does not
        // answer delays nothing.
        Some(s) if s.len() > 1 || cli.connect.is_empty() => {
            let f = fleet::open(cli, s, SourceKind::Tui)?;
            Ok((Arc::new(f), state_dir(cli)))
        }
        single => {
            let spec =
                single
                    .and_then(|s| s.into_iter().next())
                    .unwrap_or(crate::fleet::HostSpec {
                        name: "local".into(),
                        target: crate::fleet::Target::Local,
                    });
            let ctx = open_context(cli, SourceKind::Tui)?;
            // Opened again (with back-off) if its connection is lost.
            let again = fleet::opener(cli, &spec, SourceKind::Tui)?;
            let member = crate::fleet::Member::open(spec, ctx.engine, again);
            Ok((
                Arc::new(crate::fleet::Fleet::new(vec![member])),
                ctx.state_dir,
            ))
        }
    });
    let result = opened.and_then(|(fleet, state_dir)| {
        let config_root = crate::paths::default_config_dir();
        let opts = crate::tui::TuiOptions {
            theme: cli.theme.clone(),
            prefs_path: config_root.join("prefs.json"),
            keys_path: config_root.join("keys"),
            read_only: cli.read_only,
            delay: std::time::Duration::from_secs_f64(cli.delay),
            config_dir: library_dir(cli),
            state_dir,
            user_theme_dir: config_root.join("themes"),
        };
        crate::tui::run(fleet, opts).map_err(Failure::new)
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            tell(&format!("domus: {}", f.msg));
            ExitCode::from(f.code)
        }
    }
}

/// An error for the operator: one line, exit code 1 (2 for bad usage).
#[derive(Debug)]
pub struct Failure {
    pub msg: String,
    pub code: u8,
}

impl Failure {
    pub fn new(msg: impl Into<String>) -> Self {
        Failure {
            msg: msg.into(),
            code: 1,
        }
    }

    pub fn usage(msg: impl Into<String>) -> Self {
        Failure {
            msg: msg.into(),
            code: 2,
        }
    }
}

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure::new(e.to_string())
    }
}

/// A config that does not load, as one line: the first error and a count.
fn config_failure(e: config::ConfigError, file: &Path) -> Failure {
    match e.diagnostics() {
        Some(d) if d.errors.len() > 1 => Failure::new(format!(
            "{} (and {} more; see domus check {})",
            d.error_lines()[0],
            d.errors.len() - 1,
            file.display()
        )),
        _ => Failure::new(e.to_string()),
    }
}

pub type CliResult<T> = Result<T, Failure>;

pub struct Context {
    pub engine: Arc<Engine>,
    pub state_dir: PathBuf,
    /// The fleet's `HOST:` in front of the domain named, which the
    /// domain's own host does not know it by.
    pub strip: Option<String>,
}

impl Context {
    /// The domain as its host names it.
    pub fn local<'a>(&self, dom: &'a str) -> &'a str {
        match &self.strip {
            Some(p) => dom.strip_prefix(p.as_str()).unwrap_or(dom),
            None => dom,
        }
    }
}

pub fn state_dir(cli: &Cli) -> PathBuf {
    cli.state_dir
        .clone()
        .unwrap_or_else(crate::paths::default_state_dir)
}

/// Open the backend and engine, repair what interrupted domus processes
/// left, and apply any pending shutdown policies (all reported on stderr).
pub fn open_context(cli: &Cli, actor: SourceKind) -> CliResult<Context> {
    let state_dir = state_dir(cli);
    fsx::ensure_private_dir(&state_dir).map_err(state_dir_failure)?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let hv = select::open(
        backend_choice(cli),
        open_options(cli, &state_dir, clock.clone(), true)?,
    )?;
    for note in hv.startup_notes() {
        tell(&format!("domus: note: {note}"));
    }
    let engine = Engine::persistent(hv, clock, &state_dir)?.with_actor(actor);
    for note in engine.start()? {
        tell(&format!("domus: {note}"));
    }
    apply_policies(&engine)?;
    Ok(Context {
        engine: Arc::new(engine),
        state_dir,
        strip: None,
    })
}

/// The backend asked for: `--connect URI` means libvirt unless another
/// backend is named.
fn backend_choice(cli: &Cli) -> BackendChoice {
    match (cli.backend, single_target(cli)) {
        (BackendChoice::Auto, Some(crate::fleet::Target::Libvirt(_))) => BackendChoice::Libvirt,
        (b, _) => b,
    }
}

/// The one host `--connect` names (as `[NAME=]URI`), when it names one.
fn single_target(cli: &Cli) -> Option<crate::fleet::Target> {
    let mut hosts = crate::fleet::hosts::from_args(&cli.connect).ok()?;
    (hosts.len() == 1).then(|| hosts.remove(0).target)
}

/// How to open the backend, from the command line and environment.
fn open_options(
    cli: &Cli,
    state_dir: &Path,
    clock: Arc<dyn Clock>,
    adopt: bool,
) -> CliResult<OpenOptions> {
    let sim_seed = match std::env::var("DOMUS_SIM_SEED") {
        Ok(s) => s
            .parse()
            .map_err(|_| Failure::new(format!("DOMUS_SIM_SEED must be a number, got {s:?}")))?,
        Err(_) => DEFAULT_SEED,
    };
    let mut sim_faults = match std::env::var("DOMUS_SIM_FAULTS") {
        Ok(spec) => {
            Faults::parse(&spec).map_err(|e| Failure::new(format!("DOMUS_SIM_FAULTS: {e}")))?
        }
        Err(_) => Faults::default(),
    };
    if let Ok(spec) = std::env::var("DOMUS_SIM_SLOW") {
        sim_faults
            .parse_slow(&spec)
            .map_err(|e| Failure::new(format!("DOMUS_SIM_SLOW: {e}")))?;
    }
    Ok(OpenOptions {
        state_dir: state_dir.to_path_buf(),
        clock,
        sim_seed,
        sim_faults,
        // Only QEMU keeps a runtime directory; the others never create one.
        runtime_dir: match select::resolve(backend_choice(cli)) {
            crate::backend::BackendKind::Qemu => Some(
                crate::paths::runtime_dir(cli.runtime_dir.as_deref(), state_dir)
                    .map_err(|e| Failure::new(e.to_string()))?,
            ),
            _ => cli.runtime_dir.clone(),
        },
        accel: cli.accel.clone(),
        supervisor: std::env::current_exe().ok(),
        adopt,
        connect: match single_target(cli) {
            Some(crate::fleet::Target::Libvirt(uri)) => Some(uri),
            _ => None,
        },
    })
}

fn apply_policies(engine: &Engine) -> CliResult<()> {
    for event in engine.refresh()? {
        tell(&format!("domus: {event}"));
    }
    Ok(())
}

fn domid(ctx: &Context, dom: &str) -> CliResult<DomId> {
    Ok(ctx.engine.resolve(ctx.local(dom))?.domid)
}

/// Run the CLI; `None` command is handled by the caller (the TUI).
pub fn run(cli: &Cli, command: &Command) -> ExitCode {
    match execute(cli, command) {
        Ok(code) => code,
        Err(f) => {
            tell(&format!("domus: {}", f.msg));
            ExitCode::from(f.code)
        }
    }
}

fn execute(cli: &Cli, command: &Command) -> CliResult<ExitCode> {
    if let Command::Check { files, host: false } = command {
        return Ok(check(files, None));
    }
    if let Command::Keys = command {
        return Ok(print_keys(&crate::paths::default_config_dir().join("keys")));
    }
    if let Command::Import { files, force } = command {
        let dir = library_dir(cli);
        // The examples come with a fresh library, whichever command makes it.
        if let Err(err) = crate::tui::library::seed(&dir) {
            tracing::warn!(dir = %dir.display(), error = %err, "seeding the config library");
        }
        return Ok(convert::import(files, &dir, *force));
    }
    if let Command::Export { target, format } = command
        && target.contains('/')
        && let Some(done) = convert::export_file(target, *format)
    {
        return done.map(|()| ExitCode::SUCCESS);
    }
    if let Command::Supervise { domid } = command {
        supervise(cli, *domid)?;
        return Ok(ExitCode::SUCCESS);
    }
    if let Command::List {
        json,
        long,
        domains,
    } = command
    {
        return list_command(cli, *json, *long, domains);
    }
    let ctx = fleet::context(cli, SourceKind::Cli, domain_of(command))?;
    let e = &ctx.engine;
    if let Command::Check { files, host: true } = command {
        return Ok(check(files, Some(e)));
    }
    if matches!(command, Command::Create { .. }) {
        // The library the README points at exists before the TUI first
        // ran (with the test guest's config where QEMU can boot it).
        let dir = library_dir(cli);
        if let Err(err) = crate::tui::library::seed(&dir) {
            tracing::warn!(dir = %dir.display(), error = %err, "seeding the config library");
        }
        if let Some(guest) = std::env::var_os("DOMUS_GUEST_DIR")
            && let Err(err) = crate::tui::library::offer_test_guest(&dir, Path::new(&guest))
        {
            tracing::warn!(error = %err, "adding the test guest to the library");
        }
    }
    match command {
        Command::List { .. } => {}
        Command::Create { file } => {
            let file = &library_config(cli, file)?;
            let (config, diags) = config::load_file(file).map_err(|e| config_failure(e, file))?;
            for w in diags.warning_lines() {
                tell(&w);
            }
            let source = std::path::absolute(file).unwrap_or_else(|_| file.clone());
            let domid = e.create(&config, Some(&source))?;
            say(&format!("{} created as domain {domid}\n", config.name));
        }
        Command::Destroy { domain } => e.destroy(domid(&ctx, domain)?)?,
        Command::Pause { domain } => e.pause(domid(&ctx, domain)?)?,
        Command::Unpause { domain } => e.unpause(domid(&ctx, domain)?)?,
        Command::Start { domain } => {
            let new = e.start_domain(domid(&ctx, domain)?)?;
            say(&format!("{domain} started as domain {new}\n"));
        }
        Command::Reboot {
            domain,
            wait,
            timeout,
        } => {
            let id = domid(&ctx, domain)?;
            let since = wait::mark(&ctx)?;
            e.shutdown(id, ShutdownReason::Reboot)?;
            if *wait {
                wait::shutdown(&ctx, id, since, std::time::Duration::from_secs(*timeout))?;
            } else {
                apply_policies(e)?;
            }
        }
        Command::Shutdown {
            domain,
            reboot,
            suspend,
            wait,
            timeout,
        } => {
            let reason = if *reboot {
                ShutdownReason::Reboot
            } else if *suspend {
                ShutdownReason::Suspend
            } else {
                ShutdownReason::Poweroff
            };
            let id = domid(&ctx, domain)?;
            let since = wait::mark(&ctx)?;
            e.shutdown(id, reason)?;
            if *wait {
                wait::shutdown(&ctx, id, since, std::time::Duration::from_secs(*timeout))?;
            } else {
                // The guest may already be down: apply its policy now.
                apply_policies(e)?;
            }
        }
        Command::Attach { domain, kind, args } => {
            let dev = device_args::parse_device_args(kind, args).map_err(|m| {
                Failure::usage(format!(
                    "{m} (usage: domus attach DOM {})",
                    device_args::USAGE
                ))
            })?;
            let id = domid(&ctx, domain)?;
            let attached = e.attach(id, &dev)?;
            match e.view(id) {
                Ok(v) => say(&format!("{}\n", v.info.attached_text(&attached))),
                Err(_) => say(&format!("attached {attached}\n")),
            }
        }
        Command::Detach { domain, device } => {
            let r: DeviceRef = device.parse().map_err(Failure::usage)?;
            let removed = e.detach(domid(&ctx, domain)?, &r)?;
            say(&format!("detached {removed}\n"));
        }
        Command::MemSet { domain, mib, force } => {
            let info = e.resolve(ctx.local(domain))?;
            if !force {
                low_memory_check(info.domid, &info.name, *mib)?;
            }
            e.set_memory_target(info.domid, *mib)?;
        }
        Command::Console { domain, log: true } => console::print_log(e, ctx.local(domain))?,
        Command::Console { domain, log: false } => console::run(e, domid(&ctx, domain)?)?,
        Command::Events {
            domain,
            follow,
            json,
            all,
            limit,
        } => {
            // Following: what the hypervisor reports by itself (libvirt's
            // events) is journalled as it happens, so it is printed too.
            if *follow {
                let engine = Arc::downgrade(&ctx.engine);
                let watched = e.hypervisor().watch(Box::new(move |domid, notice| {
                    if let Some(e) = engine.upgrade() {
                        let _ = e.observe(domid, notice);
                    }
                }));
                if let Err(err) = watched {
                    tell(&format!(
                        "domus: not following the hypervisor's events: {err}"
                    ));
                }
            }
            events::run(
                e,
                &ctx.state_dir,
                &events::EventsArgs {
                    domain: domain.as_deref().map(|d| ctx.local(d)),
                    follow: *follow,
                    json: *json,
                    all: *all,
                    limit: *limit,
                },
            )?
        }
        Command::Info { domain } => match e.resolve(ctx.local(domain)) {
            Ok(info) => {
                let view = e.view(info.domid)?;
                let timeline = match &view.record {
                    Some(r) => e.timeline(r.uuid)?,
                    None => Vec::new(),
                };
                say(&list::info(&view, &timeline));
            }
            Err(err) => {
                // A domain that is gone still has its last timeline.
                match e.gone_by_name(ctx.local(domain))? {
                    Some(rec) => say(&list::info_gone(&rec, &e.timeline(rec.uuid)?)),
                    None => return Err(err.into()),
                }
            }
        },
        Command::Save { domain, file } => {
            let id = domid(&ctx, domain)?;
            e.save(id, file)?;
            say(&format!("saved domain {id} to {}\n", file.display()));
        }
        Command::Restore { file } => {
            let id = e.restore(file)?;
            say(&format!("restored as domain {id}\n"));
        }
        // A domain by that name first; else a file (`./web` to insist).
        Command::Export { target, format } => match e.resolve(ctx.local(target)) {
            Ok(info) => {
                let view = e.view(info.domid)?;
                let record = view.record.ok_or_else(|| {
                    Failure::new(format!(
                        "domain {target} has no config (domus did not build it)"
                    ))
                })?;
                convert::export(&record.config, *format, &format!("domain {}", record.name))?;
            }
            Err(err) => match e.gone_by_name(ctx.local(target))? {
                Some(rec) => {
                    convert::export(&rec.config, *format, &format!("domain {} (gone)", rec.name))?
                }
                None => match convert::export_file(target, *format) {
                    Some(done) => done?,
                    None => return Err(err.into()),
                },
            },
        },
        Command::Check { .. }
        | Command::Supervise { .. }
        | Command::Import { .. }
        | Command::Keys => {}
    }
    Ok(ExitCode::SUCCESS)
}

/// The domain a command is about (to find its host in a fleet).
fn domain_of(command: &Command) -> Option<&str> {
    match command {
        Command::Destroy { domain }
        | Command::Pause { domain }
        | Command::Unpause { domain }
        | Command::Start { domain }
        | Command::Reboot { domain, .. }
        | Command::Shutdown { domain, .. }
        | Command::Attach { domain, .. }
        | Command::Detach { domain, .. }
        | Command::MemSet { domain, .. }
        | Command::Console { domain, .. }
        | Command::Info { domain }
        | Command::Save { domain, .. } => Some(domain),
        Command::Events { domain, .. } => domain.as_deref(),
        Command::Export { target, .. } => Some(target),
        _ => None,
    }
}

/// `domus list`: one host as `xl list`, or every host of a fleet (each
/// read on its own; one that does not answer is said on stderr, exit 1).
fn list_command(cli: &Cli, json: bool, long: bool, wanted: &[String]) -> CliResult<ExitCode> {
    let specs = fleet::specs(cli)?;
    let listings = match specs {
        Some(s) if s.len() > 1 || cli.connect.is_empty() => fleet::list_all(cli, s, json)?,
        single => {
            let ctx = open_context(cli, SourceKind::Cli)?;
            let (name, uri) = match single.and_then(|s| s.into_iter().next()) {
                Some(spec) => (spec.name, spec.target.uri().to_string()),
                None => ("local".to_string(), "local".to_string()),
            };
            let l = list::HostListing::read(&ctx.engine, json).map_err(Failure::new)?;
            vec![fleet::Listing {
                name,
                uri,
                result: Ok(l),
            }]
        }
    };
    let names: Vec<String> = listings.iter().map(|l| l.name.clone()).collect();
    // Only the domains asked for, in the order asked; each must exist (as xl).
    let mut picked: Vec<Vec<crate::engine::DomainView>> = listings
        .iter()
        .map(|l| match (&l.result, wanted.is_empty()) {
            (Ok(l), true) => l.domains.clone(),
            _ => Vec::new(),
        })
        .collect();
    for w in wanted {
        let (host, dom) = fleet::split_host(None, Some(w), &names);
        let dom = dom.unwrap_or_default();
        let id = dom.parse::<DomId>().ok();
        let found = listings.iter().enumerate().find_map(|(i, l)| {
            let ok = l.result.as_ref().ok()?;
            if host.as_deref().is_some_and(|h| h != l.name) {
                return None;
            }
            ok.domains
                .iter()
                .find(|d| d.info.name == dom || Some(d.info.domid) == id)
                .map(|d| (i, d.clone()))
        });
        let (i, d) = found.ok_or_else(|| Failure::new(format!("no domain {w}")))?;
        picked[i].push(d);
    }
    let fleet_shown = listings.len() > 1;
    let text = if json {
        let parts: Vec<(&str, &str, list::HostListing)> = listings
            .iter()
            .zip(&picked)
            .filter_map(|(l, p)| {
                let ok = l.result.as_ref().ok()?;
                Some((
                    l.name.as_str(),
                    l.uri.as_str(),
                    list::HostListing {
                        info: ok.info.clone(),
                        domains: p.clone(),
                        io: ok.io.clone(),
                    },
                ))
            })
            .collect();
        let mut all: Vec<(&str, &str, Result<&list::HostListing, &str>)> = Vec::new();
        for l in &listings {
            match &l.result {
                Ok(_) => {
                    if let Some((n, u, p)) = parts.iter().find(|(n, _, _)| *n == l.name) {
                        all.push((n, u, Ok(p)));
                    }
                }
                Err(why) => all.push((&l.name, &l.uri, Err(why.as_str()))),
            }
        }
        list::json_fleet(&all)?
    } else if long {
        picked.iter().map(|d| list::long(d)).collect()
    } else if fleet_shown {
        let hosts: Vec<(&str, &[crate::engine::DomainView])> = listings
            .iter()
            .zip(&picked)
            .map(|(l, p)| (l.name.as_str(), p.as_slice()))
            .collect();
        list::fleet_table(&hosts)
    } else {
        list::table(picked.first().map_or(&[][..], Vec::as_slice))
    };
    say(&text);
    fleet::report_down(&listings);
    Ok(if listings.iter().any(|l| l.result.is_err()) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// The CLI's counterpart of the TUI's confirmation: a target below the
/// floor needs `--force`.
fn low_memory_check(domid: DomId, name: &str, mib: u64) -> CliResult<()> {
    let floor = config::low_memory_floor(domid);
    if mib >= floor {
        return Ok(());
    }
    let why = if domid == 0 {
        "can starve the host's toolstack"
    } else {
        "can make its kernel kill processes"
    };
    Err(Failure::new(format!(
        "setting {name}'s memory below {floor} MiB {why}; add --force if you mean it"
    )))
}

/// A domain's supervisor (`domus supervise DOMID`, started by backends
/// whose domains each have one): record what the hypervisor reports about
/// the domain and apply its policy the moment it stops, with no other domus
/// running; exit when the domain is gone.
fn supervise(cli: &Cli, domid: DomId) -> CliResult<()> {
    // A supervisor has no terminal (stderr is /dev/null): a panic must
    // reach the log, or a domain silently loses its supervisor.
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        tracing::error!(domid, "supervisor panicked: {info}");
        previous(info);
    }));
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let state = state_dir(cli);
    let hv = select::open(
        backend_choice(cli),
        open_options(cli, &state, clock.clone(), false)?,
    )?;
    if !hv.supervised() {
        return Err(Failure::usage(format!(
            "supervise: the {} backend keeps no supervisor per domain",
            hv.kind()
        )));
    }
    let engine = Engine::persistent(hv.clone(), clock, &state)?.with_actor(SourceKind::Supervisor);
    hv.supervise(domid, &mut |notice| match engine.observe(domid, notice) {
        Ok(Some(event)) => tracing::info!(domid, "supervisor: {event}"),
        Ok(None) => {}
        Err(e) => tracing::warn!(domid, error = %e, "supervisor: recording what happened"),
    })?;
    tracing::debug!(domid, "supervisor: the domain is gone");
    Ok(())
}

/// Print what a command answers on stdout. Control characters (in a file
/// name, or a device path a config gave) become `?`, so they never reach
/// the terminal; a reader that went away (`domus list | head`) ends the
/// output quietly.
/// A line on stderr: control characters shown as `?`, and a closed or
/// full stderr ignored (never a panic).
pub fn tell(text: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{}", clean(text));
}

/// Text for the terminal: control characters (but newline and tab) as `?`.
pub(super) fn clean(text: &str) -> String {
    text.chars()
        .map(|c| {
            if crate::fsx::is_sneaky(c) && c != '\n' && c != '\t' {
                '?'
            } else {
                c
            }
        })
        .collect()
}

pub(super) fn say(text: &str) {
    let _ = say_checked(text);
}

/// [`say`], for output that is the result (`export`): a reader that went
/// away is fine, a failed write (a full disk) is an error.
pub(super) fn say_checked(text: &str) -> CliResult<()> {
    use std::io::Write;
    let clean = clean(text);
    let mut out = std::io::stdout().lock();
    match out.write_all(clean.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(Failure::new(format!("cannot write the output: {e}"))),
    }
}

/// Validate each file; print every error (and warning); 1 if any failed.
/// With an engine, also what building it on this host would meet.
fn check(files: &[PathBuf], host: Option<&Engine>) -> ExitCode {
    let mut failed = false;
    for file in files {
        // A name with a line break in it is shown escaped: every message
        // stays on its line.
        let raw = file.display().to_string();
        let escaped = crate::fsx::excerpt(&raw, 4096);
        let tell = |text: &str| tell(&text.replace(&raw, &escaped));
        let say = |text: &str| say(&text.replace(&raw, &escaped));
        match config::load_file_as(file) {
            Ok((c, diags, dialect)) => {
                for w in diags.warning_lines() {
                    tell(&w);
                }
                // Knowable from the file alone: an HVM image must find
                // something to boot.
                if let Err(why) = c.boot_target() {
                    failed = true;
                    tell(&format!("{}: {why}", file.display()));
                    continue;
                }
                if let Some(e) = host {
                    let problems = e.preflight(&c, Path::new("/sys/bus/pci/devices"));
                    if !problems.is_empty() {
                        failed = true;
                        for p in problems {
                            tell(&format!("{}: on this host: {p}", file.display()));
                        }
                        continue;
                    }
                }
                let hint = if dialect == config::xl::Dialect::Xl {
                    "; `domus import` adds it to the library"
                } else {
                    ""
                };
                say(&format!(
                    "{}: ok ({}; {} image, {} MiB, {} vCPU{hint})\n",
                    file.display(),
                    dialect.describe(),
                    c.image.type_name(),
                    c.memory,
                    c.vcpus
                ));
            }
            Err(e) => {
                failed = true;
                if let Some(d) = e.diagnostics() {
                    for w in d.warning_lines() {
                        tell(&w);
                    }
                }
                tell(&e.to_string());
            }
        }
    }
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn state_dir_failure(e: FsxError) -> Failure {
    Failure::new(e.with_option("--state-dir").to_string())
}

/// Make the state directory private (0700) and log to
/// `state_dir/domus.log` (0600; the terminal belongs to the TUI and to
/// command output). A state directory domus must not use (a link, someone
/// else's) is an error for the operator, not a silent lack of a log.
pub fn init_logging(state_dir: &Path) -> CliResult<()> {
    use tracing_subscriber::EnvFilter;
    let tightened = fsx::ensure_private_dir_report(state_dir).map_err(state_dir_failure)?;
    let file = fsx::open_private_append(&state_dir.join("domus.log"))?;
    let filter = EnvFilter::try_from_env("DOMUS_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_writer(std::sync::Mutex::new(file))
        .with_ansi(false)
        .with_env_filter(filter)
        .try_init();
    // Only now is there a log to say it in.
    if let Some(old) = tightened {
        tracing::warn!(
            path = %state_dir.display(),
            "tightened from {old:04o} to 0700: it was open to other users"
        );
    }
    Ok(())
}
