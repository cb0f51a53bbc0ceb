//! Typed domain configs: xend's `(vm …)` S-expressions as Rust values,
//! with validation that names file:line:col and what was expected.

mod device;
pub mod device_args;
mod emit;
mod error;
mod limits;
mod parse;
mod types;
pub mod xl;

pub use device::{
    DeviceRef, Mac, Pci, Uname, UnameKind, Vbd, VbdMode, Vif, parse_pci_number, parse_vdev,
    vdev_numbers,
};
pub use error::{ConfigError, Diagnostic, Diagnostics, QUOTE_CHARS};
pub use limits::{LOW_DOM0_MIB, LOW_GUEST_MIB, MAX_CONFIG_BYTES, MAX_VCPUS, low_memory_floor};
pub use parse::{check_device, from_node, load_file, load_file_as, parse_str, validate_name};
pub use types::{
    BackendRole, DeviceSpec, DomainConfig, HvmFlavor, HvmImage, Image, KernelImage, OtherDevice,
    Policy, PolicyParseError, Vfb, count_devices,
};
