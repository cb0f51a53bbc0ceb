//! The `:` palette: the CLI's verbs typed in the TUI. Its keys (Tab
//! completes, Enter runs, Esc closes) and its parsing live here; what a
//! line asks for is an [`Op`], run by the same dispatcher as the keys.

use std::path::PathBuf;

use crossterm::event::{KeyCode, KeyEvent};
use ratatui::text::{Line, Span};

use crate::backend::ShutdownReason;
use crate::config::DeviceRef;
use crate::config::device_args::parse_device_args;
use crate::fleet::DomKey;
use crate::tui::app::App;
use crate::tui::complete::{Candidates, complete};
use crate::tui::input::LineInput;
use crate::tui::keymap::{Command, Keymap};
use crate::tui::op::Op;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Palette {
    pub input: LineInput,
}

/// What a key in the palette asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum PaletteKey {
    Stay,
    Close,
    /// Run this line (the palette closes).
    Run(String),
}

impl Palette {
    /// The status line while typing: the line and the verbs that fit.
    pub fn line(&self, app: &App) -> Line<'static> {
        let text = &self.input.text;
        let word = text.split_whitespace().next().unwrap_or("");
        let hint = app
            .keys
            .palette_verbs(app.read_only)
            .into_iter()
            .filter(|(v, _, _)| v.starts_with(word))
            .map(|(v, a, _)| {
                if a.is_empty() {
                    v.to_string()
                } else {
                    format!("{v} {a}")
                }
            })
            .take(4)
            .collect::<Vec<_>>()
            .join(" · ");
        Line::from(vec![
            Span::styled(" : ", app.theme.key()),
            Span::styled(
                crate::tui::ui::tail(text, usize::from(app.size.0).saturating_sub(8)),
                app.theme.base(),
            ),
            Span::styled("▏", app.theme.key()),
            Span::styled(format!("  {hint}"), app.theme.muted()),
        ])
    }

    /// `candidates` is asked only when Tab is pressed.
    pub fn on_key(
        &mut self,
        key: &KeyEvent,
        candidates: impl FnOnce() -> Candidates,
    ) -> PaletteKey {
        match key.code {
            KeyCode::Esc => PaletteKey::Close,
            KeyCode::Enter => PaletteKey::Run(self.input.text.clone()),
            KeyCode::Tab => {
                if let Some(text) = complete(&self.input.text, &candidates()) {
                    self.input = LineInput::new(text);
                }
                PaletteKey::Stay
            }
            _ => {
                self.input.handle(key);
                PaletteKey::Stay
            }
        }
    }
}

