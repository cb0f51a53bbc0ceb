//! The keymap in use: the default table with the operator's overrides.

use crossterm::event::KeyEvent;

use super::{BINDINGS, Binding, Command, Key, Scope, key_label, matches};

/// One binding as the running keymap holds it: the default's, with the
/// keys the operator gave it (its scope, command and texts read through).
#[derive(Debug, Clone, PartialEq)]
pub struct Bound {
    pub keys: Vec<Key>,
    default: &'static Binding,
}

impl std::ops::Deref for Bound {
    type Target = Binding;

    fn deref(&self) -> &Binding {
        self.default
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Keymap {
    pub(super) bound: Vec<Bound>,
}

impl Default for Keymap {
    fn default() -> Self {
        Keymap {
            bound: BINDINGS
                .iter()
                .map(|b| Bound {
                    keys: b.keys.to_vec(),
                    default: b,
                })
                .collect(),
        }
    }
}

impl Keymap {
    pub fn bindings(&self) -> &[Bound] {
        &self.bound
    }

    /// The command a key triggers in `scopes` (searched in order).
    pub fn lookup(&self, ev: &KeyEvent, scopes: &[Scope], read_only: bool) -> Option<Command> {
        scopes.iter().find_map(|scope| {
            self.bound
                .iter()
                .filter(|b| b.scope == *scope && !(read_only && b.destructive))
                .find(|b| b.keys.iter().any(|k| matches(k, ev)))
                .map(|b| b.command)
        })
    }

    /// The first key bound to `command`, as the operator would type it.
    pub fn key_for(&self, command: Command) -> Option<String> {
        self.bound
            .iter()
            .filter(|b| b.command == command)
            .find_map(|b| b.keys.first())
            .map(key_label)
    }

    /// Footer hints for a scope: `(command, key, hint)`, for a footer that
    /// offers only what fits the selection.
    pub fn hints_of(&self, scope: Scope, read_only: bool) -> Vec<(Command, String, &'static str)> {
        let modal = matches!(
            scope,
            Scope::Console | Scope::Editor | Scope::Confirm | Scope::Picker | Scope::Shutdown
        );
        self.bound
            .iter()
            .filter(|b| (b.scope == scope || b.scope == Scope::Global) && !b.hint.is_empty())
            .filter(|b| !(read_only && b.destructive))
            .filter(|b| b.scope != Scope::Global || !modal)
            .filter_map(|b| Some((b.command, key_label(b.keys.first()?), b.hint)))
            .collect()
    }

    /// Footer hints as `(key, hint)` pairs.
    pub fn hints(&self, scope: Scope, read_only: bool) -> Vec<(String, &'static str)> {
        self.hints_of(scope, read_only)
            .into_iter()
            .map(|(_, k, h)| (k, h))
            .collect()
    }

    /// Palette verbs available: `(verb, synopsis, help)`; the tabs' verbs
    /// first, those of everywhere (theme, quit) last.
    pub fn palette_verbs(
        &self,
        read_only: bool,
    ) -> Vec<(&'static str, &'static str, &'static str)> {
        let mut verbs: Vec<(bool, (&str, &str, &str))> = self
            .bound
            .iter()
            .filter(|b| !(read_only && b.destructive))
            .filter_map(|b| {
                b.palette.map(|(v, a)| {
                    (
                        b.scope == Scope::Global,
                        (v, a, b.palette_help.unwrap_or(b.help)),
                    )
                })
            })
            .collect();
        verbs.sort_by_key(|(global, _)| *global);
        let mut out: Vec<(&str, &str, &str)> = Vec::new();
        for (_, v) in verbs {
            if !out.iter().any(|o| o.0 == v.0) {
                out.push(v);
            }
        }
        out
    }

    /// Every binding as a line of the keys file, its help as a comment.
    pub fn to_file_text(&self) -> String {
        let mut out = String::new();
        for b in &self.bound {
            if b.keys.is_empty() {
                // Bindable, with no key yet (or a palette command only).
                let verb = b.palette.map_or(String::new(), |(v, _)| format!(" (:{v})"));
                out.push_str(&format!(
                    "# {}.{} =   # no key{verb}: {}\n",
                    super::names::scope_name(b.scope),
                    super::names::command_name(b.command),
                    b.help
                ));
                continue;
            }
            let mut keys: Vec<String> = Vec::new();
            for label in b.keys.iter().map(key_label) {
                if !keys.contains(&label) {
                    keys.push(label);
                }
            }
            out.push_str(&format!(
                "{}.{} = {}  # {}\n",
                super::names::scope_name(b.scope),
                super::names::command_name(b.command),
                keys.join(", "),
                b.help
            ));
        }
        out
    }

    /// The command a palette verb runs, whatever the mode.
    pub fn palette_command(&self, verb: &str) -> Option<&Bound> {
        self.bound
            .iter()
            .find(|b| b.palette.is_some_and(|(v, _)| v == verb))
    }
}
