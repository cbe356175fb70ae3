//! Decoders from file bytes to Arrow record batches: decompression by extension or option;
//! JSON lines, CSV, text and DynamoDB records through one record-fitting path; Parquet and
//! Avro by casting their columns. Each format also feeds the schema sample the first batch
//! infers from.

mod avro;
mod avro_columns;
mod avro_container;
#[cfg(test)]
mod avro_fixtures;
mod column_types;
mod columnar;
mod compression;
mod csv;
mod decode;
mod decoded;
mod direct;
mod dynamodb;
mod dynamodb_change;
mod error;
mod fit;
mod json;
mod multiline;
mod options;
mod parquet;
mod partition;
mod sample;
mod shape;
#[cfg(test)]
mod testing;
mod text;
mod typed_text;

pub use compression::{decompress, Compression};
pub use decode::{decode, decode_as_written};
pub use decoded::{BadRecord, Decoded, BATCH_ROWS, RAW_LIMIT};
pub use dynamodb::{NumberMode, SEQ_WIDTH};
pub use dynamodb_change::CHANGE_SEQ_WIDTH;
pub use error::FormatError;
pub use options::{CsvOptions, DecodeOptions, Format};
pub use partition::partition_values;
pub use sample::SchemaSample;
pub use shape::fits_within;
pub use text::TEXT_COLUMN;
