//! The SQLite store: files seen, the batch journal and schema versions, with the few
//! transactions the exactly-once protocol needs (plan, commit, recover) each atomic.

use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use crate::{CheckpointError, LockHolder, RunnerLock, DB_FILE};

/// Version of the table layout below; bumped with a migration when it changes.
const LAYOUT_VERSION: i64 = 2;

const LAYOUT: &str = "
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

/// Layout 1 to 2: the clean-up columns (additive; older rows read as not cleaned).
const MIGRATE_1_TO_2: &str = "
ALTER TABLE files ADD COLUMN cleaned_at_ms INTEGER;
ALTER TABLE files ADD COLUMN clean_action TEXT;
ALTER TABLE files ADD COLUMN archive_path TEXT;
";

/// Indexes over columns a migration may have added, so created after migrating.
const INDEXES: &str = "
CREATE INDEX IF NOT EXISTS files_to_clean ON files(committed_at_ms)
    WHERE state = 'committed' AND cleaned_at_ms IS NULL;
CREATE INDEX IF NOT EXISTS files_by_age ON files(last_modified_ms);
";

/// State of a file in the checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FileState {
    /// In a planned batch whose commit is not yet confirmed.
    Pending,
    /// In a committed batch: its rows are in the table.
    Committed,
    /// Could not be read or decoded; its error is recorded.
    Failed,
    /// Planned but gone from the source when read (deleted before ingestion).
    Skipped,
}

impl FileState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Committed => "committed",
            Self::Failed => "failed",
            Self::Skipped => "skipped",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(Self::Pending),
            "committed" => Some(Self::Committed),
            "failed" => Some(Self::Failed),
            "skipped" => Some(Self::Skipped),
            _ => None,
        }
    }
}

/// State of a batch in the journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BatchState {
    Planned,
    Committed,
}

/// How discovered files are matched against the checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DedupeKey {
    /// A path taken once is never taken again (the default).
    Path,
    /// A path is taken again when its ETag changes (`allow_overwrites`).
    PathAndEtag,
}

/// A file to be planned into a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewFile {
    pub path: String,
    pub etag: String,
    pub size: u64,
    pub last_modified_ms: i64,
    pub discovered_at_ms: i64,
}

/// One row of the file log, as `inlet files` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct FileRecord {
    pub path: String,
    pub etag: String,
    pub size: u64,
    pub last_modified_ms: i64,
    pub discovered_at_ms: i64,
    pub batch_id: Option<i64>,
    pub committed_at_ms: Option<i64>,
    pub delta_version: Option<i64>,
    pub state: FileState,
    pub rows: Option<i64>,
    pub error: Option<String>,
    /// `clean_source`: when the file was archived or deleted.
    pub cleaned_at_ms: Option<i64>,
    /// `archived`, `deleted`, `gone` (not there to clean) or `kept: <why>`.
    pub clean_action: Option<String>,
    /// Where an archived file went.
    pub archive_path: Option<String>,
}

/// One batch of the journal.
#[derive(Debug, Clone, Serialize)]
pub struct BatchRecord {
    pub batch_id: i64,
    pub state: BatchState,
    pub planned_at_ms: i64,
    pub committed_at_ms: Option<i64>,
    pub delta_version: Option<i64>,
    pub file_count: i64,
    pub bytes: i64,
    pub rows: Option<i64>,
}

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

/// An open checkpoint, held by exactly one runner for as long as it lives.
#[derive(Debug)]
pub struct Checkpoint {
    conn: Connection,
    dir: PathBuf,
    _lock: Option<RunnerLock>,
}

impl Checkpoint {
    /// Opens (creating when missing) the checkpoint in `dir` for `pipeline_id` and takes its
    /// runner lock. Refuses with [`CheckpointError::Locked`] when another run holds it and
    /// with [`CheckpointError::PipelineMismatch`] when it belongs to another pipeline.
    pub fn open(dir: &Path, pipeline_id: &str, me: LockHolder) -> Result<Self, CheckpointError> {
        std::fs::create_dir_all(dir).map_err(|source| CheckpointError::Directory {
            path: dir.to_path_buf(),
            source,
        })?;
        let lock = RunnerLock::acquire(dir, me)?;
        let mut cp = Self::open_db(dir, Some(lock))?;
        cp.init(pipeline_id)?;
        Ok(cp)
    }

