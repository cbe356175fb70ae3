//! MERGE end to end with DynamoDB stream records: the table must equal a plain model of the
//! DynamoDB table (latest version wins, deletes applied) whatever the file order, duplicates,
//! run sizes and crashes; and the export format backfills a table the stream then updates.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::support::*;

/// Final state of the DynamoDB table: (tenant, id) → (v, name).
pub(crate) type Model = BTreeMap<(String, i64), (i64, String)>;

/// A stream history: per key, inserts, modifies, removes and re-inserts, in sequence order.
pub(crate) struct History {
    records: Vec<(u128, Value)>,
    pub(crate) model: Model,
}

fn image(tenant: &str, id: i64, v: i64) -> Value {
    json!({"tenant": {"S": tenant}, "id": {"N": id.to_string()}, "v": {"N": v.to_string()}, "name": {"S": format!("n{v}")}})
}

fn record(op: &str, tenant: &str, id: i64, v: i64, seq: u128) -> Value {
    let mut ddb = json!({
        "ApproximateCreationDateTime": 1_700_000_000 + (seq % 100_000) as i64,
        "Keys": {"tenant": {"S": tenant}, "id": {"N": id.to_string()}},
        "SequenceNumber": seq.to_string(),
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    });
    if op != "REMOVE" {
        ddb["NewImage"] = image(tenant, id, v);
    }
    json!({"eventID": format!("e{seq}"), "eventName": op, "eventSource": "aws:dynamodb", "dynamodb": ddb})
}

impl History {
    pub(crate) fn generate(keys: i64, seed: u64) -> Self {
        let mut rng = Rng(seed);
        // 21-digit sequence numbers: text order differs from number order until padded.
        let mut seq: u128 = 100_000_000_000_000_000_000;
        let mut records = Vec::new();
        let mut model = Model::new();
        for round in 0..4 {
            for k in 0..keys {
                let tenant = format!("t{}", k % 10);
                let id = k / 10;
                let key = (tenant.clone(), id);
                let present = model.contains_key(&key);
                let op = match (round, present, rng.below(6)) {
                    (0, _, 0..=3) | (_, false, 0..=1) => "INSERT",
                    (_, true, 0..=2) => "MODIFY",
                    (_, true, 3) => "REMOVE",
                    _ => continue,
                };
                // Sequence numbers interleave across keys, as in a real stream.
                seq += 1 + u128::from(rng.below(1_000));
                let v = seq as i64 % 1_000_000_007;
                records.push((seq, record(op, &tenant, id, v, seq)));
                if op == "REMOVE" {
                    model.remove(&key);
                } else {
                    model.insert(key, (v, format!("n{v}")));
                }
            }
        }
        Self { records, model }
    }

    /// The records in sequence order, once each, in `files` consecutive JSON lines files
    /// named `o000.json`, … (the first ones insert keys no other file touches).
    pub(crate) fn in_order(&self, files: usize) -> Vec<(String, String)> {
        let per = self.records.len().div_ceil(files);
        self.records
            .chunks(per)
            .enumerate()
            .map(|(i, chunk)| {
                let text: String = chunk.iter().map(|(_, r)| format!("{r}\n")).collect();
                (format!("o{i:03}.json"), text)
            })
            .collect()
    }

    /// The records, some duplicated, shuffled into `files` JSON lines files (in memory).
    fn files(&self, files: usize, seed: u64) -> Vec<String> {
        let mut rng = Rng(seed);
        let mut out = vec![String::new(); files];
        for (_, rec) in &self.records {
            let copies = if rng.below(20) == 0 { 2 } else { 1 };
            for _ in 0..copies {
                let f = rng.below(files as u64) as usize;
                out[f].push_str(&rec.to_string());
                out[f].push('\n');
            }
        }
        out
    }
}

pub(crate) fn merge_config(dir: &Path, id: &str, format: &str, extra_source: &str) -> PathBuf {
    merge_config_as(dir, id, format, extra_source, "")
}

/// The two MERGE strategies, as `[sink]` lines.
pub(crate) const STRATEGIES: [&str; 2] = [
    "merge_strategy = \"deletion_vectors\"",
    "merge_strategy = \"copy_on_write\"",
];

