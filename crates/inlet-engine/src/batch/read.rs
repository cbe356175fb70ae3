//! Step 5c, reading a batch: its files read ahead and decoded off the async workers, each
//! file's outcome recorded (rows, skipped, failed), new columns met on the way evolved.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use arrow::datatypes::{Schema, SchemaRef};
use bytes::Bytes;
use futures::StreamExt;
use inlet_checkpoint::SkipReason;
use inlet_discover::{escape_controls, SourceStore};
use inlet_format::{DecodeOptions, Decoded, FormatError};
use inlet_schema::EvolutionMode;
use tracing::{info, warn};

use super::decoding::{fetch_file, AbortOnDrop, DecodeSettings, ReadError};
use super::evolve::{describe, Evolution, Sampled};
use super::write::BatchOutput;
use super::PlannedFile;
use crate::error::{EngineError, Result};
use crate::events::Event;
use crate::pipeline::Pipeline;

impl Pipeline {
    /// Reads and decodes the batch's `files` (`read_concurrency` ahead, one decode per core,
    /// driven by a task of their own so reads go on while rows are written), hands each
    /// file's rows to `out`, and records each file's outcome: skipped (gone, unaddressable),
    /// failed (cannot be decoded; dead-lettered) or its rows, bad records and rescued rows.
    /// A file whose records carry columns the schema lacks widens `evolution` and is decoded
    /// again. Returns each file that became rows, with its row count. A source that cannot
    /// be read fails the attempt: the batch stays planned and is retried.
    pub(super) async fn read_batch(
        &mut self,
        batch_id: i64,
        files: &[PlannedFile],
        evolution: &mut Evolution,
        out: &mut BatchOutput,
        sampled: Sampled,
    ) -> Result<Vec<(String, i64)>> {
        let mut settings = self.decode_settings();
        settings.known_fit = Arc::new(sampled.known_fit);
        settings.sampled = Arc::new(std::sync::Mutex::new(sampled.bytes));
        let mut file_rows = Vec::with_capacity(files.len());
        // Files written while the schema was inferred are not read again.
        let mut to_read = files.to_vec();
        if let Some(early) = sampled.early {
            let written: HashSet<&str> = early.rows.iter().map(|(p, _)| p.as_str()).collect();
            to_read.retain(|f| !written.contains(f.path.as_str()));
            out.add_staged(early.staged)?;
            for (path, rows) in early.rows {
                self.events.emit(Event::FileRead {
                    batch_id,
                    path: path.clone(),
                    rows,
                    bad_records: 0,
                    rescued_rows: 0,
                    rescued_values: 0,
                });
                file_rows.push((path, rows as i64));
            }
        }
        let mut reader = BatchReader::start(
            self.source.clone(),
            to_read,
            self.cfg.source.compression,
            evolution.schema(),
            settings.clone(),
            self.cfg.source.read_ahead(),
        );
        while let Some((file, read)) = reader.next().await {
            let (data, first) = match read {
                Ok(read) => read,
                Err(ReadError::Source(e)) => return Err(e.into()),
                Err(ReadError::Skipped(reason)) => {
                    self.file_skipped(batch_id, &file, reason)?;
                    continue;
                }
            };
            let decoded = self
                .decode_evolving(
                    batch_id, &file, files, data, first, evolution, out, &settings,
                )
                .await?;
            match decoded {
                Ok((batches, rows, rescued_rows, bad_records)) => {
                    let rescued_values = match self.cfg.rescued_column() {
                        Some(column) if rescued_rows > 0 => rescued_values(&batches, column),
                        _ => 0,
                    };
                    out.write(&file, batches).await?;
                    if !bad_records.is_empty() {
                        self.bad_records
                            .file_records(batch_id, &file.path, &bad_records)
                            .await?;
                        self.stats
                            .note_bad_records(&file.path, bad_records.len() as u64);
                    }
                    self.stats.rescued_rows += rescued_rows;
                    self.stats.rescued_values += rescued_values;
                    self.events.emit(Event::FileRead {
                        batch_id,
                        path: file.path.clone(),
                        rows,
                        bad_records: bad_records.len() as u64,
                        rescued_rows,
                        rescued_values,
                    });
                    file_rows.push((file.path, rows as i64));
                }
                Err(e) => self.file_failed(batch_id, &file, e.to_string()).await?,
            }
        }
        Ok(file_rows)
    }

