//! Commands on the Delta table itself: `repair_protocol`, `optimize`, `vacuum`,
//! `set_properties` (each under the pipeline's runner lock) and `describe` (lock-free).

use std::collections::BTreeMap;
use std::time::Duration;

use inlet_checkpoint::{CheckpointSummary, RunnerLock};
use inlet_delta::maintenance::{
    CompactOptions, CompactOutcome, TableDescription, VacuumOptions, VacuumOutcome,
};
use inlet_delta::{DeltaSink, RepairOutcome};

use crate::config::Config;
use crate::error::{EngineError, Result};
use crate::faults::{FaultPoint, Faults};

/// Resolves a `uc://` table and takes the checkpoint's runner lock, so no run of this
/// pipeline commits meanwhile; other writers are kept out by Delta's conditional commit.
/// Refuses when a run holds the lock.
async fn locked(cfg: &mut Config) -> Result<RunnerLock> {
    crate::catalog::Catalog::resolve(cfg).await?;
    std::fs::create_dir_all(&cfg.checkpoint_dir).map_err(|source| EngineError::Io {
        what: "create checkpoint directory",
        path: cfg.checkpoint_dir.clone(),
        source,
    })?;
    Ok(RunnerLock::acquire(
        &cfg.checkpoint_dir,
        crate::lock_holder(),
    )?)
}

/// The table of `cfg`, which must exist.
async fn existing_table(cfg: &Config) -> Result<DeltaSink> {
    let sink = DeltaSink::open(&cfg.table_url, &cfg.sink_options()).await?;
    if sink.version().is_none() {
        return Err(inlet_delta::SinkError::NotCreated {
            url: cfg.table_url.to_string(),
        }
        .into());
    }
    Ok(sink)
}

/// Repairs the protocol of `cfg`'s table (see [`inlet_delta::repair_protocol`]).
pub async fn repair_protocol(mut cfg: Config) -> Result<(Config, RepairOutcome)> {
    let _lock = locked(&mut cfg).await?;
    let outcome = inlet_delta::repair_protocol(&cfg.table_url, &cfg.sink_options()).await?;
    Ok((cfg, outcome))
}

/// What `inlet table optimize` does.
#[derive(Debug, Clone, Default)]
pub struct OptimizeRequest {
    /// Z-order by these columns instead of bin-packing.
    pub zorder_by: Vec<String>,
    /// Only this partition (`column = value` pairs).
    pub partition: Option<Vec<(String, String)>>,
    /// Test-only: a maintenance step where the process kills itself.
    pub fault_point: Option<FaultPoint>,
}

/// Compacts (or Z-orders) `cfg`'s table into `sink.target_file_size` files, under the
/// runner lock; then writes a Delta checkpoint when one is due.
pub async fn optimize(mut cfg: Config, request: OptimizeRequest) -> Result<CompactOutcome> {
    let _lock = locked(&mut cfg).await?;
    let mut sink = existing_table(&cfg).await?;
    let partitions = sink.partition_columns();
    if let Some(pairs) = &request.partition {
        if let Some((column, _)) = pairs.iter().find(|(c, _)| !partitions.contains(c)) {
            return Err(EngineError::Usage(format!(
                "--partition names '{column}', which is not a partition column of the table (its partition columns: {})",
                if partitions.is_empty() { "none".to_string() } else { partitions.join(", ") }
            )));
        }
    }
    let options = CompactOptions {
        target_size: cfg.sink.target_file_size,
        partitions: request
            .partition
            .map(|p| vec![p.into_iter().map(|(c, v)| (c, Some(v))).collect()]),
        zorder_by: request.zorder_by,
        max_concurrent: std::thread::available_parallelism().map_or(1, |n| n.get()),
        purge_deleted_fraction: Some(cfg.maintenance.purge_deleted_fraction),
    };
    let outcome = sink
        .compact(
            &options,
            Faults::new(request.fault_point, false).maintenance_hook(),
        )
        .await?;
    if outcome.version.is_some() {
        // Best effort: the compaction stands either way.
        if let Ok(Some(_)) = sink
            .checkpoint_if_due(cfg.maintenance.checkpoint_interval)
            .await
        {
            let _ = sink.clean_expired_log().await;
        }
    }
    Ok(outcome)
}

/// Vacuums `cfg`'s table (see [`DeltaSink::vacuum`]); a dry run takes no lock.
pub async fn vacuum(
    mut cfg: Config,
    retain: Option<Duration>,
    dry_run: bool,
    fault_point: Option<FaultPoint>,
) -> Result<VacuumOutcome> {
    let _lock = if dry_run {
        crate::catalog::Catalog::resolve(&mut cfg).await?;
        None
    } else {
        Some(locked(&mut cfg).await?)
    };
    let mut sink = existing_table(&cfg).await?;
    let outcome = sink
        .vacuum(
            &VacuumOptions { retain, dry_run },
            Faults::new(fault_point, false).maintenance_hook(),
        )
        .await?;
    Ok(outcome)
}

/// Sets `properties` on `cfg`'s table (checked like `[sink] properties`), under the runner
/// lock. `None` when every property already had its value.
pub async fn set_properties(
    mut cfg: Config,
    properties: BTreeMap<String, String>,
) -> Result<Option<i64>> {
    inlet_delta::properties::check_properties(&properties).map_err(EngineError::Usage)?;
    if cfg.sink.mode == crate::config::SinkMode::Merge {
        inlet_delta::properties::check_for_merge(&properties).map_err(|reason| {
            EngineError::Usage(format!("delta.appendOnly = true is refused: {reason}"))
        })?;
    }
    let _lock = locked(&mut cfg).await?;
    let mut sink = existing_table(&cfg).await?;
    Ok(sink.set_properties(&properties).await?)
}

/// The table's state and the checkpoint's size, without the lock (a run may go on).
pub async fn describe(mut cfg: Config) -> Result<(TableDescription, Option<CheckpointSummary>)> {
    crate::catalog::Catalog::resolve(&mut cfg).await?;
    let mut sink = existing_table(&cfg).await?;
    let small = cfg.maintenance.small_below(cfg.sink.target_file_size);
    let table = sink.describe(small).await?;
    let checkpoint = match crate::remote::read_checkpoint(&cfg).await? {
        Some(cp) => Some(cp.summary()?),
        None => None,
    };
    Ok((table, checkpoint))
}
