//! The names commands and scopes go by in the overrides file.

use super::{Command, Scope};
use Command as C;

/// Every command with its name (kebab-case, as in the overrides file).
pub(super) const COMMANDS: &[(Command, &str)] = &[
    (C::Quit, "quit"),
    (C::Help, "help"),
    (C::Palette, "palette"),
    (C::NextTab, "next-tab"),
    (C::PrevTab, "prev-tab"),
    (C::TabDomains, "tab-domains"),
    (C::TabLibrary, "tab-library"),
    (C::TabEvents, "tab-events"),
    (C::TabGone, "tab-gone"),
    (C::Dismiss, "dismiss"),
    (C::Up, "up"),
    (C::Down, "down"),
    (C::PageUp, "page-up"),
    (C::PageDown, "page-down"),
    (C::Top, "top"),
    (C::Bottom, "bottom"),
    (C::SortPrev, "sort-prev"),
    (C::SortNext, "sort-next"),
    (C::SortReverse, "sort-reverse"),
    (C::Filter, "filter"),
    (C::Tag, "tag"),
    (C::Console, "console"),
    (C::Edit, "edit"),
    (C::Pause, "pause"),
    (C::Shutdown, "shutdown"),
    (C::Destroy, "destroy"),
    (C::Attach, "attach"),
    (C::Detach, "detach"),
    (C::MemTarget, "mem-set"),
    (C::CancelQueued, "cancel"),
    (C::Details, "details"),
    (C::Theme, "theme"),
    (C::Start, "start"),
    (C::LibNew, "new"),
    (C::LibClone, "copy"),
    (C::LibBuild, "build"),
    (C::LibDelete, "delete"),
    (C::LibImport, "import"),
    (C::ConsoleDetach, "detach-console"),
    (C::ScrollUp, "scroll-up"),
    (C::ScrollDown, "scroll-down"),
    (C::ConsoleSearch, "search"),
    (C::EditorSave, "save"),
    (C::EditorBuild, "save-build"),
    (C::ConfirmYes, "yes"),
    (C::ConfirmNo, "no"),
    (C::DetailsClose, "close"),
    (C::DetailsNative, "native"),
    (C::PickUp, "up"),
    (C::PickDown, "down"),
    (C::PickChoose, "choose"),
    (C::PickCancel, "cancel"),
    (C::ShutPoweroff, "poweroff"),
    (C::ShutReboot, "reboot"),
    (C::ShutSuspend, "suspend"),
    (C::EditorUndo, "undo"),
    (C::EditorRedo, "redo"),
    (C::EditorKillLine, "kill-line"),
    (C::EditorClose, "close"),
    (C::Unpause, "unpause"),
    (C::IoColumns, "io-columns"),
    (C::Save, "save-state"),
    (C::Restore, "restore"),
];

pub(super) const SCOPES: &[(Scope, &str)] = &[
    (Scope::Global, "global"),
    (Scope::Domains, "domains"),
    (Scope::Library, "library"),
    (Scope::Events, "events"),
    (Scope::Gone, "gone"),
    (Scope::Console, "console"),
    (Scope::Editor, "editor"),
    (Scope::Confirm, "confirm"),
    (Scope::Picker, "picker"),
    (Scope::Shutdown, "shutdown"),
    (Scope::Details, "details"),
];

pub fn command_name(c: Command) -> &'static str {
    COMMANDS
        .iter()
        .find(|(x, _)| *x == c)
        .map_or("?", |(_, n)| n)
}

pub fn scope_name(s: Scope) -> &'static str {
    SCOPES.iter().find(|(x, _)| *x == s).map_or("?", |(_, n)| n)
}

pub fn scope_named(name: &str) -> Option<Scope> {
    SCOPES.iter().find(|(_, n)| *n == name).map(|(s, _)| *s)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every binding's command has a name, so every binding can be
    /// overridden; within a scope no two commands share one.
    #[test]
    fn every_bound_command_is_named_once_per_scope() {
        for b in super::super::BINDINGS {
            assert_ne!(command_name(b.command), "?", "{:?}", b.command);
            let same: Vec<_> = super::super::BINDINGS
                .iter()
                .filter(|o| {
                    o.scope == b.scope && command_name(o.command) == command_name(b.command)
                })
                .collect();
            assert!(same.len() == 1 || same.iter().all(|o| o.command == b.command));
        }
        for (s, _) in SCOPES {
            assert_eq!(scope_named(scope_name(*s)), Some(*s));
        }
    }
}
