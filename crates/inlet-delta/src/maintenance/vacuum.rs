//! VACUUM: deleting the data files that MERGE and compaction removed from the table, once
//! they are older than the table's `delta.deletedFileRetentionDuration`.

use std::sync::Arc;
use std::time::Duration;

use deltalake::kernel::transaction::CommitProperties;
use deltalake::operations::vacuum::VacuumMode;
use deltalake::table::config::TablePropertiesExt as _;
use deltalake::DeltaTableError;

use super::{MaintenanceStep, StepHook, Steps};
use crate::sink::version_i64;
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
    pub async fn vacuum(
        &mut self,
        options: &VacuumOptions,
        hook: Option<StepHook>,
    ) -> Result<VacuumOutcome, SinkError> {
        let started = std::time::Instant::now();
        self.refresh().await?;
        let table = self.loaded()?.clone();
        if let Some(retain) = options.retain {
            let min = table
                .snapshot()
                .map_err(|e| self.open_err(e))?
                .table_config()
                .deleted_file_retention_duration();
            if retain < min {
                return Err(SinkError::VacuumRetention {
                    url: self.url().to_string(),
                    retain: humantime::format_duration(retain).to_string(),
                    table: humantime::format_duration(min).to_string(),
                });
            }
        }
        let mut builder = table
            .vacuum()
            .with_dry_run(options.dry_run)
            .with_mode(VacuumMode::Full)
            .with_commit_properties(
                CommitProperties::default()
                    .with_create_checkpoint(false)
                    .with_cleanup_expired_logs(Some(false)),
            );
        if let Some(retain) = options.retain {
            builder = builder.with_retention_period(
                chrono::Duration::from_std(retain).unwrap_or(chrono::Duration::MAX),
            );
        }
        if let Some(hook) = hook {
            builder = builder.with_custom_execute_handler(Arc::new(Steps {
                hook,
                start: None,
                committed: Some(MaintenanceStep::VacuumStarted),
                done: Some(MaintenanceStep::VacuumDone),
            }));
        }
        let (table, metrics) = builder.await.map_err(|e| self.vacuum_err(e))?;
        let before = self.version();
        let after = table.version().map(version_i64);
        self.replace_table(table);
        Ok(VacuumOutcome {
            files: metrics.files_deleted,
            dry_run: metrics.dry_run,
            version: after.filter(|a| Some(*a) != before),
            seconds: started.elapsed().as_secs_f64(),
        })
    }

    fn vacuum_err(&self, source: DeltaTableError) -> SinkError {
        SinkError::Vacuum {
            url: self.url().to_string(),
            source,
        }
    }
}
