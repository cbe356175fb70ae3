//! Multi-line JSON (`multiline = true`, Auto Loader's `multiLine`): a file of one JSON document
//! or several, each an object or an array of objects, pretty-printed or not; a row per object.
//!
//! The file is cut into pieces, each a top-level value or an item of a top-level array, and
//! each piece is read as a JSON line is (`json.rs`: the fast path for objects that fit as
//! written, the fitting path, DynamoDB records). So an array item that is itself an array of
//! objects gives a row per object, and a piece that is no object is a bad record (its line is
//! the line the piece starts on, its offset exact). A file that does not parse as a whole, or
//! is not UTF-8, fails with the byte offset, line and column of the error; nothing of it is a
//! row. Pieces are found one at a time and never held as parsed values, so a top-level array
//! of any length streams into record batches like JSON lines.

use serde::de::IgnoredAny;

use crate::decoded::BadRecord;
use crate::error::FormatError;
use crate::fit::{Fitter, Origin};
use crate::json::{self, skip_ws, Reading, Settled};
use crate::options::{DecodeOptions, Format};

/// True when `opts` reads its files as multi-line JSON: `multiline` is set for a JSON or
/// DynamoDB format (CSV's quoted fields span lines already; text is read by line).
pub(crate) fn applies(opts: &DecodeOptions<'_>) -> bool {
    opts.multiline
        && matches!(
            opts.format,
            Format::Json | Format::Dynamodb | Format::DynamodbStream | Format::DynamodbExport
        )
}

/// Feeds every record of the multi-line JSON `text` to `fitter`; a file that does not parse
/// fails the fitter (`Fitter::fail`), with offsets counted from `fitter.base_offset`.
pub(crate) fn feed(text: &str, opts: &DecodeOptions<'_>, fitter: &mut Fitter<'_>) {
    feed_with(text, opts, fitter, true);
}

/// `feed`, with the raw fast path on or off (off only in the test that checks the two agree).
fn feed_with(text: &str, opts: &DecodeOptions<'_>, fitter: &mut Fitter<'_>, fast: bool) {
    let mut pieces = Pieces::new(text);
    json::feed_from(&mut pieces, Reading::of(opts), fitter, fast);
    if let Some(broken) = pieces.broken {
        let base = fitter.base_offset;
        fitter.fail(broken.line, broken.detail(base));
    }
}

/// The records of the multi-line JSON `text` for inference (see `json::sample`). True when
/// the whole text parsed; a sample cut short by the byte budget ends in a broken piece, which
/// is left out with what follows it.
pub(crate) fn sample(
    text: &str,
    opts: &DecodeOptions<'_>,
    max_records: usize,
    settled: Option<Settled<'_>>,
    add: impl FnMut(serde_json::Map<String, serde_json::Value>),
) -> bool {
    let mut pieces = Pieces::new(text);
    json::sample_from(
        &mut pieces,
        Reading::for_sample(opts),
        max_records,
        settled,
        add,
    );
    pieces.broken.is_none()
}

/// The failure of a multi-line JSON file that is not UTF-8 text (`bad` are its lines that are
/// not, as `decode::utf8_lines` found them; the first is named).
pub(crate) fn not_utf8(path: &str, bad: &[BadRecord]) -> FormatError {
    let (line, detail) = match bad.first() {
        Some(b) => (
            b.line,
            format!(
                "not UTF-8 text in the line at byte offset {} ({}); with multiline = true the file is read whole, so it fails",
                b.byte_offset, b.error
            ),
        ),
        None => (0, "not UTF-8 text".into()),
    };
    FormatError::Decode {
        path: path.to_string(),
        line,
        detail,
    }
}

/// Where a multi-line file stops parsing.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Broken {
    /// Byte offset of the error in the text (before the base offset is added).
    offset: usize,
    line: u64,
    column: u64,
    /// serde_json's message, without its position.
    message: String,
}

impl Broken {
    fn detail(&self, base: usize) -> String {
        format!(
            "invalid JSON at byte offset {} (line {}, column {}): {}; with multiline = true the file must be JSON documents (objects, or arrays of objects) as a whole",
            base + self.offset,
            self.line,
            self.column,
            self.message
        )
    }
}

