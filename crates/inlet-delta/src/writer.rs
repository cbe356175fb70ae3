//! Streaming Parquet writes under the table: record batches in, staged data files out, with
//! memory bounded by the open files' buffers rather than by the batch size.

use std::collections::HashMap;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use deltalake::kernel::Add;
use deltalake::writer::{DeltaWriter, RecordBatchWriter};
use deltalake::DeltaTable;
use url::Url;

use crate::SinkError;

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
pub struct TableWriter {
    inner: RecordBatchWriter,
    url: String,
    rows: u64,
    /// The table's partition columns (their empty strings are written as null).
    partition_by: Vec<String>,
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
        Self::wrap(
            RecordBatchWriter::for_table(table),
            url,
            target_file_size,
            partition_by,
        )
    }

    pub(crate) fn for_schema(
        url: &Url,
        schema: SchemaRef,
        partition_by: Option<Vec<String>>,
        storage_options: &HashMap<String, String>,
        target_file_size: u64,
    ) -> Result<Self, SinkError> {
        crate::storage::register();
        let inner = RecordBatchWriter::try_new(
            url.as_str(),
            schema,
            partition_by.clone(),
            Some(storage_options.clone()),
        );
        Self::wrap(
            inner,
            url,
            target_file_size,
            partition_by.unwrap_or_default(),
        )
    }

    fn wrap(
        inner: Result<RecordBatchWriter, deltalake::DeltaTableError>,
        url: &Url,
        target_file_size: u64,
        partition_by: Vec<String>,
    ) -> Result<Self, SinkError> {
        let inner = inner
            .map_err(|source| SinkError::Write {
                url: url.to_string(),
                source,
            })?
            .with_target_file_size(target_file_size);
        Ok(Self {
            inner,
            url: url.to_string(),
            rows: 0,
            partition_by,
        })
    }

    /// The schema batches must have.
    pub fn schema(&self) -> SchemaRef {
        self.inner.arrow_schema()
    }

    /// Adds a record batch; its columns are matched to the table's by name.
    pub async fn write(&mut self, batch: RecordBatch) -> Result<(), SinkError> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        self.rows += batch.num_rows() as u64;
        let batch = empty_partition_values_to_null(batch, &self.partition_by).map_err(|e| {
            SinkError::Write {
                url: self.url.clone(),
                source: e.into(),
            }
        })?;
        self.inner
            .write(batch)
            .await
            .map_err(|source| SinkError::Write {
                url: self.url.clone(),
                source,
            })
    }

    /// Closes the open files and returns them staged for [`crate::DeltaSink::commit_batch`].
    pub async fn finish(mut self) -> Result<StagedFiles, SinkError> {
        let adds = self
            .inner
            .flush()
            .await
            .map_err(|source| SinkError::Write {
                url: self.url.clone(),
                source,
            })?;
        Ok(StagedFiles {
            adds,
            rows: self.rows,
        })
    }
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
