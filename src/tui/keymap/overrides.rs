//! The operator's key overrides, from `CONFIG/domus/keys`: one line per
//! binding, `SCOPE.COMMAND = KEY[, KEY…]`, `#` comments, e.g.
//!
//! ```text
//! domains.pause = P
//! global.quit = q, Ctrl-C
//! console.detach-console = Ctrl-A
//! ```
//!
//! A line replaces that binding's keys. A key another command of the same
//! scope had moves to the new one (with a warning), unless it was that
//! command's only key: then the line is refused, so no overlay loses its
//! way out. `domus keys` lists every scope, command and key.

use std::path::{Path, PathBuf};

use crossterm::event::{KeyCode, KeyModifiers};

use super::names::{COMMANDS, command_name, scope_name, scope_named};
use super::{Command, Key, Keymap, Scope, key_label};

/// Larger than any sensible keys file.
const MAX_BYTES: u64 = 64 * 1024;

/// A line that could not be used, placed at its file:line:col.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}:{line}:{col}: {message}", path.display())]
pub struct KeysProblem {
    pub path: PathBuf,
    pub line: usize,
    pub col: usize,
    pub message: String,
}

/// Parse one key as the help writes it: `q`, `Space`, `Enter`, `F2`,
/// `Ctrl-X`, `Alt-x`, `Shift-Tab`, `PgUp` …
pub fn parse_key(text: &str) -> Result<Key, String> {
    let mut mods = KeyModifiers::NONE;
    let mut rest = text;
    loop {
        let lower = rest.to_ascii_lowercase();
        let (m, len) = if lower.starts_with("ctrl-") && rest.len() > 5 {
            (KeyModifiers::CONTROL, 5)
        } else if lower.starts_with("alt-") && rest.len() > 4 {
            (KeyModifiers::ALT, 4)
        } else if lower.starts_with("shift-") && rest.len() > 6 {
            (KeyModifiers::SHIFT, 6)
        } else {
            break;
        };
        mods |= m;
        rest = &rest[len..];
    }
    let named = match rest.to_ascii_lowercase().as_str() {
        "space" => Some(KeyCode::Char(' ')),
        "enter" | "return" => Some(KeyCode::Enter),
        "esc" | "escape" => Some(KeyCode::Esc),
        "tab" if mods.contains(KeyModifiers::SHIFT) => Some(KeyCode::BackTab),
        "tab" => Some(KeyCode::Tab),
        "backtab" => Some(KeyCode::BackTab),
        "backspace" => Some(KeyCode::Backspace),
        "delete" | "del" => Some(KeyCode::Delete),
        "insert" => Some(KeyCode::Insert),
        "up" | "↑" => Some(KeyCode::Up),
        "down" | "↓" => Some(KeyCode::Down),
        "left" => Some(KeyCode::Left),
        "right" => Some(KeyCode::Right),
        "pgup" | "pageup" => Some(KeyCode::PageUp),
        "pgdn" | "pagedown" => Some(KeyCode::PageDown),
        "home" => Some(KeyCode::Home),
        "end" => Some(KeyCode::End),
        f if f.len() > 1 && f.starts_with('f') => f[1..]
            .parse::<u8>()
            .ok()
            .filter(|n| (1..=12).contains(n))
            .map(KeyCode::F),
        _ => None,
    };
    let code = match named {
        Some(c) => c,
        None => {
            let mut chars = rest.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) if !c.is_control() => {
                    // A control character arrives lower-case with CONTROL.
                    if mods.contains(KeyModifiers::CONTROL) {
                        KeyCode::Char(c.to_ascii_lowercase())
                    } else {
                        KeyCode::Char(c)
                    }
                }
                _ => {
                    return Err(format!(
                        "expected a key (a character, Space, Enter, Esc, Tab, F1–F12, Up, PgUp, Home …, \
                         maybe after Ctrl-, Alt- or Shift-), found '{}'",
                        crate::fsx::excerpt(text, 40)
                    ));
                }
            }
        }
    };
    // What a terminal sends for these is the named key's byte: Ctrl-[ is
    // Esc, Ctrl-M and Ctrl-J Enter, Ctrl-I Tab, Ctrl-H Backspace. They are
    // those keys, and the rules for those keys apply.
    if let KeyCode::Char(c) = code
        && mods == KeyModifiers::CONTROL
    {
        let alias = match c {
            '[' => Some(KeyCode::Esc),
            'm' | 'j' => Some(KeyCode::Enter),
            'i' => Some(KeyCode::Tab),
            'h' => Some(KeyCode::Backspace),
            _ => None,
        };
        if let Some(code) = alias {
            return Ok(Key {
                code,
                mods: KeyModifiers::NONE,
            });
        }
    }
    // Shift with a character is the character itself (`Shift-a` is `A`).
    if let KeyCode::Char(c) = code
        && mods.contains(KeyModifiers::SHIFT)
    {
        mods -= KeyModifiers::SHIFT;
        return Ok(Key {
            code: KeyCode::Char(c.to_ascii_uppercase()),
            mods,
        });
    }
    if code == KeyCode::BackTab {
        mods |= KeyModifiers::SHIFT;
    }
    Ok(Key { code, mods })
}

