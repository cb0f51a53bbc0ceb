//! Device forms: attach a vbd, vif or pci device, each field checked
//! before the engine is called.

use crate::config::device_args::parse_device_args;
use crate::config::{DeviceSpec, Mac, Pci};
use crate::fleet::DomKey;

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};

use crate::tui::action::HostPci;
use crate::tui::app::App;
use crate::tui::input::LineInput;
use crate::tui::ui::layout::centered;
use crate::tui::ui::overlays::frame_popup;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormKind {
    Vbd,
    Vif,
    Pci,
}

impl FormKind {
    pub const ALL: [FormKind; 3] = [FormKind::Vbd, FormKind::Vif, FormKind::Pci];

    pub fn name(self) -> &'static str {
        match self {
            FormKind::Vbd => "vbd",
            FormKind::Vif => "vif",
            FormKind::Pci => "pci",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Field {
    pub label: &'static str,
    pub input: LineInput,
    pub help: &'static str,
    pub error: Option<String>,
}

fn field(label: &'static str, value: impl Into<String>, help: &'static str) -> Field {
    Field {
        label,
        input: LineInput::new(value),
        help,
        error: None,
    }
}

#[derive(Debug, Clone)]
pub struct DeviceForm {
    pub domid: DomKey,
    pub name: String,
    pub kind: FormKind,
    pub fields: Vec<Field>,
    /// 0 is the kind selector; fields follow.
    pub focus: usize,
    pub pci: Vec<HostPci>,
    pub pci_selected: usize,
    pub completions: Vec<String>,
    /// The attach is under way: the form waits for its outcome.
    pub pending: bool,
    /// Why the last attach failed; the input is kept to correct.
    pub failure: Option<String>,
}

impl DeviceForm {
    /// A key for the form; `next_vdev` and `mac_seed` fill a kind's fields
    /// afresh when the kind changes.
    pub fn on_key(
        &mut self,
        key: crossterm::event::KeyEvent,
        next_vdev: &str,
        mac_seed: u64,
    ) -> super::KeyOutcome {
        use super::KeyOutcome;
        use crate::tui::action::Effect;
        use crossterm::event::KeyCode;
        let picker_focus = self.kind == FormKind::Pci && self.focus == self.fields.len() + 1;
        let last = self.fields.len() + usize::from(self.kind == FormKind::Pci);
        match key.code {
            KeyCode::Esc => return KeyOutcome::close(),
            // One attach at a time; the form stays open for its outcome.
            KeyCode::Enter if self.pending => {}
            KeyCode::Enter => {
                if let Some(dev) = self.validate() {
                    self.pending = true;
                    self.failure = None;
                    return KeyOutcome::stay_with(vec![Effect::Attach(self.domid, dev)]);
                }
            }
            KeyCode::Down if picker_focus => {
                self.pci_selected = (self.pci_selected + 1).min(self.pci.len().saturating_sub(1))
            }
            KeyCode::Up if picker_focus && self.pci_selected > 0 => self.pci_selected -= 1,
            KeyCode::Down => self.focus = (self.focus + 1).min(last),
            KeyCode::Up => self.focus = self.focus.saturating_sub(1),
            KeyCode::Tab => {
                if self.kind == FormKind::Vbd && self.focus == 1 {
                    let prefix = self.fields[0].input.text.clone();
                    return KeyOutcome::stay_with(vec![Effect::CompletePath(prefix)]);
                }
                self.focus = if self.focus >= last {
                    0
                } else {
                    self.focus + 1
                };
            }
            KeyCode::Left | KeyCode::Right if self.focus == 0 => {
                let i = FormKind::ALL
                    .iter()
                    .position(|k| *k == self.kind)
                    .unwrap_or(0);
                let n = FormKind::ALL.len();
                let j = if key.code == KeyCode::Right {
                    (i + 1) % n
                } else {
                    (i + n - 1) % n
                };
                self.set_kind(FormKind::ALL[j], next_vdev, mac_seed);
                if self.kind == FormKind::Pci && self.pci.is_empty() {
                    return KeyOutcome::stay_with(vec![Effect::ScanPci]);
                }
            }
            _ => {
                if let Some(f) = self.focused() {
                    f.input.handle(&key);
                    f.error = None;
                }
            }
        }
        KeyOutcome::stay()
    }

    /// `next_vdev`: a free guest disk name; `mac_seed`: for a fresh MAC.
    pub fn new(domid: DomKey, name: String, next_vdev: String, mac_seed: u64) -> Self {
        let mut f = DeviceForm {
            domid,
            name,
            kind: FormKind::Vbd,
            fields: Vec::new(),
            focus: 1,
            pci: Vec::new(),
            pci_selected: 0,
            completions: Vec::new(),
            pending: false,
            failure: None,
        };
        f.set_kind(FormKind::Vbd, &next_vdev, mac_seed);
        f
    }

    pub fn set_kind(&mut self, kind: FormKind, next_vdev: &str, mac_seed: u64) {
        self.kind = kind;
        self.completions.clear();
        // A refusal was about the other kind's input.
        self.failure = None;
        self.fields = match kind {
            FormKind::Vbd => vec![
                field(
                    "uname",
                    "file:",
                    "phy:/dev/NAME or file:/PATH (Tab completes paths)",
                ),
                field("dev", next_vdev, "guest disk name: xvdb, hdc, sdb…"),
                field("mode", "w", "r (read-only) or w"),
            ],
            FormKind::Vif => vec![
                field(
                    "mac",
                    Mac::xen_from_seed(crate::backend::sim::mix(mac_seed)).to_string(),
                    "a fresh 00:16:3e address",
                ),
                field("bridge", "xenbr0", "host bridge (empty: none)"),
                field("ip", "", "optional guest address"),
            ],
            FormKind::Pci => vec![field(
                "bdf",
                "",
                "[DDDD:]BB:DD.F, or pick from the host's devices below",
            )],
        };
        self.focus = self.focus.min(self.fields.len());
    }

    pub fn focused(&mut self) -> Option<&mut Field> {
        self.focus
            .checked_sub(1)
            .and_then(|i| self.fields.get_mut(i))
    }

    fn value(&self, label: &str) -> String {
        self.fields
            .iter()
            .find(|f| f.label == label)
            .map(|f| f.input.text.trim().to_string())
            .unwrap_or_default()
    }

    /// Validate every field; the device when all are good.
    pub fn validate(&mut self) -> Option<DeviceSpec> {
        for f in &mut self.fields {
            f.error = None;
        }

        match self.kind {
            FormKind::Vbd => {
                let (uname, dev, mode) =
                    (self.value("uname"), self.value("dev"), self.value("mode"));
                let mut ok = true;
                if let Err(e) = uname.parse::<crate::config::Uname>() {
                    self.set_error("uname", e);
                    ok = false;
                }
                if let Err(e) = crate::config::parse_vdev(&dev) {
                    self.set_error("dev", e);
                    ok = false;
                }
                if mode != "r" && mode != "w" {
                    self.set_error("mode", format!("'{mode}': expected r or w"));
                    ok = false;
                }
                ok.then(|| parse_device_args("vbd", &[uname, dev, mode]).ok())
                    .flatten()
            }
            FormKind::Vif => {
                let mut args = Vec::new();
                let mut ok = true;
                for (label, key) in [("mac", "mac"), ("bridge", "bridge"), ("ip", "ip")] {
                    let v = self.value(label);
                    if v.is_empty() {
                        continue;
                    }
                    let arg = format!("{key}={v}");
                    if let Err(e) = parse_device_args("vif", std::slice::from_ref(&arg)) {
                        self.set_error(label, e);
                        ok = false;
                    }
                    args.push(arg);
                }
                ok.then(|| parse_device_args("vif", &args).ok()).flatten()
            }
            FormKind::Pci => {
                let typed = self.value("bdf");
                let bdf = if typed.is_empty() {
                    self.pci
                        .get(self.pci_selected)
                        .map(|p| p.bdf.clone())
                        .unwrap_or_default()
                } else {
                    typed
                };
                match Pci::parse_bdf(&bdf) {
                    Ok(p) => Some(DeviceSpec::Pci(p)),
                    Err(e) => {
                        self.set_error("bdf", e);
                        None
                    }
                }
            }
        }
    }

    fn set_error(&mut self, label: &str, e: String) {
        if let Some(f) = self.fields.iter_mut().find(|f| f.label == label) {
            f.error = Some(e);
        }
    }
}

/// Drawing.
impl DeviceForm {
    /// The form as a pop-up in `area`.
    pub fn draw(&self, frame: &mut Frame, app: &App, area: Rect) {
        let f = self;
        // Wider on a wide terminal, so device names fit.
        let width = area.width.saturating_sub(4).clamp(40, 110);
        let inner = usize::from(width.saturating_sub(4));
        let t = &app.theme;
        let mut lines = Vec::new();
        let mut kinds = vec![Span::raw(" type: ")];
        for k in FormKind::ALL {
            let style = if k == f.kind {
                if f.focus == 0 { t.selection() } else { t.key() }
            } else {
                t.muted()
            };
            kinds.push(Span::styled(format!(" {} ", k.name()), style));
        }
        if f.focus == 0 {
            kinds.push(Span::styled("  ←/→ change", t.muted()));
        }
        lines.push(Line::from(kinds));
        lines.push(Line::from(""));
        for (i, field) in f.fields.iter().enumerate() {
            let focused = f.focus == i + 1;
            let label_style = if focused { t.key() } else { t.base() };
            let cursor = if focused { "▏" } else { "" };
            lines.push(Line::from(vec![
                Span::styled(format!(" {:>7}: ", field.label), label_style),
                Span::styled(
                    format!("{}{cursor}", field.input.text),
                    if focused { t.selection() } else { t.base() },
                ),
            ]));
            // Wrapped under the field, never by the frame (which would
            // start at column 0 and push the keys off the bottom).
            let (note, style) = match &field.error {
                Some(e) => (format!("✘ {}", crate::tui::ui::one_line(e)), t.error()),
                None => (field.help.to_string(), t.muted()),
            };
            for l in crate::tui::ui::wrap_indented(&note, 10, inner) {
                lines.push(Line::from(Span::styled(l, style)));
            }
        }
        if f.kind == FormKind::Vbd && !f.completions.is_empty() {
            let shown: Vec<&str> = f.completions.iter().take(6).map(String::as_str).collect();
            for l in crate::tui::ui::wrap_indented(&shown.join("  "), 10, inner) {
                lines.push(Line::from(Span::styled(l, t.muted())));
            }
        }
        if f.kind == FormKind::Pci {
            let picker_focus = f.focus == f.fields.len() + 1;
            lines.push(Line::from(Span::styled(
                if picker_focus {
                    " host devices (↑/↓ pick, leave bdf empty):"
                } else {
                    " host devices:"
                },
                if picker_focus { t.key() } else { t.base() },
            )));
            if f.pci.is_empty() {
                lines.push(Line::from(Span::styled(
                    "   (none found in /sys/bus/pci/devices)",
                    t.muted(),
                )));
            }
            let start = f.pci_selected.saturating_sub(4);
            for (i, d) in f.pci.iter().enumerate().skip(start).take(6) {
                let style = if picker_focus && i == f.pci_selected {
                    t.selection()
                } else {
                    t.base()
                };
                lines.push(Line::from(Span::styled(
                    {
                        let ids = format!(
                            "{}:{}",
                            d.vendor.trim_start_matches("0x"),
                            d.device.trim_start_matches("0x")
                        );
                        let what = match (&d.vendor_name, &d.device_name) {
                            (Some(v), Some(dev)) => format!("{v} {dev} [{ids}]"),
                            (Some(v), None) => format!("{v} [{ids}]"),
                            _ => format!("[{ids}] class {}", d.class),
                        };
                        let driver = d
                            .driver
                            .as_deref()
                            .map_or("no driver".to_string(), |x| format!("driver {x}"));
                        crate::tui::ui::cut_words(
                            &crate::tui::ui::one_line(&format!("   {} {driver} · {what}", d.bdf)),
                            inner,
                        )
                    },
                    style,
                )));
            }
        }
        lines.push(Line::from(""));
        if let Some(why) = &f.failure {
            // Wrapped, never cut: the operator corrects the input from it.
            for part in crate::tui::ui::wrap(&crate::tui::ui::one_line(&format!("✘ {why}")), inner)
            {
                lines.push(Line::from(Span::styled(format!(" {part}"), t.error())));
            }
        }
        lines.push(Line::from(Span::styled(
            if f.pending {
                " attaching… · Esc closes (the attach goes on)"
            } else {
                " Enter attach · ↑/↓ field · Tab next/complete · Esc cancel"
            },
            t.muted(),
        )));
        let h = lines.len() as u16 + 2;
        frame_popup(
            frame,
            app,
            centered(area, width, h),
            &format!(
                "Attach a device to {}",
                crate::tui::ui::tables::ellipsize(&f.name, inner.saturating_sub(24))
            ),
            lines,
        );
    }
}

/// The first free `xvdX` for a new disk.
pub fn next_vdev(devices: &[DeviceSpec]) -> String {
    let used: std::collections::BTreeSet<&str> = devices
        .iter()
        .filter_map(|d| match d {
            DeviceSpec::Vbd(v) => Some(v.dev.as_str()),
            _ => None,
        })
        .collect();
    ('a'..='z')
        .map(|c| format!("xvd{c}"))
        .find(|n| !used.contains(n.as_str()))
        .unwrap_or_else(|| "xvdz".into())
}

impl DeviceForm {
    /// Pasted text into the focused field (none when the kind or the PCI
    /// list has the focus).
    pub fn paste(&mut self, line: &str) {
        if let Some(f) = self
            .focus
            .checked_sub(1)
            .and_then(|i| self.fields.get_mut(i))
        {
            for c in line.chars().take(1024) {
                f.input.insert(c);
            }
            f.error = None;
        }
    }

    /// Paths that complete the first field: one fills it in, several
    /// extend it to what they share and are listed.
    pub fn take_completions(&mut self, list: Vec<String>) {
        let Some(f) = self.fields.first_mut() else {
            return;
        };
        if let [only] = list.as_slice() {
            f.input = LineInput::new(only.clone());
            self.completions.clear();
            return;
        }
        if let Some(common) = common_prefix(&list)
            && common.len() > f.input.text.len()
        {
            f.input = LineInput::new(common);
        }
        self.completions = list;
    }
}

fn common_prefix(list: &[String]) -> Option<String> {
    let first = list.first()?;
    let mut len = first.len();
    for s in &list[1..] {
        len = len.min(
            first
                .bytes()
                .zip(s.bytes())
                .take_while(|(a, b)| a == b)
                .count(),
        );
    }
    while !first.is_char_boundary(len) {
        len -= 1;
    }
    Some(first[..len].to_string())
}
