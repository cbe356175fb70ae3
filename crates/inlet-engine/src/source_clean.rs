//! Clean-up of processed source files (`clean_source`: archive or delete, once committed for
//! `clean_source_retention`) and compaction of checkpoint entries older than `max_file_age`.

use std::time::{Duration, Instant};

use crate::error::Result;
use futures::StreamExt;
use inlet_checkpoint::FileRecord;
use inlet_discover::{DiscoverError, SourceStore};
use tracing::{debug, info, warn};

use crate::config::{CleanSource, CleanSourceKind};
use crate::pipeline::Pipeline;

/// Files cleaned per pass (the rest wait for the next pass).
const PASS_FILES: usize = 1000;
/// Files moved or deleted at once.
const CONCURRENCY: usize = 8;
/// Least time between two compactions.
const COMPACT_EVERY: Duration = Duration::from_secs(600);

/// What happened to one file.
enum Cleaned {
    /// Recorded with this action and archive path.
    Done(&'static str, Option<String>),
    /// Left as it is, recorded with this reason.
    Kept(String),
    /// Failed; retried by the next pass.
    Retry(DiscoverError),
}

impl Pipeline {
    /// One clean-up pass: archives or deletes committed files whose commit is at least
    /// `clean_source_retention` old. A file is deleted only after its copy exists; a failure
    /// leaves it (and its entry) for the next pass. Never fails the run: problems are logged.
    pub(crate) async fn clean_up(&mut self) -> Result<()> {
        let mode = self.cfg.source.clean.kind();
        if mode == CleanSourceKind::Off {
            return Ok(());
        }
        let retention = ms(self.cfg.source.clean.after().unwrap_or_default());
        let before = chrono::Utc::now()
            .timestamp_millis()
            .saturating_sub(retention);
        let due = self.checkpoint.files_to_clean(before, PASS_FILES)?;
        if due.is_empty() {
            return Ok(());
        }
        let source = self.source.clone();
        let archive = self.archive.clone();
        let mut outcomes = futures::stream::iter(due)
            .map(|file| {
                let source = source.clone();
                let archive = archive.clone();
                async move {
                    let outcome = clean_one(mode, &source, archive.as_ref(), &file).await;
                    (file, outcome)
                }
            })
            .buffer_unordered(CONCURRENCY);
        let (mut done, mut failed) = (0u64, 0u64);
        while let Some((file, outcome)) = outcomes.next().await {
            match outcome {
                Cleaned::Done(action, to) => {
                    self.checkpoint
                        .set_cleaned(&file.path, &file.etag, action, to.as_deref())?;
                    debug!(file = %file.path, action, to = to.as_deref().unwrap_or(""), "cleaned up source file");
                    match action {
                        "archived" => self.stats.archived_files += 1,
                        "deleted" => self.stats.deleted_files += 1,
                        _ => {}
                    }
                    done += 1;
                }
                Cleaned::Kept(why) => {
                    warn!(file = %file.path, reason = %why, "source file left in place");
                    self.checkpoint.set_cleaned(
                        &file.path,
                        &file.etag,
                        &format!("kept: {why}"),
                        None,
                    )?;
                }
                Cleaned::Retry(e) => {
                    warn!(file = %file.path, error = %e, "clean-up failed; the file stays and is tried again next pass");
                    failed += 1;
                }
            }
        }
        info!(
            mode = mode.as_str(),
            cleaned = done,
            failed,
            "clean-up pass"
        );
        Ok(())
    }

    /// Forgets checkpoint entries of files older than `max_file_age` plus a margin, at most
    /// every ten minutes. Discovery drops files older than `max_file_age` before dedupe, and
    /// the margin keeps the two lines apart, so a forgotten file is never taken again.
    pub(crate) fn compact(&mut self) -> Result<()> {
        let Some(age) = self.cfg.source.max_file_age else {
            return Ok(());
        };
        if self
            .compacted_at
            .is_some_and(|t| t.elapsed() < COMPACT_EVERY)
        {
            return Ok(());
        }
        self.compacted_at = Some(Instant::now());
        let cutoff = chrono::Utc::now()
            .timestamp_millis()
            .saturating_sub(ms(age + compaction_margin(age)));
        let keep_uncleaned = self.cfg.source.clean != CleanSource::Off;
        let removed = self.checkpoint.compact(cutoff, keep_uncleaned)?;
        if removed > 0 {
            info!(
                entries = removed,
                "compacted checkpoint entries of files older than max_file_age"
            );
        }
        self.stats.compacted_entries += removed as u64;
        Ok(())
    }

    /// The oldest last-modified time (ms) of a file still taken, with `max_file_age`.
    pub(crate) fn oldest_taken_ms(&self) -> Option<i64> {
        let age = self.cfg.source.max_file_age?;
        Some(
            chrono::Utc::now()
                .timestamp_millis()
                .saturating_sub(ms(age)),
        )
    }
}

/// How far past `max_file_age` an entry must be before compaction forgets it: a tenth of
/// the age, at least ten minutes (room for a clock stepping back).
pub fn compaction_margin(age: Duration) -> Duration {
    (age / 10).max(Duration::from_secs(600))
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Archives or deletes one file. The ETag is checked first: a file rewritten since it was
/// taken holds data inlet has not read, so it stays.
async fn clean_one(
    mode: CleanSourceKind,
    source: &SourceStore,
    archive: Option<&SourceStore>,
    file: &FileRecord,
) -> Cleaned {
    let target = match archive.map(|a| a.archive_key(source, &file.path)) {
        Some(Ok(key)) => Some(key),
        Some(Err(e)) => return Cleaned::Kept(e.to_string()),
        None => None,
    };
    match source.etag(&file.path).await {
        Ok(etag) if !file.etag.is_empty() && !etag.is_empty() && etag != file.etag => {
            return Cleaned::Kept("rewritten since it was taken (its ETag changed)".into());
        }
        Ok(_) => {}
        Err(DiscoverError::NotFound { .. }) => {
            // Moved by an earlier pass that stopped before recording it, or removed by
            // someone else.
            return match (archive, &target) {
                (Some(a), Some(key)) => match a.exists(key).await {
                    Ok(true) => Cleaned::Done("archived", Some(a.url_of(key))),
                    Ok(false) => Cleaned::Done("gone", None),
                    Err(e) => Cleaned::Retry(e),
                },
                _ => Cleaned::Done("gone", None),
            };
        }
        Err(e) => return Cleaned::Retry(e),
    }
    match (mode, archive, target) {
        (CleanSourceKind::Archive, Some(a), Some(key)) => {
            let to = match a.copy_from(source, &file.path, &key).await {
                Ok(to) => to,
                Err(e) => return Cleaned::Retry(e),
            };
            match source.delete(&file.path).await {
                Ok(()) => Cleaned::Done("archived", Some(to)),
                Err(e) => Cleaned::Retry(e),
            }
        }
        (CleanSourceKind::Delete, _, _) => match source.delete(&file.path).await {
            Ok(()) => Cleaned::Done("deleted", None),
            Err(e) => Cleaned::Retry(e),
        },
        _ => Cleaned::Kept("no archive location".into()),
    }
}
