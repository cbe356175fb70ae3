//! Schema inference for landing-zone files: types from a bounded sample of JSON records,
//! widened instead of failing (int → bigint → double; mixed → string).

mod error;
mod infer;

pub use error::SchemaError;
pub use infer::JsonInference;

use arrow::datatypes::Schema;

/// Bounds on how much input inference reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SampleLimits {
    /// At most this many files.
    pub max_files: usize,
    /// At most this many (decompressed) bytes in all.
    pub max_bytes: u64,
}

impl Default for SampleLimits {
    fn default() -> Self {
        Self {
            max_files: 1000,
            max_bytes: 50 * 1024 * 1024 * 1024,
        }
    }
}

/// The schema as JSON text, the form the checkpoint stores.
pub fn to_json(schema: &Schema) -> String {
    serde_json::to_string(schema).unwrap_or_else(|_| "{}".into())
}

/// A schema from the checkpoint's JSON text.
pub fn from_json(text: &str) -> Result<Schema, SchemaError> {
    serde_json::from_str(text).map_err(|e| SchemaError::Stored(e.to_string()))
}
