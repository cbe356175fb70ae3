//! Errors of discovery and source reads: each names the URL at fault (control characters
//! escaped), says what to do, and says whether a retry may help.

use std::borrow::Cow;

use crate::unreadable::Unreadable;

#[derive(Debug, thiserror::Error)]
pub enum DiscoverError {
    #[error("source url '{}' is not supported: {reason}", escape_controls(.url))]
    BadUrl { url: String, reason: String },

    #[error("source storage option '{key}' is not known: {reason}")]
    BadOption { key: String, reason: String },

    #[error("path_glob '{glob}' is not a valid glob: {source}")]
    BadGlob {
        glob: String,
        #[source]
        source: globset::Error,
    },

    #[error("cannot open source {}: {}", escape_controls(.url), shown(.source))]
    Open {
        url: String,
        #[source]
        source: object_store::Error,
    },

    #[error("cannot list source {}: {}; check that the bucket or directory exists and the credentials may list it", escape_controls(.url), shown(.source))]
    List {
        url: String,
        #[source]
        source: object_store::Error,
    },

    /// A directory (or a link) of a local source that cannot be read: the local listing
    /// stops, as the files in it are unknown.
    #[error("cannot list {} in source {}: {}; {}", escape_controls(.path), escape_controls(.url), shown(.source), local_list_advice(.source))]
    ListLocal {
        url: String,
        path: String,
        #[source]
        source: std::io::Error,
    },

    #[error(transparent)]
    Aws(inlet_aws::AwsError),

    #[error("SQS queue {url}: {reason}")]
    Queue { url: String, reason: String },

    /// A found file that cannot be read, for `reason`: the pipeline records it as skipped
    /// with [`Unreadable::reason`].
    #[error("source file {} cannot be read: {reason}", escape_controls(.url))]
    Unaddressable { url: String, reason: Unreadable },

    #[error("source file {} no longer exists", escape_controls(.url))]
    NotFound { url: String },

    #[error("source file {} changed since it was found (its ETag is no longer {etag})", escape_controls(.url))]
    Changed { url: String, etag: String },

    #[error("cannot delete source file {}: {}; check that the credentials may delete it (s3:DeleteObject)", escape_controls(.url), shown(.source))]
    Delete {
        url: String,
        #[source]
        source: object_store::Error,
    },

    #[error("cannot write {}: {}; check that the location exists and the credentials may write to it", escape_controls(.url), shown(.source))]
    Write {
        url: String,
        #[source]
        source: object_store::Error,
    },

    #[error("cannot read source file {}: {}{}", escape_controls(.url), shown(.source), read_advice(.source))]
    Read {
        url: String,
        #[source]
        source: object_store::Error,
    },
}

/// The object_store name of the local file system in its `Generic` errors.
const LOCAL_STORE: &str = "LocalFileSystem";

impl DiscoverError {
    /// True when a retry may help (network or service trouble), false for what the user
    /// must fix: permissions, credentials, a missing path, a local disk or file system
    /// error (unless the system says the call may succeed later: interrupted, timed out).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::List { source, .. } | Self::Read { source, .. } => store_transient(source),
            Self::ListLocal { source, .. } => io_transient(source),
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

/// What to do about a local directory or link that cannot be read.
fn local_list_advice(e: &std::io::Error) -> &'static str {
    if e.kind() == std::io::ErrorKind::PermissionDenied {
        "check its permissions (for a symbolic link, its target's): the user inlet runs as must be able to read and enter every directory of the source"
    } else {
        "check it and the disk it is on"
    }
}

/// An error's text with control characters escaped: object_store's name the path too.
fn shown(e: &dyn std::fmt::Display) -> String {
    escape_controls(&e.to_string()).into_owned()
}

/// `text` with control characters escaped as Rust writes them (`\t`, `\n`, `\r`,
/// `\u{1b}`), for paths in messages and logs: a raw line feed or carriage return in a file
/// name would forge or hide log lines. Everything else, `\` included, is left as it is.
pub fn escape_controls(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::unreadable::{CONTROL_CHARACTER, UNADDRESSABLE};

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
        let dir = DiscoverError::ListLocal {
            url: "file:///landing/".into(),
            path: "/landing/private".into(),
            source: std::io::Error::from(PermissionDenied),
        };
        assert!(!dir.is_transient());

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

    #[test]
    fn control_characters_are_escaped_in_messages() {
        assert_eq!(escape_controls("plain é \\t.json"), "plain é \\t.json");
        assert_eq!(
            escape_controls("a\tb\nc\rd\u{1b}.json"),
            "a\\tb\\nc\\rd\\u{1b}.json"
        );
        let url = "file:///landing/bad\r\nname.json".to_string();
        let err = DiscoverError::Unaddressable {
            url: url.clone(),
            reason: Unreadable::of_key(&url),
        };
        assert_eq!(
            err.to_string(),
            format!("source file file:///landing/bad\\r\\nname.json cannot be read: {CONTROL_CHARACTER}")
        );
        assert_eq!(
            Unreadable::of_key("landing/../a.json").reason(),
            UNADDRESSABLE
        );
        // object_store's own text names the path too.
        let bad = object_store::path::Path::parse("landing/a\tb.json").expect_err("a tab");
        let list = DiscoverError::List {
            url: "s3://bucket/landing/".into(),
            source: bad.into(),
        };
        let text = list.to_string();
        assert!(
            !text.chars().any(char::is_control) && text.contains("landing/a\\tb.json"),
            "{text}"
        );
    }
}
