//! Errors of the checkpoint crate. Each names the checkpoint path or the batch at fault
//! and, where the user can act, says what to do.

use std::path::PathBuf;

use crate::LockHolder;

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("checkpoint directory {path} cannot be used: {source}; check that the path is a directory this user can write")]
    Directory {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("checkpoint {path} is in use by another inlet run (host {host}, pid {pid}, since {since}); only one runner may use a checkpoint at a time — stop that run or use another checkpoint location", host = holder.host, pid = holder.pid, since = holder.since)]
    Locked { path: PathBuf, holder: LockHolder },

    #[error("checkpoint database {path} cannot be opened: {source}; if the file is damaged, restore it from a backup (a restored copy older than the table is refused, and so is a new empty checkpoint for a table this pipeline has written to: either would take files twice)")]
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

    #[error("checkpoint database {path}: {source}")]
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

    #[error("checkpoint {path}: stored value for {what} is not valid: {detail}")]
    Corrupt {
        path: PathBuf,
        what: &'static str,
        detail: String,
    },
}
