//! What a run shows a person: a progress bar on a terminal (an observer of the pipeline's
//! events), log lines otherwise, and the one-paragraph summary at the end.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use std::sync::atomic::{AtomicU64, Ordering};

use indicatif::{ProgressBar, ProgressStyle};
use inlet_engine::{Event, Observer, RunStats};

/// The progress bar, drawn only when stderr is a terminal: files found against files done,
/// with the rows so far; an observer of the pipeline's events.
pub struct Progress {
    bar: ProgressBar,
    started: Instant,
    rows: AtomicU64,
}

impl Progress {
    pub fn new() -> Self {
        let bar = if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new(0);
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} files {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        } else {
            ProgressBar::hidden()
        };
        Self {
            bar,
            started: Instant::now(),
            rows: AtomicU64::new(0),
        }
    }

    pub fn finish(&self) -> Duration {
        self.bar.finish_and_clear();
        self.started.elapsed()
    }
}

impl Observer for Progress {
    fn event(&self, event: &Event) {
        match event {
            Event::Discovered { new, .. } => self.bar.inc_length(*new),
            Event::BatchCommitted(done) => {
                let rows = self.rows.fetch_add(done.rows, Ordering::Relaxed) + done.rows;
                self.bar.inc(done.files);
                self.bar.set_message(format!("{rows} rows"));
            }
            _ => {}
        }
    }
}

/// The end-of-run paragraph.
pub fn summary(pipeline_id: &str, table: &str, stats: &RunStats) -> String {
    let mut text = format!(
        "inlet: pipeline '{pipeline_id}' took {} file{} ({}, {} row{}) in {} batch{} into {}",
        stats.files,
        if stats.files == 1 { "" } else { "s" },
        humansize::format_size(stats.bytes, humansize::DECIMAL),
        stats.rows,
        if stats.rows == 1 { "" } else { "s" },
        stats.batches,
        if stats.batches == 1 { "" } else { "es" },
        table,
    );
    match stats.table_version {
        Some(v) => text.push_str(&format!(", now at version {v}")),
        None => text.push_str(", which does not exist yet"),
    }
    text.push_str(&format!(", in {:.1} s.", stats.elapsed_seconds));
    if stats.recovered_batches > 0 {
        text.push_str(&format!(
            " Recovered {} batch{} left by an earlier run.",
            stats.recovered_batches,
            if stats.recovered_batches == 1 {
                ""
            } else {
                "es"
            }
        ));
    }
    if stats.batch_retries > 0 {
        text.push_str(&format!(
            " Retried {} batch attempt{} that failed on storage or network trouble.",
            stats.batch_retries,
            if stats.batch_retries == 1 { "" } else { "s" }
        ));
    }
    if stats.skipped_files > 0 {
        text.push_str(&format!(
            " {} file{} vanished or changed before being read and {} recorded as skipped.",
            stats.skipped_files,
            if stats.skipped_files == 1 { "" } else { "s" },
            if stats.skipped_files == 1 {
                "is"
            } else {
                "are"
            },
        ));
    }
    if stats.too_old_files > 0 {
        text.push_str(&format!(
            " {} file{} older than source.max_file_age not taken.",
            stats.too_old_files,
            if stats.too_old_files == 1 { "" } else { "s" },
        ));
    }
    if stats.archived_files + stats.deleted_files > 0 {
        text.push_str(&format!(
            " Cleaned up {} archived and {} deleted source file(s).",
            stats.archived_files, stats.deleted_files
        ));
    }
    if stats.inserted + stats.updated + stats.deleted > 0 {
        text.push_str(&format!(
            " MERGE inserted {}, updated {} and deleted {} row(s).",
            stats.inserted, stats.updated, stats.deleted
        ));
    }
    for change in &stats.schema_changes {
        text.push_str(&format!(" Schema evolved: {change}."));
    }
    if stats.duplicate_records > 0 {
        text.push_str(&format!(
            " {} DynamoDB record{} delivered twice (the same eventID) {} taken once.",
            stats.duplicate_records,
            if stats.duplicate_records == 1 {
                ""
            } else {
                "s"
            },
            if stats.duplicate_records == 1 {
                "was"
            } else {
                "were"
            },
        ));
    }
    if stats.rescued_rows > 0 {
        text.push_str(&format!(
            " {} row{} kept values that did not fit in the rescued data column.",
            stats.rescued_rows,
            if stats.rescued_rows == 1 { "" } else { "s" },
        ));
    }
    if stats.bad_records > 0 {
        text.push_str(&format!(
            " {} bad record{} (lines set aside) written to {}:",
            stats.bad_records,
            if stats.bad_records == 1 { "" } else { "s" },
            stats.bad_records_location,
        ));
        for (path, n) in &stats.bad_record_files {
            text.push_str(&format!(
                "\n  {path}: {n} line{}",
                if *n == 1 { "" } else { "s" }
            ));
        }
    }
    if stats.failed_files > 0 {
        text.push_str(&format!(
            " {} file{} could not be read and {} recorded as failed (see `inlet files --state failed`; \
             `inlet files --retry PATH` takes a fixed file again):",
            stats.failed_files,
            if stats.failed_files == 1 { "" } else { "s" },
            if stats.failed_files == 1 { "is" } else { "are" },
        ));
        for (path, error) in &stats.failures {
            text.push_str(&format!("\n  {path}: {error}"));
        }
    }
    text
}
