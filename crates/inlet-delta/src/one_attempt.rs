//! A log store that lets a compaction or a copy-on-write MERGE commit only past blind
//! appends: delta-rs rebases them past any commit its conflict checker passes, a compaction
//! of the same files included (it ignores removes with `dataChange = false`).

use std::sync::Arc;

use bytes::Bytes;
use deltalake::kernel::transaction::TransactionError;
use deltalake::logstore::{CommitOrBytes, LogStore, LogStoreConfig, LogStoreRef};
use deltalake::DeltaResult;
use object_store::ObjectStore;
use uuid::Uuid;

/// The table's log store, for a commit at `next` or past blind appends only.
pub(crate) struct OneAttempt {
    inner: LogStoreRef,
    /// The version after the one the operation read.
    next: u64,
}

impl OneAttempt {
    /// `inner`, for an operation that read the version before `next`.
    pub(crate) fn wrap(inner: LogStoreRef, next: u64) -> LogStoreRef {
        Arc::new(Self { inner, next })
    }
}

#[async_trait::async_trait]
impl LogStore for OneAttempt {
    fn name(&self) -> String {
        self.inner.name()
    }

    async fn refresh(&self) -> DeltaResult<()> {
        self.inner.refresh().await
    }

    async fn read_commit_entry(&self, version: u64) -> DeltaResult<Option<Bytes>> {
        self.inner.read_commit_entry(version).await
    }

    async fn write_commit_entry(
        &self,
        version: u64,
        commit_or_bytes: CommitOrBytes,
        operation_id: Uuid,
    ) -> Result<(), TransactionError> {
        // Past anything but blind appends the operation is planned anew later, never
        // rebased here.
        if version > self.next
            && !only_blind_appends(self.inner.as_ref(), None, self.next, version - 1).await
        {
            return Err(TransactionError::MaxCommitAttempts(1));
        }
        self.inner
            .write_commit_entry(version, commit_or_bytes, operation_id)
            .await
    }

    async fn abort_commit_entry(
        &self,
        version: u64,
        commit_or_bytes: CommitOrBytes,
        operation_id: Uuid,
    ) -> Result<(), TransactionError> {
        self.inner
            .abort_commit_entry(version, commit_or_bytes, operation_id)
            .await
    }

    async fn get_latest_version(&self, start_version: u64) -> DeltaResult<u64> {
        self.inner.get_latest_version(start_version).await
    }

    fn object_store(&self, operation_id: Option<Uuid>) -> Arc<dyn ObjectStore> {
        self.inner.object_store(operation_id)
    }

    fn root_object_store(&self, operation_id: Option<Uuid>) -> Arc<dyn ObjectStore> {
        self.inner.root_object_store(operation_id)
    }

    fn config(&self) -> &LogStoreConfig {
        self.inner.config()
    }
}

/// Whether commits `from..=to` only added files: no remove, no schema, protocol or
/// property change, and no `txn` of `app_id` when given. Unreadable commits count as no.
/// What a rewrite may be committed past (here, and the merge-on-read MERGE's own loop).
pub(crate) async fn only_blind_appends(
    log: &dyn LogStore,
    app_id: Option<&str>,
    from: u64,
    to: u64,
) -> bool {
    for version in from..=to {
        let Some(actions) = crate::commit_log::commit_actions(log, version, None).await else {
            return false;
        };
        for action in actions {
            let blind = action.iter().all(|(kind, body)| match kind.as_str() {
                "add" | "commitInfo" => true,
                "txn" => app_id.is_none() || body["appId"].as_str() != app_id,
                _ => false,
            });
            if !blind {
                return false;
            }
        }
    }
    true
}