/// A MERGE config with `extra_sink` lines in `[sink]` (e.g. its merge strategy).
pub(crate) fn merge_config_as(
    dir: &Path,
    id: &str,
    format: &str,
    extra_source: &str,
    extra_sink: &str,
) -> PathBuf {
    write_config(
        dir,
        &format!(
            "pipeline_id = \"{id}\"\n[source]\nurl = \"landing\"\nformat = \"{format}\"\n{extra_source}\n\
             [sink]\ntable = \"table\"\nmode = \"merge\"\nkeys = [\"tenant\", \"id\"]\nsequence_by = \"_seq\"\n\
             delete_when = \"_op = 'REMOVE'\"\n{extra_sink}\n[checkpoint]\nlocation = \"state-{id}\"\n"
        ),
    )
}

pub(crate) fn table_state(dir: &Path) -> Model {
    let t = read_delta(
        &format!("file://{}", dir.join("table").display()),
        &json!({}),
    );
    model_of(&t.rows)
}

/// The model a table's rows (as a reader gave them) amount to; a key twice fails.
pub(crate) fn model_of(rows: &[Value]) -> Model {
    let mut out = Model::new();
    for r in rows {
        let key = (
            r["tenant"].as_str().expect("tenant").to_string(),
            r["id"].as_i64().expect("id"),
        );
        let value = (
            r["v"].as_i64().expect("v"),
            r["name"].as_str().expect("name").to_string(),
        );
        assert!(
            out.insert(key.clone(), value).is_none(),
            "key {key:?} twice"
        );
    }
    out
}

/// How a table's state differs from the model: keys lost, keys with another value, keys
/// present that the model deleted (or never had).
pub(crate) fn differences(model: &Model, state: &Model) -> (usize, usize, usize) {
    let lost = model.keys().filter(|k| !state.contains_key(*k)).count();
    let wrong = model
        .iter()
        .filter(|(k, v)| state.get(*k).is_some_and(|s| s != *v))
        .count();
    let extra = state.keys().filter(|k| !model.contains_key(*k)).count();
    (lost, wrong, extra)
}

/// The history's records in `n` files named `s000.json`, ….
pub(crate) fn named_files(history: &History, n: usize, seed: u64) -> Vec<(String, String)> {
    history
        .files(n, seed)
        .into_iter()
        .enumerate()
        .map(|(i, t)| (format!("s{i:03}.json"), t))
        .collect()
}

pub(crate) fn write_files(landing: &Path, names_and_texts: &[(String, String)]) {
    std::fs::create_dir_all(landing).expect("mkdir");
    for (name, text) in names_and_texts {
        std::fs::write(landing.join(name), text).expect("write");
    }
}

#[test]
fn stream_history_in_one_run_equals_the_model() {
    for strategy in STRATEGIES {
        let tmp = tempfile::tempdir().expect("tempdir");
        let history = History::generate(10_000, 7);
        let files = named_files(&history, 200, 11);
        write_files(&tmp.path().join("landing"), &files);
        let cfg = merge_config_as(
            tmp.path(),
            "ddb",
            "dynamodb_stream",
            "max_files_per_batch = 25",
            strategy,
        );
        let out = drain(&cfg, &["--json"], &[]);
        let stats: Value = serde_json::from_str(out.trim()).expect("json");
        assert_eq!(stats["files"], 200);
        let state = table_state(tmp.path());
        assert_eq!(state.len(), history.model.len(), "{strategy}");
        assert!(
            state == history.model,
            "{strategy}: table differs from the model"
        );
        assert_eq!(
            deletion_vector_files(&tmp.path().join("table")) > 0,
            strategy == STRATEGIES[0],
            "{strategy}: deletion vector files written exactly by that strategy"
        );
    }
}

