//! `inlet checkpoint rebuild`: a new checkpoint from the Delta table's history, for when the
//! checkpoint was lost or damaged; prints what was restored and what could not be.

use anyhow::Result;

use super::out;
use inlet_engine::Config;

use crate::cli::ConfigArg;

pub async fn rebuild(args: &ConfigArg) -> Result<()> {
    let cfg = Config::load(&args.config)?;
    let done = inlet_engine::rebuild_checkpoint(cfg).await?;
    out!(
        "rebuilt checkpoint {} from Delta table {}: {} files in {} batches (the last, batch {}, is version {}).",
        done.checkpoint.display(),
        done.table,
        done.files,
        done.batches,
        done.last_batch,
        done.last_version
    )?;
    if let Some(kept) = &done.kept {
        out!(
            "The previous checkpoint database was kept as {}.",
            kept.display()
        )?;
    }
    if done.tombstones_lost {
        out!(
            "Note: MERGE tombstones (deleted keys remembered so that an older update arriving late cannot bring a row back) \
             are not in the table and were not rebuilt."
        )?;
    }
    Ok(())
}
