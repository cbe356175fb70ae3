//! Snapshots of the SQLite checkpoint: a gzipped copy under `snapshots/`, made current by
//! rewriting `snapshot.json` with `If-Match` (so a runner that lost the lease cannot move
//! it back), older copies deleted after.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use futures::{StreamExt, TryStreamExt};
use object_store::{ObjectStoreExt, WriteMultipart};
use serde::{Deserialize, Serialize};

use crate::{Remote, RemoteError};

const POINTER: &str = "snapshot.json";
const CHUNK: usize = 8 << 20;

/// The current snapshot, as `snapshot.json` names it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// The copy's key relative to the checkpoint location.
    pub key: String,
    /// The last batch the copy holds as committed (0: none).
    pub batch_id: i64,
    /// The newest table version the copy knows (None: no commit yet).
    pub delta_version: Option<i64>,
    pub taken_at_ms: i64,
    /// Compressed size.
    pub bytes: u64,
    /// The lease token of the runner that last wrote the pointer (each holder rewrites it
    /// when it takes the lease, so the pointer's ETag changes hands with the lease).
    #[serde(default)]
    pub claimed_by: String,
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> RemoteError {
    let path = path.to_path_buf();
    move |source| RemoteError::Io { what, path, source }
}

impl Remote {
    /// The current snapshot, `None` when none was ever made. Remembers the pointer's
    /// version, which the next [`Remote::put_snapshot`] must find unchanged.
    pub async fn latest_snapshot(&self) -> Result<Option<SnapshotInfo>, RemoteError> {
        let got = match self.store.get(&self.key(POINTER)).await {
            Ok(got) => got,
            Err(object_store::Error::NotFound { .. }) => {
                self.set_pointer_etag(None);
                return Ok(None);
            }
            Err(e) => return Err(RemoteError::store("read", self.name(POINTER))(e)),
        };
        let etag = got.meta.e_tag.clone();
        let bytes = got
            .bytes()
            .await
            .map_err(RemoteError::store("read", self.name(POINTER)))?;
        let info = serde_json::from_slice(&bytes).map_err(|e| RemoteError::Corrupt {
            key: self.name(POINTER),
            reason: e.to_string(),
        })?;
        self.set_pointer_etag(etag);
        Ok(Some(info))
    }

    fn set_pointer_etag(&self, etag: Option<String>) {
        if let Ok(mut e) = self.pointer_etag.lock() {
            *e = etag;
        }
    }

    /// Rewrites the pointer as last read, but for `token` (with `If-Match` on that
    /// version), so a runner that read it before cannot move it any more.
    /// [`RemoteError::Lost`] when it changed since it was read.
    pub async fn claim_snapshot(&self, token: &str) -> Result<(), RemoteError> {
        if let Ok(mut c) = self.claimed_by.lock() {
            *c = token.to_string();
        }
        let known = self.pointer_etag.lock().ok().and_then(|e| e.clone());
        let Some(etag) = known else {
            return Ok(());
        };
        let got = self
            .store
            .get(&self.key(POINTER))
            .await
            .map_err(RemoteError::store("read", self.name(POINTER)))?;
        let bytes = got
            .bytes()
            .await
            .map_err(RemoteError::store("read", self.name(POINTER)))?;
        let mut info: SnapshotInfo =
            serde_json::from_slice(&bytes).map_err(|e| RemoteError::Corrupt {
                key: self.name(POINTER),
                reason: e.to_string(),
            })?;
        info.claimed_by = token.to_string();
        let body = serde_json::to_vec_pretty(&info).unwrap_or_default();
        match self.put_if(POINTER, body, Some(&etag)).await? {
            Some(etag) => {
                self.set_pointer_etag(Some(etag));
                Ok(())
            }
            None => Err(RemoteError::Lost {
                url: self.url.clone(),
                reason: format!("{} was changed by another runner", self.name(POINTER)),
            }),
        }
    }

    /// Downloads snapshot `info` and writes the database to `to` (replacing it). Returns
    /// the compressed bytes read.
    pub async fn get_snapshot(&self, info: &SnapshotInfo, to: &Path) -> Result<u64, RemoteError> {
        let gz = PathBuf::from(format!("{}.download.gz", to.display()));
        let got = self
            .store
            .get(&self.key(&info.key))
            .await
            .map_err(RemoteError::store("read", self.name(&info.key)))?;
        let mut file = std::fs::File::create(&gz).map_err(io("create", &gz))?;
        let mut stream = got.into_stream();
        let mut n = 0u64;
        while let Some(chunk) = stream
            .try_next()
            .await
            .map_err(RemoteError::store("read", self.name(&info.key)))?
        {
            n += chunk.len() as u64;
            file.write_all(&chunk).map_err(io("write", &gz))?;
        }
        drop(file);
        let to = to.to_path_buf();
        let key = self.name(&info.key);
        tokio::task::spawn_blocking(move || -> Result<(), RemoteError> {
            let input = std::fs::File::open(&gz).map_err(io("open", &gz))?;
            let mut decoder = flate2::read::GzDecoder::new(std::io::BufReader::new(input));
            let mut out = std::fs::File::create(&to).map_err(io("create", &to))?;
            std::io::copy(&mut decoder, &mut out).map_err(|e| RemoteError::Corrupt {
                key: key.clone(),
                reason: format!("not a gzipped snapshot: {e}"),
            })?;
            out.sync_all().map_err(io("write", &to))?;
            let _ = std::fs::remove_file(&gz);
            Ok(())
        })
        .await
        .map_err(|e| RemoteError::Io {
            what: "decompress a snapshot into",
            path: PathBuf::new(),
            source: std::io::Error::other(e),
        })??;
        Ok(n)
    }

