//! The table handle: open, create, read the pipeline's txn version, and commit staged data
//! files with a `txn` action (steps 6 and recovery of the exactly-once protocol).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow::datatypes::{Schema, SchemaRef};
use deltalake::kernel::engine::arrow_conversion::{TryIntoArrow, TryIntoKernel};
use deltalake::kernel::transaction::{CommitBuilder, CommitProperties};
use deltalake::kernel::{Action, MetadataExt as _, StructType, Transaction};
use deltalake::protocol::{DeltaOperation, SaveMode};
use deltalake::{DeltaTable, DeltaTableBuilder, DeltaTableError};
use futures::TryStreamExt;
use object_store::ObjectStoreExt as _;
use url::Url;

use crate::protocol::ProtocolState;
use crate::{SinkError, StagedFiles, TableWriter};

/// Key of the commitInfo field naming the pipeline that made a commit.
pub const COMMIT_PIPELINE_KEY: &str = "inlet.pipelineId";
/// Key of the commitInfo field naming the batch a commit holds.
pub const COMMIT_BATCH_KEY: &str = "inlet.batchId";
/// Key of the commitInfo field listing the batch's source files ([`BatchFile`]), from which
/// `inlet checkpoint rebuild` restores a lost checkpoint's file log.
pub const COMMIT_FILES_KEY: &str = "inlet.files";

/// One source file of a batch as its commit records it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BatchFile {
    pub path: String,
    pub etag: String,
    pub size: u64,
    pub modified_ms: i64,
    /// `committed`, `skipped` or `failed`.
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A commit of one batch of a pipeline, read back from the table's history.
#[derive(Debug, Clone)]
pub struct PipelineCommit {
    pub version: i64,
    pub batch_id: i64,
    pub timestamp_ms: Option<i64>,
    /// `None` for commits made before inlet recorded file lists.
    pub files: Option<Vec<BatchFile>>,
}

/// What a schema change does with a column the table already has under another type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OnConflict {
    /// Refuse the commit: the batch's data files hold the column in its own type.
    Refuse,
    /// Keep the table's type: the rows are cast to it before they are written.
    KeepTable,
}

/// A Delta table inlet writes to (it may not exist until [`DeltaSink::create`]).
pub struct DeltaSink {
    /// `None` while a local table directory does not exist yet: delta-rs cannot even build
    /// a handle for a missing local path, so the handle is made when the table is created.
    table: Option<DeltaTable>,
    url: Url,
    storage_options: HashMap<String, String>,
    /// The newest Delta checkpoint's version once read (`Some(None)`: none yet).
    pub(crate) last_checkpoint: Option<Option<i64>>,
    /// Called at the steps of a merge-on-read MERGE (test fault points).
    step_hook: Option<crate::maintenance::StepHook>,
    /// The pipeline's txn version as last read or committed, with the table version it was
    /// true at: the next read looks only at the commits after that version.
    known_txn: Option<KnownTxn>,
}

/// An app id's txn version as of table version `at`.
#[derive(Debug, Clone)]
struct KnownTxn {
    app_id: String,
    at: i64,
    txn: Option<i64>,
}

impl std::fmt::Debug for DeltaSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeltaSink")
            .field("url", &self.url.as_str())
            .finish()
    }
}

impl DeltaSink {
    /// Opens the table at `url` with `storage_options` (delta-rs / object_store keys), loading
    /// its latest version if one exists. A location without a table is fine; a location
    /// that cannot be reached (missing bucket, bad credentials) is [`SinkError::Open`].
    /// Writes nothing.
    pub async fn open(
        url: &Url,
        storage_options: &HashMap<String, String>,
    ) -> Result<Self, SinkError> {
        let mut sink = Self {
            table: None,
            url: url.clone(),
            storage_options: storage_options.clone(),
            last_checkpoint: None,
            step_hook: None,
            known_txn: None,
        };
        let missing_local_dir = url.to_file_path().is_ok_and(|dir| !dir.exists());
        if !missing_local_dir {
            let mut table = sink.handle()?;
            match table.load().await {
                Ok(()) | Err(DeltaTableError::NotATable(_)) => {}
                Err(e) => return Err(sink.diagnose(&table, e).await),
            }
            if table.version().is_some() {
                sink.check_protocol(&table).await?;
            }
            // A missing table is fine, a missing bucket is not: list the location once.
            if table.version().is_none() {
                table
                    .object_store()
                    .list_with_delimiter(None)
                    .await
                    .map_err(|source| sink.open_err(DeltaTableError::ObjectStore { source }))?;
            }
            sink.table = Some(table);
        }
        Ok(sink)
    }

    /// The error for a table that did not load: [`SinkError::MissingFeatures`] when its log
    /// shows a schema its protocol does not declare (the kernel refuses such a table), else
    /// the load error itself.
    async fn diagnose(&self, table: &DeltaTable, error: DeltaTableError) -> SinkError {
        match crate::repair::log_state(table.object_store().as_ref()).await {
            Ok(Some(state)) => match state.missing() {
                Ok(missing) if !missing.is_empty() => self.missing_features(&state, &missing),
                _ => self.open_err(error),
            },
            _ => self.open_err(error),
        }
    }

    /// Refuses a loaded table whose schema or properties need a feature its protocol lacks.
    async fn check_protocol(&self, table: &DeltaTable) -> Result<(), SinkError> {
        let snapshot = table.snapshot().map_err(|e| self.open_err(e))?;
        let schema = serde_json::to_value(snapshot.schema().as_ref())
            .map_err(|e| self.schema_err(e.to_string()))?;
        let needed = crate::protocol::needed_features(&schema, snapshot.metadata().configuration());
        let protocol =
            ProtocolState::of(snapshot.protocol()).map_err(|source| SinkError::Protocol {
                url: self.url.to_string(),
                source,
            })?;
        let missing: Vec<_> = needed
            .into_iter()
            .filter(|n| !protocol.supports(n.name))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let state = crate::repair::LogState {
            version: table.version().map(version_i64).unwrap_or_default(),
            protocol,
            metadata: serde_json::Value::Null,
        };
        Err(self.missing_features(&state, &missing))
    }

    fn missing_features(
        &self,
        state: &crate::repair::LogState,
        missing: &[crate::protocol::NeededFeature],
    ) -> SinkError {
        SinkError::MissingFeatures {
            url: self.url.to_string(),
            version: state.version,
            missing: missing
                .iter()
                .map(|n| format!("'{}' ({})", n.name, n.why))
                .collect::<Vec<_>>()
                .join(", "),
            reader_version: state.protocol.min_reader_version,
            writer_version: state.protocol.min_writer_version,
            who: if ProtocolState::any_reader_feature(missing.iter().map(|n| n.name)) {
                "readers and writers"
            } else {
                "writers"
            },
        }
    }

