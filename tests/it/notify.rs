//! Discovery through S3 event notifications on SQS (moto): continuous runs under a steady
//! stream of files, every kind of message, backfill listings, and stops mid-stream.

use std::net::TcpStream;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::support::*;

/// moto with a `landing` bucket whose ObjectCreated events under `auto/` go to a queue.
pub(crate) struct Notified {
    pub(crate) moto: Moto,
    pub(crate) queue: String,
}

impl Notified {
    pub(crate) fn start(visibility_seconds: u32) -> Self {
        let moto = Moto::start();
        moto.s3(&["mkbucket", "landing"]);
        let queue = moto
            .sqs(&["mkqueue", "landing-events", &visibility_seconds.to_string()])
            .trim()
            .to_string();
        moto.sqs(&["notify", "landing", &queue, "auto/"]);
        Self { moto, queue }
    }

    pub(crate) fn put(&self, key: &str, text: &str) {
        self.moto.s3(&["put-text", "landing", key, text]);
    }

    fn send(&self, body: &str) {
        self.moto.sqs(&["send", &self.queue, body]);
    }

    /// Messages on the queue, visible or in flight.
    pub(crate) fn messages(&self) -> u64 {
        self.moto
            .sqs(&["count", &self.queue])
            .trim()
            .parse()
            .expect("count")
    }

    pub(crate) fn config(&self, dir: &Path, extra_source: &str) -> PathBuf {
        write_config(
            dir,
            &format!(
                "pipeline_id = \"notify_test\"\n[source]\nurl = \"s3://landing/\"\ndiscovery = \"notifications\"\n\
                 queue_url = \"{}\"\nqueue_wait = \"1s\"\nmax_batch_wait = \"1s\"\npath_glob = \"**/*.json\"\n\
                 {}\n{extra_source}\n[sink]\ntable = \"table\"\n[checkpoint]\nlocation = \"state\"\n",
                self.queue,
                self.moto.storage_options()
            ),
        )
    }

    pub(crate) fn env(&self) -> Vec<(&'static str, &'static str)> {
        self.moto.env()
    }
}

