//! What the unit tests of every table share: a lock holder to open a checkpoint with and a
//! discovered file to plan.

use crate::{LockHolder, NewFile};

pub(crate) fn me() -> LockHolder {
    LockHolder {
        host: "test".into(),
        pid: std::process::id(),
        since: "now".into(),
    }
}

pub(crate) fn file(path: &str, etag: &str) -> NewFile {
    NewFile {
        path: path.into(),
        etag: etag.into(),
        size: 10,
        last_modified_ms: 1,
        discovered_at_ms: 2,
    }
}

/// Runs `sql` on the checkpoint database in `dir` behind inlet's back, as a damaged file,
/// a hand edit or a newer inlet would leave it.
pub(crate) fn tamper(dir: &std::path::Path, sql: &str) {
    rusqlite::Connection::open(dir.join(crate::DB_FILE))
        .expect("open the database")
        .execute_batch(sql)
        .expect("tamper");
}
