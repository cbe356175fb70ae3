//! Fitting decoded records to the table's columns, shared by every row-oriented format:
//! partition values joined, new columns collected, misfits rescued, unparsable input set aside.

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use inlet_schema::{Conformer, EvolutionMode, JsonInference};
use serde_json::{Map, Value};

use crate::decoded::{clip_raw, BadRecord, Decoded, BATCH_ROWS};
use crate::direct::Direct;
use crate::error::FormatError;
use crate::options::DecodeOptions;
use crate::partition;
use crate::shape::Shape;

/// Where a record came from in its file, for bad records.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Origin<'d> {
    pub line: u64,
    pub offset: usize,
    pub raw: &'d str,
}

impl<'d> Origin<'d> {
    /// The bytes `range` of this origin's text, as an origin of their own (the same line).
    pub fn part(&self, range: std::ops::Range<usize>) -> Origin<'d> {
        match self.raw.get(range.clone()) {
            Some(raw) => Origin {
                line: self.line,
                offset: self.offset + range.start,
                raw,
            },
            None => *self,
        }
    }

    pub fn bad(&self, base: usize, error: String) -> BadRecord {
        BadRecord {
            line: self.line,
            byte_offset: (base + self.offset) as u64,
            error,
            raw: clip_raw(self.raw),
        }
    }
}

/// Rows of fitted records buffered before they go to the decoder at once.
const SERIALIZE_ROWS: usize = 1024;

/// Times a file may go from raw records (the direct decoder) to fitted ones before the
/// tape decoder takes all its records, so that no file ends in many tiny batches.
const MAX_SWITCHES: u32 = 16;

/// Collects one file's records as rows of the schema, streaming them into Arrow batches of
/// `BATCH_ROWS` as they come (so a file never sits in memory as parsed values).
pub(crate) struct Fitter<'a> {
    path: &'a str,
    schema: &'a SchemaRef,
    opts: &'a DecodeOptions<'a>,
    conformer: Conformer,
    collect_new: bool,
    new_columns: JsonInference,
    /// Partition values from the path, typed for their columns.
    partition: Map<String, Value>,
    /// Bytes before the text the offsets count from (a byte-order mark).
    pub base_offset: usize,
    /// JSON records that fit as written skip the fitting (see `shape.rs`); `None` when
    /// records are changed on the way (partition values) or not JSON.
    fast: Option<Shape>,
    /// Builds the columns of such records in the pass that checks them; `None` when a
    /// column's type is not one it builds, or once the file mixes fitted and raw records
    /// too often (each switch ends a batch), and the tape decoder takes them instead.
    direct: Option<Direct>,
    /// Batches the direct decoder ended early because a fitted record followed.
    switches: u32,
    /// Switches allowed before the direct decoder is retired for the file; 0 for none at
    /// all (the tests set it to check each decoder against fitting).
    pub max_switches: u32,
    decoder: Option<arrow::json::reader::Decoder>,
    /// Fitted records not yet serialized into the decoder.
    pending: Vec<Map<String, Value>>,
    batches: Vec<RecordBatch>,
    error: Option<String>,
    rows: u64,
    rescued_rows: u64,
    bad_records: Vec<BadRecord>,
    /// DynamoDB records dropped as repeats (an `eventID` read before in the file).
    duplicates: u64,
    /// Why the whole file fails (multi-line JSON that does not parse), with the line.
    failed: Option<(u64, String)>,
}

impl<'a> Fitter<'a> {
    pub fn new(path: &'a str, schema: &'a SchemaRef, opts: &'a DecodeOptions<'a>) -> Self {
        Self {
            path,
            schema,
            opts,
            conformer: Conformer::new(schema, opts.rescued_column, opts.mode),
            collect_new: matches!(
                opts.mode,
                EvolutionMode::AddNewColumns | EvolutionMode::FailOnNewColumns
            ),
            new_columns: JsonInference::new().infer_types(opts.infer_types),
            partition: partition::typed_values(
                path,
                opts.partition_columns,
                schema,
                opts.infer_types,
            ),
            base_offset: 0,
            fast: None,
            direct: None,
            switches: 0,
            max_switches: MAX_SWITCHES,
            decoder: None,
            pending: Vec::new(),
            batches: Vec::new(),
            error: None,
            rows: 0,
            rescued_rows: 0,
            bad_records: Vec::new(),
            duplicates: 0,
            failed: None,
        }
    }

