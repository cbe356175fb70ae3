//! The one entry point from a decompressed file to record batches: Parquet by its columns,
//! every other format as text, line by line, through the record fitter.

use std::borrow::Cow;

use arrow::datatypes::SchemaRef;
use bytes::Bytes;

use crate::decoded::{clip_raw, BadRecord, Decoded};
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
