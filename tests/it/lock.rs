//! One runner per checkpoint: a second run exits at once naming the holder, and the first
//! carries on undisturbed.

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::*;

#[test]
fn second_runner_is_refused_with_the_holder_named() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut landing = Landing::new(&tmp.path().join("landing"));
    landing.add_files(2, 10);
    let config = local_config(tmp.path(), "");
    let cfg = config.to_str().expect("utf8");

    let mut first = inlet()
        .args(["run", "--config", cfg])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn first runner");
    // The first runner holds the lock once its identity is in the lock file.
    let lock_file = tmp.path().join("state/inlet.lock");
    let marker = format!("\"pid\":{}", first.id());
    let deadline = Instant::now() + Duration::from_secs(60);
    while !std::fs::read_to_string(&lock_file).is_ok_and(|t| t.contains(&marker)) {
        assert!(
            Instant::now() < deadline,
            "first runner never took the lock"
        );
        assert!(
            first.try_wait().expect("wait").is_none(),
            "first runner exited early"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    let out = run_inlet(&["run", "--config", cfg, "--available-now"], &[]);
    assert_eq!(out.status.code(), Some(75), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    let last = err.lines().last().expect("an error line");
    assert!(last.starts_with("error: checkpoint"), "{err}");
    assert!(last.contains(&format!("pid {}", first.id())), "{err}");
    assert!(last.contains("host ") && last.contains("since 20"), "{err}");

    // The first runner is undisturbed: it ingests, and stops cleanly on SIGTERM.
    let table = format!("file://{}/table", tmp.path().display());
    let deadline = Instant::now() + Duration::from_secs(60);
    while !tmp
        .path()
        .join("table/_delta_log/00000000000000000001.json")
        .exists()
    {
        assert!(Instant::now() < deadline, "first runner never committed");
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = std::process::Command::new("kill")
        .args(["-TERM", &first.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let out = first.wait_with_output().expect("first runner output");
    assert!(out.status.success(), "first runner: {out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("took 2 files"),
        "{out:?}"
    );
    assert_eq!(read_delta(&table, &json!({})).rows.len(), 20);
}
