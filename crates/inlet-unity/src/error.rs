//! Errors of the Unity Catalog client; each names the table, privilege or host at fault and
//! what to do. None carries the token.

use serde_json::Value;
use url::Url;

use crate::operation::Operation;

/// Privileges as Unity Catalog names them in its messages, in both spellings.
const PRIVILEGES: &[(&str, &str)] = &[
    ("EXTERNAL USE LOCATION", "EXTERNAL_USE_LOCATION"),
    ("EXTERNAL USE SCHEMA", "EXTERNAL_USE_SCHEMA"),
    ("CREATE EXTERNAL TABLE", "CREATE_EXTERNAL_TABLE"),
    ("CREATE TABLE", "CREATE_TABLE"),
    ("USE CATALOG", "USE_CATALOG"),
    ("USE SCHEMA", "USE_SCHEMA"),
    ("MODIFY", "MODIFY"),
    ("SELECT", "SELECT"),
    ("MANAGE", "MANAGE"),
];

#[derive(Debug, thiserror::Error)]
pub enum UnityError {
    #[error("unity.host '{host}' is not a URL: {detail}")]
    BadHost { host: String, detail: String },

    #[error("cannot build an HTTP client: {detail}")]
    HttpClient { detail: String },

    #[error("Unity Catalog has no {what} ({detail}); check the name in sink.table (uc://catalog.schema.table){hint}")]
    NotFound {
        what: String,
        detail: String,
        hint: &'static str,
    },

    #[error("Unity Catalog denied the permission to {action} for {what}: {detail}; the principal inlet runs as needs {privilege} (GRANT {privilege} ... TO <principal>)")]
    PermissionDenied {
        action: &'static str,
        what: String,
        privilege: String,
        detail: String,
    },

    #[error("Unity Catalog at {host} refused inlet's credentials: {detail}; the token may have expired: give inlet a fresh one (DATABRICKS_TOKEN), or an OAuth client id and secret (unity.client_id, unity.client_secret), which inlet renews itself")]
    Unauthenticated { host: String, detail: String },

    #[error("{name} is a MANAGED table: Unity Catalog owns its storage, and inlet writes table storage directly, which Databricks allows for EXTERNAL tables; point sink.table at an EXTERNAL Delta table (CREATE TABLE ... LOCATION 's3://...'), or name a new table and let inlet create it (sink.create_table = true with sink.storage_location)")]
    Managed { name: String },

    #[error("{name} is a {format} table; inlet writes Delta tables only")]
    NotDelta { name: String, format: String },

    #[error("Unity Catalog table {name} has no storage location inlet could write to")]
    NoLocation { name: String },

    #[error("cannot reach Unity Catalog at {host}: {detail}; check unity.host (DATABRICKS_HOST) and the network")]
    Unreachable { host: String, detail: String },

    #[error("Unity Catalog answered HTTP {status} for {what}: {detail}")]
    Api {
        status: u16,
        what: String,
        detail: String,
    },
}

impl UnityError {
    /// The error for a non-2xx answer.
    pub(crate) fn from_status(
        status: u16,
        answer: &Value,
        text: &str,
        op: Operation,
        what: &str,
        host: &Url,
    ) -> Self {
        let code = answer["error_code"].as_str().unwrap_or_default();
        let message = answer["message"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| text.chars().take(300).collect());
        let detail = if code.is_empty() {
            message.clone()
        } else {
            format!("{code}: {message}")
        };
        match status {
            401 => Self::Unauthenticated {
                host: host.to_string(),
                detail,
            },
            403 => Self::PermissionDenied {
                action: op.action(),
                what: what.to_string(),
                privilege: named_privilege(&message)
                    .map(str::to_string)
                    .unwrap_or_else(|| op.privileges().to_string()),
                detail,
            },
            404 => {
                let what = match code {
                    "CATALOG_DOES_NOT_EXIST" => format!("catalog for {what}"),
                    "SCHEMA_DOES_NOT_EXIST" => format!("schema for {what}"),
                    _ => format!("table {what}"),
                };
                Self::NotFound {
                    what,
                    detail,
                    hint: if op == Operation::Lookup {
                        ", or set sink.create_table = true with sink.storage_location to create it"
                    } else {
                        ""
                    },
                }
            }
            _ => Self::Api {
                status,
                what: what.to_string(),
                detail,
            },
        }
    }

    /// True when a later attempt may succeed: the catalog could not be reached, or answered
    /// with a server error or a rate limit.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Unreachable { .. } => true,
            Self::Api { status, .. } => *status >= 500 || *status == 429,
            _ => false,
        }
    }

    /// True when the catalog said the table does not exist (and not its catalog or schema).
    pub fn is_missing_table(&self) -> bool {
        matches!(self, Self::NotFound { what, .. } if what.starts_with("table "))
    }
}

/// The privilege a denial message names, in the GRANT spelling.
fn named_privilege(message: &str) -> Option<&'static str> {
    let upper = message.to_ascii_uppercase();
    PRIVILEGES
        .iter()
        .find(|(spaced, snake)| upper.contains(spaced) || upper.contains(snake))
        .map(|(spaced, _)| *spaced)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn host() -> Url {
        Url::parse("https://ws.example").expect("url")
    }

    #[test]
    fn a_denial_names_the_privilege_the_catalog_named() {
        let answer = json!({"error_code": "PERMISSION_DENIED", "message": "User does not have USE SCHEMA on Schema 'main.sales'."});
        let e = UnityError::from_status(
            403,
            &answer,
            "",
            Operation::Lookup,
            "main.sales.events",
            &host(),
        );
        let text = e.to_string();
        assert!(text.contains("needs USE SCHEMA"), "{text}");
        assert!(text.contains("main.sales.events"), "{text}");
    }

    #[test]
    fn a_denial_without_a_name_lists_what_the_operation_needs() {
        let e = UnityError::from_status(
            403,
            &json!({"message": "denied"}),
            "",
            Operation::Credentials,
            "main.sales.events",
            &host(),
        );
        assert!(e.to_string().contains("MODIFY"), "{e}");
    }

    #[test]
    fn not_found_names_the_table_or_its_schema() {
        let t = UnityError::from_status(
            404,
            &json!({"error_code": "TABLE_DOES_NOT_EXIST", "message": "x"}),
            "",
            Operation::Lookup,
            "a.b.c",
            &host(),
        );
        assert!(
            t.is_missing_table() && t.to_string().contains("no table a.b.c"),
            "{t}"
        );
        let s = UnityError::from_status(
            404,
            &json!({"error_code": "SCHEMA_DOES_NOT_EXIST", "message": "x"}),
            "",
            Operation::Lookup,
            "a.b.c",
            &host(),
        );
        assert!(
            !s.is_missing_table() && s.to_string().contains("no schema for a.b.c"),
            "{s}"
        );
    }
}
