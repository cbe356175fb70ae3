//! A table's first batch written while its schema is still inferred: a sampled file whose
//! every line fits the first file's inference as written is decoded once, in the sample.
//!
//! Such a file cannot change the inferred schema (what fits an inference as written adds
//! nothing to it, nor to any wider one), so the schema stays the one sampling every line
//! gives. Its rows go to Parquet at once, with the first file's schema; they join the
//! batch's commit when the table is created with that schema or one that only adds
//! columns, and are deleted and decoded again with the batch otherwise.

use std::sync::Arc;

use arrow::datatypes::{Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use inlet_delta::{StagedFiles, TableWriter};
use inlet_format::{Format, SchemaSample};
use tracing::{debug, info, warn};

use crate::error::Result;
use crate::pipeline::Pipeline;

/// What sampled files are decoded and written with.
pub(super) struct EarlyPlan {
    /// The first file's exact inference (`Null` where only nulls were seen) and the rescued
    /// data column: a line fits it as written exactly when it cannot change the schema.
    pub decode: SchemaRef,
    /// The writer's schema: the first file's inferred schema as the table would have it.
    pub write: SchemaRef,
    /// The rescued data column, null in every row decoded here.
    pub rescued: Option<String>,
}

/// The files written so far, and whether they still fit where the inference is going.
pub(super) struct EarlyWrites {
    /// What the files are decoded and written with, shared with the sample's tasks.
    pub plan: Arc<EarlyPlan>,
    /// `plan.write` in the inference's own types, compared with the inference as it grows.
    planned: Schema,
    writer: Box<TableWriter>,
    /// Files written, in the sample's order, with their rows.
    files: Vec<(String, u64)>,
    /// False once the inference grew past what the written files can be committed under:
    /// later files are decoded with the batch, and the written ones deleted.
    active: bool,
}

/// Files the first batch wrote while inferring its schema, for its commit.
pub(super) struct EarlyFiles {
    pub staged: StagedFiles,
    /// The source files they hold, with their rows, in the sample's order.
    pub rows: Vec<(String, u64)>,
}

/// Whether a first batch writes while inferring its schema, and what it wrote so far.
pub(super) enum Early {
    /// Not this batch (see [`Pipeline::writes_while_inferring`]), or not inferring.
    Off,
    /// On; the first file is not sampled yet.
    Unplanned,
    Planned(EarlyWrites),
}

impl Early {
    /// The plan later files are decoded with, once the first file was sampled.
    pub fn plan(&self) -> Option<Arc<EarlyPlan>> {
        match self {
            Self::Planned(w) => Some(w.plan.clone()),
            _ => None,
        }
    }

    pub fn writes(&mut self) -> Option<&mut EarlyWrites> {
        match self {
            Self::Planned(w) => Some(w),
            _ => None,
        }
    }
}

impl EarlyWrites {
    /// Writes a sampled file's rows (made with `plan`), unless writing stopped: false then,
    /// and the file is decoded with the batch.
    pub async fn write(
        &mut self,
        path: &str,
        batches: Vec<RecordBatch>,
        rows: u64,
    ) -> Result<bool> {
        if !self.active {
            return Ok(false);
        }
        for batch in batches {
            self.writer.write(batch).await?;
        }
        self.files.push((path.to_string(), rows));
        Ok(true)
    }

    /// After a file was sampled: stops writing once the schema inferred so far (with the
    /// rescued data column) no longer keeps the written files as they are.
    pub fn check(&mut self, sample: &SchemaSample) {
        if !self.active {
            return;
        }
        let inferred =
            inlet_schema::with_rescued_column(&sample.schema(), self.plan.rescued.as_deref());
        if !only_adds_columns(&self.planned, &inferred) {
            debug!("the schema's inference changed a written column's type: files are decoded with the batch");
            self.active = false;
        }
    }
}

impl Pipeline {
    /// Whether the first batch's sampled files may be written while the schema is inferred:
    /// appends without SQL of JSON lines into an unpartitioned table, with types inferred,
    /// no hints, and no table property that changes how data files are written.
    pub(super) fn writes_while_inferring(&self) -> bool {
        let source = &self.cfg.source;
        self.streaming()
            && source.format == Format::Json
            && !source.multiline
            && source.partition_columns.is_empty()
            && self.cfg.sink.partition_by.is_empty()
            && self.cfg.hints.is_empty()
            && self.cfg.schema.infer_column_types
            && self
                .cfg
                .sink
                .create_properties()
                .keys()
                .all(|k| writes_as_usual(k))
    }

    /// After the first file was sampled: what the others are decoded and written with, when
    /// its inference has columns and a writer opens for them.
    pub(super) fn plan_early(&self, sample: &SchemaSample) -> Option<EarlyWrites> {
        let rescued = self.cfg.rescued_column();
        let exact = sample.exact_schema().filter(|s| !s.fields().is_empty())?;
        let decode = Arc::new(inlet_schema::with_rescued_column(&exact, rescued));
        let planned = inlet_schema::with_rescued_column(&sample.schema(), rescued);
        let size = self.cfg.sink.target_file_size;
        let opened = match self.sink.as_created(&planned) {
            Ok(write) => self.sink.writer_for_schema(write, size),
            Err(e) => Err(e),
        };
        let writer = match opened {
            Ok(w) => w,
            Err(e) => {
                debug!(error = %e, "no files written while the schema is inferred");
                return None;
            }
        };
        Some(EarlyWrites {
            plan: Arc::new(EarlyPlan {
                decode,
                write: writer.schema(),
                rescued: rescued.map(str::to_string),
            }),
            planned,
            writer: Box::new(writer),
            files: Vec::new(),
            active: true,
        })
    }

    /// Once the table exists: the files written while its schema was inferred, when the
    /// table keeps them as written (its schema equal to theirs or adding nullable columns,
    /// no partitions, no property that changes data files: another writer may have made
    /// it). Otherwise they are deleted, and their source files decoded with the batch.
    pub(super) async fn settle_early(&mut self, early: EarlyWrites) -> Result<Option<EarlyFiles>> {
        let table = self.sink.arrow_schema()?;
        let written = early.writer.schema();
        let keep = early.active
            && !early.files.is_empty()
            && table.is_some_and(|t| only_adds_columns(&written, &t))
            && self.sink.partition_columns().is_empty()
            && self.sink.properties().keys().all(|k| writes_as_usual(k));
        if !keep {
            self.abandon_early(early).await;
            return Ok(None);
        }
        debug!(
            files = early.files.len(),
            "files written while the schema was inferred join the batch"
        );
        Ok(Some(EarlyFiles {
            staged: early.writer.finish().await?,
            rows: early.files,
        }))
    }

    /// Deletes the files written while the schema was inferred: the table does not keep
    /// them, or the batch failed before it could commit them. What cannot be deleted is
    /// never read (no commit holds it), and vacuum removes it.
    pub(super) async fn abandon_early(&self, early: EarlyWrites) {
        let files = early.files.len();
        match early.writer.finish().await {
            Ok(staged) if staged.files().is_empty() => {}
            Ok(staged) => {
                let deleted = self.sink.discard(&staged).await;
                info!(files, deleted, "data files written while the schema was inferred were deleted; their files are decoded with the batch");
            }
            Err(e) => {
                warn!(error = %e, "data files written while the schema was inferred could not be finished; vacuum removes what they left");
            }
        }
    }
}

/// Whether table property `key` leaves data files as they are written without it.
fn writes_as_usual(key: &str) -> bool {
    !key.starts_with("delta.") || LOG_ONLY_PROPERTIES.contains(&key)
}

/// Table properties that change nothing in how data files are written.
const LOG_ONLY_PROPERTIES: &[&str] = &[
    "delta.appendOnly",
    "delta.checkpointInterval",
    "delta.checkpoint.writeStatsAsJson",
    "delta.checkpoint.writeStatsAsStruct",
    "delta.deletedFileRetentionDuration",
    "delta.enableChangeDataFeed",
    "delta.enableDeletionVectors",
    "delta.enableExpiredLogCleanup",
    "delta.logRetentionDuration",
    "delta.targetFileSize",
];

/// Whether data files written with `written` can be committed under `schema` as they are:
/// every written column is in it by name with the same type, and its other columns are
/// nullable (read as null from these files).
fn only_adds_columns(written: &Schema, schema: &Schema) -> bool {
    written.fields().iter().all(|w| {
        schema
            .field_with_name(w.name())
            .is_ok_and(|f| f.data_type() == w.data_type())
    }) && schema
        .fields()
        .iter()
        .all(|f| f.is_nullable() || written.field_with_name(f.name()).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::{DataType, Field};

    #[test]
    fn written_files_fit_a_schema_that_only_adds_nullable_columns() {
        let s = |fields: &[(&str, DataType, bool)]| {
            Schema::new(
                fields
                    .iter()
                    .map(|(n, t, null)| Field::new(*n, t.clone(), *null))
                    .collect::<Vec<_>>(),
            )
        };
        let written = s(&[("a", DataType::Int64, true), ("b", DataType::Utf8, true)]);
        assert!(only_adds_columns(&written, &written));
        let wider = s(&[
            ("c", DataType::Boolean, true),
            ("b", DataType::Utf8, true),
            ("a", DataType::Int64, true),
        ]);
        assert!(
            only_adds_columns(&written, &wider),
            "order aside, one column more"
        );
        let widened = s(&[("a", DataType::Float64, true), ("b", DataType::Utf8, true)]);
        assert!(!only_adds_columns(&written, &widened), "a type changed");
        let dropped = s(&[("a", DataType::Int64, true)]);
        assert!(
            !only_adds_columns(&written, &dropped),
            "a written column gone"
        );
        let required = s(&[
            ("a", DataType::Int64, true),
            ("b", DataType::Utf8, true),
            ("c", DataType::Boolean, false),
        ]);
        assert!(
            !only_adds_columns(&written, &required),
            "a new column no file holds may not be null"
        );
    }
}
