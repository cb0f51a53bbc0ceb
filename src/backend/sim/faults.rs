//! Fault injection: make the Nth call of a given kind fail.

use std::collections::HashMap;

use crate::backend::{BackendError, BackendResult, CallKind};

#[derive(Debug, Default, Clone)]
pub struct Faults {
    rules: Vec<(CallKind, u64)>,
    counts: HashMap<CallKind, u64>,
    /// Calls that take this long (a detach a guest is slow to answer).
    slow: HashMap<CallKind, std::time::Duration>,
}

impl Faults {
    /// Make call number `nth` (1-based, counted from now) of `call` fail.
    pub fn fail_nth(&mut self, call: CallKind, nth: u64) {
        let done = self.counts.get(&call).copied().unwrap_or(0);
        self.rules.push((call, done + nth));
    }

    /// Parse `build_image:1,attach_device:2` (the `DOMUS_SIM_FAULTS` form).
    pub fn parse(spec: &str) -> Result<Faults, String> {
        let mut faults = Faults::default();
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (name, nth) = item.split_once(':').unwrap_or((item, "1"));
            let call = CallKind::parse(name).ok_or_else(|| {
                let all: Vec<&str> = CallKind::ALL.iter().map(|c| c.as_str()).collect();
                format!(
                    "unknown call '{name}' in fault spec (known: {})",
                    all.join(", ")
                )
            })?;
            let nth = nth
                .parse::<u64>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("fault spec '{item}': expected CALL:N with N >= 1"))?;
            faults.fail_nth(call, nth);
        }
        Ok(faults)
    }

    /// Parse `detach_device:8` (the `DOMUS_SIM_SLOW` form): each such call
    /// takes that many seconds.
    pub fn parse_slow(&mut self, spec: &str) -> Result<(), String> {
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (name, secs) = item
                .split_once(':')
                .ok_or_else(|| format!("slow spec '{item}': expected CALL:SECONDS"))?;
            let call = CallKind::parse(name)
                .ok_or_else(|| format!("unknown call '{name}' in slow spec"))?;
            let secs: f64 = secs
                .parse()
                .ok()
                .filter(|s: &f64| (0.0..=3600.0).contains(s))
                .ok_or_else(|| format!("slow spec '{item}': seconds from 0 to 3600"))?;
            self.slow
                .insert(call, std::time::Duration::from_secs_f64(secs));
        }
        Ok(())
    }

    /// How long a call of this kind takes, when it is slowed down.
    pub fn delay(&self, call: CallKind) -> Option<std::time::Duration> {
        self.slow.get(&call).copied()
    }

    /// Count a call; fail it if a rule says so.
    pub fn check(&mut self, call: CallKind) -> BackendResult<()> {
        let n = self.counts.entry(call).or_insert(0);
        *n += 1;
        let n = *n;
        if let Some(i) = self.rules.iter().position(|&(c, at)| c == call && at == n) {
            self.rules.remove(i);
            return Err(BackendError::Injected { call, nth: n });
        }
        Ok(())
    }

    pub fn count(&self, call: CallKind) -> u64 {
        self.counts.get(&call).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nth_call_fails_once() {
        let mut f = Faults::parse("pause:2").unwrap_or_default();
        assert!(f.check(CallKind::Pause).is_ok());
        assert!(matches!(
            f.check(CallKind::Pause),
            Err(BackendError::Injected { nth: 2, .. })
        ));
        assert!(f.check(CallKind::Pause).is_ok());
        assert!(Faults::parse("nope:1").is_err());
        assert!(Faults::parse("pause:0").is_err());
    }
}
