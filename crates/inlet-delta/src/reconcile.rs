//! Rebasing a batch's schema on the table's current one: the table's columns are kept as they
//! are, the batch's new columns are added, and a column both have must agree on its type.

use arrow::datatypes::{DataType, Field, Schema};

/// A column the table and the batch both have, with different types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeConflict {
    pub column: String,
    pub table_type: String,
    pub batch_type: String,
}

/// The table's schema `current` plus the columns of `batch` it lacks (compared by name
/// case-insensitively, as Delta compares column names). Refuses when a shared column's type
/// differs (nullability and field metadata aside): the batch's data files hold that column
/// with its own type, so committing them would leave files readers cannot read.
pub fn widen_table_schema(current: &Schema, batch: &Schema) -> Result<Schema, TypeConflict> {
    let mut fields: Vec<Field> = current
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    for f in batch.fields() {
        let name = f.name().to_lowercase();
        match current
            .fields()
            .iter()
            .find(|c| c.name().to_lowercase() == name)
        {
            Some(c) if same_type(c.data_type(), f.data_type()) => {}
            Some(c) => {
                return Err(TypeConflict {
                    column: c.name().clone(),
                    table_type: c.data_type().to_string(),
                    batch_type: f.data_type().to_string(),
                })
            }
            None => fields.push(f.as_ref().clone()),
        }
    }
    Ok(Schema::new_with_metadata(
        fields,
        current.metadata().clone(),
    ))
}

/// Type equality as Delta sees it: nested field names and types, not nullability, field
/// metadata, list item names or the string and binary layouts Arrow offers.
pub fn same_type(a: &DataType, b: &DataType) -> bool {
    use DataType::*;
    match (a, b) {
        (Utf8 | LargeUtf8 | Utf8View, Utf8 | LargeUtf8 | Utf8View) => true,
        (Binary | LargeBinary | BinaryView, Binary | LargeBinary | BinaryView) => true,
        (List(x) | LargeList(x) | ListView(x), List(y) | LargeList(y) | ListView(y)) => {
            same_type(x.data_type(), y.data_type())
        }
        (Struct(x), Struct(y)) => {
            x.len() == y.len()
                && x.iter().zip(y.iter()).all(|(p, q)| {
                    p.name().eq_ignore_ascii_case(q.name())
                        && same_type(p.data_type(), q.data_type())
                })
        }
        (Map(x, _), Map(y, _)) => same_type(x.data_type(), y.data_type()),
        (Timestamp(u, z1), Timestamp(v, z2)) => u == v && z1.is_some() == z2.is_some(),
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn schema(cols: &[(&str, DataType)]) -> Schema {
        Schema::new(
            cols.iter()
                .map(|(n, t)| Field::new(*n, t.clone(), true))
                .collect::<Vec<_>>(),
        )
    }

    #[test]
    fn columns_another_writer_added_are_kept_and_ours_are_added() {
        let table = schema(&[("id", DataType::Int64), ("theirs", DataType::Utf8)]);
        let ours = schema(&[("id", DataType::Int64), ("ours", DataType::Boolean)]);
        let merged = widen_table_schema(&table, &ours).expect("no conflict");
        let names: Vec<&str> = merged.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, vec!["id", "theirs", "ours"]);
    }

    #[test]
    fn a_column_of_another_type_is_a_conflict_naming_both_types() {
        let table = schema(&[("id", DataType::Int64), ("x", DataType::Utf8)]);
        let ours = schema(&[("id", DataType::Int64), ("X", DataType::Int64)]);
        let err = widen_table_schema(&table, &ours).expect_err("conflict");
        assert_eq!(
            err,
            TypeConflict {
                column: "x".into(),
                table_type: "Utf8".into(),
                batch_type: "Int64".into()
            }
        );
    }

    #[test]
    fn nullability_and_item_names_do_not_make_a_conflict() {
        let list = |name: &str, nullable| {
            DataType::List(Arc::new(Field::new(name, DataType::Int64, nullable)))
        };
        let table = Schema::new(vec![Field::new("l", list("element", false), false)]);
        let ours = Schema::new(vec![Field::new("l", list("item", true), true)]);
        assert!(widen_table_schema(&table, &ours).is_ok());
    }
}
