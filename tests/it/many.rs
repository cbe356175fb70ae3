//! Beyond one pipeline: several pipelines in one process (one failing alone), and several
//! writers appending and MERGEing into one table at once, each row exactly once.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::merge::{model_of, named_files, write_files, History, Model};
use crate::support::*;

/// `dir/<name>.toml`: pipeline `name` over `dir/landing-<name>` into `table` (relative to
/// `dir`), with its checkpoint in `dir/state-<name>`; `body` adds source and sink lines.
fn pipeline(dir: &Path, name: &str, table: &str, source: &str, sink: &str) -> PathBuf {
    std::fs::create_dir_all(dir.join(format!("landing-{name}"))).expect("mkdir");
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(
        &path,
        format!(
            "pipeline_id = \"{name}\"\n[source]\nurl = \"landing-{name}\"\n{source}\n[sink]\ntable = \"{table}\"\n{sink}\n\
             [checkpoint]\nlocation = \"state-{name}\"\n[trigger]\ninterval_seconds = 1\n"
        ),
    )
    .expect("config");
    path
}

#[test]
fn one_process_runs_three_pipelines_and_one_with_bad_credentials_fails_alone() {
    let moto = Moto::start();
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let mut configs = Vec::new();
    let mut landings = Vec::new();
    for name in ["orders", "clicks"] {
        let cfg = pipeline(dir, name, &format!("table-{name}"), "", "");
        let mut landing = Landing::new(&dir.join(format!("landing-{name}")));
        landing.add_files(3, 10);
        configs.push(cfg);
        landings.push(landing);
    }
    // The third reads S3 with a profile that does not exist.
    let bad = pipeline(
        dir,
        "payments",
        "table-payments",
        &format!(
            "{}\n",
            moto.storage_options().replace(
                "aws_region",
                "aws_profile = \"no-such-profile\", aws_region"
            )
        ),
        "",
    );
    let text = std::fs::read_to_string(&bad).expect("config").replace(
        "url = \"landing-payments\"",
        "url = \"s3://landing/payments/\"",
    );
    std::fs::write(&bad, text).expect("config");
    configs.push(bad);
    let mut args = vec!["run", "--available-now", "--json"];
    for c in &configs {
        args.extend(["--config", c.to_str().expect("utf8")]);
    }
    let out = run_inlet(&args, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "a pipeline failed: {stderr}");
    assert!(
        stderr.contains("1 of 3 pipelines failed: payments"),
        "{stderr}"
    );
    let summary: Value = serde_json::from_slice(&out.stdout).expect("json summary");
    let by_id = |id: &str| {
        summary["pipelines"]
            .as_array()
            .expect("pipelines")
            .iter()
            .find(|p| p["pipeline"] == id)
            .cloned()
            .expect("listed")
    };
    for (name, landing) in ["orders", "clicks"].iter().zip(&landings) {
        let p = by_id(name);
        assert_eq!(p["ok"], true, "{p}");
        assert_eq!(p["stats"]["files"], 3, "{p}");
        let table = read_delta(&url_of(&dir.join(format!("table-{name}"))), &json!({}));
        assert_eq!(
            table.ints("id"),
            landing.ids.iter().copied().collect::<Vec<_>>()
        );
    }
    let p = by_id("payments");
    assert_eq!(p["ok"], false, "{p}");
    assert!(
        p["error"]
            .as_str()
            .is_some_and(|e| e.contains("no-such-profile")),
        "{p}"
    );

    // Continuous, with one metrics endpoint: /readyz names the failed pipeline, /livez
    // stays up (the other two go on), the metrics carry each pipeline's label.
    for landing in &mut landings {
        landing.add_files(1, 10);
    }
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut extra: Vec<&str> = vec!["--metrics-addr", &addr];
    extra.extend(["--config", configs[1].to_str().expect("utf8")]);
    extra.extend(["--config", configs[2].to_str().expect("utf8")]);
    let run = Running::start(&configs[0], &[], &extra);
    wait_for(
        60,
        "/readyz to name the failed pipeline",
        Some(&run),
        || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
                && http_get(port, "/readyz")
                    .1
                    .contains("pipeline payments: stopped")
        },
    );
    wait_for(
        60,
        "the good pipelines to take the new files",
        Some(&run),
        || {
            http_get(port, "/metrics")
                .1
                .lines()
                .filter(|l| l.starts_with("inlet_files_committed_total{") && l.ends_with(" 1"))
                .count()
                == 2
        },
    );
    let (code, body) = http_get(port, "/readyz");
    assert_eq!(code, 503, "{body}");
    assert!(
        !body.contains("pipeline orders") && !body.contains("pipeline clicks"),
        "{body}"
    );
    assert_eq!(http_get(port, "/livez").0, 200);
    let metrics = http_get(port, "/metrics").1;
    for name in ["orders", "clicks", "payments"] {
        assert!(
            metrics.contains(&format!(
                "inlet_batches_committed_total{{pipeline=\"{name}\"}}"
            )),
            "{metrics}"
        );
    }
    run.signal("TERM");
    let (status, log) = run.wait();
    assert_eq!(status.code(), Some(1), "{log}");
}

