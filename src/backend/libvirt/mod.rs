//! The libvirt backend's pure parts, ahead of the backend itself (issue
//! 13): a domus config as libvirt domain XML (`xml`), and libvirt's domain
//! states and reasons as xl's letters (`state`). Neither talks to libvirt;
//! the XML is checked against libvirt's own schema in the tests
//! (`virt-xml-validate`).

pub mod state;
pub mod xml;
