//! Errors of discovery and source reads; each names the URL at fault.

#[derive(Debug, thiserror::Error)]
pub enum DiscoverError {
    #[error("source url '{url}' is not supported: {reason}")]
    BadUrl { url: String, reason: String },

    #[error("source storage option '{key}' is not known: {reason}")]
    BadOption { key: String, reason: String },

    #[error("path_glob '{glob}' is not a valid glob: {source}")]
    BadGlob {
        glob: String,
        #[source]
        source: globset::Error,
    },

    #[error("cannot open source {url}: {source}")]
    Open {
        url: String,
        #[source]
        source: object_store::Error,
    },

    #[error("cannot list source {url}: {source}; check that the bucket or directory exists and the credentials may list it")]
    List {
        url: String,
        #[source]
        source: object_store::Error,
    },

    #[error("SQS queue {url}: {reason}")]
    Queue { url: String, reason: String },

    #[error("source file {url} cannot be read: {UNADDRESSABLE}")]
    Unaddressable { url: String },

    #[error("source file {url} no longer exists")]
    NotFound { url: String },

    #[error("source file {url} changed since it was found (its ETag is no longer {etag})")]
    Changed { url: String, etag: String },

    #[error("cannot delete source file {url}: {source}; check that the credentials may delete it (s3:DeleteObject)")]
    Delete {
        url: String,
        #[source]
        source: object_store::Error,
    },

    #[error("cannot write {url}: {source}; check that the location exists and the credentials may write to it")]
    Write {
        url: String,
        #[source]
        source: object_store::Error,
    },

    #[error("cannot read source file {url}: {source}")]
    Read {
        url: String,
        #[source]
        source: object_store::Error,
    },
}

/// Why a key with a `.`, `..` or empty path segment is skipped.
pub const UNADDRESSABLE: &str = "its S3 key has a '.', '..' or empty path segment, which inlet's object store client cannot address; copy the object to a key without such segments and inlet takes the copy";

impl DiscoverError {
    /// True when a retry may help (network or service trouble), false for user errors.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::List { source, .. } | Self::Read { source, .. }
            if matches!(source, object_store::Error::Generic { .. }))
    }
}
