//! JSON type inference: fold records into an inferred type tree, widening on conflict,
//! then turn it into an Arrow schema every Delta reader accepts (no Null type).

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Fields, Schema};
use serde_json::Value;

use crate::column_name::same_column_name;

/// The most struct and list levels a column may have (its own value is level 1). An object
/// or array deeper than this is inferred as STRING and decoded as its JSON text.
///
/// Why 32: the table's schema is stored as JSON (Delta's `metaData.schemaString`, and the
/// checkpoint's Arrow schema), and readers parse it with serde_json's recursion limit of 128
/// levels. Each struct level costs three JSON levels there (the type object, its `fields`
/// array, the field object; a list costs one or two), so 41 struct levels is the most any
/// schema can have, and 42 made tables no one could open. 32 levels cost 99 of the 128,
/// leaving room for readers that wrap the schema in more JSON, and is deeper than real
/// records go (Spark's own JSON writer and most producers nest far less).
pub const MAX_NESTING: usize = 32;

/// The type seen so far for one value position.
#[derive(Debug, Clone, PartialEq)]
enum Inferred {
    /// Only nulls (or nothing) seen.
    Null,
    Bool,
    Int,
    Float,
    Str,
    List(Box<Inferred>),
    /// Fields in first-seen order.
    Struct(Vec<(String, Inferred)>),
}

impl Inferred {
    /// The type of `value`, where `room` more struct or list levels are allowed: an object or
    /// array with no room left is a string (its JSON text).
    fn of(value: &Value, room: usize) -> Self {
        match value {
            Value::Null => Self::Null,
            Value::Bool(_) => Self::Bool,
            Value::Number(n) if n.is_i64() => Self::Int,
            // u64 beyond i64 and fractions both need a double.
            Value::Number(_) => Self::Float,
            Value::String(_) => Self::Str,
            Value::Array(_) | Value::Object(_) if room == 0 => Self::Str,
            Value::Array(items) => Self::List(Box::new(
                items
                    .iter()
                    .map(|v| Self::of(v, room - 1))
                    .fold(Self::Null, Self::widen),
            )),
            Value::Object(map) => {
                let mut fields: Vec<(String, Self)> = Vec::with_capacity(map.len());
                for (k, v) in map {
                    // A key differing only in case from one before it is no field: the value
                    // does not fit the struct, so it is rescued with its column.
                    if !fields.iter().any(|(n, _)| same_column_name(n, k)) {
                        fields.push((k.clone(), Self::of(v, room - 1)));
                    }
                }
                Self::Struct(fields)
            }
        }
    }

    /// The narrowest type holding both: null gives way to anything, int widens to double,
    /// structs merge by field, lists by element; anything else becomes string.
    fn widen(self, other: Self) -> Self {
        use Inferred::*;
        match (self, other) {
            (Null, t) | (t, Null) => t,
            (a, b) if a == b => a,
            (Int, Float) | (Float, Int) => Float,
            (List(a), List(b)) => List(Box::new(a.widen(*b))),
            (Struct(mut a), Struct(b)) => {
                for (name, t) in b {
                    widen_field(&mut a, name, t);
                }
                Struct(a)
            }
            _ => Str,
        }
    }

    /// As Arrow, with `null` for positions seen only as null.
    fn arrow(&self, null: DataType) -> DataType {
        match self {
            Self::Null => null,
            Self::Str => DataType::Utf8,
            Self::Bool => DataType::Boolean,
            Self::Int => DataType::Int64,
            Self::Float => DataType::Float64,
            Self::List(item) => {
                DataType::List(Arc::new(Field::new("item", item.arrow(null.clone()), true)))
            }
            Self::Struct(fields) => DataType::Struct(fields_of(fields, &null)),
        }
    }
}

/// Widens the field `name` of `fields` by `t`, or adds it; a name differing only in case from
/// a field's is left out (the first spelling seen is the field).
fn widen_field(fields: &mut Vec<(String, Inferred)>, name: String, t: Inferred) {
    if let Some((_, existing)) = fields.iter_mut().find(|(n, _)| *n == name) {
        let old = std::mem::replace(existing, Inferred::Null);
        *existing = old.widen(t);
    } else if !fields.iter().any(|(n, _)| same_column_name(n, &name)) {
        fields.push((name, t));
    }
}

fn struct_fields(fields: &[(String, Inferred)]) -> Fields {
    fields_of(fields, &DataType::Utf8)
}

