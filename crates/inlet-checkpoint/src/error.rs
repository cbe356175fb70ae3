//! Errors of the checkpoint crate. Each names the checkpoint path or the batch at fault
//! and, where the user can act, says what to do.

use std::path::{Path, PathBuf};

use crate::LockHolder;

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("checkpoint directory {path} cannot be used: {source}; check that the path is a directory this user can write, on a disk that is neither read-only nor full")]
    Directory {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("checkpoint {path} is in use by another inlet run (host {host}, pid {pid}, since {since}); only one runner may use a checkpoint at a time — stop that run or use another checkpoint location", host = holder.host, pid = holder.pid, since = holder.since)]
    Locked { path: PathBuf, holder: LockHolder },

    #[error("checkpoint database {path} cannot be opened: {source}; if the file is damaged, rebuild it from the Delta table's history with `inlet checkpoint rebuild --config <pipeline.toml>` (the damaged file is kept), or restore it from a backup (a copy older than the table is refused, and so is a new empty checkpoint for a table this pipeline has written to: either would take files twice)")]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },

    #[error("checkpoint {path} belongs to pipeline '{stored}', not '{configured}'; use the checkpoint location of that pipeline or a new one")]
    PipelineMismatch {
        path: PathBuf,
        stored: String,
        configured: String,
    },

    #[error("checkpoint {path} was written by a newer inlet (schema version {found}, this build knows {known}); upgrade inlet")]
    TooNew {
        path: PathBuf,
        found: i64,
        known: i64,
    },

    #[error("checkpoint database {path}: {source}{}", disk_hint(.source))]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },

    #[error(
        "checkpoint {path} has no file {file}; `inlet files` lists the paths it knows (full URLs)"
    )]
    NoSuchFile { path: PathBuf, file: String },

    #[error("checkpoint {path}: file {file} is {state}, not failed or skipped; only those can be retried (a committed file taken again would duplicate its rows)")]
    NotRetryable {
        path: PathBuf,
        file: String,
        state: String,
    },

    #[error("checkpoint {path}: batch {batch_id} is not planned (state {state}); refusing to mark it committed")]
    BatchNotPlanned {
        path: PathBuf,
        batch_id: i64,
        state: String,
    },

    #[error("checkpoint database {path}: the {table} row with {key} has {column} {found:?}, which this inlet does not know (expected {expected}); if a newer inlet wrote this checkpoint, run that one, otherwise the checkpoint was changed outside inlet: rebuild it from the Delta table's history with `inlet checkpoint rebuild --config <pipeline.toml>` (the damaged file is kept)")]
    Corrupt {
        path: PathBuf,
        table: &'static str,
        /// The row's key, as `path "a", etag "e"` or `batch_id 3`.
        key: String,
        column: &'static str,
        found: String,
        expected: &'static str,
    },
}

/// The one conversion of a SQLite error on the database `db` (`<checkpoint>/inlet.db`) into
/// [`CheckpointError::Sqlite`], for `map_err`. A function of the path alone, not of the
/// `Checkpoint`, so that it can be used while a transaction borrows the connection.
/// A row a mapping refused ([`BadValue::in_row`]) becomes [`CheckpointError::Corrupt`].
pub(crate) fn sql_error(db: &Path) -> impl Fn(rusqlite::Error) -> CheckpointError + '_ {
    move |source| match source {
        rusqlite::Error::FromSqlConversionFailure(column, kind, cause) => {
            match cause.downcast::<BadValue>() {
                Ok(bad) => bad.at(db),
                Err(cause) => CheckpointError::Sqlite {
                    path: db.to_path_buf(),
                    source: rusqlite::Error::FromSqlConversionFailure(column, kind, cause),
                },
            }
        }
        source => CheckpointError::Sqlite {
            path: db.to_path_buf(),
            source,
        },
    }
}

/// A stored value this build does not know (a state no variant has, a negative size): the
/// row it is in, never read as some default.
#[derive(Debug, thiserror::Error)]
#[error("the {table} row with {key} has {column} {found:?}, expected {expected}")]
pub(crate) struct BadValue {
    pub(crate) table: &'static str,
    /// The row's key, as `path "a", etag "e"` or `batch_id 3`.
    pub(crate) key: String,
    pub(crate) column: &'static str,
    pub(crate) found: String,
    /// What the column may hold, as a reader would say it.
    pub(crate) expected: &'static str,
}

impl BadValue {
    /// The error for the database `db`.
    pub(crate) fn at(self, db: &Path) -> CheckpointError {
        CheckpointError::Corrupt {
            path: db.to_path_buf(),
            table: self.table,
            key: self.key,
            column: self.column,
            found: self.found,
            expected: self.expected,
        }
    }

    /// As the error of a row mapping (which can only return a `rusqlite::Error`) refusing
    /// column `index`; [`sql_error`] turns it back into [`CheckpointError::Corrupt`].
    pub(crate) fn in_row(self, index: usize) -> rusqlite::Error {
        rusqlite::Error::FromSqlConversionFailure(
            index,
            rusqlite::types::Type::Text,
            Box::new(self),
        )
    }
}

/// What to do about a checkpoint write the disk refused. Whatever the step, stopping there
/// loses nothing: the batch in flight is finished (recorded or replayed) on the next start.
fn disk_hint(e: &rusqlite::Error) -> &'static str {
    use rusqlite::ErrorCode::*;
    match e.sqlite_error_code() {
        Some(DiskFull) => "; the disk holding the checkpoint is full: free space there and run again (the batch in flight is finished on the next start; nothing is lost or taken twice)",
        Some(ReadOnly) | Some(CannotOpen) | Some(PermissionDenied) => "; the checkpoint cannot be written: make its directory and inlet.db writable by this user (is the disk mounted read-only?) and run again (the batch in flight is finished on the next start; nothing is lost or taken twice)",
        Some(SystemIoFailure) => "; the disk holding the checkpoint failed a read or write (full, read-only or failing?): fix it and run again (the batch in flight is finished on the next start; nothing is lost or taken twice)",
        _ => "",
    }
}
