//! Table health (issue 20): auto-compaction keeps small files bounded, VACUUM deletes what
//! MERGE and compaction replaced once past retention, the Delta log gets checkpoints, a
//! denied log clean-up never stops ingestion, and the change feed survives compaction.

use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpStream;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use crate::merge::{merge_config, merge_config_as, named_files, table_state, write_files, History};
use crate::support::*;

/// A local append pipeline over one-file batches, with `maintenance` as its section body.
fn small_batches_config(dir: &Path, trigger: &str, maintenance: &str) -> std::path::PathBuf {
    write_config(
        dir,
        &format!(
            "pipeline_id = \"health\"\n[source]\nurl = \"landing\"\nmax_files_per_batch = 1\n\
             [sink]\ntable = \"table\"\n[checkpoint]\nlocation = \"state\"\n{trigger}\n\
             [maintenance]\n{maintenance}\n"
        ),
    )
}

pub(crate) fn describe(config: &Path) -> Value {
    let out = run_ok(
        &[
            "table",
            "describe",
            "--config",
            config.to_str().expect("utf8"),
            "--json",
        ],
        &[],
    );
    serde_json::from_str(out.trim()).expect("describe --json is JSON")
}

/// Every Delta action of `kind` (`add`, `remove`, `commitInfo`, ...) in the table's JSON
/// commits, with the commit's version.
fn log_actions(table: &Path, kind: &str) -> Vec<(i64, Value)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(table.join("_delta_log")).expect("log") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let Some(version) = name
            .strip_suffix(".json")
            .and_then(|v| v.parse::<i64>().ok())
        else {
            continue;
        };
        for line in std::fs::read_to_string(&path).expect("commit").lines() {
            let action: Value = serde_json::from_str(line).expect("action");
            if let Some(a) = action.get(kind) {
                out.push((version, a.clone()));
            }
        }
    }
    out.sort_by_key(|(v, _)| *v);
    out
}

fn ids_of(table: &Path) -> Vec<i64> {
    read_delta(&url_of(table), &Value::Null).ints("id")
}

/// Test 1: 300 one-file batches in a continuous run end with a bounded number of files,
/// every row once, and a Delta checkpoint, as `inlet table describe` says.
#[test]
fn a_continuous_run_of_300_small_batches_stays_compact() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut landing = Landing::new(&tmp.path().join("landing"));
    landing.add_files(300, 3);
    let min_files = 20;
    let config = small_batches_config(
        tmp.path(),
        "[trigger]\ninterval_seconds = 1",
        &format!("compact_min_files = {min_files}"),
    );
    let run = Running::start(&config, &[], &[]);
    wait_for(600, "300 files committed", Some(&run), || {
        committed(&config) == 300
    });
    let log = run.stop();
    assert!(log.contains("small files compacted"), "{log}");

    let ids = ids_of(&tmp.path().join("table"));
    assert_eq!(ids, landing.ids.iter().copied().collect::<Vec<_>>());
    let d = describe(&config);
    let files = d["table"]["files"].as_u64().expect("files");
    // Below the threshold of small files, plus the one compacted file they join.
    assert!(
        files <= min_files + 1,
        "{files} data files after 300 batches: {d}"
    );
    assert!(d["table"]["last_compaction"].is_array(), "{d}");
    let checkpoint = d["table"]["checkpoint_version"]
        .as_i64()
        .expect("a checkpoint");
    assert!(
        tmp.path()
            .join("table/_delta_log")
            .join(format!("{checkpoint:020}.checkpoint.parquet"))
            .exists(),
        "{d}"
    );
    // Compaction commits never carry a txn, and change no data.
    let table = tmp.path().join("table");
    let optimize: BTreeSet<i64> = log_actions(&table, "commitInfo")
        .into_iter()
        .filter(|(_, i)| i["operation"] == "OPTIMIZE")
        .map(|(v, _)| v)
        .collect();
    assert!(optimize.len() >= 5, "{optimize:?}");
    for kind in ["add", "remove"] {
        for (v, a) in log_actions(&table, kind) {
            if optimize.contains(&v) {
                assert_eq!(a["dataChange"], false, "{kind} of version {v}: {a}");
            }
        }
    }
    let txn_versions: BTreeSet<i64> = log_actions(&table, "txn")
        .into_iter()
        .map(|(v, _)| v)
        .collect();
    assert!(
        txn_versions.len() >= 300,
        "every batch commit carries its txn"
    );
    assert!(
        optimize.is_disjoint(&txn_versions),
        "a compaction carried a txn: {:?}",
        optimize.intersection(&txn_versions).collect::<Vec<_>>()
    );
    assert_eq!(d["checkpoint"]["batches"].as_u64(), Some(300), "{d}");
}

