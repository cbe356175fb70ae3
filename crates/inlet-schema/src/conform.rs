//! Fitting one JSON record to the table's columns: values that fit stay, values that do not
//! (wrong type, case-variant names, unknown fields in `rescue` mode, a field named like the
//! rescued data column) go to the rescued data column as a JSON object with the file's path,
//! numbers as written. A value is never silently dropped.

use std::collections::HashMap;

use arrow::datatypes::{DataType, Schema};
use serde_json::{Map, Value};

use crate::column_name::same_column_name;
use crate::evolution::EvolutionMode;
use crate::{json_text, temporal};

/// Key in the rescued JSON naming the file the row came from (as Auto Loader does).
pub const FILE_PATH_KEY: &str = "_file_path";

/// Fits records to a schema.
#[derive(Debug, Clone)]
pub struct Conformer {
    columns: Vec<(String, DataType)>,
    exact: HashMap<String, usize>,
    lower: HashMap<String, usize>,
    rescued: Option<String>,
    mode: EvolutionMode,
}

/// A record fitted to the schema.
#[derive(Debug)]
pub struct Conformed {
    /// Column name → value, every value fitting its column's type.
    pub row: Map<String, Value>,
    /// Keys whose values did not fit (kept in the rescued data column when there is one).
    pub rescued_keys: Vec<String>,
}

impl Conformer {
    /// A conformer for `schema`; `rescued_column` (excluded from the data columns) receives
    /// what does not fit, or nothing does when it is `None`.
    pub fn new(schema: &Schema, rescued_column: Option<&str>, mode: EvolutionMode) -> Self {
        let columns: Vec<(String, DataType)> = schema
            .fields()
            .iter()
            .filter(|f| Some(f.name().as_str()) != rescued_column)
            .map(|f| (f.name().clone(), f.data_type().clone()))
            .collect();
        let exact = columns
            .iter()
            .enumerate()
            .map(|(i, (n, _))| (n.clone(), i))
            .collect();
        let lower = columns
            .iter()
            .enumerate()
            .map(|(i, (n, _))| (n.to_lowercase(), i))
            .collect();
        Self {
            columns,
            exact,
            lower,
            rescued: rescued_column.map(str::to_string),
            mode,
        }
    }

    /// Top-level keys of `record` that name no column, not even in another case, nor the
    /// rescued data column (which data never makes: its values are rescued).
    pub fn unknown_keys<'a>(
        &'a self,
        record: &'a Map<String, Value>,
    ) -> impl Iterator<Item = &'a String> + 'a {
        record
            .keys()
            .filter(|k| !self.exact.contains_key(*k) && !self.lower.contains_key(&k.to_lowercase()))
            .filter(|k| !self.is_rescued_name(k))
    }

    /// Whether `key` names the rescued data column (in any case).
    fn is_rescued_name(&self, key: &str) -> bool {
        self.rescued
            .as_deref()
            .is_some_and(|r| same_column_name(r, key))
    }

    /// Fits `record` (from the file at `file_path`) to the columns. Given the record's own
    /// JSON text (`source`, a JSON object as written), a value that goes to the rescued data
    /// column, or into a string column as text, keeps its numbers as written. serde_json reads an integer beyond i64/u64, or a fraction, as
    /// a double (`-9223372036854775809` would come back as `-9.223372036854776e+18`), so such
    /// values are taken from `source` instead. Only records with such a number pay for it.
    pub fn conform_written(
        &self,
        record: Map<String, Value>,
        file_path: &str,
        source: Option<&str>,
    ) -> Conformed {
        let mut row = Map::with_capacity(self.columns.len() + 1);
        let mut rescued = Map::new();
        for (key, value) in record {
            match self.exact.get(&key) {
                Some(&i) => {
                    let dtype = &self.columns[i].1;
                    if !fits(&value, dtype) {
                        rescued.insert(key, value);
                    } else if let Some(text) = source
                        .filter(|_| is_text(dtype) && !value.is_string() && has_double(&value))
                        .and_then(|src| written(src, None, &key, &value))
                    {
                        row.insert(key, Value::String(text));
                    } else {
                        row.insert(key, coerce(value, dtype));
                    }
                }
                None if self.lower.contains_key(&key.to_lowercase()) => {
                    rescued.insert(key, value);
                }
                // A field named like the rescued data column is the record's own: kept in the
                // rescued JSON under its key, in every mode.
                None if self.is_rescued_name(&key) => {
                    rescued.insert(key, value);
                }
                // Unknown fields: ignored in `none` mode; otherwise kept in rescued data
                // (in add_new_columns mode the caller evolves first, so none remain).
                None if self.mode == EvolutionMode::None => {}
                None => {
                    rescued.insert(key, value);
                }
            }
        }
        let rescued_keys: Vec<String> = rescued.keys().cloned().collect();
        if !rescued_keys.is_empty() {
            if let Some(col) = &self.rescued {
                rescued.insert(FILE_PATH_KEY.into(), Value::String(file_path.to_string()));
                let text = match source {
                    Some(src) if rescued.values().any(has_double) => written_object(&rescued, src),
                    _ => Value::Object(rescued).to_string(),
                };
                row.insert(col.clone(), Value::String(text));
            }
        }
        Conformed { row, rescued_keys }
    }
}

