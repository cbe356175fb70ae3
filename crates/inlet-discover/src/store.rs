//! An opened source prefix: an object store, the prefix inside it and the URL form of its
//! keys. Lists and reads files; what inlet writes through one is in `store/writes.rs`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::aws::AmazonS3;
use object_store::list::{PaginatedListOptions, PaginatedListStore};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{GetOptions, ObjectMeta, ObjectStore, ObjectStoreExt};
use url::Url;

use crate::error::{escape_controls, DiscoverError};
use crate::event::FileEvent;
use crate::local_walk::{self, Walked};
use crate::read_buffers::ReadBuffers;
use crate::unreadable::Unreadable;

mod writes;

/// A `file://` or `s3://` prefix opened for listing and reading.
#[derive(Debug, Clone)]
pub struct SourceStore {
    store: Arc<dyn ObjectStore>,
    /// The same store when it is S3: its paginated listing takes raw keys, for the listing
    /// that keeps keys object_store cannot parse (see [`SourceStore::list_verbatim`]).
    s3: Option<Arc<AmazonS3>>,
    /// The same store when it is the local file system, with the source directory: local
    /// sources are listed by [`local_walk`].
    local: Option<Local>,
    /// Prefix inside the store ("" for the root).
    prefix: Path,
    /// `s3://bucket` or `file://`: what goes before `/key` in a file's URL.
    url_root: String,
    url: Url,
    /// Memory files are read into, reused once the last reader of a file lets it go.
    buffers: ReadBuffers,
}

#[derive(Debug, Clone)]
struct Local {
    fs: Arc<LocalFileSystem>,
    /// The source directory.
    root: PathBuf,
}

