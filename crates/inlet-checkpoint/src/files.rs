//! The `files` table: every file taken, by (path, ETag), with its batch and outcome. Dedupe,
//! the file log (`inlet files`), retry, clean-up state and compaction read and write it.

use rusqlite::{params, OptionalExtension};
use serde::Serialize;

use crate::db::now_ms;
use crate::error::{sql_error, BadValue};
use crate::{Checkpoint, CheckpointError, SkipReason};

pub(crate) const TABLE: &str = "
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
    -- Why a skipped file was not read: a SkipReason code. NULL for the other states, and
    -- for a skip recorded (before layout 3) with a text no SkipReason has.
    skip_reason      TEXT,
    PRIMARY KEY(path, etag)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS files_by_batch ON files(batch_id);
";

/// Indexes over columns a migration may have added, so made after migrating.
pub(crate) const INDEXES: &str = "
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
    /// Planned but not read, for its [`SkipReason`] (gone from the source, rewritten, or a
    /// path that cannot be addressed); not taken again.
    Skipped,
}

impl FileState {
    /// The states a `files` row may hold, for errors about one that holds another.
    const EXPECTED: &'static str = "pending, committed, failed or skipped";

    /// The state as stored in the `files` table and shown by `inlet files`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Committed => "committed",
            Self::Failed => "failed",
            Self::Skipped => "skipped",
        }
    }

    /// The state stored as `s`, `None` for text that is none of them.
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
    /// Why the file failed, or why it was skipped, for people.
    pub error: Option<String>,
    /// Why a `skipped` file was not read; `None` for the other states, and for a skip
    /// recorded with a text no [`SkipReason`] has (by an older inlet).
    pub skip_reason: Option<SkipReason>,
    /// `clean_source`: when the file was archived or deleted.
    pub cleaned_at_ms: Option<i64>,
    /// `archived`, `deleted`, `gone` (not there to clean) or `kept: <why>`.
    pub clean_action: Option<String>,
    /// Where an archived file went.
    pub archive_path: Option<String>,
}

impl Checkpoint {
    /// Keeps the candidates the checkpoint has not seen, in their order: one indexed look-up
    /// per candidate, in one read transaction. `key` picks path or (path, ETag) identity.
    pub fn filter_unseen<T>(
        &mut self,
        candidates: Vec<T>,
        key: DedupeKey,
        path_etag: impl Fn(&T) -> (&str, &str),
    ) -> Result<Vec<T>, CheckpointError> {
        let sql = sql_error(&self.db);
        let tx = self.conn.transaction().map_err(&sql)?;
        let mut unseen = Vec::with_capacity(candidates.len());
        {
            let query = match key {
                DedupeKey::Path => "SELECT 1 FROM files WHERE path = ?1 LIMIT 1",
                DedupeKey::PathAndEtag => "SELECT 1 FROM files WHERE path = ?1 AND etag = ?2",
            };
            let mut stmt = tx.prepare_cached(query).map_err(&sql)?;
            for c in candidates {
                let (path, etag) = path_etag(&c);
                let seen = match key {
                    DedupeKey::Path => stmt.exists([path]),
                    DedupeKey::PathAndEtag => stmt.exists([path, etag]),
                }
                .map_err(&sql)?;
                if !seen {
                    unseen.push(c);
                }
            }
        }
        tx.commit().map_err(&sql)?;
        Ok(unseen)
    }

    /// Files of one batch, in path order.
    pub fn batch_files(&self, batch_id: i64) -> Result<Vec<FileRecord>, CheckpointError> {
        self.file_rows(
            &format!("{FILE_SELECT} WHERE f.batch_id = ?1 ORDER BY f.path"),
            [batch_id],
        )
    }

    /// Marks the file at `path` in batch `batch_id` `skipped` for `reason`: the reason's
    /// code is stored, and its text as the file's error. The file is left out of the
    /// batch's commit and is not taken again (until [`retry_file`](Self::retry_file)).
    /// Durable when it returns. Refuses nothing: a path the batch does not hold changes no
    /// row.
    pub fn set_file_skipped(
        &self,
        batch_id: i64,
        path: &str,
        reason: SkipReason,
    ) -> Result<(), CheckpointError> {
        self.record_outcome(
            batch_id,
            path,
            FileState::Skipped,
            reason.text(),
            Some(reason),
        )
    }

