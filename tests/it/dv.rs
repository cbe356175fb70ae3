//! Merge-on-read MERGE with deletion vectors: the protocol says so exactly when a table has
//! them, a table that changes strategy and is compacted reads right at every version, readers
//! no one here wrote read the same rows, and a crash before the commit leaves only litter.

use std::path::Path;

use serde_json::Value;

use crate::merge::{
    deletion_vector_files, merge_config_as, model_of, named_files, table_state, write_files,
    History, Model, STRATEGIES,
};
use crate::support::*;

/// The table's current protocol action, from its JSON commits.
fn protocol_of(table: &Path) -> Value {
    let mut commits: Vec<_> = std::fs::read_dir(table.join("_delta_log"))
        .expect("log")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    commits.sort();
    let mut protocol = Value::Null;
    for c in commits {
        for line in std::fs::read_to_string(&c).expect("commit").lines() {
            let action: Value = serde_json::from_str(line).expect("action");
            if !action["protocol"].is_null() {
                protocol = action["protocol"].clone();
            }
        }
    }
    protocol
}

fn has_deletion_vectors(protocol: &Value) -> bool {
    let listed = |k: &str| {
        protocol[k]
            .as_array()
            .is_some_and(|a| a.iter().any(|f| f == "deletionVectors"))
    };
    listed("readerFeatures") && listed("writerFeatures")
}

/// Rows from readers whose ints may come as JSON strings (ClickHouse quotes 64-bit ints).
fn model_of_loose(rows: &[Value]) -> Model {
    let fixed: Vec<Value> = rows
        .iter()
        .map(|r| {
            let mut r = r.clone();
            for k in ["id", "v"] {
                if let Some(s) = r[k].as_str() {
                    r[k] = Value::from(s.parse::<i64>().expect("int text"));
                }
            }
            r
        })
        .collect();
    model_of(&fixed)
}

#[test]
fn tables_declare_deletion_vectors_exactly_when_they_have_them() {
    let history = History::generate(400, 21);
    let files = named_files(&history, 8, 2);
    let (first, rest) = files.split_at(4);
    // Created copy-on-write: reader 1 / writer 2, and it stays so.
    let tmp = tempfile::tempdir().expect("tempdir");
    let landing = tmp.path().join("landing");
    write_files(&landing, first);
    let cow = merge_config_as(tmp.path(), "p", "dynamodb_stream", "", STRATEGIES[1]);
    drain(&cow, &[], &[]);
    let table = tmp.path().join("table");
    let p = protocol_of(&table);
    assert_eq!(
        (
            p["minReaderVersion"].as_i64(),
            p["minWriterVersion"].as_i64()
        ),
        (Some(1), Some(2)),
        "{p}"
    );
    assert_eq!(deletion_vector_files(&table), 0);
    // The strategy left unset on an existing table without them: still copy-on-write, and
    // validate says why.
    let unset = merge_config_as(tmp.path(), "p", "dynamodb_stream", "", "");
    let shown = run_ok(
        &["validate", "--config", unset.to_str().expect("utf8")],
        &[],
    );
    assert!(
        shown.contains("merge strategy copy_on_write (the table has no deletion vectors; set sink.merge_strategy = \"deletion_vectors\" to upgrade it)"),
        "{shown}"
    );
    let v: Value = serde_json::from_str(
        run_ok(
            &[
                "validate",
                "--json",
                "--config",
                unset.to_str().expect("utf8"),
            ],
            &[],
        )
        .trim(),
    )
    .expect("json");
    assert_eq!(v["merge_strategy"]["strategy"], "copy_on_write", "{v}");
    assert!(v["merge_strategy"]["why"]
        .as_str()
        .is_some_and(|w| w.contains("no deletion vectors")));
    write_files(&landing, &rest[..1]);
    drain(&unset, &[], &[]);
    assert!(!has_deletion_vectors(&protocol_of(&table)));
    assert_eq!(deletion_vector_files(&table), 0);
    // Asked for explicitly: upgraded, with a warning naming the readers that need support.
    let dv = merge_config_as(tmp.path(), "p", "dynamodb_stream", "", STRATEGIES[0]);
    let shown = run_ok(&["validate", "--config", dv.to_str().expect("utf8")], &[]);
    assert!(shown.contains("merge strategy deletion_vectors (sink.merge_strategy = \"deletion_vectors\"; the table does not have deletion vectors yet and is upgraded"), "{shown}");
    write_files(&landing, &rest[1..]);
    let out = run_inlet(
        &[
            "run",
            "--config",
            dv.to_str().expect("utf8"),
            "--available-now",
        ],
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("enabling deletion vectors on the table")
            && log.contains("Delta Lake for Spark before 2.3"),
        "{log}"
    );
    let p = protocol_of(&table);
    assert!(has_deletion_vectors(&p), "{p}");
    assert_eq!(
        (
            p["minReaderVersion"].as_i64(),
            p["minWriterVersion"].as_i64()
        ),
        (Some(3), Some(7)),
        "{p}"
    );
    assert!(deletion_vector_files(&table) > 0);
    assert!(table_state(tmp.path()) == history.model);

    // Created by default in merge mode: deletion vectors from version 0.
    let tmp = tempfile::tempdir().expect("tempdir");
    write_files(&tmp.path().join("landing"), &files);
    let default = merge_config_as(
        tmp.path(),
        "p",
        "dynamodb_stream",
        "max_files_per_batch = 2",
        "",
    );
    drain(&default, &[], &[]);
    assert!(has_deletion_vectors(&protocol_of(
        &tmp.path().join("table")
    )));
    assert!(deletion_vector_files(&tmp.path().join("table")) > 0);
    assert!(table_state(tmp.path()) == history.model);
}

