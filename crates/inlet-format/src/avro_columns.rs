//! Avro columns (as arrow-avro reads them) in the types the table can keep: unions of numbers
//! as their widest number, other unions as text, `uuid`s as text, enums as strings.

use std::sync::Arc;

use arrow::array::{
    new_null_array, Array, ArrayRef, AsArray, ListArray, MapArray, StringArray, StructArray,
    UnionArray,
};
use arrow::datatypes::{DataType, Field, Fields, UnionFields};

use crate::columnar::json_text;

/// The Arrow field metadata arrow-avro gives a field of logical type `uuid` (on a string or
/// a `fixed(16)`; either way read as 16 bytes).
const LOGICAL_TYPE: &str = "logicalType";

fn is_uuid(field: &Field) -> bool {
    matches!(field.data_type(), DataType::FixedSizeBinary(16))
        && field.metadata().get(LOGICAL_TYPE).map(String::as_str) == Some("uuid")
}

/// `field` as [`plain_column`] makes its values: nullable, without arrow-avro's metadata.
pub(crate) fn plain_field(field: &Field) -> Field {
    Field::new(field.name(), plain_type(field), true)
}

fn plain_type(field: &Field) -> DataType {
    use DataType::*;
    match field.data_type() {
        FixedSizeBinary(16) if is_uuid(field) => Utf8,
        Dictionary(_, values) => values.as_ref().clone(),
        Struct(fields) => Struct(fields.iter().map(|f| plain_field(f)).collect::<Fields>()),
        List(item) => List(Arc::new(Field::new("item", plain_type(item), true))),
        Map(entries, sorted) => match entries.data_type() {
            Struct(kv) if kv.len() == 2 => Map(
                Arc::new(Field::new(
                    entries.name(),
                    Struct(map_fields(&kv[0], &kv[1])),
                    false,
                )),
                *sorted,
            ),
            _ => field.data_type().clone(),
        },
        Union(branches, _) => union_type(branches),
        other => other.clone(),
    }
}

fn map_fields(key: &Field, value: &Field) -> Fields {
    Fields::from(vec![
        Field::new(key.name(), plain_type(key), false),
        Field::new(value.name(), plain_type(value), true),
    ])
}

/// What a union's values become. Avro's own schema resolution promotes `int` to `long` and
/// any of `int`, `long`, `float` to `double`, so a union of numbers is one number column;
/// a union of one type besides `null` is that type; any other union is STRING, as JSON
/// inference types a key whose values differ in kind: strings as they are, other scalars
/// as their text (bytes in hex), records, arrays and maps as their JSON text.
fn union_type(branches: &UnionFields) -> DataType {
    use DataType::*;
    let kinds: Vec<DataType> = branches
        .iter()
        .map(|(_, f)| plain_type(f))
        .filter(|t| t != &Null)
        .collect();
    let int = |t: &DataType| matches!(t, Int32 | Int64);
    let number = |t: &DataType| matches!(t, Int32 | Int64 | Float32 | Float64);
    match kinds.as_slice() {
        [] => Null,
        [one] => one.clone(),
        many if many.iter().all(int) => Int64,
        many if many.iter().all(number) => Float64,
        _ => Utf8,
    }
}

/// The values of `array`, read for `field`, as [`plain_field`] types them. Records, arrays
/// and maps are rebuilt around their converted children; their data is not copied.
pub(crate) fn plain_column(field: &Field, array: &ArrayRef) -> Result<ArrayRef, String> {
    let cast = |to: &DataType| arrow::compute::cast(array, to).map_err(|e| e.to_string());
    match (array.data_type(), plain_type(field)) {
        (DataType::FixedSizeBinary(16), DataType::Utf8) => Ok(Arc::new(uuid_text(array))),
        (DataType::Dictionary(..), to) => cast(&to),
        (DataType::Struct(fields), DataType::Struct(out)) => {
            let source = array.as_struct();
            let children = fields
                .iter()
                .zip(source.columns())
                .map(|(f, c)| plain_column(f, c))
                .collect::<Result<Vec<_>, _>>()?;
            let rebuilt = StructArray::try_new(out, children, source.nulls().cloned())
                .map_err(|e| e.to_string())?;
            Ok(Arc::new(rebuilt))
        }
        (DataType::List(item), DataType::List(out)) => {
            let source = array.as_list::<i32>();
            let values = plain_column(item, source.values())?;
            let rebuilt = ListArray::try_new(
                out,
                source.offsets().clone(),
                values,
                source.nulls().cloned(),
            )
            .map_err(|e| e.to_string())?;
            Ok(Arc::new(rebuilt))
        }
        (DataType::Map(entries, _), DataType::Map(out, sorted)) => {
            let (DataType::Struct(kv), DataType::Struct(out_kv)) =
                (entries.data_type(), out.data_type())
            else {
                return Ok(array.clone());
            };
            let source = array.as_map();
            let keys = plain_column(&kv[0], source.keys())?;
            let values = plain_column(&kv[1], source.values())?;
            let entries = StructArray::try_new(
                out_kv.clone(),
                vec![keys, values],
                source.entries().nulls().cloned(),
            )
            .map_err(|e| e.to_string())?;
            let rebuilt = MapArray::try_new(
                out.clone(),
                source.offsets().clone(),
                entries,
                source.nulls().cloned(),
                sorted,
            )
            .map_err(|e| e.to_string())?;
            Ok(Arc::new(rebuilt))
        }
        (DataType::Union(branches, _), to) => union_column(branches, array, &to),
        _ => Ok(array.clone()),
    }
}

