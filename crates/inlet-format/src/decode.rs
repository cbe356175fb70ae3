//! The one entry point from a decompressed file to record batches: Parquet by its columns,
//! every other format as text, line by line, through the record fitter.

use std::borrow::Cow;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use bytes::Bytes;

use crate::decoded::{clip_raw, BadRecord, Decoded, BATCH_ROWS};
use crate::direct::Direct;
use crate::error::FormatError;
use crate::fit::Fitter;
use crate::options::{DecodeOptions, Format};
use crate::{csv, json, parquet, text};

/// Decodes `data` (the decompressed file at `path`) into record batches of `schema`, which
/// includes the rescued data column when one is configured.
pub fn decode(
    path: &str,
    data: &Bytes,
    schema: &SchemaRef,
    opts: &DecodeOptions<'_>,
) -> Result<Decoded, FormatError> {
    match opts.format {
        Format::Parquet => parquet::decode(path, data, schema, opts),
        Format::Avro => crate::avro::decode(path, data, schema, opts),
        format => {
            let (text, not_utf8) = utf8_lines(data);
            if crate::multiline::applies(opts) && !not_utf8.is_empty() {
                return Err(crate::multiline::not_utf8(path, &not_utf8));
            }
            let text = text.as_ref();
            let body = text.strip_prefix('\u{feff}').unwrap_or(text);
            let mut fitter = Fitter::new(path, schema, opts);
            // Bad records give byte offsets into the file as stored, BOM included.
            fitter.base_offset = text.len() - body.len();
            match format {
                Format::Csv => csv::feed(body, opts.csv, schema, opts.infer_types, &mut fitter),
                Format::Text => text::feed(body, &mut fitter),
                _ if opts.multiline => crate::multiline::feed(body, opts, &mut fitter),
                _ => json::feed(body, opts, &mut fitter),
            }
            let mut decoded = fitter.finish()?;
            if let Decoded::Rows { bad_records, .. } = &mut decoded {
                if !not_utf8.is_empty() {
                    bad_records.extend(not_utf8);
                    bad_records.sort_by_key(|b| b.line);
                }
            }
            Ok(decoded)
        }
    }
}

/// A JSON-lines file of which every line fits `schema` as written (what `Shape::accepts`
/// takes), decoded in one pass into the rows [`decode`] makes of it, with their count.
/// `None` when any line does not fit, the file is not UTF-8 text or holds no line, or
/// `schema` has a type the one pass does not build: decode such a file with [`decode`].
/// A table's first batch writes files with it while its schema is still being inferred.
pub fn decode_as_written(
    data: &[u8],
    schema: &SchemaRef,
    rescued_column: Option<&str>,
) -> Option<(Vec<RecordBatch>, u64)> {
    let text = std::str::from_utf8(data).ok()?;
    let body = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut direct = Direct::new(schema, rescued_column)?;
    let (mut batches, mut rows) = (Vec::new(), 0u64);
    for at in json::lines(body) {
        if !direct.push(at.raw) {
            return None;
        }
        rows += 1;
        if direct.len() >= BATCH_ROWS {
            batches.extend(direct.flush().ok()?);
        }
    }
    batches.extend(direct.flush().ok()?);
    (rows > 0).then_some((batches, rows))
}

