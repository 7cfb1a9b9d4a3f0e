//! The systemd watchdog: `WATCHDOG=1` sent from a task on the async runtime.
//!
//! The unit sets `WatchdogSec=`; systemd passes the interval as `WATCHDOG_USEC` and restarts the
//! service when no ping arrives within it. The ping is sent by an ordinary task on the same
//! runtime that serves requests, so it stops when that runtime stops making progress (every
//! worker stuck in a blocking call, a deadlock on the scheduler): a wedged process is replaced
//! instead of answering nothing for months. Outside systemd (no `WATCHDOG_USEC`) nothing runs.
//! This module only pings; it must never decide health from backends (a dead database is the
//! dashboard's news, not a reason to restart).

use sd_notify::NotifyState;
use std::time::Duration;
use tokio::task::JoinHandle;
use tracing::{info, warn};

/// Starts the ping task when systemd asked for one (`WATCHDOG_USEC` set and, when
/// `WATCHDOG_PID` is set, naming this process). Pings at half the interval, as sd_watchdog_enabled(3)
/// recommends, so one late tick does not cost a restart.
pub fn spawn() -> Option<JoinHandle<()>> {
    let interval = sd_notify::watchdog_enabled()?;
    let period = (interval / 2).max(Duration::from_millis(1));
    info!(
        watchdog_ms = interval.as_millis() as u64,
        ping_every_ms = period.as_millis() as u64,
        "systemd watchdog enabled"
    );
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        // After a stall, one ping, not a burst of the missed ones.
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut warned = false;
        loop {
            tick.tick().await;
            match sd_notify::notify(&[NotifyState::Watchdog]) {
                Ok(()) => warned = false,
                // Said once per run of failures: a missing socket would otherwise log twice
                // per interval for as long as it is missing.
                Err(e) if !warned => {
                    warn!(error = %e, "cannot ping the systemd watchdog");
                    warned = true;
                }
                Err(_) => {}
            }
        }
    }))
}
