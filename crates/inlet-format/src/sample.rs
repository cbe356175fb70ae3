//! The sample the first schema is inferred from: records of the row formats widened
//! together, Parquet footers merged by name, partition values from each file's path.

use arrow::datatypes::{DataType, Field, Schema};
use bytes::Bytes;
use inlet_schema::{same_column_name, JsonInference};
use serde_json::Value;

use crate::decode::utf8_lines;
use crate::error::FormatError;
use crate::options::{DecodeOptions, Format};
use crate::shape::Shape;
use crate::{csv, json, parquet, partition, text};

/// Accumulates sampled files; `schema()` is what the table starts with.
#[derive(Debug)]
pub struct SchemaSample {
    records: JsonInference,
    /// Parquet columns, in the order first seen.
    columns: Vec<Field>,
    files: usize,
    /// Every record added so far is a JSON object that fits the inference as written.
    all_fit: bool,
}

impl SchemaSample {
    pub fn new(infer_types: bool) -> Self {
        Self {
            records: JsonInference::new().infer_types(infer_types),
            columns: Vec::new(),
            files: 0,
            all_fit: true,
        }
    }

    /// Adds a decompressed file (`data` may be cut short by the byte budget: its last,
    /// partial record is skipped). Parquet needs the whole file.
    pub fn add(
        &mut self,
        path: &str,
        data: &Bytes,
        opts: &DecodeOptions<'_>,
    ) -> Result<(), FormatError> {
        let empty = std::sync::Arc::new(Schema::empty());
        let partition =
            partition::typed_values(path, opts.partition_columns, &empty, opts.infer_types);
        // Records that fit the inference so far as written are only counted (rebuilt after
        // each record that may have changed it). Partition values change every record.
        let records = std::cell::RefCell::new(&mut self.records);
        let shape = std::cell::RefCell::new(None::<Shape>);
        // The shape before the last change, and whether every line fits the latest shape.
        let last = std::cell::RefCell::new(None::<Shape>);
        let use_settled = partition.is_empty() && opts.format == Format::Json;
        let all_fit = std::cell::Cell::new(self.all_fit && use_settled);
        let mut settled = |raw: &str, added: bool| {
            let mut shape = shape.borrow_mut();
            let mut records = records.borrow_mut();
            if shape.is_none() {
                *shape = records.exact_schema().map(|s| Shape::of_schema(&s, None));
                // What fitted before must still fit: the inference may only grow.
                if let (Some(old), Some(new)) = (last.borrow().as_ref(), shape.as_ref()) {
                    all_fit.set(all_fit.get() && old.within(new));
                }
            }
            let fits = shape.as_ref().is_some_and(|s| s.accepts(raw));
            if added {
                // A line that changed the inference (or did not parse) must fit it now.
                all_fit.set(all_fit.get() && fits);
                return false;
            }
            if fits {
                records.add_unchanged();
            }
            fits
        };
        let rescued = opts.rescued_column;
        let add = |mut record: serde_json::Map<String, Value>| {
            // The rescued data column is never made from data (its values are rescued), and
            // a partition column is spelled as configured (the record's other spelling is
            // rescued when decoded).
            if rescued.is_some() || !partition.is_empty() {
                record.retain(|k, _| {
                    !rescued.is_some_and(|r| same_column_name(r, k))
                        && !partition.keys().any(|p| p != k && same_column_name(p, k))
                });
            }
            record.extend(partition.clone());
            records.borrow_mut().add(&Value::Object(record));
            *last.borrow_mut() = shape.borrow_mut().take();
        };
        match opts.format {
            Format::Parquet | Format::Avro => {
                let columns = match opts.format {
                    Format::Avro => crate::avro::header_schema(path, data)?,
                    _ => parquet::footer_schema(path, data)?,
                };
                for field in columns.fields() {
                    if !rescued.is_some_and(|r| same_column_name(r, field.name())) {
                        add_column(&mut self.columns, field.as_ref().clone());
                    }
                }
                if !partition.is_empty() {
                    add(serde_json::Map::new());
                }
            }
            format => {
                // Lines that are not UTF-8 are blanked here (decoding reports them).
                let (text, bad) = match std::str::from_utf8(data) {
                    Ok(text) => (std::borrow::Cow::Borrowed(text), Vec::new()),
                    Err(_) => utf8_lines(valid_prefix(data)),
                };
                if !bad.is_empty() {
                    all_fit.set(false);
                }
                let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
                match format {
                    Format::Csv => {
                        csv::sample(text, opts.csv, opts.infer_types, usize::MAX, add);
                    }
                    Format::Text => {
                        text::sample(text, usize::MAX, add);
                    }
                    _ => {
                        let settled: Option<json::Settled<'_>> = if use_settled {
                            Some(&mut settled)
                        } else {
                            None
                        };
                        if opts.multiline {
                            // A broken (or budget-cut) file is not known to fit.
                            if !crate::multiline::sample(text, opts, usize::MAX, settled, add) {
                                all_fit.set(false);
                            }
                        } else {
                            json::sample(text, opts, usize::MAX, settled, add);
                        }
                    }
                }
            }
        }
        // False for every format but JSON lines from the start (`use_settled`).
        self.all_fit = all_fit.get();
        self.files += 1;
        Ok(())
    }

    /// For a sample of one whole JSON-lines file: the schema every line of it fits as
    /// written, when that holds. Decoding the file against a schema this fits within
    /// (`fits_within`) can skip the fast path's check of each line (`DecodeOptions`).
    pub fn fitted(&self) -> Option<Schema> {
        (self.files == 1 && self.all_fit)
            .then(|| self.records.exact_schema())
            .flatten()
    }

    /// The inference so far with `Null` where only nulls were seen: a JSON line that fits
    /// it as written (`Shape::accepts`) cannot change [`Self::schema`], now or after any
    /// later file. `None` once Parquet or Avro columns joined, or when types are not inferred.
    pub fn exact_schema(&self) -> Option<Schema> {
        if !self.columns.is_empty() {
            return None;
        }
        self.records.exact_schema()
    }

    /// Counts a whole file of `records` lines taken without sampling them, each of which
    /// fits an [`Self::exact_schema`] of this sample's as written.
    pub fn add_settled(&mut self, records: u64) {
        for _ in 0..records {
            self.records.add_unchanged();
        }
        self.files += 1;
    }

    /// Folds in the sample of later files (sampled apart, in parallel).
    pub fn merge(&mut self, other: SchemaSample) {
        self.records.merge(other.records);
        for field in other.columns {
            add_column(&mut self.columns, field);
        }
        self.files += other.files;
        self.all_fit &= other.all_fit;
    }

    /// Files added.
    pub fn files(&self) -> usize {
        self.files
    }

    /// The inferred schema: Parquet columns first, in file order, then the inferred ones.
    pub fn schema(&self) -> Schema {
        let inferred = self.records.schema();
        let extra: Vec<Field> = inferred
            .fields()
            .iter()
            .filter(|f| {
                !self
                    .columns
                    .iter()
                    .any(|c| same_column_name(c.name(), f.name()))
            })
            .map(|f| f.as_ref().clone())
            .collect();
        inlet_schema::with_columns(&Schema::new(self.columns.clone()), &extra)
    }
}