    /// Lets JSON records that fit the schema as written go to the decoder as raw bytes.
    pub fn allow_raw_json(&mut self) {
        if self.partition.is_empty() {
            self.fast = Some(Shape::of_schema(self.schema, self.opts.rescued_column));
            if self.max_switches > 0 {
                self.direct = Direct::new(self.schema, self.opts.rescued_column);
            }
        }
    }

    /// Takes `raw` as one row when it is a JSON object that fits as written; false when it
    /// must be parsed and fitted (`record`), or reported (`bad`).
    pub fn raw_json(&mut self, raw: &str) -> bool {
        if self.fast.is_none() {
            return false;
        }
        if self.new_columns.records() == 0 {
            if let Some(direct) = self.direct.as_mut() {
                if direct.push(raw) {
                    self.rows += 1;
                    self.took_direct();
                    return true;
                }
                if !self.opts.known_to_fit {
                    return false; // fitting decides
                }
                // Known to fit, yet not taken (a column past 2 GiB of text): the tape
                // decoder has it, after the rows before.
                self.leave_direct();
            }
        }
        if !self.opts.known_to_fit && !self.fast.as_ref().is_some_and(|s| s.accepts(raw)) {
            // Fitting decides, and collects the types of new columns from every record.
            return false;
        }
        if self.new_columns.records() > 0 {
            return true; // it names no new column, and nothing is decoded once the schema must change
        }
        if let Err(e) = self
            .serialize_pending()
            .and_then(|()| self.decode_raw(raw.as_bytes()))
        {
            self.error.get_or_insert(e);
        }
        true
    }

    /// After the direct decoder took a row: rows the tape decoder holds came before it, so
    /// they become batches first (the direct decoder then holds only the new row).
    fn took_direct(&mut self) {
        let tape_rows = !self.pending.is_empty()
            || self
                .decoder
                .as_ref()
                .is_some_and(|d| !d.is_empty() || d.has_partial_record());
        let mut done = Ok(());
        if tape_rows {
            done = self.serialize_pending().and_then(|()| self.flush());
        }
        if self.direct.as_ref().is_some_and(|d| d.len() >= BATCH_ROWS) {
            done = done.and_then(|()| self.flush_direct());
        }
        if let Err(e) = done {
            self.error.get_or_insert(e);
        }
    }

    /// Before a record goes to arrow-json's decoder: rows the direct decoder holds came
    /// first, so they become a batch. A file that switches often goes to the tape decoder
    /// whole, since each switch ends a batch.
    fn leave_direct(&mut self) {
        if self.direct.as_ref().is_none_or(|d| d.len() == 0) {
            return;
        }
        self.switches += 1;
        let done = self.flush_direct();
        if self.switches > self.max_switches {
            self.direct = None;
        }
        if let Err(e) = done {
            self.error.get_or_insert(e);
        }
    }

    /// The direct decoder's rows as a batch, before any record that follows them.
    fn flush_direct(&mut self) -> Result<(), String> {
        if let Some(batch) = self
            .direct
            .as_mut()
            .map(Direct::flush)
            .transpose()?
            .flatten()
        {
            self.batches.push(batch);
        }
        Ok(())
    }

    fn decoder(&mut self) -> Result<&mut arrow::json::reader::Decoder, String> {
        if self.decoder.is_none() {
            let decoder = arrow::json::ReaderBuilder::new(self.schema.clone())
                .with_batch_size(BATCH_ROWS)
                .build_decoder()
                .map_err(|e| e.to_string())?;
            self.decoder = Some(decoder);
        }
        self.decoder
            .as_mut()
            .ok_or_else(|| "no decoder".to_string())
    }

    fn decode_raw(&mut self, mut raw: &[u8]) -> Result<(), String> {
        while !raw.is_empty() {
            let decoder = self.decoder()?;
            let used = decoder.decode(raw).map_err(|e| e.to_string())?;
            raw = &raw[used..];
            if decoder.len() >= BATCH_ROWS && !decoder.has_partial_record() {
                self.flush()?;
            } else if used == 0 {
                return Err("the JSON decoder took no input".into());
            }
        }
        self.rows += 1;
        if self.decoder()?.len() >= BATCH_ROWS {
            self.flush()?;
        }
        Ok(())
    }

