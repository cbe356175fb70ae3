//! An `s3://` checkpoint's side of a run: the lease taken at open, the local cache restored
//! (snapshot, then fast-forward from the table and the batch objects), objects and snapshots
//! written as batches go (`steps.rs`). docs/architecture.md, "A checkpoint in S3", says why
//! it is safe.

mod steps;

use std::path::Path;
use std::time::{Duration, Instant};

use inlet_checkpoint::{BatchState, Checkpoint, NewFile, RunnerLock, DB_FILE};
use inlet_delta::{BatchFile, DeltaSink};
use inlet_remote::{Holder, Lease, ObjectKind, Remote};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::config::{Config, RemoteCheckpoint};
use crate::error::Result;

/// What a run holds of an `s3://` checkpoint.
pub(crate) struct RemoteState {
    pub(crate) remote: Remote,
    pub(crate) lease: Lease,
    pub(crate) snapshot_every: Duration,
    /// When the last snapshot was uploaded (or the run started from one).
    pub(crate) snapshot_at: Instant,
    /// A snapshot is due whatever the interval: none exists yet, or the schema changed.
    pub(crate) snapshot_due: bool,
    /// Batches recorded since the last snapshot.
    pub(crate) since_snapshot: u64,
}

/// A batch's plan object.
#[derive(Serialize, Deserialize)]
pub(crate) struct PlanBody {
    pub(crate) batch_id: i64,
    pub(crate) planned_at_ms: i64,
    pub(crate) holder: String,
    pub(crate) files: Vec<PlanFile>,
}

#[derive(Serialize, Deserialize)]
pub(crate) struct PlanFile {
    pub(crate) path: String,
    pub(crate) etag: String,
    pub(crate) size: u64,
    pub(crate) modified_ms: i64,
    pub(crate) discovered_ms: i64,
}

/// A MERGE batch's tombstones object: (key, sequence) per delete.
#[derive(Serialize, Deserialize)]
pub(crate) struct TombstonesBody {
    pub(crate) batch_id: i64,
    pub(crate) deletes: Vec<(String, String)>,
}

/// The outcome object of a batch that made no commit.
#[derive(Serialize, Deserialize)]
pub(crate) struct DoneBody {
    pub(crate) batch_id: i64,
    pub(crate) files: Vec<BatchFile>,
}

/// What a restore did, for the log and `inlet files`.
#[derive(Debug, Default, Clone, Copy)]
pub struct Restored {
    /// The snapshot's last batch, when one was downloaded.
    pub snapshot_batch: Option<i64>,
    /// Batches recorded from the table's commits and the outcome objects.
    pub batches: usize,
    /// Batches whose tombstones were restored.
    pub tombstone_batches: usize,
    /// A planned batch restored from its plan object (recovery finishes it).
    pub planned: Option<i64>,
}

fn holder() -> Holder {
    let me = crate::lock_holder();
    Holder {
        host: me.host,
        pid: me.pid,
        since: me.since,
    }
}

fn remote_of(rc: &RemoteCheckpoint) -> Result<Remote> {
    let options = rc.storage_options.clone().into_iter().collect();
    Ok(Remote::open(&rc.url, &options)?)
}

/// Takes the lease (waiting while `standby` says so; `Ok(None)` when it turned true first),
/// then restores the local cache. Called by `Pipeline::open` for an `s3://` checkpoint.
pub(crate) async fn open(
    cfg: &Config,
    rc: RemoteCheckpoint,
    sink: &mut DeltaSink,
    standby: Option<watch::Receiver<bool>>,
) -> Result<Option<(Checkpoint, RemoteState)>> {
    let remote = remote_of(&rc)?;
    let Some(lease) = remote.acquire(holder(), rc.lease_ttl, standby).await? else {
        return Ok(None);
    };
    let started = Instant::now();
    let (cp, restored, has_snapshot) = restore(cfg, &remote, sink, &cfg.checkpoint_dir).await?;
    // The pointer is rewritten at once, so a former holder still uploading cannot make its
    // snapshot current (its If-Match now fails) and this holder's next upload succeeds.
    if has_snapshot {
        let token = lease.body().map(|b| b.token).unwrap_or_default();
        remote.claim_snapshot(&token).await?;
    }
    info!(
        location = remote.url(),
        cache = %cfg.checkpoint_dir.display(),
        snapshot_batch = ?restored.snapshot_batch,
        batches = restored.batches,
        tombstone_batches = restored.tombstone_batches,
        planned = ?restored.planned,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "checkpoint restored"
    );
    Ok(Some((
        cp,
        RemoteState {
            remote,
            lease,
            snapshot_every: rc.snapshot_interval,
            // The snapshot just restored counts as taken now: the interval runs from here.
            snapshot_at: Instant::now(),
            snapshot_due: !has_snapshot,
            since_snapshot: 0,
        },
    )))
}

