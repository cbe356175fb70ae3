//! Local landing zone → local Delta table: exactly the new files on every run, the shipped
//! demo, and the file log.

use std::path::Path;

use serde_json::{json, Value};

use crate::support::*;

fn table_url(dir: &Path) -> String {
    url_of(&dir.join("table"))
}

#[test]
fn available_now_takes_exactly_the_new_files() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut landing = Landing::new(&tmp.path().join("landing"));
    landing.add_files(5, 40);
    let config = local_config(tmp.path(), "max_files_per_batch = 2");
    let cfg = config.to_str().expect("utf8");

    let out = run_ok(&["run", "--config", cfg, "--available-now", "--json"], &[]);
    let stats: Value = serde_json::from_str(out.trim()).expect("json summary");
    assert_eq!(stats["files"], 5);
    assert_eq!(stats["rows"], 200);
    assert_eq!(stats["batches"], 3, "5 files at 2 per batch");

    let table = read_delta(&table_url(tmp.path()), &json!({}));
    assert_eq!(
        table.ints("id"),
        landing.ids.iter().copied().collect::<Vec<_>>()
    );
    let first = table.rows.iter().find(|r| r["id"] == 1).expect("row 1");
    assert_eq!(first["nested"]["k"], "v1");
    assert_eq!(first["tags"], json!(["a", "b"]));
    let version = table.version;

    // Nothing new: nothing committed, the table version does not move.
    let out = run_ok(&["run", "--config", cfg, "--available-now", "--json"], &[]);
    let stats: Value = serde_json::from_str(out.trim()).expect("json summary");
    assert_eq!(
        (stats["files"].as_i64(), stats["batches"].as_i64()),
        (Some(0), Some(0))
    );
    assert_eq!(
        read_delta(&table_url(tmp.path()), &json!({})).version,
        version
    );

    // Three more files: exactly those are taken.
    let added = landing.add_files(3, 10);
    let out = run_ok(&["run", "--config", cfg, "--available-now"], &[]);
    assert!(out.contains("took 3 files"), "{out}");
    let table = read_delta(&table_url(tmp.path()), &json!({}));
    assert_eq!(
        table.ints("id"),
        landing.ids.iter().copied().collect::<Vec<_>>()
    );
    assert_eq!(polars_count(&table_url(tmp.path()), &json!({})), 230);

    let files = files_json(&config);
    assert_eq!(files.len(), 8);
    assert!(files.iter().all(|f| f["state"] == "committed"), "{files:?}");
    for path in &added {
        let url = url_of(path);
        let rec = files
            .iter()
            .find(|f| f["path"] == url.as_str())
            .expect("added file in log");
        // Batches 1-3 took the first five files (two per batch); these are in 4 and 5.
        assert!(matches!(rec["batch_id"].as_i64(), Some(4 | 5)), "{rec}");
        assert_eq!(rec["rows"], 10);
        assert!(rec["delta_version"].as_i64().is_some());
    }
}

#[test]
fn once_takes_one_batch() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut landing = Landing::new(&tmp.path().join("landing"));
    landing.add_files(4, 5);
    let config = local_config(tmp.path(), "max_files_per_batch = 3");
    let cfg = config.to_str().expect("utf8");
    run_ok(&["run", "--config", cfg, "--once"], &[]);
    assert_eq!(
        read_delta(&table_url(tmp.path()), &json!({})).rows.len(),
        15
    );
    run_ok(&["run", "--config", cfg, "--once"], &[]);
    assert_eq!(
        read_delta(&table_url(tmp.path()), &json!({})).rows.len(),
        20
    );
}

