//! DynamoDB records into plain JSON objects: stream records (as Lambda, EventBridge Pipes or
//! Kinesis write them) and export-to-S3 items, typed attribute values unmarshalled.

use serde::Deserialize;
use serde_json::{Map, Number, Value};

/// Width `_seq` is zero-padded to, so that text order is number order (DynamoDB sequence
/// numbers are decimal strings of up to 40 digits).
pub const SEQ_WIDTH: usize = 40;

/// How DynamoDB `N` values become JSON numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum NumberMode {
    /// Integers (written without a fraction or exponent) within BIGINT's range as BIGINT;
    /// larger integers as their exact text (a string: the column infers STRING, or the value
    /// is rescued whole from a BIGINT column; never rounded to a double); others as DOUBLE.
    #[default]
    Auto,
    /// Every number as DOUBLE.
    Double,
    /// Every number as its exact text (hint a `DECIMAL(p, s)` to store it as a decimal).
    String,
}

/// A stream record (`{"eventName", "dynamodb": {...}}`) as a row: the keys and new image,
/// plus `_op`, `_seq` and `_event_time`. (`{"Records": [...]}` events are split by
/// `json.rs`, so that each record that fails is reported with its own text.)
pub(crate) fn stream_record(
    value: Value,
    numbers: NumberMode,
) -> Result<Map<String, Value>, String> {
    let Value::Object(mut record) = value else {
        return Err("a DynamoDB stream record is a JSON object".into());
    };
    let op = match record.remove("eventName") {
        Some(Value::String(op)) if matches!(op.as_str(), "INSERT" | "MODIFY" | "REMOVE") => op,
        Some(other) => return Err(format!("eventName {other} is not INSERT, MODIFY or REMOVE")),
        None => return Err("no eventName: not a DynamoDB stream record".into()),
    };
    let Some(Value::Object(mut ddb)) = record.remove("dynamodb") else {
        return Err("no \"dynamodb\" object: not a DynamoDB stream record".into());
    };
    let mut row = change_row(&mut ddb, &op, numbers)?;
    let seq = match ddb.remove("SequenceNumber") {
        Some(Value::String(s)) => pad_seq(&s),
        Some(Value::Number(n)) => pad_seq(&n.to_string()),
        _ => return Err("no dynamodb.SequenceNumber".into()),
    };
    row.insert("_op".into(), Value::String(op));
    row.insert("_seq".into(), Value::String(seq));
    row.insert(
        "_event_time".into(),
        ddb.remove("ApproximateCreationDateTime")
            .unwrap_or(Value::Null),
    );
    Ok(row)
}

/// A change's row from its `dynamodb` object: the keys and, unless the change is a REMOVE,
/// the new image (a KEYS_ONLY stream has none: the row is its keys).
pub(crate) fn change_row(
    ddb: &mut Map<String, Value>,
    op: &str,
    numbers: NumberMode,
) -> Result<Map<String, Value>, String> {
    let Some(Value::Object(keys)) = ddb.remove("Keys") else {
        return Err("no dynamodb.Keys".into());
    };
    let mut row = item(keys, numbers)?;
    if op != "REMOVE" {
        match ddb.remove("NewImage") {
            Some(Value::Object(image)) => row.extend(item(image, numbers)?),
            Some(_) => return Err("dynamodb.NewImage is not an object".into()),
            None => {}
        }
    }
    Ok(row)
}

/// An export file line (`{"Item": {...}}`) as a row; `_op` is `EXPORT` and `_seq` is all
/// zeros, older than any stream record, so a stream replayed over a backfill wins.
pub(crate) fn export_item(value: Value, numbers: NumberMode) -> Result<Map<String, Value>, String> {
    let Value::Object(mut map) = value else {
        return Err("a DynamoDB export line is a JSON object".into());
    };
    let Some(Value::Object(attrs)) = map.remove("Item") else {
        return Err("no \"Item\" object: not a DynamoDB export line".into());
    };
    let mut row = item(attrs, numbers)?;
    row.insert("_op".into(), Value::String("EXPORT".into()));
    row.insert("_seq".into(), Value::String("0".repeat(SEQ_WIDTH)));
    row.insert("_event_time".into(), Value::Null);
    Ok(row)
}

