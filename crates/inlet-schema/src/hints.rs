//! Schema hints: a small DDL (`id BIGINT, at TIMESTAMP, loc STRUCT<lat: DOUBLE, lon: DOUBLE>`)
//! parsed into Arrow fields, and applied over inferred types; types back as that DDL.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Fields, Schema, TimeUnit};

use crate::column_name::same_column_name;
use crate::error::SchemaError;

/// Parses `hints` into fields, in the order written.
pub fn parse_hints(hints: &str) -> Result<Vec<Field>, SchemaError> {
    let mut p = Parser {
        text: hints,
        pos: 0,
    };
    let mut fields = Vec::new();
    p.ws();
    if p.eof() {
        return Ok(fields);
    }
    loop {
        let name = p.ident()?;
        p.unique(&fields, &name)?;
        p.ws();
        p.eat(':');
        let dtype = p.dtype()?;
        fields.push(Field::new(name, dtype, true));
        p.ws();
        if p.eof() {
            return Ok(fields);
        }
        p.expect(',')?;
    }
}

/// `fields` with the types of those that are hinted (names matched case-insensitively, by
/// `same_column_name`) replaced by the hints'.
pub fn hinted_types<'a>(
    fields: impl IntoIterator<Item = &'a Field>,
    hints: &[Field],
) -> Vec<Field> {
    fields
        .into_iter()
        .map(
            |f| match hints.iter().find(|h| same_column_name(h.name(), f.name())) {
                Some(h) => Field::new(f.name(), h.data_type().clone(), true),
                None => f.clone(),
            },
        )
        .collect()
}

/// `schema` with the hinted columns' types replaced by the hints' (and hinted columns that
/// were not seen appended, so a hinted column exists from the start).
pub fn apply_hints(schema: &Schema, hints: &[Field]) -> Schema {
    let mut fields = hinted_types(schema.fields().iter().map(|f| f.as_ref()), hints);
    for h in hints {
        if !fields.iter().any(|f| same_column_name(f.name(), h.name())) {
            fields.push(h.clone());
        }
    }
    Schema::new(fields)
}

/// The DDL name of a type, as `inlet schema show` prints it.
pub fn ddl_type(dtype: &DataType) -> String {
    match dtype {
        DataType::Int8 => "TINYINT".into(),
        DataType::Int16 => "SMALLINT".into(),
        DataType::Int32 => "INT".into(),
        DataType::Int64 => "BIGINT".into(),
        DataType::Float32 => "FLOAT".into(),
        DataType::Float64 => "DOUBLE".into(),
        DataType::Boolean => "BOOLEAN".into(),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "STRING".into(),
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => "BINARY".into(),
        DataType::Date32 | DataType::Date64 => "DATE".into(),
        DataType::Timestamp(_, Some(_)) => "TIMESTAMP".into(),
        DataType::Timestamp(_, None) => "TIMESTAMP_NTZ".into(),
        DataType::Decimal128(p, s) => format!("DECIMAL({p}, {s})"),
        DataType::List(f) | DataType::LargeList(f) => format!("ARRAY<{}>", ddl_type(f.data_type())),
        DataType::Struct(fields) => format!(
            "STRUCT<{}>",
            fields
                .iter()
                .map(|f| format!("{}: {}", f.name(), ddl_type(f.data_type())))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        DataType::Map(f, _) => format!("MAP<{}>", ddl_type(f.data_type())),
        other => format!("{other}"),
    }
}

struct Parser<'a> {
    text: &'a str,
    pos: usize,
}

