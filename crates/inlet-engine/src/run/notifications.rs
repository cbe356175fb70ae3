//! The notification loop: events from SQS fill the backlog; a batch closes when full or
//! `max_batch_wait` after its first file; listings at first start and every backfill.

use std::time::{Duration, Instant};

use inlet_discover::Discover;
use tokio::sync::watch;
use tracing::{info, warn};

use super::backlog::Backlog;
use super::{may_retry, stopped_during, RunMode};
use crate::error::Result;
use crate::events::Event;
use crate::pipeline::Pipeline;
use crate::retry;

/// Checkpoint meta key: the first-start listing of `include_existing_files` is done.
const INITIAL_LISTING: &str = "initial_listing_done_ms";
/// How often the queue depth gauge is refreshed.
const DEPTH_EVERY: Duration = Duration::from_secs(10);
/// `--available-now` with notifications: how long one wait for events may last; the queue
/// counts as drained when a receive (a 1-second long poll when draining) comes back empty.
const DRAIN_QUIET: Duration = Duration::from_secs(5);

impl Pipeline {
    /// Notifications: read the queue; close a batch when it is full or `max_batch_wait`
    /// after its first file; list at first start (`include_existing_files`) and every
    /// `backfill_interval`. `--available-now` stops once the queue is empty.
    pub(super) async fn run_stream(
        &mut self,
        mode: RunMode,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<()> {
        let src = self.cfg.source.clone();
        let Some(queue) = src.notifications().cloned() else {
            return Ok(());
        };
        let mut backlog = Backlog::default();
        let initial =
            src.include_existing_files && self.checkpoint.meta(INITIAL_LISTING)?.is_none();
        let mut next_listing = if initial {
            Some(Instant::now())
        } else {
            queue.backfill_interval.map(|i| Instant::now() + i)
        };
        let mut drained = false;
        let mut failures = 0u32;
        let mut depth_at = Instant::now();
        loop {
            if *shutdown.borrow() {
                info!("shutdown requested: stopping between batches");
                return Ok(());
            }
            if next_listing.is_some_and(|t| t <= Instant::now()) {
                self.backfill_retried(&mut backlog, mode, shutdown).await?;
                next_listing = queue.backfill_interval.map(|i| Instant::now() + i);
            }
            let due = backlog
                .since
                .is_some_and(|t| t.elapsed() >= queue.max_batch_wait);
            let finishing = mode != RunMode::Continuous && drained;
            if !backlog.is_empty()
                && (backlog.is_full(src.max_files_per_batch, src.max_bytes_per_batch)
                    || due
                    || finishing)
            {
                if !self.next_batch(&mut backlog, mode, shutdown).await? {
                    return Ok(());
                }
                if mode == RunMode::Once {
                    return Ok(());
                }
                continue;
            }
            if finishing {
                return Ok(());
            }
            if mode == RunMode::Continuous && depth_at.elapsed() >= DEPTH_EVERY {
                if let Some(depth) = self.discover.backlog().await {
                    self.events.emit(Event::QueueDepth { messages: depth });
                }
                depth_at = Instant::now();
                // Clean-up waits for retention, so an idle pass this often is soon enough.
                self.clean_up().await?;
                self.compact()?;
            }
            // Wait for events (the queue is read in the background meanwhile) until the
            // open batch is due or the next listing. Draining (`--available-now`) stops at
            // the first empty receive.
            let mut wait = match (mode, backlog.since) {
                (RunMode::Continuous, Some(t)) => queue.max_batch_wait.saturating_sub(t.elapsed()),
                (RunMode::Continuous, None) => queue.wait,
                _ => DRAIN_QUIET,
            };
            if let Some(t) = next_listing {
                wait = wait.min(t.saturating_duration_since(Instant::now()));
            }
            let received = tokio::select! {
                r = self.discover.discover(wait) => r,
                _ = super::until_true(shutdown) => return Ok(()),
            };
            match received {
                Ok(found) => {
                    failures = 0;
                    self.healthy();
                    if found.is_empty() && mode != RunMode::Continuous && self.discover.exhausted()
                    {
                        drained = true;
                    }
                    self.admit(found, &mut backlog).await?;
                }
                Err(e)
                    if mode == RunMode::Continuous
                        || (e.is_transient() && may_retry(mode, failures)) =>
                {
                    // The receiver backs off by itself; the loop goes on, so files already
                    // waiting still close their batch on time.
                    failures += 1;
                    self.report_failure(failures, &e, None);
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// [`Self::backfill`], retried on transient trouble: without limit in a continuous run
    /// (the queue is not read meanwhile), [`BATCH_ATTEMPTS`] times otherwise.
    async fn backfill_retried(
        &mut self,
        backlog: &mut Backlog,
        mode: RunMode,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<()> {
        let mut failures = 0u32;
        loop {
            match self.backfill(backlog).await {
                Ok(()) => return Ok(()),
                Err(e) if e.is_transient() && may_retry(mode, failures) => {
                    failures += 1;
                    let wait = retry::backoff(failures);
                    warn!(error = %e, attempt = failures, retry_in_ms = wait.as_millis() as u64, "listing beside notifications failed; retrying");
                    self.retrying("listing", failures, wait, &e);
                    if stopped_during(wait, shutdown).await {
                        return Ok(());
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// A listing beside notifications: the first-start listing, or a periodic backfill
    /// for notifications that never came.
    async fn backfill(&mut self, backlog: &mut Backlog) -> Result<()> {
        let Some(listing) = self.backfill.as_mut() else {
            return Ok(());
        };
        let found = listing.discover(Duration::ZERO).await?;
        let listed = found.len();
        let new = self.admit(found, backlog).await?;
        info!(listed, new, "listed the source beside notifications");
        if self.checkpoint.meta(INITIAL_LISTING)?.is_none() {
            self.checkpoint.set_meta(
                INITIAL_LISTING,
                &chrono::Utc::now().timestamp_millis().to_string(),
            )?;
        }
        Ok(())
    }
}
