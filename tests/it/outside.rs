//! Inputs and readers we did not write: the failures outside testing found (issue 17), each
//! end to end, with every table read by Python deltalake and DuckDB's Delta extension.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::support::*;

fn table_url(dir: &Path) -> String {
    url_of(&dir.join("table"))
}

fn read(dir: &Path) -> TableRead {
    read_delta(&table_url(dir), &json!({}))
}

/// Every action of every commit still in the table's log, by version.
fn log_actions(dir: &Path) -> BTreeMap<i64, Vec<Value>> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(dir.join("table/_delta_log")).expect("log") {
        let p = e.expect("entry").path();
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let Some(v) = name
            .strip_suffix(".json")
            .and_then(|v| v.parse::<i64>().ok())
        else {
            continue;
        };
        let text = std::fs::read_to_string(&p).expect("read commit");
        out.insert(
            v,
            text.lines()
                .map(|l| serde_json::from_str(l).expect("action JSON"))
                .collect(),
        );
    }
    out
}

/// The newest protocol action in the log.
fn protocol(dir: &Path) -> Value {
    log_actions(dir)
        .values()
        .rev()
        .flat_map(|actions| actions.iter().rev())
        .find_map(|a| a.get("protocol").cloned())
        .expect("a protocol action")
}

fn has_feature(p: &Value, list: &str, feature: &str) -> bool {
    p[list]
        .as_array()
        .is_some_and(|f| f.iter().any(|x| x == feature))
}

/// The type each column had in every schema the log ever committed: a column's type must
/// never change (a commit that replaces it leaves files readers cannot read).
fn column_types_over_time(dir: &Path) -> BTreeMap<String, Vec<Value>> {
    let mut out: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for actions in log_actions(dir).values() {
        for a in actions {
            let Some(schema) = a["metaData"]["schemaString"].as_str() else {
                continue;
            };
            let schema: Value = serde_json::from_str(schema).expect("schema JSON");
            for f in schema["fields"].as_array().expect("fields") {
                let types = out
                    .entry(f["name"].as_str().expect("name").to_string())
                    .or_default();
                if types.last() != Some(&f["type"]) {
                    types.push(f["type"].clone());
                }
            }
        }
    }
    out
}

fn config_with(dir: &Path, id: &str, source: &str, rest: &str) -> PathBuf {
    write_config(
        dir,
        &format!(
            "pipeline_id = \"{id}\"\n[source]\nurl = \"landing\"\n{source}\n{rest}\n[checkpoint]\nlocation = \"state\"\n"
        ),
    )
}

fn sink(extra: &str) -> String {
    format!("[sink]\ntable = \"table\"\n{extra}\n")
}

fn write(dir: &Path, name: &str, text: &str) {
    let path = dir.join("landing").join(name);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, text).expect("write");
}

// 1. A timestamp_ntz column added by evolution declares its table feature in that commit.

#[test]
fn a_timestamp_ntz_column_added_later_upgrades_the_protocol_in_its_commit() {
    let tmp = tempfile::tempdir().expect("tempdir");
    write(tmp.path(), "a.json", "{\"id\":1}\n");
    let cfg = config_with(tmp.path(), "ntz", "", &sink(""));
    drain(&cfg, &[], &[]);
    assert_eq!(
        protocol(tmp.path())["minReaderVersion"],
        1,
        "a plain table stays at reader 1"
    );

    // The hint added to an existing pipeline, and data for it.
    write(
        tmp.path(),
        "b.json",
        "{\"id\":2,\"at\":\"2026-11-30T08:15:00\"}\n",
    );
    let cfg = config_with(
        tmp.path(),
        "ntz",
        "",
        &format!("[schema]\nhints = \"at TIMESTAMP_NTZ\"\n{}", sink("")),
    );
    drain(&cfg, &[], &[]);
    let p = protocol(tmp.path());
    assert_eq!(
        (
            p["minReaderVersion"].as_i64(),
            p["minWriterVersion"].as_i64()
        ),
        (Some(3), Some(7)),
        "{p}"
    );
    assert!(
        has_feature(&p, "readerFeatures", "timestampNtz")
            && has_feature(&p, "writerFeatures", "timestampNtz"),
        "{p}"
    );
    // The protocol and the schema arrive in one commit.
    let log = log_actions(tmp.path());
    let (_, evolving) = log
        .iter()
        .find(|(_, a)| {
            a.iter().any(|x| {
                x["metaData"]["schemaString"]
                    .as_str()
                    .is_some_and(|s| s.contains("timestamp_ntz"))
            })
        })
        .expect("the evolving commit");
    assert!(
        evolving.iter().any(|x| x.get("protocol").is_some()),
        "{evolving:?}"
    );

    // Later runs go on, and both readers read every version's rows.
    write(
        tmp.path(),
        "c.json",
        "{\"id\":3,\"at\":\"2026-11-30T09:00:00\"}\n",
    );
    drain(&cfg, &[], &[]);
    let t = read(tmp.path());
    assert_eq!(t.ints("id"), vec![1, 2, 3]);
    let at: Vec<&Value> = t
        .rows
        .iter()
        .filter(|r| r["id"] == 2)
        .map(|r| &r["at"])
        .collect();
    assert_eq!(at, vec![&json!("2026-11-30 08:15:00")]);
}

