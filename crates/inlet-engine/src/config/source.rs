//! `[source]`: where files land and how to take them. The keys as written (flat, as Auto
//! Loader's options are), checked, and resolved to typed settings that cannot contradict.

use std::collections::BTreeMap;
use std::time::Duration;

use inlet_format::{Compression, CsvOptions, Format, NumberMode};
use serde::Deserialize;
use url::Url;

use super::location::{de_duration, de_duration_opt, location_url};
use super::{Checker, ConfigError};

/// `discovery`: how new files are found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum DiscoveryKind {
    /// List the source prefix at every trigger.
    #[default]
    Listing,
    /// Read S3 event notifications from an SQS queue (`queue_url`).
    Notifications,
}

/// `listing`: how much of the prefix a listing reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ListingKind {
    /// Every key, every trigger.
    #[default]
    Full,
    /// Keys after the last one taken (S3 `start-after`), for keys that grow lexically (date
    /// paths, timestamps, Firehose's `yyyy/MM/dd/HH/`); in full every `full_listing_interval`.
    Incremental,
    /// Decided from the keys: incremental when new keys sort after the old ones.
    Auto,
}

impl From<ListingKind> for inlet_discover::ListingMode {
    fn from(kind: ListingKind) -> Self {
        match kind {
            ListingKind::Full => Self::Full,
            ListingKind::Incremental => Self::Incremental,
            ListingKind::Auto => Self::Auto,
        }
    }
}

/// `clean_source`: what happens to a source file once its batch has been committed for
/// `clean_source_retention`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum CleanSourceKind {
    /// Files stay where they landed.
    #[default]
    Off,
    /// Files move under `archive_url`, keeping their path relative to the source prefix.
    Archive,
    /// Files are deleted.
    Delete,
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
    /// JSON and DynamoDB formats: a file is one JSON document or a top-level array of
    /// objects (pretty-printed or not), a row per object, instead of JSON lines. Default
    /// `false` (Auto Loader's `multiLine`).
    #[serde(default)]
    pub multiline: bool,
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
    pub clean_source: CleanSourceKind,
    /// `clean_source = "archive"`: where files move, keeping their relative path.
    pub archive_url: Option<String>,
    /// How long after its commit a file is archived or deleted. Default `30d`.
    #[serde(default = "default_clean_retention", deserialize_with = "de_duration")]
    pub clean_source_retention: Duration,
    /// `listing` or `notifications` (S3 events through SQS). Default `listing`.
    #[serde(default)]
    pub discovery: DiscoveryKind,
    /// `listing`: `full` (every key, every trigger), `incremental` (after the last key
    /// taken, for lexically growing keys) or `auto`. Default `full`.
    #[serde(default)]
    pub listing: ListingKind,
    /// `listing = "incremental"` or `"auto"`: a full listing at least this often, for keys
    /// that landed out of order. Default `1h`.
    #[serde(default, deserialize_with = "de_duration_opt")]
    pub full_listing_interval: Option<Duration>,
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

impl CleanSourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Archive => "archive",
            Self::Delete => "delete",
        }
    }
}

/// How new files are found, resolved: the notification settings exist only with
/// notifications.
#[derive(Debug, Clone, PartialEq)]
pub enum Discovery {
    Listing,
    Notifications(Notifications),
}

/// `discovery = "notifications"`: the queue and how batches close.
#[derive(Debug, Clone, PartialEq)]
pub struct Notifications {
    pub queue_url: String,
    pub endpoint: Option<String>,
    /// Messages per receive call, 1–10.
    pub batch_size: i32,
    /// Each long poll, at most 20 s.
    pub wait: Duration,
    pub visibility_timeout: Option<Duration>,
    /// A batch closes this long after its first file arrived.
    pub max_batch_wait: Duration,
    /// A listing this often, for notifications that never came.
    pub backfill_interval: Option<Duration>,
}

