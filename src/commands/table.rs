//! `inlet table repair-protocol`: declares the table features a table's schema needs and its
//! protocol lacks, in one commit, and says what it added.

use anyhow::Result;
use inlet_delta::RepairOutcome;
use inlet_engine::Config;

use crate::cli::ConfigArg;

pub async fn repair_protocol(args: &ConfigArg) -> Result<()> {
    let cfg = Config::load(&args.config)?;
    let (cfg, outcome) = inlet_engine::repair_protocol(cfg).await?;
    match outcome {
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
