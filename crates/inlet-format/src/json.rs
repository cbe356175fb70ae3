//! JSON lines: a sampling pass for inference, and the decoding pass that fits every record to
//! the table's columns (rescuing what does not fit, setting aside lines that do not parse).

use arrow::datatypes::{Field, SchemaRef};
use arrow::record_batch::RecordBatch;
use inlet_schema::{Conformer, EvolutionMode, JsonInference};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::{dynamodb, Format, FormatError, NumberMode, BATCH_ROWS};

/// How records are read and fitted to the schema.
#[derive(Debug, Clone, Copy)]
pub struct DecodeOptions<'a> {
    pub format: Format,
    /// How DynamoDB `N` values are read.
    pub numbers: NumberMode,
    pub mode: EvolutionMode,
    /// The column receiving what does not fit; `None` sends such records to bad records.
    pub rescued_column: Option<&'a str>,
    /// Whether new columns get inferred types (else all strings).
    pub infer_types: bool,
    /// Types for new columns named here, overriding inference.
    pub hints: &'a [Field],
}

/// A line that did not become a row, or a row whose values did not all fit anywhere.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BadRecord {
    /// 1-based line in the decompressed file.
    pub line: u64,
    /// Offset of the line's first byte in the decompressed file.
    pub byte_offset: u64,
    pub error: String,
    /// The line as written (invalid UTF-8 replaced).
    pub raw: String,
}

/// The result of decoding one file.
#[derive(Debug)]
pub enum Decoded {
    /// Every record became a row, a bad record, or both (a row with rescued values when no
    /// rescued data column is configured).
    Rows {
        batches: Vec<RecordBatch>,
        rows: u64,
        /// Rows with something in the rescued data column.
        rescued_rows: u64,
        bad_records: Vec<BadRecord>,
    },
    /// The file has top-level fields the schema lacks (modes `add_new_columns` and
    /// `fail_on_new_columns` only): the columns they would add, typed. Nothing was decoded.
    NewColumns(Vec<Field>),
}

/// Feeds up to `max_records` records of `data` to `inference`; returns how many it read.
/// Lines that do not parse are skipped: decoding reports them.
pub fn sample_json(
    data: &[u8],
    format: Format,
    numbers: NumberMode,
    inference: &mut JsonInference,
    max_records: usize,
) -> usize {
    let mut n = 0;
    for (_, _, line) in lines(data) {
        for value in serde_json::Deserializer::from_slice(line).into_iter::<Value>() {
            let Ok(v) = value else { break };
            let Ok(records) = records_of(format, numbers, v) else {
                continue;
            };
            for record in records {
                if n >= max_records {
                    return n;
                }
                inference.add(&Value::Object(record));
                n += 1;
            }
        }
    }
    n
}

/// The rows one parsed JSON value stands for, in `format`.
fn records_of(
    format: Format,
    numbers: NumberMode,
    value: Value,
) -> Result<Vec<Map<String, Value>>, String> {
    match format {
        Format::Json => match value {
            Value::Object(record) => Ok(vec![record]),
            other => Err(format!("record is not a JSON object but {}", kind(&other))),
        },
        Format::DynamodbStream => dynamodb::stream_records(value, numbers),
        Format::DynamodbExport => dynamodb::export_item(value, numbers),
    }
}

