//! Decoders from file bytes to Arrow record batches: decompression by extension or option,
//! JSON lines (and concatenated JSON, and DynamoDB stream / export records) sampled for
//! inference and decoded with arrow-json.

mod compression;
mod dynamodb;
mod error;
mod json;

pub use compression::{decompress, Compression};
pub use dynamodb::{NumberMode, SEQ_WIDTH};
pub use error::FormatError;
pub use json::{decode_json, sample_json, BadRecord, DecodeOptions, Decoded};

use serde::Deserialize;

/// Input format of the landing zone's files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// JSON objects, one per line or concatenated without separators.
    #[default]
    Json,
    /// DynamoDB Streams records, one per line (or `{"Records": [...]}` events): rows of the
    /// keys and new image plus `_op`, `_seq`, `_event_time`.
    DynamodbStream,
    /// DynamoDB export-to-S3 lines (`{"Item": {...}}`), for backfills.
    DynamodbExport,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::DynamodbStream => "dynamodb_stream",
            Self::DynamodbExport => "dynamodb_export",
        }
    }
}

/// Rows per Arrow record batch produced by the decoders.
pub const BATCH_ROWS: usize = 8192;
