//! Themes name roles (state colours, selection, border, error…), not
//! widgets. The built-in ones are embedded at build time; files in
//! `$XDG_CONFIG_HOME/domus/themes/*.toml` add to or override them by name.

use std::collections::BTreeMap;
use std::path::Path;
use std::str::FromStr;

use ratatui::style::{Color, Modifier, Style};
use serde::Deserialize;

use crate::backend::DomainInfo;

const BUILTIN: [(&str, &str); 3] = [
    ("dark", include_str!("../../themes/dark.toml")),
    ("light", include_str!("../../themes/light.toml")),
    (
        "high-contrast",
        include_str!("../../themes/high-contrast.toml"),
    ),
];

#[derive(Debug, Clone, PartialEq)]
pub struct Theme {
    pub name: String,
    pub fg: Color,
    pub bg: Color,
    pub muted: Color,
    pub border: Color,
    pub title: Color,
    pub accent: Color,
    pub key: Color,
    pub selection_fg: Color,
    pub selection_bg: Color,
    pub tagged: Color,
    pub ok: Color,
    pub warning: Color,
    pub error: Color,
    pub gauge_used: Color,
    pub gauge_free: Color,
    pub sparkline: Color,
    pub state_running: Color,
    pub state_blocked: Color,
    pub state_paused: Color,
    pub state_shutdown: Color,
    pub state_crashed: Color,
    pub state_dying: Color,
    pub syntax_paren: Color,
    pub syntax_key: Color,
    pub syntax_string: Color,
    pub syntax_number: Color,
    pub syntax_comment: Color,
    pub error_line_bg: Color,
}

#[derive(Deserialize)]
struct ThemeFile {
    name: String,
    colors: BTreeMap<String, String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ThemeError {
    #[error("{source_name}: {message}")]
    Invalid {
        source_name: String,
        message: String,
    },
    #[error("unknown theme '{0}' (known: {1})")]
    Unknown(String, String),
}

impl Theme {
    pub fn parse(text: &str, source_name: &str) -> Result<Theme, ThemeError> {
        let bad = |message: String| ThemeError::Invalid {
            source_name: source_name.to_string(),
            message,
        };
        let file: ThemeFile = toml::from_str(text).map_err(|e| bad(e.to_string()))?;
        let get = |role: &str| -> Result<Color, ThemeError> {
            let value = file
                .colors
                .get(role)
                .ok_or_else(|| bad(format!("missing colour for role '{role}'")))?;
            Color::from_str(value)
                .map_err(|_| bad(format!("role '{role}': '{value}' is not a colour")))
        };
        Ok(Theme {
            name: file.name.clone(),
            fg: get("fg")?,
            bg: get("bg")?,
            muted: get("muted")?,
            border: get("border")?,
            title: get("title")?,
            accent: get("accent")?,
            key: get("key")?,
            selection_fg: get("selection_fg")?,
            selection_bg: get("selection_bg")?,
            tagged: get("tagged")?,
            ok: get("ok")?,
            warning: get("warning")?,
            error: get("error")?,
            gauge_used: get("gauge_used")?,
            gauge_free: get("gauge_free")?,
            sparkline: get("sparkline")?,
            state_running: get("state_running")?,
            state_blocked: get("state_blocked")?,
            state_paused: get("state_paused")?,
            state_shutdown: get("state_shutdown")?,
            state_crashed: get("state_crashed")?,
            state_dying: get("state_dying")?,
            syntax_paren: get("syntax_paren")?,
            syntax_key: get("syntax_key")?,
            syntax_string: get("syntax_string")?,
            syntax_number: get("syntax_number")?,
            syntax_comment: get("syntax_comment")?,
            error_line_bg: get("error_line_bg")?,
        })
    }

    /// The built-in themes, then any in `user_dir` (same name overrides).
    /// Broken user files are skipped and reported.
    pub fn load_all(user_dir: Option<&Path>) -> (Vec<Theme>, Vec<String>) {
        let mut themes: Vec<Theme> = BUILTIN
            .iter()
            .filter_map(|(name, text)| Theme::parse(text, name).ok())
            .collect();
        let mut problems = Vec::new();
        let entries = user_dir.and_then(|d| std::fs::read_dir(d).ok());
        let mut files: Vec<_> = entries
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        files.sort();
        for path in files {
            let parsed = std::fs::read_to_string(&path)
                .map_err(|e| e.to_string())
                .and_then(|t| {
                    Theme::parse(&t, &path.display().to_string()).map_err(|e| e.to_string())
                });
            match parsed {
                Ok(t) => match themes.iter_mut().find(|x| x.name == t.name) {
                    Some(slot) => *slot = t,
                    None => themes.push(t),
                },
                Err(e) => problems.push(e),
            }
        }
        (themes, problems)
    }

    pub fn builtin(name: &str) -> Result<Theme, ThemeError> {
        let (themes, _) = Theme::load_all(None);
        pick(&themes, name)
    }

    pub fn base(&self) -> Style {
        Style::default().fg(self.fg).bg(self.bg)
    }

    pub fn muted(&self) -> Style {
        self.base().fg(self.muted)
    }

    pub fn border(&self) -> Style {
        self.base().fg(self.border)
    }

    pub fn title(&self) -> Style {
        self.base().fg(self.title).add_modifier(Modifier::BOLD)
    }

    pub fn key(&self) -> Style {
        self.base().fg(self.key).add_modifier(Modifier::BOLD)
    }

    pub fn selection(&self) -> Style {
        Style::default()
            .fg(self.selection_fg)
            .bg(self.selection_bg)
            .add_modifier(Modifier::BOLD)
    }

    pub fn error(&self) -> Style {
        self.base().fg(self.error)
    }

    pub fn warning(&self) -> Style {
        self.base().fg(self.warning)
    }

    pub fn ok(&self) -> Style {
        self.base().fg(self.ok)
    }

    /// The colour for a domain's state, as in xentop: crashed before
    /// shut down, dying before everything.
    pub fn state(&self, info: &DomainInfo) -> Style {
        let f = info.flags;
        let color = if f.dying {
            self.state_dying
        } else if info.is_crashed() {
            self.state_crashed
        } else if f.shutdown {
            self.state_shutdown
        } else if f.paused {
            self.state_paused
        } else if f.running {
            self.state_running
        } else {
            self.state_blocked
        };
        self.base().fg(color)
    }
}

pub fn pick(themes: &[Theme], name: &str) -> Result<Theme, ThemeError> {
    themes
        .iter()
        .find(|t| t.name == name)
        .cloned()
        .ok_or_else(|| {
            let known: Vec<&str> = themes.iter().map(|t| t.name.as_str()).collect();
            ThemeError::Unknown(name.to_string(), known.join(", "))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_themes_parse_and_user_files_override() {
        let (themes, problems) = Theme::load_all(None);
        assert!(problems.is_empty());
        let names: Vec<&str> = themes.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["dark", "light", "high-contrast"]);

        let dir = std::env::temp_dir().join(format!("domus-theme-test-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let custom = BUILTIN[0]
            .1
            .replace("error = \"#bf616a\"", "error = \"#ff0000\"");
        let _ = std::fs::write(dir.join("mine.toml"), custom);
        let _ = std::fs::write(
            dir.join("broken.toml"),
            "name = \"x\"\n[colors]\nfg = \"nocolour\"\n",
        );
        let (themes, problems) = Theme::load_all(Some(&dir));
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(themes.len(), 3, "same name overrides");
        assert_eq!(themes[0].error, Color::Rgb(255, 0, 0));
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("broken.toml"), "{problems:?}");
    }
}
