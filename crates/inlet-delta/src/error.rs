//! Errors of the Delta sink; each names the table URL.

use deltalake::DeltaTableError;

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("cannot open Delta table {url}: {source}; check that the bucket or directory exists and the credentials may read it")]
    Open {
        url: String,
        #[source]
        source: DeltaTableError,
    },

    #[error("cannot create Delta table {url}: {source}")]
    Create {
        url: String,
        #[source]
        source: DeltaTableError,
    },

    #[error("Delta table {url} does not exist yet")]
    NotCreated { url: String },

    #[error("schema of Delta table {url} cannot be used: {detail}")]
    Schema { url: String, detail: String },

    #[error("cannot write data files to Delta table {url}: {source}")]
    Write {
        url: String,
        #[source]
        source: DeltaTableError,
    },

    #[error("cannot commit to Delta table {url}: {source}")]
    Commit {
        url: String,
        #[source]
        source: DeltaTableError,
    },

    #[error("Delta table {url} already holds batch {batch_id} of pipeline '{app_id}' (its txn version is {txn_version}); refusing to commit it again")]
    AlreadyCommitted {
        url: String,
        app_id: String,
        batch_id: i64,
        txn_version: i64,
    },

    #[error("column '{column}' of Delta table {url} is {table_type}, but this batch has it as {batch_type} (another writer changed the table since the batch began); nothing was committed, and the batch is retried under the table's schema")]
    SchemaConflict {
        url: String,
        column: String,
        table_type: String,
        batch_type: String,
    },

    #[error("column '{column}' of Delta table {url} is {table_type}, and this batch's {batch_type} values do not all convert to it (another writer added the column with its type); nothing was committed. Make the transform produce {table_type} for '{column}', or write to another table")]
    MergeTypes {
        url: String,
        column: String,
        table_type: String,
        batch_type: String,
    },

    #[error("Delta table {url}: {source}")]
    Protocol {
        url: String,
        #[source]
        source: crate::protocol::ProtocolError,
    },

    #[error("Delta table {url} at version {version}: its schema or properties need table feature(s) {missing} that its protocol (reader {reader_version}, writer {writer_version}) does not declare, so {who} refuse it (an inlet before 0.2 could commit such a schema). Run `inlet table repair-protocol --config <this config>` to add the missing feature(s) in a new commit; no data is changed")]
    MissingFeatures {
        url: String,
        version: i64,
        missing: String,
        reader_version: i32,
        writer_version: i32,
        /// "readers and writers", or "writers" when only writer features are missing.
        who: &'static str,
    },

    #[error("Delta table {url}: cannot {what}: {source}; the commits stand, and this is tried again later")]
    Maintenance {
        url: String,
        what: &'static str,
        #[source]
        source: Box<DeltaTableError>,
    },

    #[error("cannot compact Delta table {url}: {source}; nothing was changed (files written before the failure are not part of the table)")]
    Compact {
        url: String,
        #[source]
        source: DeltaTableError,
    },

    #[error("cannot VACUUM Delta table {url}: {source}")]
    Vacuum {
        url: String,
        #[source]
        source: DeltaTableError,
    },

    #[error("VACUUM of Delta table {url} with a retention of {retain} is refused: the table's delta.deletedFileRetentionDuration is {table}, and readers of older versions (or time travel) may still need files removed since. Give --retain of at least {table}, or lower the property first with `inlet table set-properties`")]
    VacuumRetention {
        url: String,
        retain: String,
        table: String,
    },

    #[error("Delta table {url}: rows this batch would write break {rule} ({rows} of the {checked} rows checked with the first of them, which has {sample}). Nothing was committed and the batch's files are not taken: correct those rows (in the files, or with the transform) and run again, or change the table's rule")]
    RuleBroken {
        url: String,
        rule: String,
        rows: usize,
        checked: usize,
        sample: String,
    },

    #[error("Delta table {url}: inlet cannot evaluate {rule} over this batch: {detail}. Nothing was committed; a writer that understands the rule's SQL must write this table, or the rule must change")]
    RuleUnusable {
        url: String,
        rule: String,
        detail: String,
    },

    #[error("cannot read the history of Delta table {url}: {source}")]
    History {
        url: String,
        #[source]
        source: DeltaTableError,
    },
}