    /// A file's decode, evolving the schema while its records bring new columns: files read
    /// ahead were decoded with the schema of their time, so a file with columns the schema
    /// lacks makes it wider (closing the writer of the narrower one), then is decoded again.
    #[allow(clippy::too_many_arguments)]
    async fn decode_evolving(
        &mut self,
        batch_id: i64,
        file: &PlannedFile,
        batch: &[PlannedFile],
        data: Bytes,
        mut result: Result<Decoded, FormatError>,
        evolution: &mut Evolution,
        out: &mut BatchOutput,
        settings: &DecodeSettings,
    ) -> Result<Result<DecodedRows, FormatError>> {
        let mut decoded_with: Option<SchemaRef> = None;
        loop {
            match result {
                Err(e) => return Ok(Err(e)),
                Ok(Decoded::Rows {
                    batches,
                    rows,
                    rescued_rows,
                    bad_records,
                    duplicates,
                }) => {
                    if duplicates > 0 {
                        self.stats.duplicate_records += duplicates;
                        info!(file = %escape_controls(&file.path), duplicates, "records delivered twice (same eventID) were taken once");
                    }
                    return Ok(Ok((batches, rows, rescued_rows, bad_records)));
                }
                Ok(Decoded::NewColumns(fields)) => {
                    if self.cfg.schema.evolution == EvolutionMode::FailOnNewColumns {
                        return Err(EngineError::NewColumnsRefused {
                            file: file.path.clone(),
                            columns: describe(&fields),
                            batch_id,
                        });
                    }
                    if decoded_with.as_ref() == Some(&evolution.schema()) {
                        return Err(EngineError::Bug {
                            file: file.path.clone(),
                            columns: describe(&fields),
                        });
                    }
                    if let Some(wider) = self.evolve(evolution, file, batch, fields).await? {
                        self.widen_output(out, wider).await?;
                    }
                    decoded_with = Some(evolution.schema());
                    result = decode_blocking(
                        file.path.clone(),
                        data.clone(),
                        evolution.schema(),
                        settings.clone(),
                    )
                    .await;
                }
            }
        }
    }

    fn file_skipped(
        &mut self,
        batch_id: i64,
        file: &PlannedFile,
        reason: SkipReason,
    ) -> Result<()> {
        warn!(file = %escape_controls(&file.path), reason = %reason, "file not read; recorded as skipped");
        self.checkpoint
            .set_file_skipped(batch_id, &file.path, reason)?;
        self.stats.skipped_files += 1;
        self.events.emit(Event::FileSkipped {
            batch_id,
            path: file.path.clone(),
            reason: reason.text().to_string(),
        });
        Ok(())
    }

    async fn file_failed(
        &mut self,
        batch_id: i64,
        file: &PlannedFile,
        error: String,
    ) -> Result<()> {
        warn!(file = %escape_controls(&file.path), error = %error, "file cannot be decoded; recorded as failed");
        self.bad_records
            .failed_file(batch_id, &file.path, &error)
            .await?;
        self.checkpoint
            .set_file_failed(batch_id, &file.path, &error)?;
        self.stats.failed_files += 1;
        self.stats.failures.push((file.path.clone(), error.clone()));
        self.events.emit(Event::FileFailed {
            batch_id,
            path: file.path.clone(),
            error,
        });
        Ok(())
    }

    /// A batch none of whose files has a column (empty files, `{}` records, files that
    /// cannot be read): no row can come out of it, so each file's outcome is recorded
    /// (skipped, failed and dead-lettered, or taken with no rows) and the batch too, without
    /// a Delta commit.
    pub(super) async fn record_columnless(
        &mut self,
        batch_id: i64,
        files: &[PlannedFile],
        started: Instant,
    ) -> Result<()> {
        let before = (self.stats.failed_files, self.stats.skipped_files);
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
            match outcome {
                Err(ReadError::Source(e)) => return Err(e.into()),
                Err(ReadError::Skipped(reason)) => self.file_skipped(batch_id, file, reason)?,
                Ok((_, Err(e))) => self.file_failed(batch_id, file, e.to_string()).await?,
                Ok((_, Ok(Decoded::NewColumns(fields)))) => {
                    return Err(EngineError::ChangedAfterSample {
                        file: escape_controls(&file.path).into_owned(),
                        columns: describe(&fields),
                        batch_id,
                    })
                }
                Ok((_, Ok(Decoded::Rows { bad_records, .. }))) => {
                    if !bad_records.is_empty() {
                        self.bad_records
                            .file_records(batch_id, &file.path, &bad_records)
                            .await?;
                        self.stats
                            .note_bad_records(&file.path, bad_records.len() as u64);
                    }
                }
            }
        }
        let manifest = self.manifest(batch_id, &[])?;
        self.put_done(batch_id, manifest).await?;
        self.checkpoint
            .mark_committed(batch_id, None, Some(0), &[])?;
        info!("batch had no columns to write; recorded without a Delta commit");
        self.report_batch(batch_id, files, 0, None, started, before);
        Ok(())
    }
}

/// A file as read: its decompressed bytes (kept for a second decode) and its first decode, or
/// why it could not be read.
type FileRead = Result<(Bytes, Result<Decoded, FormatError>), ReadError>;

/// A decoded file: its record batches, rows, rows with rescued values, bad records.
type DecodedRows = (
    Vec<arrow::record_batch::RecordBatch>,
    u64,
    u64,
    Vec<inlet_format::BadRecord>,
);

