//! Evolution modes and schema differences: what a batch may do to the table's schema when
//! files bring columns it does not have, and how two schema versions differ.

use arrow::datatypes::{DataType, Field, Schema};
use serde::{Deserialize, Serialize};

use crate::column_name::same_column_name;
use crate::hints::ddl_type;

/// What happens when a file has columns the table does not (as Auto Loader's
/// `cloudFiles.schemaEvolutionMode`, but evolving in flight).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum EvolutionMode {
    /// New columns join the schema and the table in the batch's own commit.
    #[default]
    AddNewColumns,
    /// The schema never changes; unknown fields go to the rescued data column.
    Rescue,
    /// The run stops with an error naming the file and the columns.
    FailOnNewColumns,
    /// New columns are ignored.
    None,
}

impl EvolutionMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AddNewColumns => "add_new_columns",
            Self::Rescue => "rescue",
            Self::FailOnNewColumns => "fail_on_new_columns",
            Self::None => "none",
        }
    }
}

/// How schema B differs from schema A, by top-level column.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SchemaDiff {
    /// Columns in B only, as `name TYPE`.
    pub added: Vec<String>,
    /// Columns in A only.
    pub removed: Vec<String>,
    /// Columns in both with another type, as `name: OLD -> NEW`.
    pub changed: Vec<String>,
}

impl SchemaDiff {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

/// The difference from `a` to `b`.
pub fn diff(a: &Schema, b: &Schema) -> SchemaDiff {
    let mut d = SchemaDiff::default();
    for f in b.fields() {
        match a.field_with_name(f.name()) {
            Err(_) => d
                .added
                .push(format!("{} {}", f.name(), ddl_type(f.data_type()))),
            Ok(old) if !same_type(old.data_type(), f.data_type()) => d.changed.push(format!(
                "{}: {} -> {}",
                f.name(),
                ddl_type(old.data_type()),
                ddl_type(f.data_type())
            )),
            Ok(_) => {}
        }
    }
    for f in a.fields() {
        if b.field_with_name(f.name()).is_err() {
            d.removed.push(f.name().clone());
        }
    }
    d
}

/// Types equal up to nested field names of lists ("item" / "element") and nullability.
fn same_type(a: &DataType, b: &DataType) -> bool {
    ddl_type(a) == ddl_type(b)
}

/// `schema` with `extra` columns appended (all nullable), skipping names it already has, or
/// that `extra` had before, in any case (`same_column_name`): Delta would refuse the table.
pub fn with_columns(schema: &Schema, extra: &[Field]) -> Schema {
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    for f in extra {
        if !fields.iter().any(|g| same_column_name(g.name(), f.name())) {
            fields.push(f.clone().with_nullable(true));
        }
    }
    Schema::new_with_metadata(fields, schema.metadata().clone())
}

/// The schema with the rescued data column (a STRING) when it is configured: appended when
/// missing; a column of that name in another case or of another type (data named a field
/// like it) is replaced in place by it, so there is one, and it takes text.
pub fn with_rescued_column(schema: &Schema, rescued_column: Option<&str>) -> Schema {
    let Some(name) = rescued_column else {
        return schema.clone();
    };
    let rescued = Field::new(name, DataType::Utf8, true);
    let mut replaced = false;
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .filter_map(|f| {
            if !same_column_name(f.name(), name) {
                return Some(f.as_ref().clone());
            }
            // The first of that name becomes the rescued column; any other is dropped.
            (!std::mem::replace(&mut replaced, true)).then(|| rescued.clone())
        })
        .collect();
    let schema = Schema::new_with_metadata(fields, schema.metadata().clone());
    if replaced {
        schema
    } else {
        with_columns(&schema, &[rescued])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hints::apply_hints;

    #[test]
    fn diff_names_added_removed_and_changed() {
        let a = Schema::new(vec![
            Field::new("a", DataType::Int64, true),
            Field::new("b", DataType::Int64, true),
        ]);
        let b = Schema::new(vec![
            Field::new("a", DataType::Utf8, true),
            Field::new("c", DataType::Boolean, true),
        ]);
        let d = diff(&a, &b);
        assert_eq!(d.added, vec!["c BOOLEAN"]);
        assert_eq!(d.removed, vec!["b"]);
        assert_eq!(d.changed, vec!["a: BIGINT -> STRING"]);
    }

    fn names(schema: &Schema) -> Vec<String> {
        schema
            .fields()
            .iter()
            .map(|f| format!("{} {}", f.name(), ddl_type(f.data_type())))
            .collect()
    }

    #[test]
    fn no_column_is_added_twice_in_another_case() {
        let schema = Schema::new(vec![Field::new("Qq", DataType::Int64, true)]);
        let added = with_columns(
            &schema,
            &[
                Field::new("qQ", DataType::Utf8, true),
                Field::new("Äx", DataType::Utf8, true),
                Field::new("äx", DataType::Int64, true),
            ],
        );
        assert_eq!(names(&added), vec!["Qq BIGINT", "Äx STRING"]);
        let hinted = apply_hints(
            &added,
            &[
                Field::new("ÄX", DataType::Int64, true),
                Field::new("QQ", DataType::Utf8, true),
            ],
        );
        assert_eq!(names(&hinted), vec!["Qq STRING", "Äx BIGINT"]);
    }

    #[test]
    fn the_rescued_column_replaces_a_same_named_column_of_another_type() {
        let schema = Schema::new(vec![
            Field::new("a", DataType::Int64, true),
            Field::new("_Rescued_Data", DataType::Int64, true),
            Field::new("b", DataType::Utf8, true),
        ]);
        let with = with_rescued_column(&schema, Some("_rescued_data"));
        assert_eq!(
            names(&with),
            vec!["a BIGINT", "_rescued_data STRING", "b STRING"]
        );
        assert_eq!(with_rescued_column(&with, Some("_rescued_data")), with);
        assert_eq!(
            names(&with_rescued_column(&schema, Some("_bad"))),
            vec![
                "a BIGINT",
                "_Rescued_Data BIGINT",
                "b STRING",
                "_bad STRING"
            ]
        );
        assert_eq!(with_rescued_column(&schema, None), schema);
    }
}