fn fields_of(fields: &[(String, Inferred)], null: &DataType) -> Fields {
    fields
        .iter()
        .map(|(name, t)| Field::new(name, t.arrow(null.clone()), true))
        .collect()
}

/// Accumulates JSON records and yields the widened schema of all of them.
#[derive(Debug)]
pub struct JsonInference {
    top: Vec<(String, Inferred)>,
    records: u64,
    infer_types: bool,
}

impl Default for JsonInference {
    fn default() -> Self {
        Self {
            top: Vec::new(),
            records: 0,
            infer_types: true,
        }
    }
}

impl JsonInference {
    pub fn new() -> Self {
        Self::default()
    }

    /// With `false`, every column is a string (as Auto Loader without
    /// `cloudFiles.inferColumnTypes`): nested values are kept as their JSON text.
    pub fn infer_types(mut self, infer: bool) -> Self {
        self.infer_types = infer;
        self
    }

    /// Adds one record. Top-level values that are not objects are ignored (they cannot be
    /// rows); the decoder reports them. A key differing only in case (Unicode lowercase, see
    /// `same_column_name`) from a column or struct field already seen does not make a second
    /// one: its values are rescued when decoded. Objects and arrays nested deeper than
    /// [`MAX_NESTING`] are strings.
    pub fn add(&mut self, value: &Value) {
        let Value::Object(map) = value else {
            return;
        };
        for (key, v) in map
            .iter()
            .filter(|(k, _)| crate::column_name::is_valid_column_name(k))
        {
            self.add_column(key, Inferred::of(v, MAX_NESTING));
        }
        self.records += 1;
    }

    /// Folds in another inference (of later records): columns keep first-seen order.
    pub fn merge(&mut self, other: JsonInference) {
        for (key, t) in other.top {
            self.add_column(&key, t);
        }
        self.records += other.records;
    }

    fn add_column(&mut self, key: &str, t: Inferred) {
        if let Some((_, existing)) = self.top.iter_mut().find(|(n, _)| n == key) {
            let old = std::mem::replace(existing, Inferred::Null);
            *existing = old.widen(t);
        } else if !self.top.iter().any(|(n, _)| same_column_name(n, key)) {
            self.top.push((key.to_string(), t));
        }
    }

    /// Counts a record known to change nothing: one whose every value is of the kind
    /// `exact_schema` gives its position (see `inlet_format`'s fast path).
    pub fn add_unchanged(&mut self) {
        self.records += 1;
    }

    /// The inference so far with `Null` for positions seen only as null (where any value
    /// would still change the result); `None` when types are not inferred.
    pub fn exact_schema(&self) -> Option<Schema> {
        self.infer_types
            .then(|| Schema::new(fields_of(&self.top, &DataType::Null)))
    }

