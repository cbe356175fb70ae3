//! Schema drift end to end: evolution modes on one landing zone, rescued data, bad records,
//! failed files, the schema store (`inlet schema`), and value accounting under random drift.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::support::*;

/// The landing zone of the issue: files 1–10 with {a, b}, 11 adds `c`, 12 has b = "x",
/// 13 has one broken line among good ones, 14 is a truncated gzip. Three rows per file,
/// `a` unique over all rows.
struct Drift {
    landing: PathBuf,
}

impl Drift {
    fn new(dir: &Path) -> Self {
        let landing = dir.join("landing");
        std::fs::create_dir_all(&landing).expect("mkdir");
        let mut a = 0;
        let mut row = |extra: &str| {
            a += 1;
            format!("{{\"a\":{a},\"b\":{}{extra}}}\n", a * 10)
        };
        for n in 1..=10 {
            let text: String = (0..3).map(|_| row("")).collect();
            std::fs::write(landing.join(format!("f{n:02}.json")), text).expect("write");
        }
        let text: String = (0..3).map(|_| row(",\"c\":7")).collect();
        std::fs::write(landing.join("f11.json"), text).expect("write");
        let text = format!("{}{{\"a\":100,\"b\":\"x\"}}\n{}", row(""), row(""));
        std::fs::write(landing.join("f12.json"), text).expect("write");
        let text = format!("{}{{\"a\":200,\"b\":\n{}", row(""), row(""));
        std::fs::write(landing.join("f13.json"), text).expect("write");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        for _ in 0..50 {
            gz.write_all(b"{\"a\":999999,\"b\":1}\n").expect("gzip");
        }
        let bytes = gz.finish().expect("gzip");
        std::fs::write(landing.join("f14.json.gz"), &bytes[..bytes.len() - 12]).expect("write");
        Self { landing }
    }

    fn file(&self, name: &str) -> String {
        url_of(&self.landing.join(name))
    }
}

fn config(dir: &Path, mode: &str, extra_source: &str) -> PathBuf {
    write_config(
        dir,
        &format!(
            "pipeline_id = \"drift\"\n[source]\nurl = \"landing\"\n{extra_source}\n\
             [schema]\nsample_files = 10\nevolution = \"{mode}\"\n\
             [sink]\ntable = \"table\"\n[checkpoint]\nlocation = \"state\"\n"
        ),
    )
}

fn run_json(cfg: &Path) -> Value {
    let out = drain(cfg, &["--json"], &[]);
    serde_json::from_str(out.trim()).expect("json summary")
}

fn table(dir: &Path) -> TableRead {
    read_delta(&url_of(&dir.join("table")), &json!({}))
}

fn row(t: &TableRead, a: i64) -> &serde_json::Map<String, Value> {
    t.rows
        .iter()
        .find(|r| r["a"] == a)
        .and_then(Value::as_object)
        .unwrap_or_else(|| panic!("no row a = {a}"))
}

fn rescued(r: &serde_json::Map<String, Value>) -> Value {
    serde_json::from_str(r["_rescued_data"].as_str().expect("rescued data present"))
        .expect("rescued JSON")
}

/// Every bad record under the checkpoint's default bad-records location.
fn bad_records(dir: &Path) -> Vec<Value> {
    bad_records_under(&dir.join("state/bad_records"))
}

fn columns(t: &TableRead) -> BTreeSet<String> {
    t.rows
        .iter()
        .flat_map(|r| r.as_object().expect("row").keys().cloned())
        .collect()
}

