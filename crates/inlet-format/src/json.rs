//! JSON lines (values concatenated on a line, arrays of records, DynamoDB records) as records
//! for the fitter and the schema sample, read by one walk so that the two agree.
//! Rules: a line's values are read in order; an object is a record, an array of objects one
//! per object. The first value that does not parse or is neither is the line's ONE bad record
//! (from it to the line's end); a record that fails alone is a bad record of its own text.

use std::cell::OnceCell;
use std::collections::HashSet;
use std::ops::Range;

use serde_json::{Map, Value};

use crate::dynamodb::{self, NumberMode};
use crate::dynamodb_change;
use crate::fit::{kind, Fitter, Origin};
use crate::options::{DecodeOptions, Format};

/// What the walk needs of the options: the format, and for DynamoDB records how numbers are
/// read and the time of the full export a file belongs to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Reading {
    pub format: Format,
    pub numbers: NumberMode,
    pub export_time_micros: Option<i64>,
}

impl Reading {
    pub fn of(opts: &DecodeOptions<'_>) -> Self {
        Self {
            format: opts.format,
            numbers: opts.numbers,
            export_time_micros: opts.export_time_micros,
        }
    }

    /// For inference: a full export item's time changes no column's type, so without the
    /// export's time its items are sampled at a stand-in time (decoding refuses them).
    pub fn for_sample(opts: &DecodeOptions<'_>) -> Self {
        Self {
            export_time_micros: opts.export_time_micros.or(Some(0)),
            ..Self::of(opts)
        }
    }
}

/// Feeds every record of `text` to `fitter`.
pub(crate) fn feed(text: &str, opts: &DecodeOptions<'_>, fitter: &mut Fitter<'_>) {
    feed_from(lines(text), Reading::of(opts), fitter, true);
}

/// Feeds the records of each piece of text (a line, or a multi-line file's object) to
/// `fitter`, with the raw fast path for JSON records that fit as written on or off (off only
/// in the tests that check the two agree). A DynamoDB record whose `eventID` was read before
/// in the same file is dropped and counted.
pub(crate) fn feed_from<'d>(
    pieces: impl Iterator<Item = Origin<'d>>,
    how: Reading,
    fitter: &mut Fitter<'_>,
    fast: bool,
) {
    if how.format == Format::Json && fast {
        fitter.allow_raw_json();
    }
    let mut seen: HashSet<String> = HashSet::new();
    for at in pieces {
        if fitter.raw_json(at.raw) {
            continue;
        }
        read_line(at, how, &mut |read| match read {
            Read::Record {
                event_id: Some(id), ..
            } if seen.contains(&id) => fitter.duplicate(),
            Read::Record {
                record,
                source,
                at,
                event_id,
            } => {
                if let Some(id) = event_id {
                    seen.insert(id);
                }
                fitter.record_from(record, source, at)
            }
            Read::Bad(at, error) => fitter.bad(at, error),
        });
    }
}

/// Asked `(line, false)` whether a line is settled (fits the inference so far, so it is only
/// counted); told `(line, true)` after an unsettled line was parsed and added.
pub(crate) type Settled<'a> = &'a mut dyn FnMut(&str, bool) -> bool;

/// Every record of `text` (up to `max_records`), for inference: the records decoding makes
/// rows of (what does not parse is skipped, as decoding reports it). With `settled`, a JSON
/// record that fits the inference so far as written (see `shape.rs`) is only counted: it
/// cannot change the result.
pub(crate) fn sample(
    text: &str,
    opts: &DecodeOptions<'_>,
    max_records: usize,
    settled: Option<Settled<'_>>,
    add: impl FnMut(Map<String, Value>),
) -> usize {
    sample_from(
        lines(text),
        Reading::for_sample(opts),
        max_records,
        settled,
        add,
    )
}

/// `sample` over pieces of text (lines, or a multi-line file's objects).
pub(crate) fn sample_from<'d>(
    pieces: impl Iterator<Item = Origin<'d>>,
    how: Reading,
    max_records: usize,
    mut settled: Option<Settled<'_>>,
    mut add: impl FnMut(Map<String, Value>),
) -> usize {
    let mut n = 0;
    for at in pieces {
        if n >= max_records {
            return n;
        }
        if how.format == Format::Json && settled.as_mut().is_some_and(|s| s(at.raw, false)) {
            n += 1;
            continue;
        }
        let mut full = false;
        read_line(at, how, &mut |read| {
            if let Read::Record { record, .. } = read {
                if n >= max_records {
                    full = true;
                } else {
                    add(record);
                    n += 1;
                }
            }
        });
        if full {
            return n;
        }
        // Told the line went the slow way, `settled` checks it against the result.
        if let Some(s) = settled.as_mut() {
            s(at.raw, true);
        }
    }
    n
}

/// What reading a line gives, in order.
enum Read<'d, 'l> {
    Record {
        record: Map<String, Value>,
        /// The record's own JSON text, when the row is the object as written (JSON lines).
        source: Option<&'d str>,
        /// Where it was written, found when a bad record needs it.
        at: &'l dyn Fn() -> Origin<'d>,
        /// A DynamoDB stream or Kinesis record's `eventID` (`format = "dynamodb"`).
        event_id: Option<String>,
    },
    /// A value that is no record, or the rest of the line from one that does not parse.
    Bad(Origin<'d>, String),
}

/// Reads the values of the line at `at`, by the rules of the module doc.
fn read_line<'d>(at: Origin<'d>, how: Reading, each: &mut dyn FnMut(Read<'d, '_>)) {
    let line = at.raw;
    let mut values = serde_json::Deserializer::from_str(line).into_iter::<Value>();
    let mut end = 0;
    loop {
        let start = skip_ws(line, end);
        let value = match values.next() {
            None => return,
            Some(Ok(value)) => value,
            Some(Err(e)) => {
                let error = format!("invalid JSON at column {}: {e}", e.column());
                each(Read::Bad(at.part(start..line.len()), error));
                return;
            }
        };
        end = values.byte_offset();
        if let Err(error) = records_in(how, value, at.part(start..end), each) {
            each(Read::Bad(at.part(start..line.len()), error));
            return;
        }
    }
}

pub(crate) fn skip_ws(line: &str, mut i: usize) -> usize {
    let b = line.as_bytes();
    while matches!(b.get(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        i += 1;
    }
    i
}

/// The records of one value written at `own`; `Err` when it is neither an object nor an
/// array of objects (then nothing of it is a record).
fn records_in<'d>(
    how: Reading,
    value: Value,
    own: Origin<'d>,
    each: &mut dyn FnMut(Read<'d, '_>),
) -> Result<(), String> {
    match value {
        Value::Object(map) => {
            object(how, map, own, each);
            Ok(())
        }
        Value::Array(items) => {
            if let Some((i, item)) = items.iter().enumerate().find(|(_, v)| !v.is_object()) {
                return Err(format!(
                    "array item {} is not a JSON object but {}",
                    i + 1,
                    kind(item)
                ));
            }
            let spans = Items::new(own, None);
            for (i, item) in items.into_iter().enumerate() {
                if let Value::Object(map) = item {
                    object(how, map, spans.origin(i), each);
                }
            }
            Ok(())
        }
        other => Err(match how.format {
            Format::DynamodbStream => {
                format!(
                    "a DynamoDB stream record is a JSON object, not {}",
                    kind(&other)
                )
            }
            Format::DynamodbExport => {
                format!(
                    "a DynamoDB export line is a JSON object, not {}",
                    kind(&other)
                )
            }
            Format::Dynamodb => format!(
                "a DynamoDB record is a JSON object, not {}; {}",
                kind(&other),
                dynamodb_change::ACCEPTED_SHAPES
            ),
            _ => format!("record is not a JSON object but {}", kind(&other)),
        }),
    }
}

