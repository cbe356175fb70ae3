//! Incremental listing's memory: the key every earlier key is settled up to (the next listing
//! starts after it), when the last full listing ran, and `auto`'s evidence and decision.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, BTreeSet, HashSet};
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

/// `auto` decides once this many new keys have been seen (over as many listings as it
/// takes): one new key sorting last says little.
const AUTO_MIN_NEW: usize = 5;

/// What is kept in the checkpoint between runs (as JSON, through the engine).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Position {
    /// The source URL this position is for: a changed `source.url` starts over.
    pub prefix: String,
    /// Every file up to and including this one (by URL, which sorts as its S3 key does) is
    /// settled or left out by the filters.
    pub mark: Option<String>,
    /// Wall-clock time of the last full listing (ms since epoch).
    pub full_listing_ms: Option<i64>,
    /// `auto`'s decision once made: `true` incremental, `false` full.
    pub incremental: Option<bool>,
    /// `auto`'s evidence from the last full listing: its largest key and its newest
    /// modification time (objects modified later are new to the next run).
    pub last_max_key: Option<String>,
    pub last_max_modified_ms: Option<i64>,
    /// `auto`'s evidence so far: new keys seen, and those of them that sorted before the
    /// previous listing's last key.
    #[serde(default)]
    pub seen_new: usize,
    #[serde(default)]
    pub seen_late: usize,
}

/// The state of an incremental or `auto` listing.
#[derive(Debug)]
pub(crate) struct Tracker {
    mode: ListingMode,
    full_every: Duration,
    pos: Position,
    /// Files after `mark` in the last listing, kept or not (both plans list every key
    /// after the mark, so the last listing has them all).
    listed: BTreeSet<String>,
    /// Kept events not yet settled, by URL: offered again by every listing until settled
    /// (a DynamoDB export's data waiting for its manifest, a batch cut short).
    pending: BTreeMap<String, FileEvent>,
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

