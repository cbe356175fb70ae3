//! The batch journal (`batches` table): a batch is planned with its files in one durable
//! transaction, then marked committed once it is in the Delta table; ids come from here.

use rusqlite::{params, OptionalExtension};
use serde::Serialize;

use crate::db::now_ms;
use crate::error::{sql_error, BadValue};
use crate::{Checkpoint, CheckpointError, FileRecord, NewFile};

pub(crate) const TABLE: &str = "
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
";

/// State of a batch in the journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BatchState {
    Planned,
    Committed,
}

impl BatchState {
    /// The states a `batches` row may hold, for errors about one that holds another.
    const EXPECTED: &'static str = "planned or committed";

    /// The state as stored in the `batches` table.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Planned => "planned",
            Self::Committed => "committed",
        }
    }

    /// The state stored as `s`, `None` for text that is none of them.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "planned" => Some(Self::Planned),
            "committed" => Some(Self::Committed),
            _ => None,
        }
    }
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

impl Checkpoint {
    /// Id the next batch must take: one past the highest batch in the journal.
    pub fn next_batch_id(&self) -> Result<i64, CheckpointError> {
        self.conn
            .query_row(
                "SELECT COALESCE(MAX(batch_id), 0) + 1 FROM batches",
                [],
                |r| r.get(0),
            )
            .map_err(sql_error(&self.db))
    }

    /// Highest committed batch id, 0 when none.
    pub fn last_committed_batch(&self) -> Result<i64, CheckpointError> {
        self.conn
            .query_row(
                "SELECT COALESCE(MAX(batch_id), 0) FROM batches WHERE state = 'committed'",
                [],
                |r| r.get(0),
            )
            .map_err(sql_error(&self.db))
    }

    /// The newest table version a committed batch recorded, `None` before any commit.
    pub fn last_delta_version(&self) -> Result<Option<i64>, CheckpointError> {
        self.conn
            .query_row("SELECT MAX(delta_version) FROM batches", [], |r| r.get(0))
            .map_err(sql_error(&self.db))
    }

    /// The state of batch `batch_id`, `None` when the journal does not hold it.
    pub fn batch_state(&self, batch_id: i64) -> Result<Option<BatchState>, CheckpointError> {
        let state: Option<String> = self
            .conn
            .query_row(
                "SELECT state FROM batches WHERE batch_id = ?1",
                [batch_id],
                |r| r.get(0),
            )
            .optional()
            .map_err(sql_error(&self.db))?;
        Ok(state.as_deref().and_then(BatchState::parse))
    }

    /// Records batch `batch_id` as planned with its files, in one durable transaction
    /// (step 4). After this returns, a crash leads recovery to confirm or replay exactly
    /// these files under this id. With `allow_overwrites` a path may come again with a new
    /// ETag; its earlier row stays as history. Refuses (a SQLite constraint error, nothing
    /// written) a `batch_id` the journal already holds and a (path, ETag) already recorded.
    pub fn plan_batch(&mut self, batch_id: i64, files: &[NewFile]) -> Result<(), CheckpointError> {
        let now = now_ms();
        let sql = sql_error(&self.db);
        let tx = self.conn.transaction().map_err(&sql)?;
        {
            let bytes: u64 = files.iter().map(|f| f.size).sum();
            tx.execute(
                "INSERT INTO batches(batch_id, state, planned_at_ms, file_count, bytes)
                 VALUES (?1, 'planned', ?2, ?3, ?4)",
                params![batch_id, now, files.len() as i64, bytes as i64],
            )
            .map_err(&sql)?;
            let mut stmt = tx
                .prepare_cached(
                    "INSERT INTO files(path, etag, size, last_modified_ms, discovered_at_ms,
                                       batch_id, state)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'pending')",
                )
                .map_err(&sql)?;
            for f in files {
                stmt.execute(params![
                    f.path,
                    f.etag,
                    f.size as i64,
                    f.last_modified_ms,
                    f.discovered_at_ms,
                    batch_id
                ])
                .map_err(&sql)?;
            }
        }
        tx.commit().map_err(&sql)
    }

    /// The planned batch left by an earlier run, if any (at most one exists: a run plans
    /// the next batch only after the previous one is committed). A batch that is neither
    /// planned nor committed is an error naming it ([`CheckpointError::Corrupt`]), never
    /// passed over: recovery must not plan past a batch it cannot read.
    pub fn planned_batch(&self) -> Result<Option<(BatchRecord, Vec<FileRecord>)>, CheckpointError> {
        let batch = self
            .conn
            .query_row(
                &format!("{BATCH_SELECT} WHERE state <> 'committed' ORDER BY batch_id LIMIT 1"),
                [],
                batch_from_row,
            )
            .optional()
            .map_err(sql_error(&self.db))?;
        match batch {
            None => Ok(None),
            Some(b) => {
                let files = self.batch_files(b.batch_id)?;
                Ok(Some((b, files)))
            }
        }
    }

    /// Records that batch `batch_id` is in the Delta table (step 7): the batch and its
    /// pending files become committed, with the Delta version when known. `file_rows` gives
    /// rows per file path where counted. Refuses a batch that is not planned
    /// ([`CheckpointError::BatchNotPlanned`]: committed already, or missing), and one whose
    /// stored state this inlet does not know ([`CheckpointError::Corrupt`]).
    pub fn mark_committed(
        &mut self,
        batch_id: i64,
        delta_version: Option<i64>,
        rows: Option<i64>,
        file_rows: &[(String, i64)],
    ) -> Result<(), CheckpointError> {
        let now = now_ms();
        let sql = sql_error(&self.db);
        let tx = self.conn.transaction().map_err(&sql)?;
        let state: Option<String> = tx
            .query_row(
                "SELECT state FROM batches WHERE batch_id = ?1",
                [batch_id],
                |r| r.get(0),
            )
            .optional()
            .map_err(&sql)?;
        match state.as_deref().map(BatchState::parse) {
            Some(Some(BatchState::Planned)) => {}
            Some(Some(BatchState::Committed)) | None => {
                return Err(CheckpointError::BatchNotPlanned {
                    path: self.dir.clone(),
                    batch_id,
                    state: state.unwrap_or_else(|| "missing".into()),
                })
            }
            Some(None) => {
                return Err(BadValue {
                    table: "batches",
                    key: batch_key(batch_id),
                    column: "state",
                    found: state.unwrap_or_default(),
                    expected: BatchState::EXPECTED,
                }
                .at(&self.db))
            }
        }
        tx.execute(
            "UPDATE batches SET state = 'committed', committed_at_ms = ?1, delta_version = ?2,
                    rows = ?3 WHERE batch_id = ?4",
            params![now, delta_version, rows, batch_id],
        )
        .map_err(&sql)?;
        tx.execute(
            "UPDATE files SET state = 'committed', committed_at_ms = ?1
             WHERE batch_id = ?2 AND state = 'pending'",
            params![now, batch_id],
        )
        .map_err(&sql)?;
        {
            let mut stmt = tx
                .prepare_cached("UPDATE files SET rows = ?1 WHERE batch_id = ?2 AND path = ?3")
                .map_err(&sql)?;
            for (path, n) in file_rows {
                stmt.execute(params![n, batch_id, path]).map_err(&sql)?;
            }
        }
        tx.commit().map_err(&sql)
    }

    /// All batches, oldest first.
    pub fn batches(&self) -> Result<Vec<BatchRecord>, CheckpointError> {
        let sql = sql_error(&self.db);
        let mut stmt = self
            .conn
            .prepare(&format!("{BATCH_SELECT} ORDER BY batch_id"))
            .map_err(&sql)?;
        let rows = stmt
            .query_map([], batch_from_row)
            .map_err(&sql)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(&sql)?;
        Ok(rows)
    }
}

