//! xl-disk-configuration(5): a disk spec string to a vbd and back.
//! Positional values fill target, format, vdev, access in order; `key=value`
//! names one; `target=` takes the rest of the string. xend's old form
//! (`phy:/dev/vg/x,xvda,w`, `tap:aio:/x.img,hda,w`, `,hdc:cdrom,r`) is read
//! too, as xl reads it.

use crate::config::{Uname, UnameKind, Vbd, VbdMode};

/// A disk spec read: the vbd and what of the spec was not carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskSpec {
    pub vbd: Vbd,
    pub dropped: Vec<String>,
}

/// Prefixes xl strips and ignores (xend's toolstack words).
const IGNORED_PREFIXES: &[&str] = &["tapdisk", "tap2", "tap", "aio", "ioemu", "file", "phy"];
const FORMAT_PREFIXES: &[&str] = &["raw", "qcow", "qcow2", "vhd"];
const SCRIPT_PREFIXES: &[&str] = &["iscsi", "nbd", "enbd", "drbd"];

#[derive(Default)]
struct Fields {
    target: Option<String>,
    format: Option<String>,
    vdev: Option<String>,
    access: Option<String>,
    cdrom: bool,
    script: Option<String>,
    backend: Option<String>,
    /// xend's `file:` was written (a relative path after it is no device).
    file_prefix: bool,
    /// A deprecated `word:` prefix was seen: the second positional value
    /// is the vdev, not the format.
    deprecated: bool,
}

/// Strip xend's prefixes from a target, noting format and script.
fn strip_prefixes(mut t: &str, f: &mut Fields) -> Result<String, String> {
    loop {
        let Some((word, rest)) = t.split_once(':') else {
            return Ok(t.to_string());
        };
        if !word.chars().all(|c| c.is_ascii_alphanumeric()) || word.is_empty() {
            return Ok(t.to_string());
        }
        if IGNORED_PREFIXES.contains(&word) {
            f.deprecated = true;
            f.file_prefix |= word == "file";
            // `phy:` kept for the path's sake: a bare name is under /dev.
        } else if FORMAT_PREFIXES.contains(&word) {
            f.deprecated = true;
            f.format = Some(word.to_string());
        } else if SCRIPT_PREFIXES.contains(&word) {
            f.deprecated = true;
            f.script = Some(format!("block-{word}"));
            // A script's target is its own syntax (`host port`): kept whole.
            return Ok(rest.to_string());
        } else if rest.starts_with(|c: char| !c.is_ascii_alphanumeric()) || rest.is_empty() {
            return Err(format!(
                "unknown deprecated disk prefix {word}: (xl knows raw: qcow: qcow2: vhd: and the block scripts iscsi: nbd: enbd: drbd:)"
            ));
        } else {
            return Ok(t.to_string());
        }
        t = rest;
    }
}

fn set(slot: &mut Option<String>, v: &str, name: &str) -> Result<(), String> {
    if slot.is_some() {
        return Err(format!("{name} given twice"));
    }
    *slot = Some(v.to_string());
    Ok(())
}

