//! KVM only where the CPU really has it: on some hosts `/dev/kvm` opens but
//! is a software nested hypervisor that cannot run an ordinary guest, so
//! the CPU's own `vmx`/`svm` flags decide, not the device node.

/// The acceleration to use: `kvm` when the CPU has hardware virtualisation
/// and `/dev/kvm` exists, else `tcg`.
pub fn detect() -> &'static str {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    if cpu_has_virtualisation(&cpuinfo) && std::path::Path::new("/dev/kvm").exists() {
        "kvm"
    } else {
        "tcg"
    }
}

pub fn cpu_has_virtualisation(cpuinfo: &str) -> bool {
    cpuinfo
        .lines()
        .filter(|l| l.starts_with("flags"))
        .any(|l| l.split_whitespace().any(|f| f == "vmx" || f == "svm"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_decide() {
        assert!(cpu_has_virtualisation(
            "flags\t\t: fpu vme de pse vmx sse\n"
        ));
        assert!(cpu_has_virtualisation("flags : svm lm\n"));
        assert!(!cpu_has_virtualisation("flags : fpu hypervisor lm\n"));
        assert!(
            !cpu_has_virtualisation("model name : vmx\n"),
            "only the flags line counts"
        );
    }
}