/// Whether keys of scopes `a` and `b` are read together: a tab's keys
/// are looked up before the global ones, so one would hide the other.
fn overlap(a: Scope, b: Scope) -> bool {
    let tab = |s: Scope| {
        matches!(
            s,
            Scope::Domains | Scope::Library | Scope::Events | Scope::Gone
        )
    };
    let menu = |x: Scope, y: Scope| x == Scope::Shutdown && y == Scope::Picker;
    a == b
        || (a == Scope::Global && tab(b))
        || (tab(a) && b == Scope::Global)
        || menu(a, b)
        || menu(b, a)
}

/// A key this binding may not have, and why: Esc only ever leaves, the
/// console's and the editor's typing keys are the guest's and the text's.
fn refused(scope: Scope, command: Command, key: &Key) -> Option<&'static str> {
    let typing = matches!(
        key.code,
        KeyCode::Char(_) | KeyCode::Enter | KeyCode::Tab | KeyCode::Backspace
    ) && (key.mods - KeyModifiers::SHIFT).is_empty();
    // Ctrl and a letter is a control character the guest's shell needs
    // (Ctrl-C, Ctrl-D, Ctrl-Z …).
    let guest_control = matches!(key.code, KeyCode::Char(c) if c.is_ascii_alphabetic())
        && key.mods == KeyModifiers::CONTROL;
    let leaves = matches!(
        command,
        Command::ConfirmNo
            | Command::PickCancel
            | Command::DetailsClose
            | Command::EditorClose
            | Command::ConsoleDetach
    );
    match (scope, command) {
        _ if key.code == KeyCode::Esc && !leaves => {
            Some("Esc only ever cancels or closes (it never says yes, picks or runs)")
        }
        (Scope::Console, Command::ConsoleSearch) => None,
        (Scope::Console, _) if typing || guest_control => Some(
            "the console sends that key to the guest; use a Ctrl-, Alt- or Shift- key or F1–F12",
        ),
        (Scope::Editor, _) if typing => {
            Some("the editor types that key; use a Ctrl- or Alt- key or F1–F12")
        }
        (Scope::Shutdown, _) if key.code == KeyCode::Enter => {
            Some("Enter chooses the highlighted reason")
        }
        (Scope::Confirm, Command::ConfirmYes) if key.code == KeyCode::Enter => {
            Some("yes is typed, never Enter (a reflex must not destroy)")
        }
        _ => None,
    }
}

/// Column (1-based) of `part` inside `line`.
fn col_of(line: &str, part: &str) -> usize {
    let offset = (part.as_ptr() as usize).saturating_sub(line.as_ptr() as usize);
    line[..offset.min(line.len())].chars().count() + 1
}

impl Keymap {
    /// The default keymap with the overrides in `path` applied, and what
    /// was wrong with it (each line that could not be used is skipped).
    /// A missing file is no overrides.
    pub fn load(path: &Path) -> (Keymap, KeyNotes) {
        let mut keymap = Keymap::default();
        match crate::fsx::read_to_string_bounded(path, MAX_BYTES) {
            Ok(text) => {
                let notes = keymap.apply(path, &text);
                (keymap, notes)
            }
            Err(crate::fsx::FsxError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                (keymap, KeyNotes::default())
            }
            Err(e) => {
                let problems = vec![format!("key overrides ignored: {e}")];
                let notes = KeyNotes {
                    problems,
                    moved: Vec::new(),
                };
                (keymap, notes)
            }
        }
    }

