//! MERGE of a batch into the table by key and sequence, in one commit that also carries the
//! pipeline's `txn` action, so merges are exactly-once like appends.

use std::sync::Arc;

use arrow::datatypes::{Field, Schema};
use arrow::record_batch::RecordBatch;
use deltalake::datafusion::common::tree_node::{Transformed, TreeNode};
use deltalake::datafusion::common::Column;
use deltalake::datafusion::logical_expr::Expr;
use deltalake::datafusion::prelude::{lit, SessionContext};
use deltalake::delta_datafusion::DeltaSessionContext;
use deltalake::DeltaTableError;

use crate::dv::Removal;
use crate::sink::{version_i64, DeltaSink};
use crate::SinkError;

/// How a batch is merged: rows match on `keys`; a row replaces the table's only when its
/// `sequence_by` is not older; rows where `delete_when` holds delete instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergeSpec {
    pub keys: Vec<String>,
    pub sequence_by: String,
    /// A SQL predicate over the batch's columns, e.g. `_op = 'REMOVE'`.
    pub delete_when: Option<String>,
    /// How replaced rows leave the table.
    pub strategy: MergeStrategy,
    /// Size of the data files a merge-on-read MERGE writes, bytes.
    pub target_file_size: u64,
}

/// How a MERGE removes the rows it replaces or deletes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MergeStrategy {
    /// Marked in deletion vectors beside their files; only new row versions are written
    /// (merge-on-read). Used when the table has deletion vectors enabled, else copy-on-write.
    #[default]
    DeletionVectors,
    /// Every file holding a matched row is rewritten without it, and the new row versions
    /// written beside (by inlet's key scan; delta-rs's MERGE for tables with a change data
    /// feed, mapped column names, or columns the batch lacks).
    CopyOnWrite,
}

/// Attempts of a scanned MERGE before its conflict goes to the caller: each attempt after
/// a lost race re-reads the table and plans again.
const SCANNED_ATTEMPTS: usize = 3;

/// What one MERGE did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MergeOutcome {
    pub version: i64,
    pub inserted: u64,
    pub updated: u64,
    pub deleted: u64,
    pub files_scanned: u64,
    pub files_skipped: u64,
}

const SOURCE: &str = "source";
const TARGET: &str = "target";

fn qualified(relation: &str, name: &str) -> Expr {
    Expr::Column(Column::new(Some(relation), name))
}

