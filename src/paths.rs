//! Where domus keeps its files, following the XDG base directories.

use std::path::PathBuf;

fn xdg(var: &str, fallback: &str) -> PathBuf {
    match std::env::var_os(var).filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => {
            let home =
                std::env::var_os("HOME").map_or_else(|| PathBuf::from("/tmp"), PathBuf::from);
            home.join(fallback)
        }
    }
}

/// `$XDG_STATE_HOME/domus`: the simulated host, engine records, logs.
pub fn default_state_dir() -> PathBuf {
    xdg("XDG_STATE_HOME", ".local/state").join("domus")
}

/// `$XDG_CONFIG_HOME/domus`: domain configs and themes.
pub fn default_config_dir() -> PathBuf {
    xdg("XDG_CONFIG_HOME", ".config").join("domus")
}
