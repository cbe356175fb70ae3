//! Observability: the pipeline's events recorded as Prometheus metrics through the `metrics`
//! facade, its health kept from them, and `/metrics`, `/livez`, `/readyz` and `/healthz`
//! served on `--metrics-addr`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use inlet_engine::{BatchCommitted, Event, Maintenance, Observer};
use metrics::{
    counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram, Unit,
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing::{info, warn};

/// The run's health for orchestrators, kept from the pipeline's events.
///
/// - **Live** (`/livez`): the loop is turning — some event came within `live_within`. A
///   source or table that is down does not make it fail: each retry is an event too.
/// - **Ready** (`/readyz`, and `/healthz`, its alias): no failure is being retried, and
///   a discovery or a batch succeeded within `ready_within`.
#[derive(Debug)]
pub struct Health {
    problem: Mutex<Option<String>>,
    /// Why the pipeline stopped for good (its error), or that it stands by.
    state: Mutex<Option<String>>,
    last_event: Mutex<Instant>,
    last_success: Mutex<Instant>,
    live_within: Duration,
    ready_within: Duration,
}

impl Health {
    /// Health for a loop that lists (or reports its queue) every `interval`: live within
    /// 10 intervals (at least 15 minutes, longer than a batch or a retry's back-off),
    /// ready within 3 (at least 5 minutes).
    pub fn new(interval: Duration) -> Self {
        let now = Instant::now();
        Self {
            problem: Mutex::new(None),
            state: Mutex::new(None),
            last_event: Mutex::new(now),
            last_success: Mutex::new(now),
            live_within: (interval * 10).max(Duration::from_secs(15 * 60)),
            ready_within: (interval * 3).max(Duration::from_secs(5 * 60)),
        }
    }

    /// Marks the run unhealthy with a reason (a retried failure), or healthy again.
    fn set(&self, problem: Option<String>) {
        *lock(&self.problem) = problem;
    }

    fn turned(&self, success: bool) {
        let now = Instant::now();
        *lock(&self.last_event) = now;
        if success {
            *lock(&self.last_success) = now;
        }
    }

    /// The pipeline stands by (another runner holds its checkpoint): live, not ready.
    pub fn standing_by(&self, yes: bool) {
        *lock(&self.state) = yes.then(|| "standing by: another runner holds the checkpoint".into());
        self.turned(false);
    }

    /// The pipeline is open again after a failure.
    pub fn recovered(&self) {
        *lock(&self.state) = None;
        self.turned(true);
    }

    /// The pipeline stopped with `error` while others in the process go on: not ready,
    /// still live (restarting the process would stop the others too).
    pub fn failed(&self, error: String) {
        *lock(&self.state) = Some(format!("stopped: {error}"));
    }

    /// Why the loop is not live (`None`: it is). A stopped or standing-by pipeline is.
    pub fn not_live(&self) -> Option<String> {
        if lock(&self.state).is_some() {
            return None;
        }
        let quiet = lock(&self.last_event).elapsed();
        (quiet > self.live_within).then(|| {
            format!(
                "the loop has reported nothing for {} s (bound {} s)",
                quiet.as_secs(),
                self.live_within.as_secs()
            )
        })
    }

    /// Why the run is not ready (`None`: it is).
    fn not_ready(&self) -> Option<String> {
        if let Some(state) = lock(&self.state).clone() {
            return Some(state);
        }
        if let Some(problem) = lock(&self.problem).clone() {
            return Some(problem);
        }
        let since = lock(&self.last_success).elapsed();
        (since > self.ready_within).then(|| {
            format!(
                "no discovery or batch succeeded for {} s (bound {} s)",
                since.as_secs(),
                self.ready_within.as_secs()
            )
        })
    }
}

/// The health of every pipeline of the process: `/livez` and `/readyz` answer for all of
/// them, naming each pipeline at fault.
#[derive(Debug, Default)]
pub struct Healths {
    pipelines: Mutex<Vec<(String, Arc<Health>)>>,
}

impl Healths {
    pub fn add(&self, pipeline: &str, health: Arc<Health>) {
        lock(&self.pipelines).push((pipeline.to_string(), health));
    }

    fn each(&self, problem: impl Fn(&Health) -> Option<String>) -> Option<String> {
        let all = lock(&self.pipelines);
        let named: Vec<String> = all
            .iter()
            .filter_map(|(id, h)| problem(h).map(|p| format!("pipeline {id}: {p}")))
            .collect();
        (!named.is_empty()).then(|| named.join("\n"))
    }

    /// Why some pipeline's loop is not live, each named (`None`: all are).
    pub fn not_live(&self) -> Option<String> {
        self.each(Health::not_live)
    }

    fn not_ready(&self) -> Option<String> {
        self.each(Health::not_ready)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Installs the Prometheus recorder (every metric labelled with the pipeline id) and serves
/// it on `addr`; returns the address bound (port 0 picks a free one).
pub async fn serve(addr: SocketAddr, health: Arc<Healths>) -> Result<SocketAddr> {
    let seconds = [
        0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
    ];
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &seconds)
        .context("metric buckets")?
        .install_recorder()
        .context("cannot install the metrics recorder")?;
    describe();
    gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on --metrics-addr {addr}: is it in use?"))?;
    let bound = listener.local_addr().context("metrics listener address")?;
    info!(addr = %bound, "serving /metrics, /livez, /readyz and /healthz");
    tokio::spawn(async move {
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    warn!(error = %e, "metrics listener cannot accept");
                    continue;
                }
            };
            let handle = handle.clone();
            let health = health.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let response = respond(&handle, &health, &req);
                    async move { Ok::<_, Infallible>(response) }
                });
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .await;
            });
        }
    });
    Ok(bound)
}

