//! S3 event notifications as they reach an SQS queue: direct S3 events, S3 events inside an
//! SNS envelope, and EventBridge "Object Created" events, parsed into plain records.

use serde::Deserialize;
use serde_json::Value;

/// One object created, as a notification describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectCreated {
    pub bucket: String,
    /// The key as stored (URL-decoding undone: `a+b%2B.json` → `a b+.json`).
    pub key: String,
    pub size: u64,
    /// Without quotes ("" when the event has none).
    pub etag: String,
    /// When S3 says the event happened, ms since the Unix epoch (0 when absent).
    pub event_time_ms: i64,
}

/// What one SQS message body holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notification {
    /// Objects created (possibly none, when every record was of another kind).
    Created {
        objects: Vec<ObjectCreated>,
        /// Records of other kinds (ObjectRemoved, ...), acknowledged and ignored.
        ignored: usize,
    },
    /// `s3:TestEvent`, sent when a bucket's notification configuration is set.
    TestEvent,
}

/// Why a message body is not a notification inlet understands. Such a message is left on
/// the queue for its redrive policy; `detail` is serde_json's own account of the fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotificationParseError {
    #[error("not JSON: {detail}")]
    NotJson { detail: String },

    #[error("not a JSON object")]
    NotAnObject,

    #[error("SNS notification without a Message string")]
    SnsWithoutMessage,

    #[error("SNS envelope inside an SNS envelope")]
    NestedSnsEnvelope,

    #[error("SNS Message is not JSON: {detail}")]
    SnsMessageNotJson { detail: String },

    #[error("Records is not a list")]
    RecordsNotAList,

    /// A record without `s3.bucket.name` or `s3.object.key`, or with a field of the wrong
    /// type.
    #[error("a record is not an S3 event record: {detail}")]
    NotAnS3Record { detail: String },

    #[error("EventBridge event without detail")]
    EventBridgeWithoutDetail,

    /// An EventBridge `detail` without `bucket.name` or `object.key`.
    #[error("EventBridge detail is not an S3 object event: {detail}")]
    NotAnS3ObjectEvent { detail: String },

    #[error("neither an S3 event (Records), an SNS envelope, nor an EventBridge S3 event")]
    UnknownShape,

    /// The object key, as the event wrote it, does not percent-decode to UTF-8.
    #[error("object key '{key}' is not UTF-8 once decoded")]
    KeyNotUtf8 { key: String },
}

#[derive(Deserialize)]
struct S3Record {
    #[serde(rename = "eventName", default)]
    event_name: String,
    #[serde(rename = "eventTime", default)]
    event_time: Option<String>,
    s3: S3Entity,
}

#[derive(Deserialize)]
struct S3Entity {
    bucket: Named,
    object: S3Object,
}

#[derive(Deserialize)]
struct Named {
    name: String,
}

#[derive(Deserialize)]
struct S3Object {
    key: String,
    #[serde(default)]
    size: u64,
    #[serde(rename = "eTag", alias = "etag", default)]
    etag: Option<String>,
}

/// Parses one SQS message body.
pub fn parse_notification(body: &str) -> Result<Notification, NotificationParseError> {
    let value: Value = serde_json::from_str(body).map_err(|e| NotificationParseError::NotJson {
        detail: e.to_string(),
    })?;
    parse_value(&value, 0)
}

