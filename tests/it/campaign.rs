//! Campaigns (issue 8): SIGKILL at random moments, S3/SQS faults through a loopback proxy,
//! and another writer racing inlet's commits, while files keep landing; the table must end
//! with every row exactly once. Sizes come from `INLET_CAMPAIGN_*` (short defaults for CI;
//! docs/reliability.md has the full runs and their figures).

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};

use crate::merge::{differences, merge_config, named_files, table_state, write_files, History};
use crate::notify::Notified;
use crate::support::*;

fn seed() -> u64 {
    campaign_size("INLET_CAMPAIGN_SEED", 20_261_126) as u64
}

/// Rows lost and rows doubled (or unknown): expected ids against the ids in the table.
fn lost_and_doubled(expected: impl IntoIterator<Item = i64>, table: &[i64]) -> (usize, usize) {
    let expected: BTreeSet<i64> = expected.into_iter().collect();
    let present: BTreeSet<i64> = table.iter().copied().collect();
    let lost = expected.difference(&present).count();
    (lost, table.len() - (expected.len() - lost))
}

/// The fault rate of the fault campaigns.
fn fault_rate() -> f64 {
    std::env::var("INLET_CAMPAIGN_FAULT_RATE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.1)
}

/// Reports a fault campaign's figures, then asserts nothing was lost or doubled, nothing
/// panicked, and the proxy did inject faults. `run`: files, rows, fault rate, seed.
fn finish_fault_campaign(
    name: &str,
    proxy: &FaultProxy,
    log: &str,
    run: (usize, usize, f64, u64),
    (lost, doubled): (usize, usize),
) {
    let (files, rows, rate, seed) = run;
    if std::env::var_os("INLET_CAMPAIGN_VERBOSE").is_some() {
        eprintln!("{name}: inlet's log\n{log}");
    }
    let faults = proxy.stats();
    report_campaign(
        name,
        json!({"files": files, "rows": rows, "requests": faults["requests"], "faults": faults["faults"],
               "batch_retries": log.matches("batch failed; retrying it").count(), "rate": rate,
               "rows_lost": lost, "rows_doubled": doubled, "seed": seed}),
    );
    assert_eq!((lost, doubled), (0, 0), "rows lost, rows doubled");
    assert!(!log.contains("panicked"), "{log}");
    let injected: u64 = faults["faults"]
        .as_object()
        .expect("faults")
        .values()
        .filter_map(Value::as_u64)
        .sum();
    assert!(injected > 0, "the proxy injected no fault: {faults}");
}

/// A local append pipeline that lists every second, in batches of two files.
fn listing_config(dir: &Path) -> std::path::PathBuf {
    write_config(
        dir,
        "pipeline_id = \"campaign\"\n[source]\nurl = \"landing\"\nmax_files_per_batch = 2\n\
         [sink]\ntable = \"table\"\n[checkpoint]\nlocation = \"state\"\n[trigger]\ninterval_seconds = 1\n",
    )
}

/// Starts inlet (continuous on even rounds, `--available-now` on odd ones), lands files
/// meanwhile, and kills it with SIGKILL after a random moment. True when it was killed
/// (an `--available-now` run may finish first).
fn run_and_kill(config: &Path, round: usize, rng: &mut Rng, land: &mut dyn FnMut()) -> bool {
    let continuous = round.is_multiple_of(2);
    let extra: &[&str] = if continuous {
        &[]
    } else {
        &["--available-now"]
    };
    let run = Running::start(config, &[], extra);
    land();
    // A draining run ends by itself within about a second: kill it sooner.
    std::thread::sleep(Duration::from_millis(
        20 + rng.below(if continuous { 1500 } else { 600 }),
    ));
    run.kill()
}

#[test]
fn crash_campaign_append() {
    let rounds = campaign_size("INLET_CAMPAIGN_KILLS", 8);
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut landing = Landing::new(&tmp.path().join("landing"));
    let config = listing_config(tmp.path());
    let mut rng = Rng(seed());
    let mut kills = 0;
    for round in 0..rounds {
        landing.add_files(2, 3_000);
        let mut land = || {
            landing.add_files(1, 3_000);
        };
        kills += usize::from(run_and_kill(&config, round, &mut rng, &mut land));
    }
    landing.add_files(2, 3_000);
    drain(&config, &[], &[]);

    let ids = read_delta(&url_of(&tmp.path().join("table")), &json!({})).ints("id");
    let (lost, doubled) = lost_and_doubled(landing.ids.iter().copied(), &ids);
    let files = files_json(&config);
    let uncommitted = files.iter().filter(|f| f["state"] != "committed").count();
    report_campaign(
        "crash-append",
        json!({"runs": rounds + 1, "kills": kills, "files": files.len(), "rows": landing.ids.len(),
               "rows_lost": lost, "rows_doubled": doubled, "files_not_committed": uncommitted, "seed": seed()}),
    );
    assert_eq!(
        (lost, doubled, uncommitted),
        (0, 0, 0),
        "rows lost, rows doubled, files not committed"
    );
    assert!(kills > 0, "no run was killed: the campaign tested nothing");
}

#[test]
fn crash_campaign_merge() {
    let rounds = campaign_size("INLET_CAMPAIGN_KILLS", 8);
    let tmp = tempfile::tempdir().expect("tempdir");
    let history = History::generate(4_000, seed());
    let per_round = 4;
    let files = named_files(&history, per_round * (rounds + 1), seed() ^ 7);
    let landing = tmp.path().join("landing");
    let cfg = merge_config(
        tmp.path(),
        "campaign",
        "dynamodb_stream",
        "max_files_per_batch = 2",
    );
    let body = std::fs::read_to_string(&cfg).expect("config") + "[trigger]\ninterval_seconds = 1\n";
    std::fs::write(&cfg, body).expect("config");
    let mut rng = Rng(seed());
    let mut kills = 0;
    let mut chunks = files.chunks(per_round / 2);
    for round in 0..rounds {
        write_files(&landing, chunks.next().unwrap_or_default());
        let next = chunks.next().unwrap_or_default();
        let mut land = || write_files(&landing, next);
        kills += usize::from(run_and_kill(&cfg, round, &mut rng, &mut land));
    }
    for rest in chunks {
        write_files(&landing, rest);
    }
    drain(&cfg, &[], &[]);

    let state = table_state(tmp.path());
    let (lost, wrong, extra) = differences(&history.model, &state);
    report_campaign(
        "crash-merge",
        json!({"runs": rounds + 1, "kills": kills, "files": files.len(), "keys": history.model.len(),
               "keys_lost": lost, "keys_wrong": wrong, "keys_extra": extra, "seed": seed()}),
    );
    assert_eq!(
        (lost, wrong, extra),
        (0, 0, 0),
        "keys lost, keys with a stale value, deleted keys present"
    );
    assert!(kills > 0, "no run was killed: the campaign tested nothing");
}

/// S3 listing through the fault proxy: a continuous run while files land, then a draining
/// run; every request kind meets 500s, 503 SlowDown, resets, lost answers, truncated
/// bodies and stalls.
#[test]
fn fault_campaign_s3_listing() {
    let files_total = campaign_size("INLET_CAMPAIGN_FILES", 24);
    let rate = fault_rate();
    let tmp = tempfile::tempdir().expect("tempdir");
    let moto = Moto::start();
    let proxy = FaultProxy::start(&moto.endpoint, tmp.path(), rate, seed(), 3.0);
    let bucket = format!("faults-{}", rand_suffix());
    moto.s3(&["mkbucket", &bucket]);
    let config = write_config(
        tmp.path(),
        &format!(
            "pipeline_id = \"faults\"\n[source]\nurl = \"s3://{bucket}/landing/\"\nmax_files_per_batch = 3\n\
             storage_options = {{ aws_endpoint = \"{p}\", aws_allow_http = \"true\", aws_region = \"us-east-1\", timeout = \"2s\" }}\n\
             [sink]\ntable = \"s3://{bucket}/table\"\n\
             storage_options = {{ aws_endpoint = \"{p}\", aws_allow_http = \"true\", aws_region = \"us-east-1\", timeout = \"2s\", conditional_put = \"etag\" }}\n\
             [checkpoint]\nlocation = \"state\"\n[trigger]\ninterval_seconds = 1\n",
            p = proxy.endpoint
        ),
    );
    let mut landing = Landing::new(&tmp.path().join("staging"));
    let put = |landing: &mut Landing, n: usize| {
        for path in landing.add_files(n, 500) {
            let name = path
                .file_name()
                .expect("name")
                .to_str()
                .expect("utf8")
                .to_string();
            moto.s3(&[
                "put",
                &bucket,
                &format!("landing/{name}"),
                path.to_str().expect("utf8"),
            ]);
        }
    };
    put(&mut landing, files_total / 2);
    let run = Running::start(&config, &moto.env(), &[]);
    put(&mut landing, files_total - files_total / 2);
    wait_for(
        300,
        "every file committed through the faults",
        Some(&run),
        || committed(&config) == files_total,
    );
    let log = run.stop();
    // A draining run after the continuous one finds nothing new, through the faults too.
    let out = drain(&config, &["--json"], &moto.env());
    let stats: Value = serde_json::from_str(out.trim()).expect("json");
    assert_eq!(stats["files"], 0, "{stats}");

    let mut reader = moto.reader_options();
    reader["AWS_ENDPOINT_URL"] = json!(moto.endpoint);
    let ids = read_delta(&format!("s3://{bucket}/table"), &reader).ints("id");
    let (lost, doubled) = lost_and_doubled(landing.ids.iter().copied(), &ids);
    let rows = landing.ids.len();
    finish_fault_campaign(
        "faults-s3-listing",
        &proxy,
        &log,
        (files_total, rows, rate, seed()),
        (lost, doubled),
    );
}

/// SQS notifications and S3 reads through the fault proxy: a continuous run takes a steady
/// stream of files whose notifications, receives and deletes meet the same faults.
#[test]
fn fault_campaign_sqs_notifications() {
    let files_total = campaign_size("INLET_CAMPAIGN_FILES", 24);
    let rate = fault_rate();
    let tmp = tempfile::tempdir().expect("tempdir");
    let notified = Notified::start(5);
    let proxy = FaultProxy::start(&notified.moto.endpoint, tmp.path(), rate, seed() ^ 1, 3.0);
    let config = notified.config(tmp.path(), "max_files_per_batch = 3");
    let body = std::fs::read_to_string(&config)
        .expect("config")
        .replace(&notified.moto.endpoint, &proxy.endpoint)
        .replace(
            "aws_region = \"us-east-1\"",
            "aws_region = \"us-east-1\", timeout = \"2s\"",
        );
    std::fs::write(&config, body).expect("config");
    let mut ids = Vec::new();
    let mut land = |from: usize, to: usize| {
        for f in from..to {
            let text: String = (0..100)
                .map(|r| format!("{{\"id\":{}}}\n", f * 100 + r))
                .collect();
            notified.put(&format!("auto/f{f:04}.json"), &text);
            ids.extend((0..100).map(|r| (f * 100 + r) as i64));
        }
    };
    let run = Running::start(&config, &notified.env(), &[]);
    land(0, files_total);
    wait_for(
        300,
        "every notified file committed through the faults",
        Some(&run),
        || committed(&config) == files_total,
    );
    let log = run.stop();

    let table = read_delta(&url_of(&tmp.path().join("table")), &json!({})).ints("id");
    let (lost, doubled) = lost_and_doubled(ids.iter().copied(), &table);
    let rows = ids.len();
    finish_fault_campaign(
        "faults-sqs-notifications",
        &proxy,
        &log,
        (files_total, rows, rate, seed() ^ 1),
        (lost, doubled),
    );
}

/// Another writer appends to the same table while inlet commits batch after batch: both
/// writers' rows are in the table once each.
#[test]
fn another_writer_appending_between_batches() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut landing = Landing::new(&tmp.path().join("landing"));
    landing.add_files(1, 10);
    let config = listing_config(tmp.path());
    let c = config.to_str().expect("utf8");
    run_ok(&["run", "--config", c, "--available-now"], &[]);
    let table = url_of(&tmp.path().join("table"));
    let other = 12;
    let mut writer = python()
        .args(["append-delta", &table, "-1000", &other.to_string()])
        .spawn()
        .expect("other writer");
    let run = Running::start(&config, &[], &[]);
    for _ in 0..12 {
        landing.add_files(1, 200);
    }
    assert!(
        writer.wait().expect("writer").success(),
        "the other writer failed"
    );
    wait_for(120, "every landed file committed", Some(&run), || {
        committed(&config) == 13
    });
    run.stop();
    let ids = read_delta(&table, &json!({})).ints("id");
    let expected = landing.ids.iter().copied().chain(-1000..-1000 + other);
    let (lost, doubled) = lost_and_doubled(expected, &ids);
    assert_eq!((lost, doubled), (0, 0), "rows lost, rows doubled");
}

/// A MERGE pipeline while another writer compacts the table (removing and adding files):
/// a merge that loses the race is retried and the table still equals the model.
#[test]
fn merge_retried_after_losing_to_a_compaction() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let history = History::generate(2_000, seed());
    let files = named_files(&history, 20, seed() ^ 3);
    let landing = tmp.path().join("landing");
    let cfg = merge_config(
        tmp.path(),
        "race",
        "dynamodb_stream",
        "max_files_per_batch = 1",
    );
    let c = cfg.to_str().expect("utf8");
    write_files(&landing, &files[..2]);
    run_ok(&["run", "--config", c, "--available-now"], &[]);
    let mut compactor = python()
        .args(["optimize-delta", &url_of(&tmp.path().join("table")), "15"])
        .spawn()
        .expect("compactor");
    write_files(&landing, &files[2..]);
    let out = run_ok(&["run", "--config", c, "--available-now", "--json"], &[]);
    assert!(
        compactor.wait().expect("compactor").success(),
        "the compactor failed"
    );
    let stats: Value = serde_json::from_str(out.trim()).expect("json");
    assert_eq!(stats["files"], 18, "{stats}");
    assert!(
        table_state(tmp.path()) == history.model,
        "table differs from the model"
    );
}
