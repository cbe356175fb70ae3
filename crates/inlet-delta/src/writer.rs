//! Streaming Parquet writes under the table: record batches in, staged data files out, with
//! memory bounded by the open files' buffers and encoding spread over lanes on other cores.

use std::collections::HashMap;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use deltalake::kernel::Add;
use deltalake::parquet::file::properties::WriterProperties;
use deltalake::writer::{DeltaWriter, RecordBatchWriter};
use deltalake::DeltaTable;
use url::Url;

use crate::checks::{CheckError, TableChecks};
use crate::{encoding, SinkError};

/// Data files written for one batch and not yet committed.
#[derive(Debug, Default)]
pub struct StagedFiles {
    adds: Vec<Add>,
    rows: u64,
}

/// One written data file, as the summary reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataFile {
    pub path: String,
    pub size: i64,
}

impl StagedFiles {
    /// Rows in all staged files.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// The staged files.
    pub fn files(&self) -> Vec<DataFile> {
        self.adds
            .iter()
            .map(|a| DataFile {
                path: a.path.clone(),
                size: a.size,
            })
            .collect()
    }

    /// Takes in the files of another writer of the same batch (one written before the
    /// schema evolved).
    pub fn extend(&mut self, other: StagedFiles) {
        self.adds.extend(other.adds);
        self.rows += other.rows;
    }

    pub(crate) fn into_adds(self) -> Vec<Add> {
        self.adds
    }
}

/// Writes record batches of the table's schema into new Parquet files under the table.
///
/// Parquet encoding runs off the caller's task, in lanes: each lane is a task of its own
/// owning one `RecordBatchWriter` (so one open file at a time), fed through a short channel.
/// The first lane opens once [`encoding::JUDGED_ROWS`] rows or [`encoding::JUDGED_BATCHES`]
/// batches (or all, if fewer) have come, which also fix how every lane's files are encoded;
/// another opens each time every open lane has taken [`LANE_BYTES`] of Arrow data, up to
/// [`lanes_for_cores`]. A batch of small files stays one lane and one file; a bulk one
/// encodes on several cores into several files.
pub struct TableWriter {
    open: Opener,
    /// The writer made when this one was (to check the table and learn the schema), kept
    /// for the first lane so it is not made twice. In a mutex only so that `TableWriter`
    /// stays `Sync` (`RecordBatchWriter` is not); `get_mut` takes it without locking.
    first: std::sync::Mutex<Option<RecordBatchWriter>>,
    lanes: Vec<Lane>,
    /// The first rows, held until there are enough to judge the files' encoding from.
    held: Vec<RecordBatch>,
    /// How every lane encodes its files, once judged from the held rows.
    properties: Option<WriterProperties>,
    max_lanes: usize,
    /// Arrow bytes each open lane takes before another opens.
    lane_bytes: usize,
    /// Arrow bytes sent so far, over all lanes.
    sent: usize,
    next: usize,
    url: String,
    schema: SchemaRef,
    target_file_size: u64,
    rows: u64,
    /// The table's partition columns (their empty strings are written as null).
    partition_by: Vec<String>,
    /// The table's CHECK constraints, invariants and generated columns, if it has any.
    checks: Option<std::sync::Arc<TableChecks>>,
}

/// How a lane's `RecordBatchWriter` is made.
enum Opener {
    Table(Box<DeltaTable>),
    Schema {
        url: Url,
        schema: SchemaRef,
        partition_by: Option<Vec<String>>,
        storage_options: HashMap<String, String>,
    },
}

/// One encoding task and the channel feeding it.
struct Lane {
    feed: tokio::sync::mpsc::Sender<RecordBatch>,
    done: tokio::task::JoinHandle<Result<Vec<Add>, deltalake::DeltaTableError>>,
}

/// Arrow bytes each open lane takes before another lane opens.
pub const LANE_BYTES: usize = 64 << 20;

/// Encoding lanes for `cores`: decoding a file costs about twice encoding its rows (W1's
/// steady-state profile since JSON lines are built into columns in the pass that checks
/// them: decoding ~45% of CPU, Parquet encoding ~25%), so one lane per three cores keeps
/// the encoders from being the wall, up to 8.
pub fn lanes_for_cores(cores: usize) -> usize {
    cores.div_ceil(3).clamp(1, 8)
}

impl TableWriter {
    pub(crate) fn for_table(
        table: &DeltaTable,
        url: &Url,
        target_file_size: u64,
    ) -> Result<Self, SinkError> {
        let partition_by = table
            .snapshot()
            .map(|s| s.metadata().partition_columns().to_vec())
            .unwrap_or_default();
        let open = Opener::Table(Box::new(table.clone()));
        Self::wrap(open, url, target_file_size, partition_by)
    }

