//! What decoding a file gives: its rows as Arrow batches (or the new columns it needs
//! first), and the records that did not become rows, as bad records.

use arrow::record_batch::RecordBatch;
use serde::Serialize;

/// Rows per Arrow record batch produced by the decoders.
pub const BATCH_ROWS: usize = 8192;

/// A line that did not become a row, or a row whose values did not all fit anywhere.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BadRecord {
    /// 1-based line in the decompressed file (for Parquet: the 1-based row).
    pub line: u64,
    /// Offset of the record's first byte in the decompressed file: the line's, or for JSON,
    /// the bad value's (several records may share a line).
    pub byte_offset: u64,
    pub error: String,
    /// The record as written (for JSON: the failing record, or the line from the first value
    /// that does not parse), invalid UTF-8 replaced, cut at [`RAW_LIMIT`] bytes.
    pub raw: String,
}

/// The result of decoding one file.
#[derive(Debug)]
pub enum Decoded {
    /// Every record became a row, a bad record, or both (a row with rescued values when no
    /// rescued data column is configured).
    Rows {
        batches: Vec<RecordBatch>,
        rows: u64,
        /// Rows with something in the rescued data column.
        rescued_rows: u64,
        bad_records: Vec<BadRecord>,
        /// Records dropped as repeats, not rows nor bad records: `format = "dynamodb"` stream
        /// and Kinesis records whose `eventID` came earlier in the same file.
        duplicates: u64,
    },
    /// The file has top-level fields the schema lacks (modes `add_new_columns` and
    /// `fail_on_new_columns` only): the columns they would add, typed. Nothing was decoded.
    NewColumns(Vec<arrow::datatypes::Field>),
}

/// A bad record keeps at most this much of its line; a 50 MB line is named, not copied.
pub const RAW_LIMIT: usize = 64 * 1024;

/// `raw`, cut at [`RAW_LIMIT`] bytes (on a character boundary) with a note of its length.
pub(crate) fn clip_raw(raw: &str) -> String {
    if raw.len() <= RAW_LIMIT {
        return raw.to_string();
    }
    let mut end = RAW_LIMIT;
    while !raw.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes in all)", &raw[..end], raw.len())
}
