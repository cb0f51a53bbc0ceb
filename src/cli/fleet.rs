//! Several hosts from one command line: which hosts (`--connect` repeated,
//! or the hosts file), opening each, and choosing the one a command on a
//! single domain goes to.

use std::sync::Arc;
use std::time::Duration;

use super::{Cli, CliResult, Context, Failure, open_options, state_dir, tell};
use crate::backend::select::{self, BackendChoice};
use crate::clock::{Clock, SystemClock};
use crate::engine::{Engine, SourceKind};
use crate::fleet::hosts::{self, HostSpec, Target};
use crate::fleet::{Fleet, HostId, Member, Opener};

/// How long `list` waits for a host that does not answer.
pub const LIST_WAIT: Duration = Duration::from_secs(10);

/// The hosts asked for: `--connect` values, else (when no backend is
/// named) the hosts file; `None`: the one local backend, as ever.
pub fn specs(cli: &Cli) -> CliResult<Option<Vec<HostSpec>>> {
    if !cli.connect.is_empty() {
        return hosts::from_args(&cli.connect)
            .map(Some)
            .map_err(|e| Failure::usage(e.to_string()));
    }
    // A hosts file named is always read (and must be there); the default
    // one only when no backend is named.
    if cli.hosts_file.is_none() && cli.backend != BackendChoice::Auto {
        return Ok(None);
    }
    let path = cli.hosts_file.clone().unwrap_or_else(hosts::default_file);
    match hosts::load(&path) {
        Ok(None) if cli.hosts_file.is_some() => {
            Err(Failure::usage(format!("no hosts file {}", path.display())))
        }
        Ok(found) => Ok(found.filter(|h| !h.is_empty())),
        Err(problems) => {
            let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
            Err(Failure::new(lines.join("\n")))
        }
    }
}

/// What opens one host's engine, now and after a lost connection.
pub fn opener(cli: &Cli, spec: &HostSpec, actor: SourceKind) -> CliResult<Opener> {
    let state = state_dir(cli);
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let (choice, connect) = match &spec.target {
        Target::Local => match cli.backend {
            BackendChoice::Libvirt => {
                return Err(Failure::usage(
                    "`local` in a fleet is domus's own backend: --backend sim, qemu or xen",
                ));
            }
            b => (b, None),
        },
        Target::Libvirt(uri) => (BackendChoice::Libvirt, Some(uri.clone())),
    };
    let mut opts = open_options(cli, &state, clock.clone(), true)?;
    opts.connect = connect;
    if choice != BackendChoice::Qemu && spec.target != Target::Local {
        opts.runtime_dir = cli.runtime_dir.clone();
    }
    let name = spec.name.clone();
    // What opening did is said as a single host's command says it (a
    // TUI's terminal is not for stderr: its log has it).
    let say = move |text: String| {
        if actor == SourceKind::Tui {
            tracing::info!(host = %name, "{text}");
        } else {
            tell(&format!("domus: {name}: {text}"));
        }
    };
    Ok(Box::new(move || {
        let hv = select::open(choice, opts.clone()).map_err(|e| e.to_string())?;
        for note in hv.startup_notes() {
            say(format!("note: {note}"));
        }
        let engine = Engine::persistent(hv, clock.clone(), &state)
            .map_err(|e| e.to_string())?
            .with_actor(actor);
        for note in engine.start().map_err(|e| e.to_string())? {
            say(note);
        }
        for event in engine.refresh().map_err(|e| e.to_string())? {
            say(event.to_string());
        }
        Ok(engine)
    }))
}

/// The fleet: the local backend opened at once (its problems are this
/// command's), the others on first use, each on its own.
pub fn open(cli: &Cli, specs: Vec<HostSpec>, actor: SourceKind) -> CliResult<Fleet> {
    let mut members = Vec::with_capacity(specs.len());
    for spec in specs {
        let open = opener(cli, &spec, actor)?;
        members.push(Member::lazy(spec, open));
    }
    Ok(Fleet::new(members))
}

