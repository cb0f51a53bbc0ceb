//! The config library: `.sxp` files in the config directory, seeded with
//! the bundled examples on first run.

use std::io;
use std::path::{Path, PathBuf};

use crate::config::parse_str;

pub const EXAMPLES: [(&str, &str); 3] = [
    ("web1.sxp", include_str!("../../assets/examples/web1.sxp")),
    ("plan9.sxp", include_str!("../../assets/examples/plan9.sxp")),
    ("hvm.sxp", include_str!("../../assets/examples/hvm.sxp")),
];

/// What `n` starts a new config from.
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
        std::fs::write(dir.join(file), text)?;
    }
    Ok(true)
}

pub fn scan(dir: &Path) -> Vec<LibraryEntry> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "sxp"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let file = path
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default();
            let text = std::fs::read_to_string(&path);
            let (name, status) = match text {
                Err(e) => (None, Err(e.to_string())),
                Ok(text) => match parse_str(&text, &file) {
                    Ok((c, d)) => (Some(c.name), Ok(d.warnings.len())),
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
            }
        })
        .collect()
}
