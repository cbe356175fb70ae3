//! VACUUM: deleting the data files that MERGE and compaction removed from the table, once
//! they are older than the table's `delta.deletedFileRetentionDuration`.

use std::time::Duration;

use deltalake::kernel::transaction::CommitBuilder;
use deltalake::operations::vacuum::VacuumMode;
use deltalake::protocol::DeltaOperation;
use deltalake::table::config::TablePropertiesExt as _;
use deltalake::DeltaTableError;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;

use super::{MaintenanceStep, StepHook};
use crate::sink::{no_hooks, version_i64};
use crate::{DeltaSink, SinkError};

/// What to vacuum.
#[derive(Debug, Clone, Default)]
pub struct VacuumOptions {
    /// Delete only files removed longer ago than this; `None`: the table's
    /// `delta.deletedFileRetentionDuration` (7 days unless set). Shorter than the table's
    /// retention is refused.
    pub retain: Option<Duration>,
    /// List what would be deleted, delete nothing.
    pub dry_run: bool,
}

/// What a VACUUM did (or, dry, would do).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VacuumOutcome {
    /// The files deleted (dry run: that would be), relative to the table.
    pub files: Vec<String>,
    pub dry_run: bool,
    /// The table version after VACUUM's start and end commits, `None` when nothing was
    /// deleted (no commits then).
    pub version: Option<i64>,
    pub seconds: f64,
}

impl DeltaSink {
    /// Deletes data files the table no longer needs once past the retention (see
    /// [`VacuumOptions`]), as Spark's VACUUM does: it lists the table's directory and
    /// deletes files no version within the retention references — those a commit removed
    /// longer ago than the retention, and files no commit ever added (left by a crashed
    /// writer) last modified longer ago than it. A file a batch in flight has staged is
    /// younger than any retention the table allows (unless the table property is set below
    /// a batch's duration). Needs ListBucket and DeleteObject on the table's data files.
    ///
    /// Only the full listing finds every such file: Delta checkpoints drop a `remove`
    /// once it is older than the retention, so with frequent checkpoints the log alone
    /// (delta-rs's "lite" mode) names almost none of them.
    ///
    /// delta-rs plans it (a dry run of its full mode); inlet makes the VACUUM START and END
    /// commits itself, without delta-rs's post-commit log clean-up, and deletes between
    /// them (a file already gone counts as deleted).
    pub async fn vacuum(
        &mut self,
        options: &VacuumOptions,
        hook: Option<StepHook>,
    ) -> Result<VacuumOutcome, SinkError> {
        let started = std::time::Instant::now();
        self.refresh().await?;
        let table = self.loaded()?.clone();
        let min = table
            .snapshot()
            .map_err(|e| self.open_err(e))?
            .table_config()
            .deleted_file_retention_duration();
        if let Some(retain) = options.retain {
            if retain < min {
                return Err(SinkError::VacuumRetention {
                    url: self.url().to_string(),
                    retain: humantime::format_duration(retain).to_string(),
                    table: humantime::format_duration(min).to_string(),
                });
            }
        }
        let retain = options.retain.unwrap_or(min);
        let mut builder = table
            .vacuum()
            .with_dry_run(true)
            .with_mode(VacuumMode::Full);
        if options.retain.is_some() {
            builder = builder.with_retention_period(
                chrono::Duration::from_std(retain).unwrap_or(chrono::Duration::MAX),
            );
        }
        let (_, plan) = builder.await.map_err(|e| self.vacuum_err(e))?;
        let mut files = plan.files_deleted;
        let vectors = self.deletion_vectors_declared()?;
        if vectors && !files.is_empty() {
            let keep = self.removed_since(retain).await?;
            files.retain(|f| !keep.iter().any(|k| f == k || f.ends_with(&format!("/{k}"))));
        }
        if options.dry_run || files.is_empty() {
            return Ok(VacuumOutcome {
                files,
                dry_run: options.dry_run,
                version: None,
                seconds: started.elapsed().as_secs_f64(),
            });
        }
        let millis = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        self.vacuum_commit(
            DeltaOperation::VacuumStart {
                retention_check_enabled: true,
                specified_retention_millis: options.retain.map(millis),
                default_retention_millis: millis(min),
            },
            serde_json::json!({ "numFilesToDelete": files.len() }),
        )
        .await?;
        if let Some(hook) = &hook {
            hook(MaintenanceStep::VacuumStarted);
        }
        let store = self.loaded()?.object_store();
        let paths: Vec<Path> = files.iter().filter_map(|f| Path::parse(f).ok()).collect();
        let deleted: Vec<String> = store
            .delete_stream(futures::stream::iter(paths).map(Ok).boxed())
            .map(|r| match r {
                Ok(p) => Ok(p.to_string()),
                Err(object_store::Error::NotFound { path, .. }) => Ok(path),
                Err(e) => Err(e),
            })
            .try_collect()
            .await
            .map_err(|source| self.vacuum_err(DeltaTableError::ObjectStore { source }))?;
        let version = self
            .vacuum_commit(
                DeltaOperation::VacuumEnd {
                    status: "COMPLETED".to_string(),
                },
                serde_json::json!({ "numDeletedFiles": deleted.len() }),
            )
            .await?;
        if let Some(hook) = &hook {
            hook(MaintenanceStep::VacuumDone);
        }
        Ok(VacuumOutcome {
            files: deleted,
            dry_run: false,
            version: Some(version),
            seconds: started.elapsed().as_secs_f64(),
        })
    }

