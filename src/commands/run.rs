//! `inlet run`: opens each pipeline (one per `--config`, or every `*.toml` of
//! `--config-dir`), runs them in one runtime with one metrics endpoint until done or
//! signalled, and prints each one's summary. One pipeline's failure stops it alone.

use std::sync::Arc;

use anyhow::Result;

use super::out;
use inlet_engine::{Config, OpenOptions, Pipeline, RunMode, RunStats};
use tokio::sync::watch;
use tracing::Instrument;

use crate::cli::RunArgs;
use crate::metrics::{Health, Healths};
use crate::{metrics, progress};

pub async fn run(args: &RunArgs) -> Result<()> {
    let configs = super::load_configs(&args.configs)?;
    let mode = if args.once {
        RunMode::Once
    } else if args.available_now {
        RunMode::AvailableNow
    } else {
        RunMode::Continuous
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(watch_signals(stop_tx));
    let healths = Arc::new(Healths::default());
    let members: Vec<(Config, Arc<Health>)> = configs
        .into_iter()
        .map(|cfg| {
            let health = Arc::new(Health::new(std::time::Duration::from_secs(
                cfg.trigger.interval_seconds,
            )));
            healths.add(&cfg.pipeline_id, health.clone());
            (cfg, health)
        })
        .collect();
    if let Some(addr) = args.metrics_addr {
        metrics::serve(addr, healths.clone()).await?;
    }
    let bar = Arc::new(progress::Progress::new());
    let single = members.len() == 1;
    // systemd's READY=1 once every pipeline is open, standing by, or stopped.
    let ready = Arc::new(Ready(std::sync::atomic::AtomicUsize::new(members.len())));
    // systemd (Type=notify): the watchdog is fed while every loop turns, so a stuck loop is
    // restarted and an S3 outage is not.
    if let Some(every) = crate::systemd::watchdog_every() {
        let healths = healths.clone();
        let ready = ready.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                if ready.sent() && healths.not_live().is_none() {
                    crate::systemd::notify("WATCHDOG=1");
                }
            }
        });
    }
    let how = How {
        mode,
        fault_point: args.fault_point,
        fault_freeze: args.fault_freeze,
        standby: args.standby,
        log_failure: !single,
    };
    // Every pipeline is polled by this task; a panic in one is caught and becomes that
    // pipeline's failure, so the others go on. (A run's future is not `Send` yet, so the
    // pipelines cannot each be a task of their own: docs/architecture.md.)
    let runs = members.into_iter().map(|(cfg, health)| {
        let id = cfg.pipeline_id.clone();
        let table = cfg.table_url.to_string();
        let span = tracing::info_span!("pipeline", id = %id);
        let run = run_one(cfg, health, how, stop_rx.clone(), bar.clone(), ready.clone()).instrument(span);
        async move {
            use futures::FutureExt;
            let result = match std::panic::AssertUnwindSafe(run).catch_unwind().await {
                Ok(result) => result,
                Err(_) => Err(anyhow::anyhow!(
                    "pipeline '{id}' stopped by an internal error (a panic, logged above); this is a bug in inlet, please report it"
                )),
            };
            (id, table, result)
        }
    });
    let results = futures::future::join_all(runs).await;
    crate::systemd::notify("STOPPING=1");
    bar.finish();
    if single {
        let Some((id, table, result)) = results.into_iter().next() else {
            return Ok(());
        };
        let Some(stats) = result? else {
            return Ok(()); // stopped while standing by
        };
        if args.json {
            out!("{}", serde_json::to_string(&stats)?)?;
        } else {
            out!("{}", progress::summary(&id, &table, &stats))?;
        }
        return Ok(());
    }
    report_all(args.json, results)
}

/// Many pipelines: each one's summary (or error), then an error naming the failed ones.
fn report_all(json: bool, results: Vec<(String, String, Result<Option<RunStats>>)>) -> Result<()> {
    let mut failed = Vec::new();
    let mut entries = Vec::new();
    let (mut locked, mut locked_all) = (None, true);
    for (id, table, result) in results {
        match result {
            Ok(stats) => {
                if !json {
                    match &stats {
                        Some(stats) => out!("{}", progress::summary(&id, &table, stats))?,
                        None => out!("inlet: pipeline '{id}' stopped while standing by")?,
                    }
                }
                entries.push(
                    serde_json::json!({"pipeline": id, "table": table, "ok": true, "stats": stats}),
                );
            }
            Err(e) => {
                let error = crate::one_line(&e);
                if !json {
                    out!("inlet: pipeline '{id}' failed: {error}")?;
                }
                entries.push(serde_json::json!({"pipeline": id, "table": table, "ok": false, "error": error}));
                failed.push(id);
                if crate::is_locked(&e) {
                    locked.get_or_insert(e);
                } else {
                    locked_all = false;
                }
            }
        }
    }
    if json {
        out!("{}", serde_json::json!({ "pipelines": entries }))?;
    }
    if failed.is_empty() {
        return Ok(());
    }
    let summary = format!(
        "{} of {} pipelines failed: {}; each one's error is above, the others ran to their end",
        failed.len(),
        entries.len(),
        failed.join(", ")
    );
    // Every failure a lock or lease held elsewhere: exit 75 (try again later), as one
    // pipeline would.
    match locked {
        Some(first) if locked_all => Err(first.context(summary)),
        _ => Err(anyhow::anyhow!(summary)),
    }
}

/// How every pipeline of this run runs (the flags, owned, for the pipelines' tasks).
#[derive(Clone, Copy)]
struct How {
    mode: RunMode,
    fault_point: Option<inlet_engine::FaultPoint>,
    fault_freeze: bool,
    standby: bool,
    /// Log a pipeline's failure when it happens (with several pipelines; one pipeline's
    /// error is the command's, printed once at exit).
    log_failure: bool,
}