#[test]
fn a_timestamp_ntz_column_added_by_a_merge_upgrades_the_protocol() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let merge = "mode = \"merge\"\nkeys = [\"id\"]\nsequence_by = \"seq\"";
    write(
        tmp.path(),
        "a.json",
        "{\"id\":1,\"seq\":1}\n{\"id\":2,\"seq\":1}\n",
    );
    let cfg = config_with(tmp.path(), "ntzm", "", &sink(merge));
    drain(&cfg, &[], &[]);
    write(
        tmp.path(),
        "b.json",
        "{\"id\":2,\"seq\":2,\"at\":\"2026-01-02T03:04:05\"}\n",
    );
    let cfg = config_with(
        tmp.path(),
        "ntzm",
        "",
        &format!("[schema]\nhints = \"at TIMESTAMP_NTZ\"\n{}", sink(merge)),
    );
    drain(&cfg, &[], &[]);
    let p = protocol(tmp.path());
    assert!(has_feature(&p, "readerFeatures", "timestampNtz"), "{p}");
    let t = read(tmp.path());
    assert_eq!(t.ints("id"), vec![1, 2]);
    let row2 = t.rows.iter().find(|r| r["id"] == 2).expect("row 2");
    assert_eq!(row2["at"], json!("2026-01-02 03:04:05"));
    assert_eq!(row2["seq"], 2);
}

/// The exact table the bug produced: a commit whose schema has a timestamp_ntz column while
/// the protocol stays at reader 1 / writer 2. inlet names the problem and the repair, the
/// repair adds the feature, and the pipeline goes on.
#[test]
fn a_table_bricked_by_an_undeclared_timestamp_ntz_is_named_and_repaired() {
    let tmp = tempfile::tempdir().expect("tempdir");
    write(tmp.path(), "a.json", "{\"id\":1}\n");
    let cfg = config_with(tmp.path(), "brick", "", &sink(""));
    drain(&cfg, &[], &[]);
    // What the old inlet committed: a metaData action with the new column, no protocol.
    let log = log_actions(tmp.path());
    let (last, actions) = log.iter().next_back().expect("a commit");
    let mut meta = log
        .values()
        .flat_map(|a| a.iter())
        .find_map(|a| a.get("metaData").cloned())
        .expect("metadata");
    let mut schema: Value =
        serde_json::from_str(meta["schemaString"].as_str().expect("schema")).expect("json");
    schema["fields"]
        .as_array_mut()
        .expect("fields")
        .push(json!({"name": "at", "type": "timestamp_ntz", "nullable": true, "metadata": {}}));
    meta["schemaString"] = json!(schema.to_string());
    let info = actions
        .iter()
        .find_map(|a| a.get("commitInfo").cloned())
        .expect("commitInfo");
    let bricked = format!(
        "{}\n{}\n",
        json!({"commitInfo": info}),
        json!({"metaData": meta})
    );
    std::fs::write(
        tmp.path()
            .join(format!("table/_delta_log/{:020}.json", last + 1)),
        bricked,
    )
    .expect("write commit");

    write(tmp.path(), "b.json", "{\"id\":2}\n");
    let err = fails(&cfg, &["run", "--available-now"]);
    assert!(
        err.contains("need table feature(s) 'timestampNtz' (column at is timestamp_ntz)"),
        "{err}"
    );
    assert!(err.contains("protocol (reader 1, writer 2)"), "{err}");
    assert!(err.contains("so readers and writers refuse it"), "{err}");
    assert!(err.contains("inlet table repair-protocol"), "{err}");
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "one line, no backtrace: {err}"
    );
    let validate = fails(&cfg, &["validate"]);
    assert!(
        validate.contains("inlet table repair-protocol"),
        "{validate}"
    );

    let out = run_ok(
        &[
            "table",
            "repair-protocol",
            "--config",
            cfg.to_str().expect("utf8"),
        ],
        &[],
    );
    assert!(
        out.contains("added 'timestampNtz': column at is timestamp_ntz"),
        "{out}"
    );
    let p = protocol(tmp.path());
    assert!(has_feature(&p, "readerFeatures", "timestampNtz"), "{p}");
    // Repairing a healthy table does nothing.
    let again = run_ok(
        &[
            "table",
            "repair-protocol",
            "--config",
            cfg.to_str().expect("utf8"),
        ],
        &[],
    );
    assert!(again.contains("nothing to do"), "{again}");

    drain(&cfg, &[], &[]);
    let t = read(tmp.path());
    assert_eq!(t.ints("id"), vec![1, 2]);
}

/// A MERGE whose SQL makes types Delta stores otherwise (a nanosecond timestamp, an unsigned
/// size) merges batch after batch: the batch's columns are compared as Delta types and cast
/// to the table's.
#[test]
fn a_merge_whose_sql_makes_types_delta_stores_otherwise_keeps_merging() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = config_with(
        tmp.path(),
        "typed",
        "",
        &format!(
            "[transform]\nsql = \"SELECT id, seq, CAST(at AS TIMESTAMP) AS t, _metadata.file_size AS n FROM source\"\n{}",
            sink("mode = \"merge\"\nkeys = [\"id\"]\nsequence_by = \"seq\"")
        ),
    );
    write(
        tmp.path(),
        "a.json",
        "{\"id\":1,\"seq\":1,\"at\":\"2026-01-01T00:00:00Z\"}\n",
    );
    drain(&cfg, &[], &[]);
    write(
        tmp.path(),
        "b.json",
        "{\"id\":1,\"seq\":2,\"at\":\"2026-02-01T00:00:00Z\"}\n{\"id\":2,\"seq\":1,\"at\":null}\n",
    );
    drain(&cfg, &[], &[]);
    let t = read(tmp.path());
    assert_eq!(t.ints("id"), vec![1, 2]);
    let row1 = t.rows.iter().find(|r| r["id"] == 1).expect("row 1");
    assert!(
        row1["t"]
            .as_str()
            .is_some_and(|v| v.starts_with("2026-02-01")),
        "{row1}"
    );
    assert!(row1["n"].as_i64().is_some_and(|n| n > 0), "{row1}");
}