    /// Opens an existing checkpoint to read it (`inlet files`, `inlet schema`) without taking
    /// the runner lock: SQLite's WAL lets readers see the last committed state while a run
    /// goes on. Returns `Ok(None)` when there is no checkpoint at `dir` yet.
    pub fn open_read_only(dir: &Path) -> Result<Option<Self>, CheckpointError> {
        if !dir.join(DB_FILE).exists() {
            return Ok(None);
        }
        let mut cp = Self::open_db(dir, None)?;
        // A run creating the checkpoint this instant has made the file but not yet its
        // tables: to a reader that is no checkpoint yet, not an error.
        let initialized: bool = cp
            .conn
            .query_row("SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta')", [], |r| r.get(0))
            .map_err(cp.sql())?;
        if !initialized {
            return Ok(None);
        }
        cp.migrate()?;
        Ok(Some(cp))
    }

    fn open_db(dir: &Path, lock: Option<RunnerLock>) -> Result<Self, CheckpointError> {
        let path = dir.join(DB_FILE);
        let open_err = |source| CheckpointError::Open {
            path: path.clone(),
            source,
        };
        let conn = Connection::open(&path).map_err(open_err)?;
        // FULL: a plan record must survive power loss, or a batch committed to Delta could
        // be planned again under a new id. One fsync per batch, never per file.
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA busy_timeout=5000;",
        )
        .map_err(open_err)?;
        Ok(Self {
            conn,
            dir: dir.to_path_buf(),
            _lock: lock,
        })
    }

    fn sql(&self) -> impl Fn(rusqlite::Error) -> CheckpointError + '_ {
        move |source| CheckpointError::Sqlite {
            path: self.dir.join(DB_FILE),
            source,
        }
    }

    fn init(&mut self, pipeline_id: &str) -> Result<(), CheckpointError> {
        let path = self.dir.join(DB_FILE);
        let open_err = |source| CheckpointError::Open {
            path: path.clone(),
            source,
        };
        // One transaction: a reader (`inlet files`) sees no tables, or all of them with
        // their layout version, never a half-made checkpoint.
        let tx = self.conn.transaction().map_err(open_err)?;
        tx.execute_batch(LAYOUT).map_err(open_err)?;
        tx.execute(
            "INSERT OR IGNORE INTO meta(key, value) VALUES ('layout_version', ?1)",
            [LAYOUT_VERSION.to_string()],
        )
        .map_err(open_err)?;
        tx.commit().map_err(open_err)?;
        self.migrate()?;
        match self.meta("pipeline_id")? {
            Some(stored) if stored != pipeline_id => Err(CheckpointError::PipelineMismatch {
                path: self.dir.clone(),
                stored,
                configured: pipeline_id.to_string(),
            }),
            Some(_) => Ok(()),
            None => self.set_meta("pipeline_id", pipeline_id),
        }
    }

    /// Brings an older layout up to this one (in one transaction), refuses a newer one,
    /// and creates the indexes.
    fn migrate(&mut self) -> Result<(), CheckpointError> {
        let path = self.dir.join(DB_FILE);
        let found: i64 = self
            .meta("layout_version")?
            .and_then(|v| v.parse().ok())
            .unwrap_or(1);
        if found > LAYOUT_VERSION {
            return Err(CheckpointError::TooNew {
                path,
                found,
                known: LAYOUT_VERSION,
            });
        }
        let sql_err = |source| CheckpointError::Sqlite {
            path: path.clone(),
            source,
        };
        if found < 2 {
            let tx = self.conn.transaction().map_err(sql_err)?;
            tx.execute_batch(MIGRATE_1_TO_2).map_err(sql_err)?;
            tx.execute(
                "UPDATE meta SET value = '2' WHERE key = 'layout_version'",
                [],
            )
            .map_err(sql_err)?;
            tx.commit().map_err(sql_err)?;
        }
        self.conn.execute_batch(INDEXES).map_err(sql_err)
    }

    /// Committed files whose commit is at or before `before_ms` and that are not cleaned
    /// up yet, oldest commit first, at most `limit`.
    pub fn files_to_clean(
        &self,
        before_ms: i64,
        limit: usize,
    ) -> Result<Vec<FileRecord>, CheckpointError> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "{FILE_SELECT} WHERE f.state = 'committed' AND f.cleaned_at_ms IS NULL
                   AND f.committed_at_ms <= ?1
                 ORDER BY f.committed_at_ms, f.path LIMIT ?2"
            ))
            .map_err(self.sql())?;
        let rows = stmt
            .query_map(
                params![before_ms, i64::try_from(limit).unwrap_or(i64::MAX)],
                file_from_row,
            )
            .map_err(self.sql())?
            .collect::<Result<Vec<_>, _>>()
            .map_err(self.sql())?;
        Ok(rows)
    }

    /// Records that the file (path, etag) was cleaned up: `action` is `archived`,
    /// `deleted`, `gone` or `kept: <why>`; `archive_path` where an archived file went.
    pub fn set_cleaned(
        &self,
        path: &str,
        etag: &str,
        action: &str,
        archive_path: Option<&str>,
    ) -> Result<(), CheckpointError> {
        self.conn
            .execute(
                "UPDATE files SET cleaned_at_ms = ?1, clean_action = ?2, archive_path = ?3
                 WHERE path = ?4 AND etag = ?5",
                params![now_ms(), action, archive_path, path, etag],
            )
            .map(|_| ())
            .map_err(self.sql())
    }

    /// Forgets files last modified before `modified_before_ms` whose batch is done
    /// (`max_file_age` keeps discovery from ever taking such a file again, so their entries
    /// are not needed for dedupe). With `keep_uncleaned`, committed files whose clean-up is
    /// still to come stay. Returns how many entries went.
    pub fn compact(
        &mut self,
        modified_before_ms: i64,
        keep_uncleaned: bool,
    ) -> Result<usize, CheckpointError> {
        self.conn
            .execute(
                "DELETE FROM files
                 WHERE last_modified_ms < ?1 AND state <> 'pending'
                   AND NOT (?2 AND state = 'committed' AND cleaned_at_ms IS NULL)
                   AND batch_id IN (SELECT batch_id FROM batches WHERE state = 'committed')",
                params![modified_before_ms, keep_uncleaned],
            )
            .map_err(self.sql())
    }

    /// Directory of this checkpoint.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A stored meta value (`pipeline_id`, `first_start_ms`, ...).
    pub fn meta(&self, key: &str) -> Result<Option<String>, CheckpointError> {
        self.conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()
            .map_err(self.sql())
    }

    /// Sets a meta value, durably.
    pub fn set_meta(&self, key: &str, value: &str) -> Result<(), CheckpointError> {
        self.conn
            .execute(
                "INSERT INTO meta(key, value) VALUES (?1, ?2)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                params![key, value],
            )
            .map(|_| ())
            .map_err(self.sql())
    }

    /// Keeps the candidates the checkpoint has not seen, in their order: one indexed look-up
    /// per candidate, in one read transaction. `key` picks path or (path, ETag) identity.
    pub fn filter_unseen<T>(
        &mut self,
        candidates: Vec<T>,
        key: DedupeKey,
        path_etag: impl Fn(&T) -> (&str, &str),
    ) -> Result<Vec<T>, CheckpointError> {
        let sql_err = |source| CheckpointError::Sqlite {
            path: self.dir.join(DB_FILE),
            source,
        };
        let tx = self.conn.transaction().map_err(sql_err)?;
        let mut unseen = Vec::with_capacity(candidates.len());
        {
            let query = match key {
                DedupeKey::Path => "SELECT 1 FROM files WHERE path = ?1 LIMIT 1",
                DedupeKey::PathAndEtag => "SELECT 1 FROM files WHERE path = ?1 AND etag = ?2",
            };
            let mut stmt = tx.prepare_cached(query).map_err(sql_err)?;
            for c in candidates {
                let (path, etag) = path_etag(&c);
                let seen = match key {
                    DedupeKey::Path => stmt.exists([path]),
                    DedupeKey::PathAndEtag => stmt.exists([path, etag]),
                }
                .map_err(sql_err)?;
                if !seen {
                    unseen.push(c);
                }
            }
        }
        tx.commit().map_err(sql_err)?;
        Ok(unseen)
    }

    /// The tombstone sequence of each of `keys` that has one, in the order given (`None`
    /// where there is none). One indexed look-up per key.
    pub fn tombstones(&mut self, keys: &[String]) -> Result<Vec<Option<String>>, CheckpointError> {
        let sql_err = |source| CheckpointError::Sqlite {
            path: self.dir.join(DB_FILE),
            source,
        };
        let tx = self.conn.transaction().map_err(sql_err)?;
        let mut out = Vec::with_capacity(keys.len());
        {
            let mut stmt = tx
                .prepare_cached("SELECT seq FROM tombstones WHERE key = ?1")
                .map_err(sql_err)?;
            for key in keys {
                out.push(
                    stmt.query_row([key], |r| r.get(0))
                        .optional()
                        .map_err(sql_err)?,
                );
            }
        }
        tx.commit().map_err(sql_err)?;
        Ok(out)
    }

    /// Records deletes of batch `batch_id` as tombstones, keeping the higher sequence per key,
    /// and drops tombstones older than `retain_ms` (by the time they were written). Written
    /// before the batch commits: a replay writes the same ones again.
    pub fn put_tombstones(
        &mut self,
        batch_id: i64,
        deletes: &[(String, String)],
        retain_ms: i64,
    ) -> Result<(), CheckpointError> {
        let sql_err = |source| CheckpointError::Sqlite {
            path: self.dir.join(DB_FILE),
            source,
        };
        let now = now_ms();
        let tx = self.conn.transaction().map_err(sql_err)?;
        {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT INTO tombstones(key, seq, batch_id, deleted_at_ms) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT(key) DO UPDATE SET seq = excluded.seq, batch_id = excluded.batch_id,
                         deleted_at_ms = excluded.deleted_at_ms
                     WHERE excluded.seq > tombstones.seq",
                )
                .map_err(sql_err)?;
            for (key, seq) in deletes {
                stmt.execute(params![key, seq, batch_id, now])
                    .map_err(sql_err)?;
            }
        }
        tx.execute(
            "DELETE FROM tombstones WHERE deleted_at_ms < ?1",
            [now.saturating_sub(retain_ms)],
        )
        .map_err(sql_err)?;
        tx.commit().map_err(sql_err)
    }

    /// Id the next batch must take: one past the highest batch in the journal.
    pub fn next_batch_id(&self) -> Result<i64, CheckpointError> {
        self.conn
            .query_row(
                "SELECT COALESCE(MAX(batch_id), 0) + 1 FROM batches",
                [],
                |r| r.get(0),
            )
            .map_err(self.sql())
    }

    /// Highest committed batch id, 0 when none.
    pub fn last_committed_batch(&self) -> Result<i64, CheckpointError> {
        self.conn
            .query_row(
                "SELECT COALESCE(MAX(batch_id), 0) FROM batches WHERE state = 'committed'",
                [],
                |r| r.get(0),
            )
            .map_err(self.sql())
    }

    /// Records batch `batch_id` as planned with its files, in one durable transaction
    /// (step 4). After this returns, a crash leads recovery to confirm or replay exactly
    /// these files under this id. With `allow_overwrites` a path may come again with a new
    /// ETag; its earlier row stays as history.
    pub fn plan_batch(&mut self, batch_id: i64, files: &[NewFile]) -> Result<(), CheckpointError> {
        let now = now_ms();
        let sql_err = |source| CheckpointError::Sqlite {
            path: self.dir.join(DB_FILE),
            source,
        };
        let tx = self.conn.transaction().map_err(sql_err)?;
        {
            let bytes: u64 = files.iter().map(|f| f.size).sum();
            tx.execute(
                "INSERT INTO batches(batch_id, state, planned_at_ms, file_count, bytes)
                 VALUES (?1, 'planned', ?2, ?3, ?4)",
                params![batch_id, now, files.len() as i64, bytes as i64],
            )
            .map_err(sql_err)?;
            let mut stmt = tx
                .prepare_cached(
                    "INSERT INTO files(path, etag, size, last_modified_ms, discovered_at_ms,
                                       batch_id, state)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'pending')",
                )
                .map_err(sql_err)?;
            for f in files {
                stmt.execute(params![
                    f.path,
                    f.etag,
                    f.size as i64,
                    f.last_modified_ms,
                    f.discovered_at_ms,
                    batch_id
                ])
                .map_err(sql_err)?;
            }
        }
        tx.commit().map_err(sql_err)
    }

    /// The planned batch left by an earlier run, if any (at most one exists: a run plans
    /// the next batch only after the previous one is committed).
    pub fn planned_batch(&self) -> Result<Option<(BatchRecord, Vec<FileRecord>)>, CheckpointError> {
        let batch = self
            .conn
            .query_row(
                &format!("{BATCH_SELECT} WHERE state = 'planned' ORDER BY batch_id LIMIT 1"),
                [],
                batch_from_row,
            )
            .optional()
            .map_err(self.sql())?;
        match batch {
            None => Ok(None),
            Some(b) => {
                let files = self.batch_files(b.batch_id)?;
                Ok(Some((b, files)))
            }
        }
    }

    /// Files of one batch, in path order.
    pub fn batch_files(&self, batch_id: i64) -> Result<Vec<FileRecord>, CheckpointError> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "{FILE_SELECT} WHERE f.batch_id = ?1 ORDER BY f.path"
            ))
            .map_err(self.sql())?;
        let rows = stmt
            .query_map([batch_id], file_from_row)
            .map_err(self.sql())?
            .collect::<Result<Vec<_>, _>>()
            .map_err(self.sql())?;
        Ok(rows)
    }

    /// Marks one file of a planned batch `skipped` or `failed` with its reason; it will not
    /// be part of the batch's commit and is not taken again.
    pub fn set_file_outcome(
        &self,
        batch_id: i64,
        path: &str,
        state: FileState,
        reason: &str,
    ) -> Result<(), CheckpointError> {
        self.conn
            .execute(
                "UPDATE files SET state = ?1, error = ?2 WHERE batch_id = ?3 AND path = ?4",
                params![state.as_str(), reason, batch_id, path],
            )
            .map(|_| ())
            .map_err(self.sql())
    }

    /// Records that batch `batch_id` is in the Delta table (step 7): the batch and its
    /// pending files become committed, with the Delta version when known. `file_rows` gives
    /// rows per file path where counted. Refuses a batch that is not planned.
    pub fn mark_committed(
        &mut self,
        batch_id: i64,
        delta_version: Option<i64>,
        rows: Option<i64>,
        file_rows: &[(String, i64)],
    ) -> Result<(), CheckpointError> {
        let now = now_ms();
        let dir = self.dir.clone();
        let sql_err = |source| CheckpointError::Sqlite {
            path: dir.join(DB_FILE),
            source,
        };
        let tx = self.conn.transaction().map_err(sql_err)?;
        let state: Option<String> = tx
            .query_row(
                "SELECT state FROM batches WHERE batch_id = ?1",
                [batch_id],
                |r| r.get(0),
            )
            .optional()
            .map_err(sql_err)?;
        if state.as_deref() != Some("planned") {
            return Err(CheckpointError::BatchNotPlanned {
                path: dir,
                batch_id,
                state: state.unwrap_or_else(|| "missing".into()),
            });
        }
        tx.execute(
            "UPDATE batches SET state = 'committed', committed_at_ms = ?1, delta_version = ?2,
                    rows = ?3 WHERE batch_id = ?4",
            params![now, delta_version, rows, batch_id],
        )
        .map_err(sql_err)?;
        tx.execute(
            "UPDATE files SET state = 'committed', committed_at_ms = ?1
             WHERE batch_id = ?2 AND state = 'pending'",
            params![now, batch_id],
        )
        .map_err(sql_err)?;
        {
            let mut stmt = tx
                .prepare_cached("UPDATE files SET rows = ?1 WHERE batch_id = ?2 AND path = ?3")
                .map_err(sql_err)?;
            for (path, n) in file_rows {
                stmt.execute(params![n, batch_id, path]).map_err(sql_err)?;
            }
        }
        tx.commit().map_err(sql_err)
    }

    /// Forgets a `failed` or `skipped` file so that discovery takes it again (after the user
    /// fixed or restored it). Returns the state it had. Refuses committed and pending files:
    /// taking a committed file again would duplicate its rows, and a pending one belongs to
    /// a batch in flight.
    pub fn retry_file(&self, path: &str) -> Result<FileState, CheckpointError> {
        let state: Option<String> = self
            .conn
            .query_row(
                "SELECT state FROM files WHERE path = ?1 ORDER BY batch_id DESC LIMIT 1",
                [path],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.sql())?;
        let Some(state) = state.as_deref().and_then(FileState::parse) else {
            return Err(CheckpointError::NoSuchFile {
                path: self.dir.clone(),
                file: path.to_string(),
            });
        };
        if !matches!(state, FileState::Failed | FileState::Skipped) {
            return Err(CheckpointError::NotRetryable {
                path: self.dir.clone(),
                file: path.to_string(),
                state: state.as_str().to_string(),
            });
        }
        self.conn
            .execute(
                "DELETE FROM files WHERE path = ?1 AND state IN ('failed', 'skipped')",
                [path],
            )
            .map_err(self.sql())?;
        Ok(state)
    }

    /// The file log, newest batch first, optionally only files in `state`.
    pub fn files(&self, state: Option<FileState>) -> Result<Vec<FileRecord>, CheckpointError> {
        let mut stmt = self
            .conn
            .prepare(&format!(
                "{FILE_SELECT} WHERE (?1 IS NULL OR f.state = ?1)
                 ORDER BY f.batch_id DESC, f.path"
            ))
            .map_err(self.sql())?;
        let rows = stmt
            .query_map([state.map(FileState::as_str)], file_from_row)
            .map_err(self.sql())?
            .collect::<Result<Vec<_>, _>>()
            .map_err(self.sql())?;
        Ok(rows)
    }

    /// All batches, oldest first.
    pub fn batches(&self) -> Result<Vec<BatchRecord>, CheckpointError> {
        let mut stmt = self
            .conn
            .prepare(&format!("{BATCH_SELECT} ORDER BY batch_id"))
            .map_err(self.sql())?;
        let rows = stmt
            .query_map([], batch_from_row)
            .map_err(self.sql())?
            .collect::<Result<Vec<_>, _>>()
            .map_err(self.sql())?;
        Ok(rows)
    }

    /// Stores a new schema version (the first when none exists) and returns its number.
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
            .map_err(self.sql())
    }

    /// The newest stored schema version, if any.
    pub fn latest_schema(&self) -> Result<Option<SchemaVersion>, CheckpointError> {
        Ok(self.schema_versions()?.pop())
    }

    /// Every stored schema version, oldest first.
    pub fn schema_versions(&self) -> Result<Vec<SchemaVersion>, CheckpointError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT version, schema_json, created_at_ms, batch_id, file_path, reason
                 FROM schema_versions ORDER BY version",
            )
            .map_err(self.sql())?;
        let rows = stmt
            .query_map([], |r| {
                Ok(SchemaVersion {
                    version: r.get(0)?,
                    schema_json: r.get(1)?,
                    created_at_ms: r.get(2)?,
                    batch_id: r.get(3)?,
                    file_path: r.get(4)?,
                    reason: r.get(5)?,
                })
            })
            .map_err(self.sql())?
            .collect::<Result<Vec<_>, _>>()
            .map_err(self.sql())?;
        Ok(rows)
    }
}

