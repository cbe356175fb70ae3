//! `inlet table describe`: a table's version, protocol, properties, data files, log size
//! and the last compaction and VACUUM, read from the table itself.

use std::collections::BTreeMap;

use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;

use super::FileStats;
use crate::protocol::ProtocolState;
use crate::sink::version_i64;
use crate::{DeltaSink, SinkError};

/// Commits searched for the last compaction and VACUUM.
pub const HISTORY_SEARCHED: usize = 1000;

/// A table's state, as `inlet table describe` prints it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TableDescription {
    pub url: String,
    pub version: i64,
    pub min_reader_version: i32,
    pub min_writer_version: i32,
    pub reader_features: Vec<String>,
    pub writer_features: Vec<String>,
    pub properties: BTreeMap<String, String>,
    pub partition_columns: Vec<String>,
    pub files: u64,
    pub bytes: u64,
    /// Files under the small-file size asked for.
    pub small_files: u64,
    pub small_bytes: u64,
    pub small_file_size: u64,
    pub partitions: u64,
    /// The newest Delta checkpoint's version.
    pub checkpoint_version: Option<i64>,
    /// Objects (and their bytes) under `_delta_log/`.
    pub log_objects: u64,
    pub log_bytes: u64,
    /// The oldest commit the log still holds (older ones were cleaned up).
    pub oldest_commit: i64,
    /// Version and time (ms since the epoch) of the newest OPTIMIZE and VACUUM END commits
    /// among the newest [`HISTORY_SEARCHED`] commits.
    pub last_compaction: Option<(i64, i64)>,
    pub last_vacuum: Option<(i64, i64)>,
    /// Data files with a deletion vector, the rows those vectors hide, and the rows in all
    /// data files (hidden ones included).
    pub files_with_deletion_vectors: u64,
    pub deleted_rows: u64,
    pub physical_rows: u64,
}

impl DeltaSink {
    /// Describes the latest version; files under `small_below` bytes count as small.
    pub async fn describe(&mut self, small_below: u64) -> Result<TableDescription, SinkError> {
        self.refresh().await?;
        self.last_checkpoint = None;
        let checkpoint_version = self.last_checkpoint().await?;
        let stats: FileStats = self.file_stats(small_below)?;
        let hidden = self.deleted_rows(1.0)?;
        let table = self.loaded()?;
        let snapshot = table.snapshot().map_err(|e| self.open_err(e))?;
        let protocol =
            ProtocolState::of(snapshot.protocol()).map_err(|source| SinkError::Protocol {
                url: self.url().to_string(),
                source,
            })?;
        let store = table.object_store();
        let (log_objects, log_bytes) = store
            .list(Some(&Path::from("_delta_log")))
            .try_fold(
                (0u64, 0u64),
                |(n, b), m| async move { Ok((n + 1, b + m.size)) },
            )
            .await
            .map_err(|source| {
                self.maintenance_err(
                    "list _delta_log",
                    deltalake::DeltaTableError::ObjectStore { source },
                )
            })?;
        let oldest_commit = crate::repair::oldest_commit(store.as_ref())
            .await
            .map_err(|detail| self.schema_err(detail))?
            .unwrap_or(0);
        let latest = version_i64(snapshot.version());
        let mut last_compaction = None;
        let mut last_vacuum = None;
        // The newest commits only: a table that never ran VACUUM would otherwise cost one
        // read per commit of its whole log.
        let mut history = table.history(Some(HISTORY_SEARCHED)).enumerate();
        while let Some((i, info)) = history.next().await {
            let Ok(info) = info else { break };
            let at = (latest - i as i64, info.timestamp.unwrap_or_default());
            match info.operation.as_deref() {
                Some("OPTIMIZE") if last_compaction.is_none() => last_compaction = Some(at),
                Some("VACUUM END") if last_vacuum.is_none() => last_vacuum = Some(at),
                _ => {}
            }
            if last_compaction.is_some() && last_vacuum.is_some() {
                break;
            }
        }
        Ok(TableDescription {
            url: self.url().to_string(),
            version: latest,
            min_reader_version: protocol.min_reader_version,
            min_writer_version: protocol.min_writer_version,
            reader_features: protocol.reader_features.iter().flatten().cloned().collect(),
            writer_features: protocol.writer_features.iter().flatten().cloned().collect(),
            properties: snapshot
                .metadata()
                .configuration()
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            partition_columns: snapshot.metadata().partition_columns().to_vec(),
            files: stats.files,
            bytes: stats.bytes,
            small_files: stats.small_files,
            small_bytes: stats.small_bytes,
            small_file_size: small_below,
            partitions: stats.partitions.len() as u64,
            checkpoint_version,
            log_objects,
            log_bytes,
            oldest_commit,
            last_compaction,
            last_vacuum,
            files_with_deletion_vectors: hidden.files_with_vectors,
            deleted_rows: hidden.deleted_rows,
            physical_rows: hidden.physical_rows,
        })
    }
}