/// Appended rows: `{tenant, id, v, name}` with fresh ids under tenant `tenant`.
fn append_file(dir: &Path, tenant: &str, n: usize, next: &mut i64, ids: &mut BTreeSet<i64>) {
    let mut text = String::new();
    for _ in 0..5 {
        *next += 1;
        ids.insert(*next);
        text.push_str(&format!(
            "{{\"tenant\":\"{tenant}\",\"id\":{},\"v\":{},\"name\":\"{tenant}\"}}\n",
            *next, *next
        ));
    }
    std::fs::write(dir.join(format!("f{n:05}.json")), text).expect("write");
}

#[test]
fn four_pipelines_append_and_merge_into_one_table_for_a_minute() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let merge_sink = "mode = \"merge\"\nkeys = [\"tenant\", \"id\"]\nsequence_by = \"_seq\"\n\
                      delete_when = \"_op = 'REMOVE'\"";
    let mut cfgs = Vec::new();
    for name in ["append1", "append2"] {
        cfgs.push(pipeline(dir, name, "table", "max_files_per_batch = 2", ""));
    }
    // Every writer compacts often, so compactions race each other and the MERGEs.
    for name in ["merge1", "merge2"] {
        cfgs.push(pipeline(
            dir,
            name,
            "table",
            "format = \"dynamodb_stream\"\nmax_files_per_batch = 2",
            merge_sink,
        ));
    }
    for cfg in &cfgs {
        let text = std::fs::read_to_string(cfg).expect("config");
        std::fs::write(cfg, format!("{text}[maintenance]\ncompact_min_files = 4\n"))
            .expect("config");
    }
    // Two stream histories over disjoint keys (tenants t… and u…).
    let h1 = History::generate(300, 41);
    let h2 = History::generate(300, 43);
    let files1 = named_files(&h1, 40, 47);
    let files2: Vec<(String, String)> = named_files(&h2, 40, 53)
        .into_iter()
        .map(|(n, t)| (n, t.replace("{\"S\":\"t", "{\"S\":\"u")))
        .collect();
    let mut model: Model = h1.model.clone();
    model.extend(
        h2.model
            .iter()
            .map(|((t, id), v)| ((t.replacen('t', "u", 1), *id), v.clone())),
    );
    // Two processes, two pipelines each: one by --config, one by --config-dir.
    let second = dir.join("second");
    std::fs::create_dir_all(&second).expect("mkdir");
    for name in ["append2", "merge2"] {
        let text = std::fs::read_to_string(dir.join(format!("{name}.toml"))).expect("config");
        let text = text
            .replace(
                &format!("\"landing-{name}\""),
                &format!("\"{}\"", dir.join(format!("landing-{name}")).display()),
            )
            .replace("\"table\"", &format!("\"{}\"", dir.join("table").display()))
            .replace(
                &format!("\"state-{name}\""),
                &format!("\"{}\"", dir.join(format!("state-{name}")).display()),
            );
        std::fs::write(second.join(format!("{name}.toml")), text).expect("config");
    }
    let a = Running::start(
        &cfgs[0],
        &[],
        &["--config", cfgs[2].to_str().expect("utf8")],
    );
    let second_dir = second.to_str().expect("utf8").to_string();
    let b = Running::start_args(
        &["run", "--config-dir", &second_dir],
        &second.join("run"),
        &[],
    );
    let (mut next1, mut next2) = (0i64, 1_000_000i64);
    let (mut ids1, mut ids2) = (BTreeSet::new(), BTreeSet::new());
    let started = Instant::now();
    let mut n = 0usize;
    let (mut m1, mut m2) = (files1.iter(), files2.iter());
    // At least a minute of small files landing on all four prefixes at once.
    while started.elapsed() < Duration::from_secs(60) || n < 40 {
        append_file(&dir.join("landing-append1"), "a1", n, &mut next1, &mut ids1);
        append_file(&dir.join("landing-append2"), "a2", n, &mut next2, &mut ids2);
        if let Some((name, text)) = m1.next() {
            std::fs::write(dir.join("landing-merge1").join(name), text).expect("write");
        }
        if let Some((name, text)) = m2.next() {
            std::fs::write(dir.join("landing-merge2").join(name), text).expect("write");
        }
        n += 1;
        std::thread::sleep(Duration::from_millis(700));
        assert!(
            a.exited().is_none() && b.exited().is_none(),
            "{}\n{}",
            a.log(),
            b.log()
        );
    }
    let expect = [
        (&cfgs[0], n),
        (&cfgs[1], n),
        (&cfgs[2], files1.len()),
        (&cfgs[3], files2.len()),
    ];
    let caught_up = || {
        expect.iter().all(|(cfg, want)| {
            let state = cfg.parent().expect("dir").join(format!(
                "state-{}",
                cfg.file_stem().expect("stem").to_string_lossy()
            ));
            state.exists() && files_in_state(cfg, "committed").len() == *want
        })
    };
    // Both processes' logs on failure: a pipeline of either may be the one behind
    // (run 1 is process A: append1, merge1; run 2 is B: append2, merge2).
    wait_for_all(180, "every file committed", &[&a, &b], caught_up);
    a.stop();
    b.stop();

    let table = read_delta(&url_of(&dir.join("table")), &json!({}));
    let (appended, merged): (Vec<Value>, Vec<Value>) = table
        .rows
        .iter()
        .cloned()
        .partition(|r| r["tenant"].as_str().is_some_and(|t| t.starts_with('a')));
    let ids = |tenant: &str| -> Vec<i64> {
        let mut v: Vec<i64> = appended
            .iter()
            .filter(|r| r["tenant"] == tenant)
            .map(|r| r["id"].as_i64().expect("id"))
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        ids("a1"),
        ids1.into_iter().collect::<Vec<_>>(),
        "append1: rows lost or doubled"
    );
    assert_eq!(
        ids("a2"),
        ids2.into_iter().collect::<Vec<_>>(),
        "append2: rows lost or doubled"
    );
    let state = model_of(&merged);
    assert_eq!(state.len(), model.len());
    assert!(state == model, "the MERGE result differs from the model");
}

