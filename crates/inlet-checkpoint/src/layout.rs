//! The layout of `inlet.db`: its version, the tables made on first open, and the migration
//! of an older checkpoint up to this version in one transaction; a newer one is refused.
//!
//! Layouts: 1, the first; 2 adds the clean-up columns of `files`; 3 adds
//! `files.skip_reason`, a [`SkipReason`](crate::SkipReason) code.

use std::path::Path;

use rusqlite::{params_from_iter, Connection, TransactionBehavior};

use crate::error::{sql_error, BadValue};
use crate::{files, journal, meta, schema_versions, tombstones};
use crate::{Checkpoint, CheckpointError, SkipReason};

/// Version of the table layout; bumped with a migration when it changes.
const LAYOUT_VERSION: i64 = 3;

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

/// Layout 2 to 3: the skip reason's code. Layout 2 stored a skip's reason as text only, in
/// `error`; a skipped row whose text is a [`SkipReason`]'s gets that code, any other text
/// (none is known, but a hand edit or a lost version could leave one) keeps its text with
/// no code. The text stays in `error` in every case: `inlet files` shows it.
fn migrate_2_to_3(tx: &Connection) -> rusqlite::Result<()> {
    tx.execute_batch("ALTER TABLE files ADD COLUMN skip_reason TEXT;")?;
    let cases = " WHEN ? THEN ?".repeat(SkipReason::ALL.len());
    let texts_and_codes = SkipReason::ALL
        .into_iter()
        .flat_map(|r| [r.text(), r.code()]);
    tx.execute(
        &format!("UPDATE files SET skip_reason = CASE error{cases} END WHERE state = 'skipped'"),
        params_from_iter(texts_and_codes),
    )?;
    Ok(())
}

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

    /// Brings an older layout up to this one, every step and the new version in one
    /// transaction (a crash leaves the old layout or the new, never a mix), refuses a newer
    /// one ([`CheckpointError::TooNew`]), and creates the indexes.
    pub(crate) fn migrate(&mut self) -> Result<(), CheckpointError> {
        let sql = sql_error(&self.db);
        if known(stored_version(&self.conn, &self.db)?, &self.db)? < LAYOUT_VERSION {
            // IMMEDIATE takes the write lock before the version is read again: of two
            // processes opening one older checkpoint (a run and `inlet files`), the second
            // waits (busy_timeout), then finds it migrated.
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(&sql)?;
            let found = known(stored_version(&tx, &self.db)?, &self.db)?;
            if found < 2 {
                tx.execute_batch(MIGRATE_1_TO_2).map_err(&sql)?;
            }
            if found < 3 {
                migrate_2_to_3(&tx).map_err(&sql)?;
            }
            if found < LAYOUT_VERSION {
                tx.execute(
                    "INSERT INTO meta(key, value) VALUES ('layout_version', ?1)
                     ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    [LAYOUT_VERSION.to_string()],
                )
                .map_err(&sql)?;
            }
            tx.commit().map_err(&sql)?;
        }
        create_indexes(&self.conn).map_err(&sql)
    }
}

/// `found`, unless it is newer than this build knows.
fn known(found: i64, db: &Path) -> Result<i64, CheckpointError> {
    if found > LAYOUT_VERSION {
        return Err(CheckpointError::TooNew {
            path: db.to_path_buf(),
            found,
            known: LAYOUT_VERSION,
        });
    }
    Ok(found)
}

