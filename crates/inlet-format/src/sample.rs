//! The sample the first schema is inferred from: records of the row formats widened
//! together, Parquet footers merged by name, partition values from each file's path.

use arrow::datatypes::{DataType, Field, Schema};
use bytes::Bytes;
use inlet_schema::JsonInference;
use serde_json::Value;

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
    pub fn add(&mut self, path: &str, data: &Bytes, opts: &DecodeOptions<'_>) -> Result<(), FormatError> {
        let empty = std::sync::Arc::new(Schema::empty());
        let partition = partition::typed_values(path, opts.partition_columns, &empty, opts.infer_types);
        let mut add = |mut record: serde_json::Map<String, Value>| {
            record.extend(partition.clone());
            self.records.add(&Value::Object(record));
        };
        match opts.format {
            Format::Parquet => {
                for field in parquet::footer_schema(path, data)?.fields() {
                    match self.columns.iter_mut().find(|c| c.name() == field.name()) {
                        // BIGINT and DOUBLE in different files make DOUBLE, as JSON does.
                        Some(c) if c.data_type() == &DataType::Int64 && field.data_type() == &DataType::Float64 => {
                            *c = field.as_ref().clone();
                        }
                        Some(_) => {}
                        None => self.columns.push(field.as_ref().clone()),
                    }
                }
                if !partition.is_empty() {
                    add(serde_json::Map::new());
                }
            }
            format => {
                let text = crate::utf8_text(path, valid_prefix(data))?;
                match format {
                    Format::Csv => {
                        csv::sample(text, opts.csv, opts.infer_types, usize::MAX, add);
                    }
                    Format::Text => {
                        text::sample(text, usize::MAX, add);
                    }
                    _ => {
                        json::sample(text, format, opts.numbers, usize::MAX, add);
                    }
                }
            }
        }
        self.files += 1;
        Ok(())
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

/// `data` up to its last complete UTF-8 character (a byte budget may cut one in half).
fn valid_prefix(data: &[u8]) -> &[u8] {
    match std::str::from_utf8(data) {
        Ok(_) => data,
        Err(e) if e.error_len().is_none() => &data[..e.valid_up_to()],
        Err(_) => data,
    }
}
