//! The sample the first schema is inferred from: records of the row formats widened
//! together, Parquet footers merged by name, partition values from each file's path.

use arrow::datatypes::{DataType, Field, Schema};
use bytes::Bytes;
use inlet_schema::JsonInference;
use serde_json::Value;

use crate::clean::Shape;
use crate::{csv, json, parquet, partition, text, DecodeOptions, Format, FormatError};

/// Accumulates sampled files; `schema()` is what the table starts with.
#[derive(Debug)]
pub struct SchemaSample {
    records: JsonInference,
    /// Parquet columns, in the order first seen.
    columns: Vec<Field>,
    files: usize,
}

impl SchemaSample {
    pub fn new(infer_types: bool) -> Self {
        Self {
            records: JsonInference::new().infer_types(infer_types),
            columns: Vec::new(),
            files: 0,
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
        let mut settled = |raw: &str| {
            let mut shape = shape.borrow_mut();
            let mut records = records.borrow_mut();
            if shape.is_none() {
                *shape = records.exact_schema().map(|s| Shape::of_schema(&s, None));
            }
            let fits = shape.as_ref().is_some_and(|s| s.accepts(raw));
            if fits {
                records.add_unchanged();
            }
            fits
        };
        let use_settled = partition.is_empty() && opts.format == Format::Json;
        let add = |mut record: serde_json::Map<String, Value>| {
            record.extend(partition.clone());
            records.borrow_mut().add(&Value::Object(record));
            *shape.borrow_mut() = None;
        };
        match opts.format {
            Format::Parquet => {
                for field in parquet::footer_schema(path, data)?.fields() {
                    add_column(&mut self.columns, field.as_ref().clone());
                }
                if !partition.is_empty() {
                    add(serde_json::Map::new());
                }
            }
            format => {
                // Lines that are not UTF-8 are blanked here (decoding reports them).
                let (text, _) = crate::utf8_lines(valid_prefix(data));
                let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
                match format {
                    Format::Csv => {
                        csv::sample(text, opts.csv, opts.infer_types, usize::MAX, add);
                    }
                    Format::Text => {
                        text::sample(text, usize::MAX, add);
                    }
                    _ => {
                        let settled: Option<&mut dyn FnMut(&str) -> bool> = if use_settled {
                            Some(&mut settled)
                        } else {
                            None
                        };
                        json::sample(text, format, opts.numbers, usize::MAX, settled, add);
                    }
                }
            }
        }
        self.files += 1;
        Ok(())
    }

    /// Folds in the sample of later files (sampled apart, in parallel).
    pub fn merge(&mut self, other: SchemaSample) {
        self.records.merge(other.records);
        for field in other.columns {
            add_column(&mut self.columns, field);
        }
        self.files += other.files;
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
            .filter(|f| !self.columns.iter().any(|c| c.name() == f.name()))
            .map(|f| f.as_ref().clone())
            .collect();
        inlet_schema::with_columns(&Schema::new(self.columns.clone()), &extra)
    }
}

/// Adds a Parquet column by name: BIGINT and DOUBLE in different files make DOUBLE, as JSON
/// does; other differences keep the first file's type.
fn add_column(columns: &mut Vec<Field>, field: Field) {
    match columns.iter_mut().find(|c| c.name() == field.name()) {
        Some(c) if c.data_type() == &DataType::Int64 && field.data_type() == &DataType::Float64 => {
            *c = field
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
    use crate::{CsvOptions, NumberMode};
    use inlet_schema::EvolutionMode;

    fn opts(csv: &CsvOptions) -> DecodeOptions<'_> {
        DecodeOptions {
            format: Format::Json,
            numbers: NumberMode::Auto,
            csv,
            mode: EvolutionMode::AddNewColumns,
            rescued_column: None,
            infer_types: true,
            hints: &[],
            partition_columns: &[],
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

    #[test]
    fn settled_inference_agrees_with_full_inference_on_random_records() {
        let keys = ["a", "b", "c", "A", "n"];
        let values = [
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
        let csv = CsvOptions::default();
        for round in 0..50 {
            let lines = crate::testing::random_records(
                0x9e37_79b9_7f4a_7c15 + round,
                &keys,
                &values,
                4,
                40,
            );
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
}
