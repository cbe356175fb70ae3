//! The inlet engine: a pipeline opened from a config takes a landing zone's files into a Delta
//! table exactly once, in a mode, until told to stop, reporting what happens as typed events.
//!
//! The binary (`inlet`) is one front door: it parses the command line, attaches a progress
//! bar and a metrics observer, and prints the summary. Another program embeds the same way:
//!
//! ```no_run
//! use std::sync::{Arc, Mutex};
//! use inlet_engine::{Config, Event, Observer, OpenOptions, Pipeline, RunMode};
//!
//! struct Log(Mutex<Vec<Event>>);
//! impl Observer for Log {
//!     fn event(&self, event: &Event) {
//!         self.0.lock().unwrap_or_else(|e| e.into_inner()).push(event.clone());
//!     }
//! }
//!
//! # async fn example() -> Result<(), inlet_engine::EngineError> {
//! let config = Config::parse(
//!     std::path::Path::new("/data/pipelines/orders.toml"),
//!     "pipeline_id = \"orders\"\n[source]\nurl = \"landing\"\n[sink]\ntable = \"table\"\n\
//!      [checkpoint]\nlocation = \"state\"\n",
//!     &|name| std::env::var(name).ok(),
//! )?;
//! let mut pipeline = Pipeline::open(config, OpenOptions { draining: true, ..Default::default() }).await?;
//! let log = Arc::new(Log(Mutex::new(Vec::new())));
//! pipeline.observe(log.clone());
//! let (_stop, stopped) = tokio::sync::watch::channel(false);
//! let stats = pipeline.run(RunMode::AvailableNow, stopped).await?;
//! println!("{} rows in {} batches", stats.rows, stats.batches);
//! # Ok(())
//! # }
//! ```

mod bad_records;
mod batch;
mod catalog;
pub mod config;
mod error;
mod events;
mod exports;
mod faults;
mod maintain;
mod pipeline;
mod preflight;
mod rebuild;
mod recovery;
mod redact;
mod remote;
mod retry;
mod run;
mod source_clean;
mod stats;
mod table;
mod upkeep;
mod validate;

pub use config::{Config, ConfigError};
pub use error::{EngineError, Result};
pub use events::{BatchCommitted, Event, Maintenance, Observer};
pub use faults::FaultPoint;
pub use pipeline::{OpenOptions, Pipeline};
pub use rebuild::{rebuild_checkpoint, Rebuilt};
pub use remote::{read_checkpoint, CheckpointRead};
pub use run::{until_true, RunMode};
pub use stats::RunStats;
pub use table::{describe, optimize, repair_protocol, set_properties, vacuum, OptimizeRequest};
pub use validate::{validate, Validation};

/// Who holds a checkpoint this process locks: this host and process, since now.
pub fn lock_holder() -> inlet_checkpoint::LockHolder {
    inlet_checkpoint::LockHolder {
        host: gethostname::gethostname().to_string_lossy().into_owned(),
        pid: std::process::id(),
        since: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    }
}
