//! The batch loop: discover, dedupe, plan, read and write, commit, record. The exactly-once
//! protocol lives here and in `recovery.rs`, with its crash points named.

use std::sync::Arc;

use crate::driver::BATCH_ATTEMPTS;
use crate::unity::Catalog;
use anyhow::{bail, Context, Result};
use arrow::array::{Array, BooleanArray};
use arrow::datatypes::{Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use futures::StreamExt;
use inlet_checkpoint::{Checkpoint, FileState, NewFile, SkipReason};
use inlet_delta::{BatchFile, DeltaSink, MergeSpec, SinkError, StagedFiles, TableWriter};
use inlet_discover::{
    escape_controls, Discover, DiscoverError, FileEvent, ListingDiscoverer, ListingOptions,
    NotificationDiscoverer, SourceStore,
};
use inlet_format::{DecodeOptions, Decoded, FormatError, SchemaSample};
use inlet_schema::EvolutionMode;
use inlet_transform::Transform;
use std::collections::HashMap;
use tracing::{debug, info, info_span, warn, Instrument};

use crate::bad_records::BadRecords;
use crate::config::{Config, SinkMode};
use crate::faults::{FaultPoint, Faults};
use crate::observe;
use crate::progress::{Progress, RunStats};


/// A file planned into a batch.
#[derive(Debug, Clone)]
pub struct PlannedFile {
    pub path: String,
    /// As found (unquoted); the version read when `allow_overwrites` pins it.
    pub etag: String,
    pub size: u64,
    pub modified_ms: i64,
}

/// Everything one run holds: the locked checkpoint, the source, the table.
pub struct Pipeline {
    pub(crate) cfg: Config,
    pub(crate) checkpoint: Checkpoint,
    pub(crate) sink: DeltaSink,
    pub(crate) source: SourceStore,
    /// `clean_source = "archive"`: where processed files move.
    pub(crate) archive: Option<SourceStore>,
    /// When the checkpoint was last compacted (`max_file_age`).
    pub(crate) compacted_at: Option<std::time::Instant>,
    pub(crate) discover: Box<dyn Discover>,
    /// With notifications: the listing behind `include_existing_files` and backfills.
    pub(crate) backfill: Option<ListingDiscoverer>,
    bad_records: BadRecords,
    transform: Transform,
    faults: Faults,
    pub(crate) stats: RunStats,
    pub(crate) progress: Progress,
    /// `uc://` sinks: the catalog that vends the table's credentials.
    catalog: Option<Catalog>,
    /// Files inference has just walked whole, each with the schema all its lines fit: the
    /// batch that inferred decodes them without checking each line again.
    known_fit: HashMap<String, Schema>,
}

/// Opens the source and the table (checking both are reachable, before anything is
/// written), then the checkpoint with its runner lock. `draining`: the run stops when
/// nothing is left (`--available-now`, `--once`).
pub async fn start(mut cfg: Config, faults: Faults, draining: bool) -> Result<Pipeline> {
    crate::preflight::check_paths(&cfg)?;
    let source = SourceStore::open(&cfg.source_url, &cfg.source_options())?;
    crate::retry::transient_retried(
        "the source",
        BATCH_ATTEMPTS,
        inlet_discover::DiscoverError::is_transient,
        || source.check_reachable(),
    )
    .await?;
    let mut catalog = Catalog::resolve(&mut cfg).await?;
    let sink_options = cfg.sink_options();
    let mut sink = crate::retry::transient_retried(
        "the table",
        BATCH_ATTEMPTS,
        SinkError::is_transient,
        || DeltaSink::open(&cfg.table_url, &sink_options),
    )
    .await?;
    if let Some(catalog) = catalog.as_mut() {
        if let Some(options) = catalog.start(&sink.spark_fields()?, &mut cfg).await? {
            sink = DeltaSink::open(&cfg.table_url, &options).await?;
        }
    }
    let checkpoint = Checkpoint::open(&cfg.checkpoint_dir, &cfg.pipeline_id, crate::lock_holder())?;
    // Bad SQL, keys the table lacks and the like fail here, before any file is read.
    let stored = match checkpoint.latest_schema()? {
        Some(v) => Some(inlet_schema::from_json(&v.schema_json)?),
        None => None,
    };
    crate::preflight::check_sql(&cfg, stored.as_ref(), sink.arrow_schema()?.as_deref()).await?;
    let transform = Transform::new(cfg.transform.sql.as_deref());
    let archive = match &cfg.archive_url {
        Some(url) => {
            let store =
                SourceStore::open(url, &cfg.source_options()).context("source.archive_url")?;
            // A local archive directory is created by the first move; a bucket must exist.
            if store.bucket().is_some() {
                store
                    .check_reachable()
                    .await
                    .context("source.archive_url")?;
            }
            Some(store)
        }
        None => None,
    };
    let bad_records = BadRecords::open(
        &cfg.bad_records_url,
        &cfg.source_options(),
        &cfg.pipeline_id,
    )?;

    // Without include_existing_files, files older than the pipeline's first start are not
    // taken; that start time is kept so later runs draw the same line.
    let modified_after_ms = if cfg.source.include_existing_files {
        None
    } else {
        let first_start = match checkpoint.meta("first_start_ms")? {
            Some(v) => v
                .parse()
                .context("checkpoint meta first_start_ms is not a number")?,
            None => {
                let now = chrono::Utc::now().timestamp_millis();
                checkpoint.set_meta("first_start_ms", &now.to_string())?;
                now
            }
        };
        Some(first_start)
    };
    let listing = ListingDiscoverer::new(
        source.clone(),
        ListingOptions {
            path_glob: cfg.source.path_glob.clone(),
            modified_after_ms,
        },
    )?;
    let (discover, backfill): (Box<dyn Discover>, _) = match cfg.notification_options() {
        None => (Box::new(listing), None),
        Some(mut options) => {
            if draining {
                // Short long polls, so an empty queue is known within a second.
                options.max_wait_seconds = 1;
            }
            let queue = NotificationDiscoverer::connect(source.clone(), options).await?;
            (Box::new(queue), Some(listing))
        }
    };
    Ok(Pipeline {
        cfg,
        checkpoint,
        sink,
        source,
        archive,
        compacted_at: None,
        discover,
        backfill,
        stats: RunStats {
            bad_records_location: bad_records.url().to_string(),
            ..RunStats::default()
        },
        bad_records,
        transform,
        faults,
        progress: Progress::new(),
        catalog,
        known_fit: HashMap::new(),
    })
}

impl Pipeline {
    /// Steps 4–7 for a new batch: plan it durably, then write and commit it.
    pub(crate) async fn run_batch(&mut self, batch_id: i64, events: Vec<FileEvent>) -> Result<()> {
        let now = chrono::Utc::now().timestamp_millis();
        let new_files: Vec<NewFile> = events
            .iter()
            .map(|e| NewFile {
                path: e.path.clone(),
                etag: e.etag.clone(),
                size: e.size,
                last_modified_ms: e.last_modified_ms,
                discovered_at_ms: now,
            })
            .collect();
        self.checkpoint.plan_batch(batch_id, &new_files)?;
        self.faults.hit(FaultPoint::AfterPlan);
        let files = events
            .into_iter()
            .map(|e| PlannedFile {
                path: e.path,
                etag: e.etag,
                size: e.size,
                modified_ms: e.last_modified_ms,
            })
            .collect();
        self.write_and_commit(batch_id, files).await
    }

    /// Steps 5–7 for a planned batch, new or replayed: read and decode its files into data
    /// files under the table, commit them with the batch's txn action, record the commit.
    /// New columns met on the way join the schema in flight: the writer is closed, a writer
    /// for the wider schema takes over, and the commit carries the new schema.
    pub(crate) async fn write_and_commit(
        &mut self,
        batch_id: i64,
        files: Vec<PlannedFile>,
    ) -> Result<()> {
        self.renew_credentials().await?;
        let span = info_span!("batch", pipeline = %self.cfg.pipeline_id, batch = batch_id, files = files.len());
        async {
            let started = std::time::Instant::now();
            let (failed_before, skipped_before) = (self.stats.failed_files, self.stats.skipped_files);
            let landed: Vec<i64> = files.iter().map(|f| f.modified_ms).collect();
            let file_count = files.len() as u64;
            let bytes: u64 = files.iter().map(|f| f.size).sum();
            let Some(table_schema) = self.ensure_table(batch_id, &files).await? else {
                // Nothing in these files has a column yet (empty files, `{}` records, files
                // that cannot be read), so no row can come out of them: record each file's
                // outcome and the batch, without a Delta commit.
                self.record_columnless(batch_id, &files).await?;
                self.checkpoint.mark_committed(batch_id, None, Some(0), &[])?;
                self.stats.batches += 1;
                self.stats.files += file_count;
                self.progress.done_files(file_count, self.stats.rows);
                info!("batch had no columns to write; recorded without a Delta commit");
                return Ok(());
            };

            // Columns the config declares (hints, the rescued data column) join first.
            let mut schema = Arc::new(self.declared_schema(&table_schema));
            let mut changes: Vec<SchemaChange> = Vec::new();
            if schema.fields().len() != table_schema.fields().len() {
                changes.push(SchemaChange::new(
                    &table_schema,
                    schema.clone(),
                    None,
                    "declared in the config: schema.hints or schema.rescued_data_column",
                ));
            }
            // Appends without SQL stream file by file into Parquet (a writer exists only
            // then); SQL and MERGE see the whole batch (bounded by max_bytes_per_batch) as
            // the table `source`.
            let streaming = self.streaming();
            let mut writer = if streaming {
                Some(self.writer((!changes.is_empty()).then(|| schema.clone()))?)
            } else {
                None
            };
            let mut staged = StagedFiles::default();
            let mut collected: Vec<(PlannedFile, Vec<RecordBatch>)> = Vec::new();
            let mut file_rows = Vec::with_capacity(files.len());
            let mut settings = self.decode_settings();
            settings.known_fit = Arc::new(std::mem::take(&mut self.known_fit));
            let source = self.source.clone();
            let compression = self.cfg.source.compression;
            let planned = files.clone();
            // The batch's own inference, made when a file first brings new columns.
            let mut batch_sample: Option<Schema> = None;
            let read_schema = schema.clone();
            let read_settings = settings.clone();
            let ahead = self.cfg.source.read_ahead();
            // Reads and decodes are driven by their own task, so they go on while this loop
            // encodes Parquet (a stream polled only here would stall during each write).
            let (tx, mut decoded) = tokio::sync::mpsc::channel(ahead);
            let _reader = AbortOnDrop(tokio::spawn(async move {
                let mut reads = futures::stream::iter(files)
                    .map(|file| {
                        let source = source.clone();
                        let schema = read_schema.clone();
                        let settings = read_settings.clone();
                        async move {
                            let outcome = read_file(&source, &file, compression, schema, settings).await;
                            (file, outcome)
                        }
                    })
                    .buffered(ahead);
                while let Some(read) = reads.next().await {
                    if tx.send(read).await.is_err() {
                        break;
                    }
                }
            }));
            while let Some((file, outcome)) = decoded.recv().await {
                let (data, mut result) = match outcome {
                    Ok(read) => read,
                    Err(ReadError::Source(e)) => return Err(e.into()),
                    Err(ReadError::Skipped(reason)) => {
                        warn!(file = %escape_controls(&file.path), reason = %reason, "file not read; recorded as skipped");
                        self.checkpoint.set_file_skipped(batch_id, &file.path, reason)?;
                        self.stats.skipped_files += 1;
                        continue;
                    }
                };
                // Files read ahead were decoded with the schema of their time; a file with
                // columns the schema lacks makes it wider, then is decoded again.
                let mut decoded_with: Option<SchemaRef> = None;
                let outcome = loop {
                    match result {
                        Err(e) => break Err(e),
                        Ok(Decoded::Rows {
                            batches,
                            rows,
                            rescued_rows,
                            bad_records,
                        }) => break Ok((batches, rows, rescued_rows, bad_records)),
                        Ok(Decoded::NewColumns(fields)) => {
                            if self.cfg.schema.evolution == EvolutionMode::FailOnNewColumns {
                                bail!(
                                    "{} has new column(s) {} and schema.evolution is \"fail_on_new_columns\"; \
                                     batch {batch_id} is kept and retried by the next run: set schema.evolution to \
                                     \"add_new_columns\" or \"rescue\", or add the columns to schema.hints, then run again",
                                    file.path,
                                    describe(&fields),
                                );
                            }
                            if decoded_with.as_ref() == Some(&schema) {
                                bail!(
                                    "{}: columns {} are still unknown after the schema took them in; please report this",
                                    file.path,
                                    describe(&fields)
                                );
                            }
                            // Typed over the batch (as the first batch infers), not by
                            // whichever file happened to have the column first.
                            let fields = self.batch_types(&file, &planned, fields, &mut batch_sample).await?;
                            let evolved = Arc::new(inlet_schema::with_columns(&schema, &fields));
                            if evolved.fields().len() > schema.fields().len() {
                                let why = format!("new in {}", file.path);
                                changes.push(SchemaChange::new(&schema, evolved.clone(), Some(file.path.clone()), &why));
                                info!(file = %file.path, columns = %describe(&fields), "schema evolves: adding columns in flight");
                                if let Some(done) = writer.take() {
                                    staged.extend(done.finish().await?);
                                    writer = Some(self.writer(Some(evolved.clone()))?);
                                }
                                schema = evolved;
                            }
                            decoded_with = Some(schema.clone());
                            result = decode_blocking(file.path.clone(), data.clone(), schema.clone(), settings.clone()).await;
                        }
                    }
                };
                match outcome {
                    Ok((batches, rows, rescued_rows, bad_records)) => {
                        match writer.as_mut() {
                            Some(w) => {
                                let writer_schema = w.schema();
                                for batch in batches {
                                    w.write(fit_to(batch, &writer_schema)?).await?;
                                }
                            }
                            None => collected.push((file.clone(), batches)),
                        }
                        if !bad_records.is_empty() {
                            self.bad_records.file_records(batch_id, &file.path, &bad_records).await?;
                            self.stats.note_bad_records(&file.path, bad_records.len() as u64);
                        }
                        self.stats.rescued_rows += rescued_rows;
                        file_rows.push((file.path, rows as i64));
                    }
                    Err(e) => {
                        warn!(file = %escape_controls(&file.path), error = %e, "file cannot be decoded; recorded as failed");
                        self.bad_records.failed_file(batch_id, &file.path, &e.to_string()).await?;
                        self.checkpoint.set_file_failed(batch_id, &file.path, &e.to_string())?;
                        self.stats.failed_files += 1;
                        self.stats.failures.push((file.path, e.to_string()));
                    }
                }
            }
            drop(decoded);
            let manifest = self.manifest(batch_id, &file_rows)?;
            self.sink.record_files(manifest);
            let (rows, version) = match writer {
                Some(w) => {
                    staged.extend(w.finish().await?);
                    let rows = staged.rows();
                    self.faults.hit(FaultPoint::AfterWrite);
                    let new_schema = (!changes.is_empty()).then(|| schema.clone());
                    (rows, self.commit_staged(batch_id, staged, new_schema.as_deref()).await?)
                }
                None => self.transform_and_write(batch_id, &schema, collected).await?,
            };
            self.faults.hit(FaultPoint::AfterCommit);
            if version.is_some() || !streaming {
                self.record_schema_changes(batch_id, &changes)?;
            }
            self.checkpoint.mark_committed(batch_id, version, Some(rows as i64), &file_rows)?;
            self.faults.hit(FaultPoint::AfterRecord);
            if version.is_some() {
                self.catalog_after_commit().await?;
            }

            self.stats.batches += 1;
            self.stats.files += file_count;
            self.stats.rows += rows;
            self.stats.bytes += bytes;
            self.progress.done_files(file_count, self.stats.rows);
            observe::batch_committed(&observe::BatchDone {
                files: file_count,
                failed: self.stats.failed_files - failed_before,
                skipped: self.stats.skipped_files - skipped_before,
                bytes,
                rows,
                seconds: started.elapsed().as_secs_f64(),
                landed_ms: &landed,
                delta_version: version,
            });
            if !changes.is_empty() {
                if let Some(latest) = self.checkpoint.latest_schema()? {
                    observe::schema_version(latest.version);
                }
            }
            info!(rows, bytes, version = ?version, "batch committed");
            Ok(())
        }
        .instrument(span)
        .await
    }

    /// The outcome of each file of a batch none of whose files has a column: skipped (gone,
    /// unreadable name), failed (cannot be decoded, dead-lettered), or committed with no rows.
    async fn record_columnless(&mut self, batch_id: i64, files: &[PlannedFile]) -> Result<()> {
        let settings = self.decode_settings();
        let empty = Arc::new(Schema::empty());
        for file in files {
            let outcome = read_file(
                &self.source,
                file,
                self.cfg.source.compression,
                empty.clone(),
                settings.clone(),
            )
            .await;
            let error = match outcome {
                Err(ReadError::Source(e)) => return Err(e.into()),
                Err(ReadError::Skipped(reason)) => {
                    warn!(file = %escape_controls(&file.path), reason = %reason, "file not read; recorded as skipped");
                    self.checkpoint
                        .set_file_skipped(batch_id, &file.path, reason)?;
                    self.stats.skipped_files += 1;
                    continue;
                }
                Ok((_, Err(e))) => e.to_string(),
                Ok((_, Ok(Decoded::NewColumns(fields)))) => bail!(
                    "{} has columns {} although the schema sample of batch {batch_id} found none: the file changed after it was sampled; \
                     the batch is kept and the next attempt samples it again",
                    escape_controls(&file.path),
                    describe(&fields)
                ),
                Ok((_, Ok(Decoded::Rows { bad_records, .. }))) => {
                    if !bad_records.is_empty() {
                        self.bad_records.file_records(batch_id, &file.path, &bad_records).await?;
                        self.stats.note_bad_records(&file.path, bad_records.len() as u64);
                    }
                    continue;
                }
            };
            warn!(file = %escape_controls(&file.path), error = %error, "file cannot be decoded; recorded as failed");
            self.bad_records
                .failed_file(batch_id, &file.path, &error)
                .await?;
            self.checkpoint
                .set_file_failed(batch_id, &file.path, &error)?;
            self.stats.failed_files += 1;
            self.stats.failures.push((file.path.clone(), error));
        }
        Ok(())
    }

    /// `uc://` sinks: renews the vended credentials when half their life has passed, and
    /// reopens the table with them. Called before every batch attempt, so a long
    /// continuous run never writes with credentials about to expire.
    pub(crate) async fn renew_credentials(&mut self) -> Result<()> {
        let Some(catalog) = self.catalog.as_mut() else {
            return Ok(());
        };
        if let Some(options) = catalog.renew_if_due(&mut self.cfg).await? {
            self.sink = DeltaSink::open(&self.cfg.table_url, &options).await?;
        }
        Ok(())
    }

    /// `uc://` sinks, after a commit: registers a table inlet created, or sends the catalog
    /// the columns a schema change added.
    async fn catalog_after_commit(&mut self) -> Result<()> {
        let Some(catalog) = self.catalog.as_mut() else {
            return Ok(());
        };
        if let Some(options) = catalog
            .after_commit(&self.sink.spark_fields()?, &mut self.cfg)
            .await?
        {
            self.sink = DeltaSink::open(&self.cfg.table_url, &options).await?;
        }
        Ok(())
    }

    /// The batch's source files as its commit records them (for `inlet checkpoint rebuild`):
    /// each with its outcome, and its rows where counted.
    fn manifest(&self, batch_id: i64, file_rows: &[(String, i64)]) -> Result<Vec<BatchFile>> {
        let rows: HashMap<&str, i64> = file_rows.iter().map(|(p, n)| (p.as_str(), *n)).collect();
        Ok(self
            .checkpoint
            .batch_files(batch_id)?
            .into_iter()
            .map(|f| BatchFile {
                rows: rows.get(f.path.as_str()).copied(),
                state: match f.state {
                    FileState::Pending => FileState::Committed.as_str().to_string(),
                    other => other.as_str().to_string(),
                },
                path: f.path,
                etag: f.etag,
                size: f.size,
                modified_ms: f.last_modified_ms,
                error: f.error,
            })
            .collect())
    }

    /// Whether batches stream straight to Parquet: appends with the default SQL.
    fn streaming(&self) -> bool {
        self.cfg.sink.mode == SinkMode::Append && self.transform.is_identity()
    }

    /// A writer of data files: for the table's own schema, or for `widened`, the schema the
    /// batch's commit will give the table.
    fn writer(&self, widened: Option<SchemaRef>) -> Result<TableWriter> {
        let size = self.cfg.sink.target_file_size;
        Ok(match widened {
            None => self.sink.writer(size)?,
            Some(schema) => self.sink.writer_for_schema(schema, size)?,
        })
    }

    /// Commits staged appends (none: no commit), tolerating a commit recovery missed.
    async fn commit_staged(
        &mut self,
        batch_id: i64,
        staged: StagedFiles,
        new_schema: Option<&Schema>,
    ) -> Result<Option<i64>> {
        if staged.rows() == 0 {
            return Ok(None);
        }
        match self
            .sink
            .commit_batch(&self.cfg.pipeline_id, batch_id, staged, new_schema)
            .await
        {
            Ok(v) => Ok(Some(v)),
            // Only possible when the checkpoint missed a commit that recovery should have
            // confirmed; the rows are in the table, so record it as committed.
            Err(SinkError::AlreadyCommitted { .. }) => {
                warn!("batch was already in the table; recording it as committed");
                Ok(self
                    .sink
                    .find_batch_commit(&self.cfg.pipeline_id, batch_id, 100)
                    .await?)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The non-streaming sink: the batch's rows (with `_metadata` when the SQL reads it)
    /// through the SQL, then appended (adding output columns the table lacks) or merged.
    async fn transform_and_write(
        &mut self,
        batch_id: i64,
        schema: &SchemaRef,
        collected: Vec<(PlannedFile, Vec<RecordBatch>)>,
    ) -> Result<(u64, Option<i64>)> {
        debug!("files decoded");
        let uses_metadata = self.transform.uses_metadata();
        let mut input = Vec::new();
        // Which file each input batch came from: without SQL, output batch i is input batch i.
        let mut origins = Vec::new();
        for (file, batches) in collected {
            for batch in batches {
                let batch = fit_to(batch, schema)?;
                origins.push(file.path.clone());
                input.push(if uses_metadata {
                    inlet_transform::with_metadata(&batch, &file.path, file.size, file.modified_ms)?
                } else {
                    batch
                });
            }
        }
        let identity = self.transform.is_identity();
        let output = if identity || input.is_empty() {
            input
        } else {
            let input_schema = input[0].schema();
            self.transform.run(input_schema, input).await?
        };
        let output = if self.cfg.sink.mode == SinkMode::Merge {
            // As the table will store them: an empty partition value is null (and so a key
            // with it is a null key).
            let partition_by = self.sink.partition_columns();
            let output = output
                .into_iter()
                .map(|b| inlet_delta::empty_partition_values_to_null(b, &partition_by))
                .collect::<Result<Vec<_>, _>>()?;
            let origin = |i: usize| {
                origins
                    .get(i)
                    .filter(|_| identity)
                    .cloned()
                    .unwrap_or_else(|| format!("transform output of batch {batch_id}"))
            };
            self.refuse_null_keys(batch_id, output, origin).await?
        } else {
            output
        };
        let output: Vec<RecordBatch> = output.into_iter().filter(|b| b.num_rows() > 0).collect();
        let Some(out_schema) = output.first().map(RecordBatch::schema) else {
            self.faults.hit(FaultPoint::AfterWrite);
            return Ok((0, None));
        };
        match self.cfg.sink.mode {
            SinkMode::Append => {
                let table = self
                    .sink
                    .arrow_schema()?
                    .unwrap_or_else(|| out_schema.clone());
                let extra: Vec<Field> = out_schema
                    .fields()
                    .iter()
                    .map(|f| f.as_ref().clone())
                    .collect();
                let target = Arc::new(inlet_schema::with_columns(&table, &extra));
                let changed = target.fields().len() != table.fields().len();
                let mut writer = self.writer(changed.then(|| target.clone()))?;
                let writer_schema = writer.schema();
                for batch in output {
                    writer.write(fit_to(batch, &writer_schema)?).await?;
                }
                let staged = writer.finish().await?;
                let rows = staged.rows();
                self.faults.hit(FaultPoint::AfterWrite);
                let version = self
                    .commit_staged(batch_id, staged, changed.then_some(target.as_ref()))
                    .await?;
                Ok((rows, version))
            }
            SinkMode::Merge => self.merge(batch_id, out_schema, output).await,
        }
    }

    /// Merge mode: rows with a null in any key column become bad records (of the file they
    /// came from, or of the transform's output) instead of rows. A key with a null matches no
    /// row in SQL, so such rows could never be updated or deleted; one rule for every path
    /// (within a batch and across batches) is to refuse them, visibly.
    async fn refuse_null_keys(
        &mut self,
        batch_id: i64,
        output: Vec<RecordBatch>,
        origin: impl Fn(usize) -> String,
    ) -> Result<Vec<RecordBatch>> {
        let mut kept = Vec::with_capacity(output.len());
        let mut refused: Vec<(String, Vec<String>)> = Vec::new();
        for (i, batch) in output.into_iter().enumerate() {
            let mut null_key: Option<BooleanArray> = None;
            for key in &self.cfg.sink.keys {
                let Some(column) = batch.column_by_name(key) else {
                    continue; // the MERGE names the missing column
                };
                let nulls = arrow::compute::is_null(column)?;
                null_key = Some(match null_key {
                    None => nulls,
                    Some(acc) => arrow::compute::or(&acc, &nulls)?,
                });
            }
            let Some(null_key) = null_key.filter(|m| m.true_count() > 0) else {
                kept.push(batch);
                continue;
            };
            let bad = arrow::compute::filter_record_batch(&batch, &null_key)?;
            let mut writer = arrow::json::LineDelimitedWriter::new(Vec::new());
            writer.write(&bad)?;
            writer.finish()?;
            let text = String::from_utf8_lossy(&writer.into_inner()).into_owned();
            let label = origin(i);
            let rows: Vec<String> = text.lines().map(str::to_string).collect();
            match refused.iter_mut().find(|(l, _)| *l == label) {
                Some((_, all)) => all.extend(rows),
                None => refused.push((label, rows)),
            }
            kept.push(arrow::compute::filter_record_batch(
                &batch,
                &arrow::compute::not(&null_key)?,
            )?);
        }
        let error = format!(
            "a key column ({}) is null: a row without its whole key cannot be merged",
            self.cfg.sink.keys.join(", ")
        );
        for (label, rows) in refused {
            warn!(file = %label, rows = rows.len(), "rows with a null key set aside as bad records");
            self.bad_records
                .rows_refused(batch_id, &label, &rows, &error)
                .await?;
            self.stats.note_bad_records(&label, rows.len() as u64);
        }
        Ok(kept)
    }

    /// MERGE: the latest row per key; rows older than a key's tombstone dropped; the
    /// batch's deletes recorded as tombstones; then one MERGE commit with the txn.
    async fn merge(
        &mut self,
        batch_id: i64,
        schema: SchemaRef,
        output: Vec<RecordBatch>,
    ) -> Result<(u64, Option<i64>)> {
        let spec = MergeSpec {
            keys: self.cfg.sink.keys.clone(),
            sequence_by: self.cfg.sink.sequence_by.clone().unwrap_or_default(),
            delete_when: self.cfg.sink.delete_when.clone(),
        };
        let started = std::time::Instant::now();
        let latest = inlet_transform::latest_per_key(
            schema,
            output,
            &spec.keys,
            &spec.sequence_by,
            spec.delete_when.as_deref(),
        )
        .await?;
        debug!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            "latest row per key"
        );
        let started = std::time::Instant::now();
        let mut kept = Vec::new();
        let mut deletes = Vec::new();
        let mut stale = 0u64;
        for (batch, flags) in latest.batches.iter().zip(&latest.deletes) {
            let keys = inlet_transform::row_keys(batch, &spec.keys)?;
            let seqs = inlet_transform::sortable_sequence(batch, &spec.sequence_by)?;
            let tombs = self.checkpoint.tombstones(&keys)?;
            let mask: BooleanArray = tombs
                .iter()
                .zip(&seqs)
                .map(|(tomb, seq)| {
                    Some(match (tomb, seq) {
                        (None, _) => true,
                        // Not older than the delete (equal: the delete itself, replayed).
                        (Some(t), Some(s)) => s >= t,
                        (Some(_), None) => false,
                    })
                })
                .collect();
            for i in 0..batch.num_rows() {
                if !mask.value(i) {
                    stale += 1;
                } else if flags.is_valid(i) && flags.value(i) {
                    if let Some(seq) = &seqs[i] {
                        deletes.push((keys[i].clone(), seq.clone()));
                    }
                }
            }
            let filtered = arrow::compute::filter_record_batch(batch, &mask)?;
            if filtered.num_rows() > 0 {
                kept.push(filtered);
            }
        }
        let rows: u64 = kept.iter().map(|b| b.num_rows() as u64).sum();
        let retain_ms = i64::try_from(
            self.cfg
                .sink
                .tombstone_retention_hours
                .saturating_mul(3_600_000),
        )
        .unwrap_or(i64::MAX);
        self.checkpoint
            .put_tombstones(batch_id, &deletes, retain_ms)?;
        self.faults.hit(FaultPoint::AfterWrite);
        if stale > 0 {
            info!(stale, "rows older than their key's delete were dropped");
        }
        if kept.is_empty() {
            return Ok((0, None));
        }
        debug!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            "tombstones checked"
        );
        let started = std::time::Instant::now();
        let merged = self
            .sink
            .merge_batch(&self.cfg.pipeline_id, batch_id, kept, &spec)
            .await;
        debug!(elapsed_ms = started.elapsed().as_millis() as u64, "MERGE");
        match merged {
            Ok(m) => {
                info!(
                    inserted = m.inserted,
                    updated = m.updated,
                    deleted = m.deleted,
                    files_scanned = m.files_scanned,
                    files_skipped = m.files_skipped,
                    "merged"
                );
                self.stats.inserted += m.inserted;
                self.stats.updated += m.updated;
                self.stats.deleted += m.deleted;
                Ok((rows, Some(m.version)))
            }
            Err(SinkError::AlreadyCommitted { .. }) => {
                warn!("batch was already in the table; recording it as committed");
                Ok((
                    rows,
                    self.sink
                        .find_batch_commit(&self.cfg.pipeline_id, batch_id, 100)
                        .await?,
                ))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// How files are decoded, from the config.
    fn decode_settings(&self) -> DecodeSettings {
        DecodeSettings {
            format: self.cfg.source.format,
            numbers: self.cfg.source.dynamodb_numbers,
            mode: self.cfg.schema.evolution,
            rescued_column: self.cfg.rescued_column().map(str::to_string),
            infer_types: self.cfg.schema.infer_column_types,
            hints: Arc::new(self.cfg.hints.clone()),
            csv: Arc::new(self.cfg.source.csv.clone()),
            partition_columns: Arc::new(self.cfg.source.partition_columns.clone()),
            pin_etag: self.cfg.source.allow_overwrites,
            known_fit: Arc::default(),
            cpu: Arc::new(tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get),
            )),
        }
    }

    /// The table's schema plus the columns the config declares and the table lacks: hinted
    /// columns and the rescued data column. (Hints do not change existing columns' types.)
    fn declared_schema(&self, table: &Schema) -> Schema {
        let hinted: Vec<Field> = self
            .cfg
            .hints
            .iter()
            .filter(|h| {
                !table
                    .fields()
                    .iter()
                    .any(|f| inlet_schema::same_column_name(f.name(), h.name()))
            })
            .cloned()
            .collect();
        let schema = inlet_schema::with_columns(table, &hinted);
        inlet_schema::with_rescued_column(&schema, self.cfg.rescued_column())
    }

    /// Stores the schema versions a committed batch made (once: a replay after a crash
    /// that recorded them already finds them).
    fn record_schema_changes(&mut self, batch_id: i64, changes: &[SchemaChange]) -> Result<()> {
        for change in changes {
            let json = inlet_schema::to_json(&change.schema);
            if self
                .checkpoint
                .latest_schema()?
                .is_some_and(|v| v.schema_json == json)
            {
                continue;
            }
            self.checkpoint.add_schema_version(
                &json,
                Some(batch_id),
                change.file.as_deref(),
                &change.reason,
            )?;
            self.stats.schema_changes.push(change.reason.clone());
        }
        Ok(())
    }

    /// The schema to decode with, which is the table's: when the table does not exist,
    /// infer a schema from the first files of this batch, store it as a schema version and
    /// create the table. `None` when the sample shows no columns at all.
    async fn ensure_table(
        &mut self,
        batch_id: i64,
        files: &[PlannedFile],
    ) -> Result<Option<SchemaRef>> {
        let streaming = self.streaming();
        let table = self.sink.arrow_schema()?;
        if let (Some(schema), true) = (&table, streaming) {
            if self.checkpoint.latest_schema()?.is_none() {
                self.checkpoint.add_schema_version(
                    &inlet_schema::to_json(schema),
                    Some(batch_id),
                    None,
                    "adopted from the existing table",
                )?;
            }
            return Ok(Some(schema.clone()));
        }
        // The source schema (what files are decoded with): stored, or inferred and stored.
        let source = match self.checkpoint.latest_schema()? {
            // Inferred by a run that crashed before creating the table: use the same schema.
            Some(stored) => inlet_schema::from_json(&stored.schema_json)?,
            None => {
                let started = std::time::Instant::now();
                // Files with no columns (empty, `{}` records, unreadable) say nothing: the
                // sample goes on past them, so no file of the batch goes unread.
                let mut rest = files;
                let mut budget = self.cfg.schema.sample_bytes;
                let (inferred, sampled) = loop {
                    let found = self.infer(rest, budget).await?;
                    self.known_fit.extend(found.known_fit);
                    if !found.schema.fields().is_empty() || !self.cfg.hints.is_empty() {
                        break (found.schema, found.files);
                    }
                    if found.cut && budget != u64::MAX {
                        // A file read only in part may hold columns further on: read whole.
                        budget = u64::MAX;
                        continue;
                    }
                    if found.covered == 0 || found.covered >= rest.len() {
                        return Ok(None);
                    }
                    rest = &rest[found.covered..];
                };
                debug!(
                    files = sampled,
                    infer_ms = started.elapsed().as_secs_f64() * 1e3,
                    "inferred the schema"
                );
                let hinted = inlet_schema::apply_hints(&inferred, &self.cfg.hints);
                let schema = inlet_schema::with_rescued_column(&hinted, self.cfg.rescued_column());
                self.checkpoint.add_schema_version(
                    &inlet_schema::to_json(&schema),
                    Some(batch_id),
                    files.first().map(|f| f.path.as_str()),
                    &format!("inferred from {sampled} file(s)"),
                )?;
                schema
            }
        };
        if table.is_some() {
            return Ok(Some(Arc::new(source)));
        }
        // The table's schema is what the SQL makes of the source's.
        let created = if streaming {
            source.clone()
        } else {
            self.transform.output_schema(&source).await?
        };
        crate::preflight::check_sql(&self.cfg, Some(&source), None).await?;
        let mut needed: Vec<(&str, &String)> = self
            .cfg
            .sink
            .partition_by
            .iter()
            .map(|c| ("sink.partition_by", c))
            .collect();
        needed.extend(self.cfg.sink.keys.iter().map(|c| ("sink.keys", c)));
        needed.extend(
            self.cfg
                .sink
                .sequence_by
                .iter()
                .map(|c| ("sink.sequence_by", c)),
        );
        for (key, column) in needed {
            if created.field_with_name(column).is_err() {
                bail!(
                    "{key} names column '{column}', which the table would not have (columns: {})",
                    inlet_schema::column_names(&created)
                );
            }
        }
        self.sink
            .create(&created, &self.cfg.sink.partition_by)
            .await?;
        info!(columns = created.fields().len(), table = %self.cfg.table_url, "created Delta table");
        if streaming {
            Ok(self.sink.arrow_schema()?)
        } else {
            Ok(Some(Arc::new(source)))
        }
    }

    /// The types of `fields`, new columns `file` brought, inferred over the batch's files
    /// (`file` first, then the others, within the sample bounds) as the first batch infers
    /// its schema: a column that holds integers in one file and fractions in another is a
    /// DOUBLE whichever file came first. Hints still decide where they name a column. The
    /// batch is sampled once (`sampled` keeps it); later new columns are looked up in it.
    async fn batch_types(
        &self,
        file: &PlannedFile,
        batch: &[PlannedFile],
        fields: Vec<Field>,
        sampled: &mut Option<Schema>,
    ) -> Result<Vec<Field>> {
        if batch.len() < 2 {
            return Ok(fields);
        }
        if sampled.is_none() {
            let order: Vec<PlannedFile> = std::iter::once(file.clone())
                .chain(batch.iter().filter(|f| f.path != file.path).cloned())
                .collect();
            let found = self.infer(&order, self.cfg.schema.sample_bytes).await?;
            debug!(files = found.files, "new columns typed over the batch");
            *sampled = Some(found.schema);
        }
        let Some(sampled) = sampled.as_ref() else {
            return Ok(fields);
        };
        let typed = fields.into_iter().map(|f| {
            let name = f.name().to_lowercase();
            match sampled
                .fields()
                .iter()
                .find(|s| s.name().to_lowercase() == name)
            {
                Some(s) => f.with_data_type(s.data_type().clone()),
                None => f,
            }
        });
        Ok(inlet_schema::hinted_types(
            typed.collect::<Vec<_>>().iter(),
            &self.cfg.hints,
        ))
    }

    /// Infers a schema from the first files of a batch, within the sample bounds. Files are
    /// read and sampled `read_concurrency` at a time, each apart, then merged in order.
    /// Also returns the files sampled whole whose every line fits its own inference.
    /// Also returns how many of `files` (from the first) the sample bounds let it read.
    async fn infer(&self, files: &[PlannedFile], sample_bytes: u64) -> Result<Inference> {
        // The byte budget is spent in file order, by stored size (a compressed file may give
        // more), so which files are sampled does not depend on timing.
        let mut chosen = Vec::new();
        let mut bytes = 0u64;
        for file in files.iter().take(self.cfg.schema.sample_files) {
            if bytes >= sample_bytes {
                break;
            }
            chosen.push((file.path.clone(), sample_bytes - bytes));
            bytes += file.size;
        }
        let covered = chosen.len();
        let infer_types = self.cfg.schema.infer_column_types;
        let shared = self.decode_settings();
        let mut samples = futures::stream::iter(chosen)
            .map(|(path, budget)| {
                let source = self.source.clone();
                let settings = shared.clone();
                let compression = self.cfg.source.compression;
                async move {
                    let data = match source.read(&path).await {
                        Ok(d) => d,
                        // Reading the batch records these as skipped.
                        Err(DiscoverError::NotFound { .. } | DiscoverError::Unaddressable { .. }) => return Ok(None),
                        Err(e) => return Err(e),
                    };
                    let _cpu = settings.cpu.clone().acquire_owned().await.ok();
                    let sampled = tokio::task::spawn_blocking(move || {
                        let data = inlet_format::decompress(&path, data, compression).ok()?;
                        // Row formats are sampled up to the byte budget; Parquet needs the file.
                        let cut = usize::try_from(budget).unwrap_or(usize::MAX);
                        let whole = data.len() <= cut;
                        let data = match settings.format {
                            inlet_format::Format::Parquet => data,
                            _ => data.slice(..data.len().min(cut)),
                        };
                        let mut sample = SchemaSample::new(infer_types);
                        match sample.add(&path, &data, &settings.options()) {
                            Ok(()) => {
                                let fitted = sample.fitted().filter(|_| whole).map(|f| (path, f));
                                Some((sample, fitted, !whole))
                            }
                            Err(e) => {
                                // The decode pass records this file as failed, with the same error.
                                warn!(file = %path, error = %e, "file left out of the schema sample");
                                None
                            }
                        }
                    })
                    .await
                    .ok()
                    .flatten();
                    Ok(sampled)
                }
            })
            .buffered(self.cfg.source.read_ahead());
        let mut merged = SchemaSample::new(infer_types);
        let mut known_fit = HashMap::new();
        let mut cut = false;
        while let Some(sample) = samples.next().await {
            if let Some((sample, fitted, partly)) = sample? {
                merged.merge(sample);
                known_fit.extend(fitted);
                cut |= partly;
            }
        }
        Ok(Inference {
            schema: merged.schema(),
            files: merged.files(),
            known_fit,
            covered,
            cut,
        })
    }
}

/// What a schema sample found.
struct Inference {
    schema: Schema,
    /// Files sampled.
    files: usize,
    /// Files sampled whole, each with the schema all its lines fit (see `known_fit`).
    known_fit: HashMap<String, Schema>,
    /// How many of the files given (from the first) the bounds let it read.
    covered: usize,
    /// Whether a file was read only in part (the byte budget ran out inside it).
    cut: bool,
}

/// A task aborted when its handle goes (a batch that fails stops its reads).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Why a planned file produced nothing to decode.
enum ReadError {
    /// Gone from the source, or rewritten since it was listed (`allow_overwrites`: the new
    /// version is a new file): recorded as skipped, for this reason.
    Skipped(SkipReason),
    /// The source could not be read; the batch stays planned and is replayed.
    Source(DiscoverError),
}

/// Decoding settings, owned so that decoding can run on a blocking thread.
#[derive(Clone)]
struct DecodeSettings {
    format: inlet_format::Format,
    numbers: inlet_format::NumberMode,
    mode: EvolutionMode,
    rescued_column: Option<String>,
    infer_types: bool,
    hints: Arc<Vec<Field>>,
    csv: Arc<inlet_format::CsvOptions>,
    partition_columns: Arc<Vec<String>>,
    /// Read the version with the planned ETag only (`allow_overwrites`).
    pin_etag: bool,
    /// `Pipeline::known_fit`, for the batch that inferred the schema.
    known_fit: Arc<HashMap<String, Schema>>,
    /// Files decompressed and decoded at once: one per core. Reads run `read_concurrency`
    /// ahead, but more decodes than cores only add memory.
    cpu: Arc<tokio::sync::Semaphore>,
}

impl DecodeSettings {
    fn options(&self) -> DecodeOptions<'_> {
        DecodeOptions {
            format: self.format,
            numbers: self.numbers,
            csv: &self.csv,
            mode: self.mode,
            rescued_column: self.rescued_column.as_deref(),
            infer_types: self.infer_types,
            hints: &self.hints,
            partition_columns: &self.partition_columns,
            known_to_fit: false,
        }
    }
}

/// A schema version a batch makes: the schema after the change, and why.
struct SchemaChange {
    schema: SchemaRef,
    file: Option<String>,
    reason: String,
}

impl SchemaChange {
    fn new(before: &Schema, after: SchemaRef, file: Option<String>, why: &str) -> Self {
        let diff = inlet_schema::diff(before, &after);
        Self {
            schema: after,
            file,
            reason: format!("added {} ({why})", diff.added.join(", ")),
        }
    }
}

fn describe(fields: &[Field]) -> String {
    fields
        .iter()
        .map(|f| format!("{} {}", f.name(), inlet_schema::ddl_type(f.data_type())))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The decompressed bytes of a file (kept for a second decode when the schema evolves) and
/// the first decode against `schema`.
async fn read_file(
    source: &SourceStore,
    file: &PlannedFile,
    compression: inlet_format::Compression,
    schema: SchemaRef,
    settings: DecodeSettings,
) -> Result<(Bytes, Result<Decoded, FormatError>), ReadError> {
    let path = file.path.as_str();
    let etag = Some(file.etag.as_str()).filter(|e| settings.pin_etag && !e.is_empty());
    let data = match source.read_version(path, etag).await {
        Ok(d) => d,
        Err(DiscoverError::NotFound { .. }) => {
            return Err(ReadError::Skipped(SkipReason::Deleted))
        }
        Err(DiscoverError::Changed { .. }) => return Err(ReadError::Skipped(SkipReason::Overwritten)),
        Err(DiscoverError::Unaddressable { reason, .. }) => {
            return Err(ReadError::Skipped(skip_reason(reason)))
        }
        Err(e) => return Err(ReadError::Source(e)),
    };
    // Held through decompression and decoding; the semaphore is never closed.
    let _cpu = settings.cpu.clone().acquire_owned().await.ok();
    // One blocking task for both steps: for small files the hand-off costs more than the work.
    let name = path.to_string();
    let done = tokio::task::spawn_blocking(move || {
        let data = match inlet_format::decompress(&name, data, compression) {
            Ok(d) => d,
            Err(e) => return (Bytes::new(), Err(e)),
        };
        let known_to_fit = settings.known_fit.get(&name).is_some_and(|fitted| {
            inlet_format::fits_within(fitted, &schema, settings.rescued_column.as_deref())
        });
        let opts = DecodeOptions {
            known_to_fit,
            ..settings.options()
        };
        let decoded = inlet_format::decode(&name, &data, &schema, &opts);
        // The bytes are kept only for a second decode once the schema takes new columns;
        // decoded rows wait for the writer without them.
        let keep = matches!(decoded, Ok(Decoded::NewColumns(_)));
        (if keep { data } else { Bytes::new() }, decoded)
    })
    .await;
    Ok(done.unwrap_or_else(|e| (Bytes::new(), Err(task_failed(path, e)))))
}

/// Why the checkpoint records a file the source could not read as skipped.
fn skip_reason(unreadable: inlet_discover::Unreadable) -> SkipReason {
    use inlet_discover::Unreadable;
    match unreadable {
        Unreadable::DotOrEmptySegment => SkipReason::DotSegment,
        Unreadable::ControlCharacter => SkipReason::ControlCharacter,
        Unreadable::SymlinkLoop => SkipReason::SymlinkLoop,
    }
}

/// Decodes on a blocking thread: decoding is CPU work and must not stall the async workers.
async fn decode_blocking(
    path: String,
    data: Bytes,
    schema: SchemaRef,
    settings: DecodeSettings,
) -> Result<Decoded, FormatError> {
    let name = path.clone();
    tokio::task::spawn_blocking(move || {
        inlet_format::decode(&path, &data, &schema, &settings.options())
    })
    .await
    .unwrap_or_else(|e| Err(task_failed(&name, e)))
}

fn task_failed(path: &str, e: tokio::task::JoinError) -> FormatError {
    FormatError::Decode {
        path: path.to_string(),
        line: 0,
        detail: format!("decoder task failed: {e}"),
    }
}

/// `batch` with the columns of `schema`, in its order: columns the batch lacks (decoded
/// before the schema gained them) are null.
fn fit_to(batch: RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    if batch.schema() == *schema {
        return Ok(batch);
    }
    let columns = schema
        .fields()
        .iter()
        .map(|f| match batch.column_by_name(f.name()) {
            Some(c) if c.data_type() == f.data_type() => Ok(c.clone()),
            // Checked: a value that does not convert fails the batch instead of becoming null.
            Some(c) => arrow::compute::cast_with_options(
                c,
                f.data_type(),
                &arrow::compute::CastOptions {
                    safe: false,
                    ..Default::default()
                },
            )
            .with_context(|| {
                format!(
                    "column {} is {} but the table has {}",
                    f.name(),
                    c.data_type(),
                    f.data_type()
                )
            }),
            None => Ok(arrow::array::new_null_array(
                f.data_type(),
                batch.num_rows(),
            )),
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}
