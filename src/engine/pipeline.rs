//! Domain construction: validate → check resources → create (paused) →
//! build image → create devices → device model → configure fields →
//! unpause. Any failure after the domain exists destroys it again, so a
//! failed build leaves nothing behind.

use super::Engine;
use super::error::{EngineError, EngineResult, Stage, StageError};
use super::ops::Op;
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
        // Names and uuids are unique among the hypervisor's domains (the
        // store already reserved the name among domus's own).
        if let Some(d) = self
            .hv
            .lookup(name)
            .map_err(|e| fail(name, stage, e.into()))?
            .filter(|d| Some(d.uuid) != uuid)
        {
            return Err(invalid(
                name,
                stage,
                format!("a domain named {name} already exists (id {})", d.domid),
            ));
        }
        for dev in &devices {
            let holder = self
                .device_conflict(dev, uuid)
                .map_err(|e| fail(name, stage, StageError::Invalid(e.to_string())))?;
            if let Some(conflict) = holder {
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
    /// `op`, when given, records each stage reached (an interrupted build is
    /// then found and undone by the next domus process).
    pub(super) fn construct(
        &self,
        config: &DomainConfig,
        uuid: Option<uuid::Uuid>,
        op: Option<&Op<'_>>,
    ) -> EngineResult<(DomId, Vec<DeviceSpec>)> {
        let name = &config.name;
        let uuid = uuid.or(config.uuid);
        let at = |stage: Stage, domid: Option<DomId>| -> EngineResult<()> {
            match op {
                Some(op) => op.stage(stage.as_str(), domid),
                None => Ok(()),
            }
        };
        at(Stage::Validate, None)?;
        let plan = self.plan(config, uuid)?;
        at(Stage::CheckResources, None)?;

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

        let min_domid = self
            .store
            .read(|tx| tx.max_domid())
            .map_err(|e| {
                fail(
                    name,
                    Stage::CreateDomain,
                    StageError::Invalid(e.to_string()),
                )
            })?
            .map_or(1, |d| d.saturating_add(1));
        let spec = CreateSpec {
            name: name.clone(),
            uuid,
            memory_kib: plan.memory_kib,
            vcpus: config.vcpus,
            vcpus_online: config.vcpus_online,
            image: Some(plan.boot.clone()),
            min_domid,
        };
        at(Stage::CreateDomain, None)?;
        let domid = self
            .hv
            .create_domain(&spec)
            .map_err(|e| fail(name, Stage::CreateDomain, e.into()))?;

        match self.populate(config, &plan, domid, &at) {
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
        reached: &dyn Fn(Stage, Option<DomId>) -> EngineResult<()>,
    ) -> Result<(), (Stage, StageError)> {
        let hv = self.hv.as_ref();
        let at = |stage: Stage| move |e: BackendError| (stage, StageError::Backend(e));
        // Recording a stage can fail only in the store; that fails the
        // build at that stage like anything else.
        let mark = |stage: Stage| {
            reached(stage, Some(domid)).map_err(|e| (stage, StageError::Invalid(e.to_string())))
        };
        mark(Stage::CreateDomain)?;
        let max_kib = plan.image.memory_kib(config.maxmem_or_memory());
        hv.set_max_memory(domid, max_kib)
            .map_err(at(Stage::CreateDomain))?;
        mark(Stage::BuildImage)?;
        plan.image
            .build(hv, domid, &plan.boot)
            .map_err(at(Stage::BuildImage))?;
        mark(Stage::CreateDevices)?;
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
        mark(Stage::DeviceModel)?;
        plan.image
            .create_device_model(hv, domid, &plan.boot)
            .map_err(at(Stage::DeviceModel))?;
        mark(Stage::ConfigureFields)?;
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
        mark(Stage::Unpause)?;
        hv.unpause(domid).map_err(at(Stage::Unpause))
    }
}
