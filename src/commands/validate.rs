//! `inlet validate`: the config checked against the source, the table and the checkpoint, as
//! a run would check it at start; prints what a run would do (`--json`: as JSON). Writes nothing.

use anyhow::Result;

use super::out;
use crate::cli::ValidateArgs;

pub async fn run(args: &ValidateArgs) -> Result<()> {
    // Several configs are also checked together: ids, checkpoints and queues once each.
    let configs = super::load_configs(&args.configs)?;
    for cfg in configs {
        let validation = inlet_engine::validate(cfg).await?;
        if args.json {
            out!("{}", serde_json::to_string(validation.summary())?)?;
        } else {
            use std::io::Write as _;
            write!(std::io::stdout(), "{validation}")?;
        }
    }
    Ok(())
}
