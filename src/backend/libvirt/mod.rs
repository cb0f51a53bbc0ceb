//! The libvirt backend (`hv`): a domus config as libvirt domain XML
//! (`xml`, checked against libvirt's own schema in the tests), libvirt's
//! domain states and reasons as xl's letters (`state`).

mod ffi;
mod hv;
pub mod state;
pub mod xml;

pub use hv::LibvirtHypervisor;