fn pad_seq(s: &str) -> String {
    if s.len() < SEQ_WIDTH && s.bytes().all(|b| b.is_ascii_digit()) {
        format!("{s:0>SEQ_WIDTH$}")
    } else {
        s.to_string()
    }
}

/// The typed attribute values of an item (`{"id": {"N": "1"}}`) as a plain JSON object.
pub(crate) fn item(
    attrs: Map<String, Value>,
    numbers: NumberMode,
) -> Result<Map<String, Value>, String> {
    attrs
        .into_iter()
        .map(|(k, v)| {
            attribute(v, numbers)
                .map(|v| (k.clone(), v))
                .map_err(|e| format!("attribute {k}: {e}"))
        })
        .collect()
}

/// One typed attribute value (`{"S": "x"}`, `{"N": "1"}`, ...) as plain JSON.
fn attribute(value: Value, numbers: NumberMode) -> Result<Value, String> {
    let Value::Object(map) = value else {
        return Err(format!("{value} is not a typed attribute value"));
    };
    let mut entries = map.into_iter();
    let (Some((tag, inner)), None) = (entries.next(), entries.next()) else {
        return Err("a typed attribute value has exactly one type key".into());
    };
    let list = |inner: Value| match inner {
        Value::Array(items) => Ok(items),
        other => Err(format!("{tag} holds {other}, not a list")),
    };
    Ok(match tag.as_str() {
        "S" | "B" => match inner {
            Value::String(s) => Value::String(s),
            other => return Err(format!("{tag} holds {other}, not a string")),
        },
        "N" => number(&inner, numbers)?,
        "BOOL" => match inner {
            Value::Bool(b) => Value::Bool(b),
            other => return Err(format!("BOOL holds {other}")),
        },
        "NULL" => Value::Null,
        "M" => match inner {
            Value::Object(m) => Value::Object(item(m, numbers)?),
            other => return Err(format!("M holds {other}, not an object")),
        },
        "L" => Value::Array(
            list(inner)?
                .into_iter()
                .map(|v| attribute(v, numbers))
                .collect::<Result<_, _>>()?,
        ),
        "SS" | "BS" => Value::Array(list(inner)?),
        "NS" => Value::Array(
            list(inner)?
                .iter()
                .map(|v| number(v, numbers))
                .collect::<Result<_, _>>()?,
        ),
        other => return Err(format!("unknown attribute type {other}")),
    })
}

fn number(inner: &Value, numbers: NumberMode) -> Result<Value, String> {
    let text = match inner {
        Value::String(s) => s.as_str(),
        other => return Err(format!("N holds {other}, not a string")),
    };
    let bad = || format!("N holds \"{text}\", not a number");
    Ok(match numbers {
        NumberMode::String => {
            text.parse::<f64>().map_err(|_| bad())?;
            Value::String(text.to_string())
        }
        NumberMode::Auto if !text.contains(['.', 'e', 'E']) => match text.parse::<i64>() {
            Ok(i) => Value::from(i),
            // Beyond i64 (DynamoDB keeps 38 digits): the exact text, as a double would round.
            Err(_) if is_integer(text) => Value::String(text.to_string()),
            Err(_) => return Err(bad()),
        },
        NumberMode::Auto | NumberMode::Double => float(text).ok_or_else(bad)?,
    })
}