/// The rows of one JSON object written at `own`.
fn object<'d>(
    how: Reading,
    mut map: Map<String, Value>,
    own: Origin<'d>,
    each: &mut dyn FnMut(Read<'d, '_>),
) {
    let numbers = how.numbers;
    let mut one = |row: Result<Map<String, Value>, String>, at: &dyn Fn() -> Origin<'d>| match row {
        Ok(record) => each(Read::Record {
            record,
            source: None,
            at,
            event_id: None,
        }),
        Err(error) => each(Read::Bad(at(), error)),
    };
    match how.format {
        Format::DynamodbStream => match map.remove("Records") {
            // An event (as Lambda gets them): each record is a row or a bad record alone.
            Some(Value::Array(records)) => {
                let items = Items::new(own, Some("Records"));
                for (i, record) in records.into_iter().enumerate() {
                    one(dynamodb::stream_record(record, numbers), &|| {
                        items.origin(i)
                    });
                }
            }
            Some(_) => one(Err("\"Records\" is not an array".into()), &|| own),
            None => one(
                dynamodb::stream_record(Value::Object(map), numbers),
                &|| own,
            ),
        },
        Format::DynamodbExport => one(dynamodb::export_item(Value::Object(map), numbers), &|| own),
        Format::Dynamodb => {
            let mut change =
                |record: Value, at: &dyn Fn() -> Origin<'d>| match dynamodb_change::change(
                    record,
                    numbers,
                    how.export_time_micros,
                ) {
                    Ok(change) => each(Read::Record {
                        record: change.row,
                        source: None,
                        at,
                        event_id: change.event_id,
                    }),
                    Err(error) => each(Read::Bad(at(), error)),
                };
            match map.remove("Records") {
                // An event of any of the shapes: each record is a row or a bad record alone.
                Some(Value::Array(records)) => {
                    let items = Items::new(own, Some("Records"));
                    for (i, record) in records.into_iter().enumerate() {
                        change(record, &|| items.origin(i));
                    }
                }
                Some(_) => each(Read::Bad(own, "\"Records\" is not an array".into())),
                None => change(Value::Object(map), &|| own),
            }
        }
        // The row is the object as written: its text keeps what serde_json loses.
        _ => each(Read::Record {
            record: map,
            source: Some(own.raw),
            at: &|| own,
            event_id: None,
        }),
    }
}

/// The items of an array written at `own` (or of the array under `key` in an object), each
/// with its own origin, found once, when first asked (a bad record, or an array's records).
struct Items<'d> {
    own: Origin<'d>,
    key: Option<&'static str>,
    spans: OnceCell<Option<Vec<Range<usize>>>>,
}

impl<'d> Items<'d> {
    fn new(own: Origin<'d>, key: Option<&'static str>) -> Self {
        Self {
            own,
            key,
            spans: OnceCell::new(),
        }
    }

    /// Where item `i` was written (the whole value's origin if its text cannot be split).
    fn origin(&self, i: usize) -> Origin<'d> {
        let spans = self
            .spans
            .get_or_init(|| item_spans(self.own.raw, self.key));
        match spans.as_ref().and_then(|s| s.get(i)) {
            Some(span) => self.own.part(span.clone()),
            None => self.own,
        }
    }
}

/// The byte ranges of the items of the array `text`, or of the array under `key` (the last
/// of that key, as serde keeps it) in the object `text`.
fn item_spans(text: &str, key: Option<&str>) -> Option<Vec<Range<usize>>> {
    let array = match key {
        None => 0..text.len(),
        Some(key) => {
            let members = inlet_schema::members(text)?;
            inlet_schema::field(text, &members, key)?.value.clone()
        }
    };
    let items = inlet_schema::members(text.get(array.clone())?)?;
    Some(
        items
            .into_iter()
            .map(|m| array.start + m.value.start..array.start + m.value.end)
            .collect(),
    )
}

