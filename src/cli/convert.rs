//! `domus import` and `domus export`: configs between xl.cfg, xend's
//! S-expressions and the library.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::{CliResult, Failure, say};
use crate::config::{self, DomainConfig};
use std::collections::HashMap;

/// What `export` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// xl.cfg(5).
    Xl,
    /// xend's `(vm …)`, as domus keeps configs.
    Sxp,
}

/// Read each file (xl.cfg, an xm config of plain assignments, or sxp) and
/// write it into the library as `NAME.sxp`; an existing file is replaced
/// only with `force`. 1 if any file failed.
pub fn import(files: &[PathBuf], library: &Path, force: bool) -> ExitCode {
    let mut failed = false;
    // Two files of one name in one run: the second would replace the first.
    let mut written: HashMap<PathBuf, &Path> = HashMap::new();
    for file in files {
        // Each file read once: the name to check, then the import.
        let (c, diags) = match config::load_file(file) {
            Ok(x) => x,
            Err(e) => {
                failed = true;
                super::tell(&format!("domus: {}", super::config_failure(e, file).msg));
                continue;
            }
        };
        let target = library.join(format!("{}.sxp", c.name));
        if let Some(first) = written.get(&target) {
            failed = true;
            super::tell(&format!(
                "domus: {}: {} was imported from {} in this run; not replaced",
                file.display(),
                c.name,
                first.display()
            ));
            continue;
        }
        written.insert(target, file);
        match import_one(c, diags, file, library, force) {
            Ok(line) => say(&line),
            Err(f) => {
                failed = true;
                super::tell(&format!("domus: {}", f.msg));
            }
        }
    }
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn import_one(
    c: DomainConfig,
    diags: config::Diagnostics,
    file: &Path,
    library: &Path,
    force: bool,
) -> CliResult<String> {
    use crate::tui::library::{ImportError, import_config};
    let done = import_config(c, diags, file, library, force).map_err(|e| match e {
        ImportError::Config(e) => super::config_failure(e, file),
        other => Failure::new(other.to_string()),
    })?;
    for w in done.diagnostics.warning_lines() {
        super::tell(&w);
    }
    let n = done.diagnostics.warnings.len();
    Ok(format!(
        "{} → {}{}\n",
        file.display(),
        done.target.display(),
        match n {
            0 => String::new(),
            1 => " (1 warning)".into(),
            n => format!(" ({n} warnings)"),
        }
    ))
}

/// The config in `format`, and what that format cannot say (to stderr).
pub fn export(c: &DomainConfig, format: ExportFormat, source: &str) -> CliResult<()> {
    match format {
        ExportFormat::Sxp => {
            let text = crate::sxp::print_pretty(&c.to_value());
            super::say_checked(&format!("{}\n", text.trim_end()))
        }
        ExportFormat::Xl => {
            let (text, lost) = config::xl::to_xl(c);
            // The source is a file name: one line, whatever it holds.
            let source: String = source
                .chars()
                .map(|ch| if ch.is_control() { '?' } else { ch })
                .collect();
            let mut out = format!("# Written by domus export from {source}\n");
            out.push_str(&text);
            super::say_checked(&out)?;
            for l in lost {
                super::tell(&format!("domus: not in the xl.cfg: {l}"));
            }
            Ok(())
        }
    }
}

/// A config file to export, when `target` names one (else it is a domain).
pub fn export_file(target: &str, format: ExportFormat) -> Option<CliResult<()>> {
    let path = Path::new(target);
    if !std::fs::metadata(path).is_ok_and(|m| m.is_file()) {
        return None;
    }
    Some(
        config::load_file(path)
            .map_err(|e| super::config_failure(e, path))
            .and_then(|(c, diags)| {
                for w in diags.warning_lines() {
                    super::tell(&w);
                }
                export(&c, format, target)
            }),
    )
}