const BATCH_SELECT: &str = "SELECT batch_id, state, planned_at_ms, committed_at_ms, delta_version,
       file_count, bytes, rows FROM batches";

const FILE_SELECT: &str = "SELECT f.path, f.etag, f.size, f.last_modified_ms, f.discovered_at_ms,
       f.batch_id, f.committed_at_ms, b.delta_version, f.state, f.rows, f.error,
       f.cleaned_at_ms, f.clean_action, f.archive_path
  FROM files f LEFT JOIN batches b ON b.batch_id = f.batch_id";

fn batch_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<BatchRecord> {
    let state: String = r.get(1)?;
    Ok(BatchRecord {
        batch_id: r.get(0)?,
        state: if state == "committed" {
            BatchState::Committed
        } else {
            BatchState::Planned
        },
        planned_at_ms: r.get(2)?,
        committed_at_ms: r.get(3)?,
        delta_version: r.get(4)?,
        file_count: r.get(5)?,
        bytes: r.get(6)?,
        rows: r.get(7)?,
    })
}

fn file_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<FileRecord> {
    let state: String = r.get(8)?;
    let size: i64 = r.get(2)?;
    Ok(FileRecord {
        path: r.get(0)?,
        etag: r.get(1)?,
        size: size.max(0) as u64,
        last_modified_ms: r.get(3)?,
        discovered_at_ms: r.get(4)?,
        batch_id: r.get(5)?,
        committed_at_ms: r.get(6)?,
        delta_version: r.get(7)?,
        state: FileState::parse(&state).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(
                8,
                rusqlite::types::Type::Text,
                format!("unknown file state '{state}'").into(),
            )
        })?,
        rows: r.get(9)?,
        error: r.get(10)?,
        cleaned_at_ms: r.get(11)?,
        clean_action: r.get(12)?,
        archive_path: r.get(13)?,
    })
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn me() -> LockHolder {
        LockHolder {
            host: "test".into(),
            pid: std::process::id(),
            since: "now".into(),
        }
    }

    fn file(path: &str, etag: &str) -> NewFile {
        NewFile {
            path: path.into(),
            etag: etag.into(),
            size: 10,
            last_modified_ms: 1,
            discovered_at_ms: 2,
        }
    }

    #[test]
    fn a_checkpoint_file_without_tables_yet_reads_as_none() {
        let dir = tempfile::tempdir().expect("tempdir");
        rusqlite::Connection::open(dir.path().join(DB_FILE))
            .expect("create")
            .execute_batch("PRAGMA journal_mode=WAL;")
            .expect("wal");
        assert!(Checkpoint::open_read_only(dir.path())
            .expect("readable")
            .is_none());
    }

    #[test]
    fn plan_commit_and_dedupe() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cp = Checkpoint::open(dir.path(), "p", me()).expect("open");
        assert_eq!(cp.next_batch_id().expect("id"), 1);
        cp.plan_batch(1, &[file("a", "e1"), file("b", "e1")])
            .expect("plan");
        let (b, files) = cp.planned_batch().expect("planned").expect("some");
        assert_eq!(b.batch_id, 1);
        assert_eq!(files.len(), 2);
        assert!(files.iter().all(|f| f.state == FileState::Pending));

        cp.mark_committed(1, Some(3), Some(20), &[("a".into(), 12)])
            .expect("commit");
        assert!(cp.planned_batch().expect("planned").is_none());
        let err = cp.mark_committed(1, Some(3), None, &[]).expect_err("twice");
        assert!(err.to_string().contains("batch 1 is not planned"), "{err}");

        let candidates = vec![("a", "e1"), ("a", "e2"), ("c", "e1")];
        let by_path = cp
            .filter_unseen(candidates.clone(), DedupeKey::Path, |c| (c.0, c.1))
            .expect("dedupe");
        assert_eq!(by_path, vec![("c", "e1")]);
        let by_etag = cp
            .filter_unseen(candidates, DedupeKey::PathAndEtag, |c| (c.0, c.1))
            .expect("dedupe");
        assert_eq!(by_etag, vec![("a", "e2"), ("c", "e1")]);

        let committed = cp.files(Some(FileState::Committed)).expect("files");
        assert_eq!(committed.len(), 2);
        let a = committed.iter().find(|f| f.path == "a").expect("a");
        assert_eq!((a.rows, a.delta_version), (Some(12), Some(3)));
    }

    #[test]
    fn failed_files_can_be_retried_committed_ones_cannot() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cp = Checkpoint::open(dir.path(), "p", me()).expect("open");
        cp.plan_batch(1, &[file("a", "e1"), file("b", "e1")])
            .expect("plan");
        cp.set_file_outcome(1, "b", FileState::Failed, "truncated gzip")
            .expect("fail");
        cp.mark_committed(1, Some(1), Some(1), &[]).expect("commit");

        let err = cp.retry_file("a").expect_err("committed");
        assert!(
            err.to_string()
                .contains("file a is committed, not failed or skipped"),
            "{err}"
        );
        let err = cp.retry_file("zz").expect_err("unknown");
        assert!(err.to_string().contains("has no file zz"), "{err}");
        assert_eq!(cp.retry_file("b").expect("retry"), FileState::Failed);
        let unseen = cp
            .filter_unseen(vec![("a", "e1"), ("b", "e1")], DedupeKey::Path, |c| {
                (c.0, c.1)
            })
            .expect("dedupe");
        assert_eq!(unseen, vec![("b", "e1")]);
    }

    #[test]
    fn tombstones_keep_the_latest_delete() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cp = Checkpoint::open(dir.path(), "p", me()).expect("open");
        let day = 86_400_000;
        cp.put_tombstones(
            1,
            &[("[1]".into(), "05".into()), ("[2]".into(), "03".into())],
            day,
        )
        .expect("put");
        cp.put_tombstones(
            2,
            &[("[1]".into(), "04".into()), ("[2]".into(), "09".into())],
            day,
        )
        .expect("put");
        let got = cp
            .tombstones(&["[1]".into(), "[2]".into(), "[3]".into()])
            .expect("get");
        assert_eq!(got, vec![Some("05".into()), Some("09".into()), None]);
        cp.put_tombstones(3, &[], -1).expect("expire all");
        assert_eq!(cp.tombstones(&["[1]".into()]).expect("get"), vec![None]);
    }

    #[test]
    fn compaction_keeps_pending_and_uncleaned_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cp = Checkpoint::open(dir.path(), "p", me()).expect("open");
        let aged = |path: &str, modified: i64| NewFile {
            last_modified_ms: modified,
            ..file(path, "e")
        };
        cp.plan_batch(
            1,
            &[aged("old-a", 100), aged("old-b", 100), aged("new", 900)],
        )
        .expect("plan");
        cp.mark_committed(1, Some(1), None, &[]).expect("commit");
        cp.plan_batch(2, &[aged("old-pending", 100)]).expect("plan");
        cp.set_cleaned("old-a", "e", "archived", Some("s3://b/archive/old-a"))
            .expect("clean");
        // With clean-up on, only the cleaned old file may go; the pending one always stays.
        assert_eq!(cp.compact(500, true).expect("compact"), 1);
        assert_eq!(cp.compact(500, false).expect("compact"), 1);
        let left: Vec<String> = cp
            .files(None)
            .expect("files")
            .into_iter()
            .map(|f| f.path)
            .collect();
        assert_eq!(left, vec!["old-pending".to_string(), "new".to_string()]);
        assert_eq!(cp.files_to_clean(i64::MAX, 10).expect("to clean").len(), 1);
    }

    #[test]
    fn a_layout_1_checkpoint_is_migrated() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let conn = Connection::open(dir.path().join(DB_FILE)).expect("db");
            let v1 = LAYOUT.replace("    cleaned_at_ms    INTEGER,\n    clean_action     TEXT,\n    archive_path     TEXT,\n", "");
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
    fn refuses_another_pipeline() {
        let dir = tempfile::tempdir().expect("tempdir");
        drop(Checkpoint::open(dir.path(), "one", me()).expect("open"));
        let err = Checkpoint::open(dir.path(), "two", me()).expect_err("mismatch");
        assert!(
            err.to_string().contains("belongs to pipeline 'one'"),
            "{err}"
        );
    }

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
}
