//! Listing discovery: list the source prefix (all of it, or incrementally after the last key
//! settled) and keep the files that match the glob, are not hidden, and are new enough.

use std::collections::HashSet;
use std::time::Duration;

use futures::future::BoxFuture;

use crate::error::{escape_controls, DiscoverError};
use crate::event::FileEvent;
use crate::incremental::{ListingMode, Plan, Tracker};
use crate::key_filter::KeyFilter;
use crate::store::{Listed, SourceStore};
use crate::unreadable::Unreadable;
use crate::Discover;

/// What a listing keeps.
#[derive(Debug, Clone)]
pub struct ListingOptions {
    /// Glob over the key relative to the source prefix (`**/*.json.gz`); `None` keeps all.
    pub path_glob: Option<String>,
    /// Files modified before this time (ms since epoch) are left out; `None` keeps all.
    pub modified_after_ms: Option<i64>,
    /// Leave out DynamoDB export manifests and checksums (`AWSDynamoDB/<export-id>/`
    /// `manifest-summary.json`, `manifest-files.json`, `*.md5`, `*.checksum`), which are not
    /// data; set for the DynamoDB formats. Default `false`.
    pub skip_export_manifests: bool,
    /// `full`, `incremental` or `auto`. Default `full`.
    pub mode: ListingMode,
    /// Incremental and `auto`: a full listing at least this often, for keys that landed out
    /// of lexical order. Default 1 h.
    pub full_listing_interval: Duration,
    /// Incremental and `auto`: where an earlier run left off (from [`Discover::position`]).
    pub position: Option<String>,
}

impl Default for ListingOptions {
    fn default() -> Self {
        Self {
            path_glob: None,
            modified_after_ms: None,
            skip_export_manifests: false,
            mode: ListingMode::Full,
            full_listing_interval: Duration::from_secs(3600),
            position: None,
        }
    }
}

/// Lists the source prefix on every call.
#[derive(Debug)]
pub struct ListingDiscoverer {
    store: SourceStore,
    /// Incremental and `auto` listings' state; `None` lists in full every time.
    tracker: Option<Tracker>,
    filter: KeyFilter,
    modified_after_ms: Option<i64>,
    /// Unreadable paths already warned about: each is warned about once per run, as a
    /// continuous run lists again every few seconds.
    warned: HashSet<String>,
}

impl ListingDiscoverer {
    pub fn new(store: SourceStore, options: ListingOptions) -> Result<Self, DiscoverError> {
        let tracker = (options.mode != ListingMode::Full).then(|| {
            Tracker::new(
                options.mode,
                options.full_listing_interval,
                store.url().as_str(),
                options.position.as_deref(),
            )
        });
        Ok(Self {
            tracker,
            filter: KeyFilter::new(
                store.prefix().clone(),
                options.path_glob,
                options.skip_export_manifests,
            )?,
            store,
            modified_after_ms: options.modified_after_ms,
            warned: HashSet::new(),
        })
    }

    /// The listed objects this listing takes. An unreadable one that is taken is warned
    /// about (it will be recorded as skipped); a loop is warned about even when the filter
    /// leaves the link's name out, since the listing did not go through it.
    fn take(&mut self, listed: Vec<Listed>) -> Vec<FileEvent> {
        let mut taken = Vec::with_capacity(listed.len());
        for Listed {
            key,
            event,
            unreadable,
        } in listed
        {
            let keeps = self.filter.keeps(&key)
                && self
                    .modified_after_ms
                    .is_none_or(|after| event.last_modified_ms >= after);
            match unreadable {
                None => {}
                Some(reason @ Unreadable::SymlinkLoop) => self.warn(&event.path, reason, keeps),
                Some(reason) if keeps => self.warn(&event.path, reason, true),
                Some(reason) => {
                    tracing::debug!(file = %escape_controls(&event.path), reason = reason.reason(), "unreadable name left out by path_glob or age");
                }
            }
            if keeps {
                taken.push(event);
            }
        }
        taken
    }

    fn warn(&mut self, url: &str, reason: Unreadable, recorded: bool) {
        let file = escape_controls(url);
        let reason = reason.reason();
        if !self.warned.insert(url.to_string()) {
            tracing::debug!(%file, reason, "source file cannot be read (warned before)");
        } else if recorded {
            tracing::warn!(%file, reason, "source file cannot be read: it will be recorded as skipped");
        } else {
            tracing::warn!(%file, reason, "source path cannot be read: left out");
        }
    }
}

