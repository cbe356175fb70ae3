//! The counters of one run: what the summary, `--json` output and an embedding program are
//! told when a run ends.

use serde::Serialize;

/// Counters of one run, for the summary and `--json` output.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunStats {
    pub batches: u64,
    pub files: u64,
    pub failed_files: u64,
    pub skipped_files: u64,
    pub rows: u64,
    pub bytes: u64,
    pub recovered_batches: u64,
    /// Batch attempts that failed transiently and were retried in this run.
    pub batch_retries: u64,
    pub table_version: Option<i64>,
    pub elapsed_seconds: f64,
    /// Paths of files that failed in this run, with their errors.
    pub failures: Vec<(String, String)>,
    /// MERGE: rows inserted, updated and deleted in the table.
    pub inserted: u64,
    pub updated: u64,
    pub deleted: u64,
    /// DynamoDB records delivered twice in one file (the same `eventID`), taken once.
    pub duplicate_records: u64,
    /// Rows with values kept in the rescued data column.
    pub rescued_rows: u64,
    /// Values kept there (one per key of a row's rescued object, `_file_path` aside).
    pub rescued_values: u64,
    /// Lines set aside as bad records, in all.
    pub bad_records: u64,
    /// Files with bad records, with how many each.
    pub bad_record_files: Vec<(String, u64)>,
    /// Where bad records are written.
    pub bad_records_location: String,
    /// Schema versions this run made, each as its change.
    pub schema_changes: Vec<String>,
    /// Files found but older than `max_file_age`, not taken.
    pub too_old_files: u64,
    /// `clean_source`: files moved to the archive, and files deleted.
    pub archived_files: u64,
    pub deleted_files: u64,
    /// Checkpoint entries forgotten past `max_file_age`.
    pub compacted_entries: u64,
    /// Files of a table's first batch decoded and written while its schema was inferred
    /// (each read and walked once instead of twice).
    pub files_written_while_inferring: u64,
}

impl RunStats {
    pub fn note_bad_records(&mut self, file: &str, n: u64) {
        self.bad_records += n;
        self.bad_record_files.push((file.to_string(), n));
    }
}
