//! What a running pipeline reports, as typed events: the binary's progress bar, metrics and
//! health, or an embedding program, observe them; the engine itself prints nothing.

use std::sync::Arc;

/// One thing that happened in a run.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// Discovery found files: `new` joined the backlog; `duplicates` were seen before,
    /// already waiting, or another version of a waiting file.
    Discovered { new: u64, duplicates: u64 },
    /// Files (and bytes) found and not yet planned.
    Backlog { files: u64, bytes: u64 },
    /// Messages waiting on the SQS queue (notifications only).
    QueueDepth { messages: u64 },
    /// A batch is planned durably with these files.
    BatchPlanned {
        batch_id: i64,
        files: u64,
        bytes: u64,
    },
    /// A file of a batch was decoded into rows (bad records and rescued rows among them).
    FileRead {
        batch_id: i64,
        path: String,
        rows: u64,
        bad_records: u64,
        rescued_rows: u64,
        /// Values in those rows' rescued data (the keys of each rescued JSON object).
        rescued_values: u64,
    },
    /// A file could not be decoded at all: recorded `failed` and dead-lettered.
    FileFailed {
        batch_id: i64,
        path: String,
        error: String,
    },
    /// A file was gone or could not be addressed: recorded `skipped`.
    FileSkipped {
        batch_id: i64,
        path: String,
        reason: String,
    },
    /// The schema store has this version (at start, and after each change).
    SchemaVersion { version: i64 },
    /// A batch made a schema change, as the schema history words it.
    SchemaChanged { batch_id: i64, change: String },
    /// A batch is committed (or recorded without a commit when it had no rows).
    BatchCommitted(BatchCommitted),
    /// A step failed on trouble a retry may cure; the run waits `retry_in` and tries again.
    Retrying {
        what: String,
        attempt: u32,
        retry_in: std::time::Duration,
        error: String,
    },
    /// The trouble that made the run retry is over.
    Healthy,
    /// Table maintenance did something, or failed (the batches go on either way).
    Maintenance(Maintenance),
}

/// What table maintenance did.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Maintenance {
    /// The table's data files after a commit: all, and those under the small-file size.
    TableFiles {
        files: u64,
        bytes: u64,
        small_files: u64,
    },
    /// Small files were bin-packed in a commit of their own.
    Compacted {
        version: Option<i64>,
        files_removed: u64,
        files_added: u64,
        bytes_removed: u64,
        bytes_added: u64,
        seconds: f64,
    },
    /// VACUUM deleted these many data files no version within retention needs.
    Vacuumed { files: u64, seconds: f64 },
    /// A Delta checkpoint was written at this version.
    Checkpointed { version: i64 },
    /// Expired `_delta_log` objects were deleted.
    LogCleaned { removed: u64 },
    /// A maintenance step failed; `what` names it (`compaction`, `vacuum`, `checkpoint`,
    /// `log_cleanup`). The commits stand; it is tried again later.
    Failed { what: &'static str, error: String },
}

/// What one committed batch did.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchCommitted {
    pub batch_id: i64,
    pub files: u64,
    pub failed: u64,
    pub skipped: u64,
    pub rows: u64,
    /// Bytes of the batch's files, as stored.
    pub bytes: u64,
    /// From planning (or replaying) the batch to recording its commit.
    pub seconds: f64,
    /// When each file landed (its S3 event or modification time), ms since the epoch.
    pub landed_ms: Vec<i64>,
    /// The table version the commit made; `None` when the batch had no rows to commit.
    pub delta_version: Option<i64>,
}

/// Receives a pipeline's events as they happen, on the pipeline's own task: keep it quick
/// (count, set a gauge, hand over to a channel).
pub trait Observer: Send + Sync {
    fn event(&self, event: &Event);
}

/// The observers attached to a pipeline.
#[derive(Clone, Default)]
pub(crate) struct Observers(Vec<Arc<dyn Observer>>);

impl Observers {
    pub fn add(&mut self, observer: Arc<dyn Observer>) {
        self.0.push(observer);
    }

    pub fn emit(&self, event: Event) {
        for o in &self.0 {
            o.event(&event);
        }
    }
}