/// The batch's files, read `ahead` at a time and decoded by a task of their own (a stream
/// polled only by the batch loop would stall while it encodes Parquet), in file order.
struct BatchReader {
    decoded: tokio::sync::mpsc::Receiver<(PlannedFile, FileRead)>,
    _task: AbortOnDrop,
}

impl BatchReader {
    fn start(
        source: SourceStore,
        files: Vec<PlannedFile>,
        compression: inlet_format::Compression,
        schema: SchemaRef,
        settings: DecodeSettings,
        ahead: usize,
    ) -> Self {
        // Reads run `ahead`, each on a task of its own so it goes on while decodes wait.
        // Decodes run one per core at once (the `cpu` semaphore) and one more ahead of the
        // writer, no further: a decoded file waiting for the writer is memory, and at the
        // batch's end encoding work left with one core busy. The one more keeps every core
        // decoding when a file finishes before the one ahead of it, which would otherwise
        // hold its place in order and leave a core idle (W1: ~5% faster on 2 cores, ~12% on
        // one, alternated runs; benches/README.md).
        let decode_ahead = settings.cores + 1;
        let (tx, decoded) = tokio::sync::mpsc::channel(1);
        let task = tokio::spawn(async move {
            let fetches = futures::stream::iter(files)
                .map(|file| {
                    let (source, settings, at) = (source.clone(), settings.clone(), file.clone());
                    let fetch =
                        tokio::spawn(async move { fetch_file(&source, &at, &settings).await });
                    async move { (file, fetch.await) }
                })
                .buffered(ahead);
            let mut reads = fetches
                .map(|(file, fetched)| {
                    let schema = schema.clone();
                    let settings = settings.clone();
                    async move {
                        let outcome = match fetched {
                            Ok(Ok(data)) => {
                                Ok(decode_file(&file, data, compression, schema, settings).await)
                            }
                            Ok(Err(e)) => Err(e),
                            // A read that panicked fails its file, as a decode that panics does.
                            Err(e) => Ok((Bytes::new(), Err(task_failed(&file.path, e)))),
                        };
                        (file, outcome)
                    }
                })
                .buffered(decode_ahead);
            while let Some(read) = reads.next().await {
                if tx.send(read).await.is_err() {
                    break;
                }
            }
        });
        Self {
            decoded,
            _task: AbortOnDrop(task),
        }
    }

    async fn next(
        &mut self,
    ) -> Option<(
        PlannedFile,
        Result<(Bytes, Result<Decoded, FormatError>), ReadError>,
    )> {
        self.decoded.recv().await
    }
}

/// The decompressed bytes of a file (kept for a second decode when the schema evolves) and
/// the first decode against `schema`.
async fn read_file(
    source: &SourceStore,
    file: &PlannedFile,
    compression: inlet_format::Compression,
    schema: SchemaRef,
    settings: DecodeSettings,
) -> FileRead {
    let data = fetch_file(source, file, &settings).await?;
    Ok(decode_file(file, data, compression, schema, settings).await)
}

/// A fetched file decompressed and decoded against `schema` on a blocking thread: its
/// decompressed bytes (kept only for a second decode once the schema takes new columns)
/// and its decode.
async fn decode_file(
    file: &PlannedFile,
    data: Bytes,
    compression: inlet_format::Compression,
    schema: SchemaRef,
    settings: DecodeSettings,
) -> (Bytes, Result<Decoded, FormatError>) {
    let path = file.path.as_str();
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
            ..settings.options(&name)
        };
        let decoded = inlet_format::decode(&name, &data, &schema, &opts);
        // The bytes are kept only for a second decode once the schema takes new columns;
        // decoded rows wait for the writer without them.
        let keep = matches!(decoded, Ok(Decoded::NewColumns(_)));
        (if keep { data } else { Bytes::new() }, decoded)
    })
    .await;
    done.unwrap_or_else(|e| (Bytes::new(), Err(task_failed(path, e))))
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
        inlet_format::decode(&path, &data, &schema, &settings.options(&path))
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

/// The values kept in the rescued data column of `batches`: each non-null cell is a JSON
/// object of the values that did not fit, one key each besides the `_file_path` it names
/// (a cell that is not an object counts 1).
fn rescued_values(batches: &[arrow::record_batch::RecordBatch], column: &str) -> u64 {
    use arrow::array::{Array, AsArray};
    let mut values = 0;
    for batch in batches {
        let Some(cells) = batch.column_by_name(column) else {
            continue;
        };
        let count = |text: &str| {
            serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(text)
                .map_or(1, |m| {
                    m.keys().filter(|k| *k != "_file_path").count() as u64
                })
        };
        if let Some(strings) = cells.as_string_opt::<i32>() {
            values += strings.iter().flatten().map(count).sum::<u64>();
        } else if let Some(strings) = cells.as_string_view_opt() {
            values += strings.iter().flatten().map(count).sum::<u64>();
        } else {
            values += (cells.len() - cells.null_count()) as u64;
        }
    }
    values
}
