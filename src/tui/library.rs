//! The config library: `.sxp` files in the config directory, seeded with
//! the bundled examples on first run.

use std::io;
use std::path::{Path, PathBuf};

use crate::config::MAX_CONFIG_BYTES;
use crate::config::xl::Dialect;
use crate::config::xl::parse_any as parse_str;
use crate::fsx::{self, FsxError};

pub const EXAMPLES: [(&str, &str); 3] = [
    ("web1.sxp", include_str!("../../assets/examples/web1.sxp")),
    ("plan9.sxp", include_str!("../../assets/examples/plan9.sxp")),
    ("hvm.sxp", include_str!("../../assets/examples/hvm.sxp")),
];

/// What `n` starts a new config from.
/// What `n` starts a new config from on `backend`: QEMU boots an hvm
/// guest from a disk image (with the `qemu-img` line that makes it) or a
/// clone of a config that boots here; Xen and the simulator a PV guest.
pub fn template_for(name: &str, backend: Option<crate::backend::BackendKind>) -> String {
    match backend {
        Some(crate::backend::BackendKind::Qemu) => format!(
            "# New domain. Ctrl-S saves, Ctrl-B saves and builds, Esc closes.\n\
             # QEMU boots a kernel directly or, as here, a disk by the boot order\n\
             # (c disk, d CD, n network). Make the disk with\n\
             #   qemu-img create -f qcow2 /var/lib/domus/images/{name}.qcow2 8G\n\
             # and put an installer in the CD drive, or clone a config that boots\n\
             # here (N in the library, e.g. on tiny.sxp).\n\
             (vm\n    (name {name})\n    (memory 512)\n    (vcpus 1)\n    (image (hvm (boot cd)))\n    (device (vbd (uname file:/var/lib/domus/images/{name}.qcow2) (dev hda) (mode w)))\n    (device (vbd (dev hdc:cdrom) (mode r)))\n    (device (vif))\n    (on_crash restart))\n"
        ),
        _ => template(name),
    }
}

pub fn template(name: &str) -> String {
    format!(
        "# New domain. Ctrl-S saves, Ctrl-B saves and builds, Esc closes.\n\
         (vm\n    (name {name})\n    (memory 128)\n    (vcpus 1)\n    (image (linux (kernel /boot/vmlinuz) (root /dev/xvda1) (args \"console=hvc0\")))\n    (device (vbd (uname file:/var/lib/domus/images/{name}.img) (dev xvda) (mode w)))\n    (device (vif (bridge xenbr0)))\n    (on_crash restart))\n"
    )
}

#[derive(Debug, Clone, PartialEq)]
pub struct LibraryEntry {
    pub path: PathBuf,
    pub file: String,
    pub name: Option<String>,
    /// Warnings count when valid; the first error when not.
    pub status: Result<usize, String>,
    /// sxp, or an xl.cfg that `i` imports.
    pub dialect: Dialect,
}

/// A config brought into the library by [`import`].
#[derive(Debug)]
pub struct Imported {
    pub target: PathBuf,
    pub name: String,
    pub diagnostics: crate::config::Diagnostics,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("{name} is already in the library ({}); --force replaces it", .path.display())]
    Exists { name: String, path: PathBuf },
    #[error(
        "{name}: as an sxp config it would be {bytes} bytes, over the {} MiB domus reads",
        MAX_CONFIG_BYTES >> 20
    )]
    TooLarge { name: String, bytes: usize },
    #[error(transparent)]
    Write(#[from] FsxError),
}

/// Read `file` (xl.cfg, an xm config of plain assignments, or sxp) and
/// write it into the library as `NAME.sxp` (0600); an existing file is
/// replaced only with `force`.
pub fn import(file: &Path, dir: &Path, force: bool) -> Result<Imported, ImportError> {
    let (c, diagnostics) = crate::config::load_file(file)?;
    import_config(c, diagnostics, file, dir, force)
}

/// [`import`] of a config already read from `file`.
pub fn import_config(
    c: crate::config::DomainConfig,
    diagnostics: crate::config::Diagnostics,
    file: &Path,
    dir: &Path,
    force: bool,
) -> Result<Imported, ImportError> {
    fsx::ensure_private_dir(dir)?;
    let target = dir.join(format!("{}.sxp", c.name));
    if !force && std::fs::symlink_metadata(&target).is_ok() {
        return Err(ImportError::Exists {
            name: c.name,
            path: target,
        });
    }
    let source: String = file
        .display()
        .to_string()
        .chars()
        .map(|ch| if ch.is_control() { '?' } else { ch })
        .collect();
    let text = format!(
        "# Imported by domus import from {source}\n{}\n",
        crate::sxp::print_pretty(&c.to_value())
    );
    // What domus writes, domus must read back.
    if text.len() as u64 > MAX_CONFIG_BYTES {
        return Err(ImportError::TooLarge {
            name: c.name,
            bytes: text.len(),
        });
    }
    fsx::write_atomic(&target, text.as_bytes())?;
    Ok(Imported {
        target,
        name: c.name,
        diagnostics,
    })
}