/// Pipelines not yet open, standing by or stopped; READY=1 when none is left.
struct Ready(std::sync::atomic::AtomicUsize);

impl Ready {
    /// Whether READY=1 was sent (the watchdog is fed only after it).
    fn sent(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::Acquire) == 0
    }
}

/// One pipeline's part of [`Ready`], counted once.
struct ReadyOnce(Arc<Ready>, std::sync::atomic::AtomicBool);

impl ReadyOnce {
    fn one(&self) {
        use std::sync::atomic::Ordering;
        if !self.1.swap(true, Ordering::AcqRel) && (self.0).0.fetch_sub(1, Ordering::AcqRel) == 1 {
            crate::systemd::notify("READY=1\nSTATUS=ingesting");
        }
    }
}

/// Whether a later attempt at opening and running the pipeline may succeed: the
/// checkpoint is held elsewhere, or the trouble is transient.
fn may_pass(e: &anyhow::Error) -> bool {
    crate::is_locked(e)
        || e.chain().any(|c| {
            c.downcast_ref::<inlet_engine::EngineError>()
                .is_some_and(inlet_engine::EngineError::is_transient)
        })
}

/// Opens and runs one pipeline, reporting to `health`; `Ok(None)` when it was stopped
/// while standing by. In a continuous run, a failure a later attempt may cure (storage
/// trouble, a checkpoint still held by a runner that died) reopens the pipeline after a
/// back-off (1 s doubling to 60 s); any other stops this pipeline alone and marks its health.
async fn run_one(
    cfg: Config,
    health: Arc<Health>,
    how: How,
    stop: watch::Receiver<bool>,
    bar: Arc<progress::Progress>,
    ready: Arc<Ready>,
) -> Result<Option<RunStats>> {
    let id = cfg.pipeline_id.clone();
    let ready = Arc::new(ReadyOnce(ready, false.into()));
    // Its metrics exist (at 0) from the start, a pipeline that fails to open included.
    let recorder = Arc::new(metrics::Recorder::new(&id, health.clone()));
    let mut attempt = 0u32;
    loop {
        let result = attempt_one(
            cfg.clone(),
            health.clone(),
            how,
            stop.clone(),
            bar.clone(),
            recorder.clone(),
            ready.clone(),
        )
        .await;
        let err = match result {
            Ok(stats) => {
                ready.one();
                return Ok(stats);
            }
            Err(e) => e,
        };
        let text = crate::one_line(&err);
        health.failed(text.clone());
        let stopping = *stop.borrow();
        if how.mode != RunMode::Continuous || !may_pass(&err) || stopping {
            if how.log_failure {
                tracing::error!(error = %text, "pipeline stopped; the others go on");
            }
            ready.one();
            return Err(err);
        }
        attempt += 1;
        let wait = std::time::Duration::from_secs(1u64 << attempt.min(6))
            .min(std::time::Duration::from_secs(60));
        tracing::warn!(error = %text, attempt, retry_in_s = wait.as_secs(), "pipeline stopped; opening it again after a pause");
        let mut stopped = stop.clone();
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            // A stop ends the wait; a gone sender (never a stop) lets the pause run out.
            true = inlet_engine::until_true(&mut stopped) => return Err(err),
        }
    }
}

/// One open and run of a pipeline.
async fn attempt_one(
    cfg: Config,
    health: Arc<Health>,
    how: How,
    stop: watch::Receiver<bool>,
    bar: Arc<progress::Progress>,
    recorder: Arc<metrics::Recorder>,
    ready: Arc<ReadyOnce>,
) -> Result<Option<RunStats>> {
    let options = OpenOptions {
        draining: how.mode != RunMode::Continuous,
        fault_point: how.fault_point,
        fault_freezes: how.fault_freeze,
    };
    let mut pipeline = if how.standby {
        health.standing_by(true);
        ready.one(); // a standby is up: ready for systemd, not for /readyz
        let opened = Pipeline::open_standby(cfg, options, stop.clone()).await?;
        health.standing_by(false);
        match opened {
            Some(p) => p,
            None => {
                tracing::info!("stopped while standing by");
                return Ok(None);
            }
        }
    } else {
        Pipeline::open(cfg, options).await?
    };
    ready.one();
    health.recovered();
    pipeline.observe(bar);
    pipeline.observe(recorder);
    Ok(Some(pipeline.run(how.mode, stop).await?))
}

/// First SIGINT/SIGTERM: finish the batches in flight, then stop. Second: exit at once (the
/// checkpoints and tables stay consistent; recovery finishes the batches on the next start).
/// SIGHUP changes nothing: configs are read at start, so a change takes effect on restart.
async fn watch_signals(stop: watch::Sender<bool>) {
    use tokio::signal::unix::{signal, SignalKind};
    let (mut term, mut hup) = match (
        signal(SignalKind::terminate()),
        signal(SignalKind::hangup()),
    ) {
        (Ok(t), Ok(h)) => (t, h),
        (Err(e), _) | (_, Err(e)) => {
            tracing::warn!(error = %e, "cannot listen for SIGTERM and SIGHUP");
            return;
        }
    };
    let mut n = 0;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
            _ = hup.recv() => {
                tracing::warn!("SIGHUP ignored: inlet reads its configs at start; restart it to apply a change");
                continue;
            }
        }
        if n == 0 {
            tracing::info!("signal received: finishing the current batch, then stopping (signal again to stop at once)");
            let _ = stop.send(true);
        } else {
            tracing::warn!(
                "second signal: stopping now; the next start recovers the batch in flight"
            );
            std::process::exit(130);
        }
        n += 1;
    }
}