/// The layout version the checkpoint `db` records; 1 when it records none (only layout 1
/// could leave none: it wrote the version after its tables). A value that is not a number
/// is refused, naming it.
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
    use crate::{FileState, DB_FILE};

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
        // Through layout 2 to layout 3, in one transaction.
        assert_eq!(
            cp.meta("layout_version").expect("meta").as_deref(),
            Some("3")
        );
        let files = cp.files(None).expect("files");
        assert_eq!((files.len(), files[0].cleaned_at_ms), (1, None));
    }

    /// A layout 2 checkpoint as the layout 2 code left it: batch 1 committed with a file
    /// skipped for each reason, one skipped for a text no reason has, one failed whose
    /// error reads like a skip, and one committed.
    fn layout_2_checkpoint(dir: &Path) {
        let conn = Connection::open(dir.join(DB_FILE)).expect("db");
        conn.execute_batch(LAYOUT_2).expect("layout 2");
        conn.execute_batch(
            "INSERT INTO meta VALUES ('layout_version', '2'), ('pipeline_id', 'p');
             INSERT INTO batches(batch_id, state, planned_at_ms, committed_at_ms, delta_version,
                                 file_count, bytes, rows)
             VALUES (1, 'committed', 1, 2, 0, 8, 80, 5);",
        )
        .expect("batch");
        let add = |path: &str, state: &str, error: Option<&str>| {
            conn.execute(
                "INSERT INTO files(path, etag, size, last_modified_ms, discovered_at_ms,
                                   batch_id, committed_at_ms, state, rows, error)
                 VALUES (?1, 'e', 10, 1, 1, 1, 2, ?2, NULL, ?3)",
                rusqlite::params![path, state, error],
            )
            .expect("file");
        };
        for r in SkipReason::ALL {
            add(r.code(), "skipped", Some(r.text()));
        }
        add("by-hand", "skipped", Some("set aside by hand"));
        add("failed", "failed", Some(SkipReason::Overwritten.text()));
        add("taken", "committed", None);
    }

    #[test]
    fn a_layout_2_checkpoint_gets_the_codes_of_its_skip_texts() {
        let dir = tempfile::tempdir().expect("tempdir");
        layout_2_checkpoint(dir.path());
        let cp = Checkpoint::open(dir.path(), "p", me()).expect("open");
        assert_eq!(
            cp.meta("layout_version").expect("meta").as_deref(),
            Some("3")
        );
        let files = cp.batch_files(1).expect("files");
        let got: Vec<(&str, FileState, Option<SkipReason>, Option<&str>)> = files
            .iter()
            .map(|f| (f.path.as_str(), f.state, f.skip_reason, f.error.as_deref()))
            .collect();
        let mut want: Vec<(&str, FileState, Option<SkipReason>, Option<&str>)> = SkipReason::ALL
            .into_iter()
            .map(|r| (r.code(), FileState::Skipped, Some(r), Some(r.text())))
            .collect();
        want.extend([
            (
                "by-hand",
                FileState::Skipped,
                None,
                Some("set aside by hand"),
            ),
            (
                "failed",
                FileState::Failed,
                None,
                Some(SkipReason::Overwritten.text()),
            ),
            ("taken", FileState::Committed, None, None),
        ]);
        want.sort_by_key(|w| w.0);
        assert_eq!(got, want);
        drop(cp);
        // Migrated once: opening again, to read or to run, changes nothing.
        let again = Checkpoint::open_read_only(dir.path())
            .expect("read")
            .expect("some");
        assert_eq!(
            again.meta("layout_version").expect("meta").as_deref(),
            Some("3")
        );
        drop(again);
        Checkpoint::open(dir.path(), "p", me()).expect("open again");
    }

    #[test]
    fn a_migration_that_fails_leaves_the_old_layout_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            // A layout 1 checkpoint whose files table somehow has a skip_reason column
            // already: 1 to 2 succeeds, 2 to 3 fails on it.
            let conn = Connection::open(dir.path().join(DB_FILE)).expect("db");
            let v1 = LAYOUT_2.replace("    cleaned_at_ms    INTEGER,\n    clean_action     TEXT,\n    archive_path     TEXT,\n", "    skip_reason      TEXT,\n");
            conn.execute_batch(&v1).expect("v1 layout");
            conn.execute_batch(
                "INSERT INTO meta VALUES ('layout_version', '1'), ('pipeline_id', 'p');",
            )
            .expect("v1 meta");
        }
        let err = Checkpoint::open(dir.path(), "p", me()).expect_err("duplicate column");
        assert!(err.to_string().contains("skip_reason"), "{err}");
        let conn = Connection::open(dir.path().join(DB_FILE)).expect("db");
        assert_eq!(
            meta::read(&conn, "layout_version")
                .expect("meta")
                .as_deref(),
            Some("1")
        );
        assert!(
            !columns(&conn, "files")
                .iter()
                .any(|c| c.0 == "cleaned_at_ms"),
            "the 1 to 2 step was rolled back with the failed 2 to 3 step"
        );
    }

    /// A column as (name, type, not null, primary key position).
    type Column = (String, String, bool, i64);

    fn columns(conn: &Connection, table: &str) -> Vec<Column> {
        let mut stmt = conn
            .prepare(&format!("PRAGMA table_info({table})"))
            .expect("prepare");
        stmt.query_map([], |r| Ok((r.get(1)?, r.get(2)?, r.get(3)?, r.get(5)?)))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows")
    }

    /// Every table's columns and every index, as a migrated and a new checkpoint must share.
    fn shape(dir: &Path) -> Vec<(String, Vec<Column>)> {
        let conn = Connection::open(dir.join(DB_FILE)).expect("db");
        let mut stmt = conn
            .prepare(
                "SELECT type, name FROM sqlite_master WHERE type IN ('table', 'index')
                 ORDER BY type, name",
            )
            .expect("prepare");
        let names: Vec<(String, String)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows");
        names
            .into_iter()
            .map(|(kind, name)| {
                let cols = if kind == "table" {
                    columns(&conn, &name)
                } else {
                    Vec::new()
                };
                (format!("{kind} {name}"), cols)
            })
            .collect()
    }

    #[test]
    fn a_migrated_checkpoint_has_the_tables_of_a_new_one() {
        let old = tempfile::tempdir().expect("tempdir");
        layout_2_checkpoint(old.path());
        drop(Checkpoint::open(old.path(), "p", me()).expect("migrate"));
        let new = tempfile::tempdir().expect("tempdir");
        drop(Checkpoint::open(new.path(), "p", me()).expect("create"));
        let made = shape(new.path());
        assert!(
            made.iter()
                .any(|(name, cols)| name == "table files"
                    && cols.iter().any(|c| c.0 == "skip_reason")),
            "{made:?}"
        );
        assert_eq!(shape(old.path()), made);
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
