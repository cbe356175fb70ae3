//! Rebasing a batch's schema on the table's current one: the table's columns are kept as they
//! are (metadata included), the batch's new columns are added, and shared columns compared.

use arrow::datatypes::{DataType as ArrowType, Schema};
use deltalake::kernel::engine::arrow_conversion::TryIntoKernel;
use deltalake::kernel::{DataType, StructField, StructType};
use serde_json::Value;

/// A column the table and the batch both have, with different Delta types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeConflict {
    pub column: String,
    pub table_type: String,
    pub batch_type: String,
}

/// The table's schema `table` (kept field for field, metadata included: column mapping ids,
/// generation expressions) with the columns of `batch` it lacks appended (compared by name
/// case-insensitively, as Delta compares column names), and the shared columns whose Delta
/// types differ (nullability and field metadata aside). Arrow types that Delta stores alike
/// (UInt64 and Int64 as `long`, nanosecond and microsecond timestamps as `timestamp`) are the
/// same type here, since they are the same column once written.
pub fn widen_table_schema(
    table: &StructType,
    batch: &Schema,
) -> Result<(StructType, Vec<TypeConflict>), arrow::error::ArrowError> {
    let mut fields: Vec<StructField> = table.fields().cloned().collect();
    let mut conflicts = Vec::new();
    for f in batch.fields() {
        let ours: StructField = f.as_ref().try_into_kernel()?;
        let name = f.name().to_lowercase();
        match table.fields().find(|c| c.name().to_lowercase() == name) {
            Some(c) if same_delta_type(c.data_type(), ours.data_type()) => {}
            Some(c) => conflicts.push(TypeConflict {
                column: c.name().clone(),
                table_type: type_name(c.data_type()),
                batch_type: type_name(ours.data_type()),
            }),
            None => fields.push(ours),
        }
    }
    let merged = StructType::try_new(fields)
        .map_err(|e| arrow::error::ArrowError::SchemaError(e.to_string()))?;
    Ok((merged, conflicts))
}

/// Whether two Arrow types are stored as one Delta type.
pub fn same_type(a: &ArrowType, b: &ArrowType) -> bool {
    let kernel = |t: &ArrowType| -> Option<DataType> { t.try_into_kernel().ok() };
    match (kernel(a), kernel(b)) {
        (Some(x), Some(y)) => same_delta_type(&x, &y),
        _ => a == b,
    }
}

/// Delta type equality without nullability and field metadata.
fn same_delta_type(a: &DataType, b: &DataType) -> bool {
    let plain = |t: &DataType| serde_json::to_value(t).map(strip).ok();
    plain(a) == plain(b)
}

/// A Delta type's JSON form without `nullable`, `containsNull`, `valueContainsNull` and
/// `metadata`, with field names lowercased.
fn strip(v: Value) -> Value {
    match v {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(k, _)| {
                    !matches!(
                        k.as_str(),
                        "nullable" | "containsNull" | "valueContainsNull" | "metadata"
                    )
                })
                .map(|(k, v)| match (k.as_str(), v) {
                    ("name", Value::String(n)) => (k, Value::String(n.to_lowercase())),
                    (_, v) => (k, strip(v)),
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(strip).collect()),
        other => other,
    }
}

fn type_name(t: &DataType) -> String {
    match serde_json::to_value(t) {
        Ok(Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => format!("{t:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::{Field, TimeUnit};
    use std::sync::Arc;

    fn field(name: &str, t: ArrowType) -> Field {
        Field::new(name, t, true)
    }

    fn table(cols: &[(&str, ArrowType)]) -> StructType {
        let schema = Schema::new(
            cols.iter()
                .map(|(n, t)| field(n, t.clone()))
                .collect::<Vec<_>>(),
        );
        (&schema).try_into_kernel().expect("kernel schema")
    }

    fn batch(cols: &[(&str, ArrowType)]) -> Schema {
        Schema::new(
            cols.iter()
                .map(|(n, t)| field(n, t.clone()))
                .collect::<Vec<_>>(),
        )
    }

    fn names(s: &StructType) -> Vec<String> {
        s.fields().map(|f| f.name().clone()).collect()
    }

    #[test]
    fn columns_another_writer_added_are_kept_and_ours_are_added() {
        let t = table(&[("id", ArrowType::Int64), ("theirs", ArrowType::Utf8)]);
        let ours = batch(&[("id", ArrowType::Int64), ("ours", ArrowType::Boolean)]);
        let (merged, conflicts) = widen_table_schema(&t, &ours).expect("ok");
        assert!(conflicts.is_empty());
        assert_eq!(names(&merged), vec!["id", "theirs", "ours"]);
    }

    #[test]
    fn a_column_of_another_type_is_a_conflict_naming_both_types() {
        let t = table(&[("id", ArrowType::Int64), ("x", ArrowType::Utf8)]);
        let ours = batch(&[("id", ArrowType::Int64), ("X", ArrowType::Int64)]);
        let (merged, conflicts) = widen_table_schema(&t, &ours).expect("ok");
        assert_eq!(names(&merged), vec!["id", "x"], "the table's column stays");
        assert_eq!(
            conflicts,
            vec![TypeConflict {
                column: "x".into(),
                table_type: "string".into(),
                batch_type: "long".into()
            }]
        );
    }

    #[test]
    fn types_delta_stores_alike_are_not_conflicts() {
        let ts = |u| ArrowType::Timestamp(u, Some("UTC".into()));
        let t = table(&[
            ("n", ArrowType::Int64),
            ("at", ts(TimeUnit::Microsecond)),
            (
                "l",
                ArrowType::List(Arc::new(Field::new("element", ArrowType::Int64, false))),
            ),
        ]);
        let ours = batch(&[
            ("n", ArrowType::UInt64),
            ("at", ts(TimeUnit::Nanosecond)),
            (
                "l",
                ArrowType::List(Arc::new(Field::new("item", ArrowType::Int64, true))),
            ),
        ]);
        let (_, conflicts) = widen_table_schema(&t, &ours).expect("ok");
        assert!(conflicts.is_empty(), "{conflicts:?}");
        assert!(same_type(&ArrowType::Utf8View, &ArrowType::Utf8));
        assert!(!same_type(&ArrowType::Utf8, &ArrowType::Int64));
    }

    #[test]
    fn the_tables_field_metadata_is_kept_as_it_is() {
        let json = serde_json::json!({"type": "struct", "fields": [
            {"name": "id", "type": "long", "nullable": true,
             "metadata": {"delta.columnMapping.id": 5, "delta.columnMapping.physicalName": "col-5"}}
        ]});
        let t: StructType = serde_json::from_value(json.clone()).expect("schema");
        let (merged, _) = widen_table_schema(&t, &batch(&[("id", ArrowType::Int64)])).expect("ok");
        assert_eq!(serde_json::to_value(&merged).expect("json"), json);
    }
}
