//! `format = "dynamodb"`: every shape in which DynamoDB changes reach S3, told apart record by
//! record, as rows of one table whose `_seq` orders the changes of an item across shapes.
//!
//! | shape | told by | `_op` | event time | rank | tiebreak |
//! |---|---|---|---|---|---|
//! | full export item (`DYNAMODB_JSON`) | `Item` | `EXPORT` | the export's `exportTime` ([`DecodeOptions::export_time_micros`](crate::DecodeOptions)) | 0 | 40 zeros |
//! | incremental export line | `Metadata` | `MODIFY`; `REMOVE` without `NewImage` | `Metadata.WriteTimestampMicros` | 1 | 40 zeros |
//! | stream record (Lambda, Pipes) | `eventName` and `dynamodb.SequenceNumber` | `eventName` | `dynamodb.ApproximateCreationDateTime` | 2 | `SequenceNumber` |
//! | Kinesis Data Streams record | `eventName`, no `SequenceNumber`, `recordFormat` or `tableName` | `eventName` | `dynamodb.ApproximateCreationDateTime` | 2 | 40 zeros |
//!
//! Each row holds the item's keys and its new image (keys only for a delete) as plain typed
//! columns (`dynamodb.rs`), plus `_op`, `_seq` and `_event_time` (ISO-8601 UTC to the
//! microsecond, the time as the record states it). `{"Records": [...]}` events of any of these
//! are split by `json.rs`.
//!
//! **`_seq` rule**: `_seq = {t:016}{rank}{tiebreak:0>40}` (57 characters), so that text order is
//! event order across shapes. `t` is the event time in microseconds since the epoch, 16 digits
//! zero-padded. Units: `WriteTimestampMicros` and `exportTime` are exact; a Kinesis record's
//! `ApproximateCreationDateTime` is in milliseconds, or microseconds when
//! `dynamodb.ApproximateCreationDateTimePrecision` is `"MICROSECOND"`; a stream record's is in
//! seconds in Lambda events and is read by magnitude (below 1e11 seconds, below 1e14
//! milliseconds, below 1e17 microseconds, else nanoseconds, as `inlet-schema`'s `temporal.rs`
//! reads epoch numbers). A time given in whole seconds or milliseconds stands for the interval
//! up to the next one (AWS rounds stream times down to the second), so `t` is that interval's
//! last microsecond: a change in the same second as a full export's time therefore wins over
//! the export, and a change the export already holds is applied again, harmlessly, before the
//! later changes of its item. `rank` is one digit: `0` full export item (at an equal time the
//! export loses to any change), `1` incremental export line, `2` stream or Kinesis record.
//! `tiebreak` is a stream record's `SequenceNumber` zero-padded to 40 digits (DynamoDB's
//! numbers have at most 40), or 40 zeros for the other shapes.
//!
//! **Ties.** Kinesis records carry no sequence number: two changes of one item in one
//! millisecond (microsecond at that precision) have equal `_seq`. Equal `_seq` falls to arrival
//! order: MERGE keeps a batch's later row (files oldest first, each in its own order) and
//! replaces a table row by an incoming row that is not older. An item's records share a Kinesis
//! shard and Firehose writes a shard's records in order, so arrival order is write order.
//! Kinesis may deliver a record twice: a stream or Kinesis record whose `eventID` was already
//! read in the same file is dropped and counted (`Decoded::Rows::duplicates`), not a row.
//!
//! Stream and Kinesis records of one item should not be mixed: a stream record's time is only
//! known to the second, so it cannot be ordered against another shape's change of the same
//! item in the same second. A full export followed by either of them, by incremental exports,
//! or by Kinesis records and incremental exports together, is what this format is for.

use serde_json::{Map, Value};

use crate::dynamodb::{change_row, item, NumberMode, SEQ_WIDTH};

/// The shapes `format = "dynamodb"` takes, for the error of a record that is none of them.
pub(crate) const ACCEPTED_SHAPES: &str = "the dynamodb format takes stream records \
({\"eventName\", \"dynamodb\": {\"Keys\", \"SequenceNumber\", \"ApproximateCreationDateTime\", ...}}), \
Kinesis Data Streams records ({\"eventName\", \"eventID\", \"recordFormat\", \"tableName\", \
\"dynamodb\": {\"Keys\", \"ApproximateCreationDateTime\", ...}}), full export items ({\"Item\": {...}}), \
incremental export lines ({\"Metadata\": {\"WriteTimestampMicros\": {\"N\": ...}}, \"Keys\", \"NewImage\"}), \
and {\"Records\": [...]} events of these";

/// Width of a `format = "dynamodb"` `_seq`: 16 digits of time, the rank digit, the 40-digit
/// tiebreak (see the module doc).
pub const CHANGE_SEQ_WIDTH: usize = 16 + 1 + SEQ_WIDTH;

/// A record of the `dynamodb` format as a row.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Change {
    pub row: Map<String, Value>,
    /// The record's `eventID` (stream and Kinesis records), by which a repeat is dropped.
    pub event_id: Option<String>,
}

