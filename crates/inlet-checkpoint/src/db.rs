//! The one handle on a checkpoint: `Checkpoint` opens `inlet.db` with its pragmas, holds the
//! connection and, for a run, the runner lock for as long as it lives.

use std::path::{Path, PathBuf};

use rusqlite::Connection;

use crate::error::sql_error;
use crate::{CheckpointError, LockHolder, RunnerLock, DB_FILE};

/// An open checkpoint, held by exactly one runner for as long as it lives. Its methods are
/// kept by table: `meta.rs`, `files.rs`, `journal.rs` (batches), `schema_versions.rs`,
/// `tombstones.rs`; `layout.rs` makes and migrates the tables.
#[derive(Debug)]
pub struct Checkpoint {
    pub(crate) conn: Connection,
    /// The checkpoint directory, as errors about its use name it.
    pub(crate) dir: PathBuf,
    /// `inlet.db` inside it, as SQL errors name it.
    pub(crate) db: PathBuf,
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

    /// As [`Checkpoint::open`], with the runner lock of `dir` already taken (an `s3://`
    /// checkpoint locks its cache before replacing the database in it).
    pub fn open_locked(
        dir: &Path,
        pipeline_id: &str,
        lock: RunnerLock,
    ) -> Result<Self, CheckpointError> {
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
            .map_err(sql_error(&cp.db))?;
        if !initialized {
            return Ok(None);
        }
        cp.migrate()?;
        Ok(Some(cp))
    }

    /// Writes a consistent copy of the whole database to `to` (which must not exist), as a
    /// snapshot of an `s3://` checkpoint: `VACUUM INTO`, so the copy is compact and holds
    /// exactly the last committed transaction.
    pub fn copy_to(&self, to: &Path) -> Result<(), CheckpointError> {
        self.conn
            .execute("VACUUM INTO ?1", [to.to_string_lossy()])
            .map(|_| ())
            .map_err(sql_error(&self.db))
    }

    /// The checkpoint directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn open_db(dir: &Path, lock: Option<RunnerLock>) -> Result<Self, CheckpointError> {
        let db = dir.join(DB_FILE);
        let open_err = |source| CheckpointError::Open {
            path: db.clone(),
            source,
        };
        let conn = Connection::open(&db).map_err(open_err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(open_err)?;
        // Only the runner switches the file to WAL (a lasting setting of the file). When a
        // reader (`inlet files` while a run starts) switched it too, both held a shared lock
        // and asked for an exclusive one, and SQLite failed one of them at once ("database is
        // locked") rather than let them wait for each other: the run stopped.
        if lock.is_some() {
            // FULL: a plan record must survive power loss, or a batch committed to Delta
            // could be planned again under a new id. One fsync per batch, never per file.
            conn.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;")
                .map_err(open_err)?;
        }
        Ok(Self {
            conn,
            dir: dir.to_path_buf(),
            db,
            _lock: lock,
        })
    }

    fn init(&mut self, pipeline_id: &str) -> Result<(), CheckpointError> {
        self.create_layout()?;
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
}

/// Now, in milliseconds since the Unix epoch, as every `*_at_ms` column holds it.
pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::me;

    /// A reader leaves the file's journal mode alone: only the runner takes the exclusive
    /// lock that switching it needs, so a reader and a starting run cannot fail each other.
    #[test]
    fn a_reader_does_not_switch_the_journal_mode() {
        let dir = tempfile::tempdir().expect("tempdir");
        drop(Checkpoint::open(dir.path(), "p", me()).expect("create"));
        let path = dir.path().join(DB_FILE);
        rusqlite::Connection::open(&path)
            .expect("file")
            .execute_batch("PRAGMA journal_mode=DELETE;")
            .expect("back to a rollback journal");
        // Asked of a connection of its own: the mode is the file's.
        let mode = || -> String {
            rusqlite::Connection::open(&path)
                .expect("file")
                .query_row("PRAGMA journal_mode", [], |r| r.get(0))
                .expect("journal mode")
        };
        let read = Checkpoint::open_read_only(dir.path()).expect("readable");
        assert!(read.is_some(), "an existing checkpoint");
        assert_eq!(mode(), "delete");
        drop(read);
        let _run = Checkpoint::open(dir.path(), "p", me()).expect("open");
        assert_eq!(mode(), "wal");
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
    fn refuses_another_pipeline() {
        let dir = tempfile::tempdir().expect("tempdir");
        drop(Checkpoint::open(dir.path(), "one", me()).expect("open"));
        let err = Checkpoint::open(dir.path(), "two", me()).expect_err("mismatch");
        assert!(
            err.to_string().contains("belongs to pipeline 'one'"),
            "{err}"
        );
    }
}
