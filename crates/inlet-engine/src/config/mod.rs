//! The pipeline config: TOML with `${ENV}` substitution, parsed strictly (unknown keys are
//! errors naming file and line), then resolved into the plain option types of each crate.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use arrow::datatypes::Field;
use inlet_format::{Compression, CsvOptions, Format, NumberMode};
use inlet_schema::EvolutionMode;
use serde::{Deserialize, Deserializer};
use url::Url;

/// A config error, always naming the file (and the line where there is one).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config {path}, line {line}: {message}")]
    Syntax {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("config {path}, line {line}: environment variable {name} is not set (write $${{...}} for a literal ${{...}})")]
    MissingEnv {
        path: PathBuf,
        line: usize,
        name: String,
    },
    #[error("config {path}: {key} = '{value}' is not valid: {reason}")]
    Value {
        path: PathBuf,
        key: &'static str,
        value: String,
        reason: String,
    },
}

/// How new files are found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Discovery {
    /// List the source prefix at every trigger.
    #[default]
    Listing,
    /// Read S3 event notifications from an SQS queue (`queue_url`).
    Notifications,
}

/// What happens to a source file once its batch has been committed for
/// `clean_source_retention`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum CleanSource {
    /// Files stay where they landed.
    #[default]
    Off,
    /// Files move under `archive_url`, keeping their path relative to the source prefix.
    Archive,
    /// Files are deleted.
    Delete,
}

impl CleanSource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Archive => "archive",
            Self::Delete => "delete",
        }
    }
}

/// How batches are written to the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SinkMode {
    /// Every row of every file is appended.
    #[default]
    Append,
    /// Rows are merged by `keys`: latest `sequence_by` wins, `delete_when` deletes.
    Merge,
}

/// `[transform]`: the SQL each batch goes through.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TransformSection {
    /// Any SELECT over the table `source` (with `_metadata`). Default `SELECT * FROM source`.
    pub sql: Option<String>,
}

/// `[source]`: where files land and how to take them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSection {
    /// `s3://bucket/prefix/`, `file:///abs/dir`, or a local path (relative to the config file).
    pub url: String,
    /// Input format. Default `json` (JSON lines or concatenated objects).
    #[serde(default)]
    pub format: Format,
    /// DynamoDB formats: `auto` (integral numbers BIGINT, others DOUBLE), `double`, or
    /// `string` (exact text; hint a DECIMAL to store decimals). Default `auto`.
    #[serde(default)]
    pub dynamodb_numbers: NumberMode,
    /// `auto` (by extension: `.gz`, `.zst`, `.bz2`), `none`, `gzip`, `zstd`, `bzip2`.
    /// Default `auto`.
    #[serde(default)]
    pub compression: Compression,
    /// `[source.csv]`: header, delimiter, quote, escape, null value, comment (format `csv`).
    #[serde(default)]
    pub csv: CsvOptions,
    /// Columns whose values come from the path's `name=value` directories. Default none.
    #[serde(default)]
    pub partition_columns: Vec<String>,
    /// Files last modified longer ago than this are not taken (and their checkpoint entries
    /// may be compacted). Default: no limit.
    #[serde(default, deserialize_with = "de_duration_opt")]
    pub max_file_age: Option<Duration>,
    /// `off`, `archive` (move under `archive_url`) or `delete`, for files committed at
    /// least `clean_source_retention` ago. Default `off`.
    #[serde(default)]
    pub clean_source: CleanSource,
    /// `clean_source = "archive"`: where files move, keeping their relative path.
    pub archive_url: Option<String>,
    /// How long after its commit a file is archived or deleted. Default `30d`.
    #[serde(default = "default_clean_retention", deserialize_with = "de_duration")]
    pub clean_source_retention: Duration,
    /// `listing` or `notifications` (S3 events through SQS). Default `listing`.
    #[serde(default)]
    pub discovery: Discovery,
    /// `notifications`: the SQS queue receiving the bucket's S3 event notifications.
    pub queue_url: Option<String>,
    /// `notifications`: SQS endpoint override (default: the AWS endpoint for the region,
    /// `AWS_ENDPOINT_URL_SQS`, or the queue URL's origin when it is not an AWS host).
    pub queue_endpoint: Option<String>,
    /// `notifications`: messages per receive call, 1–10. Default 10.
    #[serde(default = "default_queue_batch")]
    pub queue_batch_size: i32,
    /// `notifications`: longest long poll, at most 20s. Default `20s`.
    #[serde(default = "default_queue_wait", deserialize_with = "de_duration")]
    pub queue_wait: Duration,
    /// `notifications`: how long a received message stays hidden before SQS delivers it
    /// again; held messages are extended while their batch runs. Default: the queue's.
    #[serde(default, deserialize_with = "de_duration_opt")]
    pub queue_visibility_timeout: Option<Duration>,
    /// `notifications`: a batch closes this long after its first file arrived (or sooner,
    /// when full). Default `2s`.
    #[serde(default = "default_max_batch_wait", deserialize_with = "de_duration")]
    pub max_batch_wait: Duration,
    /// `notifications`: list the prefix this often to catch files whose notification never
    /// came. Default: never.
    #[serde(default, deserialize_with = "de_duration_opt")]
    pub backfill_interval: Option<Duration>,
    /// Glob over keys relative to the source prefix, e.g. `**/*.json.gz`. Default: all files
    /// (names starting with `_` or `.` are never taken).
    pub path_glob: Option<String>,
    /// Take files that were already there at the pipeline's first start (with
    /// `notifications`, by one listing at first start). Default `true`.
    #[serde(default = "default_true")]
    pub include_existing_files: bool,
    /// Most files in one batch. Default 1000.
    #[serde(default = "default_max_files")]
    pub max_files_per_batch: usize,
    /// Most bytes (as stored) in one batch; a single larger file still makes a batch.
    /// Default 1 GiB.
    #[serde(default = "default_max_bytes")]
    pub max_bytes_per_batch: u64,
    /// Take a file again when its ETag changes. Default `false`.
    #[serde(default)]
    pub allow_overwrites: bool,
    /// Files read ahead at once while a batch is written (decoding runs one per core).
    /// Default: 8 for S3 (reads wait on the network), two per core (at least 4) for local
    /// files (reads are instant, and every file read ahead is memory held). See [`Self::read_ahead`].
    pub read_concurrency: Option<usize>,
    /// Where lines that do not parse, and files that cannot be read, are recorded: a local
    /// directory or an `s3://` prefix (read with `storage_options`). Default
    /// `<checkpoint>/bad_records`.
    pub bad_records_path: Option<String>,
    /// object_store S3 options (`aws_endpoint`, `aws_region`, `aws_allow_http`, ...); `AWS_*`
    /// environment variables apply too.
    #[serde(default)]
    pub storage_options: BTreeMap<String, String>,
}

