//! Choosing a backend: `--backend sim|qemu|xen|auto`.

use std::path::PathBuf;
use std::sync::Arc;

use super::qemu::{self, QemuHypervisor, QemuOptions};
use super::sim::{Faults, SimHypervisor, SimOptions};
use super::{BackendError, BackendKind, Hypervisor};
use crate::clock::Clock;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendChoice {
    /// The best available backend: Xen on a dom0, else QEMU when
    /// qemu-system-x86_64 is installed, else the simulator.
    Auto,
    Sim,
    Qemu,
    Xen,
    /// libvirt, at `--connect URI` (default `qemu:///system`).
    Libvirt,
}

#[derive(Clone)]
pub struct OpenOptions {
    pub state_dir: PathBuf,
    pub clock: Arc<dyn Clock>,
    pub sim_seed: u64,
    pub sim_faults: Faults,
    /// QEMU: the runtime directory (default `$XDG_RUNTIME_DIR/domus`).
    pub runtime_dir: Option<PathBuf>,
    /// QEMU: `kvm` or `tcg` (default: detected).
    pub accel: Option<String>,
    /// QEMU: the `domus` executable that supervises each domain.
    pub supervisor: Option<PathBuf>,
    /// QEMU: restart dead supervisors of running domains (false in a
    /// supervisor itself).
    pub adopt: bool,
    /// libvirt: the connection URI.
    pub connect: Option<String>,
}

/// Real backends this build can drive on this host.
fn available(kind: BackendKind) -> bool {
    match kind {
        BackendKind::Sim => true,
        BackendKind::Qemu => qemu::installed(std::path::Path::new(qemu::QEMU)),
        BackendKind::Xen => super::xen::present(),
        // Only when asked for: auto never picks it.
        BackendKind::Libvirt => false,
    }
}

/// The backend `auto` means on this host.
pub fn resolve(choice: BackendChoice) -> BackendKind {
    match choice {
        BackendChoice::Sim => BackendKind::Sim,
        BackendChoice::Qemu => BackendKind::Qemu,
        BackendChoice::Xen => BackendKind::Xen,
        BackendChoice::Libvirt => BackendKind::Libvirt,
        BackendChoice::Auto => [BackendKind::Xen, BackendKind::Qemu]
            .into_iter()
            .find(|k| available(*k))
            .unwrap_or(BackendKind::Sim),
    }
}

pub fn open(choice: BackendChoice, opts: OpenOptions) -> Result<Arc<dyn Hypervisor>, BackendError> {
    match resolve(choice) {
        BackendKind::Sim => {
            let sim = SimHypervisor::open(SimOptions {
                state_dir: Some(opts.state_dir.join("sim")),
                seed: opts.sim_seed,
                clock: opts.clock,
                faults: opts.sim_faults,
                console_archive: Some(opts.state_dir.clone()),
            })?;
            Ok(Arc::new(sim))
        }
        BackendKind::Qemu => {
            let binary = PathBuf::from(qemu::QEMU);
            if !qemu::installed(&binary) {
                return Err(BackendError::Start {
                    what: "the QEMU backend".into(),
                    why: format!(
                        "{} is not installed (apt-get install qemu-system-x86)",
                        qemu::QEMU
                    ),
                });
            }
            if let Some(a) = opts
                .accel
                .as_deref()
                .filter(|a| !matches!(*a, "kvm" | "tcg"))
            {
                return Err(BackendError::Invalid(format!(
                    "--accel {a}: expected kvm or tcg"
                )));
            }
            let hv = QemuHypervisor::open(QemuOptions {
                runtime_dir: match opts.runtime_dir {
                    Some(d) => d,
                    None => crate::paths::runtime_dir(None, &opts.state_dir).map_err(|e| {
                        BackendError::io("choosing the runtime directory", e.into())
                    })?,
                },
                state_dir: opts.state_dir,
                accel: opts.accel,
                binary,
                supervisor: opts.supervisor,
                adopt: opts.adopt,
                clock: opts.clock,
            })?;
            Ok(Arc::new(hv))
        }
        BackendKind::Xen => {
            if !super::xen::present() {
                return Err(BackendError::Start {
                    what: "the Xen backend".into(),
                    why: "this host is not a Xen dom0 (no /proc/xen/capabilities or /dev/xen/privcmd); use --backend qemu or sim".into(),
                });
            }
            let mut xen = super::xen::XenOptions::new(&opts.state_dir, opts.clock);
            xen.supervisor = opts.supervisor;
            xen.adopt = opts.adopt;
            let hv = super::xen::XenHypervisor::open(xen)?;
            Ok(Arc::new(hv))
        }
        BackendKind::Libvirt => {
            let uri = opts.connect.unwrap_or_else(|| "qemu:///system".into());
            Ok(Arc::new(super::libvirt::LibvirtHypervisor::open(&uri)?))
        }
    }
}
