//! The type each column of a columnar file (Parquet, Avro) gets in the table: integers
//! BIGINT, floats DOUBLE, timestamps in microseconds, as JSON inference types its columns.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Fields, Schema, TimeUnit};
use inlet_schema::{same_column_name, MAX_NESTING};

/// The name Delta gives a map's entries when it reads a table's schema back as Arrow.
const MAP_ENTRIES: &str = "key_value";

/// The columns of a file's own schema, with the types the table would keep: a column nested
/// deeper than [`MAX_NESTING`] struct, list or map levels is a STRING of its values' JSON
/// text (as JSON inference makes it), and of names equal but for case the first is kept.
pub(crate) fn table_columns(file: &Schema) -> Schema {
    let mut fields: Vec<Field> = Vec::new();
    for f in file.fields() {
        if fields.iter().any(|g| same_column_name(g.name(), f.name())) {
            continue; // rescued when decoded, as a case variant
        }
        fields.push(Field::new(f.name(), table_type(f.data_type()), true));
    }
    Schema::new(fields)
}

/// The type a file column of `dtype` gets in the table: `normalize`d, or a STRING (its JSON
/// text) when nested deeper than [`MAX_NESTING`], as JSON inference makes it.
pub(crate) fn table_type(dtype: &DataType) -> DataType {
    if nesting(dtype) > MAX_NESTING {
        DataType::Utf8
    } else {
        normalize(dtype)
    }
}

/// The struct, list and map levels of `dtype`, counting its own.
pub(crate) fn nesting(dtype: &DataType) -> usize {
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
/// inference makes), plain strings and binaries, microsecond timestamps, lists, structs and
/// maps of the same (maps named as the Delta table gives them back: `key_value`, `key`,
/// `value`, so a column's type reads back equal).
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
        Map(entries, _) => match entries.data_type() {
            Struct(kv) if kv.len() == 2 => Map(
                Arc::new(Field::new(
                    MAP_ENTRIES,
                    Struct(Fields::from(vec![
                        Field::new("key", normalize(kv[0].data_type()), false),
                        Field::new("value", normalize(kv[1].data_type()), true),
                    ])),
                    false,
                )),
                false,
            ),
            _ => Utf8,
        },
        Boolean | Decimal128(..) => dtype.clone(),
        // Times, intervals, durations, unions: kept as their text.
        _ => Utf8,
    }
}
