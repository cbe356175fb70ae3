//! One batch, exactly once: plan, read, evolve the schema, write, commit, record. Each step
//! has its own file; the function here runs them in the protocol's order, crash points named.

mod commit;
mod decoding;
mod early;
mod evolve;
mod read;
mod write;

use std::time::Instant;

use inlet_checkpoint::NewFile;
use inlet_discover::FileEvent;
use tracing::{info_span, Instrument};

use crate::error::Result;
use crate::events::Event;
use crate::faults::FaultPoint;
use crate::pipeline::Pipeline;

pub(crate) use commit::HISTORY_DEPTH;
pub(crate) use evolve::Known;

/// A file planned into a batch.
#[derive(Debug, Clone)]
pub struct PlannedFile {
    pub path: String,
    /// As found (unquoted); the version read when `allow_overwrites` pins it.
    pub etag: String,
    pub size: u64,
    pub modified_ms: i64,
}

impl Pipeline {
    /// Step 4, then 5–7, for a new batch: plan it durably (its id and files, in one
    /// transaction that survives power loss), then write and commit it.
    /// — crash point `after-plan`
    pub(crate) async fn run_batch(&mut self, batch_id: i64, events: Vec<FileEvent>) -> Result<()> {
        let now = chrono::Utc::now().timestamp_millis();
        let new_files: Vec<NewFile> = events
            .iter()
            .map(|e| NewFile {
                path: e.path.clone(),
                etag: e.etag.clone(),
                size: e.size,
                last_modified_ms: e.last_modified_ms,
                discovered_at_ms: now,
            })
            .collect();
        // An `s3://` checkpoint: the plan object first, created only if absent (the fence
        // against a former lease holder planning the same id).
        self.put_plan(batch_id, &new_files).await?;
        self.checkpoint.plan_batch(batch_id, &new_files)?;
        self.events.emit(Event::BatchPlanned {
            batch_id,
            files: new_files.len() as u64,
            bytes: new_files.iter().map(|f| f.size).sum(),
        });
        self.faults.hit(FaultPoint::AfterPlan);
        let files = events
            .into_iter()
            .map(|e| PlannedFile {
                path: e.path,
                etag: e.etag,
                size: e.size,
                modified_ms: e.last_modified_ms,
            })
            .collect();
        self.write_and_commit(batch_id, files).await
    }

    /// Steps 5–7 for a planned batch, new or replayed (recovery calls it with the batch's
    /// pending files): read and decode its files into data files under the table, commit
    /// them with the batch's `txn` action, record the commit in the checkpoint. Nothing is
    /// visible before the commit, and the commit is refused once the table holds the batch,
    /// so a crash at any step, and the replay that follows, land the batch's rows once.
    pub(crate) async fn write_and_commit(
        &mut self,
        batch_id: i64,
        files: Vec<PlannedFile>,
    ) -> Result<()> {
        self.renew_credentials().await?;
        self.load_export_manifests(&files).await?;
        let span = info_span!("batch", pipeline = %self.cfg.pipeline_id, batch = batch_id, files = files.len());
        async {
            let started = Instant::now();
            let before = (self.stats.failed_files, self.stats.skipped_files);
            // 5a. The schema to decode with: the table's, or, for the first batch, inferred
            // from its files and used to create the table.
            let mut sampled = evolve::Sampled::default();
            let table_schema = match self.ensure_table(batch_id, &files, &mut sampled).await? {
                Known::Schema(schema) => schema,
                Known::NoColumns => return self.record_columnless(batch_id, &files, started).await,
            };
            let written_early = sampled.early.as_ref().map_or(0, |e| e.rows.len() as u64);
            // 5b. Columns the config declares join first; new ones join in flight (evolve.rs).
            let mut evolution = self.evolution(&table_schema);
            // 5c. Read and decode, writing as files come: appends stream into Parquet, SQL
            // and MERGE collect the batch. — crash point `after-write` (write.rs)
            let mut out = self.batch_output(&evolution)?;
            let file_rows = self
                .read_batch(batch_id, &files, &mut evolution, &mut out, sampled)
                .await?;
            // 6. One Delta commit: the data files (or the MERGE), any schema change with the
            // protocol it needs, and the txn {pipeline, batch}. — crash point `after-commit`
            let manifest = self.manifest(batch_id, &file_rows)?;
            // An `s3://` checkpoint's lease must still be ours (a paused process finds out
            // here; one paused past this check is refused by the table's txn).
            self.check_lease()?;
            let (rows, version) = self
                .write_out(batch_id, out, &evolution, manifest.clone())
                .await?;
            self.faults.hit(FaultPoint::AfterCommit);
            // 7. Record the commit in the checkpoint. — crash point `after-record`
            if version.is_none() {
                // No commit holds this batch: its outcome object does, for a restore.
                self.put_done(batch_id, manifest).await?;
            }
            self.record(batch_id, version, rows, &file_rows, &evolution)?;
            self.stats.files_written_while_inferring += written_early;
            self.faults.hit(FaultPoint::AfterRecord);
            if version.is_some() {
                self.catalog_after_commit().await?;
            }
            self.report_batch(batch_id, &files, rows, version, started, before);
            Ok(())
        }
        .instrument(span)
        .await
    }
}