    /// Apply the overrides in `text`; returns the problems (lines not
    /// used) and the keys that moved, each at its file:line:col.
    pub fn apply(&mut self, path: &Path, text: &str) -> KeyNotes {
        let mut notes = KeyNotes::default();
        // An editor's byte-order mark is not part of the first line.
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        for (i, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or("");
            if line.trim().is_empty() {
                continue;
            }
            let at = |part: &str, message: String| {
                KeysProblem {
                    path: path.to_path_buf(),
                    line: i + 1,
                    col: col_of(raw, part),
                    message,
                }
                .to_string()
            };
            match self.apply_line(line, &at) {
                Ok(moved) => notes.moved.extend(moved),
                Err(problem) => notes.problems.push(problem),
            }
        }
        notes
    }

    fn apply_line(
        &mut self,
        line: &str,
        at: &dyn Fn(&str, String) -> String,
    ) -> Result<Vec<String>, String> {
        let Some((lhs, rhs)) = line.split_once('=') else {
            return Err(at(
                line.trim_start(),
                "expected SCOPE.COMMAND = KEY[, KEY…] (e.g. domains.pause = P)".into(),
            ));
        };
        let lhs_t = lhs.trim();
        let Some((scope_s, cmd_s)) = lhs_t.split_once('.') else {
            return Err(at(
                lhs_t,
                format!(
                    "expected SCOPE.COMMAND before '=', found '{}'",
                    crate::fsx::excerpt(lhs_t, 40)
                ),
            ));
        };
        let Some(scope) = scope_named(scope_s) else {
            let all: Vec<&str> = super::names::SCOPES.iter().map(|(_, n)| *n).collect();
            return Err(at(
                lhs_t,
                format!(
                    "expected a scope ({}), found '{}'",
                    all.join(", "),
                    crate::fsx::excerpt(scope_s, 40)
                ),
            ));
        };
        let positions: Vec<usize> = self
            .bound
            .iter()
            .enumerate()
            .filter(|(_, b)| b.scope == scope && command_name(b.command) == cmd_s)
            .map(|(i, _)| i)
            .collect();
        let Some(&target) = positions.first() else {
            return Err(self.no_such_command(scope, scope_s, cmd_s, at));
        };
        let command = self.bound[target].command;
        if matches!(command, Command::Save | Command::Restore) {
            let verb = self.bound[target].palette.map_or("", |(v, _)| v);
            return Err(at(
                cmd_s,
                format!("{cmd_s} needs a file: it is a palette command only (:{verb} …)"),
            ));
        }
        let mut keys: Vec<(Key, &str)> = Vec::new();
        for part in rhs.split(',') {
            let t = part.trim();
            if t.is_empty() {
                // At the empty item itself.
                return Err(at(part, "expected a key after '=' or ','".into()));
            }
            let key = parse_key(t).map_err(|e| at(t, e))?;
            if let Some(why) = refused(scope, command, &key) {
                return Err(at(t, format!("{}: {why}", key_label(&key))));
            }
            if !keys.iter().any(|(k, _)| *k == key) {
                keys.push((key, t));
            }
        }
        // A key that another command read together with this one has (the
        // same scope, or global beside a tab) moves here, unless it was
        // that command's only one.
        let mut moved = Vec::new();
        // On a copy: a line refused at its second key changes nothing.
        let mut bound = self.bound.clone();
        for (key, key_text) in &keys {
            for (i, b) in bound.iter_mut().enumerate() {
                if !overlap(b.scope, scope) || positions.contains(&i) || !b.keys.contains(key) {
                    continue;
                }
                let other = format!("{}.{}", scope_name(b.scope), command_name(b.command));
                // The keys that answer no or cancel stay theirs: "n" must
                // never come to mean yes.
                if matches!(b.command, Command::ConfirmNo | Command::PickCancel) {
                    return Err(at(
                        key_text,
                        format!(
                            "{} answers {other}: it never does anything else",
                            key_label(key)
                        ),
                    ));
                }
                // A global key taken by one tab would leave the others
                // without it: the global binding must move first.
                // Likewise a picker key (every list's) for the shutdown
                // menu, whose letters are read first.
                if (b.scope == Scope::Global && scope != Scope::Global)
                    || (b.scope == Scope::Picker && scope == Scope::Shutdown)
                {
                    return Err(at(
                        key_text,
                        format!(
                            "{} is {other}'s everywhere it applies: give {other} another key first",
                            key_label(key)
                        ),
                    ));
                }
                if b.keys.len() == 1 {
                    return Err(at(
                        key_text,
                        format!(
                            "{} is the only key of {other}: give that command another key first",
                            key_label(key)
                        ),
                    ));
                }
                b.keys.retain(|k| k != key);
                let msg = format!("{} moved from {other} to {scope_s}.{cmd_s}", key_label(key));
                moved.push(at(key_text, msg));
            }
        }
        bound[target].keys = keys.into_iter().map(|(k, _)| k).collect();
        for &other in &positions[1..] {
            bound[other].keys.clear();
        }
        self.bound = bound;
        Ok(moved)
    }

