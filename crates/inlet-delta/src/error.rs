//! Errors of the Delta sink; each names the table URL.

use deltalake::DeltaTableError;

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("table url '{url}' is not valid: {reason}")]
    BadUrl { url: String, reason: String },

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

    #[error("cannot read the history of Delta table {url}: {source}")]
    History {
        url: String,
        #[source]
        source: DeltaTableError,
    },
}
