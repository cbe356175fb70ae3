//! The `inlet` binary: parse the command line, set up logging and signals, dispatch, and
//! turn any error into one line on stderr and a non-zero exit code.

mod bad_records;
mod clean;
mod cli;
mod config;
mod driver;
mod faults;
mod files;
mod observe;
mod pipeline;
mod preflight;
mod progress;
mod rebuild;
mod recovery;
mod redact;
mod retry;
mod schema_cmd;
mod table_cmd;
mod unity;
mod validate;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use tokio::sync::watch;
use tracing_subscriber::EnvFilter;

use crate::cli::{Cli, Command, LogFormat, RunArgs};
use crate::driver::RunMode;

/// Exit code when another run holds the checkpoint (EX_TEMPFAIL: try again later).
const EXIT_LOCKED: u8 = 75;

/// Who holds the checkpoint lock: this host and process, since now.
pub(crate) fn lock_holder() -> inlet_checkpoint::LockHolder {
    inlet_checkpoint::LockHolder {
        host: gethostname::gethostname().to_string_lossy().into_owned(),
        pid: std::process::id(),
        since: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    }
}

fn main() -> ExitCode {
    limit_malloc_arenas();
    // Library errors (delta-kernel's among them) capture a backtrace when RUST_BACKTRACE is
    // set and print it inside their message; an error is one line for the user. Panics keep
    // their backtraces (RUST_BACKTRACE), which this does not touch.
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        std::env::set_var("RUST_LIB_BACKTRACE", "0");
    }
    let cli = Cli::parse();
    init_logging(&cli);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match &cli.command {
            Command::Run(args) => run(args).await,
            Command::Files(args) => files::run(args),
            Command::Validate(args) => validate::run(args).await,
            Command::Schema(args) => schema_cmd::run(args),
            Command::Checkpoint(args) => match &args.what {
                cli::CheckpointCommand::Rebuild(config) => rebuild::run(config).await,
            },
            Command::Table(args) => match &args.what {
                cli::TableCommand::RepairProtocol(config) => {
                    table_cmd::repair_protocol(config).await
                }
            },
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            let locked = e.chain().any(|c| {
                matches!(
                    c.downcast_ref::<inlet_checkpoint::CheckpointError>(),
                    Some(inlet_checkpoint::CheckpointError::Locked { .. })
                )
            });
            ExitCode::from(if locked { EXIT_LOCKED } else { 1 })
        }
    }
}

/// An error as one line: the chain of causes joined with ": ", line breaks and other control
/// characters (a file name with a carriage return) escaped, so one error is one line.
fn one_line(e: &anyhow::Error) -> String {
    // A cause whose text its parent's message already holds is said once.
    let mut text = String::new();
    for cause in e.chain() {
        let part = cause.to_string();
        if !text.contains(&part) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&part);
        }
    }
    let mut out = String::new();
    for c in text.chars() {
        match c {
            '\n' => out.push(' '),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&c.escape_default().to_string()),
            c => out.push(c),
        }
    }
    out
}

fn init_logging(cli: &Cli) {
    // On a terminal the progress bar and summary speak; logs are for files and pipes.
    // Other crates speak at warn. delta-kernel logs an ERROR for every table it cannot load,
    // including "not created yet"; its real failures reach us as errors, reported once.
    // delta-rs's MERGE warns on every run that scans all files that a scan metric is missing
    // and derives it; its MERGE errors still reach us.
    let ours = |level: &str| {
        format!(
            "warn,buoyant_kernel=off,deltalake_core::operations::merge=error,inlet={level},inlet_checkpoint={level},inlet_delta={level},inlet_discover={level},inlet_format={level},inlet_schema={level}"
        )
    };
    let level = if std::io::stderr().is_terminal() {
        "warn"
    } else {
        "info"
    };
    let filter = match std::env::var("INLET_LOG") {
        // A bare level ("debug") applies to inlet's own crates; a full directive is used as is.
        Ok(v) if !v.contains('=') && !v.contains(',') => EnvFilter::new(ours(&v)),
        Ok(v) => EnvFilter::new(v),
        Err(_) => EnvFilter::new(ours(level)),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn run(args: &RunArgs) -> anyhow::Result<()> {
    let cfg = config::Config::load(&args.config.config)?;
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
    if let Some(addr) = args.metrics_addr {
        observe::serve(addr, &pipeline_id).await?;
    }
    let pipeline = pipeline::start(
        cfg,
        faults::Faults::new(args.fault_point),
        mode != RunMode::Continuous,
    )
    .await?;
    let stats = pipeline.run(mode, stop_rx).await?;
    if args.json {
        println!("{}", serde_json::to_string(&stats)?);
    } else {
        println!("{}", progress::summary(&pipeline_id, &table, &stats));
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

/// glibc gives each thread that contends for the heap its own arena (up to 8 per core) and
/// rarely returns their free memory: decode threads handing batches to the writer made
/// about 40% of a bulk run's peak RSS. Two arenas cost no measurable speed
/// (benches/README.md). glibc reads the limit only at start, and setting it in-process
/// (`mallopt`) needs unsafe code, so the process re-executes itself once with
/// `MALLOC_ARENA_MAX=2` (same pid, same arguments); a value already set is left alone.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        use std::os::unix::process::CommandExt;
        let mut args = std::env::args_os();
        if let (Ok(exe), Some(arg0)) = (std::env::current_exe(), args.next()) {
            // Returns only when exec failed: go on with glibc's defaults.
            let _failed = std::process::Command::new(exe)
                .arg0(arg0)
                .args(args)
                .env("MALLOC_ARENA_MAX", "2")
                .exec();
        }
    }
}
