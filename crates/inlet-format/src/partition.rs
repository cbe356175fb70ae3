//! Hive-style partition values (`.../date=2024-05-01/region=eu/file.json`) read from a
//! file's path for the configured partition columns, as Auto Loader's `partitionColumns`.

use arrow::datatypes::SchemaRef;
use serde_json::{Map, Value};

use crate::fit::typed_text;

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
                .find(|(name, _)| name.eq_ignore_ascii_case(column))
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
/// when `infer` and the column is new): what each row of the file gets.
pub(crate) fn typed_values(
    path: &str,
    columns: &[String],
    schema: &SchemaRef,
    infer: bool,
) -> Map<String, Value> {
    partition_values(path, columns)
        .into_iter()
        .map(|(name, value)| {
            let column = schema.field_with_name(&name).ok().map(|f| f.data_type());
            let typed = value.map_or(Value::Null, |v| typed_text(&v, column, infer));
            (name, typed)
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
}
