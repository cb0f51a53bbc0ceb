//! Which commands fit the domains' state: the footer offers only those,
//! and a key, a `:` line or a bulk action that does not fit says why.

use super::{App, Tab};
use crate::fleet::DomKey;
use crate::tui::keymap::Command;

impl App {
    /// Why `cmd` does not fit the selected (or tagged) domains' state, if
    /// it does not: the footer leaves it out and the key says so.
    pub fn why_not(&self, cmd: Command) -> Option<String> {
        if self.tab != Tab::Domains {
            return None;
        }
        self.why_not_for(cmd, &self.table.targets())
    }

    /// Why `cmd` does not fit these domains' state, if it does not: the
    /// same rules for a key, a `:` line and a bulk action.
    pub fn why_not_for(&self, cmd: Command, targets: &[DomKey]) -> Option<String> {
        let rows: Vec<&crate::tui::table::Row> =
            targets.iter().filter_map(|d| self.table.row(*d)).collect();
        let domain_cmd = matches!(
            cmd,
            Command::Pause
                | Command::Unpause
                | Command::Save
                | Command::Shutdown
                | Command::Destroy
                | Command::Start
                | Command::Attach
                | Command::Detach
                | Command::MemTarget
                | Command::Console
                | Command::Edit
        );
        let Some(first) = rows.first() else {
            return domain_cmd.then(|| "no domain is selected".to_string());
        };
        let fits =
            |f: &dyn Fn(&crate::backend::DomainInfo) -> bool| rows.iter().any(|r| f(&r.view.info));
        let live = |i: &crate::backend::DomainInfo| !i.flags.shutdown && !i.flags.dying;
        let state = |i: &crate::backend::DomainInfo| {
            if i.flags.shutdown {
                "shut down"
            } else if i.flags.dying {
                "dying"
            } else if i.flags.paused {
                "paused"
            } else {
                "running"
            }
        };
        let ok = match cmd {
            Command::Pause | Command::Save | Command::Attach | Command::MemTarget => {
                fits(&|i| live(i) && i.domid != 0) || cmd == Command::MemTarget && fits(&live)
            }
            Command::Detach => fits(&|i| live(i) && !i.devices.is_empty()),
            // A paused guest cannot answer the button.
            Command::Shutdown => fits(&|i| live(i) && !i.flags.paused && i.domid != 0),
            Command::Start => fits(&|i| i.flags.shutdown),
            Command::Unpause => fits(&|i| live(i) && i.flags.paused),
            Command::Destroy | Command::Console => fits(&|i| i.domid != 0),
            Command::Edit => rows.iter().any(|r| {
                r.view.record.is_some()
                    || self
                        .hosts
                        .caps(r.host)
                        .has(crate::backend::Capability::NativeConfig)
            }),
            _ => true,
        };
        (!ok).then(|| {
            let i = &first.view.info;
            if i.domid == 0 && rows.len() == 1 {
                return match cmd {
                    Command::Pause | Command::Unpause => "Domain-0 cannot be paused".into(),
                    Command::Save => "Domain-0 cannot be saved".into(),
                    Command::Shutdown => "Domain-0 cannot be shut down".into(),
                    Command::Destroy => "Domain-0 cannot be destroyed".into(),
                    Command::Start => "Domain-0 cannot be started".into(),
                    Command::Console => "Domain-0's console is this host's terminal".into(),
                    Command::Edit => "Domain-0 has no config with domus".into(),
                    _ => "Domain-0 cannot be given devices from here".into(),
                };
            }
            let what = match cmd {
                Command::Start => format!("start: {} is not shut down", first.name),
                Command::Unpause => format!("unpause: {} is not paused", first.name),
                Command::Edit => format!("edit: {} has no config with domus", first.name),
                _ if i.flags.shutdown => {
                    // The keys in use, which the keys file may have moved.
                    let key =
                        |c: Command, d: &str| self.keys.key_for(c).unwrap_or_else(|| d.into());
                    format!(
                        "{}: {} is shut down ({} starts it again, {} destroys it)",
                        crate::tui::keymap::names::command_name(cmd),
                        first.name,
                        key(Command::Start, "S"),
                        key(Command::Destroy, "d")
                    )
                }
                _ => format!(
                    "{}: {} is {}",
                    crate::tui::keymap::names::command_name(cmd),
                    first.name,
                    state(i)
                ),
            };
            format!("not offered for {what}")
        })
    }
}