// 2. `SELECT *` leaves `_metadata` out, as Spark does.

#[test]
fn select_star_with_a_metadata_field_does_not_store_metadata() {
    let tmp = tempfile::tempdir().expect("tempdir");
    write(tmp.path(), "a.json", "{\"id\":1}\n{\"id\":2}\n");
    let cfg = config_with(
        tmp.path(),
        "meta",
        "",
        &format!(
            "[transform]\nsql = \"SELECT *, _metadata.file_name AS _source_file FROM source\"\n{}",
            sink("")
        ),
    );
    drain(&cfg, &[], &[]);
    let t = read(tmp.path());
    for r in &t.rows {
        let cols: Vec<&String> = r.as_object().expect("row").keys().collect();
        assert!(!cols.iter().any(|c| *c == "_metadata"), "{cols:?}");
        assert_eq!(r["_source_file"], "a.json");
    }
}

// 3. A new column's type comes from the whole batch, not from the first file with it.

#[test]
fn a_new_column_is_typed_over_the_whole_batch() {
    let tmp = tempfile::tempdir().expect("tempdir");
    write(tmp.path(), "a.json", "{\"id\":1}\n");
    let cfg = config_with(tmp.path(), "wide", "", &sink(""));
    drain(&cfg, &[], &[]);
    // One batch: the column first appears as an integer, then as fractions in later files.
    write(tmp.path(), "b1.json", "{\"id\":2,\"x\":1}\n");
    for i in 3..8 {
        write(
            tmp.path(),
            &format!("b{i}.json"),
            &format!("{{\"id\":{i},\"x\":{i}.5}}\n"),
        );
    }
    let text = drain(&cfg, &["--json"], &[]);
    let summary: Value = serde_json::from_str(text.trim()).expect("json");
    assert_eq!(summary["batches"], 1, "{summary}");
    let t = read(tmp.path());
    assert_eq!(t.ints("id"), (1..8).collect::<Vec<_>>());
    for r in &t.rows {
        assert!(
            r.get("_rescued_data").is_none_or(Value::is_null),
            "nothing rescued: {r}"
        );
    }
    let x: BTreeMap<i64, f64> = t
        .rows
        .iter()
        .filter_map(|r| Some((r["id"].as_i64()?, r["x"].as_f64()?)))
        .collect();
    assert_eq!(x.get(&2), Some(&1.0));
    assert_eq!(x.get(&7), Some(&7.5));
    assert_eq!(
        column_types_over_time(tmp.path())["x"],
        vec![json!("double")]
    );
}

// Nearly distinct columns are written plain, and row groups stay bounded; readers see every
// value as written.

#[test]
fn nearly_distinct_columns_are_written_without_a_dictionary_and_read_whole() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let rows = 270_000i64;
    let kinds = ["INSERT", "MODIFY", "REMOVE"];
    let text: String = (0..rows)
        .map(|i| {
            format!(
                "{{\"id\":{i},\"key\":\"ORDER#{:09}\",\"kind\":\"{}\"}}\n",
                i * 7919 % 1_000_000_007,
                kinds[(i % 3) as usize]
            )
        })
        .collect();
    write(tmp.path(), "bulk.json", &text);
    let cfg = config_with(tmp.path(), "plain", "", &sink(""));
    drain(&cfg, &[], &[]);
    let t = read(tmp.path());
    assert_eq!(t.ints("id"), (0..rows).collect::<Vec<_>>());
    let modify = t.rows.iter().filter(|r| r["kind"] == "MODIFY").count();
    assert_eq!(modify as i64, rows / 3);
    assert!(t
        .rows
        .iter()
        .any(|r| r["id"] == 5 && r["key"] == "ORDER#000039595"));
    assert_eq!(
        polars_count(&table_url(tmp.path()), &json!({})),
        rows as u64
    );
    let files: Vec<PathBuf> = std::fs::read_dir(tmp.path().join("table"))
        .expect("table dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "parquet"))
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let layout = parquet_layout(&files[0]);
    assert_eq!(
        layout["row_groups"],
        json!([262_144, rows - 262_144]),
        "{layout}"
    );
    assert_eq!(layout["dictionary"]["id"], false, "{layout}");
    assert_eq!(layout["dictionary"]["key"], false, "{layout}");
    assert_eq!(layout["dictionary"]["kind"], true, "{layout}");
}

