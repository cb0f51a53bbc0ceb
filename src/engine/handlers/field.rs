//! Config-field handlers run in the "configure fields" stage, after the
//! devices exist (xend's `configure_fields`).

use crate::backend::{BackendResult, DomId, Hypervisor};
use crate::config::DomainConfig;

pub struct FieldHandler {
    pub field: &'static str,
    /// Apply the field to a built domain; `None` when the config lacks it.
    pub apply: fn(&dyn Hypervisor, DomId, &DomainConfig) -> Option<BackendResult<()>>,
}

pub fn default_field_handlers() -> Vec<FieldHandler> {
    vec![
        FieldHandler {
            field: "cpu_weight",
            apply: |hv, domid, c| c.cpu_weight.map(|w| hv.set_cpu_weight(domid, w)),
        },
        FieldHandler {
            field: "cpu",
            apply: |hv, domid, c| c.cpu.map(|cpu| hv.pin_vcpu(domid, 0, cpu)),
        },
    ]
}
