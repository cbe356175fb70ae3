//! `[maintenance]`: how a run keeps its table healthy — auto-compaction of small files,
//! periodic VACUUM, and the Delta checkpoint interval — with defaults that suit most tables.

use std::time::Duration;

use serde::{Deserialize, Deserializer};

use super::{Checker, ConfigError};

/// `[maintenance]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceSection {
    /// Compact small files after commits, in every run mode. Default true.
    #[serde(default = "yes")]
    pub auto_compact: bool,
    /// Small files in one partition (or the unpartitioned table) that make a compaction.
    /// Default 50.
    #[serde(default = "default_min_files")]
    pub compact_min_files: u64,
    /// A file is small below this fraction of `sink.target_file_size`. Default 0.5.
    #[serde(default = "default_fraction")]
    pub small_file_fraction: f64,
    /// Continuous runs: VACUUM this often (`"off"`: never). Default `"24h"`.
    #[serde(default = "default_vacuum", deserialize_with = "de_interval")]
    pub vacuum_interval: Option<Duration>,
    /// Commits between Delta checkpoints when the table does not set
    /// `delta.checkpointInterval`. Default 10.
    #[serde(default = "default_checkpoint_interval")]
    pub checkpoint_interval: u64,
    /// A data file whose deletion vector hides at least this share of its rows is rewritten
    /// without them by compaction. Default 0.2.
    #[serde(default = "default_purge_fraction")]
    pub purge_deleted_fraction: f64,
}

impl Default for MaintenanceSection {
    fn default() -> Self {
        Self {
            auto_compact: true,
            compact_min_files: default_min_files(),
            small_file_fraction: default_fraction(),
            vacuum_interval: default_vacuum(),
            checkpoint_interval: default_checkpoint_interval(),
            purge_deleted_fraction: default_purge_fraction(),
        }
    }
}

impl MaintenanceSection {
    pub(super) fn check(&self, check: &Checker<'_>) -> Result<(), ConfigError> {
        if self.compact_min_files < 2 {
            return Err(check.bad(
                "maintenance.compact_min_files",
                &self.compact_min_files.to_string(),
                "must be at least 2 (one file has nothing to be packed with)",
            ));
        }
        if !(self.small_file_fraction > 0.0 && self.small_file_fraction <= 1.0) {
            return Err(check.bad(
                "maintenance.small_file_fraction",
                &self.small_file_fraction.to_string(),
                "must be above 0 and at most 1 (of sink.target_file_size)",
            ));
        }
        if !(self.purge_deleted_fraction > 0.0 && self.purge_deleted_fraction <= 1.0) {
            return Err(check.bad(
                "maintenance.purge_deleted_fraction",
                &self.purge_deleted_fraction.to_string(),
                "must be above 0 and at most 1 (of a file's rows)",
            ));
        }
        if self.checkpoint_interval == 0 {
            return Err(check.bad("maintenance.checkpoint_interval", "0", "must be at least 1"));
        }
        if self
            .vacuum_interval
            .is_some_and(|d| d < Duration::from_secs(60))
        {
            return Err(check.bad(
                "maintenance.vacuum_interval",
                "(under a minute)",
                "must be at least \"1m\" (or \"off\")",
            ));
        }
        Ok(())
    }

    /// Files below this size count as small, for a `target_file_size`.
    pub fn small_below(&self, target_file_size: u64) -> u64 {
        (target_file_size as f64 * self.small_file_fraction) as u64
    }
}

fn de_interval<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let text = String::deserialize(d)?;
    if text.trim().eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    humantime::parse_duration(&text).map(Some).map_err(|e| {
        serde::de::Error::custom(format!(
            "'{text}' is not a duration ({e}); write e.g. \"24h\", \"7d\", or \"off\""
        ))
    })
}

const fn yes() -> bool {
    true
}
const fn default_min_files() -> u64 {
    50
}
const fn default_fraction() -> f64 {
    0.5
}
#[allow(clippy::unnecessary_wraps)]
const fn default_vacuum() -> Option<Duration> {
    Some(Duration::from_secs(24 * 3600))
}
const fn default_checkpoint_interval() -> u64 {
    10
}

const fn default_purge_fraction() -> f64 {
    0.2
}