    pub(crate) fn open_err(&self, source: DeltaTableError) -> SinkError {
        SinkError::Open {
            url: self.url.to_string(),
            source,
        }
    }

    /// An unloaded handle on the table location.
    fn handle(&self) -> Result<DeltaTable, SinkError> {
        crate::storage::register();
        DeltaTableBuilder::from_url(self.url.clone())
            .map_err(|e| self.open_err(e))?
            .with_storage_options(self.storage_options.clone())
            .build()
            .map_err(|e| self.open_err(e))
    }

    /// A second handle on the same table, at the version this one has loaded (for work
    /// beside this one's, such as a compaction while batches go on); no request is made.
    pub fn second_handle(&self) -> Self {
        Self {
            table: self.table.clone(),
            url: self.url.clone(),
            storage_options: self.storage_options.clone(),
            last_checkpoint: None,
            step_hook: self.step_hook.clone(),
            known_txn: self.known_txn.clone(),
        }
    }

    /// Calls `hook` at the steps of each merge-on-read MERGE (test fault points).
    pub fn set_step_hook(&mut self, hook: Option<crate::maintenance::StepHook>) {
        self.step_hook = hook;
    }

    pub(crate) fn step(&self, step: crate::maintenance::MaintenanceStep) {
        if let Some(hook) = &self.step_hook {
            hook(step);
        }
    }

    /// Whether a MERGE may write deletion vectors into the loaded table: its protocol has
    /// the `deletionVectors` writer feature and `delta.enableDeletionVectors` is true, and
    /// it does not map column names (the key scan reads columns by their names).
    pub fn deletion_vectors_enabled(&self) -> bool {
        self.property_is_true("delta.enableDeletionVectors")
            && self.deletion_vectors_declared().unwrap_or(false)
            && !self.column_mapped()
    }

    /// Whether the loaded table's protocol has the `deletionVectors` feature.
    pub(crate) fn deletion_vectors_declared(&self) -> Result<bool, SinkError> {
        let snapshot = self.loaded()?.snapshot().map_err(|e| self.open_err(e))?;
        Ok(crate::protocol::ProtocolState::of(snapshot.protocol())
            .is_ok_and(|p| p.supports("deletionVectors")))
    }

    /// Whether table property `key` is `true` (any case, spaces aside).
    pub fn property_is_true(&self, key: &str) -> bool {
        self.properties()
            .get(key)
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
    }

    /// Whether the table maps column names (`delta.columnMapping.mode` other than `none`).
    pub fn column_mapped(&self) -> bool {
        self.properties()
            .get("delta.columnMapping.mode")
            .is_some_and(|m| !m.trim().eq_ignore_ascii_case("none"))
    }

    /// The loaded table, or [`SinkError::NotCreated`].
    pub(crate) fn loaded(&self) -> Result<&DeltaTable, SinkError> {
        match &self.table {
            Some(t) if t.version().is_some() => Ok(t),
            _ => Err(SinkError::NotCreated {
                url: self.url.to_string(),
            }),
        }
    }

    /// The table's URL.
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// Latest loaded version, `None` when the table does not exist yet.
    pub fn version(&self) -> Option<i64> {
        self.table
            .as_ref()
            .and_then(|t| t.version())
            .map(version_i64)
    }

    /// The table's schema as Arrow, `None` when the table does not exist yet.
    pub fn arrow_schema(&self) -> Result<Option<SchemaRef>, SinkError> {
        let Ok(table) = self.loaded() else {
            return Ok(None);
        };
        let snapshot = table
            .snapshot()
            .map_err(|e| self.schema_err(e.to_string()))?;
        let schema: Schema = snapshot
            .schema()
            .as_ref()
            .try_into_arrow()
            .map_err(|e: deltalake::arrow::error::ArrowError| self.schema_err(e.to_string()))?;
        Ok(Some(Arc::new(schema)))
    }

    /// The table's columns as Spark StructField JSON (`{name, type, nullable, metadata}`),
    /// the form catalogs take; empty when the table does not exist yet.
    pub fn spark_fields(&self) -> Result<Vec<serde_json::Value>, SinkError> {
        let Ok(table) = self.loaded() else {
            return Ok(Vec::new());
        };
        let snapshot = table
            .snapshot()
            .map_err(|e| self.schema_err(e.to_string()))?;
        let schema = serde_json::to_value(snapshot.schema().as_ref())
            .map_err(|e| self.schema_err(e.to_string()))?;
        Ok(schema["fields"].as_array().cloned().unwrap_or_default())
    }

    /// The table's partition columns (empty when not partitioned or not created).
    pub fn partition_columns(&self) -> Vec<String> {
        self.loaded()
            .ok()
            .and_then(|t| t.snapshot().ok())
            .map(|s| s.metadata().partition_columns().to_vec())
            .unwrap_or_default()
    }

    pub(crate) fn schema_err(&self, detail: String) -> SinkError {
        SinkError::Schema {
            url: self.url.to_string(),
            detail,
        }
    }

    /// Creates the table with `schema`, `partition_by` and table `properties` (checked by
    /// [`crate::properties::check_properties`]) as version 0 (and a local directory for it),
    /// unless it exists already (another run or writer may have made it first, even while
    /// this call ran): then it is loaded as is, and its schema may lack columns of `schema`.
    pub async fn create(
        &mut self,
        schema: &Schema,
        partition_by: &[String],
        properties: &BTreeMap<String, String>,
    ) -> Result<(), SinkError> {
        let create_err = |source| SinkError::Create {
            url: self.url.to_string(),
            source,
        };
        if let Ok(dir) = self.url.to_file_path() {
            std::fs::create_dir_all(&dir)
                .map_err(|e| create_err(DeltaTableError::Io { source: e }))?;
        }
        let kernel: StructType = schema
            .try_into_kernel()
            .map_err(|e: deltalake::arrow::error::ArrowError| self.schema_err(e.to_string()))?;
        let table = match self.table.take() {
            Some(t) => t,
            None => self.handle()?,
        };
        let builder = table
            .create()
            .with_columns(kernel.fields().cloned())
            .with_configuration(properties.iter().map(|(k, v)| (k.clone(), Some(v.clone()))))
            // Keys outside `delta.` (`owner`, `comment`) are the user's own metadata.
            .with_raise_if_key_not_exists(false)
            // No retry: delta-rs retries a version 0 another writer made first as version 1,
            // a second `metaData` that would replace that writer's columns with these.
            .with_commit_properties(no_hooks().with_max_retries(0))
            .with_save_mode(SaveMode::Ignore);
        let builder = if partition_by.is_empty() {
            builder
        } else {
            builder.with_partition_columns(partition_by.iter().cloned())
        };
        let created = match builder.await {
            Ok(mut created) => {
                // SaveMode::Ignore hands back an unloaded handle when the table was there.
                if created.version().is_none() {
                    created.load().await.map_err(create_err)?;
                }
                created
            }
            // Another writer made version 0 between the check and this commit: its table
            // is the one to use. Any other failure leaves no table to load.
            Err(source) => {
                let mut existing = self.handle()?;
                match existing.load().await {
                    Ok(()) => {}
                    Err(DeltaTableError::NotATable(_)) => return Err(create_err(source)),
                    // A table is there but does not load: that, not the lost commit, is
                    // what the user must hear of.
                    Err(e) => return Err(self.diagnose(&existing, e).await),
                }
                tracing::info!(table = %self.url, "another writer created the table first; using it");
                existing
            }
        };
        self.table = Some(created);
        Ok(())
    }

