//! Recovery on start: a batch left `planned` by a crashed run is confirmed from the table's
//! txn version or replayed with the same files, and a checkpoint behind its table is refused.

use inlet_checkpoint::FileState;
use tracing::{info, warn};

use crate::batch::{PlannedFile, HISTORY_DEPTH};
use crate::error::{EngineError, Result};
use crate::pipeline::Pipeline;

/// Brings the checkpoint and the table into agreement before any new batch is planned.
///
/// For a planned batch N: if the table's txn version for this pipeline is ≥ N, the commit
/// happened before the crash, so N is recorded as committed; otherwise N is replayed with
/// exactly its planned files under the same id, so its rows land once. Then, if the table
/// holds a batch newer than any the checkpoint knows, refuse to go on: the checkpoint is
/// stale (restored from a backup, or another checkpoint shares this pipeline id) and
/// ingesting would duplicate rows.
pub async fn recover(p: &mut Pipeline) -> Result<()> {
    let pipeline_id = p.cfg.pipeline_id.clone();
    p.renew_credentials().await?;
    // An `s3://` checkpoint: what a former lease holder planned or committed meanwhile.
    p.fast_forward().await?;
    if let Some((batch, files)) = p.checkpoint.planned_batch()? {
        let txn = p.sink.txn_version(&pipeline_id).await?;
        if txn.is_some_and(|v| v >= batch.batch_id) {
            let version = p
                .sink
                .find_batch_commit(&pipeline_id, batch.batch_id, HISTORY_DEPTH)
                .await?;
            info!(batch = batch.batch_id, version = ?version, "batch was committed before the last run stopped; recording it");
            p.checkpoint
                .mark_committed(batch.batch_id, version, None, &[])?;
        } else {
            let pending: Vec<PlannedFile> = files
                .into_iter()
                .filter(|f| f.state == FileState::Pending)
                .map(|f| PlannedFile {
                    path: f.path,
                    etag: f.etag,
                    size: f.size,
                    modified_ms: f.last_modified_ms,
                })
                .collect();
            warn!(
                batch = batch.batch_id,
                files = pending.len(),
                "replaying a batch the last run planned but did not commit"
            );
            p.write_and_commit(batch.batch_id, pending).await?;
        }
        p.stats.recovered_batches += 1;
    }

    let txn = p.sink.txn_version(&pipeline_id).await?.unwrap_or(0);
    let known = p.checkpoint.last_committed_batch()?;
    if txn > known {
        return Err(EngineError::StaleCheckpoint {
            table: p.cfg.table_url.to_string(),
            pipeline: pipeline_id,
            txn_version: txn,
            checkpoint: p.cfg.checkpoint_dir.clone(),
            known,
        });
    }
    Ok(())
}