/// A checkpoint opened to read, without the lock or the lease (`inlet files`, `inlet
/// schema`, `validate`, `table describe`): a local one as it is, an `s3://` one as a copy
/// restored into a temporary directory (snapshot and fast-forward; nothing written remotely).
pub struct CheckpointRead {
    checkpoint: Checkpoint,
    _copy: Option<tempfile::TempDir>,
}

impl std::ops::Deref for CheckpointRead {
    type Target = Checkpoint;
    fn deref(&self) -> &Checkpoint {
        &self.checkpoint
    }
}

/// Opens `cfg`'s checkpoint to read; `None` when a local one does not exist yet.
pub async fn read_checkpoint(cfg: &Config) -> Result<Option<CheckpointRead>> {
    let Some(rc) = &cfg.remote else {
        return Ok(
            Checkpoint::open_read_only(&cfg.checkpoint_dir)?.map(|checkpoint| CheckpointRead {
                checkpoint,
                _copy: None,
            }),
        );
    };
    let remote = remote_of(rc)?;
    let mut sink = DeltaSink::open(&cfg.table_url, &cfg.sink_options()).await?;
    let dir = tempfile::tempdir().map_err(|source| crate::error::EngineError::Io {
        what: "create a temporary directory for a copy of",
        path: cfg.checkpoint_dir.clone(),
        source,
    })?;
    let (checkpoint, _, _) = restore(cfg, &remote, &mut sink, dir.path()).await?;
    Ok(Some(CheckpointRead {
        checkpoint,
        _copy: Some(dir),
    }))
}

/// Makes `dir`'s database current: the snapshot replaces a cache that is missing or older
/// than it; then [`fast_forward`]. Returns whether a snapshot exists remotely.
async fn restore(
    cfg: &Config,
    remote: &Remote,
    sink: &mut DeltaSink,
    dir: &Path,
) -> Result<(Checkpoint, Restored, bool)> {
    std::fs::create_dir_all(dir).map_err(|source| crate::error::EngineError::Io {
        what: "create the checkpoint cache",
        path: dir.to_path_buf(),
        source,
    })?;
    // The cache is locked before it is replaced: another process on this machine (a
    // frozen former holder, `inlet table`) may have it open.
    let lock = RunnerLock::acquire(dir, crate::lock_holder())?;
    let snapshot = remote.latest_snapshot().await?;
    let mut restored = Restored::default();
    let cached = match Checkpoint::open_read_only(dir) {
        Ok(Some(cp)) => Some(cp.last_committed_batch()?),
        Ok(None) => None,
        Err(e) => {
            warn!(error = %e, cache = %dir.display(), "the checkpoint cache is unreadable; restoring it from the snapshot");
            None
        }
    };
    if let Some(info) = &snapshot {
        if cached.is_none_or(|last| last < info.batch_id) {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(dir.join(format!("{DB_FILE}{suffix}")));
            }
            let bytes = remote.get_snapshot(info, &dir.join(DB_FILE)).await?;
            info!(
                batch = info.batch_id,
                bytes, "downloaded the checkpoint's snapshot"
            );
            restored.snapshot_batch = Some(info.batch_id);
        }
    }
    let mut cp = Checkpoint::open_locked(dir, &cfg.pipeline_id, lock)?;
    fast_forward(cfg, &mut cp, remote, sink, &mut restored).await?;
    Ok((cp, restored, snapshot.is_some()))
}