impl Parser<'_> {
    fn err(&self, what: &str) -> SchemaError {
        SchemaError::Hints {
            hints: self.text.to_string(),
            at: self.pos,
            detail: what.to_string(),
        }
    }

    /// Refuses a name `fields` already has in any case: Delta column and field names are
    /// case-insensitive.
    fn unique(&self, fields: &[Field], name: &str) -> Result<(), SchemaError> {
        match fields.iter().find(|f| same_column_name(f.name(), name)) {
            Some(f) => Err(self.err(&format!(
                "'{name}' names '{}' again (names are case-insensitive)",
                f.name()
            ))),
            None => Ok(()),
        }
    }

    fn eof(&self) -> bool {
        self.pos >= self.text.len()
    }

    fn rest(&self) -> &str {
        &self.text[self.pos..]
    }

    fn ws(&mut self) {
        let trimmed = self.rest().trim_start();
        self.pos = self.text.len() - trimmed.len();
    }

    fn eat(&mut self, c: char) -> bool {
        self.ws();
        if self.rest().starts_with(c) {
            self.pos += c.len_utf8();
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: char) -> Result<(), SchemaError> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(self.err(&format!("expected '{c}'")))
        }
    }

    fn ident(&mut self) -> Result<String, SchemaError> {
        self.ws();
        if self.rest().starts_with('`') {
            let end = self.rest()[1..]
                .find('`')
                .ok_or_else(|| self.err("unclosed `"))?;
            let name = self.rest()[1..1 + end].to_string();
            self.pos += end + 2;
            return Ok(name);
        }
        let len = self
            .rest()
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(self.rest().len());
        if len == 0 {
            return Err(self.err("expected a column or type name"));
        }
        let name = self.rest()[..len].to_string();
        self.pos += len;
        Ok(name)
    }

    fn number(&mut self) -> Result<u8, SchemaError> {
        self.ws();
        let len = self
            .rest()
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(self.rest().len());
        let n = self.rest()[..len]
            .parse()
            .map_err(|_| self.err("expected a number"))?;
        self.pos += len;
        Ok(n)
    }

    fn dtype(&mut self) -> Result<DataType, SchemaError> {
        let start = self.pos;
        let name = self.ident()?.to_ascii_uppercase();
        Ok(match name.as_str() {
            "TINYINT" | "BYTE" => DataType::Int8,
            "SMALLINT" | "SHORT" => DataType::Int16,
            "INT" | "INTEGER" => DataType::Int32,
            "BIGINT" | "LONG" => DataType::Int64,
            "FLOAT" | "REAL" => DataType::Float32,
            "DOUBLE" => DataType::Float64,
            "BOOLEAN" | "BOOL" => DataType::Boolean,
            "STRING" | "VARCHAR" | "TEXT" => DataType::Utf8,
            "BINARY" => DataType::Binary,
            "DATE" => DataType::Date32,
            "TIMESTAMP" => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            "TIMESTAMP_NTZ" => DataType::Timestamp(TimeUnit::Microsecond, None),
            "DECIMAL" | "NUMERIC" => {
                if self.eat('(') {
                    let p = self.number()?;
                    self.expect(',')?;
                    let s = self.number()?;
                    self.expect(')')?;
                    if p == 0 || p > 38 || s > p {
                        return Err(self.err("DECIMAL(p, s) needs 1 <= p <= 38 and s <= p"));
                    }
                    DataType::Decimal128(p, s as i8)
                } else {
                    DataType::Decimal128(10, 0)
                }
            }
            "ARRAY" => {
                self.expect('<')?;
                let item = self.dtype()?;
                self.expect('>')?;
                DataType::List(Arc::new(Field::new("element", item, true)))
            }
            "STRUCT" => {
                self.expect('<')?;
                let mut fields = Vec::new();
                loop {
                    let name = self.ident()?;
                    self.unique(&fields, &name)?;
                    self.eat(':');
                    let t = self.dtype()?;
                    fields.push(Field::new(name, t, true));
                    if self.eat('>') {
                        break;
                    }
                    self.expect(',')?;
                }
                DataType::Struct(Fields::from(fields))
            }
            _ => {
                self.pos = start;
                return Err(self.err(&format!("unknown type '{name}'")));
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_nested_hints() {
        let fields = parse_hints(
            "id BIGINT, updated_at TIMESTAMP, location STRUCT<lat: DOUBLE, lon: DOUBLE>, tags ARRAY<STRING>, price DECIMAL(10, 2)",
        )
        .expect("parse");
        let ddl: Vec<String> = fields
            .iter()
            .map(|f| format!("{} {}", f.name(), ddl_type(f.data_type())))
            .collect();
        assert_eq!(
            ddl,
            vec![
                "id BIGINT",
                "updated_at TIMESTAMP",
                "location STRUCT<lat: DOUBLE, lon: DOUBLE>",
                "tags ARRAY<STRING>",
                "price DECIMAL(10, 2)"
            ]
        );
    }

    #[test]
    fn bad_type_is_named_with_position() {
        let err = parse_hints("id BIGINT, x NUMBR").expect_err("bad");
        assert_eq!(
            err.to_string(),
            "schema hints 'id BIGINT, x NUMBR': unknown type 'NUMBR' at character 13"
        );
    }

    #[test]
    fn a_name_given_twice_in_any_case_is_refused() {
        let err = parse_hints("Äx BIGINT, äx STRING").expect_err("twice");
        assert_eq!(
            err.to_string(),
            "schema hints 'Äx BIGINT, äx STRING': 'äx' names 'Äx' again (names are case-insensitive) at character 15"
        );
        let err = parse_hints("s STRUCT<Ab: INT, aB: INT>").expect_err("twice");
        assert!(err.to_string().contains("'aB' names 'Ab' again"), "{err}");
    }
}
