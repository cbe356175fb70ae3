//! CSV (and any delimited text): header or positional `_c<N>` names, quoted fields that span
//! lines, a null marker; a row with the wrong number of fields becomes a bad record.

use arrow::datatypes::SchemaRef;
use serde_json::{Map, Value};

use crate::fit::{Fitter, Origin};
use crate::options::CsvOptions;
use crate::typed_text::typed_text;

/// Reading a file with these options (the options themselves, and their checks, are in
/// `options.rs`).
impl CsvOptions {
    fn reader<'d>(&self, text: &'d str) -> csv::Reader<&'d [u8]> {
        let byte = |s: &str| s.as_bytes().first().copied();
        let mut builder = csv::ReaderBuilder::new();
        builder
            .has_headers(false)
            .flexible(true)
            .delimiter(byte(&self.delimiter).unwrap_or(b','))
            .quote(byte(&self.quote).unwrap_or(b'"'))
            .escape(byte(&self.escape))
            .double_quote(self.escape.is_empty())
            .comment(byte(&self.comment));
        builder.from_reader(text.as_bytes())
    }

    /// Column names: the header's (blank or repeated names become `_c<N>`), or `_c<N>`.
    fn names(&self, first: Option<&csv::StringRecord>, width: usize) -> Vec<String> {
        let positional = |i: usize| format!("_c{i}");
        match first {
            Some(header) if self.header => {
                let mut seen = std::collections::HashSet::new();
                header
                    .iter()
                    .enumerate()
                    .map(|(i, name)| {
                        let name = name.trim();
                        if name.is_empty() || !seen.insert(name.to_string()) {
                            positional(i)
                        } else {
                            name.to_string()
                        }
                    })
                    .collect()
            }
            _ => (0..width).map(positional).collect(),
        }
    }
}

/// Each record of `text` with where it was read; `Err` for input the reader rejects.
fn records<'d>(
    text: &'d str,
    options: &CsvOptions,
) -> impl Iterator<Item = (Result<csv::StringRecord, String>, Origin<'d>)> + 'd {
    let mut reader = options.reader(text);
    std::iter::from_fn(move || {
        let start = reader.position().clone();
        let mut record = csv::StringRecord::new();
        let read = reader.read_record(&mut record);
        let end = (reader.position().byte() as usize).min(text.len());
        let begin = (start.byte() as usize).min(end);
        let raw = text
            .get(begin..end)
            .unwrap_or_default()
            .trim_end_matches(['\n', '\r']);
        let at = Origin {
            line: start.line(),
            offset: begin,
            raw,
        };
        match read {
            Ok(true) => Some((Ok(record), at)),
            Ok(false) => None,
            // The reader is past the bad input: report it and go on.
            Err(e) if end > begin => Some((Err(e.to_string()), at)),
            Err(_) => None,
        }
    })
    .filter(|(r, at)| r.is_err() || !at.raw.trim().is_empty())
}

/// Feeds every row of `text` to `fitter`, typed for `schema`'s columns.
pub(crate) fn feed(
    text: &str,
    options: &CsvOptions,
    schema: &SchemaRef,
    infer: bool,
    fitter: &mut Fitter<'_>,
) {
    let mut names: Option<Vec<String>> = None;
    for (record, at) in records(text, options) {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                fitter.bad(at, format!("malformed CSV: {e}"));
                continue;
            }
        };
        let Some(cols) = &names else {
            let cols = options.names(Some(&record), record.len());
            let is_header = options.header;
            names = Some(cols);
            if is_header {
                continue;
            }
            row(
                &record,
                names.as_deref().unwrap_or_default(),
                options,
                schema,
                infer,
                at,
                fitter,
            );
            continue;
        };
        row(&record, cols, options, schema, infer, at, fitter);
    }
}

fn row(
    record: &csv::StringRecord,
    names: &[String],
    options: &CsvOptions,
    schema: &SchemaRef,
    infer: bool,
    at: Origin<'_>,
    fitter: &mut Fitter<'_>,
) {
    if record.len() != names.len() {
        fitter.bad(
            at,
            format!(
                "malformed CSV: {} field(s) where the header has {}",
                record.len(),
                names.len()
            ),
        );
        return;
    }
    fitter.record(to_map(record, names, options, schema, infer), at);
}