/// Read one disk spec.
pub fn parse(spec: &str) -> Result<DiskSpec, String> {
    let mut f = Fields::default();
    let mut dropped = Vec::new();
    let mut rest = spec;
    let mut positional = 0usize;
    while !rest.is_empty() || positional == 0 {
        let part_start = rest.trim_start_matches([' ', '\t']);
        if let Some(t) = part_start.strip_prefix("target=") {
            // The rest of the string, commas and all, taken literally.
            if let Some((word, _)) = t.split_once(':')
                && (IGNORED_PREFIXES.contains(&word)
                    || FORMAT_PREFIXES.contains(&word)
                    || SCRIPT_PREFIXES.contains(&word))
            {
                return Err(format!(
                    "target={word}:…: xl takes target= literally; leave out the {word}: prefix (format= and script= say the rest)"
                ));
            }
            set(&mut f.target, t, "target")?;
            break;
        }
        let (part, next) = match part_start.split_once(',') {
            Some((p, n)) => (p, Some(n)),
            None => (part_start, None),
        };
        if let Some((k, v)) = part.split_once('=') {
            match k {
                "format" => set(&mut f.format, v, "format")?,
                "vdev" => set(&mut f.vdev, v, "vdev")?,
                "access" => set(&mut f.access, v, "access")?,
                "devtype" => match v {
                    "cdrom" => f.cdrom = true,
                    "disk" | "" => {}
                    other => return Err(format!("devtype {other}: expected cdrom or disk")),
                },
                "script" => set(&mut f.script, v, "script")?,
                "backend" => set(&mut f.backend, v, "backend")?,
                "backendtype" | "specification" | "grant_usage" | "colo-host" | "colo-port"
                | "colo-export" | "active-disk" | "hidden-disk" => {
                    dropped.push(part.to_string());
                }
                other => return Err(format!("unknown disk parameter {other}=")),
            }
        } else {
            match part {
                "cdrom" => f.cdrom = true,
                "direct-io-safe" | "discard" | "no-discard" | "trusted" | "untrusted" | "colo" => {
                    dropped.push(part.to_string())
                }
                // xend's `hdc:cdrom` is a vdev wherever it stands.
                _ if f.vdev.is_none() && (part.ends_with(":cdrom") || part.ends_with(":disk")) => {
                    f.vdev = Some(part.to_string());
                    f.deprecated = true;
                }
                _ => {
                    // target, format, vdev, access: the next empty slot
                    // (after a deprecated prefix, the format is skipped).
                    let slots: [&str; 4] = ["target", "format", "vdev", "access"];
                    let mut i = positional;
                    loop {
                        let Some(slot) = slots.get(i) else {
                            return Err(format!(
                                "too many values: {} (expected target, format, vdev, access)",
                                crate::config::error::shown(part)
                            ));
                        };
                        i += 1;
                        let filled = match *slot {
                            "target" => f.target.is_some(),
                            "format" => f.format.is_some() || f.deprecated,
                            "vdev" => f.vdev.is_some(),
                            _ => f.access.is_some(),
                        };
                        if filled {
                            continue;
                        }
                        match *slot {
                            "target" => {
                                let t = strip_prefixes(part, &mut f)?;
                                f.target = Some(t);
                            }
                            "format" => f.format = Some(part.to_string()),
                            "vdev" => f.vdev = Some(part.to_string()),
                            _ => f.access = Some(part.to_string()),
                        }
                        break;
                    }
                    positional = i;
                }
            }
        }
        match next {
            Some(n) => rest = n,
            None => break,
        }
    }
    let vdev_text = match f.vdev.clone().filter(|v| !v.is_empty()) {
        Some(v) => v,
        None if f.target.as_deref().is_some_and(|t| t.contains('=')) => {
            return Err(
                "no vdev: target= takes the rest of the spec, commas and all, so it must come last"
                    .into(),
            );
        }
        None => return Err("no vdev (the guest's name for the disk, e.g. xvda)".into()),
    };
    let vdev_text = vdev_text.strip_prefix("ioemu:").unwrap_or(&vdev_text);
    let (vdev, suffix) = match vdev_text.split_once(':') {
        Some((v, s)) => (v, Some(s)),
        None => (vdev_text, None),
    };
    match suffix {
        Some("cdrom") => f.cdrom = true,
        Some("disk") | None => {}
        Some(other) => return Err(format!("vdev {vdev}:{other}: expected :cdrom or :disk")),
    }
    let dev = crate::config::parse_vdev(vdev)?;
    let mode = match f.access.as_deref().unwrap_or("") {
        _ if f.cdrom => VbdMode::ReadOnly,
        "" | "rw" | "w" => VbdMode::ReadWrite,
        "ro" | "r" => VbdMode::ReadOnly,
        other => {
            return Err(format!("access {other}: expected ro or rw (xl has no w!)"));
        }
    };
    let target = f.target.clone().unwrap_or_default();
    if f.file_prefix && !target.is_empty() && !target.starts_with('/') {
        return Err(format!(
            "file:{target}: a relative path (xl would look under /dev/); write the full path"
        ));
    }
    let format = f.format.as_deref().filter(|s| !s.is_empty());
    let uname = if target.is_empty() || format == Some("empty") {
        if !f.cdrom {
            return Err(
                "no target (a disk needs its file or device; only a CD drive may be empty)".into(),
            );
        }
        Uname::empty()
    } else if let Some(script) = &f.script {
        let name = script.strip_prefix("block-").unwrap_or(script);
        format!("{name}:{target}").parse::<Uname>()?
    } else {
        // xl puts /dev/ in front of a target that does not start with '/'.
        let path = if target.starts_with('/') {
            target.clone()
        } else {
            format!("/dev/{target}")
        };
        match format {
            None | Some("raw") if path.starts_with("/dev/") => format!("phy:{path}").parse()?,
            None | Some("raw") => format!("file:{path}").parse()?,
            Some(fmt @ ("qcow" | "qcow2" | "vhd")) => format!("tap:{fmt}:{path}").parse()?,
            Some(other) => {
                return Err(format!(
                    "format {other}: domus knows raw, qcow, qcow2, vhd and empty"
                ));
            }
        }
    };
    Ok(DiskSpec {
        vbd: Vbd {
            uname,
            dev,
            mode,
            cdrom: f.cdrom,
            // The driver domain serving it, as xend's `(backend …)`.
            extra: f
                .backend
                .iter()
                .map(|b| {
                    crate::sxp::print_value(&lexpr::Value::list(vec![
                        lexpr::Value::string("backend"),
                        lexpr::Value::string(b.as_str()),
                    ]))
                })
                .collect(),
        },
        dropped,
    })
}

