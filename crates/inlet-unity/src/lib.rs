//! Unity Catalog as the sink's directory: a three-part table name resolved to its storage
//! location, temporary credentials to write it, and registration of the tables inlet creates.

mod column;
mod error;
mod operation;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{json, Value};
use url::Url;

pub use column::Column;
pub use error::UnityError;
pub use operation::Operation;

/// How inlet proves who it is to Unity Catalog.
#[derive(Clone)]
pub enum Auth {
    /// A personal access token or any bearer token (`DATABRICKS_TOKEN`).
    Token(String),
    /// A service principal's OAuth client credentials (machine-to-machine): inlet asks
    /// `{host}/oidc/v1/token` for an access token and renews it before it expires.
    OAuth {
        client_id: String,
        client_secret: String,
    },
}

/// A table as Unity Catalog describes it.
#[derive(Debug, Clone, Deserialize)]
pub struct TableInfo {
    #[serde(default)]
    pub full_name: String,
    pub table_id: String,
    #[serde(default)]
    pub table_type: String,
    #[serde(default)]
    pub data_source_format: Option<String>,
    #[serde(default)]
    pub storage_location: Option<String>,
}

/// Temporary AWS credentials Unity Catalog vended for one table or path.
#[derive(Clone, PartialEq, Eq)]
pub struct TempCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: String,
    /// When they stop working (ms since the epoch).
    pub expires_ms: i64,
}

impl std::fmt::Debug for TempCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TempCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("expires_ms", &self.expires_ms)
            .finish_non_exhaustive()
    }
}

/// A three-part table name, `catalog.schema.table`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableName {
    pub catalog: String,
    pub schema: String,
    pub table: String,
}

impl TableName {
    /// Parses `catalog.schema.table` (each part non-empty; backticks around a part allowed).
    pub fn parse(text: &str) -> Option<Self> {
        let parts: Vec<String> = text
            .split('.')
            .map(|p| p.trim_matches('`').to_string())
            .collect();
        match parts.as_slice() {
            [c, s, t] if !c.is_empty() && !s.is_empty() && !t.is_empty() => Some(Self {
                catalog: c.clone(),
                schema: s.clone(),
                table: t.clone(),
            }),
            _ => None,
        }
    }

    pub fn full(&self) -> String {
        format!("{}.{}.{}", self.catalog, self.schema, self.table)
    }
}

/// A Unity Catalog REST client (`{host}/api/2.1/unity-catalog/...`).
pub struct UnityClient {
    http: reqwest::Client,
    host: Url,
    auth: Auth,
    /// OAuth: the access token and when to renew it.
    oauth: Mutex<Option<(String, Instant)>>,
}

impl std::fmt::Debug for UnityClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnityClient")
            .field("host", &self.host.as_str())
            .finish_non_exhaustive()
    }
}

