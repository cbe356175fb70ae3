//! What a run refuses before it writes anything, shared with `inlet validate` so that
//! `validate` says "ok" only to configs a run accepts: paths, SQL, keys, the rescued column.

use std::path::Path;

use arrow::datatypes::{DataType, Schema};

use inlet_checkpoint::SchemaVersion;
use inlet_schema::EvolutionMode;

use crate::config::{Config, SinkMode};
use crate::error::{EngineError, Result};

/// Local paths that cannot be what the config says: a table or checkpoint location that is a
/// file (or lies under one). Checked before anything is created.
pub fn check_paths(cfg: &Config) -> Result<()> {
    if let Ok(table) = cfg.table_url.to_file_path() {
        check_dir(
            "Delta table location",
            "sink.table",
            &table,
            "a Delta table is a directory of Parquet files and a _delta_log",
        )?;
    }
    check_dir(
        "checkpoint directory",
        "checkpoint.location",
        &cfg.checkpoint_dir,
        "the checkpoint is a directory holding inlet.db",
    )
}

/// `path` is a directory, or does not exist yet and can be made one (no file on the way).
fn check_dir(what: &'static str, key: &'static str, path: &Path, why: &'static str) -> Result<()> {
    // Without a trailing slash: `table/` of a file is "not a directory", not the file.
    let path: std::path::PathBuf = path.components().collect();
    let path = path.as_path();
    for p in path.ancestors() {
        match std::fs::metadata(p) {
            Ok(m) if m.is_dir() => return Ok(()),
            Ok(_) => {
                return Err(EngineError::PathIsFile {
                    what,
                    key,
                    path: path.to_path_buf(),
                    file: p.to_path_buf(),
                    why,
                })
            }
            Err(_) => continue,
        }
    }
    Ok(())
}

/// The SQL, `delete_when`, keys and rescued column against what is known before the first
/// batch: `source` (the stored source schema, when the pipeline has one) and `table` (the
/// table's schema, when it exists). With neither, only the syntax is checked.
///
/// With a schema mode that adds columns, a table is no bound on a batch: its files may hold
/// columns the table lacks (another pipeline created the table), which the batch adds before
/// its MERGE. Columns missing from the table alone are then left to the batch's own check
/// ([`check_merge_columns`]), not refused here.
pub async fn check_sql(
    cfg: &Config,
    source: Option<&Schema>,
    table: Option<&Schema>,
) -> Result<()> {
    let transform = inlet_transform::Transform::new(cfg.transform.sql.as_deref());
    transform.check_syntax()?;
    let adds_columns = adds_columns(cfg);
    let output = match source {
        Some(schema) => Some(transform.output_schema(schema).await?),
        // Appends without SQL write what they read: the table's columns, and no more unless
        // the schema mode adds what the files bring.
        None if transform.is_identity() && !adds_columns => table.cloned(),
        None => None,
    };
    if let Some(predicate) = &cfg.sink.delete_when {
        inlet_transform::check_delete_when(predicate, output.as_ref())?;
    }
    if let Some(out) = &output {
        check_merge_columns(cfg, out, "the transform's output does not have")?;
    }
    if let Some(t) = table {
        // A MERGE matches rows on the table's own columns: without a schema mode that adds
        // them, the table must have them; with one, the first batch adds them from its files
        // (known to have them when `output` is, else checked then).
        let lacks = format!("Delta table {} does not have", cfg.table_url);
        match (adds_columns, &output) {
            (false, _) => check_merge_columns(cfg, t, &lacks)?,
            (true, Some(_)) => {}
            (true, None) => {
                if let Err(e) = check_merge_columns(cfg, t, &lacks) {
                    tracing::warn!(
                        "{e}; the first batch adds the column if its files have it, and stops \
                         if they do not"
                    );
                }
            }
        }
    }
    if let (Some(t), Some(rescued)) = (table, cfg.rescued_column()) {
        if let Some(f) = t
            .fields()
            .iter()
            .find(|f| f.name().to_lowercase() == rescued.to_lowercase())
        {
            if !matches!(
                f.data_type(),
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
            ) {
                return Err(EngineError::RescuedColumnType {
                    table: cfg.table_url.to_string(),
                    column: f.name().clone(),
                    column_type: inlet_schema::ddl_type(f.data_type()),
                });
            }
        }
    }
    Ok(())
}

/// The stored source schema a run's checks may hold the config to: `None` without one, or
/// when it was adopted from a table another writer made and the pipeline, with no SQL and a
/// schema mode that adds columns, takes whatever columns its files bring (the adopted schema
/// tells nothing of them). With SQL, or a mode that adds nothing, the adopted schema is what
/// the files are decoded with, so it is held to.
pub fn files_schema(cfg: &Config, stored: Option<SchemaVersion>) -> Result<Option<Schema>> {
    let grows = adds_columns(cfg)
        && inlet_transform::Transform::new(cfg.transform.sql.as_deref()).is_identity();
    match stored {
        Some(v) if v.reason == ADOPTED_FROM_TABLE && grows => Ok(None),
        Some(v) => Ok(Some(inlet_schema::from_json(&v.schema_json)?)),
        None => Ok(None),
    }
}

/// Whether the schema mode adds the columns new files bring (at once, or at the rerun).
fn adds_columns(cfg: &Config) -> bool {
    matches!(
        cfg.schema.evolution,
        EvolutionMode::AddNewColumns | EvolutionMode::FailOnNewColumns
    )
}

/// The reason of a schema version taken from a table that existed before the pipeline's
/// first batch.
pub(crate) const ADOPTED_FROM_TABLE: &str = "adopted from the existing table";

/// A MERGE's `keys` and `sequence_by` are columns of `schema` (what a batch's rows have, or
/// what the table has); the error says which `lacks` them.
pub fn check_merge_columns(cfg: &Config, schema: &Schema, lacks: &str) -> Result<()> {
    if cfg.sink.mode != SinkMode::Merge {
        return Ok(());
    }
    let named = cfg
        .sink
        .keys
        .iter()
        .map(|k| ("sink.keys", k))
        .chain(cfg.sink.sequence_by.iter().map(|s| ("sink.sequence_by", s)));
    for (key, column) in named {
        if schema.field_with_name(column).is_err() {
            return Err(EngineError::MissingColumn {
                key,
                column: column.clone(),
                lacks: lacks.to_string(),
                columns: inlet_schema::column_names(schema),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_where_a_directory_belongs_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("table");
        std::fs::write(&file, b"x").expect("write");
        let check = |p: &Path| check_dir("Delta table location", "sink.table", p, "why");
        let err = check(&file).expect_err("a file");
        let f = file.display();
        assert_eq!(
            err.to_string(),
            format!("Delta table location {f} cannot be used: {f} is a file, not a directory (why); point sink.table at a directory, which is created when missing")
        );
        let err = check(&file.join("deeper/t")).expect_err("under a file");
        assert!(
            err.to_string()
                .contains(&format!("{f} is a file, not a directory")),
            "{err}"
        );
        check(&dir.path().join("new/t")).expect("creatable");
        check(dir.path()).expect("a directory");
    }
}