#[derive(Debug, Default)]
pub struct Library {
    pub dir: PathBuf,
    pub entries: Vec<LibraryEntry>,
    pub selected: usize,
}

impl Library {
    pub fn selected_entry(&self) -> Option<&LibraryEntry> {
        self.entries.get(self.selected)
    }

    pub fn find(&self, name_or_file: &str) -> Option<&LibraryEntry> {
        self.entries.iter().find(|e| {
            e.file == name_or_file
                || e.file.strip_suffix(".sxp") == Some(name_or_file)
                || e.file.strip_suffix(".cfg") == Some(name_or_file)
                || e.name.as_deref() == Some(name_or_file)
        })
    }
}

/// Copy the examples into a config directory that does not exist yet.
pub fn seed(dir: &Path) -> io::Result<bool> {
    if dir.exists() {
        return Ok(false);
    }
    std::fs::create_dir_all(dir)?;
    for (file, text) in EXAMPLES {
        crate::fsx::write_atomic(&dir.join(file), text.as_bytes())?;
    }
    Ok(true)
}

/// The config of domus's tiny test guest (`scripts/build-guest`), for a
/// library on a host that can run it: `guest_dir` holds `vmlinux` and
/// `initramfs.cpio.gz`.
pub fn test_guest_config(guest_dir: &Path) -> Option<String> {
    let (k, i) = (
        guest_dir.join("vmlinux"),
        guest_dir.join("initramfs.cpio.gz"),
    );
    if !k.is_file() || !i.is_file() {
        return None;
    }
    let quote = |p: &Path| crate::sxp::print_value(&lexpr::Value::string(p.display().to_string()));
    Some(format!(
        "# domus's tiny test guest: Debian's kernel and a busybox initramfs
# (scripts/build-guest). It boots in a few seconds, even without KVM, to a
# shell on its console; it powers off on the ACPI power button.
(vm
    (name tiny)
    (memory 128)
    (vcpus 1)
    (image
        (linux
            (kernel {})
            (ramdisk {})
            (args quiet)))
    (on_poweroff destroy)
    (on_reboot restart)
    (on_crash restart))
",
        quote(&k),
        quote(&i)
    ))
}

/// Put `tiny.sxp` into the library once (`scripts/run` points
/// `DOMUS_GUEST_DIR` at the built guest); a marker keeps a deleted copy
/// deleted.
pub fn offer_test_guest(dir: &Path, guest_dir: &Path) -> io::Result<bool> {
    let marker = dir.join(".tiny-offered");
    let file = dir.join("tiny.sxp");
    if marker.exists() || file.exists() {
        return Ok(false);
    }
    let Some(text) = test_guest_config(guest_dir) else {
        return Ok(false);
    };
    std::fs::create_dir_all(dir)?;
    crate::fsx::write_atomic(&file, text.as_bytes())?;
    crate::fsx::write_atomic(&marker, b"")?;
    Ok(true)
}

/// A copy of `c` to build beside it: the new name, a fresh uuid and fresh
/// MACs (given at build), as sxp text.
pub fn clone_text(c: &crate::config::DomainConfig, name: &str, from: &str) -> String {
    let mut c = c.clone();
    c.name = name.to_string();
    c.uuid = None;
    for d in &mut c.devices {
        if let crate::config::DeviceSpec::Vif(v) = d {
            v.mac = None;
        }
    }
    format!(
        "# New from {from}. Ctrl-S saves, Ctrl-B saves and builds, Esc closes.\n\
         # Its disks and PCI functions are the original's: change them to build\n\
         # it beside the original (Ctrl-B's check says what is in use).\n{}\n",
        crate::sxp::print_pretty(&c.to_value())
    )
}

/// Call `changed` whenever a config in `dir` appears, changes or goes (a
/// file copied in with `scp`, saved by `vim`); `None` where the directory
/// cannot be watched (the Library tab still re-reads when opened).
pub fn watch(
    dir: &Path,
    changed: impl Fn() + Send + 'static,
) -> Option<notify::RecommendedWatcher> {
    use notify::{EventKind, RecursiveMode, Watcher};
    let handler = move |res: notify::Result<notify::Event>| {
        let Ok(ev) = res else { return };
        if matches!(ev.kind, EventKind::Access(_)) {
            return;
        }
        // Temporaries (ours and editors') start with '.' or end in '~'.
        let relevant = ev.paths.iter().any(|p| {
            p.file_name()
                .map(|n| n.to_string_lossy())
                .is_some_and(|n| !n.starts_with('.') && !n.ends_with('~') && !n.ends_with(".swp"))
        });
        if relevant {
            changed();
        }
    };
    let watcher = notify::recommended_watcher(handler).and_then(|mut w| {
        w.watch(dir, RecursiveMode::NonRecursive)?;
        Ok(w)
    });
    match watcher {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot watch the config library");
            None
        }
    }
}