impl UnityClient {
    /// A client of the workspace at `host` (`https://<workspace>.cloud.databricks.com`).
    pub fn new(host: &str, auth: Auth) -> Result<Self, UnityError> {
        let host = Url::parse(host).map_err(|e| UnityError::BadHost {
            host: host.to_string(),
            detail: e.to_string(),
        })?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| UnityError::HttpClient {
                detail: e.to_string(),
            })?;
        Ok(Self {
            http,
            host,
            auth,
            oauth: Mutex::new(None),
        })
    }

    pub fn host(&self) -> &str {
        self.host.as_str()
    }

    fn api(&self, path: &str) -> String {
        format!(
            "{}/api/2.1/unity-catalog/{path}",
            self.host.as_str().trim_end_matches('/')
        )
    }

    /// `GET tables/{full_name}`.
    pub async fn get_table(&self, name: &TableName) -> Result<TableInfo, UnityError> {
        let body = self
            .call(
                reqwest::Method::GET,
                &format!("tables/{}", name.full()),
                None,
                Operation::Lookup,
                &name.full(),
            )
            .await?;
        serde_json::from_value(body).map_err(|e| UnityError::Api {
            status: 200,
            what: name.full(),
            detail: format!("unexpected table description: {e}"),
        })
    }

    /// `POST temporary-table-credentials` with `READ_WRITE`.
    pub async fn table_credentials(
        &self,
        table: &TableInfo,
        name: &TableName,
    ) -> Result<TempCredentials, UnityError> {
        let body = json!({"table_id": table.table_id, "operation": "READ_WRITE"});
        let answer = self
            .call(
                reqwest::Method::POST,
                "temporary-table-credentials",
                Some(body),
                Operation::Credentials,
                &name.full(),
            )
            .await?;
        credentials_of(&answer, &name.full())
    }

    /// `POST temporary-path-credentials` with `PATH_CREATE_TABLE`, to create a table at `url`
    /// before it is registered.
    pub async fn path_credentials(&self, url: &str) -> Result<TempCredentials, UnityError> {
        let body = json!({"url": url, "operation": "PATH_CREATE_TABLE"});
        let answer = self
            .call(
                reqwest::Method::POST,
                "temporary-path-credentials",
                Some(body),
                Operation::PathCredentials,
                url,
            )
            .await?;
        credentials_of(&answer, url)
    }

    /// `POST tables`: registers the Delta table at `location` as an EXTERNAL table.
    pub async fn create_table(
        &self,
        name: &TableName,
        location: &str,
        columns: &[Column],
    ) -> Result<TableInfo, UnityError> {
        let body = json!({
            "name": name.table,
            "catalog_name": name.catalog,
            "schema_name": name.schema,
            "table_type": "EXTERNAL",
            "data_source_format": "DELTA",
            "storage_location": location,
            "columns": columns,
        });
        let answer = self
            .call(
                reqwest::Method::POST,
                "tables",
                Some(body),
                Operation::Create,
                &name.full(),
            )
            .await?;
        serde_json::from_value(answer).map_err(|e| UnityError::Api {
            status: 200,
            what: name.full(),
            detail: format!("unexpected answer to the create request: {e}"),
        })
    }

    /// `PATCH tables/{full_name}` with the table's columns after its schema changed.
    pub async fn update_columns(
        &self,
        name: &TableName,
        columns: &[Column],
    ) -> Result<(), UnityError> {
        let body = json!({"columns": columns});
        self.call(
            reqwest::Method::PATCH,
            &format!("tables/{}", name.full()),
            Some(body),
            Operation::UpdateColumns,
            &name.full(),
        )
        .await
        .map(|_| ())
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        op: Operation,
        what: &str,
    ) -> Result<Value, UnityError> {
        let url = self.api(path);
        let mut renewed = false;
        loop {
            let token = self.bearer(renewed).await?;
            let mut request = self.http.request(method.clone(), &url).bearer_auth(&token);
            if let Some(body) = &body {
                request = request
                    .header("Content-Type", "application/json")
                    .body(body.to_string());
            }
            let response = request.send().await.map_err(|e| UnityError::Unreachable {
                host: self.host.to_string(),
                detail: error_chain(&e),
            })?;
            let status = response.status().as_u16();
            let text = response.text().await.unwrap_or_default();
            let answer: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            if (200..300).contains(&status) {
                return Ok(answer);
            }
            // An OAuth access token can lapse between renewals: renew once and try again.
            if status == 401 && matches!(self.auth, Auth::OAuth { .. }) && !renewed {
                renewed = true;
                continue;
            }
            return Err(UnityError::from_status(
                status, &answer, &text, op, what, &self.host,
            ));
        }
    }

    /// The bearer token for the next request.
    async fn bearer(&self, force_renew: bool) -> Result<String, UnityError> {
        let (client_id, client_secret) = match &self.auth {
            Auth::Token(t) => return Ok(t.clone()),
            Auth::OAuth {
                client_id,
                client_secret,
            } => (client_id, client_secret),
        };
        if !force_renew {
            if let Some((token, renew_at)) = self
                .oauth
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .as_ref()
            {
                if Instant::now() < *renew_at {
                    return Ok(token.clone());
                }
            }
        }
        let url = format!("{}/oidc/v1/token", self.host.as_str().trim_end_matches('/'));
        let response = self
            .http
            .post(&url)
            .basic_auth(client_id, Some(client_secret))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body("grant_type=client_credentials&scope=all-apis")
            .send()
            .await
            .map_err(|e| UnityError::Unreachable {
                host: self.host.to_string(),
                detail: error_chain(&e),
            })?;
        let status = response.status().as_u16();
        let answer: Value =
            serde_json::from_str(&response.text().await.unwrap_or_default()).unwrap_or(Value::Null);
        let Some(token) = answer["access_token"].as_str().filter(|_| status == 200) else {
            return Err(UnityError::Unauthenticated {
                host: self.host.to_string(),
                detail: format!(
                    "the OAuth token endpoint refused client id '{client_id}' (HTTP {status}{})",
                    answer["error_description"]
                        .as_str()
                        .map(|d| format!(": {d}"))
                        .unwrap_or_default()
                ),
            });
        };
        let lifetime = Duration::from_secs(answer["expires_in"].as_u64().unwrap_or(3600));
        // Renew at four fifths of the lifetime.
        let renew_at = Instant::now() + lifetime.mul_f64(0.8);
        *self
            .oauth
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some((token.to_string(), renew_at));
        Ok(token.to_string())
    }
}

fn credentials_of(answer: &Value, what: &str) -> Result<TempCredentials, UnityError> {
    let aws = &answer["aws_temp_credentials"];
    let field = |k: &str| aws[k].as_str().map(str::to_string);
    match (field("access_key_id"), field("secret_access_key"), field("session_token")) {
        (Some(access_key_id), Some(secret_access_key), Some(session_token)) => Ok(TempCredentials {
            access_key_id,
            secret_access_key,
            session_token,
            expires_ms: answer["expiration_time"].as_i64().unwrap_or_else(|| chrono::Utc::now().timestamp_millis() + 3_600_000),
        }),
        _ => Err(UnityError::Api {
            status: 200,
            what: what.to_string(),
            detail: "the catalog vended no AWS credentials (aws_temp_credentials); inlet writes S3 tables only".into(),
        }),
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_have_three_parts() {
        let n = TableName::parse("main.sales.`events`").expect("name");
        assert_eq!(n.full(), "main.sales.events");
        assert!(TableName::parse("main.events").is_none());
        assert!(TableName::parse("a..b").is_none());
    }

    #[test]
    fn credentials_never_show_their_secrets() {
        let c = TempCredentials {
            access_key_id: "AKIA1".into(),
            secret_access_key: "very-secret".into(),
            session_token: "tok".into(),
            expires_ms: 1,
        };
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("very-secret") && !shown.contains("tok\""),
            "{shown}"
        );
    }
}
