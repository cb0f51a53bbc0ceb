//! Pieces of the QEMU/KVM backend. The backend itself (domain = QEMU
//! process) is not part of this version; what is here is used and tested
//! against real QEMU: the QMP client and acceleration detection.

pub mod accel;
pub mod launch;
pub mod qmp;
