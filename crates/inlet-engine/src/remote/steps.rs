//! The steps of a run on an `s3://` checkpoint, as `Pipeline` methods: the lease checked,
//! plan, tombstone and outcome objects written, snapshots uploaded, the lease let go.

use std::time::Instant;

use inlet_checkpoint::{NewFile, DB_FILE};
use inlet_delta::BatchFile;
use inlet_remote::ObjectKind;
use tokio::sync::watch;
use tracing::{info, warn};

use super::{fast_forward, DoneBody, PlanBody, PlanFile, Restored, TombstonesBody};
use crate::error::Result;
use crate::pipeline::Pipeline;

impl Pipeline {
    /// `s3://` checkpoints: may this run still act? Checked before a batch is planned and
    /// before it commits.
    pub(crate) fn check_lease(&self) -> Result<()> {
        match &self.remote {
            Some(r) => Ok(r.lease.check()?),
            None => Ok(()),
        }
    }

    /// `s3://` checkpoints: writes batch `batch_id`'s plan object, created only if absent,
    /// before the local plan and before any data: a runner that takes over finds it.
    pub(crate) async fn put_plan(&mut self, batch_id: i64, files: &[NewFile]) -> Result<()> {
        let Some(r) = &self.remote else { return Ok(()) };
        r.lease.check()?;
        let body = PlanBody {
            batch_id,
            planned_at_ms: chrono::Utc::now().timestamp_millis(),
            holder: format!("{:?}", r.lease.body().map(|b| b.holder)),
            files: files
                .iter()
                .map(|f| PlanFile {
                    path: f.path.clone(),
                    etag: f.etag.clone(),
                    size: f.size,
                    modified_ms: f.last_modified_ms,
                    discovered_ms: f.discovered_at_ms,
                })
                .collect(),
        };
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        Ok(r.remote
            .put_batch_object(batch_id, ObjectKind::Plan, bytes)
            .await?)
    }

    /// `s3://` checkpoints: a MERGE batch's deletes, before its commit (a replay writes the
    /// same ones).
    pub(crate) async fn put_tombstones_remote(
        &mut self,
        batch_id: i64,
        deletes: &[(String, String)],
    ) -> Result<()> {
        let Some(r) = &self.remote else { return Ok(()) };
        if deletes.is_empty() {
            return Ok(());
        }
        let body = TombstonesBody {
            batch_id,
            deletes: deletes.to_vec(),
        };
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        Ok(r.remote
            .put_batch_object(batch_id, ObjectKind::Tombstones, bytes)
            .await?)
    }

    /// `s3://` checkpoints: the outcome of a batch that made no commit, before the local
    /// record, since the table holds nothing of it.
    pub(crate) async fn put_done(&mut self, batch_id: i64, files: Vec<BatchFile>) -> Result<()> {
        let Some(r) = &self.remote else { return Ok(()) };
        let bytes = serde_json::to_vec(&DoneBody { batch_id, files }).unwrap_or_default();
        Ok(r.remote
            .put_batch_object(batch_id, ObjectKind::Done, bytes)
            .await?)
    }

    /// `s3://` checkpoints: the next snapshot is due whatever the interval (the schema
    /// store changed, and only snapshots carry it).
    pub(crate) fn snapshot_soon(&mut self) {
        if let Some(r) = self.remote.as_mut() {
            r.snapshot_due = true;
        }
    }

    /// `s3://` checkpoints: after a batch is recorded, or with `force` at the end of a run:
    /// uploads a snapshot when one is due, then forgets the batch objects it covers. A
    /// failed upload is logged and tried again later (the objects stay); a pointer moved
    /// by another runner is a lost lease.
    pub(crate) async fn snapshot_if_due(&mut self, recorded: bool, force: bool) -> Result<()> {
        let Some(r) = self.remote.as_mut() else {
            return Ok(());
        };
        if recorded {
            r.since_snapshot += 1;
        }
        let interval_passed = r.snapshot_at.elapsed() >= r.snapshot_every;
        let due = r.snapshot_due || (r.since_snapshot > 0 && (force || interval_passed));
        if !due || self.checkpoint.planned_batch()?.is_some() {
            return Ok(());
        }
        r.lease.check()?;
        let started = Instant::now();
        let batch = self.checkpoint.last_committed_batch()?;
        let version = self.checkpoint.last_delta_version()?;
        let copy = self.cfg.checkpoint_dir.join(format!("{DB_FILE}.snapshot"));
        let _ = std::fs::remove_file(&copy);
        self.checkpoint.copy_to(&copy)?;
        let put = r.remote.put_snapshot(&copy, batch, version).await;
        let _ = std::fs::remove_file(&copy);
        match put {
            Ok(info) => {
                r.snapshot_at = Instant::now();
                r.snapshot_due = false;
                r.since_snapshot = 0;
                info!(
                    batch,
                    bytes = info.bytes,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "uploaded the checkpoint's snapshot"
                );
                if let Err(e) = r.remote.forget_batches_through(batch).await {
                    warn!(error = %e, "cannot delete batch objects the snapshot covers; they are listed past");
                }
                Ok(())
            }
            Err(e @ inlet_remote::RemoteError::Lost { .. }) => Err(e.into()),
            Err(e) => {
                warn!(error = %e, "cannot upload the checkpoint's snapshot; the batch objects keep the state meanwhile");
                r.snapshot_at = Instant::now();
                Ok(())
            }
        }
    }

    /// `s3://` checkpoints: the local cache brought up to the table and the batch objects
    /// (recovery calls it first: a former holder may have planned or committed meanwhile).
    pub(crate) async fn fast_forward(&mut self) -> Result<()> {
        let Some(r) = &self.remote else { return Ok(()) };
        let remote = r.remote.clone();
        let mut restored = Restored::default();
        fast_forward(
            &self.cfg,
            &mut self.checkpoint,
            &remote,
            &mut self.sink,
            &mut restored,
        )
        .await?;
        if restored.batches > 0 || restored.planned.is_some() {
            info!(batches = restored.batches, planned = ?restored.planned, "the checkpoint caught up with batches another runner made");
        }
        Ok(())
    }

    /// Turns true when an `s3://` checkpoint's lease is lost.
    pub(crate) fn lease_lost(&self) -> Option<watch::Receiver<bool>> {
        self.remote.as_ref().map(|r| r.lease.lost_signal())
    }

    /// Ends the run's hold on an `s3://` checkpoint: a last snapshot when batches were
    /// recorded since the last one, then the lease released so a standby starts at once.
    pub(crate) async fn let_go(&mut self) {
        if self.remote.is_none() {
            return;
        }
        if let Err(e) = self.snapshot_if_due(false, true).await {
            warn!(error = %e, "no final snapshot of the checkpoint");
        }
        if let Some(r) = self.remote.take() {
            r.lease.release().await;
        }
    }
}
