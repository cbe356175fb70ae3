//! The same protocol against S3: moto_server on loopback, a landing bucket and a lake
//! bucket, the table read back by Python `deltalake` over HTTP.

use std::net::TcpStream;
use std::os::unix::process::ExitStatusExt;

use crate::support::*;

/// A new file of `rows` records from `landing`, put into the `landing` bucket under `prefix`.
fn put_file(moto: &Moto, landing: &mut Landing, prefix: &str, rows: usize, gzip: bool) {
    let (name, bytes) = landing.next_file(rows, gzip);
    let local = landing.dir.join(&name);
    std::fs::write(&local, bytes).expect("write");
    moto.s3(&[
        "put",
        "landing",
        &format!("{prefix}{name}"),
        local.to_str().expect("utf8"),
    ]);
}

fn s3_config(dir: &std::path::Path, moto: &Moto, landing_bucket: &str) -> std::path::PathBuf {
    let opts = moto.storage_options();
    write_config(
        dir,
        &format!(
            "pipeline_id = \"s3_test\"\n[source]\nurl = \"s3://{landing_bucket}/incoming/\"\npath_glob = \"**/*.json*\"\nmax_files_per_batch = 3\n{opts}\n[sink]\ntable = \"s3://lake/tables/events\"\n{opts}\n[checkpoint]\nlocation = \"state\"\n"
        ),
    )
}

#[test]
fn s3_landing_to_s3_table_takes_exactly_new_files() {
    let moto = Moto::start();
    moto.s3(&["mkbucket", "landing"]);
    moto.s3(&["mkbucket", "lake"]);
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut landing = Landing::new(&tmp.path().join("staging"));
    let put_files = |landing: &mut Landing, n: usize| {
        for i in 0..n {
            put_file(&moto, landing, "incoming/2026/11/", 20, i % 2 == 1);
        }
    };
    put_files(&mut landing, 5);
    let config = s3_config(tmp.path(), &moto, "landing");
    let cfg = config.to_str().expect("utf8");
    let env = moto.env();

    run_ok(&["validate", "--config", cfg], &env);
    let out = run_ok(&["run", "--config", cfg, "--available-now"], &env);
    assert!(out.contains("took 5 files"), "{out}");
    let table = read_delta("s3://lake/tables/events", &moto.reader_options());
    assert_eq!(
        table.ints("id"),
        landing.ids.iter().copied().collect::<Vec<_>>()
    );

    let out = run_ok(&["run", "--config", cfg, "--available-now"], &env);
    assert!(out.contains("took 0 files"), "{out}");

    put_files(&mut landing, 3);
    let out = run_ok(&["run", "--config", cfg, "--available-now"], &env);
    assert!(out.contains("took 3 files"), "{out}");
    let table = read_delta("s3://lake/tables/events", &moto.reader_options());
    assert_eq!(
        table.ints("id"),
        landing.ids.iter().copied().collect::<Vec<_>>()
    );

    let files = files_json(&config);
    assert_eq!(files.len(), 8);
    assert!(files.iter().all(|f| f["path"]
        .as_str()
        .is_some_and(|p| p.starts_with("s3://landing/incoming/2026/11/part-"))));
    assert!(files
        .iter()
        .all(|f| f["state"] == "committed" && !f["etag"].as_str().unwrap_or("").is_empty()));
}

#[test]
fn s3_crash_after_commit_recovers_exactly_once() {
    let moto = Moto::start();
    moto.s3(&["mkbucket", "landing"]);
    moto.s3(&["mkbucket", "lake"]);
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut landing = Landing::new(&tmp.path().join("staging"));
    for _ in 0..4 {
        put_file(&moto, &mut landing, "incoming/", 10, false);
    }
    let config = s3_config(tmp.path(), &moto, "landing");
    let cfg = config.to_str().expect("utf8");
    let env = moto.env();
    let out = run_inlet(
        &[
            "run",
            "--config",
            cfg,
            "--available-now",
            "--fault-point",
            "after-commit",
        ],
        &env,
    );
    assert_eq!(
        out.status.signal(),
        Some(9),
        "should die by SIGKILL after the commit: {out:?}"
    );
    run_ok(&["run", "--config", cfg, "--available-now"], &env);
    let table = read_delta("s3://lake/tables/events", &moto.reader_options());
    assert_eq!(
        table.ints("id"),
        landing.ids.iter().copied().collect::<Vec<_>>()
    );
}