/// Where the cut stands between pieces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Between top-level values.
    Top,
    /// Just after a top-level `[`.
    ArrayStart,
    /// After an item of a top-level array.
    ArrayItem,
}

/// The pieces of a multi-line JSON text, in order, each with its 1-based line and byte
/// offset; after the last, `broken` says whether and where the text stopped parsing.
struct Pieces<'d> {
    text: &'d str,
    at: usize,
    state: State,
    /// The line `line_at` is on, counted incrementally.
    line: u64,
    line_at: usize,
    broken: Option<Broken>,
}

impl<'d> Pieces<'d> {
    fn new(text: &'d str) -> Self {
        Self {
            text,
            at: 0,
            state: State::Top,
            line: 1,
            line_at: 0,
            broken: None,
        }
    }

    /// The 1-based line of byte `offset` (at or after the last one asked).
    fn line_of(&mut self, offset: usize) -> u64 {
        let bytes = self.text.as_bytes();
        let end = offset.min(bytes.len());
        if end > self.line_at {
            self.line += memchr::memchr_iter(b'\n', &bytes[self.line_at..end]).count() as u64;
            self.line_at = end;
        }
        self.line
    }

    /// The value starting at `start` as a piece, or the text broken there.
    fn value(&mut self, start: usize) -> Option<Origin<'d>> {
        let rest = &self.text[start..];
        let mut values = serde_json::Deserializer::from_str(rest).into_iter::<IgnoredAny>();
        match values.next() {
            Some(Ok(_)) => {
                let end = start + values.byte_offset();
                self.at = end;
                Some(Origin {
                    line: self.line_of(start),
                    offset: start,
                    raw: &self.text[start..end],
                })
            }
            Some(Err(e)) => {
                // At the end of the text serde_json names the last byte; the error is past it.
                let relative = if e.is_eof() {
                    rest.len()
                } else {
                    offset_of(rest, e.line(), e.column())
                };
                let message = e.to_string();
                let position = format!(" at line {} column {}", e.line(), e.column());
                let message = message
                    .strip_suffix(&position)
                    .unwrap_or(&message)
                    .to_string();
                self.break_at(start + relative, message)
            }
            None => self.break_at(start, "EOF while parsing a value".into()),
        }
    }

    fn break_at(&mut self, offset: usize, message: String) -> Option<Origin<'d>> {
        let offset = offset.min(self.text.len());
        let before = &self.text.as_bytes()[..offset];
        let line_start = memchr::memrchr(b'\n', before).map_or(0, |i| i + 1);
        self.broken = Some(Broken {
            offset,
            line: 1 + memchr::memchr_iter(b'\n', before).count() as u64,
            column: (offset - line_start) as u64 + 1,
            message,
        });
        None
    }
}

impl<'d> Iterator for Pieces<'d> {
    type Item = Origin<'d>;

    fn next(&mut self) -> Option<Origin<'d>> {
        if self.broken.is_some() {
            return None;
        }
        let bytes = self.text.as_bytes();
        loop {
            let i = skip_ws(self.text, self.at);
            match (self.state, bytes.get(i)) {
                (State::Top, None) => return None,
                (State::Top, Some(b'[')) => {
                    self.at = i + 1;
                    self.state = State::ArrayStart;
                }
                (State::Top, Some(_)) => return self.value(i),
                (State::ArrayStart | State::ArrayItem, Some(b']')) => {
                    self.at = i + 1;
                    self.state = State::Top;
                }
                (State::ArrayStart, Some(_)) => {
                    self.state = State::ArrayItem;
                    return self.value(i);
                }
                (State::ArrayItem, Some(b',')) => {
                    let item = skip_ws(self.text, i + 1);
                    return self.value(item);
                }
                (State::ArrayItem, Some(_)) => {
                    return self.break_at(i, "expected `,` or `]` after an array item".into())
                }
                (State::ArrayStart | State::ArrayItem, None) => {
                    return self.break_at(i, "EOF while parsing a list".into())
                }
            }
        }
    }
}