#[test]
fn add_new_columns_evolves_in_flight_rescues_and_sets_aside() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let drift = Drift::new(tmp.path());
    let cfg = config(tmp.path(), "add_new_columns", "");
    let text = drain(&cfg, &[], &[]);
    // The summary names the file with bad records and the file that failed.
    assert!(
        text.contains(&format!("{}: 1 line", drift.file("f13.json"))),
        "{text}"
    );
    assert!(
        text.contains(&format!("{}: cannot decompress", drift.file("f14.json.gz"))),
        "{text}"
    );
    assert!(text.contains("Schema evolved: added c BIGINT"), "{text}");

    let t = table(tmp.path());
    assert_eq!(
        columns(&t),
        ["a", "b", "c", "_rescued_data"].map(String::from).into()
    );
    // 10 files × 3, file 11: 3, file 12: 3, file 13: 2 good lines.
    assert_eq!(t.rows.len(), 38);
    assert_eq!(row(&t, 31)["c"], 7, "file 11's rows carry c");
    assert_eq!(row(&t, 1)["c"], Value::Null, "older rows read c as null");
    let x = row(&t, 100);
    assert_eq!(x["b"], Value::Null);
    assert_eq!(
        rescued(x),
        json!({"b": "x", "_file_path": drift.file("f12.json")})
    );
    assert_eq!(row(&t, 34)["_rescued_data"], Value::Null);
    // The same landing zone again, counted by `--json` (and the metrics, from the same
    // event): rows and values rescued, as the table holds them.
    let rescued_rows: Vec<Value> = t
        .rows
        .iter()
        .filter(|r| !r["_rescued_data"].is_null())
        .map(|r| rescued(r.as_object().expect("row")))
        .collect();
    let values: usize = rescued_rows
        .iter()
        .map(|r| {
            r.as_object()
                .expect("object")
                .keys()
                .filter(|k| *k != "_file_path")
                .count()
        })
        .sum();
    let again = tmp.path().join("again");
    std::fs::create_dir_all(&again).expect("mkdir");
    Drift::new(&again);
    let stats: Value = serde_json::from_str(
        drain(&config(&again, "add_new_columns", ""), &["--json"], &[])
            .lines()
            .last()
            .expect("json line"),
    )
    .expect("stats JSON");
    assert!(!rescued_rows.is_empty() && values > 0);
    assert_eq!(stats["rescued_rows"], rescued_rows.len(), "{stats}");
    assert_eq!(stats["rescued_values"], values, "{stats}");
    assert!(t.rows.iter().all(|r| r["a"] != 200 && r["a"] != 999999));

    let bad = bad_records(tmp.path());
    let line = bad
        .iter()
        .find(|b| b["file"] == drift.file("f13.json").as_str())
        .expect("f13 bad record");
    assert_eq!(
        (line["line"].as_i64(), line["raw"].as_str()),
        (Some(2), Some("{\"a\":200,\"b\":"))
    );
    assert!(
        line["error"]
            .as_str()
            .expect("error")
            .contains("invalid JSON"),
        "{line}"
    );
    let dead = bad
        .iter()
        .find(|b| b["file"] == drift.file("f14.json.gz").as_str())
        .expect("f14 dead letter");
    assert_eq!(dead["line"], Value::Null);

    let failed = files_in_state(&cfg, "failed");
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["path"], drift.file("f14.json.gz").as_str());
    assert!(
        failed[0]["error"].as_str().expect("error").contains("gzip"),
        "{failed:?}"
    );
    assert_eq!(
        polars_count(&url_of(&tmp.path().join("table")), &json!({})),
        38
    );

    // The schema store: version 1 inferred, version 2 added c because of file 11.
    let c = cfg.to_str().expect("utf8");
    let history: Value = serde_json::from_str(&run_ok(
        &["schema", "--config", c, "history", "--json"],
        &[],
    ))
    .expect("json");
    let versions = history.as_array().expect("array");
    assert_eq!(versions.len(), 2, "{history}");
    assert_eq!(versions[1]["file"], drift.file("f11.json").as_str());
    assert_eq!(versions[1]["change"]["added"], json!(["c BIGINT"]));
    let diff = run_ok(&["schema", "--config", c, "diff", "1", "2"], &[]);
    assert!(diff.contains("+ c BIGINT"), "{diff}");
    let show = run_ok(&["schema", "--config", c, "show"], &[]);
    assert!(show.contains(" |-- c: BIGINT"), "{show}");
    assert!(
        show.contains("DDL: a BIGINT, b BIGINT, _rescued_data STRING, c BIGINT"),
        "{show}"
    );

    // Fixing the file and retrying it takes its rows.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(b"{\"a\":500,\"b\":1}\n").expect("gzip");
    std::fs::write(
        drift.landing.join("f14.json.gz"),
        gz.finish().expect("gzip"),
    )
    .expect("write");
    let out = run_ok(&["files", "--config", c, "--retry", "f14.json.gz"], &[]);
    assert!(
        out.contains("was failed; the next run takes it again"),
        "{out}"
    );
    let stats = run_json(&cfg);
    assert_eq!(
        (stats["files"].as_i64(), stats["rows"].as_i64()),
        (Some(1), Some(1))
    );
    assert_eq!(row(&table(tmp.path()), 500)["b"], 1);
    let err = run_inlet(&["files", "--config", c, "--retry", "f01.json"], &[]);
    assert!(String::from_utf8_lossy(&err.stderr).contains("is committed, not failed or skipped"));
}