/// What happens to processed source files, resolved: an archive has its destination.
#[derive(Debug, Clone, PartialEq)]
pub enum CleanSource {
    Off,
    /// Moved under `to` once committed for `after`.
    Archive {
        to: Url,
        after: Duration,
    },
    /// Deleted once committed for `after`.
    Delete {
        after: Duration,
    },
}

impl CleanSource {
    pub fn kind(&self) -> CleanSourceKind {
        match self {
            Self::Off => CleanSourceKind::Off,
            Self::Archive { .. } => CleanSourceKind::Archive,
            Self::Delete { .. } => CleanSourceKind::Delete,
        }
    }

    pub fn as_str(&self) -> &'static str {
        self.kind().as_str()
    }

    /// How long after its commit a file is cleaned up (`None`: never).
    pub fn after(&self) -> Option<Duration> {
        match self {
            Self::Off => None,
            Self::Archive { after, .. } | Self::Delete { after } => Some(*after),
        }
    }

    /// The archive, with `clean_source = "archive"`.
    pub fn archive(&self) -> Option<&Url> {
        match self {
            Self::Archive { to, .. } => Some(to),
            _ => None,
        }
    }
}

/// `[source]` resolved: locations as URLs, discovery and clean-up typed.
#[derive(Debug, Clone)]
pub struct Source {
    pub url: Url,
    pub format: Format,
    pub dynamodb_numbers: NumberMode,
    pub compression: Compression,
    pub csv: CsvOptions,
    pub multiline: bool,
    pub partition_columns: Vec<String>,
    pub max_file_age: Option<Duration>,
    pub discovery: Discovery,
    /// How much of the prefix a listing reads (the backfill listing of notifications is
    /// always full).
    pub listing: ListingKind,
    pub full_listing_interval: Duration,
    pub clean: CleanSource,
    pub path_glob: Option<String>,
    pub include_existing_files: bool,
    pub max_files_per_batch: usize,
    pub max_bytes_per_batch: u64,
    pub allow_overwrites: bool,
    pub read_concurrency: Option<usize>,
    /// Where bad records go (`bad_records_path`, or `<checkpoint>/bad_records`).
    pub bad_records: Url,
    pub storage_options: BTreeMap<String, String>,
}

impl Source {
    /// `read_concurrency`, or its default for this source: 8 for S3 (reads wait on the
    /// network), two per core (at least 4) for local files (reads are instant, and every
    /// file read ahead is memory held).
    pub fn read_ahead(&self) -> usize {
        self.read_concurrency.unwrap_or_else(|| {
            if matches!(self.url.scheme(), "s3" | "s3a") {
                8
            } else {
                std::thread::available_parallelism().map_or(4, |n| (2 * n.get()).max(4))
            }
        })
    }

    /// The notification settings, with `discovery = "notifications"`.
    pub fn notifications(&self) -> Option<&Notifications> {
        match &self.discovery {
            Discovery::Notifications(n) => Some(n),
            Discovery::Listing => None,
        }
    }
}

