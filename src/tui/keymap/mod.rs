//! The one keymap table: keys, footer hints, the `?` help overlay and the
//! `:` command palette's verbs are all read from it. [`BINDINGS`] is the
//! default; a [`Keymap`] is the table in use, the operator's overrides
//! (`CONFIG/domus/keys`, see [`overrides`]) applied.

pub mod names;
pub mod overrides;
mod table;

pub use table::{Bound, Keymap};

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// Where a binding applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every tab, in normal mode.
    Global,
    Domains,
    Library,
    Events,
    Gone,
    Console,
    Editor,
    /// A question asked before a destructive action.
    Confirm,
    /// A list to pick from (the shutdown menu, the detach list).
    Picker,
    /// The shutdown menu's letters.
    Shutdown,
    /// A domain's details.
    Details,
}

impl Scope {
    pub fn title(self) -> &'static str {
        match self {
            Scope::Global => "Everywhere",
            Scope::Domains => "Domains tab",
            Scope::Library => "Library tab",
            Scope::Events => "Events tab",
            Scope::Gone => "Gone tab",
            Scope::Console => "Console view",
            Scope::Editor => "Config editor",
            Scope::Confirm => "Questions (destroy, delete, a low memory target)",
            Scope::Picker => "Lists to pick from (shutdown menu, detach)",
            Scope::Shutdown => "Shutdown menu",
            Scope::Details => "Details of a domain",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Quit,
    Help,
    Palette,
    NextTab,
    PrevTab,
    TabDomains,
    TabLibrary,
    TabEvents,
    TabGone,
    Dismiss,
    Up,
    Down,
    PageUp,
    PageDown,
    Top,
    Bottom,
    SortPrev,
    SortNext,
    SortReverse,
    Filter,
    Tag,
    Console,
    Edit,
    Pause,
    Shutdown,
    Destroy,
    Attach,
    Detach,
    MemTarget,
    CancelQueued,
    Details,
    Theme,
    Start,
    LibNew,
    LibClone,
    LibBuild,
    LibDelete,
    LibImport,
    ConsoleDetach,
    ScrollUp,
    ScrollDown,
    ConsoleSearch,
    EditorSave,
    EditorBuild,
    ConfirmYes,
    ConfirmNo,
    DetailsClose,
    DetailsNative,
    PickUp,
    PickDown,
    PickChoose,
    PickCancel,
    ShutPoweroff,
    ShutReboot,
    ShutSuspend,
    EditorUndo,
    EditorRedo,
    EditorKillLine,
    EditorClose,
    /// The I/O columns before DEVICES, UPTIME and CPU(s).
    IoColumns,
    /// Palette only: unpause (the `p` key toggles).
    Unpause,
    /// Palette only: save a domain's state to a file.
    Save,
    /// Palette only: restore a saved domain.
    Restore,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    pub code: KeyCode,
    pub mods: KeyModifiers,
}

const fn k(c: char) -> Key {
    Key {
        code: KeyCode::Char(c),
        mods: KeyModifiers::NONE,
    }
}

const fn code(code: KeyCode) -> Key {
    Key {
        code,
        mods: KeyModifiers::NONE,
    }
}

const fn ctrl(c: char) -> Key {
    Key {
        code: KeyCode::Char(c),
        mods: KeyModifiers::CONTROL,
    }
}

const fn shift(code: KeyCode) -> Key {
    Key {
        code,
        mods: KeyModifiers::SHIFT,
    }
}

#[derive(Debug, PartialEq)]
pub struct Binding {
    pub scope: Scope,
    pub keys: &'static [Key],
    pub command: Command,
    /// Shown in the footer when not empty.
    pub hint: &'static str,
    pub help: &'static str,
    /// Removed in `--read-only` mode.
    pub destructive: bool,
    /// The verb in the `:` palette, with its argument synopsis.
    pub palette: Option<(&'static str, &'static str)>,
    /// The palette's description when the key's would mislead (`p`
    /// toggles, `:pause` pauses).
    pub palette_help: Option<&'static str>,
}

const fn b(
    scope: Scope,
    keys: &'static [Key],
    command: Command,
    hint: &'static str,
    help: &'static str,
) -> Binding {
    Binding {
        scope,
        keys,
        command,
        hint,
        help,
        destructive: false,
        palette: None,
        palette_help: None,
    }
}

const fn says(mut x: Binding, palette_help: &'static str) -> Binding {
    x.palette_help = Some(palette_help);
    x
}

const fn destructive(mut x: Binding) -> Binding {
    x.destructive = true;
    x
}

const fn verb(mut x: Binding, name: &'static str, args: &'static str) -> Binding {
    x.palette = Some((name, args));
    x
}

use Command as C;
use Scope as S;

pub static BINDINGS: &[Binding] = &[
    verb(
        b(
            S::Global,
            &[k('q'), ctrl('c')],
            C::Quit,
            "quit",
            "Quit domus (domains keep running)",
        ),
        "quit",
        "",
    ),
    b(
        S::Global,
        &[k('?'), code(KeyCode::F(1))],
        C::Help,
        "help",
        "Show this help",
    ),
    b(
        S::Global,
        &[k(':')],
        C::Palette,
        "",
        "Command palette (the CLI's verbs)",
    ),
    b(S::Global, &[code(KeyCode::Tab)], C::NextTab, "", "Next tab"),
    b(
        S::Global,
        // Terminals send Shift-Tab as BackTab, with or without SHIFT.
        &[shift(KeyCode::BackTab), code(KeyCode::BackTab)],
        C::PrevTab,
        "",
        "Previous tab",
    ),
    b(S::Global, &[k('1')], C::TabDomains, "", "Domains tab"),
    b(
        S::Global,
        &[k('2')],
        C::TabLibrary,
        "",
        "Config library tab",
    ),
    b(S::Global, &[k('3')], C::TabEvents, "", "Events log tab"),
    b(
        S::Global,
        &[k('4')],
        C::TabGone,
        "",
        "Gone tab: recently gone domains",
    ),
    b(
        S::Gone,
        &[code(KeyCode::Enter)],
        C::Details,
        "details",
        "Timeline and last console lines",
    ),
    b(
        S::Gone,
        &[k('x'), code(KeyCode::Delete)],
        C::Dismiss,
        "dismiss",
        "Stop showing it",
    ),
    says(
        verb(
            b(
                S::Global,
                &[k('T')],
                C::Theme,
                "",
                "Switch theme (dark, light, high-contrast, …)",
            ),
            "theme",
            "[NAME]",
        ),
        "Switch theme (dark, light, high-contrast, …); without a name, pick one",
    ),
    // Palette only: no key of their own.
    verb(
        destructive(b(
            S::Domains,
            &[],
            C::Unpause,
            "",
            "Unpause a paused domain",
        )),
        "unpause",
        "DOM",
    ),
    verb(
        destructive(b(
            S::Domains,
            &[],
            C::Save,
            "",
            "Save a domain's state to a file (it stops)",
        )),
        "save",
        "DOM FILE",
    ),
    verb(
        destructive(b(S::Global, &[], C::Restore, "", "Restore a saved domain")),
        "restore",
        "FILE",
    ),
    b(
        S::Global,
        &[code(KeyCode::Up), k('k')],
        C::Up,
        "",
        "Move up",
    ),
    b(
        S::Global,
        &[code(KeyCode::Down), k('j')],
        C::Down,
        "",
        "Move down",
    ),
    b(
        S::Global,
        &[code(KeyCode::PageUp)],
        C::PageUp,
        "",
        "Page up",
    ),
    b(
        S::Global,
        &[code(KeyCode::PageDown)],
        C::PageDown,
        "",
        "Page down",
    ),
    b(
        S::Global,
        &[code(KeyCode::Home), k('g')],
        C::Top,
        "",
        "First row",
    ),
    b(
        S::Global,
        &[code(KeyCode::End), k('G')],
        C::Bottom,
        "",
        "Last row",
    ),
    verb(
        b(
            S::Domains,
            &[k('c')],
            C::Console,
            "console",
            "Open the console (Ctrl-] returns)",
        ),
        "console",
        "DOM",
    ),
    verb(
        b(
            S::Domains,
            &[k('e')],
            C::Edit,
            "edit",
            "Edit the domain's config",
        ),
        "edit",
        "DOM",
    ),
    says(
        verb(
            destructive(b(
                S::Domains,
                &[k('p')],
                C::Pause,
                "pause",
                "Pause / unpause (tagged or selected)",
            )),
            "pause",
            "DOM",
        ),
        "Pause a domain (one already paused stays so)",
    ),
    says(
        verb(
            destructive(b(
                S::Domains,
                &[k('s')],
                C::Shutdown,
                "shutdown",
                "Shutdown menu: poweroff, reboot, suspend",
            )),
            "shutdown",
            "DOM [poweroff|reboot|suspend]",
        ),
        "Shut a domain down (poweroff unless a reason is given)",
    ),
    verb(
        destructive(b(
            S::Domains,
            &[k('S')],
            C::Start,
            "start",
            "Start a shut-down domain again from its config",
        )),
        "start",
        "DOM",
    ),
    verb(
        destructive(b(
            S::Domains,
            &[k('d')],
            C::Destroy,
            "destroy",
            "Destroy (asks first)",
        )),
        "destroy",
        "DOM",
    ),
    verb(
        destructive(b(
            S::Domains,
            &[k('a')],
            C::Attach,
            "attach",
            "Attach a device (vbd, vif, pci)",
        )),
        "attach",
        "DOM vbd UNAME DEV [r|w] | vif [mac=…] [bridge=…] | pci BDF",
    ),
    says(
        verb(
            destructive(b(
                S::Domains,
                &[k('x')],
                C::Detach,
                "detach",
                "Detach a device (pick from its list)",
            )),
            "detach",
            "DOM DEVICE",
        ),
        "Detach a device: xvdb, a MAC or vifN, or a PCI address",
    ),
    verb(
        destructive(b(
            S::Domains,
            &[k('m')],
            C::MemTarget,
            "mem",
            "Set the memory target (balloon)",
        )),
        "mem-set",
        "DOM MIB",
    ),
    says(
        verb(
            destructive(b(
                S::Domains,
                &[k('C')],
                C::CancelQueued,
                "",
                "Cancel operations still waiting their turn (tagged or selected)",
            )),
            "cancel",
            "DOM",
        ),
        "Cancel a domain's operations still waiting their turn",
    ),
    b(
        S::Domains,
        &[code(KeyCode::Enter)],
        C::Details,
        "details",
        "Details: config, devices, timeline, CPU",
    ),
    b(
        S::Domains,
        &[k('/')],
        C::Filter,
        "filter",
        "Filter by name (substring, or regex; host:NAME in a fleet)",
    ),
    b(S::Domains, &[k(' ')], C::Tag, "tag", "Tag for bulk actions"),
    b(
        S::Domains,
        &[k('I')],
        C::IoColumns,
        "",
        "I/O columns (NETTX/s NETRX/s VBD_RD/s VBD_WR/s) before DEVICES, UPTIME and CPU(s); again: back",
    ),
    b(
        S::Domains,
        &[k('<')],
        C::SortPrev,
        "",
        "Sort by the previous column",
    ),
    b(
        S::Domains,
        &[k('>')],
        C::SortNext,
        "sort",
        "Sort by the next column",
    ),
    b(
        S::Domains,
        &[k('r')],
        C::SortReverse,
        "",
        "Reverse the sort",
    ),
    verb(
        destructive(b(
            S::Library,
            &[k('n')],
            C::LibNew,
            "new",
            "New config from a template",
        )),
        "new",
        "NAME",
    ),
    verb(
        destructive(b(
            S::Library,
            &[code(KeyCode::Enter), k('b')],
            C::LibBuild,
            "build",
            "Build a domain from the config",
        )),
        "create",
        "NAME|FILE",
    ),
    b(S::Library, &[k('e')], C::Edit, "edit", "Edit the config"),
    destructive(b(
        S::Library,
        &[k('N')],
        C::LibClone,
        "copy",
        "New config from the selected one (new name, fresh uuid and MACs)",
    )),
    destructive(b(
        S::Library,
        &[k('i')],
        C::LibImport,
        "import",
        "Import the selected xl.cfg into the library as NAME.sxp",
    )),
    destructive(b(
        S::Library,
        &[k('D')],
        C::LibDelete,
        "delete",
        "Delete the config file (asks first)",
    )),
    b(S::Confirm, &[k('y'), k('Y')], C::ConfirmYes, "yes", "Do it"),
    b(
        S::Confirm,
        &[k('n'), k('N'), code(KeyCode::Esc)],
        C::ConfirmNo,
        "no",
        "Cancel",
    ),
    b(S::Picker, &[code(KeyCode::Up), k('k')], C::PickUp, "", "Up"),
    b(
        S::Picker,
        &[code(KeyCode::Down), k('j')],
        C::PickDown,
        "",
        "Down",
    ),
    b(
        S::Picker,
        &[code(KeyCode::Enter)],
        C::PickChoose,
        "",
        "Choose",
    ),
    b(
        S::Picker,
        &[code(KeyCode::Esc)],
        C::PickCancel,
        "",
        "Cancel",
    ),
    b(S::Shutdown, &[k('p')], C::ShutPoweroff, "", "Power off"),
    b(
        S::Shutdown,
        &[k('r')],
        C::ShutReboot,
        "",
        "Reboot (on_reboot applies)",
    ),
    b(
        S::Shutdown,
        &[k('s')],
        C::ShutSuspend,
        "",
        "Suspend (to save it)",
    ),
    b(
        S::Details,
        &[code(KeyCode::Up), k('k')],
        C::Up,
        "",
        "Scroll the timeline back",
    ),
    b(
        S::Details,
        &[code(KeyCode::Down), k('j')],
        C::Down,
        "",
        "Scroll the timeline on",
    ),
    b(
        S::Details,
        &[code(KeyCode::PageUp)],
        C::PageUp,
        "",
        "A page back",
    ),
    b(
        S::Details,
        &[code(KeyCode::PageDown)],
        C::PageDown,
        "",
        "A page on",
    ),
    b(
        S::Details,
        &[code(KeyCode::Home), k('g')],
        C::Top,
        "",
        "The timeline's start",
    ),
    b(
        S::Details,
        &[code(KeyCode::End), k('G')],
        C::Bottom,
        "",
        "The newest (followed live)",
    ),
    b(
        S::Details,
        &[k('c')],
        C::Console,
        "",
        "The domain's console",
    ),
    b(
        S::Details,
        &[k('x')],
        C::DetailsNative,
        "",
        "The hypervisor's own description, read-only (libvirt's XML), or back",
    ),
    b(
        S::Details,
        &[code(KeyCode::Esc), code(KeyCode::Enter), k('q')],
        C::DetailsClose,
        "",
        "Close",
    ),
    // Legacy terminals send Ctrl-] as byte 0x1d, which crossterm reports as Ctrl-5.
    b(
        S::Console,
        &[ctrl(']'), ctrl('5')],
        C::ConsoleDetach,
        "back",
        "Back to the table",
    ),
    b(
        S::Console,
        &[shift(KeyCode::PageUp)],
        C::ScrollUp,
        "scroll",
        "Scroll back",
    ),
    b(
        S::Console,
        &[shift(KeyCode::PageDown)],
        C::ScrollDown,
        "",
        "Scroll forward",
    ),
    b(
        S::Console,
        &[k('/')],
        C::ConsoleSearch,
        "",
        "Search the scrollback (while scrolled back)",
    ),
    destructive(b(
        S::Editor,
        &[ctrl('s')],
        C::EditorSave,
        "save",
        "Save (atomic)",
    )),
    destructive(b(
        S::Editor,
        &[ctrl('b')],
        C::EditorBuild,
        "save+build",
        "Save and build",
    )),
    b(S::Editor, &[ctrl('z')], C::EditorUndo, "undo", "Undo"),
    b(S::Editor, &[ctrl('y')], C::EditorRedo, "redo", "Redo"),
    b(
        S::Editor,
        &[ctrl('u')],
        C::EditorKillLine,
        "",
        "Delete to the start of the line (as Ctrl-U does in every input)",
    ),
    b(
        S::Editor,
        &[code(KeyCode::Esc)],
        C::EditorClose,
        "close",
        "Close (asks about unsaved changes)",
    ),
];

pub(crate) fn matches(key: &Key, ev: &KeyEvent) -> bool {
    let mods = ev.modifiers & (KeyModifiers::CONTROL | KeyModifiers::ALT | KeyModifiers::SHIFT);
    match (key.code, ev.code) {
        // Shifted characters arrive as the character itself, maybe with SHIFT.
        (KeyCode::Char(a), KeyCode::Char(b)) => a == b && (mods - KeyModifiers::SHIFT) == key.mods,
        (a, b) => a == b && mods == key.mods,
    }
}

pub fn key_label(key: &Key) -> String {
    let base = match key.code {
        KeyCode::Char(' ') => "Space".to_string(),
        KeyCode::Char(c) => c.to_string(),
        KeyCode::Enter => "Enter".into(),
        KeyCode::Esc => "Esc".into(),
        KeyCode::Tab => "Tab".into(),
        KeyCode::BackTab => return "Shift-Tab".into(),
        KeyCode::F(n) => format!("F{n}"),
        KeyCode::Up => "↑".into(),
        KeyCode::Down => "↓".into(),
        KeyCode::PageUp => "PgUp".into(),
        KeyCode::PageDown => "PgDn".into(),
        KeyCode::Home => "Home".into(),
        KeyCode::End => "End".into(),
        other => format!("{other:?}"),
    };
    let mut out = String::new();
    if key.mods.contains(KeyModifiers::CONTROL) {
        out.push_str("Ctrl-");
    }
    if key.mods.contains(KeyModifiers::ALT) {
        out.push_str("Alt-");
    }
    if key.mods.contains(KeyModifiers::SHIFT) {
        out.push_str("Shift-");
    }
    if key.mods.contains(KeyModifiers::CONTROL) {
        out.push_str(&base.to_uppercase());
    } else {
        out.push_str(&base);
    }
    out
}