/// The byte offset in `text` of serde_json's (1-based line, column) position: the column
/// counts the bytes of its line up to and including the one at fault (0 at a line's start).
fn offset_of(text: &str, line: usize, column: usize) -> usize {
    let line_start = if line <= 1 {
        0
    } else {
        memchr::memchr_iter(b'\n', text.as_bytes())
            .nth(line - 2)
            .map_or(text.len(), |i| i + 1)
    };
    (line_start + column.saturating_sub(1)).min(text.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{schema, RESCUED};
    use crate::{decode, Decoded, SchemaSample, BATCH_ROWS};
    use arrow::array::{Array, Int64Array, ListArray, StringArray, StructArray};
    use arrow::datatypes::{DataType, Field, SchemaRef};
    use arrow::record_batch::RecordBatch;
    use bytes::Bytes;
    use inlet_schema::EvolutionMode;
    use std::sync::Arc;

    fn opts(mode: EvolutionMode) -> DecodeOptions<'static> {
        DecodeOptions {
            multiline: true,
            ..crate::testing::options(Format::Json, mode)
        }
    }

    /// `text` decoded with the fast path on or off.
    fn decode_with(text: &str, s: &SchemaRef, o: &DecodeOptions<'_>, fast: bool) -> Decoded {
        let mut fitter = Fitter::new("f.json", s, o);
        // The direct decoder however often a file switches (the tape's are json.rs's).
        fitter.max_switches = u32::MAX;
        feed_with(text, o, &mut fitter, fast);
        fitter.finish().expect("decode")
    }

    /// The rows (one batch), rescued rows and bad records (line, offset, raw, error).
    type Rows = (RecordBatch, u64, Vec<(u64, u64, String, String)>);

    fn rows_of(d: Decoded, s: &SchemaRef) -> Rows {
        match d {
            Decoded::Rows {
                batches,
                rescued_rows,
                bad_records,
                ..
            } => (
                arrow::compute::concat_batches(s, &batches).expect("concat"),
                rescued_rows,
                bad_records
                    .into_iter()
                    .map(|b| (b.line, b.byte_offset, b.raw, b.error))
                    .collect(),
            ),
            Decoded::NewColumns(f) => panic!("unexpected new columns {f:?}"),
        }
    }

    /// Decoded both ways, which must agree, and through `decode` (the same again).
    fn decode_both(text: &str, s: &SchemaRef, o: &DecodeOptions<'_>) -> Rows {
        let fast = rows_of(decode_with(text, s, o, true), s);
        let slow = rows_of(decode_with(text, s, o, false), s);
        assert_eq!(fast, slow, "fast and fitted agree");
        let whole = decode("f.json", &Bytes::from(text.to_string()), s, o).expect("decode");
        assert_eq!(rows_of(whole, s), fast);
        fast
    }

    fn ints(batch: &RecordBatch, column: &str) -> Vec<Option<i64>> {
        let a = batch.column_by_name(column).expect("column");
        let a = a.as_any().downcast_ref::<Int64Array>().expect("ints");
        a.iter().collect()
    }

    fn texts(batch: &RecordBatch, column: &str) -> Vec<Option<String>> {
        let a = batch.column_by_name(column).expect("column");
        let a = a.as_any().downcast_ref::<StringArray>().expect("text");
        a.iter().map(|v| v.map(str::to_string)).collect()
    }

    fn failure(text: &[u8], o: &DecodeOptions<'_>) -> String {
        let s = schema(&[("a", DataType::Int64)]);
        match decode("f.json", &Bytes::copy_from_slice(text), &s, o) {
            Err(e) => e.to_string(),
            Ok(d) => panic!("decoded {d:?}"),
        }
    }

    #[test]
    fn pretty_printed_documents_give_a_row_per_object() {
        let s = schema(&[("a", DataType::Int64), ("b", DataType::Utf8)]);
        let text = "{\n  \"a\": 1,\n  \"b\": \"x\"\n}\n{\"a\": 2}\n\n[\n  {\"a\": 3, \"b\": \"y\"},\n  {\n    \"b\": \"z\",\n    \"a\": 4\n  }\n]\r\n[] {\"a\":5}{\"a\":\"six\"}\n";
        let (batch, rescued, bad) = decode_both(text, &s, &opts(EvolutionMode::Rescue));
        assert_eq!(
            ints(&batch, "a"),
            vec![Some(1), Some(2), Some(3), Some(4), Some(5), None]
        );
        assert_eq!(
            texts(&batch, "b"),
            vec![
                Some("x".into()),
                None,
                Some("y".into()),
                Some("z".into()),
                None,
                None
            ]
        );
        assert_eq!(rescued, 1);
        assert_eq!(
            texts(&batch, RESCUED)[5].as_deref(),
            Some("{\"_file_path\":\"f.json\",\"a\":\"six\"}")
        );
        assert!(bad.is_empty(), "{bad:?}");
    }

    #[test]
    fn pieces_that_are_no_objects_are_bad_records_at_their_own_line_and_offset() {
        let s = schema(&[("a", DataType::Int64)]);
        let text = "[\n  {\"a\": 1},\n  7,\n  [{\"a\": 2}, {\"a\": 3}],\n  [{\"a\": 4}, \"x\"],\n  null\n]\n\"tail\"\n";
        let (batch, _, bad) = decode_both(text, &s, &opts(EvolutionMode::Rescue));
        assert_eq!(ints(&batch, "a"), vec![Some(1), Some(2), Some(3)]);
        let at = |piece: &str| text.find(piece).expect("piece") as u64;
        assert_eq!(
            bad,
            vec![
                (
                    3,
                    at("7"),
                    "7".into(),
                    "record is not a JSON object but a number".into()
                ),
                (
                    5,
                    at("[{\"a\": 4}"),
                    "[{\"a\": 4}, \"x\"]".into(),
                    "array item 2 is not a JSON object but a string".into()
                ),
                (
                    6,
                    at("null"),
                    "null".into(),
                    "record is not a JSON object but null".into()
                ),
                (
                    8,
                    at("\"tail\""),
                    "\"tail\"".into(),
                    "record is not a JSON object but a string".into()
                ),
            ]
        );
    }

    #[test]
    fn nested_arrays_and_structs_decode_as_for_json_lines() {
        let text = r#"[
  {"id": 1, "tags": ["a", "b"], "grid": [[1, 2], [3]], "items": [{"sku": "x", "qty": 2}, {"sku": "y", "qty": 1}]},
  {"id": 2, "tags": [], "grid": [[]], "items": [{"sku": "z", "qty": 5}]}
]"#;
        let o = DecodeOptions {
            mode: EvolutionMode::AddNewColumns,
            ..opts(EvolutionMode::Rescue)
        };
        let mut sample = SchemaSample::new(true);
        sample
            .add("f.json", &Bytes::from(text), &o)
            .expect("sample");
        let s = Arc::new(inlet_schema::with_rescued_column(
            &sample.schema(),
            Some(RESCUED),
        ));
        let item = |t| Arc::new(Field::new("item", t, true));
        assert_eq!(
            s.field_with_name("grid").expect("grid").data_type(),
            &DataType::List(item(DataType::List(item(DataType::Int64))))
        );
        // The same records as JSON lines decode to the same rows.
        let lines = "{\"id\": 1, \"tags\": [\"a\", \"b\"], \"grid\": [[1, 2], [3]], \"items\": [{\"sku\": \"x\", \"qty\": 2}, {\"sku\": \"y\", \"qty\": 1}]}\n{\"id\": 2, \"tags\": [], \"grid\": [[]], \"items\": [{\"sku\": \"z\", \"qty\": 5}]}\n";
        let as_lines = DecodeOptions {
            multiline: false,
            ..o
        };
        let (batch, rescued, bad) = decode_both(text, &s, &o);
        let lines = rows_of(
            decode("f.json", &Bytes::from(lines), &s, &as_lines).expect("decode"),
            &s,
        );
        assert_eq!((&batch, rescued, &bad), (&lines.0, lines.1, &lines.2));
        assert_eq!((batch.num_rows(), rescued, bad.len()), (2, 0, 0));
        let items = batch.column_by_name("items").expect("items");
        let items = items.as_any().downcast_ref::<ListArray>().expect("list");
        let first = items.value(0);
        let first = first
            .as_any()
            .downcast_ref::<StructArray>()
            .expect("structs");
        let qty = first.column_by_name("qty").expect("qty");
        let qty = qty.as_any().downcast_ref::<Int64Array>().expect("ints");
        assert_eq!(qty.values().to_vec(), vec![2, 1]);
    }

    #[test]
    fn a_top_level_array_of_100k_objects_streams_in_bounded_batches() {
        let n = 100_000;
        let mut text = String::with_capacity(n * 40);
        text.push('[');
        for i in 0..n {
            if i > 0 {
                text.push_str(if i % 3 == 0 { ",\n  " } else { "," });
            }
            text.push_str(&format!(
                "{{\"id\":{i},\"name\":\"n{i}\",\"ok\":{}}}",
                i % 2 == 0
            ));
        }
        text.push_str("]\n");
        let s = schema(&[
            ("id", DataType::Int64),
            ("name", DataType::Utf8),
            ("ok", DataType::Boolean),
        ]);
        let o = opts(EvolutionMode::AddNewColumns);
        let Decoded::Rows {
            batches,
            rows,
            rescued_rows,
            bad_records,
            duplicates,
        } = decode("f.json", &Bytes::from(text), &s, &o).expect("decode")
        else {
            panic!("rows")
        };
        assert_eq!(
            (rows, rescued_rows, bad_records.len(), duplicates),
            (n as u64, 0, 0, 0)
        );
        assert!(
            batches.len() <= n.div_ceil(BATCH_ROWS)
                && batches.iter().all(|b| b.num_rows() <= BATCH_ROWS),
            "{} batches",
            batches.len()
        );
        let batch = arrow::compute::concat_batches(&s, &batches).expect("concat");
        let ids = ints(&batch, "id");
        assert!(
            ids.iter().enumerate().all(|(i, v)| *v == Some(i as i64)),
            "file order"
        );
        assert_eq!(texts(&batch, "name")[n - 1].as_deref(), Some("n99999"));
    }

    #[test]
    fn a_file_that_does_not_parse_fails_with_the_offset_of_the_error() {
        let o = opts(EvolutionMode::Rescue);
        let text = "[\n  {\"a\": 1},\n  {\"a\": 2,, \"b\": 3}\n]\n";
        assert_eq!(
            failure(text.as_bytes(), &o),
            format!(
                "f.json, line 3: invalid JSON at byte offset {} (line 3, column 11): key must be a string; with multiline = true the file must be JSON documents (objects, or arrays of objects) as a whole",
                text.find(",,").expect("the error") + 1
            )
        );
        let missing_comma = "[{\"a\": 1}\n {\"a\": 2}]";
        assert_eq!(
            failure(missing_comma.as_bytes(), &o),
            "f.json, line 2: invalid JSON at byte offset 11 (line 2, column 2): expected `,` or `]` after an array item; with multiline = true the file must be JSON documents (objects, or arrays of objects) as a whole"
        );
        let cut = "[{\"a\": 1},\n {\"a\": 2";
        assert!(
            failure(cut.as_bytes(), &o).starts_with(&format!(
                "f.json, line 2: invalid JSON at byte offset {} (line 2, column 9): EOF while parsing an object",
                cut.len()
            )),
            "{}",
            failure(cut.as_bytes(), &o)
        );
        let open = "[{\"a\": 1},";
        assert!(failure(open.as_bytes(), &o).contains("at byte offset 10 (line 1, column 11)"));
        let trailing = "{\"a\": 1} nope";
        assert!(
            failure(trailing.as_bytes(), &o).starts_with("f.json, line 1: invalid JSON at byte offset 10 (line 1, column 11): expected ident"),
            "{}",
            failure(trailing.as_bytes(), &o)
        );
        // Offsets count the byte-order mark, as for JSON lines.
        let bom = "\u{feff}{\"a\": }";
        assert!(failure(bom.as_bytes(), &o).contains("at byte offset 9 (line 1, column 7)"));
        // A line that is not UTF-8 fails the file, rather than a blank in a document.
        assert_eq!(
            failure(b"[\n{\"a\": 1},\n{\"a\": \"\xff\"}\n]", &o),
            "f.json, line 3: not UTF-8 text in the line at byte offset 12 (line is not UTF-8 text (invalid byte at column 8)); with multiline = true the file is read whole, so it fails"
        );
        // Even when the file already needs new columns.
        let new = opts(EvolutionMode::AddNewColumns);
        assert!(failure(b"{\"z\": 1}\n{", &new).starts_with("f.json, line 2: invalid JSON at byte offset 10 (line 2, column 2): EOF while parsing an object"));
    }

    #[test]
    fn a_new_column_in_a_later_file_asks_for_the_schema_to_grow() {
        let first = "[\n  {\"id\": 1, \"name\": \"a\"},\n  {\"id\": 2, \"name\": \"b\"}\n]\n";
        let second = "[\n  {\"id\": 3, \"name\": \"c\", \"price\": 2.5},\n  {\"id\": 4, \"name\": \"d\"}\n]\n";
        let o = opts(EvolutionMode::AddNewColumns);
        let mut sample = SchemaSample::new(true);
        sample
            .add("1.json", &Bytes::from(first), &o)
            .expect("sample");
        assert!(
            sample.fitted().is_some(),
            "every object of the file fits as written"
        );
        let s = Arc::new(inlet_schema::with_rescued_column(
            &sample.schema(),
            Some(RESCUED),
        ));
        let (batch, _, _) = decode_both(first, &s, &o);
        assert_eq!(ints(&batch, "id"), vec![Some(1), Some(2)]);
        match decode("2.json", &Bytes::from(second), &s, &o).expect("decode") {
            Decoded::NewColumns(fields) => {
                assert_eq!(fields, vec![Field::new("price", DataType::Float64, true)])
            }
            other => panic!("{other:?}"),
        }
        // Under the grown schema the file decodes; earlier files read it as null.
        let grown = Arc::new(inlet_schema::with_columns(
            &s,
            &[Field::new("price", DataType::Float64, true)],
        ));
        let (batch, rescued, bad) = decode_both(second, &grown, &o);
        assert_eq!((batch.num_rows(), rescued, bad.len()), (2, 0, 0));
        let price = batch.column_by_name("price").expect("price");
        let price = price
            .as_any()
            .downcast_ref::<arrow::array::Float64Array>()
            .expect("doubles");
        assert_eq!((price.value(0), price.is_null(1)), (2.5, true));
    }

    #[test]
    fn the_sample_reads_as_decoding_does_and_a_cut_file_gives_its_whole_objects() {
        let text = "[\n  {\"a\": 1},\n  {\"a\": 2.5, \"b\": \"x\"},\n  {\"c\": [true]}\n]";
        let o = opts(EvolutionMode::AddNewColumns);
        let mut whole = SchemaSample::new(true);
        whole.add("f.json", &Bytes::from(text), &o).expect("sample");
        let mut lines = inlet_schema::JsonInference::new();
        for record in [r#"{"a": 1}"#, r#"{"a": 2.5, "b": "x"}"#, r#"{"c": [true]}"#] {
            lines.add(&serde_json::from_str(record).expect("json"));
        }
        assert_eq!(whole.schema(), lines.schema());
        assert!(whole.fitted().is_some());
        // Cut by the sample's byte budget inside the third object.
        let cut = &text[..text.find("true").expect("cut")];
        let mut part = SchemaSample::new(true);
        part.add("f.json", &Bytes::from(cut.to_string()), &o)
            .expect("sample");
        let names: Vec<String> = part
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        assert_eq!(names, vec!["a", "b"]);
        assert_eq!(part.fitted(), None, "a cut file is not known to fit");
    }

    #[test]
    fn a_file_known_to_fit_decodes_as_if_every_object_were_checked() {
        let text = "[{\"a\": 1, \"b\": \"x\"},\n {\"a\": null, \"b\": \"y\", \"c\": [1, 2]}]";
        let o = opts(EvolutionMode::AddNewColumns);
        let mut sample = SchemaSample::new(true);
        sample
            .add("f.json", &Bytes::from(text), &o)
            .expect("sample");
        let fitted = sample.fitted().expect("fits");
        let s = Arc::new(inlet_schema::with_rescued_column(
            &sample.schema(),
            Some(RESCUED),
        ));
        assert!(crate::fits_within(&fitted, &s, Some(RESCUED)));
        let trusted = DecodeOptions {
            known_to_fit: true,
            ..o
        };
        let data = Bytes::from(text);
        let checked = rows_of(decode("f.json", &data, &s, &o).expect("decode"), &s);
        let known = rows_of(decode("f.json", &data, &s, &trusted).expect("decode"), &s);
        assert_eq!(checked, known);
        assert_eq!(checked.0.num_rows(), 2);
    }

    #[test]
    fn the_fast_path_decodes_exactly_what_fitting_would_in_multiline_files() {
        let keys = ["i", "f", "s", "l", "n", "new"];
        let values = [
            "1",
            "-7",
            "2.5",
            "\"x\"",
            "\"3\"",
            "true",
            "null",
            "[1,2]",
            "[]",
            "[1.5]",
            "{\"k\":\"a\"}",
            "{\"k\":1}",
            "{\"v\":2,\"z\":1}",
            "9223372036854775808",
        ];
        let nested = arrow::datatypes::Fields::from(vec![
            Field::new("k", DataType::Utf8, true),
            Field::new("v", DataType::Int64, true),
        ]);
        let item = Arc::new(Field::new("item", DataType::Int64, true));
        let s = schema(&[
            ("i", DataType::Int64),
            ("f", DataType::Float64),
            ("s", DataType::Utf8),
            ("l", DataType::List(item)),
            ("n", DataType::Struct(nested)),
        ]);
        let records =
            crate::testing::random_records(0x51ed_270b_2f3c_9a61, &keys, &values, 5, 3000);
        // Pretty and compact, in arrays and alone, with the odd array of arrays.
        let mut text = String::from("[\n");
        for (i, record) in records.iter().enumerate() {
            let sep = if i + 1 == records.len() { "\n" } else { ",\n" };
            match i % 50 {
                0 => text.push_str(&format!("  [{record}, {record}]{sep}")),
                1 => text.push_str(&format!("  {}{sep}", record.replace(",\"", ",\n    \""))),
                _ => text.push_str(&format!("  {record}{sep}")),
            }
        }
        text.push_str("]\n");
        text.push_str(&records[..100].join("\n"));
        for mode in [
            EvolutionMode::Rescue,
            EvolutionMode::None,
            EvolutionMode::AddNewColumns,
        ] {
            let o = opts(mode);
            match (
                decode_with(&text, &s, &o, true),
                decode_with(&text, &s, &o, false),
            ) {
                (Decoded::NewColumns(a), Decoded::NewColumns(b)) => assert_eq!(a, b, "{mode:?}"),
                (fast, slow) => {
                    let (fast, slow) = (rows_of(fast, &s), rows_of(slow, &s));
                    assert_eq!(fast, slow, "{mode:?}");
                    assert!(fast.0.num_rows() > 3000, "{mode:?}");
                }
            }
        }
    }

    #[test]
    fn a_pretty_printed_dynamodb_event_gives_a_row_per_record() {
        let text = r#"{
  "Records": [
    {
      "eventID": "k1", "eventName": "INSERT", "recordFormat": "application/json",
      "dynamodb": {"ApproximateCreationDateTime": 1700000000001,
        "Keys": {"id": {"N": "1"}}, "NewImage": {"id": {"N": "1"}, "v": {"S": "a"}}}
    },
    {"eventID": "k1", "eventName": "INSERT", "recordFormat": "application/json",
      "dynamodb": {"ApproximateCreationDateTime": 1700000000001,
        "Keys": {"id": {"N": "1"}}, "NewImage": {"id": {"N": "1"}, "v": {"S": "a"}}}},
    {"eventName": "SCAN"}
  ]
}
"#;
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
        let decoded = decode("f.json", &Bytes::from(text), &s, &o).expect("decode");
        let Decoded::Rows { duplicates, .. } = &decoded else {
            panic!("rows")
        };
        assert_eq!(*duplicates, 1);
        let (batch, _, bad) = rows_of(decoded, &s);
        assert_eq!(texts(&batch, "v"), vec![Some("a".into())]);
        assert_eq!(
            bad,
            vec![(
                1,
                text.find("{\"eventName\": \"SCAN\"}").expect("record") as u64,
                "{\"eventName\": \"SCAN\"}".into(),
                "eventName \"SCAN\" is not INSERT, MODIFY or REMOVE".into()
            )]
        );
    }
}