/// A MERGE pipeline whose table an append pipeline created first (without the stream's
/// `_seq` and `_op`): its first batch adds those columns and merges, whichever pipeline
/// won the table's creation. A key no file has stops that batch, naming the key.
#[test]
fn a_merge_pipeline_joins_a_table_an_append_pipeline_created_without_its_columns() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let merge_sink = |keys: &str| {
        format!(
            "mode = \"merge\"\nkeys = [{keys}]\nsequence_by = \"_seq\"\n\
             delete_when = \"_op = 'REMOVE'\""
        )
    };
    let append = pipeline(dir, "append", "table", "", "");
    let (mut next, mut ids) = (0i64, BTreeSet::new());
    append_file(&dir.join("landing-append"), "a1", 0, &mut next, &mut ids);
    drain(&append, &[], &[]);
    let merge = pipeline(
        dir,
        "merge",
        "table",
        "format = \"dynamodb_stream\"",
        &merge_sink("\"tenant\", \"id\""),
    );
    let history = History::generate(200, 5);
    let changes = named_files(&history, 10, 9);
    write_files(&dir.join("landing-merge"), &changes);
    // Nothing of this pipeline's files is known yet: `validate` does not refuse the table.
    run_ok(
        &["validate", "--config", merge.to_str().expect("utf8")],
        &[],
    );
    drain(&merge, &[], &[]);
    let table = read_delta(&url_of(&dir.join("table")), &json!({}));
    let (appended, merged): (Vec<Value>, Vec<Value>) = table
        .rows
        .iter()
        .cloned()
        .partition(|r| r["tenant"] == "a1");
    let appended: BTreeSet<i64> = appended
        .iter()
        .map(|r| r["id"].as_i64().expect("id"))
        .collect();
    assert_eq!(appended, ids, "the append pipeline's rows stay");
    assert!(
        model_of(&merged) == history.model,
        "the MERGE result differs from the model"
    );

    // The same stream under a key its files do not have: the batch stops and names it.
    let typo = pipeline(
        dir,
        "typo",
        "table",
        "format = \"dynamodb_stream\"",
        &merge_sink("\"tenant\", \"idd\""),
    );
    write_files(&dir.join("landing-typo"), &changes);
    let err = fails(&typo, &["run", "--available-now"]);
    assert!(
        err.contains("sink.keys names column 'idd', which this batch's rows do not have"),
        "{err}"
    );
    assert!(files_in_state(&typo, "committed").is_empty());
}

