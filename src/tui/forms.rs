//! Device forms: attach a vbd, vif or pci device, each field checked
//! before the engine is called.

use crate::backend::DomId;
use crate::config::device_args::parse_device_args;
use crate::config::{DeviceSpec, Mac, Pci};

use super::action::HostPci;
use super::input::LineInput;

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
    pub domid: DomId,
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
    /// `next_vdev`: a free guest disk name; `mac_seed`: for a fresh MAC.
    pub fn new(domid: DomId, name: String, next_vdev: String, mac_seed: u64) -> Self {
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