/// Brings the local database up to what the table and the batch objects say happened
/// after it: each commit of the pipeline after the newest version it knows (with the files
/// `inlet.files` lists), then, for batches after its last committed one, tombstones,
/// outcomes of batches that made no commit, and the plan of a batch not yet finished.
pub(crate) async fn fast_forward(
    cfg: &Config,
    cp: &mut Checkpoint,
    remote: &Remote,
    sink: &mut DeltaSink,
    restored: &mut Restored,
) -> Result<()> {
    let known = cp.last_committed_batch()?;
    let since = cp.last_delta_version()?;
    let mut unlisted = Vec::new();
    for commit in sink.pipeline_commits_after(&cfg.pipeline_id, since).await? {
        if cp.batch_state(commit.batch_id)? == Some(BatchState::Committed) {
            continue;
        }
        // A commit without its file list (an older inlet wrote it) cannot say which
        // files it took: left out, and named by the gap check below.
        let Some(listed) = commit.files else {
            unlisted.push(commit.batch_id);
            continue;
        };
        crate::rebuild::record_listed(
            cp,
            commit.batch_id,
            Some(commit.version),
            commit.timestamp_ms,
            &listed,
        )?;
        restored.batches += 1;
    }
    let retain_ms = i64::try_from(cfg.sink.tombstone_retention_hours.saturating_mul(3_600_000))
        .unwrap_or(i64::MAX);
    for object in remote.batch_objects_after(known).await? {
        let id = object.batch_id;
        let key = format!("{}/batches/{id:020}", remote.url());
        match object.kind {
            ObjectKind::Tombstones => {
                let Some(bytes) = remote.get_batch_object(id, ObjectKind::Tombstones).await? else {
                    continue;
                };
                let body: TombstonesBody = serde_json::from_slice(&bytes).map_err(corrupt(&key))?;
                cp.put_tombstones(id, &body.deletes, retain_ms)?;
                restored.tombstone_batches += 1;
            }
            ObjectKind::Done => {
                if cp.batch_state(id)? == Some(BatchState::Committed) {
                    continue;
                }
                let Some(bytes) = remote.get_batch_object(id, ObjectKind::Done).await? else {
                    continue;
                };
                let body: DoneBody = serde_json::from_slice(&bytes).map_err(corrupt(&key))?;
                crate::rebuild::record_listed(cp, id, None, None, &body.files)?;
                restored.batches += 1;
            }
            ObjectKind::Plan => {
                if cp.batch_state(id)?.is_some() {
                    continue;
                }
                let Some(bytes) = remote.get_batch_object(id, ObjectKind::Plan).await? else {
                    continue;
                };
                let body: PlanBody = serde_json::from_slice(&bytes).map_err(corrupt(&key))?;
                // Its outcome, if any, sorts after the plan: recorded below if so.
                let files: Vec<NewFile> = body
                    .files
                    .into_iter()
                    .map(|f| NewFile {
                        path: f.path,
                        etag: f.etag,
                        size: f.size,
                        last_modified_ms: f.modified_ms,
                        discovered_at_ms: f.discovered_ms,
                    })
                    .collect();
                cp.plan_batch(id, &files)?;
                restored.planned = Some(id);
            }
        }
    }
    // A plan with an outcome after it, or a commit, is not left planned.
    if let Some(id) = restored.planned {
        if cp.batch_state(id)? == Some(BatchState::Committed) {
            restored.planned = None;
        }
    }
    // Every batch up to the table's txn was recorded before the next was planned, so each
    // must be here now. One missing means the log lost its commit (clean-up past an old
    // snapshot) or it listed no files: refuse rather than take its files again.
    let txn = sink.txn_version(&cfg.pipeline_id).await?.unwrap_or(0);
    let mut missing = Vec::new();
    for id in known + 1..=txn {
        if cp.batch_state(id)? != Some(BatchState::Committed) {
            missing.push(id);
        }
    }
    if !missing.is_empty() {
        let why = if unlisted.iter().any(|id| missing.contains(id)) {
            "their commits list no source files: an older inlet wrote them"
        } else {
            "the table's log no longer holds their commits: Delta log clean-up removed them after the snapshot was taken"
        };
        let shown: Vec<String> = missing.iter().take(10).map(i64::to_string).collect();
        let more = if missing.len() > 10 { ", …" } else { "" };
        let checkpoint = format!("{}/", remote.url());
        return Err(crate::error::EngineError::RestoreGap(format!(
            "checkpoint {checkpoint} cannot be restored: Delta table {} holds pipeline '{}' up to batch {txn}, but \
             batches {}{more} are neither in the snapshot, nor in the table's log with their files, nor in the \
             checkpoint's batch objects ({why}); starting would take their files again. Nothing was written. Restore \
             an older version of {checkpoint}snapshot.json from the bucket's versioning, or start over with a new \
             pipeline_id and source.include_existing_files = false",
            cfg.table_url,
            cfg.pipeline_id,
            shown.join(", "),
        )));
    }
    Ok(())
}

/// A batch object that is not the JSON inlet wrote, named by `key`.
fn corrupt(key: &str) -> impl FnOnce(serde_json::Error) -> inlet_remote::RemoteError {
    let key = key.to_string();
    move |e| inlet_remote::RemoteError::Corrupt {
        key,
        reason: e.to_string(),
    }
}