#[test]
fn a_table_that_changes_strategy_and_is_compacted_reads_right_at_every_version() {
    let history = History::generate(3_000, 77);
    let files = named_files(&history, 36, 9);
    // The reference: the same files, copy-on-write all along.
    let reference = tempfile::tempdir().expect("tempdir");
    let reference_cfg =
        merge_config_as(reference.path(), "r", "dynamodb_stream", "", STRATEGIES[1]);
    // The mixed table: copy-on-write for a third, then deletion vectors, purged when a
    // vector hides 5% of a file, and compacted by hand once.
    let mixed = tempfile::tempdir().expect("tempdir");
    let purge = "\n[maintenance]\npurge_deleted_fraction = 0.05\ncompact_min_files = 4";
    let mixed_cow = merge_config_as(
        mixed.path(),
        "m",
        "dynamodb_stream",
        "",
        &format!("{}{purge}", STRATEGIES[1]),
    );
    let mixed_dv = merge_config_as(
        mixed.path(),
        "m",
        "dynamodb_stream",
        "",
        &format!("{}{purge}", STRATEGIES[0]),
    );
    let mut seen: Vec<(i64, Model)> = Vec::new();
    for (i, chunk) in files.chunks(3).enumerate() {
        write_files(&reference.path().join("landing"), chunk);
        write_files(&mixed.path().join("landing"), chunk);
        drain(&reference_cfg, &[], &[]);
        let cfg = if i < 4 { &mixed_cow } else { &mixed_dv };
        drain(cfg, &[], &[]);
        if i == 8 {
            run_ok(
                &[
                    "table",
                    "optimize",
                    "--config",
                    mixed_dv.to_str().expect("utf8"),
                ],
                &[],
            );
        }
        let expected = table_state(reference.path());
        let read = read_delta(&url_of(&mixed.path().join("table")), &Value::Null);
        let got = model_of(&read.rows);
        assert!(
            got == expected,
            "step {i}: the mixed table differs from the copy-on-write one"
        );
        seen.push((read.version, got));
    }
    assert!(seen.last().is_some_and(|(_, m)| *m == history.model));
    assert!(deletion_vector_files(&mixed.path().join("table")) > 0);
    // A purge or compaction commit rewrote files (dataChange = false) along the way.
    let described = crate::maintenance::describe(&mixed_dv);
    assert!(
        !described["table"]["last_compaction"].is_null(),
        "{described}"
    );
    // Time travel: every version read then reads the same now.
    let table_url = url_of(&mixed.path().join("table"));
    for (version, model) in &seen {
        let text = python_ok(&["read-version", &table_url, &version.to_string()]);
        let v: Value = serde_json::from_str(text.trim()).expect("json");
        let rows = v["rows"].as_array().expect("rows");
        assert!(
            model_of(rows) == *model,
            "version {version} reads differently now"
        );
    }
}

/// A history of `keys` keys in `files` files landed in a new directory, with a
/// deletion-vector MERGE config (`extra_source`, `extra_sink` lines added).
fn landed(
    keys: i64,
    seed: u64,
    files: usize,
    extra_source: &str,
    extra_sink: &str,
) -> (tempfile::TempDir, History, std::path::PathBuf) {
    let history = History::generate(keys, seed);
    let named = named_files(&history, files, seed + 1);
    let tmp = tempfile::tempdir().expect("tempdir");
    write_files(&tmp.path().join("landing"), &named);
    let sink = format!("{}\n{extra_sink}", STRATEGIES[0]);
    let cfg = merge_config_as(tmp.path(), "p", "dynamodb_stream", extra_source, &sink);
    (tmp, history, cfg)
}

