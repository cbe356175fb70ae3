//! Avro object container files: the schema from the file's header, the blocks (in any codec
//! the header names) read by arrow-avro, and columns cast to the table's as Parquet's are.
//!
//! Why arrow-avro (arrow's own reader, 59.3.2 like the rest of the build) and not
//! `apache-avro`: it reads every codec of the spec (null, deflate, snappy, zstandard, bzip2,
//! xz) and every logical type needed here straight into Arrow arrays, and it is far faster.
//! On one generated file of 200,000 records (a nested record, an array, a map, a timestamp,
//! a decimal, a nullable union: the `#[ignore]`d test `decode_throughput`, test profile with
//! dependencies at opt-level 1, two runs on the 2-core machine beside a release build), in
//! million records per second, null codec / deflate:
//!
//! | reader                                             | null      | deflate   |
//! |----------------------------------------------------|-----------|-----------|
//! | arrow-avro to Arrow batches                        | 2.0 – 3.0 | 1.6 – 1.7 |
//! | this module's whole decode (casts, rescue checks)  | 1.6 – 2.8 | 1.6       |
//! | `apache-avro` to its own values only               | 0.20–0.28 | 0.22–0.25 |
//! | `apache-avro` values as JSON through the fitter    | 0.03–0.06 | 0.05      |
//!
//! Three gaps of arrow-avro 59 are closed here: its sync reader loops forever on a block
//! holding more bytes than its records take (the async reader is driven instead, `decode`),
//! it ends quietly at a block cut short (the framing is checked first,
//! `Header::check_blocks`), and it refuses or misreads some schemas real writers produce
//! (rewritten in the header first, `readable_schema`).

use std::cell::Cell;
use std::ops::Range;
use std::sync::Arc;

use arrow::datatypes::{Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use arrow_avro::errors::AvroError;
use arrow_avro::reader::{AsyncAvroFileReader, AsyncFileReader, ReaderBuilder};
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};

use crate::avro_columns::{plain_column, plain_field};
use crate::avro_container::{readable_schema, Header};
use crate::column_types::table_columns;
use crate::columnar::decode_batches;
use crate::decoded::{Decoded, BATCH_ROWS};
use crate::error::FormatError;
use crate::options::DecodeOptions;

fn bad_file(path: &str, detail: impl std::fmt::Display) -> FormatError {
    FormatError::Unreadable {
        path: path.to_string(),
        format: "Avro",
        detail: detail.to_string(),
    }
}

/// The file as arrow-avro is given it, and the Arrow schema it reads the header's as: the
/// header written again where arrow-avro would refuse its schema or fail on values the
/// table can keep (`readable_schema`). Only the header is read; the blocks are not copied.
fn readable(path: &str, data: &Bytes) -> Result<(InMemory, SchemaRef), FormatError> {
    let header = Header::read(data).map_err(|e| bad_file(path, e))?;
    let schema = header
        .schema()
        .ok_or_else(|| bad_file(path, "its header has no schema (avro.schema)"))?;
    let header_schema = |header: &[u8]| {
        ReaderBuilder::new()
            .build(header)
            .map(|reader| reader.schema())
    };
    let rewritten = |schema: String| {
        let head = header.with_schema(&schema);
        let arrow = header_schema(&head)?;
        // The new header but its sync marker, then the file from the old header's marker.
        let keep = head.len().saturating_sub(16);
        let file = InMemory {
            head: Bytes::from(head).slice(..keep),
            tail: data.slice(header.len.saturating_sub(16)..),
        };
        Ok::<_, arrow::error::ArrowError>((file, arrow))
    };
    if let Some(plain) = readable_schema(schema, false) {
        return rewritten(plain).map_err(|e| bad_file(path, e));
    }
    match header_schema(&data[..header.len]) {
        Ok(arrow) => Ok((
            InMemory {
                head: Bytes::new(),
                tail: data.clone(),
            },
            arrow,
        )),
        Err(first) => match readable_schema(schema, true) {
            Some(deduped) => rewritten(deduped).map_err(|_| bad_file(path, first)),
            None => Err(bad_file(path, first)),
        },
    }
}

/// A file in memory as arrow-avro's async reader fetches it: `head` then `tail`, each range
/// a slice of one of them (only a range across both, the header, is copied).
struct InMemory {
    head: Bytes,
    tail: Bytes,
}

impl InMemory {
    fn len(&self) -> u64 {
        (self.head.len() + self.tail.len()) as u64
    }

    fn slice(&self, range: &Range<u64>) -> Option<Bytes> {
        let start = usize::try_from(range.start).ok()?;
        let end = usize::try_from(range.end).ok()?;
        let split = self.head.len();
        if start > end || end > split + self.tail.len() {
            return None;
        }
        Some(if end <= split {
            self.head.slice(start..end)
        } else if start >= split {
            self.tail.slice(start - split..end - split)
        } else {
            let mut both = self.head[start..].to_vec();
            both.extend_from_slice(&self.tail[..end - split]);
            Bytes::from(both)
        })
    }
}

impl AsyncFileReader for InMemory {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, Result<Bytes, AvroError>> {
        let slice = self
            .slice(&range)
            .ok_or_else(|| AvroError::EOF(format!("bytes {range:?} are past the file's end")));
        futures::future::ready(slice).boxed()
    }
}

/// The file's columns as its values are handed on (`plain_field`).
fn file_schema(read: &Schema) -> Schema {
    Schema::new(
        read.fields()
            .iter()
            .map(|f| plain_field(f))
            .collect::<Vec<_>>(),
    )
}

