//! Test-only: what the format tests share — their decode options and schemas, and
//! deterministic random JSON records for checking a fast path against the slow one.

/// `count` JSON objects of up to `max_fields - 1` fields, each a key from `keys` (repeats
/// allowed) with a value from `values` (JSON text), drawn by a fixed-seed xorshift.
pub(crate) fn random_records(
    seed: u64,
    keys: &[&str],
    values: &[&str],
    max_fields: usize,
    count: usize,
) -> Vec<String> {
    let mut state = seed;
    let mut next = |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n as u64) as usize
    };
    (0..count)
        .map(|_| {
            let fields: Vec<String> = (0..next(max_fields))
                .map(|_| {
                    format!(
                        "\"{}\":{}",
                        keys[next(keys.len())],
                        values[next(values.len())]
                    )
                })
                .collect();
            format!("{{{}}}", fields.join(","))
        })
        .collect()
}

/// Each record, then the record with one byte changed, one dropped, and cut after that
/// byte (where a change lands drawn by a fixed-seed xorshift): near misses for a checker.
pub(crate) fn with_mutations(records: Vec<String>) -> Vec<String> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n as u64) as usize
    };
    let noise = b"{}[]\",:\\ 0e.-t\x01";
    let mut out = Vec::with_capacity(records.len() * 4);
    for record in records {
        let bytes = record.as_bytes();
        let at = next(bytes.len());
        let mut changed = bytes.to_vec();
        changed[at] = noise[next(noise.len())];
        out.push(String::from_utf8_lossy(&changed).into_owned());
        out.push(String::from_utf8_lossy(&[&bytes[..at], &bytes[at + 1..]].concat()).into_owned());
        out.push(String::from_utf8_lossy(&bytes[..at]).into_owned());
        out.push(record);
    }
    out
}

/// The rescued data column the tests decode with.
pub(crate) const RESCUED: &str = "_rescued_data";

/// Decode options for `format` under `mode`, everything else at its default: the rescued
/// data column on, default CSV settings, JSON lines (not multi-line), numbers `auto`.
pub(crate) fn options(
    format: crate::Format,
    mode: inlet_schema::EvolutionMode,
) -> crate::DecodeOptions<'static> {
    static CSV: std::sync::LazyLock<crate::CsvOptions> =
        std::sync::LazyLock::new(crate::CsvOptions::default);
    crate::DecodeOptions {
        format,
        numbers: crate::NumberMode::Auto,
        multiline: false,
        export_time_micros: None,
        csv: &CSV,
        mode,
        rescued_column: Some(RESCUED),
        infer_types: true,
        hints: &[],
        partition_columns: &[],
        known_to_fit: false,
    }
}

/// A schema of nullable `cols`, then the rescued data column.
pub(crate) fn schema(cols: &[(&str, arrow::datatypes::DataType)]) -> arrow::datatypes::SchemaRef {
    use arrow::datatypes::{DataType, Field, Schema};
    let mut fields: Vec<Field> = cols
        .iter()
        .map(|(n, t)| Field::new(*n, t.clone(), true))
        .collect();
    fields.push(Field::new(RESCUED, DataType::Utf8, true));
    std::sync::Arc::new(Schema::new(fields))
}

/// A schema of every kind the fast path checks, nested, and the keys and values (JSON text,
/// valid or near it) that `random_records` builds records of it from.
pub(crate) fn mixed_schema() -> arrow::datatypes::Schema {
    use arrow::datatypes::{DataType, Field, Fields};
    use std::sync::Arc;
    let item = |t| Arc::new(Field::new("item", t, true));
    let inner = Fields::from(vec![
        Field::new("k", DataType::Utf8, true),
        Field::new("v", DataType::Int16, true),
        Field::new("l", DataType::List(item(DataType::Float64)), true),
    ]);
    arrow::datatypes::Schema::new(vec![
        Field::new("i", DataType::Int64, true),
        Field::new("f", DataType::Float64, true),
        Field::new("s", DataType::Utf8, true),
        Field::new("b", DataType::Boolean, true),
        Field::new("l", DataType::List(item(DataType::Utf8)), true),
        Field::new("n", DataType::Struct(inner.clone()), true),
        Field::new("t", DataType::Int32, true),
        Field::new("z", DataType::Null, true),
        Field::new("g", DataType::Float32, true),
        Field::new("p", DataType::List(item(DataType::Struct(inner))), true),
    ])
}

pub(crate) const MIXED_KEYS: [&str; 14] = [
    "i", "f", "s", "b", "l", "n", "t", "z", "g", "p", "k", "v", "i\\u0000", "\\u0069",
];

pub(crate) const MIXED_VALUES: [&str; 52] = [
    "0",
    "-0",
    "-0.0",
    "01",
    "1.",
    ".5",
    "+1",
    "1e3",
    "1.5E+2",
    "2e-7",
    "1e400",
    "12e99",
    "1e39",
    "0.1",
    "16777217",
    "-9223372036854775808",
    "9223372036854775808",
    "2147483648",
    "32768",
    "-32768",
    "true",
    "tru",
    "false",
    "null",
    "nul",
    "\"\"",
    "\"x\"",
    "\"\\u00e9\"",
    "\"\\ud83d\\ude00\"",
    "\"\\ud83d\"",
    "\"\\uZZZZ\"",
    "\"a\\qb\"",
    "\"tab\there\"",
    "\"\\/\\b\\f\\n\\r\\t\\\"\"",
    "\"open",
    "\"h\u{e9}\\u0041\\\\z\"",
    "[]",
    "[\"a\", null]",
    "[1, 2.5]",
    "[1,]",
    "[",
    "{}",
    "{\"k\":\"v\",\"v\":7}",
    "{\"l\":[1,2e5,-3.25]}",
    "{\"l\":null,\"k\":null}",
    "{\"v\":70000}",
    "{\"k\":1}",
    "{\"k\":\"a\",}",
    "{\"q\":1}",
    "{\"k\":\"a\",\"k\":\"b\"}",
    "[{\"k\":\"a\",\"v\":1},null,{}]",
    "[{\"l\":[0.5,null]},{\"v\":-1}]",
];