#[test]
fn rescue_mode_keeps_the_schema_and_rescues_new_fields() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let drift = Drift::new(tmp.path());
    let cfg = config(tmp.path(), "rescue", "");
    run_json(&cfg);
    let t = table(tmp.path());
    assert_eq!(
        columns(&t),
        ["a", "b", "_rescued_data"].map(String::from).into()
    );
    assert_eq!(t.rows.len(), 38);
    assert_eq!(
        rescued(row(&t, 31)),
        json!({"c": 7, "_file_path": drift.file("f11.json")})
    );
    assert_eq!(
        rescued(row(&t, 100)),
        json!({"b": "x", "_file_path": drift.file("f12.json")})
    );
    let history = run_ok(
        &["schema", "--config", cfg.to_str().expect("utf8"), "history"],
        &[],
    );
    assert!(
        history.starts_with("version 1") && !history.contains("version 2"),
        "{history}"
    );
}

#[test]
fn none_mode_ignores_new_fields_but_still_rescues_wrong_types() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let drift = Drift::new(tmp.path());
    let cfg = config(tmp.path(), "none", "");
    run_json(&cfg);
    let t = table(tmp.path());
    assert_eq!(
        columns(&t),
        ["a", "b", "_rescued_data"].map(String::from).into()
    );
    assert_eq!(
        row(&t, 31)["_rescued_data"],
        Value::Null,
        "c is dropped in mode none"
    );
    assert_eq!(
        rescued(row(&t, 100)),
        json!({"b": "x", "_file_path": drift.file("f12.json")})
    );
}

#[test]
fn fail_on_new_columns_stops_then_the_rerun_resumes_at_that_batch() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let drift = Drift::new(tmp.path());
    let cfg = config(tmp.path(), "fail_on_new_columns", "max_files_per_batch = 5");
    let c = cfg.to_str().expect("utf8");
    let out = run_inlet(&["run", "--config", c, "--available-now"], &[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "{} has new column(s) c BIGINT",
            drift.file("f11.json")
        )),
        "{err}"
    );
    assert!(err.contains("batch 3 is kept"), "{err}");
    assert_eq!(
        table(tmp.path()).rows.len(),
        30,
        "batches 1 and 2 (files 1-10) committed"
    );

    // Same mode again: the same stop, nothing written.
    assert!(!run_inlet(&["run", "--config", c, "--available-now"], &[])
        .status
        .success());

    let cfg = config(tmp.path(), "add_new_columns", "max_files_per_batch = 5");
    let stats = run_json(&cfg);
    assert_eq!(stats["recovered_batches"], 1);
    let t = table(tmp.path());
    assert_eq!(t.rows.len(), 38);
    let ids: BTreeSet<i64> = t.ints("a").into_iter().collect();
    assert_eq!(ids.len(), 38, "no row twice");
    assert_eq!(row(&t, 31)["c"], 7);
    let _ = drift;
}

#[test]
fn hints_type_columns_and_parse_timestamps() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let landing = tmp.path().join("landing");
    std::fs::create_dir_all(&landing).expect("mkdir");
    std::fs::write(
        landing.join("t.json"),
        "{\"id\":\"1\",\"at\":\"2024-05-01T10:00:00Z\",\"loc\":{\"lat\":1,\"lon\":2}}\n\
         {\"id\":\"2\",\"at\":1714557600,\"loc\":{\"lat\":1.5,\"lon\":2.5}}\n\
         {\"id\":\"3\",\"at\":\"not a time\"}\n",
    )
    .expect("write");
    let cfg = write_config(
        tmp.path(),
        "pipeline_id = \"hints\"\n[source]\nurl = \"landing\"\n[schema]\n\
         hints = \"at TIMESTAMP, loc STRUCT<lat: DOUBLE, lon: DOUBLE>, extra STRING\"\n\
         infer_column_types = false\n[sink]\ntable = \"table\"\n[checkpoint]\nlocation = \"state\"\n",
    );
    run_json(&cfg);
    let show = run_ok(
        &[
            "schema",
            "--config",
            cfg.to_str().expect("utf8"),
            "show",
            "--json",
        ],
        &[],
    );
    let shown: Value = serde_json::from_str(&show).expect("json");
    assert_eq!(
        shown["ddl"],
        // Inferred columns in name order (as Spark infers JSON), hinted-only ones after.
        "at TIMESTAMP, id STRING, loc STRUCT<lat: DOUBLE, lon: DOUBLE>, extra STRING, _rescued_data STRING"
    );
    let t = read_delta(&url_of(&tmp.path().join("table")), &json!({}));
    let by_id = |id: &str| t.rows.iter().find(|r| r["id"] == id).expect("row").clone();
    let (r1, r2, r3) = (by_id("1"), by_id("2"), by_id("3"));
    assert!(
        r1["at"]
            .as_str()
            .expect("time")
            .starts_with("2024-05-01 10:00:00"),
        "{r1}"
    );
    assert!(
        r2["at"]
            .as_str()
            .expect("time")
            .starts_with("2024-05-01 10:00:00"),
        "epoch seconds: {r2}"
    );
    assert_eq!(r2["loc"]["lat"], 1.5);
    assert_eq!(r3["at"], Value::Null);
    assert_eq!(rescued_of(&r3)["at"], "not a time");
}