impl SinkError {
    /// True when a later attempt may succeed: the object store failed on the network or
    /// with a server error after its own retries, or the commit lost a race with another
    /// writer (a replay then re-reads the table, and the txn version shows whether the
    /// lost-looking commit in fact landed).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Open { source, .. }
            | Self::Create { source, .. }
            | Self::Write { source, .. }
            | Self::Commit { source, .. }
            | Self::Compact { source, .. }
            | Self::Vacuum { source, .. }
            | Self::History { source, .. } => delta_transient(source),
            Self::Maintenance { source, .. } => delta_transient(source),
            // Retrying replays the batch under the table's new schema.
            Self::SchemaConflict { .. } => true,
            _ => false,
        }
    }
}

fn delta_transient(e: &DeltaTableError) -> bool {
    use deltalake::kernel::transaction::TransactionError;
    match e {
        DeltaTableError::ObjectStore { source } => store_transient(source),
        DeltaTableError::VersionAlreadyExists(_) => true,
        DeltaTableError::Io { source } => io_network(source),
        DeltaTableError::Transaction { source } => match source {
            TransactionError::VersionAlreadyExists(_)
            | TransactionError::CommitConflict(_)
            | TransactionError::MaxCommitAttempts(_) => true,
            TransactionError::ObjectStore { source } => store_transient(source),
            other => cause_transient(other).unwrap_or_else(|| transient_text(&other.to_string())),
        },
        other => cause_transient(other).unwrap_or_else(|| transient_text(&other.to_string())),
    }
}

/// Whether `e`'s chain of causes holds a typed object-store or I/O error, and if so whether
/// that one is transient. `None` when no cause is typed: delta_kernel keeps its object-store
/// errors in a variant that is not a `source()`, and DataFusion and the kernel keep some
/// causes only as text, so [`transient_text`] decides those by their message.
fn cause_transient(e: &(dyn std::error::Error + 'static)) -> Option<bool> {
    let mut cause = Some(e);
    while let Some(c) = cause {
        if let Some(os) = c.downcast_ref::<deltalake::ObjectStoreError>() {
            return Some(store_transient(os));
        }
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            return Some(io_network(io));
        }
        cause = c.source();
    }
    None
}

/// I/O failures on the network side (a reset, a timeout), not a local disk's.
fn io_network(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionReset | ConnectionAborted | BrokenPipe | TimedOut | UnexpectedEof | Interrupted
    )
}

/// A remote store's catch-all error (HTTP trouble after object_store's own retries); the
/// local filesystem's is a disk problem, not transient.
pub fn store_transient(e: &deltalake::ObjectStoreError) -> bool {
    matches!(e, deltalake::ObjectStoreError::Generic { store, .. } if *store != "LocalFileSystem")
}

/// True for the text of a failure a retry may cure, for causes that reach us only as text
/// (through delta_kernel or DataFusion, which keep the cause as a message): the phrases of
/// object_store's remote errors after its own retries, HTTP clients, and S3's 5xx codes.
/// Local-filesystem errors (a full or read-only disk) are not among them.
pub fn transient_text(text: &str) -> bool {
    const PHRASES: &[&str] = &[
        "generic s3 error",
        "generic gcs error",
        "generic microsoftazure error",
        "generic http error",
        "error sending request",
        "request or response body error",
        "error decoding response body",
        "connection reset",
        "connection closed",
        "broken pipe",
        "timed out",
        "slowdown",
        "internalerror",
        "service unavailable",
        "non-2xx status code: 5",
    ];
    let text = text.to_ascii_lowercase();
    PHRASES.iter().any(|p| text.contains(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_causes_decide_before_the_text() {
        let io = |kind| SinkError::Commit {
            url: "s3://b/t".into(),
            source: DeltaTableError::GenericError {
                source: Box::new(std::io::Error::new(kind, "generic s3 error")),
            },
        };
        // The cause is typed: its kind decides, whatever the message says.
        assert!(io(std::io::ErrorKind::ConnectionReset).is_transient());
        assert!(!io(std::io::ErrorKind::StorageFull).is_transient());
        let denied = SinkError::Write {
            url: "s3://b/t".into(),
            source: DeltaTableError::ObjectStore {
                source: deltalake::ObjectStoreError::PermissionDenied {
                    path: "t/x".into(),
                    source: "403".into(),
                },
            },
        };
        assert!(!denied.is_transient());
        // Only text: the phrases decide.
        let text = |t: &str| SinkError::Open {
            url: "s3://b/t".into(),
            source: DeltaTableError::Generic(t.into()),
        };
        assert!(text("Generic S3 error: error sending request").is_transient());
        assert!(!text("Schema error: duplicate field").is_transient());
    }
}
