//! Writes through an opened store: bad-record files (`put`), and the clean-up of committed
//! source files (`archive_key`, `exists`, `copy_from`, `delete`).

use bytes::Bytes;
use object_store::path::Path;
use object_store::ObjectStoreExt;

use super::SourceStore;
use crate::error::DiscoverError;

impl SourceStore {
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
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use url::Url;

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