/// Decodes `data` (the file at `path`) into record batches of `schema`, which includes the
/// rescued data column when one is configured.
pub fn decode_json(
    path: &str,
    data: &[u8],
    schema: &SchemaRef,
    opts: &DecodeOptions<'_>,
) -> Result<Decoded, FormatError> {
    if let Err(e) = std::str::from_utf8(data) {
        return Err(FormatError::NotUtf8 {
            path: path.to_string(),
            offset: e.valid_up_to() as u64,
        });
    }
    let conformer = Conformer::new(schema, opts.rescued_column, opts.mode);
    let collect_new = matches!(
        opts.mode,
        EvolutionMode::AddNewColumns | EvolutionMode::FailOnNewColumns
    );
    let mut new_columns = JsonInference::new().infer_types(opts.infer_types);
    let mut rows: Vec<Map<String, Value>> = Vec::new();
    let mut rescued_rows = 0;
    let mut bad_records = Vec::new();

    for (line_no, offset, line) in lines(data) {
        let bad = |error: String| BadRecord {
            line: line_no,
            byte_offset: offset as u64,
            error,
            raw: String::from_utf8_lossy(line).into_owned(),
        };
        let parsed = serde_json::Deserializer::from_slice(line).into_iter::<Value>();
        for value in parsed {
            let records = match value.map(|v| records_of(opts.format, opts.numbers, v)) {
                Ok(Ok(records)) => records,
                Ok(Err(error)) => {
                    bad_records.push(bad(error));
                    continue;
                }
                Err(e) => {
                    bad_records.push(bad(format!("invalid JSON at column {}: {e}", e.column())));
                    break;
                }
            };
            for record in records {
                if collect_new {
                    let unknown: Map<String, Value> = conformer
                        .unknown_keys(&record)
                        .filter(|k| inlet_schema::is_valid_column_name(k))
                        .map(|k| (k.clone(), record[k.as_str()].clone()))
                        .collect();
                    if !unknown.is_empty() {
                        new_columns.add(&Value::Object(unknown));
                    }
                    if new_columns.records() > 0 {
                        continue; // nothing is decoded once the schema must change first
                    }
                }
                let conformed = conformer.conform(record, path);
                if !conformed.rescued_keys.is_empty() {
                    if opts.rescued_column.is_some() {
                        rescued_rows += 1;
                    } else {
                        bad_records.push(bad(format!(
                        "value(s) of {} do not fit their columns and no rescued data column is configured",
                        conformed.rescued_keys.join(", ")
                    )));
                    }
                }
                rows.push(conformed.row);
            }
        }
    }

    if new_columns.records() > 0 {
        let inferred = new_columns.schema();
        let fields = inlet_schema::hinted_types(inferred.fields().iter().map(|f| f.as_ref()), opts.hints);
        return Ok(Decoded::NewColumns(fields));
    }
    let batches = to_batches(schema.clone(), &rows).map_err(|detail| FormatError::Decode {
        path: path.to_string(),
        line: 0,
        detail,
    })?;
    Ok(Decoded::Rows {
        batches,
        rows: rows.len() as u64,
        rescued_rows,
        bad_records,
    })
}

/// Rows already fitted to `schema` into record batches through arrow-json.
fn to_batches(schema: SchemaRef, rows: &[Map<String, Value>]) -> Result<Vec<RecordBatch>, String> {
    let mut decoder = arrow::json::ReaderBuilder::new(schema)
        .with_batch_size(BATCH_ROWS)
        .build_decoder()
        .map_err(|e| e.to_string())?;
    let mut batches = Vec::with_capacity(rows.len() / BATCH_ROWS + 1);
    for chunk in rows.chunks(BATCH_ROWS) {
        decoder.serialize(chunk).map_err(|e| e.to_string())?;
        if let Some(batch) = decoder.flush().map_err(|e| e.to_string())? {
            batches.push(batch);
        }
    }
    Ok(batches)
}

/// Non-blank lines with their 1-based number and byte offset; a trailing `\r` is dropped.
fn lines(data: &[u8]) -> impl Iterator<Item = (u64, usize, &[u8])> {
    let mut offset = 0;
    data.split(|&b| b == b'\n')
        .enumerate()
        .filter_map(move |(i, line)| {
            let start = offset;
            offset += line.len() + 1;
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            (!line.iter().all(u8::is_ascii_whitespace)).then_some((i as u64 + 1, start, line))
        })
}