impl Discover for ListingDiscoverer {
    fn discover(
        &mut self,
        _wait: Duration,
    ) -> BoxFuture<'_, Result<Vec<FileEvent>, DiscoverError>> {
        Box::pin(async move {
            let now_ms = chrono::Utc::now().timestamp_millis();
            let plan = self.tracker.as_ref().map_or(Plan::Full, |t| t.plan(now_ms));
            let listed = match &plan {
                Plan::Full => self.store.list().await?,
                Plan::After(mark) => self.store.list_after(mark).await?,
            };
            // Every file listed by URL (which keeps the raw key, so sorts as S3 lists),
            // kept or not, with its modification time: what the tracker moves its mark over
            // and `auto` decides from.
            let keys: Vec<(String, i64)> = match &self.tracker {
                Some(_) => listed
                    .iter()
                    .map(|l| (l.event.path.clone(), l.event.last_modified_ms))
                    .collect(),
                None => Vec::new(),
            };
            let kept = self.take(listed);
            match self.tracker.as_mut() {
                None => Ok(kept),
                Some(tracker) => {
                    tracing::debug!(
                        listing = if plan == Plan::Full {
                            "full"
                        } else {
                            "incremental"
                        },
                        keys = keys.len(),
                        kept = kept.len(),
                        "listed the source"
                    );
                    Ok(tracker.listed(&plan, now_ms, &keys, kept))
                }
            }
        })
    }

    fn settle<'a>(
        &'a mut self,
        files: &'a [(String, Option<String>)],
    ) -> BoxFuture<'a, Result<(), DiscoverError>> {
        if let Some(tracker) = self.tracker.as_mut() {
            tracker.settled(files.iter().map(|(path, _)| path.as_str()));
        }
        Box::pin(async { Ok(()) })
    }

    fn wants_settled(&self) -> bool {
        self.tracker.is_some()
    }

    fn position(&mut self) -> Option<String> {
        self.tracker.as_mut().and_then(Tracker::changed)
    }

    fn kind(&self) -> &'static str {
        match &self.tracker {
            Some(t) if t.incremental() => "incremental listing",
            _ => "listing",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::unreadable::{CONTROL_CHARACTER, SYMLINK_LOOP};
    use object_store::path::Path;
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
                ..ListingOptions::default()
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

    /// A listing of `dir` with `glob`, and the events it yields: (name relative to `dir`,
    /// URL), sorted.
    async fn discover_in(
        dir: &std::path::Path,
        glob: Option<&str>,
    ) -> (SourceStore, Vec<(String, String)>) {
        let url = url::Url::from_directory_path(dir).expect("url");
        let store = SourceStore::open(&url, &HashMap::new()).expect("open");
        let mut listing = ListingDiscoverer::new(
            store.clone(),
            ListingOptions {
                path_glob: glob.map(str::to_string),
                modified_after_ms: None,
                ..ListingOptions::default()
            },
        )
        .expect("listing");
        let root = format!("file://{}/", dir.to_str().expect("utf8"));
        let mut found: Vec<(String, String)> = listing
            .discover(Duration::ZERO)
            .await
            .expect("the listing goes on past unreadable entries")
            .into_iter()
            .map(|e| {
                let name = e
                    .path
                    .strip_prefix(&root)
                    .expect("under the source")
                    .to_string();
                (name, e.path)
            })
            .collect();
        found.sort();
        (store, found)
    }

    /// The names of `found` that read, and those that cannot, with the reason.
    async fn read_all(
        store: &SourceStore,
        found: &[(String, String)],
    ) -> (Vec<String>, Vec<(String, &'static str)>) {
        let (mut read, mut skipped) = (Vec::new(), Vec::new());
        for (name, url) in found {
            match store.read(url).await {
                Ok(_) => read.push(name.clone()),
                Err(e @ DiscoverError::Unaddressable { reason, .. }) => {
                    let message = e.to_string();
                    assert!(
                        !message.chars().any(char::is_control),
                        "control characters are escaped in messages: {message:?}"
                    );
                    skipped.push((name.clone(), reason.reason()));
                }
                Err(e) => panic!("{name:?}: {e}"),
            }
        }
        (read, skipped)
    }

    #[tokio::test]
    async fn names_with_control_characters_are_skipped_and_the_rest_is_taken() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("d\tir")).expect("mkdir");
        std::fs::create_dir_all(dir.path().join("d=1")).expect("mkdir");
        for name in [
            "good.json",
            "d=1/ok.json",
            "bad\tname.json",
            "bad\nline.json",
            "bad\rcr.json",
            "d\tir/inner.json",
            "excluded\tname.txt",
            // object_store's staged uploads are not files yet.
            "staged.json#1",
        ] {
            std::fs::write(dir.path().join(name), b"{}\n").expect("write");
        }
        let (store, found) = discover_in(dir.path(), Some("**.json")).await;
        let (read, skipped) = read_all(&store, &found).await;
        assert_eq!(read, vec!["d=1/ok.json", "good.json"]);
        assert_eq!(
            skipped,
            vec![
                ("bad\tname.json".to_string(), CONTROL_CHARACTER),
                ("bad\nline.json".to_string(), CONTROL_CHARACTER),
                ("bad\rcr.json".to_string(), CONTROL_CHARACTER),
                ("d\tir/inner.json".to_string(), CONTROL_CHARACTER),
            ],
            "each unreadable name is a file recorded skipped; the glob leaves out the .txt"
        );
        let url = &found
            .iter()
            .find(|(n, _)| n == "bad\rcr.json")
            .expect("listed")
            .1;
        let err = store.read(url).await.expect_err("unaddressable");
        assert_eq!(
            err.to_string(),
            format!(
                "source file file://{}/bad\\rcr.json cannot be read: {CONTROL_CHARACTER}",
                dir.path().display()
            )
        );
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn symlink_loops_are_skipped_and_dangling_links_and_fifos_left_out() {
        use std::os::unix::fs::symlink;
        let outside = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(outside.path().join("more")).expect("mkdir");
        std::fs::write(outside.path().join("linked.json"), b"{}\n").expect("write");
        std::fs::write(outside.path().join("more/c.json"), b"{}\n").expect("write");
        let dir = tempfile::tempdir().expect("tempdir");
        let landing = dir.path();
        std::fs::create_dir_all(landing.join("sub")).expect("mkdir");
        std::fs::write(landing.join("a.json"), b"{}\n").expect("write");
        std::fs::write(landing.join("sub/b.json"), b"{}\n").expect("write");
        symlink(".", landing.join("loop")).expect("ln -s . loop");
        symlink("..", landing.join("sub/up")).expect("ln -s .. sub/up");
        symlink("missing.json", landing.join("dangling.json")).expect("dangling");
        symlink("cycle2.json", landing.join("cycle1.json")).expect("cycle");
        symlink("cycle1.json", landing.join("cycle2.json")).expect("cycle");
        symlink(
            outside.path().join("linked.json"),
            landing.join("linked.json"),
        )
        .expect("link");
        symlink(outside.path().join("more"), landing.join("more")).expect("link");
        let fifo = std::process::Command::new("mkfifo")
            .arg(landing.join("fifo.json"))
            .status()
            .expect("mkfifo");
        assert!(fifo.success(), "mkfifo");

        let started = std::time::Instant::now();
        let (store, found) = discover_in(landing, None).await;
        assert!(started.elapsed() < Duration::from_secs(5), "no retries");
        let (read, skipped) = read_all(&store, &found).await;
        assert_eq!(
            read,
            vec!["a.json", "linked.json", "more/c.json", "sub/b.json"],
            "links are followed; dangling links and FIFOs are no files"
        );
        assert_eq!(
            skipped,
            vec![
                ("cycle1.json".to_string(), SYMLINK_LOOP),
                ("cycle2.json".to_string(), SYMLINK_LOOP),
                ("loop".to_string(), SYMLINK_LOOP),
                ("sub/up".to_string(), SYMLINK_LOOP),
            ]
        );
        let url = &found.iter().find(|(n, _)| n == "loop").expect("listed").1;
        let err = store.read(url).await.expect_err("a loop");
        assert_eq!(
            err.to_string(),
            format!(
                "source file file://{}/loop cannot be read: {SYMLINK_LOOP}",
                landing.display()
            )
        );

        // A glob leaves the directory links' names out; the files are taken all the same.
        let (_, found) = discover_in(landing, Some("**.json")).await;
        let names: Vec<&str> = found.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            vec![
                "a.json",
                "cycle1.json",
                "cycle2.json",
                "linked.json",
                "more/c.json",
                "sub/b.json"
            ]
        );
    }

    #[tokio::test]
    async fn a_dynamodb_exports_manifests_are_not_listed_as_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let export = "exports/AWSDynamoDB/01234567890123-a1b2c3d4";
        std::fs::create_dir_all(dir.path().join(export).join("data")).expect("mkdir");
        std::fs::create_dir_all(dir.path().join("stream")).expect("mkdir");
        for name in [
            "_started",
            "manifest-summary.json",
            "manifest-summary.md5",
            "manifest-files.json",
            "manifest-files.md5",
            "data/q5x7yzmf4e3wj.json.gz",
        ] {
            std::fs::write(dir.path().join(export).join(name), b"{}\n").expect("write");
        }
        std::fs::write(dir.path().join("stream/records.json"), b"{}\n").expect("write");
        let url = url::Url::from_directory_path(dir.path()).expect("url");
        let store = SourceStore::open(&url, &HashMap::new()).expect("open");
        let root = format!("file://{}/", dir.path().to_str().expect("utf8"));
        for (skip, expected) in [
            (
                true,
                vec![
                    format!("{export}/data/q5x7yzmf4e3wj.json.gz"),
                    "stream/records.json".to_string(),
                ],
            ),
            (
                false,
                vec![
                    format!("{export}/data/q5x7yzmf4e3wj.json.gz"),
                    format!("{export}/manifest-files.json"),
                    format!("{export}/manifest-files.md5"),
                    format!("{export}/manifest-summary.json"),
                    format!("{export}/manifest-summary.md5"),
                    "stream/records.json".to_string(),
                ],
            ),
        ] {
            let mut listing = ListingDiscoverer::new(
                store.clone(),
                ListingOptions {
                    skip_export_manifests: skip,
                    ..ListingOptions::default()
                },
            )
            .expect("listing");
            let mut names: Vec<String> = listing
                .discover(Duration::ZERO)
                .await
                .expect("discover")
                .into_iter()
                .map(|e| e.path.strip_prefix(&root).expect("under").to_string())
                .collect();
            names.sort();
            assert_eq!(names, expected, "skip_export_manifests = {skip}");
        }
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
