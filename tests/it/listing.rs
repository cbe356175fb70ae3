//! Incremental and `auto` listing against S3 (moto on loopback): keys that grow lexically are
//! all taken, a late key waits for the next full listing, `auto` tells dates from UUIDs.

use crate::support::*;

/// One file of one row `{"id": id}` under `key` in the `landing` bucket.
fn put_row(moto: &Moto, key: &str, id: i64) {
    moto.s3(&["put-text", "landing", key, &format!("{{\"id\": {id}}}\n")]);
}

fn config(dir: &std::path::Path, moto: &Moto, prefix: &str, listing: &str) -> std::path::PathBuf {
    let opts = moto.storage_options();
    write_config(
        dir,
        &format!(
            "pipeline_id = \"listing\"\n[source]\nurl = \"s3://landing/{prefix}\"\n{listing}\n{opts}\n[sink]\ntable = \"s3://lake/{prefix}\"\n{opts}\n[checkpoint]\nlocation = \"state\"\n[trigger]\ninterval_seconds = 1\n"
        ),
    )
}

fn committed_paths(config: &std::path::Path) -> Vec<String> {
    let mut paths: Vec<String> = files_in_state(config, "committed")
        .iter()
        .filter_map(|f| f["path"].as_str().map(str::to_string))
        .collect();
    paths.sort();
    paths
}

#[test]
fn incremental_listing_takes_lexical_keys_and_a_late_key_at_the_next_full_listing() {
    let moto = Moto::start();
    moto.s3(&["mkbucket", "landing"]);
    moto.s3(&["mkbucket", "lake"]);
    let tmp = tempfile::tempdir().expect("tempdir");
    let hour = |h: u32, n: u32| format!("firehose/2026/11/30/{h:02}/part-{n:04}.json");
    for n in 0..3 {
        put_row(&moto, &hour(0, n), i64::from(n));
    }
    let slow = "listing = \"incremental\"\nfull_listing_interval = \"1h\"";
    let cfg = config(tmp.path(), &moto, "firehose/", slow);
    let env = moto.env();
    // The first run has no position: it lists in full.
    let out = run_ok(
        &[
            "run",
            "--config",
            cfg.to_str().expect("utf8"),
            "--available-now",
        ],
        &env,
    );
    assert!(out.contains("took 3 files"), "{out}");

    // A new run starts after the last key taken; keys landing in order are all taken.
    let run = Running::start(&cfg, &env, &[]);
    let mut id = 3;
    for h in 1..4 {
        for n in 0..2 {
            put_row(&moto, &hour(h, n), id);
            id += 1;
        }
        let want = 3 + 2 * h as usize;
        wait_for(60, "keys in lexical order taken", Some(&run), || {
            committed(&cfg) == want
        });
    }
    // A late key (hour 1, after hour 3 was taken) and then an in-order one.
    let late = hour(1, 9);
    put_row(&moto, &late, 100);
    put_row(&moto, &hour(4, 0), 101);
    wait_for(
        60,
        "the in-order key after the late one",
        Some(&run),
        || committed_paths(&cfg).contains(&format!("s3://landing/{}", hour(4, 0))),
    );
    assert!(
        !committed_paths(&cfg).contains(&format!("s3://landing/{late}")),
        "the incremental listing lists after the last key taken, so it does not see the late key"
    );
    run.stop();

    // The next full listing (every 2 s now) takes it.
    let fast = "listing = \"incremental\"\nfull_listing_interval = \"2s\"";
    let cfg = config(tmp.path(), &moto, "firehose/", fast);
    let run = Running::start(&cfg, &env, &[]);
    wait_for(
        60,
        "the late key taken by a full listing",
        Some(&run),
        || committed_paths(&cfg).contains(&format!("s3://landing/{late}")),
    );
    run.stop();

    let table = read_delta("s3://lake/firehose/", &moto.reader_options());
    let mut expected: Vec<i64> = (0..id).collect();
    expected.extend([100, 101]);
    assert_eq!(table.ints("id"), expected, "every row once");
    assert_eq!(committed(&cfg), expected.len());
}

#[test]
fn auto_lists_incrementally_for_dated_keys_and_in_full_for_uuid_keys() {
    let moto = Moto::start();
    moto.s3(&["mkbucket", "landing"]);
    moto.s3(&["mkbucket", "lake"]);
    let env = moto.env();
    let cases: [(&str, [&str; 3], [&str; 5], &str); 2] = [
        (
            "dated/",
            [
                "dated/dt=2026-11-28/00.json",
                "dated/dt=2026-11-29/00.json",
                "dated/dt=2026-11-29/01.json",
            ],
            [
                "dated/dt=2026-11-30/00.json",
                "dated/dt=2026-11-30/01.json",
                "dated/dt=2026-11-30/02.json",
                "dated/dt=2026-12-01/00.json",
                "dated/dt=2026-12-01/01.json",
            ],
            "new keys sort after the keys listed before: listing incrementally",
        ),
        (
            "uuid/",
            [
                "uuid/3d6f0a52-8c1e-4b7a-9f0e-2a5c7d9e1b34.json",
                "uuid/c81e728d-9d4c-4f63-8e1a-5b2f0c7d3e91.json",
                "uuid/f4a1b2c3-7e8d-4a9b-b0c1-d2e3f4a5b6c7.json",
            ],
            [
                "uuid/0b9e4c1d-2f3a-4b5c-8d6e-7f8091a2b3c4.json",
                "uuid/7a5d3e2f-1c0b-4a98-b7c6-d5e4f3a2b1c0.json",
                "uuid/a0c4e6f8-1b3d-4f5a-9c7e-2d4f6a8b0c1e.json",
                "uuid/5e7f9a1b-3c5d-4e7f-8a9b-0c1d2e3f4a5b.json",
                "uuid/d2e4f6a8-0b1c-4d3e-a5f7-9b8c7d6e5f4a.json",
            ],
            "new keys sort among the keys listed before",
        ),
    ];
    for (prefix, first, then, decision) in cases {
        let tmp = tempfile::tempdir().expect("tempdir");
        for (i, key) in first.iter().enumerate() {
            put_row(&moto, key, i as i64);
        }
        let cfg = config(tmp.path(), &moto, prefix, "listing = \"auto\"");
        let run = Running::start(&cfg, &env, &[]);
        wait_for(60, "the first keys taken", Some(&run), || {
            committed(&cfg) == 3
        });
        assert!(
            !run.log().contains("listing = \"auto\": new keys"),
            "{prefix}: nothing decided before new keys came\n{}",
            run.log()
        );
        for (i, key) in then.iter().enumerate() {
            put_row(&moto, key, 10 + i as i64);
        }
        wait_for(60, "the new keys taken", Some(&run), || {
            committed(&cfg) == 8
        });
        let log = run.stop();
        assert!(
            log.contains(decision),
            "{prefix}: expected {decision:?}\n{log}"
        );
        let table = read_delta(&format!("s3://lake/{prefix}"), &moto.reader_options());
        assert_eq!(
            table.ints("id"),
            vec![0, 1, 2, 10, 11, 12, 13, 14],
            "{prefix}"
        );
    }
}