/// One object a listing found.
#[derive(Debug)]
pub(crate) struct Listed {
    /// Its key, for filters (a key object_store cannot parse has its bad segments
    /// percent-encoded here; the event keeps them).
    pub key: Path,
    pub event: FileEvent,
    /// Why reading it will fail, so that it is recorded as skipped; `None` when readable.
    pub unreadable: Option<Unreadable>,
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
                let fs = Arc::new(LocalFileSystem::new());
                Ok(Self {
                    store: fs.clone(),
                    s3: None,
                    local: Some(Local { fs, root: local }),
                    prefix,
                    url_root: "file://".into(),
                    url: url.clone(),
                    buffers: ReadBuffers::default(),
                })
            }
            "s3" | "s3a" => {
                let bucket = url.host_str().ok_or_else(|| DiscoverError::BadUrl {
                    url: url.to_string(),
                    reason: "no bucket name".into(),
                })?;
                // The process's one AWS credential chain (inlet-aws), shared with the
                // Delta sink and SQS.
                let store = inlet_aws::s3_store(url, options, inlet_aws::UnknownKeys::Refuse, None)
                    .map_err(|e| match e {
                        inlet_aws::AwsError::BadOption { key, reason } => {
                            DiscoverError::BadOption { key, reason }
                        }
                        inlet_aws::AwsError::Open { source, .. } => DiscoverError::Open {
                            url: url.to_string(),
                            source,
                        },
                        other => DiscoverError::Aws(other),
                    })?;
                let prefix =
                    Path::from_url_path(url.path()).map_err(|e| DiscoverError::BadUrl {
                        url: url.to_string(),
                        reason: e.to_string(),
                    })?;
                let store = Arc::new(store);
                Ok(Self {
                    store: store.clone(),
                    s3: Some(store),
                    local: None,
                    prefix,
                    url_root: format!("s3://{bucket}"),
                    url: url.clone(),
                    buffers: ReadBuffers::default(),
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

    /// A key as listed or notified: its path (for filters) and the URL the file is known
    /// by. A key object_store cannot parse (a `.`, `..` or empty segment, or a control
    /// character, which S3 allows) keeps its raw form in the URL; reading it then fails as
    /// [`DiscoverError::Unaddressable`], so it is recorded as skipped with the reason.
    pub fn event_key(&self, raw: &str) -> (Path, String) {
        match Path::parse(raw) {
            Ok(key) => {
                let url = self.url_of(&key);
                (key, url)
            }
            Err(_) => (self.loose_key(raw), format!("{}/{raw}", self.url_root)),
        }
    }

    /// A key object_store cannot parse, made parseable for filters: the source prefix as
    /// it is, the rest with each segment percent-encoded (`a%09b.json`).
    fn loose_key(&self, raw: &str) -> Path {
        let prefix = self.prefix.as_ref();
        match raw.strip_prefix(prefix).and_then(|r| r.strip_prefix('/')) {
            Some(rest) if !prefix.is_empty() => rest
                .split('/')
                .filter(|part| !part.is_empty())
                .fold(self.prefix.clone(), |key, part| key.join(part)),
            _ => Path::from(raw),
        }
    }

    /// The key of a full URL this store produced, or `None` when it is from elsewhere.
    pub fn key_of(&self, url: &str) -> Option<Path> {
        let rest = url.strip_prefix(&self.url_root)?.strip_prefix('/')?;
        // Keys came from `Path::as_ref`, so they are already in object_store's encoding.
        Path::parse(rest).ok()
    }

    /// Every object under the prefix, as events (one LIST request per 1,000 keys on S3).
    /// Objects that cannot be read (a key object_store cannot parse, a symbolic link loop)
    /// are listed too, marked [`Listed::unreadable`], and the listing goes on past them.
    pub(crate) async fn list(&self) -> Result<Vec<Listed>, DiscoverError> {
        let list_err = |source| DiscoverError::List {
            url: self.url.to_string(),
            source,
        };
        if let Some(local) = &self.local {
            return self.list_local(&local.root).await;
        }
        let listed: Result<Vec<ObjectMeta>, _> =
            self.store.list(Some(&self.prefix)).try_collect().await;
        let metas = match listed {
            Err(object_store::Error::InvalidPath { source }) => {
                tracing::debug!(error = %escape_controls(&source.to_string()), "a key object_store cannot parse; listing keys verbatim");
                return self.list_verbatim(None).await.map_err(list_err);
            }
            other => other.map_err(list_err)?,
        };
        Ok(self.listed_of(metas))
    }

    /// The objects after the file at `after` (a URL this store gave, which holds the raw
    /// key): S3 lists from there (`start-after`), one LIST per 1,000 keys after it; a local
    /// source is walked whole and cut.
    pub(crate) async fn list_after(&self, after_url: &str) -> Result<Vec<Listed>, DiscoverError> {
        let list_err = |source| DiscoverError::List {
            url: self.url.to_string(),
            source,
        };
        if let Some(local) = &self.local {
            let mut listed = self.list_local(&local.root).await?;
            listed.retain(|l| l.event.path.as_str() > after_url);
            return Ok(listed);
        }
        let Some(after) = after_url
            .strip_prefix(self.url_root.as_str())
            .and_then(|rest| rest.strip_prefix('/'))
        else {
            return self.list().await;
        };
        let Ok(offset) = Path::parse(after) else {
            return self
                .list_verbatim(Some(after.to_string()))
                .await
                .map_err(list_err);
        };
        let listed: Result<Vec<ObjectMeta>, _> = self
            .store
            .list_with_offset(Some(&self.prefix), &offset)
            .try_collect()
            .await;
        let metas = match listed {
            Err(object_store::Error::InvalidPath { .. }) => {
                return self
                    .list_verbatim(Some(after.to_string()))
                    .await
                    .map_err(list_err);
            }
            other => other.map_err(list_err)?,
        };
        Ok(self.listed_of(metas))
    }

    fn listed_of(&self, metas: Vec<ObjectMeta>) -> Vec<Listed> {
        metas
            .into_iter()
            .map(|m| {
                let (key, event) = self.event_of(m);
                Listed {
                    key,
                    event,
                    unreadable: None,
                }
            })
            .collect()
    }

    /// A local source, walked by [`local_walk::walk`] on a blocking thread.
    async fn list_local(&self, root: &std::path::Path) -> Result<Vec<Listed>, DiscoverError> {
        // A local prefix that does not exist would list as empty; a user who mistyped it
        // deserves an error instead.
        if !root.is_dir() {
            return Err(DiscoverError::List {
                url: self.url.to_string(),
                source: object_store::Error::NotFound {
                    path: root.display().to_string(),
                    source: "no such directory".into(),
                },
            });
        }
        let walk_err = |path: &std::path::Path, source| DiscoverError::ListLocal {
            url: self.url.to_string(),
            path: path.display().to_string(),
            source,
        };
        let walk_root = root.to_path_buf();
        let walked = tokio::task::spawn_blocking(move || local_walk::walk(&walk_root))
            .await
            .map_err(|e| walk_err(root, std::io::Error::other(e)))?
            .map_err(|e| walk_err(&e.path, e.source))?;
        Ok(walked
            .into_iter()
            .filter_map(|w| self.local_listed(w))
            .collect())
    }

    /// A walked entry as a listed object: its key and URL as object_store names it when it
    /// can; else its raw path in the URL (read as [`DiscoverError::Unaddressable`]).
    fn local_listed(&self, walked: Walked) -> Option<Listed> {
        let (path, meta, is_loop) = match walked {
            Walked::File { path, meta } => (path, meta, false),
            Walked::Loop { path, meta } => (path, meta, true),
        };
        let Some(text) = path.to_str() else {
            // A URL cannot hold it, so the checkpoint cannot name it.
            tracing::warn!(path = %local_walk::shown(&path), "file name that is not UTF-8 left out: inlet cannot name it; rename it");
            return None;
        };
        let (etag, size) = if is_loop {
            (String::new(), 0)
        } else {
            (local_walk::etag(&meta), meta.len())
        };
        let last_modified_ms = local_walk::modified_ms(&meta);
        let (key, url, unreadable) = match Path::from_absolute_path(&path) {
            Ok(key) => {
                let url = self.url_of(&key);
                (key, url, is_loop.then_some(Unreadable::SymlinkLoop))
            }
            Err(_) => {
                let raw = text.trim_start_matches('/');
                let reason = Unreadable::of_key(raw);
                (
                    self.loose_key(raw),
                    format!("{}/{raw}", self.url_root),
                    Some(reason),
                )
            }
        };
        Some(Listed {
            key,
            event: FileEvent {
                path: url,
                etag,
                size,
                last_modified_ms,
            },
            unreadable,
        })
    }

    fn event_of(&self, m: ObjectMeta) -> (Path, FileEvent) {
        let event = FileEvent {
            path: self.url_of(&m.location),
            etag: unquoted_etag(&m),
            size: m.size,
            last_modified_ms: m.last_modified.timestamp_millis(),
        };
        (m.location, event)
    }

    /// An S3 listing that survives keys object_store refuses to parse (`a/../b`, `./c`,
    /// `a//b`, a control character): it fails a whole page, so a failing page is listed again in halves until
    /// the one key at fault is alone; that key becomes an event under its raw name (read
    /// as [`DiscoverError::Unaddressable`]), and listing goes on after it. Starts after
    /// `from` when given.
    async fn list_verbatim(
        &self,
        from: Option<String>,
    ) -> Result<Vec<Listed>, object_store::Error> {
        const PAGE: usize = 1000;
        let Some(s3) = &self.s3 else {
            return Ok(Vec::new());
        };
        let prefix = format!("{}/", self.prefix.as_ref());
        let prefix = (prefix != "/").then_some(prefix);
        let mut out = Vec::new();
        let mut offset: Option<String> = from;
        let mut max_keys = PAGE;
        loop {
            let opts = PaginatedListOptions {
                offset: offset.clone(),
                max_keys: Some(max_keys),
                ..PaginatedListOptions::default()
            };
            match s3.list_paginated(prefix.as_deref(), opts).await {
                Ok(page) => {
                    let last = page
                        .result
                        .objects
                        .last()
                        .map(|m| m.location.as_ref().to_string());
                    out.extend(self.listed_of(page.result.objects));
                    match (page.page_token, last) {
                        (Some(_), Some(last)) => offset = Some(last),
                        _ => return Ok(out),
                    }
                    max_keys = PAGE;
                }
                Err(object_store::Error::InvalidPath { .. }) if max_keys > 1 => max_keys /= 2,
                Err(object_store::Error::InvalidPath { source }) => {
                    let raw = Self::bad_key(&source).unwrap_or_default();
                    if raw.is_empty() || offset.as_deref() == Some(raw.as_str()) {
                        return Err(object_store::Error::InvalidPath { source });
                    }
                    let (key, url) = self.event_key(&raw);
                    out.push(Listed {
                        key,
                        event: FileEvent {
                            path: url,
                            etag: String::new(),
                            size: 0,
                            last_modified_ms: chrono::Utc::now().timestamp_millis(),
                        },
                        unreadable: Some(Unreadable::of_key(&raw)),
                    });
                    offset = Some(raw);
                    max_keys = PAGE;
                }
                Err(e) => return Err(e),
            }
        }
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
        match self.store.list_with_delimiter(Some(&self.prefix)).await {
            // The listing answered; a key object_store cannot parse is handled when listing.
            Ok(_) | Err(object_store::Error::InvalidPath { .. }) => Ok(()),
            Err(source) => Err(DiscoverError::List {
                url: self.url.to_string(),
                source,
            }),
        }
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
            .map_err(|source| self.read_error(url, &key, etag, source))?;
        self.buffers
            .read(got)
            .await
            .map_err(|source| self.read_error(url, &key, etag, source))
    }

    /// The file's current ETag (unquoted, as listings give it), or `NotFound`.
    pub async fn etag(&self, url: &str) -> Result<String, DiscoverError> {
        let key = self.own_key(url)?;
        let meta = self
            .store
            .head(&key)
            .await
            .map_err(|source| self.read_error(url, &key, None, source))?;
        Ok(unquoted_etag(&meta))
    }

    fn own_key(&self, url: &str) -> Result<Path, DiscoverError> {
        let ours = url
            .strip_prefix(&self.url_root)
            .is_some_and(|r| r.starts_with('/'));
        if ours && self.key_of(url).is_none() {
            let raw = url
                .strip_prefix(&self.url_root)
                .and_then(|r| r.strip_prefix('/'))
                .unwrap_or(url);
            return Err(DiscoverError::Unaddressable {
                url: url.to_string(),
                reason: Unreadable::of_key(raw),
            });
        }
        self.key_of(url).ok_or_else(|| DiscoverError::BadUrl {
            url: url.to_string(),
            reason: format!("not under source {}", self.url),
        })
    }

    /// The key an object_store path error names (the whole string it failed to parse).
    fn bad_key(e: &object_store::path::Error) -> Option<String> {
        use object_store::path::Error as E;
        match e {
            E::BadSegment { path, .. } | E::EmptySegment { path } => Some(path.clone()),
            _ => None,
        }
    }

    /// True when `key` is a symbolic link loop of a local source (see [`local_walk`]).
    fn is_symlink_loop(&self, key: &Path) -> bool {
        let Some(local) = &self.local else {
            return false;
        };
        local
            .fs
            .path_to_filesystem(key)
            .is_ok_and(|path| local_walk::is_symlink_loop(&local.root, &path))
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
        key: &Path,
        etag: Option<&str>,
        source: object_store::Error,
    ) -> DiscoverError {
        match source {
            // A listed loop reads as not found (a directory) or fails to open (ELOOP).
            object_store::Error::NotFound { .. } | object_store::Error::Generic { .. }
                if self.is_symlink_loop(key) =>
            {
                DiscoverError::Unaddressable {
                    url: url.to_string(),
                    reason: Unreadable::SymlinkLoop,
                }
            }
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

    fn local_dir(dir: &std::path::Path) -> SourceStore {
        let url = Url::from_directory_path(dir).expect("url");
        SourceStore::open(&url, &HashMap::new()).expect("open")
    }

    #[tokio::test]
    async fn local_listing_gives_what_object_store_lists() {
        // The URL is a file's identity in the checkpoint, and the ETag too with
        // allow_overwrites (and what a pinned read checks): both must be what object_store's
        // own listing gave, which earlier versions recorded.
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("d=1/deeper")).expect("mkdir");
        for name in [
            "a.json",
            "b c%20d#e [é].json",
            "d=1/deeper/x.json",
            "_SUCCESS",
        ] {
            std::fs::write(dir.path().join(name), name.as_bytes()).expect("write");
        }
        #[cfg(unix)]
        std::os::unix::fs::symlink("../a.json", dir.path().join("d=1/link.json")).expect("link");
        let store = local_dir(dir.path());
        let mut ours: Vec<FileEvent> = store
            .list()
            .await
            .expect("list")
            .into_iter()
            .map(|listed| {
                assert_eq!(listed.unreadable, None);
                assert_eq!(store.url_of(&listed.key), listed.event.path);
                listed.event
            })
            .collect();
        let mut theirs: Vec<FileEvent> = store
            .store
            .list(Some(&store.prefix))
            .try_collect::<Vec<_>>()
            .await
            .expect("object_store list")
            .into_iter()
            .map(|m| store.event_of(m).1)
            .collect();
        ours.sort_by(|a, b| a.path.cmp(&b.path));
        theirs.sort_by(|a, b| a.path.cmp(&b.path));
        assert_eq!(ours.len(), if cfg!(unix) { 5 } else { 4 }, "{ours:#?}");
        assert_eq!(ours, theirs);
        for event in &ours {
            let pinned = store
                .read_version(&event.path, Some(&event.etag))
                .await
                .expect("a read pinned to the listed ETag");
            assert_eq!(pinned.len() as u64, event.size);
        }
    }

    /// True when the current user can read the file anyway (root): chmod does not deny.
    fn permissions_ignored(path: &std::path::Path) -> bool {
        let ignored = std::fs::read_dir(path).is_ok() || std::fs::read(path).is_ok();
        if ignored {
            eprintln!("running as a user that permissions do not stop (root?): chmod 000 on {} denies nothing; assertions skipped", path.display());
        }
        ignored
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_file_inlet_may_not_read_fails_at_once_and_says_why() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("secret.json");
        std::fs::write(&file, b"{}\n").expect("write");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o000)).expect("chmod");
        if permissions_ignored(&file) {
            return;
        }
        let store = local_dir(dir.path());
        let url = format!("file://{}", file.display());
        let err = store.read(&url).await.expect_err("permission denied");
        assert!(matches!(err, DiscoverError::Read { .. }), "{err:?}");
        assert!(
            !err.is_transient(),
            "a retry does not cure permissions: {err}"
        );
        let message = err.to_string();
        assert!(
            message.starts_with(&format!("cannot read source file {url}: "))
                && message.contains("Permission denied")
                && message.ends_with("; check the file's permissions: the user inlet runs as must be able to read it and enter its directories"),
            "{message}"
        );
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_directory_inlet_may_not_list_fails_the_listing_at_once() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let private = dir.path().join("private");
        std::fs::create_dir(&private).expect("mkdir");
        std::fs::write(private.join("a.json"), b"{}\n").expect("write");
        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o000)).expect("chmod");
        let outcome = if permissions_ignored(&private) {
            None
        } else {
            Some(local_dir(dir.path()).list().await)
        };
        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o755))
            .expect("chmod back");
        let Some(outcome) = outcome else { return };
        let err = outcome.expect_err("the files in it are unknown");
        assert!(!err.is_transient(), "{err}");
        let message = err.to_string();
        assert!(
            message.starts_with(&format!("cannot list {} in source file://{}/: ", private.display(), dir.path().display()))
                && message.ends_with("; check its permissions (for a symbolic link, its target's): the user inlet runs as must be able to read and enter every directory of the source"),
            "{message}"
        );
    }
}