pub(crate) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, Int64Array, StringArray};
    use arrow::datatypes::{DataType, Schema};
    use std::sync::Arc;

    const RESCUED: &str = "_rescued_data";

    fn schema(cols: &[(&str, DataType)]) -> SchemaRef {
        let mut fields: Vec<Field> = cols
            .iter()
            .map(|(n, t)| Field::new(*n, t.clone(), true))
            .collect();
        fields.push(Field::new(RESCUED, DataType::Utf8, true));
        Arc::new(Schema::new(fields))
    }

    fn opts(mode: EvolutionMode) -> DecodeOptions<'static> {
        DecodeOptions {
            format: Format::Json,
            numbers: NumberMode::Auto,
            mode,
            rescued_column: Some(RESCUED),
            infer_types: true,
            hints: &[],
        }
    }

    fn rows(d: Decoded) -> (RecordBatch, u64, Vec<BadRecord>) {
        match d {
            Decoded::Rows {
                batches,
                rescued_rows,
                bad_records,
                ..
            } => (
                arrow::compute::concat_batches(&batches[0].schema(), &batches).expect("concat"),
                rescued_rows,
                bad_records,
            ),
            Decoded::NewColumns(f) => panic!("unexpected new columns {f:?}"),
        }
    }

    #[test]
    fn wrong_types_are_rescued_and_broken_lines_set_aside() {
        let s = schema(&[("a", DataType::Int64), ("b", DataType::Utf8)]);
        let data =
            b"{\"a\":1,\"b\":\"x\"}\r\n{\"a\":\"oops\"}{\"a\":3,\"b\":4}\n\n{\"a\": nope}\n[1]\n";
        let (batch, rescued, bad) = rows(
            decode_json("f.json", data, &s, &opts(EvolutionMode::AddNewColumns)).expect("decode"),
        );
        assert_eq!(batch.num_rows(), 3);
        let a = batch
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("a");
        assert_eq!((a.value(0), a.is_null(1), a.value(2)), (1, true, 3));
        let b = batch
            .column(1)
            .as_any()
            .downcast_ref::<StringArray>()
            .expect("b");
        assert_eq!((b.value(0), b.is_null(1), b.value(2)), ("x", true, "4"));
        let r = batch
            .column(2)
            .as_any()
            .downcast_ref::<StringArray>()
            .expect("rescued");
        let v: Value = serde_json::from_str(r.value(1)).expect("json");
        assert_eq!(v, serde_json::json!({"a": "oops", "_file_path": "f.json"}));
        assert_eq!(rescued, 1);
        assert_eq!(bad.len(), 2);
        assert_eq!(
            (bad[0].line, bad[0].byte_offset, bad[0].raw.as_str()),
            (4, 44, "{\"a\": nope}")
        );
        assert!(bad[0].error.starts_with("invalid JSON"), "{}", bad[0].error);
        assert_eq!(
            (bad[1].line, bad[1].error.as_str()),
            (5, "record is not a JSON object but an array")
        );
    }

    #[test]
    fn new_columns_are_reported_typed_with_hints() {
        let s = schema(&[("a", DataType::Int64)]);
        let data = b"{\"a\":1}\n{\"a\":2,\"c\":\"x\",\"d\":1.5,\"A\":3}\n";
        let hints = [Field::new("d", DataType::Utf8, true)];
        let o = DecodeOptions {
            hints: &hints,
            ..opts(EvolutionMode::AddNewColumns)
        };
        let Decoded::NewColumns(fields) = decode_json("f", data, &s, &o).expect("decode") else {
            panic!("expected new columns");
        };
        let got: Vec<(String, DataType)> = fields
            .iter()
            .map(|f| (f.name().clone(), f.data_type().clone()))
            .collect();
        assert_eq!(
            got,
            vec![("c".into(), DataType::Utf8), ("d".into(), DataType::Utf8)]
        );
        // In rescue mode the same file decodes, with c and d rescued.
        let (batch, rescued, _) =
            rows(decode_json("f", data, &s, &opts(EvolutionMode::Rescue)).expect("decode"));
        assert_eq!((batch.num_rows(), rescued), (2, 1));
    }

    #[test]
    fn not_utf8_fails_the_file() {
        let s = schema(&[("a", DataType::Int64)]);
        let err = decode_json(
            "f",
            b"{\"a\":1}\n\xff\xfe",
            &s,
            &opts(EvolutionMode::Rescue),
        )
        .expect_err("bad");
        assert_eq!(
            err.to_string(),
            "f is not UTF-8 text (first invalid byte at offset 8)"
        );
    }
}