fn is_text(dtype: &DataType) -> bool {
    matches!(
        dtype,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    )
}

/// Whether `value` holds a number serde_json read as a double (whose text may be lost).
fn has_double(value: &Value) -> bool {
    match value {
        Value::Number(n) => n.is_f64(),
        Value::Array(items) => items.iter().any(has_double),
        Value::Object(map) => map.values().any(has_double),
        _ => false,
    }
}

/// The text of field `key` of the JSON object `source` (its members, when already found),
/// compacted, when it reads back as `value` (a partition value may have replaced the
/// record's own).
fn written(
    source: &str,
    members: Option<&[json_text::Member]>,
    key: &str,
    value: &Value,
) -> Option<String> {
    let found;
    let members = match members {
        Some(m) => m,
        None => {
            found = json_text::members(source)?;
            &found
        }
    };
    let text = json_text::field_text(source, members, key)?;
    let same = serde_json::from_str::<Value>(text).is_ok_and(|v| v == *value);
    same.then(|| json_text::compact(text))
}

/// `rescued` as JSON text, with the values that hold doubles as `source` wrote them.
fn written_object(rescued: &Map<String, Value>, source: &str) -> String {
    let members = json_text::members(source).unwrap_or_default();
    let mut out = String::from("{");
    for (i, (key, value)) in rescued.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&Value::String(key.clone()).to_string());
        out.push(':');
        match has_double(value)
            .then(|| written(source, Some(&members), key, value))
            .flatten()
        {
            Some(text) => out.push_str(&text),
            None => out.push_str(&value.to_string()),
        }
    }
    out.push('}');
    out
}

