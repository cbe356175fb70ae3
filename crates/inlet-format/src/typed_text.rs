//! A text field (a CSV field, a partition value from a path) as the JSON value its column
//! takes: parsed for numeric and boolean columns, inferred for new ones, else kept as text.

use serde_json::Value;

/// A field's text as the JSON value its column takes: numbers and booleans parsed for
/// numeric and boolean columns, and, for a column not in the schema yet, by inference when
/// `infer` (a value that parses as nothing else stays text, and fails to fit if it must).
pub(crate) fn typed_text(
    text: &str,
    column: Option<&arrow::datatypes::DataType>,
    infer: bool,
) -> Value {
    use arrow::datatypes::DataType::*;
    let as_int = || text.trim().parse::<i64>().ok().map(Value::from);
    let as_float = || {
        text.trim()
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
    };
    let as_bool = || match text.trim().to_ascii_lowercase().as_str() {
        "true" => Some(Value::Bool(true)),
        "false" => Some(Value::Bool(false)),
        _ => None,
    };
    let parsed = match column {
        Some(Int8 | Int16 | Int32 | Int64 | UInt8 | UInt16 | UInt32 | UInt64) => as_int(),
        Some(Float32 | Float64) => as_float(),
        Some(Boolean) => as_bool(),
        Some(_) => None,
        // Leading zeros (`007`, a zip code) are kept as text rather than inferred as numbers.
        None if infer && !has_leading_zero(text.trim()) => {
            as_int().or_else(as_float).or_else(as_bool)
        }
        None => None,
    };
    parsed.unwrap_or_else(|| Value::String(text.to_string()))
}

fn has_leading_zero(t: &str) -> bool {
    let digits = t.strip_prefix(['-', '+']).unwrap_or(t).as_bytes();
    digits.len() > 1 && digits[0] == b'0' && digits[1].is_ascii_digit()
}