pub fn scan(dir: &Path) -> Vec<LibraryEntry> {
    scan_with(dir, |_| None)
}

/// [`scan`], marking a config that reads but that the backend in use
/// cannot build (`unbuildable` says why) as not valid.
pub fn scan_with(
    dir: &Path,
    unbuildable: impl Fn(&crate::config::DomainConfig) -> Option<String>,
) -> Vec<LibraryEntry> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.path()))
        // /etc/xen's configs often have no extension at all.
        .filter(|p| match p.extension() {
            Some(x) => x == "sxp" || x == "cfg",
            None => {
                !p.is_dir()
                    && p.file_name()
                        .is_some_and(|n| !n.to_string_lossy().starts_with('.'))
            }
        })
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let file = path
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default();
            // Never read a FIFO or a device (it would block the worker or
            // never end): it is listed as what it is.
            let text = fsx::read_to_string_bounded(&path, MAX_CONFIG_BYTES);
            let dialect = text
                .as_deref()
                .map_or(Dialect::Sxp, crate::config::xl::detect);
            let (name, status) = match text {
                Err(FsxError::NotRegular { kind, .. }) => {
                    (None, Err(format!("not a regular file ({kind})")))
                }
                Err(e) => (None, Err(e.to_string())),
                Ok(text) => match parse_str(&text, &file) {
                    Ok((c, d)) => match unbuildable(&c) {
                        Some(why) => (Some(c.name), Err(why)),
                        None => (Some(c.name), Ok(d.warnings.len())),
                    },
                    Err(e) => {
                        let first = e.to_string().lines().next().unwrap_or_default().to_string();
                        (None, Err(first))
                    }
                },
            };
            LibraryEntry {
                path,
                file,
                name,
                status,
                dialect,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_fit_the_backend_and_read() {
        let q = template_for("q1", Some(crate::backend::BackendKind::Qemu));
        let (c, _) = crate::config::parse_str(&q, "q1.sxp").unwrap_or_else(|e| panic!("{e}\n{q}"));
        assert_eq!(c.image.type_name(), "hvm");
        assert!(q.contains("qemu-img create -f qcow2"), "{q}");
        assert!(!q.contains("xenbr0") && !q.contains("/boot/vmlinuz"), "{q}");
        let x = template_for("x1", Some(crate::backend::BackendKind::Xen));
        assert!(crate::config::parse_str(&x, "x1.sxp").is_ok(), "{x}");
    }

    #[test]
    fn a_fifo_in_the_library_is_listed_as_such_and_never_read() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        nix::unistd::mkfifo(
            &dir.path().join("evil.sxp"),
            nix::sys::stat::Mode::from_bits_truncate(0o600),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(dir.path().join("web1.sxp"), EXAMPLES[0].1)
            .unwrap_or_else(|e| panic!("{e}"));
        let started = std::time::Instant::now();
        let entries = scan(dir.path());
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
        let status: Vec<_> = entries
            .iter()
            .map(|e| (e.file.as_str(), e.status.clone()))
            .collect();
        assert_eq!(
            status,
            vec![
                ("evil.sxp", Err("not a regular file (a FIFO)".to_string())),
                ("web1.sxp", Ok(0)),
            ]
        );
    }

    #[test]
    fn the_test_guest_is_offered_once_and_parses() {
        let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let guest = root.path().join("my guest");
        std::fs::create_dir_all(&guest).unwrap_or_else(|e| panic!("{e}"));
        let lib = root.path().join("lib");
        assert!(
            !offer_test_guest(&lib, &guest).unwrap_or(true),
            "no guest built: nothing offered"
        );
        for f in ["vmlinux", "initramfs.cpio.gz"] {
            std::fs::write(guest.join(f), b"x").unwrap_or_else(|e| panic!("{e}"));
        }
        assert!(offer_test_guest(&lib, &guest).unwrap_or(false));
        let text = std::fs::read_to_string(lib.join("tiny.sxp")).unwrap_or_default();
        let (config, _) =
            crate::config::parse_str(&text, "tiny.sxp").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.name, "tiny");
        let kernel = guest.join("vmlinux").display().to_string();
        assert_eq!(config.image.boot().kernel.as_deref(), Some(kernel.as_str()));
        std::fs::remove_file(lib.join("tiny.sxp")).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            !offer_test_guest(&lib, &guest).unwrap_or(true),
            "a deleted copy stays deleted"
        );
    }
}
