//! The engine's errors: each crate's error as it is, and the refusals the engine makes
//! itself, each naming the file, column or table at fault and what to do; which may be retried.

use std::path::PathBuf;

use inlet_checkpoint::CheckpointError;
use inlet_delta::SinkError;
use inlet_discover::DiscoverError;

/// Everything a pipeline can fail with.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),

    #[error(transparent)]
    Source(#[from] DiscoverError),

    /// Boxed: delta-rs's errors are large, and every result of the engine carries this type.
    #[error(transparent)]
    Table(Box<SinkError>),

    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),

    /// An `s3://` checkpoint's lease, objects or snapshots.
    #[error(transparent)]
    Remote(#[from] inlet_remote::RemoteError),

    #[error(transparent)]
    Format(#[from] inlet_format::FormatError),

    #[error(transparent)]
    Transform(#[from] inlet_transform::TransformError),

    #[error(transparent)]
    Schema(#[from] inlet_schema::SchemaError),

    #[error(transparent)]
    Catalog(#[from] inlet_unity::UnityError),

    #[error("source.archive_url: {0}")]
    Archive(#[source] DiscoverError),

    #[error("{file} has new column(s) {columns} and schema.evolution is \"fail_on_new_columns\"; batch {batch_id} is kept and retried by the next run: set schema.evolution to \"add_new_columns\" or \"rescue\", or add the columns to schema.hints, then run again")]
    NewColumnsRefused {
        file: String,
        columns: String,
        batch_id: i64,
    },

    #[error("{file} has columns {columns} although the schema sample of batch {batch_id} found none: the file changed after it was sampled; the batch is kept and the next attempt samples it again")]
    ChangedAfterSample {
        file: String,
        columns: String,
        batch_id: i64,
    },

    #[error("{key} names column '{column}', which {lacks} (columns: {columns})")]
    MissingColumn {
        key: &'static str,
        column: String,
        /// "the table would not have", "the transform's output does not have", …
        lacks: String,
        columns: String,
    },

    #[error("Delta table {table} has column '{column}' of type {column_type}, but schema.rescued_data_column names it and rescued data is JSON text (STRING); set schema.rescued_data_column to another name (for example \"_rescued\")")]
    RescuedColumnType {
        table: String,
        column: String,
        column_type: String,
    },

    #[error("{what} {path} cannot be used: {file} is a file, not a directory ({why}); point {key} at a directory, which is created when missing")]
    PathIsFile {
        what: &'static str,
        key: &'static str,
        path: PathBuf,
        file: PathBuf,
        why: &'static str,
    },

    #[error("column {column} is {from} but the table has {to}: {source}")]
    Cast {
        column: String,
        from: String,
        to: String,
        #[source]
        source: arrow::error::ArrowError,
    },

    #[error("Delta table {table} holds batch {txn_version} of pipeline '{pipeline}', but checkpoint {checkpoint} knows batches up to {known} only; the checkpoint is stale or another checkpoint uses this pipeline_id. Refusing to run, since files would be ingested twice; use the checkpoint that wrote the table, or a new pipeline_id for a new table")]
    StaleCheckpoint {
        table: String,
        pipeline: String,
        txn_version: i64,
        checkpoint: PathBuf,
        known: i64,
    },

    #[error("{0}")]
    Rebuild(String),

    /// An `s3://` checkpoint whose restore would leave out batches the table holds (the
    /// message names them, why, and what to do).
    #[error("{0}")]
    RestoreGap(String),

    #[error("sink.table is the Unity Catalog table {table}: {detail}")]
    CatalogTable { table: String, detail: String },

    #[error("DynamoDB export manifest {path} cannot be read: {source}; the export's data is not taken until it can")]
    ExportManifest {
        path: String,
        #[source]
        source: inlet_discover::ManifestError,
    },

    #[error("checkpoint meta {key} is '{value}', not a number; rebuild the checkpoint with `inlet checkpoint rebuild`")]
    CheckpointMeta { key: &'static str, value: String },

    #[error("cannot {what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("Arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),

    #[error("cannot encode a bad record: {0}")]
    BadRecordEncoding(#[from] serde_json::Error),

    /// A command's argument the user must change.
    #[error("{0}")]
    Usage(String),

    #[error("{file}: columns {columns} are still unknown after the schema took them in; this is a bug in inlet, please report it")]
    Bug { file: String, columns: String },

    #[error("{0}; this is a bug in inlet, please report it")]
    Internal(String),
}

impl EngineError {
    /// True when a later attempt may succeed: storage, queue or catalog trouble after the
    /// clients' own retries, or a commit that lost a race with another writer. False for
    /// what the user must fix (config, schema, permissions, a full or read-only checkpoint
    /// disk): retrying those only hides them.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Source(e) | Self::Archive(e) => e.is_transient(),
            Self::Table(e) => e.is_transient(),
            Self::Catalog(e) => e.is_transient(),
            // The checkpoint is local state: a failure there is a disk or a file to fix.
            Self::Checkpoint(_) => false,
            // A batch id planned by a former holder: recovery (which the retry runs) finds
            // its plan and finishes it.
            Self::Remote(e) => {
                e.is_transient() || matches!(e, inlet_remote::RemoteError::PlanTaken { .. })
            }
            // DataFusion keeps a cause only as text.
            Self::Transform(e) => inlet_delta::transient_text(&e.to_string()),
            Self::Io { source, .. } => io_transient(source),
            _ => false,
        }
    }

    /// True when another runner holds the checkpoint, or took its lease over (the binary
    /// exits 75 then).
    pub fn is_locked(&self) -> bool {
        matches!(
            self,
            Self::Checkpoint(CheckpointError::Locked { .. })
                | Self::Remote(
                    inlet_remote::RemoteError::Held { .. } | inlet_remote::RemoteError::Lost { .. }
                )
        )
    }
}

impl From<SinkError> for EngineError {
    fn from(e: SinkError) -> Self {
        Self::Table(Box::new(e))
    }
}

/// Network-side I/O failures.
fn io_transient(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionReset
            | ConnectionAborted
            | ConnectionRefused
            | BrokenPipe
            | TimedOut
            | UnexpectedEof
            | Interrupted
    )
}

/// The engine's results.
pub type Result<T, E = EngineError> = std::result::Result<T, E>;