    /// Reloads the latest version of the table.
    ///
    /// A loaded table first looks for the commit after its version with one HEAD: when it is
    /// not there, nothing newer exists and nothing is loaded. delta-kernel's update would
    /// LIST the log from its last checkpoint, and a LIST costs twelve GETs or HEADs on S3
    /// (benches/README.md, W7). Any other answer goes on to the update.
    pub async fn refresh(&mut self) -> Result<(), SinkError> {
        if self.table.is_none() && self.url.to_file_path().is_ok_and(|dir| dir.exists()) {
            self.table = Some(self.handle()?);
        }
        let Some(table) = self.table.as_mut() else {
            return Ok(());
        };
        if let Some(version) = table.version().map(version_i64) {
            let head = head_commit(table, version.saturating_add(1)).await;
            if matches!(head, Err(object_store::Error::NotFound { .. })) {
                return Ok(());
            }
        }
        match table.update_state().await {
            Ok(()) | Err(DeltaTableError::NotATable(_)) => Ok(()),
            Err(source) => Err(self.open_err(source)),
        }
    }

    /// The highest batch id `app_id` has committed to this table (its `txn` version), read
    /// from the latest version. `None` when it never committed or the table does not exist.
    ///
    /// Once known at a table version (read, or committed by [`DeltaSink::commit_batch`]), it
    /// is brought up to date from the commits after that version alone (a HEAD of that
    /// version's commit, and a GET of each later one: none when this sink only appended
    /// since), not by replaying the log from its last checkpoint: one batch used to cost a
    /// GET of every commit since that checkpoint.
    pub async fn txn_version(&mut self, app_id: &str) -> Result<Option<i64>, SinkError> {
        self.refresh().await?;
        let Ok(table) = self.loaded() else {
            return Ok(None);
        };
        let Some(version) = table.version().map(version_i64) else {
            return Ok(None);
        };
        let known = self
            .known_txn
            .as_ref()
            .filter(|k| k.app_id == app_id && k.at <= version);
        let txn = match known {
            Some(known) => txn_after(table, app_id, known.at, version, known.txn).await,
            None => None,
        };
        let txn = match txn {
            Some(txn) => txn,
            None => {
                let state = table.snapshot().map_err(|e| self.open_err(e))?;
                state
                    .transaction_version(table.log_store().as_ref(), app_id)
                    .await
                    .map_err(|e| self.open_err(e))?
            }
        };
        self.known_txn = Some(KnownTxn {
            app_id: app_id.to_string(),
            at: version,
            txn,
        });
        Ok(txn)
    }

    /// A writer that streams record batches into Parquet files under the table; nothing it
    /// writes is visible until [`DeltaSink::commit_batch`].
    pub fn writer(&self, target_file_size: u64) -> Result<TableWriter, SinkError> {
        Ok(
            TableWriter::for_table(self.loaded()?, &self.url, target_file_size)?
                .with_checks(self.checks()?),
        )
    }

    /// The loaded table's CHECK constraints, invariants and generated columns, compiled
    /// once per writer; `None` when it has none (or is not created yet).
    fn checks(&self) -> Result<Option<Arc<crate::checks::TableChecks>>, SinkError> {
        let Ok(table) = self.loaded() else {
            return Ok(None);
        };
        let snapshot = table
            .snapshot()
            .map_err(|e| self.schema_err(e.to_string()))?;
        let protocol = crate::protocol::ProtocolState::of(snapshot.protocol()).ok();
        let supports = |f: &str| protocol.as_ref().is_some_and(|p| p.supports(f));
        crate::checks::TableChecks::of(
            snapshot.metadata().configuration(),
            snapshot.schema().as_ref(),
            supports,
        )
        .map(|c| c.map(Arc::new))
        .map_err(|detail| self.schema_err(format!("its rules cannot be read: {detail}")))
    }

    /// A writer for `schema`, a schema the table will have once the batch commits with it
    /// (`commit_batch(.., Some(schema))`): the table's columns plus new ones.
    pub fn writer_for_schema(
        &self,
        schema: SchemaRef,
        target_file_size: u64,
    ) -> Result<TableWriter, SinkError> {
        let partition_by = self.partition_columns();
        Ok(TableWriter::for_schema(
            &self.url,
            schema,
            (!partition_by.is_empty()).then_some(partition_by),
            &self.storage_options,
            target_file_size,
        )?
        .with_checks(self.checks()?))
    }

    /// `schema` as a table created with it gives it back (Delta's types, in Arrow's form):
    /// what [`Self::writer`] writes once the table exists.
    pub fn as_created(&self, schema: &Schema) -> Result<SchemaRef, SinkError> {
        let kernel: StructType = schema
            .try_into_kernel()
            .map_err(|e: deltalake::arrow::error::ArrowError| self.schema_err(e.to_string()))?;
        let arrow: Schema = (&kernel)
            .try_into_arrow()
            .map_err(|e: deltalake::arrow::error::ArrowError| self.schema_err(e.to_string()))?;
        Ok(Arc::new(arrow))
    }

