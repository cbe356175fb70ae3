//! Every way DynamoDB changes reach S3, through `format = "dynamodb"`: stream records,
//! Kinesis records concatenated as Firehose writes them, incremental exports, and a full
//! export with the changes after it under one prefix; each MERGEd table equals a model.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use serde_json::{json, Value};

use crate::merge::{table_state, Model};
use crate::support::*;

/// One change of the generated DynamoDB table.
#[derive(Debug, Clone)]
struct Change {
    key: (String, i64),
    /// `None`: the item was deleted.
    v: Option<i64>,
    op: &'static str,
    /// When DynamoDB made it, in milliseconds.
    time_ms: i64,
    seq: u128,
}

/// A history of changes with strictly increasing times per key, some times shared by
/// different keys, and the model of the table after each prefix of it.
struct History {
    changes: Vec<Change>,
}

const BASE_MS: i64 = 1_764_500_000_000;

impl History {
    fn generate(n: usize, keys: i64, seed: u64) -> Self {
        let mut rng = Rng(seed);
        let mut present: BTreeMap<(String, i64), i64> = BTreeMap::new();
        let mut changes: Vec<Change> = Vec::new();
        let mut seq: u128 = 500_000_000_000_000_000_000;
        while changes.len() < n {
            let k = rng.below(keys as u64) as i64;
            let key = (format!("t{}", k % 5), k / 5);
            let i = changes.len();
            // Pairs of changes share a millisecond, never for one key.
            if i % 2 == 1 && changes[i - 1].key == key {
                continue;
            }
            let time_ms = BASE_MS + (i as i64 / 2) * 7;
            seq += 1 + u128::from(rng.below(100));
            let exists = present.contains_key(&key);
            let (op, v) = match (exists, rng.below(5)) {
                (false, _) => ("INSERT", Some(i as i64)),
                (true, 0) => ("REMOVE", None),
                (true, _) => ("MODIFY", Some(i as i64)),
            };
            match v {
                Some(v) => present.insert(key.clone(), v),
                None => present.remove(&key),
            };
            changes.push(Change {
                key,
                v,
                op,
                time_ms,
                seq,
            });
        }
        Self { changes }
    }

    /// The table after the changes up to (and including) time `until_ms`.
    fn model(&self, until_ms: i64) -> Model {
        let mut model = Model::new();
        for c in self.changes.iter().filter(|c| c.time_ms <= until_ms) {
            match c.v {
                Some(v) => model.insert(c.key.clone(), (v, format!("n{v}"))),
                None => model.remove(&c.key),
            };
        }
        model
    }
}

fn keys(key: &(String, i64)) -> Value {
    json!({"tenant": {"S": key.0}, "id": {"N": key.1.to_string()}})
}

fn image(key: &(String, i64), v: i64) -> Value {
    json!({"tenant": {"S": key.0}, "id": {"N": key.1.to_string()}, "v": {"N": v.to_string()}, "name": {"S": format!("n{v}")}})
}

/// As a Lambda on DynamoDB Streams writes it (ApproximateCreationDateTime in seconds).
fn stream_record(c: &Change) -> Value {
    let mut ddb = json!({
        "ApproximateCreationDateTime": c.time_ms / 1000,
        "Keys": keys(&c.key),
        "SequenceNumber": c.seq.to_string(),
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    });
    if let Some(v) = c.v {
        ddb["NewImage"] = image(&c.key, v);
    }
    json!({"eventID": format!("s{}", c.seq), "eventName": c.op, "eventSource": "aws:dynamodb", "dynamodb": ddb})
}

/// As Kinesis Data Streams for DynamoDB delivers it (milliseconds, no SequenceNumber).
fn kinesis_record(c: &Change) -> Value {
    let mut ddb = json!({
        "ApproximateCreationDateTime": c.time_ms,
        "Keys": keys(&c.key),
        "SizeBytes": 42,
    });
    if let Some(v) = c.v {
        ddb["NewImage"] = image(&c.key, v);
    }
    json!({
        "awsRegion": "eu-west-1", "eventID": format!("k{}", c.seq), "eventName": c.op,
        "userIdentity": null, "recordFormat": "application/json", "tableName": "orders",
        "dynamodb": ddb, "eventSource": "aws:dynamodb",
    })
}

/// An incremental export's line for a key's last change in the window.
fn incremental_line(c: &Change) -> Value {
    let mut line = json!({
        "Metadata": {"WriteTimestampMicros": {"N": (c.time_ms * 1000).to_string()}},
        "Keys": keys(&c.key),
    });
    if let Some(v) = c.v {
        line["NewImage"] = image(&c.key, v);
    }
    line
}

fn config(dir: &Path, extra: &str) -> std::path::PathBuf {
    write_config(
        dir,
        &format!(
            "pipeline_id = \"ddb\"\n[source]\nurl = \"landing\"\nformat = \"dynamodb\"\n{extra}\n\
             [sink]\ntable = \"table\"\nmode = \"merge\"\nkeys = [\"tenant\", \"id\"]\nsequence_by = \"_seq\"\n\
             delete_when = \"_op = 'REMOVE'\"\n[checkpoint]\nlocation = \"state\"\n"
        ),
    )
}

