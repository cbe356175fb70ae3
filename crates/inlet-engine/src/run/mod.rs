//! When batches happen: a run recovers, then drives the listing or notification loop in its
//! mode until done or stopped; failed steps are retried with backoff; a stop is clean.

mod admit;
mod backlog;
mod listing;
mod notifications;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use inlet_checkpoint::{FileState, SkipReason};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::error::Result;
use crate::events::Event;
use crate::pipeline::Pipeline;
use crate::recovery;
use crate::retry::{self, BATCH_ATTEMPTS};
use crate::stats::RunStats;
use backlog::Backlog;

/// When a run stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunMode {
    /// One batch (or none when nothing is new), then exit.
    Once,
    /// Everything present at start (listed, or waiting on the queue), in bounded batches,
    /// then exit.
    AvailableNow,
    /// Until a shutdown signal: listing every trigger interval, or reading the queue.
    Continuous,
}

impl Pipeline {
    /// Recovers, then runs until `mode` says stop or `shutdown` turns true. A batch in
    /// flight is finished first, so a signal never leaves one half done; events received
    /// but not planned are given back to the queue.
    pub async fn run(
        mut self,
        mode: RunMode,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<RunStats> {
        let started = Instant::now();
        if let Some(lost) = self.lease_lost() {
            // An `s3://` checkpoint's lease lost is a stop like a signal: the batch in
            // flight is refused before its commit (`check_lease`), nothing new is planned.
            shutdown = stop_on_either(shutdown, lost);
        }
        let outcome = self.run_recovered(mode, &mut shutdown, started).await;
        let lost = self.remote.as_ref().and_then(|r| r.lease.check().err());
        self.let_go().await;
        match (outcome, lost) {
            (Ok(_), Some(lost)) => Err(lost.into()),
            (outcome, _) => outcome,
        }
    }

    async fn run_recovered(
        &mut self,
        mode: RunMode,
        shutdown: &mut watch::Receiver<bool>,
        started: Instant,
    ) -> Result<RunStats> {
        if !self.recover_retried(mode, shutdown).await? {
            return Ok(self.stats.clone());
        }
        self.compact()?;
        if let Some(latest) = self.checkpoint.latest_schema()? {
            self.events.emit(Event::SchemaVersion {
                version: latest.version,
            });
        }
        // A first snapshot of a new `s3://` checkpoint holds its start time at once.
        self.snapshot_if_due(false, false).await?;
        let mut outcome = if self.discover.is_stream() {
            self.run_stream(mode, shutdown).await
        } else {
            self.run_listing(mode, shutdown).await
        };
        if outcome.is_ok() && mode != RunMode::Continuous {
            // A run that found nothing new still cleans up what has come due.
            outcome = self.clean_up().await;
            self.maintain(mode).await;
        }
        self.finish_maintenance().await;
        if let Err(e) = self.discover.release().await {
            warn!(error = %e, "cannot give unprocessed notifications back; they return after their visibility timeout");
        }
        outcome?;
        self.stats.elapsed_seconds = started.elapsed().as_secs_f64();
        self.stats.table_version = self.sink.version();
        Ok(self.stats.clone())
    }

    /// Plans, writes and commits the next batch off the backlog, then acknowledges its
    /// files' events (every file of a committed batch is recorded, whatever its outcome).
    /// False when a shutdown came while a failed batch waited for its retry: the batch stays
    /// planned, and the next start finishes it.
    async fn next_batch(
        &mut self,
        backlog: &mut Backlog,
        mode: RunMode,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<bool> {
        let (files, replaced) = backlog.take(
            self.cfg.source.max_files_per_batch,
            self.cfg.source.max_bytes_per_batch,
        );
        let mut settled: Vec<(String, Option<String>)> =
            files.iter().map(|f| self.identity(f)).collect();
        self.events.emit(Event::Backlog {
            files: backlog.queue.len() as u64,
            bytes: backlog.bytes,
        });
        let batch_id = self.checkpoint.next_batch_id()?;
        let first = self.run_batch(batch_id, files).await;
        if !self.retry_batch(batch_id, first, mode, shutdown).await? {
            return Ok(false);
        }
        if !replaced.is_empty() {
            // Versions set aside are acknowledged too, unless the batch found the path
            // changed again: then one of them may be the current version, so they wait again.
            let changed: HashSet<String> = self
                .checkpoint
                .batch_files(batch_id)?
                .into_iter()
                .filter(|f| {
                    f.state == FileState::Skipped && f.skip_reason == Some(SkipReason::Overwritten)
                })
                .map(|f| f.path)
                .collect();
            for event in replaced {
                if changed.contains(&event.path) {
                    backlog.offer_version(event);
                } else {
                    settled.push(self.identity(&event));
                }
            }
        }
        self.discover.settle(&settled).await?;
        self.snapshot_if_due(true, false).await?;
        self.clean_up().await?;
        self.compact()?;
        self.maintain(mode).await;
        Ok(true)
    }

    /// Start-up recovery, retried on transient trouble like a batch (the table may be
    /// briefly unreachable). False when a shutdown came during a wait: nothing was planned
    /// or written, and the next start recovers.
    async fn recover_retried(
        &mut self,
        mode: RunMode,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<bool> {
        let mut attempt = 0u32;
        loop {
            match recovery::recover(self).await {
                Ok(()) => return Ok(true),
                Err(e) if e.is_transient() && may_retry(mode, attempt) => {
                    attempt += 1;
                    let wait = retry::backoff(attempt);
                    warn!(attempt, retry_in_ms = wait.as_millis() as u64, error = %e, "recovery at start failed; retrying it");
                    self.retrying("recovery", attempt, wait, &e);
                    if stopped_during(wait, shutdown).await {
                        return Ok(false);
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// After a batch attempt: on a transient failure (storage or network trouble, a lost
    /// commit race) wait with backoff and jitter, then finish the planned batch the way a
    /// restart would (recovery: recorded if its commit landed, else replayed with the same
    /// files). A continuous run retries until it succeeds or is stopped; other runs give up
    /// after [`BATCH_ATTEMPTS`]. False when a shutdown came during a wait.
    async fn retry_batch(
        &mut self,
        batch_id: i64,
        mut outcome: Result<()>,
        mode: RunMode,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<bool> {
        let mut attempt = 0u32;
        while let Err(error) = outcome {
            if !error.is_transient() || !may_retry(mode, attempt) {
                return Err(error);
            }
            attempt += 1;
            let wait = retry::backoff(attempt);
            warn!(batch = batch_id, attempt, retry_in_ms = wait.as_millis() as u64, error = %error, "batch failed; retrying it");
            self.retrying(&format!("batch {batch_id}"), attempt, wait, &error);
            self.stats.batch_retries += 1;
            if stopped_during(wait, shutdown).await {
                return Ok(false);
            }
            // Recovery finishes this batch; it is a retry here, not a batch left by a crash.
            let recovered = self.stats.recovered_batches;
            outcome = recovery::recover(self).await;
            self.stats.recovered_batches = recovered;
        }
        if attempt > 0 {
            info!(
                batch = batch_id,
                attempts = attempt + 1,
                "batch done after retries"
            );
            self.healthy();
        }
        Ok(true)
    }

    /// Tells the observers a step failed on trouble a retry may cure, and when it retries.
    fn retrying(
        &self,
        what: &str,
        attempt: u32,
        retry_in: Duration,
        error: &dyn std::fmt::Display,
    ) {
        self.events.emit(Event::Retrying {
            what: what.to_string(),
            attempt,
            retry_in,
            error: error.to_string(),
        });
    }

    /// Tells the observers the trouble is over.
    fn healthy(&self) {
        self.events.emit(Event::Healthy);
    }

    /// After a failed discovery in a continuous run: log and mark the run unhealthy.
    /// `retry_in`: when the caller retries (`None`: the source paces its own retries).
    fn report_failure(
        &self,
        failures: u32,
        error: &inlet_discover::DiscoverError,
        retry_in: Option<Duration>,
    ) {
        let retry_in_seconds = retry_in.map(|d| d.as_secs());
        warn!(error = %error, attempt = failures, ?retry_in_seconds, "discovery failed; retrying");
        self.retrying("discovery", failures, retry_in.unwrap_or_default(), error);
    }

    /// A failed listing in a continuous run: report it, then wait with backoff. True when a
    /// shutdown came during the wait. (The report is made before the wait, and the wait
    /// holds no borrow of the pipeline, so a run stays `Send` for `tokio::spawn`.)
    async fn pause_after(
        &mut self,
        failures: u32,
        error: &inlet_discover::DiscoverError,
        shutdown: &mut watch::Receiver<bool>,
    ) -> bool {
        let pause = retry::backoff(failures + 1);
        self.report_failure(failures, error, Some(pause));
        stopped_during(pause, shutdown).await
    }
}

/// A stop that turns true when either `a` or `b` does (a sender dropped never fires).
fn stop_on_either(a: watch::Receiver<bool>, b: watch::Receiver<bool>) -> watch::Receiver<bool> {
    async fn turned_true(mut rx: watch::Receiver<bool>) {
        if !until_true(&mut rx).await {
            std::future::pending::<()>().await;
        }
    }
    let (tx, rx) = watch::channel(*a.borrow() || *b.borrow());
    tokio::spawn(async move {
        tokio::select! {
            _ = turned_true(a) => {}
            _ = turned_true(b) => {}
        }
        let _ = tx.send(true);
    });
    rx
}

/// Returns true once `rx` holds true; false if its sender is gone first. (A loop on
/// `changed`, not `wait_for`: its closure would keep a run's future from being `Send`.)
pub async fn until_true(rx: &mut watch::Receiver<bool>) -> bool {
    loop {
        if *rx.borrow_and_update() {
            return true;
        }
        if rx.changed().await.is_err() {
            return false;
        }
    }
}

/// Whether another attempt may follow `failures` failed ones: always in a continuous run,
/// otherwise up to [`BATCH_ATTEMPTS`] attempts in all.
pub(super) fn may_retry(mode: RunMode, failures: u32) -> bool {
    mode == RunMode::Continuous || failures + 1 < BATCH_ATTEMPTS
}

/// Waits `wait` before a retry; true when a shutdown came first.
pub(super) async fn stopped_during(wait: Duration, shutdown: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(wait) => false,
        _ = until_true(shutdown) => true,
    }
}
