//! An opened source prefix: an object store, the prefix inside it and the URL form of its
//! keys. Lists and reads files; never writes.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{GetOptions, ObjectMeta, ObjectStore, ObjectStoreExt};
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
                let prefix =
                    Path::from_absolute_path(&local).map_err(|e| DiscoverError::BadUrl {
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
                let prefix =
                    Path::from_url_path(url.path()).map_err(|e| DiscoverError::BadUrl {
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
        matches!(self.url.scheme(), "s3" | "s3a")
            .then(|| self.url.host_str())
            .flatten()
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
                    etag: unquoted_etag(&m),
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
        let key = Path::from(format!(
            "{}/{name}",
            self.prefix.as_ref().trim_end_matches('/')
        ));
        let url = self.url_of(&key);
        self.store
            .put(&key, data.into())
            .await
            .map(|_| url.clone())
            .map_err(|source| DiscoverError::Write { url, source })
    }

    /// Reads a whole file named by its full URL.
    pub async fn read(&self, url: &str) -> Result<Bytes, DiscoverError> {
        self.read_version(url, None).await
    }

    /// Reads a whole file; with `etag`, only that version of it (`Changed` when the file
    /// has been rewritten since).
    pub async fn read_version(
        &self,
        url: &str,
        etag: Option<&str>,
    ) -> Result<Bytes, DiscoverError> {
        let key = self.own_key(url)?;
        let options = GetOptions {
            if_match: etag.map(|e| self.quoted(e)),
            ..GetOptions::default()
        };
        let got = self
            .store
            .get_opts(&key, options)
            .await
            .map_err(|source| self.read_error(url, etag, source))?;
        got.bytes()
            .await
            .map_err(|source| self.read_error(url, etag, source))
    }

    /// The file's current ETag (unquoted, as listings give it), or `NotFound`.
    pub async fn etag(&self, url: &str) -> Result<String, DiscoverError> {
        let key = self.own_key(url)?;
        let meta = self
            .store
            .head(&key)
            .await
            .map_err(|source| self.read_error(url, None, source))?;
        Ok(unquoted_etag(&meta))
    }

    /// Deletes a file of this store (a file already gone is not an error).
    pub async fn delete(&self, url: &str) -> Result<(), DiscoverError> {
        let key = self.own_key(url)?;
        match self.store.delete(&key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(source) => Err(DiscoverError::Delete {
                url: url.to_string(),
                source,
            }),
        }
    }

    /// Where `url` (a file of `source`) goes under this store's prefix: its path relative to
    /// the source prefix, segment by segment. Segments are object_store path parts, which
    /// cannot be `.`, `..` or contain `/`, so the result is always under the prefix.
    pub fn archive_key(&self, source: &SourceStore, url: &str) -> Result<Path, DiscoverError> {
        let key = source.own_key(url)?;
        let outside = || DiscoverError::BadUrl {
            url: url.to_string(),
            reason: format!("not under source {}", source.url),
        };
        let relative = key.prefix_match(&source.prefix).ok_or_else(outside)?;
        let mut target = self.prefix.clone();
        let mut parts = 0;
        for part in relative {
            target = target.join(part);
            parts += 1;
        }
        if parts == 0 || !target.prefix_matches(&self.prefix) {
            return Err(outside());
        }
        Ok(target)
    }

    /// Copies `url`, a file of `source`, to `key` of this store: server-side when both are
    /// the same store (one bucket, or the local file system), else read and written.
    /// Returns the URL written.
    pub async fn copy_from(
        &self,
        source: &SourceStore,
        url: &str,
        key: &Path,
    ) -> Result<String, DiscoverError> {
        let from = source.own_key(url)?;
        let to_url = self.url_of(key);
        let write_err = |source| DiscoverError::Write {
            url: to_url.clone(),
            source,
        };
        if self.url_root == source.url_root {
            return source
                .store
                .copy(&from, key)
                .await
                .map(|()| to_url.clone())
                .map_err(write_err);
        }
        let data = source.read(url).await?;
        self.store.put(key, data.into()).await.map_err(write_err)?;
        Ok(to_url.clone())
    }

    /// True when `key` exists in this store.
    pub async fn exists(&self, key: &Path) -> Result<bool, DiscoverError> {
        match self.store.head(key).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(source) => Err(DiscoverError::Read {
                url: self.url_of(key),
                source,
            }),
        }
    }

    fn own_key(&self, url: &str) -> Result<Path, DiscoverError> {
        self.key_of(url).ok_or_else(|| DiscoverError::BadUrl {
            url: url.to_string(),
            reason: format!("not under source {}", self.url),
        })
    }

    /// An ETag as the store compares it: S3 quotes it, the local file system does not.
    fn quoted(&self, etag: &str) -> String {
        if self.bucket().is_some() {
            format!("\"{etag}\"")
        } else {
            etag.to_string()
        }
    }

    fn read_error(
        &self,
        url: &str,
        etag: Option<&str>,
        source: object_store::Error,
    ) -> DiscoverError {
        match source {
            object_store::Error::NotFound { .. } => DiscoverError::NotFound {
                url: url.to_string(),
            },
            object_store::Error::Precondition { .. } => DiscoverError::Changed {
                url: url.to_string(),
                etag: etag.unwrap_or_default().to_string(),
            },
            source => DiscoverError::Read {
                url: url.to_string(),
                source,
            },
        }
    }
}

/// An object's ETag unquoted, as notifications carry it, so listings, HEADs and events
/// agree on (path, ETag).
fn unquoted_etag(meta: &ObjectMeta) -> String {
    meta.e_tag
        .as_deref()
        .unwrap_or_default()
        .trim_matches('"')
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local(dir: &str) -> SourceStore {
        let url = Url::parse(dir).expect("url");
        SourceStore::open(&url, &HashMap::new()).expect("open")
    }

    #[test]
    fn archive_keys_keep_the_relative_path_and_never_escape() {
        let source = local("file:///data/landing/");
        let archive = local("file:///data/archive/");
        let key = |url: &str| {
            archive
                .archive_key(&source, url)
                .map(|k| archive.url_of(&k))
        };
        assert_eq!(
            key("file:///data/landing/a b+c é.json").expect("key"),
            "file:///data/archive/a b+c é.json"
        );
        assert_eq!(
            key("file:///data/landing/v1../x.json").expect("key"),
            "file:///data/archive/v1../x.json"
        );
        // An encoded dot-dot is a name like any other, kept under the archive.
        assert_eq!(
            key("file:///data/landing/%2E%2E/x").expect("key"),
            "file:///data/archive/%2E%2E/x"
        );
        for escaping in [
            "file:///data/landing/../../etc/passwd",
            "file:///data/landing/a/./b",
            "file:///data/other/x.json",
            "file:///data/landing/",
        ] {
            assert!(
                key(escaping).is_err(),
                "{escaping} must not map into the archive"
            );
        }
    }
}