/// Test 2: SIGKILL at each step of a compaction and of a VACUUM; the next run or command
/// finishes, every row is in the table once, and every file the snapshot names exists.
#[test]
fn a_crash_at_any_step_of_compaction_or_vacuum_loses_nothing() {
    for point in ["compact-start", "compact-committed"] {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut landing = Landing::new(&tmp.path().join("landing"));
        landing.add_files(12, 5);
        let config = small_batches_config(tmp.path(), "", "compact_min_files = 5");
        let crashed = try_drain(&config, &["--fault-point", point], &[]);
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(crashed.status.signal(), Some(9), "{point}: killed");
        let before = committed(&config);
        assert!((5..=12).contains(&before), "{point}: {before} committed");
        drain(&config, &[], &[]);
        assert_eq!(
            ids_of(&tmp.path().join("table")),
            landing.ids.iter().copied().collect::<Vec<_>>(),
            "{point}"
        );
        let d = describe(&config);
        assert!(d["table"]["last_compaction"].is_array(), "{point}: {d}");
    }

    // VACUUM of files compaction replaced (retention 0 by the table property).
    for point in ["vacuum-started", "vacuum-done"] {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut landing = Landing::new(&tmp.path().join("landing"));
        landing.add_files(8, 5);
        let config = write_config(
            tmp.path(),
            "pipeline_id = \"health\"\n[source]\nurl = \"landing\"\nmax_files_per_batch = 1\n\
             [sink]\ntable = \"table\"\nproperties = { \"delta.deletedFileRetentionDuration\" = \"interval 0 seconds\" }\n\
             [checkpoint]\nlocation = \"state\"\n[maintenance]\ncompact_min_files = 4\n",
        );
        drain(&config, &[], &[]);
        let table = tmp.path().join("table");
        let removed = log_actions(&table, "remove").len();
        assert!(removed >= 4, "compaction removed {removed} files");
        let cfg = config.to_str().expect("utf8");
        let crashed = run_inlet(
            &["table", "vacuum", "--config", cfg, "--fault-point", point],
            &[],
        );
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(crashed.status.signal(), Some(9), "{point}: killed");
        let out = run_ok(&["table", "vacuum", "--config", cfg, "--json"], &[]);
        let v: Value = serde_json::from_str(out.trim()).expect("json");
        for (_, r) in log_actions(&table, "remove") {
            let path = r["path"].as_str().expect("path");
            assert!(
                !table.join(path).exists(),
                "{point}: {path} survived VACUUM: {v}"
            );
        }
        assert_eq!(
            ids_of(&table),
            landing.ids.iter().copied().collect::<Vec<_>>(),
            "{point}"
        );
    }
}

/// Test 3: Python `deltalake` appends while inlet ingests and compacts: every row of both
/// writers is in the table once.
#[test]
fn another_writer_appending_during_compaction_keeps_its_rows() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut landing = Landing::new(&tmp.path().join("landing"));
    landing.add_files(40, 3);
    let config = small_batches_config(
        tmp.path(),
        "[trigger]\ninterval_seconds = 1",
        "compact_min_files = 5",
    );
    // The table exists before the other writer starts.
    run_ok(
        &["run", "--config", config.to_str().expect("utf8"), "--once"],
        &[],
    );
    let run = Running::start(&config, &[], &[]);
    let table = url_of(&tmp.path().join("table"));
    let other = 30;
    python_ok(&["append-delta", &table, "100000", &other.to_string()]);
    wait_for(300, "40 files committed", Some(&run), || {
        committed(&config) == 40
    });
    let log = run.stop();
    assert!(log.contains("small files compacted"), "{log}");
    let mut want: Vec<i64> = landing.ids.iter().copied().collect();
    want.extend(100_000..100_000 + other);
    want.sort_unstable();
    assert_eq!(ids_of(&tmp.path().join("table")), want);
    let compactions = log_actions(&tmp.path().join("table"), "commitInfo")
        .into_iter()
        .filter(|(_, i)| i["operation"] == "OPTIMIZE")
        .count();
    assert!(compactions >= 2, "{compactions} compactions");
}