/// `[schema]`: inference, hints, evolution and rescue.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchemaSection {
    /// Most files read to infer the first schema. Default 1000.
    #[serde(default = "default_sample_files")]
    pub sample_files: usize,
    /// Most (decompressed) bytes read to infer the first schema. Default 50 GiB.
    #[serde(default = "default_sample_bytes")]
    pub sample_bytes: u64,
    /// Infer numbers, booleans, structs and lists; `false` makes every column a string.
    /// Default `true`.
    #[serde(default = "default_true")]
    pub infer_column_types: bool,
    /// Column types that override inference, as DDL: `id BIGINT, at TIMESTAMP`.
    #[serde(default)]
    pub hints: String,
    /// `add_new_columns`, `rescue`, `fail_on_new_columns` or `none`. Default `add_new_columns`.
    #[serde(default)]
    pub evolution: EvolutionMode,
    /// The column holding what did not fit, as JSON; empty turns it off. Default
    /// `_rescued_data`.
    #[serde(default = "default_rescued_column")]
    pub rescued_data_column: String,
}

impl Default for SchemaSection {
    fn default() -> Self {
        Self {
            sample_files: default_sample_files(),
            sample_bytes: default_sample_bytes(),
            infer_column_types: true,
            hints: String::new(),
            evolution: EvolutionMode::default(),
            rescued_data_column: default_rescued_column(),
        }
    }
}

/// `[sink]`: the Delta table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinkSection {
    /// `s3://bucket/path`, `file:///abs/dir`, or a local path (relative to the config file).
    pub table: String,
    /// `append`. Default `append`.
    #[serde(default)]
    pub mode: SinkMode,
    /// `merge`: the columns identifying a row.
    #[serde(default)]
    pub keys: Vec<String>,
    /// `merge`: the column ordering versions of a row (the higher wins).
    pub sequence_by: Option<String>,
    /// `merge`: a SQL predicate over the batch's columns; rows where it holds delete.
    pub delete_when: Option<String>,
    /// `merge`: how long a delete's tombstone is kept to stop older updates reviving the
    /// row. Default 168 (7 days).
    #[serde(default = "default_tombstone_hours")]
    pub tombstone_retention_hours: u64,
    /// Partition columns used when inlet creates the table. Default none.
    #[serde(default)]
    pub partition_by: Vec<String>,
    /// Target size of each Parquet data file, bytes. Default 128 MiB.
    #[serde(default = "default_target_file_size")]
    pub target_file_size: u64,
    /// delta-rs storage options (`aws_endpoint`, `aws_region`, `aws_allow_http`, ...).
    #[serde(default)]
    pub storage_options: BTreeMap<String, String>,
    /// `uc://` tables: create the table when the catalog has none by that name, at
    /// `storage_location`, and register it. Default false.
    #[serde(default)]
    pub create_table: bool,
    /// `uc://` tables with `create_table`: where the new table's files go (`s3://...`, under
    /// an external location).
    pub storage_location: Option<String>,
}

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

