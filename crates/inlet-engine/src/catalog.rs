//! A `uc://catalog.schema.table` sink: the table resolved to its storage location with
//! vended credentials (renewed before they expire), and registered once inlet creates it.

use std::collections::HashMap;

use crate::error::{EngineError, Result};
use inlet_unity::{Column, TableInfo, TempCredentials, UnityClient, UnityError};
use tracing::{info, warn};

use crate::config::Config;

/// Storage option keys the vended credentials go into (delta-rs / object_store S3 keys).
const KEY_ID: &str = "aws_access_key_id";
const SECRET: &str = "aws_secret_access_key";
const SESSION: &str = "aws_session_token";

/// The catalog side of a `uc://` sink.
pub struct Catalog {
    client: UnityClient,
    name: inlet_unity::TableName,
    /// The catalog's table; `None` until a table inlet creates is registered.
    table: Option<TableInfo>,
    location: String,
    credentials: TempCredentials,
    /// When the current credentials were vended (ms), to renew them at half their life.
    vended_ms: i64,
    /// The columns last sent to the catalog, so an unchanged schema sends nothing.
    columns: Vec<Column>,
}

impl std::fmt::Debug for Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalog")
            .field("name", &self.name.full())
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

impl Catalog {
    /// Resolves the config's `uc://` table (none: `Ok(None)`): looks it up, checks it is an
    /// EXTERNAL Delta table, vends credentials, and points `cfg.table_url` and the sink's
    /// storage options at it. A missing table with `create_table` gets path credentials for
    /// `storage_location`; it is registered after its first commit ([`Catalog::after_commit`]).
    pub async fn resolve(cfg: &mut Config) -> Result<Option<Self>> {
        let Some(target) = cfg.unity.clone() else {
            return Ok(None);
        };
        let host = target.host.ok_or_else(|| EngineError::CatalogTable {
            table: target.name.full(),
            detail: "set the workspace URL in unity.host or DATABRICKS_HOST".into(),
        })?;
        let auth = target.auth.ok_or_else(|| EngineError::CatalogTable {
            table: target.name.full(),
            detail: "give inlet a token in DATABRICKS_TOKEN (or unity.token = \"${NAME}\"), \
                 or a service principal's DATABRICKS_CLIENT_ID and DATABRICKS_CLIENT_SECRET"
                .into(),
        })?;
        let client = UnityClient::new(&host, auth)?;
        let name = target.name.clone();
        let (table, location, credentials) = match client.get_table(&name).await {
            Ok(table) => {
                check_writable(&name, &table)?;
                let location = table
                    .storage_location
                    .clone()
                    .ok_or_else(|| UnityError::NoLocation { name: name.full() })?;
                let credentials = client.table_credentials(&table, &name).await?;
                (Some(table), location, credentials)
            }
            Err(e) if e.is_missing_table() && cfg.sink.create_table => {
                let location = cfg.sink.storage_location.clone().unwrap_or_default();
                info!(table = %name.full(), location, "no such table in Unity Catalog; inlet creates it there and registers it");
                let credentials = client.path_credentials(&location).await?;
                (None, location, credentials)
            }
            Err(e) => return Err(e.into()),
        };
        let url = if location.ends_with('/') {
            location.clone()
        } else {
            format!("{location}/")
        };
        cfg.table_url = url::Url::parse(&url).map_err(|e| EngineError::CatalogTable {
            table: name.full(),
            detail: format!(
                "the catalog gave it the storage location '{location}', which is not a URL: {e}"
            ),
        })?;
        let catalog = Self {
            client,
            name,
            table,
            location,
            vended_ms: now_ms(),
            credentials,
            columns: Vec::new(),
        };
        catalog.apply(&mut cfg.sink.storage_options);
        info!(table = %catalog.name.full(), location = %catalog.location, "resolved through Unity Catalog");
        Ok(Some(catalog))
    }

    /// One line for `inlet validate` (no secret in it).
    pub fn describe(&self) -> String {
        let state = if self.table.is_some() {
            "registered EXTERNAL Delta table"
        } else {
            "not registered yet: inlet creates it and registers it after its first commit"
        };
        format!(
            "Unity Catalog table {} ({state}) at {}; vended credentials expire in {} min",
            self.name.full(),
            self.location,
            (self.credentials.expires_ms - now_ms()).max(0) / 60_000
        )
    }

