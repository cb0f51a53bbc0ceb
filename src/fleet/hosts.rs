//! Which hosts a fleet has: `--connect [NAME=]URI` (repeated) or the hosts
//! file (`CONFIG/domus/hosts`, one `NAME = URI` per line). The URI `local`
//! is domus's own backend on this machine (`--backend`); any other is a
//! libvirt connection URI.

use std::path::{Path, PathBuf};

/// One host of a fleet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostSpec {
    /// Short, unique in the fleet: the HOST column and `/host:NAME`.
    pub name: String,
    pub target: Target,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// domus's own backend here (sim, QEMU or Xen, as `--backend` says).
    Local,
    /// A libvirt connection.
    Libvirt(String),
}

impl Target {
    fn parse(uri: &str) -> Target {
        if uri == "local" {
            Target::Local
        } else {
            Target::Libvirt(uri.to_string())
        }
    }

    pub fn uri(&self) -> &str {
        match self {
            Target::Local => "local",
            Target::Libvirt(u) => u,
        }
    }
}

/// A problem in the hosts file or a `--connect` value, where it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{place}: {what}")]
pub struct HostsError {
    /// `FILE:LINE:COL`, or `--connect VALUE`.
    pub place: String,
    pub what: String,
}

const NAME_MAX: usize = 24;

fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > NAME_MAX {
        return Err(format!(
            "expected a host name of 1 to {NAME_MAX} characters"
        ));
    }
    match name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        Some(c) => Err(format!(
            "expected a host name of letters, digits, '-', '_' or '.', found {c:?}"
        )),
        None => Ok(()),
    }
}

fn check_uri(uri: &str) -> Result<(), String> {
    if uri == "local" {
        return Ok(());
    }
    if let Some(c) = uri.chars().find(|c| c.is_control()) {
        return Err(format!(
            "expected a URI without control characters, found {:?}",
            c
        ));
    }
    if uri.len() > 1024 {
        return Err("expected a URI of at most 1024 bytes".into());
    }
    match uri.split_once(':') {
        Some((scheme, _))
            if !scheme.is_empty()
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
                && !uri.chars().any(char::is_whitespace) =>
        {
            Ok(())
        }
        _ => Err(format!(
            "expected `local` or a libvirt URI such as qemu:///system, found \"{}\"",
            crate::fsx::excerpt(uri, 60)
        )),
    }
}

/// The name a host gets when none is given: the URI's server, else its
/// driver (`qemu:///system` → `qemu`, `qemu+tcp://10.0.0.5/system` →
/// `10.0.0.5`, `test:///default` → `test`).
pub fn default_name(target: &Target) -> String {
    let uri = match target {
        Target::Local => return "local".into(),
        Target::Libvirt(u) => u,
    };
    let (scheme, rest) = uri.split_once(':').unwrap_or((uri, ""));
    let server = rest
        .strip_prefix("//")
        .and_then(|r| r.split('/').next())
        .map(|s| s.rsplit('@').next().unwrap_or(s))
        .map(|s| s.split(':').next().unwrap_or(s))
        .filter(|s| !s.is_empty());
    let driver = scheme.split('+').next().unwrap_or(scheme);
    let raw = server.unwrap_or(driver);
    let name: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .take(NAME_MAX)
        .collect();
    if name.is_empty() { "host".into() } else { name }
}

