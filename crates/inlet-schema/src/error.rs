//! Errors of schema inference and storage.

#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("stored schema is not valid: {0}")]
    Stored(String),
}
