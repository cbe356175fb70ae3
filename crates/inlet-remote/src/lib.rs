//! The checkpoint's state in object storage, for an `s3://` checkpoint location: the runner
//! lease, one object per batch (plan, tombstones, outcome) and snapshots of the SQLite file.
//!
//! Layout under the location's prefix (docs/architecture.md, "A checkpoint in S3"):
//! `lease.json`; `batches/<batch id, 20 digits>/{plan,tombstones,done}.json`;
//! `snapshot.json` (which snapshot is current) and `snapshots/<batch>-<ms>.db.gz`.

mod batches;
mod error;
mod lease;
mod snapshot;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use object_store::path::Path;
use object_store::ObjectStore;
use url::Url;

pub use batches::{BatchObject, ObjectKind};
pub use error::RemoteError;
pub use lease::{Holder, Lease, LeaseBody};
pub use snapshot::SnapshotInfo;

/// A checkpoint location in object storage: the store, the prefix, and what this process
/// last saw of the snapshot pointer (its conditional writes depend on it).
#[derive(Clone)]
pub struct Remote {
    store: Arc<dyn ObjectStore>,
    prefix: Path,
    url: String,
    /// The ETag of `snapshot.json` as this process last read or wrote it.
    pointer_etag: Arc<Mutex<Option<String>>>,
    /// The lease token this process writes into `snapshot.json`.
    claimed_by: Arc<Mutex<String>>,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote").field("url", &self.url).finish()
    }
}

impl Remote {
    /// The checkpoint at `url` (`s3://bucket/prefix`), reached with `options` (object_store
    /// keys and inlet's `aws_*` keys, signed by the process's one credential chain).
    pub fn open(url: &Url, options: &HashMap<String, String>) -> Result<Self, RemoteError> {
        if !matches!(url.scheme(), "s3" | "s3a") {
            return Err(RemoteError::BadUrl {
                url: url.to_string(),
                reason: "a checkpoint in object storage must be an s3:// URL".into(),
            });
        }
        let store = inlet_aws::s3_store(url, options, inlet_aws::UnknownKeys::Ignore, None)
            .map_err(|source| RemoteError::Open {
                url: url.to_string(),
                source,
            })?;
        let prefix = Path::from_url_path(url.path()).map_err(|e| RemoteError::BadUrl {
            url: url.to_string(),
            reason: e.to_string(),
        })?;
        Ok(Self::new(Arc::new(store), prefix, url.as_str()))
    }

    /// A checkpoint under `prefix` of `store`, named `url` in messages (tests use an
    /// in-memory store).
    pub fn new(store: Arc<dyn ObjectStore>, prefix: Path, url: &str) -> Self {
        Self {
            store,
            prefix,
            url: url.trim_end_matches('/').to_string(),
            pointer_etag: Arc::new(Mutex::new(None)),
            claimed_by: Arc::new(Mutex::new(String::new())),
        }
    }

    /// The location as configured, for messages.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The key of `rel` under the prefix.
    fn key(&self, rel: &str) -> Path {
        let mut key = self.prefix.clone();
        for part in rel.split('/') {
            key = key.join(part);
        }
        key
    }

    /// `s3://bucket/prefix/rel`, as messages name an object.
    fn name(&self, rel: &str) -> String {
        format!("{}/{rel}", self.url)
    }
}

impl Remote {
    /// Writes `body` to `rel`: created only if absent when `over` is `None`, else only over
    /// the version with ETag `over`. `Ok(None)`: the condition failed (someone else wrote
    /// first); `Ok(Some(etag))`: written.
    async fn put_if(
        &self,
        rel: &str,
        body: Vec<u8>,
        over: Option<&str>,
    ) -> Result<Option<String>, RemoteError> {
        use object_store::{PutMode, PutOptions, PutPayload, UpdateVersion};
        let mode = match over {
            None => PutMode::Create,
            Some(etag) => PutMode::Update(UpdateVersion {
                e_tag: Some(etag.to_string()),
                version: None,
            }),
        };
        let opts = PutOptions {
            mode,
            ..Default::default()
        };
        match self
            .store
            .put_opts(&self.key(rel), PutPayload::from(body), opts)
            .await
        {
            Ok(done) => Ok(Some(done.e_tag.unwrap_or_default())),
            Err(
                object_store::Error::AlreadyExists { .. }
                | object_store::Error::Precondition { .. },
            ) => Ok(None),
            Err(e) => Err(RemoteError::store("write", self.name(rel))(e)),
        }
    }
}
