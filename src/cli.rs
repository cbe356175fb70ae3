//! The command line: `run`, `files`, `validate`, `schema`, `checkpoint`, `table`, `setup`,
//! `teardown` and their flags (clap derive).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use inlet_engine::FaultPoint;

/// Shown under every `--help` (a macro, so `concat!` can join it to each example).
macro_rules! exit_codes {
    () => {
        "\
Exit codes:
  0    success (also a run stopped by one SIGINT/SIGTERM after its batch, and a command
       whose output pipe was closed)
  1    error: one line on stderr names what is at fault and what to do
  2    usage error (unknown flag, missing argument)
  75   another run holds the pipeline's checkpoint (EX_TEMPFAIL): try again later
  130  stopped at once by a second SIGINT/SIGTERM; the next start recovers the batch

Environment: INLET_CONFIG (default for --config), INLET_LOG (log filter, e.g. debug),
NO_COLOR (no colours), AWS_* (credentials and region)."
    };
}

#[derive(Debug, Parser)]
#[command(
    name = "inlet",
    version,
    about = "Incremental file ingester: landing zone (local or S3) -> Delta Lake, exactly once",
    after_help = exit_codes!()
)]
pub struct Cli {
    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
    /// More log lines on stderr (-v info, -vv debug, -vvv trace), over INLET_LOG.
    #[arg(long, short = 'v', action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Errors only on stderr, over INLET_LOG.
    #[arg(long, short = 'q', global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct ConfigArg {
    /// Pipeline config (TOML).
    #[arg(long, short = 'c', env = "INLET_CONFIG")]
    pub config: PathBuf,
}

/// One pipeline config or several, for the commands that take many (`run`, `validate`).
#[derive(Debug, Args)]
pub struct ConfigsArg {
    /// Pipeline config (TOML). Repeat it for several pipelines in one process: one
    /// runtime, one metrics endpoint, each with its own checkpoint, lock and retries.
    #[arg(long, short = 'c', env = "INLET_CONFIG", value_name = "FILE")]
    pub config: Vec<PathBuf>,
    /// Every `*.toml` in this directory is a pipeline (read at start: a change takes
    /// effect on restart).
    #[arg(long, value_name = "DIR")]
    pub config_dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Ingest new files into the table (continuous unless --available-now or --once).
    #[command(
        after_help = concat!("Examples:\n  inlet run -c pipeline.toml --available-now\n  inlet run -c pipeline.toml --metrics-addr 0.0.0.0:9090", "\n\n", exit_codes!())
    )]
    Run(RunArgs),
    /// Show the file log of the checkpoint, one row per file.
    #[command(
        after_help = concat!("Examples:\n  inlet files -c pipeline.toml --state failed\n  inlet files -c pipeline.toml --json | head -1", "\n\n", exit_codes!())
    )]
    Files(FilesArgs),
    /// Check the config, the source and the table, and print what would run.
    #[command(after_help = concat!("Example:\n  inlet validate -c pipeline.toml", "\n\n", exit_codes!()))]
    Validate(ValidateArgs),
    /// Show the schema store: the current schema, its history, or the change between two
    /// versions.
    #[command(
        after_help = concat!("Examples:\n  inlet schema -c pipeline.toml show\n  inlet schema -c pipeline.toml history", "\n\n", exit_codes!())
    )]
    Schema(SchemaArgs),
    /// Manage the checkpoint itself.
    #[command(after_help = concat!("Example:\n  inlet checkpoint rebuild -c pipeline.toml", "\n\n", exit_codes!()))]
    Checkpoint(CheckpointArgs),
    /// Look after the Delta table itself.
    #[command(
        after_help = concat!("Examples:\n  inlet table describe -c pipeline.toml\n  inlet table optimize -c pipeline.toml --zorder-by tenant\n  inlet table vacuum -c pipeline.toml --dry-run", "\n\n", exit_codes!())
    )]
    Table(TableArgs),
    /// Create or adopt what `discovery = "notifications"` needs on AWS: the SQS queue, its
    /// dead-letter queue and policies, and the bucket's notification. Idempotent.
    #[command(
        after_help = concat!("Examples:\n  inlet setup notifications -c pipeline.toml --dry-run\n  inlet setup notifications -c pipeline.toml --write-config", "\n\n", exit_codes!())
    )]
    Setup(SetupArgs),
    /// Remove what `inlet setup` added: the bucket's notification entry, and with
    /// --delete-queues the queues.
    #[command(
        after_help = concat!("Example:\n  inlet teardown notifications -c pipeline.toml --delete-queues", "\n\n", exit_codes!())
    )]
    Teardown(TeardownArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) on stdout.
    #[command(after_help = concat!("Example:\n  inlet completions bash > /etc/bash_completion.d/inlet", "\n\n", exit_codes!()))]
    Completions { shell: clap_complete::Shell },
    /// Print the man page (roff) on stdout.
    #[command(after_help = concat!("Example:\n  inlet man | man -l -", "\n\n", exit_codes!()))]
    Man,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    #[command(flatten)]
    pub configs: ConfigsArg,
    /// Print the result as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct TableArgs {
    #[command(subcommand)]
    pub what: TableCommand,
}

