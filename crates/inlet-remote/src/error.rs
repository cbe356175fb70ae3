//! Errors of the remote checkpoint. Each names the object or location at fault, and for a
//! lease held or lost, the holder and what to do.

use crate::Holder;

#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("checkpoint location {url} is not usable: {reason}")]
    BadUrl { url: String, reason: String },

    #[error("cannot reach checkpoint location {url}: {source}")]
    Open {
        url: String,
        #[source]
        source: inlet_aws::AwsError,
    },

    #[error("cannot {what} {key}: {source}")]
    Store {
        what: &'static str,
        key: String,
        #[source]
        source: object_store::Error,
    },

    #[error("checkpoint {url} is in use by another inlet run (host {host}, pid {pid}, since {since}; its lease runs until {until}); only one runner may use a checkpoint at a time — stop that run, wait for its lease to expire, or start this one with --standby to take over when it does", host = holder.host, pid = holder.pid, since = holder.since)]
    Held {
        url: String,
        holder: Holder,
        until: String,
    },

    #[error("this run lost the lease on checkpoint {url}: {reason}; it stopped without committing anything further (a runner that took over finishes the batch in flight)")]
    Lost { url: String, reason: String },

    #[error("batch {batch_id} of checkpoint {url} was planned by another runner ({key} exists); this run stops, and the runner holding the lease finishes that batch")]
    PlanTaken {
        url: String,
        batch_id: i64,
        key: String,
    },

    #[error("{key} is damaged: {reason}; the object was written by inlet and must not be edited — restore it from the bucket's versioning or remove the checkpoint's snapshot to restore from the Delta table")]
    Corrupt { key: String, reason: String },

    #[error("cannot {what} {path}: {source}")]
    Io {
        what: &'static str,
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl RemoteError {
    /// Whether a retry may help: storage or network trouble. Refused credentials, a lease
    /// held or lost, a damaged object or a bad location are not.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Store { source, .. } => !matches!(
                source,
                object_store::Error::PermissionDenied { .. }
                    | object_store::Error::Unauthenticated { .. }
                    | object_store::Error::NotImplemented { .. }
                    | object_store::Error::NotSupported { .. }
            ),
            Self::Open { source, .. } => !source.is_permanent(),
            _ => false,
        }
    }

    pub(crate) fn store(
        what: &'static str,
        key: String,
    ) -> impl FnOnce(object_store::Error) -> Self {
        move |source| Self::Store { what, key, source }
    }
}