/// The file as text. Lines that are not UTF-8 become bad records, and their bytes spaces
/// (so the line is blank, skipped, and every other line keeps its byte offset); the rest
/// of the file is read as usual.
pub(crate) fn utf8_lines(data: &[u8]) -> (Cow<'_, str>, Vec<BadRecord>) {
    if let Ok(text) = std::str::from_utf8(data) {
        return (Cow::Borrowed(text), Vec::new());
    }
    let mut blanked = data.to_vec();
    let mut bad = Vec::new();
    let mut start = 0;
    for (i, line) in data.split(|b| *b == b'\n').enumerate() {
        if let Err(e) = std::str::from_utf8(line) {
            bad.push(BadRecord {
                line: i as u64 + 1,
                byte_offset: start as u64,
                error: format!(
                    "line is not UTF-8 text (invalid byte at column {})",
                    e.valid_up_to() + 1
                ),
                raw: clip_raw(&String::from_utf8_lossy(line)),
            });
            blanked[start..start + line.len()].fill(b' ');
        }
        start += line.len() + 1;
    }
    // Every invalid line is now spaces, so the rest is UTF-8.
    let text = String::from_utf8(blanked)
        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
    (Cow::Owned(text), bad)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shape::Shape;
    use crate::testing::{
        mixed_schema, options, random_records, with_mutations, MIXED_KEYS, MIXED_VALUES, RESCUED,
    };
    use arrow::datatypes::{DataType, Field, Schema};
    use inlet_schema::EvolutionMode;
    use std::sync::Arc;

    fn one_batch(schema: &SchemaRef, batches: &[RecordBatch]) -> RecordBatch {
        arrow::compute::concat_batches(schema, batches).expect("concat")
    }

    #[test]
    fn a_file_that_fits_as_written_decodes_in_one_pass_into_what_decode_makes() {
        let mut fields = mixed_schema().fields().to_vec();
        fields.push(Arc::new(Field::new(RESCUED, DataType::Utf8, true)));
        let schema = Arc::new(Schema::new(fields));
        let shape = Shape::of_schema(&schema, Some(RESCUED));
        let records = with_mutations(random_records(23, &MIXED_KEYS, &MIXED_VALUES, 6, 6_000));
        let (fitting, mut other): (Vec<_>, Vec<_>) =
            records.into_iter().partition(|r| shape.accepts(r));
        // A line of its own (blank lines are skipped by both).
        other.retain(|r| !r.trim().is_empty() && !r.contains(['\n', '\r']));
        assert!(fitting.len() > 1_000 && other.len() > 1_000, "both kinds");
        let opts = options(Format::Json, EvolutionMode::AddNewColumns);
        let (mut taken, mut refused) = (0, 0);
        let mut next = 0;
        for round in 0..24 {
            // Past one batch of rows too; CRLF, a BOM, blank lines; some with one line that
            // does not fit somewhere in it.
            let len = [1, 7, 300, BATCH_ROWS + 5][round % 4];
            let mut lines: Vec<String> = (0..len)
                .map(|i| fitting[(next + i) % fitting.len()].clone())
                .collect();
            next += len;
            let spoilt = round % 3 == 2;
            if spoilt {
                lines.insert((round * 7919) % (len + 1), other[round].clone());
            }
            let mut text = lines.join(if round % 2 == 0 { "\n" } else { "\r\n" });
            if round % 5 == 1 {
                text = format!("\u{feff}\n  \n{text}\n\n");
            }
            let got = decode_as_written(text.as_bytes(), &schema, Some(RESCUED));
            if spoilt {
                assert!(
                    got.is_none(),
                    "round {round}: a line that does not fit was taken"
                );
                refused += 1;
                continue;
            }
            let (batches, rows) = got.expect("every line fits");
            assert_eq!(rows, len as u64);
            assert!(batches.iter().all(|b| b.num_rows() <= BATCH_ROWS));
            let Ok(Decoded::Rows {
                batches: want,
                rows: want_rows,
                rescued_rows: 0,
                bad_records,
                duplicates: 0,
            }) = decode("f.json", &Bytes::from(text), &schema, &opts)
            else {
                panic!("round {round}: decode made something else of a fitting file");
            };
            assert!(bad_records.is_empty());
            assert_eq!(want_rows, rows);
            assert_eq!(one_batch(&schema, &batches), one_batch(&schema, &want));
            taken += 1;
        }
        assert_eq!((taken, refused), (16, 8));
    }

    #[test]
    fn files_not_taken_in_one_pass_are_left_to_decode() {
        let schema = crate::testing::schema(&[("a", DataType::Int64)]);
        let none = |data: &[u8]| decode_as_written(data, &schema, Some(RESCUED)).is_none();
        assert!(none(b""), "no line");
        assert!(none(b"\n \r\n"), "blank lines only");
        assert!(none(b"{\"a\":1}\n{\"a\":\"\xff\"}\n"), "not UTF-8");
        assert!(none(b"{\"a\":1} {\"a\":2}\n"), "two records on a line");
        assert!(none(b"{\"a\":1}\n{\"b\":2}\n"), "a new column");
        let ts = Arc::new(Schema::new(vec![Field::new(
            "t",
            DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, None),
            true,
        )]));
        assert!(
            decode_as_written(b"{}\n", &ts, None).is_none(),
            "not built in one pass"
        );
        assert!(!none(b"{\"a\":1}\n{}\n"));
    }
}
