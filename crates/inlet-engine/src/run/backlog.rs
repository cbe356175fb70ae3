//! The backlog: files found and not yet planned, each path once, in arrival order, and how
//! a batch is cut from it (at most so many files and bytes; a larger file alone).

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Instant;

use inlet_discover::FileEvent;

/// Files found and not yet planned: arrival order, each path once.
#[derive(Debug, Default)]
pub(super) struct Backlog {
    pub(super) queue: VecDeque<FileEvent>,
    paths: HashSet<String>,
    pub(super) bytes: u64,
    /// When the oldest file waiting arrived: the open batch's start.
    pub(super) since: Option<Instant>,
    /// `allow_overwrites`: older versions of waiting paths (see `offer_version`).
    replaced: HashMap<String, Vec<FileEvent>>,
}

impl Backlog {
    pub(super) fn contains(&self, path: &str) -> bool {
        self.paths.contains(path)
    }

    /// With `allow_overwrites`, another version of a waiting path: the newer of the two
    /// (by last-modified time, the later received on a tie) waits, the other is kept aside
    /// to be acknowledged with the batch that takes the path (or put back, should that
    /// batch find the file changed again). False when it is the version already waiting.
    pub(super) fn offer_version(&mut self, event: FileEvent) -> bool {
        let Some(waiting) = self.queue.iter_mut().find(|e| e.path == event.path) else {
            return self.push(event);
        };
        if waiting.etag == event.etag {
            return false;
        }
        let older = if event.last_modified_ms >= waiting.last_modified_ms {
            self.bytes = self.bytes - waiting.size + event.size;
            std::mem::replace(waiting, event)
        } else {
            event
        };
        self.replaced
            .entry(older.path.clone())
            .or_default()
            .push(older);
        true
    }

    /// Adds a file unless its path is already waiting; true when added.
    pub(super) fn push(&mut self, event: FileEvent) -> bool {
        if !self.paths.insert(event.path.clone()) {
            return false;
        }
        self.bytes += event.size;
        self.since.get_or_insert_with(Instant::now);
        self.queue.push_back(event);
        true
    }

    pub(super) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    pub(super) fn is_full(&self, max_files: usize, max_bytes: u64) -> bool {
        self.queue.len() >= max_files || self.bytes >= max_bytes
    }

    /// The next batch, and the older versions of its paths set aside. What stays behind
    /// has waited as long, so `since` is kept.
    pub(super) fn take(
        &mut self,
        max_files: usize,
        max_bytes: u64,
    ) -> (Vec<FileEvent>, Vec<FileEvent>) {
        let batch = take_batch(&mut self.queue, max_files, max_bytes);
        let mut replaced = Vec::new();
        for file in &batch {
            self.paths.remove(&file.path);
            self.bytes -= file.size;
            replaced.extend(self.replaced.remove(&file.path).unwrap_or_default());
        }
        if self.queue.is_empty() {
            self.since = None;
        }
        (batch, replaced)
    }
}

/// Takes the next batch off the queue: at most `max_files`, and at most `max_bytes` unless
/// a single file is larger (it then makes a batch of its own).
fn take_batch(queue: &mut VecDeque<FileEvent>, max_files: usize, max_bytes: u64) -> Vec<FileEvent> {
    let mut batch = Vec::new();
    let mut bytes = 0u64;
    while let Some(next) = queue.front() {
        if batch.len() >= max_files || (!batch.is_empty() && bytes + next.size > max_bytes) {
            break;
        }
        bytes += next.size;
        batch.extend(queue.pop_front());
    }
    batch
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(name: &str, size: u64) -> FileEvent {
        FileEvent {
            path: name.into(),
            etag: String::new(),
            size,
            last_modified_ms: 0,
        }
    }

    #[test]
    fn batches_respect_file_and_byte_bounds() {
        let mut q: VecDeque<_> = [ev("a", 5), ev("b", 5), ev("c", 20), ev("d", 1)].into();
        let names = |b: Vec<FileEvent>| b.into_iter().map(|e| e.path).collect::<Vec<_>>();
        assert_eq!(names(take_batch(&mut q, 10, 12)), vec!["a", "b"]);
        assert_eq!(names(take_batch(&mut q, 10, 12)), vec!["c"]);
        assert_eq!(names(take_batch(&mut q, 1, 12)), vec!["d"]);
        assert!(q.is_empty());
    }

    #[test]
    fn backlog_holds_each_path_once_and_keeps_its_window() {
        let mut backlog = Backlog::default();
        let added: Vec<bool> = [ev("a", 5), ev("a", 5), ev("b", 7), ev("c", 1)]
            .into_iter()
            .map(|e| backlog.push(e))
            .collect();
        assert_eq!(added, vec![true, false, true, true]);
        assert_eq!((backlog.queue.len(), backlog.bytes), (3, 13));
        assert!(backlog.is_full(3, 100) && backlog.is_full(10, 13) && !backlog.is_full(4, 14));
        let opened = backlog.since;
        assert_eq!(backlog.take(2, 100).0.len(), 2);
        assert_eq!(
            (backlog.bytes, backlog.since),
            (1, opened),
            "what stays has waited as long"
        );
        assert_eq!(backlog.take(2, 100).0.len(), 1);
        assert!(backlog.is_empty() && backlog.since.is_none() && !backlog.contains("a"));
    }

    #[test]
    fn the_newest_version_of_a_waiting_path_is_the_one_taken() {
        let version = |etag: &str, size: u64, at: i64| FileEvent {
            etag: etag.into(),
            last_modified_ms: at,
            ..ev("a", size)
        };
        let mut backlog = Backlog::default();
        assert!(backlog.offer_version(version("e2", 20, 200)));
        assert!(
            !backlog.offer_version(version("e2", 20, 200)),
            "the same version again"
        );
        assert!(
            backlog.offer_version(version("e1", 10, 100)),
            "an older version is set aside"
        );
        assert!(
            backlog.offer_version(version("e3", 30, 200)),
            "a tie goes to the later received"
        );
        assert_eq!((backlog.queue.len(), backlog.bytes), (1, 30));
        let (taken, aside) = backlog.take(10, 1000);
        assert_eq!(
            taken.iter().map(|e| e.etag.as_str()).collect::<Vec<_>>(),
            vec!["e3"]
        );
        let mut aside: Vec<&str> = aside.iter().map(|e| e.etag.as_str()).collect();
        aside.sort_unstable();
        assert_eq!(aside, vec!["e1", "e2"]);
        assert!(backlog.replaced.is_empty());
    }
}