/// A vbd as an xl disk spec (`target=` last, as xl requires).
pub fn format(v: &Vbd) -> String {
    let backend: String = v
        .extra
        .iter()
        .filter_map(|e| crate::sxp::parse(e).ok())
        .filter(|n| n.name() == Some("backend"))
        .filter_map(|n| {
            n.children()
                .first()
                .and_then(crate::sxp::Node::atom)
                .map(str::to_string)
        })
        .filter(|b| !b.contains(','))
        .map(|b| format!(",backend={b}"))
        .collect();
    let access = if v.mode.writable() && !v.cdrom {
        "rw"
    } else {
        "ro"
    };
    let devtype = if v.cdrom { ",devtype=cdrom" } else { "" };
    let format = v.uname.format().unwrap_or("raw");
    match v.uname.kind {
        UnameKind::Empty => format!("vdev={},access=ro{devtype}{backend}", v.dev),
        UnameKind::Script => format!(
            "vdev={},access={access}{devtype}{backend},script=block-{},target={}",
            v.dev,
            v.uname.driver.as_deref().unwrap_or("nbd"),
            v.uname.path
        ),
        UnameKind::Phy | UnameKind::File | UnameKind::Tap => format!(
            "format={format},vdev={},access={access}{devtype}{backend},target={}",
            v.dev, v.uname.path
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vbd(s: &str) -> Vbd {
        parse(s).unwrap_or_else(|e| panic!("{s}: {e}")).vbd
    }

    #[test]
    fn the_equivalent_forms_of_the_man_page_agree() {
        let a = vbd("/dev/vg/guest,raw,xvda,rw");
        let b = vbd("format=raw, vdev=xvda, access=rw, target=/dev/vg/guest");
        let c = vbd("phy:/dev/vg/guest,xvda,w");
        assert_eq!(a.uname.kind, UnameKind::Phy);
        assert_eq!(a.uname.path, "/dev/vg/guest");
        for x in [&b, &c] {
            assert_eq!(
                (x.uname.kind, &x.uname.path, &x.dev, x.mode),
                (a.uname.kind, &a.uname.path, &a.dev, a.mode)
            );
        }
    }

    #[test]
    fn xend_forms_cdroms_and_formats() {
        let cd = vbd(",hdc:cdrom,r");
        assert!(cd.cdrom && cd.uname.is_empty());
        assert_eq!(cd.dev, "hdc");
        let t = vbd("tap:qcow2:/srv/x.qcow2,xvdb,w");
        assert_eq!(t.uname.format(), Some("qcow2"));
        let t = vbd("tap2:tapdisk:aio:/srv/x.img,xvdc,w");
        assert_eq!(
            (t.uname.kind, t.uname.path.as_str()),
            (UnameKind::File, "/srv/x.img")
        );
        let i = vbd("file:/srv/win.img,ioemu:hda,w");
        assert_eq!(i.dev, "hda");
        let iso = vbd("/srv/d.iso,raw,hdc,ro,devtype=cdrom");
        assert!(iso.cdrom && iso.mode == VbdMode::ReadOnly);
        let n = vbd("nbd:134.100.233.115 20004,hda1,w");
        assert_eq!(n.uname.kind, UnameKind::Script);
        let q = vbd("vdev=xvdd, format=qcow2, target=/srv/a,b.qcow2");
        assert_eq!(q.uname.path, "/srv/a,b.qcow2", "target takes the rest");
        let rel = vbd("vg/x,raw,xvde");
        assert_eq!(rel.uname.path, "/dev/vg/x");
    }

    #[test]
    fn bad_specs_say_why() {
        for (s, want) in [
            ("/x.img,raw", "no vdev"),
            ("target=/x.img,vdev=xvda", "must come last"),
            ("file:relative.img,xvda,w", "relative path"),
            ("vdev=xvda,target=phy:/dev/sda", "takes target= literally"),
            ("sync:/x.img,xvda,w", "unknown deprecated disk prefix sync"),
            ("/x.img,raw,xvda,w!", "no w!"),
            ("/x.img,vmdk,xvda", "format vmdk"),
            (",,xvda", "no target"),
            ("/x.img,raw,xvda,rw,extra", "too many values"),
            (
                "/x.img,raw,xvda,colour=red",
                "unknown disk parameter colour",
            ),
        ] {
            let e = parse(s).err().unwrap_or_else(|| panic!("{s} accepted"));
            assert!(e.contains(want), "{s}: {e}");
        }
    }

    #[test]
    fn written_specs_read_back() {
        for s in [
            "phy:/dev/vg/x,xvda,w",
            ",hdc:cdrom,r",
            "/srv/d.iso,raw,hdc,ro,devtype=cdrom",
            "tap:qcow2:/srv/x.qcow2,xvdb,r",
            "nbd:host 2000,xvdf,w",
        ] {
            let v = vbd(s);
            let again = vbd(&format(&v));
            assert_eq!(again, v, "{s} → {}", format(&v));
        }
    }
}