    /// Marks the file at `path` in batch `batch_id` `failed` with `error` (what the user
    /// reads in `inlet files`). The file is left out of the batch's commit and is not taken
    /// again (until [`retry_file`](Self::retry_file)). Durable when it returns. Refuses
    /// nothing: a path the batch does not hold changes no row.
    pub fn set_file_failed(
        &self,
        batch_id: i64,
        path: &str,
        error: &str,
    ) -> Result<(), CheckpointError> {
        self.record_outcome(batch_id, path, FileState::Failed, error, None)
    }

    /// Marks one file of a planned batch `skipped` or `failed` with its reason; it will not
    /// be part of the batch's commit and is not taken again. For an outcome known only as
    /// state and text (`inlet checkpoint rebuild` reads them from the table's commits): a
    /// skip whose text is a [`SkipReason`]'s gets that reason's code, any other keeps its
    /// text alone. Prefer [`set_file_skipped`](Self::set_file_skipped) and
    /// [`set_file_failed`](Self::set_file_failed). Durable when it returns. Refuses
    /// nothing: a path the batch does not hold changes no row.
    pub fn set_file_outcome(
        &self,
        batch_id: i64,
        path: &str,
        state: FileState,
        reason: &str,
    ) -> Result<(), CheckpointError> {
        let skip = match state {
            FileState::Skipped => SkipReason::from_text(reason),
            _ => None,
        };
        self.record_outcome(batch_id, path, state, reason, skip)
    }

    fn record_outcome(
        &self,
        batch_id: i64,
        path: &str,
        state: FileState,
        error: &str,
        skip: Option<SkipReason>,
    ) -> Result<(), CheckpointError> {
        self.conn
            .execute(
                "UPDATE files SET state = ?1, error = ?2, skip_reason = ?3
                 WHERE batch_id = ?4 AND path = ?5",
                params![
                    state.as_str(),
                    error,
                    skip.map(SkipReason::code),
                    batch_id,
                    path
                ],
            )
            .map(|_| ())
            .map_err(sql_error(&self.db))
    }

    /// Forgets a `failed` or `skipped` file so that discovery takes it again (after the user
    /// fixed or restored it). Returns the state it had. Refuses committed and pending files:
    /// taking a committed file again would duplicate its rows, and a pending one belongs to
    /// a batch in flight; and a file whose latest row has a state this inlet does not know
    /// ([`CheckpointError::Corrupt`]).
    pub fn retry_file(&self, path: &str) -> Result<FileState, CheckpointError> {
        let sql = sql_error(&self.db);
        let latest: Option<(String, String)> = self
            .conn
            .query_row(
                "SELECT state, etag FROM files WHERE path = ?1 ORDER BY batch_id DESC LIMIT 1",
                [path],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(&sql)?;
        let Some((state, etag)) = latest else {
            return Err(CheckpointError::NoSuchFile {
                path: self.dir.clone(),
                file: path.to_string(),
            });
        };
        let Some(state) = FileState::parse(&state) else {
            return Err(BadValue {
                table: "files",
                key: file_key(path, &etag),
                column: "state",
                found: state,
                expected: FileState::EXPECTED,
            }
            .at(&self.db));
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
            .map_err(&sql)?;
        Ok(state)
    }

    /// The file log, newest batch first, optionally only files in `state`.
    pub fn files(&self, state: Option<FileState>) -> Result<Vec<FileRecord>, CheckpointError> {
        self.file_rows(
            &format!(
                "{FILE_SELECT} WHERE (?1 IS NULL OR f.state = ?1)
                 ORDER BY f.batch_id DESC, f.path"
            ),
            [state.map(FileState::as_str)],
        )
    }

    /// Committed files whose commit is at or before `before_ms` and that are not cleaned
    /// up yet, oldest commit first, at most `limit`.
    pub fn files_to_clean(
        &self,
        before_ms: i64,
        limit: usize,
    ) -> Result<Vec<FileRecord>, CheckpointError> {
        self.file_rows(
            &format!(
                "{FILE_SELECT} WHERE f.state = 'committed' AND f.cleaned_at_ms IS NULL
                   AND f.committed_at_ms <= ?1
                 ORDER BY f.committed_at_ms, f.path LIMIT ?2"
            ),
            params![before_ms, i64::try_from(limit).unwrap_or(i64::MAX)],
        )
    }

    /// Records that the file (path, etag) was cleaned up: `action` is `archived`,
    /// `deleted`, `gone` or `kept: <why>`; `archive_path` where an archived file went.
    /// Durable when it returns. Refuses nothing: a (path, etag) the checkpoint does not
    /// hold changes no row.
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
            .map_err(sql_error(&self.db))
    }

    /// Forgets files last modified before `modified_before_ms` whose batch is done
    /// (`max_file_age` keeps discovery from ever taking such a file again, so their entries
    /// are not needed for dedupe). With `keep_uncleaned`, committed files whose clean-up is
    /// still to come stay. Returns how many entries went. Never forgets a file of a batch
    /// that is not committed (a planned batch's files are replayed from these rows).
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
            .map_err(sql_error(&self.db))
    }