fn respond<B>(
    handle: &PrometheusHandle,
    health: &Healths,
    req: &Request<B>,
) -> Response<Full<Bytes>> {
    let reply = |status: StatusCode, content_type: &str, body: String| {
        let mut response = Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = status;
        if let Ok(v) = content_type.parse() {
            response
                .headers_mut()
                .insert(hyper::header::CONTENT_TYPE, v);
        }
        response
    };
    match req.uri().path() {
        "/metrics" => reply(StatusCode::OK, "text/plain; version=0.0.4", handle.render()),
        path @ ("/livez" | "/readyz" | "/healthz") => {
            let problem = if path == "/livez" {
                health.not_live()
            } else {
                health.not_ready()
            };
            match problem {
                None => reply(StatusCode::OK, "text/plain", "ok\n".into()),
                Some(problem) => reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain",
                    format!("{problem}\n"),
                ),
            }
        }
        _ => reply(
            StatusCode::NOT_FOUND,
            "text/plain",
            "try /metrics, /livez, /readyz or /healthz\n".into(),
        ),
    }
}

pub const FILES_DISCOVERED: &str = "inlet_files_discovered_total";
pub const FILES_COMMITTED: &str = "inlet_files_committed_total";
pub const FILES_FAILED: &str = "inlet_files_failed_total";
pub const FILES_SKIPPED: &str = "inlet_files_skipped_total";
pub const DUPLICATES: &str = "inlet_duplicate_events_total";
pub const BYTES: &str = "inlet_committed_bytes_total";
pub const ROWS: &str = "inlet_rows_committed_total";
pub const BATCHES: &str = "inlet_batches_committed_total";
pub const BATCH_SECONDS: &str = "inlet_batch_duration_seconds";
pub const LATENCY_SECONDS: &str = "inlet_landing_to_commit_seconds";
pub const BACKLOG_FILES: &str = "inlet_backlog_files";
pub const BACKLOG_BYTES: &str = "inlet_backlog_bytes";
pub const QUEUE_DEPTH: &str = "inlet_queue_messages";
pub const SCHEMA_VERSION: &str = "inlet_schema_version";
pub const DELTA_VERSION: &str = "inlet_delta_version";
pub const TABLE_FILES: &str = "inlet_table_files";
pub const TABLE_SMALL_FILES: &str = "inlet_table_small_files";
pub const TABLE_BYTES: &str = "inlet_table_bytes";
pub const COMPACTIONS: &str = "inlet_compactions_total";
pub const COMPACTION_SECONDS: &str = "inlet_compaction_duration_seconds";
pub const COMPACTED_FILES: &str = "inlet_compacted_files_total";
pub const LAST_COMPACTION: &str = "inlet_last_compaction_timestamp_seconds";
pub const VACUUMS: &str = "inlet_vacuums_total";
pub const VACUUM_SECONDS: &str = "inlet_vacuum_duration_seconds";
pub const VACUUMED_FILES: &str = "inlet_vacuumed_files_total";
pub const LAST_VACUUM: &str = "inlet_last_vacuum_timestamp_seconds";
pub const DELTA_CHECKPOINTS: &str = "inlet_delta_checkpoints_total";
pub const LOG_CLEANED: &str = "inlet_delta_log_objects_deleted_total";
pub const MAINTENANCE_FAILURES: &str = "inlet_maintenance_failures_total";
pub const BAD_RECORDS: &str = "inlet_bad_records_total";
pub const RESCUED_ROWS: &str = "inlet_rescued_rows_total";
pub const RESCUED_VALUES: &str = "inlet_rescued_values_total";
pub const RETRIES: &str = "inlet_retries_total";
pub const LAST_COMMIT: &str = "inlet_last_commit_timestamp_seconds";
pub const BUILD_INFO: &str = "inlet_build_info";

