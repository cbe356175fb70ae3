//! How big the checkpoint is: rows per table and bytes on disk, for `inlet table describe`
//! (its growth is bounded by `max_file_age` for files and tombstone retention for deletes).

use crate::db::Checkpoint;
use crate::error::sql_error;
use crate::{CheckpointError, DB_FILE};

/// Rows per table of a checkpoint, and its files' size.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct CheckpointSummary {
    pub files: u64,
    pub batches: u64,
    pub tombstones: u64,
    pub schema_versions: u64,
    /// `inlet.db` with its write-ahead log.
    pub bytes: u64,
}

impl Checkpoint {
    /// Counts the rows of each table and the bytes of `inlet.db` and its WAL.
    pub fn summary(&self) -> Result<CheckpointSummary, CheckpointError> {
        let sql = sql_error(&self.db);
        let count = |table: &str| -> Result<u64, CheckpointError> {
            let n: i64 = self
                .conn
                .query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
                .map_err(&sql)?;
            Ok(u64::try_from(n).unwrap_or_default())
        };
        let bytes = ["", "-wal"]
            .iter()
            .filter_map(|suffix| {
                std::fs::metadata(self.dir.join(format!("{DB_FILE}{suffix}"))).ok()
            })
            .map(|m| m.len())
            .sum();
        Ok(CheckpointSummary {
            files: count("files")?,
            batches: count("batches")?,
            tombstones: count("tombstones")?,
            schema_versions: count("schema_versions")?,
            bytes,
        })
    }
}