    /// Deletes the data files of `staged`, written but left out of every commit (a first
    /// batch's files written while its schema was inferred, when the schema changed under
    /// them). Best effort: no reader sees a file no commit holds, and vacuum removes what
    /// is left. How many were deleted.
    pub async fn discard(&self, staged: &StagedFiles) -> usize {
        // The table need not exist: files are written before its first commit.
        let store = match self.loaded() {
            Ok(table) => table.object_store(),
            Err(_) => match self.handle() {
                Ok(table) => table.object_store(),
                Err(_) => return 0,
            },
        };
        let mut deleted = 0;
        for file in staged.files() {
            let Ok(path) = object_store::path::Path::from_url_path(&file.path) else {
                continue;
            };
            if store.delete(&path).await.is_ok() {
                deleted += 1;
            }
        }
        deleted
    }

    /// Commits `staged` as batch `batch_id` of pipeline `app_id`: one Delta commit with the
    /// add actions, a `txn {appId, version: batch_id}` action and, in its commitInfo, the
    /// batch's source `files` (what `inlet checkpoint rebuild` reads), retried on conflicts
    /// with other writers. Returns the new table version.
    ///
    /// With `new_schema`, the same commit changes the table's schema to it (columns added by
    /// schema evolution), so readers never see the new files without their columns.
    ///
    /// Refuses with [`SinkError::AlreadyCommitted`] when the table's txn version for
    /// `app_id` is already ≥ `batch_id`, since committing again would duplicate rows.
    pub async fn commit_batch(
        &mut self,
        app_id: &str,
        batch_id: i64,
        staged: StagedFiles,
        new_schema: Option<&Schema>,
        files: &[BatchFile],
    ) -> Result<i64, SinkError> {
        self.refuse_committed(app_id, batch_id).await?;
        let commit_err = |source| SinkError::Commit {
            url: self.url.to_string(),
            source,
        };
        let mut actions: Vec<Action> = staged.into_adds().into_iter().map(Action::Add).collect();
        if let Some(schema) = new_schema {
            actions.extend(
                self.schema_actions(schema, OnConflict::Refuse)?
                    .unwrap_or_default(),
            );
        }
        let table = self.loaded()?;
        let snapshot = table.snapshot().map_err(commit_err)?;
        let partition_by = snapshot.metadata().partition_columns().to_vec();
        let operation = DeltaOperation::Write {
            mode: SaveMode::Append,
            partition_by: (!partition_by.is_empty()).then_some(partition_by),
            predicate: None,
        };
        let properties = commit_properties(app_id, batch_id, files);
        let finalized = CommitBuilder::from(properties)
            .with_actions(actions)
            .build(Some(snapshot), table.log_store(), operation)
            .await
            .map_err(commit_err)?;
        let version = version_i64(finalized.version());
        if let Some(t) = self.table.as_mut() {
            t.state = Some(finalized.snapshot());
        }
        // The commit holds this batch's txn, the newest of `app_id` as of its version (any
        // other commit of the same txn fails delta-rs's conflict check).
        self.known_txn = Some(KnownTxn {
            app_id: app_id.to_string(),
            at: version,
            txn: Some(batch_id),
        });
        Ok(version)
    }

    /// The actions that give the loaded table the columns of `schema`: its `metaData` with
    /// the table's columns as they are plus those of `schema` it lacks, and, when that schema
    /// needs table features the protocol lacks, the `protocol` action that adds them (the
    /// protocol guard: a commit never leaves a table whose schema its protocol does not
    /// declare). `None` when the table has every column already.
    ///
    /// The table may have changed since the batch read it (another writer added columns): its
    /// columns are kept. With [`OnConflict::Refuse`] (appends, whose data files hold the
    /// batch's types), a column `schema` shares with the table under another Delta type
    /// refuses with [`SinkError::SchemaConflict`] before anything is committed, so a commit
    /// never replaces the type of an existing column; with [`OnConflict::KeepTable`] (MERGE,
    /// which casts its rows to the table's types) the table's type stays.
    pub(crate) fn schema_actions(
        &self,
        schema: &Schema,
        on_conflict: OnConflict,
    ) -> Result<Option<Vec<Action>>, SinkError> {
        let table = self.loaded()?;
        let snapshot = table.snapshot().map_err(|e| self.open_err(e))?;
        let current = snapshot.schema();
        let (merged, conflicts) = crate::reconcile::widen_table_schema(&current, schema)
            .map_err(|e| self.schema_err(e.to_string()))?;
        if let (OnConflict::Refuse, Some(c)) = (on_conflict, conflicts.into_iter().next()) {
            return Err(SinkError::SchemaConflict {
                url: self.url.to_string(),
                column: c.column,
                table_type: c.table_type,
                batch_type: c.batch_type,
            });
        }
        if merged.fields().count() == current.fields().count() {
            return Ok(None);
        }
        let mut actions = Vec::new();
        if let Some(protocol) = self.protocol_upgrade(
            snapshot.protocol(),
            &merged,
            snapshot.metadata().configuration(),
        )? {
            actions.push(Action::Protocol(protocol));
        }
        let metadata = snapshot
            .metadata()
            .clone()
            .with_schema(&merged)
            .map_err(|e| self.schema_err(e.to_string()))?;
        actions.push(Action::Metadata(metadata));
        Ok(Some(actions))
    }

    /// The protocol a table with `schema` and `properties` needs, when `current` lacks one of
    /// its features; [`SinkError::Protocol`] when inlet cannot write a needed feature.
    fn protocol_upgrade(
        &self,
        current: &deltalake::kernel::Protocol,
        schema: &StructType,
        properties: &HashMap<String, String>,
    ) -> Result<Option<deltalake::kernel::Protocol>, SinkError> {
        let protocol_err = |source| SinkError::Protocol {
            url: self.url.to_string(),
            source,
        };
        let schema_json =
            serde_json::to_value(schema).map_err(|e| self.schema_err(e.to_string()))?;
        let needed = crate::protocol::needed_features(&schema_json, properties);
        let current = ProtocolState::of(current).map_err(protocol_err)?;
        match crate::protocol::upgrade_for(&current, &needed).map_err(protocol_err)? {
            None => Ok(None),
            Some(next) => {
                tracing::info!(
                    table = %self.url,
                    features = %needed.iter().map(|n| n.name).collect::<Vec<_>>().join(", "),
                    "upgrading the table's protocol in the same commit as the schema that needs it"
                );
                next.to_kernel().map(Some).map_err(protocol_err)
            }
        }
    }

