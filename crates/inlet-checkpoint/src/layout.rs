//! The layout of `inlet.db`: its version, the tables made on first open, and the migration
//! of an older checkpoint up to this version in one transaction; a newer one is refused.

use std::path::Path;

use rusqlite::Connection;

use crate::error::{sql_error, BadValue};
use crate::{files, journal, meta, schema_versions, tombstones};
use crate::{Checkpoint, CheckpointError};

/// Version of the table layout; bumped with a migration when it changes.
const LAYOUT_VERSION: i64 = 2;

/// Every table, in the order made; each is described beside its queries.
const TABLES: [&str; 5] = [
    meta::TABLE,
    files::TABLE,
    journal::TABLE,
    tombstones::TABLE,
    schema_versions::TABLE,
];

/// Layout 1 to 2: the clean-up columns (additive; older rows read as not cleaned).
const MIGRATE_1_TO_2: &str = "
ALTER TABLE files ADD COLUMN cleaned_at_ms INTEGER;
ALTER TABLE files ADD COLUMN clean_action TEXT;
ALTER TABLE files ADD COLUMN archive_path TEXT;
";

impl Checkpoint {
    /// Makes the tables that are missing and records the layout version of a new checkpoint.
    pub(crate) fn create_layout(&mut self) -> Result<(), CheckpointError> {
        let open_err = |source| CheckpointError::Open {
            path: self.db.clone(),
            source,
        };
        // One transaction: a reader (`inlet files`) sees no tables, or all of them with
        // their layout version, never a half-made checkpoint.
        let tx = self.conn.transaction().map_err(open_err)?;
        for table in TABLES {
            tx.execute_batch(table).map_err(open_err)?;
        }
        tx.execute(
            "INSERT OR IGNORE INTO meta(key, value) VALUES ('layout_version', ?1)",
            [LAYOUT_VERSION.to_string()],
        )
        .map_err(open_err)?;
        tx.commit().map_err(open_err)
    }

    /// Brings an older layout up to this one (in one transaction), refuses a newer one,
    /// and creates the indexes.
    pub(crate) fn migrate(&mut self) -> Result<(), CheckpointError> {
        let sql = sql_error(&self.db);
        let found = stored_version(&self.conn, &self.db)?;
        if found > LAYOUT_VERSION {
            return Err(CheckpointError::TooNew {
                path: self.db.clone(),
                found,
                known: LAYOUT_VERSION,
            });
        }
        if found < 2 {
            let tx = self.conn.transaction().map_err(&sql)?;
            tx.execute_batch(MIGRATE_1_TO_2).map_err(&sql)?;
            tx.execute(
                "UPDATE meta SET value = '2' WHERE key = 'layout_version'",
                [],
            )
            .map_err(&sql)?;
            tx.commit().map_err(&sql)?;
        }
        create_indexes(&self.conn).map_err(&sql)
    }
}

/// The layout version the checkpoint `db` records; 1 when it records none (the first
/// layout wrote no version). A value that is not a number is refused, naming it.
fn stored_version(conn: &Connection, db: &Path) -> Result<i64, CheckpointError> {
    let Some(text) = meta::read(conn, "layout_version").map_err(sql_error(db))? else {
        return Ok(1);
    };
    text.parse().map_err(|_| {
        BadValue {
            table: "meta",
            key: "key \"layout_version\"".into(),
            column: "value",
            found: text.clone(),
            expected: "a layout version number",
        }
        .at(db)
    })
}

