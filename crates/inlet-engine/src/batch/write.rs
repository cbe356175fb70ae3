//! Step 5c–6, writing a batch: appends without SQL stream each file's rows into Parquet as
//! they come; SQL and MERGE collect the batch, run it, then append or MERGE it.

use std::sync::Arc;

use arrow::array::{Array, BooleanArray};
use arrow::datatypes::{Field, SchemaRef};
use arrow::record_batch::RecordBatch;
use inlet_delta::{BatchFile, MergeSpec, StagedFiles, TableWriter};
use tracing::{debug, info, warn};

use super::decoding::fit_to;
use super::evolve::Evolution;
use super::PlannedFile;
use crate::config::SinkMode;
use crate::error::{EngineError, Result};
use crate::faults::FaultPoint;
use crate::pipeline::Pipeline;

/// Where a batch's decoded rows go.
pub(super) enum BatchOutput {
    /// Appends without SQL: Parquet files under the table, written as rows come (the files
    /// of a writer closed when the schema widened are kept in `staged`).
    Stream {
        /// Boxed: a writer holds its open Parquet buffers' state.
        writer: Box<TableWriter>,
        staged: StagedFiles,
    },
    /// SQL and MERGE see the whole batch (bounded by `max_bytes_per_batch`) as `source`.
    Collect(Vec<(PlannedFile, Vec<RecordBatch>)>),
}

impl BatchOutput {
    /// A file's decoded rows.
    pub async fn write(&mut self, file: &PlannedFile, batches: Vec<RecordBatch>) -> Result<()> {
        match self {
            Self::Stream { writer, .. } => {
                let schema = writer.schema();
                for batch in batches {
                    writer.write(fit_to(batch, &schema)?).await?;
                }
            }
            Self::Collect(collected) => collected.push((file.clone(), batches)),
        }
        Ok(())
    }

    /// Data files written before the batch's output opened (while the table's schema was
    /// inferred), for its commit. Only appends without SQL write such files.
    pub fn add_staged(&mut self, files: StagedFiles) -> Result<()> {
        match self {
            Self::Stream { staged, .. } => {
                staged.extend(files);
                Ok(())
            }
            Self::Collect(_) => Err(EngineError::Internal(
                "a batch that collects its rows for SQL or MERGE was handed data files written while the schema was inferred".into(),
            )),
        }
    }
}

impl Pipeline {
    /// The output for a batch starting with `evolution`'s schema.
    pub(super) fn batch_output(&self, evolution: &Evolution) -> Result<BatchOutput> {
        Ok(if self.streaming() {
            BatchOutput::Stream {
                writer: Box::new(self.writer(evolution.new_schema())?),
                staged: StagedFiles::default(),
            }
        } else {
            BatchOutput::Collect(Vec::new())
        })
    }

    /// The schema grew to `wider` in flight: a streaming writer is closed (its files keep the
    /// narrower schema: Delta reads the missing columns as null) and one for `wider` takes over.
    pub(super) async fn widen_output(
        &mut self,
        out: &mut BatchOutput,
        wider: SchemaRef,
    ) -> Result<()> {
        if let BatchOutput::Stream { writer, staged } = out {
            let next = Box::new(self.writer(Some(wider))?);
            let done = std::mem::replace(writer, next);
            staged.extend(done.finish().await?);
        }
        Ok(())
    }

    /// Finishes the batch's data files and commits them with the batch's `txn` (appends),
    /// or runs the SQL and appends or MERGEs its output. `files` is the batch's manifest,
    /// which the commit records for `inlet checkpoint rebuild`. The rows written and the
    /// table version, `None` when there was nothing to commit. — crash point `after-write`
    pub(super) async fn write_out(
        &mut self,
        batch_id: i64,
        out: BatchOutput,
        evolution: &Evolution,
        files: Vec<BatchFile>,
    ) -> Result<(u64, Option<i64>)> {
        match out {
            BatchOutput::Stream { writer, mut staged } => {
                staged.extend(writer.finish().await?);
                let rows = staged.rows();
                self.faults.hit(FaultPoint::AfterWrite);
                let new_schema = evolution.new_schema();
                let version = self
                    .commit_staged(batch_id, staged, new_schema.as_deref(), files)
                    .await?;
                Ok((rows, version))
            }
            BatchOutput::Collect(collected) => {
                self.transform_and_write(batch_id, &evolution.schema(), collected, files)
                    .await
            }
        }
    }