impl SourceSection {
    /// Checks the section and resolves it: paths relative to the config's directory, the
    /// default bad-records location under the checkpoint (`checkpoint`: its URL, ending
    /// in `/`).
    pub(super) fn resolve(
        self,
        check: &Checker<'_>,
        checkpoint: &Url,
    ) -> Result<Source, ConfigError> {
        let url = location_url(check.base(), &self.url, true)
            .map_err(|r| check.bad("source.url", &self.url, &r))?;
        for (key, zero) in [
            ("source.max_files_per_batch", self.max_files_per_batch == 0),
            ("source.max_bytes_per_batch", self.max_bytes_per_batch == 0),
            ("source.read_concurrency", self.read_concurrency == Some(0)),
        ] {
            if zero {
                return Err(check.bad(key, "0", "must be at least 1"));
            }
        }
        let discovery = self.discovery(check, &url)?;
        if self.listing != ListingKind::Full && self.discovery != DiscoveryKind::Listing {
            return Err(check.bad(
                "source.listing",
                "incremental or auto",
                "applies to discovery = \"listing\" (notifications list only to backfill, and in full)",
            ));
        }
        let full_listing_interval = match self.full_listing_interval {
            Some(_) if self.listing == ListingKind::Full => {
                return Err(check.bad(
                    "source.full_listing_interval",
                    "set",
                    "applies to listing = \"incremental\" or \"auto\" (listing = \"full\" lists everything every trigger)",
                ))
            }
            Some(i) if i < Duration::from_secs(1) => {
                return Err(check.bad(
                    "source.full_listing_interval",
                    "given",
                    "must be at least 1s",
                ))
            }
            Some(i) => i,
            None => Duration::from_secs(3600),
        };
        // A key landing out of order waits up to a full_listing_interval for the full
        // listing; by then max_file_age must not have made it too old to take.
        if let Some(age) = self.max_file_age {
            if self.listing != ListingKind::Full && full_listing_interval * 2 > age {
                return Err(check.bad(
                    "source.full_listing_interval",
                    &humantime::format_duration(full_listing_interval).to_string(),
                    &format!(
                        "must be at most half of source.max_file_age ({}): a key landing out of order is found by the next full listing and would be too old to take by then",
                        humantime::format_duration(age)
                    ),
                ));
            }
        }
        if self.multiline
            && matches!(
                self.format,
                Format::Csv | Format::Text | Format::Parquet | Format::Avro
            )
        {
            return Err(check.bad(
                "source.multiline",
                "true",
                "applies to JSON and the DynamoDB formats",
            ));
        }
        if self.format == Format::Csv {
            self.csv.validate().map_err(|(key, reason)| {
                let (key, value): (&'static str, &str) = match key {
                    "delimiter" => ("source.csv.delimiter", &self.csv.delimiter),
                    "quote" => ("source.csv.quote", &self.csv.quote),
                    "escape" => ("source.csv.escape", &self.csv.escape),
                    _ => ("source.csv.comment", &self.csv.comment),
                };
                check.bad(key, value, &reason)
            })?;
        }
        for (i, column) in self.partition_columns.iter().enumerate() {
            if !inlet_schema::is_valid_column_name(column) {
                return Err(check.bad(
                    "source.partition_columns",
                    column,
                    "not a valid Delta column name",
                ));
            }
            if self.partition_columns[..i]
                .iter()
                .any(|c| inlet_schema::same_column_name(c, column))
            {
                return Err(check.bad("source.partition_columns", column, "named twice"));
            }
        }
        if self
            .max_file_age
            .is_some_and(|a| a < Duration::from_secs(1))
        {
            return Err(check.bad("source.max_file_age", "given", "must be at least 1s"));
        }
        let clean = self.clean(check, &url)?;
        if let Some(glob) = &self.path_glob {
            globset::Glob::new(glob)
                .map_err(|e| check.bad("source.path_glob", glob, &e.to_string()))?;
        }
        let bad_records = match &self.bad_records_path {
            Some(p) => location_url(check.base(), p, true)
                .map_err(|r| check.bad("source.bad_records_path", p, &r))?,
            None => checkpoint.join("bad_records/").map_err(|e| {
                check.bad("checkpoint.location", checkpoint.as_str(), &e.to_string())
            })?,
        };
        Ok(Source {
            url,
            format: self.format,
            dynamodb_numbers: self.dynamodb_numbers,
            compression: self.compression,
            csv: self.csv,
            multiline: self.multiline,
            partition_columns: self.partition_columns,
            max_file_age: self.max_file_age,
            discovery,
            listing: self.listing,
            full_listing_interval,
            clean,
            path_glob: self.path_glob,
            include_existing_files: self.include_existing_files,
            max_files_per_batch: self.max_files_per_batch,
            max_bytes_per_batch: self.max_bytes_per_batch,
            allow_overwrites: self.allow_overwrites,
            read_concurrency: self.read_concurrency,
            bad_records,
            storage_options: self.storage_options,
        })
    }

