//! Purging deletion vectors: files whose deleted share passed a threshold are rewritten
//! without their deleted rows, in a commit of their own with `dataChange = false`.

use deltalake::kernel::transaction::CommitBuilder;
use deltalake::kernel::{Action, Remove};
use deltalake::protocol::DeltaOperation;
use deltalake::DeltaTableError;
use roaring::RoaringTreemap;

use super::scan::FileToRead;
use crate::sink::{no_hooks, version_i64, DeltaSink};
use crate::SinkError;

/// How many rows deletion vectors hide, over the table's current version.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeletedRows {
    /// Data files with a deletion vector.
    pub files_with_vectors: u64,
    /// Rows the vectors hide.
    pub deleted_rows: u64,
    /// Rows in the data files, hidden ones included.
    pub physical_rows: u64,
    /// Files whose hidden share is at least the fraction asked for.
    pub files_over: u64,
}

/// What a purge did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PurgeOutcome {
    /// The purge's commit; `None` when no file passed the threshold.
    pub version: Option<i64>,
    pub files_rewritten: u64,
    pub files_added: u64,
    /// Deleted rows dropped from the data files.
    pub rows_dropped: u64,
}

/// A file's hidden share: its vector's cardinality over its row count.
fn share(cardinality: i64, rows: Option<usize>) -> f64 {
    match rows {
        Some(n) if n > 0 => cardinality as f64 / n as f64,
        _ => 0.0,
    }
}

impl DeltaSink {
    /// Rows hidden by deletion vectors in the loaded version; files whose hidden share is at
    /// least `min_fraction` are counted in `files_over`.
    pub fn deleted_rows(&self, min_fraction: f64) -> Result<DeletedRows, SinkError> {
        let table = self.loaded()?;
        let snapshot = table.snapshot().map_err(|e| self.open_err(e))?;
        let mut out = DeletedRows::default();
        for file in snapshot.log_data().iter() {
            let rows = file.num_records();
            out.physical_rows += rows.unwrap_or_default() as u64;
            if let Some(dv) = file.deletion_vector_descriptor() {
                out.files_with_vectors += 1;
                out.deleted_rows += u64::try_from(dv.cardinality).unwrap_or_default();
                if share(dv.cardinality, rows) >= min_fraction {
                    out.files_over += 1;
                }
            }
        }
        Ok(out)
    }

    /// Rewrites each data file whose deletion vector hides at least `min_fraction` of its
    /// rows into new files (of up to `target_size`) without them, and commits the swap with
    /// `dataChange = false` and no `txn`, as a compaction does. Any commit since its snapshot
    /// makes the commit fail (transient) rather than bring rows back. A column-mapped table
    /// is left alone.
    pub async fn purge_deletion_vectors(
        &mut self,
        min_fraction: f64,
        target_size: u64,
    ) -> Result<PurgeOutcome, SinkError> {
        self.refresh().await?;
        let url = self.url().to_string();
        let err = |source| SinkError::Compact {
            url: url.clone(),
            source,
        };
        let generic = |detail: String| err(DeltaTableError::Generic(detail));
        let table = self.loaded()?.clone();
        let snapshot = table.snapshot().map_err(err)?.clone();
        let Some(schema) = self.arrow_schema()? else {
            return Ok(PurgeOutcome::default());
        };
        // Files of a column-mapped table hold physical column names inlet does not write.
        if self.column_mapped() {
            tracing::debug!("column-mapped table: deletion vectors are not purged by inlet");
            return Ok(PurgeOutcome::default());
        }
        let mut chosen: Vec<(
            FileToRead,
            Remove,
            deltalake::kernel::DeletionVectorDescriptor,
        )> = Vec::new();
        for file in snapshot.log_data().iter() {
            let Some(dv) = file.deletion_vector_descriptor() else {
                continue;
            };
            if share(dv.cardinality, file.num_records()) < min_fraction {
                continue;
            }
            let read = FileToRead {
                path: file.object_store_path(),
                partition_values: file.partition_values_map(),
            };
            // `dataChange = true` on the remove (the new files' adds stay `false`): delta-rs's
            // conflict checker ignores removes with `dataChange = false`, so a compactor
            // built on it that read this file too would commit its own rewrite of it after
            // ours, doubling its rows. Only MERGE tables without a change feed have vectors,
            // and their MERGE commits already remove files with `dataChange = true`.
            chosen.push((read, file.remove_action(true), dv));
        }
        if chosen.is_empty() {
            return Ok(PurgeOutcome::default());
        }
        let store = table.log_store().object_store(None);
        let root_store = table.log_store().root_object_store(None);
        // No rules: a purge moves rows that are in the table already, in a commit readers
        // of changes skip (`dataChange = false`), so it must not change a value (a generated
        // one filled in) nor stop on a rule inlet cannot evaluate, as delta-rs's compaction.
        let mut writer = self.writer(target_size)?.with_checks(None);
        let mut outcome = PurgeOutcome::default();
        let mut actions: Vec<Action> = Vec::new();
        let mut files = Vec::new();
        for (read, remove, dv) in chosen {
            let deleted: RoaringTreemap = super::format::read(&store, &root_store, &dv)
                .await
                .map_err(|e| generic(e.to_string()))?;
            outcome.files_rewritten += 1;
            outcome.rows_dropped += deleted.len();
            actions.push(Action::Remove(remove));
            files.push((read, deleted));
        }
        super::rewrite::rewrite_into(&mut writer, &store, &schema, &files, generic).await?;
        let adds = writer.finish().await?.into_adds();
        outcome.files_added = adds.len() as u64;
        actions.extend(adds.into_iter().map(|mut a| {
            a.data_change = false;
            Action::Add(a)
        }));
        let operation = DeltaOperation::Optimize {
            predicate: None,
            target_size: i64::try_from(target_size).unwrap_or(i64::MAX),
        };
        // No retry inside delta-rs: its conflict checker lets another compaction's removes
        // (`dataChange = false`) through, and two purges of one file would both commit its
        // rows. Any commit since the snapshot fails this one (transient); the next round
        // plans again.
        let finalized = CommitBuilder::from(no_hooks())
            .with_max_retries(0)
            .with_actions(actions)
            .build(Some(&snapshot), table.log_store(), operation)
            .await
            .map_err(err)?;
        outcome.version = Some(version_i64(finalized.version()));
        self.set_state(finalized.snapshot());
        tracing::info!(
            files = outcome.files_rewritten,
            rows = outcome.rows_dropped,
            "deletion vectors purged"
        );
        Ok(outcome)
    }
}
