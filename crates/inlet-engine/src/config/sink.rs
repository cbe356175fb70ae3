//! `[sink]` (the Delta table and how batches reach it), `[transform]`, `[checkpoint]` and
//! `[trigger]`: the sections of what a batch becomes and where its state lives; checked.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::{Checker, ConfigError};

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

/// `[sink] merge_strategy`: how a MERGE removes the rows it replaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MergeStrategyChoice {
    /// Mark replaced rows in deletion vectors; write only new row versions.
    DeletionVectors,
    /// Rewrite every file holding a replaced row.
    CopyOnWrite,
}

/// The MERGE strategy a run uses on a table, and why, for `validate` and the logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StrategyDecision {
    pub strategy: inlet_delta::MergeStrategy,
    /// An existing table without deletion vectors is upgraded first (asked explicitly).
    pub upgrade: bool,
    pub why: &'static str,
}

/// What the MERGE strategy depends on in an existing table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableFacts {
    /// Deletion vectors are enabled (property and protocol).
    pub deletion_vectors: bool,
    /// `delta.enableChangeDataFeed` is true.
    pub change_feed: bool,
    /// Column names are mapped (`delta.columnMapping.mode` other than `none`).
    pub column_mapping: bool,
    /// `delta.enableDeletionVectors` is true, whatever the protocol says.
    pub vectors_property: bool,
}

impl TableFacts {
    /// The facts of the loaded table `sink`; `None` when it does not exist yet.
    pub fn of(sink: &inlet_delta::DeltaSink) -> Option<Self> {
        sink.version()?;
        Some(Self {
            deletion_vectors: sink.deletion_vectors_enabled(),
            change_feed: sink.property_is_true("delta.enableChangeDataFeed"),
            column_mapping: sink.column_mapped(),
            vectors_property: sink.property_is_true("delta.enableDeletionVectors"),
        })
    }
}

/// `[transform]`: the SQL each batch goes through.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TransformSection {
    /// Any SELECT over the table `source` (with `_metadata`). Default `SELECT * FROM source`.
    pub sql: Option<String>,
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
    /// `merge`: `deletion_vectors` (merge-on-read) or `copy_on_write`. Unset: deletion
    /// vectors for a table inlet creates or one that has them enabled, else copy-on-write.
    pub merge_strategy: Option<MergeStrategyChoice>,
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
    /// Table properties set when inlet creates the table (`delta.enableChangeDataFeed`,
    /// `delta.logRetentionDuration`, ...); an existing table's are changed only by
    /// `inlet table set-properties`. Default none.
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
}

