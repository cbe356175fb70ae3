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
