//! Commands on the Delta table itself: `repair_protocol` adds the table features a table's
//! schema needs and its protocol lacks, under the pipeline's runner lock.

use inlet_delta::RepairOutcome;

use crate::config::Config;
use crate::error::{EngineError, Result};

/// Repairs the protocol of `cfg`'s table (see [`inlet_delta::repair_protocol`]). It takes
/// the checkpoint's runner lock, so no run of this pipeline commits meanwhile; other writers
/// are kept out by the conditional commit. Refuses when a run holds the lock.
pub async fn repair_protocol(mut cfg: Config) -> Result<(Config, RepairOutcome)> {
    crate::catalog::Catalog::resolve(&mut cfg).await?;
    std::fs::create_dir_all(&cfg.checkpoint_dir).map_err(|source| EngineError::Io {
        what: "create checkpoint directory",
        path: cfg.checkpoint_dir.clone(),
        source,
    })?;
    let _lock = inlet_checkpoint::RunnerLock::acquire(&cfg.checkpoint_dir, crate::lock_holder())?;
    let outcome = inlet_delta::repair_protocol(&cfg.table_url, &cfg.sink_options()).await?;
    Ok((cfg, outcome))
}