    pub(crate) fn for_schema(
        url: &Url,
        schema: SchemaRef,
        partition_by: Option<Vec<String>>,
        storage_options: &HashMap<String, String>,
        target_file_size: u64,
    ) -> Result<Self, SinkError> {
        crate::storage::register();
        let open = Opener::Schema {
            url: url.clone(),
            schema,
            partition_by: partition_by.clone(),
            storage_options: storage_options.clone(),
        };
        Self::wrap(
            open,
            url,
            target_file_size,
            partition_by.unwrap_or_default(),
        )
    }

    fn wrap(
        open: Opener,
        url: &Url,
        target_file_size: u64,
        partition_by: Vec<String>,
    ) -> Result<Self, SinkError> {
        // One writer made now: a bad table or schema is reported here, not at the first rows.
        let first = open
            .writer(target_file_size)
            .map_err(|source| SinkError::Write {
                url: url.to_string(),
                source,
            })?;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Ok(Self {
            schema: first.arrow_schema(),
            first: std::sync::Mutex::new(Some(first)),
            open,
            lanes: Vec::new(),
            held: Vec::new(),
            properties: None,
            max_lanes: lanes_for_cores(cores),
            lane_bytes: LANE_BYTES,
            sent: 0,
            next: 0,
            url: url.to_string(),
            target_file_size,
            rows: 0,
            partition_by,
            checks: None,
        })
    }

    /// At most `lanes` encoding lanes, another opening after each `lane_bytes` per open
    /// lane (defaults: [`lanes_for_cores`] and [`LANE_BYTES`]).
    pub fn with_lanes(mut self, lanes: usize, lane_bytes: usize) -> Self {
        self.max_lanes = lanes.max(1);
        self.lane_bytes = lane_bytes;
        self
    }

    /// Fills in and checks the table's rules on every batch written.
    pub(crate) fn with_checks(mut self, checks: Option<std::sync::Arc<TableChecks>>) -> Self {
        self.checks = checks;
        self
    }

    /// The schema batches must have.
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn write_error(&self, source: deltalake::DeltaTableError) -> SinkError {
        SinkError::Write {
            url: self.url.clone(),
            source,
        }
    }

    fn check_error(&self, e: CheckError) -> SinkError {
        let url = self.url.clone();
        match e {
            CheckError::Broken {
                rule,
                rows,
                checked,
                sample,
            } => SinkError::RuleBroken {
                url,
                rule,
                rows,
                checked,
                sample,
            },
            CheckError::Unusable { rule, detail } => SinkError::RuleUnusable { url, rule, detail },
        }
    }

    /// Opens another lane: a task owning a new `RecordBatchWriter`, encoding with
    /// `properties`.
    fn open_lane(&mut self, properties: WriterProperties) -> Result<(), SinkError> {
        let made = self.first.get_mut().ok().and_then(Option::take);
        let writer = match made {
            Some(made) => made,
            None => self
                .open
                .writer(self.target_file_size)
                .map_err(|e| self.write_error(e))?,
        };
        let mut writer = writer.with_writer_properties(properties);
        let (feed, mut batches) = tokio::sync::mpsc::channel::<RecordBatch>(2);
        let done = tokio::spawn(async move {
            while let Some(batch) = batches.recv().await {
                writer.write(batch).await?;
            }
            writer.flush().await
        });
        self.lanes.push(Lane { feed, done });
        Ok(())
    }

