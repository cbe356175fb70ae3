//! Table maintenance between batches: Delta checkpoints and log clean-up after commits,
//! auto-compaction of small files, and periodic VACUUM; a failure warns and never stops a run.

use std::time::Duration;

use inlet_delta::maintenance::{
    CleanupOutcome, CompactOptions, CompactOutcome, FileStats, VacuumOptions,
};
use inlet_delta::SinkError;
use tracing::{debug, info, warn};

use crate::config::SinkMode;

use crate::events::{Event, Maintenance};
use crate::pipeline::Pipeline;
use crate::run::RunMode;

/// Checkpoint meta key: when the last VACUUM ran (ms since the epoch).
const LAST_VACUUM_KEY: &str = "last_vacuum_ms";
/// How long the end of a run waits for a compaction running beside the batches.
const FINISH_WAIT: Duration = Duration::from_secs(30);
/// Partitions compacted in one round, at most: a round holds the next batch back by about
/// the time to rewrite this many target-size files.
const PARTITIONS_PER_ROUND: usize = 4;

/// Expired-log clean-up, which lists all of `_delta_log`, runs at most this often in a run
/// (a checkpoint comes every 10 commits; at a commit every 10 s that would be a whole-log
/// listing every 100 s).
const LOG_CLEANUP_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

impl Pipeline {
    /// After a batch (and once at the end of a run that stops): the log upkeep when the
    /// table has a new version, then compaction when small files passed the threshold, then
    /// VACUUM when due (continuous runs). Each step's failure is reported, never returned.
    pub(crate) async fn maintain(&mut self, mode: RunMode) {
        if self.sink.version().is_none() {
            return;
        }
        self.upkeep_log().await;
        if self.cfg.maintenance.auto_compact {
            self.auto_compact().await;
        }
        if mode == RunMode::Continuous {
            self.vacuum_if_due().await;
        }
    }

    /// A Delta checkpoint when one is due, and expired-log clean-up after it (at most every
    /// [`LOG_CLEANUP_EVERY`]).
    async fn upkeep_log(&mut self) {
        let version = self.sink.version();
        if version == self.upkeep.seen_version {
            return;
        }
        self.upkeep.seen_version = version;
        match self
            .sink
            .checkpoint_if_due(self.cfg.maintenance.checkpoint_interval)
            .await
        {
            Ok(Some(v)) => {
                debug!(version = v, "Delta checkpoint written");
                self.events
                    .emit(Event::Maintenance(Maintenance::Checkpointed { version: v }));
            }
            Ok(None) => return,
            Err(e) => return self.maintenance_failed("checkpoint", &e),
        }
        // The clean-up lists the whole log (delta-rs has no start point for it): at most
        // once an hour, not after every checkpoint. A failed one is tried at the next.
        if self
            .upkeep
            .log_cleaned_at
            .is_some_and(|at| at.elapsed() < LOG_CLEANUP_EVERY)
        {
            return;
        }
        let cleaned = self.sink.clean_expired_log().await;
        if cleaned.is_ok() {
            self.upkeep.log_cleaned_at = Some(std::time::Instant::now());
        }
        match cleaned {
            Ok(CleanupOutcome::Removed(n)) if n > 0 => {
                info!(removed = n, "expired Delta log objects deleted");
                self.events
                    .emit(Event::Maintenance(Maintenance::LogCleaned {
                        removed: n as u64,
                    }));
            }
            Ok(_) => {}
            Err(e) => self.maintenance_failed("log_cleanup", &e),
        }
    }

    /// Waits for a compaction running beside the batches and reports it (at the end of a
    /// run), for at most [`FINISH_WAIT`]: then it is aborted, which is safe (its commit is
    /// one conditional write: it either landed or never will, and files it wrote without a
    /// commit are removed by VACUUM once past the retention).
    pub(crate) async fn finish_maintenance(&mut self) {
        let Some(mut task) = self.upkeep.compacting.take() else {
            return;
        };
        match tokio::time::timeout(FINISH_WAIT, &mut task).await {
            Ok(outcome) => self.compaction_done(joined(outcome)).await,
            Err(_) => {
                task.abort();
                warn!(
                    waited_seconds = FINISH_WAIT.as_secs(),
                    "a compaction still running at the end of the run was stopped; the next run compacts again"
                );
            }
        }
    }

