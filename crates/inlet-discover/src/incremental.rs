//! Incremental listing's memory: the key every earlier key is settled up to (the next listing
//! starts after it), when the last full listing ran, and `auto`'s evidence and decision.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::event::FileEvent;

/// `listing`: how much of the prefix each listing reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ListingMode {
    /// Every key under the prefix, every time.
    #[default]
    Full,
    /// Keys after the last one settled (S3 `start-after`), with a full listing every
    /// `full_listing_interval` for keys that landed out of lexical order.
    Incremental,
    /// Full listings until two of them show whether new keys sort after the old ones; then
    /// incremental when they do (date paths, timestamps), full when they do not (UUIDs).
    Auto,
}

impl ListingMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::Incremental => "incremental",
            Self::Auto => "auto",
        }
    }
}

/// At most this share of new keys may sort before the previous listing's last key for
/// `auto` to list incrementally (an overwritten old key counts as new).
const AUTO_LATE_PER_MILLE: usize = 10;

/// What is kept in the checkpoint between runs (as JSON, through the engine).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Position {
    /// The source prefix this position is for: a changed `source.url` starts over.
    pub prefix: String,
    /// Every key up to and including this one is settled or left out by the filters.
    pub mark: Option<String>,
    /// Wall-clock time of the last full listing (ms since epoch).
    pub full_listing_ms: Option<i64>,
    /// `auto`'s decision once made: `true` incremental, `false` full.
    pub incremental: Option<bool>,
    /// `auto`'s evidence from the last full listing: its largest key and its newest
    /// modification time (objects modified later are new to the next run).
    pub last_max_key: Option<String>,
    pub last_max_modified_ms: Option<i64>,
}

/// The state of an incremental or `auto` listing.
#[derive(Debug)]
pub(crate) struct Tracker {
    mode: ListingMode,
    full_every: Duration,
    pos: Position,
    /// Keys after `mark` seen in listings, kept or not.
    listed: BTreeSet<String>,
    /// Kept events not yet settled, by key: offered again by every listing until settled
    /// (a DynamoDB export's data waiting for its manifest, a batch cut short).
    pending: BTreeMap<String, FileEvent>,
    /// The key of each pending event's path.
    keys_of: HashMap<String, String>,
    /// `auto`, undecided: the keys (hashed) of the previous full listing in this run.
    previous: Option<HashSet<u64>>,
    /// The position last handed out for saving.
    saved: Option<Position>,
}

/// What one listing is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Plan {
    Full,
    After(String),
}

impl Tracker {
    /// A tracker for `mode` (not `Full`), resuming from a saved position when it is for
    /// `prefix`.
    pub fn new(mode: ListingMode, full_every: Duration, prefix: &str, saved: Option<&str>) -> Self {
        let pos = saved
            .and_then(|s| serde_json::from_str::<Position>(s).ok())
            .filter(|p| p.prefix == prefix)
            .unwrap_or_else(|| Position {
                prefix: prefix.to_string(),
                ..Position::default()
            });
        let mut tracker = Self {
            mode,
            full_every,
            saved: Some(pos.clone()),
            pos,
            listed: BTreeSet::new(),
            pending: BTreeMap::new(),
            keys_of: HashMap::new(),
            previous: None,
        };
        if mode == ListingMode::Incremental {
            tracker.pos.incremental = Some(true);
        }
        tracker
    }

    /// Whether listings are incremental now (`auto` decided so, or `incremental`).
    pub fn incremental(&self) -> bool {
        self.pos.incremental == Some(true)
    }

    /// The next listing: full when undecided, when there is no mark yet, or when the last
    /// full listing is `full_listing_interval` old; else after the mark.
    pub fn plan(&self, now_ms: i64) -> Plan {
        let due = self.pos.full_listing_ms.is_none_or(|at| {
            now_ms.saturating_sub(at)
                >= i64::try_from(self.full_every.as_millis()).unwrap_or(i64::MAX)
        });
        match &self.pos.mark {
            Some(mark) if self.incremental() && !due => Plan::After(mark.clone()),
            _ => Plan::Full,
        }
    }