/// The host a command goes to: `--on NAME`; else the only host; else,
/// for a command on a domain, the one host that has it.
pub fn context(cli: &Cli, actor: SourceKind, domain: Option<&str>) -> CliResult<Context> {
    let specs = match specs(cli)? {
        // One --connect (or none): the one backend, opened as ever.
        Some(s) if s.len() > 1 || cli.connect.is_empty() => s,
        _ => return super::open_context(cli, actor),
    };
    let names: Vec<String> = specs.iter().map(|s| s.name.clone()).collect();
    let (host_arg, local) = split_host(cli.on.as_deref(), domain, &names);
    // `HOST:` is the fleet's: the command names the domain without it.
    let strip = domain
        .zip(local.as_deref())
        .and_then(|(d, l)| d.strip_suffix(l).filter(|p| !p.is_empty()))
        .map(str::to_string);
    let fleet = Arc::new(open(cli, specs, actor)?);
    let state_dir = state_dir(cli);
    let context = |engine| Context {
        engine,
        state_dir: state_dir.clone(),
        strip: strip.clone(),
    };
    let chosen = match host_arg {
        Some(name) => Some(fleet.by_name(&name).ok_or_else(|| {
            Failure::usage(format!(
                "no host {name} (the hosts are {})",
                names.join(", ")
            ))
        })?),
        None if fleet.len() == 1 => Some(HostId(0)),
        None => None,
    };
    if let Some(h) = chosen {
        let engine = fleet.engine(h).map_err(|e| Failure::new(e.to_string()))?;
        return Ok(context(engine));
    }
    let Some(dom) = local else {
        return Err(Failure::usage(format!(
            "there are {} hosts: choose one with --on HOST ({})",
            names.len(),
            names.join(", ")
        )));
    };
    // Every host looked at at once, for at most LIST_WAIT: one that does
    // not answer holds up nothing.
    let (tx, rx) = std::sync::mpsc::channel();
    for (h, _) in fleet.members() {
        let (fleet, tx, dom) = (Arc::clone(&fleet), tx.clone(), dom.clone());
        let spawned = std::thread::Builder::new()
            .name(format!("domus-find-{}", h.0))
            .spawn(move || {
                let r = fleet
                    .engine(h)
                    .map(|e| e.resolve(&dom).is_ok().then_some(e))
                    .map_err(|e| e.to_string());
                let _ = tx.send((h, r));
            });
        if let Err(e) = spawned {
            return Err(Failure::new(format!("starting a thread: {e}")));
        }
    }
    drop(tx);
    let mut found = Vec::new();
    let mut down = Vec::new();
    let mut heard = 0;
    let deadline = std::time::Instant::now() + LIST_WAIT;
    while heard < fleet.len() {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok((h, r)) => {
                heard += 1;
                match r {
                    Ok(Some(e)) => found.push((h, e)),
                    Ok(None) => {}
                    Err(why) => down.push(why),
                }
            }
            Err(_) => {
                down.push(format!(
                    "{} host(s) not answering after {} s",
                    fleet.len() - heard,
                    LIST_WAIT.as_secs()
                ));
                break;
            }
        }
    }
    match found.len() {
        1 => {
            let (h, e) = found.remove(0);
            if !down.is_empty() {
                // A host that did not answer might have one of that name.
                tell(&format!(
                    "domus: note: {dom} found on {} only; not asked: {} (--on HOST to be sure)",
                    fleet.name(h),
                    down.join("; ")
                ));
            }
            Ok(context(e))
        }
        0 => {
            let mut msg = format!("no domain {dom} on any host");
            if !down.is_empty() {
                msg.push_str(&format!(" that answered ({})", down.join("; ")));
            }
            Err(Failure::new(msg))
        }
        _ => {
            let on: Vec<&str> = found.iter().map(|(h, _)| fleet.name(*h)).collect();
            Err(Failure::usage(format!(
                "{dom} is on several hosts ({}): choose one with --on HOST or HOST:{dom}",
                on.join(", ")
            )))
        }
    }
}

/// `HOST:DOMAIN` names its host, when HOST is one of the fleet's.
pub fn split_host(
    host: Option<&str>,
    domain: Option<&str>,
    names: &[String],
) -> (Option<String>, Option<String>) {
    if let Some(d) = domain
        && let Some((h, rest)) = d.split_once(':')
        && names.iter().any(|n| n == h)
        && host.is_none()
    {
        return (Some(h.to_string()), Some(rest.to_string()));
    }
    (host.map(str::to_string), domain.map(str::to_string))
}

/// One host's part of `domus list`.
pub struct Listing {
    pub name: String,
    pub uri: String,
    pub result: Result<super::list::HostListing, String>,
}

/// Every host's domains, each host read on its own thread; a host that
/// has not answered within [`LIST_WAIT`] is reported as not answering.
pub fn list_all(cli: &Cli, specs: Vec<HostSpec>, io: bool) -> CliResult<Vec<Listing>> {
    let fleet = Arc::new(open(cli, specs, SourceKind::Cli)?);
    let (tx, rx) = std::sync::mpsc::channel();
    for (h, _) in fleet.members() {
        let fleet = Arc::clone(&fleet);
        let tx = tx.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("domus-list-{}", h.0))
            .spawn(move || {
                let result = fleet
                    .engine(h)
                    .map_err(|e| e.to_string())
                    .and_then(|e| super::list::HostListing::read(&e, io));
                let _ = tx.send((h, result));
            });
        if let Err(e) = spawned {
            return Err(Failure::new(format!("starting a thread: {e}")));
        }
    }
    drop(tx);
    let mut results: Vec<Option<Result<super::list::HostListing, String>>> =
        fleet.ids().map(|_| None).collect();
    let deadline = std::time::Instant::now() + LIST_WAIT;
    while results.iter().any(Option::is_none) {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok((h, r)) => results[usize::from(h.0)] = Some(r),
            Err(_) => break,
        }
    }
    Ok(fleet
        .members()
        .zip(results)
        .map(|((_, m), r)| Listing {
            name: m.name.clone(),
            uri: m.target.uri().to_string(),
            result: r.unwrap_or_else(|| {
                Err(format!(
                    "host {} is not answering after {} s",
                    m.name,
                    LIST_WAIT.as_secs()
                ))
            }),
        })
        .collect())
}

/// Say on stderr which hosts could not be listed.
pub fn report_down(listings: &[Listing]) {
    for l in listings {
        if let Err(why) = &l.result {
            tell(&format!("domus: {why}"));
        }
    }
}