    /// Fitted records go to the decoder (in order with raw ones).
    fn serialize_pending(&mut self) -> Result<(), String> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let pending = std::mem::take(&mut self.pending);
        let decoder = self.decoder()?;
        decoder.serialize(&pending).map_err(|e| e.to_string())?;
        self.rows += pending.len() as u64;
        self.pending = pending;
        self.pending.clear();
        if self.decoder()?.len() >= BATCH_ROWS {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), String> {
        if let Some(batch) = self.decoder()?.flush().map_err(|e| e.to_string())? {
            self.batches.push(batch);
        }
        Ok(())
    }

    /// Input at `at` that cannot be a row.
    pub fn bad(&mut self, at: Origin<'_>, error: String) {
        self.bad_records.push(at.bad(self.base_offset, error));
    }

    /// A record dropped as a repeat of one read before (DynamoDB `eventID`): counted only.
    pub fn duplicate(&mut self) {
        self.duplicates += 1;
    }

    /// The whole file fails (at `line`, 1-based) with `detail`: `finish` gives no rows.
    pub fn fail(&mut self, line: u64, detail: String) {
        self.failed.get_or_insert((line, detail));
    }

    /// One record, read at `at`.
    pub fn record(&mut self, record: Map<String, Value>, at: Origin<'_>) {
        self.record_from(record, None, &|| at);
    }

    /// One record; `source` is its own JSON text when the record is that object as written
    /// (rescued numbers keep their text), and `at` where it was read, asked for only when
    /// the record is also a bad record.
    pub fn record_from<'d>(
        &mut self,
        mut record: Map<String, Value>,
        source: Option<&str>,
        at: &dyn Fn() -> Origin<'d>,
    ) {
        for (name, value) in &self.partition {
            record.insert(name.clone(), value.clone());
        }
        if self.collect_new {
            let unknown: Map<String, Value> = self
                .conformer
                .unknown_keys(&record)
                .filter(|k| inlet_schema::is_valid_column_name(k))
                .map(|k| (k.clone(), record[k.as_str()].clone()))
                .collect();
            if !unknown.is_empty() {
                self.new_columns.add(&Value::Object(unknown));
            }
            if self.new_columns.records() > 0 {
                return; // nothing is decoded once the schema must change first
            }
        }
        let conformed = self.conformer.conform_written(record, self.path, source);
        if !conformed.rescued_keys.is_empty() {
            if self.opts.rescued_column.is_some() {
                self.rescued_rows += 1;
            } else {
                let error = format!(
                    "value(s) of {} do not fit their columns and no rescued data column is configured",
                    conformed.rescued_keys.join(", ")
                );
                self.bad(at(), error);
            }
        }
        self.leave_direct();
        self.pending.push(conformed.row);
        if self.pending.len() >= SERIALIZE_ROWS {
            if let Err(e) = self.serialize_pending() {
                self.error.get_or_insert(e);
            }
        }
    }

    /// The rows, or the new columns the file needs first.
    pub fn finish(mut self) -> Result<Decoded, FormatError> {
        if let Some((line, detail)) = self.failed.take() {
            return Err(FormatError::Decode {
                path: self.path.to_string(),
                line,
                detail,
            });
        }
        if self.new_columns.records() > 0 {
            let inferred = self.new_columns.schema();
            let fields = inlet_schema::hinted_types(
                inferred.fields().iter().map(|f| f.as_ref()),
                self.opts.hints,
            );
            return Ok(Decoded::NewColumns(fields));
        }
        let done = match self.error.take() {
            Some(e) => Err(e),
            // At most one of the two decoders holds rows (`took_direct`, `record_from`).
            None => self
                .serialize_pending()
                .and_then(|()| {
                    if self.decoder.is_some() {
                        self.flush()
                    } else {
                        Ok(())
                    }
                })
                .and_then(|()| self.flush_direct()),
        };
        done.map_err(|detail| FormatError::Decode {
            path: self.path.to_string(),
            line: 0,
            detail,
        })?;
        Ok(Decoded::Rows {
            batches: self.batches,
            rows: self.rows,
            rescued_rows: self.rescued_rows,
            bad_records: self.bad_records,
            duplicates: self.duplicates,
        })
    }
}

/// What kind of JSON value `v` is, as messages name it ("a number", "an object").
pub(crate) fn kind(v: &serde_json::Value) -> &'static str {
    use serde_json::Value;
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
