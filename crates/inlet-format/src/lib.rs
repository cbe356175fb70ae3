//! Decoders from file bytes to Arrow record batches: decompression by extension or option;
//! JSON lines, CSV, text and DynamoDB records through one record-fitting path; Parquet by
//! casting its columns. Each format also feeds the schema sample the first batch infers from.

mod compression;
mod csv;
mod dynamodb;
mod error;
mod fit;
mod json;
mod parquet;
mod partition;
mod sample;
mod shape;
#[cfg(test)]
mod testing;
mod text;

pub use compression::{decompress, Compression};
pub use csv::CsvOptions;
pub use dynamodb::{NumberMode, SEQ_WIDTH};
pub use error::FormatError;
pub use fit::{BadRecord, Decoded, RAW_LIMIT};
pub use partition::partition_values;
pub use sample::SchemaSample;
pub use shape::fits_within;

use arrow::datatypes::{Field, SchemaRef};
use bytes::Bytes;
use inlet_schema::EvolutionMode;
use serde::Deserialize;

/// Input format of the landing zone's files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// JSON objects, one per line, concatenated on a line (Firehose), or in an array per
    /// line (one row per object, as Spark reads it).
    #[default]
    Json,
    /// Delimited text with an optional header (`CsvOptions`).
    Csv,
    /// Apache Parquet: the schema comes from the files' footers.
    Parquet,
    /// One row per line, in the column `value`.
    Text,
    /// DynamoDB Streams records, one per line (or concatenated, in arrays, or in
    /// `{"Records": [...]}` events): rows of the keys and new image plus `_op`, `_seq`,
    /// `_event_time`.
    DynamodbStream,
    /// DynamoDB export-to-S3 lines (`{"Item": {...}}`), for backfills.
    DynamodbExport,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::Csv => "csv",
            Self::Parquet => "parquet",
            Self::Text => "text",
            Self::DynamodbStream => "dynamodb_stream",
            Self::DynamodbExport => "dynamodb_export",
        }
    }
}

/// Rows per Arrow record batch produced by the decoders.
pub const BATCH_ROWS: usize = 8192;

/// The column `text` files decode into.
pub const TEXT_COLUMN: &str = "value";

/// How records are read and fitted to the schema.
#[derive(Debug, Clone, Copy)]
pub struct DecodeOptions<'a> {
    pub format: Format,
    /// How DynamoDB `N` values are read.
    pub numbers: NumberMode,
    /// How `csv` files are split into fields.
    pub csv: &'a CsvOptions,
    pub mode: EvolutionMode,
    /// The column receiving what does not fit; `None` sends such records to bad records.
    pub rescued_column: Option<&'a str>,
    /// Whether new columns get inferred types (else all strings).
    pub infer_types: bool,
    /// Types for new columns named here, overriding inference.
    pub hints: &'a [Field],
    /// Hive-style `name=value` directories of the file's path that become columns.
    pub partition_columns: &'a [String],
    /// Every JSON line of the file is known to fit the schema as written (inference walked
    /// it: `SchemaSample::fitted`, `fits_within`), so no line is checked again.
    pub known_to_fit: bool,
}

/// Decodes `data` (the decompressed file at `path`) into record batches of `schema`, which
/// includes the rescued data column when one is configured.
pub fn decode(
    path: &str,
    data: &Bytes,
    schema: &SchemaRef,
    opts: &DecodeOptions<'_>,
) -> Result<Decoded, FormatError> {
    match opts.format {
        Format::Parquet => parquet::decode(path, data, schema, opts),
        format => {
            let (text, not_utf8) = utf8_lines(data);
            let text = text.as_ref();
            let body = text.strip_prefix('\u{feff}').unwrap_or(text);
            let mut fitter = fit::Fitter::new(path, schema, opts);
            // Bad records give byte offsets into the file as stored, BOM included.
            fitter.base_offset = text.len() - body.len();
            match format {
                Format::Csv => csv::feed(body, opts.csv, schema, opts.infer_types, &mut fitter),
                Format::Text => text::feed(body, &mut fitter),
                _ => json::feed(body, opts.format, opts.numbers, &mut fitter),
            }
            let mut decoded = fitter.finish()?;
            if let Decoded::Rows { bad_records, .. } = &mut decoded {
                if !not_utf8.is_empty() {
                    bad_records.extend(not_utf8);
                    bad_records.sort_by_key(|b| b.line);
                }
            }
            Ok(decoded)
        }
    }
}

/// The file as text. Lines that are not UTF-8 become bad records, and their bytes spaces
/// (so the line is blank, skipped, and every other line keeps its byte offset); the rest
/// of the file is read as usual.
pub(crate) fn utf8_lines(data: &[u8]) -> (std::borrow::Cow<'_, str>, Vec<BadRecord>) {
    if let Ok(text) = std::str::from_utf8(data) {
        return (std::borrow::Cow::Borrowed(text), Vec::new());
    }
    let mut clean = data.to_vec();
    let mut bad = Vec::new();
    let mut start = 0;
    for (i, line) in data.split(|b| *b == b'\n').enumerate() {
        if let Err(e) = std::str::from_utf8(line) {
            bad.push(BadRecord {
                line: i as u64 + 1,
                byte_offset: start as u64,
                error: format!(
                    "line is not UTF-8 text (invalid byte at column {})",
                    e.valid_up_to() + 1
                ),
                raw: fit::clip_raw(&String::from_utf8_lossy(line)),
            });
            clean[start..start + line.len()].fill(b' ');
        }
        start += line.len() + 1;
    }
    // Every invalid line is now spaces, so the rest is UTF-8.
    let text = String::from_utf8(clean)
        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
    (std::borrow::Cow::Owned(text), bad)
}