    /// The file records a `FILE_SELECT` query finds.
    fn file_rows(
        &self,
        query: &str,
        params: impl rusqlite::Params,
    ) -> Result<Vec<FileRecord>, CheckpointError> {
        let sql = sql_error(&self.db);
        let mut stmt = self.conn.prepare_cached(query).map_err(&sql)?;
        let rows = stmt
            .query_map(params, file_from_row)
            .map_err(&sql)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(&sql)?;
        Ok(rows)
    }
}

const FILE_SELECT: &str = "SELECT f.path, f.etag, f.size, f.last_modified_ms, f.discovered_at_ms,
       f.batch_id, f.committed_at_ms, b.delta_version, f.state, f.rows, f.error,
       f.cleaned_at_ms, f.clean_action, f.archive_path, f.skip_reason
  FROM files f LEFT JOIN batches b ON b.batch_id = f.batch_id";

fn file_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<FileRecord> {
    let path: String = r.get(0)?;
    let etag: String = r.get(1)?;
    let bad = |column, found: String, expected| BadValue {
        table: "files",
        key: file_key(&path, &etag),
        column,
        found,
        expected,
    };
    let size: i64 = r.get(2)?;
    let size = u64::try_from(size)
        .map_err(|_| bad("size", size.to_string(), "a size in bytes, 0 or more").in_row(2))?;
    let state: String = r.get(8)?;
    let state = FileState::parse(&state)
        .ok_or_else(|| bad("state", state, FileState::EXPECTED).in_row(8))?;
    let skip_reason: Option<String> = r.get(14)?;
    let skip_reason = skip_reason
        .map(|code| {
            SkipReason::from_code(&code)
                .ok_or_else(|| bad("skip_reason", code, SkipReason::EXPECTED).in_row(14))
        })
        .transpose()?;
    Ok(FileRecord {
        size,
        last_modified_ms: r.get(3)?,
        discovered_at_ms: r.get(4)?,
        batch_id: r.get(5)?,
        committed_at_ms: r.get(6)?,
        delta_version: r.get(7)?,
        state,
        rows: r.get(9)?,
        error: r.get(10)?,
        skip_reason,
        cleaned_at_ms: r.get(11)?,
        clean_action: r.get(12)?,
        archive_path: r.get(13)?,
        path,
        etag,
    })
}

/// A `files` row's key as errors name it (quoted and escaped: a path may hold anything).
fn file_key(path: &str, etag: &str) -> String {
    format!("path {path:?}, etag {etag:?}")
}

#[cfg(test)]
mod tests {
    use crate::test_support::{file, me, tamper};
    use crate::{Checkpoint, CheckpointError, DedupeKey, FileState, NewFile, SkipReason};

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
    fn a_file_row_with_an_unknown_state_is_an_error_naming_the_row() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cp = Checkpoint::open(dir.path(), "p", me()).expect("open");
        cp.plan_batch(1, &[file("a\tb", "e1"), file("c", "e1")])
            .expect("plan");
        tamper(
            dir.path(),
            "UPDATE files SET state = 'archived' WHERE path = 'c'",
        );
        let expect_named = |err: CheckpointError| {
            let text = err.to_string();
            assert!(matches!(err, CheckpointError::Corrupt { .. }), "{text}");
            assert!(
                text.contains(r#"the files row with path "c", etag "e1" has state "archived""#),
                "{text}"
            );
            assert!(
                text.contains("expected pending, committed, failed or skipped"),
                "{text}"
            );
            assert!(text.contains("inlet checkpoint rebuild"), "{text}");
        };
        expect_named(cp.files(None).expect_err("file log"));
        expect_named(cp.batch_files(1).expect_err("batch files"));
        expect_named(cp.planned_batch().expect_err("planned batch"));
        // Not "no such file", and not retried as if it had failed.
        expect_named(cp.retry_file("c").expect_err("retry"));
        assert_eq!(
            cp.filter_unseen(vec!["c"], DedupeKey::Path, |c| (c, ""))
                .expect("dedupe"),
            Vec::<&str>::new()
        );
    }

