//! Choosing a backend: `--backend sim|qemu|xen|auto`.

use std::path::PathBuf;
use std::sync::Arc;

use super::sim::{Faults, SimHypervisor, SimOptions};
use super::{BackendError, BackendKind, Hypervisor};
use crate::clock::Clock;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendChoice {
    /// The best available backend (this version has only the simulator).
    Auto,
    Sim,
    Qemu,
    Xen,
}

pub struct OpenOptions {
    pub state_dir: PathBuf,
    pub clock: Arc<dyn Clock>,
    pub sim_seed: u64,
    pub sim_faults: Faults,
}

/// Real backends this build can drive. The QEMU and Xen backends are not
/// part of this version yet; `auto` then falls back to the simulator.
fn available(kind: BackendKind) -> bool {
    matches!(kind, BackendKind::Sim)
}

pub fn open(choice: BackendChoice, opts: OpenOptions) -> Result<Arc<dyn Hypervisor>, BackendError> {
    let kind = match choice {
        BackendChoice::Sim => BackendKind::Sim,
        BackendChoice::Qemu => BackendKind::Qemu,
        BackendChoice::Xen => BackendKind::Xen,
        BackendChoice::Auto => {
            let found = [BackendKind::Xen, BackendKind::Qemu]
                .into_iter()
                .find(|k| available(*k));
            found.unwrap_or(BackendKind::Sim)
        }
    };
    match kind {
        BackendKind::Sim => {
            let sim = SimHypervisor::open(SimOptions {
                state_dir: Some(opts.state_dir.join("sim")),
                seed: opts.sim_seed,
                clock: opts.clock,
                faults: opts.sim_faults,
            })?;
            Ok(Arc::new(sim))
        }
        other => Err(BackendError::Other(format!(
            "the {other} backend is not part of this version of domus yet; use --backend sim (or auto)"
        ))),
    }
}
