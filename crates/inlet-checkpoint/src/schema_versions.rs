//! The `schema_versions` table: every schema the pipeline has had, numbered from 1, with the
//! batch and file that brought each change and why.

use rusqlite::{params, OptionalExtension};
use serde::Serialize;

use crate::db::now_ms;
use crate::error::sql_error;
use crate::{Checkpoint, CheckpointError};

pub(crate) const TABLE: &str = "
CREATE TABLE IF NOT EXISTS schema_versions(
    version       INTEGER PRIMARY KEY,
    schema_json   TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    batch_id      INTEGER,
    file_path     TEXT,
    reason        TEXT NOT NULL
);
";

/// One stored schema version.
#[derive(Debug, Clone, Serialize)]
pub struct SchemaVersion {
    pub version: i64,
    pub schema_json: String,
    pub created_at_ms: i64,
    pub batch_id: Option<i64>,
    pub file_path: Option<String>,
    pub reason: String,
}

impl Checkpoint {
    /// Stores a new schema version (the first when none exists) and returns its number,
    /// durably. Numbers are consecutive: one statement reads the highest and adds one.
    /// Refuses nothing: whether the schema changed is the caller's to decide.
    pub fn add_schema_version(
        &self,
        schema_json: &str,
        batch_id: Option<i64>,
        file_path: Option<&str>,
        reason: &str,
    ) -> Result<i64, CheckpointError> {
        self.conn
            .query_row(
                "INSERT INTO schema_versions(version, schema_json, created_at_ms, batch_id,
                                             file_path, reason)
                 SELECT COALESCE(MAX(version), 0) + 1, ?1, ?2, ?3, ?4, ?5 FROM schema_versions
                 RETURNING version",
                params![schema_json, now_ms(), batch_id, file_path, reason],
                |r| r.get(0),
            )
            .map_err(sql_error(&self.db))
    }

    /// The newest stored schema version, if any: one row, read by the primary key.
    pub fn latest_schema(&self) -> Result<Option<SchemaVersion>, CheckpointError> {
        self.conn
            .query_row(
                &format!("{SCHEMA_SELECT} ORDER BY version DESC LIMIT 1"),
                [],
                schema_from_row,
            )
            .optional()
            .map_err(sql_error(&self.db))
    }

    /// Every stored schema version, oldest first.
    pub fn schema_versions(&self) -> Result<Vec<SchemaVersion>, CheckpointError> {
        let sql = sql_error(&self.db);
        let mut stmt = self
            .conn
            .prepare(&format!("{SCHEMA_SELECT} ORDER BY version"))
            .map_err(&sql)?;
        let rows = stmt
            .query_map([], schema_from_row)
            .map_err(&sql)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(&sql)?;
        Ok(rows)
    }
}

const SCHEMA_SELECT: &str =
    "SELECT version, schema_json, created_at_ms, batch_id, file_path, reason FROM schema_versions";

fn schema_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<SchemaVersion> {
    Ok(SchemaVersion {
        version: r.get(0)?,
        schema_json: r.get(1)?,
        created_at_ms: r.get(2)?,
        batch_id: r.get(3)?,
        file_path: r.get(4)?,
        reason: r.get(5)?,
    })
}

#[cfg(test)]
mod tests {
    use crate::test_support::me;
    use crate::Checkpoint;

    #[test]
    fn schema_versions_are_numbered() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cp = Checkpoint::open(dir.path(), "p", me()).expect("open");
        assert_eq!(
            cp.add_schema_version("{}", None, None, "inferred")
                .expect("v"),
            1
        );
        assert_eq!(
            cp.add_schema_version("{}", Some(2), Some("f"), "added c")
                .expect("v"),
            2
        );
        let latest = cp.latest_schema().expect("latest").expect("some");
        assert_eq!((latest.version, latest.reason.as_str()), (2, "added c"));
    }

    #[test]
    fn latest_schema_is_none_before_the_first_and_then_the_newest() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cp = Checkpoint::open(dir.path(), "p", me()).expect("open");
        assert!(cp.latest_schema().expect("latest").is_none());
        for (i, json) in ["{\"a\"}", "{\"b\"}", "{\"c\"}"].into_iter().enumerate() {
            cp.add_schema_version(json, Some(i as i64), Some("f"), "evolved")
                .expect("add");
        }
        let latest = cp.latest_schema().expect("latest").expect("some");
        assert_eq!(
            (latest.version, latest.schema_json.as_str(), latest.batch_id),
            (3, "{\"c\"}", Some(2))
        );
        let all = cp.schema_versions().expect("all");
        assert_eq!(
            all.iter().map(|v| v.version).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
    }
}