    /// Takes in one listing: every file it listed by URL (kept or not, with its
    /// modification time) and the events kept. Returns the events to offer: these and
    /// those still pending.
    pub fn listed(
        &mut self,
        plan: &Plan,
        now_ms: i64,
        keys: &[(String, i64)],
        kept: Vec<FileEvent>,
    ) -> Vec<FileEvent> {
        if *plan == Plan::Full {
            self.pos.full_listing_ms = Some(now_ms);
            if self.mode == ListingMode::Auto && self.pos.incremental.is_none() {
                self.decide(keys);
            }
        }
        let mark = self.pos.mark.clone();
        self.listed = keys
            .iter()
            .filter(|(k, _)| mark.as_ref().is_none_or(|m| k > m))
            .map(|(k, _)| k.clone())
            .collect();
        for event in kept {
            self.pending.insert(event.path.clone(), event);
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
            let late: Vec<&&String> = new.iter().filter(|k| ***k <= last_max).collect();
            self.pos.seen_new += new.len();
            self.pos.seen_late += late.len();
            let (new, late_count) = (self.pos.seen_new, self.pos.seen_late);
            if new >= AUTO_MIN_NEW {
                let incremental = late_count * 1000 <= new * AUTO_LATE_PER_MILLE;
                self.pos.incremental = Some(incremental);
                if incremental {
                    tracing::info!(
                        new,
                        late = late_count,
                        after = %last_max,
                        "listing = \"auto\": new keys sort after the keys listed before: listing incrementally (start-after the last key taken), in full every full_listing_interval"
                    );
                } else {
                    tracing::info!(
                        new,
                        late = late_count,
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

    /// These files (by URL) are settled: they no longer hold the mark back.
    pub fn settled<'a>(&mut self, paths: impl IntoIterator<Item = &'a str>) {
        for path in paths {
            self.pending.remove(path);
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

    const HOUR: Duration = Duration::from_secs(3600);

    fn event(url: &str) -> FileEvent {
        FileEvent {
            path: url.to_string(),
            etag: "e".into(),
            size: 1,
            last_modified_ms: 0,
        }
    }

    fn keys(urls: &[&str]) -> Vec<(String, i64)> {
        urls.iter().map(|k| (k.to_string(), 0)).collect()
    }

    #[test]
    fn the_mark_stops_before_the_first_unsettled_file() {
        let mut t = Tracker::new(ListingMode::Incremental, HOUR, "s3://b/p/", None);
        assert_eq!(t.plan(0), Plan::Full, "no mark yet");
        let (a, b, c, d) = ("s3://b/p/a", "s3://b/p/b", "s3://b/p/c", "s3://b/p/d");
        let offered = t.listed(
            &Plan::Full,
            0,
            &keys(&[a, b, c, "s3://b/p/_skip"]),
            vec![event(a), event(b), event(c)],
        );
        assert_eq!(offered.len(), 3);
        // `_skip` sorts first and was left out: it does not hold the mark.
        assert_eq!(t.pos.mark.as_deref(), Some("s3://b/p/_skip"));
        t.settled([a, c]);
        assert_eq!(t.pos.mark.as_deref(), Some(a), "b is still pending");
        assert_eq!(t.plan(1000), Plan::After(a.into()));
        // The next incremental listing sees b, c and d; b is offered again with d.
        let offered = t.listed(
            &Plan::After(a.into()),
            1000,
            &keys(&[b, c, d]),
            vec![event(b), event(d)],
        );
        let paths: Vec<_> = offered.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, vec![b, d]);
        t.settled([b, d]);
        assert_eq!(t.pos.mark.as_deref(), Some(d));
        let saved = t.changed().expect("changed");
        assert!(t.changed().is_none(), "unchanged since");
        let resumed = Tracker::new(ListingMode::Incremental, HOUR, "s3://b/p/", Some(&saved));
        assert_eq!(resumed.plan(2000), Plan::After(d.into()));
        assert_eq!(
            resumed.plan(3_600_000),
            Plan::Full,
            "a full listing every full_listing_interval"
        );
        let other = Tracker::new(ListingMode::Incremental, HOUR, "s3://c/p/", Some(&saved));
        assert_eq!(other.plan(2000), Plan::Full, "another source starts over");
    }

    #[test]
    fn auto_decides_once_enough_new_keys_were_seen() {
        let url = |k: &str| format!("s3://b/p/{k}");
        let listing = |names: &[String]| -> Vec<(String, i64)> {
            names.iter().map(|k| (url(k), 0)).collect()
        };
        let hour = |h: u32| format!("2026/11/30/{h:02}.json");
        let mut dated = vec![hour(1), hour(2)];
        let mut t = Tracker::new(ListingMode::Auto, HOUR, "s3://b/p/", None);
        t.listed(&Plan::Full, 0, &listing(&dated), Vec::new());
        assert!(!t.incremental(), "one listing says nothing");
        for h in 3..8 {
            assert_eq!(t.pos.incremental, None, "{} new keys are too few", h - 3);
            dated.push(hour(h));
            t.listed(&Plan::Full, 1, &listing(&dated), Vec::new());
        }
        assert!(t.incremental());

        let uuids: Vec<String> = ["3f2a", "9c41"].map(|u| format!("{u}.json")).to_vec();
        let mut t = Tracker::new(ListingMode::Auto, HOUR, "s3://b/p/", None);
        t.listed(&Plan::Full, 0, &listing(&uuids), Vec::new());
        let mut more = uuids.clone();
        more.extend(["07be", "e5d0", "1a2b", "f9f9", "5c5c"].map(|u| format!("{u}.json")));
        t.listed(&Plan::Full, 1, &listing(&more), Vec::new());
        assert_eq!(t.pos.incremental, Some(false));
        assert_eq!(t.plan(2), Plan::Full);

        // Across runs, new keys are those modified after the previous listing's newest.
        let mut t = Tracker::new(ListingMode::Auto, HOUR, "s3://b/p/", None);
        t.listed(
            &Plan::Full,
            0,
            &[(url("b"), 10), (url("c"), 20)],
            Vec::new(),
        );
        let saved = t.changed().expect("saved");
        let mut t = Tracker::new(ListingMode::Auto, HOUR, "s3://b/p/", Some(&saved));
        let later: Vec<(String, i64)> = ["a", "d", "e", "f", "g"]
            .iter()
            .map(|k| (url(k), 30))
            .chain([(url("b"), 10), (url("c"), 20)])
            .collect();
        t.listed(&Plan::Full, 1, &later, Vec::new());
        assert_eq!(t.pos.incremental, Some(false), "a landed before c");
    }
}