/// A copy-on-write MERGE rewrites the table's files through delta-rs's writer, which on its
/// own starts a dictionary for every column; inlet hands it the encoding judged from the
/// batch: no dictionary for the nearly distinct `key`, one for `kind`. Readers see every
/// updated and inserted row.
#[test]
fn a_merge_rewrites_files_without_a_dictionary_for_nearly_distinct_columns() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let rows = 3_000i64;
    let kinds = ["INSERT", "MODIFY", "REMOVE"];
    // The second batch updates every row and inserts 500 more.
    let batch = |seq: i64, rows: i64| -> String {
        (0..rows)
            .map(|i| {
                format!(
                    "{{\"id\":{i},\"seq\":{seq},\"key\":\"ORDER#{:09}#{seq}\",\"kind\":\"{}\"}}\n",
                    i * 7919 % 1_000_000_007,
                    kinds[(i % 3) as usize]
                )
            })
            .collect()
    };
    let merge = sink(
        "mode = \"merge\"\nkeys = [\"id\"]\nsequence_by = \"seq\"\nmerge_strategy = \"copy_on_write\"",
    );
    write(tmp.path(), "a.json", &batch(1, rows));
    let cfg = config_with(tmp.path(), "mergelayout", "", &merge);
    drain(&cfg, &[], &[]);
    write(tmp.path(), "b.json", &batch(2, rows + 500));
    drain(&cfg, &[], &[]);
    let t = read(tmp.path());
    assert_eq!(t.ints("id"), (0..rows + 500).collect::<Vec<_>>());
    assert!(t.rows.iter().all(|r| r["seq"] == 2), "an update was lost");
    assert!(t
        .rows
        .iter()
        .any(|r| r["id"] == 5 && r["key"] == "ORDER#000039595#2"));
    assert_eq!(
        polars_count(&table_url(tmp.path()), &json!({})),
        rows as u64 + 500
    );
    // The files the second batch's MERGE wrote: those its commit adds.
    let log = log_actions(tmp.path());
    let last = log
        .values()
        .rev()
        .find(|actions| {
            actions
                .iter()
                .any(|a| a["commitInfo"]["operation"] == "MERGE")
        })
        .expect("a MERGE commit");
    let added: Vec<&str> = last
        .iter()
        .filter_map(|a| a["add"]["path"].as_str())
        .collect();
    assert!(!added.is_empty(), "{last:?}");
    for file in added {
        let layout = parquet_layout(&tmp.path().join("table").join(file));
        assert_eq!(layout["dictionary"]["key"], false, "{file}: {layout}");
        assert_eq!(layout["dictionary"]["kind"], true, "{file}: {layout}");
    }
}

// 4. Empty partition values are null, as the protocol reads them.

#[test]
fn empty_and_null_partition_values_are_written_as_null() {
    let tmp = tempfile::tempdir().expect("tempdir");
    write(tmp.path(), "region=eu/a.json", "{\"id\":1}\n");
    write(tmp.path(), "region=/b.json", "{\"id\":2}\n");
    write(
        tmp.path(),
        "region=__HIVE_DEFAULT_PARTITION__/c.json",
        "{\"id\":3}\n",
    );
    let cfg = config_with(
        tmp.path(),
        "parts",
        "partition_columns = [\"region\"]",
        &sink("partition_by = [\"region\"]"),
    );
    drain(&cfg, &[], &[]);
    let values: Vec<Value> = log_actions(tmp.path())
        .values()
        .flatten()
        .filter_map(|a| a["add"]["partitionValues"].get("region").cloned())
        .collect();
    // `region=` and Hive's default partition are one partition: null, written as JSON null.
    assert!(
        values.contains(&Value::Null) && values.contains(&json!("eu")),
        "{values:?}"
    );
    assert!(!values.contains(&json!("")), "{values:?}");
    // Both readers agree (read_delta checks DuckDB against deltalake), and so does polars.
    let t = read(tmp.path());
    let regions: BTreeMap<i64, Value> = t
        .rows
        .iter()
        .map(|r| (r["id"].as_i64().expect("id"), r["region"].clone()))
        .collect();
    assert_eq!(
        regions,
        BTreeMap::from([(1, json!("eu")), (2, Value::Null), (3, Value::Null)])
    );
    let nulls = python_ok(&["polars-null-count", &table_url(tmp.path()), "{}", "region"]);
    assert_eq!(nulls.trim(), "2");

    // A data column partition with "" and null round-trips the same way.
    let tmp = tempfile::tempdir().expect("tempdir");
    write(
        tmp.path(),
        "a.json",
        "{\"id\":1,\"k\":\"\"}\n{\"id\":2,\"k\":null}\n{\"id\":3,\"k\":\"x\"}\n",
    );
    let cfg = config_with(tmp.path(), "parts2", "", &sink("partition_by = [\"k\"]"));
    drain(&cfg, &[], &[]);
    let t = read(tmp.path());
    let ks: BTreeMap<i64, Value> = t
        .rows
        .iter()
        .map(|r| (r["id"].as_i64().expect("id"), r["k"].clone()))
        .collect();
    assert_eq!(
        ks,
        BTreeMap::from([(1, Value::Null), (2, Value::Null), (3, json!("x"))])
    );
}

// 5. Two pipelines adding one column with two types never corrupt the table.