#[test]
fn files_listing_shows_states_and_a_bad_file_does_not_stop_the_run() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut landing = Landing::new(&tmp.path().join("landing"));
    landing.add_files(2, 5);
    std::fs::write(
        tmp.path().join("landing/zz-broken.json.gz"),
        b"not gzip at all",
    )
    .expect("write");
    std::fs::write(tmp.path().join("landing/_SUCCESS"), b"").expect("write");
    let config = local_config(tmp.path(), "");
    let cfg = config.to_str().expect("utf8");
    let out = run_ok(&["run", "--config", cfg, "--available-now"], &[]);
    assert!(out.contains("1 file could not be read"), "{out}");
    assert!(
        out.contains("zz-broken.json.gz: cannot decompress"),
        "{out}"
    );

    let failed = files_in_state(&config, "failed");
    assert_eq!(failed.len(), 1);
    assert!(
        failed[0]["error"].as_str().expect("error").contains("gzip"),
        "{failed:?}"
    );
    assert_eq!(files_in_state(&config, "committed").len(), 2);
    assert_eq!(
        read_delta(&table_url(tmp.path()), &json!({})).rows.len(),
        10
    );

    let text = run_ok(&["files", "--config", cfg], &[]);
    let header = text.lines().next().expect("header");
    assert!(
        header.starts_with("STATE") && header.contains("PATH"),
        "{text}"
    );
    assert_eq!(
        text.lines().count(),
        4,
        "header + 3 files, _SUCCESS ignored:\n{text}"
    );
}

#[test]
fn shipped_demo_ingests_every_row() {
    // Copy the shipped config and landing zone so the test writes nothing into the repo.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(tmp.path().join("config")).expect("mkdir");
    std::fs::copy(
        root.join("config/local-demo.toml"),
        tmp.path().join("config/local-demo.toml"),
    )
    .expect("copy config");
    let mut expected_rows = 0;
    let landing = root.join("demo/landing");
    for entry in walk(&landing) {
        let rel = entry.strip_prefix(&landing).expect("under landing");
        let dest = tmp.path().join("demo/landing").join(rel);
        std::fs::create_dir_all(dest.parent().expect("parent")).expect("mkdir");
        std::fs::copy(&entry, &dest).expect("copy data");
        let bytes = std::fs::read(&entry).expect("read");
        let text = if entry.extension().is_some_and(|e| e == "gz") {
            use std::io::Read;
            let mut s = String::new();
            flate2::read::GzDecoder::new(&bytes[..])
                .read_to_string(&mut s)
                .expect("gunzip");
            s
        } else {
            String::from_utf8(bytes).expect("utf8")
        };
        expected_rows += text.lines().filter(|l| !l.trim().is_empty()).count();
    }
    assert!(expected_rows > 0);
    let cfg = tmp.path().join("config/local-demo.toml");
    run_ok(&["validate", "--config", cfg.to_str().expect("utf8")], &[]);
    drain(&cfg, &[], &[]);
    let table = read_delta(&url_of(&tmp.path().join("demo/out/telemetry")), &json!({}));
    assert_eq!(table.rows.len(), expected_rows);
    assert_eq!(
        table.ints("event_id"),
        (1..=expected_rows as i64).collect::<Vec<_>>()
    );
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read_dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// Under systemd (`Type=notify`, `WatchdogSec=`): `READY=1` once the pipeline is open, then
/// `WATCHDOG=1` while the loop turns, and `STOPPING=1` at the end, on `NOTIFY_SOCKET`.
#[test]
fn systemd_hears_ready_the_watchdog_and_stopping() {
    let tmp = tempfile::tempdir().expect("tempdir");
    Landing::new(&tmp.path().join("landing")).add_files(2, 3);
    let cfg = local_config(tmp.path(), "");
    let socket_path = tmp.path().join("notify.sock");
    let socket = std::os::unix::net::UnixDatagram::bind(&socket_path).expect("bind");
    socket
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .expect("timeout");
    let path = socket_path.to_str().expect("utf8").to_string();
    let run = Running::start(
        &cfg,
        &[
            ("NOTIFY_SOCKET", path.as_str()),
            ("WATCHDOG_USEC", "400000"),
        ],
        &[],
    );
    let mut heard: Vec<String> = Vec::new();
    let mut buf = [0u8; 256];
    while !heard.iter().any(|m| m.starts_with("WATCHDOG=1")) {
        let n = socket
            .recv(&mut buf)
            .unwrap_or_else(|e| panic!("no notification ({e}); heard {heard:?}"));
        heard.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    assert!(heard[0].starts_with("READY=1"), "{heard:?}");
    run.stop();
    let mut last = String::new();
    while let Ok(n) = socket.recv(&mut buf) {
        last = String::from_utf8_lossy(&buf[..n]).into_owned();
        if last.starts_with("STOPPING=1") {
            break;
        }
    }
    assert!(last.starts_with("STOPPING=1"), "{last}");
}
