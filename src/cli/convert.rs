//! `domus import` and `domus export`: configs between xl.cfg, xend's
//! S-expressions and the library.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::{CliResult, Failure, say};
use crate::config::{self, DomainConfig};
use crate::fsx;

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
    for file in files {
        match import_one(file, library, force) {
            Ok(line) => say(&line),
            Err(f) => {
                failed = true;
                eprintln!("domus: {}", f.msg);
            }
        }
    }
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn import_one(file: &Path, library: &Path, force: bool) -> CliResult<String> {
    let (c, diags) = config::load_file(file).map_err(|e| super::config_failure(e, file))?;
    for w in diags.warning_lines() {
        eprintln!("{w}");
    }
    fsx::ensure_private_dir(library).map_err(|e| Failure::new(e.to_string()))?;
    let target = library.join(format!("{}.sxp", c.name));
    if !force && std::fs::symlink_metadata(&target).is_ok() {
        return Err(Failure::new(format!(
            "{} is already in the library ({}); --force replaces it",
            c.name,
            target.display()
        )));
    }
    let text = format!(
        "# Imported by domus import from {}\n{}\n",
        file.display().to_string().replace('\n', "?"),
        crate::sxp::print_pretty(&c.to_value())
    );
    fsx::write_atomic(&target, text.as_bytes()).map_err(|e| Failure::new(e.to_string()))?;
    let n = diags.warnings.len();
    Ok(format!(
        "{} → {}{}\n",
        file.display(),
        target.display(),
        match n {
            0 => String::new(),
            1 => " (1 warning)".into(),
            n => format!(" ({n} warnings)"),
        }
    ))
}

/// The config in `format`, and what that format cannot say (to stderr).
pub fn export(c: &DomainConfig, format: ExportFormat, source: &str) {
    match format {
        ExportFormat::Sxp => say(&format!("{}\n", crate::sxp::print_pretty(&c.to_value()))),
        ExportFormat::Xl => {
            let (text, lost) = config::xl::to_xl(c);
            let mut out = format!("# Written by domus export from {source}\n");
            out.push_str(&text);
            say(&out);
            for l in lost {
                eprintln!("domus: not in the xl.cfg: {l}");
            }
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
            .map(|(c, diags)| {
                for w in diags.warning_lines() {
                    eprintln!("{w}");
                }
                export(&c, format, target);
            }),
    )
}