    /// Takes in one listing: every key it listed (kept or not, with its modification time)
    /// and the events kept. Returns the events to offer: these and those still pending.
    pub fn listed(
        &mut self,
        plan: &Plan,
        now_ms: i64,
        keys: &[(String, i64)],
        kept: Vec<(String, FileEvent)>,
    ) -> Vec<FileEvent> {
        if *plan == Plan::Full {
            self.pos.full_listing_ms = Some(now_ms);
            if self.mode == ListingMode::Auto && self.pos.incremental.is_none() {
                self.decide(keys);
            }
        }
        let mark = self.pos.mark.clone();
        self.listed.extend(
            keys.iter()
                .filter(|(k, _)| mark.as_ref().is_none_or(|m| k > m))
                .map(|(k, _)| k.clone()),
        );
        for (key, event) in kept {
            self.keys_of.insert(event.path.clone(), key.clone());
            self.pending.insert(key, event);
        }
        self.advance();
        self.pending.values().cloned().collect()
    }

    /// `auto`: compares this full listing with the previous one (in this run by key, across
    /// runs by modification time) and decides once new keys have been seen.
    fn decide(&mut self, keys: &[(String, i64)]) {
        let hashes: HashSet<u64> = keys.iter().map(|(k, _)| hash(k)).collect();
        if let Some(last_max) = self.pos.last_max_key.clone() {
            let new: Vec<&String> = match &self.previous {
                Some(previous) => keys
                    .iter()
                    .filter(|(k, _)| !previous.contains(&hash(k)))
                    .map(|(k, _)| k)
                    .collect(),
                None => {
                    let since = self.pos.last_max_modified_ms.unwrap_or(i64::MAX);
                    keys.iter()
                        .filter(|(_, m)| *m > since)
                        .map(|(k, _)| k)
                        .collect()
                }
            };
            if !new.is_empty() {
                let late: Vec<&&String> = new.iter().filter(|k| ***k <= last_max).collect();
                let incremental = late.len() * 1000 <= new.len() * AUTO_LATE_PER_MILLE;
                self.pos.incremental = Some(incremental);
                if incremental {
                    tracing::info!(
                        new = new.len(),
                        late = late.len(),
                        after = %last_max,
                        "listing = \"auto\": new keys sort after the keys listed before: listing incrementally (start-after the last key taken), in full every full_listing_interval"
                    );
                } else {
                    tracing::info!(
                        new = new.len(),
                        late = late.len(),
                        example = %late.first().map(|k| k.as_str()).unwrap_or_default(),
                        before = %last_max,
                        "listing = \"auto\": new keys sort among the keys listed before (random names, not dates): listing in full every time; set listing = \"full\" to skip this check"
                    );
                }
            }
        }
        if let Some((max_key, _)) = keys.iter().max_by(|a, b| a.0.cmp(&b.0)) {
            self.pos.last_max_key = Some(max_key.clone());
            self.pos.last_max_modified_ms = keys.iter().map(|(_, m)| *m).max();
            self.previous = Some(hashes);
        }
    }

    /// These files (by path) are settled: they no longer hold the mark back.
    pub fn settled<'a>(&mut self, paths: impl IntoIterator<Item = &'a str>) {
        for path in paths {
            if let Some(key) = self.keys_of.remove(path) {
                self.pending.remove(&key);
            }
        }
        self.advance();
    }

    /// Moves the mark to the last listed key before the first pending one.
    fn advance(&mut self) {
        let next = match self.pending.keys().next() {
            Some(first) => self.listed.range::<String, _>(..first).next_back(),
            None => self.listed.iter().next_back(),
        }
        .cloned();
        if let Some(next) = next {
            if self.pos.mark.as_ref().is_none_or(|m| next > *m) {
                let mut rest = self.listed.split_off(&next);
                rest.remove(&next);
                self.listed = rest;
                self.pos.mark = Some(next);
            }
        }
    }

    /// The position as JSON, when it changed since last asked.
    pub fn changed(&mut self) -> Option<String> {
        if self.saved.as_ref() == Some(&self.pos) {
            return None;
        }
        self.saved = Some(self.pos.clone());
        serde_json::to_string(&self.pos).ok()
    }
}