#[test]
fn stream_history_in_fifty_small_runs_equals_the_model() {
    for strategy in STRATEGIES {
        let tmp = tempfile::tempdir().expect("tempdir");
        let history = History::generate(10_000, 99);
        let files = named_files(&history, 200, 5);
        let cfg = merge_config_as(tmp.path(), "ddb", "dynamodb_stream", "", strategy);
        let landing = tmp.path().join("landing");
        for chunk in files.chunks(4) {
            write_files(&landing, chunk);
            drain(&cfg, &[], &[]);
        }
        assert_eq!(files_json(&cfg).len(), 200);
        let state = table_state(tmp.path());
        assert_eq!(state.len(), history.model.len(), "{strategy}");
        assert!(
            state == history.model,
            "{strategy}: table differs from the model"
        );
    }
}

/// A table partitioned by a key column: the copy-on-write MERGE rewrites files of the
/// partitions the batch reaches, reading partition values back from the paths.
#[test]
fn a_partitioned_table_merged_by_rewriting_files_equals_the_model() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let history = History::generate(3_000, 23);
    let files = named_files(&history, 60, 3);
    write_files(&tmp.path().join("landing"), &files);
    let cfg = merge_config_as(
        tmp.path(),
        "ddb",
        "dynamodb_stream",
        "max_files_per_batch = 10",
        "merge_strategy = \"copy_on_write\"\npartition_by = [\"tenant\"]",
    );
    drain(&cfg, &[], &[]);
    let state = table_state(tmp.path());
    assert_eq!(state.len(), history.model.len());
    assert!(state == history.model, "table differs from the model");
    let partitions = std::fs::read_dir(tmp.path().join("table"))
        .expect("table dir")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().starts_with("tenant="))
        })
        .count();
    assert!(partitions > 1, "written into tenant= partitions");
    assert_eq!(deletion_vector_files(&tmp.path().join("table")), 0);
    assert!(
        merges_rewrote_files(&tmp.path().join("table")),
        "the scanned copy-on-write MERGE ran"
    );
}

/// Whether a commit in the table's log is a MERGE of inlet's scanned copy-on-write (its
/// matched predicate says the files were rewritten), not one of delta-rs's MERGE.
fn merges_rewrote_files(table: &Path) -> bool {
    std::fs::read_dir(table.join("_delta_log"))
        .expect("log")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
        .any(|e| {
            std::fs::read_to_string(e.path())
                .expect("commit")
                .contains("files rewritten")
        })
}

/// A struct column that gained a field after the table's first file was written (by
/// another writer: inlet rescues a new nested field instead): the copy-on-write MERGE
/// rewrites that file, reading the field as null there.
#[test]
fn a_struct_field_added_later_reads_as_null_in_rewritten_files() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let table = url_of(&dir.join("table"));
    python_ok(&["make-nested-table", &table]);
    let cfg = write_config(
        dir,
        "pipeline_id = \"nested\"\n[source]\nurl = \"landing\"\nformat = \"json\"\n\
         [sink]\ntable = \"table\"\nmode = \"merge\"\nkeys = [\"id\"]\nsequence_by = \"seq\"\n\
         merge_strategy = \"copy_on_write\"\n[checkpoint]\nlocation = \"state\"\n",
    );
    let landing = dir.join("landing");
    std::fs::create_dir_all(&landing).expect("mkdir");
    // An update of a row in the first file, and an insert.
    std::fs::write(
        landing.join("1.json"),
        "{\"id\":3,\"seq\":2,\"s\":{\"a\":33,\"b\":\"x\"}}\n{\"id\":30,\"seq\":2,\"s\":{\"a\":30,\"b\":\"y\"}}\n",
    )
    .expect("write");
    drain(&cfg, &[], &[]);
    let t = read_delta(&table, &json!({}));
    let mut ids = t.ints("id");
    ids.dedup();
    assert_eq!(ids.len(), 22, "every id: {ids:?}");
    assert_eq!(t.rows.len(), 22, "each once");
    assert!(
        merges_rewrote_files(&dir.join("table")),
        "the scanned copy-on-write MERGE ran"
    );
    for r in &t.rows {
        let (id, s) = (r["id"].as_i64().expect("id"), &r["s"]);
        match id {
            3 => assert_eq!(s, &json!({"a": 33, "b": "x"})),
            30 => assert_eq!(s, &json!({"a": 30, "b": "y"})),
            100 => assert_eq!(s, &json!({"a": 100, "b": "z"})),
            _ => assert_eq!(s, &json!({"a": id, "b": null}), "id {id}"),
        }
    }
}

