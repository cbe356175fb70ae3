//! Small files: counting them per partition, and bin-packing them into target-size files
//! with delta-rs's OPTIMIZE, in a commit of its own (`dataChange = false`, no `txn`).

use std::collections::{BTreeMap, HashMap};
use std::num::NonZeroU64;
use std::sync::Arc;
use std::time::Instant;

use deltalake::kernel::transaction::CommitProperties;
use deltalake::operations::optimize::OptimizeType;
use deltalake::{DeltaTableError, FilterOp, FilterValue};

use super::{MaintenanceStep, StepHook, Steps};
use crate::sink::version_i64;
use crate::{DeltaSink, SinkError};

/// Key of the commitInfo field naming one compaction, by which a compaction whose
/// post-commit work failed is found to have committed.
const COMPACTION_KEY: &str = "inlet.compaction";

/// A partition's column = value pairs (`None`: null); empty for an unpartitioned table.
pub type PartitionValues = Vec<(String, Option<String>)>;

/// One partition's data files (the whole table when not partitioned).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartitionStats {
    /// Partition column and value (`None`: null); empty for an unpartitioned table.
    pub values: PartitionValues,
    pub files: u64,
    pub bytes: u64,
    /// Files smaller than the small-file size asked for.
    pub small_files: u64,
    pub small_bytes: u64,
}

/// The data files of a table's current version.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileStats {
    pub files: u64,
    pub bytes: u64,
    pub small_files: u64,
    pub small_bytes: u64,
    /// Every partition, largest count of small files first.
    pub partitions: Vec<PartitionStats>,
}

/// What to compact.
#[derive(Debug, Clone)]
pub struct CompactOptions {
    /// Files are bin-packed up to this size; files at or above it are left alone.
    pub target_size: u64,
    /// Only these partitions (each a list of column = value); `None`: every partition.
    pub partitions: Option<Vec<PartitionValues>>,
    /// Z-order by these columns instead of bin-packing (rewrites every file of a partition).
    pub zorder_by: Vec<String>,
    /// Bins rewritten at once (each holds up to `target_size` of data in flight).
    pub max_concurrent: usize,
    /// First rewrite the files whose deletion vectors hide at least this share of their
    /// rows (`None`: leave them).
    pub purge_deleted_fraction: Option<f64>,
}

/// What a compaction did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CompactOutcome {
    /// The compaction's commit, `None` when there was nothing to compact.
    pub version: Option<i64>,
    pub files_removed: u64,
    pub files_added: u64,
    pub bytes_removed: u64,
    pub bytes_added: u64,
    pub seconds: f64,
    /// The commit landed but delta-rs's post-commit work (its checkpoint or expired-log
    /// clean-up) failed with this error; the compaction stands.
    pub post_commit_error: Option<String>,
    /// Some partitions were compacted (their commits stand), then one failed with this.
    pub partial_error: Option<String>,
    /// Files rewritten to drop the rows their deletion vectors hid (counted in
    /// `files_removed` too), and those rows.
    pub files_purged: u64,
    pub deleted_rows_dropped: u64,
}

/// A purge reported as the compaction it is: the files it rewrote are removed and purged.
impl From<crate::dv::PurgeOutcome> for CompactOutcome {
    fn from(p: crate::dv::PurgeOutcome) -> Self {
        Self {
            version: p.version,
            files_removed: p.files_rewritten,
            files_added: p.files_added,
            files_purged: p.files_rewritten,
            deleted_rows_dropped: p.rows_dropped,
            ..Default::default()
        }
    }
}

impl DeltaSink {
    /// The loaded version's data files per partition; files under `small_below` bytes count
    /// as small.
    pub fn file_stats(&self, small_below: u64) -> Result<FileStats, SinkError> {
        let table = self.loaded()?;
        let snapshot = table.snapshot().map_err(|e| self.open_err(e))?;
        let partition_columns = snapshot.metadata().partition_columns().to_vec();
        let mut parts: BTreeMap<PartitionValues, PartitionStats> = BTreeMap::new();
        for file in snapshot.log_data().iter() {
            let values = if partition_columns.is_empty() {
                Vec::new()
            } else {
                let map: HashMap<String, Option<String>> = file.partition_values_map();
                partition_columns
                    .iter()
                    .map(|c| (c.clone(), map.get(c).cloned().flatten()))
                    .collect()
            };
            let size = u64::try_from(file.size()).unwrap_or_default();
            let p = parts
                .entry(values.clone())
                .or_insert_with(|| PartitionStats {
                    values,
                    ..Default::default()
                });
            p.files += 1;
            p.bytes += size;
            if size < small_below {
                p.small_files += 1;
                p.small_bytes += size;
            }
        }
        let mut partitions: Vec<PartitionStats> = parts.into_values().collect();
        partitions.sort_by_key(|p| std::cmp::Reverse(p.small_files));
        Ok(FileStats {
            files: partitions.iter().map(|p| p.files).sum(),
            bytes: partitions.iter().map(|p| p.bytes).sum(),
            small_files: partitions.iter().map(|p| p.small_files).sum(),
            small_bytes: partitions.iter().map(|p| p.small_bytes).sum(),
            partitions,
        })
    }

