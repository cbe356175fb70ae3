//! `inlet schema show | history | diff A B`: the schema store of the checkpoint, read-only,
//! as text (a tree like Spark's printSchema, and DDL) or as JSON.

use std::io::Write;

use anyhow::{bail, Result};
use arrow::datatypes::{DataType, Field, Schema};
use inlet_checkpoint::SchemaVersion;
use inlet_schema::{ddl_type, SchemaDiff};
use serde::Serialize;

use crate::cli::{SchemaArgs, SchemaCommand};
use inlet_engine::Config;

pub async fn run(args: &SchemaArgs) -> Result<()> {
    let cfg = Config::load(&args.config.config)?;
    let versions = match inlet_engine::read_checkpoint(&cfg).await? {
        Some(cp) => cp.schema_versions()?,
        None => Vec::new(),
    };
    let Some(last) = versions.last() else {
        bail!(
            "checkpoint {} holds no schema yet: the first run infers one from the first files",
            cfg.checkpoint_name()
        );
    };
    let mut out = std::io::stdout().lock();
    match &args.what {
        SchemaCommand::Show => {
            let latest = parse(last)?;
            if args.json {
                serde_json::to_writer_pretty(&mut out, &Shown::of(&latest))?;
                writeln!(out)?;
            } else {
                writeln!(
                    out,
                    "schema version {} ({})",
                    latest.0.version, latest.0.reason
                )?;
                writeln!(out, "root")?;
                for f in latest.1.fields() {
                    tree(&mut out, f, 1)?;
                }
                writeln!(out, "\nDDL: {}", ddl(&latest.1))?;
            }
        }
        SchemaCommand::History => {
            let parsed = versions.iter().map(parse).collect::<Result<Vec<_>>>()?;
            let entries: Vec<HistoryEntry> = parsed
                .iter()
                .enumerate()
                .map(|(i, (v, schema))| HistoryEntry {
                    version: v.version,
                    created_at: format!("{} UTC", super::files::time(Some(v.created_at_ms))),
                    batch_id: v.batch_id,
                    file: v.file_path.clone(),
                    reason: v.reason.clone(),
                    change: (i > 0).then(|| inlet_schema::diff(&parsed[i - 1].1, schema)),
                    columns: schema.fields().len(),
                })
                .collect();
            if args.json {
                serde_json::to_writer_pretty(&mut out, &entries)?;
                writeln!(out)?;
            } else {
                for e in &entries {
                    let batch = e.batch_id.map_or("-".into(), |b| b.to_string());
                    writeln!(
                        out,
                        "version {}  {}  batch {}  {} columns",
                        e.version, e.created_at, batch, e.columns
                    )?;
                    writeln!(out, "  why: {}", e.reason)?;
                    if let Some(file) = &e.file {
                        writeln!(out, "  file: {file}")?;
                    }
                    if let Some(change) = &e.change {
                        write_diff(&mut out, change, "  ")?;
                    }
                }
            }
        }
        SchemaCommand::Diff { a, b } => {
            let find = |n: i64| {
                versions
                    .iter()
                    .find(|v| v.version == n)
                    .map(parse)
                    .transpose()?
                    .ok_or_else(|| {
                        anyhow::anyhow!(
                        "no schema version {n}; versions are 1 to {} (see `inlet schema history`)",
                        versions.len()
                    )
                    })
            };
            let (va, vb) = (find(*a)?, find(*b)?);
            let change = inlet_schema::diff(&va.1, &vb.1);
            if args.json {
                serde_json::to_writer_pretty(&mut out, &change)?;
                writeln!(out)?;
            } else if change.is_empty() {
                writeln!(out, "versions {a} and {b} have the same columns")?;
            } else {
                writeln!(out, "from version {a} to version {b}:")?;
                write_diff(&mut out, &change, "")?;
            }
        }
    }
    Ok(())
}

fn parse(v: &SchemaVersion) -> Result<(SchemaVersion, Schema)> {
    Ok((v.clone(), inlet_schema::from_json(&v.schema_json)?))
}

#[derive(Serialize)]
struct Shown {
    version: i64,
    reason: String,
    ddl: String,
    columns: Vec<Column>,
}

#[derive(Serialize)]
struct Column {
    name: String,
    #[serde(rename = "type")]
    ty: String,
}

impl Shown {
    fn of((v, schema): &(SchemaVersion, Schema)) -> Self {
        Self {
            version: v.version,
            reason: v.reason.clone(),
            ddl: ddl(schema),
            columns: schema
                .fields()
                .iter()
                .map(|f| Column {
                    name: f.name().clone(),
                    ty: ddl_type(f.data_type()),
                })
                .collect(),
        }
    }
}

#[derive(Serialize)]
struct HistoryEntry {
    version: i64,
    created_at: String,
    batch_id: Option<i64>,
    file: Option<String>,
    reason: String,
    /// The change from the version before (none for the first).
    change: Option<SchemaDiff>,
    columns: usize,
}

fn ddl(schema: &Schema) -> String {
    schema
        .fields()
        .iter()
        .map(|f| format!("{} {}", f.name(), ddl_type(f.data_type())))
        .collect::<Vec<_>>()
        .join(", ")
}

/// One field of the tree, nested fields indented below it.
fn tree(out: &mut impl Write, field: &Field, depth: usize) -> std::io::Result<()> {
    let indent = " |   ".repeat(depth - 1);
    let shown = match field.data_type() {
        DataType::Struct(_) => "STRUCT".to_string(),
        DataType::List(item) if matches!(item.data_type(), DataType::Struct(_)) => {
            "ARRAY<STRUCT>".to_string()
        }
        other => ddl_type(other),
    };
    writeln!(out, "{indent} |-- {}: {shown}", field.name())?;
    let children = match field.data_type() {
        DataType::Struct(fields) => fields.iter().cloned().collect(),
        DataType::List(item) => match item.data_type() {
            DataType::Struct(fields) => fields.iter().cloned().collect(),
            _ => Vec::new(),
        },
        _ => Vec::new(),
    };
    for child in children {
        tree(out, &child, depth + 1)?;
    }
    Ok(())
}

fn write_diff(out: &mut impl Write, d: &SchemaDiff, indent: &str) -> std::io::Result<()> {
    for c in &d.added {
        writeln!(out, "{indent}+ {c}")?;
    }
    for c in &d.removed {
        writeln!(out, "{indent}- {c}")?;
    }
    for c in &d.changed {
        writeln!(out, "{indent}~ {c}")?;
    }
    Ok(())
}
