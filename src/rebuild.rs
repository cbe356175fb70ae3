//! `inlet checkpoint rebuild`: a new checkpoint from the Delta table's history, for when the
//! checkpoint was lost or damaged; each inlet commit lists its batch's source files.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use inlet_checkpoint::{Checkpoint, FileState, NewFile, RunnerLock, DB_FILE};
use inlet_delta::DeltaSink;

use crate::cli::ConfigArg;
use crate::config::Config;

pub async fn run(args: &ConfigArg) -> Result<()> {
    let mut cfg = Config::load(&args.config)?;
    // A `uc://` table is read where the catalog says it lives, with vended credentials.
    crate::unity::Catalog::resolve(&mut cfg).await?;
    let dir = &cfg.checkpoint_dir;
    let mut sink = DeltaSink::open(&cfg.table_url, &cfg.sink_options()).await?;
    let (commits, oldest) = sink.pipeline_commits(&cfg.pipeline_id).await?;
    let txn = sink.txn_version(&cfg.pipeline_id).await?;
    refuse_partial_history(&cfg, &commits, oldest, txn)?;
    if commits.is_empty() {
        bail!(
            "Delta table {} holds no commit of pipeline '{}', so there is nothing to rebuild from; \
             check sink.table and pipeline_id (a pipeline that never committed can start with an empty checkpoint)",
            cfg.table_url,
            cfg.pipeline_id
        );
    }
    let unlisted: Vec<String> = commits
        .iter()
        .filter(|c| c.files.is_none())
        .map(|c| c.batch_id.to_string())
        .collect();
    if !unlisted.is_empty() {
        bail!(
            "the commits of batches {} in Delta table {} do not list their source files (an older inlet wrote them), \
             so a rebuilt checkpoint would take those files again; restore the checkpoint from a backup instead",
            unlisted.join(", "),
            cfg.table_url
        );
    }

    // A run must not be using the checkpoint while it is replaced.
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create checkpoint directory {}", dir.display()))?;
    let lock = RunnerLock::acquire(dir, crate::lock_holder())?;
    let kept = set_aside(dir)?;
    drop(lock);

    let mut cp = Checkpoint::open(dir, &cfg.pipeline_id, crate::lock_holder())?;
    let mut files = 0usize;
    for commit in &commits {
        let listed = commit.files.as_deref().unwrap_or_default();
        let new: Vec<NewFile> = listed
            .iter()
            .map(|f| NewFile {
                path: f.path.clone(),
                etag: f.etag.clone(),
                size: f.size,
                last_modified_ms: f.modified_ms,
                discovered_at_ms: commit.timestamp_ms.unwrap_or(f.modified_ms),
            })
            .collect();
        cp.plan_batch(commit.batch_id, &new)?;
        for f in listed {
            if let Some(state) = FileState::parse(&f.state).filter(|s| *s != FileState::Committed) {
                cp.set_file_outcome(
                    commit.batch_id,
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
        cp.mark_committed(
            commit.batch_id,
            Some(commit.version),
            Some(rows),
            &file_rows,
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
    println!(
        "rebuilt checkpoint {} from Delta table {}: {files} files in {} batches (the last, batch {}, is version {}).",
        dir.display(),
        cfg.table_url,
        commits.len(),
        last.0,
        last.1
    );
    if let Some(kept) = kept {
        println!(
            "The previous checkpoint database was kept as {}.",
            kept.display()
        );
    }
    if cfg.sink.mode == crate::config::SinkMode::Merge {
        println!(
            "Note: MERGE tombstones (deleted keys remembered so that an older update arriving late cannot bring a row back) \
             are not in the table and were not rebuilt."
        );
    }
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
        None => bail!(
            "Delta table {} shows pipeline '{}' committed up to batch {} (its txn version), but the table's log now starts \
                at version {oldest} (older commits were removed by log clean-up) and the commits it still holds include none of \
                this pipeline's, so the files its batches took cannot be known and a rebuilt checkpoint would take them again. \
                Nothing was changed; {what_to_do}",
            cfg.table_url,
            cfg.pipeline_id,
            txn.unwrap_or_default(),
        ),
        // Batch ids start at 1 and each batch is committed after the one before: when the
        // first batch is visible, every later one is too.
        Some(first) if first.batch_id > 1 => bail!(
            "Delta table {} holds pipeline '{}''s commits from batch {} on (version {}), but its log now starts at version \
                {oldest}: older commits were removed by log clean-up, and batches 1 to {} may be among them, so the files they \
                took cannot be known and a rebuilt checkpoint would take them again. Nothing was changed; {what_to_do}",
            cfg.table_url,
            cfg.pipeline_id,
            first.batch_id,
            first.version,
            first.batch_id - 1,
        ),
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
            std::fs::rename(&from, &to)
                .with_context(|| format!("cannot move {} aside", from.display()))?;
            if suffix.is_empty() {
                kept = Some(to);
            }
        }
    }
    Ok(kept)
}