/// An optional sign, then one or more decimal digits.
fn is_integer(text: &str) -> bool {
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

fn float(text: &str) -> Option<Value> {
    text.parse::<f64>()
        .ok()
        .and_then(Number::from_f64)
        .map(Value::Number)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn stream_records_unmarshal_every_type() {
        let rec = json!({"Records": [
            {"eventID": "1", "eventName": "MODIFY", "dynamodb": {
                "ApproximateCreationDateTime": 1700000000,
                "Keys": {"tenant": {"S": "t1"}, "id": {"N": "7"}},
                "NewImage": {"tenant": {"S": "t1"}, "id": {"N": "7"}, "price": {"N": "1.25"},
                    "ok": {"BOOL": true}, "gone": {"NULL": true}, "tags": {"SS": ["a", "b"]},
                    "nums": {"NS": ["1", "2"]}, "m": {"M": {"x": {"L": [{"N": "3"}, {"S": "y"}]}}},
                    "bin": {"B": "AAE="}},
                "SequenceNumber": "12345"}},
            {"eventName": "REMOVE", "dynamodb": {"Keys": {"tenant": {"S": "t1"}, "id": {"N": "8"}},
                "OldImage": {"price": {"N": "9"}}, "SequenceNumber": "12346"}}
        ]});
        let rows: Vec<Map<String, Value>> = rec["Records"]
            .as_array()
            .expect("records")
            .iter()
            .map(|r| stream_record(r.clone(), NumberMode::Auto).expect("record"))
            .collect();
        assert_eq!(
            Value::Object(rows[0].clone()),
            json!({"tenant": "t1", "id": 7, "price": 1.25, "ok": true, "gone": null, "tags": ["a", "b"],
                   "nums": [1, 2], "m": {"x": [3, "y"]}, "bin": "AAE=", "_op": "MODIFY",
                   "_seq": format!("{:0>40}", "12345"), "_event_time": 1700000000})
        );
        assert_eq!(
            Value::Object(rows[1].clone()),
            json!({"tenant": "t1", "id": 8, "_op": "REMOVE", "_seq": format!("{:0>40}", "12346"), "_event_time": null})
        );
        let err = stream_record(json!({"eventName": "INSERT", "dynamodb": {"Keys": {"id": {"N": "x"}}, "SequenceNumber": "1"}}), NumberMode::Auto)
            .expect_err("bad number");
        assert_eq!(err, "attribute id: N holds \"x\", not a number");
        let exact = stream_record(json!({"eventName": "INSERT", "dynamodb": {"Keys": {"id": {"N": "0.10"}}, "SequenceNumber": "1"}}), NumberMode::String)
            .expect("string mode");
        assert_eq!(exact["id"], "0.10");
    }

    #[test]
    fn export_lines_are_oldest() {
        let rows = export_item(
            json!({"Item": {"id": {"N": "1"}, "name": {"S": "a"}}}),
            NumberMode::Double,
        )
        .expect("item");
        assert_eq!(rows["id"], 1.0);
        assert_eq!(rows["_op"], "EXPORT");
        assert!(rows["_seq"]
            .as_str()
            .expect("seq")
            .chars()
            .all(|c| c == '0'));
    }

    #[test]
    fn auto_numbers_beyond_bigint_keep_their_exact_text() {
        let n38 = "12345678901234567890123456789012345678";
        let stream = stream_record(
            json!({"eventName": "INSERT", "dynamodb": {"Keys": {"id": {"N": n38}},
                "NewImage": {"id": {"N": n38}, "small": {"N": "-9223372036854775808"},
                    "big": {"N": "9223372036854775808"}, "f": {"N": "1.5"}, "e": {"N": "1E+3"},
                    "ns": {"NS": ["1", n38]}},
                "SequenceNumber": "1"}}),
            NumberMode::Auto,
        )
        .expect("record");
        assert_eq!(
            (&stream["id"], &stream["small"], &stream["big"]),
            (&json!(n38), &json!(i64::MIN), &json!("9223372036854775808"))
        );
        assert_eq!((&stream["f"], &stream["e"]), (&json!(1.5), &json!(1000.0)));
        assert_eq!(stream["ns"], json!([1, n38]));
        let export =
            export_item(json!({"Item": {"id": {"N": n38}}}), NumberMode::Auto).expect("item");
        assert_eq!(export["id"], json!(n38));
        let err = export_item(json!({"Item": {"id": {"N": "12x"}}}), NumberMode::Auto)
            .expect_err("not a number");
        assert_eq!(err, "attribute id: N holds \"12x\", not a number");
    }
}