    /// Puts the current credentials into the sink's storage options.
    fn apply(&self, options: &mut std::collections::BTreeMap<String, String>) {
        options.insert(KEY_ID.into(), self.credentials.access_key_id.clone());
        options.insert(SECRET.into(), self.credentials.secret_access_key.clone());
        options.insert(SESSION.into(), self.credentials.session_token.clone());
    }

    /// Renews the credentials once half their lifetime has passed (or less than a minute is
    /// left); returns the sink's new storage options when it did.
    pub async fn renew_if_due(
        &mut self,
        cfg: &mut Config,
    ) -> Result<Option<HashMap<String, String>>> {
        let now = now_ms();
        let life = (self.credentials.expires_ms - self.vended_ms).max(0);
        let due = now >= self.vended_ms + life / 2 || self.credentials.expires_ms - now < 60_000;
        if !due {
            return Ok(None);
        }
        self.credentials = match &self.table {
            Some(table) => self.client.table_credentials(table, &self.name).await?,
            None => self.client.path_credentials(&self.location).await?,
        };
        self.vended_ms = now;
        info!(table = %self.name.full(), expires_in_s = (self.credentials.expires_ms - now) / 1000, "renewed the table's credentials from Unity Catalog");
        self.apply(&mut cfg.sink.storage_options);
        Ok(Some(cfg.sink_options()))
    }

    /// After a commit: registers a table inlet created (then writes with table credentials),
    /// or sends the catalog the new column list when the schema changed. Returns the sink's
    /// new storage options when the credentials changed. A column update the catalog refuses
    /// is a warning: Databricks reads an external table's schema from its Delta log.
    pub async fn after_commit(
        &mut self,
        fields: &[serde_json::Value],
        cfg: &mut Config,
    ) -> Result<Option<HashMap<String, String>>> {
        let columns = Column::list_from_spark(fields);
        if columns.is_empty() || columns == self.columns {
            return Ok(None);
        }
        if self.table.is_none() {
            let table = self
                .client
                .create_table(&self.name, &self.location, &columns)
                .await?;
            info!(table = %self.name.full(), table_id = %table.table_id, columns = columns.len(), "registered the new table in Unity Catalog");
            self.credentials = self.client.table_credentials(&table, &self.name).await?;
            self.vended_ms = now_ms();
            self.table = Some(table);
            self.columns = columns;
            self.apply(&mut cfg.sink.storage_options);
            return Ok(Some(cfg.sink_options()));
        }
        match self.client.update_columns(&self.name, &columns).await {
            Ok(()) => {
                info!(table = %self.name.full(), columns = columns.len(), "sent the table's new columns to Unity Catalog")
            }
            Err(e) => {
                warn!(table = %self.name.full(), error = %e, "Unity Catalog did not take the new column list; Databricks still reads the columns from the Delta log")
            }
        }
        self.columns = columns;
        Ok(None)
    }

    /// At start, with the table's columns as the sink sees them: a registered table's are
    /// remembered (only later changes are sent); a table inlet created in an earlier run
    /// that stopped before registering it is registered now.
    pub async fn start(
        &mut self,
        fields: &[serde_json::Value],
        cfg: &mut Config,
    ) -> Result<Option<HashMap<String, String>>> {
        if self.table.is_some() {
            self.columns = Column::list_from_spark(fields);
            return Ok(None);
        }
        self.after_commit(fields, cfg).await
    }
}

/// inlet writes table storage directly: the table must be an EXTERNAL Delta table.
fn check_writable(name: &inlet_unity::TableName, table: &TableInfo) -> Result<(), UnityError> {
    if table.table_type.eq_ignore_ascii_case("MANAGED") {
        return Err(UnityError::Managed { name: name.full() });
    }
    match table.data_source_format.as_deref() {
        None => Ok(()),
        Some(f) if f.eq_ignore_ascii_case("DELTA") => Ok(()),
        Some(f) => Err(UnityError::NotDelta {
            name: name.full(),
            format: f.to_string(),
        }),
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
