//! The fast path's gate: a JSON record that fits the schema exactly as written (known keys
//! once each, values of the columns' own kinds) can go to arrow-json's decoder as raw bytes.

use std::fmt;

use arrow::datatypes::{DataType, Fields, Schema};
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// A column's type as the check sees it; `Other` never passes (the fitting path decides).
#[derive(Debug)]
pub(crate) enum Shape {
    Str,
    Bool,
    Int { min: i64, max: i64 },
    Float,
    List(Box<Shape>),
    Struct(Vec<(String, Shape)>),
    Other,
}

impl Shape {
    /// The shape of a record of `schema`, leaving out the rescued data column (a record
    /// naming it goes through the fitting path).
    pub fn of_schema(schema: &Schema, rescued: Option<&str>) -> Self {
        Self::Struct(
            schema
                .fields()
                .iter()
                .filter(|f| Some(f.name().as_str()) != rescued)
                .map(|f| (f.name().clone(), Self::of(f.data_type())))
                .collect(),
        )
    }

    fn of(dtype: &DataType) -> Self {
        use DataType::*;
        match dtype {
            Utf8 | LargeUtf8 => Self::Str,
            Boolean => Self::Bool,
            Int8 => Self::Int {
                min: i8::MIN.into(),
                max: i8::MAX.into(),
            },
            Int16 => Self::Int {
                min: i16::MIN.into(),
                max: i16::MAX.into(),
            },
            Int32 => Self::Int {
                min: i32::MIN.into(),
                max: i32::MAX.into(),
            },
            Int64 => Self::Int {
                min: i64::MIN,
                max: i64::MAX,
            },
            Float32 | Float64 => Self::Float,
            List(f) | LargeList(f) => Self::List(Box::new(Self::of(f.data_type()))),
            Struct(fields) => Self::Struct(struct_shapes(fields)),
            // Null (a position seen only as null while inferring) and the rest.
            _ => Self::Other,
        }
    }

    /// True when `raw` is one JSON object that fits exactly (whitespace around it allowed).
    pub fn accepts(&self, raw: &str) -> bool {
        // Only an object is a record (`null`, a number or an array is a bad record).
        if !raw.trim_start().starts_with('{') {
            return false;
        }
        let mut de = serde_json::Deserializer::from_str(raw);
        Check(self).deserialize(&mut de).is_ok() && de.end().is_ok()
    }
}

fn struct_shapes(fields: &Fields) -> Vec<(String, Shape)> {
    fields
        .iter()
        .map(|f| (f.name().clone(), Shape::of(f.data_type())))
        .collect()
}

/// Walks one JSON value against a shape without building it; any mismatch is an error.
struct Check<'s>(&'s Shape);

fn unfit<E: de::Error>() -> E {
    E::custom("does not fit as written")
}

impl<'de> DeserializeSeed<'de> for Check<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Check<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "a value of shape {:?}", self.0)
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        matches!(self.0, Shape::Bool)
            .then_some(())
            .ok_or_else(unfit)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
        match self.0 {
            Shape::Int { min, max } if (*min..=*max).contains(&v) => Ok(()),
            Shape::Float => Ok(()),
            _ => Err(unfit()),
        }
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
        match self.0 {
            Shape::Int { max, .. } if i64::try_from(v).is_ok_and(|v| v <= *max) => Ok(()),
            Shape::Float => Ok(()),
            _ => Err(unfit()),
        }
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        matches!(self.0, Shape::Float)
            .then_some(())
            .ok_or_else(unfit)
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        matches!(self.0, Shape::Str).then_some(()).ok_or_else(unfit)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let Shape::List(item) = self.0 else {
            return Err(unfit());
        };
        while seq.next_element_seed(Check(item))?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let Shape::Struct(fields) = self.0 else {
            return Err(unfit());
        };
        let mut seen = vec![false; fields.len()];
        // Records of one producer list keys in one order: try the next field first.
        let mut hint = 0;
        while let Some(i) = map.next_key_seed(Key(fields, hint))? {
            hint = i + 1;
            // A key given twice: serde and arrow may keep different ones.
            if std::mem::replace(&mut seen[i], true) {
                return Err(unfit());
            }
            map.next_value_seed(Check(&fields[i].1))?;
        }
        Ok(())
    }
}

/// A key, as the index of the field it names exactly (the field at the hint tried first).
struct Key<'s>(&'s [(String, Shape)], usize);

impl<'de> DeserializeSeed<'de> for Key<'_> {
    type Value = usize;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<usize, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key<'_> {
    type Value = usize;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a column name")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<usize, E> {
        if self.0.get(self.1).is_some_and(|(name, _)| name == v) {
            return Ok(self.1);
        }
        self.0
            .iter()
            .position(|(name, _)| name == v)
            .ok_or_else(unfit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::Field;
    use std::sync::Arc;

    #[test]
    fn only_records_that_fit_as_written_pass() {
        let inner = Fields::from(vec![Field::new("k", DataType::Utf8, true)]);
        let schema = Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("x", DataType::Float64, true),
            Field::new("s", DataType::Utf8, true),
            Field::new(
                "tags",
                DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
                true,
            ),
            Field::new("n", DataType::Struct(inner), true),
            Field::new("small", DataType::Int8, true),
            Field::new("_rescued_data", DataType::Utf8, true),
        ]);
        let shape = Shape::of_schema(&schema, Some("_rescued_data"));
        for ok in [
            r#"{"id": 1, "x": 2, "s": "a\"b", "tags": ["p", null], "n": {"k": "v"}, "small": -128}"#,
            r#"{"x": 1.5e3, "id": null}"#,
            "{}",
            "  {\"id\": 9223372036854775807}  ",
        ] {
            assert!(shape.accepts(ok), "{ok}");
        }
        for slow in [
            r#"{"id": 1.0}"#,
            r#"{"id": "1"}"#,
            r#"{"id": 9223372036854775808}"#,
            r#"{"s": 5}"#,
            r#"{"tags": "p"}"#,
            r#"{"n": {"k": "v", "extra": 1}}"#,
            r#"{"ID": 1}"#,
            r#"{"new": 1}"#,
            r#"{"_rescued_data": "{}"}"#,
            r#"{"id": 1, "id": 2}"#,
            r#"{"small": 128}"#,
            r#"{"id": 1} {"id": 2}"#,
            r#"[1]"#,
            r#"{"id": 1"#,
        ] {
            assert!(!shape.accepts(slow), "{slow}");
        }
    }
}
