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
    let out = try_drain(&config, &[], &[]);
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
    let out = try_drain(&config, &[], &[]);
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
    let out = try_drain(&config, &[], &[]);
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
    assert_one_line_error(&out, "inlet checkpoint rebuild --config");
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

/// A damaged checkpoint rebuilt from the table's history: the next run takes only what is
/// new, a failed file stays failed, and the damaged file is kept.
#[test]
fn a_damaged_checkpoint_is_rebuilt_from_the_table_and_nothing_is_taken_twice() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut landing = Landing::new(&tmp.path().join("landing"));
    landing.add_files(5, 20);
    std::fs::write(landing.dir.join("broken.json.gz"), b"not gzip").expect("broken file");
    let config = local_config(tmp.path(), "max_files_per_batch = 2");
    let cfg = config.to_str().expect("utf8");
    run_ok(&["run", "--config", cfg, "--available-now"], &[]);
    let before = files_json(&config);

    let state = tmp.path().join("state");
    std::fs::write(state.join("inlet.db"), b"damaged").expect("damage");
    for extra in ["inlet.db-wal", "inlet.db-shm"] {
        let _ = std::fs::remove_file(state.join(extra));
    }
    let out = run_ok(&["checkpoint", "rebuild", "--config", cfg], &[]);
    assert!(out.contains("6 files in 3 batches"), "{out}");
    let kept: Vec<_> = std::fs::read_dir(&state)
        .expect("state")
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("inlet.db.replaced-")
        })
        .collect();
    assert_eq!(kept.len(), 1, "the damaged file is kept aside");
    assert_eq!(std::fs::read(kept[0].path()).expect("kept"), b"damaged");

    // The file log is back as it was (paths, ETags, states, batches, rows).
    let key = |f: &serde_json::Value| {
        (
            f["path"].clone(),
            f["etag"].clone(),
            f["state"].clone(),
            f["batch_id"].clone(),
            f["rows"].clone(),
            f["delta_version"].clone(),
        )
    };
    let mut was: Vec<_> = before.iter().map(key).collect();
    let mut now: Vec<_> = files_json(&config).iter().map(key).collect();
    was.sort_by_key(|k| k.0.to_string());
    now.sort_by_key(|k| k.0.to_string());
    assert_eq!(now, was);

    landing.add_files(2, 20);
    let out = run_ok(&["run", "--config", cfg, "--available-now", "--json"], &[]);
    let stats: serde_json::Value = serde_json::from_str(out.trim()).expect("json");
    assert_eq!(stats["files"], 2, "only the new files are taken: {stats}");
    let ids = read_delta(&url_of(&tmp.path().join("table")), &serde_json::Value::Null).ints("id");
    assert_eq!(
        ids,
        landing.ids.iter().copied().collect::<Vec<_>>(),
        "rows lost or doubled"
    );
}

/// Every listing command ends quietly and with success when its reader closes the pipe
/// (`inlet files | head -1`), as `ls` and `git` do: the demo's `files … | head -5` under
/// `pipefail` once failed the whole script with "Broken pipe".
#[test]
fn listing_commands_end_quietly_when_their_reader_closes() {
    use std::io::BufRead;
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut landing = Landing::new(&tmp.path().join("landing"));
    // Enough files that `files` writes far more than a pipe buffer holds.
    landing.add_files(1500, 1);
    let cfg = local_config(tmp.path(), "max_files_per_batch = 5000");
    drain(&cfg, &[], &[]);
    let c = cfg.to_str().expect("utf8");
    for args in [
        vec!["files", "--config", c],
        vec!["files", "--config", c, "--json"],
        vec!["schema", "--config", c, "show"],
        vec!["schema", "--config", c, "history"],
        vec!["table", "describe", "--config", c],
        vec!["validate", "--config", c],
    ] {
        let mut child = inlet()
            .args(&args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn");
        let stdout = child.stdout.take().expect("stdout");
        let mut first = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut first)
            .expect("a first line");
        assert!(!first.is_empty(), "{args:?} printed nothing");
        // The reader is gone: the rest of the output has nowhere to go.
        let out = child.wait_with_output().expect("wait");
        assert!(
            out.status.success(),
            "{args:?} exited {:?}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.stderr.is_empty(),
            "{args:?} said: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The command line's conventions: exit codes and an example under each `--help`, the man
/// page and completions, `INLET_CONFIG` for `--config`, `-q` for a quiet stderr.
#[test]
fn help_man_completions_env_config_and_quiet() {
    let help = run_ok(&["--help"], &[]);
    for code in ["0 ", "1 ", "2 ", "75 ", "130 "] {
        assert!(
            help.contains(&format!("\n  {code}")),
            "exit code {code}: {help}"
        );
    }
    for sub in [
        vec!["run"],
        vec!["files"],
        vec!["validate"],
        vec!["schema"],
        vec!["checkpoint"],
        vec!["table"],
        vec!["setup"],
        vec!["setup", "notifications"],
        vec!["teardown"],
        vec!["teardown", "notifications"],
        vec!["completions"],
        vec!["man"],
    ] {
        let mut args = sub.clone();
        args.push("--help");
        let text = run_ok(&args, &[]);
        assert!(
            text.contains("Example") && text.contains("Exit codes:"),
            "{sub:?}: {text}"
        );
    }
    let man = run_ok(&["man"], &[]);
    assert!(man.contains(".TH") && man.contains("Exit codes"), "{man}");
    let bash = run_ok(&["completions", "bash"], &[]);
    assert!(bash.contains("_inlet()"), "{bash}");

    let tmp = tempfile::tempdir().expect("tempdir");
    Landing::new(&tmp.path().join("landing")).add_files(2, 3);
    let cfg = local_config(tmp.path(), "");
    let c = cfg.to_str().expect("utf8");
    let shown = run_ok(&["validate"], &[("INLET_CONFIG", c)]);
    assert!(shown.contains("pipeline    test_pipeline"), "{shown}");
    let out = run_inlet(&["-q", "run", "--available-now"], &[("INLET_CONFIG", c)]);
    assert!(out.status.success());
    assert!(
        out.stderr.is_empty(),
        "-q: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run_inlet(&["run", "--available-now"], &[("INLET_CONFIG", c)]);
    assert!(
        !out.stderr.is_empty(),
        "without -q a run off a terminal logs at info"
    );
    // validate --json: what the text says, for scripts.
    let v: serde_json::Value =
        serde_json::from_str(run_ok(&["validate", "--json"], &[("INLET_CONFIG", c)]).trim())
            .expect("validate --json prints JSON");
    assert_eq!(v["ok"], true);
    assert_eq!(v["pipeline"], "test_pipeline");
    assert_eq!(v["mode"], "append");
    assert_eq!(v["source"]["discovery"], "listing");
    assert_eq!(v["table"]["version"], 1, "{v}");
    assert!(v["table"]["columns"]
        .as_array()
        .is_some_and(|c| c.iter().any(|n| n == "id")));
    assert_eq!(v["checkpoint"]["files"], 2, "{v}");
}
