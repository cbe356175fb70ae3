//! Errors of schema inference, hints and storage.

#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("stored schema is not valid: {0}")]
    Stored(String),

    #[error("schema hints '{hints}': {detail} at character {at}")]
    Hints {
        hints: String,
        at: usize,
        detail: String,
    },
}
