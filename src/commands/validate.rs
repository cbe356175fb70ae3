//! `inlet validate`: the config checked against the source, the table and the checkpoint, as
//! a run would check it at start; prints what a run would do. Writes nothing.

use anyhow::Result;
use inlet_engine::Config;

use crate::cli::ConfigArg;

pub async fn run(args: &ConfigArg) -> Result<()> {
    let cfg = Config::load(&args.config)?;
    {
        use std::io::Write as _;
        write!(std::io::stdout(), "{}", inlet_engine::validate(cfg).await?)?;
    }
    Ok(())
}
