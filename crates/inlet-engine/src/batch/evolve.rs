//! Step 5a–b, the schema a batch decodes with: the table's (or, for the first batch, one
//! inferred from its files), columns the config declares, and new columns met in flight.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::{Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use futures::StreamExt;
use inlet_discover::SourceStore;
use inlet_format::SchemaSample;
use tracing::{debug, info, warn};

use super::decoding::{fetch_file, fit_to, AbortOnDrop, DecodeSettings, ReadError};
use super::early::{Early, EarlyFiles, EarlyPlan, EarlyWrites};
use super::PlannedFile;
use crate::error::{EngineError, Result};
use crate::events::Event;
use crate::pipeline::Pipeline;

/// The schema a batch starts decoding with, once the table is known.
pub(crate) enum Known {
    Schema(SchemaRef),
    /// The batch's files hold no column at all (and no hint declares one): no table yet.
    NoColumns,
}

/// A batch's schema as it evolves: where it started, and each change on the way.
pub(super) struct Evolution {
    schema: SchemaRef,
    pub(super) changes: Vec<SchemaChange>,
    /// The batch's own inference, made when a file first brings new columns.
    sample: Option<Schema>,
}

impl Evolution {
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// The schema the commit gives the table, when the batch changed it.
    pub fn new_schema(&self) -> Option<SchemaRef> {
        (!self.changes.is_empty()).then(|| self.schema.clone())
    }
}

impl Pipeline {
    /// The schema to decode with, which is the table's: when the table does not exist,
    /// infer a schema from the first files of this batch, store it as a schema version and
    /// create the table. `NoColumns` when the sample shows no columns at all. What the
    /// inference learnt goes into `sampled`: the files it walked whole, each with the schema
    /// all its lines fit (decoded without checking each line again), and the bytes read (up
    /// to [`KEEP_SAMPLED_BYTES`]), so the batch does not read them again, and the files
    /// written while the schema was inferred that the table keeps (`early.rs`).
    pub(super) async fn ensure_table(
        &mut self,
        batch_id: i64,
        files: &[PlannedFile],
        sampled: &mut Sampled,
    ) -> Result<Known> {
        let mut early = Early::Off;
        let known = self.find_schema(batch_id, files, sampled, &mut early).await;
        if let Early::Planned(writes) = early {
            match &known {
                Ok(Known::Schema(_)) => {
                    sampled.early = self.settle_early(writes).await?;
                }
                _ => self.abandon_early(writes).await,
            }
        }
        known
    }

    /// [`Self::ensure_table`], with the files written while the schema is inferred left
    /// in `early`.
    async fn find_schema(
        &mut self,
        batch_id: i64,
        files: &[PlannedFile],
        sampled: &mut Sampled,
        early: &mut Early,
    ) -> Result<Known> {
        let streaming = self.streaming();
        let table = self.sink.arrow_schema()?;
        if let (Some(schema), true) = (&table, streaming) {
            if self.checkpoint.latest_schema()?.is_none() {
                self.checkpoint.add_schema_version(
                    &inlet_schema::to_json(schema),
                    Some(batch_id),
                    None,
                    crate::preflight::ADOPTED_FROM_TABLE,
                )?;
                self.snapshot_soon();
            }
            return Ok(Known::Schema(schema.clone()));
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
                if self.writes_while_inferring() {
                    *early = Early::Unplanned;
                }
                let (inferred, sampled) = loop {
                    let found = self.infer(rest, budget, early).await?;
                    sampled.known_fit.extend(found.known_fit);
                    sampled.bytes.extend(found.bytes);
                    if !found.schema.fields().is_empty() || !self.cfg.hints.is_empty() {
                        break (found.schema, found.files);
                    }
                    if found.cut && budget != u64::MAX {
                        // A file read only in part may hold columns further on: read whole.
                        budget = u64::MAX;
                        continue;
                    }
                    if found.covered == 0 || found.covered >= rest.len() {
                        return Ok(Known::NoColumns);
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
                // Only snapshots carry the schema store to another machine.
                self.snapshot_soon();
                schema
            }
        };
        if table.is_some() {
            return Ok(Known::Schema(Arc::new(source)));
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
                return Err(EngineError::MissingColumn {
                    key,
                    column: column.clone(),
                    lacks: "the table would not have".into(),
                    columns: inlet_schema::column_names(&created),
                });
            }
        }
        self.sink
            .create(
                &created,
                &self.cfg.sink.partition_by,
                &self.cfg.sink.create_properties(),
            )
            .await?;
        info!(columns = created.fields().len(), table = %self.cfg.table_url, "created Delta table");
        if streaming {
            Ok(match self.sink.arrow_schema()? {
                Some(schema) => Known::Schema(schema),
                None => Known::NoColumns,
            })
        } else {
            Ok(Known::Schema(Arc::new(source)))
        }
    }