    /// Records added so far.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// The schema of everything added; every column nullable.
    pub fn schema(&self) -> Schema {
        if self.infer_types {
            Schema::new(struct_fields(&self.top))
        } else {
            Schema::new(
                self.top
                    .iter()
                    .map(|(name, _)| Field::new(name, DataType::Utf8, true))
                    .collect::<Vec<_>>(),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn infer(values: &[Value]) -> Schema {
        let mut inf = JsonInference::new();
        values.iter().for_each(|v| inf.add(v));
        inf.schema()
    }

    #[test]
    fn widens_instead_of_failing() {
        let schema = infer(&[
            json!({"a": 1, "b": 1, "c": null, "d": {"x": 1}, "e": [1]}),
            json!({"a": 2, "b": 1.5, "c": null, "d": "flat", "e": [2.5], "f": true}),
        ]);
        let types: Vec<(String, DataType)> = schema
            .fields()
            .iter()
            .map(|f| (f.name().clone(), f.data_type().clone()))
            .collect();
        assert_eq!(types[0], ("a".into(), DataType::Int64));
        assert_eq!(types[1], ("b".into(), DataType::Float64));
        assert_eq!(types[2], ("c".into(), DataType::Utf8));
        assert_eq!(types[3], ("d".into(), DataType::Utf8));
        assert_eq!(
            types[4].1,
            DataType::List(Arc::new(Field::new("item", DataType::Float64, true)))
        );
        assert_eq!(types[5], ("f".into(), DataType::Boolean));
    }

    #[test]
    fn case_variants_do_not_make_columns_and_untyped_is_all_strings() {
        let mut inf = JsonInference::new().infer_types(false);
        inf.add(&json!({"Id": 1, "id": 2, "s": {"x": 1}}));
        let names: Vec<(String, DataType)> = inf
            .schema()
            .fields()
            .iter()
            .map(|f| (f.name().clone(), f.data_type().clone()))
            .collect();
        assert_eq!(
            names,
            vec![("Id".into(), DataType::Utf8), ("s".into(), DataType::Utf8)]
        );
    }

    #[test]
    fn nested_structs_merge_fields_in_first_seen_order() {
        let schema = infer(&[json!({"s": {"x": 1}}), json!({"s": {"y": "a", "x": 2}})]);
        let DataType::Struct(fields) = schema.field(0).data_type() else {
            panic!("not a struct: {schema:?}");
        };
        let names: Vec<&str> = fields.iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, vec!["x", "y"]);
    }

    /// `{"c": ...}` with `levels` objects (`{"c": ...}`) or arrays under the column, then 1.
    fn nested(levels: usize, arrays: bool) -> Value {
        let mut v = json!(1);
        for _ in 0..levels {
            v = if arrays {
                json!([v])
            } else {
                json!({ "c": v })
            };
        }
        json!({ "c": v })
    }

    /// The struct and list levels of `dtype`, following the first field, and the type below.
    fn depth(dtype: &DataType) -> (usize, DataType) {
        let inner = match dtype {
            DataType::Struct(fields) => fields[0].data_type(),
            DataType::List(item) => item.data_type(),
            other => return (0, other.clone()),
        };
        let (d, leaf) = depth(inner);
        (d + 1, leaf)
    }

    /// The type as Delta's `schemaString` writes it.
    fn delta_type(dtype: &DataType) -> Value {
        match dtype {
            DataType::Struct(fields) => json!({"type": "struct", "fields": fields
                .iter()
                .map(|f| json!({"name": f.name(), "type": delta_type(f.data_type()),
                                "nullable": true, "metadata": {}}))
                .collect::<Vec<_>>()}),
            DataType::List(item) => json!({"type": "array",
                "elementType": delta_type(item.data_type()), "containsNull": true}),
            _ => json!("long"),
        }
    }

    #[test]
    fn objects_and_arrays_nested_deeper_than_the_limit_are_strings() {
        for arrays in [false, true] {
            for levels in [31, 32, 33, 42, 100] {
                let schema = infer(&[nested(levels, arrays)]);
                let got = depth(schema.field(0).data_type());
                if levels <= MAX_NESTING {
                    assert_eq!(got, (levels, DataType::Int64), "{levels} levels");
                } else {
                    assert_eq!(got, (MAX_NESTING, DataType::Utf8), "{levels} levels");
                }
                // Readers parse the stored schema with serde_json's recursion limit of 128.
                let stored = crate::to_json(&schema);
                let back = crate::from_json(&stored).expect("the checkpoint's schema reads back");
                assert_eq!(back, schema);
                let delta = delta_type(&DataType::Struct(schema.fields().clone())).to_string();
                serde_json::from_str::<Value>(&delta).expect("Delta's schemaString parses");
            }
        }
    }

    #[test]
    fn names_differing_only_by_unicode_case_are_one_column_or_field() {
        let schema = infer(&[json!({"Äx": 1, "äx": 2, "s": {"Ab": 1, "aB": "two"}})]);
        assert_eq!(
            schema,
            Schema::new(vec![
                Field::new(
                    "s",
                    DataType::Struct(vec![Field::new("Ab", DataType::Int64, true)].into()),
                    true
                ),
                Field::new("Äx", DataType::Int64, true),
            ])
        );
        // Inferred apart (files sampled in parallel) and merged: still the first spelling.
        let mut first = JsonInference::new();
        first.add(&json!({"Qq": 1, "n": {"Ab": 1}}));
        let mut second = JsonInference::new();
        second.add(&json!({"qQ": "x", "n": {"aB": "y", "c": true}}));
        first.merge(second);
        assert_eq!(
            first.schema(),
            Schema::new(vec![
                Field::new("Qq", DataType::Int64, true),
                Field::new(
                    "n",
                    DataType::Struct(
                        vec![
                            Field::new("Ab", DataType::Int64, true),
                            Field::new("c", DataType::Boolean, true)
                        ]
                        .into()
                    ),
                    true
                ),
            ])
        );
    }
}