/// Each row's value from its branch, every branch converted to `to` first.
fn union_column(
    branches: &UnionFields,
    array: &ArrayRef,
    to: &DataType,
) -> Result<ArrayRef, String> {
    let union = array
        .as_any()
        .downcast_ref::<UnionArray>()
        .ok_or("a union column that is not a union array")?;
    let mut children: Vec<ArrayRef> = Vec::with_capacity(branches.len());
    // Index into `children` by type id (arrow-avro numbers branches 0, 1, ...).
    let mut slot = [usize::MAX; 128];
    for (type_id, field) in branches.iter() {
        let id = usize::try_from(type_id).map_err(|_| format!("union type id {type_id}"))?;
        let child = plain_column(field, union.child(type_id))?;
        slot[id] = children.len();
        children.push(branch_as(child, to)?);
    }
    let indices = (0..union.len())
        .map(|row| {
            let id = union.type_id(row);
            usize::try_from(id)
                .ok()
                .and_then(|id| slot.get(id).copied())
                .filter(|&i| i != usize::MAX)
                .map(|i| (i, union.value_offset(row)))
                .ok_or_else(|| format!("union row {row} has type id {id}, not a branch"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let refs: Vec<&dyn Array> = children.iter().map(|c| c.as_ref()).collect();
    arrow::compute::interleave(&refs, &indices).map_err(|e| e.to_string())
}

/// A union branch's values as the union's column type (`union_type`).
fn branch_as(child: ArrayRef, to: &DataType) -> Result<ArrayRef, String> {
    use DataType::*;
    let from = child.data_type();
    if from == to {
        return Ok(child);
    }
    if from == &Null {
        return Ok(new_null_array(to, child.len()));
    }
    match (from, to) {
        (Binary | LargeBinary | FixedSizeBinary(_), Utf8) => Ok(Arc::new(hex_text(&child))),
        (Struct(_) | List(_) | Map(..), Utf8) => Ok(Arc::new(json_text(&child)?)),
        _ => arrow::compute::cast(&child, to).map_err(|e| e.to_string()),
    }
}

/// UUIDs of 16 bytes as their canonical text (`8-4-4-4-12` lowercase hex digits).
fn uuid_text(array: &ArrayRef) -> StringArray {
    let bytes = array.as_fixed_size_binary();
    bytes
        .iter()
        .map(|v| {
            v.map(|b| {
                let hex = hex(b);
                format!(
                    "{}-{}-{}-{}-{}",
                    &hex[0..8],
                    &hex[8..12],
                    &hex[12..16],
                    &hex[16..20],
                    &hex[20..]
                )
            })
        })
        .collect()
}

/// Binary values as lowercase hex, as arrow-json writes them.
fn hex_text(array: &ArrayRef) -> StringArray {
    match array.data_type() {
        DataType::FixedSizeBinary(_) => array
            .as_fixed_size_binary()
            .iter()
            .map(|v| v.map(hex))
            .collect(),
        DataType::LargeBinary => array
            .as_binary::<i64>()
            .iter()
            .map(|v| v.map(hex))
            .collect(),
        _ => array
            .as_binary::<i32>()
            .iter()
            .map(|v| v.map(hex))
            .collect(),
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}