    /// Adds a record batch; its columns are matched to the table's by name.
    pub async fn write(&mut self, batch: RecordBatch) -> Result<(), SinkError> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        // Rules see the values stored: empty partition values as null, before and after
        // generated columns (which may be partition columns) are filled.
        let mut batch = empty_partition_values_to_null(batch, &self.partition_by)
            .map_err(|e| self.write_error(e.into()))?;
        if let Some(checks) = &self.checks {
            batch = checks.apply(batch).map_err(|e| self.check_error(e))?;
            batch = empty_partition_values_to_null(batch, &self.partition_by)
                .map_err(|e| self.write_error(e.into()))?;
        }
        self.rows += batch.num_rows() as u64;
        if self.properties.is_some() {
            return self.send(batch).await;
        }
        self.held.push(batch);
        let held_rows: usize = self.held.iter().map(RecordBatch::num_rows).sum();
        if held_rows >= encoding::JUDGED_ROWS || self.held.len() >= encoding::JUDGED_BATCHES {
            self.send_held().await?;
        }
        Ok(())
    }

    /// Judges the encoding from the held rows, then sends them.
    async fn send_held(&mut self) -> Result<(), SinkError> {
        let held = std::mem::take(&mut self.held);
        self.properties = Some(encoding::writer_properties(&held));
        for batch in held {
            self.send(batch).await?;
        }
        Ok(())
    }

    /// Sends a batch to the next lane, opening one first when it is time.
    async fn send(&mut self, batch: RecordBatch) -> Result<(), SinkError> {
        if self.lanes.len() < self.max_lanes && self.sent >= self.lanes.len() * self.lane_bytes {
            let properties = self
                .properties
                .clone()
                .unwrap_or_else(|| encoding::writer_properties(&[]));
            self.open_lane(properties)?;
        }
        self.sent += batch.get_array_memory_size();
        let lane = self.next % self.lanes.len().max(1);
        self.next = self.next.wrapping_add(1);
        let Some(Lane { feed, .. }) = self.lanes.get(lane) else {
            return Err(self.write_error(deltalake::DeltaTableError::Generic(
                "no encoding lane open".into(),
            )));
        };
        if feed.send(batch).await.is_err() {
            // The lane stopped: its error says why.
            let failed = self.lanes.remove(lane);
            drop(failed.feed);
            return Err(
                self.write_error(lane_result(failed.done.await).err().unwrap_or_else(|| {
                    deltalake::DeltaTableError::Generic("an encoding lane stopped".into())
                })),
            );
        }
        Ok(())
    }

    /// Closes the open files and returns them staged for [`crate::DeltaSink::commit_batch`].
    pub async fn finish(mut self) -> Result<StagedFiles, SinkError> {
        if !self.held.is_empty() {
            self.send_held().await?;
        }
        let mut adds = Vec::new();
        let mut first_error = None;
        for Lane { feed, done } in std::mem::take(&mut self.lanes) {
            drop(feed);
            match lane_result(done.await) {
                Ok(written) => adds.extend(written),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        if let Some(source) = first_error {
            return Err(self.write_error(source));
        }
        Ok(StagedFiles {
            adds,
            rows: self.rows,
        })
    }
}

impl Drop for TableWriter {
    /// A writer dropped unfinished (its batch failed): its lanes stop at once rather than
    /// finishing files no commit will name.
    fn drop(&mut self) {
        for lane in &self.lanes {
            lane.done.abort();
        }
    }
}

impl Opener {
    fn writer(
        &self,
        target_file_size: u64,
    ) -> Result<RecordBatchWriter, deltalake::DeltaTableError> {
        let writer = match self {
            Self::Table(table) => RecordBatchWriter::for_table(table),
            Self::Schema {
                url,
                schema,
                partition_by,
                storage_options,
            } => RecordBatchWriter::try_new(
                url.as_str(),
                schema.clone(),
                partition_by.clone(),
                Some(storage_options.clone()),
            ),
        }?;
        Ok(writer.with_target_file_size(target_file_size))
    }
}

/// A lane's files, or why it failed (a panic in it included).
fn lane_result(
    joined: Result<Result<Vec<Add>, deltalake::DeltaTableError>, tokio::task::JoinError>,
) -> Result<Vec<Add>, deltalake::DeltaTableError> {
    joined
        .map_err(|e| deltalake::DeltaTableError::Generic(format!("an encoding lane failed: {e}")))?
}

/// `batch` with the empty strings of its partition columns made null. The Delta protocol reads
/// an empty partition value as null, so an empty string cannot be stored as a partition value:
/// writing it as `""` made readers disagree (most read null, polars read ""). Written as null,
/// every reader sees what the protocol says (`partitionValues: {"k": null}`, as Spark writes).
pub fn empty_partition_values_to_null(
    batch: RecordBatch,
    partition_by: &[String],
) -> Result<RecordBatch, arrow::error::ArrowError> {
    use arrow::array::{Array, StringArray};
    use arrow::datatypes::DataType;
    if partition_by.is_empty() {
        return Ok(batch);
    }
    let schema = batch.schema();
    let mut columns = batch.columns().to_vec();
    let mut changed = false;
    for (i, field) in schema.fields().iter().enumerate() {
        if !partition_by.iter().any(|p| p == field.name()) {
            continue;
        }
        let is_string = matches!(
            field.data_type(),
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
        );
        if !is_string {
            continue;
        }
        let empty = StringArray::new_scalar("");
        let column = arrow::compute::cast(&columns[i], &DataType::Utf8)?;
        let is_empty = arrow::compute::kernels::cmp::eq(&column, &empty)?;
        if is_empty.true_count() == 0 {
            continue;
        }
        let nulled = arrow::compute::nullif(&columns[i], &is_empty)?;
        debug_assert_eq!(nulled.len(), columns[i].len());
        columns[i] = nulled;
        changed = true;
    }
    if !changed {
        return Ok(batch);
    }
    RecordBatch::try_new(schema, columns)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    #[test]
    fn empty_partition_strings_become_null_and_other_columns_stay() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("region", DataType::Utf8, true),
            Field::new("note", DataType::Utf8, true),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![1, 2, 3])),
                Arc::new(StringArray::from(vec![Some(""), None, Some("eu")])),
                Arc::new(StringArray::from(vec![Some(""), Some(""), Some("x")])),
            ],
        )
        .expect("batch");
        let out = empty_partition_values_to_null(batch, &["region".to_string()]).expect("ok");
        let region = out
            .column(1)
            .as_any()
            .downcast_ref::<StringArray>()
            .expect("strings");
        assert!(region.is_null(0) && region.is_null(1));
        assert_eq!(region.value(2), "eu");
        let note = out
            .column(2)
            .as_any()
            .downcast_ref::<StringArray>()
            .expect("strings");
        assert_eq!((note.is_null(0), note.value(0)), (false, ""));
    }
}