    /// Waits for the compaction running beside the batches, if any, and reports it.
    async fn settle_compaction(&mut self) {
        if let Some(task) = self.upkeep.compacting.take() {
            let outcome = task.await;
            self.compaction_done(joined(outcome)).await;
        }
    }

    /// Reports a compaction's outcome. A failure (a concurrent writer won, or storage
    /// failed) gives way: the next batch tries again.
    async fn compaction_done(&mut self, outcome: Result<CompactOutcome, String>) {
        match outcome {
            Ok(outcome) => self.compacted(outcome).await,
            Err(e) => self.maintenance_failed("compaction", &e),
        }
    }

    /// Tells the observers the table's data files.
    fn report_files(&self, stats: &FileStats) {
        self.events
            .emit(Event::Maintenance(Maintenance::TableFiles {
                files: stats.files,
                bytes: stats.bytes,
                small_files: stats.small_files,
            }));
    }

    /// Compacts the partitions (up to [`PARTITIONS_PER_ROUND`]) holding at least
    /// `compact_min_files` small files. An append table's compaction runs beside the
    /// batches (an append never conflicts with a compaction's removes, and the batch after
    /// it is not held back); a MERGE table's runs between batches, since a MERGE rewriting
    /// the files a compaction replaces would lose the race and be replayed whole.
    async fn auto_compact(&mut self) {
        if self
            .upkeep
            .compacting
            .as_ref()
            .is_some_and(|task| !task.is_finished())
        {
            return;
        }
        self.settle_compaction().await;
        let m = &self.cfg.maintenance;
        let target = self.cfg.sink.target_file_size;
        let small_below = m.small_below(target);
        let stats = match self.sink.file_stats(small_below) {
            Ok(s) => s,
            Err(e) => return self.maintenance_failed("compaction", &e),
        };
        self.report_files(&stats);
        let due: Vec<_> = stats
            .partitions
            .iter()
            .filter(|p| p.small_files >= m.compact_min_files)
            // delta-rs's partition filter cannot name a null value: such a partition would
            // be compacted by a pass over every partition. `inlet table optimize` does it.
            .filter(|p| p.values.iter().all(|(_, v)| v.is_some()))
            .take(PARTITIONS_PER_ROUND)
            .map(|p| p.values.clone())
            .collect();
        // Deletion vectors hiding much of a file: a purge rewrites it (MERGE tables only;
        // an append never writes a deletion vector).
        let purge = self.cfg.sink.mode == SinkMode::Merge
            && self
                .sink
                .deleted_rows(m.purge_deleted_fraction)
                .is_ok_and(|d| d.files_over > 0);
        if due.is_empty() && !purge {
            return;
        }
        let unpartitioned = due.iter().all(Vec::is_empty);
        let options = CompactOptions {
            target_size: target,
            partitions: (!unpartitioned).then_some(due.clone()),
            zorder_by: Vec::new(),
            max_concurrent: 1,
            purge_deleted_fraction: purge.then_some(m.purge_deleted_fraction),
        };
        // Only the purge is due: no bin-packing pass over a table with few small files.
        if due.is_empty() {
            let outcome = self
                .sink
                .purge_deletion_vectors(m.purge_deleted_fraction, target)
                .await
                .map(CompactOutcome::from);
            return self
                .compaction_done(outcome.map_err(|e| e.to_string()))
                .await;
        }
        let hook = self.faults.maintenance_hook();
        if self.cfg.sink.mode == SinkMode::Append {
            let sink = self.sink.second_handle();
            self.upkeep.compacting = Some(tokio::spawn(async move {
                let mut sink = sink;
                sink.compact(&options, hook).await
            }));
            return;
        }
        let outcome = self.sink.compact(&options, hook).await;
        self.compaction_done(outcome.map_err(|e| e.to_string()))
            .await;
    }

