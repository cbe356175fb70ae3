//! The plain record of one discovered file, passed from discovery to the checkpoint and
//! the reader.

/// One file found in the landing zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEvent {
    /// Full URL (`s3://bucket/key`, `file:///abs/path`): the identity kept in the checkpoint.
    pub path: String,
    /// ETag as the store reports it ("" when the store has none).
    pub etag: String,
    /// Size in bytes.
    pub size: u64,
    /// Last modification time, milliseconds since the Unix epoch.
    pub last_modified_ms: i64,
}