    /// Whether batches stream straight to Parquet: appends with the default SQL.
    pub(super) fn streaming(&self) -> bool {
        self.cfg.sink.mode == SinkMode::Append && self.transform.is_identity()
    }

    /// A writer of data files: for the table's own schema, or for `widened`, the schema the
    /// batch's commit will give the table.
    fn writer(&self, widened: Option<SchemaRef>) -> Result<TableWriter> {
        let size = self.cfg.sink.target_file_size;
        Ok(match widened {
            None => self.sink.writer(size)?,
            Some(schema) => self.sink.writer_for_schema(schema, size)?,
        })
    }

    /// The non-streaming sink: the batch's rows (with `_metadata` when the SQL reads it)
    /// through the SQL, then appended (adding output columns the table lacks) or merged.
    async fn transform_and_write(
        &mut self,
        batch_id: i64,
        schema: &SchemaRef,
        collected: Vec<(PlannedFile, Vec<RecordBatch>)>,
        files: Vec<BatchFile>,
    ) -> Result<(u64, Option<i64>)> {
        debug!("files decoded");
        let uses_metadata = self.transform.uses_metadata();
        let mut input = Vec::new();
        // Which file each input batch came from: without SQL, output batch i is input batch i.
        let mut origins = Vec::new();
        for (file, batches) in collected {
            for batch in batches {
                let batch = fit_to(batch, schema)?;
                origins.push(file.path.clone());
                input.push(if uses_metadata {
                    inlet_transform::with_metadata(&batch, &file.path, file.size, file.modified_ms)?
                } else {
                    batch
                });
            }
        }
        let identity = self.transform.is_identity();
        let output = if identity || input.is_empty() {
            input
        } else {
            let input_schema = input[0].schema();
            self.transform.run(input_schema, input).await?
        };
        let output = if self.cfg.sink.mode == SinkMode::Merge {
            // As the table will store them: an empty partition value is null (and so a key
            // with it is a null key).
            let partition_by = self.sink.partition_columns();
            let output = output
                .into_iter()
                .map(|b| inlet_delta::empty_partition_values_to_null(b, &partition_by))
                .collect::<Result<Vec<_>, _>>()?;
            let origin = |i: usize| {
                origins
                    .get(i)
                    .filter(|_| identity)
                    .cloned()
                    .unwrap_or_else(|| format!("transform output of batch {batch_id}"))
            };
            self.refuse_null_keys(batch_id, output, origin).await?
        } else {
            output
        };
        let output: Vec<RecordBatch> = output.into_iter().filter(|b| b.num_rows() > 0).collect();
        let Some(out_schema) = output.first().map(RecordBatch::schema) else {
            self.faults.hit(FaultPoint::AfterWrite);
            return Ok((0, None));
        };
        match self.cfg.sink.mode {
            SinkMode::Append => {
                let table = self
                    .sink
                    .arrow_schema()?
                    .unwrap_or_else(|| out_schema.clone());
                let extra: Vec<Field> = out_schema
                    .fields()
                    .iter()
                    .map(|f| f.as_ref().clone())
                    .collect();
                let target = Arc::new(inlet_schema::with_columns(&table, &extra));
                let changed = target.fields().len() != table.fields().len();
                let mut writer = self.writer(changed.then(|| target.clone()))?;
                let writer_schema = writer.schema();
                for batch in output {
                    writer.write(fit_to(batch, &writer_schema)?).await?;
                }
                let staged = writer.finish().await?;
                let rows = staged.rows();
                self.faults.hit(FaultPoint::AfterWrite);
                let version = self
                    .commit_staged(batch_id, staged, changed.then_some(target.as_ref()), files)
                    .await?;
                Ok((rows, version))
            }
            SinkMode::Merge => self.merge(batch_id, out_schema, output, files).await,
        }
    }