    /// Commits `schema`'s new columns on their own (with the protocol upgrade they need), for
    /// a MERGE, whose delta-rs commit cannot carry a protocol action: the columns arrive one
    /// version before the MERGE's rows. The commit carries no `txn`, so exactly-once is
    /// untouched: a crash after it leaves the columns, and the replayed MERGE finds them.
    pub async fn add_columns(&mut self, schema: &Schema) -> Result<Option<i64>, SinkError> {
        let Some(actions) = self.schema_actions(schema, OnConflict::KeepTable)? else {
            return Ok(None);
        };
        let table = self.loaded()?;
        let snapshot = table.snapshot().map_err(|e| self.open_err(e))?;
        let added: Vec<_> = actions
            .iter()
            .find_map(|a| match a {
                Action::Metadata(m) => m.parse_schema().ok(),
                _ => None,
            })
            .map(|s| {
                s.fields()
                    .filter(|f| snapshot.schema().field(f.name()).is_none())
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        let finalized = CommitBuilder::from(no_hooks())
            .with_actions(actions)
            .build(
                Some(snapshot),
                table.log_store(),
                DeltaOperation::AddColumn { fields: added },
            )
            .await
            .map_err(|source| SinkError::Commit {
                url: self.url.to_string(),
                source,
            })?;
        let version = version_i64(finalized.version());
        if let Some(t) = self.table.as_mut() {
            t.state = Some(finalized.snapshot());
        }
        Ok(Some(version))
    }

    /// The table's properties (its metaData `configuration`); empty before it exists.
    pub fn properties(&self) -> BTreeMap<String, String> {
        self.loaded()
            .ok()
            .and_then(|t| t.snapshot().ok())
            .map(|s| {
                s.metadata()
                    .configuration()
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Sets table `properties` (checked by [`crate::properties::check_properties`]) in one
    /// commit, with the protocol upgrade they need (e.g. `changeDataFeed`); no data changes.
    /// Returns the new version, `None` when every property already had its value.
    pub async fn set_properties(
        &mut self,
        properties: &BTreeMap<String, String>,
    ) -> Result<Option<i64>, SinkError> {
        self.refresh().await?;
        let table = self.loaded()?;
        let snapshot = table.snapshot().map_err(|e| self.open_err(e))?;
        let current = snapshot.metadata().configuration();
        let changed: HashMap<String, String> = properties
            .iter()
            .filter(|(k, v)| current.get(*k) != Some(*v))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if changed.is_empty() {
            return Ok(None);
        }
        let mut metadata = snapshot.metadata().clone();
        for (k, v) in &changed {
            metadata = metadata
                .add_config_key(k.clone(), v.clone())
                .map_err(|e| self.schema_err(e.to_string()))?;
        }
        let mut merged = current.clone();
        merged.extend(changed.clone());
        let mut actions = Vec::new();
        if let Some(protocol) =
            self.protocol_upgrade(snapshot.protocol(), &snapshot.schema(), &merged)?
        {
            actions.push(Action::Protocol(protocol));
        }
        actions.push(Action::Metadata(metadata));
        let finalized = CommitBuilder::from(no_hooks())
            .with_actions(actions)
            .build(
                Some(snapshot),
                table.log_store(),
                DeltaOperation::SetTableProperties {
                    properties: changed,
                },
            )
            .await
            .map_err(|source| SinkError::Commit {
                url: self.url.to_string(),
                source,
            })?;
        let version = version_i64(finalized.version());
        if let Some(t) = self.table.as_mut() {
            t.state = Some(finalized.snapshot());
        }
        Ok(Some(version))
    }

    /// Every commit of pipeline `app_id` the table's log still holds, oldest first, and the
    /// oldest version the log holds (0 unless log clean-up removed older commits: then
    /// commits of the pipeline may be missing from the list).
    pub async fn pipeline_commits(
        &mut self,
        app_id: &str,
    ) -> Result<(Vec<PipelineCommit>, i64), SinkError> {
        let mut commits = self.commits_of(app_id, None).await?;
        commits.reverse();
        let store = self.loaded()?.object_store();
        let oldest = crate::repair::oldest_commit(store.as_ref())
            .await
            .map_err(|detail| self.schema_err(detail))?
            .unwrap_or(0);
        Ok((commits, oldest))
    }

    /// The commits of pipeline `app_id` made after table version `after` (all when `None`),
    /// oldest first, with the oldest version the log still holds: what an `s3://`
    /// checkpoint's fast-forward reads, one log read for the versions since its snapshot.
    pub async fn pipeline_commits_after(
        &mut self,
        app_id: &str,
        after: Option<i64>,
    ) -> Result<Vec<PipelineCommit>, SinkError> {
        self.refresh().await?;
        let depth = match (after, self.version()) {
            (_, None) => return Ok(Vec::new()),
            (Some(after), Some(latest)) if after >= latest => return Ok(Vec::new()),
            (Some(after), Some(latest)) => Some((latest - after) as usize),
            (None, Some(_)) => None,
        };
        let mut commits = self.commits_of(app_id, depth).await?;
        commits.reverse();
        Ok(commits)
    }

    /// [`SinkError::AlreadyCommitted`] when the table's txn version for `app_id` is already
    /// ≥ `batch_id`: committing again would duplicate rows.
    pub(crate) async fn refuse_committed(
        &mut self,
        app_id: &str,
        batch_id: i64,
    ) -> Result<(), SinkError> {
        match self.txn_version(app_id).await? {
            Some(txn_version) if txn_version >= batch_id => Err(SinkError::AlreadyCommitted {
                url: self.url.to_string(),
                app_id: app_id.to_string(),
                batch_id,
                txn_version,
            }),
            _ => Ok(()),
        }
    }

    /// Takes a commit's resulting state as the latest.
    pub(crate) fn set_state(&mut self, state: deltalake::table::state::DeltaTableState) {
        if let Some(t) = self.table.as_mut() {
            t.state = Some(state);
        }
    }

    /// The table version whose commit holds batch `batch_id` of `app_id`, searching the
    /// newest `depth` commits. Used by recovery to record the version of a batch whose
    /// commit landed before a crash; `None` when not found within `depth`.
    pub async fn find_batch_commit(
        &mut self,
        app_id: &str,
        batch_id: i64,
        depth: usize,
    ) -> Result<Option<i64>, SinkError> {
        let commits = self.commits_of(app_id, Some(depth)).await?;
        Ok(commits
            .iter()
            .find(|c| c.batch_id == batch_id)
            .map(|c| c.version))
    }

    /// The commitInfo of the newest `depth` commits (all when `None`) of the latest version,
    /// newest first, each with its version; empty before the table exists.
    pub(crate) async fn recent_commits(
        &mut self,
        depth: Option<usize>,
    ) -> Result<Vec<(i64, deltalake::kernel::CommitInfo)>, SinkError> {
        self.refresh().await?;
        let Some(latest) = self.version() else {
            return Ok(Vec::new());
        };
        let infos: Vec<_> =
            self.loaded()?
                .history(depth)
                .try_collect()
                .await
                .map_err(|source| SinkError::History {
                    url: self.url.to_string(),
                    source,
                })?;
        // History comes newest first, one entry per version without gaps.
        Ok(infos
            .into_iter()
            .enumerate()
            .map(|(i, info)| (latest - i as i64, info))
            .collect())
    }

    /// The commits of pipeline `app_id` among the newest `depth` (all when `None`), newest
    /// first.
    async fn commits_of(
        &mut self,
        app_id: &str,
        depth: Option<usize>,
    ) -> Result<Vec<PipelineCommit>, SinkError> {
        Ok(self
            .recent_commits(depth)
            .await?
            .into_iter()
            .filter(|(_, info)| {
                info.info.get(COMMIT_PIPELINE_KEY).and_then(|v| v.as_str()) == Some(app_id)
            })
            .filter_map(|(version, info)| {
                Some(PipelineCommit {
                    version,
                    batch_id: info.info.get(COMMIT_BATCH_KEY)?.as_i64()?,
                    timestamp_ms: info.timestamp,
                    files: info
                        .info
                        .get(COMMIT_FILES_KEY)
                        .and_then(|v| serde_json::from_value(v.clone()).ok()),
                })
            })
            .collect())
    }
}

/// A batch commit's properties: the pipeline's `txn` action, and commitInfo naming the
/// pipeline, the batch and its source files.
pub(crate) fn commit_properties(
    app_id: &str,
    batch_id: i64,
    files: &[BatchFile],
) -> CommitProperties {
    let files = serde_json::to_value(files).unwrap_or_default();
    no_hooks()
        .with_application_transaction(Transaction::new(app_id, batch_id))
        .with_metadata([
            (COMMIT_PIPELINE_KEY.to_string(), serde_json::json!(app_id)),
            (COMMIT_BATCH_KEY.to_string(), serde_json::json!(batch_id)),
            (COMMIT_FILES_KEY.to_string(), files),
        ])
}

/// Commit properties without delta-rs's post-commit hooks: inlet writes Delta checkpoints
/// and cleans up the log itself, after the commit and apart from it
/// ([`DeltaSink::checkpoint_if_due`], [`DeltaSink::clean_expired_log`]), so that a
/// clean-up the credentials may not do never turns a landed commit into an error.
pub(crate) fn no_hooks() -> CommitProperties {
    CommitProperties::default()
        .with_create_checkpoint(false)
        .with_cleanup_expired_logs(Some(false))
}

/// Delta versions are u64 in delta-rs and i64 in the checkpoint (SQLite integers); no table
/// reaches 2^63 commits.
pub(crate) fn version_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// A HEAD of commit `version`'s log entry: whether the table has that commit.
async fn head_commit(
    table: &DeltaTable,
    version: i64,
) -> object_store::Result<object_store::ObjectMeta> {
    table
        .object_store()
        .head(&crate::repair::commit_path(version))
        .await
}

/// The most commits [`txn_after`] reads one by one; past it, replaying from the last Delta
/// checkpoint (at most `delta.checkpointInterval` commits, 10 by default) reads less.
const TXN_COMMITS_READ_AT_MOST: i64 = 10;

/// `app_id`'s txn version as of table version `to`, given it was `known` at version `after`:
/// the newest `txn` of `app_id` in commits `after + 1 ..= to`, else `known`. `None` (the
/// caller replays the log) when commit `after` is gone (the table was deleted under a handle
/// that cannot tell), when more than [`TXN_COMMITS_READ_AT_MOST`] commits followed it, or
/// when a commit cannot be read or parsed.
async fn txn_after(
    table: &DeltaTable,
    app_id: &str,
    after: i64,
    to: i64,
    known: Option<i64>,
) -> Option<Option<i64>> {
    if to.checked_sub(after)? > TXN_COMMITS_READ_AT_MOST {
        return None;
    }
    head_commit(table, after).await.ok()?;
    let log = table.log_store();
    let mut txn = known;
    for version in after.checked_add(1)?..=to {
        let version = u64::try_from(version).ok()?;
        for action in crate::commit_log::commit_actions(log.as_ref(), version, Some("txn")).await? {
            let Some(body) = action.get("txn") else {
                continue;
            };
            if body.get("appId").and_then(|a| a.as_str()) == Some(app_id) {
                txn = Some(body.get("version").and_then(|v| v.as_i64())?);
            }
        }
    }
    Some(txn)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field};
    use arrow::record_batch::RecordBatch;

    fn schema() -> Schema {
        Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
        ])
    }

    /// The table at `url`, created with [`schema`].
    async fn created(url: &Url) -> DeltaSink {
        let mut sink = DeltaSink::open(url, &HashMap::new()).await.expect("open");
        sink.create(&schema(), &[], &BTreeMap::new())
            .await
            .expect("create");
        sink
    }

    fn batch(ids: &[i64]) -> RecordBatch {
        let names: Vec<String> = ids.iter().map(|i| format!("n{i}")).collect();
        RecordBatch::try_new(
            Arc::new(schema()),
            vec![
                Arc::new(Int64Array::from(ids.to_vec())),
                Arc::new(StringArray::from(names)),
            ],
        )
        .expect("batch")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_bulk_batch_encodes_in_several_lanes_and_every_row_commits_once() {
        use deltalake::parquet::file::reader::{FileReader, SerializedFileReader};
        use deltalake::parquet::record::RowAccessor;
        let dir = tempfile::tempdir().expect("tempdir");
        let url = Url::from_directory_path(dir.path()).expect("url");
        let mut sink = created(&url).await;
        // A lane opens after every open lane took one byte: three lanes from the third batch.
        let mut writer = sink.writer(64 << 20).expect("writer").with_lanes(3, 1);
        let mut ids = Vec::new();
        for b in 0..9i64 {
            let chunk: Vec<i64> = (b * 100..b * 100 + 100).collect();
            writer.write(batch(&chunk)).await.expect("write");
            ids.extend(chunk);
        }
        let staged = writer.finish().await.expect("finish");
        assert_eq!(staged.rows(), 900);
        let files = staged.files();
        assert_eq!(files.len(), 3, "one file per lane: {files:?}");
        sink.commit_batch("p", 1, staged, None, &[])
            .await
            .expect("commit");
        let mut read = Vec::new();
        for f in &files {
            let file = std::fs::File::open(dir.path().join(&f.path)).expect("data file");
            let reader = SerializedFileReader::new(file).expect("parquet");
            for row in reader.get_row_iter(None).expect("rows") {
                read.push(row.expect("row").get_long(0).expect("id"));
            }
        }
        read.sort_unstable();
        assert_eq!(read, ids, "every row in exactly one file");
    }

    /// Writers creating one table at the same moment: one makes version 0 and every other
    /// loads it. None commits its own `metaData` after it, which would replace the first
    /// writer's columns with its own (delta-rs retries a lost version 0 at version 1).
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn writers_creating_one_table_at_once_all_keep_the_first_schema() {
        for _ in 0..10 {
            let dir = tempfile::tempdir().expect("tempdir");
            let url = Url::from_directory_path(dir.path()).expect("url");
            let writers = 6;
            let start = Arc::new(tokio::sync::Barrier::new(writers));
            let mut tasks = Vec::new();
            for w in 0..writers {
                let (url, start) = (url.clone(), start.clone());
                tasks.push(tokio::spawn(async move {
                    let mut sink = DeltaSink::open(&url, &HashMap::new()).await.expect("open");
                    let own = Schema::new(vec![Field::new(format!("c{w}"), DataType::Int64, true)]);
                    start.wait().await;
                    sink.create(&own, &[], &BTreeMap::new())
                        .await
                        .expect("create");
                    (sink.version(), sink.arrow_schema().expect("schema"))
                }));
            }
            let mut seen = Vec::new();
            for task in tasks {
                seen.push(task.await.expect("task"));
            }
            let log: Vec<String> = std::fs::read_dir(dir.path().join("_delta_log"))
                .expect("log")
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".json"))
                .collect();
            assert_eq!(
                log,
                vec![crate::repair::commit_name(0)],
                "one commit, version 0"
            );
            let reopened = DeltaSink::open(&url, &HashMap::new()).await.expect("open");
            let table = reopened.arrow_schema().expect("schema").expect("exists");
            for (version, schema) in seen {
                assert_eq!(version, Some(0));
                assert_eq!(
                    schema.as_deref(),
                    Some(table.as_ref()),
                    "every writer has the table's schema"
                );
            }
        }
    }

    #[tokio::test]
    async fn commit_carries_txn_and_refuses_replays() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = Url::from_directory_path(dir.path()).expect("url");
        let mut sink = DeltaSink::open(&url, &HashMap::new()).await.expect("open");
        assert_eq!(sink.version(), None);
        sink.create(&schema(), &[], &BTreeMap::new())
            .await
            .expect("create");
        assert_eq!(sink.txn_version("p").await.expect("txn"), None);

        let mut writer = sink.writer(64 << 20).expect("writer");
        writer.write(batch(&[1, 2, 3])).await.expect("write");
        let staged = writer.finish().await.expect("finish");
        assert_eq!(staged.rows(), 3);
        let v = sink
            .commit_batch("p", 1, staged, None, &[])
            .await
            .expect("commit");
        assert_eq!(v, 1);
        assert_eq!(sink.txn_version("p").await.expect("txn"), Some(1));
        assert_eq!(
            sink.find_batch_commit("p", 1, 10).await.expect("find"),
            Some(1)
        );
        assert_eq!(
            sink.find_batch_commit("p", 2, 10).await.expect("find"),
            None
        );

        let mut writer = sink.writer(64 << 20).expect("writer");
        writer.write(batch(&[4])).await.expect("write");
        let staged = writer.finish().await.expect("finish");
        let err = sink
            .commit_batch("p", 1, staged, None, &[])
            .await
            .expect_err("replay");
        assert!(
            err.to_string()
                .contains("already holds batch 1 of pipeline 'p'"),
            "{err}"
        );

        let reopened = DeltaSink::open(&url, &HashMap::new())
            .await
            .expect("reopen");
        let arrow = reopened.arrow_schema().expect("schema").expect("exists");
        assert_eq!(arrow.fields().len(), 2);
    }