    /// Reports a committed (or empty) compaction, then the log upkeep its commit may need.
    async fn compacted(&mut self, outcome: CompactOutcome) {
        if outcome.version.is_some() {
            info!(
                version = ?outcome.version,
                files_removed = outcome.files_removed,
                files_added = outcome.files_added,
                files_purged = outcome.files_purged,
                deleted_rows_dropped = outcome.deleted_rows_dropped,
                seconds = outcome.seconds,
                "small files compacted"
            );
        }
        if let Some(error) = &outcome.post_commit_error {
            self.maintenance_failed("log_cleanup", error);
        }
        if let Some(error) = &outcome.partial_error {
            self.maintenance_failed("compaction", error);
        }
        self.events.emit(Event::Maintenance(Maintenance::Compacted {
            version: outcome.version,
            files_removed: outcome.files_removed,
            files_added: outcome.files_added,
            bytes_removed: outcome.bytes_removed,
            bytes_added: outcome.bytes_added,
            seconds: outcome.seconds,
        }));
        if outcome.version.is_none() {
            return;
        }
        // The compaction may have run on another handle: see its commit here.
        if let Err(e) = self.sink.refresh().await {
            return self.maintenance_failed("compaction", &e);
        }
        let small_below = self
            .cfg
            .maintenance
            .small_below(self.cfg.sink.target_file_size);
        if let Ok(after) = self.sink.file_stats(small_below) {
            self.report_files(&after);
        }
        self.upkeep_log().await;
    }

    /// VACUUM with the table's retention when `vacuum_interval` passed since the last one.
    async fn vacuum_if_due(&mut self) {
        let Some(interval) = self.cfg.maintenance.vacuum_interval else {
            return;
        };
        let now = chrono::Utc::now().timestamp_millis();
        let last = match self.checkpoint.meta(LAST_VACUUM_KEY) {
            Ok(v) => v.and_then(|v| v.parse::<i64>().ok()),
            Err(e) => return self.maintenance_failed("vacuum", &e),
        };
        // The first run of a pipeline starts the clock rather than listing the table at once.
        let Some(last) = last else {
            if let Err(e) = self.checkpoint.set_meta(LAST_VACUUM_KEY, &now.to_string()) {
                self.maintenance_failed("vacuum", &e);
            }
            return;
        };
        if Duration::from_millis(u64::try_from(now - last).unwrap_or_default()) < interval {
            return;
        }
        // A compaction beside the batches has files no version references yet: VACUUM
        // waits for its commit (with a table retention shorter than a compaction, it could
        // otherwise delete them).
        self.settle_compaction().await;
        // Recorded first: a VACUUM that fails (e.g. DeleteObject denied) waits a whole
        // interval rather than retrying after every batch.
        if let Err(e) = self.checkpoint.set_meta(LAST_VACUUM_KEY, &now.to_string()) {
            return self.maintenance_failed("vacuum", &e);
        }
        match self
            .sink
            .vacuum(&VacuumOptions::default(), self.faults.maintenance_hook())
            .await
        {
            Ok(outcome) => {
                info!(
                    files = outcome.files.len(),
                    seconds = outcome.seconds,
                    "VACUUM done"
                );
                for f in &outcome.files {
                    debug!(file = %f, "vacuumed");
                }
                self.events.emit(Event::Maintenance(Maintenance::Vacuumed {
                    files: outcome.files.len() as u64,
                    seconds: outcome.seconds,
                }));
            }
            Err(e) => self.maintenance_failed("vacuum", &e),
        }
    }

    /// Reports a failed maintenance step: a warning the first time per kind, then debug.
    fn maintenance_failed(&mut self, what: &'static str, error: &dyn std::fmt::Display) {
        if self.upkeep.warned.insert(what) {
            warn!(step = what, error = %error, "table maintenance failed; ingestion goes on, and the step is tried again later (further failures of this step are logged at debug level)");
        } else {
            debug!(step = what, error = %error, "table maintenance failed again");
        }
        self.events.emit(Event::Maintenance(Maintenance::Failed {
            what,
            error: error.to_string(),
        }));
    }
}

/// A compaction task's outcome, its own error or the task's (a panic), as one result.
fn joined(
    outcome: Result<Result<CompactOutcome, SinkError>, tokio::task::JoinError>,
) -> Result<CompactOutcome, String> {
    match outcome {
        Ok(Ok(outcome)) => Ok(outcome),
        Ok(Err(e)) => Err(e.to_string()),
        Err(e) => Err(e.to_string()),
    }
}