fn put(dir: &Path, name: &str, bytes: &[u8]) {
    let path = dir.join("landing").join(name);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, bytes).expect("write");
}

fn gzip(text: &str) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(text.as_bytes()).expect("gzip");
    gz.finish().expect("gzip")
}

/// Records spread over `files` texts in random order, some delivered twice, written as
/// `render` joins them.
fn scatter(records: &[Value], files: usize, seed: u64, join: &str) -> Vec<String> {
    let mut rng = Rng(seed);
    let mut out: Vec<Vec<String>> = vec![Vec::new(); files];
    for r in records {
        let copies = if rng.below(10) == 0 { 2 } else { 1 };
        for _ in 0..copies {
            out[rng.below(files as u64) as usize].push(r.to_string());
        }
    }
    out.into_iter().map(|f| f.join(join) + join).collect()
}

/// One history written three ways: each merges into a table equal to the model.
#[test]
fn one_history_written_three_ways_merges_to_the_model_each_time() {
    let history = History::generate(3_000, 150, 41);
    let model = history.model(i64::MAX);
    let last = |c: &Change, all: &[Change]| {
        all.iter()
            .rev()
            .find(|x| x.key == c.key)
            .is_some_and(|x| x.seq == c.seq)
    };
    type Shape<'a> = (&'static str, Box<dyn Fn() -> Vec<(String, Vec<u8>)> + 'a>);
    let shapes: Vec<Shape> = vec![
        (
            "stream records, one per line",
            Box::new(|| {
                let records: Vec<Value> = history.changes.iter().map(stream_record).collect();
                scatter(&records, 12, 5, "\n")
                    .into_iter()
                    .enumerate()
                    .map(|(i, t)| (format!("stream/{i:03}.json"), t.into_bytes()))
                    .collect()
            }),
        ),
        (
            "Kinesis records concatenated as Firehose writes them",
            Box::new(|| {
                let records: Vec<Value> = history.changes.iter().map(kinesis_record).collect();
                scatter(&records, 12, 6, "")
                    .into_iter()
                    .enumerate()
                    .map(|(i, t)| (format!("firehose/2026/11/30/{i:03}.gz"), gzip(&t)))
                    .collect()
            }),
        ),
        (
            "incremental exports",
            Box::new(|| {
                // Four windows; each holds every key's last change in it.
                let window = history.changes.len() / 4;
                (0..4)
                    .map(|w| {
                        let part = &history.changes[w * window..((w + 1) * window).min(history.changes.len())];
                        let lines: Vec<String> = part
                            .iter()
                            .filter(|c| last(c, part))
                            .map(|c| incremental_line(c).to_string() + "\n")
                            .collect();
                        (format!("incr/AWSDynamoDB/0{w}-incr/data/part.json.gz"), gzip(&lines.concat()))
                    })
                    .chain((0..4).map(|w| {
                        let manifest = json!({"exportType": "INCREMENTAL_EXPORT", "outputFormat": "DYNAMODB_JSON",
                            "exportFromTime": "2026-11-30T00:00:00Z", "exportToTime": "2026-11-30T01:00:00Z"});
                        (format!("incr/AWSDynamoDB/0{w}-incr/manifest-summary.json"), manifest.to_string().into_bytes())
                    }))
                    .collect()
            }),
        ),
    ];
    for (what, files) in shapes {
        let tmp = tempfile::tempdir().expect("tempdir");
        for (name, bytes) in files() {
            put(tmp.path(), &name, &bytes);
        }
        let cfg = config(tmp.path(), "max_files_per_batch = 5");
        drain(&cfg, &[], &[]);
        assert!(
            table_state(tmp.path()) == model,
            "{what}: the table differs from the model"
        );
        assert!(files_in_state(&cfg, "failed").is_empty(), "{what}");
    }
}