    /// Merge mode: rows with a null in any key column become bad records (of the file they
    /// came from, or of the transform's output) instead of rows. A key with a null matches no
    /// row in SQL, so such rows could never be updated or deleted; one rule for every path
    /// (within a batch and across batches) is to refuse them, visibly.
    async fn refuse_null_keys(
        &mut self,
        batch_id: i64,
        output: Vec<RecordBatch>,
        origin: impl Fn(usize) -> String,
    ) -> Result<Vec<RecordBatch>> {
        let mut kept = Vec::with_capacity(output.len());
        let mut refused: Vec<(String, Vec<String>)> = Vec::new();
        for (i, batch) in output.into_iter().enumerate() {
            let mut null_key: Option<BooleanArray> = None;
            for key in &self.cfg.sink.keys {
                let Some(column) = batch.column_by_name(key) else {
                    continue; // the MERGE names the missing column
                };
                let nulls = arrow::compute::is_null(column)?;
                null_key = Some(match null_key {
                    None => nulls,
                    Some(acc) => arrow::compute::or(&acc, &nulls)?,
                });
            }
            let Some(null_key) = null_key.filter(|m| m.true_count() > 0) else {
                kept.push(batch);
                continue;
            };
            let bad = arrow::compute::filter_record_batch(&batch, &null_key)?;
            let mut writer = arrow::json::LineDelimitedWriter::new(Vec::new());
            writer.write(&bad)?;
            writer.finish()?;
            let text = String::from_utf8_lossy(&writer.into_inner()).into_owned();
            let label = origin(i);
            let rows: Vec<String> = text.lines().map(str::to_string).collect();
            match refused.iter_mut().find(|(l, _)| *l == label) {
                Some((_, all)) => all.extend(rows),
                None => refused.push((label, rows)),
            }
            kept.push(arrow::compute::filter_record_batch(
                &batch,
                &arrow::compute::not(&null_key)?,
            )?);
        }
        let error = format!(
            "a key column ({}) is null: a row without its whole key cannot be merged",
            self.cfg.sink.keys.join(", ")
        );
        for (label, rows) in refused {
            warn!(file = %label, rows = rows.len(), "rows with a null key set aside as bad records");
            self.bad_records
                .rows_refused(batch_id, &label, &rows, &error)
                .await?;
            self.stats.note_bad_records(&label, rows.len() as u64);
        }
        Ok(kept)
    }

