//! Checkpoint rebuild: a new checkpoint from the Delta table's history, for when the
//! checkpoint was lost or damaged; each inlet commit lists its batch's source files.

use std::path::{Path, PathBuf};

use inlet_checkpoint::{Checkpoint, FileState, NewFile, RunnerLock, DB_FILE};
use inlet_delta::DeltaSink;

use crate::config::Config;
use crate::error::{EngineError, Result};

/// What a rebuild restored.
#[derive(Debug, Clone)]
pub struct Rebuilt {
    pub checkpoint: PathBuf,
    pub table: String,
    pub files: usize,
    pub batches: usize,
    /// The last batch restored, and its table version.
    pub last_batch: i64,
    pub last_version: i64,
    /// Where the previous checkpoint database was moved, if there was one.
    pub kept: Option<PathBuf>,
    /// Merge mode: tombstones are not in the table and were not rebuilt.
    pub tombstones_lost: bool,
}

/// Makes a new checkpoint for `cfg` from the table's history: every commit of the pipeline,
/// oldest first, planned and recorded with the files its `inlet.files` lists, then the
/// table's schema as schema version 1. The previous database is renamed aside, never
/// deleted; the runner lock is held meanwhile. Refuses (changing nothing) when the table
/// holds no commit of the pipeline, when a commit lists no files, or when Delta log
/// clean-up removed commits of the pipeline: those files would be taken again.
pub async fn rebuild_checkpoint(mut cfg: Config) -> Result<Rebuilt> {
    if let Some(remote) = &cfg.remote {
        return Err(EngineError::Rebuild(format!(
            "checkpoint {} is in S3 and restores itself: every start downloads its snapshot and fast-forwards from the \
             table's commits and the checkpoint's batch objects (the same file log a rebuild makes, with the MERGE \
             tombstones a rebuild loses). If {}snapshot.json or its snapshot is damaged, restore them from the bucket's \
             versioning; to see what a start would restore, run `inlet files`",
            remote.url, remote.url
        )));
    }
    // A `uc://` table is read where the catalog says it lives, with vended credentials.
    crate::catalog::Catalog::resolve(&mut cfg).await?;
    let dir = &cfg.checkpoint_dir;
    let mut sink = DeltaSink::open(&cfg.table_url, &cfg.sink_options()).await?;
    let (commits, oldest) = sink.pipeline_commits(&cfg.pipeline_id).await?;
    let txn = sink.txn_version(&cfg.pipeline_id).await?;
    refuse_partial_history(&cfg, &commits, oldest, txn)?;
    if commits.is_empty() {
        return Err(EngineError::Rebuild(format!(
            "Delta table {} holds no commit of pipeline '{}', so there is nothing to rebuild from; \
             check sink.table and pipeline_id (a pipeline that never committed can start with an empty checkpoint)",
            cfg.table_url,
            cfg.pipeline_id
        )));
    }
    let unlisted: Vec<String> = commits
        .iter()
        .filter(|c| c.files.is_none())
        .map(|c| c.batch_id.to_string())
        .collect();
    if !unlisted.is_empty() {
        return Err(EngineError::Rebuild(format!(
            "the commits of batches {} in Delta table {} do not list their source files (an older inlet wrote them), \
             so a rebuilt checkpoint would take those files again; restore the checkpoint from a backup instead",
            unlisted.join(", "),
            cfg.table_url
        )));
    }

    // A run must not be using the checkpoint while it is replaced.
    std::fs::create_dir_all(dir).map_err(|source| EngineError::Io {
        what: "create checkpoint directory",
        path: dir.clone(),
        source,
    })?;
    let lock = RunnerLock::acquire(dir, crate::lock_holder())?;
    let kept = set_aside(dir)?;
    drop(lock);

    let mut cp = Checkpoint::open(dir, &cfg.pipeline_id, crate::lock_holder())?;
    let mut files = 0usize;
    for commit in &commits {
        let listed = commit.files.as_deref().unwrap_or_default();
        record_listed(
            &mut cp,
            commit.batch_id,
            Some(commit.version),
            commit.timestamp_ms,
            listed,
        )?;
        files += listed.len();
    }
    if let Some(schema) = sink.arrow_schema()? {
        cp.add_schema_version(
            &inlet_schema::to_json(&schema),
            None,
            None,
            "rebuilt from the Delta table's schema",
        )?;
    }
    let last = commits
        .last()
        .map(|c| (c.batch_id, c.version))
        .unwrap_or_default();
    Ok(Rebuilt {
        checkpoint: dir.clone(),
        table: cfg.table_url.to_string(),
        files,
        batches: commits.len(),
        last_batch: last.0,
        last_version: last.1,
        kept,
        tombstones_lost: cfg.sink.mode == crate::config::SinkMode::Merge,
    })
}

