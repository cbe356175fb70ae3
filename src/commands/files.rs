//! `inlet files`: the checkpoint's file log, like Auto Loader's `cloud_files_state`, as a
//! table or as JSON; `--retry` puts a fixed failed file back in the queue.

use std::io::Write;

use anyhow::Result;

use super::out;
use chrono::{TimeZone, Utc};

use inlet_checkpoint::{Checkpoint, FileRecord};

use crate::cli::FilesArgs;
use inlet_engine::Config;

pub async fn run(args: &FilesArgs) -> Result<()> {
    let cfg = Config::load(&args.config.config)?;
    if let Some(path) = &args.retry {
        return retry(&cfg, path);
    }
    let records = match inlet_engine::read_checkpoint(&cfg).await? {
        Some(cp) => cp.files(args.state.map(Into::into))?,
        None => Vec::new(),
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &records)?;
        writeln!(out)?;
    } else {
        write_table(&mut out, &records)?;
    }
    Ok(())
}

/// `--retry PATH`: takes the runner lock (a run must not be planning meanwhile) and forgets
/// the file, so discovery lists it as new.
fn retry(cfg: &Config, path: &str) -> Result<()> {
    let url = if path.contains("://") {
        path.to_string()
    } else {
        cfg.source
            .url
            .join(path.trim_start_matches('/'))?
            .to_string()
    };
    if let Some(remote) = &cfg.remote {
        anyhow::bail!(
            "--retry is not available for a checkpoint in S3 ({}) yet; to take {url} again, copy it to a new key under the source prefix",
            remote.url
        );
    }
    let Some(cp) = Checkpoint::open_read_only(&cfg.checkpoint_dir)? else {
        anyhow::bail!(
            "checkpoint {} does not exist yet; nothing to retry",
            cfg.checkpoint_dir.display()
        );
    };
    drop(cp);
    let cp = Checkpoint::open(
        &cfg.checkpoint_dir,
        &cfg.pipeline_id,
        inlet_engine::lock_holder(),
    )?;
    let was = cp.retry_file(&url)?;
    out!("{url} was {}; the next run takes it again", was.as_str())?;
    Ok(())
}

/// A millisecond timestamp as `YYYY-MM-DD HH:MM:SS` (UTC), `-` when absent.
pub(crate) fn time(ms: Option<i64>) -> String {
    ms.and_then(|ms| Utc.timestamp_millis_opt(ms).single())
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|| "-".into())
}

fn opt(v: Option<i64>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| "-".into())
}

fn write_table(out: &mut impl Write, records: &[FileRecord]) -> std::io::Result<()> {
    let header = [
        "STATE",
        "BATCH",
        "VERSION",
        "ROWS",
        "SIZE",
        "MODIFIED",
        "DISCOVERED",
        "COMMITTED",
        "ETAG",
        "PATH",
    ];
    let rows: Vec<[String; 10]> = records
        .iter()
        .map(|r| {
            let mut path = r.path.clone();
            if let Some(e) = &r.error {
                path.push_str(&format!("  ({e})"));
            }
            if let Some(action) = &r.clean_action {
                let to = r
                    .archive_path
                    .as_deref()
                    .map(|a| format!(" to {a}"))
                    .unwrap_or_default();
                path.push_str(&format!("  [{action}{to} at {}]", time(r.cleaned_at_ms)));
            }
            [
                r.state.as_str().to_string(),
                opt(r.batch_id),
                opt(r.delta_version),
                opt(r.rows),
                r.size.to_string(),
                time(Some(r.last_modified_ms)),
                time(Some(r.discovered_at_ms)),
                time(r.committed_at_ms),
                if r.etag.is_empty() {
                    "-".into()
                } else {
                    r.etag.trim_matches('"').to_string()
                },
                path,
            ]
        })
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row.iter()).take(9) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: Vec<&str>| {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if i < 9 {
                    format!("{c:<w$}", w = widths[i])
                } else {
                    c.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("  ")
    };
    writeln!(out, "{}", line(header.to_vec()))?;
    for row in &rows {
        writeln!(out, "{}", line(row.iter().map(String::as_str).collect()))?;
    }
    Ok(())
}
