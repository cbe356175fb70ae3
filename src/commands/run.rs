//! `inlet run`: opens the pipeline, attaches the progress bar and the metrics observer,
//! runs it in the mode the flags ask for until done or signalled, and prints the summary.

use std::sync::Arc;

use anyhow::Result;

use super::out;
use inlet_engine::{Config, OpenOptions, Pipeline, RunMode};
use tokio::sync::watch;

use crate::cli::RunArgs;
use crate::{metrics, progress};

pub async fn run(args: &RunArgs) -> Result<()> {
    let cfg = Config::load(&args.config.config)?;
    let mode = if args.once {
        RunMode::Once
    } else if args.available_now {
        RunMode::AvailableNow
    } else {
        RunMode::Continuous
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(watch_signals(stop_tx));
    let pipeline_id = cfg.pipeline_id.clone();
    let table = cfg.table_url.to_string();
    let health = Arc::new(metrics::Health::new(std::time::Duration::from_secs(
        cfg.trigger.interval_seconds,
    )));
    if let Some(addr) = args.metrics_addr {
        metrics::serve(addr, &pipeline_id, health.clone()).await?;
    }
    let options = OpenOptions {
        draining: mode != RunMode::Continuous,
        fault_point: args.fault_point,
        fault_freezes: args.fault_freeze,
    };
    let mut pipeline = if args.standby {
        crate::systemd::notify("STATUS=standing by");
        match Pipeline::open_standby(cfg, options, stop_rx.clone()).await? {
            Some(p) => p,
            None => {
                tracing::info!("stopped while standing by");
                return Ok(());
            }
        }
    } else {
        Pipeline::open(cfg, options).await?
    };
    // systemd (Type=notify): ready once the pipeline is open; the watchdog fed while the
    // loop turns, so a stuck loop is restarted and an S3 outage is not.
    crate::systemd::notify("READY=1\nSTATUS=ingesting");
    if let Some(every) = crate::systemd::watchdog_every() {
        let health = health.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                if health.not_live().is_none() {
                    crate::systemd::notify("WATCHDOG=1");
                }
            }
        });
    }
    let bar = Arc::new(progress::Progress::new());
    pipeline.observe(bar.clone());
    pipeline.observe(Arc::new(metrics::Recorder::new(health)));
    let stats = pipeline.run(mode, stop_rx).await;
    crate::systemd::notify("STOPPING=1");
    bar.finish();
    let stats = stats?;
    if args.json {
        out!("{}", serde_json::to_string(&stats)?)?;
    } else {
        out!("{}", progress::summary(&pipeline_id, &table, &stats))?;
    }
    Ok(())
}

/// First SIGINT/SIGTERM: finish the batch in flight, then stop. Second: exit at once (the
/// checkpoint and table stay consistent; recovery finishes the batch on the next start).
async fn watch_signals(stop: watch::Sender<bool>) {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGTERM");
            return;
        }
    };
    for n in 0.. {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
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
    }
}
