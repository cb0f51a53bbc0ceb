//! `domus shutdown --wait`: follow a domain until it has shut down and its
//! policy has run, as `xl shutdown -w` does, and say what happened.

use std::time::{Duration, Instant};

use super::{CliResult, Context, Failure};
use crate::backend::DomId;
use crate::engine::{DomainEvent, JournalFilter, PolicyOutcome};
use crate::store::follow::Changes;

/// The journal's position before asking for a shutdown, so a policy
/// applied at once (by a supervisor) is not missed.
pub fn mark(ctx: &Context) -> CliResult<i64> {
    Ok(ctx.engine.store().read(|tx| tx.last_seq())?)
}

/// Wait for `domid` to stop (its policy applied, by this process if no
/// supervisor did) or fail after `timeout`; `since` is from [`mark`].
pub fn shutdown(ctx: &Context, domid: DomId, since: i64, timeout: Duration) -> CliResult<()> {
    let e = &ctx.engine;
    let info = e.view(domid)?.info;
    let changes = Changes::watch(&ctx.state_dir);
    // A timeout past what a clock can hold waits as good as forever.
    let now = Instant::now();
    let deadline = now
        .checked_add(timeout)
        .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 24 * 3600));
    loop {
        // Without a supervisor (the simulator), this process applies it.
        if let Some(ev) = e.refresh_one(domid)? {
            super::say(&format!("{ev}\n"));
            // Stopped, but the policy did not do what it says: not a success.
            return match &ev.outcome {
                PolicyOutcome::RestartFailed { error } | PolicyOutcome::Failed { error } => {
                    Err(Failure::new(format!("{}: {error}", info.name)))
                }
                _ => Ok(()),
            };
        }
        let outcome = e.journal(&JournalFilter {
            after: Some(since),
            uuid: Some(info.uuid),
            ..Default::default()
        })?;
        let done = outcome.iter().any(|x| {
            matches!(
                x.event,
                DomainEvent::PolicyApplied { .. }
                    | DomainEvent::Destroyed
                    | DomainEvent::Vanished { .. }
            )
        });
        if done {
            // Let the policy's own events land (a restart's new domain).
            let _ = changes.wait(Duration::from_millis(200));
            let all = e.journal(&JournalFilter {
                after: Some(since),
                uuid: Some(info.uuid),
                ..Default::default()
            })?;
            for x in all
                .iter()
                .filter(|x| !x.event.is_op() && !x.event.is_console())
            {
                super::say(&format!("{}\n", super::events::text_line(x)));
            }
            if let Some(error) = all.iter().find_map(|x| match &x.event {
                DomainEvent::RestartFailed { error } => Some(error.clone()),
                _ => None,
            }) {
                return Err(Failure::new(format!(
                    "{}: restart failed: {error}",
                    info.name
                )));
            }
            return Ok(());
        }
        match e.view(domid) {
            // Shut down and preserved by someone else's policy run, or not
            // domus's domain: stopped is what was asked.
            Ok(v)
                if v.info.flags.shutdown
                    && v.pending.is_empty()
                    && v.record
                        .as_ref()
                        .is_none_or(|r| r.handled_shutdown == Some(domid)) =>
            {
                super::say(&format!(
                    "{} shut down ({})\n",
                    v.info.name,
                    v.info.state_string()
                ));
                return Ok(());
            }
            Ok(_) => {}
            Err(_) => {
                super::say(&format!("{} is gone\n", info.name));
                return Ok(());
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Failure::new(format!(
                "{} did not shut down within {} s (the guest may ignore the request or be still booting); `domus destroy {}` stops it at once",
                info.name,
                timeout.as_secs(),
                info.name
            )));
        }
        changes.wait(left.min(Duration::from_secs(1)));
    }
}
