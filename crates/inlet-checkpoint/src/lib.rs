//! The checkpoint: what inlet has taken, in SQLite (`inlet.db`, WAL) inside a local directory.
//! It holds seen files, the batch journal, schema versions and the single-runner lock.

mod db;
mod error;
mod files;
mod journal;
mod layout;
mod lock;
mod meta;
mod schema_versions;
mod skip_reason;
mod summary;
#[cfg(test)]
mod test_support;
mod tombstones;

pub use db::Checkpoint;
pub use error::CheckpointError;
pub use files::{DedupeKey, FileRecord, FileState, NewFile};
pub use journal::{BatchRecord, BatchState};
pub use lock::{LockHolder, RunnerLock};
pub use schema_versions::SchemaVersion;
pub use skip_reason::SkipReason;
pub use summary::CheckpointSummary;

/// File name of the SQLite database inside the checkpoint directory.
pub const DB_FILE: &str = "inlet.db";
/// File name of the runner lock inside the checkpoint directory.
pub const LOCK_FILE: &str = "inlet.lock";