/// Adds a Parquet column by name (in any case: the first spelling is the column's): BIGINT
/// and DOUBLE in different files make DOUBLE, as JSON does; other differences keep the first
/// file's type.
fn add_column(columns: &mut Vec<Field>, field: Field) {
    match columns
        .iter_mut()
        .find(|c| same_column_name(c.name(), field.name()))
    {
        Some(c) if c.data_type() == &DataType::Int64 && field.data_type() == &DataType::Float64 => {
            *c = Field::new(c.name(), DataType::Float64, true)
        }
        Some(_) => {}
        None => columns.push(field),
    }
}

/// `data` up to its last complete UTF-8 character (a byte budget may cut one in half).
fn valid_prefix(data: &[u8]) -> &[u8] {
    match std::str::from_utf8(data) {
        Ok(_) => data,
        Err(e) if e.error_len().is_none() => &data[..e.valid_up_to()],
        Err(_) => data,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CsvOptions;
    use inlet_schema::EvolutionMode;

    fn opts(csv: &CsvOptions) -> DecodeOptions<'_> {
        DecodeOptions {
            csv,
            rescued_column: None,
            ..crate::testing::options(Format::Json, EvolutionMode::AddNewColumns)
        }
    }

    #[test]
    fn records_skipped_as_settled_never_change_the_inferred_schema() {
        // Each later line either fits what came before (skipped) or widens it.
        let lines = [
            r#"{"a": 1, "b": null, "c": "x", "n": {"k": 1}, "l": []}"#,
            r#"{"a": 2, "b": null, "c": "y", "n": {"k": 2}, "l": []}"#,
            r#"{"a": 2.5, "b": "now text", "c": "z"}"#,
            r#"{"a": 3, "c": 4, "n": {"k": 1.5, "j": true}, "l": [1]}"#,
            r#"{"a": 4, "b": "t", "l": [2.5]}"#,
        ];
        let text = lines.join("\n");
        let csv = CsvOptions::default();
        let mut sample = SchemaSample::new(true);
        sample
            .add("f.json", &Bytes::from(text.clone()), &opts(&csv))
            .expect("sample");
        let mut full = JsonInference::new();
        for line in lines {
            full.add(&serde_json::from_str(line).expect("json"));
        }
        assert_eq!(sample.schema(), full.schema());
        let a = sample.schema();
        assert_eq!(
            a.field_with_name("a").expect("a").data_type(),
            &DataType::Float64
        );
        assert_eq!(
            a.field_with_name("c").expect("c").data_type(),
            &DataType::Utf8
        );
        // Sampled apart and merged, the files give the same schema.
        let (first, second) = text.split_at(text.find("\n{\"a\": 2.5").expect("split"));
        let mut merged = SchemaSample::new(true);
        for part in [first, second] {
            let mut s = SchemaSample::new(true);
            s.add("f.json", &Bytes::from(part.to_string()), &opts(&csv))
                .expect("sample");
            merged.merge(s);
        }
        assert_eq!(merged.schema(), full.schema());
    }

    /// Keys and values (JSON text) the random records of the sample's tests are made of.
    const KEYS: [&str; 5] = ["a", "b", "c", "A", "n"];
    const VALUES: &[&str] = &[
        "1",
        "2.5",
        "\"x\"",
        "true",
        "null",
        "[]",
        "[1]",
        "[\"s\"]",
        "{\"k\":1}",
        "{\"k\":\"v\",\"j\":null}",
        "{}",
        "18446744073709551615",
    ];

    #[test]
    fn files_counted_as_settled_leave_the_schema_as_sampling_them_would() {
        // A file every line of which fits the first file's exact inference, counted instead of
        // sampled, whatever the other files bring and in whichever order they merge.
        let (keys, values) = (KEYS, VALUES);
        let csv = CsvOptions::default();
        let sampled = |text: &str| {
            let mut s = SchemaSample::new(true);
            s.add("f.json", &Bytes::from(text.to_string()), &opts(&csv))
                .expect("sample");
            s
        };
        let mut settled_files = 0;
        for round in 0..60 {
            let lines = crate::testing::random_records(0x51ed_2701 + round, &keys, values, 4, 80);
            let first = lines[..20].join("\n");
            let exact = sampled(&first).exact_schema().expect("types inferred");
            let shape = Shape::of_schema(&exact, None);
            let (fit, other): (Vec<_>, Vec<_>) =
                lines[20..].iter().cloned().partition(|l| shape.accepts(l));
            if fit.is_empty() {
                continue;
            }
            settled_files += 1;
            let (fit, other) = (fit.join("\n"), other.join("\n"));
            for fit_first in [true, false] {
                let mut whole = sampled(&first);
                let mut counted = sampled(&first);
                let rest = |s: &mut SchemaSample| s.merge(sampled(&other));
                if !fit_first {
                    rest(&mut whole);
                    rest(&mut counted);
                }
                whole.merge(sampled(&fit));
                counted.add_settled(fit.lines().count() as u64);
                if fit_first {
                    rest(&mut whole);
                    rest(&mut counted);
                }
                assert_eq!(counted.schema(), whole.schema(), "round {round}");
                assert_eq!(counted.files(), whole.files());
            }
        }
        assert!(
            settled_files > 20,
            "{settled_files} rounds had fitting lines"
        );
    }

    #[test]
    fn settled_inference_agrees_with_full_inference_on_random_records() {
        let (keys, values) = (KEYS, VALUES);
        let csv = CsvOptions::default();
        for round in 0..50 {
            let lines =
                crate::testing::random_records(0x9e37_79b9_7f4a_7c15 + round, &keys, values, 4, 40);
            let mut sample = SchemaSample::new(true);
            sample
                .add("f.json", &Bytes::from(lines.join("\n")), &opts(&csv))
                .expect("sample");
            let mut full = JsonInference::new();
            for line in &lines {
                full.add(&serde_json::from_str(line).expect("json"));
            }
            assert_eq!(sample.schema(), full.schema(), "{lines:#?}");
        }
    }

    #[test]
    fn a_file_known_to_fit_decodes_as_if_every_line_were_checked() {
        let csv = CsvOptions::default();
        let keys = ["i", "f", "s", "b", "l", "n"];
        let values = [
            "1",
            "-7",
            "2.5",
            "\"x\"",
            "\"3\"",
            "true",
            "null",
            "[1,2]",
            "[\"a\"]",
            "[]",
            "{\"k\":\"a\"}",
            "{\"k\":1}",
            "{}",
            "9223372036854775808",
        ];
        let records = crate::testing::random_records(0x5eed, &keys, &values, 4, 3000);
        let (mut fitted_files, mut other_files) = (0, 0);
        // Files of 1 to 8 records: small enough that many keep one type per key.
        let mut at = 0;
        let mut size = 1;
        while at < records.len() {
            let end = (at + size).min(records.len());
            let text = records[at..end].join("\n");
            (at, size) = (end, size % 8 + 1);
            let mut sample = SchemaSample::new(true);
            let data = Bytes::from(text.clone());
            sample.add("f.json", &data, &opts(&csv)).expect("sample");
            let Some(fitted) = sample.fitted() else {
                other_files += 1;
                continue;
            };
            fitted_files += 1;
            // Decoded against what the table would start with (nulls become strings) and
            // with a rescued column: with and without the check, the same result.
            let mut fields: Vec<arrow::datatypes::Field> = sample
                .schema()
                .fields()
                .iter()
                .map(|f| f.as_ref().clone())
                .collect();
            fields.push(arrow::datatypes::Field::new(
                "_rescued_data",
                DataType::Utf8,
                true,
            ));
            let schema = std::sync::Arc::new(Schema::new(fields));
            assert!(
                crate::fits_within(&fitted, &schema, Some("_rescued_data")),
                "{text}"
            );
            let checked = DecodeOptions {
                rescued_column: Some("_rescued_data"),
                ..opts(&csv)
            };
            let trusted = DecodeOptions {
                known_to_fit: true,
                ..checked
            };
            let rows = |o: &DecodeOptions<'_>| match crate::decode("f.json", &data, &schema, o) {
                Ok(crate::Decoded::Rows {
                    batches,
                    rescued_rows,
                    bad_records,
                    ..
                }) => (batches, rescued_rows, bad_records.len()),
                other => panic!("{text}: {other:?}"),
            };
            assert_eq!(rows(&checked), rows(&trusted), "{text}");
        }
        assert!(
            fitted_files > 50 && other_files > 50,
            "{fitted_files} fitted, {other_files} not"
        );
    }

    #[test]
    fn a_file_is_not_known_to_fit_after_a_type_changed_or_a_line_failed() {
        let csv = CsvOptions::default();
        let fitted = |text: &str| {
            let mut sample = SchemaSample::new(true);
            sample
                .add("f.json", &Bytes::from(text.to_string()), &opts(&csv))
                .expect("sample");
            sample.fitted()
        };
        assert!(fitted("{\"a\": 1}\n{\"a\": 2.5, \"b\": null}\n{\"c\": [1]}").is_some());
        for text in [
            "{\"a\": 1}\n{\"a\": \"x\"}", // a number, then text: the first line no longer fits
            "{\"a\": 1}\n{\"a\": 2",      // a broken line
            "{\"a\": 1}\n[1]",            // not an object
            "{\"a\": 1}{\"a\": 2}",       // two objects on a line
            "{\"a\": 1, \"a\": 2}",       // a key twice
        ] {
            assert!(fitted(text).is_none(), "{text}");
        }
        let a_int = Schema::new(vec![arrow::datatypes::Field::new(
            "a",
            DataType::Int64,
            true,
        )]);
        let a_text = Schema::new(vec![arrow::datatypes::Field::new(
            "a",
            DataType::Utf8,
            true,
        )]);
        assert!(
            !crate::fits_within(&a_int, &a_text, None),
            "a hint that makes a column text"
        );
        assert!(
            !crate::fits_within(&a_int, &Schema::empty(), None),
            "a column the schema lacks"
        );
    }

    fn with_rescued(sample: &SchemaSample) -> std::sync::Arc<Schema> {
        std::sync::Arc::new(inlet_schema::with_rescued_column(
            &sample.schema(),
            Some("_rescued_data"),
        ))
    }

    /// The rescued data column of `text` decoded against `schema`, row by row.
    fn rescued_of(
        path: &str,
        text: &str,
        schema: &std::sync::Arc<Schema>,
        csv: &CsvOptions,
    ) -> Vec<Option<String>> {
        let o = DecodeOptions {
            rescued_column: Some("_rescued_data"),
            mode: EvolutionMode::Rescue,
            ..opts(csv)
        };
        match crate::decode(path, &Bytes::from(text.to_string()), schema, &o).expect("decode") {
            crate::Decoded::Rows { batches, .. } => batches
                .iter()
                .flat_map(|b| {
                    let c = b.column_by_name("_rescued_data").expect("rescued");
                    let c = c
                        .as_any()
                        .downcast_ref::<arrow::array::StringArray>()
                        .expect("text");
                    c.iter().map(|v| v.map(str::to_string)).collect::<Vec<_>>()
                })
                .collect(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn names_equal_but_for_unicode_case_make_one_column() {
        let csv = CsvOptions::default();
        // Sampled apart (in parallel) and merged in file order.
        let mut merged = SchemaSample::new(true);
        for (path, text) in [("1.json", "{\"Qq\":1}"), ("2.json", "{\"qQ\":2}")] {
            let mut s = SchemaSample::new(true);
            s.add(path, &Bytes::from(text), &opts(&csv))
                .expect("sample");
            merged.merge(s);
        }
        assert_eq!(
            merged.schema(),
            Schema::new(vec![Field::new("Qq", DataType::Int64, true)])
        );
        let schema = with_rescued(&merged);
        assert_eq!(
            rescued_of("2.json", "{\"qQ\":2}", &schema, &csv),
            vec![Some("{\"_file_path\":\"2.json\",\"qQ\":2}".into())]
        );
        // In one file, and in a nested object.
        let text = "{\"Äx\":1,\"äx\":2}\n{\"s\":{\"Ab\":1,\"aB\":2}}\n{\"s\":{\"Ab\":3}}";
        let mut sample = SchemaSample::new(true);
        sample
            .add("f.json", &Bytes::from(text), &opts(&csv))
            .expect("sample");
        let ab = DataType::Struct(vec![Field::new("Ab", DataType::Int64, true)].into());
        assert_eq!(
            sample.schema(),
            Schema::new(vec![
                Field::new("Äx", DataType::Int64, true),
                Field::new("s", ab, true),
            ])
        );
        assert_eq!(sample.fitted(), None, "the case variants need fitting");
        assert_eq!(
            rescued_of("f.json", text, &with_rescued(&sample), &csv),
            vec![
                Some("{\"_file_path\":\"f.json\",\"äx\":2}".into()),
                Some("{\"_file_path\":\"f.json\",\"s\":{\"Ab\":1,\"aB\":2}}".into()),
                None,
            ]
        );
    }

    #[test]
    fn a_partition_column_keeps_its_configured_spelling() {
        let csv = CsvOptions::default();
        let partition = ["day".to_string()];
        let o = DecodeOptions {
            partition_columns: &partition,
            ..opts(&csv)
        };
        let text = "{\"DAY\":\"x\",\"a\":1}";
        let mut sample = SchemaSample::new(true);
        sample
            .add("s3://b/DAY=2/f.json", &Bytes::from(text), &o)
            .expect("sample");
        assert_eq!(
            sample.schema(),
            Schema::new(vec![
                Field::new("a", DataType::Int64, true),
                Field::new("day", DataType::Int64, true),
            ])
        );
        // Decoded, the row takes the path's value and the record's own is rescued.
        let schema = with_rescued(&sample);
        let o = DecodeOptions {
            rescued_column: Some("_rescued_data"),
            ..o
        };
        let data = Bytes::from(text);
        let crate::Decoded::Rows { batches, .. } =
            crate::decode("s3://b/DAY=2/f.json", &data, &schema, &o).expect("decode")
        else {
            panic!("rows");
        };
        let day = batches[0].column(1);
        let day = day
            .as_any()
            .downcast_ref::<arrow::array::Int64Array>()
            .expect("ints");
        let rescued = batches[0].column(2);
        let rescued = rescued
            .as_any()
            .downcast_ref::<arrow::array::StringArray>()
            .expect("text");
        assert_eq!(
            (day.value(0), rescued.value(0)),
            (2, "{\"DAY\":\"x\",\"_file_path\":\"s3://b/DAY=2/f.json\"}")
        );
    }

    #[test]
    fn lines_are_sampled_as_they_decode() {
        let csv = CsvOptions::default();
        let text = "{\"a\":1} 5 {\"b\":2}\n[{\"c\":1},{\"c\":2.5}]\n[{\"d\":1}, 5]\n1 2 3\n{\"e\":true}{\"f\":\"x\"}";
        let mut sample = SchemaSample::new(true);
        sample
            .add("f.json", &Bytes::from(text), &opts(&csv))
            .expect("sample");
        let names: Vec<(String, DataType)> = sample
            .schema()
            .fields()
            .iter()
            .map(|f| (f.name().clone(), f.data_type().clone()))
            .collect();
        assert_eq!(
            names,
            vec![
                ("a".into(), DataType::Int64),
                ("c".into(), DataType::Float64),
                ("e".into(), DataType::Boolean),
                ("f".into(), DataType::Utf8),
            ]
        );
        assert_eq!(sample.fitted(), None);
    }
}
