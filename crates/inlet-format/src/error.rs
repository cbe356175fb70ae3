//! Errors of decoding; each names the file, and the line where one is known.

#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// Nothing of the file can be read as its format says (for Avro: a bad header, a block
    /// cut short or corrupt).
    #[error("{path} is not a readable {format} file: {detail}")]
    Unreadable {
        path: String,
        format: &'static str,
        detail: String,
    },

    #[error("cannot decompress {path} as {codec}: {detail}")]
    Decompress {
        path: String,
        codec: &'static str,
        detail: String,
    },

    #[error("{path}, line {line}: {detail}")]
    Decode {
        path: String,
        line: u64,
        detail: String,
    },
}
