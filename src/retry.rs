//! Which failures a retry may cure (network and service trouble, commit conflicts) and how
//! long to wait before the next attempt: exponential backoff with jitter, capped.

use std::time::Duration;

use inlet_delta::{transient_text, SinkError};
use inlet_discover::DiscoverError;

/// Backoff never waits longer than this between attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// True when `err` is trouble a later attempt may not meet: a storage or queue request that
/// failed on the network or with a 5xx/429 after the client's own retries, a Delta commit
/// that lost a race. False for what the user must fix (config, schema, permissions, a full
/// or read-only checkpoint disk): retrying those only hides them.
pub fn is_transient(err: &anyhow::Error) -> bool {
    for cause in err.chain() {
        if let Some(e) = cause.downcast_ref::<DiscoverError>() {
            return e.is_transient();
        }
        if let Some(e) = cause.downcast_ref::<SinkError>() {
            return e.is_transient();
        }
        if let Some(e) = cause.downcast_ref::<inlet_unity::UnityError>() {
            return e.is_transient();
        }
        if cause.is::<inlet_checkpoint::CheckpointError>() {
            // The checkpoint is local state: a failure there is a disk or a file to fix.
            return false;
        }
        if let Some(e) = cause.downcast_ref::<object_store::Error>() {
            return inlet_delta::store_transient(e);
        }
        if let Some(e) = cause.downcast_ref::<std::io::Error>() {
            return io_transient(e);
        }
    }
    transient_text(&format!("{err:#}"))
}

/// Network-side I/O failures.
pub fn io_transient(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionReset
            | ConnectionAborted
            | ConnectionRefused
            | BrokenPipe
            | TimedOut
            | UnexpectedEof
            | Interrupted
    )
}

/// The wait before attempt `attempt + 1` (attempt counts from 1): 1 s doubling to
/// [`MAX_BACKOFF`], then between half and all of that, so runners that failed together do
/// not retry together.
pub fn backoff(attempt: u32) -> Duration {
    let full = Duration::from_secs(1u64 << attempt.saturating_sub(1).min(6)).min(MAX_BACKOFF);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    // A fraction in [0.5, 1.0) from the clock's nanoseconds, mixed so nearby calls differ.
    let mixed = (u64::from(nanos)).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40;
    let fraction = 0.5 + (mixed as f64 / (1u64 << 24) as f64) * 0.5;
    full.mul_f64(fraction)
}

/// Runs `op` until it succeeds, fails for good (`transient` says no), or has failed
/// `attempts` times, waiting [`backoff`] between attempts. For start-up checks, which
/// a blip must not fail.
pub async fn transient_retried<T, E, F, Fut>(
    what: &str,
    attempts: u32,
    transient: impl Fn(&E) -> bool,
    mut op: F,
) -> Result<T, E>
where
    E: std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let mut attempt = 0;
    loop {
        attempt += 1;
        match op().await {
            Err(e) if attempt < attempts && transient(&e) => {
                let wait = backoff(attempt);
                tracing::warn!(error = %e, attempt, retry_in_ms = wait.as_millis() as u64, "cannot reach {what}; retrying");
                tokio::time::sleep(wait).await;
            }
            outcome => return outcome,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_jitters_and_stays_capped() {
        for attempt in 1..20 {
            let full = Duration::from_secs(1u64 << (attempt - 1).min(6)).min(MAX_BACKOFF);
            let wait = backoff(attempt);
            assert!(
                wait >= full / 2 && wait <= full,
                "attempt {attempt}: {wait:?}"
            );
        }
    }

    #[test]
    fn network_trouble_is_transient_and_user_errors_are_not() {
        let reset = anyhow::Error::new(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "reset by peer",
        ));
        assert!(is_transient(&reset));
        let full = anyhow::Error::new(std::io::Error::new(
            std::io::ErrorKind::StorageFull,
            "no space",
        ));
        assert!(!is_transient(&full));
        assert!(is_transient(&anyhow::anyhow!(
            "Generic S3 error: Error after 10 retries: error sending request"
        )));
        assert!(is_transient(&anyhow::anyhow!(
            "Server returned non-2xx status code: 503 Service Unavailable: SlowDown"
        )));
        assert!(!is_transient(&anyhow::anyhow!(
            "column 'x' is BIGINT in the table and STRING in file a.json"
        )));
        let denied = object_store::Error::PermissionDenied {
            path: "b/k".into(),
            source: "403".into(),
        };
        assert!(!is_transient(&anyhow::Error::new(denied)));
    }
}