fn to_map(
    record: &csv::StringRecord,
    names: &[String],
    options: &CsvOptions,
    schema: &SchemaRef,
    infer: bool,
) -> Map<String, Value> {
    names
        .iter()
        .zip(record.iter())
        .map(|(name, field)| {
            let value = if field == options.null_value {
                Value::Null
            } else {
                let column = schema.field_with_name(name).ok().map(|f| f.data_type());
                typed_text(field, column, infer)
            };
            (name.clone(), value)
        })
        .collect()
}

/// Rows of `text` (up to `max_records`), typed by inference, for the first schema.
pub(crate) fn sample(
    text: &str,
    options: &CsvOptions,
    infer: bool,
    max_records: usize,
    mut add: impl FnMut(Map<String, Value>),
) -> usize {
    let empty: SchemaRef = std::sync::Arc::new(arrow::datatypes::Schema::empty());
    let mut names: Option<Vec<String>> = None;
    let mut n = 0;
    for (record, _) in records(text, options) {
        let Ok(record) = record else { continue };
        match &names {
            None => {
                names = Some(options.names(Some(&record), record.len()));
                if options.header {
                    continue;
                }
            }
            Some(cols) if cols.len() != record.len() => continue,
            Some(_) => {}
        }
        if n >= max_records {
            break;
        }
        add(to_map(
            &record,
            names.as_deref().unwrap_or_default(),
            options,
            &empty,
            infer,
        ));
        n += 1;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{decode, DecodeOptions, Decoded, Format};
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{DataType, Field, Int64Type, Schema};
    use bytes::Bytes;
    use inlet_schema::EvolutionMode;
    use std::sync::Arc;

    fn opts(csv: &CsvOptions) -> DecodeOptions<'_> {
        DecodeOptions {
            csv,
            ..crate::testing::options(Format::Csv, EvolutionMode::AddNewColumns)
        }
    }

    #[test]
    fn quoted_newlines_nulls_and_malformed_rows() {
        let csv = CsvOptions::default();
        let text = "id,note,n\n1,\"two\nlines, and \"\"quotes\"\"\",5\n2,,x\n3,too,many,fields\n4,plain,7\n";
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("n", DataType::Int64, true),
            Field::new("note", DataType::Utf8, true),
            Field::new("_rescued_data", DataType::Utf8, true),
        ]));
        let Decoded::Rows {
            batches,
            rows,
            rescued_rows,
            bad_records,
            ..
        } = decode("f.csv", &Bytes::from(text), &schema, &opts(&csv)).expect("decode")
        else {
            panic!("new columns")
        };
        assert_eq!((rows, rescued_rows), (3, 1));
        let b = &batches[0];
        assert_eq!(
            b.column(2).as_string::<i32>().value(0),
            "two\nlines, and \"quotes\""
        );
        assert!(b.column(2).is_null(1), "empty field is null");
        assert!(
            b.column(1).is_null(1)
                && b.column(3)
                    .as_string::<i32>()
                    .value(1)
                    .contains("\"n\":\"x\"")
        );
        assert_eq!(b.column(1).as_primitive::<Int64Type>().value(2), 7);
        assert_eq!(bad_records.len(), 1);
        assert_eq!(
            (bad_records[0].line, bad_records[0].raw.as_str()),
            (5, "3,too,many,fields")
        );
        assert!(
            bad_records[0]
                .error
                .contains("4 field(s) where the header has 3"),
            "{}",
            bad_records[0].error
        );
    }

    #[test]
    fn options_are_checked_and_headerless_files_get_positional_names() {
        let bad = CsvOptions {
            delimiter: "||".into(),
            ..CsvOptions::default()
        };
        assert_eq!(bad.validate().expect_err("two chars").0, "delimiter");
        let csv = CsvOptions {
            header: false,
            delimiter: ";".into(),
            escape: "\\".into(),
            ..CsvOptions::default()
        };
        csv.validate().expect("valid");
        let mut seen = Vec::new();
        sample("a;\"b\\\"c\";007\n", &csv, true, 10, |r| seen.push(r));
        assert_eq!(
            Value::Object(seen.remove(0)),
            serde_json::json!({"_c0": "a", "_c1": "b\"c", "_c2": "007"})
        );
    }
}
