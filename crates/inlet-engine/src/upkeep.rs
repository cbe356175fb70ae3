//! What table maintenance remembers between batches of a run (`maintain.rs` does the work):
//! the version last looked at, failures already warned about, a compaction in flight.

use inlet_delta::maintenance::CompactOutcome;
use inlet_delta::SinkError;
use tokio::task::JoinHandle;

/// Table maintenance's memory during a run.
#[derive(Debug, Default)]
pub(crate) struct Upkeep {
    /// The table version the log upkeep last looked at.
    pub(crate) seen_version: Option<i64>,
    /// Failures already warned about (the first of a kind warns; later ones are debug).
    pub(crate) warned: std::collections::HashSet<&'static str>,
    /// When this run last cleaned expired log objects (successfully).
    pub(crate) log_cleaned_at: Option<std::time::Instant>,
    /// An append table's compaction, running beside the batches.
    pub(crate) compacting: Option<JoinHandle<Result<CompactOutcome, SinkError>>>,
}