#[test]
fn readers_no_one_here_wrote_read_the_same_rows() {
    let (tmp, history, cfg) = landed(2_000, 5, 20, "max_files_per_batch = 2", "");
    drain(&cfg, &[], &[]);
    let table = tmp.path().join("table");
    assert!(deletion_vector_files(&table) > 0);
    // Python deltalake and DuckDB (checked against each other by the helper).
    assert!(table_state(tmp.path()) == history.model);
    let text = python_ok(&[
        "read-others",
        &url_of(&table),
        r#"["tenant","id","v","name"]"#,
    ]);
    let others: Value = serde_json::from_str(text.trim()).expect("json");
    for reader in ["polars", "chdb"] {
        let rows = others[reader]
            .as_array()
            .unwrap_or_else(|| panic!("{reader} refused the table: {}", others[reader]));
        assert!(
            model_of_loose(rows) == history.model,
            "{reader} reads other rows"
        );
    }
    // daft 0.7 refuses deletion vectors outright; should it read them one day, it must read
    // the same rows.
    match others["daft"].as_array() {
        Some(rows) => assert!(
            model_of_loose(rows) == history.model,
            "daft reads other rows"
        ),
        None => assert!(
            others["daft"]["refused"]
                .as_str()
                .is_some_and(|e| e.contains("deletion vectors")),
            "{}",
            others["daft"]
        ),
    }
}

#[test]
fn a_crash_before_the_commit_leaves_only_files_vacuum_removes() {
    let (tmp, history, cfg) = landed(
        300,
        8,
        8,
        "max_files_per_batch = 4",
        "properties = { \"delta.deletedFileRetentionDuration\" = \"interval 0 seconds\" }",
    );
    let c = cfg.to_str().expect("utf8");
    run_ok(&["run", "--config", c, "--once"], &[]);
    let table = tmp.path().join("table");
    let before = deletion_vector_files(&table);
    let out = run_inlet(
        &[
            "run",
            "--config",
            c,
            "--once",
            "--fault-point",
            "dv-vectors-written",
        ],
        &[],
    );
    assert!(!out.status.success(), "the fault point must kill the run");
    assert_eq!(
        deletion_vector_files(&table),
        before + 1,
        "the crashed MERGE's vectors are on disk"
    );
    run_ok(&["run", "--config", c, "--available-now"], &[]);
    assert!(table_state(tmp.path()) == history.model);
    let written = deletion_vector_files(&table);
    run_ok(&["table", "vacuum", "--config", c], &[]);
    // The crashed attempt's file is gone; every file the table refers to stays.
    assert!(deletion_vector_files(&table) < written);
    assert!(table_state(tmp.path()) == history.model);
}

/// A vector file written before the retention and replaced within it is still read by the
/// versions within it: VACUUM must keep it (delta-rs's full VACUUM alone keeps only the
/// live files' vectors).
#[test]
fn vacuum_keeps_the_vectors_that_versions_within_the_retention_read() {
    let retention_s: i64 = 10;
    let (tmp, _, cfg) = landed(
        300,
        12,
        6,
        "max_files_per_batch = 2",
        &format!(
            "properties = {{ \"delta.deletedFileRetentionDuration\" = \"interval {retention_s} seconds\" }}"
        ),
    );
    let c = cfg.to_str().expect("utf8");
    let table = tmp.path().join("table");
    // Batch 1 creates the table, batch 2 writes the first vectors.
    run_ok(&["run", "--config", c, "--once"], &[]);
    run_ok(&["run", "--config", c, "--once"], &[]);
    assert_eq!(deletion_vector_files(&table), 1);
    let written = crate::maintenance::now_ms();
    wait_for(
        60,
        "the first vectors to age past the retention",
        None,
        || crate::maintenance::now_ms() > written + retention_s * 1000 + 500,
    );
    // Batch 3 replaces them; VACUUM runs at once, within the retention of that remove.
    run_ok(&["run", "--config", c, "--available-now"], &[]);
    run_ok(&["table", "vacuum", "--config", c], &[]);
    let latest = read_delta(&url_of(&table), &Value::Null).version;
    for version in 0..=latest {
        python_ok(&["read-version", &url_of(&table), &version.to_string()]);
    }
}