    /// A batch's schema at its start: the table's, plus the columns the config declares
    /// and the table lacks (hints, the rescued data column), which the batch's commit adds.
    pub(super) fn evolution(&self, table: &Schema) -> Evolution {
        let schema = Arc::new(self.declared_schema(table));
        let mut changes = Vec::new();
        if schema.fields().len() != table.fields().len() {
            changes.push(SchemaChange::new(
                table,
                schema.clone(),
                None,
                "declared in the config: schema.hints or schema.rescued_data_column",
            ));
        }
        Evolution {
            schema,
            changes,
            sample: None,
        }
    }

    /// New columns `fields` that `file` brought: typed over the batch (`batch_types`) and
    /// added to the schema. The wider schema, when it grew.
    pub(super) async fn evolve(
        &mut self,
        evolution: &mut Evolution,
        file: &PlannedFile,
        batch: &[PlannedFile],
        fields: Vec<Field>,
    ) -> Result<Option<SchemaRef>> {
        // Typed over the batch (as the first batch infers), not by whichever file happened
        // to have the column first.
        let mut sample = evolution.sample.take();
        let fields = self.batch_types(file, batch, fields, &mut sample).await?;
        evolution.sample = sample;
        let evolved = Arc::new(inlet_schema::with_columns(&evolution.schema, &fields));
        if evolved.fields().len() <= evolution.schema.fields().len() {
            return Ok(None);
        }
        let why = format!("new in {}", file.path);
        evolution.changes.push(SchemaChange::new(
            &evolution.schema,
            evolved.clone(),
            Some(file.path.clone()),
            &why,
        ));
        info!(file = %file.path, columns = %describe(&fields), "schema evolves: adding columns in flight");
        evolution.schema = evolved.clone();
        Ok(Some(evolved))
    }

