#![allow(dead_code)]

pub mod guests;
pub mod pty;
pub mod sim_cli;

use std::sync::Arc;
use std::time::Duration;

use domus::backend::sim::SimHypervisor;
use domus::backend::{ConsoleStream, DomId, Hypervisor, ReadOutcome};
use domus::clock::ManualClock;
use domus::config::{DomainConfig, parse_str};
use domus::engine::Engine;

/// 2026-11-22 00:00:00 UTC: a fixed start for every test clock.
pub const T0: u64 = 1_795_305_600 * 1_000_000_000;

pub struct Rig {
    pub sim: SimHypervisor,
    pub clock: Arc<ManualClock>,
    pub engine: Engine,
    pub dumps: tempfile::TempDir,
}

pub fn rig() -> Rig {
    let clock = ManualClock::new(T0);
    let sim = SimHypervisor::in_memory(clock.clone());
    let mut engine = Engine::in_memory(Arc::new(sim.clone()), clock.clone())
        .unwrap_or_else(|e| panic!("an in-memory engine: {e}"));
    let dumps = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    engine.set_dump_dir(dumps.path());
    Rig {
        sim,
        clock,
        engine,
        dumps,
    }
}

/// A domain's timeline as text, oldest first, without the bookkeeping of
/// operations and consoles.
pub fn timeline(engine: &Engine, uuid: uuid::Uuid) -> Vec<String> {
    use domus::engine::DomainEvent::{ConsoleClosed, ConsoleOpened};
    engine
        .timeline(uuid)
        .unwrap_or_else(|e| panic!("reading the timeline: {e}"))
        .into_iter()
        .filter(|e| !e.event.is_op())
        .filter(|e| !matches!(e.event, ConsoleOpened { .. } | ConsoleClosed { .. }))
        .map(|e| e.event.to_string())
        .collect()
}

pub fn config(text: &str) -> DomainConfig {
    match parse_str(text, "test") {
        Ok((c, _)) => c,
        Err(e) => panic!("test config does not parse: {e}"),
    }
}

pub const WEB1: &str = "(vm (name web1) (memory 256) (vcpus 2) (cpu_weight 512) (cpu 1)
    (image (linux (kernel /boot/vmlinuz) (root /dev/xvda1) (args console=hvc0)))
    (device (vbd (uname file:/srv/web1.img) (dev xvda) (mode w)))
    (device (vif (bridge xenbr0)))
    (device (pci (bus 0) (dev 0x1f) (func 2))))";

pub fn with_policy(policy_field: &str) -> DomainConfig {
    config(&format!(
        "(vm (name pol) (memory 128) (image (linux (kernel /boot/vmlinuz)))
             (device (vbd (uname file:/srv/pol.img) (dev xvda) (mode w))) {policy_field})"
    ))
}

/// Read everything the console has for now.
pub fn drain(stream: &mut Box<dyn ConsoleStream>) -> String {
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf, Duration::from_millis(1)) {
            Ok(ReadOutcome::Data(n)) => all.extend_from_slice(&buf[..n]),
            Ok(_) => break,
            Err(e) => panic!("console read: {e}"),
        }
    }
    String::from_utf8_lossy(&all).into_owned()
}

/// Type a line into the guest and return what it printed.
pub fn type_line(engine: &Engine, domid: DomId, line: &str) -> String {
    let mut stream = engine
        .console(domid)
        .unwrap_or_else(|e| panic!("console: {e}"));
    drain(&mut stream);
    stream
        .write(format!("{line}\r").as_bytes())
        .unwrap_or_else(|e| panic!("console write: {e}"));
    drain(&mut stream)
}

pub fn names(hv: &dyn Hypervisor) -> Vec<String> {
    hv.list_domains()
        .unwrap_or_else(|e| panic!("list: {e}"))
        .into_iter()
        .map(|d| d.name)
        .collect()
}

pub fn free_kib(hv: &dyn Hypervisor) -> u64 {
    hv.host_info()
        .unwrap_or_else(|e| panic!("host_info: {e}"))
        .free_kib
}