/// Which of the accepted shapes a record has, and so how `_seq` ranks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rank {
    FullExport = 0,
    IncrementalExport = 1,
    Change = 2,
}

/// The event time of a record: the instant it states, and the last microsecond that instant
/// can stand for at the precision it was given in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct EventTime {
    micros: i64,
    latest: i64,
}

impl EventTime {
    fn exact(micros: i64) -> Self {
        Self {
            micros,
            latest: micros,
        }
    }

    /// `value` whole units of `unit_micros` microseconds.
    fn whole(value: i64, unit_micros: i64) -> Option<Self> {
        let micros = value.checked_mul(unit_micros)?;
        Some(Self {
            micros,
            latest: micros.checked_add(unit_micros - 1)?,
        })
    }
}

/// A record of any accepted shape (see the module doc) as a row. `export_time_micros` is the
/// time of the full export the file belongs to, needed by `Item` lines only.
pub(crate) fn change(
    value: Value,
    numbers: NumberMode,
    export_time_micros: Option<i64>,
) -> Result<Change, String> {
    let Value::Object(record) = value else {
        return Err(format!(
            "a DynamoDB record is a JSON object, not {}; {ACCEPTED_SHAPES}",
            crate::fit::kind(&value)
        ));
    };
    if record.contains_key("Item") {
        full_export_item(record, numbers, export_time_micros)
    } else if record.contains_key("Metadata") {
        incremental_export_line(record, numbers)
    } else if record.contains_key("eventName") || record.contains_key("dynamodb") {
        stream_or_kinesis_record(record, numbers)
    } else {
        Err(format!("not a DynamoDB record: {ACCEPTED_SHAPES}"))
    }
}

/// `{"Item": {...}}` of a full export: the item as of the export's time.
fn full_export_item(
    mut record: Map<String, Value>,
    numbers: NumberMode,
    export_time_micros: Option<i64>,
) -> Result<Change, String> {
    let Some(Value::Object(attrs)) = record.remove("Item") else {
        return Err("\"Item\" is not an object".into());
    };
    let Some(export_time) = export_time_micros else {
        return Err(
            "a full export item's time is the export's, which is unknown: \
            manifest-summary.json was not found beside AWSDynamoDB/<export-id>/data/"
                .into(),
        );
    };
    let row = item(attrs, numbers)?;
    finish(
        row,
        "EXPORT",
        EventTime::exact(export_time),
        Rank::FullExport,
        None,
        None,
    )
}

/// `{"Metadata": {"WriteTimestampMicros": {"N": ...}}, "Keys", "NewImage", "OldImage"}` of an
/// incremental export: a delete when it has no `NewImage`.
fn incremental_export_line(
    mut record: Map<String, Value>,
    numbers: NumberMode,
) -> Result<Change, String> {
    let written = match record.remove("Metadata") {
        Some(Value::Object(mut metadata)) => metadata.remove("WriteTimestampMicros"),
        _ => return Err("\"Metadata\" is not an object".into()),
    };
    let micros = match &written {
        Some(Value::Object(n)) => match n.get("N") {
            Some(Value::String(text)) => text.parse::<i64>().ok(),
            _ => None,
        },
        _ => None,
    };
    let Some(micros) = micros else {
        return Err(match written {
            None => "no Metadata.WriteTimestampMicros: not an incremental export line".into(),
            Some(other) => format!(
                "Metadata.WriteTimestampMicros {other} is not {{\"N\": \"<microseconds>\"}}"
            ),
        });
    };
    let Some(Value::Object(keys)) = record.remove("Keys") else {
        return Err("no \"Keys\" object in an incremental export line".into());
    };
    let mut row = item(keys, numbers)?;
    let op = match record.remove("NewImage") {
        Some(Value::Object(image)) => {
            row.extend(item(image, numbers)?);
            "MODIFY"
        }
        Some(Value::Null) | None => "REMOVE",
        Some(_) => return Err("\"NewImage\" is not an object".into()),
    };
    finish(
        row,
        op,
        EventTime::exact(micros),
        Rank::IncrementalExport,
        None,
        None,
    )
}

