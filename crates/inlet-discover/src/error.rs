//! Errors of discovery and source reads: each names the URL at fault, says what to do, and
//! says whether a retry may help.

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

    #[error("cannot read source file {url}: {source}{}", read_advice(.source))]
    Read {
        url: String,
        #[source]
        source: object_store::Error,
    },
}

/// Why a key with a `.`, `..` or empty path segment is skipped.
pub const UNADDRESSABLE: &str = "its S3 key has a '.', '..' or empty path segment, which inlet's object store client cannot address; copy the object to a key without such segments and inlet takes the copy";

/// The object_store name of the local file system in its `Generic` errors.
const LOCAL_STORE: &str = "LocalFileSystem";

impl DiscoverError {
    /// True when a retry may help (network or service trouble), false for what the user
    /// must fix: permissions, credentials, a missing path, a local disk or file system
    /// error (unless the system says the call may succeed later: interrupted, timed out).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::List { source, .. } | Self::Read { source, .. } => store_transient(source),
            _ => false,
        }
    }
}

/// object_store's catch-all error of a remote store is network or service trouble left
/// after its own retries. The local file system's is a permission, a file or a disk to fix
/// unless its I/O error says otherwise. Permission and credential errors are never
/// transient.
fn store_transient(e: &object_store::Error) -> bool {
    match e {
        object_store::Error::Generic { store, source } if *store == LOCAL_STORE => {
            io_cause(source.as_ref()).is_some_and(io_transient)
        }
        object_store::Error::Generic { .. } => true,
        _ => false,
    }
}

/// Local I/O that may succeed when tried again (a stalled network mount, a signal).
fn io_transient(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(e.kind(), Interrupted | TimedOut | WouldBlock)
}

/// The first I/O error in a chain of causes (object_store's local errors wrap one).
fn io_cause<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a std::io::Error> {
    let mut cause = Some(e);
    while let Some(c) = cause {
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            return Some(io);
        }
        cause = c.source();
    }
    None
}

/// What to do about a failed read, after the error itself.
fn read_advice(e: &object_store::Error) -> &'static str {
    match e {
        object_store::Error::PermissionDenied { .. } => {
            "; check that the credentials may read it (s3:GetObject, and kms:Decrypt for an object encrypted with SSE-KMS)"
        }
        object_store::Error::Unauthenticated { .. } => {
            "; check the credentials: they are missing, expired or not accepted"
        }
        object_store::Error::Generic { store, source } if *store == LOCAL_STORE => {
            match io_cause(source.as_ref()) {
                Some(io) if io.kind() == std::io::ErrorKind::PermissionDenied => {
                    "; check the file's permissions: the user inlet runs as must be able to read it and enter its directories"
                }
                Some(io) if io_transient(io) => "",
                _ => "; check the file and the disk it is on",
            }
        }
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local(kind: std::io::ErrorKind) -> object_store::Error {
        // The shape of object_store's local errors: a private error wrapping the I/O one.
        #[derive(Debug, thiserror::Error)]
        #[error("Unable to open file /landing/a.json: {source}")]
        struct Local {
            source: std::io::Error,
        }
        object_store::Error::Generic {
            store: LOCAL_STORE,
            source: Box::new(Local {
                source: std::io::Error::new(kind, "os error"),
            }),
        }
    }

    fn read(source: object_store::Error) -> DiscoverError {
        DiscoverError::Read {
            url: "file:///landing/a.json".into(),
            source,
        }
    }

    #[test]
    fn only_network_trouble_is_retried() {
        let s3 = object_store::Error::Generic {
            store: "S3",
            source: "Error after 10 retries: error sending request".into(),
        };
        assert!(read(s3).is_transient(), "S3 network trouble is transient");

        use std::io::ErrorKind::*;
        for kind in [PermissionDenied, NotFound, StorageFull, InvalidData, Other] {
            assert!(
                !read(local(kind)).is_transient(),
                "a local {kind:?} is not cured by a retry"
            );
        }
        assert!(
            read(local(TimedOut)).is_transient(),
            "a stalled mount may recover"
        );
        let list = DiscoverError::List {
            url: "file:///landing/".into(),
            source: local(PermissionDenied),
        };
        assert!(!list.is_transient());

        let denied = object_store::Error::PermissionDenied {
            path: "landing/a.json".into(),
            source: "403 Forbidden".into(),
        };
        let unauthenticated = object_store::Error::Unauthenticated {
            path: "landing/a.json".into(),
            source: "401 Unauthorized".into(),
        };
        for source in [denied, unauthenticated] {
            let list = DiscoverError::List {
                url: "s3://b/landing/".into(),
                source,
            };
            assert!(!list.is_transient(), "{list}");
        }
    }

    #[test]
    fn permission_errors_say_what_to_check() {
        let local = read(local(std::io::ErrorKind::PermissionDenied)).to_string();
        assert!(
            local.starts_with("cannot read source file file:///landing/a.json: ")
                && local.ends_with("; check the file's permissions: the user inlet runs as must be able to read it and enter its directories"),
            "{local}"
        );
        let s3 = read(object_store::Error::PermissionDenied {
            path: "landing/a.json".into(),
            source: "403 Forbidden".into(),
        })
        .to_string();
        assert!(
            s3.contains("check that the credentials may read it (s3:GetObject"),
            "{s3}"
        );
        let expired = read(object_store::Error::Unauthenticated {
            path: "landing/a.json".into(),
            source: "401".into(),
        })
        .to_string();
        assert!(expired.contains("check the credentials"), "{expired}");
    }
}
