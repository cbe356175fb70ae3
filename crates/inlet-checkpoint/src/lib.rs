//! The checkpoint: what inlet has taken, in SQLite (`inlet.db`, WAL) inside a local directory.
//! It holds seen files, the batch journal, schema versions and the single-runner lock.

mod error;
mod lock;
mod store;

pub use error::CheckpointError;
pub use lock::{LockHolder, RunnerLock};
pub use store::{
    BatchRecord, BatchState, Checkpoint, DedupeKey, FileRecord, FileState, NewFile, SchemaVersion,
};

/// File name of the SQLite database inside the checkpoint directory.
pub const DB_FILE: &str = "inlet.db";
/// File name of the runner lock inside the checkpoint directory.
pub const LOCK_FILE: &str = "inlet.lock";
