//! The `meta` table: one value per key for the checkpoint as a whole (`layout_version`,
//! `pipeline_id`, `first_start_ms`, ...).

use rusqlite::{params, Connection, OptionalExtension};

use crate::error::sql_error;
use crate::{Checkpoint, CheckpointError};

pub(crate) const TABLE: &str = "
CREATE TABLE IF NOT EXISTS meta(
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
";

impl Checkpoint {
    /// A stored meta value (`pipeline_id`, `first_start_ms`, ...).
    pub fn meta(&self, key: &str) -> Result<Option<String>, CheckpointError> {
        read(&self.conn, key).map_err(sql_error(&self.db))
    }

    /// Sets a meta value, durably, replacing any earlier one. Refuses nothing; fails only
    /// when the database does.
    pub fn set_meta(&self, key: &str, value: &str) -> Result<(), CheckpointError> {
        self.conn
            .execute(
                "INSERT INTO meta(key, value) VALUES (?1, ?2)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                params![key, value],
            )
            .map(|_| ())
            .map_err(sql_error(&self.db))
    }
}

/// A meta value through `conn`, which may be a transaction.
pub(crate) fn read(conn: &Connection, key: &str) -> rusqlite::Result<Option<String>> {
    conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
        .optional()
}