/// A palette line as an operation; `Ok(None)` for an empty line.
/// `resolve` finds a domain by name or id (or says why not).
pub fn parse(
    line: &str,
    keys: &Keymap,
    read_only: bool,
    resolve: &dyn Fn(&str) -> Result<DomKey, String>,
) -> Result<Option<Op>, String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let Some((&verb, args)) = words.split_first() else {
        return Ok(None);
    };
    let Some(bound) = keys.palette_command(verb) else {
        let help = keys.key_for(Command::Help).unwrap_or_else(|| "?".into());
        return Err(format!(
            "unknown command '{verb}' (Tab completes; {help} lists keys and commands)"
        ));
    };
    if read_only && bound.destructive {
        return Err(format!("{verb} is not available in read-only mode"));
    }
    let synopsis = bound.palette.map_or("", |(_, a)| a);
    let usage = || format!("{verb} {synopsis}");
    let dom = || -> Result<DomKey, String> {
        let name = args
            .first()
            .ok_or_else(|| format!("{verb} needs a domain name or id"))?;
        resolve(name)
    };
    let arg = |i: usize| args.get(i).copied().ok_or_else(usage);
    // Words beyond the synopsis are refused, not dropped.
    let most = synopsis.split_whitespace().count();
    if !synopsis.contains('…') && args.len() > most {
        let extra = args[most..].join(" ");
        let takes = if most == 0 {
            "no arguments".to_string()
        } else {
            synopsis.to_string()
        };
        let what = if args.len() - most == 1 {
            "is one word too many"
        } else {
            "are words too many"
        };
        return Err(format!(
            "{verb} takes {takes}; '{}' {what}",
            crate::fsx::excerpt(&extra, 40)
        ));
    }
    let op = match bound.command {
        Command::Quit => Op::Quit,
        Command::Theme => Op::Theme(args.first().map(|s| s.to_string())),
        Command::LibNew => Op::New(args.first().copied().unwrap_or("").to_string()),
        Command::LibBuild => Op::Create(
            args.first()
                .ok_or("create needs a library config name or a file")?
                .to_string(),
        ),
        Command::Console => Op::Console(dom()?),
        Command::Edit => Op::Edit(dom()?),
        Command::Pause => Op::Pause(vec![dom()?]),
        Command::Unpause => Op::Unpause(vec![dom()?]),
        Command::Start => Op::Start(vec![dom()?]),
        Command::Destroy => Op::Destroy(vec![dom()?]),
        Command::CancelQueued => Op::Cancel(vec![dom()?]),
        Command::Shutdown => {
            let d = dom()?;
            let reason = match args.get(1).copied() {
                None | Some("poweroff") => ShutdownReason::Poweroff,
                Some("reboot") => ShutdownReason::Reboot,
                Some("suspend") => ShutdownReason::Suspend,
                Some(other) => {
                    return Err(format!(
                        "unknown shutdown '{other}' (poweroff, reboot, suspend)"
                    ));
                }
            };
            Op::Shutdown(vec![d], Some(reason))
        }
        Command::Attach => {
            let d = dom()?;
            let kind = args.get(1).ok_or("attach DOM vbd|vif|pci ARGS…")?;
            let rest: Vec<String> = args[2..].iter().map(|s| s.to_string()).collect();
            Op::Attach(d, Some(parse_device_args(kind, &rest)?))
        }
        Command::Detach => {
            let d = dom()?;
            let r = arg(1).map_err(|_| "detach DOM DEVICE".to_string())?;
            Op::Detach(d, Some(r.parse::<DeviceRef>().map_err(|e| e.to_string())?))
        }
        Command::MemTarget => {
            let d = dom()?;
            let given = args
                .get(1)
                .ok_or_else(|| format!("{}: the target in MiB is missing", usage()))?;
            let mib = match given.parse::<u64>() {
                Ok(m) if m > 0 => m,
                Err(e) if *e.kind() == std::num::IntErrorKind::PosOverflow => {
                    return Err(format!(
                        "{}: '{}' is far too large",
                        usage(),
                        crate::fsx::excerpt(given, 24)
                    ));
                }
                _ => {
                    return Err(format!(
                        "{}: MIB is a whole number above 0, not '{}'",
                        usage(),
                        crate::fsx::excerpt(given, 20)
                    ));
                }
            };
            Op::MemTarget(d, Some(mib))
        }
        Command::Save => {
            let d = dom()?;
            Op::Save(d, PathBuf::from(arg(1)?))
        }
        Command::Restore => Op::Restore(PathBuf::from(arg(0)?)),
        other => return Err(format!("{verb}: {other:?} takes no part in the palette")),
    };
    Ok(Some(op))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(name: &str) -> Result<DomKey, String> {
        match name {
            "web1" | "3" => Ok(DomKey::local(3)),
            _ => Err(format!("no domain {name}")),
        }
    }

    fn p(line: &str) -> Result<Option<Op>, String> {
        parse(line, &Keymap::default(), false, &resolve)
    }

    #[test]
    fn lines_become_the_ops_the_keys_run() {
        assert_eq!(p(""), Ok(None));
        assert_eq!(p("pause web1"), Ok(Some(Op::Pause(vec![DomKey::local(3)]))));
        assert_eq!(
            p("destroy 3"),
            Ok(Some(Op::Destroy(vec![DomKey::local(3)])))
        );
        assert_eq!(
            p("shutdown web1 reboot"),
            Ok(Some(Op::Shutdown(
                vec![DomKey::local(3)],
                Some(ShutdownReason::Reboot)
            )))
        );
        assert_eq!(
            p("mem-set web1 256"),
            Ok(Some(Op::MemTarget(DomKey::local(3), Some(256))))
        );
        assert_eq!(p("theme"), Ok(Some(Op::Theme(None))));
        assert_eq!(p("restore /tmp/x"), Ok(Some(Op::Restore("/tmp/x".into()))));
    }

    #[test]
    fn bad_lines_say_what_was_expected() {
        assert_eq!(p("pause"), Err("pause needs a domain name or id".into()));
        assert_eq!(p("pause nosuch"), Err("no domain nosuch".into()));
        assert_eq!(p("save web1"), Err("save DOM FILE".into()));
        assert_eq!(
            p("mem-set web1 0"),
            Err("mem-set DOM MIB: MIB is a whole number above 0, not '0'".into())
        );
        assert_eq!(
            p("pause web1 extra"),
            Err("pause takes DOM; 'extra' is one word too many".into())
        );
        assert!(p("fly").is_err_and(|e| e.starts_with("unknown command 'fly'")));
        assert_eq!(
            parse("destroy web1", &Keymap::default(), true, &resolve),
            Err("destroy is not available in read-only mode".into())
        );
    }
}
