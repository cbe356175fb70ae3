//! Validation: the config checked against the source, the table and the checkpoint, with
//! every refusal a run would make at start, and the plan of what a run would do. Writes nothing.

use inlet_checkpoint::Checkpoint;
use inlet_delta::DeltaSink;
use inlet_discover::SourceStore;

use crate::config::Config;
use crate::error::Result;
use crate::redact::redact_options;

/// What a run of a valid config would do, as `inlet validate` prints it (no secret in it).
#[derive(Debug, Clone)]
pub struct Validation {
    report: String,
    summary: serde_json::Value,
}

impl Validation {
    /// The same as JSON (`inlet validate --json`): pipeline, config, source, table, mode,
    /// merge strategy and why, checkpoint; no secret in it.
    pub fn summary(&self) -> &serde_json::Value {
        &self.summary
    }
}

impl std::fmt::Display for Validation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.report)
    }
}

/// Checks `cfg` as a run would at start (paths, source, table, catalog, queue, SQL, keys,
/// checkpoint), refusing with the same error a run would give; reads, never writes.
pub async fn validate(mut cfg: Config) -> Result<Validation> {
    crate::preflight::check_paths(&cfg)?;
    let source = SourceStore::open(&cfg.source.url, &cfg.source_options())?;
    source.check_reachable().await?;
    let catalog = crate::catalog::Catalog::resolve(&mut cfg).await?;
    let sink = DeltaSink::open(&cfg.table_url, &cfg.sink_options()).await?;

    let mut out = String::new();
    if let Some(catalog) = &catalog {
        out.push_str(&format!(
            "catalog     {}
",
            catalog.describe()
        ));
    }
    out.push_str(&format!("config      {}\n", cfg.path.display()));
    out.push_str(&format!("pipeline    {}\n", cfg.pipeline_id));
    out.push_str(&format!(
        "source      {} (reachable)\n            format {}, compression {:?}, discovery {:?}, glob {}, include existing files {}\n            batches of at most {} files / {} bytes, allow overwrites {}\n",
        cfg.source.url,
        cfg.source.format.as_str(),
        cfg.source.compression,
        match cfg.source.discovery {
            crate::config::Discovery::Listing => match cfg.source.listing {
                crate::config::ListingKind::Full => "Listing".to_string(),
                other => format!(
                    "Listing ({}, in full every {})",
                    inlet_discover::ListingMode::from(other).as_str(),
                    humantime::format_duration(cfg.source.full_listing_interval)
                ),
            },
            crate::config::Discovery::Notifications(_) => "Notifications".to_string(),
        },
        cfg.source.path_glob.as_deref().unwrap_or("(all files)"),
        cfg.source.include_existing_files,
        cfg.source.max_files_per_batch,
        cfg.source.max_bytes_per_batch,
        cfg.source.allow_overwrites,
    ));
    if !cfg.source.partition_columns.is_empty() || cfg.source.max_file_age.is_some() {
        out.push_str(&format!(
            "            partition columns {}, max file age {}\n",
            if cfg.source.partition_columns.is_empty() {
                "none".to_string()
            } else {
                cfg.source.partition_columns.join(", ")
            },
            cfg.source.max_file_age.map_or_else(
                || "none".to_string(),
                |a| humantime::format_duration(a).to_string()
            ),
        ));
    }
    crate::pipeline::open_archive(&cfg).await?;
    if let Some(after) = cfg.source.clean.after() {
        out.push_str(&format!(
            "            clean source: {} {} after commit{}\n",
            cfg.source.clean.as_str(),
            humantime::format_duration(after),
            cfg.source
                .clean
                .archive()
                .as_ref()
                .map(|a| format!(", to {a} (reachable)"))
                .unwrap_or_default(),
        ));
    }
    if !cfg.source.storage_options.is_empty() {
        out.push_str(&format!(
            "            options {}\n",
            redact_options(&cfg.source.storage_options)
        ));
    }
    if let Some(options) = cfg.notification_options() {
        let url = options.queue_url.clone();
        let mut queue =
            inlet_discover::NotificationDiscoverer::connect(source.clone(), options).await?;
        let waiting = inlet_discover::Discover::backlog(&mut queue)
            .await
            .map_or_else(|| "unknown".to_string(), |n| n.to_string());
        out.push_str(&format!(
            "queue       {url} (reachable; visibility timeout {}s, about {waiting} messages waiting)\n            batches close {} after their first file\n",
            queue.visibility().as_secs(),
            humantime::format_duration(
                cfg.source
                    .notifications()
                    .map(|n| n.max_batch_wait)
                    .unwrap_or_default()
            ),
        ));
    }
    match (sink.version(), sink.arrow_schema()?) {
        (Some(v), Some(schema)) => out.push_str(&format!(
            "table       {} (version {v}, columns: {})\n",
            cfg.table_url,
            inlet_schema::column_names(&schema)
        )),
        _ => out.push_str(&format!(
            "table       {} (does not exist yet; the first batch creates it{})\n",
            cfg.table_url,
            if cfg.sink.partition_by.is_empty() {
                String::new()
            } else {
                format!(", partitioned by {}", cfg.sink.partition_by.join(", "))
            }
        )),
    }
    out.push_str(&property_lines(&cfg, &sink));
    out.push_str(&format!("            mode {:?}\n", cfg.sink.mode));
    let mut strategy = None;
    if !cfg.sink.keys.is_empty() {
        out.push_str(&format!(
            "            keys {}, sequence_by {}, delete_when {}\n",
            cfg.sink.keys.join(", "),
            cfg.sink.sequence_by.as_deref().unwrap_or("-"),
            cfg.sink.delete_when.as_deref().unwrap_or("-")
        ));
        let decision = cfg
            .sink
            .merge_strategy_for(crate::config::TableFacts::of(&sink));
        strategy = Some(serde_json::json!({
            "strategy": match decision.strategy {
                inlet_delta::MergeStrategy::DeletionVectors => "deletion_vectors",
                inlet_delta::MergeStrategy::CopyOnWrite => "copy_on_write",
            },
            "why": decision.why,
        }));
        out.push_str(&format!(
            "            merge strategy {} ({})\n",
            match decision.strategy {
                inlet_delta::MergeStrategy::DeletionVectors => "deletion_vectors",
                inlet_delta::MergeStrategy::CopyOnWrite => "copy_on_write",
            },
            decision.why
        ));
    }
    out.push_str(&format!(
        "schema      evolution {}, rescued data column {}\n",
        cfg.schema.evolution.as_str(),
        cfg.rescued_column().unwrap_or("(off)")
    ));
    if !cfg.sink.storage_options.is_empty() {
        out.push_str(&format!(
            "            options {}\n",
            redact_options(&cfg.sink.storage_options)
        ));
    }
    let checkpoint = crate::remote::read_checkpoint(&cfg).await?;
    let stored = crate::preflight::files_schema(
        &cfg,
        checkpoint
            .as_deref()
            .map(Checkpoint::latest_schema)
            .transpose()?
            .flatten(),
    )?;
    crate::preflight::check_sql(&cfg, stored.as_ref(), sink.arrow_schema()?.as_deref()).await?;
    let mut counts = None;
    match checkpoint {
        None => out.push_str(&format!(
            "checkpoint  {} (new; created by the first run)\n",
            cfg.checkpoint_name()
        )),
        Some(cp) => {
            // The SQL is planned against the stored source schema (none before the first run).
            if let Some(latest) = cp.latest_schema()? {
                let source_schema = inlet_schema::from_json(&latest.schema_json)?;
                let transform = inlet_transform::Transform::new(cfg.transform.sql.as_deref());
                let output = transform.output_schema(&source_schema).await?;
                out.push_str(&format!(
                    "transform   {} -> columns: {}\n",
                    cfg.transform
                        .sql
                        .as_deref()
                        .unwrap_or(inlet_transform::IDENTITY_SQL),
                    inlet_schema::column_names(&output)
                ));
            }
            let batches = cp.batches()?;
            let files = cp.files(None)?;
            let planned = batches
                .iter()
                .filter(|b| b.state == inlet_checkpoint::BatchState::Planned)
                .count();
            counts = Some((batches.len(), files.len(), planned));
            out.push_str(&format!(
                "checkpoint  {} ({} batches, {} files{})\n",
                cfg.checkpoint_name(),
                batches.len(),
                files.len(),
                if planned > 0 {
                    ", 1 planned batch to recover"
                } else {
                    ""
                }
            ));
        }
    }
    out.push_str("ok\n");
    let summary = serde_json::json!({
        "ok": true,
        "config": cfg.path.display().to_string(),
        "pipeline": cfg.pipeline_id,
        "source": {
            "url": cfg.source.url.as_str(),
            "format": cfg.source.format.as_str(),
            "discovery": match cfg.source.discovery {
                crate::config::Discovery::Listing => "listing",
                crate::config::Discovery::Notifications(_) => "notifications",
            },
            "listing": inlet_discover::ListingMode::from(cfg.source.listing).as_str(),
            "reachable": true,
        },
        "table": {
            "url": cfg.table_url.as_str(),
            "version": sink.version(),
            "columns": sink.arrow_schema()?.map(|s| {
                s.fields().iter().map(|f| f.name().clone()).collect::<Vec<_>>()
            }),
        },
        "mode": match cfg.sink.mode {
            crate::config::SinkMode::Append => "append",
            crate::config::SinkMode::Merge => "merge",
        },
        "keys": cfg.sink.keys,
        "merge_strategy": strategy,
        "checkpoint": {
            "location": cfg.checkpoint_name(),
            "exists": counts.is_some(),
            "batches": counts.map(|c| c.0),
            "files": counts.map(|c| c.1),
            "planned_batches": counts.map(|c| c.2),
        },
    });
    Ok(Validation {
        report: out,
        summary,
    })
}

/// The `[sink] properties` line, and for an existing table each property whose value differs
/// from the config's (changed only by `inlet table set-properties`).
fn property_lines(cfg: &Config, sink: &DeltaSink) -> String {
    let mut out = String::new();
    if !cfg.sink.properties.is_empty() {
        let list: Vec<String> = cfg
            .sink
            .properties
            .iter()
            .map(|(k, v)| format!("{k} = {v}"))
            .collect();
        out.push_str(&format!("            properties {}\n", list.join(", ")));
    }
    if sink.version().is_none() {
        return out;
    }
    let table = sink.properties();
    for (key, wanted) in &cfg.sink.properties {
        if table.get(key) != Some(wanted) {
            out.push_str(&format!(
                "            property {key} differs: the table has {}, the config {wanted}; run `inlet table set-properties --config {}` to apply it\n",
                table.get(key).map(String::as_str).unwrap_or("(unset)"),
                cfg.path.display()
            ));
        }
    }
    out
}
