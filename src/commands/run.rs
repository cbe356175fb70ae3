//! `inlet run`: opens each pipeline (one per `--config`, or every `*.toml` of
//! `--config-dir`), runs them in one runtime with one metrics endpoint until done or
//! signalled, and prints each one's summary. One pipeline's failure stops it alone.

use std::sync::Arc;

use anyhow::{bail, Result};

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
    // systemd (Type=notify): the watchdog is fed while every loop turns, so a stuck loop is
    // restarted and an S3 outage is not.
    if let Some(every) = crate::systemd::watchdog_every() {
        let healths = healths.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                if healths.not_live().is_none() {
                    crate::systemd::notify("WATCHDOG=1");
                }
            }
        });
    }
    let bar = Arc::new(progress::Progress::new());
    let single = members.len() == 1;
    let runs = members.into_iter().map(|(cfg, health)| {
        let id = cfg.pipeline_id.clone();
        let table = cfg.table_url.to_string();
        let run = run_one(
            cfg,
            health,
            mode,
            args,
            stop_rx.clone(),
            bar.clone(),
            single,
        );
        async move {
            (
                id.clone(),
                table,
                run.instrument(tracing::info_span!("pipeline", id = %id))
                    .await,
            )
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
            }
        }
    }
    if json {
        out!("{}", serde_json::json!({ "pipelines": entries }))?;
    }
    if !failed.is_empty() {
        bail!(
            "{} of {} pipelines failed: {}; each one's error is above, the others ran to their end",
            failed.len(),
            entries.len(),
            failed.join(", ")
        );
    }
    Ok(())
}

/// Opens and runs one pipeline, reporting to `health`; `Ok(None)` when it was stopped
/// while standing by. An error also marks its health failed (the others go on).
async fn run_one(
    cfg: Config,
    health: Arc<Health>,
    mode: RunMode,
    args: &RunArgs,
    stop: watch::Receiver<bool>,
    bar: Arc<progress::Progress>,
    single: bool,
) -> Result<Option<RunStats>> {
    let id = cfg.pipeline_id.clone();
    // Its metrics exist (at 0) from the start, a pipeline that fails to open included.
    let recorder = Arc::new(metrics::Recorder::new(&id, health.clone()));
    let result = async {
        let options = OpenOptions {
            draining: mode != RunMode::Continuous,
            fault_point: args.fault_point,
            fault_freezes: args.fault_freeze,
        };
        let mut pipeline = if args.standby {
            health.standing_by(true);
            crate::systemd::notify("STATUS=standing by");
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
        if single {
            crate::systemd::notify("READY=1\nSTATUS=ingesting");
        }
        pipeline.observe(bar);
        pipeline.observe(recorder);
        Ok(Some(pipeline.run(mode, stop).await?))
    }
    .await;
    if let Err(e) = &result {
        tracing::error!(error = %crate::one_line(e), "pipeline stopped");
        health.failed(crate::one_line(e));
    }
    result
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
