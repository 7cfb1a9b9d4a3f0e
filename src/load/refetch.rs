//! Getting back to S3's config after a boot on the last known good copy.
//!
//! When the process started on the copy in its state directory (S3 down, the role's
//! credentials not there yet, a rejected object), this task keeps fetching the s3:// object in
//! the background, one attempt at a time with jittered backoff doubling from 1 s up to
//! `--config-retry-max-secs`, and hands the first one that parses and validates to the same
//! swap a SIGHUP reload uses. A malformed object is rejected by that same load (it never
//! replaces the copy, on disk or in memory) and the task keeps trying. It stops once the
//! running config no longer is the copy (it swapped one in, or a SIGHUP did).

use super::{FetchOptions, Loaded, Loader};
use crate::probes::Config;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tracing::{info, warn};

/// Fetches until S3 gives a good config, then calls `swap` with it once. `serving_copy` says
/// whether the config running now still is the last known good copy; `attempts` counts the
/// fetches for the dashboard.
pub async fn until_fetched(
    loader: Loader,
    attempts: Arc<AtomicU64>,
    serving_copy: impl Fn() -> bool,
    swap: impl FnOnce(Config, Loaded),
) {
    // One GetObject per attempt: the pacing is this loop's, not the boot fetch's.
    let retry_max = loader.opts.retry_max;
    let once = Loader {
        opts: FetchOptions {
            deadline: Duration::ZERO,
            ..loader.opts
        },
        ..loader
    };
    let mut delay = Duration::from_secs(1).min(retry_max);
    loop {
        // Full jitter, as at boot: a fleet that lost S3 together does not return in lockstep.
        tokio::time::sleep(delay.mul_f64(0.5 + fastrand::f64() / 2.0)).await;
        delay = (delay * 2).min(retry_max);
        if !serving_copy() {
            return;
        }
        let n = attempts.fetch_add(1, Ordering::Relaxed) + 1;
        match once.load().await {
            Ok((config, loaded)) if serving_copy() => {
                info!(source = %once.source, attempt = n, "S3 is readable again: replacing the last known good copy");
                swap(config, loaded);
                return;
            }
            Ok(_) => return,
            Err(e) => warn!(
                attempt = n,
                retry_in_max_ms = delay.as_millis() as u64,
                "still serving the last known good config: {e}"
            ),
        }
    }
}