/// `--connect` values, each `URI` or `NAME=URI`. Names not given are
/// derived from the URI, made unique with `-2`, `-3`, ….
pub fn from_args(values: &[String]) -> Result<Vec<HostSpec>, HostsError> {
    if values.len() > MAX_HOSTS {
        return Err(HostsError {
            place: "--connect".into(),
            what: format!("expected at most {MAX_HOSTS} hosts, got {}", values.len()),
        });
    }
    // Names given are kept for their hosts: a derived name steps aside.
    let given: Vec<&str> = values
        .iter()
        .filter_map(|v| v.split_once('=').map(|(n, _)| n.trim()))
        .filter(|n| !n.contains(':'))
        .collect();
    let mut out: Vec<HostSpec> = Vec::new();
    for v in values {
        let place = || format!("--connect {}", crate::fsx::excerpt(v, 60));
        // A URI has "://" or is `local`/`test:…`; a name never has ':'.
        let (name, uri) = match v.split_once('=') {
            Some((n, u)) if !n.contains(':') => (Some(n.trim()), u.trim()),
            _ => (None, v.trim()),
        };
        check_uri(uri).map_err(|what| HostsError {
            place: place(),
            what,
        })?;
        let target = Target::parse(uri);
        let name = match name {
            Some(n) => {
                check_name(n).map_err(|what| HostsError {
                    place: place(),
                    what,
                })?;
                n.to_string()
            }
            None => unique(&out, &given, default_name(&target)),
        };
        push(&mut out, HostSpec { name, target }, place())?;
    }
    Ok(out)
}

fn unique(have: &[HostSpec], given: &[&str], base: String) -> String {
    let taken = |n: &str| have.iter().any(|h| h.name == n) || given.contains(&n);
    if !taken(&base) {
        return base;
    }
    (2..)
        .map(|i| format!("{base}-{i}"))
        .find(|n| !taken(n))
        .unwrap_or(base)
}

fn push(out: &mut Vec<HostSpec>, h: HostSpec, place: String) -> Result<(), HostsError> {
    if out.iter().any(|o| o.name == h.name) {
        return Err(HostsError {
            place,
            what: format!("the host name {} is used twice", h.name),
        });
    }
    if h.target == Target::Local && out.iter().any(|o| o.target == Target::Local) {
        return Err(HostsError {
            place,
            what: "only one host can be `local` (domus's own backend here)".into(),
        });
    }
    out.push(h);
    Ok(())
}

/// The hosts file, by default `CONFIG/domus/hosts`.
pub fn default_file() -> PathBuf {
    crate::paths::default_config_dir().join("hosts")
}