#[test]
fn two_pipelines_adding_different_columns_at_once_both_keep_theirs() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let a = pipeline(dir, "a", "table", "", "");
    let b = pipeline(dir, "b", "table", "", "");
    std::fs::write(
        dir.join("landing-a/base.json"),
        "{\"id\":0,\"who\":\"a\"}\n",
    )
    .expect("write");
    drain(&a, &[], &[]);
    let mut want_ids = vec![0i64];
    let mut next = 0i64;
    // Rounds of both pipelines started together, each round's files bringing a new column
    // per pipeline, so their schema commits race.
    for round in 0..4 {
        for who in ["a", "b"] {
            for f in 0..3 {
                next += 1;
                want_ids.push(next);
                std::fs::write(
                    dir.join(format!("landing-{who}/r{round}-{f}.json")),
                    format!("{{\"id\":{next},\"who\":\"{who}\",\"{who}_col{round}\":{next}}}\n"),
                )
                .expect("write");
            }
        }
        let ra = Running::start(&a, &[], &["--available-now"]);
        let rb = Running::start(&b, &[], &["--available-now"]);
        for run in [ra, rb] {
            let (status, log) = run.wait();
            assert!(status.success(), "{status:?}\n{log}");
        }
    }
    let table = read_delta(&url_of(&dir.join("table")), &json!({}));
    assert_eq!(table.ints("id"), want_ids, "rows lost or doubled");
    for round in 0..4 {
        for who in ["a", "b"] {
            let col = format!("{who}_col{round}");
            let carried: Vec<&Value> = table
                .rows
                .iter()
                .filter(|r| r.get(&col).is_some_and(|v| !v.is_null()))
                .collect();
            assert_eq!(
                carried.len(),
                3,
                "column {col} lost or emptied: {:?}",
                table.rows.first()
            );
            assert!(carried
                .iter()
                .all(|r| r["id"] == r[&col] && r["who"] == who));
        }
    }
}

#[test]
fn two_pipelines_on_one_queue_are_refused_naming_both() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let source =
        "discovery = \"notifications\"\nqueue_url = \"http://127.0.0.1:9/000000000000/landing\"";
    let mut paths = Vec::new();
    for name in ["east", "west"] {
        let cfg = pipeline(tmp.path(), name, &format!("table-{name}"), source, "");
        let text = std::fs::read_to_string(&cfg).expect("config").replace(
            &format!("url = \"landing-{name}\""),
            &format!("url = \"s3://landing/{name}/\""),
        );
        std::fs::write(&cfg, text).expect("config");
        paths.push(cfg);
    }
    for command in ["validate", "run"] {
        let out = run_inlet(
            &[
                command,
                "--config",
                paths[0].to_str().expect("utf8"),
                "--config",
                paths[1].to_str().expect("utf8"),
            ],
            &[],
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{command}: {err}");
        assert!(
            err.contains("east.toml and")
                && err.contains("west.toml read the same SQS queue")
                && err.contains("its own queue"),
            "{command}: {err}"
        );
    }
}