#[derive(Debug, Subcommand)]
pub enum TableCommand {
    /// Add the table features the table's schema or properties need and its protocol lacks
    /// (a table an inlet before 0.2 left unreadable), in one new commit; no data changes.
    RepairProtocol(ConfigArg),
    /// Bin-pack small files into `sink.target_file_size` files (or Z-order them), in a
    /// commit that changes no data. Takes the runner lock.
    Optimize(OptimizeArgs),
    /// Delete data files no version within retention needs (replaced by MERGE and
    /// compaction, or left by crashed writers), once older than the table's
    /// delta.deletedFileRetentionDuration (7 days unless set). Takes the runner lock.
    Vacuum(VacuumArgs),
    /// Version, protocol, properties, files and small files, Delta checkpoint and log size,
    /// last compaction and VACUUM, and the checkpoint's size. Needs no lock.
    Describe(DescribeArgs),
    /// Set table properties (KEY=VALUE ..., or the config's [sink] properties when none are
    /// given) in one commit, with the protocol upgrade they need. Takes the runner lock.
    SetProperties(SetPropertiesArgs),
}

#[derive(Debug, Args)]
pub struct OptimizeArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Z-order by these columns (comma-separated) instead of bin-packing.
    #[arg(long, value_delimiter = ',', value_name = "COLS")]
    pub zorder_by: Vec<String>,
    /// Only this partition: `column=value` (repeat, or comma-separate, for several columns).
    #[arg(long, value_delimiter = ',', value_name = "K=V", value_parser = key_value)]
    pub partition: Vec<(String, String)>,
    /// Print the outcome as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Test-only: kill this process with SIGKILL at a step of the compaction.
    #[arg(long, hide = true, value_parser = |s: &str| s.parse::<FaultPoint>())]
    pub fault_point: Option<FaultPoint>,
}

#[derive(Debug, Args)]
pub struct VacuumArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Keep files removed more recently than this (e.g. "7d", "240h"); at least the table's
    /// delta.deletedFileRetentionDuration, which is the default.
    #[arg(long, value_name = "DURATION", value_parser = |s: &str| humantime::parse_duration(s).map_err(|e| format!("'{s}' is not a duration ({e}); write e.g. \"7d\" or \"168h\"")))]
    pub retain: Option<std::time::Duration>,
    /// List what would be deleted; delete nothing (takes no lock).
    #[arg(long)]
    pub dry_run: bool,
    /// Print the outcome as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Test-only: kill this process with SIGKILL at a step of the VACUUM.
    #[arg(long, hide = true, value_parser = |s: &str| s.parse::<FaultPoint>())]
    pub fault_point: Option<FaultPoint>,
}

#[derive(Debug, Args)]
pub struct DescribeArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Print JSON on stdout instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct SetPropertiesArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Properties to set, as KEY=VALUE; none: the config's [sink] properties.
    #[arg(value_name = "KEY=VALUE", value_parser = key_value)]
    pub properties: Vec<(String, String)>,
}

/// `key=value`, split at the first `=`.
fn key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.trim().to_string())),
        _ => Err(format!("'{s}' is not KEY=VALUE")),
    }
}

#[derive(Debug, Args)]
pub struct SetupArgs {
    #[command(subcommand)]
    pub what: SetupCommand,
}

#[derive(Debug, Subcommand)]
pub enum SetupCommand {
    /// The queue `inlet-<pipeline_id>` (or --queue-name, or the config's queue_url), a
    /// dead-letter queue `<queue>-dlq` with a redrive policy, a queue policy letting the
    /// sender in, and an s3:ObjectCreated:* entry for the source prefix and the path_glob's
    /// suffix, merged into the bucket's other entries. Prints the queue_url.
    #[command(
        after_help = concat!("Examples:\n  inlet setup notifications -c pipeline.toml --dry-run\n  inlet setup notifications -c pipeline.toml --write-config\n  inlet setup notifications -c pipeline.toml --via sns --topic-arn arn:aws:sns:eu-west-1:123456789012:landing", "\n\n", exit_codes!())
    )]
    Notifications(SetupNotificationsArgs),
}

#[derive(Debug, Args)]
pub struct NotificationTarget {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Print each AWS call that would change something, and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// The queue's name (default: the config's queue_url, else inlet-<pipeline_id>).
    #[arg(long)]
    pub queue_name: Option<String>,
    /// SQS endpoint (default: the config's queue_endpoint, or a loopback aws_endpoint of
    /// the source, as LocalStack and moto serve S3 and SQS on one port).
    #[arg(long)]
    pub sqs_endpoint: Option<String>,
}