    /// A sink that knows its txn reads the commits another writer made since, so a second
    /// runner of the same pipeline committing a batch is seen, and another pipeline's txn
    /// is not taken for this one's.
    #[tokio::test]
    async fn a_known_txn_follows_commits_another_writer_made_since() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = Url::from_directory_path(dir.path()).expect("url");
        let mut ours = created(&url).await;
        let rows = staged(&ours, &[1]).await;
        ours.commit_batch("p", 1, rows, None, &[])
            .await
            .expect("commit");
        assert_eq!(ours.txn_version("p").await.expect("txn"), Some(1));

        let mut other = DeltaSink::open(&url, &HashMap::new()).await.expect("open");
        for (app, batch_id) in [("p", 5), ("q", 9)] {
            let rows = staged(&other, &[batch_id]).await;
            other
                .commit_batch(app, batch_id, rows, None, &[])
                .await
                .expect("commit");
        }
        assert_eq!(ours.txn_version("p").await.expect("txn"), Some(5));
        assert_eq!(ours.txn_version("q").await.expect("txn"), Some(9));
        assert_eq!(ours.txn_version("p").await.expect("txn"), Some(5));
        let rows = staged(&ours, &[2]).await;
        let err = ours
            .commit_batch("p", 5, rows, None, &[])
            .await
            .expect_err("the other writer committed batch 5");
        assert!(err.to_string().contains("already holds batch 5"), "{err}");
    }

    /// Rows with `ids` written to staged files of `sink`'s table, not committed.
    async fn staged(sink: &DeltaSink, ids: &[i64]) -> StagedFiles {
        let mut writer = sink.writer(64 << 20).expect("writer");
        writer.write(batch(ids)).await.expect("write");
        writer.finish().await.expect("finish")
    }

    #[tokio::test]
    async fn a_batch_commit_can_add_columns() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = Url::from_directory_path(dir.path()).expect("url");
        let mut sink = created(&url).await;
        let mut before = sink.writer(64 << 20).expect("writer");
        before.write(batch(&[1])).await.expect("write");
        let mut staged = before.finish().await.expect("finish");

        let mut fields: Vec<Field> = schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        fields.push(Field::new("c", DataType::Boolean, true));
        let evolved = Arc::new(Schema::new(fields));
        let mut after = sink
            .writer_for_schema(evolved.clone(), 64 << 20)
            .expect("writer");
        let b = RecordBatch::try_new(
            evolved.clone(),
            vec![
                Arc::new(Int64Array::from(vec![2])),
                Arc::new(StringArray::from(vec!["n2"])),
                Arc::new(arrow::array::BooleanArray::from(vec![true])),
            ],
        )
        .expect("batch");
        after.write(b).await.expect("write");
        staged.extend(after.finish().await.expect("finish"));
        assert_eq!(staged.rows(), 2);
        sink.commit_batch("p", 1, staged, Some(&evolved), &[])
            .await
            .expect("commit");

        let reopened = DeltaSink::open(&url, &HashMap::new())
            .await
            .expect("reopen");
        let arrow = reopened.arrow_schema().expect("schema").expect("exists");
        let names: Vec<&str> = arrow.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, vec!["id", "name", "c"]);
    }

    fn with_field(extra: Field) -> Arc<Schema> {
        let mut fields: Vec<Field> = schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        fields.push(extra);
        Arc::new(Schema::new(fields))
    }

    /// Rows of `schema` for ids: `id`, `name`, and nulls in every other column.
    fn rows_of(schema: &Arc<Schema>, ids: &[i64]) -> RecordBatch {
        let b = batch(ids);
        let columns = schema
            .fields()
            .iter()
            .map(|f| match b.column_by_name(f.name()) {
                Some(c) => c.clone(),
                None => arrow::array::new_null_array(f.data_type(), ids.len()),
            })
            .collect();
        RecordBatch::try_new(schema.clone(), columns).expect("batch")
    }

    async fn commit_with(
        sink: &mut DeltaSink,
        app: &str,
        batch_id: i64,
        schema: &Arc<Schema>,
    ) -> Result<i64, SinkError> {
        let mut w = sink.writer_for_schema(schema.clone(), 64 << 20)?;
        w.write(rows_of(schema, &[batch_id])).await?;
        let staged = w.finish().await?;
        sink.commit_batch(app, batch_id, staged, Some(schema), &[])
            .await
    }

    fn protocol_json(sink: &DeltaSink) -> serde_json::Value {
        let table = sink.loaded().expect("loaded");
        serde_json::to_value(table.snapshot().expect("snapshot").protocol()).expect("json")
    }

    #[tokio::test]
    async fn a_commit_adding_a_timestamp_ntz_column_declares_its_feature() {
        use arrow::datatypes::TimeUnit;
        let dir = tempfile::tempdir().expect("tempdir");
        let url = Url::from_directory_path(dir.path()).expect("url");
        let mut sink = created(&url).await;
        assert_eq!(protocol_json(&sink)["minReaderVersion"], 1);
        let ntz = with_field(Field::new(
            "at",
            DataType::Timestamp(TimeUnit::Microsecond, None),
            true,
        ));
        commit_with(&mut sink, "p", 1, &ntz).await.expect("commit");
        // Reopened, the table loads (the kernel refuses it without the feature) and says so.
        let mut reopened = DeltaSink::open(&url, &HashMap::new())
            .await
            .expect("reopen");
        let p = protocol_json(&reopened);
        assert_eq!(
            p["readerFeatures"],
            serde_json::json!(["timestampNtz"]),
            "{p}"
        );
        assert!(
            p["writerFeatures"]
                .as_array()
                .expect("list")
                .contains(&serde_json::json!("timestampNtz")),
            "{p}"
        );
        // And takes later commits (delta-rs checks the feature on every write).
        let mut w = reopened.writer(64 << 20).expect("writer");
        w.write(rows_of(&ntz, &[2])).await.expect("write");
        let staged = w.finish().await.expect("finish");
        reopened
            .commit_batch("p", 2, staged, None, &[])
            .await
            .expect("later commit");
    }

    #[tokio::test]
    async fn a_stale_batch_never_replaces_a_column_type_and_keeps_others_columns() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = Url::from_directory_path(dir.path()).expect("url");
        let mut first = created(&url).await;
        let mut second = DeltaSink::open(&url, &HashMap::new()).await.expect("open");
        // The first writer adds x as a string; the second, which read the table before,
        // adds x as a number.
        commit_with(
            &mut first,
            "first",
            1,
            &with_field(Field::new("x", DataType::Utf8, true)),
        )
        .await
        .expect("first commit");
        let err = commit_with(
            &mut second,
            "second",
            1,
            &with_field(Field::new("x", DataType::Int64, true)),
        )
        .await
        .expect_err("conflict");
        assert!(
            err.is_transient(),
            "the batch is replayed under the table's schema: {err}"
        );
        assert!(
            err.to_string().starts_with("column 'x' of Delta table"),
            "{err}"
        );
        // A stale batch adding another column keeps the first writer's.
        commit_with(
            &mut second,
            "second",
            2,
            &with_field(Field::new("y", DataType::Boolean, true)),
        )
        .await
        .expect("second commit");
        let reopened = DeltaSink::open(&url, &HashMap::new())
            .await
            .expect("reopen");
        let arrow = reopened.arrow_schema().expect("schema").expect("exists");
        let cols: Vec<(String, DataType)> = arrow
            .fields()
            .iter()
            .map(|f| (f.name().clone(), f.data_type().clone()))
            .collect();
        assert_eq!(
            cols,
            vec![
                ("id".into(), DataType::Int64),
                ("name".into(), DataType::Utf8),
                ("x".into(), DataType::Utf8),
                ("y".into(), DataType::Boolean)
            ]
        );
    }

    /// Two MERGE writers add one column with two types: the second's rows are cast to the
    /// table's type (checked), and the table's type never changes.
    #[tokio::test]
    async fn a_merge_casts_to_a_column_another_writer_added() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = Url::from_directory_path(dir.path()).expect("url");
        let mut first = created(&url).await;
        let mut second = DeltaSink::open(&url, &HashMap::new()).await.expect("open");
        commit_with(
            &mut first,
            "first",
            1,
            &with_field(Field::new("x", DataType::Utf8, true)),
        )
        .await
        .expect("first commit");
        let ints = with_field(Field::new("x", DataType::Int64, true));
        let rows = RecordBatch::try_new(
            ints.clone(),
            vec![
                Arc::new(Int64Array::from(vec![7])),
                Arc::new(StringArray::from(vec!["n7"])),
                Arc::new(Int64Array::from(vec![42])),
            ],
        )
        .expect("batch");
        let spec = crate::MergeSpec {
            keys: vec!["id".into()],
            sequence_by: "id".into(),
            delete_when: None,
            strategy: crate::MergeStrategy::CopyOnWrite,
            target_file_size: 128 << 20,
        };
        second
            .merge_batch("second", 1, vec![rows], &spec, &[])
            .await
            .expect("merge");
        let reopened = DeltaSink::open(&url, &HashMap::new())
            .await
            .expect("reopen");
        let arrow = reopened.arrow_schema().expect("schema").expect("exists");
        assert_eq!(
            arrow.field_with_name("x").expect("x").data_type(),
            &DataType::Utf8
        );
    }
}
