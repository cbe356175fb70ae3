//! An opened source prefix: an object store, the prefix inside it and the URL form of its
//! keys. Lists and reads files; never writes.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt};
use url::Url;

use crate::{DiscoverError, FileEvent};

/// A `file://` or `s3://` prefix opened for listing and reading.
#[derive(Debug, Clone)]
pub struct SourceStore {
    store: Arc<dyn ObjectStore>,
    /// Prefix inside the store ("" for the root).
    prefix: Path,
    /// `s3://bucket` or `file://`: what goes before `/key` in a file's URL.
    url_root: String,
    url: Url,
}

impl SourceStore {
    /// Opens `url` with `options` (object_store S3 keys such as `aws_endpoint`,
    /// `aws_region`, `aws_allow_http`; `AWS_*` environment variables are read too, and
    /// options win). An unknown option key is an error naming it.
    pub fn open(url: &Url, options: &HashMap<String, String>) -> Result<Self, DiscoverError> {
        match url.scheme() {
            "file" => {
                if !options.is_empty() {
                    let key = options.keys().next().cloned().unwrap_or_default();
                    return Err(DiscoverError::BadOption {
                        key,
                        reason: "file:// sources take no storage options".into(),
                    });
                }
                let local = url.to_file_path().map_err(|_| DiscoverError::BadUrl {
                    url: url.to_string(),
                    reason: "not an absolute local path".into(),
                })?;
                let prefix = Path::from_absolute_path(&local).map_err(|e| DiscoverError::BadUrl {
                    url: url.to_string(),
                    reason: e.to_string(),
                })?;
                Ok(Self {
                    store: Arc::new(LocalFileSystem::new()),
                    prefix,
                    url_root: "file://".into(),
                    url: url.clone(),
                })
            }
            "s3" | "s3a" => {
                let bucket = url.host_str().ok_or_else(|| DiscoverError::BadUrl {
                    url: url.to_string(),
                    reason: "no bucket name".into(),
                })?;
                let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
                for (key, value) in options {
                    let parsed: AmazonS3ConfigKey =
                        key.to_ascii_lowercase()
                            .parse()
                            .map_err(|e: object_store::Error| DiscoverError::BadOption {
                                key: key.clone(),
                                reason: e.to_string(),
                            })?;
                    builder = builder.with_config(parsed, value);
                }
                let store = builder.build().map_err(|source| DiscoverError::Open {
                    url: url.to_string(),
                    source,
                })?;
                let prefix = Path::from_url_path(url.path()).map_err(|e| DiscoverError::BadUrl {
                    url: url.to_string(),
                    reason: e.to_string(),
                })?;
                Ok(Self {
                    store: Arc::new(store),
                    prefix,
                    url_root: format!("s3://{bucket}"),
                    url: url.clone(),
                })
            }
            other => Err(DiscoverError::BadUrl {
                url: url.to_string(),
                reason: format!("scheme '{other}' is not supported (use file:// or s3://)"),
            }),
        }
    }

    /// The bucket of an `s3://` source (`None` for local files).
    pub fn bucket(&self) -> Option<&str> {
        matches!(self.url.scheme(), "s3" | "s3a").then(|| self.url.host_str()).flatten()
    }

    /// The source URL as configured.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The prefix inside the store.
    pub fn prefix(&self) -> &Path {
        &self.prefix
    }

    /// The full URL of a key in this store.
    pub fn url_of(&self, key: &Path) -> String {
        format!("{}/{}", self.url_root, key.as_ref())
    }

    /// The key of a full URL this store produced, or `None` when it is from elsewhere.
    pub fn key_of(&self, url: &str) -> Option<Path> {
        let rest = url.strip_prefix(&self.url_root)?.strip_prefix('/')?;
        // Keys came from `Path::as_ref`, so they are already in object_store's encoding.
        Path::parse(rest).ok()
    }

    /// Every object under the prefix, as events (one LIST request per 1,000 keys on S3).
    pub async fn list(&self) -> Result<Vec<(Path, FileEvent)>, DiscoverError> {
        let list_err = |source| DiscoverError::List {
            url: self.url.to_string(),
            source,
        };
        // A local prefix that does not exist lists as empty in object_store; a user who
        // mistyped it deserves an error instead.
        if let Ok(local) = self.url.to_file_path() {
            if !local.is_dir() {
                return Err(list_err(object_store::Error::NotFound {
                    path: local.display().to_string(),
                    source: "no such directory".into(),
                }));
            }
        }
        let metas: Vec<ObjectMeta> = self
            .store
            .list(Some(&self.prefix))
            .try_collect()
            .await
            .map_err(list_err)?;
        Ok(metas
            .into_iter()
            .map(|m| {
                let event = FileEvent {
                    path: self.url_of(&m.location),
                    // Unquoted, as notifications carry it, so both ways agree on (path, ETag).
                    etag: m.e_tag.as_deref().unwrap_or_default().trim_matches('"').to_string(),
                    size: m.size,
                    last_modified_ms: m.last_modified.timestamp_millis(),
                };
                (m.location, event)
            })
            .collect())
    }

    /// Checks the prefix can be listed (one request), for `validate` and start-up checks.
    pub async fn check_reachable(&self) -> Result<(), DiscoverError> {
        if let Ok(local) = self.url.to_file_path() {
            if !local.is_dir() {
                return Err(DiscoverError::List {
                    url: self.url.to_string(),
                    source: object_store::Error::NotFound {
                        path: local.display().to_string(),
                        source: "no such directory".into(),
                    },
                });
            }
            return Ok(());
        }
        self.store
            .list_with_delimiter(Some(&self.prefix))
            .await
            .map(|_| ())
            .map_err(|source| DiscoverError::List {
                url: self.url.to_string(),
                source,
            })
    }

    /// Writes `data` as `name` under the prefix, replacing what was there (used for the
    /// bad-records location, which is a store of the same kinds as a source).
    pub async fn put(&self, name: &str, data: Bytes) -> Result<String, DiscoverError> {
        let key = Path::from(format!("{}/{name}", self.prefix.as_ref().trim_end_matches('/')));
        let url = self.url_of(&key);
        self.store
            .put(&key, data.into())
            .await
            .map(|_| url.clone())
            .map_err(|source| DiscoverError::Write { url, source })
    }

    /// Reads a whole file named by its full URL.
    pub async fn read(&self, url: &str) -> Result<Bytes, DiscoverError> {
        let key = self.key_of(url).ok_or_else(|| DiscoverError::BadUrl {
            url: url.to_string(),
            reason: format!("not under source {}", self.url),
        })?;
        let got = self.store.get(&key).await.map_err(|source| match source {
            object_store::Error::NotFound { .. } => DiscoverError::NotFound {
                url: url.to_string(),
            },
            source => DiscoverError::Read {
                url: url.to_string(),
                source,
            },
        })?;
        got.bytes().await.map_err(|source| DiscoverError::Read {
            url: url.to_string(),
            source,
        })
    }
}