#[derive(Debug, Args)]
pub struct SetupNotificationsArgs {
    #[command(flatten)]
    pub target: NotificationTarget,
    /// Who sends events to the queue: the bucket itself, an SNS topic it notifies
    /// (--topic-arn), or EventBridge (--rule-arn).
    #[arg(long, value_enum, default_value_t = ViaArg::Bucket)]
    pub via: ViaArg,
    /// With --via sns: the topic the bucket notifies.
    #[arg(long, required_if_eq("via", "sns"))]
    pub topic_arn: Option<String>,
    /// With --via eventbridge: the rule that targets the queue.
    #[arg(long, required_if_eq("via", "eventbridge"))]
    pub rule_arn: Option<String>,
    /// Receives before a message moves to the dead-letter queue (1–1000).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub max_receive_count: u32,
    /// Write discovery = "notifications" and the queue_url into the config file.
    #[arg(long)]
    pub write_config: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ViaArg {
    Bucket,
    Sns,
    Eventbridge,
}

#[derive(Debug, Args)]
pub struct TeardownArgs {
    #[command(subcommand)]
    pub what: TeardownCommand,
}

#[derive(Debug, Subcommand)]
pub enum TeardownCommand {
    /// Remove the bucket's notification entry `inlet-<pipeline_id>`, keeping the others;
    /// the queues are kept unless --delete-queues.
    #[command(
        after_help = concat!("Examples:\n  inlet teardown notifications -c pipeline.toml --dry-run\n  inlet teardown notifications -c pipeline.toml --delete-queues", "\n\n", exit_codes!())
    )]
    Notifications(TeardownNotificationsArgs),
}

#[derive(Debug, Args)]
pub struct TeardownNotificationsArgs {
    #[command(flatten)]
    pub target: NotificationTarget,
    /// Delete the queue and its dead-letter queue too, with any messages on them.
    #[arg(long)]
    pub delete_queues: bool,
}

#[derive(Debug, Args)]
pub struct CheckpointArgs {
    #[command(subcommand)]
    pub what: CheckpointCommand,
}

#[derive(Debug, Subcommand)]
pub enum CheckpointCommand {
    /// Rebuild a lost or damaged checkpoint from the Delta table's history: every inlet
    /// commit lists its batch's source files. The old checkpoint file is kept beside it.
    Rebuild(ConfigArg),
}

#[derive(Debug, Args)]
pub struct SchemaArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Print JSON on stdout instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub what: SchemaCommand,
}

#[derive(Debug, Subcommand)]
pub enum SchemaCommand {
    /// The current schema as a tree and as DDL.
    Show,
    /// Every version: when, which batch and file caused it, and what changed.
    History,
    /// What changed from version A to version B.
    Diff { a: i64, b: i64 },
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub configs: ConfigsArg,
    /// Take everything present at start in bounded batches, then exit 0.
    #[arg(long, conflicts_with = "once")]
    pub available_now: bool,
    /// Take one batch, then exit 0.
    #[arg(long)]
    pub once: bool,
    /// Print the end-of-run summary as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Serve Prometheus metrics on /metrics and a health check on /healthz at this
    /// address, e.g. 127.0.0.1:9090 (port 0: any free port, logged).
    #[arg(long, value_name = "ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// With a checkpoint in S3 held by another runner: wait, and take over when its lease
    /// lapses (instead of exiting 75). A standby is live but not ready.
    #[arg(long)]
    pub standby: bool,
    /// Test-only: kill this process with SIGKILL at a step of the batch protocol.
    #[arg(long, hide = true, value_parser = |s: &str| s.parse::<FaultPoint>())]
    pub fault_point: Option<FaultPoint>,
    /// Test-only: stop this process with SIGSTOP at the fault point instead.
    #[arg(long, hide = true, requires = "fault_point")]
    pub fault_freeze: bool,
}

#[derive(Debug, Args)]
pub struct FilesArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Only files in this state.
    #[arg(long, value_enum)]
    pub state: Option<StateArg>,
    /// Forget a failed or skipped file (full URL as listed, or a path under the source) so
    /// that the next run takes it again, after it was fixed in place.
    #[arg(long, value_name = "PATH", conflicts_with = "state")]
    pub retry: Option<String>,
    /// One JSON array on stdout instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum StateArg {
    Pending,
    Committed,
    Failed,
    Skipped,
}

impl From<StateArg> for inlet_checkpoint::FileState {
    fn from(s: StateArg) -> Self {
        match s {
            StateArg::Pending => Self::Pending,
            StateArg::Committed => Self::Committed,
            StateArg::Failed => Self::Failed,
            StateArg::Skipped => Self::Skipped,
        }
    }
}