#[test]
fn missing_bucket_is_named_and_nothing_is_written() {
    let moto = Moto::start();
    moto.s3(&["mkbucket", "lake"]);
    let tmp = tempfile::tempdir().expect("tempdir");
    let config = s3_config(tmp.path(), &moto, "no-such-bucket");
    let out = try_drain(&config, &[], &moto.env());
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let line = err
        .lines()
        .find(|l| l.starts_with("error:"))
        .expect("error line");
    assert!(
        line.contains("cannot list source s3://no-such-bucket/incoming/"),
        "{line}"
    );
    assert!(!tmp.path().join("state").exists(), "checkpoint created");
}

#[test]
fn s3_schema_drift_evolves_the_table_and_writes_bad_records_to_s3() {
    let moto = Moto::start();
    moto.s3(&["mkbucket", "landing"]);
    moto.s3(&["mkbucket", "lake"]);
    let tmp = tempfile::tempdir().expect("tempdir");
    let staging = tmp.path().join("staging");
    std::fs::create_dir_all(&staging).expect("mkdir");
    let files = [
        ("a.json", "{\"id\":1,\"v\":1}\n{\"id\":2,\"v\":2}\n"),
        (
            "b.json",
            "{\"id\":3,\"v\":3,\"extra\":\"e3\"}\n{\"id\":4,\"v\":\n{\"id\":5,\"v\":\"five\"}\n",
        ),
    ];
    for (name, text) in files {
        let local = staging.join(name);
        std::fs::write(&local, text).expect("write");
        moto.s3(&[
            "put",
            "landing",
            &format!("incoming/{name}"),
            local.to_str().expect("utf8"),
        ]);
    }
    let config = s3_config(tmp.path(), &moto, "landing");
    let text = std::fs::read_to_string(&config).expect("config");
    let text = text.replace(
        "max_files_per_batch = 3\n",
        "max_files_per_batch = 3\nbad_records_path = \"s3://lake/bad/\"\n",
    );
    let text = text.replace("[sink]", "[schema]\nsample_files = 1\n[sink]");
    std::fs::write(&config, text).expect("config");
    let out = drain(&config, &[], &moto.env());
    assert!(out.contains("1 bad record"), "{out}");

    let table = read_delta("s3://lake/tables/events", &moto.reader_options());
    assert_eq!(table.ints("id"), vec![1, 2, 3, 5]);
    let row = |id: i64| {
        table
            .rows
            .iter()
            .find(|r| r["id"] == id)
            .expect("row")
            .clone()
    };
    assert_eq!(row(3)["extra"], "e3");
    assert_eq!(row(1)["extra"], serde_json::Value::Null);
    let rescued: serde_json::Value =
        serde_json::from_str(row(5)["_rescued_data"].as_str().expect("rescued")).expect("json");
    assert_eq!(
        rescued,
        serde_json::json!({"v": "five", "_file_path": "s3://landing/incoming/b.json"})
    );

    let bad = moto.dump("lake", "bad/s3_test/");
    assert_eq!(bad.len(), 1, "{bad:?}");
    let record: serde_json::Value = serde_json::from_str(
        bad.values()
            .next()
            .and_then(|v| v.as_str())
            .expect("text")
            .trim(),
    )
    .expect("json");
    assert_eq!(record["file"], "s3://landing/incoming/b.json");
    assert_eq!(record["line"], 2);
    assert_eq!(record["raw"], "{\"id\":4,\"v\":");
}