#[test]
fn two_pipelines_adding_one_column_with_two_types_keep_the_table_readable() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let pipeline = |name: &str| {
        let d = dir.join(name);
        std::fs::create_dir_all(d.join("landing")).expect("mkdir");
        write_config(
            &d,
            &format!(
                "pipeline_id = \"{name}\"\n[source]\nurl = \"landing\"\n[sink]\ntable = \"{}\"\n[checkpoint]\nlocation = \"state\"\n",
                dir.join("table").display()
            ),
        )
    };
    let (a, b) = (pipeline("a"), pipeline("b"));
    std::fs::write(dir.join("a/landing/start.json"), "{\"id\":0}\n").expect("write");
    drain(&a, &[], &[]);
    let mut ids = vec![0];
    let rounds = campaign_size("INLET_CAMPAIGN_SCHEMA_RACES", 6);
    for round in 1..=rounds as i64 {
        let col = format!("x{round}");
        std::fs::write(
            dir.join(format!("a/landing/r{round}.json")),
            format!("{{\"id\":{},\"{col}\":{round}}}\n", round * 10),
        )
        .expect("write");
        std::fs::write(
            dir.join(format!("b/landing/r{round}.json")),
            format!("{{\"id\":{},\"{col}\":\"s{round}\"}}\n", round * 10 + 1),
        )
        .expect("write");
        ids.extend([round * 10, round * 10 + 1]);
        let ra = Running::start(&a, &[], &["--available-now"]);
        let rb = Running::start(&b, &[], &["--available-now"]);
        for (run, name) in [(ra, "a"), (rb, "b")] {
            let (status, log) = run.wait();
            assert!(status.success(), "pipeline {name}, round {round}: {log}");
        }
        // Both readers read the table after every round.
        let t = read(dir);
        let mut want = ids.clone();
        want.sort_unstable();
        assert_eq!(t.ints("id"), want, "round {round}: every row exactly once");
    }
    for (column, types) in column_types_over_time(dir) {
        assert_eq!(types.len(), 1, "column {column} changed type: {types:?}");
    }
}

// 6. A deeply nested line keeps its data as JSON text beyond the nesting limit.

#[test]
fn a_line_nested_beyond_the_limit_keeps_the_table_readable() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let nested = |depth: usize| {
        let mut v = json!(1);
        for _ in 0..depth {
            v = json!({ "n": v });
        }
        v
    };
    write(
        tmp.path(),
        "a.json",
        &format!(
            "{}\n{}\n",
            json!({"id": 1, "deep": nested(42)}),
            json!({"id": 2, "deep": nested(100)})
        ),
    );
    let cfg = config_with(tmp.path(), "deep", "", &sink(""));
    drain(&cfg, &[], &[]);
    write(
        tmp.path(),
        "b.json",
        &format!("{}\n", json!({"id": 3, "deep": nested(42)})),
    );
    drain(&cfg, &[], &[]);
    let t = read(tmp.path());
    assert_eq!(t.ints("id"), vec![1, 2, 3]);
    // Nothing of the value is lost: its innermost levels are kept as JSON text.
    let text = t.rows[0].to_string();
    assert!(text.matches("\\\"n\\\"").count() > 0, "{text}");
}

// 7. Keys that differ only by case, in different files or within one.

#[test]
fn keys_differing_only_by_case_make_one_column_and_rescue_the_other() {
    let tmp = tempfile::tempdir().expect("tempdir");
    write(tmp.path(), "a.json", "{\"id\":1,\"Qq\":1}\n");
    write(tmp.path(), "b.json", "{\"id\":2,\"qQ\":2}\n");
    write(tmp.path(), "c.json", "{\"id\":3,\"Äx\":3,\"äx\":4}\n");
    let cfg = config_with(tmp.path(), "case", "", &sink(""));
    drain(&cfg, &[], &[]);
    // Later files with the other spelling, in later runs.
    write(tmp.path(), "d.json", "{\"id\":4,\"qQ\":5,\"ÄX\":6}\n");
    drain(&cfg, &[], &[]);
    let t = read(tmp.path());
    assert_eq!(t.ints("id"), vec![1, 2, 3, 4]);
    let row = |id: i64| t.rows.iter().find(|r| r["id"] == id).expect("row").clone();
    assert_eq!(row(1)["Qq"], 1);
    let rescued: Value =
        serde_json::from_str(row(4)["_rescued_data"].as_str().expect("rescued")).expect("json");
    assert_eq!(
        (&rescued["qQ"], &rescued["ÄX"]),
        (&json!(5), &json!(6)),
        "{rescued}"
    );
}

// 8. A source field named like the rescued data column.

#[test]
fn a_field_named_like_the_rescued_column_does_not_type_it() {
    let tmp = tempfile::tempdir().expect("tempdir");
    write(tmp.path(), "a.json", "{\"id\":1,\"_rescued_data\":5}\n");
    let cfg = config_with(tmp.path(), "resc", "", &sink(""));
    drain(&cfg, &[], &[]);
    // A later file needing a rescue is taken, its rows kept.
    write(tmp.path(), "b.json", "{\"id\":\"two\"}\n{\"id\":3}\n");
    drain(&cfg, &[], &[]);
    let t = read(tmp.path());
    assert_eq!(t.rows.len(), 3);
    assert_eq!(
        column_types_over_time(tmp.path())["_rescued_data"],
        vec![json!("string")]
    );
    let rescued: Vec<Value> = t
        .rows
        .iter()
        .filter_map(|r| r["_rescued_data"].as_str())
        .map(|s| serde_json::from_str(s).expect("json"))
        .collect();
    assert!(
        rescued.iter().any(|r| r["_rescued_data"] == 5),
        "{rescued:?}"
    );
    assert!(rescued.iter().any(|r| r["id"] == "two"), "{rescued:?}");
}

