//! The Delta log kept short: a checkpoint every `delta.checkpointInterval` commits (inlet's
//! default 10) and expired-log clean-up after it, each a deliberate step a caller can refuse.

use chrono::Utc;
use deltalake::checkpoints::{cleanup_expired_logs_for, create_checkpoint};
use deltalake::table::config::TablePropertiesExt as _;
use deltalake::DeltaTableError;
use object_store::path::Path;
use object_store::ObjectStoreExt as _;

use crate::sink::version_i64;
use crate::{DeltaSink, SinkError};

/// Commits between checkpoints when the table does not set `delta.checkpointInterval`
/// (Databricks writes one every 10 commits; delta-rs's own default is 100).
pub const DEFAULT_CHECKPOINT_INTERVAL: u64 = 10;

/// What an expired-log clean-up did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CleanupOutcome {
    /// `delta.enableExpiredLogCleanup = false`: nothing is ever deleted from the log.
    Disabled,
    /// Log objects older than `delta.logRetentionDuration` and the newest checkpoint before
    /// it were deleted (possibly none).
    Removed(usize),
}

impl DeltaSink {
    /// The newest checkpoint's version from `_delta_log/_last_checkpoint`, `None` without one.
    pub async fn last_checkpoint(&mut self) -> Result<Option<i64>, SinkError> {
        if let Some(known) = self.last_checkpoint {
            return Ok(known);
        }
        let store = self.loaded()?.object_store();
        let found = match store.get(&Path::from("_delta_log/_last_checkpoint")).await {
            Ok(got) => {
                let bytes = got.bytes().await.map_err(|source| {
                    self.maintenance_err(
                        "read _last_checkpoint",
                        DeltaTableError::ObjectStore { source },
                    )
                })?;
                serde_json::from_slice::<serde_json::Value>(&bytes)
                    .ok()
                    .and_then(|v| v["version"].as_i64())
            }
            Err(object_store::Error::NotFound { .. }) => None,
            Err(source) => {
                return Err(self.maintenance_err(
                    "read _last_checkpoint",
                    DeltaTableError::ObjectStore { source },
                ));
            }
        };
        self.last_checkpoint = Some(found);
        Ok(found)
    }

    /// Writes a checkpoint of the loaded version when at least the table's
    /// `delta.checkpointInterval` (else `default_interval`) commits followed the last one.
    /// Returns the checkpoint's version when one was written. Needs PutObject only.
    pub async fn checkpoint_if_due(
        &mut self,
        default_interval: u64,
    ) -> Result<Option<i64>, SinkError> {
        let table = self.loaded()?;
        let snapshot = table.snapshot().map_err(|e| self.open_err(e))?;
        let version = version_i64(snapshot.version());
        let interval = snapshot
            .table_config()
            .checkpoint_interval
            .map(|n| n.get())
            .unwrap_or(default_interval)
            .max(1);
        let last = self.last_checkpoint().await?.unwrap_or(0);
        if version < last + i64::try_from(interval).unwrap_or(i64::MAX) {
            return Ok(None);
        }
        self.checkpoint_now().await.map(Some)
    }

    /// Writes a checkpoint of the loaded version; returns its version.
    pub async fn checkpoint_now(&mut self) -> Result<i64, SinkError> {
        let table = self.loaded()?;
        let version = table.version().map(version_i64).unwrap_or_default();
        create_checkpoint(table, None)
            .await
            .map_err(|e| self.maintenance_err("write a Delta checkpoint", e))?;
        self.last_checkpoint = Some(Some(version));
        Ok(version)
    }

    /// Deletes `_delta_log` objects older than `delta.logRetentionDuration` (default 30
    /// days) that the newest checkpoint before that point makes unnecessary, unless
    /// `delta.enableExpiredLogCleanup = false`. Needs DeleteObject on `_delta_log/`.
    pub async fn clean_expired_log(&mut self) -> Result<CleanupOutcome, SinkError> {
        let table = self.loaded()?;
        let snapshot = table.snapshot().map_err(|e| self.open_err(e))?;
        let config = snapshot.table_config();
        if !config.enable_expired_log_cleanup() {
            return Ok(CleanupOutcome::Disabled);
        }
        let retention =
            i64::try_from(config.log_retention_duration().as_millis()).unwrap_or(i64::MAX);
        let cutoff = Utc::now().timestamp_millis().saturating_sub(retention);
        let removed =
            cleanup_expired_logs_for(snapshot.version(), table.log_store().as_ref(), cutoff, None)
                .await
                .map_err(|e| self.maintenance_err("delete expired Delta log objects", e))?;
        Ok(CleanupOutcome::Removed(removed))
    }

    pub(crate) fn maintenance_err(&self, what: &'static str, source: DeltaTableError) -> SinkError {
        SinkError::Maintenance {
            url: self.url().to_string(),
            what,
            source: Box::new(source),
        }
    }
}