fn parse_value(value: &Value, depth: u8) -> Result<Notification, NotificationParseError> {
    let Some(obj) = value.as_object() else {
        return Err(NotificationParseError::NotAnObject);
    };
    if obj.get("Event").and_then(Value::as_str) == Some("s3:TestEvent") {
        return Ok(Notification::TestEvent);
    }
    // SNS envelope: the S3 event is a JSON string in `Message`.
    if obj.get("Type").and_then(Value::as_str) == Some("Notification") {
        let Some(inner) = obj.get("Message").and_then(Value::as_str) else {
            return Err(NotificationParseError::SnsWithoutMessage);
        };
        if depth > 0 {
            return Err(NotificationParseError::NestedSnsEnvelope);
        }
        let inner: Value =
            serde_json::from_str(inner).map_err(|e| NotificationParseError::SnsMessageNotJson {
                detail: e.to_string(),
            })?;
        return parse_value(&inner, depth + 1);
    }
    if let Some(records) = obj.get("Records") {
        let records: Vec<Value> = serde_json::from_value(records.clone())
            .map_err(|_| NotificationParseError::RecordsNotAList)?;
        let mut objects = Vec::new();
        let mut ignored = 0;
        for record in records {
            let record: S3Record = serde_json::from_value(record).map_err(|e| {
                NotificationParseError::NotAnS3Record {
                    detail: e.to_string(),
                }
            })?;
            if !record.event_name.starts_with("ObjectCreated:") {
                ignored += 1;
                continue;
            }
            objects.push(ObjectCreated {
                bucket: record.s3.bucket.name,
                key: decode_key(&record.s3.object.key)?,
                size: record.s3.object.size,
                etag: unquote(record.s3.object.etag.as_deref().unwrap_or_default()),
                event_time_ms: record.event_time.as_deref().map(time_ms).unwrap_or(0),
            });
        }
        return Ok(Notification::Created { objects, ignored });
    }
    // EventBridge: {"source": "aws.s3", "detail-type": "Object Created", "detail": {...}}.
    if obj.get("source").and_then(Value::as_str) == Some("aws.s3") {
        if obj.get("detail-type").and_then(Value::as_str) != Some("Object Created") {
            return Ok(Notification::Created {
                objects: Vec::new(),
                ignored: 1,
            });
        }
        let Some(detail) = obj.get("detail") else {
            return Err(NotificationParseError::EventBridgeWithoutDetail);
        };
        let entity: S3Entity = serde_json::from_value(detail.clone()).map_err(|e| {
            NotificationParseError::NotAnS3ObjectEvent {
                detail: e.to_string(),
            }
        })?;
        return Ok(Notification::Created {
            objects: vec![ObjectCreated {
                bucket: entity.bucket.name,
                key: decode_key(&entity.object.key)?,
                size: entity.object.size,
                etag: unquote(entity.object.etag.as_deref().unwrap_or_default()),
                event_time_ms: obj
                    .get("time")
                    .and_then(Value::as_str)
                    .map(time_ms)
                    .unwrap_or(0),
            }],
            ignored: 0,
        });
    }
    Err(NotificationParseError::UnknownShape)
}

/// Undoes S3's key encoding in notifications: form encoding, `+` for a space.
fn decode_key(raw: &str) -> Result<String, NotificationParseError> {
    let spaced = raw.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8()
        .map(|k| k.into_owned())
        .map_err(|_| NotificationParseError::KeyNotUtf8 {
            key: raw.to_string(),
        })
}

fn unquote(etag: &str) -> String {
    etag.trim_matches('"').to_string()
}

