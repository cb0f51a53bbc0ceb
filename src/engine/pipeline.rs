//! Domain construction: validate → check resources → create (paused) →
//! build image → create devices → device model → configure fields →
//! unpause. Any failure after the domain exists destroys it again, so a
//! failed build leaves nothing behind.

use super::Engine;
use super::error::{EngineError, EngineResult, Stage, StageError};
use crate::backend::{BackendError, BootImage, CreateSpec, DomId};
use crate::config::{DeviceSpec, DomainConfig};

/// What validation hands to the later stages.
pub(super) struct Plan<'a> {
    pub image: &'a dyn super::handlers::ImageHandler,
    pub boot: BootImage,
    pub devices: Vec<DeviceSpec>,
    pub memory_kib: u64,
}

fn fail(name: &str, stage: Stage, source: StageError) -> EngineError {
    EngineError::Construct {
        name: name.to_string(),
        stage,
        source,
        rolled_back: None,
        rollback_error: None,
    }
}

fn invalid(name: &str, stage: Stage, msg: impl Into<String>) -> EngineError {
    fail(name, stage, StageError::Invalid(msg.into()))
}

impl Engine {
    /// Check a config against the handlers and this backend, without
    /// touching the hypervisor beyond reading its domain list.
    pub(super) fn plan<'a>(
        &'a self,
        config: &DomainConfig,
        uuid: Option<uuid::Uuid>,
    ) -> EngineResult<Plan<'a>> {
        let name = &config.name;
        let stage = Stage::Validate;
        let type_name = config.image.type_name();
        let image = self
            .registry
            .image(type_name)
            .ok_or_else(|| invalid(name, stage, format!("unknown image type: {type_name}")))?;
        let caps = self.hv.capabilities();
        if !caps.has(image.capability()) {
            return Err(invalid(
                name,
                stage,
                format!(
                    "{type_name} images are not supported by the {} backend",
                    self.hv.kind()
                ),
            ));
        }
        let boot = image
            .configure(config)
            .map_err(|e| invalid(name, stage, e))?;
        if boot.cmdline.len() >= 256 {
            tracing::warn!(domain = %name, len = boot.cmdline.len(), "kernel cmdline too long");
        }
        let seed = uuid.map_or_else(
            || {
                crate::backend::sim::mix(
                    name.bytes()
                        .fold(0u64, |h, b| h.rotate_left(8) ^ u64::from(b)),
                )
            },
            |u| u.as_u64_pair().0,
        );
        let mut devices = Vec::with_capacity(config.devices.len());
        let mut per_kind = std::collections::HashMap::new();
        for dev in &config.devices {
            let handler = self.registry.device(dev).ok_or_else(|| {
                invalid(
                    name,
                    stage,
                    format!("unknown device type: {}", dev.type_name()),
                )
            })?;
            handler
                .check(config, dev)
                .map_err(|e| invalid(name, stage, e))?;
            let index = per_kind.entry(handler.kind()).or_insert(0usize);
            devices.push(handler.prepare(dev, seed, *index));
            *index += 1;
        }
        let live = self
            .hv
            .list_domains()
            .map_err(|e| fail(name, stage, e.into()))?;
        if let Some(d) = live.iter().find(|d| &d.name == name) {
            return Err(invalid(
                name,
                stage,
                format!("a domain named {name} already exists (id {})", d.domid),
            ));
        }
        if let Some(u) = uuid
            && let Some(d) = live.iter().find(|d| d.uuid == u)
        {
            return Err(invalid(
                name,
                stage,
                format!("uuid {u} is already used by {} (id {})", d.name, d.domid),
            ));
        }
        for dev in &devices {
            if let Some(conflict) = super::device_conflict(dev, &live, None) {
                return Err(invalid(name, stage, conflict));
            }
        }
        Ok(Plan {
            image,
            boot,
            devices,
            memory_kib: image.memory_kib(config.memory),
        })
    }

    /// Build a domain from a config. `uuid` overrides the config's (restarts
    /// keep their uuid). Returns the new domid and the devices as attached.
    pub(super) fn construct(
        &self,
        config: &DomainConfig,
        uuid: Option<uuid::Uuid>,
    ) -> EngineResult<(DomId, Vec<DeviceSpec>)> {
        let name = &config.name;
        let uuid = uuid.or(config.uuid);
        let plan = self.plan(config, uuid)?;

        let host = self
            .hv
            .host_info()
            .map_err(|e| fail(name, Stage::CheckResources, e.into()))?;
        if plan.memory_kib > host.free_kib {
            return Err(invalid(
                name,
                Stage::CheckResources,
                format!(
                    "not enough free memory: {name} needs {} MiB, the host has {} MiB free",
                    plan.memory_kib.div_ceil(1024),
                    host.free_kib / 1024
                ),
            ));
        }
        if let Some(cpu) = config.cpu.filter(|c| *c >= host.cpus) {
            return Err(invalid(
                name,
                Stage::CheckResources,
                format!(
                    "cpu {cpu} does not exist: the host has CPUs 0 to {}",
                    host.cpus.saturating_sub(1)
                ),
            ));
        }

        let spec = CreateSpec {
            name: name.clone(),
            uuid,
            memory_kib: plan.memory_kib,
            vcpus: config.vcpus,
            image: Some(plan.boot.clone()),
        };
        let domid = self
            .hv
            .create_domain(&spec)
            .map_err(|e| fail(name, Stage::CreateDomain, e.into()))?;

        match self.populate(config, &plan, domid) {
            Ok(()) => Ok((domid, plan.devices)),
            Err((stage, source)) => {
                plan.image.destroy(self.hv.as_ref(), domid);
                let rollback_error = match self.hv.destroy(domid) {
                    Ok(()) | Err(BackendError::NoSuchDomain(_)) => None,
                    Err(e) => Some(e.to_string()),
                };
                tracing::warn!(domain = %name, domid, %stage, error = %source, "construction failed; rolled back");
                Err(EngineError::Construct {
                    name: name.clone(),
                    stage,
                    source,
                    rolled_back: Some(domid),
                    rollback_error,
                })
            }
        }
    }

    /// The stages that run once the (paused) domain exists.
    fn populate(
        &self,
        config: &DomainConfig,
        plan: &Plan<'_>,
        domid: DomId,
    ) -> Result<(), (Stage, StageError)> {
        let hv = self.hv.as_ref();
        let at = |stage: Stage| move |e: BackendError| (stage, StageError::Backend(e));
        let max_kib = plan.image.memory_kib(config.maxmem_or_memory());
        hv.set_max_memory(domid, max_kib)
            .map_err(at(Stage::CreateDomain))?;
        plan.image
            .build(hv, domid, &plan.boot)
            .map_err(at(Stage::BuildImage))?;
        for dev in &plan.devices {
            let handler = self.registry.device(dev).ok_or((
                Stage::CreateDevices,
                StageError::Invalid(format!("unknown device type: {}", dev.type_name())),
            ))?;
            handler.attach(hv, domid, dev).map_err(|e| {
                (
                    Stage::CreateDevices,
                    StageError::Invalid(format!("{}: {e}", dev)),
                )
            })?;
        }
        plan.image
            .create_device_model(hv, domid, &plan.boot)
            .map_err(at(Stage::DeviceModel))?;
        for field in self.registry.fields() {
            if let Some(result) = (field.apply)(hv, domid, config) {
                result.map_err(|e| {
                    (
                        Stage::ConfigureFields,
                        StageError::Invalid(format!("{}: {e}", field.field)),
                    )
                })?;
            }
        }
        hv.unpause(domid).map_err(at(Stage::Unpause))
    }
}