fn describe() {
    describe_counter!(
        BAD_RECORDS,
        "Records that did not parse or fit, written to the bad-records location (counted per read: a replayed batch counts again)"
    );
    describe_counter!(
        RESCUED_ROWS,
        "Rows with values kept in the rescued data column (per read)"
    );
    describe_counter!(
        RESCUED_VALUES,
        "Values kept in the rescued data column, one per key of a row's rescued object (per read)"
    );
    describe_counter!(
        RETRIES,
        "Failed steps retried after a back-off, by step (discovery, batch, ...)"
    );
    describe_gauge!(
        LAST_COMMIT,
        Unit::Seconds,
        "When the last batch was recorded, seconds since the epoch: alert on its age while the backlog is not empty"
    );
    describe_gauge!(BUILD_INFO, "1, labelled with inlet's version");
    describe_counter!(FILES_DISCOVERED, "New files found (not seen before)");
    describe_counter!(FILES_COMMITTED, "Files whose rows were committed");
    describe_counter!(
        FILES_FAILED,
        "Files that could not be decoded (see bad records)"
    );
    describe_counter!(FILES_SKIPPED, "Files gone before they were read");
    describe_counter!(
        DUPLICATES,
        "Notifications or listings of files already taken"
    );
    describe_counter!(BYTES, Unit::Bytes, "Bytes of committed files, as stored");
    describe_counter!(ROWS, "Rows written to the table");
    describe_counter!(BATCHES, "Batches committed");
    describe_histogram!(
        BATCH_SECONDS,
        Unit::Seconds,
        "Time from planning a batch to recording its commit"
    );
    describe_histogram!(
        LATENCY_SECONDS,
        Unit::Seconds,
        "Time from a file's landing (its S3 event or modification time) to its commit"
    );
    describe_gauge!(BACKLOG_FILES, "Files found and not yet committed");
    describe_gauge!(
        BACKLOG_BYTES,
        Unit::Bytes,
        "Bytes of files found and not yet committed"
    );
    describe_gauge!(
        QUEUE_DEPTH,
        "Messages waiting on the SQS queue (ApproximateNumberOfMessages)"
    );
    describe_gauge!(SCHEMA_VERSION, "Latest schema version in the checkpoint");
    describe_gauge!(DELTA_VERSION, "Delta table version after the last commit");
    describe_gauge!(TABLE_FILES, "Data files in the table's latest version");
    describe_gauge!(
        TABLE_SMALL_FILES,
        "Data files under the small-file size ([maintenance] small_file_fraction of target_file_size)"
    );
    describe_gauge!(TABLE_BYTES, Unit::Bytes, "Bytes of the table's data files");
    describe_counter!(COMPACTIONS, "Compactions of small files committed");
    describe_histogram!(
        COMPACTION_SECONDS,
        Unit::Seconds,
        "Time a compaction took (beside the batches for append tables, between them for MERGE)"
    );
    describe_counter!(COMPACTED_FILES, "Small files replaced by compaction");
    describe_gauge!(
        LAST_COMPACTION,
        Unit::Seconds,
        "When the last compaction was reported, at the batch after its commit (Unix time)"
    );
    describe_counter!(VACUUMS, "VACUUM runs");
    describe_histogram!(VACUUM_SECONDS, Unit::Seconds, "Time a VACUUM held the run");
    describe_counter!(VACUUMED_FILES, "Data files deleted by VACUUM");
    describe_gauge!(
        LAST_VACUUM,
        Unit::Seconds,
        "When the last VACUUM ran (Unix time)"
    );
    describe_counter!(DELTA_CHECKPOINTS, "Delta checkpoints written");
    describe_counter!(LOG_CLEANED, "Expired _delta_log objects deleted");
    describe_counter!(
        MAINTENANCE_FAILURES,
        "Failed table maintenance steps by step (compaction, vacuum, checkpoint, log_cleanup); the commits stand"
    );
}