impl DeltaSink {
    /// Merges `batches` (at most one row per key: the caller keeps the latest) as batch
    /// `batch_id` of pipeline `app_id`. Columns the table lacks are committed just before, on
    /// their own with the protocol they need ([`DeltaSink::add_columns`]); columns the table
    /// has are cast to its types with checked casts, or the MERGE is refused
    /// ([`SinkError::MergeTypes`], not retried). Refuses with [`SinkError::AlreadyCommitted`]
    /// as `commit_batch` does.
    pub async fn merge_batch(
        &mut self,
        app_id: &str,
        batch_id: i64,
        batches: Vec<RecordBatch>,
        spec: &MergeSpec,
        files: &[crate::BatchFile],
    ) -> Result<MergeOutcome, SinkError> {
        self.refuse_committed(app_id, batch_id).await?;
        let url = self.url().to_string();
        let merge_err = |source| SinkError::Commit {
            url: url.clone(),
            source,
        };
        let source_schema = first_schema(&batches).map_err(merge_err)?;
        // New columns are committed first, with the protocol they need (delta-rs's MERGE
        // commit cannot carry a protocol action); then the MERGE sees them in the table.
        if let Some(version) = self.add_columns(&source_schema).await? {
            tracing::info!(version, "added the batch's new columns before its MERGE");
        }
        let target_schema = self
            .arrow_schema()?
            .unwrap_or_else(|| Arc::new(Schema::empty()));
        let batches =
            cast_to_table(batches, &target_schema).map_err(|c| SinkError::MergeTypes {
                url: self.url().to_string(),
                column: c.column,
                table_type: c.table_type,
                batch_type: c.batch_type,
            })?;
        let partition_by = self.partition_columns();
        let batches = batches
            .into_iter()
            .map(|b| crate::writer::empty_partition_values_to_null(b, &partition_by))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| merge_err(e.into()))?;
        let mut attempt = 1;
        while let Some(removal) = self.scanned_removal(spec.strategy, &batches[0].schema()) {
            let source = arrow::compute::concat_batches(&batches[0].schema(), &batches)
                .map_err(|e| merge_err(e.into()))?;
            match self
                .merge_scanned(app_id, batch_id, source, spec, files, removal)
                .await
            {
                // Planned again against the new table, which may no longer allow it.
                Err(e) if attempt < SCANNED_ATTEMPTS && lost_race(&e) => {
                    tracing::info!(attempt, error = %e, "the table changed during the MERGE; planning it again");
                    attempt += 1;
                    self.refuse_committed(app_id, batch_id).await?;
                }
                other => return other,
            }
        }
        self.merge_with_delta_rs(app_id, batch_id, batches, spec, files)
            .await
    }

    /// The MERGE as delta-rs plans it (a join of the batch with every candidate file, whose
    /// files are rewritten whole): for tables the scanned MERGE does not handle, those with
    /// a change data feed, mapped column names, or columns the batch lacks. `batches` are
    /// already cast to the table's types.
    pub(crate) async fn merge_with_delta_rs(
        &mut self,
        app_id: &str,
        batch_id: i64,
        batches: Vec<RecordBatch>,
        spec: &MergeSpec,
        files: &[crate::BatchFile],
    ) -> Result<MergeOutcome, SinkError> {
        let url = self.url().to_string();
        let merge_err = |source| SinkError::Commit {
            url: url.clone(),
            source,
        };
        let source_schema = first_schema(&batches).map_err(merge_err)?;
        // One commit attempt, at the next version (`one_attempt.rs`): see below.
        let loaded = self.loaded()?.clone();
        let mut table = deltalake::DeltaTable::new(crate::one_attempt::OneAttempt::wrap(
            loaded.log_store(),
            loaded.version().map_or(0, |v| v + 1),
        ));
        table.state = loaded.state.clone();

        // The files the MERGE rewrites are encoded as appends are, judged from the batch's
        // rows: without this, delta-rs starts a dictionary for every column of every row group
        // and hashes nearly distinct ones (W4's `seq`, `note`) until each outgrows it.
        let writer_properties = crate::encoding::writer_properties(&batches);
        let ctx = SessionContext::new();
        let source = ctx
            .read_batches(batches)
            .map_err(|e| merge_err(DeltaTableError::from(e)))?;
        let on = spec
            .keys
            .iter()
            .map(|k| qualified(TARGET, k).eq(qualified(SOURCE, k)))
            .reduce(Expr::and)
            .ok_or_else(|| merge_err(DeltaTableError::Generic("sink.keys is empty".into())))?;
        let delete = match &spec.delete_when {
            Some(sql) => {
                let expr = source
                    .parse_sql_expr(sql)
                    .map_err(|e| merge_err(DeltaTableError::from(e)))?;
                let expr = expr
                    .transform(|e| {
                        Ok(match e {
                            Expr::Column(c) => Transformed::yes(qualified(SOURCE, &c.name)),
                            other => Transformed::no(other),
                        })
                    })
                    .map_err(|e| merge_err(DeltaTableError::from(e)))?
                    .data;
                deltalake::datafusion::functions::expr_fn::coalesce(vec![expr, lit(false)])
            }
            None => lit(false),
        };
        let seq = &spec.sequence_by;
        let not_older = qualified(TARGET, seq)
            .is_null()
            .or(qualified(SOURCE, seq).gt_eq(qualified(TARGET, seq)));
        let columns: Vec<String> = source_schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();

        // One attempt: delta-rs would commit this MERGE past a concurrent compaction that
        // removed the same files (its conflict checker ignores removes with `dataChange =
        // false`), re-adding their rows beside the compacted copy. A lost race fails the
        // batch, and its retry plans the MERGE anew against the table as it is then.
        let properties =
            crate::sink::commit_properties(app_id, batch_id, files).with_max_retries(0);
        let mut builder = table
            .merge(source, on)
            .with_source_alias(SOURCE)
            .with_target_alias(TARGET)
            .with_session_state(Arc::new(merge_session().map_err(merge_err)?.state()))
            .with_commit_properties(properties)
            .with_writer_properties(writer_properties);
        if spec.delete_when.is_some() {
            let pred = delete.clone().and(not_older.clone());
            builder = builder
                .when_matched_delete(|d| d.predicate(pred))
                .map_err(merge_err)?;
        }
        let update_pred = (!delete.clone()).and(not_older);
        let cols = columns.clone();
        builder = builder
            .when_matched_update(move |mut u| {
                u = u.predicate(update_pred);
                for c in &cols {
                    u = u.update(Column::new_unqualified(c), qualified(SOURCE, c));
                }
                u
            })
            .map_err(merge_err)?;
        let insert_pred = !delete;
        builder = builder
            .when_not_matched_insert(move |mut i| {
                i = i.predicate(insert_pred);
                for c in &columns {
                    i = i.set(Column::new_unqualified(c), qualified(SOURCE, c));
                }
                i
            })
            .map_err(merge_err)?;
        let (merged, metrics) = builder.await.map_err(merge_err)?;
        let version = merged.version().map(version_i64).unwrap_or_default();
        // Its state, not its handle: the handle's log store allows no more commits.
        if let Some(state) = merged.state {
            self.set_state(state);
        }
        Ok(MergeOutcome {
            version,
            inserted: metrics.num_target_rows_inserted as u64,
            updated: metrics.num_target_rows_updated as u64,
            deleted: metrics.num_target_rows_deleted as u64,
            files_scanned: metrics.num_target_files_scanned as u64,
            files_skipped: metrics.num_target_files_skipped_during_scan as u64,
        })
    }
}