    /// The types of `fields`, new columns `file` brought, inferred over the batch's files
    /// (`file` first, then the others, within the sample bounds) as the first batch infers
    /// its schema: a column that holds integers in one file and fractions in another is a
    /// DOUBLE whichever file came first. Hints still decide where they name a column. The
    /// batch is sampled once (`sampled` keeps it); later new columns are looked up in it.
    async fn batch_types(
        &mut self,
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
            let found = self
                .infer(&order, self.cfg.schema.sample_bytes, &mut Early::Off)
                .await?;
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
    /// With `early`, files are written while the schema is inferred (`early.rs`): the first
    /// file is sampled alone, and each later one that fits its inference as written is
    /// decoded and written instead of sampled.
    pub(super) async fn infer(
        &mut self,
        files: &[PlannedFile],
        sample_bytes: u64,
        early: &mut Early,
    ) -> Result<Inference> {
        // The byte budget is spent in file order, by stored size (a compressed file may give
        // more), so which files are sampled does not depend on timing.
        let mut chosen = Vec::new();
        let mut bytes = 0u64;
        for file in files.iter().take(self.cfg.schema.sample_files) {
            if bytes >= sample_bytes {
                break;
            }
            chosen.push((file.clone(), sample_bytes - bytes));
            bytes += file.size;
        }
        let covered = chosen.len();
        let infer_types = self.cfg.schema.infer_column_types;
        let sampler = Sampler {
            source: self.source.clone(),
            settings: self.decode_settings(),
            compression: self.cfg.source.compression,
            infer_types,
        };
        let mut gathered = Gathered::new(infer_types);
        let mut chosen = chosen.into_iter();
        // The first file's bytes, when it is written too (below).
        let mut first_bytes = None;
        if matches!(early, Early::Unplanned) {
            // The first file alone: what it infers is what the others are decoded with.
            if let Some(first) = chosen.next() {
                let sampled = sampler.clone().sample(first, None).await?;
                let bytes = sampled
                    .as_ref()
                    .map(|(_, path, raw)| (path.clone(), raw.clone()));
                gathered.take(sampled, None).await?;
                *early = self
                    .plan_early(&gathered.merged)
                    .map_or(Early::Off, Early::Planned);
                first_bytes = bytes.filter(|_| !gathered.cut);
            }
        }
        // Sampled on a task of its own, so reads and decodes go on while rows are written.
        let (plan, ahead) = (early.plan(), self.cfg.source.read_ahead());
        // Every line of the first file fits its own inference as written, so it is decoded
        // with the plan too, from the bytes it was sampled from, beside the others: else it
        // would be decoded after the table is created, alone, the batch's last serial step.
        type Pending =
            std::pin::Pin<Box<dyn std::future::Future<Output = Result<SampledFile>> + Send>>;
        let mut pending: Vec<Pending> = Vec::new();
        let first_is_queued = if let Some((plan, (path, raw))) = plan.clone().zip(first_bytes) {
            // Sampled whole before: any budget keeps it whole. Should a line not fit after
            // all, it comes back sampled, and `write_sampled` leaves it to the batch.
            let decoded = sampler
                .clone()
                .sample_fetched(path, raw, u64::MAX, Some(plan));
            pending.push(Box::pin(async move { Ok(decoded.await) }));
            true
        } else {
            false
        };
        for chosen in chosen {
            pending.push(Box::pin(sampler.clone().sample(chosen, plan.clone())));
        }
        let (tx, mut samples) = tokio::sync::mpsc::channel(1);
        let _feed = AbortOnDrop(tokio::spawn(async move {
            // One window for all, in order: the others' reads start while the first decodes.
            let mut sampled = futures::stream::iter(pending).buffered(ahead);
            while let Some(done) = sampled.next().await {
                if tx.send(done).await.is_err() {
                    break;
                }
            }
        }));
        if first_is_queued {
            if let Some(done) = samples.recv().await {
                gathered.write_sampled(done?, early.writes()).await?;
            }
        }
        while let Some(done) = samples.recv().await {
            gathered.take(done?, early.writes()).await?;
        }
        let Gathered {
            merged,
            known_fit,
            kept,
            cut,
            ..
        } = gathered;
        Ok(Inference {
            schema: merged.schema(),
            files: merged.files(),
            known_fit,
            bytes: kept,
            covered,
            cut,
        })
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
    pub(super) fn record_schema_changes(
        &mut self,
        batch_id: i64,
        changes: &[SchemaChange],
    ) -> Result<()> {
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
            self.events.emit(Event::SchemaChanged {
                batch_id,
                change: change.reason.clone(),
            });
        }
        Ok(())
    }
}

/// At most this many bytes read for the schema's sample are kept for the batch to decode
/// (the rest is read again): a first batch of small files is read once, and a bulk one
/// does not hold its whole input in memory.
pub(super) const KEEP_SAMPLED_BYTES: usize = 64 << 20;

/// What the schema's inference hands the batch.
#[derive(Default)]
pub(super) struct Sampled {
    /// Files sampled whole, each with the schema all its lines fit.
    pub known_fit: HashMap<String, Schema>,
    /// Bytes read (as stored), by path.
    pub bytes: HashMap<String, Bytes>,
    /// Files written while the schema was inferred, for the batch's commit.
    pub early: Option<EarlyFiles>,
}

/// A file of the sample and its byte budget.
type Chosen = (PlannedFile, u64);

/// A sampled file, as its task hands it back.
enum FileSample {
    Sampled {
        sample: SchemaSample,
        /// The schema all its lines fit, when it was sampled whole.
        fitted: Option<(String, Schema)>,
        /// Read only in part (the byte budget ran out inside it).
        partly: bool,
    },
    /// Decoded with the early plan instead: every line fits the first file's inference.
    Decoded {
        batches: Vec<RecordBatch>,
        rows: u64,
    },
}

/// A sampled file's outcome, its path and its bytes as stored; `None` when it could not be
/// read or sampled (the batch's read records why).
type SampledFile = Option<(FileSample, String, Bytes)>;

/// What reads and samples one file of the sample.
#[derive(Clone)]
struct Sampler {
    source: SourceStore,
    settings: DecodeSettings,
    compression: inlet_format::Compression,
    infer_types: bool,
}

impl Sampler {
    /// Reads one file of the sample and samples it, or, with `plan`, decodes it when every
    /// line fits the plan as written (`early.rs`), and samples it otherwise.
    async fn sample(
        self,
        (file, budget): Chosen,
        plan: Option<Arc<EarlyPlan>>,
    ) -> Result<SampledFile> {
        // The version the batch planned, as the batch reads it, so its bytes can be kept.
        let data = match fetch_file(&self.source, &file, &self.settings).await {
            Ok(d) => d,
            // Reading the batch records these as skipped.
            Err(ReadError::Skipped(_)) => return Ok(None),
            Err(ReadError::Source(e)) => return Err(e.into()),
        };
        Ok(self.sample_fetched(file.path, data, budget, plan).await)
    }