// 9. `checkpoint rebuild` refuses when log clean-up removed the pipeline's commits.

#[test]
fn rebuild_after_log_cleanup_refuses_instead_of_reingesting() {
    let tmp = tempfile::tempdir().expect("tempdir");
    for i in 0..4 {
        write(
            tmp.path(),
            &format!("f{i}.json"),
            &format!("{{\"id\":{i}}}\n"),
        );
    }
    let cfg = config_with(tmp.path(), "clean", "max_files_per_batch = 1", &sink(""));
    drain(&cfg, &[], &[]);
    let url = table_url(tmp.path());
    // A Delta checkpoint, then the log's older commits removed, as log clean-up does.
    python_ok(&["checkpoint-and-clean", &url, "2"]);
    std::fs::remove_dir_all(tmp.path().join("state")).expect("lose the checkpoint");
    let err = fails(&cfg, &["checkpoint", "rebuild"]);
    assert!(err.contains("its log now starts at version"), "{err}");
    assert!(err.contains("batches 1 to"), "{err}");
    assert!(err.contains("Nothing was changed"), "{err}");
    assert!(
        !tmp.path().join("state/inlet.db").exists(),
        "no checkpoint was made"
    );

    // Every commit of the pipeline gone: the message says so, not "never committed".
    write(tmp.path(), "g.json", "{\"id\":9}\n");
    python_ok(&["append-delta", &url, "100", "2"]);
    python_ok(&["checkpoint-and-clean", &url, "1"]);
    let err = fails(&cfg, &["checkpoint", "rebuild"]);
    assert!(err.contains("include none of this pipeline's"), "{err}");
    assert!(!err.contains("never committed"), "{err}");
    assert_eq!(read(tmp.path()).rows.len(), 6, "nothing taken twice");
}

// 14. MERGE rows with a null key are bad records, in one batch and across batches.

#[test]
fn merge_rows_with_a_null_key_are_bad_records() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let merge = "mode = \"merge\"\nkeys = [\"id\"]\nsequence_by = \"seq\"";
    write(
        tmp.path(),
        "a.json",
        "{\"id\":1,\"seq\":1,\"v\":\"a\"}\n{\"id\":null,\"seq\":1,\"v\":\"b\"}\n{\"seq\":2,\"v\":\"c\"}\n",
    );
    let cfg = config_with(tmp.path(), "nullkey", "", &sink(merge));
    drain(&cfg, &[], &[]);
    write(
        tmp.path(),
        "b.json",
        "{\"seq\":3,\"v\":\"d\"}\n{\"id\":1,\"seq\":2,\"v\":\"e\"}\n",
    );
    drain(&cfg, &[], &[]);
    let t = read(tmp.path());
    assert_eq!(t.rows.len(), 1, "{:?}", t.rows);
    assert_eq!(
        (&t.rows[0]["id"], &t.rows[0]["v"]),
        (&json!(1), &json!("e"))
    );
    let bad = bad_records_under(&tmp.path().join("state/bad_records"));
    let mut refused: Vec<String> = bad
        .iter()
        .filter(|b| {
            b["error"]
                .as_str()
                .is_some_and(|e| e.contains("key column (id) is null"))
        })
        .map(|b| {
            serde_json::from_str::<Value>(b["raw"].as_str().expect("raw")).expect("row")["v"]
                .as_str()
                .expect("v")
                .to_string()
        })
        .collect();
    refused.sort();
    assert_eq!(refused, vec!["b", "c", "d"]);
    assert!(
        bad.iter().all(|b| b["file"]
            .as_str()
            .is_some_and(|f| f.ends_with("a.json") || f.ends_with("b.json"))),
        "{bad:?}"
    );
}

// 16. `validate` refuses what `run` refuses at start.

#[test]
fn validate_refuses_what_run_refuses() {
    let tmp = tempfile::tempdir().expect("tempdir");
    write(tmp.path(), "a.json", "{\"id\":1,\"seq\":1,\"op\":\"u\"}\n");
    let merge = "mode = \"merge\"\nkeys = [\"id\"]\nsequence_by = \"seq\"";
    let good = config_with(tmp.path(), "val", "", &sink(merge));
    drain(&good, &[], &[]);
    let cases: Vec<(String, &str)> = vec![
        (
            sink(&format!("{merge}\ndelete_when = \"op = \"")),
            "sink.delete_when 'op = ' is not a valid predicate",
        ),
        (
            sink(&format!("{merge}\ndelete_when = \"nope = 'd'\"")),
            "sink.delete_when 'nope = 'd''",
        ),
        (
            format!(
                "[transform]\nsql = \"SELEC id FROM source\"\n{}",
                sink(merge)
            ),
            "transform.sql does not plan",
        ),
        (
            format!(
                "[transform]\nsql = \"SELECT idd FROM source\"\n{}",
                sink(merge)
            ),
            "transform.sql does not plan",
        ),
        (
            sink("mode = \"merge\"\nkeys = [\"key\"]\nsequence_by = \"seq\""),
            "sink.keys names column 'key'",
        ),
        (
            sink("mode = \"merge\"\nkeys = [\"id\"]\nsequence_by = \"when\""),
            "sink.sequence_by names column 'when'",
        ),
    ];
    for (rest, expected) in cases {
        let cfg = config_with(tmp.path(), "val", "", &rest);
        for cmd in [vec!["validate"], vec!["run", "--available-now"]] {
            let err = fails(&cfg, &cmd);
            assert!(err.contains(expected), "{cmd:?} with {rest}: {err}");
        }
    }
    // Paths that are files where directories belong.
    let other = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(other.path().join("landing")).expect("mkdir");
    std::fs::write(other.path().join("table"), "not a table").expect("write");
    let cfg = config_with(other.path(), "val", "", &sink(""));
    for cmd in [vec!["validate"], vec!["run", "--available-now"]] {
        let err = fails(&cfg, &cmd);
        assert!(err.contains("is a file, not a directory"), "{cmd:?}: {err}");
        assert!(!err.contains("os error 17"), "{err}");
    }
    std::fs::remove_file(other.path().join("table")).expect("rm");
    std::fs::write(other.path().join("state"), "not a checkpoint").expect("write");
    for cmd in [vec!["validate"], vec!["run", "--available-now"]] {
        let err = fails(&cfg, &cmd);
        assert!(
            err.contains("checkpoint directory") && err.contains("is a file, not a directory"),
            "{cmd:?}: {err}"
        );
    }
}