    /// MERGE: the latest row per key; rows older than a key's tombstone dropped; the
    /// batch's deletes recorded as tombstones; then one MERGE commit with the txn.
    async fn merge(
        &mut self,
        batch_id: i64,
        schema: SchemaRef,
        output: Vec<RecordBatch>,
        files: Vec<BatchFile>,
    ) -> Result<(u64, Option<i64>)> {
        // Checked at start only when the columns were known then (see `preflight::check_sql`).
        crate::preflight::check_merge_columns(&self.cfg, &schema, "this batch's rows do not have")?;
        let decision = self
            .cfg
            .sink
            .merge_strategy_for(crate::config::TableFacts::of(&self.sink));
        if decision.upgrade {
            self.enable_deletion_vectors().await?;
        }
        let spec = MergeSpec {
            keys: self.cfg.sink.keys.clone(),
            sequence_by: self.cfg.sink.sequence_by.clone().unwrap_or_default(),
            delete_when: self.cfg.sink.delete_when.clone(),
            strategy: decision.strategy,
            target_file_size: self.cfg.sink.target_file_size,
        };
        let started = std::time::Instant::now();
        let latest = inlet_transform::latest_per_key(
            schema,
            output,
            &spec.keys,
            &spec.sequence_by,
            spec.delete_when.as_deref(),
        )
        .await?;
        debug!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            "latest row per key"
        );
        let started = std::time::Instant::now();
        let mut kept = Vec::new();
        let mut deletes = Vec::new();
        let mut stale = 0u64;
        for (batch, flags) in latest.batches.iter().zip(&latest.deletes) {
            let keys = inlet_transform::row_keys(batch, &spec.keys)?;
            let seqs = inlet_transform::sortable_sequence(batch, &spec.sequence_by)?;
            let tombs = self.checkpoint.tombstones(&keys)?;
            let mask: BooleanArray = tombs
                .iter()
                .zip(&seqs)
                .map(|(tomb, seq)| {
                    Some(match (tomb, seq) {
                        (None, _) => true,
                        // Not older than the delete (equal: the delete itself, replayed).
                        (Some(t), Some(s)) => s >= t,
                        (Some(_), None) => false,
                    })
                })
                .collect();
            for i in 0..batch.num_rows() {
                if !mask.value(i) {
                    stale += 1;
                } else if flags.is_valid(i) && flags.value(i) {
                    if let Some(seq) = &seqs[i] {
                        deletes.push((keys[i].clone(), seq.clone()));
                    }
                }
            }
            let filtered = arrow::compute::filter_record_batch(batch, &mask)?;
            if filtered.num_rows() > 0 {
                kept.push(filtered);
            }
        }
        let rows: u64 = kept.iter().map(|b| b.num_rows() as u64).sum();
        let retain_ms = i64::try_from(
            self.cfg
                .sink
                .tombstone_retention_hours
                .saturating_mul(3_600_000),
        )
        .unwrap_or(i64::MAX);
        // An `s3://` checkpoint keeps them in the batch's object too, for a fresh restore.
        self.put_tombstones_remote(batch_id, &deletes).await?;
        self.checkpoint
            .put_tombstones(batch_id, &deletes, retain_ms)?;
        self.faults.hit(FaultPoint::AfterWrite);
        if stale > 0 {
            info!(stale, "rows older than their key's delete were dropped");
        }
        if kept.is_empty() {
            return Ok((0, None));
        }
        debug!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            "tombstones checked"
        );
        let started = std::time::Instant::now();
        self.sink.set_step_hook(self.faults.maintenance_hook());
        let merged = self
            .sink
            .merge_batch(&self.cfg.pipeline_id, batch_id, kept, &spec, &files)
            .await;
        debug!(elapsed_ms = started.elapsed().as_millis() as u64, "MERGE");
        match merged {
            Ok(m) => {
                info!(
                    inserted = m.inserted,
                    updated = m.updated,
                    deleted = m.deleted,
                    files_scanned = m.files_scanned,
                    files_skipped = m.files_skipped,
                    "merged"
                );
                self.stats.inserted += m.inserted;
                self.stats.updated += m.updated;
                self.stats.deleted += m.deleted;
                Ok((rows, Some(m.version)))
            }
            Err(e) => Ok((rows, self.already_committed(batch_id, e).await?)),
        }
    }
}

impl Pipeline {
    /// Upgrades the table to deletion vectors (`sink.merge_strategy = "deletion_vectors"`
    /// asked for it explicitly), warning that readers without them can no longer read it.
    async fn enable_deletion_vectors(&mut self) -> Result<()> {
        warn!(
            table = %self.cfg.table_url,
            "sink.merge_strategy = \"deletion_vectors\": enabling deletion vectors on the table (protocol reader 3 / writer 7, feature deletionVectors). Readers without deletion-vector support can no longer read it: Delta Lake for Spark before 2.3, Trino and Presto/Athena versions before their deletion-vector support, and tools built on delta-rs or Delta Standalone releases that predate it"
        );
        let properties = std::collections::BTreeMap::from([(
            "delta.enableDeletionVectors".to_string(),
            "true".to_string(),
        )]);
        if let Some(version) = self.sink.set_properties(&properties).await? {
            info!(version, "deletion vectors enabled on the table");
        }
        Ok(())
    }
}
