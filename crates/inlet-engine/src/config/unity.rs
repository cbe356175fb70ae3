//! `[unity]` and `uc://` sinks: which Unity Catalog table a pipeline writes, in which
//! workspace, with which credentials (config keys first, then the Databricks variables).

use std::path::Path;

use serde::Deserialize;

use super::{ConfigError, ConfigFile};

/// `[unity]`: the Unity Catalog workspace a `uc://` table lives in. Each key falls back to
/// the Databricks SDK's environment variable.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct UnitySection {
    /// Workspace URL (`DATABRICKS_HOST`).
    pub host: Option<String>,
    /// A bearer token (`DATABRICKS_TOKEN`); only as a `${NAME}` reference.
    pub token: Option<String>,
    /// A service principal's OAuth client id (`DATABRICKS_CLIENT_ID`).
    pub client_id: Option<String>,
    /// Its secret (`DATABRICKS_CLIENT_SECRET`); only as a `${NAME}` reference.
    pub client_secret: Option<String>,
}

/// A `uc://catalog.schema.table` sink, resolved to a workspace and credentials.
#[derive(Clone)]
pub struct UnityTarget {
    pub name: inlet_unity::TableName,
    /// `None` when neither the config nor the environment gives one: commands that do not
    /// reach the catalog (`files`, `schema`) still work; a run says what is missing.
    pub host: Option<String>,
    pub auth: Option<inlet_unity::Auth>,
}

impl std::fmt::Debug for UnityTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnityTarget")
            .field("name", &self.name.full())
            .field("host", &self.host)
            .finish_non_exhaustive()
    }
}

/// The `uc://` target of `sink.table`, if it is one, with its workspace and credentials
/// (config keys first, then the Databricks environment variables).
pub(super) fn unity_target(
    path: &Path,
    file: &ConfigFile,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<UnityTarget>, ConfigError> {
    let bad = |key: &'static str, value: &str, reason: &str| ConfigError::Value {
        path: path.to_path_buf(),
        key,
        value: value.to_string(),
        reason: reason.to_string(),
    };
    let Some(name) = file.sink.table.strip_prefix("uc://") else {
        if file.sink.create_table || file.sink.storage_location.is_some() {
            let key = if file.sink.create_table {
                "sink.create_table"
            } else {
                "sink.storage_location"
            };
            return Err(bad(
                key,
                "given",
                "applies to Unity Catalog tables only (sink.table = \"uc://catalog.schema.table\")",
            ));
        }
        return Ok(None);
    };
    let name = inlet_unity::TableName::parse(name).ok_or_else(|| {
        bad(
            "sink.table",
            &file.sink.table,
            "a Unity Catalog table is named uc://catalog.schema.table",
        )
    })?;
    if file.sink.create_table {
        match file.sink.storage_location.as_deref() {
            Some(l) if l.starts_with("s3://") => {}
            Some(l) => {
                return Err(bad(
                    "sink.storage_location",
                    l,
                    "must be an s3:// location under an external location",
                ))
            }
            None => {
                return Err(bad(
                    "sink.storage_location",
                    "missing",
                    "sink.create_table needs the location of the new table's files (s3://...)",
                ))
            }
        }
    }
    let u = &file.unity;
    let pick = |given: &Option<String>, var: &str| {
        given
            .clone()
            .filter(|v| !v.is_empty())
            .or_else(|| env(var).filter(|v| !v.is_empty()))
    };
    let host = pick(&u.host, "DATABRICKS_HOST").map(|h| {
        if h.contains("://") {
            h
        } else {
            format!("https://{h}")
        }
    });
    let auth = match (
        pick(&u.token, "DATABRICKS_TOKEN"),
        pick(&u.client_id, "DATABRICKS_CLIENT_ID"),
        pick(&u.client_secret, "DATABRICKS_CLIENT_SECRET"),
    ) {
        (_, Some(client_id), Some(client_secret)) => Some(inlet_unity::Auth::OAuth {
            client_id,
            client_secret,
        }),
        (Some(token), _, _) => Some(inlet_unity::Auth::Token(token)),
        _ => None,
    };
    Ok(Some(UnityTarget { name, host, auth }))
}