/// Records one pipeline's events as metrics labelled with its id, and keeps its health.
pub struct Recorder {
    health: Arc<Health>,
    labels: Vec<(&'static str, String)>,
}

impl Recorder {
    /// A recorder for `pipeline`; its counters start at 0, so rates and alerts see them
    /// before their first event.
    pub fn new(pipeline: &str, health: Arc<Health>) -> Self {
        let labels = vec![("pipeline", pipeline.to_string())];
        let l = &labels;
        for name in [
            FILES_DISCOVERED,
            FILES_COMMITTED,
            FILES_FAILED,
            FILES_SKIPPED,
            DUPLICATES,
            BYTES,
            ROWS,
            BATCHES,
            COMPACTIONS,
            COMPACTED_FILES,
            VACUUMS,
            VACUUMED_FILES,
            DELTA_CHECKPOINTS,
            LOG_CLEANED,
            BAD_RECORDS,
            RESCUED_ROWS,
            RESCUED_VALUES,
        ] {
            counter!(name, l).increment(0);
        }
        for step in ["discovery", "listing", "recovery", "batch"] {
            counter!(RETRIES, &with(l, "step", step)).increment(0);
        }
        for step in ["compaction", "vacuum", "checkpoint", "log_cleanup"] {
            counter!(MAINTENANCE_FAILURES, &with(l, "step", step)).increment(0);
        }
        Self { health, labels }
    }
}

/// `labels` and one more.
fn with(
    labels: &[(&'static str, String)],
    key: &'static str,
    value: &str,
) -> Vec<(&'static str, String)> {
    let mut out = labels.to_vec();
    out.push((key, value.to_string()));
    out
}

impl Observer for Recorder {
    fn event(&self, event: &Event) {
        let l = &self.labels;
        // Every event shows the loop turning; these show the source or table working.
        self.health.turned(matches!(
            event,
            Event::Discovered { .. }
                | Event::QueueDepth { .. }
                | Event::BatchCommitted(_)
                | Event::Healthy
        ));
        match event {
            Event::Discovered { new, duplicates } => {
                counter!(FILES_DISCOVERED, l).increment(*new);
                counter!(DUPLICATES, l).increment(*duplicates);
            }
            Event::Backlog { files, bytes } => {
                gauge!(BACKLOG_FILES, l).set(*files as f64);
                gauge!(BACKLOG_BYTES, l).set(*bytes as f64);
            }
            Event::QueueDepth { messages } => gauge!(QUEUE_DEPTH, l).set(*messages as f64),
            Event::SchemaVersion { version } => gauge!(SCHEMA_VERSION, l).set(*version as f64),
            Event::BatchCommitted(done) => batch_committed(l, done),
            Event::Retrying {
                what,
                attempt,
                error,
                ..
            } => {
                // The step's kind ("batch 12" counts as "batch"): a label per batch would
                // grow without bound.
                let step = what
                    .split_whitespace()
                    .next()
                    .unwrap_or("other")
                    .to_string();
                counter!(RETRIES, &with(l, "step", &step)).increment(1);
                self.health.set(Some(format!(
                    "{what} failing ({attempt} attempts): {error}"
                )));
            }
            Event::FileRead {
                bad_records,
                rescued_rows,
                rescued_values,
                ..
            } => {
                counter!(BAD_RECORDS, l).increment(*bad_records);
                counter!(RESCUED_ROWS, l).increment(*rescued_rows);
                counter!(RESCUED_VALUES, l).increment(*rescued_values);
            }
            Event::Healthy => self.health.set(None),
            Event::Maintenance(m) => maintenance(l, m),
            _ => {}
        }
    }
}

fn batch_committed(l: &[(&'static str, String)], done: &BatchCommitted) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    gauge!(LAST_COMMIT, l).set(now);
    counter!(FILES_COMMITTED, l).increment(done.files - done.failed - done.skipped);
    counter!(FILES_FAILED, l).increment(done.failed);
    counter!(FILES_SKIPPED, l).increment(done.skipped);
    counter!(BYTES, l).increment(done.bytes);
    counter!(ROWS, l).increment(done.rows);
    counter!(BATCHES, l).increment(1);
    histogram!(BATCH_SECONDS, l).record(done.seconds);
    let now = chrono::Utc::now().timestamp_millis();
    let latency = histogram!(LATENCY_SECONDS, l);
    for landed in &done.landed_ms {
        if *landed > 0 {
            latency.record((now - landed).max(0) as f64 / 1000.0);
        }
    }
    if let Some(v) = done.delta_version {
        gauge!(DELTA_VERSION, l).set(v as f64);
    }
}

fn maintenance(l: &[(&'static str, String)], m: &Maintenance) {
    let now = chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
    match m {
        Maintenance::TableFiles {
            files,
            bytes,
            small_files,
        } => {
            gauge!(TABLE_FILES, l).set(*files as f64);
            gauge!(TABLE_BYTES, l).set(*bytes as f64);
            gauge!(TABLE_SMALL_FILES, l).set(*small_files as f64);
        }
        Maintenance::Compacted {
            files_removed,
            seconds,
            version,
            ..
        } => {
            histogram!(COMPACTION_SECONDS, l).record(*seconds);
            if version.is_some() {
                counter!(COMPACTIONS, l).increment(1);
                counter!(COMPACTED_FILES, l).increment(*files_removed);
                gauge!(LAST_COMPACTION, l).set(now);
            }
        }
        Maintenance::Vacuumed { files, seconds } => {
            counter!(VACUUMS, l).increment(1);
            counter!(VACUUMED_FILES, l).increment(*files);
            histogram!(VACUUM_SECONDS, l).record(*seconds);
            gauge!(LAST_VACUUM, l).set(now);
        }
        Maintenance::Checkpointed { .. } => counter!(DELTA_CHECKPOINTS, l).increment(1),
        Maintenance::LogCleaned { removed } => counter!(LOG_CLEANED, l).increment(*removed),
        Maintenance::Failed { what, .. } => {
            counter!(MAINTENANCE_FAILURES, &with(l, "step", what)).increment(1);
        }
        _ => {}
    }
}