    /// Bin-packs the small files of the chosen partitions into files of about
    /// `target_size` (or Z-orders them), one commit per partition asked for (one in all
    /// without a choice). The commits hold `remove` and `add` actions with `dataChange =
    /// false` and no `txn`: readers of the change feed see no change, and no pipeline's
    /// exactly-once record moves. A conflict with a concurrent writer is retried by
    /// delta-rs and otherwise returned (transient): the caller gives way.
    pub async fn compact(
        &mut self,
        options: &CompactOptions,
        hook: Option<StepHook>,
    ) -> Result<CompactOutcome, SinkError> {
        let started = Instant::now();
        let mut total = CompactOutcome::default();
        if let Some(fraction) = options.purge_deleted_fraction {
            total = self
                .purge_deletion_vectors(fraction, options.target_size)
                .await?
                .into();
        }
        let groups: Vec<PartitionValues> = match &options.partitions {
            None => vec![Vec::new()],
            Some(list) => list.clone(),
        };
        for group in groups {
            let one = match self.compact_one(options, &group, hook.clone()).await {
                Ok(one) => one,
                // Earlier partitions' commits stand: report them with the failure.
                Err(e) if total.version.is_some() => {
                    total.partial_error = Some(e.to_string());
                    break;
                }
                Err(e) => return Err(e),
            };
            total.version = one.version.or(total.version);
            total.files_removed += one.files_removed;
            total.files_added += one.files_added;
            total.bytes_removed += one.bytes_removed;
            total.bytes_added += one.bytes_added;
            total.post_commit_error = one.post_commit_error.or(total.post_commit_error);
        }
        total.seconds = started.elapsed().as_secs_f64();
        Ok(total)
    }

    async fn compact_one(
        &mut self,
        options: &CompactOptions,
        partition: &[(String, Option<String>)],
        hook: Option<StepHook>,
    ) -> Result<CompactOutcome, SinkError> {
        self.refresh().await?;
        // One commit attempt (see `one_attempt.rs`); the handle keeps the table's state.
        let loaded = self.loaded()?.clone();
        let mut table = deltalake::DeltaTable::new(crate::one_attempt::OneAttempt::wrap(
            loaded.log_store(),
            loaded.version().map_or(0, |v| v + 1),
        ));
        table.state = loaded.state.clone();
        let id = format!(
            "{}-{}",
            std::process::id(),
            chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default()
        );
        // A null partition value cannot be named in delta-rs's partition filter: such a
        // partition is compacted by an unfiltered pass.
        let filters: Vec<_> = if partition.iter().any(|(_, v)| v.is_none()) {
            Vec::new()
        } else {
            partition
                .iter()
                .map(|(c, v)| {
                    (
                        c.as_str(),
                        FilterOp::Eq,
                        FilterValue::Scalar(v.as_deref().unwrap_or_default()),
                    )
                })
                .collect()
        };
        let target = NonZeroU64::new(options.target_size.max(1 << 20)).unwrap_or(NonZeroU64::MIN);
        // Never rebased past another writer's commit (delta-rs's OPTIMIZE sets its own
        // retries, so the log store refuses the second attempt): its conflict checker passes
        // a second compaction of files a winning compaction already removed, since it
        // ignores removes with `dataChange = false`, and both rewrites would then hold the
        // same rows. A lost race fails; the next round compacts again.
        let properties = CommitProperties::default()
            .with_metadata([(COMPACTION_KEY.to_string(), serde_json::json!(id))]);
        let mut builder = table
            .optimize()
            .with_filters(&filters)
            .with_target_size(target)
            .with_max_concurrent_tasks(options.max_concurrent.max(1))
            .with_commit_properties(properties);
        if !options.zorder_by.is_empty() {
            builder = builder.with_type(OptimizeType::ZOrder(options.zorder_by.clone()));
        }
        if let Some(hook) = hook {
            builder = builder.with_custom_execute_handler(Arc::new(Steps {
                hook,
                start: MaintenanceStep::CompactStart,
                committed: MaintenanceStep::CompactCommitted,
            }));
        }
        match builder.await {
            Ok((table, metrics)) => {
                let committed = metrics.num_files_removed > 0;
                let version = table.version().map(version_i64);
                // Its state, not its handle: the handle's log store allows no more commits.
                if let Some(state) = table.state {
                    self.set_state(state);
                }
                Ok(CompactOutcome {
                    version: if committed { version } else { None },
                    files_removed: metrics.num_files_removed,
                    files_added: metrics.num_files_added,
                    bytes_removed: u64::try_from(metrics.files_removed.total_size)
                        .unwrap_or_default(),
                    bytes_added: u64::try_from(metrics.files_added.total_size).unwrap_or_default(),
                    ..Default::default()
                })
            }
            // When the history cannot be read either, the compaction's own error stands.
            Err(error) => match self.find_compaction(&id).await.ok().flatten() {
                // The commit landed; its post-commit hook (checkpoint, log clean-up) failed.
                Some(version) => Ok(CompactOutcome {
                    version: Some(version),
                    post_commit_error: Some(error.to_string()),
                    ..Default::default()
                }),
                None => Err(self.compact_err(error)),
            },
        }
    }

    /// The version of the compaction commit tagged `id` among the newest commits.
    async fn find_compaction(&mut self, id: &str) -> Result<Option<i64>, SinkError> {
        Ok(self
            .recent_commits(Some(20))
            .await?
            .into_iter()
            .find(|(_, i)| i.info.get(COMPACTION_KEY).and_then(|v| v.as_str()) == Some(id))
            .map(|(version, _)| version))
    }

    fn compact_err(&self, source: DeltaTableError) -> SinkError {
        SinkError::Compact {
            url: self.url().to_string(),
            source,
        }
    }
}
