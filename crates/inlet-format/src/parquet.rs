//! Parquet: the schema from the footer (types normalised to what the table keeps), and
//! columns cast to the table's types; a value that cannot be cast without loss is rescued.

use std::sync::Arc;

use arrow::array::{
    new_null_array, Array, ArrayRef, BooleanArray, StringArray, StructArray, UInt32Array,
};
use arrow::compute::kernels::boolean::{is_not_null, not, or};
use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use inlet_schema::{same_column_name, EvolutionMode, JsonInference, FILE_PATH_KEY, MAX_NESTING};
use parquet::arrow::arrow_reader::{ArrowReaderOptions, ParquetRecordBatchReaderBuilder};
use serde_json::{Map, Value};

use crate::decoded::{BadRecord, Decoded, BATCH_ROWS};
use crate::error::FormatError;
use crate::options::DecodeOptions;
use crate::partition;

fn bad_file(path: &str, detail: impl std::fmt::Display) -> FormatError {
    FormatError::Decode {
        path: path.to_string(),
        line: 0,
        detail: format!("not a readable Parquet file: {detail}"),
    }
}

/// The reader of the file at `path`. A file whose embedded Arrow schema cannot be read
/// (arrow-rs and pyarrow write one; its flatbuffer verifier refuses deeply nested schemas,
/// as the 100-level test file) is read by its Parquet schema alone, as Spark's files are.
fn reader(path: &str, data: &Bytes) -> Result<ParquetRecordBatchReaderBuilder<Bytes>, FormatError> {
    ParquetRecordBatchReaderBuilder::try_new(data.clone()).or_else(|first| {
        let options = ArrowReaderOptions::new().with_skip_arrow_metadata(true);
        ParquetRecordBatchReaderBuilder::try_new_with_options(data.clone(), options)
            .map_err(|_| bad_file(path, first))
    })
}

/// The columns of the file's footer, with the types the table would keep: a column nested
/// deeper than [`MAX_NESTING`] struct, list or map levels is a STRING of its values' JSON
/// text (as JSON inference makes it), and of names equal but for case the first is kept.
pub(crate) fn footer_schema(path: &str, data: &Bytes) -> Result<Schema, FormatError> {
    let builder = reader(path, data)?;
    let mut fields: Vec<Field> = Vec::new();
    for f in builder.schema().fields() {
        if fields.iter().any(|g| same_column_name(g.name(), f.name())) {
            continue; // rescued when decoded, as a case variant
        }
        fields.push(Field::new(f.name(), table_type(f.data_type()), true));
    }
    Ok(Schema::new(fields))
}

/// The type a file column of `dtype` gets in the table: `normalize`d, or a STRING (its JSON
/// text) when nested deeper than [`MAX_NESTING`], as JSON inference makes it.
fn table_type(dtype: &DataType) -> DataType {
    if nesting(dtype) > MAX_NESTING {
        DataType::Utf8
    } else {
        normalize(dtype)
    }
}

/// The struct, list and map levels of `dtype`, counting its own.
fn nesting(dtype: &DataType) -> usize {
    use DataType::*;
    match dtype {
        Struct(fields) => {
            1 + fields
                .iter()
                .map(|f| nesting(f.data_type()))
                .max()
                .unwrap_or(0)
        }
        List(f)
        | LargeList(f)
        | ListView(f)
        | LargeListView(f)
        | FixedSizeList(f, _)
        | Map(f, _) => {
            // A map's entries are one struct of key and value: one level with the map.
            let inner = match f.data_type() {
                Struct(kv) if matches!(dtype, Map(..)) => {
                    kv.iter().map(|f| nesting(f.data_type())).max().unwrap_or(0)
                }
                other => nesting(other),
            };
            1 + inner
        }
        Dictionary(_, v) => nesting(v),
        _ => 0,
    }
}

