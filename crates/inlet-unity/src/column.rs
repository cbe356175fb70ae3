//! Columns as Unity Catalog's table requests take them, from the Spark StructField JSON a
//! Delta schema is written in: Spark SQL's type text and the catalog's type name.

use serde::Serialize;
use serde_json::Value;

/// A column as the catalog's create-table request takes it (Spark's type forms).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Column {
    pub name: String,
    pub type_text: String,
    pub type_name: String,
    /// Spark's StructField JSON, as text.
    pub type_json: String,
    pub nullable: bool,
    pub position: usize,
}

impl Column {
    /// A table's columns, in order, from its Spark StructField JSONs.
    pub fn list_from_spark(fields: &[Value]) -> Vec<Self> {
        fields
            .iter()
            .enumerate()
            .map(|(i, f)| Self::from_spark(i, f))
            .collect()
    }

    /// The column at `position` from a Spark StructField JSON (`{name, type, nullable,
    /// metadata}`, as Delta's schema writes it).
    pub fn from_spark(position: usize, field: &Value) -> Self {
        let ty = &field["type"];
        Self {
            name: field["name"].as_str().unwrap_or_default().to_string(),
            type_text: type_text(ty),
            type_name: type_name(ty),
            type_json: field.to_string(),
            nullable: field["nullable"].as_bool().unwrap_or(true),
            position,
        }
    }
}

/// Spark SQL's text of a type: `bigint`, `decimal(10,2)`, `struct<a:bigint,b:array<string>>`.
fn type_text(ty: &Value) -> String {
    match ty {
        Value::String(s) => match s.as_str() {
            "long" => "bigint".into(),
            "integer" => "int".into(),
            "short" => "smallint".into(),
            "byte" => "tinyint".into(),
            other => other.to_string(),
        },
        Value::Object(o) => match o.get("type").and_then(Value::as_str) {
            Some("struct") => {
                let fields: Vec<String> = o
                    .get("fields")
                    .and_then(Value::as_array)
                    .map(|fs| {
                        fs.iter()
                            .map(|f| {
                                format!(
                                    "{}:{}",
                                    f["name"].as_str().unwrap_or_default(),
                                    type_text(&f["type"])
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                format!("struct<{}>", fields.join(","))
            }
            Some("array") => format!("array<{}>", type_text(&o["elementType"])),
            Some("map") => format!(
                "map<{},{}>",
                type_text(&o["keyType"]),
                type_text(&o["valueType"])
            ),
            _ => ty.to_string(),
        },
        _ => ty.to_string(),
    }
}

/// Unity Catalog's `type_name` enum value for a type.
fn type_name(ty: &Value) -> String {
    match ty {
        Value::String(s) => match s.as_str() {
            "integer" => "INT".into(),
            s if s.starts_with("decimal") => "DECIMAL".into(),
            other => other.to_ascii_uppercase(),
        },
        Value::Object(o) => o
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("STRUCT")
            .to_ascii_uppercase(),
        _ => "STRING".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn spark_fields_become_catalog_columns() {
        let field = json!({"name": "nested", "nullable": true, "metadata": {}, "type": {"type": "struct", "fields": [
            {"name": "k", "type": "string", "nullable": true, "metadata": {}},
            {"name": "n", "type": {"type": "array", "elementType": "long", "containsNull": true}, "nullable": true, "metadata": {}}]}});
        let c = Column::from_spark(3, &field);
        assert_eq!(
            (c.type_name.as_str(), c.type_text.as_str()),
            ("STRUCT", "struct<k:string,n:array<bigint>>")
        );
        assert_eq!(c.position, 3);
        let d = Column::from_spark(
            0,
            &json!({"name": "p", "type": "decimal(10,2)", "nullable": false, "metadata": {}}),
        );
        assert_eq!(
            (d.type_name.as_str(), d.type_text.as_str(), d.nullable),
            ("DECIMAL", "decimal(10,2)", false)
        );
        assert_eq!(
            Column::from_spark(0, &json!({"name": "i", "type": "long"})).type_name,
            "LONG"
        );
    }
}
