//! A checkpoint in S3 (moto): SIGKILL at every step with the local cache deleted before each
//! restart, as on a fresh pod; a standby taking over from a frozen holder; and the S3
//! fast-forward restoring the same file log as `inlet checkpoint rebuild`.

use std::os::unix::process::ExitStatusExt;
use std::path::Path;

use serde_json::{json, Value};

use crate::merge::{differences, merge_config, named_files, table_state, write_files, History};
use crate::support::*;

/// `[checkpoint]` in S3 under `s3://chk/<prefix>`, with its cache in `cache` beside the
/// config, a lease of `ttl`, and snapshots only when a run stops cleanly.
fn s3_checkpoint(moto: &Moto, prefix: &str, ttl: &str) -> String {
    format!(
        "[checkpoint]\nlocation = \"s3://chk/{prefix}\"\ncache_dir = \"cache\"\nlease_ttl = \"{ttl}\"\n\
         snapshot_interval = \"1h\"\n{}\n",
        moto.storage_options()
    )
}

/// Replaces a config's local `[checkpoint]` section (always last) with `section`.
fn with_checkpoint(config: &Path, section: &str) {
    let text = std::fs::read_to_string(config).expect("config");
    let at = text.find("[checkpoint]").expect("a [checkpoint] section");
    std::fs::write(config, format!("{}{section}", &text[..at])).expect("config");
}

/// `inlet files --json` with the local cache gone: a copy restored from S3 alone.
fn files_from_s3(config: &Path, env: &[(&str, &str)]) -> Vec<Value> {
    let _ = std::fs::remove_dir_all(config.parent().expect("dir").join("cache"));
    files_json_with(config, env)
}

#[test]
fn s3_checkpoint_survives_sigkill_at_every_step_with_its_cache_deleted_each_time() {
    let moto = Moto::start();
    moto.s3(&["mkbucket", "chk"]);
    let env = moto.env();
    let tmp = tempfile::tempdir().expect("tempdir");
    // Shuffled stream records: a key's delete often lands in an earlier batch than an
    // older update of it, which only the delete's tombstone keeps out.
    let history = History::generate(600, 23);
    let files = named_files(&history, 14, 29);
    let landing = tmp.path().join("landing");
    let cfg = merge_config(
        tmp.path(),
        "ddb",
        "dynamodb_stream",
        "max_files_per_batch = 1",
    );
    with_checkpoint(&cfg, &s3_checkpoint(&moto, "ddb", "2s"));
    let c = cfg.to_str().expect("utf8");
    let cache = tmp.path().join("cache");
    let mut chunks = files.chunks(2);
    let points = ["after-plan", "after-write", "after-commit", "after-record"];
    for (round, point) in points.iter().enumerate() {
        write_files(&landing, chunks.next().expect("files"));
        // Every start waits out the lease the killed run left (`--standby`).
        let args = [
            "run",
            "--config",
            c,
            "--available-now",
            "--standby",
            "--fault-point",
            point,
        ];
        let out = run_inlet(&args, &env);
        assert_eq!(out.status.signal(), Some(9), "{point}: {out:?}");
        std::fs::remove_dir_all(&cache).expect("the killed run's cache");
        if round == 1 {
            // One clean run between: its last act is a snapshot, so later restores start
            // from a snapshot rather than from nothing.
            write_files(&landing, chunks.next().expect("files"));
            drain(&cfg, &["--standby"], &env);
            std::fs::remove_dir_all(&cache).expect("cache");
        }
    }
    for rest in chunks {
        write_files(&landing, rest);
    }
    let out = drain(&cfg, &["--standby", "--json"], &env);
    let stats: Value = serde_json::from_str(out.trim()).expect("json");
    assert!(stats["files"].as_u64().is_some_and(|n| n > 0), "{stats}");

    let state = table_state(tmp.path());
    let (lost, wrong, revived) = differences(&history.model, &state);
    assert_eq!(
        (lost, wrong, revived),
        (0, 0, 0),
        "keys lost, keys with a stale value, deleted keys brought back"
    );
    // The whole file log, from S3 alone.
    let log = files_from_s3(&cfg, &env);
    assert_eq!(log.len(), files.len(), "{log:?}");
    assert!(log.iter().all(|f| f["state"] == "committed"), "{log:?}");
    let objects = moto.dump("chk", "ddb/");
    assert!(
        objects.contains_key("ddb/snapshot.json"),
        "{:?}",
        objects.keys()
    );
    assert!(
        objects.contains_key("ddb/lease.json"),
        "{:?}",
        objects.keys()
    );
}