/// An S3 event notification as S3 writes it: the key form-encoded.
fn s3_event(key: &str) -> String {
    let encoded: String = key
        .bytes()
        .map(|b| match b {
            b' ' => "+".to_string(),
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect();
    serde_json::json!({"Records": [{"eventVersion": "2.1", "eventSource": "aws:s3",
        "eventName": "ObjectCreated:Put", "eventTime": "2026-11-25T10:00:00.000Z",
        "s3": {"bucket": {"name": "landing"}, "object": {"key": encoded, "size": 10, "eTag": "x"}}}]})
    .to_string()
}

/// A sample's value from Prometheus text, by metric name (labels ignored unless given).
pub(crate) fn sample(metrics: &str, name: &str) -> Option<f64> {
    metrics
        .lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| l.split(['{', ' ']).next() == Some(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// A quantile from a Prometheus histogram's cumulative buckets (linear within a bucket).
fn histogram_quantile(metrics: &str, name: &str, q: f64) -> Option<f64> {
    let bucket = format!("{name}_bucket");
    let mut points: Vec<(f64, f64)> = metrics
        .lines()
        .filter(|l| l.starts_with(&bucket))
        .filter_map(|l| {
            let le = l.split("le=\"").nth(1)?.split('"').next()?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, l.rsplit(' ').next()?.parse().ok()?))
        })
        .collect();
    points.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total = points.last()?.1;
    let rank = q * total;
    let mut prev = (0.0, 0.0);
    for (le, count) in points {
        if count >= rank {
            if le.is_infinite() {
                return Some(prev.0);
            }
            let share = if count > prev.1 {
                (rank - prev.1) / (count - prev.1)
            } else {
                1.0
            };
            return Some(prev.0 + (le - prev.0) * share);
        }
        prev = (le, count);
    }
    None
}

fn table_ids(dir: &Path) -> Vec<i64> {
    let mut ids = read_delta(dir.join("table").to_str().expect("utf8"), &Value::Null).ints("id");
    ids.sort_unstable();
    ids
}

#[test]
fn continuous_run_takes_a_steady_stream_exactly_once_and_reports_latency() {
    let n = Notified::start(30);
    let tmp = tempfile::tempdir().expect("tempdir");
    let config = n.config(tmp.path(), "include_existing_files = false");
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let run = Running::start(&config, &n.env(), &["--metrics-addr", &addr]);
    wait_for(60, "the metrics endpoint", Some(&run), || {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let (status, body) = http_get(port, "/healthz");
    assert_eq!((status, body.trim()), (200, "ok"));

    // 500 files of 2 rows, 50 per second, while inlet runs.
    let files = 500;
    n.moto.s3(&[
        "steady",
        "landing",
        "auto/stream/",
        &files.to_string(),
        "50",
        "2",
    ]);
    let early = http_get(port, "/metrics").1;
    wait_for(120, "every file committed", Some(&run), || {
        committed(&config) == files
    });
    // Every message is acknowledged while the run goes on (a notification received in the
    // instant of the stop is given back, and the next start deletes it as a duplicate).
    wait_for(60, "every message acknowledged", Some(&run), || {
        n.messages() == 0
    });
    let (status, metrics) = http_get(port, "/metrics");
    assert_eq!(status, 200);

    let early_rows = sample(&early, "inlet_rows_committed_total").unwrap_or(0.0);
    assert_eq!(sample(&metrics, "inlet_rows_committed_total"), Some(1000.0));
    assert!(
        early_rows < 1000.0,
        "the counter moved between scrapes ({early_rows} then 1000)"
    );
    assert_eq!(
        sample(&metrics, "inlet_files_committed_total"),
        Some(files as f64)
    );
    assert_eq!(
        sample(&metrics, "inlet_landing_to_commit_seconds_count"),
        Some(files as f64)
    );
    assert!(sample(&metrics, "inlet_batches_committed_total").is_some_and(|b| b >= 1.0));
    assert!(
        sample(&metrics, "inlet_delta_version").is_some(),
        "{metrics}"
    );
    assert_eq!(sample(&metrics, "inlet_backlog_files"), Some(0.0));
    // Every metric the shipped alert rules and dashboard use is one this run exports.
    let exported = crate::deploy::metric_names(&metrics);
    let missing: Vec<String> = crate::deploy::monitored_metrics()
        .into_iter()
        .filter(|m| !exported.contains(m))
        .collect();
    assert!(missing.is_empty(), "not exported: {missing:?}\n{metrics}");
    let p50 = histogram_quantile(&metrics, "inlet_landing_to_commit_seconds", 0.5).expect("p50");
    let p99 = histogram_quantile(&metrics, "inlet_landing_to_commit_seconds", 0.99).expect("p99");
    // A figure for benches/README.md, not an assertion on time.
    eprintln!("landing-to-commit over {files} files at 50/s: p50 {p50:.2}s, p99 {p99:.2}s");

    let log = run.stop();
    let ids = table_ids(tmp.path());
    assert_eq!(
        ids,
        (0..1000).collect::<Vec<i64>>(),
        "every row exactly once"
    );
    let left = n.messages();
    assert_eq!(
        left,
        0,
        "messages on the queue after the run stopped\n{}",
        log.lines()
            .rev()
            .take(60)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn test_event_duplicates_sns_eventbridge_deleted_objects_and_garbage() {
    let n = Notified::start(30);
    let tmp = tempfile::tempdir().expect("tempdir");
    // Files under manual/ raise no notification: the test sends its own for them.
    n.put("auto/plain.json", "{\"id\": 1}\n");
    n.put("manual/a b+c é.json", "{\"id\": 2}\n");
    let sns = serde_json::json!({"Type": "Notification", "MessageId": "m-1",
        "TopicArn": "arn:aws:sns:us-east-1:123456789012:landing", "Message": s3_event("manual/a b+c é.json")});
    n.send(&sns.to_string());
    n.put("manual/eb.json", "{\"id\": 3}\n");
    let eb = serde_json::json!({"version": "0", "source": "aws.s3", "detail-type": "Object Created",
        "time": "2026-11-25T10:00:00Z",
        "detail": {"bucket": {"name": "landing"}, "object": {"key": "manual/eb.json", "size": 10, "etag": "e"}}});
    n.send(&eb.to_string());
    n.put("manual/gone.json", "{\"id\": 4}\n");
    n.moto.s3(&["delete", "landing", "manual/gone.json"]);
    n.send(&s3_event("manual/gone.json"));
    n.send(&s3_event("manual/notes.txt"));
    n.send("this is not JSON");

    let config = n.config(tmp.path(), "include_existing_files = false");
    let first = try_drain(&config, &[], &n.env());
    let log = String::from_utf8_lossy(&first.stderr).into_owned();
    assert!(first.status.success(), "{log}");
    assert_eq!(table_ids(tmp.path()), vec![1, 2, 3]);
    assert!(log.contains("s3:TestEvent received and deleted"), "{log}");
    assert_eq!(
        log.matches("not an S3 notification inlet can use").count(),
        1,
        "logged once: {log}"
    );

    let skipped = files_in_state(&config, "skipped");
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    assert!(skipped[0]["path"]
        .as_str()
        .is_some_and(|p| p.ends_with("manual/gone.json")));
    assert!(
        skipped[0].to_string().contains("deleted from the source"),
        "{}",
        skipped[0]
    );
    let taken: Vec<String> = files_in_state(&config, "committed")
        .iter()
        .filter_map(|f| f["path"].as_str().map(str::to_string))
        .collect();
    assert!(
        taken.contains(&"s3://landing/manual/a b+c é.json".to_string()),
        "{taken:?}"
    );

    // A duplicate notification of a committed file costs a look-up and is deleted.
    n.send(&s3_event("auto/plain.json"));
    let second = try_drain(&config, &["--json"], &n.env());
    assert!(
        second.status.success(),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    let stats: Value = serde_json::from_slice(&second.stdout).expect("stats");
    assert_eq!(stats["files"], 0, "{stats}");
    assert_eq!(table_ids(tmp.path()), vec![1, 2, 3]);
    // Only the garbage message is left, for the queue's redrive policy.
    assert_eq!(
        n.messages(),
        1,
        "first run:\n{log}\nsecond run:\n{}\nqueue: {}",
        String::from_utf8_lossy(&second.stderr),
        n.moto.sqs(&["peek", &n.queue])
    );
}

#[test]
fn first_start_listing_and_backfill_catch_files_without_notifications() {
    let n = Notified::start(30);
    let tmp = tempfile::tempdir().expect("tempdir");
    // Before the first start: one file with a notification waiting, one without.
    n.put("auto/both.json", "{\"id\": 1}\n");
    n.put("quiet/old.json", "{\"id\": 2}\n");
    let config = n.config(tmp.path(), "backfill_interval = \"2s\"");
    let run = Running::start(&config, &n.env(), &[]);
    wait_for(60, "the files present at start", Some(&run), || {
        committed(&config) == 2
    });
    // A file whose notification never comes: the next backfill listing finds it.
    n.put("quiet/late.json", "{\"id\": 3}\n");
    wait_for(60, "the backfill listing", Some(&run), || {
        committed(&config) == 3
    });
    n.put("auto/new.json", "{\"id\": 4}\n");
    wait_for(60, "the notified file", Some(&run), || {
        committed(&config) == 4
    });
    let log = run.stop();
    assert!(
        log.contains("listed the source beside notifications"),
        "{log}"
    );
    assert_eq!(
        table_ids(tmp.path()),
        vec![1, 2, 3, 4],
        "found both ways, taken once"
    );
    wait_for(30, "the queue to be empty", None, || n.messages() == 0);
}

#[test]
fn stops_mid_stream_lose_nothing_and_double_nothing() {
    // A short visibility timeout, so messages of a killed run come back within the test.
    let n = Notified::start(3);
    let tmp = tempfile::tempdir().expect("tempdir");
    let config = n.config(
        tmp.path(),
        "max_files_per_batch = 2\ninclude_existing_files = false",
    );
    n.moto
        .s3(&["steady", "landing", "auto/a/", "100", "1000", "3"]);

    // SIGTERM once a batch is in: the batch in flight finishes, exit 0, the rest is
    // given back to the queue.
    let run = Running::start(&config, &n.env(), &[]);
    wait_for(60, "a first batch", Some(&run), || committed(&config) >= 2);
    run.stop();
    let after_term = committed(&config);
    assert!(after_term < 100, "stopped before the end ({after_term})");

    // Killed between the Delta commit and the checkpoint record: the commit stands, the
    // messages are not deleted and come back after their visibility timeout.
    let crash = inlet()
        .args([
            "run",
            "--config",
            config.to_str().expect("utf8"),
            "--fault-point",
            "after-commit",
        ])
        .envs(n.env())
        .output()
        .expect("run");
    assert!(!crash.status.success(), "the fault point kills the run");

    n.moto
        .s3(&["steady", "landing", "auto/b/", "20", "1000", "3"]);
    let run = Running::start(&config, &n.env(), &[]);
    wait_for(90, "every file", Some(&run), || committed(&config) == 120);
    run.stop();
    let ids = table_ids(tmp.path());
    let mut want: Vec<i64> = (0..100 * 3).chain(0..20 * 3).collect();
    want.sort_unstable();
    assert_eq!(ids, want, "nothing lost, nothing doubled");
    wait_for(30, "the queue to be empty", None, || n.messages() == 0);
}

#[test]
fn validate_reaches_the_queue_and_a_missing_queue_is_named() {
    let n = Notified::start(30);
    let tmp = tempfile::tempdir().expect("tempdir");
    let config = n.config(tmp.path(), "include_existing_files = false");
    n.put("auto/v.json", "{\"id\": 7}\n");
    let out = run_ok(
        &["validate", "--config", config.to_str().expect("utf8")],
        &n.env(),
    );
    assert!(
        out.contains(&format!("queue       {} (reachable", n.queue)),
        "{out}"
    );
    // validate reads no message: the next run sees the file's notification at once.
    drain(&config, &[], &n.env());
    assert_eq!(table_ids(tmp.path()), vec![7]);

    let missing = n.queue.replace("landing-events", "no-such-queue");
    let text = std::fs::read_to_string(&config)
        .expect("config")
        .replace(&n.queue, &missing);
    std::fs::write(&config, text).expect("write");
    let out = try_drain(&config, &[], &n.env());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let last = err.lines().last().unwrap_or_default();
    assert!(
        last.starts_with(&format!(
            "error: SQS queue {missing}: the queue does not exist"
        )),
        "{last}"
    );
}

#[test]
fn overwrites_through_notifications_take_the_current_version_and_empty_the_queue() {
    let n = Notified::start(30);
    let tmp = tempfile::tempdir().expect("tempdir");
    let config = n.config(
        tmp.path(),
        "include_existing_files = false\nallow_overwrites = true",
    );
    let cfg = config.to_str().expect("utf8");
    n.put("auto/a.json", "{\"id\": 1}\n");
    run_ok(&["run", "--config", cfg, "--available-now"], &n.env());
    assert_eq!(table_ids(tmp.path()), vec![1]);

    // Overwritten twice before the next run: only the current version can still be read,
    // and the notification of the one in between must not hold up the queue.
    n.put("auto/a.json", "{\"id\": 2}\n");
    n.put("auto/a.json", "{\"id\": 3}\n{\"id\": 4}\n");
    let out = run_inlet(&["run", "--config", cfg, "--available-now"], &n.env());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        table_ids(tmp.path()),
        vec![1, 3, 4],
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let committed: Vec<Value> = files_in_state(&config, "committed");
    assert_eq!(
        committed.len(),
        2,
        "two versions of a.json taken: {committed:?}"
    );
    wait_for(30, "the queue to be empty", None, || n.messages() == 0);
}
