//! The single-runner lock: an OS advisory lock on `inlet.lock`, released by the kernel when
//! the holder exits (kill -9 included), with the holder's host, pid and start time inside.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::{CheckpointError, LOCK_FILE};

/// Who holds a checkpoint, as written into the lock file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LockHolder {
    pub host: String,
    pub pid: u32,
    /// RFC 3339 time the holder took the lock.
    pub since: String,
}

/// Held for as long as a run uses the checkpoint; dropping it releases the lock.
#[derive(Debug)]
pub struct RunnerLock {
    file: File,
}

impl RunnerLock {
    /// Takes the exclusive lock of the checkpoint directory `dir` (which must exist), or
    /// fails at once with [`CheckpointError::Locked`] naming the current holder. Never waits.
    pub fn acquire(dir: &Path, me: LockHolder) -> Result<Self, CheckpointError> {
        let path = dir.join(LOCK_FILE);
        let io_err = |source| CheckpointError::Directory {
            path: path.clone(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_err)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut text = String::new();
                // The holder writes its identity right after locking; a reader racing that
                // write may see nothing, which is reported as "unknown".
                let _ = file.read_to_string(&mut text);
                let holder = serde_json::from_str(&text).unwrap_or(LockHolder {
                    host: "unknown".into(),
                    pid: 0,
                    since: "unknown".into(),
                });
                return Err(CheckpointError::Locked {
                    path: dir.to_path_buf(),
                    holder,
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io_err(e)),
        }
        let text = serde_json::to_string(&me).unwrap_or_default();
        file.set_len(0)
            .and_then(|_| file.seek(SeekFrom::Start(0)))
            .and_then(|_| file.write_all(text.as_bytes()))
            .and_then(|_| file.flush())
            .map_err(io_err)?;
        Ok(Self { file })
    }
}

impl Drop for RunnerLock {
    fn drop(&mut self) {
        let _ = self.file.unlock();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn me(pid: u32) -> LockHolder {
        LockHolder {
            host: "h".into(),
            pid,
            since: "2026-01-01T00:00:00Z".into(),
        }
    }

    #[test]
    fn second_lock_names_the_holder_and_release_frees_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = RunnerLock::acquire(dir.path(), me(11)).expect("first lock");
        let err = RunnerLock::acquire(dir.path(), me(22)).expect_err("second lock must fail");
        let text = err.to_string();
        assert!(text.contains("pid 11"), "{text}");
        assert!(text.contains("host h"), "{text}");
        drop(first);
        RunnerLock::acquire(dir.path(), me(22)).expect("lock after release");
    }
}
