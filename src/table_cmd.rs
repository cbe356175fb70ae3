//! `inlet table`: commands on the Delta table itself. `repair-protocol` adds the table
//! features a table's schema needs and its protocol lacks.

use anyhow::Result;
use inlet_delta::RepairOutcome;

use crate::cli::ConfigArg;
use crate::config::Config;

/// Repairs the protocol of the config's table. It takes the runner lock, so no run of this
/// pipeline commits meanwhile (other writers are kept out by the conditional commit).
pub async fn repair_protocol(args: &ConfigArg) -> Result<()> {
    let mut cfg = Config::load(&args.config)?;
    crate::unity::Catalog::resolve(&mut cfg).await?;
    std::fs::create_dir_all(&cfg.checkpoint_dir)?;
    let _lock = inlet_checkpoint::RunnerLock::acquire(&cfg.checkpoint_dir, crate::lock_holder())?;
    match inlet_delta::repair_protocol(&cfg.table_url, &cfg.sink_options()).await? {
        RepairOutcome::Healthy { version } => println!(
            "Delta table {} (version {version}): its protocol already declares every feature its schema and properties need; nothing to do.",
            cfg.table_url
        ),
        RepairOutcome::Upgraded {
            version,
            protocol,
            added,
        } => {
            println!(
                "Delta table {}: version {version} upgrades the protocol to {protocol}.",
                cfg.table_url
            );
            for f in added {
                println!("  added '{}': {}", f.name, f.why);
            }
            println!("Readers that support these features read the table again; `inlet run` goes on from where it stopped.");
        }
    }
    Ok(())
}