#[test]
fn a_standby_takes_over_from_a_frozen_holder_which_then_stops_by_itself() {
    let moto = Moto::start();
    moto.s3(&["mkbucket", "chk"]);
    let env = moto.env();
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut landing = Landing::new(&tmp.path().join("landing"));
    landing.add_files(6, 20);
    let cfg = local_config(tmp.path(), "max_files_per_batch = 2");
    with_checkpoint(&cfg, &s3_checkpoint(&moto, "orders", "3s"));

    // The active runner freezes (SIGSTOP) with batch 1 written and not committed.
    let active = Running::start(
        &cfg,
        &env,
        &[
            "--available-now",
            "--fault-point",
            "after-write",
            "--fault-freeze",
        ],
    );
    wait_for(60, "the active runner to freeze", Some(&active), || {
        active.log().contains("stopping this process with SIGSTOP")
    });
    // A second runner without --standby is refused at once, naming the holder.
    let out = run_inlet(
        &["run", "--config", cfg.to_str().expect("utf8"), "--once"],
        &env,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(75), "{err}");
    assert!(
        err.contains("in use by another inlet run") && err.contains("--standby"),
        "{err}"
    );

    // The standby (another machine: its own cache) waits out the frozen holder's lease,
    // takes over, replays batch 1 and takes everything else.
    landing.add_files(2, 20);
    let text = std::fs::read_to_string(&cfg).expect("config");
    let standby_cfg = cfg.with_file_name("standby.toml");
    std::fs::write(
        &standby_cfg,
        text.replace("cache_dir = \"cache\"", "cache_dir = \"cache-b\""),
    )
    .expect("config");
    let standby = Running::start(&standby_cfg, &env, &["--available-now", "--standby"]);
    let (status, log) = standby.wait();
    assert!(status.success(), "standby: {status:?}\n{log}");
    assert!(log.contains("took over the checkpoint's lease"), "{log}");

    // Thawed, the former holder finds its lease gone and stops without committing.
    active.signal("CONT");
    let (status, log) = active.wait();
    assert_eq!(status.code(), Some(75), "former holder: {status:?}\n{log}");
    assert!(log.contains("lost the lease"), "{log}");

    let table = read_delta(
        &format!("file://{}/table", tmp.path().display()),
        &json!({}),
    );
    assert_eq!(
        table.ints("id"),
        landing.ids.iter().copied().collect::<Vec<_>>(),
        "rows lost or doubled"
    );
    let log = files_from_s3(&cfg, &env);
    assert_eq!(log.len(), 8);
    assert!(log.iter().all(|f| f["state"] == "committed"), "{log:?}");
}

#[test]
fn rebuild_and_the_s3_fast_forward_restore_the_same_file_log() {
    let moto = Moto::start();
    moto.s3(&["mkbucket", "chk"]);
    let env = moto.env();
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut landing = Landing::new(&tmp.path().join("landing"));
    landing.add_files(5, 10);
    // A file that cannot be decompressed is recorded failed, with its error.
    std::fs::write(landing.dir.join("broken.json.gz"), b"not gzip").expect("write");
    landing.add_files(3, 10);
    let cfg = local_config(tmp.path(), "max_files_per_batch = 2");
    with_checkpoint(&cfg, &s3_checkpoint(&moto, "orders", "2s"));
    drain(&cfg, &[], &env);

    // Only the table is left to restore from: no snapshot, no cache.
    for key in moto.dump("chk", "orders/snapshot").keys() {
        moto.s3(&["delete", "chk", key]);
    }
    let restored = files_from_s3(&cfg, &env);

    // The same pipeline with a local checkpoint, rebuilt from the same table.
    let local = tmp.path().join("local");
    std::fs::create_dir_all(&local).expect("mkdir");
    let text = std::fs::read_to_string(&cfg).expect("config");
    let at = text.find("[checkpoint]").expect("section");
    let local_cfg = write_config(
        &local,
        &format!(
            "{}[checkpoint]\nlocation = \"rebuilt\"\n",
            text[..at]
                .replace(
                    "url = \"landing\"",
                    &format!("url = \"{}\"", landing.dir.display())
                )
                .replace(
                    "table = \"table\"",
                    &format!("table = \"{}/table\"", tmp.path().display())
                )
        ),
    );
    run_ok(
        &[
            "checkpoint",
            "rebuild",
            "--config",
            local_cfg.to_str().expect("utf8"),
        ],
        &[],
    );
    let rebuilt = files_json(&local_cfg);

    let key = |f: &Value| {
        json!([
            f["path"],
            f["etag"],
            f["state"],
            f["batch_id"],
            f["delta_version"],
            f["rows"],
            f["size"]
        ])
    };
    let mut a: Vec<Value> = restored.iter().map(key).collect();
    let mut b: Vec<Value> = rebuilt.iter().map(key).collect();
    a.sort_by_key(|v| v.to_string());
    b.sort_by_key(|v| v.to_string());
    assert_eq!(a.len(), 9, "{a:?}");
    assert!(
        restored.iter().any(|f| f["state"] == "failed"),
        "{restored:?}"
    );
    assert_eq!(a, b, "the S3 fast-forward and the rebuild disagree");
}