/// Event times are RFC 3339 (`...Z`); some emulators leave the zone out, meaning UTC.
fn time_ms(text: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp_millis())
        .or_else(|_| {
            chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
                .map(|t| t.and_utc().timestamp_millis())
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s3_event(key: &str, name: &str) -> String {
        serde_json::json!({"Records": [{
            "eventVersion": "2.1", "eventSource": "aws:s3", "eventName": name,
            "eventTime": "2026-11-25T10:00:00.500Z",
            "s3": {"bucket": {"name": "landing"},
                   "object": {"key": key, "size": 42, "eTag": "0123abcd", "sequencer": "00AB"}}
        }]})
        .to_string()
    }

    #[test]
    fn s3_event_keys_are_decoded_as_s3_encodes_them() {
        let parsed =
            parse_notification(&s3_event("in/a+b%2Bc%C3%A9%3D1.json", "ObjectCreated:Put"))
                .expect("parse");
        let Notification::Created { objects, ignored } = parsed else {
            panic!("created expected");
        };
        assert_eq!(ignored, 0);
        assert_eq!(objects[0].key, "in/a b+cé=1.json");
        assert_eq!(objects[0].bucket, "landing");
        assert_eq!(objects[0].size, 42);
        assert_eq!(objects[0].etag, "0123abcd");
        assert_eq!(objects[0].event_time_ms, 1_795_600_800_500);
        assert_eq!(
            time_ms("2026-11-25T10:00:00.5"),
            1_795_600_800_500,
            "no zone: UTC"
        );
    }

    #[test]
    fn removals_are_ignored_and_test_events_recognised() {
        let parsed =
            parse_notification(&s3_event("x.json", "ObjectRemoved:Delete")).expect("parse");
        assert_eq!(
            parsed,
            Notification::Created {
                objects: vec![],
                ignored: 1
            }
        );
        let test = r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Time":"2026-11-25T10:00:00Z","Bucket":"landing"}"#;
        assert_eq!(
            parse_notification(test).expect("test"),
            Notification::TestEvent
        );
    }

    #[test]
    fn sns_envelope_and_eventbridge() {
        let sns = serde_json::json!({"Type": "Notification", "MessageId": "m1",
            "TopicArn": "arn:aws:sns:us-east-1:1:t", "Message": s3_event("k%201.json", "ObjectCreated:Copy")})
        .to_string();
        let Notification::Created { objects, .. } = parse_notification(&sns).expect("sns") else {
            panic!("created expected");
        };
        assert_eq!(objects[0].key, "k 1.json");

        let eb = serde_json::json!({"version": "0", "source": "aws.s3", "detail-type": "Object Created",
            "time": "2026-11-25T10:00:00Z",
            "detail": {"bucket": {"name": "landing"}, "object": {"key": "d/e.json", "size": 7, "etag": "\"ff\""}}})
        .to_string();
        let Notification::Created { objects, .. } = parse_notification(&eb).expect("eventbridge")
        else {
            panic!("created expected");
        };
        assert_eq!(
            (
                objects[0].key.as_str(),
                objects[0].size,
                objects[0].etag.as_str()
            ),
            ("d/e.json", 7, "ff")
        );
    }

    #[test]
    fn garbage_is_an_error_naming_what_is_wrong() {
        assert!(parse_notification("hello")
            .expect_err("text")
            .to_string()
            .starts_with("not JSON"));
        let err = parse_notification(r#"{"foo": 1}"#).expect_err("other");
        assert!(err.to_string().contains("neither an S3 event"), "{err}");
        let err = parse_notification(r#"{"Records": [{"eventName": "ObjectCreated:Put"}]}"#)
            .expect_err("no s3");
        assert!(err.to_string().contains("not an S3 event record"), "{err}");
    }

    #[test]
    fn each_fault_is_its_own_variant() {
        let err = |body: &str| parse_notification(body).expect_err(body);
        assert!(matches!(
            err("hello"),
            NotificationParseError::NotJson { .. }
        ));
        assert_eq!(err("[1]"), NotificationParseError::NotAnObject);
        assert_eq!(
            err(r#"{"Type": "Notification"}"#),
            NotificationParseError::SnsWithoutMessage
        );
        let inner = serde_json::json!({"Type": "Notification", "Message": "{}"}).to_string();
        let twice = serde_json::json!({"Type": "Notification", "Message": inner}).to_string();
        assert_eq!(err(&twice), NotificationParseError::NestedSnsEnvelope);
        assert!(matches!(
            err(r#"{"Type": "Notification", "Message": "nope"}"#),
            NotificationParseError::SnsMessageNotJson { .. }
        ));
        assert_eq!(
            err(r#"{"Records": 5}"#),
            NotificationParseError::RecordsNotAList
        );
        assert!(matches!(
            err(r#"{"Records": [{"eventName": "ObjectCreated:Put"}]}"#),
            NotificationParseError::NotAnS3Record { .. }
        ));
        assert_eq!(
            err(r#"{"source": "aws.s3", "detail-type": "Object Created"}"#),
            NotificationParseError::EventBridgeWithoutDetail
        );
        assert!(matches!(
            err(r#"{"source": "aws.s3", "detail-type": "Object Created", "detail": {}}"#),
            NotificationParseError::NotAnS3ObjectEvent { .. }
        ));
        assert_eq!(err(r#"{"foo": 1}"#), NotificationParseError::UnknownShape);
        let bad_key = err(&s3_event("a%FF.json", "ObjectCreated:Put"));
        assert_eq!(
            bad_key,
            NotificationParseError::KeyNotUtf8 {
                key: "a%FF.json".into()
            }
        );
        assert_eq!(
            bad_key.to_string(),
            "object key 'a%FF.json' is not UTF-8 once decoded"
        );
    }
}