const BATCH_SELECT: &str = "SELECT batch_id, state, planned_at_ms, committed_at_ms, delta_version,
       file_count, bytes, rows FROM batches";

fn batch_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<BatchRecord> {
    let batch_id: i64 = r.get(0)?;
    let state: String = r.get(1)?;
    let state = BatchState::parse(&state).ok_or_else(|| {
        BadValue {
            table: "batches",
            key: batch_key(batch_id),
            column: "state",
            found: state,
            expected: BatchState::EXPECTED,
        }
        .in_row(1)
    })?;
    Ok(BatchRecord {
        batch_id,
        state,
        planned_at_ms: r.get(2)?,
        committed_at_ms: r.get(3)?,
        delta_version: r.get(4)?,
        file_count: r.get(5)?,
        bytes: r.get(6)?,
        rows: r.get(7)?,
    })
}

/// A `batches` row's key as errors name it.
fn batch_key(batch_id: i64) -> String {
    format!("batch_id {batch_id}")
}

#[cfg(test)]
mod tests {
    use crate::test_support::{file, me, tamper};
    use crate::{BatchState, Checkpoint, CheckpointError, DedupeKey, FileState};

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
    fn a_batch_with_an_unknown_state_is_an_error_never_read_as_planned() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cp = Checkpoint::open(dir.path(), "p", me()).expect("open");
        cp.plan_batch(1, &[file("a", "e1")]).expect("plan");
        cp.mark_committed(1, Some(0), Some(1), &[]).expect("commit");
        cp.plan_batch(2, &[file("b", "e1")]).expect("plan");
        tamper(
            dir.path(),
            "UPDATE batches SET state = 'aborted' WHERE batch_id = 2",
        );
        let expect_named = |err: CheckpointError| {
            let text = err.to_string();
            assert!(matches!(err, CheckpointError::Corrupt { .. }), "{text}");
            assert!(
                text.contains(r#"the batches row with batch_id 2 has state "aborted""#),
                "{text}"
            );
            assert!(text.contains("expected planned or committed"), "{text}");
        };
        expect_named(cp.batches().expect_err("journal"));
        // Recovery must not pass over a batch it cannot read, nor commit it.
        expect_named(cp.planned_batch().expect_err("planned batch"));
        expect_named(
            cp.mark_committed(2, Some(1), None, &[])
                .expect_err("mark committed"),
        );
        tamper(
            dir.path(),
            "UPDATE batches SET state = 'planned' WHERE batch_id = 2",
        );
        let states: Vec<BatchState> = cp
            .batches()
            .expect("journal")
            .into_iter()
            .map(|b| b.state)
            .collect();
        assert_eq!(states, vec![BatchState::Committed, BatchState::Planned]);
    }

    #[test]
    fn a_plan_that_cannot_be_written_whole_writes_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cp = Checkpoint::open(dir.path(), "p", me()).expect("open");
        cp.plan_batch(1, &[file("a", "e1")]).expect("plan");
        cp.mark_committed(1, Some(0), Some(1), &[]).expect("commit");
        // "a" with the same ETag is recorded already; "b" must not be left planned alone.
        cp.plan_batch(2, &[file("b", "e1"), file("a", "e1")])
            .expect_err("a is recorded");
        cp.plan_batch(1, &[file("c", "e1")])
            .expect_err("batch 1 exists");
        assert!(cp.planned_batch().expect("planned").is_none());
        assert_eq!(cp.next_batch_id().expect("id"), 2);
        assert_eq!(cp.files(None).expect("files").len(), 1);
    }
}