/// Records batch `batch_id` as its commit (or, for a batch without one, its outcome object)
/// lists it: planned with the listed files unless the journal holds it already, each file's
/// outcome, then committed at `version` with the files' rows. Shared by the rebuild and an
/// `s3://` checkpoint's fast-forward, so both restore the same file log.
pub(crate) fn record_listed(
    cp: &mut Checkpoint,
    batch_id: i64,
    version: Option<i64>,
    timestamp_ms: Option<i64>,
    listed: &[inlet_delta::BatchFile],
) -> Result<()> {
    if cp.batch_state(batch_id)?.is_none() {
        let new: Vec<NewFile> = listed
            .iter()
            .map(|f| NewFile {
                path: f.path.clone(),
                etag: f.etag.clone(),
                size: f.size,
                last_modified_ms: f.modified_ms,
                discovered_at_ms: timestamp_ms.unwrap_or(f.modified_ms),
            })
            .collect();
        cp.plan_batch(batch_id, &new)?;
    }
    for f in listed {
        if let Some(state) = FileState::parse(&f.state).filter(|s| *s != FileState::Committed) {
            cp.set_file_outcome(
                batch_id,
                &f.path,
                state,
                f.error
                    .as_deref()
                    .unwrap_or("(recorded before the rebuild)"),
            )?;
        }
    }
    let file_rows: Vec<(String, i64)> = listed
        .iter()
        .filter_map(|f| Some((f.path.clone(), f.rows?)))
        .collect();
    let rows = file_rows.iter().map(|(_, n)| n).sum();
    cp.mark_committed(batch_id, version, Some(rows), &file_rows)?;
    Ok(())
}

/// Refuses to rebuild from a log whose older commits were removed (by Delta log clean-up,
/// after a checkpoint) when commits of this pipeline may be among them: the files those
/// batches took would be taken again. The table's txn version, which checkpoints keep, shows
/// whether the pipeline committed at all; the history shows whether all of it is visible.
fn refuse_partial_history(
    cfg: &Config,
    commits: &[inlet_delta::PipelineCommit],
    oldest: i64,
    txn: Option<i64>,
) -> Result<()> {
    if oldest == 0 {
        return Ok(()); // the whole log is there
    }
    let what_to_do = "restore the checkpoint directory from a backup; or, to start over, use a new pipeline_id with \
        source.include_existing_files = false (only files arriving from now on are taken) or a source.max_file_age \
        shorter than the age of the files already taken";
    match commits.first() {
        // No txn (it never committed, or its txn expired) and no commit left: the refusal
        // for an empty history follows.
        None if txn.is_none() => Ok(()),
        None => Err(EngineError::Rebuild(format!(
            "Delta table {} shows pipeline '{}' committed up to batch {} (its txn version), but the table's log now starts \
                at version {oldest} (older commits were removed by log clean-up) and the commits it still holds include none of \
                this pipeline's, so the files its batches took cannot be known and a rebuilt checkpoint would take them again. \
                Nothing was changed; {what_to_do}",
            cfg.table_url,
            cfg.pipeline_id,
            txn.unwrap_or_default(),
        ))),
        // Batch ids start at 1 and each batch is committed after the one before: when the
        // first batch is visible, every later one is too.
        Some(first) if first.batch_id > 1 => Err(EngineError::Rebuild(format!(
            "Delta table {} holds pipeline '{}''s commits from batch {} on (version {}), but its log now starts at version \
                {oldest}: older commits were removed by log clean-up, and batches 1 to {} may be among them, so the files they \
                took cannot be known and a rebuilt checkpoint would take them again. Nothing was changed; {what_to_do}",
            cfg.table_url,
            cfg.pipeline_id,
            first.batch_id,
            first.version,
            first.batch_id - 1,
        ))),
        Some(_) => Ok(()),
    }
}

/// Renames the checkpoint database (and its WAL files) to `inlet.db.replaced-<time>`;
/// returns the new name of the database, if there was one. Nothing is deleted.
fn set_aside(dir: &Path) -> Result<Option<PathBuf>> {
    let db = dir.join(DB_FILE);
    if !db.exists() {
        return Ok(None);
    }
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
    let mut kept = None;
    for suffix in ["", "-wal", "-shm"] {
        let from = dir.join(format!("{DB_FILE}{suffix}"));
        if from.exists() {
            let to = dir.join(format!("{DB_FILE}.replaced-{stamp}{suffix}"));
            std::fs::rename(&from, &to).map_err(|source| EngineError::Io {
                what: "move aside",
                path: from.clone(),
                source,
            })?;
            if suffix.is_empty() {
                kept = Some(to);
            }
        }
    }
    Ok(kept)
}
