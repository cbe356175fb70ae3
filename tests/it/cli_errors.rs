//! Errors a user can cause give one clear line, a non-zero exit, and write nothing.

use std::path::Path;

use crate::support::*;

fn assert_one_line_error(out: &std::process::Output, needle: &str) {
    assert!(!out.status.success(), "should fail: {out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "one error line expected:\n{err}");
    assert!(
        errors[0].contains(needle),
        "{needle:?} not in {}",
        errors[0]
    );
}

fn nothing_written(dir: &Path) {
    assert!(!dir.join("state").exists(), "checkpoint was created");
    assert!(!dir.join("table").exists(), "table was created");
}

#[test]
fn unknown_key_is_named_with_file_and_line() {
    let tmp = tempfile::tempdir().expect("tempdir");
    Landing::new(&tmp.path().join("landing")).add_files(1, 1);
    let config = local_config(tmp.path(), "max_file_per_batch = 2");
    let out = run_inlet(
        &[
            "run",
            "--config",
            config.to_str().expect("utf8"),
            "--available-now",
        ],
        &[],
    );
    assert_one_line_error(
        &out,
        "pipeline.toml, line 4: unknown field `max_file_per_batch`",
    );
    nothing_written(tmp.path());
    let out = run_inlet(
        &["validate", "--config", config.to_str().expect("utf8")],
        &[],
    );
    assert_one_line_error(&out, "unknown field `max_file_per_batch`");
}

#[test]
fn missing_landing_directory_is_named() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let config = local_config(tmp.path(), "");
    let out = run_inlet(
        &[
            "run",
            "--config",
            config.to_str().expect("utf8"),
            "--available-now",
        ],
        &[],
    );
    assert_one_line_error(
        &out,
        &format!(
            "cannot list source file://{}/landing/",
            tmp.path().display()
        ),
    );
    nothing_written(tmp.path());
}

#[test]
fn unusable_checkpoint_directory_is_named() {
    let tmp = tempfile::tempdir().expect("tempdir");
    Landing::new(&tmp.path().join("landing")).add_files(1, 1);
    // A checkpoint "directory" under a regular file cannot be created (even by root).
    std::fs::write(tmp.path().join("afile"), b"x").expect("write");
    let config = write_config(
        tmp.path(),
        "pipeline_id = \"p\"\n[source]\nurl = \"landing\"\n[sink]\ntable = \"table\"\n[checkpoint]\nlocation = \"afile/state\"\n",
    );
    let out = run_inlet(
        &[
            "run",
            "--config",
            config.to_str().expect("utf8"),
            "--available-now",
        ],
        &[],
    );
    assert_one_line_error(
        &out,
        &format!(
            "checkpoint directory {}/afile/state cannot be used",
            tmp.path().display()
        ),
    );
    assert!(!tmp.path().join("table").exists());
}

#[test]
fn missing_config_file_is_named() {
    let out = run_inlet(&["validate", "--config", "/nonexistent/inlet.toml"], &[]);
    assert_one_line_error(&out, "cannot read config /nonexistent/inlet.toml");
}

#[test]
fn a_corrupt_checkpoint_is_refused_and_named() {
    let tmp = tempfile::tempdir().expect("tempdir");
    Landing::new(&tmp.path().join("landing")).add_files(1, 3);
    let config = local_config(tmp.path(), "");
    let cfg = config.to_str().expect("utf8");
    run_ok(&["run", "--config", cfg, "--available-now"], &[]);
    let db = tmp.path().join("state/inlet.db");
    std::fs::write(&db, b"this is not a SQLite database, it was damaged").expect("corrupt");
    for extra in ["inlet.db-wal", "inlet.db-shm"] {
        let _ = std::fs::remove_file(tmp.path().join("state").join(extra));
    }
    let out = run_inlet(&["run", "--config", cfg, "--available-now"], &[]);
    assert_one_line_error(
        &out,
        &format!(
            "checkpoint database {} cannot be opened: file is not a database",
            db.display()
        ),
    );
    assert_one_line_error(&out, "restore it from a backup");
    // Nothing was taken again: the table still has its one commit.
    assert_eq!(
        read_delta(
            &format!("file://{}", tmp.path().join("table").display()),
            &serde_json::Value::Null
        )
        .version,
        1
    );
}
