//! `inlet table ...`: repair-protocol, optimize, vacuum, describe and set-properties on the
//! pipeline's Delta table, each printing what it did.

use std::collections::BTreeMap;

use anyhow::Result;

use super::out;
use humansize::{format_size, DECIMAL};
use inlet_delta::RepairOutcome;
use inlet_engine::{Config, OptimizeRequest};

use crate::cli::{ConfigArg, DescribeArgs, OptimizeArgs, SetPropertiesArgs, VacuumArgs};

pub async fn repair_protocol(args: &ConfigArg) -> Result<()> {
    let cfg = Config::load(&args.config)?;
    let (cfg, outcome) = inlet_engine::repair_protocol(cfg).await?;
    match outcome {
        RepairOutcome::Healthy { version } => out!(
            "Delta table {} (version {version}): its protocol already declares every feature its schema and properties need; nothing to do.",
            cfg.table_url
        )?,
        RepairOutcome::Upgraded {
            version,
            protocol,
            added,
        } => {
            out!(
                "Delta table {}: version {version} upgrades the protocol to {protocol}.",
                cfg.table_url
            )?;
            for f in added {
                out!("  added '{}': {}", f.name, f.why)?;
            }
            out!("Readers that support these features read the table again; `inlet run` goes on from where it stopped.")?;
        }
    }
    Ok(())
}

pub async fn optimize(args: &OptimizeArgs) -> Result<()> {
    let cfg = Config::load(&args.config.config)?;
    let table = cfg.table_url.to_string();
    let outcome = inlet_engine::optimize(
        cfg,
        OptimizeRequest {
            zorder_by: args.zorder_by.clone(),
            partition: (!args.partition.is_empty()).then(|| args.partition.clone()),
            fault_point: args.fault_point,
        },
    )
    .await?;
    if args.json {
        out!(
            "{}",
            serde_json::json!({
                "table": table,
                "version": outcome.version,
                "files_removed": outcome.files_removed,
                "files_added": outcome.files_added,
                "bytes_removed": outcome.bytes_removed,
                "bytes_added": outcome.bytes_added,
                "seconds": outcome.seconds,
            })
        )?;
        return Ok(());
    }
    match outcome.version {
        None => out!("Delta table {table}: no partition has two or more files to pack; nothing to do.")?,
        Some(v) => out!(
            "Delta table {table}: version {v} replaces {} files ({}) with {} ({}) in {:.1}s; no data changed.",
            outcome.files_removed,
            format_size(outcome.bytes_removed, DECIMAL),
            outcome.files_added,
            format_size(outcome.bytes_added, DECIMAL),
            outcome.seconds
        )?,
    }
    if let Some(e) = outcome.post_commit_error {
        out!("  warning: the compaction stands, but the post-commit log clean-up failed: {e}")?;
    }
    Ok(())
}

pub async fn vacuum(args: &VacuumArgs) -> Result<()> {
    let cfg = Config::load(&args.config.config)?;
    let table = cfg.table_url.to_string();
    let outcome = inlet_engine::vacuum(cfg, args.retain, args.dry_run, args.fault_point).await?;
    if args.json {
        out!(
            "{}",
            serde_json::json!({
                "table": table,
                "dry_run": outcome.dry_run,
                "files": outcome.files,
                "version": outcome.version,
                "seconds": outcome.seconds,
            })
        )?;
        return Ok(());
    }
    let verb = if outcome.dry_run {
        "would delete"
    } else {
        "deleted"
    };
    out!(
        "Delta table {table}: VACUUM {verb} {} files.",
        outcome.files.len()
    )?;
    for f in &outcome.files {
        out!("  {f}")?;
    }
    Ok(())
}

pub async fn describe(args: &DescribeArgs) -> Result<()> {
    let cfg = Config::load(&args.config.config)?;
    let checkpoint_dir = cfg.checkpoint_name();
    let (t, cp) = inlet_engine::describe(cfg).await?;
    if args.json {
        out!("{}", serde_json::json!({ "table": t, "checkpoint": cp }))?;
        return Ok(());
    }
    let time = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .unwrap_or_default()
    };
    out!("table        {} (version {})", t.url, t.version)?;
    let features = |f: &[String]| {
        if f.is_empty() {
            String::new()
        } else {
            format!(" [{}]", f.join(", "))
        }
    };
    out!(
        "protocol     reader {}{}, writer {}{}",
        t.min_reader_version,
        features(&t.reader_features),
        t.min_writer_version,
        features(&t.writer_features)
    )?;
    if t.properties.is_empty() {
        out!("properties   (none)")?;
    } else {
        for (i, (k, v)) in t.properties.iter().enumerate() {
            out!(
                "{}{k} = {v}",
                if i == 0 {
                    "properties   "
                } else {
                    "             "
                }
            )?;
        }
    }
    if !t.partition_columns.is_empty() {
        out!(
            "partitions   {} by {}",
            t.partitions,
            t.partition_columns.join(", ")
        )?;
    }
    out!(
        "files        {} ({}); {} small (under {}, {})",
        t.files,
        format_size(t.bytes, DECIMAL),
        t.small_files,
        format_size(t.small_file_size, DECIMAL),
        format_size(t.small_bytes, DECIMAL)
    )?;
    if t.files_with_deletion_vectors > 0 {
        out!(
            "deleted rows {} of {} hidden by deletion vectors in {} files",
            t.deleted_rows,
            t.physical_rows,
            t.files_with_deletion_vectors
        )?;
    }
    out!(
        "delta log    {} objects ({}), commits from version {}; checkpoint {}",
        t.log_objects,
        format_size(t.log_bytes, DECIMAL),
        t.oldest_commit,
        t.checkpoint_version
            .map_or("none".to_string(), |v| format!("at version {v}"))
    )?;
    out!(
        "compaction   {}",
        t.last_compaction
            .map_or("never (in the log)".to_string(), |(v, ms)| format!(
                "version {v} at {}",
                time(ms)
            ))
    )?;
    out!(
        "vacuum       {}",
        t.last_vacuum
            .map_or("never (in the log)".to_string(), |(v, ms)| format!(
                "version {v} at {}",
                time(ms)
            ))
    )?;
    match cp {
        Some(c) => out!(
            "checkpoint   {} ({}): {} files, {} batches, {} tombstones, {} schema versions",
            checkpoint_dir,
            format_size(c.bytes, DECIMAL),
            c.files,
            c.batches,
            c.tombstones,
            c.schema_versions
        )?,
        None => out!("checkpoint   {} (none yet)", checkpoint_dir)?,
    }
    Ok(())
}

pub async fn set_properties(args: &SetPropertiesArgs) -> Result<()> {
    let cfg = Config::load(&args.config.config)?;
    let table = cfg.table_url.to_string();
    let properties: BTreeMap<String, String> = if args.properties.is_empty() {
        cfg.sink.properties.clone()
    } else {
        args.properties.iter().cloned().collect()
    };
    if properties.is_empty() {
        anyhow::bail!(
            "no properties to set: give KEY=VALUE arguments, or set [sink] properties in {}",
            args.config.config.display()
        );
    }
    match inlet_engine::set_properties(cfg, properties.clone()).await? {
        None => out!("Delta table {table}: every property already has its value; nothing to do.")?,
        Some(v) => {
            out!("Delta table {table}: version {v} sets:")?;
            for (k, val) in &properties {
                out!("  {k} = {val}")?;
            }
        }
    }
    Ok(())
}