impl DeltaSink {
    /// How inlet's own scanned MERGE takes out replaced rows from the loaded table, or
    /// `None` when delta-rs's MERGE must run: the table has a change data feed (no
    /// `_change_data` files are written), maps column names (the scan reads columns by
    /// name), or has columns the batch lacks (their values must be carried into the new
    /// row versions). Deletion vectors when `strategy` asks for them and the table has
    /// them; else the touched files are rewritten.
    fn scanned_removal(&self, strategy: MergeStrategy, source: &Schema) -> Option<Removal> {
        if self.property_is_true("delta.enableChangeDataFeed") {
            tracing::info!("the table has a change data feed: delta-rs's MERGE writes it");
            return None;
        }
        if self.column_mapped() {
            tracing::info!("the table maps column names: delta-rs's MERGE rewrites its files");
            return None;
        }
        let missing: Vec<String> = self
            .arrow_schema()
            .ok()
            .flatten()
            .map(|t| {
                t.fields()
                    .iter()
                    .filter(|f| source.field_with_name(f.name()).is_err())
                    .map(|f| f.name().clone())
                    .collect()
            })
            .unwrap_or_default();
        if !missing.is_empty() {
            tracing::info!(
                columns = missing.join(", "),
                "the batch lacks columns the table has: delta-rs's MERGE rewrites the files, keeping their values"
            );
            return None;
        }
        if strategy == MergeStrategy::DeletionVectors && self.deletion_vectors_enabled() {
            Some(Removal::Vectors)
        } else {
            Some(Removal::Rewrite)
        }
    }
}

/// The schema of a MERGE's batches (the first one's: all share it).
fn first_schema(batches: &[RecordBatch]) -> Result<Arc<Schema>, DeltaTableError> {
    batches
        .first()
        .map(RecordBatch::schema)
        .ok_or_else(|| DeltaTableError::Generic("a MERGE needs at least one row".into()))
}

/// Whether a MERGE commit failed because another commit landed since its snapshot.
fn lost_race(e: &SinkError) -> bool {
    matches!(e, SinkError::Commit { source, .. } if crate::dv::lost_race(source))
}

/// `batches` with each column the table also has in the table's type: another writer may
/// have added a column this batch has as well, with another type. Casts are checked: a value
/// that does not convert refuses the whole MERGE rather than becoming null.
fn cast_to_table(
    batches: Vec<RecordBatch>,
    table: &Schema,
) -> Result<Vec<RecordBatch>, crate::TypeConflict> {
    let Some(first) = batches.first() else {
        return Ok(batches);
    };
    let source = first.schema();
    let target: Vec<Field> = source
        .fields()
        .iter()
        .map(
            |f| match table.fields().iter().find(|t| t.name() == f.name()) {
                Some(t) if t.data_type() != f.data_type() => {
                    f.as_ref().clone().with_data_type(t.data_type().clone())
                }
                _ => f.as_ref().clone(),
            },
        )
        .collect();
    let target = Arc::new(Schema::new(target));
    if target == source {
        return Ok(batches);
    }
    let options = arrow::compute::CastOptions {
        safe: false,
        ..Default::default()
    };
    batches
        .into_iter()
        .map(|b| {
            let columns = b
                .columns()
                .iter()
                .zip(target.fields())
                .map(|(c, f)| {
                    if c.data_type() == f.data_type() {
                        return Ok(c.clone());
                    }
                    arrow::compute::cast_with_options(c, f.data_type(), &options).map_err(|_| {
                        crate::TypeConflict {
                            column: f.name().clone(),
                            table_type: f.data_type().to_string(),
                            batch_type: c.data_type().to_string(),
                        }
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            RecordBatch::try_new(target.clone(), columns).map_err(|e| crate::TypeConflict {
                column: String::new(),
                table_type: target.to_string(),
                batch_type: e.to_string(),
            })
        })
        .collect()
}

/// The MERGE's DataFusion session: delta-rs's tuned defaults, with 64k-row batches, half
/// as many partitions as cores (at least one), and strings read as plain strings rather than
/// views. Measured on W4 (benches/README.md): 64k rows per batch took the MERGE from ~2.2 s
/// to ~1.9 s; the join repartitions both sides for every partition while the rewrite is
/// written by one stream, so at 2 cores one partition was as fast as two and used a quarter
/// less memory; string views keep whole decompressed Parquet pages alive while any row of
/// them is in flight (125 MB of W4's heap at its peak, by massif), so plain strings took the
/// peak from ~510 MB to ~350 MB for ~0.2 s more copying.
fn merge_session() -> Result<SessionContext, DeltaTableError> {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let overrides = std::collections::HashMap::from([
        (
            "datafusion.execution.batch_size".to_string(),
            MERGE_BATCH_ROWS.to_string(),
        ),
        (
            "datafusion.execution.target_partitions".to_string(),
            (cores / 2).max(1).to_string(),
        ),
        (
            "datafusion.execution.parquet.schema_force_view_types".to_string(),
            "false".to_string(),
        ),
    ]);
    Ok(DeltaSessionContext::new_with_session_overrides(&overrides)?.into_inner())
}

/// Rows per DataFusion batch in a MERGE.
const MERGE_BATCH_ROWS: usize = 65_536;