fn rescued_of(r: &Value) -> Value {
    serde_json::from_str(r["_rescued_data"].as_str().expect("rescued")).expect("json")
}

/// Normalised text of a scalar, so that a number stored in a string column compares equal.
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[test]
fn every_value_lands_exactly_once_under_random_drift() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let landing = tmp.path().join("landing");
    std::fs::create_dir_all(&landing).expect("mkdir");
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let mut expected: BTreeMap<i64, BTreeMap<String, String>> = BTreeMap::new();
    let mut broken: BTreeSet<String> = BTreeSet::new();
    let mut id = 0i64;
    for file in 0..24 {
        let mut text_out = String::new();
        for _ in 0..40 {
            id += 1;
            let mut rec = serde_json::Map::new();
            rec.insert("id".into(), json!(id));
            // n is an integer, but sometimes a word (a type flip).
            rec.insert(
                "n".into(),
                if rng.below(10) == 0 {
                    json!(format!("w{id}"))
                } else {
                    json!(id * 3)
                },
            );
            rec.insert("s".into(), json!(format!("s{id}")));
            // New fields appear as the files go on; some flip type against their first sight.
            for k in 0..(file / 4) {
                if rng.below(3) == 0 {
                    let v = if rng.below(8) == 0 {
                        json!(format!("t{id}_{k}"))
                    } else {
                        json!(id * 100 + k as i64)
                    };
                    rec.insert(format!("f{k}"), v);
                }
            }
            let line = Value::Object(rec.clone()).to_string();
            if rng.below(25) == 0 {
                let cut = line[..line.len() / 2].to_string();
                broken.insert(cut.clone());
                text_out.push_str(&cut);
            } else {
                expected.insert(id, rec.iter().map(|(k, v)| (k.clone(), text(v))).collect());
                text_out.push_str(&line);
            }
            text_out.push('\n');
        }
        std::fs::write(landing.join(format!("d{file:03}.json")), text_out).expect("write");
    }
    let cfg = write_config(
        tmp.path(),
        "pipeline_id = \"acct\"\n[source]\nurl = \"landing\"\nmax_files_per_batch = 5\n\
         [schema]\nsample_files = 1\n[sink]\ntable = \"table\"\n[checkpoint]\nlocation = \"state\"\n",
    );
    run_json(&cfg);

    let t = read_delta(&url_of(&tmp.path().join("table")), &json!({}));
    let mut found: BTreeMap<i64, BTreeMap<String, String>> = BTreeMap::new();
    for r in &t.rows {
        let obj = r.as_object().expect("row");
        let id = obj["id"].as_i64().expect("id");
        let mut values = BTreeMap::new();
        for (k, v) in obj {
            if k == "_rescued_data" || v.is_null() {
                continue;
            }
            assert!(values.insert(k.clone(), text(v)).is_none());
        }
        if let Some(raw) = obj["_rescued_data"].as_str() {
            let extra: serde_json::Map<String, Value> =
                serde_json::from_str(raw).expect("rescued JSON");
            for (k, v) in extra {
                if k != "_file_path" {
                    assert!(
                        values.insert(k.clone(), text(&v)).is_none(),
                        "{k} of row {id} both in a column and rescued"
                    );
                }
            }
        }
        assert!(found.insert(id, values).is_none(), "row {id} twice");
    }
    assert_eq!(
        found, expected,
        "every value of every good line, exactly once"
    );
    // The drift was real: fields became columns in flight, and some values were rescued.
    let cols = columns(&t);
    assert!(cols.contains("f0") && cols.contains("f4"), "{cols:?}");
    assert!(t.rows.iter().any(|r| r["_rescued_data"].is_string()));
    let set_aside: BTreeSet<String> = bad_records(tmp.path())
        .iter()
        .map(|b| b["raw"].as_str().expect("raw").to_string())
        .collect();
    assert_eq!(set_aside, broken, "every broken line is a bad record");
    assert!(!broken.is_empty());
}