/// `[checkpoint]`: where inlet keeps its state.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointSection {
    /// A local directory (relative to the config file when not absolute).
    pub location: String,
}

/// `[trigger]`: pacing of continuous runs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TriggerSection {
    /// Seconds between listings in continuous mode. Default 60.
    #[serde(default = "default_interval")]
    pub interval_seconds: u64,
}

impl SourceSection {
    /// `read_concurrency`, or its default for this source.
    pub fn read_ahead(&self) -> usize {
        self.read_concurrency.unwrap_or_else(|| {
            if self.url.starts_with("s3://") || self.url.starts_with("s3a://") {
                8
            } else {
                std::thread::available_parallelism().map_or(4, |n| (2 * n.get()).max(4))
            }
        })
    }
}

impl Default for TriggerSection {
    fn default() -> Self {
        Self {
            interval_seconds: default_interval(),
        }
    }
}

/// The whole file, as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Names the pipeline: the `txn` appId in the table, and the checkpoint's owner.
    pub pipeline_id: String,
    pub source: SourceSection,
    #[serde(default)]
    pub schema: SchemaSection,
    #[serde(default)]
    pub transform: TransformSection,
    pub sink: SinkSection,
    pub checkpoint: CheckpointSection,
    #[serde(default)]
    pub trigger: TriggerSection,
    #[serde(default)]
    pub unity: UnitySection,
}

/// The resolved config a run uses.
#[derive(Debug, Clone)]
pub struct Config {
    pub path: PathBuf,
    pub pipeline_id: String,
    pub source_url: Url,
    pub source: SourceSection,
    pub schema: SchemaSection,
    /// `schema.hints`, parsed.
    pub hints: Vec<Field>,
    pub bad_records_url: Url,
    /// `source.archive_url`, resolved (set exactly when `clean_source = "archive"`).
    pub archive_url: Option<Url>,
    pub table_url: Url,
    pub transform: TransformSection,
    pub sink: SinkSection,
    pub checkpoint_dir: PathBuf,
    pub trigger: TriggerSection,
    /// `uc://` sinks: the catalog table; `table_url` becomes its storage location once
    /// resolved (see `unity.rs`).
    pub unity: Option<UnityTarget>,
}