/// The type a column of `dtype` gets in the table: 64-bit integers and doubles (as JSON
/// inference makes), plain strings and binaries, microsecond timestamps, lists and structs
/// of the same.
pub(crate) fn normalize(dtype: &DataType) -> DataType {
    use DataType::*;
    match dtype {
        Int8 | Int16 | Int32 | Int64 | UInt8 | UInt16 | UInt32 | UInt64 => Int64,
        Float16 | Float32 | Float64 => Float64,
        Utf8 | LargeUtf8 | Utf8View | Null => Utf8,
        Binary | LargeBinary | BinaryView | FixedSizeBinary(_) => Binary,
        Date32 | Date64 => Date32,
        Timestamp(_, None) => Timestamp(TimeUnit::Microsecond, None),
        Timestamp(_, Some(_)) => Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        Decimal32(p, s) | Decimal64(p, s) => Decimal128(*p, *s),
        Decimal256(p, s) if *p <= 38 => Decimal128(*p, *s),
        Dictionary(_, v) => normalize(v),
        List(f) | LargeList(f) | ListView(f) | LargeListView(f) | FixedSizeList(f, _) => {
            List(Arc::new(Field::new("item", normalize(f.data_type()), true)))
        }
        // Of fields equal but for case, the first (the others are rescued when decoded).
        Struct(fields) => Struct(
            fields
                .iter()
                .enumerate()
                .filter(|(i, f)| {
                    !fields[..*i]
                        .iter()
                        .any(|g| same_column_name(g.name(), f.name()))
                })
                .map(|(_, f)| Field::new(f.name(), normalize(f.data_type()), true))
                .collect::<Fields>(),
        ),
        Boolean | Decimal128(..) | Map(..) => dtype.clone(),
        // Times, intervals, durations, unions: kept as their text.
        _ => Utf8,
    }
}

/// How a file column becomes a table column.
#[derive(Debug, PartialEq)]
enum Plan {
    /// Arrow's cast, which cannot lose a value for this pair.
    Cast,
    /// Arrow's cast, which turns what does not convert into null: those values are rescued.
    Checked,
    /// Nested values as their JSON text.
    Json,
    /// Field by field, by name.
    Struct,
    /// No conversion keeps the value: every value is rescued.
    Rescue,
}

fn plan(from: &DataType, to: &DataType) -> Plan {
    use DataType::*;
    let is_int = |t: &DataType| {
        matches!(
            t,
            Int8 | Int16 | Int32 | Int64 | UInt8 | UInt16 | UInt32 | UInt64
        )
    };
    let is_float = |t: &DataType| matches!(t, Float16 | Float32 | Float64);
    match (from, to) {
        (a, b) if a == b => Plan::Cast,
        (Null, _) => Plan::Cast,
        (Dictionary(_, v), _) => match plan(v, to) {
            Plan::Json | Plan::Struct => Plan::Rescue,
            p => p,
        },
        (Struct(_) | List(_) | LargeList(_) | FixedSizeList(..) | Map(..), Utf8) => Plan::Json,
        (_, Utf8) => Plan::Checked,
        (Int8 | Int16 | Int32 | UInt8 | UInt16 | UInt32, Int64) => Plan::Cast,
        (a, b) if is_int(a) && is_int(b) => Plan::Checked,
        (a, Float64) if is_int(a) || is_float(a) => Plan::Cast,
        (a, b) if is_float(a) && is_float(b) => Plan::Checked,
        (a, Decimal128(..)) if is_int(a) => Plan::Checked,
        (
            Decimal32(..) | Decimal64(..) | Decimal128(..) | Decimal256(..),
            Decimal128(..) | Float64,
        ) => Plan::Checked,
        (Utf8 | LargeUtf8 | Utf8View, _) => Plan::Checked,
        (Binary | LargeBinary | BinaryView | FixedSizeBinary(_), Binary) => Plan::Cast,
        (Date32 | Date64, Date32 | Timestamp(..)) | (Timestamp(..), Timestamp(..)) => Plan::Cast,
        (List(a) | LargeList(a) | FixedSizeList(a, _), List(b))
            if plan(a.data_type(), b.data_type()) == Plan::Cast =>
        {
            Plan::Cast
        }
        (Struct(_), Struct(_)) => Plan::Struct,
        _ => Plan::Rescue,
    }
}