    /// Uploads the database copy at `db` as the snapshot of `batch_id` / `delta_version`,
    /// then makes it current. Refuses ([`RemoteError::Lost`]) when the pointer changed
    /// since this process last read or wrote it: another runner holds the checkpoint now.
    /// Older snapshot copies are deleted afterwards.
    pub async fn put_snapshot(
        &self,
        db: &Path,
        batch_id: i64,
        delta_version: Option<i64>,
    ) -> Result<SnapshotInfo, RemoteError> {
        let taken_at_ms = chrono::Utc::now().timestamp_millis();
        let rel = format!("snapshots/{batch_id:020}-{taken_at_ms}.db.gz");
        let gz = PathBuf::from(format!("{}.gz", db.display()));
        {
            let (db, gz) = (db.to_path_buf(), gz.clone());
            let named = db.clone();
            tokio::task::spawn_blocking(move || -> Result<(), RemoteError> {
                let mut input = std::fs::File::open(&db).map_err(io("open", &db))?;
                let out = std::fs::File::create(&gz).map_err(io("create", &gz))?;
                let mut enc = flate2::write::GzEncoder::new(
                    std::io::BufWriter::new(out),
                    flate2::Compression::fast(),
                );
                std::io::copy(&mut input, &mut enc).map_err(io("compress", &db))?;
                enc.finish()
                    .and_then(|mut w| w.flush())
                    .map_err(io("write", &gz))?;
                Ok(())
            })
            .await
            .map_err(|e| RemoteError::Io {
                what: "compress",
                path: named,
                source: std::io::Error::other(e),
            })??;
        }
        let upload = self
            .store
            .put_multipart(&self.key(&rel))
            .await
            .map_err(RemoteError::store("write", self.name(&rel)))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, CHUNK);
        let mut file = std::fs::File::open(&gz).map_err(io("open", &gz))?;
        let mut buf = vec![0u8; CHUNK];
        let mut bytes = 0u64;
        loop {
            let n = file.read(&mut buf).map_err(io("read", &gz))?;
            if n == 0 {
                break;
            }
            bytes += n as u64;
            writer
                .wait_for_capacity(4)
                .await
                .map_err(RemoteError::store("write", self.name(&rel)))?;
            writer.write(&buf[..n]);
        }
        writer
            .finish()
            .await
            .map_err(RemoteError::store("write", self.name(&rel)))?;
        let _ = std::fs::remove_file(&gz);

        let info = SnapshotInfo {
            key: rel.clone(),
            batch_id,
            delta_version,
            taken_at_ms,
            bytes,
            claimed_by: self
                .claimed_by
                .lock()
                .map(|c| c.clone())
                .unwrap_or_default(),
        };
        let known = self.pointer_etag.lock().ok().and_then(|e| e.clone());
        let body = serde_json::to_vec_pretty(&info).unwrap_or_default();
        match self.put_if(POINTER, body, known.as_deref()).await? {
            Some(etag) => self.set_pointer_etag(Some(etag)),
            None => {
                let _ = self.store.delete(&self.key(&rel)).await;
                return Err(RemoteError::Lost {
                    url: self.url.clone(),
                    reason: format!("{} was changed by another runner", self.name(POINTER)),
                });
            }
        }
        // Older copies are no longer named by the pointer.
        let dir = self.key("snapshots");
        let keep = self.key(&rel);
        let listed: Vec<object_store::ObjectMeta> = self
            .store
            .list(Some(&dir))
            .try_collect()
            .await
            .unwrap_or_default();
        let old: Vec<object_store::path::Path> = listed
            .into_iter()
            .map(|m| m.location)
            .filter(|l| *l != keep)
            .collect();
        let _ = self
            .store
            .delete_stream(futures::stream::iter(old.into_iter().map(Ok)).boxed())
            .try_collect::<Vec<_>>()
            .await;
        Ok(info)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use object_store::memory::InMemory;

    use super::*;

    #[tokio::test]
    async fn a_snapshot_round_trips_and_a_stale_pointer_is_refused() {
        let store = Arc::new(InMemory::new());
        let a = Remote::new(store.clone(), "chk".into(), "s3://b/chk");
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("copy.db");
        std::fs::write(&db, b"first".repeat(1000)).expect("write");
        assert!(a.latest_snapshot().await.expect("read").is_none());
        let first = a.put_snapshot(&db, 3, Some(7)).await.expect("put");
        // Another process reads the pointer and moves it on.
        let b = Remote::new(store, "chk".into(), "s3://b/chk");
        assert_eq!(
            b.latest_snapshot().await.expect("read"),
            Some(first.clone())
        );
        std::fs::write(&db, b"second").expect("write");
        let second = b.put_snapshot(&db, 4, Some(9)).await.expect("put");
        let err = a.put_snapshot(&db, 5, None).await.expect_err("stale");
        assert!(matches!(err, RemoteError::Lost { .. }), "{err}");
        let back = dir.path().join("back.db");
        let latest = a.latest_snapshot().await.expect("read").expect("some");
        assert_eq!(latest, second);
        a.get_snapshot(&latest, &back).await.expect("get");
        assert_eq!(std::fs::read(&back).expect("read"), b"second");
    }
}