/// Whether `value` can be stored in a column of `dtype` without loss.
pub fn fits(value: &Value, dtype: &DataType) -> bool {
    use DataType::*;
    match (value, dtype) {
        (Value::Null, _) => true,
        // Anything widens to string: scalars as text, objects and arrays as JSON text.
        (_, Utf8 | LargeUtf8 | Utf8View) => true,
        (Value::Bool(_), Boolean) => true,
        (Value::Number(n), Int8) => n.as_i64().is_some_and(|v| i8::try_from(v).is_ok()),
        (Value::Number(n), Int16) => n.as_i64().is_some_and(|v| i16::try_from(v).is_ok()),
        (Value::Number(n), Int32) => n.as_i64().is_some_and(|v| i32::try_from(v).is_ok()),
        (Value::Number(n), Int64) => n.is_i64(),
        (Value::Number(_), Float32 | Float64) => true,
        (Value::Number(n), Decimal128(p, s)) => decimal_fits(&n.to_string(), *p, *s),
        (Value::String(t), Decimal128(p, s)) => decimal_fits(t, *p, *s),
        (Value::String(_) | Value::Number(_), Timestamp(unit, _)) => {
            temporal::value_to_micros(value)
                .and_then(|m| temporal::micros_in_unit(m, *unit))
                .is_some()
        }
        (Value::String(_) | Value::Number(_), Date32) => temporal::value_to_days(value).is_some(),
        (Value::String(_), Binary | LargeBinary | BinaryView) => true,
        (Value::Array(items), List(f) | LargeList(f)) => {
            items.iter().all(|v| fits(v, f.data_type()))
        }
        (Value::Object(map), Struct(fields)) => map.iter().all(|(k, v)| {
            fields
                .iter()
                .find(|f| f.name() == k)
                .is_some_and(|f| fits(v, f.data_type()))
        }),
        _ => false,
    }
}

/// `value` in the form the Arrow JSON decoder takes for `dtype`: nested values and scalars
/// headed for a string column become their JSON text, times become epoch numbers.
fn coerce(value: Value, dtype: &DataType) -> Value {
    use DataType::*;
    match (value, dtype) {
        (Value::Null, _) => Value::Null,
        (Value::String(s), Utf8 | LargeUtf8 | Utf8View) => Value::String(s),
        (v, Utf8 | LargeUtf8 | Utf8View) => Value::String(v.to_string()),
        (v, Timestamp(unit, _)) => temporal::value_to_micros(&v)
            .and_then(|m| temporal::micros_in_unit(m, *unit))
            .map_or(Value::Null, Value::from),
        (v, Date32) => temporal::value_to_days(&v).map_or(Value::Null, Value::from),
        (Value::Array(items), List(f) | LargeList(f)) => Value::Array(
            items
                .into_iter()
                .map(|v| coerce(v, f.data_type()))
                .collect(),
        ),
        (Value::Object(map), Struct(fields)) => Value::Object(
            map.into_iter()
                .map(|(k, v)| {
                    let v = match fields.iter().find(|f| *f.name() == k) {
                        Some(f) => coerce(v, f.data_type()),
                        None => v,
                    };
                    (k, v)
                })
                .collect(),
        ),
        (v, _) => v,
    }
}

