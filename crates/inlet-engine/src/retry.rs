//! How long to wait before the next attempt (exponential backoff with jitter, capped), and
//! which I/O failures are network trouble; `EngineError::is_transient` says what is retried.

use std::time::Duration;

/// Attempts at a batch (or a start-up check, recovery, a listing) that keeps failing
/// transiently before a run that is not continuous gives up (about a minute of backoff in all).
pub(crate) const BATCH_ATTEMPTS: u32 = 7;

/// Backoff never waits longer than this between attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);

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
        use crate::error::EngineError;
        let io = |kind| EngineError::Io {
            what: "read",
            path: "f".into(),
            source: std::io::Error::new(kind, "x"),
        };
        assert!(io(std::io::ErrorKind::ConnectionReset).is_transient());
        assert!(!io(std::io::ErrorKind::StorageFull).is_transient());
        let text = |t: &str| {
            EngineError::Transform(inlet_transform::TransformError::Execute(t.to_string()))
        };
        assert!(
            text("Generic S3 error: Error after 10 retries: error sending request").is_transient()
        );
        assert!(
            text("Server returned non-2xx status code: 503 Service Unavailable: SlowDown")
                .is_transient()
        );
        assert!(
            !text("column 'x' is BIGINT in the table and STRING in file a.json").is_transient()
        );
        let denied = object_store::Error::PermissionDenied {
            path: "b/k".into(),
            source: "403".into(),
        };
        let sink = inlet_delta::SinkError::Commit {
            url: "s3://b/t".into(),
            source: deltalake_error(denied),
        };
        assert!(!EngineError::from(sink).is_transient());
    }

    fn deltalake_error(source: object_store::Error) -> inlet_delta::DeltaTableError {
        inlet_delta::DeltaTableError::ObjectStore { source }
    }
}