/// The `deletion_vector_*.bin` files directly under a local table.
pub(crate) fn deletion_vector_files(table: &Path) -> usize {
    std::fs::read_dir(table)
        .expect("table dir")
        .filter(|e| {
            e.as_ref().is_ok_and(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with("deletion_vector_")
            })
        })
        .count()
}

#[test]
fn older_updates_and_removes_lose_to_the_current_version() {
    for strategy in STRATEGIES {
        older_updates_and_removes_lose(strategy);
    }
}

fn older_updates_and_removes_lose(strategy: &str) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let landing = tmp.path().join("landing");
    let cfg = merge_config_as(tmp.path(), "ddb", "dynamodb_stream", "", strategy);
    let c = cfg.to_str().expect("utf8");
    let step = |name: &str, recs: &[Value]| {
        let text: String = recs.iter().map(|r| format!("{r}\n")).collect();
        write_files(&landing, &[(name.to_string(), text)]);
        run_ok(&["run", "--config", c, "--available-now"], &[]);
        table_state(tmp.path())
    };
    let key = ("t1".to_string(), 1);
    let s = step(
        "1.json",
        &[
            record("INSERT", "t1", 1, 100, 10),
            record("INSERT", "t1", 2, 200, 11),
        ],
    );
    assert_eq!(s[&key], (100, "n100".into()));
    // An update and a remove older than the row: both lose.
    let s = step("2.json", &[record("MODIFY", "t1", 1, 50, 5)]);
    assert_eq!(
        s[&key],
        (100, "n100".into()),
        "older update must not overwrite"
    );
    let s = step("3.json", &[record("REMOVE", "t1", 1, 0, 7)]);
    assert_eq!(
        s[&key],
        (100, "n100".into()),
        "older remove must not delete"
    );
    // A newer remove wins; an update older than that remove cannot bring the row back.
    let s = step("4.json", &[record("REMOVE", "t1", 1, 0, 20)]);
    assert!(!s.contains_key(&key));
    let s = step("5.json", &[record("MODIFY", "t1", 1, 150, 15)]);
    assert!(
        !s.contains_key(&key),
        "an update older than the delete revived the row"
    );
    let s = step("6.json", &[record("INSERT", "t1", 1, 300, 30)]);
    assert_eq!(
        s[&key],
        (300, "n300".into()),
        "a newer insert re-creates the key"
    );
    assert_eq!(s[&("t1".to_string(), 2)], (200, "n200".into()));
}

#[test]
fn merge_survives_every_crash_point() {
    let common = ["after-plan", "after-write", "after-commit", "after-record"];
    let dv_only = ["dv-rows-written", "dv-vectors-written"];
    let cases = common
        .iter()
        .chain(&dv_only)
        .map(|p| (STRATEGIES[0], *p))
        .chain(common.iter().map(|p| (STRATEGIES[1], *p)));
    for (strategy, point) in cases {
        let tmp = tempfile::tempdir().expect("tempdir");
        let history = History::generate(300, 3);
        let files = named_files(&history, 12, 4);
        write_files(&tmp.path().join("landing"), &files);
        let cfg = merge_config_as(
            tmp.path(),
            "ddb",
            "dynamodb_stream",
            "max_files_per_batch = 4",
            strategy,
        );
        let c = cfg.to_str().expect("utf8");
        // First batch commits, then the crash hits the second.
        run_ok(&["run", "--config", c, "--once"], &[]);
        let out = run_inlet(
            &["run", "--config", c, "--once", "--fault-point", point],
            &[],
        );
        assert!(
            !out.status.success(),
            "{strategy} {point}: the fault point must kill the run"
        );
        run_ok(&["run", "--config", c, "--available-now"], &[]);
        assert!(
            table_state(tmp.path()) == history.model,
            "{strategy} {point}: table differs from the model"
        );
    }
}