    #[test]
    fn a_file_row_with_a_negative_size_is_an_error_naming_the_row() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cp = Checkpoint::open(dir.path(), "p", me()).expect("open");
        cp.plan_batch(1, &[file("a\tb", "e1")]).expect("plan");
        tamper(dir.path(), "UPDATE files SET size = -5");
        let err = cp.files(None).expect_err("negative size");
        // The key is quoted and escaped: a path may hold a tab.
        assert!(
            err.to_string().contains(
                r#"the files row with path "a\tb", etag "e1" has size "-5", which this inlet does not know (expected a size in bytes, 0 or more)"#
            ),
            "{err}"
        );
    }

    #[test]
    fn a_skip_is_found_by_its_reason_and_shown_by_its_text() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cp = Checkpoint::open(dir.path(), "p", me()).expect("open");
        let paths = [
            "gone",
            "rewritten",
            "broken",
            "old-text",
            "by-hand",
            "unknown",
        ];
        let planned: Vec<NewFile> = paths.iter().map(|p| file(p, "e1")).collect();
        cp.plan_batch(1, &planned).expect("plan");
        cp.set_file_skipped(1, "gone", SkipReason::Deleted)
            .expect("skip");
        cp.set_file_skipped(1, "rewritten", SkipReason::Overwritten)
            .expect("skip");
        cp.set_file_failed(1, "broken", "truncated gzip")
            .expect("fail");
        // A skip known as text only (a rebuild reads outcomes from the table's commits).
        cp.set_file_outcome(
            1,
            "old-text",
            FileState::Skipped,
            SkipReason::SymlinkLoop.text(),
        )
        .expect("skip by text");
        cp.set_file_outcome(
            1,
            "by-hand",
            FileState::Skipped,
            "(recorded before the rebuild)",
        )
        .expect("skip by other text");
        cp.set_file_skipped(1, "unknown", SkipReason::DotSegment)
            .expect("skip");
        // Failed after all: the skip's code goes with its state.
        cp.set_file_failed(1, "unknown", "read again and failed")
            .expect("fail");
        cp.mark_committed(1, Some(1), Some(0), &[]).expect("commit");

        let files = cp.batch_files(1).expect("files");
        let got: Vec<(&str, FileState, Option<SkipReason>, Option<&str>)> = files
            .iter()
            .map(|f| (f.path.as_str(), f.state, f.skip_reason, f.error.as_deref()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("broken", FileState::Failed, None, Some("truncated gzip")),
                (
                    "by-hand",
                    FileState::Skipped,
                    None,
                    Some("(recorded before the rebuild)")
                ),
                (
                    "gone",
                    FileState::Skipped,
                    Some(SkipReason::Deleted),
                    Some("deleted from the source before it was read")
                ),
                (
                    "old-text",
                    FileState::Skipped,
                    Some(SkipReason::SymlinkLoop),
                    Some(SkipReason::SymlinkLoop.text())
                ),
                (
                    "rewritten",
                    FileState::Skipped,
                    Some(SkipReason::Overwritten),
                    Some("overwritten before it was read; the new version is taken as a new file")
                ),
                (
                    "unknown",
                    FileState::Failed,
                    None,
                    Some("read again and failed")
                ),
            ]
        );
        // What the driver asks: which files did an overwrite set aside?
        let overwritten: Vec<&str> = files
            .iter()
            .filter(|f| f.skip_reason == Some(SkipReason::Overwritten))
            .map(|f| f.path.as_str())
            .collect();
        assert_eq!(overwritten, vec!["rewritten"]);
        // A skipped file is not taken again until retried, and then is.
        assert!(cp
            .filter_unseen(vec!["gone"], DedupeKey::Path, |c| (c, ""))
            .expect("dedupe")
            .is_empty());
        assert_eq!(cp.retry_file("gone").expect("retry"), FileState::Skipped);
        assert_eq!(
            cp.filter_unseen(vec!["gone"], DedupeKey::Path, |c| (c, ""))
                .expect("dedupe"),
            vec!["gone"]
        );
    }

    #[test]
    fn a_skip_reason_code_this_inlet_does_not_know_is_an_error_naming_the_row() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cp = Checkpoint::open(dir.path(), "p", me()).expect("open");
        cp.plan_batch(1, &[file("a", "e1")]).expect("plan");
        cp.set_file_skipped(1, "a", SkipReason::Deleted)
            .expect("skip");
        tamper(dir.path(), "UPDATE files SET skip_reason = 'expired'");
        let err = cp.files(None).expect_err("unknown code");
        assert!(
            err.to_string().contains(
                r#"the files row with path "a", etag "e1" has skip_reason "expired", which this inlet does not know (expected deleted, overwritten, dot_segment, control_character or symlink_loop)"#
            ),
            "{err}"
        );
    }
}