/// The change feed folded in commit order: inserts and post-images set a key, deletes
/// drop it; each pre-image and delete must equal the key's row at that point.
fn fold_cdf(rows: &[Value]) -> crate::merge::Model {
    let mut ordered: Vec<&Value> = rows.iter().collect();
    let rank = |t: &str| match t {
        "update_preimage" => 0,
        "delete" => 1,
        "update_postimage" => 2,
        _ => 3,
    };
    ordered.sort_by_key(|r| {
        (
            r["_commit_version"].as_i64().expect("version"),
            rank(r["_change_type"].as_str().expect("type")),
        )
    });
    let mut state = crate::merge::Model::new();
    for r in ordered {
        let key = (
            r["tenant"].as_str().expect("tenant").to_string(),
            r["id"].as_i64().expect("id"),
        );
        let value = (
            r["v"].as_i64().expect("v"),
            r["name"].as_str().expect("name").to_string(),
        );
        match r["_change_type"].as_str().expect("type") {
            "insert" => {
                assert!(
                    state.insert(key.clone(), value).is_none(),
                    "insert of present key {key:?}"
                );
            }
            "update_postimage" => {
                state.insert(key, value);
            }
            "update_preimage" | "delete" => {
                assert_eq!(state.get(&key), Some(&value), "{r}");
                if r["_change_type"] == "delete" {
                    state.remove(&key);
                }
            }
            other => panic!("change type {other}"),
        }
    }
    state
}

/// Test 4: a MERGE table with Change Data Feed, a DynamoDB stream history in several runs
/// with compactions between them: the feed replays to the model, and compaction commits
/// add no change rows.
#[test]
fn change_data_feed_of_merges_equals_the_model_across_compaction() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let history = History::generate(400, 21);
    // In sequence order: the first runs only insert, so files accumulate and compact.
    let files = history.in_order(24);
    let config = merge_config(tmp.path(), "cdf", "dynamodb_stream", "");
    let text = std::fs::read_to_string(&config).expect("config")
        + "[maintenance]\ncompact_min_files = 2\n";
    let text = text.replace(
        "[sink]\n",
        "[sink]\nproperties = { \"delta.enableChangeDataFeed\" = \"true\" }\n",
    );
    std::fs::write(&config, text).expect("config");
    let landing = tmp.path().join("landing");
    for chunk in files.chunks(2) {
        write_files(&landing, chunk);
        drain(&config, &[], &[]);
    }
    let table = tmp.path().join("table");
    let state = table_state(tmp.path());
    assert!(state == history.model, "table differs from the model");
    let cdf: Vec<Value> =
        serde_json::from_str(python_ok(&["read-cdf", &url_of(&table), "null", "0"]).trim())
            .expect("cdf json");
    assert!(
        fold_cdf(&cdf) == history.model,
        "the change feed does not replay to the model"
    );
    let compactions: BTreeSet<i64> = log_actions(&table, "commitInfo")
        .into_iter()
        .filter(|(_, i)| i["operation"] == "OPTIMIZE")
        .map(|(v, _)| v)
        .collect();
    assert!(!compactions.is_empty(), "no compaction ran");
    let in_feed: BTreeMap<i64, usize> = cdf.iter().fold(BTreeMap::new(), |mut m, r| {
        *m.entry(r["_commit_version"].as_i64().expect("v"))
            .or_default() += 1;
        m
    });
    for v in &compactions {
        assert!(!in_feed.contains_key(v), "compaction {v} has change rows");
    }
    let d = describe(&config);
    assert_eq!(
        d["table"]["properties"]["delta.enableChangeDataFeed"], "true",
        "{d}"
    );
    // The merge-on-read MERGE writes no change data files: a feed table copies on write.
    assert_eq!(d["table"]["files_with_deletion_vectors"], 0, "{d}");
    let shown = run_ok(
        &["validate", "--config", config.to_str().expect("utf8")],
        &[],
    );
    assert!(
        shown.contains("merge strategy copy_on_write (the table has a change data feed"),
        "{shown}"
    );
}

