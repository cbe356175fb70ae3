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
}

impl TableWriter {
    pub(crate) fn for_table(
        table: &DeltaTable,
        url: &Url,
        target_file_size: u64,
    ) -> Result<Self, SinkError> {
        Self::wrap(RecordBatchWriter::for_table(table), url, target_file_size)
    }

    pub(crate) fn for_schema(
        url: &Url,
        schema: SchemaRef,
        partition_by: Option<Vec<String>>,
        storage_options: &HashMap<String, String>,
        target_file_size: u64,
    ) -> Result<Self, SinkError> {
        let inner = RecordBatchWriter::try_new(
            url.as_str(),
            schema,
            partition_by,
            Some(storage_options.clone()),
        );
        Self::wrap(inner, url, target_file_size)
    }

    fn wrap(
        inner: Result<RecordBatchWriter, deltalake::DeltaTableError>,
        url: &Url,
        target_file_size: u64,
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