#[test]
fn export_backfill_then_stream_updates() {
    let tmp = tempfile::tempdir().expect("tempdir");
    // The export: keys 0..50 as they were at export time.
    let mut model = Model::new();
    let mut export = String::new();
    for k in 0..50i64 {
        let item = json!({"Item": image("t0", k, k)});
        export.push_str(&format!("{item}\n"));
        model.insert(("t0".into(), k), (k, format!("n{k}")));
    }
    let landing = tmp.path().join("landing");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, export.as_bytes()).expect("gzip");
    std::fs::create_dir_all(landing.join("export")).expect("mkdir");
    std::fs::write(
        landing.join("export/part-0.json.gz"),
        gz.finish().expect("gzip"),
    )
    .expect("write");
    let backfill = merge_config(
        tmp.path(),
        "backfill",
        "dynamodb_export",
        "path_glob = \"export/**\"",
    );
    drain(&backfill, &[], &[]);
    assert!(table_state(tmp.path()) == model);

    // The stream after the export: updates, removes and new keys.
    let mut text = String::new();
    for k in 0..60i64 {
        let seq = 1_000 + k as u128;
        let rec = match k % 3 {
            0 => {
                model.remove(&("t0".into(), k));
                record("REMOVE", "t0", k, 0, seq)
            }
            _ => {
                model.insert(("t0".into(), k), (k + 1000, format!("n{}", k + 1000)));
                record(
                    if k < 50 { "MODIFY" } else { "INSERT" },
                    "t0",
                    k,
                    k + 1000,
                    seq,
                )
            }
        };
        text.push_str(&format!("{rec}\n"));
    }
    write_files(&landing.join("stream"), &[("s.json".into(), text)]);
    let stream = merge_config(
        tmp.path(),
        "stream",
        "dynamodb_stream",
        "path_glob = \"stream/**\"",
    );
    drain(&stream, &[], &[]);
    assert!(
        table_state(tmp.path()) == model,
        "stream over the backfill differs from the model"
    );
}

#[test]
fn shipped_dynamodb_merge_config_runs() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let history = History::generate(500, 21);
    let files: Vec<(String, String)> = history
        .files(10, 22)
        .into_iter()
        .enumerate()
        .map(|(i, t)| (format!("2026/11/25/s{i:03}.json"), t))
        .collect();
    std::fs::create_dir_all(tmp.path().join("landing/2026/11/25")).expect("mkdir");
    write_files(&tmp.path().join("landing"), &files);
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/dynamodb-stream-merge.toml");
    let landing = format!("file://{}/landing/", tmp.path().display());
    let table = format!("file://{}/table/", tmp.path().display());
    let state = tmp.path().join("state");
    let env = [
        ("LANDING_URL", landing.as_str()),
        ("TABLE_URL", table.as_str()),
        ("CHECKPOINT_DIR", state.to_str().expect("utf8")),
    ];
    drain(&config, &[], &env);
    assert!(
        table_state(tmp.path()) == history.model,
        "table differs from the model"
    );
    let t = read_delta(&table, &json!({}));
    assert!(t.rows.iter().all(|r| r["_source_file"]
        .as_str()
        .is_some_and(|f| f.starts_with('s') && f.ends_with(".json"))));
}

#[test]
fn validate_plans_the_sql_and_names_usable_columns() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let history = History::generate(20, 1);
    let files: Vec<(String, String)> = history
        .files(2, 2)
        .into_iter()
        .enumerate()
        .map(|(i, t)| (format!("s{i}.json"), t))
        .collect();
    write_files(&tmp.path().join("landing"), &files);
    let cfg = merge_config(tmp.path(), "ddb", "dynamodb_stream", "");
    drain(&cfg, &[], &[]);
    let text = std::fs::read_to_string(&cfg).expect("config");
    let bad = text.replace(
        "[sink]",
        "[transform]\nsql = \"SELECT tenant, id, vv FROM source\"\n[sink]",
    );
    std::fs::write(&cfg, bad).expect("config");
    let out = run_inlet(&["validate", "--config", cfg.to_str().expect("utf8")], &[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("transform.sql does not plan"), "{err}");
    assert!(
        err.contains(
            "`source` has columns: _event_time, _op, _seq, id, name, tenant, v, _rescued_data"
        ),
        "{err}"
    );
}
