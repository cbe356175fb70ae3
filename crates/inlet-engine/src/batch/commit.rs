//! Step 6–7, committing and recording a batch: the commit with its manifest and txn (one
//! fallback for a commit the checkpoint missed), then the checkpoint's record and the report.

use std::collections::HashMap;
use std::time::Instant;

use arrow::datatypes::Schema;
use inlet_checkpoint::FileState;
use inlet_delta::{BatchFile, DeltaSink, SinkError, StagedFiles};
use tracing::{info, warn};

use super::evolve::Evolution;
use super::PlannedFile;
use crate::error::Result;
use crate::events::{BatchCommitted, Event};
use crate::pipeline::Pipeline;

/// How far back in the table's history the commit of a batch the table already holds is
/// searched for its version (for the file log only; correctness rests on the txn version).
pub(crate) const HISTORY_DEPTH: usize = 100;

impl Pipeline {
    /// Commits staged appends (none: no commit), tolerating a commit recovery missed.
    pub(super) async fn commit_staged(
        &mut self,
        batch_id: i64,
        staged: StagedFiles,
        new_schema: Option<&Schema>,
        files: Vec<BatchFile>,
    ) -> Result<Option<i64>> {
        if staged.rows() == 0 {
            return Ok(None);
        }
        match self
            .sink
            .commit_batch(&self.cfg.pipeline_id, batch_id, staged, new_schema, &files)
            .await
        {
            Ok(v) => Ok(Some(v)),
            Err(e) => self.already_committed(batch_id, e).await,
        }
    }

    /// After a commit (append or MERGE) failed with `error`: when the table already holds
    /// the batch (only possible when the checkpoint missed a commit recovery should have
    /// confirmed), its rows are in the table, so the batch is recorded with the version
    /// found within the newest [`HISTORY_DEPTH`] commits; any other error stands.
    pub(super) async fn already_committed(
        &mut self,
        batch_id: i64,
        error: SinkError,
    ) -> Result<Option<i64>> {
        match error {
            SinkError::AlreadyCommitted { .. } => {
                warn!("batch was already in the table; recording it as committed");
                Ok(self
                    .sink
                    .find_batch_commit(&self.cfg.pipeline_id, batch_id, HISTORY_DEPTH)
                    .await?)
            }
            e => Err(e.into()),
        }
    }

    /// The batch's source files as its commit records them (for `inlet checkpoint rebuild`):
    /// each with its outcome, and its rows where counted.
    pub(super) fn manifest(
        &self,
        batch_id: i64,
        file_rows: &[(String, i64)],
    ) -> Result<Vec<BatchFile>> {
        let rows: HashMap<&str, i64> = file_rows.iter().map(|(p, n)| (p.as_str(), *n)).collect();
        Ok(self
            .checkpoint
            .batch_files(batch_id)?
            .into_iter()
            .map(|f| BatchFile {
                rows: rows.get(f.path.as_str()).copied(),
                state: match f.state {
                    FileState::Pending => FileState::Committed.as_str().to_string(),
                    other => other.as_str().to_string(),
                },
                path: f.path,
                etag: f.etag,
                size: f.size,
                modified_ms: f.last_modified_ms,
                error: f.error,
            })
            .collect())
    }

    /// Step 7: the batch becomes `committed` with its version and its files with their row
    /// counts, in one transaction, after the schema versions the batch made are stored (once:
    /// a replay after a crash between them finds them stored).
    pub(super) fn record(
        &mut self,
        batch_id: i64,
        version: Option<i64>,
        rows: u64,
        file_rows: &[(String, i64)],
        evolution: &Evolution,
    ) -> Result<()> {
        if version.is_some() || !self.streaming() {
            self.record_schema_changes(batch_id, &evolution.changes)?;
            if !evolution.changes.is_empty() {
                // Only snapshots carry the schema store to another machine.
                self.snapshot_soon();
                if let Some(latest) = self.checkpoint.latest_schema()? {
                    self.events.emit(Event::SchemaVersion {
                        version: latest.version,
                    });
                }
            }
        }
        self.checkpoint
            .mark_committed(batch_id, version, Some(rows as i64), file_rows)?;
        Ok(())
    }

    /// Counts the batch in the run's stats and tells the observers.
    pub(super) fn report_batch(
        &mut self,
        batch_id: i64,
        files: &[PlannedFile],
        rows: u64,
        version: Option<i64>,
        started: Instant,
        (failed_before, skipped_before): (u64, u64),
    ) {
        let bytes: u64 = files.iter().map(|f| f.size).sum();
        self.stats.batches += 1;
        self.stats.files += files.len() as u64;
        self.stats.rows += rows;
        self.stats.bytes += bytes;
        self.events.emit(Event::BatchCommitted(BatchCommitted {
            batch_id,
            files: files.len() as u64,
            failed: self.stats.failed_files - failed_before,
            skipped: self.stats.skipped_files - skipped_before,
            rows,
            bytes,
            seconds: started.elapsed().as_secs_f64(),
            landed_ms: files.iter().map(|f| f.modified_ms).collect(),
            delta_version: version,
        }));
        info!(rows, bytes, version = ?version, "batch committed");
    }

    /// `uc://` sinks: renews the vended credentials when half their life has passed, and
    /// reopens the table with them. Called before every batch attempt, so a long
    /// continuous run never writes with credentials about to expire.
    pub(crate) async fn renew_credentials(&mut self) -> Result<()> {
        let Some(catalog) = self.catalog.as_mut() else {
            return Ok(());
        };
        if let Some(options) = catalog.renew_if_due(&mut self.cfg).await? {
            self.sink = DeltaSink::open(&self.cfg.table_url, &options).await?;
        }
        Ok(())
    }

    /// `uc://` sinks, after a commit: registers a table inlet created, or sends the catalog
    /// the columns a schema change added.
    pub(super) async fn catalog_after_commit(&mut self) -> Result<()> {
        let Some(catalog) = self.catalog.as_mut() else {
            return Ok(());
        };
        if let Some(options) = catalog
            .after_commit(&self.sink.spark_fields()?, &mut self.cfg)
            .await?
        {
            self.sink = DeltaSink::open(&self.cfg.table_url, &options).await?;
        }
        Ok(())
    }
}