impl Config {
    /// Reads, substitutes, parses and checks the config at `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(path, &text, &|name| std::env::var(name).ok())
    }

    /// Parses config `text` (read from `path`), looking `${NAME}` up with `env`.
    pub fn parse(
        path: &Path,
        text: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        refuse_literal_secrets(path, text)?;
        let substituted = substitute_env(path, text, env)?;
        let file: ConfigFile = toml::from_str(&substituted).map_err(|e| ConfigError::Syntax {
            path: path.to_path_buf(),
            line: e
                .span()
                .map(|s| 1 + substituted[..s.start].matches('\n').count())
                .unwrap_or(1),
            message: e.message().trim().to_string(),
        })?;
        let base = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let base = std::path::absolute(&base).unwrap_or(base);
        let bad = |key: &'static str, value: &str, reason: &str| ConfigError::Value {
            path: path.to_path_buf(),
            key,
            value: value.to_string(),
            reason: reason.to_string(),
        };

        if file.pipeline_id.is_empty()
            || !file
                .pipeline_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
        {
            return Err(bad(
                "pipeline_id",
                &file.pipeline_id,
                "use letters, digits, '_', '-' and '.' only",
            ));
        }
        let source_url = location_url(&base, &file.source.url, true)
            .map_err(|r| bad("source.url", &file.source.url, &r))?;
        let unity = unity_target(path, &file, env)?;
        let table_url = match &unity {
            // Resolved to the table's storage location at start.
            Some(t) => Url::parse(&format!("uc://{}/", t.name.full()))
                .map_err(|e| bad("sink.table", &file.sink.table, &e.to_string()))?,
            None => location_url(&base, &file.sink.table, true)
                .map_err(|r| bad("sink.table", &file.sink.table, &r))?,
        };
        if file.source.max_files_per_batch == 0 {
            return Err(bad("source.max_files_per_batch", "0", "must be at least 1"));
        }
        if file.source.max_bytes_per_batch == 0 {
            return Err(bad("source.max_bytes_per_batch", "0", "must be at least 1"));
        }
        if file.source.read_concurrency == Some(0) {
            return Err(bad("source.read_concurrency", "0", "must be at least 1"));
        }
        if file.schema.sample_files == 0 {
            return Err(bad("schema.sample_files", "0", "must be at least 1"));
        }
        if file.trigger.interval_seconds == 0 {
            return Err(bad("trigger.interval_seconds", "0", "must be at least 1"));
        }
        match (file.source.discovery, &file.source.queue_url) {
            (Discovery::Notifications, None) => {
                return Err(bad(
                    "source.discovery",
                    "notifications",
                    "needs source.queue_url, the SQS queue the bucket notifies",
                ))
            }
            (Discovery::Notifications, Some(_)) if source_url.scheme() == "file" => {
                return Err(bad(
                    "source.discovery",
                    "notifications",
                    "S3 notifications need an s3:// source.url",
                ))
            }
            (Discovery::Listing, Some(q)) => {
                return Err(bad(
                    "source.queue_url",
                    q,
                    "is read only with source.discovery = \"notifications\"",
                ))
            }
            _ => {}
        }
        if file.source.discovery == Discovery::Listing && file.source.backfill_interval.is_some() {
            return Err(bad(
                "source.backfill_interval",
                "set",
                "applies to discovery = \"notifications\" (a listing pipeline lists every trigger.interval_seconds)",
            ));
        }
        if !(1..=10).contains(&file.source.queue_batch_size) {
            return Err(bad(
                "source.queue_batch_size",
                &file.source.queue_batch_size.to_string(),
                "SQS takes 1 to 10",
            ));
        }
        if file.source.queue_wait > Duration::from_secs(20) {
            return Err(bad(
                "source.queue_wait",
                &humantime::format_duration(file.source.queue_wait).to_string(),
                "SQS long polls for at most 20s",
            ));
        }
        if file
            .source
            .queue_visibility_timeout
            .is_some_and(|v| v < Duration::from_secs(1) || v > Duration::from_secs(12 * 3600))
        {
            return Err(bad(
                "source.queue_visibility_timeout",
                "given",
                "SQS takes 1s to 12h",
            ));
        }
        if file
            .source
            .backfill_interval
            .is_some_and(|b| b < Duration::from_secs(1))
        {
            return Err(bad(
                "source.backfill_interval",
                "given",
                "must be at least 1s",
            ));
        }
        if file.source.format == Format::Csv {
            file.source.csv.validate().map_err(|(key, reason)| {
                let (key, value): (&'static str, &str) = match key {
                    "delimiter" => ("source.csv.delimiter", &file.source.csv.delimiter),
                    "quote" => ("source.csv.quote", &file.source.csv.quote),
                    "escape" => ("source.csv.escape", &file.source.csv.escape),
                    _ => ("source.csv.comment", &file.source.csv.comment),
                };
                bad(key, value, &reason)
            })?;
        }
        for (i, column) in file.source.partition_columns.iter().enumerate() {
            if !inlet_schema::is_valid_column_name(column) {
                return Err(bad(
                    "source.partition_columns",
                    column,
                    "not a valid Delta column name",
                ));
            }
            if file.source.partition_columns[..i]
                .iter()
                .any(|c| inlet_schema::same_column_name(c, column))
            {
                return Err(bad("source.partition_columns", column, "named twice"));
            }
        }
        if file
            .source
            .max_file_age
            .is_some_and(|a| a < Duration::from_secs(1))
        {
            return Err(bad("source.max_file_age", "given", "must be at least 1s"));
        }
        let archive_url = match (file.source.clean_source, &file.source.archive_url) {
            (CleanSource::Archive, None) => {
                return Err(bad(
                    "source.clean_source",
                    "archive",
                    "needs source.archive_url, where processed files move",
                ))
            }
            (CleanSource::Archive, Some(a)) => {
                let url =
                    location_url(&base, a, true).map_err(|r| bad("source.archive_url", a, &r))?;
                if url.as_str().starts_with(source_url.as_str()) {
                    return Err(bad(
                        "source.archive_url",
                        a,
                        "must be outside source.url: archived files would be found there and taken again",
                    ));
                }
                Some(url)
            }
            (_, Some(a)) => {
                return Err(bad(
                    "source.archive_url",
                    a,
                    "is used only with source.clean_source = \"archive\"",
                ))
            }
            (_, None) => None,
        };
        if let Some(glob) = &file.source.path_glob {
            globset::Glob::new(glob).map_err(|e| bad("source.path_glob", glob, &e.to_string()))?;
        }
        if file.checkpoint.location.contains("://") {
            return Err(bad(
                "checkpoint.location",
                &file.checkpoint.location,
                "the checkpoint is a local directory (SQLite); give a path",
            ));
        }
        match file.sink.mode {
            SinkMode::Merge => {
                if file.sink.keys.is_empty() {
                    return Err(bad(
                        "sink.keys",
                        "[]",
                        "mode = \"merge\" needs the key columns, e.g. keys = [\"id\"]",
                    ));
                }
                if file.sink.sequence_by.as_deref().is_none_or(str::is_empty) {
                    return Err(bad(
                        "sink.sequence_by",
                        "",
                        "mode = \"merge\" needs the column ordering row versions (for DynamoDB streams: _seq)",
                    ));
                }
            }
            SinkMode::Append => {
                for (key, set) in [
                    ("sink.keys", !file.sink.keys.is_empty()),
                    ("sink.sequence_by", file.sink.sequence_by.is_some()),
                    ("sink.delete_when", file.sink.delete_when.is_some()),
                ] {
                    if set {
                        return Err(bad(key, "(set)", "applies to mode = \"merge\" only; set sink.mode = \"merge\" or remove it"));
                    }
                }
            }
        }
        let checkpoint_dir = normalize(&base.join(&file.checkpoint.location));
        let hints = inlet_schema::parse_hints(&file.schema.hints).map_err(|e| {
            let reason = match e {
                inlet_schema::SchemaError::Hints { at, detail, .. } => {
                    format!("{detail} at character {at}")
                }
                other => other.to_string(),
            };
            bad("schema.hints", &file.schema.hints, &reason)
        })?;
        let mut hints = hints;
        if matches!(
            file.source.format,
            Format::DynamodbStream | Format::DynamodbExport
        ) && !hints.iter().any(|h| h.name() == "_event_time")
        {
            hints.push(Field::new(
                "_event_time",
                arrow::datatypes::DataType::Timestamp(
                    arrow::datatypes::TimeUnit::Microsecond,
                    Some("UTC".into()),
                ),
                true,
            ));
        }
        let rescued = &file.schema.rescued_data_column;
        if file.schema.evolution == EvolutionMode::Rescue && rescued.is_empty() {
            return Err(bad(
                "schema.rescued_data_column",
                "",
                "evolution = \"rescue\" keeps unknown fields in the rescued data column; name one (default _rescued_data)",
            ));
        }
        if !rescued.is_empty() && !inlet_schema::is_valid_column_name(rescued) {
            return Err(bad(
                "schema.rescued_data_column",
                rescued,
                "not a valid Delta column name",
            ));
        }
        let bad_records_url = match &file.source.bad_records_path {
            Some(p) => {
                location_url(&base, p, true).map_err(|r| bad("source.bad_records_path", p, &r))?
            }
            None => Url::from_directory_path(checkpoint_dir.join("bad_records")).map_err(|()| {
                bad(
                    "checkpoint.location",
                    &file.checkpoint.location,
                    "not an absolute path",
                )
            })?,
        };
        Ok(Self {
            path: path.to_path_buf(),
            pipeline_id: file.pipeline_id,
            source_url,
            source: file.source,
            schema: file.schema,
            hints,
            bad_records_url,
            archive_url,
            table_url,
            unity,
            transform: file.transform,
            sink: file.sink,
            checkpoint_dir,
            trigger: file.trigger,
        })
    }

    /// The rescued data column, `None` when turned off.
    pub fn rescued_column(&self) -> Option<&str> {
        Some(self.schema.rescued_data_column.as_str()).filter(|c| !c.is_empty())
    }

    pub fn source_options(&self) -> HashMap<String, String> {
        self.source.storage_options.clone().into_iter().collect()
    }

    pub fn sink_options(&self) -> HashMap<String, String> {
        self.sink.storage_options.clone().into_iter().collect()
    }

    /// How to read the queue, when discovery is by notifications.
    pub fn notification_options(&self) -> Option<inlet_discover::NotificationOptions> {
        let queue_url = self.source.queue_url.clone()?;
        (self.source.discovery == Discovery::Notifications).then(|| {
            inlet_discover::NotificationOptions {
                queue_url,
                endpoint: self.source.queue_endpoint.clone(),
                region: self.source.storage_options.get("aws_region").cloned(),
                max_messages: self.source.queue_batch_size,
                max_wait_seconds: i32::try_from(self.source.queue_wait.as_secs()).unwrap_or(20),
                visibility_timeout: self.source.queue_visibility_timeout,
                path_glob: self.source.path_glob.clone(),
            }
        })
    }
}

