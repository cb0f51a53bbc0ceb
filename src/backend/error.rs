use std::fmt;

use serde::{Deserialize, Serialize};

use super::types::{BackendKind, DomId};

/// The backend calls, named so tests can make the Nth call of a kind fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallKind {
    HostInfo,
    List,
    CreateDomain,
    SetMaxMemory,
    SetVcpus,
    PinVcpu,
    SetCpuWeight,
    BuildImage,
    StartDeviceModel,
    Pause,
    Unpause,
    Shutdown,
    Destroy,
    Rename,
    AttachDevice,
    DetachDevice,
    SetMemoryTarget,
    OpenConsole,
    Save,
    Restore,
    CoreDump,
    Supervise,
}

impl CallKind {
    pub const ALL: [CallKind; 22] = [
        CallKind::HostInfo,
        CallKind::List,
        CallKind::CreateDomain,
        CallKind::SetMaxMemory,
        CallKind::SetVcpus,
        CallKind::PinVcpu,
        CallKind::SetCpuWeight,
        CallKind::BuildImage,
        CallKind::StartDeviceModel,
        CallKind::Pause,
        CallKind::Unpause,
        CallKind::Shutdown,
        CallKind::Destroy,
        CallKind::Rename,
        CallKind::AttachDevice,
        CallKind::DetachDevice,
        CallKind::SetMemoryTarget,
        CallKind::OpenConsole,
        CallKind::Save,
        CallKind::Restore,
        CallKind::CoreDump,
        CallKind::Supervise,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CallKind::HostInfo => "host_info",
            CallKind::List => "list",
            CallKind::CreateDomain => "create_domain",
            CallKind::SetMaxMemory => "set_max_memory",
            CallKind::SetVcpus => "set_vcpus",
            CallKind::PinVcpu => "pin_vcpu",
            CallKind::SetCpuWeight => "set_cpu_weight",
            CallKind::BuildImage => "build_image",
            CallKind::StartDeviceModel => "start_device_model",
            CallKind::Pause => "pause",
            CallKind::Unpause => "unpause",
            CallKind::Shutdown => "shutdown",
            CallKind::Destroy => "destroy",
            CallKind::Rename => "rename",
            CallKind::AttachDevice => "attach_device",
            CallKind::DetachDevice => "detach_device",
            CallKind::SetMemoryTarget => "set_memory_target",
            CallKind::OpenConsole => "open_console",
            CallKind::Save => "save",
            CallKind::Restore => "restore",
            CallKind::CoreDump => "core_dump",
            CallKind::Supervise => "supervise",
        }
    }

    pub fn parse(s: &str) -> Option<CallKind> {
        CallKind::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

impl fmt::Display for CallKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a backend call failed.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("{call} is not supported by the {backend} backend")]
    Unsupported {
        backend: BackendKind,
        call: CallKind,
    },
    #[error("{what} is not supported by the {backend} backend: {why}")]
    UnsupportedFeature {
        backend: BackendKind,
        what: String,
        why: String,
    },
    #[error("no domain with id {0}")]
    NoSuchDomain(DomId),
    #[error("not enough free memory: need {need_kib} KiB, {free_kib} KiB free")]
    OutOfMemory { need_kib: u64, free_kib: u64 },
    #[error("domain {domid} is {state}: cannot {}", call.as_str().replace('_', " "))]
    BadState {
        domid: DomId,
        state: String,
        call: CallKind,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("injected fault: call {nth} of {call} fails")]
    Injected { call: CallKind, nth: u64 },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// A QMP connection or command of a QEMU domain failed.
    #[error("{}{source}", .domid.map(|d| format!("domain {d}: ")).unwrap_or_default())]
    Qmp {
        domid: Option<DomId>,
        #[source]
        source: Box<crate::backend::qemu::qmp::QmpError>,
    },
    /// A toolstack program (`xl`, `xenstore-read`, `ip`) failed; `failure`
    /// says how, so callers never read its text.
    #[error("{command}: {message}")]
    Tool {
        command: String,
        failure: ToolFailure,
        message: String,
    },
    /// A process domus starts (QEMU, a supervisor) did not come up.
    #[error("{what} did not start: {why}")]
    Start { what: String, why: String },
    /// A guest did not do what it was asked in time (let go of a device,
    /// read its console).
    #[error("{0}")]
    Guest(String),
    /// Data domus keeps (records, save images) could not be read or written.
    #[error("{what}: {source}")]
    Data {
        what: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// How a toolstack program failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolFailure {
    /// It ran and said no (libxl's error is in the message).
    Refused,
    /// It did not finish in time.
    TimedOut,
    /// A signal killed it.
    Crashed,
    /// A hotplug script it ran failed (Xen's block or vif-bridge script).
    HotplugScript,
    /// The domain it was asked about does not exist.
    NoSuchDomain,
}

impl BackendError {
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        BackendError::Io {
            context: context.into(),
            source,
        }
    }

    pub fn data(
        what: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        BackendError::Data {
            what: what.into(),
            source: Box::new(source),
        }
    }
}

pub type BackendResult<T> = Result<T, BackendError>;