    fn no_such_command(
        &self,
        scope: Scope,
        scope_s: &str,
        cmd_s: &str,
        at: &dyn Fn(&str, String) -> String,
    ) -> String {
        let here: Vec<&str> = COMMANDS
            .iter()
            .filter(|(c, _)| {
                self.bound
                    .iter()
                    .any(|b| b.scope == scope && b.command == *c)
            })
            .map(|(_, n)| *n)
            .collect();
        if here.is_empty() {
            return at(
                cmd_s,
                format!("{scope_s} has no keys of its own (the global ones apply there)"),
            );
        }
        at(
            cmd_s,
            format!(
                "expected a command of {scope_s} ({}), found '{}'",
                here.join(", "),
                crate::fsx::excerpt(cmd_s, 40)
            ),
        )
    }
}

/// What applying a keys file said.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyNotes {
    /// Lines not used, with why.
    pub problems: Vec<String>,
    /// Keys taken from another command (the line was used).
    pub moved: Vec<String>,
}

impl KeyNotes {
    pub fn is_empty(&self) -> bool {
        self.problems.is_empty() && self.moved.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tui::keymap::{Command, Scope};
    use crossterm::event::KeyEvent;

    fn ev(code: KeyCode, mods: KeyModifiers) -> KeyEvent {
        KeyEvent::new(code, mods)
    }

    #[test]
    fn an_override_moves_a_command_to_its_new_key() {
        let mut k = Keymap::default();
        let notes = k.apply(Path::new("keys"), "# mine\ndomains.pause = P\n");
        assert!(notes.is_empty(), "{notes:?}");
        let scopes = [Scope::Domains, Scope::Global];
        let pause = k.lookup(&ev(KeyCode::Char('P'), KeyModifiers::SHIFT), &scopes, false);
        assert_eq!(pause, Some(Command::Pause));
        assert_eq!(
            k.lookup(&ev(KeyCode::Char('p'), KeyModifiers::NONE), &scopes, false),
            None
        );
        assert_eq!(k.key_for(Command::Pause).as_deref(), Some("P"));
        assert!(
            k.hints(Scope::Domains, false)
                .contains(&("P".into(), "pause"))
        );
    }

    #[test]
    fn a_taken_key_moves_with_a_warning_but_an_only_key_stays() {
        let mut k = Keymap::default();
        // `c` was console's only key: refused, nothing changes.
        let notes = k.apply(Path::new("/k"), "domains.edit = c\n");
        assert_eq!(
            notes.problems,
            vec![
                "/k:1:16: c is the only key of domains.console: give that command another key first"
            ]
        );
        assert_eq!(k, Keymap::default());
        // Ctrl-C is one of quit's two keys: it moves.
        let notes = k.apply(Path::new("/k"), "global.help = ?, Ctrl-C\n");
        assert_eq!(
            notes.moved,
            vec!["/k:1:18: Ctrl-C moved from global.quit to global.help"]
        );
        // A tab's key hides a global one: `q` is quit's (with Ctrl-C gone,
        // its only key), so the Domains tab may not take it.
        let notes = k.apply(Path::new("/k"), "domains.pause = q\n");
        assert!(
            notes.problems[0].contains("q is global.quit's everywhere it applies"),
            "{notes:?}"
        );
        // Console keys a guest needs, and an Esc that says yes, are refused.
        let notes = k.apply(
            Path::new("/k"),
            "console.scroll-up = a\nconfirm.yes = Esc\n",
        );
        assert_eq!(notes.problems.len(), 2, "{notes:?}");
        assert!(notes.problems[0].starts_with("/k:1:21: a: the console sends"));
        assert!(notes.problems[1].starts_with("/k:2:15: Esc: Esc only ever cancels"));
        // Esc picking a shutdown reason, or a letter the editor types.
        let notes = k.apply(
            Path::new("/k"),
            "shutdown.poweroff = Esc\neditor.save = a\nshutdown.reboot = Enter\n",
        );
        assert_eq!(notes.problems.len(), 3, "{notes:?}");
        assert!(
            notes.problems[1].contains("the editor types that key"),
            "{notes:?}"
        );
        // A shutdown letter on a picker key would reboot on a move down;
        // a line refused at its second key changes nothing.
        let before = k.clone();
        let notes = k.apply(
            Path::new("/k"),
            "shutdown.reboot = j\nglobal.help = F2, q\n",
        );
        assert_eq!(notes.problems.len(), 2, "{notes:?}");
        assert_eq!(k, before, "refused lines change nothing");
        // Aliases are their keys (Ctrl-[ is Esc, Ctrl-M Enter); "no" keys
        // never become "yes"; the guest keeps its control characters.
        let notes = k.apply(
            Path::new("/k"),
            "console.detach-console = Ctrl-M\nconsole.detach-console = Ctrl-C\nconfirm.yes = n\nconfirm.yes = Enter\npicker.choose = Ctrl-[\n",
        );
        assert_eq!(notes.problems.len(), 5, "{notes:?}");
        assert!(
            notes.problems[2].contains("n answers confirm.no"),
            "{notes:?}"
        );
        let notes = k.apply(Path::new("/k"), "editor.close = Ctrl-[\n");
        assert!(notes.is_empty(), "Ctrl-[ is Esc, and Esc closes: {notes:?}");
        assert_eq!(
            parse_key("Ctrl-["),
            Ok(Key {
                code: KeyCode::Esc,
                mods: KeyModifiers::NONE
            })
        );
        let help = k.lookup(
            &ev(KeyCode::Char('c'), KeyModifiers::CONTROL),
            &[Scope::Global],
            false,
        );
        assert_eq!(help, Some(Command::Help));
    }

    #[test]
    fn problems_name_line_and_column_and_what_was_expected() {
        let mut k = Keymap::default();
        let text = "\u{feff}domains.pause P\nnowhere.pause = P\ndomains.fly = x\n  domains.pause = Ctrl-\u{1b}\ndomains.pause = P,,Q\n";
        let notes = k.apply(Path::new("/k"), text).problems;
        assert_eq!(notes.len(), 5, "{notes:?}");
        assert!(
            notes[0].starts_with("/k:1:1: expected SCOPE.COMMAND = KEY"),
            "{}",
            notes[0]
        );
        assert!(
            notes[1].starts_with("/k:2:1: expected a scope (global, domains"),
            "{}",
            notes[1]
        );
        assert!(
            notes[2].starts_with("/k:3:9: expected a command of domains ("),
            "{}",
            notes[2]
        );
        assert!(
            notes[3].starts_with("/k:4:19: expected a key"),
            "{}",
            notes[3]
        );
        assert!(
            notes[3].contains("\\u{1b}"),
            "control bytes are escaped: {}",
            notes[3]
        );
        assert!(
            notes[4].starts_with("/k:5:19: expected a key after"),
            "{}",
            notes[4]
        );
        assert_eq!(k, Keymap::default(), "bad lines change nothing");
    }

    #[test]
    fn keys_parse_as_the_help_writes_them() {
        for (text, code, mods) in [
            ("q", KeyCode::Char('q'), KeyModifiers::NONE),
            ("Space", KeyCode::Char(' '), KeyModifiers::NONE),
            ("Ctrl-]", KeyCode::Char(']'), KeyModifiers::CONTROL),
            ("ctrl-X", KeyCode::Char('x'), KeyModifiers::CONTROL),
            ("Shift-a", KeyCode::Char('A'), KeyModifiers::NONE),
            ("Shift-Tab", KeyCode::BackTab, KeyModifiers::SHIFT),
            ("F12", KeyCode::F(12), KeyModifiers::NONE),
            ("Alt-PgDn", KeyCode::PageDown, KeyModifiers::ALT),
        ] {
            assert_eq!(parse_key(text), Ok(Key { code, mods }), "{text}");
        }
        for bad in ["", "F13", "Ctrl-", "ab", "\u{7}"] {
            assert!(parse_key(bad).is_err(), "{bad:?}");
        }
    }
}