    /// The data files and deletion-vector files that `remove` actions younger than `retain`
    /// name, which VACUUM must keep. With deletion vectors one data file is removed (and
    /// re-added with a new vector) many times; delta-rs's VACUUM deletes a path once any of
    /// its removes has expired, even when a later remove of it has not (a file re-added by
    /// a MERGE, then purged a minute ago), and keeps only the live files' vectors (a
    /// vector replaced a minute ago is still read by the versions before). Reads the
    /// commits back from the newest until one is older than `retain`.
    async fn removed_since(&self, retain: Duration) -> Result<Vec<String>, SinkError> {
        let table = self.loaded()?;
        let log = table.log_store();
        let latest = table.version().unwrap_or_default();
        let cutoff = chrono::Utc::now().timestamp_millis()
            - i64::try_from(retain.as_millis()).unwrap_or(i64::MAX);
        let mut keep = Vec::new();
        let mut version = latest;
        loop {
            let Some(bytes) = log
                .read_commit_entry(version)
                .await
                .map_err(|e| self.vacuum_err(e))?
            else {
                break;
            };
            let mut older = false;
            for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                let Ok(action) = serde_json::from_slice::<serde_json::Value>(line) else {
                    continue;
                };
                if let Some(ts) = action["commitInfo"]["timestamp"].as_i64() {
                    older = ts < cutoff;
                }
                if let Some(path) = action["remove"]["path"].as_str() {
                    keep.push(percent_decode(path));
                }
                let dv = &action["remove"]["deletionVector"];
                if dv["storageType"] == "u" {
                    if let Some(path) = dv["pathOrInlineDv"]
                        .as_str()
                        .and_then(|p| crate::dv::format::relative_path(p).ok())
                    {
                        keep.push(path.to_string());
                    }
                }
            }
            if older || version == 0 {
                break;
            }
            version -= 1;
        }
        Ok(keep)
    }

    /// One of VACUUM's two commits, with its metrics, without post-commit hooks.
    async fn vacuum_commit(
        &mut self,
        operation: DeltaOperation,
        metrics: serde_json::Value,
    ) -> Result<i64, SinkError> {
        let table = self.loaded()?;
        let snapshot = table.snapshot().map_err(|e| self.open_err(e))?;
        let finalized = CommitBuilder::from(
            no_hooks().with_metadata([("operationMetrics".to_string(), metrics)]),
        )
        .build(Some(snapshot), table.log_store(), operation)
        .await
        .map_err(|e| self.vacuum_err(e))?;
        let version = version_i64(finalized.version());
        self.set_state(finalized.snapshot());
        Ok(version)
    }

    fn vacuum_err(&self, source: DeltaTableError) -> SinkError {
        SinkError::Vacuum {
            url: self.url().to_string(),
            source,
        }
    }
}

/// A log path as the object store names it (the log percent-encodes paths).
fn percent_decode(path: &str) -> String {
    Path::from_url_path(path).map_or_else(|_| path.to_string(), |p| p.to_string())
}
