//! Keeping a table healthy: small-file statistics and compaction, VACUUM, Delta checkpoints
//! and expired-log clean-up, table properties and a description of the table's state.

mod compact;
mod describe;
mod logs;
mod vacuum;

use std::sync::Arc;

pub use compact::{CompactOptions, CompactOutcome, FileStats, PartitionStats, PartitionValues};
pub use describe::TableDescription;
pub use logs::{CleanupOutcome, DEFAULT_CHECKPOINT_INTERVAL};
pub use vacuum::{VacuumOptions, VacuumOutcome};

/// A step of a maintenance operation, for test fault points and progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaintenanceStep {
    /// Compaction planned, nothing written yet.
    CompactStart,
    /// The compaction's commit landed (before its post-commit work).
    CompactCommitted,
    /// VACUUM's start commit landed, nothing deleted yet.
    VacuumStarted,
    /// VACUUM deleted its files and its end commit landed.
    VacuumDone,
}

/// Called at each [`MaintenanceStep`] of an operation.
pub type StepHook = Arc<dyn Fn(MaintenanceStep) + Send + Sync>;

/// Runs `hook` at delta-rs's execution points of one operation (`start` before anything is
/// written, `committed` when the first commit has landed, `done` at the end).
struct Steps {
    hook: StepHook,
    start: Option<MaintenanceStep>,
    committed: Option<MaintenanceStep>,
    done: Option<MaintenanceStep>,
}

#[async_trait::async_trait]
impl deltalake::operations::CustomExecuteHandler for Steps {
    async fn pre_execute(
        &self,
        _: &deltalake::logstore::LogStoreRef,
        _: uuid::Uuid,
    ) -> deltalake::DeltaResult<()> {
        if let Some(s) = self.start {
            (self.hook)(s);
        }
        Ok(())
    }

    async fn post_execute(
        &self,
        _: &deltalake::logstore::LogStoreRef,
        _: uuid::Uuid,
    ) -> deltalake::DeltaResult<()> {
        if let Some(s) = self.done {
            (self.hook)(s);
        }
        Ok(())
    }

    async fn before_post_commit_hook(
        &self,
        _: &deltalake::logstore::LogStoreRef,
        _: bool,
        _: uuid::Uuid,
    ) -> deltalake::DeltaResult<()> {
        if let Some(s) = self.committed {
            (self.hook)(s);
        }
        Ok(())
    }

    async fn after_post_commit_hook(
        &self,
        _: &deltalake::logstore::LogStoreRef,
        _: bool,
        _: uuid::Uuid,
    ) -> deltalake::DeltaResult<()> {
        Ok(())
    }
}
