//! When batches happen: the listing loop (every trigger interval) and the notification loop
//! (a batch closes when full or `max_batch_wait` after its first file), with backfill
//! listings, dedupe against the checkpoint, retries with backoff and a clean stop.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use anyhow::Result;
use inlet_checkpoint::{DedupeKey, FileState, SkipReason};
use inlet_discover::{Discover, FileEvent};
use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::observe;
use crate::pipeline::Pipeline;
use crate::progress::RunStats;
use crate::recovery;
use crate::retry;

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

/// Checkpoint meta key: the first-start listing of `include_existing_files` is done.
const INITIAL_LISTING: &str = "initial_listing_done_ms";
/// How often the queue depth gauge is refreshed.
const DEPTH_EVERY: Duration = Duration::from_secs(10);
/// `--available-now` with notifications: how long one wait for events may last; the queue
/// counts as drained when a receive (a 1-second long poll when draining) comes back empty.
const DRAIN_QUIET: Duration = Duration::from_secs(5);
/// Attempts at a batch that keeps failing transiently before a run that is not continuous
/// gives up (about a minute of backoff in all).
pub(crate) const BATCH_ATTEMPTS: u32 = 7;

/// Files found and not yet planned: arrival order, each path once.
#[derive(Debug, Default)]
struct Backlog {
    queue: VecDeque<FileEvent>,
    paths: HashSet<String>,
    bytes: u64,
    /// When the oldest file waiting arrived: the open batch's start.
    since: Option<Instant>,
    /// `allow_overwrites`: older versions of waiting paths (see `offer_version`).
    replaced: HashMap<String, Vec<FileEvent>>,
}

impl Backlog {
    fn contains(&self, path: &str) -> bool {
        self.paths.contains(path)
    }

    /// With `allow_overwrites`, another version of a waiting path: the newer of the two
    /// (by last-modified time, the later received on a tie) waits, the other is kept aside
    /// to be acknowledged with the batch that takes the path (or put back, should that
    /// batch find the file changed again). False when it is the version already waiting.
    fn offer_version(&mut self, event: FileEvent) -> bool {
        let Some(waiting) = self.queue.iter_mut().find(|e| e.path == event.path) else {
            return self.push(event);
        };
        if waiting.etag == event.etag {
            return false;
        }
        let older = if event.last_modified_ms >= waiting.last_modified_ms {
            self.bytes = self.bytes - waiting.size + event.size;
            std::mem::replace(waiting, event)
        } else {
            event
        };
        self.replaced
            .entry(older.path.clone())
            .or_default()
            .push(older);
        true
    }

    /// Adds a file unless its path is already waiting; true when added.
    fn push(&mut self, event: FileEvent) -> bool {
        if !self.paths.insert(event.path.clone()) {
            return false;
        }
        self.bytes += event.size;
        self.since.get_or_insert_with(Instant::now);
        self.queue.push_back(event);
        true
    }

    fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    fn is_full(&self, max_files: usize, max_bytes: u64) -> bool {
        self.queue.len() >= max_files || self.bytes >= max_bytes
    }