fn hash(key: &str) -> u64 {
    let mut h = DefaultHasher::new();
    key.hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(key: &str) -> (String, FileEvent) {
        (
            key.to_string(),
            FileEvent {
                path: format!("s3://b/{key}"),
                etag: "e".into(),
                size: 1,
                last_modified_ms: 0,
            },
        )
    }

    fn keys(names: &[&str]) -> Vec<(String, i64)> {
        names.iter().map(|k| (k.to_string(), 0)).collect()
    }

    #[test]
    fn the_mark_stops_before_the_first_unsettled_key() {
        let mut t = Tracker::new(
            ListingMode::Incremental,
            Duration::from_secs(3600),
            "p",
            None,
        );
        assert_eq!(t.plan(0), Plan::Full, "no mark yet");
        let offered = t.listed(
            &Plan::Full,
            0,
            &keys(&["p/a", "p/b", "p/c", "p/_skip"]),
            vec![event("p/a"), event("p/b"), event("p/c")],
        );
        assert_eq!(offered.len(), 3);
        // `_skip` sorts first and was left out: it does not hold the mark.
        assert_eq!(t.pos.mark.as_deref(), Some("p/_skip"));
        t.settled(["s3://b/p/a", "s3://b/p/c"]);
        assert_eq!(t.pos.mark.as_deref(), Some("p/a"), "b is still pending");
        assert_eq!(t.plan(1000), Plan::After("p/a".into()));
        // The next incremental listing sees c again and d; b is offered again.
        let offered = t.listed(
            &Plan::After("p/a".into()),
            1000,
            &keys(&["p/b", "p/c", "p/d"]),
            vec![event("p/b"), event("p/c"), event("p/d")],
        );
        let paths: Vec<_> = offered.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, vec!["s3://b/p/b", "s3://b/p/c", "s3://b/p/d"]);
        t.settled(["s3://b/p/b", "s3://b/p/c", "s3://b/p/d"]);
        assert_eq!(t.pos.mark.as_deref(), Some("p/d"));
        let saved = t.changed().expect("changed");
        assert!(t.changed().is_none(), "unchanged since");
        let resumed = Tracker::new(
            ListingMode::Incremental,
            Duration::from_secs(3600),
            "p",
            Some(&saved),
        );
        assert_eq!(resumed.plan(2000), Plan::After("p/d".into()));
        assert_eq!(
            resumed.plan(3_600_000),
            Plan::Full,
            "a full listing every full_listing_interval"
        );
        let other = Tracker::new(
            ListingMode::Incremental,
            Duration::from_secs(3600),
            "q",
            Some(&saved),
        );
        assert_eq!(other.plan(2000), Plan::Full, "another prefix starts over");
    }

    #[test]
    fn auto_decides_from_two_listings() {
        let dated = ["p/2026/11/30/01.json", "p/2026/11/30/02.json"];
        let mut t = Tracker::new(ListingMode::Auto, Duration::from_secs(3600), "p", None);
        t.listed(&Plan::Full, 0, &keys(&dated), Vec::new());
        assert!(!t.incremental(), "one listing says nothing");
        let mut more = dated.to_vec();
        more.push("p/2026/11/30/03.json");
        t.listed(&Plan::Full, 1, &keys(&more), Vec::new());
        assert!(t.incremental());

        let uuids = ["p/3f2a.json", "p/9c41.json"];
        let mut t = Tracker::new(ListingMode::Auto, Duration::from_secs(3600), "p", None);
        t.listed(&Plan::Full, 0, &keys(&uuids), Vec::new());
        let mut more = uuids.to_vec();
        more.extend(["p/07be.json", "p/e5d0.json"]);
        t.listed(&Plan::Full, 1, &keys(&more), Vec::new());
        assert_eq!(t.pos.incremental, Some(false));
        assert_eq!(t.plan(2), Plan::Full);

        // Across runs, new keys are those modified after the previous listing's newest.
        let mut t = Tracker::new(ListingMode::Auto, Duration::from_secs(3600), "p", None);
        t.listed(
            &Plan::Full,
            0,
            &[("p/b".into(), 10), ("p/c".into(), 20)],
            Vec::new(),
        );
        let saved = t.changed().expect("saved");
        let mut t = Tracker::new(
            ListingMode::Auto,
            Duration::from_secs(3600),
            "p",
            Some(&saved),
        );
        t.listed(
            &Plan::Full,
            1,
            &[("p/a".into(), 30), ("p/b".into(), 10), ("p/c".into(), 20)],
            Vec::new(),
        );
        assert_eq!(t.pos.incremental, Some(false), "a landed before c");
    }
}