/// Indexes over columns a migration may have added, so made after migrating.
fn create_indexes(conn: &Connection) -> rusqlite::Result<()> {
    conn.execute_batch(files::INDEXES)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{me, tamper};
    use crate::DB_FILE;

    /// The layout 2 tables exactly as the layout 2 code made them.
    const LAYOUT_2: &str = "
CREATE TABLE IF NOT EXISTS meta(
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
-- One row per (path, etag) taken. Without allow_overwrites etag is still recorded, and
-- dedupe looks up by path alone, which the primary key's prefix serves.
CREATE TABLE IF NOT EXISTS files(
    path             TEXT NOT NULL,
    etag             TEXT NOT NULL,
    size             INTEGER NOT NULL,
    last_modified_ms INTEGER NOT NULL,
    discovered_at_ms INTEGER NOT NULL,
    batch_id         INTEGER,
    committed_at_ms  INTEGER,
    state            TEXT NOT NULL,
    rows             INTEGER,
    error            TEXT,
    -- clean_source: when the file was archived or deleted, how, and where it went.
    cleaned_at_ms    INTEGER,
    clean_action     TEXT,
    archive_path     TEXT,
    PRIMARY KEY(path, etag)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS files_by_batch ON files(batch_id);
CREATE TABLE IF NOT EXISTS batches(
    batch_id        INTEGER PRIMARY KEY,
    state           TEXT NOT NULL,
    planned_at_ms   INTEGER NOT NULL,
    committed_at_ms INTEGER,
    delta_version   INTEGER,
    file_count      INTEGER NOT NULL,
    bytes           INTEGER NOT NULL,
    rows            INTEGER
);
-- MERGE tombstones: the latest delete per key (key = JSON array of the key values; seq in
-- an order-preserving text form), so an older update arriving later cannot revive the row.
CREATE TABLE IF NOT EXISTS tombstones(
    key           TEXT PRIMARY KEY,
    seq           TEXT NOT NULL,
    batch_id      INTEGER NOT NULL,
    deleted_at_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS schema_versions(
    version       INTEGER PRIMARY KEY,
    schema_json   TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    batch_id      INTEGER,
    file_path     TEXT,
    reason        TEXT NOT NULL
);
";

    #[test]
    fn a_layout_1_checkpoint_is_migrated() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let conn = Connection::open(dir.path().join(DB_FILE)).expect("db");
            let v1 = LAYOUT_2.replace("    cleaned_at_ms    INTEGER,\n    clean_action     TEXT,\n    archive_path     TEXT,\n", "");
            assert!(
                !v1.contains("cleaned_at_ms"),
                "the layout 1 files table has no clean-up columns"
            );
            conn.execute_batch(&v1).expect("v1 layout");
            conn.execute_batch(
                "INSERT INTO meta VALUES ('layout_version', '1'), ('pipeline_id', 'p');
                 INSERT INTO files(path, etag, size, last_modified_ms, discovered_at_ms, state)
                 VALUES ('a', 'e', 1, 1, 1, 'failed');",
            )
            .expect("v1 rows");
        }
        let cp = Checkpoint::open(dir.path(), "p", me()).expect("open");
        assert_eq!(
            cp.meta("layout_version").expect("meta").as_deref(),
            Some("2")
        );
        let files = cp.files(None).expect("files");
        assert_eq!((files.len(), files[0].cleaned_at_ms), (1, None));
    }

    #[test]
    fn a_new_checkpoint_has_the_layout_2_tables() {
        let dir = tempfile::tempdir().expect("tempdir");
        let made = Connection::open_in_memory().expect("db");
        made.execute_batch(LAYOUT_2).expect("layout 2");
        drop(Checkpoint::open(dir.path(), "p", me()).expect("open"));
        let ours = Connection::open(dir.path().join(DB_FILE)).expect("db");
        let tables = |c: &Connection| -> Vec<(String, String)> {
            let mut stmt = c
                .prepare("SELECT name, sql FROM sqlite_master WHERE type = 'table' ORDER BY name")
                .expect("prepare");
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .expect("query")
                .collect::<Result<_, _>>()
                .expect("rows")
        };
        assert_eq!(tables(&ours), tables(&made));
    }

    #[test]
    fn a_layout_version_that_is_not_a_number_is_refused_not_migrated() {
        let dir = tempfile::tempdir().expect("tempdir");
        drop(Checkpoint::open(dir.path(), "p", me()).expect("open"));
        tamper(
            dir.path(),
            "UPDATE meta SET value = 'two' WHERE key = 'layout_version'",
        );
        let err = Checkpoint::open(dir.path(), "p", me()).expect_err("bad version");
        assert!(
            err.to_string().contains(
                r#"the meta row with key "layout_version" has value "two", which this inlet does not know (expected a layout version number)"#
            ),
            "{err}"
        );
        let err = Checkpoint::open_read_only(dir.path()).expect_err("bad version");
        assert!(matches!(err, CheckpointError::Corrupt { .. }), "{err}");
    }
}
