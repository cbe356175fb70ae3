//! Listing discovery: list the source prefix and keep the files that match the glob, are
//! not hidden, and (without `include_existing_files`) appeared after the first start.

use std::time::Duration;

use futures::future::BoxFuture;
use globset::{Glob, GlobMatcher};
use object_store::path::Path;

use crate::{Discover, DiscoverError, FileEvent, SourceStore};

/// What a listing keeps.
#[derive(Debug, Clone, Default)]
pub struct ListingOptions {
    /// Glob over the key relative to the source prefix (`**/*.json.gz`); `None` keeps all.
    pub path_glob: Option<String>,
    /// Files modified before this time (ms since epoch) are left out; `None` keeps all.
    pub modified_after_ms: Option<i64>,
}

/// Lists the source prefix on every call.
#[derive(Debug)]
pub struct ListingDiscoverer {
    store: SourceStore,
    filter: KeyFilter,
    modified_after_ms: Option<i64>,
}

impl ListingDiscoverer {
    pub fn new(store: SourceStore, options: ListingOptions) -> Result<Self, DiscoverError> {
        Ok(Self {
            filter: KeyFilter::new(store.prefix().clone(), options.path_glob)?,
            store,
            modified_after_ms: options.modified_after_ms,
        })
    }
}

/// Which keys are source files, whoever found them: under the prefix, not hidden, and
/// matching the glob if one is set.
#[derive(Debug, Clone)]
pub(crate) struct KeyFilter {
    prefix: Path,
    glob: Option<GlobMatcher>,
}

impl KeyFilter {
    pub(crate) fn new(prefix: Path, path_glob: Option<String>) -> Result<Self, DiscoverError> {
        let glob = path_glob
            .map(|g| {
                Glob::new(&g)
                    .map(|glob| glob.compile_matcher())
                    .map_err(|source| DiscoverError::BadGlob { glob: g, source })
            })
            .transpose()?;
        Ok(Self { prefix, glob })
    }

    /// True when the key is taken.
    pub(crate) fn keeps(&self, key: &Path) -> bool {
        let Some(parts) = key.prefix_match(&self.prefix) else {
            return false;
        };
        let relative = parts.map(|p| p.as_ref().to_string()).collect::<Vec<_>>();
        let Some(name) = relative.last() else {
            return false;
        };
        // Like Spark and Auto Loader: `_SUCCESS`, `.tmp` files and the like are not data.
        if name.starts_with('.') || name.starts_with('_') {
            return false;
        }
        match &self.glob {
            None => true,
            Some(glob) => glob.is_match(relative.join("/")),
        }
    }
}

impl Discover for ListingDiscoverer {
    fn discover(
        &mut self,
        _wait: Duration,
    ) -> BoxFuture<'_, Result<Vec<FileEvent>, DiscoverError>> {
        Box::pin(async move {
            let listed = self.store.list().await?;
            Ok(listed
                .into_iter()
                .filter(|(key, event)| {
                    self.filter.keeps(key)
                        && self
                            .modified_after_ms
                            .is_none_or(|after| event.last_modified_ms >= after)
                })
                .map(|(_, event)| event)
                .collect())
        })
    }

    fn kind(&self) -> &'static str {
        "listing"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[tokio::test]
    async fn lists_matching_visible_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("d=1")).expect("mkdir");
        for name in ["a.json", "d=1/b.json", "c.csv", "_SUCCESS", ".hidden.json"] {
            std::fs::write(dir.path().join(name), b"{}\n").expect("write");
        }
        let url = url::Url::from_directory_path(dir.path()).expect("url");
        let store = SourceStore::open(&url, &HashMap::new()).expect("open");
        let mut listing = ListingDiscoverer::new(
            store.clone(),
            ListingOptions {
                path_glob: Some("**.json".into()),
                modified_after_ms: None,
            },
        )
        .expect("listing");
        let mut names: Vec<String> = listing
            .discover(Duration::ZERO)
            .await
            .expect("discover")
            .into_iter()
            .map(|e| {
                e.path
                    .rsplit_once(dir.path().to_str().expect("utf8"))
                    .expect("under")
                    .1
                    .to_string()
            })
            .collect();
        names.sort();
        assert_eq!(names, vec!["/a.json", "/d=1/b.json"]);

        let first = store.url_of(&Path::from_absolute_path(dir.path().join("a.json")).expect("p"));
        assert_eq!(&store.read(&first).await.expect("read")[..], b"{}\n");
        let gone = format!("{first}.missing");
        assert!(matches!(
            store.read(&gone).await,
            Err(DiscoverError::NotFound { .. })
        ));
    }

    #[tokio::test]
    async fn missing_local_prefix_is_an_error() {
        let url = url::Url::parse("file:///nonexistent/inlet/landing/").expect("url");
        let store = SourceStore::open(&url, &HashMap::new()).expect("open");
        let err = store.check_reachable().await.expect_err("missing");
        assert!(
            err.to_string().contains("/nonexistent/inlet/landing"),
            "{err}"
        );
    }
}