    /// [`Self::sample`] of a file already read: its bytes as stored.
    async fn sample_fetched(
        self,
        path: String,
        data: Bytes,
        budget: u64,
        plan: Option<Arc<EarlyPlan>>,
    ) -> SampledFile {
        let Self {
            settings,
            compression,
            infer_types,
            ..
        } = self;
        let (raw, key) = (data.clone(), path.clone());
        let _cpu = settings.cpu.clone().acquire_owned().await.ok();
        let sampled = tokio::task::spawn_blocking(move || {
            let data = inlet_format::decompress(&path, data, compression).ok()?;
            // Row formats are sampled up to the byte budget; Parquet and Avro keep the file.
            let cut = usize::try_from(budget).unwrap_or(usize::MAX);
            let whole = data.len() <= cut;
            if let Some(decoded) = plan
                .filter(|_| whole)
                .and_then(|plan| decode_early(&path, &data, &plan))
            {
                return Some(decoded);
            }
            let data = match settings.format {
                inlet_format::Format::Parquet | inlet_format::Format::Avro => data,
                _ => data.slice(..data.len().min(cut)),
            };
            let mut sample = SchemaSample::new(infer_types);
            match sample.add(&path, &data, &settings.options(&path)) {
                Ok(()) => {
                    let fitted = sample.fitted().filter(|_| whole).map(|f| (path, f));
                    Some(FileSample::Sampled {
                        sample,
                        fitted,
                        partly: !whole,
                    })
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
        sampled.map(|s| (s, key, raw))
    }
}

/// A whole sampled file decoded with the early plan, when every line fits it as written.
fn decode_early(path: &str, data: &[u8], plan: &EarlyPlan) -> Option<FileSample> {
    let rescued = plan.rescued.as_deref();
    let (batches, rows) = inlet_format::decode_as_written(data, &plan.decode, rescued)?;
    let written: Result<Vec<_>> = batches
        .into_iter()
        .map(|b| fit_to(b, &plan.write))
        .collect();
    match written {
        Ok(batches) => Some(FileSample::Decoded { batches, rows }),
        Err(e) => {
            debug!(file = %path, error = %e, "rows decoded while inferring do not convert to the written schema: sampled instead");
            None
        }
    }
}

/// The sample's files merged in order.
struct Gathered {
    merged: SchemaSample,
    known_fit: HashMap<String, Schema>,
    /// Bytes read, by path, up to [`KEEP_SAMPLED_BYTES`] in all.
    kept: HashMap<String, Bytes>,
    kept_bytes: usize,
    cut: bool,
}

impl Gathered {
    fn new(infer_types: bool) -> Self {
        Self {
            merged: SchemaSample::new(infer_types),
            known_fit: HashMap::new(),
            kept: HashMap::new(),
            kept_bytes: 0,
            cut: false,
        }
    }

    /// Merges the next file in order. A decoded one is written by `early` or, once writing
    /// stopped, left to the batch (its lines leave the schema as it is either way).
    async fn take(&mut self, file: SampledFile, early: Option<&mut EarlyWrites>) -> Result<()> {
        let Some((sample, path, raw)) = file else {
            return Ok(());
        };
        match sample {
            FileSample::Sampled {
                sample,
                fitted,
                partly,
            } => {
                self.merged.merge(sample);
                self.known_fit.extend(fitted);
                self.cut |= partly;
                if let Some(early) = early {
                    early.check(&self.merged);
                }
            }
            FileSample::Decoded { batches, rows } => {
                self.merged.add_settled(rows);
                // A file written is read again only if the table does not keep it, as
                // files past the bytes kept are: its bytes are not held meanwhile.
                if let Some(early) = early {
                    if early.write(&path, batches, rows).await? {
                        return Ok(());
                    }
                }
            }
        }
        if self.kept_bytes + raw.len() <= KEEP_SAMPLED_BYTES {
            self.kept_bytes += raw.len();
            self.kept.insert(path, raw);
        }
        Ok(())
    }

    /// Writes a file already merged into the sample (decoded with the plan since); the
    /// sample is left as it is, and so are its kept bytes: should the early writes be
    /// discarded, the batch decodes it from them, not from a second read.
    async fn write_sampled(
        &mut self,
        file: SampledFile,
        early: Option<&mut EarlyWrites>,
    ) -> Result<()> {
        let (Some((FileSample::Decoded { batches, rows }, path, _)), Some(early)) = (file, early)
        else {
            return Ok(());
        };
        early.write(&path, batches, rows).await?;
        Ok(())
    }
}

/// What a schema sample found.
pub(super) struct Inference {
    schema: Schema,
    /// Files sampled.
    files: usize,
    /// Files sampled whole, each with the schema all its lines fit (see `known_fit`).
    known_fit: HashMap<String, Schema>,
    /// The bytes read, by path, up to [`KEEP_SAMPLED_BYTES`] in all.
    bytes: HashMap<String, Bytes>,
    /// How many of the files given (from the first) the bounds let it read.
    covered: usize,
    /// Whether a file was read only in part (the byte budget ran out inside it).
    cut: bool,
}

/// A schema version a batch makes: the schema after the change, and why.
pub(super) struct SchemaChange {
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

/// Column names and types, as messages list them.
pub(super) fn describe(fields: &[Field]) -> String {
    fields
        .iter()
        .map(|f| format!("{} {}", f.name(), inlet_schema::ddl_type(f.data_type())))
        .collect::<Vec<_>>()
        .join(", ")
}
