//! What the operator chose in the TUI and finds again next time: theme,
//! sort column and direction, filter. Kept in `CONFIG/domus/prefs.json`
//! (0600, written atomically); a damaged file is ignored with a warning.

use std::path::Path;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Prefs {
    pub theme: Option<String>,
    /// The sort column's heading (`NAME`, `CPU%` …).
    pub sort: Option<String>,
    pub descending: bool,
    pub filter: String,
}

/// Larger than any preferences file domus writes.
const MAX_PREFS_BYTES: u64 = 64 * 1024;

impl Prefs {
    /// The saved preferences; none (and why) when the file is missing or
    /// unreadable.
    pub fn load(path: &Path) -> (Prefs, Option<String>) {
        match crate::fsx::read_to_string_bounded(path, MAX_PREFS_BYTES) {
            Ok(text) => match serde_json::from_str(&text) {
                Ok(p) => (p, None),
                Err(e) => (
                    Prefs::default(),
                    Some(format!("{} ignored: {e}", path.display())),
                ),
            },
            Err(crate::fsx::FsxError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                (Prefs::default(), None)
            }
            Err(e) => (Prefs::default(), Some(format!("preferences ignored: {e}"))),
        }
    }

    pub fn save(&self, path: &Path) -> Result<(), String> {
        if let Some(dir) = path.parent() {
            crate::fsx::ensure_private_dir(dir).map_err(|e| e.to_string())?;
        }
        let text = serde_json::to_string_pretty(self).map_err(|e| e.to_string())?;
        crate::fsx::write_atomic(path, text.as_bytes()).map_err(|e| e.to_string())
    }
}