    /// `discovery` and the `queue_*` / batch-wait / backfill keys, which only notifications read.
    fn discovery(&self, check: &Checker<'_>, url: &Url) -> Result<Discovery, ConfigError> {
        let queue_url = match (self.discovery, &self.queue_url) {
            (DiscoveryKind::Notifications, None) => {
                return Err(check.bad(
                    "source.discovery",
                    "notifications",
                    "needs source.queue_url, the SQS queue the bucket notifies; to create the queue and \
                     the bucket notification, set discovery = \"listing\" and run `inlet setup \
                     notifications --config FILE --write-config`",
                ))
            }
            (DiscoveryKind::Notifications, Some(_)) if url.scheme() == "file" => {
                return Err(check.bad(
                    "source.discovery",
                    "notifications",
                    "S3 notifications need an s3:// source.url",
                ))
            }
            (DiscoveryKind::Listing, Some(q)) => {
                return Err(check.bad(
                    "source.queue_url",
                    q,
                    "is read only with source.discovery = \"notifications\"",
                ))
            }
            (DiscoveryKind::Listing, None) => {
                if self.backfill_interval.is_some() {
                    return Err(check.bad(
                        "source.backfill_interval",
                        "set",
                        "applies to discovery = \"notifications\" (a listing pipeline lists every trigger.interval_seconds)",
                    ));
                }
                return Ok(Discovery::Listing);
            }
            (DiscoveryKind::Notifications, Some(q)) => q.clone(),
        };
        if !(1..=10).contains(&self.queue_batch_size) {
            return Err(check.bad(
                "source.queue_batch_size",
                &self.queue_batch_size.to_string(),
                "SQS takes 1 to 10",
            ));
        }
        if self.queue_wait > Duration::from_secs(20) {
            return Err(check.bad(
                "source.queue_wait",
                &humantime::format_duration(self.queue_wait).to_string(),
                "SQS long polls for at most 20s",
            ));
        }
        if self
            .queue_visibility_timeout
            .is_some_and(|v| v < Duration::from_secs(1) || v > Duration::from_secs(12 * 3600))
        {
            return Err(check.bad(
                "source.queue_visibility_timeout",
                "given",
                "SQS takes 1s to 12h",
            ));
        }
        if self
            .backfill_interval
            .is_some_and(|b| b < Duration::from_secs(1))
        {
            return Err(check.bad("source.backfill_interval", "given", "must be at least 1s"));
        }
        Ok(Discovery::Notifications(Notifications {
            queue_url,
            endpoint: self.queue_endpoint.clone(),
            batch_size: self.queue_batch_size,
            wait: self.queue_wait,
            visibility_timeout: self.queue_visibility_timeout,
            max_batch_wait: self.max_batch_wait,
            backfill_interval: self.backfill_interval,
        }))
    }

    /// `clean_source`, `archive_url` and `clean_source_retention`.
    fn clean(&self, check: &Checker<'_>, url: &Url) -> Result<CleanSource, ConfigError> {
        let after = self.clean_source_retention;
        match (self.clean_source, &self.archive_url) {
            (CleanSourceKind::Archive, None) => Err(check.bad(
                "source.clean_source",
                "archive",
                "needs source.archive_url, where processed files move",
            )),
            (CleanSourceKind::Archive, Some(a)) => {
                let to = location_url(check.base(), a, true)
                    .map_err(|r| check.bad("source.archive_url", a, &r))?;
                if to.as_str().starts_with(url.as_str()) {
                    return Err(check.bad(
                        "source.archive_url",
                        a,
                        "must be outside source.url: archived files would be found there and taken again",
                    ));
                }
                Ok(CleanSource::Archive { to, after })
            }
            (_, Some(a)) => Err(check.bad(
                "source.archive_url",
                a,
                "is used only with source.clean_source = \"archive\"",
            )),
            (CleanSourceKind::Delete, None) => Ok(CleanSource::Delete { after }),
            (CleanSourceKind::Off, None) => Ok(CleanSource::Off),
        }
    }
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
const fn default_clean_retention() -> Duration {
    Duration::from_secs(30 * 24 * 3600)
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