    /// The next batch, and the older versions of its paths set aside. What stays behind
    /// has waited as long, so `since` is kept.
    fn take(&mut self, max_files: usize, max_bytes: u64) -> (Vec<FileEvent>, Vec<FileEvent>) {
        let batch = take_batch(&mut self.queue, max_files, max_bytes);
        let mut replaced = Vec::new();
        for file in &batch {
            self.paths.remove(&file.path);
            self.bytes -= file.size;
            replaced.extend(self.replaced.remove(&file.path).unwrap_or_default());
        }
        if self.queue.is_empty() {
            self.since = None;
        }
        observe::backlog(self.queue.len(), self.bytes);
        (batch, replaced)
    }
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
        if !self.recover_retried(mode, &mut shutdown).await? {
            return Ok(self.stats);
        }
        self.compact()?;
        if let Some(latest) = self.checkpoint.latest_schema()? {
            observe::schema_version(latest.version);
        }
        let mut outcome = if self.discover.is_stream() {
            self.run_stream(mode, &mut shutdown).await
        } else {
            self.run_listing(mode, &mut shutdown).await
        };
        if outcome.is_ok() && mode != RunMode::Continuous {
            // A run that found nothing new still cleans up what has come due.
            outcome = self.clean_up().await;
        }
        if let Err(e) = self.discover.release().await {
            warn!(error = %e, "cannot give unprocessed notifications back; they return after their visibility timeout");
        }
        outcome?;
        self.stats.elapsed_seconds = self.progress.finish().as_secs_f64();
        self.stats.table_version = self.sink.version();
        Ok(self.stats)
    }

    /// Listing: list, take everything new in bounded batches, wait for the trigger.
    async fn run_listing(
        &mut self,
        mode: RunMode,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<()> {
        let mut backlog = Backlog::default();
        let mut failures = 0u32;
        loop {
            let found = match self.discover.discover(Duration::ZERO).await {
                Ok(found) => found,
                // A continuous run retries until the source answers; a draining run retries
                // transient trouble as often as a batch would.
                Err(e)
                    if mode == RunMode::Continuous
                        || (e.is_transient() && may_retry(mode, failures)) =>
                {
                    failures += 1;
                    if pause_after(failures, &e, shutdown).await {
                        return Ok(());
                    }
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            failures = 0;
            observe::set_problem(None);
            let listed = found.len();
            let new = self.admit(found, &mut backlog).await?;
            info!(
                discovery = self.discover.kind(),
                listed, new, "discovered files"
            );
            while !backlog.is_empty() {
                if *shutdown.borrow() {
                    info!("shutdown requested: stopping between batches");
                    return Ok(());
                }
                if !self.next_batch(&mut backlog, mode, shutdown).await? {
                    return Ok(());
                }
                if mode == RunMode::Once {
                    return Ok(());
                }
            }
            match mode {
                RunMode::Once | RunMode::AvailableNow => return Ok(()),
                RunMode::Continuous => {
                    self.clean_up().await?;
                    self.compact()?;
                    let wait = Duration::from_secs(self.cfg.trigger.interval_seconds);
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = shutdown.wait_for(|stop| *stop) => return Ok(()),
                    }
                }
            }
        }
    }

    /// Notifications: read the queue; close a batch when it is full or `max_batch_wait`
    /// after its first file; list at first start (`include_existing_files`) and every
    /// `backfill_interval`. `--available-now` stops once the queue is empty.
    async fn run_stream(
        &mut self,
        mode: RunMode,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<()> {
        let src = self.cfg.source.clone();
        let mut backlog = Backlog::default();
        let initial =
            src.include_existing_files && self.checkpoint.meta(INITIAL_LISTING)?.is_none();
        let mut next_listing = if initial {
            Some(Instant::now())
        } else {
            src.backfill_interval.map(|i| Instant::now() + i)
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
                next_listing = src.backfill_interval.map(|i| Instant::now() + i);
            }
            let due = backlog
                .since
                .is_some_and(|t| t.elapsed() >= src.max_batch_wait);
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
                    observe::queue_depth(depth);
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
                (RunMode::Continuous, Some(t)) => src.max_batch_wait.saturating_sub(t.elapsed()),
                (RunMode::Continuous, None) => src.queue_wait,
                _ => DRAIN_QUIET,
            };
            if let Some(t) = next_listing {
                wait = wait.min(t.saturating_duration_since(Instant::now()));
            }
            let received = tokio::select! {
                r = self.discover.discover(wait) => r,
                _ = shutdown.wait_for(|stop| *stop) => return Ok(()),
            };
            match received {
                Ok(found) => {
                    failures = 0;
                    observe::set_problem(None);
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
                    report_failure(failures, &e, None);
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
                Err(e) if retry::is_transient(&e) && may_retry(mode, failures) => {
                    failures += 1;
                    let wait = retry::backoff(failures);
                    warn!(error = %format!("{e:#}"), attempt = failures, retry_in_ms = wait.as_millis() as u64, "listing beside notifications failed; retrying");
                    observe::set_problem(Some(format!(
                        "listing failing ({failures} attempts): {e:#}"
                    )));
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
        self.clean_up().await?;
        self.compact()?;
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
                Err(e) if retry::is_transient(&e) && may_retry(mode, attempt) => {
                    attempt += 1;
                    let wait = retry::backoff(attempt);
                    warn!(attempt, retry_in_ms = wait.as_millis() as u64, error = %format!("{e:#}"), "recovery at start failed; retrying it");
                    observe::set_problem(Some(format!(
                        "recovery failing ({attempt} attempts): {e:#}"
                    )));
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
            if !retry::is_transient(&error) || !may_retry(mode, attempt) {
                return Err(error);
            }
            attempt += 1;
            let wait = retry::backoff(attempt);
            warn!(batch = batch_id, attempt, retry_in_ms = wait.as_millis() as u64, error = %format!("{error:#}"), "batch failed; retrying it");
            observe::set_problem(Some(format!(
                "batch {batch_id} failing ({attempt} attempts): {error:#}"
            )));
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
            observe::set_problem(None);
        }
        Ok(true)
    }

    /// How a file is known to the checkpoint and acknowledged: by path, or by path and
    /// ETag with `allow_overwrites`.
    fn identity(&self, file: &FileEvent) -> (String, Option<String>) {
        (
            file.path.clone(),
            self.cfg.source.allow_overwrites.then(|| file.etag.clone()),
        )
    }

    /// Adds what is new to the backlog, oldest first: each candidate costs one indexed
    /// checkpoint look-up (the events of files seen before are acknowledged at once), and a
    /// path already waiting is not added twice. Returns how many were new.
    async fn admit(&mut self, found: Vec<FileEvent>, backlog: &mut Backlog) -> Result<usize> {
        let total = found.len();
        // Files older than max_file_age are not taken (whatever the checkpoint says).
        let (found, too_old): (Vec<FileEvent>, Vec<FileEvent>) = match self.oldest_taken_ms() {
            Some(oldest) => found
                .into_iter()
                .partition(|e| e.last_modified_ms >= oldest),
            None => (found, Vec::new()),
        };
        if !too_old.is_empty() {
            debug!(
                files = too_old.len(),
                "files older than source.max_file_age left untaken"
            );
            self.stats.too_old_files += too_old.len() as u64;
            if self.discover.is_stream() {
                let old: Vec<_> = too_old.iter().map(|e| self.identity(e)).collect();
                self.discover.settle(&old).await?;
            }
        }
        let key = if self.cfg.source.allow_overwrites {
            DedupeKey::PathAndEtag
        } else {
            DedupeKey::Path
        };
        // Only a queue acknowledges events: a listing's files are not copied for it.
        let candidates: Vec<(String, Option<String>)> = if self.discover.is_stream() {
            found.iter().map(|e| self.identity(e)).collect()
        } else {
            Vec::new()
        };
        let looked_up = found.len();
        let started = Instant::now();
        let mut new = self
            .checkpoint
            .filter_unseen(found, key, |e| (e.path.as_str(), e.etag.as_str()))?;
        debug!(
            candidates = looked_up,
            unseen = new.len(),
            dedupe_ms = started.elapsed().as_secs_f64() * 1000.0,
            "deduped against the checkpoint"
        );
        if !candidates.is_empty() && new.len() < candidates.len() {
            let unseen: HashSet<(String, Option<String>)> =
                new.iter().map(|e| self.identity(e)).collect();
            let seen: Vec<(String, Option<String>)> = candidates
                .into_iter()
                .filter(|c| !unseen.contains(c))
                .collect();
            self.discover.settle(&seen).await?;
        }
        new.sort_by(|a, b| (a.last_modified_ms, &a.path).cmp(&(b.last_modified_ms, &b.path)));
        // A path already waiting is one file (its events are acknowledged with its batch);
        // with allow_overwrites another version of it replaces or joins the waiting one.
        let mut count = 0;
        for event in new {
            let added = if self.cfg.source.allow_overwrites && backlog.contains(&event.path) {
                backlog.offer_version(event);
                false
            } else {
                backlog.push(event)
            };
            count += usize::from(added);
        }
        // Duplicates: seen before, already waiting, or another version set aside.
        observe::discovered(count, total - too_old.len() - count);
        self.progress.add_files(count as u64);
        observe::backlog(backlog.queue.len(), backlog.bytes);
        Ok(count)
    }
}

/// After a failed discovery in a continuous run: log and mark the run unhealthy.
/// `retry_in`: when the caller retries (`None`: the source paces its own retries).
fn report_failure(
    failures: u32,
    error: &inlet_discover::DiscoverError,
    retry_in: Option<Duration>,
) {
    let retry_in_seconds = retry_in.map(|d| d.as_secs());
    warn!(error = %error, attempt = failures, ?retry_in_seconds, "discovery failed; retrying");
    observe::set_problem(Some(format!(
        "discovery failing ({failures} attempts): {error}"
    )));
}

/// A failed listing in a continuous run: report it, then wait with backoff. True when a
/// shutdown came during the wait.
async fn pause_after(
    failures: u32,
    error: &inlet_discover::DiscoverError,
    shutdown: &mut watch::Receiver<bool>,
) -> bool {
    let pause = retry::backoff(failures + 1);
    report_failure(failures, error, Some(pause));
    stopped_during(pause, shutdown).await
}

/// Whether another attempt may follow `failures` failed ones: always in a continuous run,
/// otherwise up to [`BATCH_ATTEMPTS`] attempts in all.
fn may_retry(mode: RunMode, failures: u32) -> bool {
    mode == RunMode::Continuous || failures + 1 < BATCH_ATTEMPTS
}

/// Waits `wait` before a retry; true when a shutdown came first.
async fn stopped_during(wait: Duration, shutdown: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(wait) => false,
        _ = shutdown.wait_for(|stop| *stop) => true,
    }
}

/// Takes the next batch off the queue: at most `max_files`, and at most `max_bytes` unless
/// a single file is larger (it then makes a batch of its own).
fn take_batch(queue: &mut VecDeque<FileEvent>, max_files: usize, max_bytes: u64) -> Vec<FileEvent> {
    let mut batch = Vec::new();
    let mut bytes = 0u64;
    while let Some(next) = queue.front() {
        if batch.len() >= max_files || (!batch.is_empty() && bytes + next.size > max_bytes) {
            break;
        }
        bytes += next.size;
        batch.extend(queue.pop_front());
    }
    batch
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(name: &str, size: u64) -> FileEvent {
        FileEvent {
            path: name.into(),
            etag: String::new(),
            size,
            last_modified_ms: 0,
        }
    }

    #[test]
    fn batches_respect_file_and_byte_bounds() {
        let mut q: VecDeque<_> = [ev("a", 5), ev("b", 5), ev("c", 20), ev("d", 1)].into();
        let names = |b: Vec<FileEvent>| b.into_iter().map(|e| e.path).collect::<Vec<_>>();
        assert_eq!(names(take_batch(&mut q, 10, 12)), vec!["a", "b"]);
        assert_eq!(names(take_batch(&mut q, 10, 12)), vec!["c"]);
        assert_eq!(names(take_batch(&mut q, 1, 12)), vec!["d"]);
        assert!(q.is_empty());
    }

    #[test]
    fn backlog_holds_each_path_once_and_keeps_its_window() {
        let mut backlog = Backlog::default();
        let added: Vec<bool> = [ev("a", 5), ev("a", 5), ev("b", 7), ev("c", 1)]
            .into_iter()
            .map(|e| backlog.push(e))
            .collect();
        assert_eq!(added, vec![true, false, true, true]);
        assert_eq!((backlog.queue.len(), backlog.bytes), (3, 13));
        assert!(backlog.is_full(3, 100) && backlog.is_full(10, 13) && !backlog.is_full(4, 14));
        let opened = backlog.since;
        assert_eq!(backlog.take(2, 100).0.len(), 2);
        assert_eq!(
            (backlog.bytes, backlog.since),
            (1, opened),
            "what stays has waited as long"
        );
        assert_eq!(backlog.take(2, 100).0.len(), 1);
        assert!(backlog.is_empty() && backlog.since.is_none() && !backlog.contains("a"));
    }

    #[test]
    fn the_newest_version_of_a_waiting_path_is_the_one_taken() {
        let version = |etag: &str, size: u64, at: i64| FileEvent {
            etag: etag.into(),
            last_modified_ms: at,
            ..ev("a", size)
        };
        let mut backlog = Backlog::default();
        assert!(backlog.offer_version(version("e2", 20, 200)));
        assert!(
            !backlog.offer_version(version("e2", 20, 200)),
            "the same version again"
        );
        assert!(
            backlog.offer_version(version("e1", 10, 100)),
            "an older version is set aside"
        );
        assert!(
            backlog.offer_version(version("e3", 30, 200)),
            "a tie goes to the later received"
        );
        assert_eq!((backlog.queue.len(), backlog.bytes), (1, 30));
        let (taken, aside) = backlog.take(10, 1000);
        assert_eq!(
            taken.iter().map(|e| e.etag.as_str()).collect::<Vec<_>>(),
            vec!["e3"]
        );
        let mut aside: Vec<&str> = aside.iter().map(|e| e.etag.as_str()).collect();
        aside.sort_unstable();
        assert_eq!(aside, vec!["e1", "e2"]);
        assert!(backlog.replaced.is_empty());
    }
}