// 10 and 17. Names the object store cannot address, and symlink loops, are skipped and named.

#[test]
fn odd_local_names_and_symlink_loops_are_skipped_and_the_rest_taken() {
    let tmp = tempfile::tempdir().expect("tempdir");
    write(tmp.path(), "good1.json", "{\"id\":1}\n");
    write(tmp.path(), "sub/good2.json", "{\"id\":2}\n");
    for name in ["tab\tname.json", "line\nfeed.json", "carriage\rreturn.json"] {
        write(tmp.path(), name, "{\"id\":99}\n");
    }
    std::os::unix::fs::symlink(".", tmp.path().join("landing/loop")).expect("symlink");
    std::os::unix::fs::symlink("..", tmp.path().join("landing/sub/up")).expect("symlink");
    let cfg = config_with(tmp.path(), "odd", "", &sink(""));
    let out = try_drain(&cfg, &[], &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(!err.contains("retrying"), "nothing is retried: {err}");
    assert!(
        !err.contains('\r'),
        "control characters are escaped in logs: {err}"
    );
    assert_eq!(read(tmp.path()).ints("id"), vec![1, 2]);
    let skipped = files_in_state(&cfg, "skipped");
    let reasons: Vec<String> = skipped
        .iter()
        .map(|f| format!("{} {}", f["path"], f["error"]))
        .collect();
    let with = |what: &str| {
        skipped
            .iter()
            .filter(|f| f["error"].as_str().is_some_and(|e| e.contains(what)))
            .count()
    };
    assert_eq!(
        (
            skipped.len(),
            with("control character"),
            with("symbolic link loop")
        ),
        (5, 3, 2),
        "{reasons:#?}"
    );
}

/// A first batch whose sampled files hold no column must not commit the files beyond the
/// sample unread, and unreadable files in it are failed, not committed.
#[test]
fn files_beyond_an_empty_sample_are_read() {
    let tmp = tempfile::tempdir().expect("tempdir");
    for i in 0..3 {
        write(tmp.path(), &format!("a{i}.json"), "\n");
    }
    write(tmp.path(), "b.json", "{\"id\":7}\n");
    write(tmp.path(), "c.json.gz", "not gzip at all");
    let cfg = config_with(
        tmp.path(),
        "sample",
        "",
        &format!("[schema]\nsample_files = 2\n{}", sink("")),
    );
    drain(&cfg, &[], &[]);
    assert_eq!(read(tmp.path()).ints("id"), vec![7]);
    let failed = files_in_state(&cfg, "failed");
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(failed[0]["path"]
        .as_str()
        .is_some_and(|p| p.ends_with("c.json.gz")));

    // The same when every file of the batch is empty, `{}` records or broken: the broken
    // one failed, the others taken with no rows, and no table.
    let tmp = tempfile::tempdir().expect("tempdir");
    write(tmp.path(), "a.json", "");
    write(tmp.path(), "c.json.gz", "not gzip at all");
    write(tmp.path(), "d.json", "{}\n{}\n");
    let cfg = config_with(tmp.path(), "sample2", "", &sink(""));
    drain(&cfg, &[], &[]);
    let failed = files_in_state(&cfg, "failed");
    assert_eq!(failed.len(), 1, "{failed:?}");
    let taken = files_in_state(&cfg, "committed");
    assert!(
        taken
            .iter()
            .any(|f| f["path"].as_str().is_some_and(|p| p.ends_with("d.json"))),
        "{taken:?}"
    );
    assert!(
        !tmp.path().join("table/_delta_log").exists(),
        "no table without a column"
    );
}

/// Data files in the table's directory, and those the log adds (no orphan left behind).
fn data_files(dir: &Path) -> (usize, usize) {
    let on_disk = std::fs::read_dir(dir.join("table"))
        .expect("table dir")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "parquet"))
        })
        .count();
    let added = log_actions(dir)
        .values()
        .flatten()
        .filter(|a| a.get("add").is_some())
        .count();
    (on_disk, added)
}