/// Parse a hosts file's text: `NAME = URI` lines, `#` comments, blank
/// lines. Every problem is reported, each at FILE:LINE:COL.
pub fn parse(path: &Path, text: &str) -> Result<Vec<HostSpec>, Vec<HostsError>> {
    let mut out = Vec::new();
    let mut problems = Vec::new();
    let file = crate::fsx::excerpt(&path.display().to_string(), 200);
    for (n, line) in text.lines().enumerate() {
        let line = line.strip_prefix('\u{feff}').unwrap_or(line);
        let body = line.split('#').next().unwrap_or("");
        if body.trim().is_empty() {
            continue;
        }
        let at = |col: usize, what: String| HostsError {
            place: format!("{file}:{}:{}", n + 1, col + 1),
            what,
        };
        let indent = body.len() - body.trim_start().len();
        let Some((name, uri)) = body.split_once('=') else {
            problems.push(at(indent, "expected NAME = URI".into()));
            continue;
        };
        let name = name.trim();
        if let Err(what) = check_name(name) {
            problems.push(at(indent, what));
            continue;
        }
        // The URI's column: after the '=' and the spaces that follow it.
        let uri_col = body.len() - uri.len() + (uri.len() - uri.trim_start().len());
        let uri = uri.trim();
        if let Err(what) = check_uri(uri) {
            problems.push(at(uri_col, what));
            continue;
        }
        let spec = HostSpec {
            name: name.to_string(),
            target: Target::parse(uri),
        };
        if let Err(e) = push(&mut out, spec, String::new()) {
            problems.push(at(indent, e.what));
        }
        if out.len() > MAX_HOSTS {
            problems.push(at(indent, format!("expected at most {MAX_HOSTS} hosts")));
            break;
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

/// More hosts than this in one fleet is a mistake, not a fleet.
pub const MAX_HOSTS: usize = 64;

/// Read the hosts file: `None` when there is none.
pub fn load(path: &Path) -> Result<Option<Vec<HostSpec>>, Vec<HostsError>> {
    let text = match crate::fsx::read_to_string_bounded(path, 256 * 1024) {
        Ok(t) => t,
        Err(crate::fsx::FsxError::Io { source, .. })
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            return Ok(None);
        }
        Err(e) => {
            return Err(vec![HostsError {
                place: path.display().to_string(),
                what: e.to_string(),
            }]);
        }
    };
    trusted(path)?;
    parse(path, &text).map(Some)
}

/// A hosts file names commands domus runs (libvirt's `qemu+ext://…?command=`
/// and ssh transports): only its owner (or root) may write it.
fn trusted(path: &Path) -> Result<(), Vec<HostsError>> {
    use std::os::unix::fs::MetadataExt;
    let refuse = |what: String| {
        Err(vec![HostsError {
            place: path.display().to_string(),
            what,
        }])
    };
    let Ok(meta) = std::fs::metadata(path) else {
        return Ok(());
    };
    let me = nix::unistd::geteuid().as_raw();
    if meta.uid() != me && meta.uid() != 0 {
        return refuse(format!(
            "owned by uid {}, not you (uid {me}): it names what domus connects to and runs; use a file of your own",
            meta.uid()
        ));
    }
    if meta.mode() & 0o022 != 0 {
        return refuse(format!(
            "writable by others (mode {:04o}): it names what domus connects to and runs; chmod go-w it",
            meta.mode() & 0o7777
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_values_get_names() {
        let h = from_args(&[
            "qemu:///system".into(),
            "qemu+tcp://127.0.0.1/system".into(),
            "lab=test:///default".into(),
            "local".into(),
            "qemu:///session".into(),
        ])
        .unwrap();
        let names: Vec<&str> = h.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(names, ["qemu", "127.0.0.1", "lab", "local", "qemu-2"]);
        assert_eq!(h[3].target, Target::Local);
        assert_eq!(h[2].target, Target::Libvirt("test:///default".into()));
        assert_eq!(
            default_name(&Target::Libvirt("qemu+ssh://root@web1:22/system".into())),
            "web1"
        );
    }

    #[test]
    fn bad_connect_values_are_refused() {
        assert!(from_args(&["a=qemu:///system".into(), "a=test:///default".into()]).is_err());
        assert!(from_args(&["local".into(), "here=local".into()]).is_err());
        let e = from_args(&["not a uri".into()]).unwrap_err();
        assert!(e.what.contains("expected `local` or a libvirt URI"), "{e}");
        assert!(from_args(&["b@d=test:///default".into()]).is_err());
        // A derived name steps aside for one given later.
        let h = from_args(&["qemu:///system".into(), "qemu=test:///default".into()]).unwrap();
        assert_eq!(h[0].name, "qemu-2");
        assert_eq!(h[1].name, "qemu");
        let many: Vec<String> = (0..=MAX_HOSTS)
            .map(|i| format!("h{i}=test:///default"))
            .collect();
        assert!(from_args(&many).is_err());
    }

    #[test]
    fn the_hosts_file_reports_each_problem_where_it_is() {
        let text = "# my hosts\n\nweb = qemu+tcp://10.0.0.5/system\n  lab=test:///default # fake\nhere = local\nbroken line\nx y = test:///default\nweb = qemu:///system\nz = nonsense\n";
        let errs = parse(Path::new("/h"), text).unwrap_err();
        let got: Vec<String> = errs.iter().map(ToString::to_string).collect();
        assert_eq!(got.len(), 4, "{got:#?}");
        assert!(
            got[0].starts_with("/h:6:1: expected NAME = URI"),
            "{got:#?}"
        );
        assert!(
            got[1].starts_with("/h:7:1: expected a host name"),
            "{got:#?}"
        );
        assert!(
            got[2].starts_with("/h:8:1: the host name web is used twice"),
            "{got:#?}"
        );
        assert!(got[3].starts_with("/h:9:"), "{got:#?}");
        assert!(
            got[3].contains("expected `local` or a libvirt URI"),
            "{got:#?}"
        );
        let ok = parse(Path::new("/h"), "web = qemu:///system\nhere = local\n").unwrap();
        assert_eq!(ok.len(), 2);
        assert_eq!(ok[1].target, Target::Local);
    }
}