impl SinkSection {
    /// Checks the mode's keys: `merge` needs `keys` and `sequence_by`; `append` takes none
    /// of the merge keys.
    pub(super) fn check(&self, check: &Checker<'_>) -> Result<(), ConfigError> {
        for (key, value) in &self.properties {
            inlet_delta::properties::check_property(key, value).map_err(|reason| {
                check.bad("sink.properties", &format!("{key} = {value}"), &reason)
            })?;
        }
        if self.mode == SinkMode::Merge {
            inlet_delta::properties::check_for_merge(&self.properties).map_err(|reason| {
                check.bad("sink.properties", "delta.appendOnly = true", &reason)
            })?;
        }
        match self.mode {
            SinkMode::Merge => {
                if self.keys.is_empty() {
                    return Err(check.bad(
                        "sink.keys",
                        "[]",
                        "mode = \"merge\" needs the key columns, e.g. keys = [\"id\"]",
                    ));
                }
                if self.merge_strategy == Some(MergeStrategyChoice::DeletionVectors)
                    && self.deletion_vectors_property() == Some(false)
                {
                    return Err(check.bad(
                        "sink.merge_strategy",
                        "deletion_vectors",
                        "contradicts sink.properties delta.enableDeletionVectors = false; remove one of them",
                    ));
                }
                if self.merge_strategy == Some(MergeStrategyChoice::DeletionVectors)
                    && self.change_feed_property()
                {
                    return Err(check.bad(
                        "sink.merge_strategy",
                        "deletion_vectors",
                        "the merge-on-read MERGE does not write change data files yet, and sink.properties enables delta.enableChangeDataFeed; use merge_strategy = \"copy_on_write\" (or leave it unset)",
                    ));
                }
                if self.sequence_by.as_deref().is_none_or(str::is_empty) {
                    return Err(check.bad(
                        "sink.sequence_by",
                        "",
                        "mode = \"merge\" needs the column ordering row versions (for DynamoDB streams: _seq)",
                    ));
                }
            }
            SinkMode::Append => {
                for (key, set) in [
                    ("sink.keys", !self.keys.is_empty()),
                    ("sink.sequence_by", self.sequence_by.is_some()),
                    ("sink.delete_when", self.delete_when.is_some()),
                    ("sink.merge_strategy", self.merge_strategy.is_some()),
                ] {
                    if set {
                        return Err(check.bad(
                            key,
                            "(set)",
                            "applies to mode = \"merge\" only; set sink.mode = \"merge\" or remove it",
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

impl SinkSection {
    /// `delta.enableDeletionVectors` as `sink.properties` sets it, if it does.
    fn deletion_vectors_property(&self) -> Option<bool> {
        self.bool_property("delta.enableDeletionVectors")
    }

    fn bool_property(&self, key: &str) -> Option<bool> {
        self.properties
            .get(key)
            .map(|v| v.trim().eq_ignore_ascii_case("true"))
    }

    /// Whether a table inlet creates gets a change data feed.
    fn change_feed_property(&self) -> bool {
        self.bool_property("delta.enableChangeDataFeed") == Some(true)
    }

    /// The properties of a table inlet creates: `sink.properties`, and for a MERGE table
    /// whose strategy is not copy-on-write, deletion vectors enabled (as Databricks does for
    /// new tables).
    pub fn create_properties(&self) -> BTreeMap<String, String> {
        let mut properties = self.properties.clone();
        if self.mode == SinkMode::Merge
            && self.merge_strategy != Some(MergeStrategyChoice::CopyOnWrite)
            && self.deletion_vectors_property().is_none()
            && !self.change_feed_property()
        {
            properties.insert("delta.enableDeletionVectors".into(), "true".into());
        }
        properties
    }

    /// The strategy a MERGE into a table uses: `table` is `None` while the table does not
    /// exist (inlet creates it with [`Self::create_properties`]).
    pub fn merge_strategy_for(&self, table: Option<TableFacts>) -> StrategyDecision {
        use inlet_delta::MergeStrategy::{CopyOnWrite, DeletionVectors};
        let decision = |strategy, upgrade, why| StrategyDecision {
            strategy,
            upgrade,
            why,
        };
        let change_feed = table.map_or(self.change_feed_property(), |t| t.change_feed);
        if change_feed {
            return decision(
                CopyOnWrite,
                false,
                "the table has a change data feed (delta.enableChangeDataFeed), and the merge-on-read MERGE does not write change data files yet",
            );
        }
        if table.is_some_and(|t| t.column_mapping) {
            return decision(
                CopyOnWrite,
                false,
                "the table maps column names (delta.columnMapping.mode), which the merge-on-read key scan does not read",
            );
        }
        if table.is_some_and(|t| t.vectors_property && !t.deletion_vectors) {
            return decision(
                CopyOnWrite,
                false,
                "delta.enableDeletionVectors is true but the table's protocol lacks the deletionVectors feature; run `inlet table repair-protocol`",
            );
        }
        match (self.merge_strategy, table.map(|t| t.deletion_vectors)) {
            (Some(MergeStrategyChoice::CopyOnWrite), _) => {
                decision(CopyOnWrite, false, "sink.merge_strategy = \"copy_on_write\"")
            }
            (Some(MergeStrategyChoice::DeletionVectors), Some(false)) => decision(
                DeletionVectors,
                true,
                "sink.merge_strategy = \"deletion_vectors\"; the table does not have deletion vectors yet and is upgraded (reader 3 / writer 7) by the first MERGE",
            ),
            (Some(MergeStrategyChoice::DeletionVectors), _) => {
                decision(DeletionVectors, false, "sink.merge_strategy = \"deletion_vectors\"")
            }
            (None, None) if self.deletion_vectors_property() == Some(false) => decision(
                CopyOnWrite,
                false,
                "sink.properties sets delta.enableDeletionVectors = false for the table inlet creates",
            ),
            (None, None) => decision(
                DeletionVectors,
                false,
                "the default for a MERGE table inlet creates: it is created with deletion vectors",
            ),
            (None, Some(true)) => decision(
                DeletionVectors,
                false,
                "the default: the table has deletion vectors enabled",
            ),
            (None, Some(false)) => decision(
                CopyOnWrite,
                false,
                "the table has no deletion vectors; set sink.merge_strategy = \"deletion_vectors\" to upgrade it",
            ),
        }
    }
}

/// `[checkpoint]`: where inlet keeps its state.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointSection {
    /// A local directory (relative to the config file when not absolute), or an
    /// `s3://bucket/prefix` (docs/architecture.md, "A checkpoint in S3").
    pub location: String,
    /// `s3://` checkpoints: the local cache of the SQLite file. Losing it costs a restore,
    /// never correctness. Default: `$INLET_CACHE_DIR`, `$XDG_CACHE_HOME/inlet` or
    /// `~/.cache/inlet`, then `checkpoints/<bucket>/<prefix>`.
    pub cache_dir: Option<String>,
    /// `s3://` checkpoints: how long the runner lease lives unless renewed (every third of
    /// it). A standby takes over this long after the holder stops renewing. Default 30s.
    #[serde(
        default = "default_lease_ttl",
        deserialize_with = "super::location::de_duration"
    )]
    pub lease_ttl: Duration,
    /// `s3://` checkpoints: how often the SQLite file is uploaded as a snapshot (also at
    /// every clean stop and after a schema change). Default 5m.
    #[serde(
        default = "default_snapshot_interval",
        deserialize_with = "super::location::de_duration"
    )]
    pub snapshot_interval: Duration,
    /// `s3://` checkpoints: object_store and `aws_*` options. Default: the source's when
    /// it is in S3, else the table's.
    #[serde(default)]
    pub storage_options: BTreeMap<String, String>,
}

/// An `s3://` checkpoint, resolved.
#[derive(Debug, Clone)]
pub struct RemoteCheckpoint {
    pub url: url::Url,
    pub storage_options: BTreeMap<String, String>,
    pub lease_ttl: Duration,
    pub snapshot_interval: Duration,
}

const fn default_lease_ttl() -> Duration {
    Duration::from_secs(30)
}
const fn default_snapshot_interval() -> Duration {
    Duration::from_secs(300)
}

/// `[trigger]`: pacing of continuous runs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TriggerSection {
    /// Seconds between listings in continuous mode. Default 60.
    #[serde(default = "default_interval")]
    pub interval_seconds: u64,
}

impl Default for TriggerSection {
    fn default() -> Self {
        Self {
            interval_seconds: default_interval(),
        }
    }
}

const fn default_tombstone_hours() -> u64 {
    168
}
const fn default_target_file_size() -> u64 {
    128 << 20
}
const fn default_interval() -> u64 {
    60
}