/// A URL for a location given as a URL or as a local path relative to `base`. Directories
/// get a trailing slash so that joins and prefixes behave.
fn location_url(base: &Path, value: &str, dir: bool) -> Result<Url, String> {
    if value.contains("://") {
        let mut url = Url::parse(value).map_err(|e| e.to_string())?;
        match url.scheme() {
            "s3" | "s3a" | "file" => {}
            other => {
                return Err(format!(
                    "scheme '{other}' is not supported (use s3:// or file://)"
                ))
            }
        }
        if url.scheme() != "file" && url.host_str().is_none_or(str::is_empty) {
            return Err("no bucket name".into());
        }
        if dir && !url.path().ends_with('/') {
            let path = format!("{}/", url.path());
            url.set_path(&path);
        }
        return Ok(url);
    }
    let path = normalize(&base.join(value));
    Url::from_directory_path(&path)
        .map_err(|()| format!("{} is not an absolute path", path.display()))
}

/// The absolute form of `path` with `.` and `..` resolved lexically (symlinks untouched),
/// so that `../landing` next to the config names the directory a user means.
fn normalize(path: &Path) -> PathBuf {
    let path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// The `uc://` target of `sink.table`, if it is one, with its workspace and credentials
/// (config keys first, then the Databricks environment variables).
fn unity_target(
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

/// Secrets stay out of config files (they are copied, committed and shown): a storage
/// option whose key names a secret must be a whole `${NAME}` reference in the file as
/// written. The error names the key, never the value.
fn refuse_literal_secrets(path: &Path, text: &str) -> Result<(), ConfigError> {
    // The file as written; a syntax error is reported by the full parse that follows.
    let Ok(raw) = toml::from_str::<toml::Table>(text) else {
        return Ok(());
    };
    for key in ["token", "client_secret"] {
        let value = raw
            .get("unity")
            .and_then(|u| u.get(key))
            .and_then(toml::Value::as_str);
        if value.is_some_and(|v| !is_reference(v)) {
            return Err(ConfigError::Value {
                path: path.to_path_buf(),
                key: if key == "token" { "unity.token" } else { "unity.client_secret" },
                value: format!("{key} = ***"),
                reason: "a secret written into the config file: leave it out and set DATABRICKS_TOKEN (or DATABRICKS_CLIENT_SECRET), or write it as \"${NAME}\" to read the environment variable NAME".into(),
            });
        }
    }
    for (section, key) in [
        ("source", "source.storage_options"),
        ("sink", "sink.storage_options"),
    ] {
        let Some(options) = raw
            .get(section)
            .and_then(|s| s.get("storage_options"))
            .and_then(toml::Value::as_table)
        else {
            continue;
        };
        for (name, value) in options {
            let reference = value.as_str().is_some_and(is_reference);
            if crate::redact::is_secret_key(name) && !reference {
                return Err(ConfigError::Value {
                    path: path.to_path_buf(),
                    key,
                    value: format!("{name} = ***"),
                    reason: format!(
                        "a secret written into the config file: leave it out and set the standard variable \
                         (e.g. AWS_SECRET_ACCESS_KEY) or an instance/task role, or write {name} = \"${{NAME}}\" \
                         to read it from the environment variable NAME"
                    ),
                });
            }
        }
    }
    Ok(())
}

/// True for a whole `${NAME}` reference.
fn is_reference(v: &str) -> bool {
    v.strip_prefix("${")
        .and_then(|v| v.strip_suffix('}'))
        .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
}

/// Replaces `${NAME}` with the variable's value; `$${` stands for a literal `${`.
fn substitute_env(
    path: &Path,
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, ConfigError> {
    let mut out = String::with_capacity(text.len());
    for (n, line) in text.split_inclusive('\n').enumerate() {
        let mut rest = line;
        while let Some(at) = rest.find("${") {
            if at > 0 && rest.as_bytes()[at - 1] == b'$' {
                out.push_str(&rest[..at - 1]);
                out.push_str("${");
                rest = &rest[at + 2..];
                continue;
            }
            out.push_str(&rest[..at]);
            let Some(end) = rest[at..].find('}') else {
                return Err(ConfigError::Syntax {
                    path: path.to_path_buf(),
                    line: n + 1,
                    message: "unclosed ${".into(),
                });
            };
            let name = &rest[at + 2..at + end];
            match env(name) {
                Some(value) => out.push_str(&value),
                None => {
                    return Err(ConfigError::MissingEnv {
                        path: path.to_path_buf(),
                        line: n + 1,
                        name: name.to_string(),
                    })
                }
            }
            rest = &rest[at + end + 1..];
        }
        out.push_str(rest);
    }
    Ok(out)
}

const fn default_true() -> bool {
    true
}
const fn default_max_files() -> usize {
    1000
}
const fn default_max_bytes() -> u64 {
    1 << 30
}
const fn default_sample_files() -> usize {
    1000
}
const fn default_sample_bytes() -> u64 {
    50 << 30
}
const fn default_target_file_size() -> u64 {
    128 << 20
}
const fn default_tombstone_hours() -> u64 {
    168
}
fn default_rescued_column() -> String {
    "_rescued_data".into()
}
const fn default_clean_retention() -> Duration {
    Duration::from_secs(30 * 24 * 3600)
}
const fn default_interval() -> u64 {
    60
}
const fn default_queue_batch() -> i32 {
    10
}
const fn default_queue_wait() -> Duration {
    Duration::from_secs(20)
}
const fn default_max_batch_wait() -> Duration {
    Duration::from_secs(2)
}

/// A duration as people write it: `500ms`, `20s`, `5m`, `1h 30m`.
fn de_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    humantime::parse_duration(&text).map_err(|e| {
        serde::de::Error::custom(format!(
            "'{text}' is not a duration ({e}); write e.g. \"500ms\", \"20s\", \"5m\""
        ))
    })
}

fn de_duration_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    de_duration(d).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
pipeline_id = "p1"
[source]
url = "landing"
[sink]
table = "s3://lake/${TABLE}"
[checkpoint]
location = "state"
"#;

    fn env(name: &str) -> Option<String> {
        (name == "TABLE").then(|| "events".to_string())
    }

    #[test]
    fn resolves_paths_and_env() {
        let text = GOOD.replace("\"state\"", "\"../var/./state\"");
        let cfg = Config::parse(Path::new("/etc/inlet/p.toml"), &text, &env).expect("parse");
        assert_eq!(cfg.source_url.as_str(), "file:///etc/inlet/landing/");
        assert_eq!(cfg.table_url.as_str(), "s3://lake/events/");
        assert_eq!(cfg.checkpoint_dir, PathBuf::from("/etc/var/state"));
        assert_eq!(cfg.source.max_files_per_batch, 1000);
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let text = GOOD.replace("[sink]\n", "[sink]\ncolour = \"red\"\n");
        let err = Config::parse(Path::new("p.toml"), &text, &env).expect_err("unknown");
        let msg = err.to_string();
        assert!(
            msg.starts_with("config p.toml, line 6: unknown field `colour`"),
            "{msg}"
        );
        assert!(!msg.contains('\n'), "one line: {msg}");
    }

    #[test]
    fn notifications_need_a_queue_and_an_s3_source() {
        let s3 = GOOD.replace(
            "url = \"landing\"",
            "url = \"s3://landing/in/\"\ndiscovery = \"notifications\"",
        );
        let err = Config::parse(Path::new("p.toml"), &s3, &env).expect_err("no queue");
        assert!(err.to_string().contains("needs source.queue_url"), "{err}");
        let local = GOOD.replace(
            "url = \"landing\"",
            "url = \"landing\"\ndiscovery = \"notifications\"\nqueue_url = \"q\"",
        );
        let err = Config::parse(Path::new("p.toml"), &local, &env).expect_err("local");
        assert!(
            err.to_string().contains("need an s3:// source.url"),
            "{err}"
        );
        let ok = s3.replace("discovery", "queue_url = \"https://sqs.eu-west-1.amazonaws.com/1/q\"\nmax_batch_wait = \"500ms\"\nbackfill_interval = \"1h\"\ndiscovery");
        let cfg = Config::parse(Path::new("p.toml"), &ok, &env).expect("parse");
        assert_eq!(cfg.source.max_batch_wait, Duration::from_millis(500));
        assert_eq!(
            cfg.source.backfill_interval,
            Some(Duration::from_secs(3600))
        );
        assert_eq!(cfg.notification_options().map(|o| o.max_messages), Some(10));
        let bad = ok.replace("\"500ms\"", "\"soon\"");
        let err = Config::parse(Path::new("p.toml"), &bad, &env).expect_err("duration");
        assert!(
            err.to_string().contains("'soon' is not a duration"),
            "{err}"
        );
        let listing = GOOD.replace(
            "url = \"landing\"",
            "url = \"landing\"\nbackfill_interval = \"1h\"",
        );
        let err = Config::parse(Path::new("p.toml"), &listing, &env).expect_err("listing");
        assert!(
            err.to_string().contains("source.backfill_interval"),
            "{err}"
        );
    }

    #[test]
    fn format_and_clean_up_options_are_checked() {
        let with = |extra: &str| {
            GOOD.replace(
                "url = \"landing\"",
                &format!("url = \"s3://b/landing/\"\n{extra}"),
            )
        };
        let err = |extra: &str| {
            Config::parse(Path::new("p.toml"), &with(extra), &env)
                .expect_err(extra)
                .to_string()
        };
        let msg = err("format = \"csv\"\n[source.csv]\ndelimiter = \"ab\"");
        assert!(
            msg.contains("source.csv.delimiter = 'ab' is not valid: must be one ASCII character"),
            "{msg}"
        );
        let msg = err("clean_source = \"archive\"");
        assert!(msg.contains("needs source.archive_url"), "{msg}");
        let msg = err("clean_source = \"archive\"\narchive_url = \"s3://b/landing/done/\"");
        assert!(msg.contains("must be outside source.url"), "{msg}");
        let msg = err("archive_url = \"s3://b/done/\"");
        assert!(msg.contains("only with source.clean_source"), "{msg}");
        let msg = err("partition_columns = [\"date\", \"DATE\"]");
        assert!(msg.contains("named twice"), "{msg}");
        let ok = with(
            "clean_source = \"archive\"\narchive_url = \"s3://b/archive\"\nmax_file_age = \"7d\"",
        );
        let cfg = Config::parse(Path::new("p.toml"), &ok, &env).expect("parse");
        assert_eq!(
            cfg.archive_url.as_ref().map(Url::as_str),
            Some("s3://b/archive/")
        );
        assert_eq!(
            cfg.source.clean_source_retention,
            Duration::from_secs(30 * 24 * 3600)
        );
        assert_eq!(
            cfg.source.max_file_age,
            Some(Duration::from_secs(7 * 24 * 3600))
        );
    }

    #[test]
    fn every_shipped_example_config_is_valid() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config");
        let mut checked = 0;
        for entry in std::fs::read_dir(&dir).expect("config/") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|e| e == "toml") {
                let text = std::fs::read_to_string(&path).expect("read");
                let any = |name: &str| {
                    Some(match name {
                        n if n.ends_with("_URL") => {
                            format!("s3://{}/p/", n.to_ascii_lowercase().replace('_', "-"))
                        }
                        n if n.ends_with("_DIR") => "/var/lib/inlet/x".to_string(),
                        _ => "x".to_string(),
                    })
                };
                Config::parse(&path, &text, &any)
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                checked += 1;
            }
        }
        assert!(checked >= 7, "only {checked} example configs");
    }

    #[test]
    fn secrets_in_the_file_are_refused_without_showing_them() {
        let with = |opts: &str| {
            GOOD.replace(
                "url = \"landing\"",
                &format!("url = \"s3://b/in/\"\nstorage_options = {{ {opts} }}"),
            )
        };
        let text = with("aws_region = \"eu-west-1\", aws_secret_access_key = \"hunter2\"");
        let err = Config::parse(Path::new("p.toml"), &text, &env)
            .expect_err("literal secret")
            .to_string();
        assert!(
            err.contains("source.storage_options = 'aws_secret_access_key = ***'"),
            "{err}"
        );
        assert!(!err.contains("hunter2"), "{err}");
        let text = with("aws_session_token = \"x${TABLE}\"");
        assert!(
            Config::parse(Path::new("p.toml"), &text, &env).is_err(),
            "only a whole reference is allowed"
        );
        let text = with("aws_secret_access_key = \"${TABLE}\"");
        let cfg = Config::parse(Path::new("p.toml"), &text, &env).expect("a reference is fine");
        assert_eq!(
            cfg.source.storage_options["aws_secret_access_key"],
            "events"
        );
    }

    #[test]
    fn unity_catalog_tables_are_checked_and_their_secrets_refused() {
        let uc =
            |sink: &str, extra: &str| GOOD.replace("table = \"s3://lake/${TABLE}\"", sink) + extra;
        let cfg = Config::parse(
            Path::new("p.toml"),
            &uc("table = \"uc://main.sales.events\"", ""),
            &env,
        )
        .expect("uc");
        let target = cfg.unity.expect("a uc target");
        assert_eq!(target.name.full(), "main.sales.events");
        assert!(
            target.host.is_none() && target.auth.is_none(),
            "files and schema work without the catalog"
        );
        let with_env = |n: &str| match n {
            "DATABRICKS_HOST" => Some("ws.example".to_string()),
            "DATABRICKS_TOKEN" => Some("t".to_string()),
            other => env(other),
        };
        let cfg = Config::parse(
            Path::new("p.toml"),
            &uc("table = \"uc://main.sales.events\"", ""),
            &with_env,
        )
        .expect("uc");
        assert_eq!(
            cfg.unity.and_then(|u| u.host).as_deref(),
            Some("https://ws.example")
        );

        let err = |text: String| {
            Config::parse(Path::new("p.toml"), &text, &env)
                .expect_err("bad")
                .to_string()
        };
        assert!(err(uc("table = \"uc://main.events\"", "")).contains("uc://catalog.schema.table"));
        assert!(err(uc("table = \"uc://a.b.c\"\ncreate_table = true", ""))
            .contains("sink.storage_location = 'missing'"));
        assert!(err(uc("table = \"s3://x/y\"\ncreate_table = true", ""))
            .contains("applies to Unity Catalog tables only"));
        let literal = err(uc(
            "table = \"uc://a.b.c\"",
            "[unity]\ntoken = \"dapi-literal\"\n",
        ));
        assert!(
            literal.contains("unity.token = 'token = ***'") && !literal.contains("dapi-literal"),
            "{literal}"
        );
    }

    #[test]
    fn missing_env_and_bad_values_are_named() {
        let err = Config::parse(Path::new("p.toml"), GOOD, &|_| None).expect_err("env");
        assert_eq!(
            err.to_string(),
            "config p.toml, line 6: environment variable TABLE is not set (write $${...} for a literal ${...})"
        );
        let text = GOOD.replace("url = \"landing\"", "url = \"gs://x/y\"");
        let err = Config::parse(Path::new("p.toml"), &text, &env).expect_err("scheme");
        assert!(
            err.to_string()
                .contains("source.url = 'gs://x/y' is not valid"),
            "{err}"
        );
        let literal = GOOD.replace("landing", "land$${x}");
        let cfg = Config::parse(Path::new("/c/p.toml"), &literal, &env).expect("literal");
        assert!(
            cfg.source_url.as_str().ends_with("land$%7Bx%7D/"),
            "{}",
            cfg.source_url
        );
    }
}