/// A stream record (with `dynamodb.SequenceNumber`) or a Kinesis Data Streams record (without,
/// and with `recordFormat` or `tableName`).
fn stream_or_kinesis_record(
    mut record: Map<String, Value>,
    numbers: NumberMode,
) -> Result<Change, String> {
    let op = match record.remove("eventName") {
        Some(Value::String(op)) if matches!(op.as_str(), "INSERT" | "MODIFY" | "REMOVE") => op,
        Some(other) => return Err(format!("eventName {other} is not INSERT, MODIFY or REMOVE")),
        None => {
            return Err(format!(
                "no eventName: not a DynamoDB record: {ACCEPTED_SHAPES}"
            ))
        }
    };
    let Some(Value::Object(mut ddb)) = record.remove("dynamodb") else {
        return Err("no \"dynamodb\" object: not a DynamoDB stream or Kinesis record".into());
    };
    let event_id = match record.remove("eventID") {
        Some(Value::String(id)) => Some(id),
        _ => None,
    };
    let kinesis = record.contains_key("recordFormat") || record.contains_key("tableName");
    let (time, tiebreak) = match ddb.remove("SequenceNumber") {
        Some(seq) => {
            let digits = match &seq {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                other => return Err(format!("dynamodb.SequenceNumber {other} is not a number")),
            };
            if digits.is_empty()
                || digits.len() > SEQ_WIDTH
                || !digits.bytes().all(|b| b.is_ascii_digit())
            {
                return Err(format!(
                    "dynamodb.SequenceNumber {seq} is not a decimal number of at most {SEQ_WIDTH} digits"
                ));
            }
            (
                stream_time(ddb.remove("ApproximateCreationDateTime"))?,
                Some(digits),
            )
        }
        None if kinesis => (
            kinesis_time(
                ddb.remove("ApproximateCreationDateTime"),
                ddb.remove("ApproximateCreationDateTimePrecision"),
            )?,
            None,
        ),
        None => {
            return Err(
                "no dynamodb.SequenceNumber (a stream record) and no recordFormat or \
                tableName (a Kinesis Data Streams record)"
                    .into(),
            )
        }
    };
    let row = change_row(&mut ddb, &op, numbers)?;
    finish(row, &op, time, Rank::Change, tiebreak.as_deref(), event_id)
}

/// A stream record's `ApproximateCreationDateTime`: epoch seconds in Lambda events, read by
/// magnitude (see the module doc); a number with a fraction is taken as exact.
fn stream_time(value: Option<Value>) -> Result<EventTime, String> {
    let Some(value) = value else {
        return Err(
            "no dynamodb.ApproximateCreationDateTime: a change's time orders it \
            against exports"
                .into(),
        );
    };
    let time = match &value {
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => {
                let a = i.unsigned_abs();
                if a < 100_000_000_000 {
                    EventTime::whole(i, 1_000_000)
                } else if a < 100_000_000_000_000 {
                    EventTime::whole(i, 1_000)
                } else if a < 100_000_000_000_000_000 {
                    Some(EventTime::exact(i))
                } else {
                    Some(EventTime::exact(i / 1_000))
                }
            }
            (None, Some(f)) if f.is_finite() => {
                let scale = if f.abs() < 1e11 {
                    1e6
                } else if f.abs() < 1e14 {
                    1e3
                } else {
                    1.0
                };
                let micros = (f * scale).floor();
                // Within i64 (the cast saturates; the range check of `_seq` refuses the rest).
                (micros.abs() < 9.2e18).then(|| EventTime::exact(micros as i64))
            }
            _ => None,
        },
        _ => None,
    };
    time.ok_or_else(|| {
        format!("dynamodb.ApproximateCreationDateTime {value} is not a number of seconds, milliseconds or microseconds since the epoch")
    })
}

/// A Kinesis record's `ApproximateCreationDateTime`: milliseconds, or microseconds when
/// `ApproximateCreationDateTimePrecision` is `"MICROSECOND"`.
fn kinesis_time(value: Option<Value>, precision: Option<Value>) -> Result<EventTime, String> {
    let unit = match precision {
        None | Some(Value::Null) => 1_000,
        Some(Value::String(p)) if p == "MILLISECOND" => 1_000,
        Some(Value::String(p)) if p == "MICROSECOND" => 1,
        Some(other) => {
            return Err(format!(
                "dynamodb.ApproximateCreationDateTimePrecision {other} is not MILLISECOND or MICROSECOND"
            ))
        }
    };
    let Some(value) = value else {
        return Err("no dynamodb.ApproximateCreationDateTime in a Kinesis record".into());
    };
    value
        .as_i64()
        .and_then(|v| EventTime::whole(v, unit))
        .ok_or_else(|| {
            let unit = if unit == 1 {
                "microseconds"
            } else {
                "milliseconds"
            };
            format!("dynamodb.ApproximateCreationDateTime {value} is not a whole number of {unit}")
        })
}

/// The row with `_op`, `_seq` and `_event_time` added.
fn finish(
    mut row: Map<String, Value>,
    op: &str,
    time: EventTime,
    rank: Rank,
    tiebreak: Option<&str>,
    event_id: Option<String>,
) -> Result<Change, String> {
    let seq = change_seq(time.latest, rank, tiebreak)?;
    row.insert("_op".into(), Value::String(op.into()));
    row.insert("_seq".into(), Value::String(seq));
    row.insert("_event_time".into(), Value::String(iso_micros(time.micros)));
    Ok(Change { row, event_id })
}