/// Non-blank lines with their 1-based number and byte offset; a trailing `\r` is dropped.
pub(crate) fn lines(text: &str) -> impl Iterator<Item = Origin<'_>> {
    // memchr's vector search: `str::split` finds each newline a word at a time.
    let mut next = 0;
    let pieces = memchr::memchr_iter(b'\n', text.as_bytes())
        .chain(std::iter::once(text.len()))
        .map(move |end| {
            let start = next;
            next = end + 1;
            (start, &text[start..end])
        });
    pieces.enumerate().filter_map(|(i, (start, line))| {
        let line = line.strip_suffix('\r').unwrap_or(line);
        (!line.trim().is_empty()).then_some(Origin {
            line: i as u64 + 1,
            offset: start,
            raw: line,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{schema, RESCUED};
    use crate::{decode, BadRecord, DecodeOptions, Decoded};
    use arrow::array::{Array, Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
    use arrow::record_batch::RecordBatch;
    use bytes::Bytes;
    use inlet_schema::EvolutionMode;
    use std::sync::Arc;

    fn decode_json(
        path: &str,
        data: &[u8],
        schema: &SchemaRef,
        opts: &DecodeOptions<'_>,
    ) -> Result<Decoded, crate::FormatError> {
        decode(path, &Bytes::copy_from_slice(data), schema, opts)
    }

    fn opts(mode: EvolutionMode) -> DecodeOptions<'static> {
        crate::testing::options(Format::Json, mode)
    }

    fn rows(d: Decoded) -> (RecordBatch, u64, Vec<BadRecord>) {
        match d {
            Decoded::Rows {
                batches,
                rescued_rows,
                bad_records,
                ..
            } => (
                arrow::compute::concat_batches(&batches[0].schema(), &batches).expect("concat"),
                rescued_rows,
                bad_records,
            ),
            Decoded::NewColumns(f) => panic!("unexpected new columns {f:?}"),
        }
    }

    /// How records that fit as written are decoded.
    #[derive(Debug, Clone, Copy)]
    enum Path {
        /// Not at all: every record is parsed and fitted.
        Fitting,
        /// As raw bytes through arrow-json's tape decoder.
        Tape,
        /// Built into columns in the pass that checks them, however often the file switches.
        Direct,
    }

    /// Decodes `text` with records that fit as written taking `path`.
    fn decode_with(text: &str, s: &SchemaRef, opts: &DecodeOptions<'_>, path: Path) -> Decoded {
        let mut fitter = crate::fit::Fitter::new("f.json", s, opts);
        fitter.max_switches = match path {
            Path::Tape => 0,
            _ => u32::MAX,
        };
        let fast = !matches!(path, Path::Fitting);
        feed_from(lines(text), Reading::of(opts), &mut fitter, fast);
        fitter.finish().expect("decode")
    }

    #[test]
    fn the_fast_path_decodes_exactly_what_fitting_would() {
        let item = |t| Arc::new(Field::new("item", t, true));
        let nested = arrow::datatypes::Fields::from(vec![
            Field::new("k", DataType::Utf8, true),
            Field::new("v", DataType::Int64, true),
        ]);
        let s = schema(&[
            ("i", DataType::Int64),
            ("f", DataType::Float64),
            ("s", DataType::Utf8),
            ("b", DataType::Boolean),
            ("l", DataType::List(item(DataType::Int64))),
            ("n", DataType::Struct(nested)),
            ("small", DataType::Int32),
        ]);
        let keys = ["i", "f", "s", "b", "l", "n", "small", "I", "new", RESCUED];
        let values = [
            "1",
            "-7",
            "0",
            "2.5",
            "1e3",
            "-0.0",
            "\"x\"",
            "\"3\"",
            "\"\\u00e9\\n\\\"q\"",
            "true",
            "false",
            "null",
            "[1,2]",
            "[]",
            "[1.5]",
            "[null]",
            "{\"k\":\"a\"}",
            "{\"k\":1}",
            "{\"v\":2,\"z\":1}",
            "{}",
            "9223372036854775807",
            "9223372036854775808",
            "-9223372036854775809",
            "2147483648",
            "1e400",
            "\"2026-11-25\"",
        ];
        // A fixed seed: every run checks the same 4,000 records.
        let records =
            crate::testing::random_records(0x2545_f491_4f6c_dd1d, &keys, &values, 5, 4000);
        let mut text = String::new();
        for (line, record) in records.iter().enumerate() {
            match line % 97 {
                0 => text.push_str("{\"i\": 1,\n"),                     // broken
                1 => text.push_str("[1, 2]\n"),                         // not an object
                2 => text.push_str(&format!("[{record}, {record}]\n")), // records in an array
                3 => text.push_str(&format!("{record} 5 {record}\n")),  // a bad value between
                4 => text.push_str(&format!("{record}{record}\n")),     // concatenated
                _ => text.push_str(&format!("{record}\n")),
            }
        }
        for mode in [
            EvolutionMode::Rescue,
            EvolutionMode::None,
            EvolutionMode::AddNewColumns,
        ] {
            let o = opts(mode);
            for path in [Path::Tape, Path::Direct] {
                let (fast, slow) = (
                    decode_with(&text, &s, &o, path),
                    decode_with(&text, &s, &o, Path::Fitting),
                );
                match (fast, slow) {
                    (Decoded::NewColumns(a), Decoded::NewColumns(b)) => {
                        assert_eq!(a, b, "{mode:?}")
                    }
                    (fast @ Decoded::Rows { .. }, slow @ Decoded::Rows { .. }) => {
                        let (fb, fr, fbad) = rows(fast);
                        let (sb, sr, sbad) = rows(slow);
                        assert_eq!(
                            (fr, fbad),
                            (sr, sbad),
                            "{mode:?} {path:?}: rescued rows and bad records"
                        );
                        assert_eq!(fb, sb, "{mode:?} {path:?}: the rows");
                        assert!(fb.num_rows() > 3000, "{mode:?}: most records are rows");
                    }
                    (a, b) => panic!("{mode:?}: fast {a:?} but fitted {b:?}"),
                }
            }
        }
    }

    #[test]
    fn records_without_columns_are_rows_of_a_schema_without_columns() {
        // What a batch whose files hold no columns decodes against (`record_columnless`).
        let s = Arc::new(Schema::empty());
        let text = "{}\n{}\n\n{}\n";
        for path in [Path::Tape, Path::Direct, Path::Fitting] {
            let o = DecodeOptions {
                rescued_column: None,
                ..opts(EvolutionMode::None)
            };
            match decode_with(text, &s, &o, path) {
                Decoded::Rows { rows, batches, .. } => {
                    let total: usize = batches.iter().map(RecordBatch::num_rows).sum();
                    assert_eq!((rows, total), (3, 3), "{path:?}");
                }
                other => panic!("{path:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn raw_and_fitted_records_keep_their_order_across_batches() {
        let s = schema(&[("a", DataType::Int64), ("b", DataType::Utf8)]);
        // Every seventh record needs fitting (a number into a string column becomes its
        // text); the rest go in raw.
        let n = 3 * crate::BATCH_ROWS + 11;
        let text: String = (0..n)
            .map(|i| {
                if i % 7 == 3 {
                    format!("{{\"a\":{i},\"b\":1.5}}\n")
                } else {
                    format!("{{\"b\":\"s{i}\",\"a\":{i}}}\n")
                }
            })
            .collect();
        let decoded = decode_json(
            "f.json",
            text.as_bytes(),
            &s,
            &opts(EvolutionMode::AddNewColumns),
        )
        .expect("decode");
        let Decoded::Rows {
            ref batches,
            rows: count,
            ..
        } = decoded
        else {
            panic!("rows")
        };
        assert!(
            batches.iter().all(|b| b.num_rows() <= crate::BATCH_ROWS),
            "bounded batches"
        );
        // Each switch from raw to fitted records ends a batch of the direct decoder's, until
        // the file goes to the tape decoder whole: tens of batches, not thousands.
        assert!(batches.len() < 48, "{} batches", batches.len());
        assert_eq!(count, n as u64);
        let (batch, rescued, bad) = rows(decoded);
        assert_eq!((batch.num_rows(), rescued, bad.len()), (n, 0, 0));
        let a = batch
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("a");
        assert!((0..n).all(|i| a.value(i) == i as i64), "rows in file order");
        let b = batch
            .column(1)
            .as_any()
            .downcast_ref::<StringArray>()
            .expect("b");
        assert_eq!((b.value(1), b.value(3)), ("s1", "1.5"));
        let r = batch
            .column(2)
            .as_any()
            .downcast_ref::<StringArray>()
            .expect("rescued");
        assert!(
            r.is_null(1) && r.is_null(3),
            "a number into a string column is kept as text, not rescued"
        );
    }

    #[test]
    fn wrong_types_are_rescued_and_broken_lines_set_aside() {
        let s = schema(&[("a", DataType::Int64), ("b", DataType::Utf8)]);
        let data =
            b"{\"a\":1,\"b\":\"x\"}\r\n{\"a\":\"oops\"}{\"a\":3,\"b\":4}\n\n{\"a\": nope}\n[1]\n";
        let (batch, rescued, bad) = rows(
            decode_json("f.json", data, &s, &opts(EvolutionMode::AddNewColumns)).expect("decode"),
        );
        assert_eq!(batch.num_rows(), 3);
        let a = batch
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("a");
        assert_eq!((a.value(0), a.is_null(1), a.value(2)), (1, true, 3));
        let b = batch
            .column(1)
            .as_any()
            .downcast_ref::<StringArray>()
            .expect("b");
        assert_eq!((b.value(0), b.is_null(1), b.value(2)), ("x", true, "4"));
        let r = batch
            .column(2)
            .as_any()
            .downcast_ref::<StringArray>()
            .expect("rescued");
        let v: Value = serde_json::from_str(r.value(1)).expect("json");
        assert_eq!(v, serde_json::json!({"a": "oops", "_file_path": "f.json"}));
        assert_eq!(rescued, 1);
        assert_eq!(bad.len(), 2);
        assert_eq!(
            (bad[0].line, bad[0].byte_offset, bad[0].raw.as_str()),
            (4, 44, "{\"a\": nope}")
        );
        assert!(bad[0].error.starts_with("invalid JSON"), "{}", bad[0].error);
        assert_eq!(
            (bad[1].line, bad[1].error.as_str()),
            (5, "array item 1 is not a JSON object but a number")
        );
    }

    #[test]
    fn new_columns_are_reported_typed_with_hints() {
        let s = schema(&[("a", DataType::Int64)]);
        let data = b"{\"a\":1}\n{\"a\":2,\"c\":\"x\",\"d\":1.5,\"A\":3}\n";
        let hints = [Field::new("d", DataType::Utf8, true)];
        let o = DecodeOptions {
            hints: &hints,
            ..opts(EvolutionMode::AddNewColumns)
        };
        let Decoded::NewColumns(fields) = decode_json("f", data, &s, &o).expect("decode") else {
            panic!("expected new columns");
        };
        let got: Vec<(String, DataType)> = fields
            .iter()
            .map(|f| (f.name().clone(), f.data_type().clone()))
            .collect();
        assert_eq!(
            got,
            vec![("c".into(), DataType::Utf8), ("d".into(), DataType::Utf8)]
        );
        // In rescue mode the same file decodes, with c and d rescued.
        let (batch, rescued, _) =
            rows(decode_json("f", data, &s, &opts(EvolutionMode::Rescue)).expect("decode"));
        assert_eq!((batch.num_rows(), rescued), (2, 1));
    }

    #[test]
    fn lines_that_are_not_utf8_are_bad_records_and_the_rest_decode() {
        let s = schema(&[("a", DataType::Int64)]);
        let d = decode_json(
            "f",
            b"{\"a\":1}\n{\"a\":\"\xff\xfe\"}\r\n{\"a\":3}\n",
            &s,
            &opts(EvolutionMode::Rescue),
        )
        .expect("decode");
        let (batch, _, bad) = rows(d);
        assert_eq!(batch.num_rows(), 2);
        let a = batch
            .column(0)
            .as_any()
            .downcast_ref::<arrow::array::Int64Array>()
            .expect("ints");
        assert_eq!(a.values().to_vec(), vec![1, 3]);
        assert_eq!((bad.len(), bad[0].line, bad[0].byte_offset), (1, 2, 8));
        assert_eq!(
            bad[0].error,
            "line is not UTF-8 text (invalid byte at column 7)"
        );
        assert_eq!(bad[0].raw, "{\"a\":\"\u{fffd}\u{fffd}\"}\r");
    }

    #[test]
    fn a_line_that_is_not_an_object_is_a_bad_record_on_the_fast_path_too() {
        let s = schema(&[("a", DataType::Int64)]);
        let d = decode_json(
            "f",
            b"null\n{\"a\":1}\n42\n",
            &s,
            &opts(EvolutionMode::Rescue),
        )
        .expect("decode");
        let (batch, _, bad) = rows(d);
        assert_eq!(batch.num_rows(), 1);
        assert_eq!(bad.iter().map(|b| b.line).collect::<Vec<_>>(), vec![1, 3]);
    }

    #[test]
    fn a_huge_bad_line_is_clipped_in_its_bad_record() {
        let s = schema(&[("a", DataType::Int64)]);
        let line = "!".repeat(crate::RAW_LIMIT * 3);
        let d =
            decode_json("f", line.as_bytes(), &s, &opts(EvolutionMode::Rescue)).expect("decode");
        let Decoded::Rows {
            bad_records: bad, ..
        } = d
        else {
            panic!("rows")
        };
        assert!(
            bad[0].raw.len() < crate::RAW_LIMIT + 64,
            "{}",
            bad[0].raw.len()
        );
        assert!(bad[0]
            .raw
            .ends_with(&format!("({} bytes in all)", line.len())));
    }

    fn bad_of(d: Decoded) -> Vec<BadRecord> {
        match d {
            Decoded::Rows { bad_records, .. } => bad_records,
            Decoded::NewColumns(f) => panic!("unexpected new columns {f:?}"),
        }
    }

    fn ints(batch: &RecordBatch, column: &str) -> Vec<Option<i64>> {
        let a = batch
            .column_by_name(column)
            .expect("column")
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("ints");
        a.iter().collect()
    }

    fn texts(batch: &RecordBatch, column: &str) -> Vec<Option<String>> {
        let a = batch
            .column_by_name(column)
            .expect("column")
            .as_any()
            .downcast_ref::<StringArray>()
            .expect("strings");
        a.iter().map(|v| v.map(str::to_string)).collect()
    }

    /// Decodes `text` both ways (fast path on and off), checks they agree, and returns it.
    fn decode_both(
        text: &str,
        s: &SchemaRef,
        o: &DecodeOptions<'_>,
    ) -> (RecordBatch, u64, Vec<BadRecord>) {
        let rows = |d: Decoded| match d {
            Decoded::Rows {
                batches,
                rescued_rows,
                bad_records,
                ..
            } => (
                arrow::compute::concat_batches(s, &batches).expect("concat"),
                rescued_rows,
                bad_records,
            ),
            Decoded::NewColumns(f) => panic!("unexpected new columns {f:?}"),
        };
        let (sb, sr, sbad) = rows(decode_with(text, s, o, Path::Fitting));
        for path in [Path::Tape, Path::Direct] {
            let (fb, fr, fbad) = rows(decode_with(text, s, o, path));
            assert_eq!(
                (&fb, fr, &fbad),
                (&sb, sr, &sbad),
                "{path:?} and fitted agree"
            );
        }
        (sb, sr, sbad)
    }

    #[test]
    fn concatenated_records_that_fail_are_each_a_bad_record_of_their_own_text() {
        // DynamoDB stream records without a SequenceNumber, 5,000 on one line (~1.6 MB).
        let pad = "x".repeat(230);
        let records: Vec<String> = (0..5000)
            .map(|i| {
                format!(
                    "{{\"eventName\":\"INSERT\",\"dynamodb\":{{\"Keys\":{{\"id\":{{\"N\":\"{i}\"}}}},\"NewImage\":{{\"pad\":{{\"S\":\"{pad}\"}}}}}}}}"
                )
            })
            .collect();
        let line = format!("{{\"a\":1}}\n{}\n", records.concat());
        assert!(line.len() > 1_500_000, "{}", line.len());
        let s = schema(&[
            ("id", DataType::Int64),
            ("pad", DataType::Utf8),
            ("_op", DataType::Utf8),
            ("_seq", DataType::Utf8),
            ("_event_time", DataType::Utf8),
        ]);
        let o = DecodeOptions {
            format: Format::DynamodbStream,
            ..opts(EvolutionMode::Rescue)
        };
        let bad = bad_of(decode_json("f.json", line.as_bytes(), &s, &o).expect("decode"));
        assert_eq!(bad.len(), 5001, "the first line and each record");
        let mut start = 8; // after the first line
        for (record, b) in records.iter().zip(&bad[1..]) {
            assert_eq!((b.line, b.byte_offset), (2, start as u64));
            assert_eq!(b.raw, *record);
            assert_eq!(b.error, "no dynamodb.SequenceNumber");
            start += record.len();
        }
        let total: usize = bad.iter().map(|b| b.raw.len()).sum();
        assert!(
            total <= line.len(),
            "{total} bytes of bad records for {}",
            line.len()
        );

        // JSON objects that do not fit, with no rescued data column: rows, and one bad record
        // each, with its own text.
        let records: Vec<String> = (0..5000)
            .map(|i| format!("{{\"a\":\"x{i}\",\"b\":{i}}}"))
            .collect();
        let line = records.concat();
        let s = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Int64, true),
            Field::new("b", DataType::Int64, true),
        ]));
        let o = DecodeOptions {
            rescued_column: None,
            ..opts(EvolutionMode::Rescue)
        };
        let (batch, rescued, bad) = decode_both(&line, &s, &o);
        assert_eq!((batch.num_rows(), rescued, bad.len()), (5000, 0, 5000));
        assert_eq!(ints(&batch, "b")[4999], Some(4999));
        let mut start = 0;
        for (record, b) in records.iter().zip(&bad) {
            assert_eq!(
                (b.line, b.byte_offset, b.raw.as_str()),
                (1, start as u64, record.as_str())
            );
            start += record.len();
        }
    }

    #[test]
    fn a_line_gives_one_bad_record_from_its_first_bad_value() {
        let s = schema(&[("a", DataType::Int64)]);
        let o = opts(EvolutionMode::Rescue);
        let lines = |text: &str| {
            let (batch, _, bad) = decode_both(text, &s, &o);
            let bad: Vec<(u64, u64, String)> = bad
                .into_iter()
                .map(|b| (b.line, b.byte_offset, b.raw))
                .collect();
            (ints(&batch, "a"), bad)
        };
        assert_eq!(lines("1 2 3\n"), (vec![], vec![(1, 0, "1 2 3".into())]));
        let pretty = "{\n  \"a\": 1,\n  \"b\": [1,\n     2]\n}\n";
        let (a, bad) = lines(pretty);
        assert!(a.is_empty());
        // Each line from its first value: an object cut short, a string, a string, a number.
        assert_eq!(
            bad,
            vec![
                (1, 0, "{".into()),
                (2, 4, "\"a\": 1,".into()),
                (3, 14, "\"b\": [1,".into()),
                (4, 28, "2]".into()),
                (5, 31, "}".into()),
            ]
        );
        assert_eq!(
            lines("[{\"a\":1},{\"a\":2}]\n"),
            (vec![Some(1), Some(2)], vec![])
        );
        assert_eq!(lines("[]\n"), (vec![], vec![]));
        assert_eq!(
            lines("{\"a\":0}\n[{\"a\":1}, 5]\n"),
            (vec![Some(0)], vec![(2, 8, "[{\"a\":1}, 5]".into())])
        );
        assert_eq!(
            lines("{\"a\":1} 5 {\"a\":2}\n"),
            (vec![Some(1)], vec![(1, 8, "5 {\"a\":2}".into())])
        );
        assert_eq!(
            lines("{\"a\":1}{\"a\": nope} {\"a\":3}\n"),
            (
                vec![Some(1)],
                vec![(1, 7, "{\"a\": nope} {\"a\":3}".into())]
            )
        );
        let (_, _, bad) = decode_both("[{\"a\":1}, 5]", &s, &o);
        assert_eq!(
            bad[0].error,
            "array item 2 is not a JSON object but a number"
        );
    }

    #[test]
    fn dynamodb_arrays_and_events_give_a_row_or_a_bad_record_per_record() {
        let s = schema(&[
            ("id", DataType::Int64),
            ("_op", DataType::Utf8),
            ("_seq", DataType::Utf8),
            ("_event_time", DataType::Utf8),
        ]);
        let o = DecodeOptions {
            format: Format::DynamodbStream,
            ..opts(EvolutionMode::Rescue)
        };
        let rec = |id: u32, seq: bool| {
            let seq = if seq {
                format!(",\"SequenceNumber\":\"{id}\"")
            } else {
                String::new()
            };
            format!("{{\"eventName\":\"INSERT\",\"dynamodb\":{{\"Keys\":{{\"id\":{{\"N\":\"{id}\"}}}}{seq}}}}}")
        };
        let array = format!("[{}, {}]", rec(1, true), rec(2, true));
        let event = format!(
            "{{\"Records\": [{}, {},{}]}}",
            rec(3, true),
            rec(4, false),
            rec(5, true)
        );
        let text = format!("{array}\n{event}\n[{}, 7]\n", rec(6, true));
        let (batch, _, bad) = rows(decode_json("f", text.as_bytes(), &s, &o).expect("decode"));
        assert_eq!(ints(&batch, "id"), vec![Some(1), Some(2), Some(3), Some(5)]);
        let second = array.len() + 1;
        let fourth = second + event.find(&rec(4, false)).expect("record 4");
        let third_line = second + event.len() + 1;
        assert_eq!(
            bad.iter()
                .map(|b| (b.line, b.byte_offset, b.raw.as_str(), b.error.as_str()))
                .collect::<Vec<_>>(),
            vec![
                (
                    2,
                    fourth as u64,
                    rec(4, false).as_str(),
                    "no dynamodb.SequenceNumber"
                ),
                (
                    3,
                    third_line as u64,
                    text.lines().nth(2).expect("line 3"),
                    "array item 2 is not a JSON object but a number"
                ),
            ]
        );
    }

    /// A Kinesis record as Firehose writes it (one JSON object, no newline after it).
    fn kinesis(event_id: &str, id: u32, millis: i64, v: &str) -> String {
        format!(
            "{{\"awsRegion\":\"eu-west-1\",\"eventID\":\"{event_id}\",\"eventName\":\"MODIFY\",\"userIdentity\":null,\"recordFormat\":\"application/json\",\"tableName\":\"orders\",\"dynamodb\":{{\"ApproximateCreationDateTime\":{millis},\"Keys\":{{\"id\":{{\"N\":\"{id}\"}}}},\"NewImage\":{{\"id\":{{\"N\":\"{id}\"}},\"v\":{{\"S\":\"{v}\"}}}},\"SizeBytes\":40}},\"eventSource\":\"aws:dynamodb\"}}"
        )
    }

    #[test]
    fn the_dynamodb_format_reads_every_shape_and_drops_repeated_event_ids() {
        let s = schema(&[
            ("id", DataType::Int64),
            ("v", DataType::Utf8),
            ("_op", DataType::Utf8),
            ("_seq", DataType::Utf8),
            ("_event_time", DataType::Utf8),
        ]);
        let firehose = [
            kinesis("e1", 1, 1_700_000_000_001, "a"),
            kinesis("e2", 2, 1_700_000_000_002, "b"),
            kinesis("e1", 1, 1_700_000_000_001, "a"), // delivered twice
        ]
        .concat();
        let stream = "{\"eventID\":\"s1\",\"eventName\":\"INSERT\",\"dynamodb\":{\"ApproximateCreationDateTime\":1700000001,\"Keys\":{\"id\":{\"N\":\"3\"}},\"NewImage\":{\"id\":{\"N\":\"3\"},\"v\":{\"S\":\"c\"}},\"SequenceNumber\":\"42\"}}";
        let incremental = "{\"Metadata\":{\"WriteTimestampMicros\":{\"N\":\"1700000002000000\"}},\"Keys\":{\"id\":{\"N\":\"4\"}},\"OldImage\":{\"id\":{\"N\":\"4\"}}}";
        let unknown = "{\"id\":5}";
        let event = format!("{{\"Records\": [{stream}, {incremental}, {unknown}]}}");
        let item = "{\"Item\":{\"id\":{\"N\":\"6\"},\"v\":{\"S\":\"f\"}}}";
        let text = format!("{firehose}\n{event}\n{item}\n42\n");
        let o = DecodeOptions {
            format: Format::Dynamodb,
            export_time_micros: Some(1_600_000_000_000_000),
            ..opts(EvolutionMode::Rescue)
        };
        let decoded = decode_json("f", text.as_bytes(), &s, &o).expect("decode");
        let Decoded::Rows { duplicates, .. } = &decoded else {
            panic!("rows")
        };
        assert_eq!(*duplicates, 1, "the second e1 is dropped");
        let (batch, rescued, bad) = rows(decoded);
        assert_eq!(rescued, 0);
        assert_eq!(
            ints(&batch, "id"),
            vec![Some(1), Some(2), Some(3), Some(4), Some(6)]
        );
        assert_eq!(
            texts(&batch, "_op"),
            ["MODIFY", "MODIFY", "INSERT", "REMOVE", "EXPORT"]
                .map(|o| Some(o.to_string()))
                .to_vec()
        );
        let zeros = "0".repeat(40);
        assert_eq!(
            texts(&batch, "_seq"),
            vec![
                Some(format!("17000000000019992{zeros}")),
                Some(format!("17000000000029992{zeros}")),
                Some(format!("17000000019999992{:0>40}", 42)),
                Some(format!("17000000020000001{zeros}")),
                Some(format!("16000000000000000{zeros}")),
            ]
        );
        assert_eq!(
            texts(&batch, "_event_time"),
            vec![
                Some("2023-11-14T22:13:20.001000Z".into()),
                Some("2023-11-14T22:13:20.002000Z".into()),
                Some("2023-11-14T22:13:21.000000Z".into()),
                Some("2023-11-14T22:13:22.000000Z".into()),
                Some("2020-09-13T12:26:40.000000Z".into()),
            ]
        );
        let second = firehose.len() + 1;
        let fourth = second + event.len() + 1 + item.len() + 1;
        assert_eq!(
            bad.iter()
                .map(|b| (b.line, b.byte_offset, b.raw.as_str()))
                .collect::<Vec<_>>(),
            vec![
                (
                    2,
                    (second + event.find(unknown).expect("in")) as u64,
                    unknown
                ),
                (4, fourth as u64, "42"),
            ]
        );
        assert_eq!(
            bad[0].error,
            format!(
                "not a DynamoDB record: {}",
                crate::dynamodb_change::ACCEPTED_SHAPES
            )
        );
        assert!(
            bad[1]
                .error
                .starts_with("a DynamoDB record is a JSON object, not a number; the dynamodb format takes stream records"),
            "{}",
            bad[1].error
        );

        // Without the export's time, its items are bad records that say why.
        let o = DecodeOptions {
            export_time_micros: None,
            ..o
        };
        let (batch, _, bad) = rows(decode_json("f", text.as_bytes(), &s, &o).expect("decode"));
        assert_eq!(batch.num_rows(), 4);
        assert_eq!(
            (bad[1].line, bad[1].raw.as_str(), bad[1].error.as_str()),
            (
                3,
                item,
                "a full export item's time is the export's, which is unknown: manifest-summary.json was not found beside AWSDynamoDB/<export-id>/data/"
            )
        );
    }

    #[test]
    fn dynamodb_event_times_fill_a_timestamp_column_to_the_microsecond() {
        // As the engine hints it, but with an offset: "UTC" needs arrow's chrono-tz feature,
        // which the engine's build has and this crate's tests alone do not.
        let utc = DataType::Timestamp(
            arrow::datatypes::TimeUnit::Microsecond,
            Some("+00:00".into()),
        );
        let s = schema(&[
            ("id", DataType::Int64),
            ("_op", DataType::Utf8),
            ("_seq", DataType::Utf8),
            ("_event_time", utc),
        ]);
        let text = format!(
            "{}\n{{\"Metadata\":{{\"WriteTimestampMicros\":{{\"N\":\"1700000002000001\"}}}},\"Keys\":{{\"id\":{{\"N\":\"4\"}}}}}}\n{{\"Item\":{{\"id\":{{\"N\":\"6\"}}}}}}\n",
            kinesis("e1", 1, 1_700_000_000_001, "a")
        );
        let o = DecodeOptions {
            format: Format::Dynamodb,
            export_time_micros: Some(1_600_000_000_123_456),
            rescued_column: None,
            ..opts(EvolutionMode::None)
        };
        let Decoded::Rows {
            batches,
            bad_records,
            ..
        } = decode_json("f", text.as_bytes(), &s, &o).expect("decode")
        else {
            panic!("rows")
        };
        assert!(bad_records.is_empty(), "{bad_records:?}");
        let times = batches[0].column_by_name("_event_time").expect("column");
        let times = times
            .as_any()
            .downcast_ref::<arrow::array::TimestampMicrosecondArray>()
            .expect("timestamps");
        assert_eq!(
            times.values().to_vec(),
            vec![
                1_700_000_000_001_000,
                1_700_000_002_000_001,
                1_600_000_000_123_456
            ]
        );
    }

    #[test]
    fn an_export_is_sampled_without_its_time_and_types_every_column() {
        let text = "{\"Item\":{\"id\":{\"N\":\"6\"},\"v\":{\"S\":\"f\"},\"big\":{\"N\":\"12345678901234567890123456789012345678\"}}}\n";
        let o = DecodeOptions {
            format: Format::Dynamodb,
            ..opts(EvolutionMode::AddNewColumns)
        };
        let mut sample = crate::SchemaSample::new(true);
        sample.add("f", &Bytes::from(text), &o).expect("sample");
        let got: Vec<(String, DataType)> = sample
            .schema()
            .fields()
            .iter()
            .map(|f| (f.name().clone(), f.data_type().clone()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("_event_time".into(), DataType::Utf8),
                ("_op".into(), DataType::Utf8),
                ("_seq".into(), DataType::Utf8),
                ("big".into(), DataType::Utf8),
                ("id".into(), DataType::Int64),
                ("v".into(), DataType::Utf8),
            ]
        );
    }

    #[test]
    fn repeated_event_ids_are_dropped_within_a_file_only() {
        let s = schema(&[
            ("id", DataType::Int64),
            ("v", DataType::Utf8),
            ("_op", DataType::Utf8),
            ("_seq", DataType::Utf8),
            ("_event_time", DataType::Utf8),
        ]);
        let o = DecodeOptions {
            format: Format::Dynamodb,
            ..opts(EvolutionMode::Rescue)
        };
        let one = kinesis("e1", 1, 1_700_000_000_001, "a");
        for _ in 0..2 {
            let decoded = decode_json("f", one.as_bytes(), &s, &o).expect("decode");
            let Decoded::Rows {
                rows, duplicates, ..
            } = decoded
            else {
                panic!("rows")
            };
            assert_eq!((rows, duplicates), (1, 0), "each file keeps its first e1");
        }
        // The strict stream format keeps every record, as it always did.
        let stream = "{\"eventID\":\"s1\",\"eventName\":\"INSERT\",\"dynamodb\":{\"Keys\":{\"id\":{\"N\":\"3\"}},\"SequenceNumber\":\"42\"}}\n";
        let o = DecodeOptions {
            format: Format::DynamodbStream,
            ..o
        };
        let twice = stream.repeat(2);
        let decoded = decode_json("f", twice.as_bytes(), &s, &o).expect("decode");
        let Decoded::Rows {
            rows, duplicates, ..
        } = decoded
        else {
            panic!("rows")
        };
        assert_eq!((rows, duplicates), (2, 0));
    }

    #[test]
    fn rescued_numbers_keep_their_text() {
        let s = schema(&[("a", DataType::Int64), ("s", DataType::Utf8)]);
        let o = opts(EvolutionMode::Rescue);
        let text = concat!(
            "{\"a\":-9223372036854775809}\n",
            "{\"a\": 18446744073709551616, \"s\": 123456789012345678901234567890}{\"a\":0.50000000000000000001}\n",
            "[{\"a\":{\"x\": [1e2, -0.0, 1.10]}}]\n",
            "{\"a\":9223372036854775807,\"s\":1.5}\n",
        );
        let (batch, rescued, bad) = decode_both(text, &s, &o);
        assert!(bad.is_empty(), "{bad:?}");
        assert_eq!(rescued, 4);
        assert_eq!(
            texts(&batch, RESCUED),
            vec![
                Some("{\"_file_path\":\"f.json\",\"a\":-9223372036854775809}".into()),
                Some("{\"_file_path\":\"f.json\",\"a\":18446744073709551616}".into()),
                Some("{\"_file_path\":\"f.json\",\"a\":0.50000000000000000001}".into()),
                Some("{\"_file_path\":\"f.json\",\"a\":{\"x\":[1e2,-0.0,1.10]}}".into()),
                None,
            ]
        );
        assert_eq!(
            texts(&batch, "s"),
            vec![
                None,
                Some("123456789012345678901234567890".into()),
                None,
                None,
                Some("1.5".into())
            ]
        );
        assert_eq!(ints(&batch, "a")[4], Some(i64::MAX));
    }

    #[test]
    fn dynamodb_numbers_beyond_bigint_are_rescued_exactly_or_infer_string() {
        let n38 = "12345678901234567890123456789012345678";
        let stream = format!(
            "{{\"eventName\":\"INSERT\",\"dynamodb\":{{\"Keys\":{{\"id\":{{\"N\":\"1\"}}}},\"NewImage\":{{\"id\":{{\"N\":\"1\"}},\"big\":{{\"N\":\"{n38}\"}}}},\"SequenceNumber\":\"1\"}}}}\n"
        );
        let export =
            format!("{{\"Item\":{{\"id\":{{\"N\":\"2\"}},\"big\":{{\"N\":\"{n38}\"}}}}}}\n");
        for (format, text) in [
            (Format::DynamodbStream, &stream),
            (Format::DynamodbExport, &export),
        ] {
            let o = DecodeOptions {
                format,
                ..opts(EvolutionMode::Rescue)
            };
            let mut sample = crate::SchemaSample::new(true);
            sample
                .add("f", &Bytes::from(text.clone()), &o)
                .expect("sample");
            let inferred = sample.schema();
            assert_eq!(
                inferred.field_with_name("big").expect("big").data_type(),
                &DataType::Utf8
            );
            let s = schema(&[
                ("id", DataType::Int64),
                ("big", DataType::Int64),
                ("_op", DataType::Utf8),
                ("_seq", DataType::Utf8),
                ("_event_time", DataType::Utf8),
            ]);
            let (batch, rescued, _) =
                rows(decode_json("f", text.as_bytes(), &s, &o).expect("decode"));
            assert_eq!(rescued, 1, "{format:?}");
            assert_eq!(
                texts(&batch, RESCUED),
                vec![Some(format!("{{\"_file_path\":\"f\",\"big\":\"{n38}\"}}"))]
            );
        }
    }

    #[test]
    fn a_field_named_like_the_rescued_column_is_never_a_column_and_is_rescued() {
        let text = "{\"_rescued_data\": 5, \"a\": 1}\n{\"a\": 2, \"_Rescued_Data\": \"x\"}\n";
        let o = opts(EvolutionMode::AddNewColumns);
        let mut sample = crate::SchemaSample::new(true);
        sample
            .add("f.json", &Bytes::from(text), &o)
            .expect("sample");
        assert_eq!(sample.fitted(), None, "the lines need fitting");
        let s = Arc::new(inlet_schema::with_rescued_column(
            &sample.schema(),
            Some(RESCUED),
        ));
        assert_eq!(s.as_ref(), schema(&[("a", DataType::Int64)]).as_ref());
        for mode in [
            EvolutionMode::AddNewColumns,
            EvolutionMode::Rescue,
            EvolutionMode::None,
        ] {
            let (batch, rescued, bad) = decode_both(text, &s, &opts(mode));
            assert_eq!(
                (ints(&batch, "a"), rescued, bad.len()),
                (vec![Some(1), Some(2)], 2, 0)
            );
            assert_eq!(
                texts(&batch, RESCUED),
                vec![
                    Some("{\"_file_path\":\"f.json\",\"_rescued_data\":5}".into()),
                    Some("{\"_Rescued_Data\":\"x\",\"_file_path\":\"f.json\"}".into()),
                ],
                "{mode:?}"
            );
        }
    }

    /// `{"c": v}` where v is `levels` objects `{"c": ...}` (or arrays) around 1.
    fn nested(levels: usize, arrays: bool) -> (Value, Value) {
        let mut v = serde_json::json!(1);
        let mut inner = Vec::new();
        for _ in 0..levels {
            inner.push(v.clone());
            v = if arrays {
                serde_json::json!([v])
            } else {
                serde_json::json!({ "c": v })
            };
        }
        // What the column keeps below MAX_NESTING levels, when deeper.
        let below = levels
            .checked_sub(inlet_schema::MAX_NESTING)
            .and_then(|d| inner.get(d).cloned())
            .unwrap_or(Value::Null);
        (serde_json::json!({ "c": v }), below)
    }

    #[test]
    fn values_nested_deeper_than_the_limit_decode_as_their_json_text() {
        for arrays in [false, true] {
            for levels in [31, 32, 33, 42, 100] {
                let (record, below) = nested(levels, arrays);
                let text = format!("{record}\n{record}\n");
                let o = opts(EvolutionMode::AddNewColumns);
                let mut sample = crate::SchemaSample::new(true);
                sample
                    .add("f.json", &Bytes::from(text.clone()), &o)
                    .expect("sample");
                let mut full = inlet_schema::JsonInference::new();
                full.add(&record);
                assert_eq!(sample.schema(), full.schema(), "{levels}");
                let s = Arc::new(inlet_schema::with_rescued_column(
                    &sample.schema(),
                    Some(RESCUED),
                ));
                // The table can be made: its schema reads back under serde_json's limit.
                let stored = inlet_schema::to_json(&s);
                assert_eq!(
                    inlet_schema::from_json(&stored).ok().as_ref(),
                    Some(s.as_ref())
                );
                let (batch, rescued, bad) = decode_both(&text, &s, &o);
                assert_eq!(
                    (batch.num_rows(), rescued, bad.len()),
                    (2, 0, 0),
                    "{levels}"
                );
                // Down the column to what is below its struct or list levels.
                let mut column = batch.column(0).clone();
                let mut depth = 0;
                loop {
                    let next = if let Some(st) =
                        column.as_any().downcast_ref::<arrow::array::StructArray>()
                    {
                        st.column(0).clone()
                    } else if let Some(list) =
                        column.as_any().downcast_ref::<arrow::array::ListArray>()
                    {
                        list.values().clone()
                    } else {
                        break;
                    };
                    column = next;
                    depth += 1;
                }
                if levels <= inlet_schema::MAX_NESTING {
                    assert_eq!(depth, levels);
                    let leaf = column.as_any().downcast_ref::<Int64Array>().expect("ints");
                    assert_eq!(leaf.value(0), 1);
                } else {
                    assert_eq!(depth, inlet_schema::MAX_NESTING, "{levels}");
                    let leaf = column.as_any().downcast_ref::<StringArray>().expect("text");
                    assert_eq!(leaf.value(0), below.to_string(), "{levels}");
                }
            }
        }
    }

    /// W1-shaped lines (DynamoDB-stream-like records, ~270 bytes each).
    fn w1_lines(n: usize) -> String {
        const EVENTS: [&str; 5] = ["INSERT", "MODIFY", "MODIFY", "MODIFY", "REMOVE"];
        const STATUSES: [&str; 5] = ["new", "paid", "shipped", "returned", "cancelled"];
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = |m: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % m
        };
        let mut out = String::with_capacity(n * 280);
        for i in 0..n as u64 {
            let t = next(86_400);
            out.push_str(&format!(
                "{{\"n\":{i},\"event_id\":\"{:08x}\",\"event_name\":\"{}\",\"event_time\":\"2026-11-25T{:02}:{:02}:{:02}.{:03}Z\",\"seq\":\"{i:021}\",\"pk\":\"CUSTOMER#{}\",\"sk\":\"ORDER#{i}\",\"new_image\":{{\"customer_id\":{},\"status\":\"{}\",\"amount\":{}.{:02},\"items\":{},\"tags\":[\"web\",\"eu\"]}}}}\n",
                i.wrapping_mul(2_654_435_761) % (1 << 32),
                EVENTS[next(5) as usize],
                t / 3600,
                t / 60 % 60,
                t % 60,
                i % 1000,
                next(200_000),
                next(200_000),
                STATUSES[next(5) as usize],
                next(1000),
                next(100),
                next(20) + 1,
            ));
        }
        out
    }

    /// Micro timing of W1-style line decoding (run with `cargo test --release -p inlet-format
    /// w1_line_decode_timing -- --ignored --nocapture`): the fast path checked, known to fit,
    /// and every line fitted (a partition column turns the fast path off). Median of 5 runs.
    #[test]
    #[ignore = "timing, not a check: run by hand in release mode"]
    fn w1_line_decode_timing() {
        let n = 40_000;
        let data = Bytes::from(w1_lines(n));
        let mut sample = crate::SchemaSample::new(true);
        let o = opts(EvolutionMode::AddNewColumns);
        let median = |f: &mut dyn FnMut()| {
            let mut times: Vec<f64> = (0..5)
                .map(|_| {
                    let t = std::time::Instant::now();
                    f();
                    t.elapsed().as_secs_f64() * 1000.0
                })
                .collect();
            times.sort_by(f64::total_cmp);
            times[2]
        };
        let infer = median(&mut || {
            let mut s = crate::SchemaSample::new(true);
            s.add("f.json", &data, &o).expect("sample");
        });
        sample.add("f.json", &data, &o).expect("sample");
        let mut fields: Vec<Field> = sample
            .schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        fields.push(Field::new("dt", DataType::Utf8, true));
        fields.push(Field::new(RESCUED, DataType::Utf8, true));
        let s: SchemaRef = Arc::new(Schema::new(fields));
        let count = |d: Decoded| match d {
            Decoded::Rows { rows, .. } => rows,
            Decoded::NewColumns(f) => panic!("new columns {f:?}"),
        };
        let time = |path: &str, o: &DecodeOptions<'_>| {
            median(&mut || assert_eq!(count(decode(path, &data, &s, o).expect("decode")), n as u64))
        };
        let checked = time("f.json", &o);
        let trusted = time(
            "f.json",
            &DecodeOptions {
                known_to_fit: true,
                ..o
            },
        );
        let partition = ["dt".to_string()];
        let fitted = time(
            "dt=2026-11-25/f.json",
            &DecodeOptions {
                partition_columns: &partition,
                ..o
            },
        );
        eprintln!(
            "{n} W1 lines, {} MB: infer {infer:.1} ms, decode checked {checked:.1} ms, known to fit {trusted:.1} ms, all fitted {fitted:.1} ms",
            data.len() / 1_000_000
        );
    }
}