fn decimal_fits(text: &str, precision: u8, scale: i8) -> bool {
    let t = text.trim().trim_start_matches(['-', '+']);
    let (int, frac) = t.split_once('.').unwrap_or((t, ""));
    let digits_ok = !int.is_empty()
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.bytes().all(|b| b.is_ascii_digit());
    let int_digits = int.trim_start_matches('0').len();
    digits_ok
        && int_digits + scale.max(0) as usize <= precision as usize
        && frac.len() <= scale.max(0) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::Field;
    use serde_json::json;

    fn schema() -> Schema {
        Schema::new(vec![
            Field::new("a", DataType::Int64, true),
            Field::new("b", DataType::Int64, true),
            Field::new("s", DataType::Utf8, true),
            Field::new("_rescued_data", DataType::Utf8, true),
        ])
    }

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().expect("object").clone()
    }

    #[test]
    fn wrong_types_case_variants_and_unknowns_are_rescued() {
        let c = Conformer::new(&schema(), Some("_rescued_data"), EvolutionMode::Rescue);
        let out = c.conform_written(
            obj(json!({"a": 1, "b": "x", "B": 2, "c": true, "s": {"n": 1}})),
            "s3://l/f.json",
            None,
        );
        assert_eq!(out.rescued_keys.len(), 3);
        assert_eq!(out.row["a"], json!(1));
        assert!(!out.row.contains_key("b"));
        assert_eq!(out.row["s"], json!("{\"n\":1}"));
        let rescued: Value =
            serde_json::from_str(out.row["_rescued_data"].as_str().expect("text")).expect("json");
        assert_eq!(
            rescued,
            json!({"b": "x", "B": 2, "c": true, "_file_path": "s3://l/f.json"})
        );
    }

    #[test]
    fn none_mode_ignores_unknown_fields_but_rescues_wrong_types() {
        let c = Conformer::new(&schema(), Some("_rescued_data"), EvolutionMode::None);
        let out = c.conform_written(obj(json!({"a": 1.5, "c": 1})), "f", None);
        let rescued: Value =
            serde_json::from_str(out.row["_rescued_data"].as_str().expect("text")).expect("json");
        assert_eq!(rescued, json!({"a": 1.5, "_file_path": "f"}));
        let record = obj(json!({"a": 1, "A": 1, "zz": 1}));
        let unknown: Vec<&String> = c.unknown_keys(&record).collect();
        assert_eq!(unknown, vec!["zz"]);
    }

    #[test]
    fn decimals_check_precision() {
        assert!(decimal_fits("123.45", 5, 2));
        assert!(!decimal_fits("1234.5", 5, 2));
        assert!(!decimal_fits("1.234", 5, 2));
        assert!(!decimal_fits("1e3", 5, 2));
    }

    #[test]
    fn a_field_named_like_the_rescued_column_is_kept_in_it_in_every_mode() {
        for mode in [
            EvolutionMode::Rescue,
            EvolutionMode::None,
            EvolutionMode::AddNewColumns,
        ] {
            let c = Conformer::new(&schema(), Some("_rescued_data"), mode);
            let record = obj(json!({"a": 1, "_rescued_data": 5, "_Rescued_Data": "x"}));
            assert_eq!(
                c.unknown_keys(&record).count(),
                0,
                "{mode:?}: no new column"
            );
            let out = c.conform_written(record, "f", None);
            assert_eq!(out.row["a"], json!(1));
            let rescued: Value =
                serde_json::from_str(out.row["_rescued_data"].as_str().expect("text"))
                    .expect("json");
            assert_eq!(
                rescued,
                json!({"_rescued_data": 5, "_Rescued_Data": "x", "_file_path": "f"}),
                "{mode:?}"
            );
        }
    }

    #[test]
    fn numbers_keep_their_text_when_rescued_or_stored_as_text() {
        let c = Conformer::new(&schema(), Some("_rescued_data"), EvolutionMode::Rescue);
        let src = r#"{"a": -9223372036854775809, "b" : 1.00000000000000000001, "c": {"x": [0.10000000000000000001, 1e3, 18446744073709551616]}, "s": 123456789012345678901234567890}"#;
        let record = obj(serde_json::from_str(src).expect("json"));
        let out = c.conform_written(record.clone(), "f", Some(src));
        assert_eq!(
            out.row["_rescued_data"],
            json!(
                r#"{"_file_path":"f","a":-9223372036854775809,"b":1.00000000000000000001,"c":{"x":[0.10000000000000000001,1e3,18446744073709551616]}}"#
            )
        );
        assert_eq!(out.row["s"], json!("123456789012345678901234567890"));
        // Without the text, the doubles serde_json read.
        let out = c.conform_written(record, "f", None);
        assert_eq!(
            out.row["_rescued_data"],
            json!(
                r#"{"_file_path":"f","a":-9.223372036854776e+18,"b":1.0,"c":{"x":[0.1,1000.0,1.8446744073709552e+19]}}"#
            )
        );
        // A value replaced after reading (a partition value) is not taken from the text.
        let mut changed = obj(serde_json::from_str(src).expect("json"));
        changed.insert("a".into(), json!(2.5));
        let out = c.conform_written(changed, "f", Some(src));
        assert!(
            out.row["_rescued_data"]
                .as_str()
                .expect("text")
                .contains("\"a\":2.5"),
            "{:?}",
            out.row
        );
    }
}