/// The `_seq` of a change at microsecond `t` (the latest its stated time can stand for), of
/// `rank` 0 (full export item), 1 (incremental export line) or 2 (stream or Kinesis record),
/// with a stream record's sequence number as `tiebreak`:
///
/// `_seq = {t:016}{rank}{tiebreak:0>40}`, 57 characters: 16 digits of microseconds since the
/// epoch, the rank digit, and the sequence number zero-padded to 40 digits (40 zeros without
/// one). Text order is event order: later time first decides, then at an equal time a full
/// export loses to an incremental export, which loses to a stream or Kinesis record, then the
/// stream's sequence number. Equal `_seq` (Kinesis records of one item in one millisecond)
/// falls to arrival order. A time before the epoch or after year 2286 does not fit and is an
/// error.
fn change_seq(t: i64, rank: Rank, tiebreak: Option<&str>) -> Result<String, String> {
    if !(0..=9_999_999_999_999_999).contains(&t) {
        return Err(format!(
            "event time {t} µs since the epoch is outside 1970 to 2286, which _seq orders"
        ));
    }
    let tiebreak = tiebreak.unwrap_or("0");
    Ok(format!("{t:016}{}{tiebreak:0>SEQ_WIDTH$}", rank as u8))
}

/// `micros` since the epoch as ISO-8601 UTC text to the microsecond
/// (`2023-11-14T22:13:20.123456Z`), as a timestamp column reads it.
fn iso_micros(micros: i64) -> String {
    let (days, in_day) = (
        micros.div_euclid(86_400_000_000),
        micros.rem_euclid(86_400_000_000),
    );
    let (year, month, day) = civil_from_days(days);
    let secs = in_day / 1_000_000;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        in_day % 1_000_000
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const N38: &str = "12345678901234567890123456789012345678";

    /// An item of every attribute type, nested four levels, as DynamoDB JSON, and as the
    /// plain row it unmarshals to (`NumberMode::Auto`).
    fn every_type() -> (Value, Value) {
        let typed = json!({
            "tenant": {"S": "t1"}, "id": {"N": "7"},
            "price": {"N": "1.25"}, "big": {"N": N38}, "ok": {"BOOL": false},
            "gone": {"NULL": true}, "bin": {"B": "AAE="}, "bins": {"BS": ["AA==", "AQ=="]},
            "tags": {"SS": ["a", "b"]}, "nums": {"NS": ["1", N38, "2.5"]},
            "deep": {"M": {"l": {"L": [{"M": {"x": {"L": [{"N": "3"}, {"S": "y"}]}}}]}}}
        });
        let plain = json!({
            "tenant": "t1", "id": 7, "price": 1.25, "big": N38, "ok": false, "gone": null,
            "bin": "AAE=", "bins": ["AA==", "AQ=="], "tags": ["a", "b"], "nums": [1, N38, 2.5],
            "deep": {"l": [{"x": [3, "y"]}]}
        });
        (typed, plain)
    }

    fn keys() -> Value {
        json!({"tenant": {"S": "t1"}, "id": {"N": "7"}})
    }

    fn row(value: Value, export_time: Option<i64>) -> Map<String, Value> {
        change(value, NumberMode::Auto, export_time)
            .expect("a change")
            .row
    }

    /// The row without `_op`, `_seq`, `_event_time`, and those three.
    fn split(mut row: Map<String, Value>) -> (Value, [String; 3]) {
        let mut take = |k: &str| match row.remove(k) {
            Some(Value::String(s)) => s,
            other => panic!("{k}: {other:?}"),
        };
        let meta = [take("_op"), take("_seq"), take("_event_time")];
        (Value::Object(row), meta)
    }

    #[test]
    fn every_shape_unmarshals_every_type_to_the_same_columns() {
        let (image, plain) = every_type();
        let stream = json!({"eventID": "e1", "eventName": "MODIFY", "eventSource": "aws:dynamodb",
            "dynamodb": {"ApproximateCreationDateTime": 1_700_000_000, "Keys": keys(),
                "NewImage": image, "OldImage": {"id": {"N": "7"}}, "SequenceNumber": "12345",
                "SizeBytes": 99, "StreamViewType": "NEW_AND_OLD_IMAGES"}});
        let kinesis = json!({"awsRegion": "eu-west-1", "eventID": "k1", "eventName": "INSERT",
            "userIdentity": null, "recordFormat": "application/json", "tableName": "orders",
            "eventSource": "aws:dynamodb",
            "dynamodb": {"ApproximateCreationDateTime": 1_700_000_000_123_i64, "Keys": keys(),
                "NewImage": image, "SizeBytes": 99}});
        let kinesis_us = json!({"eventID": "k2", "eventName": "MODIFY", "tableName": "orders",
            "dynamodb": {"ApproximateCreationDateTime": 1_700_000_000_123_456_i64,
                "ApproximateCreationDateTimePrecision": "MICROSECOND",
                "Keys": keys(), "NewImage": image}});
        let full = json!({"Item": image});
        let incremental = json!({"Metadata": {"WriteTimestampMicros": {"N": "1700000000654321"}},
            "Keys": keys(), "OldImage": {"id": {"N": "7"}}, "NewImage": image});
        let zeros = "0".repeat(40);
        let cases = [
            (
                stream,
                None,
                [
                    "MODIFY".to_string(),
                    format!("17000000009999992{:0>40}", "12345"),
                    "2023-11-14T22:13:20.000000Z".to_string(),
                ],
            ),
            (
                kinesis,
                None,
                [
                    "INSERT".into(),
                    format!("17000000001239992{zeros}"),
                    "2023-11-14T22:13:20.123000Z".into(),
                ],
            ),
            (
                kinesis_us,
                None,
                [
                    "MODIFY".into(),
                    format!("17000000001234562{zeros}"),
                    "2023-11-14T22:13:20.123456Z".into(),
                ],
            ),
            (
                full,
                Some(1_700_000_000_500_000),
                [
                    "EXPORT".into(),
                    format!("17000000005000000{zeros}"),
                    "2023-11-14T22:13:20.500000Z".into(),
                ],
            ),
            (
                incremental,
                None,
                [
                    "MODIFY".into(),
                    format!("17000000006543211{zeros}"),
                    "2023-11-14T22:13:20.654321Z".into(),
                ],
            ),
        ];
        for (record, export_time, meta) in cases {
            let (columns, got) = split(row(record.clone(), export_time));
            assert_eq!(columns, plain, "{record}");
            assert_eq!(got, meta, "{record}");
            assert_eq!(got[1].len(), CHANGE_SEQ_WIDTH);
        }
    }

    #[test]
    fn event_ids_are_kept_for_stream_and_kinesis_records_only() {
        let kinesis = json!({"eventID": "abc", "eventName": "REMOVE", "recordFormat": "application/json",
            "dynamodb": {"ApproximateCreationDateTime": 1_700_000_000_000_i64, "Keys": keys(),
                "NewImage": {"x": {"S": "ignored for a delete"}}}});
        let got = change(kinesis, NumberMode::Auto, None).expect("kinesis");
        assert_eq!(got.event_id.as_deref(), Some("abc"));
        assert_eq!(
            Value::Object(got.row),
            json!({"tenant": "t1", "id": 7, "_op": "REMOVE",
                "_seq": format!("17000000000009992{}", "0".repeat(40)),
                "_event_time": "2023-11-14T22:13:20.000000Z"})
        );
        let full = change(json!({"Item": keys()}), NumberMode::Auto, Some(0)).expect("item");
        assert_eq!(full.event_id, None);
    }

    #[test]
    fn an_incremental_line_without_new_image_is_a_delete_of_its_keys() {
        let line = json!({"Metadata": {"WriteTimestampMicros": {"N": "1700000000000001"}},
            "Keys": keys(), "OldImage": {"tenant": {"S": "t1"}, "id": {"N": "7"}, "x": {"N": "1"}}});
        assert_eq!(
            Value::Object(row(line, None)),
            json!({"tenant": "t1", "id": 7, "_op": "REMOVE",
                "_seq": format!("17000000000000011{}", "0".repeat(40)),
                "_event_time": "2023-11-14T22:13:20.000001Z"})
        );
        // Number modes apply to every shape.
        let line = json!({"Metadata": {"WriteTimestampMicros": {"N": "1700000000000001"}},
            "Keys": {"id": {"N": "0.10"}}, "NewImage": {"id": {"N": "0.10"}, "n": {"N": "3"}}});
        let exact = change(line.clone(), NumberMode::String, None).expect("line");
        assert_eq!(
            (&exact.row["id"], &exact.row["n"]),
            (&json!("0.10"), &json!("3"))
        );
        let doubles = change(line, NumberMode::Double, None).expect("line");
        assert_eq!(doubles.row["n"], json!(3.0));
    }

    #[test]
    fn seq_orders_an_items_changes_across_shapes() {
        let export_at = 1_700_000_000_500_000; // 22:13:20.5
        let stream = |seconds: i64, seq: &str| {
            json!({"eventName": "MODIFY", "dynamodb": {"ApproximateCreationDateTime": seconds,
                "Keys": keys(), "SequenceNumber": seq}})
        };
        let kinesis = |millis: i64| {
            json!({"eventName": "MODIFY", "tableName": "t", "dynamodb": {
                "ApproximateCreationDateTime": millis, "Keys": keys()}})
        };
        let incremental = |micros: i64| {
            json!({"Metadata": {"WriteTimestampMicros": {"N": micros.to_string()}},
                "Keys": keys(), "NewImage": keys()})
        };
        let seq = |v: Value| match &row(v, Some(export_at))["_seq"] {
            Value::String(s) => s.clone(),
            other => panic!("{other}"),
        };
        // Oldest first, as `_seq` must sort them.
        let in_order = [
            (
                "a stream change a second before",
                seq(stream(1_699_999_999, "900")),
            ),
            (
                "an incremental write before",
                seq(incremental(export_at - 1)),
            ),
            ("the export", seq(json!({"Item": keys()}))),
            (
                "an incremental write at the export's time",
                seq(incremental(export_at)),
            ),
            (
                "a Kinesis change in the export's millisecond",
                seq(kinesis(1_700_000_000_500)),
            ),
            (
                "an incremental write after",
                seq(incremental(export_at + 300_000)),
            ),
            // AWS rounds stream times down: a change in the export's second may be after it.
            (
                "a stream change in the export's second",
                seq(stream(1_700_000_000, "1000")),
            ),
            (
                "the next stream change in that second",
                seq(stream(1_700_000_000, "1001")),
            ),
            (
                "a Kinesis change in the next second",
                seq(kinesis(1_700_000_001_000)),
            ),
        ];
        for pair in in_order.windows(2) {
            assert!(
                pair[0].1 < pair[1].1,
                "{} before {}: {pair:?}",
                pair[0].0,
                pair[1].0
            );
        }
    }

    /// One change of a generated DynamoDB history: `value` `None` is a delete.
    #[derive(Debug, Clone, Copy)]
    struct Written {
        key: u32,
        micros: i64,
        value: Option<i64>,
        op: &'static str,
    }

    /// `n` changes of 12 items, time-ordered, many in one millisecond and some of one item
    /// in one microsecond.
    fn history(seed: u64, n: usize) -> Vec<Written> {
        let mut state = seed;
        let mut next = |m: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % m) as i64
        };
        let mut exists = std::collections::HashSet::new();
        let mut micros = 1_700_000_000_000_000;
        (0..n)
            .map(|i| {
                micros += next(1_500);
                let key = next(12) as u32;
                let (op, value) = if !exists.contains(&key) {
                    ("INSERT", Some(i as i64))
                } else if next(5) == 0 {
                    ("REMOVE", None)
                } else {
                    ("MODIFY", Some(i as i64))
                };
                if value.is_some() {
                    exists.insert(key);
                } else {
                    exists.remove(&key);
                }
                Written {
                    key,
                    micros,
                    value,
                    op,
                }
            })
            .collect()
    }

    /// The items after `changes`, by key.
    fn model(changes: &[Written]) -> std::collections::BTreeMap<u32, i64> {
        let mut table = std::collections::BTreeMap::new();
        for c in changes {
            match c.value {
                Some(v) => table.insert(c.key, v),
                None => table.remove(&c.key),
            };
        }
        table
    }

    fn image(key: u32, value: i64) -> String {
        format!("{{\"id\":{{\"N\":\"{key}\"}},\"v\":{{\"N\":\"{value}\"}}}}")
    }

    /// Files (name, text) of Kinesis records of `changes` as Firehose writes them: one file
    /// per second, records concatenated, every fifth delivered twice.
    fn kinesis_files(changes: &[Written], first: usize) -> Vec<(String, String)> {
        let mut files: Vec<(String, String)> = Vec::new();
        for (i, c) in changes.iter().enumerate().skip(first) {
            let name = format!("kinesis/{}", c.micros / 1_000_000);
            let image = c
                .value
                .map(|v| format!(",\"NewImage\":{}", image(c.key, v)))
                .unwrap_or_default();
            let record = format!(
                "{{\"eventID\":\"ev{i}\",\"eventName\":\"{}\",\"recordFormat\":\"application/json\",\"tableName\":\"t\",\"dynamodb\":{{\"ApproximateCreationDateTime\":{},\"Keys\":{{\"id\":{{\"N\":\"{}\"}}}}{image}}}}}",
                c.op,
                c.micros / 1_000,
                c.key
            );
            let copies = if i % 5 == 0 { 2 } else { 1 };
            match files.last_mut() {
                Some((last, text)) if *last == name => text.push_str(&record.repeat(copies)),
                _ => files.push((name, record.repeat(copies))),
            }
        }
        files
    }

    /// Files of an incremental export of `changes` from `first` on, one per 40 ms window:
    /// each item changed in a window once, with its latest image and write time.
    fn incremental_files(changes: &[Written], first: usize) -> Vec<(String, String)> {
        let mut windows: std::collections::BTreeMap<i64, std::collections::BTreeMap<u32, Written>> =
            std::collections::BTreeMap::new();
        for c in &changes[first..] {
            windows
                .entry(c.micros / 40_000)
                .or_default()
                .insert(c.key, *c);
        }
        windows
            .into_iter()
            .map(|(w, latest)| {
                let lines: String = latest
                    .values()
                    .map(|c| {
                        let image = c
                            .value
                            .map(|v| format!(",\"NewImage\":{}", image(c.key, v)))
                            .unwrap_or_default();
                        format!(
                            "{{\"Metadata\":{{\"WriteTimestampMicros\":{{\"N\":\"{}\"}}}},\"Keys\":{{\"id\":{{\"N\":\"{}\"}}}}{image}}}\n",
                            c.micros, c.key
                        )
                    })
                    .collect();
                (format!("incremental/{w}"), lines)
            })
            .collect()
    }

    /// Merges the rows of `files` in the order given as the engine does: per item the row of
    /// the highest `_seq` wins, an equal one replaces (arrival order), a delete is kept as a
    /// tombstone so that an older row cannot bring the item back.
    fn merge(
        files: &[(String, String)],
        export_time: i64,
    ) -> (std::collections::BTreeMap<u32, i64>, u64) {
        let schema = std::sync::Arc::new(arrow::datatypes::Schema::new(
            ["id", "v", "_op", "_seq"]
                .map(|n| {
                    let t = if n.starts_with('_') {
                        arrow::datatypes::DataType::Utf8
                    } else {
                        arrow::datatypes::DataType::Int64
                    };
                    arrow::datatypes::Field::new(n, t, true)
                })
                .to_vec(),
        ));
        let csv = crate::CsvOptions::default();
        let mut table: std::collections::BTreeMap<u32, (String, Option<i64>)> =
            std::collections::BTreeMap::new();
        let mut duplicates = 0;
        for (name, text) in files {
            let opts = crate::DecodeOptions {
                format: crate::Format::Dynamodb,
                numbers: NumberMode::Auto,
                multiline: false,
                export_time_micros: name.starts_with("export").then_some(export_time),
                csv: &csv,
                mode: inlet_schema::EvolutionMode::None,
                rescued_column: None,
                infer_types: true,
                hints: &[],
                partition_columns: &[],
                known_to_fit: false,
            };
            let data = bytes::Bytes::from(text.clone());
            let crate::Decoded::Rows {
                batches,
                bad_records,
                duplicates: dropped,
                ..
            } = crate::decode(name, &data, &schema, &opts).expect("decode")
            else {
                panic!("rows")
            };
            assert!(bad_records.is_empty(), "{bad_records:?}");
            duplicates += dropped;
            for batch in batches {
                let column = |i: usize| batch.column(i).clone();
                let (ids, values, ops, seqs) = (column(0), column(1), column(2), column(3));
                let ints = |a: &arrow::array::ArrayRef| {
                    a.as_any()
                        .downcast_ref::<arrow::array::Int64Array>()
                        .expect("ints")
                        .clone()
                };
                let texts = |a: &arrow::array::ArrayRef| {
                    a.as_any()
                        .downcast_ref::<arrow::array::StringArray>()
                        .expect("texts")
                        .clone()
                };
                let (ids, values, ops, seqs) =
                    (ints(&ids), ints(&values), texts(&ops), texts(&seqs));
                for r in 0..batch.num_rows() {
                    let key = ids.value(r) as u32;
                    let seq = seqs.value(r).to_string();
                    if table.get(&key).is_some_and(|(held, _)| *held > seq) {
                        continue; // older than what the table holds, or than its tombstone
                    }
                    let value = (ops.value(r) != "REMOVE").then(|| values.value(r));
                    table.insert(key, (seq, value));
                }
            }
        }
        let live = table
            .into_iter()
            .filter_map(|(k, (_, v))| v.map(|v| (k, v)))
            .collect();
        (live, duplicates)
    }

    /// `files` in an order drawn by `seed` (discovery order is not time order).
    fn shuffled(mut files: Vec<(String, String)>, seed: u64) -> Vec<(String, String)> {
        let mut state = seed | 1;
        for i in (1..files.len()).rev() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            files.swap(i, (state % (i as u64 + 1)) as usize);
        }
        files
    }

    #[test]
    fn an_export_then_kinesis_and_incremental_changes_merge_to_the_table_in_any_file_order() {
        for seed in 1..=12u64 {
            let mut changes = history(0x9e37_79b9_7f4a_7c15 ^ seed, 800);
            let at = 300 + (seed as usize * 37) % 200;
            // An item written at the export's time and changed again a microsecond later, in
            // the same millisecond: only the export and that change hold it.
            changes[at] = Written {
                key: 99,
                value: Some(-1),
                op: "INSERT",
                ..changes[at]
            };
            for c in &mut changes[at + 1..] {
                c.micros += 1;
            }
            changes[at + 1] = Written {
                key: 99,
                micros: changes[at].micros + 1,
                value: Some(-2),
                op: "MODIFY",
            };
            // The export holds every change up to its time, which may share a millisecond
            // (or a microsecond) with changes after it.
            let export_time = changes[at].micros;
            let held = changes.partition_point(|c| c.micros <= export_time);
            let items: String = model(&changes[..held])
                .into_iter()
                .map(|(k, v)| format!("{{\"Item\":{}}}\n", image(k, v)))
                .collect();
            let export = ("export/AWSDynamoDB/x/data/a.json".to_string(), items);
            // Change sources start before the export and hold every change after they start.
            let kinesis = kinesis_files(&changes, at.saturating_sub(120 + seed as usize));
            let incremental = incremental_files(&changes, at.saturating_sub(60));
            let truth = model(&changes);
            for (what, sources) in [
                ("kinesis", vec![kinesis.clone()]),
                ("incremental", vec![incremental.clone()]),
                ("both", vec![kinesis.clone(), incremental.clone()]),
            ] {
                let mut files = vec![export.clone()];
                files.extend(sources.into_iter().flatten());
                let (table, duplicates) = merge(&shuffled(files, seed), export_time);
                assert_eq!(table, truth, "seed {seed}, {what}");
                if what != "incremental" {
                    assert!(duplicates > 0, "seed {seed}: repeats were dropped");
                }
            }
        }
    }

    #[test]
    fn stream_times_are_read_by_magnitude() {
        let at = |t: Value| {
            let record = json!({"eventName": "INSERT", "dynamodb": {
                "ApproximateCreationDateTime": t, "Keys": keys(), "SequenceNumber": "1"}});
            let (_, [_, seq, time]) = split(row(record, None));
            (seq[..16].to_string(), time)
        };
        let when = "2023-11-14T22:13:20";
        assert_eq!(
            at(json!(1_700_000_000)),
            ("1700000000999999".into(), format!("{when}.000000Z"))
        );
        assert_eq!(
            at(json!(1_700_000_000_250_i64)),
            ("1700000000250999".into(), format!("{when}.250000Z"))
        );
        assert_eq!(
            at(json!(1_700_000_000_250_001_i64)),
            ("1700000000250001".into(), format!("{when}.250001Z"))
        );
        assert_eq!(
            at(json!(1_700_000_000_250_001_999_i64)),
            ("1700000000250001".into(), format!("{when}.250001Z"))
        );
        assert_eq!(
            at(json!(1_700_000_000.25)),
            ("1700000000250000".into(), format!("{when}.250000Z"))
        );
    }

    #[test]
    fn records_of_no_accepted_shape_say_which_shapes_are() {
        let err = |v: Value, export_time| {
            change(v, NumberMode::Auto, export_time).expect_err("not a change")
        };
        assert_eq!(
            err(json!({"id": 1}), None),
            format!("not a DynamoDB record: {ACCEPTED_SHAPES}")
        );
        assert!(
            ACCEPTED_SHAPES.contains("stream records")
                && ACCEPTED_SHAPES.contains("Kinesis Data Streams records")
                && ACCEPTED_SHAPES.contains("full export items")
                && ACCEPTED_SHAPES.contains("incremental export lines")
        );
        assert_eq!(
            err(json!(5), None),
            format!("a DynamoDB record is a JSON object, not a number; {ACCEPTED_SHAPES}")
        );
        assert_eq!(
            err(json!({"Item": keys()}), None),
            "a full export item's time is the export's, which is unknown: manifest-summary.json \
             was not found beside AWSDynamoDB/<export-id>/data/"
        );
        assert_eq!(
            err(
                json!({"eventName": "INSERT", "dynamodb": {"Keys": keys(),
                "ApproximateCreationDateTime": 1}}),
                None
            ),
            "no dynamodb.SequenceNumber (a stream record) and no recordFormat or tableName \
             (a Kinesis Data Streams record)"
        );
        assert_eq!(
            err(
                json!({"eventName": "INSERT", "dynamodb": {"Keys": keys(),
                "SequenceNumber": "12a"}}),
                None
            ),
            "dynamodb.SequenceNumber \"12a\" is not a decimal number of at most 40 digits"
        );
        assert_eq!(
            err(
                json!({"eventName": "INSERT", "dynamodb": {"Keys": keys(),
                "SequenceNumber": "12"}}),
                None
            ),
            "no dynamodb.ApproximateCreationDateTime: a change's time orders it against exports"
        );
        assert_eq!(
            err(json!({"eventName": "INSERT", "tableName": "t", "dynamodb": {"Keys": keys(),
                "ApproximateCreationDateTime": 1, "ApproximateCreationDateTimePrecision": "SECOND"}}), None),
            "dynamodb.ApproximateCreationDateTimePrecision \"SECOND\" is not MILLISECOND or MICROSECOND"
        );
        assert_eq!(
            err(
                json!({"eventName": "INSERT", "tableName": "t", "dynamodb": {"Keys": keys(),
                "ApproximateCreationDateTime": 1.5}}),
                None
            ),
            "dynamodb.ApproximateCreationDateTime 1.5 is not a whole number of milliseconds"
        );
        assert_eq!(
            err(json!({"Metadata": {}, "Keys": keys()}), None),
            "no Metadata.WriteTimestampMicros: not an incremental export line"
        );
        assert_eq!(
            err(
                json!({"Metadata": {"WriteTimestampMicros": {"N": "soon"}}, "Keys": keys()}),
                None
            ),
            "Metadata.WriteTimestampMicros {\"N\":\"soon\"} is not {\"N\": \"<microseconds>\"}"
        );
        assert_eq!(
            err(
                json!({"Metadata": {"WriteTimestampMicros": {"N": "-5"}}, "Keys": keys()}),
                None
            ),
            "event time -5 µs since the epoch is outside 1970 to 2286, which _seq orders"
        );
        assert_eq!(
            err(
                json!({"eventName": "INSERT", "tableName": "t", "dynamodb": {
                "Keys": {"id": {"N": "x"}}, "ApproximateCreationDateTime": 1}}),
                None
            ),
            "attribute id: N holds \"x\", not a number"
        );
    }

    #[test]
    fn times_are_written_as_iso_8601_utc() {
        assert_eq!(iso_micros(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(
            iso_micros(951_782_400_000_000),
            "2000-02-29T00:00:00.000000Z"
        );
        assert_eq!(
            iso_micros(951_868_799_999_999),
            "2000-02-29T23:59:59.999999Z"
        );
        assert_eq!(
            iso_micros(1_709_164_800_000_001),
            "2024-02-29T00:00:00.000001Z"
        );
        assert_eq!(
            iso_micros(4_102_444_800_000_000),
            "2100-01-01T00:00:00.000000Z"
        );
        assert_eq!(
            iso_micros(9_999_999_999_999_999),
            "2286-11-20T17:46:39.999999Z"
        );
    }
}
