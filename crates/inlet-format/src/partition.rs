//! Hive-style partition values (`.../date=2024-05-01/region=eu/file.json`) read from a
//! file's path for the configured partition columns, as Auto Loader's `partitionColumns`.

use arrow::datatypes::SchemaRef;
use serde_json::{Map, Value};

use crate::typed_text::typed_text;

/// The value Hive and Spark write for a null partition value.
const HIVE_NULL: &str = "__HIVE_DEFAULT_PARTITION__";

/// For each of `columns`, its value in `path` (the directories' `name=value` segments,
/// percent-decoded; the deepest wins), or `None` when the path has none or it is Hive's null.
pub fn partition_values(path: &str, columns: &[String]) -> Vec<(String, Option<String>)> {
    let dirs: Vec<&str> = path
        .rsplit_once('/')
        .map_or(Vec::new(), |(d, _)| d.split('/').collect());
    columns
        .iter()
        .map(|column| {
            let value = dirs
                .iter()
                .rev()
                .filter_map(|segment| segment.split_once('='))
                .find(|(name, _)| inlet_schema::same_column_name(name, column))
                .map(|(_, v)| {
                    percent_encoding::percent_decode_str(v)
                        .decode_utf8_lossy()
                        .into_owned()
                })
                .filter(|v| v != HIVE_NULL);
            (column.clone(), value)
        })
        .collect()
}

/// The partition values of `path` as JSON values typed for `schema`'s columns (or inferred
/// when `infer` and the column is new): what each row of the file gets, under the schema's
/// spelling of the column (names are case-insensitive), or the configured one.
pub(crate) fn typed_values(
    path: &str,
    columns: &[String],
    schema: &SchemaRef,
    infer: bool,
) -> Map<String, Value> {
    partition_values(path, columns)
        .into_iter()
        .map(|(name, value)| {
            let field = schema
                .fields()
                .iter()
                .find(|f| f.name() == &name)
                .or_else(|| {
                    schema
                        .fields()
                        .iter()
                        .find(|f| inlet_schema::same_column_name(f.name(), &name))
                });
            let typed = value.map_or(Value::Null, |v| {
                typed_text(&v, field.map(|f| f.data_type()), infer)
            });
            (field.map_or(name, |f| f.name().clone()), typed)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_come_from_directories_decoded() {
        let cols = vec!["date".to_string(), "region".to_string(), "hour".to_string()];
        let got = partition_values(
            "s3://b/in/date=2024-05-01/Region=eu%2Dwest/hour=__HIVE_DEFAULT_PARTITION__/x=1.json",
            &cols,
        );
        assert_eq!(
            got,
            vec![
                ("date".into(), Some("2024-05-01".into())),
                ("region".into(), Some("eu-west".into())),
                ("hour".into(), None),
            ]
        );
        assert_eq!(
            partition_values("file:///a=1", &cols[..1]),
            vec![("date".into(), None)]
        );
    }

    #[test]
    fn names_match_by_unicode_case_and_take_the_schema_spelling() {
        let cols = vec!["äx".to_string()];
        assert_eq!(
            partition_values("s3://b/ÄX=1/f.json", &cols),
            vec![("äx".into(), Some("1".into()))]
        );
        let schema = std::sync::Arc::new(arrow::datatypes::Schema::new(vec![
            arrow::datatypes::Field::new("Äx", arrow::datatypes::DataType::Utf8, true),
        ]));
        let typed = typed_values("s3://b/ÄX=1/f.json", &cols, &schema, true);
        assert_eq!(Value::Object(typed), serde_json::json!({"Äx": "1"}));
    }
}