/// A full export at T, then Kinesis records and an incremental export of the changes after
/// T, under one prefix, discovered in shuffled order over several runs: the table equals the
/// model, and no change older than T overwrites the export's row.
#[test]
fn a_full_export_then_changes_in_any_order_merge_to_the_model() {
    let history = History::generate(2_400, 120, 77);
    let t_ms = history.changes[1_200].time_ms;
    let export = history.model(t_ms);
    let export_lines: String = export
        .iter()
        .map(|(key, (v, _))| json!({"Item": image(key, *v)}).to_string() + "\n")
        .collect();
    let iso = chrono::DateTime::from_timestamp_millis(t_ms)
        .expect("time")
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let mut files: Vec<(String, Vec<u8>)> = vec![
        ("cdc/AWSDynamoDB/01-full/data/a.json.gz".into(), gzip(&export_lines)),
        ("cdc/AWSDynamoDB/01-full/_started".into(), Vec::new()),
        ("cdc/AWSDynamoDB/01-full/manifest-files.json".into(), b"{}".to_vec()),
        ("cdc/AWSDynamoDB/01-full/manifest-summary.md5".into(), b"abc".to_vec()),
        (
            "cdc/AWSDynamoDB/01-full/manifest-summary.json".into(),
            json!({"exportType": "FULL_EXPORT", "exportTime": iso, "outputFormat": "DYNAMODB_JSON"})
                .to_string()
                .into_bytes(),
        ),
    ];
    // Kinesis: some changes from before T (the export holds them already) and those after.
    let kinesis: Vec<Value> = history.changes[1_000..1_900]
        .iter()
        .map(kinesis_record)
        .collect();
    for (i, text) in scatter(&kinesis, 6, 8, "").into_iter().enumerate() {
        files.push((format!("cdc/firehose/{i:02}"), text.into_bytes()));
    }
    // The rest of the changes, as an incremental export (each key's last change).
    let rest = &history.changes[1_900..];
    let lines: String = rest
        .iter()
        .filter(|c| {
            rest.iter()
                .rev()
                .find(|x| x.key == c.key)
                .is_some_and(|x| x.seq == c.seq)
        })
        .map(|c| incremental_line(c).to_string() + "\n")
        .collect();
    files.push((
        "cdc/AWSDynamoDB/02-incr/data/b.json.gz".into(),
        gzip(&lines),
    ));
    files.push((
        "cdc/AWSDynamoDB/02-incr/manifest-summary.json".into(),
        json!({"exportType": "INCREMENTAL_EXPORT", "outputFormat": "DYNAMODB_JSON",
               "exportFromTime": iso, "exportToTime": "2026-12-01T00:00:00Z"})
        .to_string()
        .into_bytes(),
    ));
    // Shuffled, and landed over three runs (an export's data can land before its manifest).
    let mut rng = Rng(99);
    for i in (1..files.len()).rev() {
        files.swap(i, rng.below(i as u64 + 1) as usize);
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let cfg = config(tmp.path(), "max_files_per_batch = 3");
    let third = files.len().div_ceil(3);
    for run in files.chunks(third) {
        for (name, bytes) in run {
            put(tmp.path(), name, bytes);
        }
        drain(&cfg, &[], &[]);
    }
    drain(&cfg, &[], &[]);
    assert!(
        table_state(tmp.path()) == history.model(i64::MAX),
        "the table differs from the model"
    );
    // Manifests, checksums and `_started` are never taken, and nothing failed.
    let taken: Vec<String> = files_json(&cfg)
        .iter()
        .map(|f| f["path"].as_str().expect("path").to_string())
        .collect();
    assert!(
        taken
            .iter()
            .all(|p| !p.contains("manifest") && !p.ends_with(".md5") && !p.ends_with("_started")),
        "{taken:#?}"
    );
    assert!(files_in_state(&cfg, "failed").is_empty());
    assert!(files_in_state(&cfg, "skipped").is_empty());
    let bad = bad_records_under(&tmp.path().join("state/bad_records"));
    assert!(bad.is_empty(), "{bad:?}");
}

/// Multi-line JSON: pretty-printed documents, a top-level array of 100k objects, nested
/// arrays, a file that does not parse (failed, with its offset), schema drift across files.
#[test]
fn multi_line_json_files_become_a_row_per_object() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let pretty = |id: i64| {
        serde_json::to_string_pretty(&json!({"id": id, "tags": [[1, 2], [3]], "s": {"a": "x"}}))
            .expect("json")
    };
    put(
        tmp.path(),
        "a.json",
        format!("{}\n{}\n", pretty(1), pretty(2)).as_bytes(),
    );
    let array: Vec<Value> = (10..100_010)
        .map(|i| json!({"id": i, "v": i % 7}))
        .collect();
    put(
        tmp.path(),
        "b.json",
        serde_json::to_string(&array).expect("json").as_bytes(),
    );
    put(tmp.path(), "c.json", b"[{\"id\": 200000, \"new\": true}]");
    put(tmp.path(), "d.json", b"[{\"id\": 1},\n {\"id\" 2}]");
    let cfg = write_config(
        tmp.path(),
        "pipeline_id = \"ml\"\n[source]\nurl = \"landing\"\nmultiline = true\nmax_files_per_batch = 2\n\
         [sink]\ntable = \"table\"\n[checkpoint]\nlocation = \"state\"\n",
    );
    drain(&cfg, &[], &[]);
    let t = read_delta(&url_of(&tmp.path().join("table")), &json!({}));
    assert_eq!(t.rows.len(), 2 + 100_000 + 1);
    let first = t.rows.iter().find(|r| r["id"] == 1).expect("row 1");
    assert_eq!(first["tags"], json!([[1, 2], [3]]));
    assert!(
        t.rows.iter().any(|r| r["new"] == true),
        "the new column arrived"
    );
    let failed = files_in_state(&cfg, "failed");
    assert_eq!(failed.len(), 1, "{failed:?}");
    let error = failed[0]["error"].as_str().expect("error");
    assert!(
        error.contains("byte offset") && error.contains("line 2"),
        "{error}"
    );
}
