//! Errors of decoding; each names the file, and the line where one is known.

#[derive(Debug, thiserror::Error)]
pub enum FormatError {
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
