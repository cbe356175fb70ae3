//! Admission to the backlog: files past `max_file_age` dropped, files the checkpoint has
//! seen dropped (one indexed look-up each; their events acknowledged), the rest oldest first.

use std::collections::HashSet;
use std::time::Instant;

use inlet_checkpoint::DedupeKey;
use inlet_discover::FileEvent;
use tracing::debug;

use super::backlog::Backlog;
use crate::error::Result;
use crate::events::Event;
use crate::pipeline::Pipeline;

impl Pipeline {
    /// How a file is known to the checkpoint and acknowledged: by path, or by path and
    /// ETag with `allow_overwrites`.
    pub(super) fn identity(&self, file: &FileEvent) -> (String, Option<String>) {
        (
            file.path.clone(),
            self.cfg.source.allow_overwrites.then(|| file.etag.clone()),
        )
    }

    /// Adds what is new to the backlog, oldest first: each candidate costs one indexed
    /// checkpoint look-up (the events of files seen before are acknowledged at once), and a
    /// path already waiting is not added twice. Returns how many were new.
    pub(super) async fn admit(
        &mut self,
        found: Vec<FileEvent>,
        backlog: &mut Backlog,
    ) -> Result<usize> {
        let total = found.len();
        // Files older than max_file_age are not taken (whatever the checkpoint says).
        let (found, too_old): (Vec<FileEvent>, Vec<FileEvent>) = match self.oldest_taken_ms() {
            Some(oldest) => found
                .into_iter()
                .partition(|e| e.last_modified_ms >= oldest),
            None => (found, Vec::new()),
        };
        if !too_old.is_empty() {
            debug!(
                files = too_old.len(),
                "files older than source.max_file_age left untaken"
            );
            self.stats.too_old_files += too_old.len() as u64;
            if self.discover.wants_settled() {
                let old: Vec<_> = too_old.iter().map(|e| self.identity(e)).collect();
                self.discover.settle(&old).await?;
            }
        }
        let key = if self.cfg.source.allow_overwrites {
            DedupeKey::PathAndEtag
        } else {
            DedupeKey::Path
        };
        // Only a queue and an incremental listing hear of files seen before: a full
        // listing's files are not copied for it.
        let candidates: Vec<(String, Option<String>)> = if self.discover.wants_settled() {
            found.iter().map(|e| self.identity(e)).collect()
        } else {
            Vec::new()
        };
        let looked_up = found.len();
        let started = Instant::now();
        let new = self
            .checkpoint
            .filter_unseen(found, key, |e| (e.path.as_str(), e.etag.as_str()))?;
        debug!(
            candidates = looked_up,
            unseen = new.len(),
            dedupe_ms = started.elapsed().as_secs_f64() * 1000.0,
            "deduped against the checkpoint"
        );
        if !candidates.is_empty() && new.len() < candidates.len() {
            let unseen: HashSet<(String, Option<String>)> =
                new.iter().map(|e| self.identity(e)).collect();
            let seen: Vec<(String, Option<String>)> = candidates
                .into_iter()
                .filter(|c| !unseen.contains(c))
                .collect();
            self.discover.settle(&seen).await?;
        }
        // A DynamoDB export's data waits for its manifest: left out now (a queue delivers
        // its events again later, a listing finds them again).
        let (mut new, waiting) = self.hold_unfinished_exports(new).await?;
        if !waiting.is_empty() {
            self.discover
                .defer(&waiting, crate::exports::EXPORT_WAIT)
                .await?;
        }
        new.sort_by(|a, b| (a.last_modified_ms, &a.path).cmp(&(b.last_modified_ms, &b.path)));
        // A path already waiting is one file (its events are acknowledged with its batch);
        // with allow_overwrites another version of it replaces or joins the waiting one.
        let mut count = 0;
        for event in new {
            let added = if self.cfg.source.allow_overwrites && backlog.contains(&event.path) {
                backlog.offer_version(event);
                false
            } else {
                backlog.push(event)
            };
            count += usize::from(added);
        }
        // Duplicates: seen before, already waiting, or another version set aside.
        self.events.emit(Event::Discovered {
            new: count as u64,
            duplicates: (total - too_old.len() - count) as u64,
        });
        self.events.emit(Event::Backlog {
            files: backlog.queue.len() as u64,
            bytes: backlog.bytes,
        });
        Ok(count)
    }
}