/// The columns of the file's header schema, with the types the table would keep
/// (`table_columns`); the records are not read. A zero-byte file has none.
pub(crate) fn header_schema(path: &str, data: &Bytes) -> Result<Schema, FormatError> {
    if data.is_empty() {
        return Ok(Schema::empty());
    }
    let (_, read) = readable(path, data)?;
    Ok(table_columns(&file_schema(&read)))
}

/// Decodes an Avro object container file into batches of `schema`. A file that cannot be
/// read to its end (a bad header, a block cut short, corrupt or not ending in the sync
/// marker, a codec this build lacks) is a failed file: `FormatError::Unreadable` naming it
/// and how far it was read. A zero-byte file has no rows.
///
/// The blocks are read by arrow-avro's async reader, driven here by `futures`' executor
/// (every fetch is ready at once: the file is in memory). Its sync reader loops forever on
/// a block holding more bytes than its declared records take, which a corrupt file can.
pub(crate) fn decode(
    path: &str,
    data: &Bytes,
    schema: &SchemaRef,
    opts: &DecodeOptions<'_>,
) -> Result<Decoded, FormatError> {
    if data.is_empty() {
        return Ok(Decoded::Rows {
            batches: Vec::new(),
            rows: 0,
            rescued_rows: 0,
            bad_records: Vec::new(),
            duplicates: 0,
        });
    }
    // arrow-avro stops quietly at a block cut short: the framing is checked first.
    let records = Header::read(data)
        .and_then(|header| header.check_blocks(data))
        .map_err(|e| bad_file(path, e))?;
    let (file, read_schema) = readable(path, data)?;
    let len = file.len();
    let mut stream = futures::executor::block_on(
        AsyncAvroFileReader::builder(file, len, BATCH_ROWS)
            .with_range(0..len)
            .try_build(),
    )
    .map_err(|e| bad_file(path, e))?;
    let plain = Arc::new(file_schema(&read_schema));
    let read = Cell::new(0u64);
    let batches = std::iter::from_fn(|| futures::executor::block_on(stream.next())).map(|batch| {
        let batch =
            batch.map_err(|e| bad_file(path, format!("after {} records: {e}", read.get())))?;
        read.set(read.get() + batch.num_rows() as u64);
        let columns = read_schema
            .fields()
            .iter()
            .zip(batch.columns())
            .map(|(field, column)| {
                plain_column(field, column)
                    .map_err(|e| bad_file(path, format!("column {}: {e}", field.name())))
            })
            .collect::<Result<Vec<_>, _>>()?;
        RecordBatch::try_new(plain.clone(), columns).map_err(|e| bad_file(path, e))
    });
    // Every record the blocks declare was read, or the file fails.
    let mut checked = false;
    let all_read = std::iter::from_fn(|| {
        if std::mem::replace(&mut checked, true) || read.get() == records {
            return None;
        }
        let detail = format!(
            "its blocks declare {records} records, {} were read",
            read.get()
        );
        Some(Err(bad_file(path, detail)))
    });
    decode_batches(path, &plain, batches.chain(all_read), schema, opts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::avro_fixtures::{self as fx, string, union};
    use crate::{CsvOptions, Format, SchemaSample};
    use apache_avro::types::Value as AvroValue;
    use apache_avro::Codec;
    use arrow::array::{Array, ArrayRef, AsArray};
    use arrow::datatypes::{
        DataType, Date32Type, Decimal128Type, Field, Fields, Int64Type, TimeUnit,
        TimestampMicrosecondType,
    };
    use inlet_schema::EvolutionMode;

    fn opts(csv: &CsvOptions, mode: EvolutionMode) -> DecodeOptions<'_> {
        DecodeOptions {
            csv,
            ..crate::testing::options(Format::Avro, mode)
        }
    }

    /// The first schema the files give (sampled apart and merged, as the first batch does),
    /// with the rescued data column.
    fn sampled(files: &[&Bytes]) -> SchemaRef {
        let csv = CsvOptions::default();
        let mut merged = SchemaSample::new(true);
        for data in files {
            let mut one = SchemaSample::new(true);
            one.add("f.avro", data, &opts(&csv, EvolutionMode::AddNewColumns))
                .expect("sample");
            merged.merge(one);
        }
        Arc::new(inlet_schema::with_rescued_column(
            &merged.schema(),
            Some("_rescued_data"),
        ))
    }

    fn rows(path: &str, data: &Bytes, schema: &SchemaRef, mode: EvolutionMode) -> RecordBatch {
        let csv = CsvOptions::default();
        match crate::decode(path, data, schema, &opts(&csv, mode)).expect("decode") {
            Decoded::Rows { batches, rows, .. } => {
                let batch = arrow::compute::concat_batches(schema, &batches).expect("concat");
                assert_eq!(batch.num_rows() as u64, rows);
                batch
            }
            Decoded::NewColumns(f) => panic!("new columns {f:?}"),
        }
    }

    /// `dtype` with time zone `UTC` written as the offset `+00:00`: arrow-json renders only
    /// offsets in this crate's build (the engine's build has `chrono-tz`).
    fn with_offsets(dtype: &DataType) -> DataType {
        use DataType::*;
        let field = |f: &Field| Field::new(f.name(), with_offsets(f.data_type()), f.is_nullable());
        match dtype {
            Timestamp(unit, Some(_)) => Timestamp(*unit, Some("+00:00".into())),
            List(f) => List(Arc::new(field(f))),
            Struct(fields) => Struct(fields.iter().map(|f| field(f)).collect()),
            Map(f, sorted) => Map(Arc::new(field(f)), *sorted),
            other => other.clone(),
        }
    }

    /// Each row as a JSON object of its non-null columns, as arrow-json writes them.
    fn json(batch: &RecordBatch) -> Vec<serde_json::Value> {
        let columns: Vec<(String, ArrayRef)> = batch
            .schema()
            .fields()
            .iter()
            .zip(batch.columns())
            .map(|(f, c)| {
                let to = with_offsets(f.data_type());
                (
                    f.name().clone(),
                    arrow::compute::cast(c, &to).expect("offsets"),
                )
            })
            .collect();
        let batch = RecordBatch::try_from_iter(columns).expect("batch");
        let mut writer = arrow::json::ArrayWriter::new(Vec::new());
        writer.write(&batch).expect("json");
        writer.finish().expect("json");
        serde_json::from_slice(&writer.into_inner()).expect("json")
    }

    fn field(name: &str, dtype: DataType) -> Field {
        Field::new(name, dtype, true)
    }

    fn list(item: DataType) -> DataType {
        DataType::List(Arc::new(field("item", item)))
    }

    fn map(value: DataType) -> DataType {
        DataType::Map(
            Arc::new(Field::new(
                "key_value",
                DataType::Struct(Fields::from(vec![
                    Field::new("key", DataType::Utf8, false),
                    field("value", value),
                ])),
                false,
            )),
            false,
        )
    }

    fn utc() -> DataType {
        DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
    }

    #[test]
    fn every_type_and_codec_reads_into_the_table_types() {
        use DataType::*;
        let geo = Struct(Fields::from(vec![
            field("lat", Float64),
            field("lon", Float64),
        ]));
        let expected = Schema::new(vec![
            field("id", Int64),
            field("count", Int64),
            field("score", Float64),
            field("ratio", Float64),
            field("ok", Boolean),
            field("name", Utf8),
            field("raw", Binary),
            field("code", Binary),
            field("color", Utf8),
            field("tags", list(Utf8)),
            field("attrs", map(Int64)),
            field(
                "address",
                Struct(Fields::from(vec![
                    field("street", Utf8),
                    field("geo", geo.clone()),
                ])),
            ),
            field(
                "visits",
                list(Struct(Fields::from(vec![
                    field("at", utc()),
                    field("pages", map(list(Int64))),
                ]))),
            ),
            field("ts_ms", utc()),
            field("ts_us", utc()),
            field("local_ms", Timestamp(TimeUnit::Microsecond, None)),
            field("local_us", Timestamp(TimeUnit::Microsecond, None)),
            field("day", Date32),
            field("price", Decimal128(10, 2)),
            field("amount", Decimal128(18, 3)),
            field("uid", Utf8),
            field("note", Utf8),
            field("level", Int64),
            field("opt_geo", geo),
            field("num", Float64),
            field("any", Utf8),
        ]);
        let mut first: Option<Vec<serde_json::Value>> = None;
        for (name, codec) in fx::codecs() {
            let data = fx::write(fx::ALL_TYPES, fx::all_types_records(), codec);
            let schema = sampled(&[&data]);
            assert_eq!(
                schema.as_ref(),
                &inlet_schema::with_rescued_column(&expected, Some("_rescued_data")),
                "{name}"
            );
            let batch = rows("f.avro", &data, &schema, EvolutionMode::AddNewColumns);
            assert_eq!(batch.num_rows(), 3, "{name}");
            assert_eq!(batch.schema(), schema, "{name}");
            let rescued = batch.column_by_name("_rescued_data").expect("rescued");
            assert_eq!(
                rescued.null_count(),
                3,
                "{name}: nothing rescued: {rescued:?}"
            );
            let values = json(&batch);
            match &first {
                None => first = Some(values),
                Some(first) => assert_eq!(&values, first, "{name}"),
            }
        }
        // The values, checked once (every codec gave the same rows).
        let data = fx::write(fx::ALL_TYPES, fx::all_types_records(), Codec::Null);
        let schema = sampled(&[&data]);
        let batch = rows("f.avro", &data, &schema, EvolutionMode::AddNewColumns);
        let column = |name: &str| batch.column_by_name(name).expect(name).clone();
        let ms = 1_704_164_645_678i64;
        let micros = |c: &str| {
            column(c)
                .as_primitive::<TimestampMicrosecondType>()
                .values()
                .to_vec()
        };
        assert_eq!(
            micros("ts_ms"),
            vec![(ms + 1) * 1000, (ms + 2) * 1000, (ms + 3) * 1000]
        );
        assert_eq!(
            micros("ts_us"),
            vec![ms * 1000 + 1, ms * 1000 + 2, ms * 1000 + 3]
        );
        assert_eq!(micros("local_ms"), micros("ts_ms"));
        assert_eq!(micros("local_us"), micros("ts_us"));
        assert_eq!(
            column("day").as_primitive::<Date32Type>().values().to_vec(),
            vec![19_725, 19_726, 19_727]
        );
        assert_eq!(
            column("price")
                .as_primitive::<Decimal128Type>()
                .values()
                .to_vec(),
            vec![12_345, 24_690, 37_035]
        );
        assert_eq!(
            column("amount")
                .as_primitive::<Decimal128Type>()
                .values()
                .to_vec(),
            vec![-1_000_001, -2_000_002, -3_000_003]
        );
        assert_eq!(
            column("level")
                .as_primitive::<Int64Type>()
                .iter()
                .collect::<Vec<_>>(),
            vec![Some(7), None, Some(-1)]
        );
        let values = json(&batch);
        let expect = serde_json::json!([
            {"id": 1, "count": 10, "score": 1.5, "ratio": 0.25, "ok": true, "name": "name 1",
             "raw": "0001feff", "code": "61626301", "color": "GREEN", "tags": ["a", "b"],
             "attrs": {"x": 1, "y": -2},
             "address": {"street": "1 Main St", "geo": {"lat": 52.5, "lon": 13.4}},
             "visits": [{"at": "2024-01-02T03:04:05.678Z", "pages": {"home": [1, 2]}}],
             "ts_ms": "2024-01-02T03:04:05.679Z", "ts_us": "2024-01-02T03:04:05.678001Z",
             "local_ms": "2024-01-02T03:04:05.679", "local_us": "2024-01-02T03:04:05.678001",
             "day": "2024-01-03", "price": 123.45, "amount": -1000.001,
             "uid": "1481531d-ccc9-46d9-a56f-5b67459c0537",
             "note": "hello", "level": 7, "opt_geo": {"lat": 1.0, "lon": 2.0}, "num": 3.0,
             "any": "text"},
            {"id": 2, "count": 20, "score": 1.5, "ratio": 0.5, "ok": false, "name": "name 2",
             "raw": "0001feff", "code": "61626302", "color": "RED", "tags": ["c"],
             "attrs": {"z": 3},
             "address": {"street": "1 Main St", "geo": {"lat": 52.5, "lon": 13.4}},
             "visits": [{"at": "2024-01-02T03:04:05.679Z", "pages": {}},
                        {"at": "2024-01-02T03:04:05.680Z", "pages": {"a": []}}],
             "ts_ms": "2024-01-02T03:04:05.680Z", "ts_us": "2024-01-02T03:04:05.678002Z",
             "local_ms": "2024-01-02T03:04:05.680", "local_us": "2024-01-02T03:04:05.678002",
             "day": "2024-01-04", "price": 246.90, "amount": -2000.002,
             "uid": "1481531d-ccc9-46d9-a56f-5b67459c0537", "num": 2.5, "any": "42"},
            {"id": 3, "count": 30, "score": 1.5, "ratio": 0.75, "ok": true, "name": "name 3",
             "raw": "0001feff", "code": "61626303", "color": "GREEN", "tags": [],
             "attrs": {},
             "address": {"street": "1 Main St", "geo": {"lat": 52.5, "lon": 13.4}},
             "visits": [],
             "ts_ms": "2024-01-02T03:04:05.681Z", "ts_us": "2024-01-02T03:04:05.678003Z",
             "local_ms": "2024-01-02T03:04:05.681", "local_us": "2024-01-02T03:04:05.678003",
             "day": "2024-01-05", "price": 370.35, "amount": -3000.003,
             "uid": "1481531d-ccc9-46d9-a56f-5b67459c0537", "note": "", "level": -1,
             "any": "{\"lat\":-1.5,\"lon\":0.0}"},
        ]);
        assert_eq!(serde_json::Value::Array(values), expect);
    }

    #[test]
    fn header_schemas_merge_by_name_like_parquet_footers() {
        let first = fx::write(
            r#"{"type": "record", "name": "A", "fields": [
                {"name": "a", "type": "int"}, {"name": "b", "type": "string"}]}"#,
            vec![vec![("a", AvroValue::Int(1)), ("b", string("x"))]],
            Codec::Null,
        );
        let second = fx::write(
            r#"{"type": "record", "name": "B", "fields": [
                {"name": "a", "type": "double"}, {"name": "B", "type": "long"},
                {"name": "c", "type": ["null", "long"]}]}"#,
            vec![vec![
                ("a", AvroValue::Double(2.5)),
                ("B", AvroValue::Long(3)),
                ("c", union(1, AvroValue::Long(4))),
            ]],
            Codec::Deflate(apache_avro::DeflateSettings::default()),
        );
        let schema = sampled(&[&first, &second]);
        assert_eq!(
            schema.as_ref(),
            &Schema::new(vec![
                field("a", DataType::Float64),
                field("b", DataType::Utf8),
                field("c", DataType::Int64),
                field("_rescued_data", DataType::Utf8),
            ])
        );
        let batch = rows("f1.avro", &first, &schema, EvolutionMode::AddNewColumns);
        assert_eq!(json(&batch), vec![serde_json::json!({"a": 1.0, "b": "x"})]);
        // `B` is `b` but for case: its value is rescued under its own name.
        let batch = rows("f2.avro", &second, &schema, EvolutionMode::AddNewColumns);
        assert_eq!(
            json(&batch),
            vec![serde_json::json!({"a": 2.5, "c": 4,
                "_rescued_data": "{\"B\":3,\"_file_path\":\"f2.avro\"}"})]
        );
    }

    #[test]
    fn values_the_table_cannot_keep_are_rescued_row_by_row() {
        let data = fx::write(
            r#"{"type": "record", "name": "R", "fields": [
                {"name": "x", "type": "string"},
                {"name": "d", "type": {"type": "bytes", "logicalType": "decimal",
                  "precision": 10, "scale": 2}},
                {"name": "l", "type": {"type": "array", "items": "string"}},
                {"name": "m", "type": {"type": "map", "values": "string"}},
                {"name": "s", "type": {"type": "record", "name": "S", "fields": [
                  {"name": "a", "type": "string"}]}}]}"#,
            vec![
                vec![
                    ("x", string("5")),
                    ("d", fx::decimal(1_234)),
                    ("l", AvroValue::Array(vec![string("1"), string("2")])),
                    ("m", fx::map(vec![("a", string("1"))])),
                    ("s", AvroValue::Record(vec![("a".into(), string("6"))])),
                ],
                vec![
                    ("x", string("abc")),
                    ("d", fx::decimal(1_234_567)),
                    ("l", AvroValue::Array(vec![string("1"), string("x")])),
                    ("m", fx::map(vec![("b", string("y"))])),
                    ("s", AvroValue::Record(vec![("a".into(), string("q"))])),
                ],
            ],
            Codec::Snappy,
        );
        // The table as other files made it.
        let table = Arc::new(Schema::new(vec![
            field("x", DataType::Int64),
            field("d", DataType::Decimal128(4, 2)),
            field("l", list(DataType::Int64)),
            field("m", map(DataType::Int64)),
            field(
                "s",
                DataType::Struct(Fields::from(vec![field("a", DataType::Int64)])),
            ),
            field("_rescued_data", DataType::Utf8),
        ]));
        let batch = rows("s3://b/r.avro", &data, &table, EvolutionMode::Rescue);
        assert_eq!(
            json(&batch),
            vec![
                serde_json::json!({"x": 5, "d": 12.34, "l": [1, 2], "m": {"a": 1},
                    "s": {"a": 6}}),
                serde_json::json!({"s": {},
                    "_rescued_data": "{\"_file_path\":\"s3://b/r.avro\",\"d\":12345.67,\
                        \"l\":[\"1\",\"x\"],\"m\":{\"b\":\"y\"},\"s\":{\"a\":\"q\"},\
                        \"x\":\"abc\"}"}),
            ]
        );
        // Without a rescued data column, such a row is also a bad record.
        let csv = CsvOptions::default();
        let no_rescue = DecodeOptions {
            rescued_column: None,
            ..opts(&csv, EvolutionMode::Rescue)
        };
        let table = Arc::new(Schema::new(table.fields()[..5].to_vec()));
        let Ok(Decoded::Rows { bad_records, .. }) =
            crate::decode("s3://b/r.avro", &data, &table, &no_rescue)
        else {
            panic!("rows");
        };
        assert_eq!(bad_records.len(), 1);
        assert_eq!(bad_records[0].line, 2);
        assert!(
            bad_records[0].error.contains("d, l, m, s, x"),
            "{}",
            bad_records[0].error
        );
    }

    #[test]
    fn columns_the_table_lacks_follow_the_evolution_mode() {
        let data = fx::write(
            r#"{"type": "record", "name": "R", "fields": [
                {"name": "a", "type": "long"},
                {"name": "z", "type": {"type": "array", "items": "int"}}]}"#,
            vec![vec![
                ("a", AvroValue::Long(1)),
                ("z", AvroValue::Array(vec![AvroValue::Int(2)])),
            ]],
            Codec::Null,
        );
        let table = Arc::new(Schema::new(vec![
            field("a", DataType::Int64),
            field("_rescued_data", DataType::Utf8),
        ]));
        let csv = CsvOptions::default();
        for mode in [
            EvolutionMode::AddNewColumns,
            EvolutionMode::FailOnNewColumns,
        ] {
            let Ok(Decoded::NewColumns(new)) =
                crate::decode("f.avro", &data, &table, &opts(&csv, mode))
            else {
                panic!("{mode:?}: z is new");
            };
            assert_eq!(new, vec![field("z", list(DataType::Int64))]);
        }
        let batch = rows("f.avro", &data, &table, EvolutionMode::Rescue);
        assert_eq!(
            json(&batch),
            vec![serde_json::json!({"a": 1,
                "_rescued_data": "{\"_file_path\":\"f.avro\",\"z\":[2]}"})]
        );
        let batch = rows("f.avro", &data, &table, EvolutionMode::None);
        assert_eq!(json(&batch), vec![serde_json::json!({"a": 1})]);
    }

    #[test]
    fn uuids_read_as_their_text_written_as_strings_or_16_bytes() {
        // A string of logical type uuid that is not a UUID stays what it is.
        let data = fx::write(
            r#"{"type": "record", "name": "R", "fields": [
                {"name": "u", "type": ["null", {"type": "string", "logicalType": "uuid"}]}]}"#,
            vec![
                vec![("u", union(1, string("not a uuid")))],
                vec![(
                    "u",
                    union(1, string("1481531D-CCC9-46D9-A56F-5B67459C0537")),
                )],
                vec![("u", union(0, AvroValue::Null))],
            ],
            Codec::Null,
        );
        let schema = sampled(&[&data]);
        let batch = rows("f.avro", &data, &schema, EvolutionMode::AddNewColumns);
        let u: Vec<Option<&str>> = batch.column(0).as_string::<i32>().iter().collect();
        assert_eq!(
            u,
            vec![
                Some("not a uuid"),
                Some("1481531D-CCC9-46D9-A56F-5B67459C0537"),
                None
            ]
        );
        // A fixed(16) of logical type uuid (as Iceberg writes it): its canonical text.
        let mut block = Vec::new();
        for id in [0x0011_2233_4455_6677_8899_aabb_ccdd_eeffu128, 1] {
            block.extend_from_slice(&id.to_be_bytes());
        }
        let data = fx::container(
            r#"{"type": "record", "name": "R", "fields": [{"name": "u",
                "type": {"type": "fixed", "name": "U", "size": 16, "logicalType": "uuid"}}]}"#,
            2,
            &block,
        );
        let schema = sampled(&[&data]);
        assert_eq!(schema.field(0).data_type(), &DataType::Utf8);
        let batch = rows("f.avro", &data, &schema, EvolutionMode::AddNewColumns);
        let u: Vec<Option<&str>> = batch.column(0).as_string::<i32>().iter().collect();
        assert_eq!(
            u,
            vec![
                Some("00112233-4455-6677-8899-aabbccddeeff"),
                Some("00000000-0000-0000-0000-000000000001")
            ]
        );
    }

    #[test]
    fn a_corrupt_file_fails_naming_the_file() {
        let schema = r#"{"type": "record", "name": "R", "fields": [
            {"name": "n", "type": "long"}, {"name": "s", "type": "string"}]}"#;
        let records = |count: i64| {
            (0..count)
                .map(|i| {
                    vec![
                        ("n", AvroValue::Long(i)),
                        ("s", string(&format!("value {i}"))),
                    ]
                })
                .collect::<Vec<_>>()
        };
        // Blocks of `longs`, declaring `count` records of one long.
        let one_long = |count: i64, longs: &[i64]| {
            let mut block = Vec::new();
            for n in longs {
                fx::long(*n, &mut block);
            }
            fx::container(
                r#"{"type": "record", "name": "R", "fields": [{"name": "n", "type": "long"}]}"#,
                count,
                &block,
            )
        };
        let deflated = fx::write(
            schema,
            records(1000),
            Codec::Deflate(apache_avro::DeflateSettings::default()),
        );
        let plain = fx::write(schema, records(1000), Codec::Null);
        let mut garbled = deflated.to_vec();
        let middle = garbled.len() / 2;
        for b in &mut garbled[middle..middle + 16] {
            *b ^= 0x5a;
        }
        let mut bad_sync = plain.to_vec();
        let last = bad_sync.len() - 1;
        bad_sync[last] ^= 0xff;
        let cases: Vec<(&str, Bytes)> = vec![
            ("not avro", Bytes::from_static(b"{\"a\": 1}\n")),
            ("header cut", plain.slice(..20)),
            ("block cut", plain.slice(..plain.len() / 2)),
            ("deflate block cut", deflated.slice(..deflated.len() - 20)),
            ("garbled deflate block", Bytes::from(garbled)),
            ("sync marker wrong", Bytes::from(bad_sync)),
            ("fewer records than declared", one_long(2, &[5])),
        ];
        let table = sampled(&[&plain]);
        let csv = CsvOptions::default();
        for (case, data) in cases {
            let got = crate::decode(
                "s3://b/x/bad.avro",
                &data,
                &table,
                &opts(&csv, EvolutionMode::AddNewColumns),
            );
            let Err(e) = got else {
                panic!("{case}: {got:?}");
            };
            let text = e.to_string();
            assert!(
                text.starts_with("s3://b/x/bad.avro is not a readable Avro file: "),
                "{case}: {text}"
            );
        }
        // A block holding more bytes than its declared records: only those are read (no
        // reader can tell the rest from garbage without a schema walk), and reading ends.
        let longer = one_long(1, &[5, 6]);
        let table = sampled(&[&longer]);
        let batch = rows("f.avro", &longer, &table, EvolutionMode::AddNewColumns);
        assert_eq!(batch.num_rows(), 1);
        // Sampling reads the header only: a bad header fails it, naming the file.
        let mut sample = SchemaSample::new(true);
        let err = sample
            .add(
                "s3://b/x/bad.avro",
                &plain.slice(..20),
                &opts(&csv, EvolutionMode::AddNewColumns),
            )
            .expect_err("bad header");
        assert!(err.to_string().starts_with("s3://b/x/bad.avro"), "{err}");
    }

    #[test]
    fn a_zero_byte_file_has_no_columns_and_no_rows() {
        let empty = Bytes::new();
        let schema = sampled(&[&empty]);
        assert_eq!(schema.fields().len(), 1, "only the rescued data column");
        let batch = rows("f.avro", &empty, &schema, EvolutionMode::AddNewColumns);
        assert_eq!(batch.num_rows(), 0);
        // A file of no records (a header only) is the same.
        let header_only = fx::write(
            r#"{"type": "record", "name": "R", "fields": [
            {"name": "a", "type": "long"}]}"#,
            vec![],
            Codec::Null,
        );
        let schema = sampled(&[&header_only]);
        assert_eq!(schema.field(0), &field("a", DataType::Int64));
        assert_eq!(
            rows(
                "f.avro",
                &header_only,
                &schema,
                EvolutionMode::AddNewColumns
            )
            .num_rows(),
            0
        );
    }

    #[test]
    fn partition_values_join_each_row() {
        let data = fx::write(
            r#"{"type": "record", "name": "R", "fields": [{"name": "a", "type": "long"}]}"#,
            vec![
                vec![("a", AvroValue::Long(1))],
                vec![("a", AvroValue::Long(2))],
            ],
            Codec::Null,
        );
        let csv = CsvOptions::default();
        let partition = ["day".to_string()];
        let o = DecodeOptions {
            partition_columns: &partition,
            ..opts(&csv, EvolutionMode::AddNewColumns)
        };
        let mut sample = SchemaSample::new(true);
        sample
            .add("s3://b/day=7/f.avro", &data, &o)
            .expect("sample");
        let schema = Arc::new(inlet_schema::with_rescued_column(
            &sample.schema(),
            Some("_rescued_data"),
        ));
        assert_eq!(schema.field(1), &field("day", DataType::Int64));
        let Ok(Decoded::Rows { batches, .. }) =
            crate::decode("s3://b/day=7/f.avro", &data, &schema, &o)
        else {
            panic!("rows");
        };
        assert_eq!(
            json(&batches[0]),
            vec![
                serde_json::json!({"a": 1, "day": 7}),
                serde_json::json!({"a": 2, "day": 7})
            ]
        );
    }

    /// `n` records of a nested record, an array, a map, a timestamp, a decimal and a nullable
    /// union, and the schema they are written with.
    fn timing_file(n: usize, codec: Codec) -> Bytes {
        let schema = r#"{"type": "record", "name": "Order", "fields": [
            {"name": "id", "type": "long"},
            {"name": "customer", "type": {"type": "record", "name": "Customer", "fields": [
              {"name": "name", "type": "string"}, {"name": "age", "type": "int"},
              {"name": "address", "type": {"type": "record", "name": "Address", "fields": [
                {"name": "city", "type": "string"}, {"name": "zip", "type": "string"}]}}]}},
            {"name": "tags", "type": {"type": "array", "items": "string"}},
            {"name": "counts", "type": {"type": "map", "values": "long"}},
            {"name": "at", "type": {"type": "long", "logicalType": "timestamp-micros"}},
            {"name": "price", "type": {"type": "bytes", "logicalType": "decimal",
              "precision": 12, "scale": 2}},
            {"name": "note", "type": ["null", "string"]}]}"#;
        let records = (0..n as i64)
            .map(|i| {
                let tags = (0..i % 4).map(|t| string(&format!("tag{t}"))).collect();
                let counts = (0..i % 3)
                    .map(|c| (["a", "b", "c"][c as usize], AvroValue::Long(i * c)))
                    .collect();
                vec![
                    ("id", AvroValue::Long(i)),
                    (
                        "customer",
                        AvroValue::Record(vec![
                            ("name".into(), string(&format!("customer {}", i % 1000))),
                            ("age".into(), AvroValue::Int((i % 90) as i32)),
                            (
                                "address".into(),
                                AvroValue::Record(vec![
                                    (
                                        "city".into(),
                                        string(["Berlin", "Lyon", "Oslo"][(i % 3) as usize]),
                                    ),
                                    ("zip".into(), string(&format!("{:05}", i % 99_999))),
                                ]),
                            ),
                        ]),
                    ),
                    ("tags", AvroValue::Array(tags)),
                    ("counts", fx::map(counts)),
                    (
                        "at",
                        AvroValue::TimestampMicros(1_704_164_645_678_000 + i * 1_000),
                    ),
                    ("price", fx::decimal(i * 7 % 1_000_000)),
                    (
                        "note",
                        if i % 5 == 0 {
                            union(0, AvroValue::Null)
                        } else {
                            union(1, string("gift wrap"))
                        },
                    ),
                ]
            })
            .collect();
        fx::write(schema, records, codec)
    }

    /// Decode throughput of the two Avro readers on one file (run with `cargo test -p
    /// inlet-format decode_throughput -- --ignored --nocapture`): arrow-avro to Arrow batches,
    /// this module's whole decode (casts and rescue checks), `apache-avro` to its own values,
    /// and `apache-avro` values through the record fitter as JSON (the way a row format goes).
    /// Best of 3 runs each.
    #[test]
    #[ignore = "timing, not a check: run by hand"]
    fn decode_throughput() {
        let n = 200_000;
        let best = |f: &mut dyn FnMut() -> u64| {
            (0..3)
                .map(|_| {
                    let t = std::time::Instant::now();
                    assert_eq!(f(), n as u64);
                    t.elapsed().as_secs_f64()
                })
                .fold(f64::INFINITY, f64::min)
        };
        for (name, codec) in [
            ("null", Codec::Null),
            (
                "deflate",
                Codec::Deflate(apache_avro::DeflateSettings::default()),
            ),
        ] {
            let data = timing_file(n, codec);
            let table = sampled(&[&data]);
            let csv = CsvOptions::default();
            let o = opts(&csv, EvolutionMode::AddNewColumns);
            let arrow_avro = best(&mut || {
                let file = InMemory {
                    head: Bytes::new(),
                    tail: data.clone(),
                };
                let len = file.len();
                let stream = futures::executor::block_on(
                    AsyncAvroFileReader::builder(file, len, BATCH_ROWS)
                        .with_range(0..len)
                        .try_build(),
                )
                .expect("reader");
                futures::executor::block_on_stream(stream)
                    .map(|b| b.expect("batch").num_rows() as u64)
                    .sum()
            });
            // arrow-avro's sync reader, for comparison (safe on this well-formed file).
            let sync_reader = best(&mut || {
                ReaderBuilder::new()
                    .with_batch_size(BATCH_ROWS)
                    .build(&data[..])
                    .expect("reader")
                    .map(|b| b.expect("batch").num_rows() as u64)
                    .sum()
            });
            let inlet = best(&mut || match crate::decode("f.avro", &data, &table, &o) {
                Ok(Decoded::Rows { rows, .. }) => rows,
                other => panic!("{other:?}"),
            });
            let apache = best(&mut || {
                let reader = apache_avro::Reader::new(&data[..]).expect("reader");
                reader.map(|v| v.map(|_| 1u64).expect("value")).sum()
            });
            // The JSON route: values as JSON objects through the record fitter, into the
            // schema JSON inference gives them (so nothing is rescued).
            let json_records = || {
                apache_avro::Reader::new(&data[..])
                    .expect("reader")
                    .map(
                        |v| match serde_json::Value::try_from(v.expect("value")).expect("json") {
                            serde_json::Value::Object(m) => m,
                            other => panic!("{other}"),
                        },
                    )
            };
            let mut inference = inlet_schema::JsonInference::new();
            for record in json_records().take(10_000) {
                inference.add(&serde_json::Value::Object(record));
            }
            let json_table: SchemaRef = Arc::new(inference.schema());
            let json_opts = DecodeOptions {
                format: Format::Json,
                rescued_column: None,
                ..o
            };
            let fitted = best(&mut || {
                let mut fitter = crate::fit::Fitter::new("f.avro", &json_table, &json_opts);
                for (i, record) in json_records().enumerate() {
                    let at = crate::fit::Origin {
                        line: i as u64 + 1,
                        offset: 0,
                        raw: "",
                    };
                    fitter.record(record, at);
                }
                match fitter.finish() {
                    Ok(Decoded::Rows { rows, .. }) => rows,
                    other => panic!("{other:?}"),
                }
            });
            let rate = |secs: f64| n as f64 / secs / 1e6;
            eprintln!(
                "{n} records, {name} codec, {:.1} MB: arrow-avro to batches {:.2} M/s \
                 (its sync reader {:.2} M/s), \
                 inlet decode {:.2} M/s, apache-avro to values {:.2} M/s, \
                 apache-avro through the fitter {:.2} M/s",
                data.len() as f64 / 1e6,
                rate(arrow_avro),
                rate(sync_reader),
                rate(inlet),
                rate(apache),
                rate(fitted),
            );
        }
    }

    #[test]
    fn full_names_as_fastavro_writes_them_resolve() {
        // fastavro writes every name in full, without `namespace`, and refers to it so.
        let schema = r#"{"type": "record", "name": "py.Ev", "fields": [
            {"name": "u", "type": {"type": "record", "name": "py.User",
              "fields": [{"name": "name", "type": "string"}]}},
            {"name": "v", "type": ["null", "py.User"]},
            {"name": "m", "type": {"type": "map", "values": ["null", "double"]}}]}"#;
        let mut block = Vec::new();
        let text = |s: &str, out: &mut Vec<u8>| {
            fx::long(s.len() as i64, out);
            out.extend_from_slice(s.as_bytes());
        };
        text("a", &mut block); // u
        fx::long(1, &mut block); // v: the User branch
        text("b", &mut block);
        fx::long(2, &mut block); // m: a block of two entries
        text("k", &mut block);
        fx::long(1, &mut block);
        block.extend_from_slice(&1.5f64.to_le_bytes());
        text("n", &mut block);
        fx::long(0, &mut block);
        fx::long(0, &mut block); // end of the map
        let data = fx::container(schema, 1, &block);
        let table = sampled(&[&data]);
        let batch = rows("f.avro", &data, &table, EvolutionMode::AddNewColumns);
        assert_eq!(table.field(2).data_type(), &map(DataType::Float64));
        let entries = batch.column(2).as_map().value(0);
        let keys: Vec<Option<&str>> = entries.column(0).as_string::<i32>().iter().collect();
        let values: Vec<Option<f64>> = entries
            .column(1)
            .as_primitive::<arrow::datatypes::Float64Type>()
            .iter()
            .collect();
        assert_eq!(
            (keys, values),
            (vec![Some("k"), Some("n")], vec![Some(1.5), None])
        );
        let json = json(&batch);
        assert_eq!(json[0]["u"], serde_json::json!({"name": "a"}));
        assert_eq!(json[0]["v"], serde_json::json!({"name": "b"}));
    }

    #[test]
    fn times_and_durations_are_kept_as_their_text() {
        // By hand: apache-avro 0.21 writes `duration` in a form arrow-avro does not read.
        let mut block = Vec::new();
        fx::long(11_045_678, &mut block);
        fx::long(11_045_678_901, &mut block);
        for part in [1u32, 2, 3_000] {
            block.extend_from_slice(&part.to_le_bytes());
        }
        let data = fx::container(
            r#"{"type": "record", "name": "R", "fields": [
                {"name": "t_ms", "type": {"type": "int", "logicalType": "time-millis"}},
                {"name": "t_us", "type": {"type": "long", "logicalType": "time-micros"}},
                {"name": "span", "type": {"type": "fixed", "name": "D", "size": 12,
                  "logicalType": "duration"}}]}"#,
            1,
            &block,
        );
        let table = sampled(&[&data]);
        for f in &table.fields()[..3] {
            assert_eq!(f.data_type(), &DataType::Utf8, "{}", f.name());
        }
        let batch = rows("f.avro", &data, &table, EvolutionMode::AddNewColumns);
        assert_eq!(
            json(&batch),
            vec![
                serde_json::json!({"t_ms": "03:04:05.678", "t_us": "03:04:05.678901",
                "span": "1 mons 2 days 3.000000000 secs"})
            ]
        );
    }

    #[test]
    fn a_file_in_two_parts_reads_as_one() {
        let file = InMemory {
            head: Bytes::from_static(b"abc"),
            tail: Bytes::from_static(b"defg"),
        };
        assert_eq!(file.len(), 7);
        for (range, want) in [(0..3, "abc"), (3..7, "defg"), (1..5, "bcde"), (7..7, "")] {
            assert_eq!(
                file.slice(&range).as_deref(),
                Some(want.as_bytes()),
                "{range:?}"
            );
        }
        assert_eq!(file.slice(&(5..8)), None);
        assert_eq!(file.slice(&Range { start: 5, end: 4 }), None, "reversed");
    }
}