/// A first batch's files that fit the first file's inference are written while the schema
/// is inferred; kept when the table's schema only adds columns to them, and deleted and
/// decoded again when it changed a type under them. Either way every row lands once, with
/// the schema sampling every line gives.
#[test]
fn a_first_batch_is_written_while_its_schema_is_inferred() {
    let rows = |file: usize, extra: &str| -> String {
        (0..50)
            .map(|r| {
                let id = file * 50 + r;
                format!("{{\"id\":{id},\"name\":\"n{id}\",\"tags\":[\"t{r}\"],\"at\":{{\"k\":{r}}}{extra}}}\n")
            })
            .collect()
    };
    // File 3 brings a column; the others fit file 0's inference as written.
    let tmp = tempfile::tempdir().expect("tempdir");
    for f in 0..6 {
        let extra = if f == 3 { ",\"extra\":true" } else { "" };
        write(tmp.path(), &format!("f{f}.json"), &rows(f, extra));
    }
    let cfg = config_with(tmp.path(), "early", "", &sink(""));
    let stats: Value = serde_json::from_str(drain(&cfg, &["--json"], &[]).trim()).expect("json");
    // All but file 3, which is sampled; file 0, sampled first, is written as well.
    assert_eq!(stats["files_written_while_inferring"], 5, "{stats}");
    let table = read(tmp.path());
    assert_eq!(table.ints("id"), (0..300).collect::<Vec<i64>>());
    let extra: Vec<&Value> = table.rows.iter().map(|r| &r["extra"]).collect();
    assert_eq!(extra.iter().filter(|v| **v == &json!(true)).count(), 50);
    assert_eq!(extra.iter().filter(|v| v.is_null()).count(), 250);
    assert!(table
        .rows
        .iter()
        .all(|r| r["at"]["k"].is_i64() && r["tags"][0].is_string()));
    assert_eq!(polars_count(&table_url(tmp.path()), &json!({})), 300);
    let (on_disk, added) = data_files(tmp.path());
    assert_eq!(on_disk, added, "every data file written is committed");
    let schema = log_actions(tmp.path())[&0]
        .iter()
        .find_map(|a| a.get("metaData").map(|m| m["schemaString"].clone()))
        .expect("version 0 has the schema");
    let schema: Value = serde_json::from_str(schema.as_str().expect("text")).expect("schema JSON");
    let names: Vec<&str> = schema["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .filter_map(|f| f["name"].as_str())
        .collect();
    assert!(
        names.contains(&"extra"),
        "the first schema has every sampled column: {names:?}"
    );

    // File 2 makes `id` a double: the files written as long are deleted and decoded again.
    let tmp = tempfile::tempdir().expect("tempdir");
    for f in 0..5 {
        let mut text = rows(f, "");
        if f == 2 {
            text.push_str("{\"id\":0.5}\n");
        }
        write(tmp.path(), &format!("f{f}.json"), &text);
    }
    let cfg = config_with(tmp.path(), "early2", "", &sink(""));
    let stats: Value = serde_json::from_str(drain(&cfg, &["--json"], &[]).trim()).expect("json");
    assert_eq!(stats["files_written_while_inferring"], 0, "{stats}");
    assert_eq!(stats["rows"], 251, "{stats}");
    let table = read(tmp.path());
    let mut ids: Vec<f64> = table
        .rows
        .iter()
        .map(|r| r["id"].as_f64().expect("id is a double"))
        .collect();
    ids.sort_by(f64::total_cmp);
    let mut want: Vec<f64> = (0..250).map(|i| i as f64).collect();
    want.push(0.5);
    want.sort_by(f64::total_cmp);
    assert_eq!(ids, want);
    let (on_disk, added) = data_files(tmp.path());
    assert_eq!(on_disk, added, "the files written as long were deleted");
}

// A table's own rules: CHECK constraints refuse a batch, generated columns are computed.

#[test]
fn a_table_with_a_check_constraint_and_a_generated_column_keeps_both() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    // Made by Python deltalake: `amount > 0`, `bucket` GENERATED ALWAYS AS (id % 10).
    python_ok(&["make-ruled-table", &table_url(dir)]);
    write(
        dir,
        "a.json",
        "{\"id\":12,\"amount\":3}\n{\"id\":23,\"amount\":-4}\n",
    );
    let cfg = config_with(dir, "ruled", "", &sink(""));
    let err = fails(&cfg, &["run", "--available-now"]);
    assert!(
        err.contains("break CHECK constraint positive (amount > 0) (1 of the 2 rows checked")
            && err.contains("amount = -4"),
        "{err}"
    );
    let t = read(dir);
    assert_eq!(
        t.ints("id"),
        vec![11],
        "nothing of the refused batch is in the table"
    );

    // Corrected at the source, the file is taken, and `bucket` is computed for its rows.
    write(
        dir,
        "a.json",
        "{\"id\":12,\"amount\":3}\n{\"id\":23,\"amount\":4}\n",
    );
    drain(&cfg, &[], &[]);
    let t = read(dir);
    assert_eq!(t.ints("id"), vec![11, 12, 23]);
    let mut buckets: Vec<(i64, i64)> = t
        .rows
        .iter()
        .map(|r| {
            (
                r["id"].as_i64().expect("id"),
                r["bucket"].as_i64().expect("bucket"),
            )
        })
        .collect();
    buckets.sort_unstable();
    assert_eq!(buckets, vec![(11, 1), (12, 2), (23, 3)]);
    assert_eq!(polars_count(&table_url(dir), &json!({})), 3);
}
