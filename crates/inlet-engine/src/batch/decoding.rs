//! What the schema's sample and the batch's read share: how files are read and decoded
//! (settings from the config), the task that feeds them, and rows fitted to a writer's schema.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::{Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use inlet_checkpoint::SkipReason;
use inlet_discover::{DiscoverError, SourceStore};
use inlet_format::DecodeOptions;
use inlet_schema::EvolutionMode;

use super::PlannedFile;
use crate::error::{EngineError, Result};
use crate::pipeline::Pipeline;

impl Pipeline {
    /// How files are decoded, from the config.
    pub(super) fn decode_settings(&self) -> DecodeSettings {
        let cores = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
        DecodeSettings {
            format: self.cfg.source.format,
            numbers: self.cfg.source.dynamodb_numbers,
            mode: self.cfg.schema.evolution,
            rescued_column: self.cfg.rescued_column().map(str::to_string),
            infer_types: self.cfg.schema.infer_column_types,
            hints: Arc::new(self.cfg.hints.clone()),
            csv: Arc::new(self.cfg.source.csv.clone()),
            partition_columns: Arc::new(self.cfg.source.partition_columns.clone()),
            pin_etag: self.cfg.source.allow_overwrites,
            multiline: self.cfg.source.multiline,
            exports: Arc::new(self.exports.clone()),
            known_fit: Arc::default(),
            sampled: Arc::default(),
            cores,
            cpu: Arc::new(tokio::sync::Semaphore::new(cores)),
        }
    }
}

/// A task aborted when its handle goes (a batch that fails stops its reads).
pub(super) struct AbortOnDrop(pub tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Decoding settings, owned so that decoding can run on a blocking thread.
#[derive(Clone)]
pub(super) struct DecodeSettings {
    pub format: inlet_format::Format,
    pub numbers: inlet_format::NumberMode,
    pub mode: EvolutionMode,
    pub rescued_column: Option<String>,
    pub infer_types: bool,
    pub hints: Arc<Vec<Field>>,
    pub csv: Arc<inlet_format::CsvOptions>,
    pub partition_columns: Arc<Vec<String>>,
    /// Read the version with the planned ETag only (`allow_overwrites`).
    pub pin_etag: bool,
    /// A file is one JSON document or array (`multiline`), not JSON lines.
    pub multiline: bool,
    /// DynamoDB exports' times, by the path of their `manifest-summary.json`.
    pub exports: Arc<HashMap<String, i64>>,
    /// Files the schema's inference walked whole, with the schema all their lines fit.
    pub known_fit: Arc<HashMap<String, Schema>>,
    /// Bytes the schema's inference read, taken (once) instead of reading the file again.
    pub sampled: Arc<std::sync::Mutex<HashMap<String, Bytes>>>,
    /// The machine's cores: files decoded at once (one more waits its turn ahead of the
    /// writer, `BatchReader`).
    pub cores: usize,
    /// Files decompressed and decoded at once: one per core. Reads run `read_concurrency`
    /// ahead, but more decodes than cores only add memory.
    pub cpu: Arc<tokio::sync::Semaphore>,
}

impl DecodeSettings {
    /// The options for decoding the file at `path` (a full DynamoDB export's rows take
    /// their export's time from its manifest).
    pub fn options(&self, path: &str) -> DecodeOptions<'_> {
        DecodeOptions {
            format: self.format,
            numbers: self.numbers,
            csv: &self.csv,
            mode: self.mode,
            rescued_column: self.rescued_column.as_deref(),
            infer_types: self.infer_types,
            hints: &self.hints,
            partition_columns: &self.partition_columns,
            known_to_fit: false,
            multiline: self.multiline,
            export_time_micros: inlet_discover::export_manifest_path(path)
                .and_then(|m| self.exports.get(&m).copied()),
        }
    }
}

/// `batch` with the columns of `schema`, in its order: columns the batch lacks (decoded
/// before the schema gained them) are null.
pub(super) fn fit_to(batch: RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    if batch.schema() == *schema {
        return Ok(batch);
    }
    let columns = schema
        .fields()
        .iter()
        .map(|f| match batch.column_by_name(f.name()) {
            Some(c) if c.data_type() == f.data_type() => Ok(c.clone()),
            // Checked: a value that does not convert fails the batch instead of becoming null.
            Some(c) => arrow::compute::cast_with_options(
                c,
                f.data_type(),
                &arrow::compute::CastOptions {
                    safe: false,
                    ..Default::default()
                },
            )
            .map_err(|source| EngineError::Cast {
                column: f.name().clone(),
                from: c.data_type().to_string(),
                to: f.data_type().to_string(),
                source,
            }),
            None => Ok(arrow::array::new_null_array(
                f.data_type(),
                batch.num_rows(),
            )),
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

/// Why a planned file produced nothing to decode.
pub(super) enum ReadError {
    /// Gone from the source, or rewritten since it was listed (`allow_overwrites`: the new
    /// version is a new file): recorded as skipped, for this reason.
    Skipped(SkipReason),
    /// The source could not be read; the batch stays planned and is replayed.
    Source(DiscoverError),
}

/// A file's bytes as stored: kept from the schema's sample, or read from the source.
pub(super) async fn fetch_file(
    source: &SourceStore,
    file: &PlannedFile,
    settings: &DecodeSettings,
) -> Result<Bytes, ReadError> {
    let path = file.path.as_str();
    let etag = Some(file.etag.as_str()).filter(|e| settings.pin_etag && !e.is_empty());
    let kept = settings
        .sampled
        .lock()
        .ok()
        .and_then(|mut kept| kept.remove(path));
    let read = match kept {
        Some(data) => Ok(data),
        None => source.read_version(path, etag).await,
    };
    let data = match read {
        Ok(d) => d,
        Err(DiscoverError::NotFound { .. }) => return Err(ReadError::Skipped(SkipReason::Deleted)),
        Err(DiscoverError::Changed { .. }) => {
            return Err(ReadError::Skipped(SkipReason::Overwritten))
        }
        Err(DiscoverError::Unaddressable { reason, .. }) => {
            return Err(ReadError::Skipped(skip_reason(reason)))
        }
        Err(e) => return Err(ReadError::Source(e)),
    };
    Ok(data)
}

/// Why the checkpoint records a file the source could not read as skipped.
fn skip_reason(unreadable: inlet_discover::Unreadable) -> SkipReason {
    use inlet_discover::Unreadable;
    match unreadable {
        Unreadable::DotOrEmptySegment => SkipReason::DotSegment,
        Unreadable::ControlCharacter => SkipReason::ControlCharacter,
        Unreadable::SymlinkLoop => SkipReason::SymlinkLoop,
    }
}
