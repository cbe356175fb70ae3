//! Exactly once under crashes: SIGKILL at each step boundary of the batch protocol, then a
//! rerun; every input row is in the table exactly once and every file is committed.

use std::os::unix::process::ExitStatusExt;

use serde_json::json;

use crate::support::*;

fn crash_and_recover(point: &str) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut landing = Landing::new(&tmp.path().join("landing"));
    landing.add_files(6, 25);
    let config = local_config(tmp.path(), "max_files_per_batch = 2");
    let cfg = config.to_str().expect("utf8");

    let out = run_inlet(
        &[
            "run",
            "--config",
            cfg,
            "--available-now",
            "--fault-point",
            point,
        ],
        &[],
    );
    assert_eq!(
        out.status.signal(),
        Some(9),
        "inlet should die by SIGKILL at {point}: {out:?}"
    );

    // Files landing while the pipeline is down are taken too.
    landing.add_files(2, 25);
    let out = run_ok(&["run", "--config", cfg, "--available-now", "--json"], &[]);
    let stats: serde_json::Value = serde_json::from_str(out.trim()).expect("json");
    // After the record there is nothing left to recover; before it, one batch.
    let expect_recovered = if point == "after-record" { 0 } else { 1 };
    assert_eq!(
        stats["recovered_batches"], expect_recovered,
        "{point}: {stats}"
    );

    let table = read_delta(
        &format!("file://{}/table", tmp.path().display()),
        &json!({}),
    );
    let ids = table.ints("id");
    assert_eq!(
        ids,
        landing.ids.iter().copied().collect::<Vec<_>>(),
        "{point}: rows lost or doubled"
    );
    let files = files_json(&config);
    assert_eq!(files.len(), 8);
    assert!(
        files.iter().all(|f| f["state"] == "committed"),
        "{point}: {files:?}"
    );
}

#[test]
fn crash_after_plan() {
    crash_and_recover("after-plan");
}

#[test]
fn crash_after_write() {
    crash_and_recover("after-write");
}

#[test]
fn crash_after_commit() {
    crash_and_recover("after-commit");
}

#[test]
fn crash_after_record() {
    crash_and_recover("after-record");
}