/// `array` as `to`, with the rows whose value could not be kept (non-null in, null out).
fn convert(array: &ArrayRef, to: &DataType) -> Result<(ArrayRef, Option<BooleanArray>), String> {
    let lost_where = |out: &ArrayRef| -> Result<Option<BooleanArray>, String> {
        if out.null_count() == array.null_count() {
            return Ok(None);
        }
        let was = is_not_null(array.as_ref()).map_err(|e| e.to_string())?;
        let is =
            arrow::compute::kernels::boolean::is_null(out.as_ref()).map_err(|e| e.to_string())?;
        arrow::compute::and(&was, &is)
            .map(Some)
            .map_err(|e| e.to_string())
    };
    match plan(array.data_type(), to) {
        Plan::Cast => Ok((
            arrow::compute::cast(array, to).map_err(|e| e.to_string())?,
            None,
        )),
        Plan::Checked => match arrow::compute::cast(array, to) {
            Ok(out) => {
                let lost = lost_where(&out)?;
                Ok((out, lost))
            }
            Err(_) => rescue_all(array, to),
        },
        Plan::Json => Ok((Arc::new(json_text(array)?), None)),
        Plan::Struct => {
            let (DataType::Struct(target), Some(source)) =
                (to, array.as_any().downcast_ref::<StructArray>())
            else {
                return rescue_all(array, to);
            };
            let mut lost: Option<BooleanArray> = None;
            let mut merge = |more: Option<BooleanArray>| -> Result<(), String> {
                lost = match (lost.take(), more) {
                    (Some(a), Some(b)) => Some(or(&a, &b).map_err(|e| e.to_string())?),
                    (a, b) => a.or(b),
                };
                Ok(())
            };
            // A child the target lacks cannot be kept: its rows are rescued whole.
            for (i, f) in source.fields().iter().enumerate() {
                if !target.iter().any(|t| t.name() == f.name()) {
                    merge(Some(
                        is_not_null(source.column(i).as_ref()).map_err(|e| e.to_string())?,
                    ))?;
                }
            }
            let mut children = Vec::with_capacity(target.len());
            for t in target.iter() {
                match source.column_by_name(t.name()) {
                    Some(child) => {
                        let (out, child_lost) = convert(child, t.data_type())?;
                        merge(child_lost)?;
                        children.push(out);
                    }
                    None => children.push(new_null_array(t.data_type(), source.len())),
                }
            }
            let out = StructArray::try_new(target.clone(), children, source.nulls().cloned())
                .map_err(|e| e.to_string())?;
            Ok((Arc::new(out), lost))
        }
        Plan::Rescue => rescue_all(array, to),
    }
}

fn rescue_all(array: &ArrayRef, to: &DataType) -> Result<(ArrayRef, Option<BooleanArray>), String> {
    let lost = is_not_null(array.as_ref()).map_err(|e| e.to_string())?;
    Ok((new_null_array(to, array.len()), Some(lost)))
}

/// Each row of `array` as JSON text (null stays null).
fn json_text(array: &ArrayRef) -> Result<StringArray, String> {
    let batch = RecordBatch::try_from_iter([("v", array.clone())]).map_err(|e| e.to_string())?;
    let rows = json_rows(&batch)?;
    Ok(rows
        .into_iter()
        .map(|mut row| row.remove("v").map(|v| v.to_string()))
        .collect())
}