/// Test 5: an S3 endpoint that refuses DeleteObject under `_delta_log/`: the log clean-up
/// fails, ingestion goes on, one warning and a metric say so.
#[test]
fn a_denied_log_clean_up_warns_once_and_ingestion_goes_on() {
    let moto = Moto::start();
    moto.s3(&["mkbucket", "lake"]);
    let tmp = tempfile::tempdir().expect("tempdir");
    let proxy = FaultProxy::start_with(
        &moto.endpoint,
        tmp.path(),
        0.0,
        1,
        0.0,
        &[("DENY_DELETE", "_delta_log/")],
    );
    let mut landing = Landing::new(&tmp.path().join("landing"));
    landing.add_files(8, 2);
    let config = write_config(
        tmp.path(),
        &format!(
            "pipeline_id = \"denied\"\n[source]\nurl = \"landing\"\nmax_files_per_batch = 1\n\
             [sink]\ntable = \"s3://lake/t\"\nstorage_options = {{ aws_endpoint = \"{}\", aws_allow_http = \"true\", aws_region = \"us-east-1\" }}\n\
             properties = {{ \"delta.logRetentionDuration\" = \"interval 0 seconds\", \"delta.deletedFileRetentionDuration\" = \"interval 0 seconds\" }}\n\
             [checkpoint]\nlocation = \"state\"\n[trigger]\ninterval_seconds = 1\n\
             [maintenance]\ncheckpoint_interval = 2\ncompact_min_files = 3\nvacuum_interval = \"off\"\n",
            proxy.endpoint
        ),
    );
    let port = free_port();
    let run = Running::start(
        &config,
        &moto.env(),
        &["--metrics-addr", &format!("127.0.0.1:{port}")],
    );
    wait_for(60, "the metrics endpoint", Some(&run), || {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    wait_for(120, "8 files committed", Some(&run), || {
        committed(&config) == 8
    });
    let failures = |metrics: &str| -> f64 {
        metrics
            .lines()
            .filter(|l| {
                l.starts_with("inlet_maintenance_failures_total")
                    && l.contains("step=\"log_cleanup\"")
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    let metrics = http_get(port, "/metrics").1;
    let log = run.stop();
    assert!(failures(&metrics) >= 2.0, "{metrics}");
    let warnings = log
        .lines()
        .filter(|l| l.contains("table maintenance failed;") && l.contains("log_cleanup"))
        .count();
    assert_eq!(warnings, 1, "{log}");
    assert!(
        proxy.stats()["denied"].as_u64().unwrap_or(0) >= 1,
        "{:?}",
        proxy.stats()
    );
    // VACUUM's own commits do no log clean-up, so the denial does not stop it.
    let out = run_ok(
        &[
            "table",
            "vacuum",
            "--config",
            config.to_str().expect("utf8"),
            "--json",
        ],
        &moto.env(),
    );
    let v: Value = serde_json::from_str(out.trim()).expect("json");
    assert!(
        !v["files"].as_array().expect("files").is_empty(),
        "compaction left files to vacuum: {v}"
    );
    let t = read_delta("s3://lake/t", &moto.reader_options());
    assert_eq!(
        t.ints("id"),
        landing.ids.iter().copied().collect::<Vec<_>>()
    );
    // Nothing was deleted from the log: every commit is still there.
    let objects = moto.dump("lake", "t/_delta_log/");
    let commits = objects.keys().filter(|k| k.ends_with(".json")).count() as i64;
    assert_eq!(commits, t.version + 1, "{:?}", objects.keys());
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// Test 6: VACUUM deletes the files MERGE and compaction replaced once past the table's
/// retention (shortened by its property), and nothing younger.
#[test]
fn vacuum_deletes_replaced_files_past_retention_and_nothing_younger() {
    let retention_s = 15;
    let tmp = tempfile::tempdir().expect("tempdir");
    let history = History::generate(300, 5);
    let files = named_files(&history, 12, 8);
    // Copy-on-write: every remove replaces its file (a deletion-vector MERGE removes and
    // re-adds the same file with its new vector; `dv::a_crash_before_the_commit_…` vacuums
    // such a table).
    let config = merge_config_as(
        tmp.path(),
        "vac",
        "dynamodb_stream",
        "",
        crate::merge::STRATEGIES[1],
    );
    let text = std::fs::read_to_string(&config).expect("config").replace(
        "[sink]\n",
        &format!("[sink]\nproperties = {{ \"delta.deletedFileRetentionDuration\" = \"interval {retention_s} seconds\" }}\n"),
    ) + "[maintenance]\ncompact_min_files = 3\n";
    std::fs::write(&config, text).expect("config");
    let landing = tmp.path().join("landing");
    let table = tmp.path().join("table");
    let (first, second) = files.split_at(8);
    for chunk in first.chunks(2) {
        write_files(&landing, chunk);
        drain(&config, &[], &[]);
    }
    let old: BTreeSet<String> = log_actions(&table, "remove")
        .into_iter()
        .map(|(_, r)| r["path"].as_str().expect("path").to_string())
        .collect();
    assert!(!old.is_empty(), "MERGE and compaction removed nothing");
    let newest_old = log_actions(&table, "remove")
        .iter()
        .filter_map(|(_, r)| r["deletionTimestamp"].as_i64())
        .max()
        .expect("deletion time");
    // The first files' removal must age past the retention (the point of the test).
    wait_for(60, "the first removals to pass the retention", None, || {
        now_ms() > newest_old + retention_s * 1000 + 500
    });
    for chunk in second.chunks(2) {
        write_files(&landing, chunk);
        drain(&config, &[], &[]);
    }
    let removed = log_actions(&table, "remove");
    let started = now_ms();
    let cfg = config.to_str().expect("utf8");
    let out = run_ok(&["table", "vacuum", "--config", cfg, "--json"], &[]);
    let v: Value = serde_json::from_str(out.trim()).expect("json");
    let deleted: BTreeSet<String> = v["files"]
        .as_array()
        .expect("files")
        .iter()
        .map(|f| f.as_str().expect("path").to_string())
        .collect();
    let mut young = 0;
    for (_, r) in &removed {
        let path = r["path"].as_str().expect("path");
        let at = r["deletionTimestamp"].as_i64().expect("deletion time");
        if at < started - retention_s * 1000 {
            assert!(
                !table.join(path).exists(),
                "{path} is past retention but kept"
            );
            assert!(
                deleted
                    .iter()
                    .any(|d| d.ends_with(path) || path.ends_with(d.as_str())),
                "{path} not reported: {v}"
            );
        } else {
            young += 1;
            assert!(
                table.join(path).exists(),
                "{path} is younger than retention but was deleted"
            );
        }
    }
    assert!(
        young > 0,
        "the second runs removed nothing younger than the retention"
    );
    assert!(!deleted.is_empty(), "{v}");
    // A shorter --retain than the table's retention is refused, naming both.
    let refused = run_inlet(&["table", "vacuum", "--config", cfg, "--retain", "1s"], &[]);
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(
        err.contains("delta.deletedFileRetentionDuration is 15s"),
        "{err}"
    );
    let state = table_state(tmp.path());
    assert!(
        state == history.model,
        "table differs from the model after VACUUM"
    );
}

/// Table properties: unknown `delta.*` keys are refused with the list, an existing table's
/// differing property is reported by `validate` and changed by `set-properties` only.
#[test]
fn table_properties_are_checked_reported_and_set_explicitly() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut landing = Landing::new(&tmp.path().join("landing"));
    landing.add_files(2, 2);
    let body = |props: &str| {
        format!(
            "pipeline_id = \"props\"\n[source]\nurl = \"landing\"\n[sink]\ntable = \"table\"\nproperties = {{ {props} }}\n[checkpoint]\nlocation = \"state\"\n"
        )
    };
    let config = write_config(
        tmp.path(),
        &body("\"delta.enableChangeDataFeeds\" = \"true\""),
    );
    let cfg = config.to_str().expect("utf8");
    let out = run_inlet(&["validate", "--config", cfg], &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unknown Delta table property delta.enableChangeDataFeeds; inlet accepts"),
        "{err}"
    );
    write_config(
        tmp.path(),
        &body("\"delta.logRetentionDuration\" = \"interval 60 days\", owner = \"data-team\""),
    );
    drain(&config, &[], &[]);
    let d = describe(&config);
    assert_eq!(
        d["table"]["properties"]["delta.logRetentionDuration"],
        "interval 60 days"
    );
    assert_eq!(d["table"]["properties"]["owner"], "data-team", "{d}");
    write_config(
        tmp.path(),
        &body("\"delta.logRetentionDuration\" = \"interval 60 days\", owner = \"data-team\", \"delta.enableChangeDataFeed\" = \"true\""),
    );
    let out = run_ok(&["validate", "--config", cfg], &[]);
    assert!(
        out.contains(
            "property delta.enableChangeDataFeed differs: the table has (unset), the config true"
        ),
        "{out}"
    );
    drain(&config, &[], &[]);
    assert!(describe(&config)["table"]["properties"]["delta.enableChangeDataFeed"].is_null());
    let set = run_ok(&["table", "set-properties", "--config", cfg], &[]);
    assert!(set.contains("delta.enableChangeDataFeed = true"), "{set}");
    let d = describe(&config);
    assert_eq!(
        d["table"]["properties"]["delta.enableChangeDataFeed"],
        "true"
    );
    let features = json!(d["table"]["writer_features"]);
    assert!(
        d["table"]["min_writer_version"].as_i64() >= Some(4)
            || features
                .as_array()
                .is_some_and(|f| f.contains(&json!("changeDataFeed"))),
        "{d}"
    );
    let again = run_ok(&["table", "set-properties", "--config", cfg], &[]);
    assert!(again.contains("nothing to do"), "{again}");
}

/// `inlet table optimize` on a partitioned table: one partition, then Z-order, and a
/// partition column that does not exist is refused naming the real ones.
#[test]
fn optimize_one_partition_then_zorder_the_table() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let landing = tmp.path().join("landing");
    std::fs::create_dir_all(&landing).expect("mkdir");
    let mut ids = Vec::new();
    for f in 0..6 {
        let mut text = String::new();
        for r in 0..5 {
            let id = f * 10 + r;
            ids.push(id);
            let day = if f % 2 == 0 { "a" } else { "b" };
            text.push_str(&format!("{{\"id\":{id},\"day\":\"{day}\"}}\n"));
        }
        std::fs::write(landing.join(format!("f{f}.json")), text).expect("write");
    }
    let config = write_config(
        tmp.path(),
        "pipeline_id = \"opt\"\n[source]\nurl = \"landing\"\nmax_files_per_batch = 1\n\
         [sink]\ntable = \"table\"\npartition_by = [\"day\"]\n[checkpoint]\nlocation = \"state\"\n\
         [maintenance]\nauto_compact = false\n",
    );
    drain(&config, &[], &[]);
    let cfg = config.to_str().expect("utf8");
    let files_in = |day: &str| {
        std::fs::read_dir(tmp.path().join(format!("table/day={day}")))
            .map(|d| d.count())
            .unwrap_or(0)
    };
    assert_eq!(describe(&config)["table"]["files"], 6);
    let out = run_ok(
        &[
            "table",
            "optimize",
            "--config",
            cfg,
            "--partition",
            "day=a",
            "--json",
        ],
        &[],
    );
    let v: Value = serde_json::from_str(out.trim()).expect("json");
    assert_eq!(
        (v["files_removed"].as_u64(), v["files_added"].as_u64()),
        (Some(3), Some(1)),
        "{v}"
    );
    let d = describe(&config);
    assert_eq!(d["table"]["files"], 4, "{d}");
    assert!(files_in("a") >= 4, "the replaced files stay until VACUUM");
    run_ok(
        &["table", "optimize", "--config", cfg, "--zorder-by", "id"],
        &[],
    );
    assert_eq!(describe(&config)["table"]["files"], 2);
    let mut got = ids_of(&tmp.path().join("table"));
    got.sort_unstable();
    ids.sort_unstable();
    assert_eq!(got, ids);
    let refused = run_inlet(
        &[
            "table",
            "optimize",
            "--config",
            cfg,
            "--partition",
            "region=eu",
        ],
        &[],
    );
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains(
            "'region', which is not a partition column of the table (its partition columns: day)"
        ),
        "{err}"
    );
}
