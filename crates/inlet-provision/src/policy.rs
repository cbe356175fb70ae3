//! The queue's access policy and redrive policy as JSON: inlet's statement merged into
//! whatever policy the queue already has, compared by meaning rather than by text.

use serde_json::{json, Value};

use crate::Via;

/// The statement that lets the bucket (or the topic, or the rule) send to the queue.
pub(crate) fn statement(sid: &str, via: &Via, bucket: &str, queue_arn: &str) -> Value {
    let (service, source_arn) = match via {
        Via::Bucket => ("s3.amazonaws.com", format!("arn:aws:s3:::{bucket}")),
        Via::Sns { topic_arn } => ("sns.amazonaws.com", topic_arn.clone()),
        Via::EventBridge { rule_arn } => ("events.amazonaws.com", rule_arn.clone()),
    };
    json!({
        "Sid": sid,
        "Effect": "Allow",
        "Principal": {"Service": service},
        "Action": "sqs:SendMessage",
        "Resource": queue_arn,
        "Condition": {"ArnLike": {"aws:SourceArn": source_arn}},
    })
}

/// `current` (the queue's `Policy` attribute, if any) with the statement `sid` replaced by
/// `wanted`, or added; `Ok(None)` when it is already there as wanted, `Err` (the parse
/// error) when the current policy cannot be read, so its other statements are never lost.
pub(crate) fn merged(
    current: Option<&str>,
    sid: &str,
    wanted: Value,
) -> Result<Option<String>, String> {
    let mut policy = match current.filter(|t| !t.trim().is_empty()) {
        Some(text) => match serde_json::from_str::<Value>(text) {
            Ok(v) if v.is_object() => v,
            Ok(_) => return Err("not a JSON object".into()),
            Err(e) => return Err(e.to_string()),
        },
        None => json!({"Version": "2012-10-17"}),
    };
    let statements = match policy.get("Statement") {
        Some(Value::Array(items)) => items.clone(),
        Some(one @ Value::Object(_)) => vec![one.clone()],
        _ => Vec::new(),
    };
    if statements
        .iter()
        .any(|s| s.get("Sid").and_then(Value::as_str) == Some(sid) && same(s, &wanted))
    {
        return Ok(None);
    }
    let mut kept: Vec<Value> = statements
        .into_iter()
        .filter(|s| s.get("Sid").and_then(Value::as_str) != Some(sid))
        .collect();
    kept.push(wanted);
    policy["Statement"] = Value::Array(kept);
    Ok(Some(policy.to_string()))
}

/// Two statements are the same when they say the same, whatever the spelling of
/// single-element lists AWS may return.
fn same(a: &Value, b: &Value) -> bool {
    normalize(a) == normalize(b)
}

fn normalize(v: &Value) -> Value {
    match v {
        Value::Array(items) if items.len() == 1 => normalize(&items[0]),
        Value::Array(items) => Value::Array(items.iter().map(normalize).collect()),
        Value::Object(map) => {
            Value::Object(map.iter().map(|(k, v)| (k.clone(), normalize(v))).collect())
        }
        other => other.clone(),
    }
}

/// The redrive policy: after `max_receive_count` receives a message moves to `dead_arn`.
pub(crate) fn redrive(dead_arn: &str, max_receive_count: u32) -> Value {
    json!({"deadLetterTargetArn": dead_arn, "maxReceiveCount": max_receive_count})
}

/// Whether the queue's `RedrivePolicy` attribute already says `wanted` (AWS returns the
/// count as a number or a string).
pub(crate) fn redrive_is(current: Option<&str>, wanted: &Value) -> bool {
    let Some(current) = current.and_then(|t| serde_json::from_str::<Value>(t).ok()) else {
        return false;
    };
    let count = |v: &Value| match &v["maxReceiveCount"] {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    };
    current["deadLetterTargetArn"] == wanted["deadLetterTargetArn"]
        && count(&current) == count(wanted)
}

/// The EventBridge event pattern for objects created under `prefix` of `bucket`.
pub(crate) fn eventbridge_pattern(bucket: &str, prefix: &str) -> String {
    let mut object = json!({});
    if !prefix.is_empty() {
        object = json!({"key": [{"prefix": prefix}]});
    }
    json!({
        "source": ["aws.s3"],
        "detail-type": ["Object Created"],
        "detail": {"bucket": {"name": [bucket]}, "object": object},
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inlets_statement_is_added_beside_others_and_not_again() {
        let wanted = statement("inlet-p", &Via::Bucket, "landing", "arn:aws:sqs:r:1:q");
        let other = r#"{"Version":"2012-10-17","Statement":[{"Sid":"ops","Effect":"Allow","Principal":"*","Action":"sqs:GetQueueAttributes","Resource":"arn:aws:sqs:r:1:q"}]}"#;
        let merged_text = merged(Some(other), "inlet-p", wanted.clone())
            .expect("readable")
            .expect("a change");
        let policy: Value = serde_json::from_str(&merged_text).expect("json");
        let sids: Vec<&str> = policy["Statement"]
            .as_array()
            .expect("statements")
            .iter()
            .filter_map(|s| s["Sid"].as_str())
            .collect();
        assert_eq!(sids, ["ops", "inlet-p"]);
        // AWS may give single values back as one-element lists: still the same.
        let mut echoed = policy.clone();
        echoed["Statement"][1]["Action"] = json!(["sqs:SendMessage"]);
        assert_eq!(
            merged(Some(&echoed.to_string()), "inlet-p", wanted.clone()),
            Ok(None)
        );
        assert!(merged(Some("{not json"), "inlet-p", wanted).is_err());
    }

    #[test]
    fn a_changed_statement_replaces_the_old_one() {
        let old = statement("inlet-p", &Via::Bucket, "old-bucket", "arn:aws:sqs:r:1:q");
        let text = json!({"Version": "2012-10-17", "Statement": [old]}).to_string();
        let wanted = statement("inlet-p", &Via::Bucket, "landing", "arn:aws:sqs:r:1:q");
        let policy: Value = serde_json::from_str(
            &merged(Some(&text), "inlet-p", wanted)
                .expect("readable")
                .expect("change"),
        )
        .expect("json");
        let statements = policy["Statement"].as_array().expect("statements");
        assert_eq!(statements.len(), 1);
        assert_eq!(
            statements[0]["Condition"]["ArnLike"]["aws:SourceArn"],
            "arn:aws:s3:::landing"
        );
    }

    #[test]
    fn redrive_compares_counts_given_as_strings() {
        let wanted = redrive("arn:aws:sqs:r:1:dlq", 5);
        assert!(redrive_is(
            Some(r#"{"deadLetterTargetArn":"arn:aws:sqs:r:1:dlq","maxReceiveCount":"5"}"#),
            &wanted
        ));
        assert!(!redrive_is(
            Some(r#"{"deadLetterTargetArn":"arn:aws:sqs:r:1:dlq","maxReceiveCount":3}"#),
            &wanted
        ));
        assert!(!redrive_is(None, &wanted));
    }
}