/// Each row of `batch` as a JSON object of its non-null columns.
fn json_rows(batch: &RecordBatch) -> Result<Vec<Map<String, Value>>, String> {
    let mut writer = arrow::json::ArrayWriter::new(Vec::new());
    writer.write(batch).map_err(|e| e.to_string())?;
    writer.finish().map_err(|e| e.to_string())?;
    let bytes = writer.into_inner();
    if bytes.is_empty() {
        return Ok(vec![Map::new(); batch.num_rows()]);
    }
    serde_json::from_slice(&bytes).map_err(|e| e.to_string())
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

/// Decodes a Parquet file into batches of `schema`.
pub(crate) fn decode(
    path: &str,
    data: &Bytes,
    schema: &SchemaRef,
    opts: &DecodeOptions<'_>,
) -> Result<Decoded, FormatError> {
    let err = |detail: String| FormatError::Decode {
        path: path.to_string(),
        line: 0,
        detail,
    };
    let builder = reader(path, data)?;
    let file_schema = builder.schema().clone();
    let rescued = opts.rescued_column;
    let partition = partition::typed_values(path, opts.partition_columns, schema, opts.infer_types);
    let in_table = |name: &str| {
        schema
            .fields()
            .iter()
            .any(|f| f.name() == name && Some(name) != rescued)
    };
    let collect_new = matches!(
        opts.mode,
        EvolutionMode::AddNewColumns | EvolutionMode::FailOnNewColumns
    );

    // File columns the table lacks: new columns, or rescued, or ignored, by mode. A column
    // named like the rescued data column is the file's own: rescued under its name.
    let mut new_fields = Vec::new();
    let mut rescue_whole: Vec<usize> = Vec::new();
    for (i, f) in file_schema.fields().iter().enumerate() {
        let name = f.name().as_str();
        if in_table(name) || partition.contains_key(name) {
            continue;
        }
        let case_variant = schema
            .fields()
            .iter()
            .any(|t| same_column_name(t.name(), name))
            || rescued.is_some_and(|r| same_column_name(r, name));
        if collect_new && !case_variant && inlet_schema::is_valid_column_name(name) {
            new_fields.push(Field::new(name, table_type(f.data_type()), true));
        } else if case_variant || opts.mode != EvolutionMode::None {
            rescue_whole.push(i);
        }
    }
    let new_partition: Map<String, Value> = partition
        .iter()
        .filter(|(n, _)| !in_table(n))
        .map(|(n, v)| (n.clone(), v.clone()))
        .collect();
    if collect_new && !new_partition.is_empty() {
        let mut inference = JsonInference::new().infer_types(opts.infer_types);
        inference.add(&Value::Object(new_partition));
        new_fields.extend(
            inference
                .schema()
                .fields()
                .iter()
                .map(|f| f.as_ref().clone()),
        );
    }
    if !new_fields.is_empty() {
        return Ok(Decoded::NewColumns(inlet_schema::hinted_types(
            new_fields.iter(),
            opts.hints,
        )));
    }

    // The partition columns' values as one row, repeated per batch.
    let partition_row = if partition.is_empty() {
        None
    } else {
        let fields: Vec<Field> = schema
            .fields()
            .iter()
            .filter(|f| partition.contains_key(f.name()))
            .map(|f| f.as_ref().clone())
            .collect();
        let batches = to_batches(
            Arc::new(Schema::new(fields)),
            std::slice::from_ref(&partition),
        )
        .map_err(err)?;
        batches.into_iter().next()
    };

    let reader = builder
        .with_batch_size(BATCH_ROWS)
        .build()
        .map_err(|e| bad_file(path, e))?;
    let mut batches = Vec::new();
    let mut bad_records = Vec::new();
    let (mut rows, mut rescued_rows) = (0u64, 0u64);
    for batch in reader {
        let batch = batch.map_err(|e| bad_file(path, e))?;
        let n = batch.num_rows();
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
        // (column name, the file's values, rows where they were not kept)
        let mut lost: Vec<(String, ArrayRef, BooleanArray)> = Vec::new();
        for field in schema.fields() {
            let name = field.name().as_str();
            if Some(name) == rescued {
                columns.push(new_null_array(field.data_type(), n)); // filled below
            } else if let (Some(row), true) = (&partition_row, partition.contains_key(name)) {
                let column = row
                    .column_by_name(name)
                    .ok_or_else(|| err(format!("partition column {name} missing")))?;
                let zeros = UInt32Array::from(vec![0u32; n]);
                columns.push(
                    arrow::compute::take(column.as_ref(), &zeros, None)
                        .map_err(|e| err(e.to_string()))?,
                );
            } else if let Some(source) = batch.column_by_name(name) {
                let (out, missed) = convert(source, field.data_type()).map_err(err)?;
                if let Some(m) = missed {
                    lost.push((name.to_string(), source.clone(), m));
                }
                columns.push(out);
            } else {
                columns.push(new_null_array(field.data_type(), n));
            }
        }
        for &i in &rescue_whole {
            let source = batch.column(i);
            let m = is_not_null(source.as_ref()).map_err(|e| err(e.to_string()))?;
            lost.push((file_schema.field(i).name().clone(), source.clone(), m));
        }
        lost.retain(|(_, _, m)| m.true_count() > 0);
        if !lost.is_empty() {
            let (rescued_text, bad) =
                rescue(path, &lost, n, rows, rescued.is_some()).map_err(err)?;
            if let (Some(col), Some(text)) = (rescued, rescued_text) {
                rescued_rows += (text.len() - text.null_count()) as u64;
                if let Some(i) = schema.fields().iter().position(|f| f.name() == col) {
                    columns[i] = Arc::new(text);
                }
            }
            bad_records.extend(bad);
        }
        rows += n as u64;
        batches
            .push(RecordBatch::try_new(schema.clone(), columns).map_err(|e| err(e.to_string()))?);
    }
    Ok(Decoded::Rows {
        batches,
        rows,
        rescued_rows,
        bad_records,
        duplicates: 0,
    })
}

/// The rescued data column for a batch of `n` rows (JSON objects of the values not kept,
/// with the file's path), or, without one, a bad record per such row.
fn rescue(
    path: &str,
    lost: &[(String, ArrayRef, BooleanArray)],
    n: usize,
    first_row: u64,
    into_column: bool,
) -> Result<(Option<StringArray>, Vec<BadRecord>), String> {
    let mut any = BooleanArray::from(vec![false; n]);
    let mut kept = Vec::with_capacity(lost.len());
    for (name, values, mask) in lost {
        any = or(&any, mask).map_err(|e| e.to_string())?;
        let only_lost =
            arrow::compute::nullif(values.as_ref(), &not(mask).map_err(|e| e.to_string())?)
                .map_err(|e| e.to_string())?;
        kept.push((name.clone(), only_lost));
    }
    let batch = RecordBatch::try_from_iter(kept).map_err(|e| e.to_string())?;
    let picked = arrow::compute::filter_record_batch(&batch, &any).map_err(|e| e.to_string())?;
    let mut objects = json_rows(&picked)?.into_iter();
    let mut text: Vec<Option<String>> = vec![None; n];
    let mut bad = Vec::new();
    for (row, slot) in text.iter_mut().enumerate() {
        if !any.value(row) {
            continue;
        }
        let mut object = objects.next().unwrap_or_default();
        if into_column {
            object.insert(FILE_PATH_KEY.into(), Value::String(path.to_string()));
            *slot = Some(Value::Object(object).to_string());
        } else {
            let keys: Vec<&str> = object.keys().map(String::as_str).collect();
            bad.push(BadRecord {
                line: first_row + row as u64 + 1,
                byte_offset: 0,
                error: format!(
                    "value(s) of {} do not fit their columns and no rescued data column is configured",
                    keys.join(", ")
                ),
                raw: Value::Object(object.clone()).to_string(),
            });
        }
    }
    Ok((into_column.then(|| StringArray::from(text)), bad))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CsvOptions, Format, NumberMode};
    use arrow::array::{AsArray, Float64Array, Int32Array};
    use arrow::datatypes::Int64Type;

    fn parquet_bytes(batch: &RecordBatch) -> Bytes {
        let mut out = Vec::new();
        let mut w =
            parquet::arrow::ArrowWriter::try_new(&mut out, batch.schema(), None).expect("writer");
        w.write(batch).expect("write");
        w.close().expect("close");
        Bytes::from(out)
    }

    #[test]
    fn columns_are_cast_and_what_cannot_be_is_rescued() {
        let file = RecordBatch::try_from_iter([
            ("id", Arc::new(Int32Array::from(vec![1, 2])) as ArrayRef),
            (
                "x",
                Arc::new(Float64Array::from(vec![Some(1.5), None])) as ArrayRef,
            ),
            (
                "extra",
                Arc::new(StringArray::from(vec!["a", "b"])) as ArrayRef,
            ),
        ])
        .expect("batch");
        let data = parquet_bytes(&file);
        let footer = footer_schema("f.parquet", &data).expect("footer");
        assert_eq!(footer.field(0).data_type(), &DataType::Int64);
        // The table has x as BIGINT: 1.5 cannot be kept there, so it is rescued.
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("x", DataType::Int64, true),
            Field::new("_rescued_data", DataType::Utf8, true),
        ]));
        let csv = CsvOptions::default();
        let mut opts = DecodeOptions {
            format: Format::Parquet,
            numbers: NumberMode::Auto,
            csv: &csv,
            mode: EvolutionMode::AddNewColumns,
            rescued_column: Some("_rescued_data"),
            infer_types: true,
            hints: &[],
            partition_columns: &[],
            known_to_fit: false,
            multiline: false,
            export_time_micros: None,
        };
        let Decoded::NewColumns(new) =
            decode("s3://b/f.parquet", &data, &schema, &opts).expect("decode")
        else {
            panic!("extra is new");
        };
        assert_eq!(new, vec![Field::new("extra", DataType::Utf8, true)]);
        opts.mode = EvolutionMode::Rescue;
        let Decoded::Rows {
            batches,
            rescued_rows,
            ..
        } = decode("s3://b/f.parquet", &data, &schema, &opts).expect("decode")
        else {
            panic!("rows");
        };
        let b = &batches[0];
        assert_eq!(
            b.column(0).as_primitive::<Int64Type>().values().to_vec(),
            vec![1, 2]
        );
        assert!(b.column(1).is_null(0));
        let rescued: Vec<Value> = b
            .column(2)
            .as_string::<i32>()
            .iter()
            .map(|t| serde_json::from_str(t.expect("text")).expect("json"))
            .collect();
        assert_eq!(
            rescued[0],
            serde_json::json!({"x": 1.5, "extra": "a", "_file_path": "s3://b/f.parquet"})
        );
        assert_eq!(
            rescued[1],
            serde_json::json!({"extra": "b", "_file_path": "s3://b/f.parquet"})
        );
        assert_eq!(rescued_rows, 2);
    }

    fn opts_for(csv: &CsvOptions, mode: EvolutionMode) -> DecodeOptions<'_> {
        DecodeOptions {
            format: Format::Parquet,
            numbers: NumberMode::Auto,
            csv,
            mode,
            rescued_column: Some("_rescued_data"),
            infer_types: true,
            hints: &[],
            partition_columns: &[],
            known_to_fit: false,
            multiline: false,
            export_time_micros: None,
        }
    }

    fn decoded_rows(d: Decoded) -> RecordBatch {
        match d {
            Decoded::Rows { batches, .. } => {
                arrow::compute::concat_batches(&batches[0].schema(), &batches).expect("concat")
            }
            Decoded::NewColumns(f) => panic!("new columns {f:?}"),
        }
    }

    /// A one-row column of `levels` structs (field `c`) or lists around the number 1, and the
    /// same value as JSON.
    fn nested_column(levels: usize, lists: bool) -> (ArrayRef, Value) {
        let mut a: ArrayRef = Arc::new(arrow::array::Int64Array::from(vec![1]));
        let mut v = serde_json::json!(1);
        for _ in 0..levels {
            let field = Field::new(
                if lists { "item" } else { "c" },
                a.data_type().clone(),
                true,
            );
            a = if lists {
                Arc::new(
                    arrow::array::ListArray::try_new(
                        Arc::new(field),
                        arrow::buffer::OffsetBuffer::from_lengths([1]),
                        a,
                        None,
                    )
                    .expect("list"),
                )
            } else {
                Arc::new(
                    StructArray::try_new(Fields::from(vec![field]), vec![a], None).expect("struct"),
                )
            };
            v = if lists {
                serde_json::json!([v])
            } else {
                serde_json::json!({ "c": v })
            };
        }
        (a, v)
    }

    #[test]
    fn columns_nested_deeper_than_the_limit_become_their_json_text() {
        let csv = CsvOptions::default();
        for lists in [false, true] {
            for levels in [31, 32, 33, 42, 100] {
                let (column, value) = nested_column(levels, lists);
                let file = RecordBatch::try_from_iter([("c", column.clone())]).expect("batch");
                let data = parquet_bytes(&file);
                let footer = footer_schema("f.parquet", &data).expect("footer");
                // The table can be made: its schema reads back under serde_json's limit.
                let stored = inlet_schema::to_json(&footer);
                assert_eq!(inlet_schema::from_json(&stored).ok(), Some(footer.clone()));
                let dtype = footer.field(0).data_type();
                if levels <= MAX_NESTING {
                    assert_eq!(nesting(dtype), levels);
                } else {
                    assert_eq!(dtype, &DataType::Utf8, "{levels} levels");
                }
                let o = opts_for(&csv, EvolutionMode::AddNewColumns);
                // A table without the column gets it with the same type.
                let empty = Arc::new(inlet_schema::with_rescued_column(
                    &Schema::empty(),
                    Some("_rescued_data"),
                ));
                let Decoded::NewColumns(new) =
                    decode("f.parquet", &data, &empty, &o).expect("decode")
                else {
                    panic!("c is new");
                };
                assert_eq!(
                    new,
                    footer
                        .fields()
                        .iter()
                        .map(|f| f.as_ref().clone())
                        .collect::<Vec<_>>()
                );
                let schema = Arc::new(inlet_schema::with_rescued_column(
                    &footer,
                    Some("_rescued_data"),
                ));
                let batch = decoded_rows(decode("f.parquet", &data, &schema, &o).expect("decode"));
                assert!(batch.column(1).is_null(0), "nothing rescued");
                if levels > MAX_NESTING {
                    let text = batch.column(0).as_string::<i32>().value(0);
                    let back: Value = serde_json::from_str(text).expect("json");
                    assert_eq!(back, value, "{levels} levels");
                } else {
                    assert_eq!(batch.column(0).data_type(), dtype);
                }
            }
        }
    }

    /// Samples the Parquet files `files` apart and merges them, as the first batch does,
    /// then appends the rescued data column.
    fn sampled(files: &[&Bytes], o: &DecodeOptions<'_>) -> SchemaRef {
        let mut sample = crate::SchemaSample::new(true);
        for bytes in files {
            let mut one = crate::SchemaSample::new(true);
            one.add("f.parquet", bytes, o).expect("sample");
            sample.merge(one);
        }
        Arc::new(inlet_schema::with_rescued_column(
            &sample.schema(),
            Some("_rescued_data"),
        ))
    }

    fn names(schema: &Schema) -> Vec<&str> {
        schema.fields().iter().map(|f| f.name().as_str()).collect()
    }

    #[test]
    fn footers_with_names_equal_but_for_case_make_one_column() {
        let column = |name: &str, v: i32| {
            parquet_bytes(
                &RecordBatch::try_from_iter([(
                    name,
                    Arc::new(Int32Array::from(vec![v])) as ArrayRef,
                )])
                .expect("batch"),
            )
        };
        let (first, second, third) = (column("Qq", 1), column("qQ", 2), column("äx", 3));
        let nested = parquet_bytes(
            &RecordBatch::try_from_iter([(
                "s",
                Arc::new(
                    StructArray::try_from(vec![
                        ("Ab", Arc::new(Int32Array::from(vec![4])) as ArrayRef),
                        ("aB", Arc::new(Int32Array::from(vec![5])) as ArrayRef),
                    ])
                    .expect("struct"),
                ) as ArrayRef,
            )])
            .expect("batch"),
        );
        let csv = CsvOptions::default();
        let o = opts_for(&csv, EvolutionMode::AddNewColumns);
        let schema = sampled(&[&first, &second, &column("ÄX", 0), &third, &nested], &o);
        assert_eq!(names(&schema), vec!["Qq", "ÄX", "s", "_rescued_data"]);
        assert_eq!(
            schema.field(2).data_type(),
            &DataType::Struct(vec![Field::new("Ab", DataType::Int64, true)].into())
        );
        for (data, rescued) in [
            (&second, "{\"_file_path\":\"f.parquet\",\"qQ\":2}"),
            (&third, "{\"_file_path\":\"f.parquet\",\"äx\":3}"),
            (
                &nested,
                "{\"_file_path\":\"f.parquet\",\"s\":{\"Ab\":4,\"aB\":5}}",
            ),
        ] {
            let batch = decoded_rows(decode("f.parquet", data, &schema, &o).expect("decode"));
            assert_eq!(batch.column(3).as_string::<i32>().value(0), rescued);
        }
    }

    #[test]
    fn a_file_column_named_like_the_rescued_column_is_rescued_under_its_name() {
        let file = RecordBatch::try_from_iter([
            ("a", Arc::new(Int32Array::from(vec![1, 2])) as ArrayRef),
            (
                "_rescued_data",
                Arc::new(Int32Array::from(vec![Some(5), None])) as ArrayRef,
            ),
        ])
        .expect("batch");
        let data = parquet_bytes(&file);
        let csv = CsvOptions::default();
        let schema = sampled(&[&data], &opts_for(&csv, EvolutionMode::AddNewColumns));
        assert_eq!(names(&schema), vec!["a", "_rescued_data"]);
        assert_eq!(schema.field(1).data_type(), &DataType::Utf8);
        for mode in [EvolutionMode::AddNewColumns, EvolutionMode::None] {
            let batch = decoded_rows(
                decode("f.parquet", &data, &schema, &opts_for(&csv, mode)).expect("decode"),
            );
            let rescued: Vec<Option<&str>> = batch.column(1).as_string::<i32>().iter().collect();
            assert_eq!(
                rescued,
                vec![
                    Some("{\"_file_path\":\"f.parquet\",\"_rescued_data\":5}"),
                    None
                ],
                "{mode:?}"
            );
        }
    }
}
