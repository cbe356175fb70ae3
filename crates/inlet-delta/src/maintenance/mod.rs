//! Keeping a table healthy: small-file statistics and compaction, VACUUM, Delta checkpoints
//! and expired-log clean-up, table properties and a description of the table's state.

mod compact;
mod describe;
mod logs;
mod vacuum;

use std::sync::Arc;

pub use compact::{CompactOptions, CompactOutcome, FileStats, PartitionStats, PartitionValues};
pub use describe::{TableDescription, HISTORY_SEARCHED};
pub use logs::{CleanupOutcome, DEFAULT_CHECKPOINT_INTERVAL};
pub use vacuum::{VacuumOptions, VacuumOutcome};

/// A step of a maintenance operation or a merge-on-read MERGE, for test fault points.
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
    /// A merge-on-read MERGE wrote its new rows, no deletion vector yet.
    MergeRowsWritten,
    /// A merge-on-read MERGE wrote its deletion vectors, not committed.
    MergeVectorsWritten,
}

/// Called at each [`MaintenanceStep`] of an operation.
pub type StepHook = Arc<dyn Fn(MaintenanceStep) + Send + Sync>;

/// Runs `hook` at delta-rs's execution points of one operation (`start` before anything is
/// written, `committed` when its commit has landed).
struct Steps {
    hook: StepHook,
    start: MaintenanceStep,
    committed: MaintenanceStep,
}

#[async_trait::async_trait]
impl deltalake::operations::CustomExecuteHandler for Steps {
    async fn pre_execute(
        &self,
        _: &deltalake::logstore::LogStoreRef,
        _: uuid::Uuid,
    ) -> deltalake::DeltaResult<()> {
        (self.hook)(self.start);
        Ok(())
    }

    async fn post_execute(
        &self,
        _: &deltalake::logstore::LogStoreRef,
        _: uuid::Uuid,
    ) -> deltalake::DeltaResult<()> {
        Ok(())
    }

    async fn before_post_commit_hook(
        &self,
        _: &deltalake::logstore::LogStoreRef,
        _: bool,
        _: uuid::Uuid,
    ) -> deltalake::DeltaResult<()> {
        (self.hook)(self.committed);
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

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};
    use std::sync::Arc;

    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Field, Schema};
    use arrow::record_batch::RecordBatch;
    use url::Url;

    use super::*;
    use crate::DeltaSink;

    async fn append(sink: &mut DeltaSink, batch_id: i64) {
        let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, true)]));
        let rows = RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(vec![batch_id]))])
            .expect("batch");
        let mut w = sink.writer(64 << 20).expect("writer");
        w.write(rows).await.expect("write");
        let staged = w.finish().await.expect("finish");
        sink.commit_batch("p", batch_id, staged, None, &[])
            .await
            .expect("commit");
    }

    #[tokio::test]
    async fn small_files_compact_into_one_and_checkpoints_follow_the_interval() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = Url::from_directory_path(dir.path()).expect("url");
        let mut sink = DeltaSink::open(&url, &HashMap::new()).await.expect("open");
        let schema = Schema::new(vec![Field::new("id", DataType::Int64, true)]);
        let properties =
            BTreeMap::from([("delta.checkpointInterval".to_string(), "3".to_string())]);
        sink.create(&schema, &[], &properties)
            .await
            .expect("create");
        assert_eq!(sink.checkpoint_if_due(10).await.expect("due"), None);
        for b in 1..=3 {
            append(&mut sink, b).await;
        }
        // The table's interval (3) wins over the default (10).
        assert_eq!(sink.checkpoint_if_due(10).await.expect("due"), Some(3));
        assert_eq!(sink.checkpoint_if_due(10).await.expect("due"), None);
        let stats = sink.file_stats(1 << 20).expect("stats");
        assert_eq!((stats.files, stats.small_files), (3, 3));
        let outcome = sink
            .compact(
                &CompactOptions {
                    target_size: 64 << 20,
                    partitions: None,
                    zorder_by: Vec::new(),
                    max_concurrent: 1,
                    purge_deleted_fraction: None,
                },
                None,
            )
            .await
            .expect("compact");
        assert_eq!((outcome.files_removed, outcome.files_added), (3, 1));
        assert_eq!(outcome.version, Some(4));
        assert_eq!(sink.file_stats(1 << 20).expect("stats").files, 1);
        // The compaction moved no pipeline's txn.
        assert_eq!(sink.txn_version("p").await.expect("txn"), Some(3));
        // Expired-log clean-up keeps everything younger than the 30-day default.
        assert_eq!(
            sink.clean_expired_log().await.expect("clean"),
            CleanupOutcome::Removed(0)
        );
        let d = sink.describe(1 << 20).await.expect("describe");
        assert_eq!(d.checkpoint_version, Some(3));
        assert_eq!(d.last_compaction.map(|(v, _)| v), Some(4));
        assert_eq!(d.properties["delta.checkpointInterval"], "3");
    }
}
