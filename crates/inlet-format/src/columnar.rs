//! Columnar files (Parquet, Avro) into the table's batches: each file column cast to its
//! table column, values a checked cast would lose rescued row by row as JSON.

use std::sync::Arc;

use arrow::array::{
    new_null_array, Array, ArrayRef, AsArray, BooleanArray, ListArray, MapArray, StringArray,
    StructArray, UInt32Array,
};
use arrow::buffer::{NullBuffer, OffsetBuffer};
use arrow::compute::kernels::boolean::{is_not_null, not, or};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use inlet_schema::{same_column_name, EvolutionMode, JsonInference, FILE_PATH_KEY};
use serde_json::{Map, Value};

use crate::column_types::table_type;
use crate::decoded::{BadRecord, Decoded, BATCH_ROWS};
use crate::error::FormatError;
use crate::options::DecodeOptions;
use crate::partition;

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
    /// Element by element; a list with an element that cannot be kept is rescued whole.
    List,
    /// Value by value, keys as they are; a map with a value that cannot be kept is rescued
    /// whole.
    Map,
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
            Plan::Json | Plan::Struct | Plan::List | Plan::Map => Plan::Rescue,
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
        (List(a) | LargeList(a) | FixedSizeList(a, _), List(b)) => {
            match plan(a.data_type(), b.data_type()) {
                Plan::Cast => Plan::Cast,
                _ => Plan::List,
            }
        }
        (Struct(_), Struct(_)) => Plan::Struct,
        // Entries named as the file has them, the table's as Delta names them.
        (Map(a, a_sorted), Map(b, b_sorted)) if a_sorted == b_sorted => {
            match (a.data_type(), b.data_type()) {
                (Struct(a), Struct(b)) if a.len() == 2 && b.len() == 2 => {
                    match (
                        plan(a[0].data_type(), b[0].data_type()),
                        plan(a[1].data_type(), b[1].data_type()),
                    ) {
                        (Plan::Cast, Plan::Cast) => Plan::Cast,
                        (Plan::Cast, _) => Plan::Map,
                        _ => Plan::Rescue,
                    }
                }
                _ => Plan::Rescue,
            }
        }
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
        Plan::List => {
            let DataType::List(item) = to else {
                return rescue_all(array, to);
            };
            // Large and fixed-size lists as plain lists of the same elements first.
            let array = match array.data_type() {
                DataType::List(_) => array.clone(),
                DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
                    let plain =
                        DataType::List(Arc::new(Field::new("item", f.data_type().clone(), true)));
                    arrow::compute::cast(array, &plain).map_err(|e| e.to_string())?
                }
                _ => return rescue_all(array, to),
            };
            let list = array.as_list::<i32>();
            let (values, lost) = convert(list.values(), item.data_type())?;
            let lost = lost.map(|l| rows_with_any(list.offsets(), &l));
            let out = ListArray::try_new(
                item.clone(),
                list.offsets().clone(),
                values,
                nulls_without(list.nulls(), lost.as_ref()),
            )
            .map_err(|e| e.to_string())?;
            Ok((Arc::new(out), lost))
        }
        Plan::Map => {
            let DataType::Map(entries, sorted) = to else {
                return rescue_all(array, to);
            };
            let (DataType::Struct(kv), Some(map)) = (
                entries.data_type(),
                array.as_any().downcast_ref::<MapArray>(),
            ) else {
                return rescue_all(array, to);
            };
            let keys =
                arrow::compute::cast(map.keys(), kv[0].data_type()).map_err(|e| e.to_string())?;
            let (values, lost) = convert(map.values(), kv[1].data_type())?;
            let lost = lost.map(|l| rows_with_any(map.offsets(), &l));
            let entries_array = StructArray::try_new(
                kv.clone(),
                vec![keys, values],
                map.entries().nulls().cloned(),
            )
            .map_err(|e| e.to_string())?;
            let out = MapArray::try_new(
                entries.clone(),
                map.offsets().clone(),
                entries_array,
                nulls_without(map.nulls(), lost.as_ref()),
                *sorted,
            )
            .map_err(|e| e.to_string())?;
            Ok((Arc::new(out), lost))
        }
        Plan::Rescue => rescue_all(array, to),
    }
}

/// Rows of a list or map (by `offsets`) with any element in `lost`.
fn rows_with_any(offsets: &OffsetBuffer<i32>, lost: &BooleanArray) -> BooleanArray {
    offsets
        .windows(2)
        .map(|w| {
            let (start, end) = (w[0].max(0) as usize, w[1].max(0) as usize);
            Some((start..end).any(|i| lost.is_valid(i) && lost.value(i)))
        })
        .collect()
}

/// `nulls` with the `lost` rows null as well: a value rescued whole is not kept in part.
fn nulls_without(nulls: Option<&NullBuffer>, lost: Option<&BooleanArray>) -> Option<NullBuffer> {
    let Some(lost) = lost else {
        return nulls.cloned();
    };
    let kept = NullBuffer::new(!lost.values());
    NullBuffer::union(nulls, Some(&kept))
}

fn rescue_all(array: &ArrayRef, to: &DataType) -> Result<(ArrayRef, Option<BooleanArray>), String> {
    let lost = is_not_null(array.as_ref()).map_err(|e| e.to_string())?;
    Ok((new_null_array(to, array.len()), Some(lost)))
}

/// Each row of `array` as JSON text (null stays null).
pub(crate) fn json_text(array: &ArrayRef) -> Result<StringArray, String> {
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
pub(crate) fn to_batches(
    schema: SchemaRef,
    rows: &[Map<String, Value>],
) -> Result<Vec<RecordBatch>, String> {
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

/// Decodes the batches of a columnar file at `path` (its columns `file_schema`, as the
/// batches have them) into batches of `schema`: each column cast to the table's type, what
/// a checked cast loses rescued row by row; file columns the table lacks are new columns,
/// rescued or ignored, by the evolution mode. Batches are pulled only when rows are made
/// (not when the file needs new columns first); the first error fails the file.
pub(crate) fn decode_batches(
    path: &str,
    file_schema: &Schema,
    batches: impl Iterator<Item = Result<RecordBatch, FormatError>>,
    schema: &SchemaRef,
    opts: &DecodeOptions<'_>,
) -> Result<Decoded, FormatError> {
    let err = |detail: String| FormatError::Decode {
        path: path.to_string(),
        line: 0,
        detail,
    };
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

    let mut out = Vec::new();
    let mut bad_records = Vec::new();
    let (mut rows, mut rescued_rows) = (0u64, 0u64);
    for batch in batches {
        let batch = batch?;
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
                let (cast, missed) = convert(source, field.data_type())
                    .map_err(|e| err(format!("column {name}: {e}")))?;
                if let Some(m) = missed {
                    lost.push((name.to_string(), source.clone(), m));
                }
                columns.push(cast);
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
        out.push(RecordBatch::try_new(schema.clone(), columns).map_err(|e| err(e.to_string()))?);
    }
    Ok(Decoded::Rows {
        batches: out,
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
