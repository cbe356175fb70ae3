//! The `inlet` binary: parse the command line, set up logging and signals, dispatch, and
//! turn any error into one line on stderr and a non-zero exit code.

mod cli;
mod commands;
mod metrics;
mod progress;
mod systemd;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use crate::cli::{Cli, Command, LogFormat};

/// Exit code when another run holds the checkpoint (EX_TEMPFAIL: try again later).
const EXIT_LOCKED: u8 = 75;

/// jemalloc, as polars and most Rust data tools use: with glibc's malloc, allocation was
/// ~20% of the CPU of a run of many small files (benches/README.md, W2).
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    tune_allocator();
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
            Command::Run(args) => commands::run::run(args).await,
            Command::Files(args) => commands::files::run(args).await,
            Command::Validate(args) => commands::validate::run(args).await,
            Command::Schema(args) => commands::schema::run(args).await,
            Command::Checkpoint(args) => match &args.what {
                cli::CheckpointCommand::Rebuild(config) => {
                    commands::checkpoint::rebuild(config).await
                }
            },
            Command::Setup(args) => match &args.what {
                cli::SetupCommand::Notifications(a) => commands::notifications::setup(a).await,
            },
            Command::Teardown(args) => match &args.what {
                cli::TeardownCommand::Notifications(a) => {
                    commands::notifications::teardown(a).await
                }
            },
            Command::Completions { shell } => {
                let mut cmd = <Cli as clap::CommandFactory>::command();
                clap_complete::generate(*shell, &mut cmd, "inlet", &mut std::io::stdout());
                Ok(())
            }
            Command::Man => {
                let cmd = <Cli as clap::CommandFactory>::command();
                clap_mangen::Man::new(cmd)
                    .render(&mut std::io::stdout())
                    .map_err(anyhow::Error::from)
            }
            Command::Table(args) => match &args.what {
                cli::TableCommand::RepairProtocol(config) => {
                    commands::table::repair_protocol(config).await
                }
                cli::TableCommand::Optimize(a) => commands::table::optimize(a).await,
                cli::TableCommand::Vacuum(a) => commands::table::vacuum(a).await,
                cli::TableCommand::Describe(a) => commands::table::describe(a).await,
                cli::TableCommand::SetProperties(a) => commands::table::set_properties(a).await,
            },
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // The reader of our output went away (`inlet files | head -1`): done, as `ls` and
        // `git` are, not an error.
        Err(e) if output_closed(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::from(if is_locked(&e) { EXIT_LOCKED } else { 1 })
        }
    }
}

/// Colours on stderr: only on a terminal, and never when `NO_COLOR` is set and not empty
/// (no-color.org).
fn colour() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Whether `e` is a write to a pipe whose reader closed it.
fn output_closed(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .map(std::io::Error::kind)
            .or_else(|| {
                c.downcast_ref::<serde_json::Error>()
                    .and_then(serde_json::Error::io_error_kind)
            })
            == Some(std::io::ErrorKind::BrokenPipe)
    })
}

/// An error as one line: the chain of causes joined with ": ", line breaks and other control
/// characters (a file name with a carriage return) escaped, so one error is one line.
/// Whether an error is a checkpoint held by another runner: a lock, or an S3 lease held or
/// lost (exit code 75; `run` also reopens such a pipeline after a pause).
fn is_locked(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        matches!(
            c.downcast_ref::<inlet_checkpoint::CheckpointError>(),
            Some(inlet_checkpoint::CheckpointError::Locked { .. })
        ) || c
            .downcast_ref::<inlet_engine::EngineError>()
            .is_some_and(inlet_engine::EngineError::is_locked)
    })
}

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
    // -q / -v on the command line, then INLET_LOG, then the default.
    let asked = match (cli.quiet, cli.verbose) {
        (true, _) => Some("error"),
        (false, 0) => None,
        (false, 1) => Some("info"),
        (false, 2) => Some("debug"),
        _ => Some("trace"),
    };
    let level = if std::io::stderr().is_terminal() {
        "warn"
    } else {
        "info"
    };
    let chosen = asked
        .map(str::to_string)
        .or_else(|| std::env::var("INLET_LOG").ok());
    let filter = match chosen {
        // A bare level ("debug") applies to inlet's own crates; a full directive is used as is.
        Some(v) if !v.contains('=') && !v.contains(',') => EnvFilter::new(ours(&v)),
        Some(v) => EnvFilter::new(v),
        None => EnvFilter::new(ours(level)),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => builder.with_ansi(colour()).init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Environment read by jemalloc at start (prefixed, as the crate builds it).
#[cfg(all(target_os = "linux", not(target_env = "msvc")))]
const JEMALLOC_CONF: &str = "_RJEM_MALLOC_CONF";

/// jemalloc returns freed memory to the system only after `dirty_decay_ms` (10 s by
/// default), which let a bulk run's freed buffers pile up; a background thread returning it
/// after 300 ms keeps W1's peak RSS under half the Python ingester's. Allocations over 8 MiB
/// stay in jemalloc's "huge" arena, which returns them at once: keeping them
/// (`oversize_threshold:0`) saved W1 ~5% of page faults but took a start-up that reads a
/// large Delta commit from 170 to 250 MiB (benches/README.md, W2 and W3). jemalloc reads its
/// options only at start, and setting them in-process needs unsafe code, so the process
/// re-executes itself once with them (same pid, same arguments); options already set are
/// left alone.
fn tune_allocator() {
    #[cfg(all(target_os = "linux", not(target_env = "msvc")))]
    if std::env::var_os(JEMALLOC_CONF).is_none() {
        use std::os::unix::process::CommandExt;
        let mut args = std::env::args_os();
        if let (Ok(exe), Some(arg0)) = (std::env::current_exe(), args.next()) {
            let mut command = std::process::Command::new(exe);
            command.arg0(arg0).args(args).env(
                JEMALLOC_CONF,
                "background_thread:true,dirty_decay_ms:300,muzzy_decay_ms:0",
            );
            // The C libraries (SQLite, zstd, xz) still allocate through glibc: two arenas, not
            // one per thread that contends (8 per core).
            if cfg!(target_env = "gnu") && std::env::var_os("MALLOC_ARENA_MAX").is_none() {
                command.env("MALLOC_ARENA_MAX", "2");
            }
            // Returns only when exec failed: go on with jemalloc's defaults.
            let _failed = command.exec();
        }
    }
}
