//! One module per subcommand: each turns its arguments into engine calls (or checkpoint
//! reads) and prints the outcome; errors go back to `main` to become one line.

pub mod checkpoint;
pub mod files;
pub mod notifications;
pub mod run;
pub mod schema;
pub mod table;
pub mod validate;

/// `println!` that returns the write's error instead of panicking: a closed output pipe
/// (`inlet files | head -1`) ends the command quietly (see `main`).
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout(), $($arg)*)
    }};
}
pub(crate) use out;

/// The configs `--config` (repeatable) and `--config-dir` name, loaded and checked: at least
/// one, each pipeline id and checkpoint once.
pub(crate) fn load_configs(
    args: &crate::cli::ConfigsArg,
) -> anyhow::Result<Vec<inlet_engine::Config>> {
    use anyhow::{bail, Context};
    use inlet_engine::Config;
    use std::path::PathBuf;
    let mut paths: Vec<PathBuf> = args.config.clone();
    if let Some(dir) = &args.config_dir {
        let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
            .with_context(|| format!("--config-dir {}: cannot read it", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.is_file())
            .collect();
        found.sort();
        if found.is_empty() {
            bail!(
                "--config-dir {}: no *.toml pipeline config in it",
                dir.display()
            );
        }
        paths.extend(found);
    }
    // The same file named twice (INLET_CONFIG and a --config-dir holding it) runs once.
    let mut unique: Vec<PathBuf> = Vec::with_capacity(paths.len());
    for p in paths {
        let canonical = std::fs::canonicalize(&p).unwrap_or_else(|_| p.clone());
        if !unique
            .iter()
            .any(|u| std::fs::canonicalize(u).unwrap_or_else(|_| u.clone()) == canonical)
        {
            unique.push(p);
        }
    }
    let paths = unique;
    if paths.is_empty() {
        bail!("give a pipeline config: --config FILE (repeatable) or --config-dir DIR");
    }
    let mut configs: Vec<Config> = Vec::with_capacity(paths.len());
    for path in &paths {
        let cfg = Config::load(path)?;
        if let Some(other) = configs.iter().find(|c| c.pipeline_id == cfg.pipeline_id) {
            bail!(
                "{} and {} both name pipeline_id '{}': each pipeline needs its own id (it is the table's txn appId)",
                other.path.display(),
                path.display(),
                cfg.pipeline_id
            );
        }
        if let Some(other) = configs
            .iter()
            .find(|c| c.checkpoint_name() == cfg.checkpoint_name())
        {
            bail!(
                "{} and {} share checkpoint {}: each pipeline needs its own",
                other.path.display(),
                path.display(),
                cfg.checkpoint_name()
            );
        }
        // One queue read by two pipelines cannot be exactly once: a message one of them
        // received and did not delete in time goes to the other, whose checkpoint has never
        // seen the file (docs/scaling.md, "Sharding").
        let queue = |c: &Config| c.notification_options().map(|n| n.queue_url);
        if let Some(other) = configs
            .iter()
            .find(|c| queue(c).is_some() && queue(c) == queue(&cfg))
        {
            bail!(
                "{} and {} read the same SQS queue {}: two pipelines on one queue would take a file twice when a \
                 message returns to the other after its visibility timeout; give each pipeline its own queue \
                 (one bucket notification per prefix, or an SNS topic fanning out to a queue each)",
                other.path.display(),
                path.display(),
                queue(&cfg).unwrap_or_default()
            );
        }
        configs.push(cfg);
    }
    Ok(configs)
}