/// An S3 outage in a continuous run: `/livez` stays 200 (restarting would not help),
/// `/readyz` and its alias `/healthz` turn 503 naming the failure, and all three recover
/// once S3 answers again, with no restart and every file taken once.
#[test]
fn an_s3_outage_fails_readiness_not_liveness_and_both_recover() {
    let moto = Moto::start();
    moto.s3(&["mkbucket", "landing"]);
    moto.s3(&["mkbucket", "lake"]);
    let tmp = tempfile::tempdir().expect("tempdir");
    let outage = tmp.path().join("outage");
    let outage_env = outage.to_str().expect("utf8").to_string();
    let proxy = FaultProxy::start_with(
        &moto.endpoint,
        tmp.path(),
        0.0,
        3,
        0.0,
        &[("OUTAGE_FILE", outage_env.as_str())],
    );
    let mut landing = Landing::new(&tmp.path().join("staging"));
    let mut put = |n: usize| {
        for _ in 0..n {
            put_file(&moto, &mut landing, "incoming/", 2, false);
        }
    };
    put(3);
    let opts = format!(
        "storage_options = {{ aws_endpoint = \"{}\", aws_allow_http = \"true\", aws_region = \"us-east-1\" }}",
        proxy.endpoint
    );
    let config = write_config(
        tmp.path(),
        &format!(
            "pipeline_id = \"outage\"\n[source]\nurl = \"s3://landing/incoming/\"\n{opts}\n[sink]\ntable = \"s3://lake/t\"\n{opts}\n[checkpoint]\nlocation = \"state\"\n[trigger]\ninterval_seconds = 1\n"
        ),
    );
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let run = Running::start(&config, &moto.env(), &["--metrics-addr", &addr]);
    let status = |path: &str| http_get(port, path).0;
    wait_for(60, "the first files committed", Some(&run), || {
        TcpStream::connect(("127.0.0.1", port)).is_ok() && committed(&config) == 3
    });
    assert_eq!((status("/livez"), status("/readyz")), (200, 200));

    std::fs::write(&outage, "down").expect("outage on");
    wait_for(
        60,
        "readiness to fail during the outage",
        Some(&run),
        || status("/readyz") == 503,
    );
    let (code, why) = http_get(port, "/readyz");
    assert_eq!(code, 503);
    assert!(why.contains("failing"), "{why}");
    assert_eq!(status("/healthz"), 503, "/healthz is /readyz");
    assert_eq!(status("/livez"), 200, "an outage must not fail liveness");

    std::fs::remove_file(&outage).expect("outage off");
    put(2);
    wait_for(
        120,
        "the run to recover and take the new files",
        Some(&run),
        || committed(&config) == 5 && status("/readyz") == 200,
    );
    assert_eq!((status("/livez"), status("/healthz")), (200, 200));

    // The metrics an alert needs: retries by step, the last commit's time, bad records.
    let bad = tmp.path().join("bad.json");
    std::fs::write(&bad, "{\"id\": 1000000, \"name\": \"ok\"}\n{not json\n").expect("write");
    moto.s3(&[
        "put",
        "landing",
        "incoming/bad.json",
        bad.to_str().expect("utf8"),
    ]);
    wait_for(
        60,
        "the file with a bad record committed",
        Some(&run),
        || committed(&config) == 6,
    );
    let (_, metrics) = http_get(port, "/metrics");
    let sample = |name: &str| crate::notify::sample(&metrics, name);
    let retries: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("inlet_retries_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(retries >= 1.0, "{metrics}");
    assert!(
        metrics.contains("step=\"discovery\"") && !metrics.contains("step=\"batch 1\""),
        "retries are labelled by the step's kind: {metrics}"
    );
    assert_eq!(sample("inlet_bad_records_total"), Some(1.0), "{metrics}");
    assert!(sample("inlet_committed_bytes_total").is_some_and(|b| b > 0.0));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    assert!(
        sample("inlet_last_commit_timestamp_seconds").is_some_and(|t| (now - t).abs() < 120.0),
        "{metrics}"
    );
    let version = format!("version=\"{}\"", env!("CARGO_PKG_VERSION"));
    assert!(
        metrics.lines().any(|l| l.starts_with("inlet_build_info{")
            && l.contains(&version)
            && l.ends_with(" 1")),
        "{metrics}"
    );
    run.stop();
    let mut want: Vec<i64> = landing.ids.iter().copied().collect();
    want.push(1_000_000);
    let table = read_delta("s3://lake/t", &moto.reader_options());
    assert_eq!(table.ints("id"), want);
}
