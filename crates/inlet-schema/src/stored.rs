//! The schema as the checkpoint stores it: Arrow's own JSON form, read back with an error
//! that says the stored text is at fault.

use arrow::datatypes::Schema;

use crate::error::SchemaError;

/// The schema as JSON text, the form the checkpoint stores.
pub fn to_json(schema: &Schema) -> String {
    serde_json::to_string(schema).unwrap_or_else(|_| "{}".into())
}

/// A schema from the checkpoint's JSON text.
pub fn from_json(text: &str) -> Result<Schema, SchemaError> {
    serde_json::from_str(text).map_err(|e| SchemaError::Stored(e.to_string()))
}
