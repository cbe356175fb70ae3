//! Table properties a user may set (`[sink] properties`, `inlet table set-properties`): the
//! `delta.*` keys inlet accepts with their value forms, and those it refuses, with why.

use std::collections::BTreeMap;
use std::time::Duration;

/// The form a property's value takes.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Bool,
    /// `interval <n> <unit>`, as Delta writes durations.
    Interval,
    PositiveInt,
    Text,
    OneOf(&'static [&'static str]),
}

/// The `delta.*` keys inlet accepts, and the form of their values.
const ACCEPTED: &[(&str, Kind)] = &[
    ("delta.appendOnly", Kind::Bool),
    ("delta.checkpointInterval", Kind::PositiveInt),
    ("delta.checkpoint.writeStatsAsJson", Kind::Bool),
    ("delta.checkpoint.writeStatsAsStruct", Kind::Bool),
    ("delta.dataSkippingNumIndexedCols", Kind::PositiveInt),
    ("delta.dataSkippingStatsColumns", Kind::Text),
    ("delta.deletedFileRetentionDuration", Kind::Interval),
    ("delta.enableChangeDataFeed", Kind::Bool),
    ("delta.enableDeletionVectors", Kind::Bool),
    ("delta.enableExpiredLogCleanup", Kind::Bool),
    (
        "delta.isolationLevel",
        Kind::OneOf(&["Serializable", "WriteSerializable"]),
    ),
    ("delta.logRetentionDuration", Kind::Interval),
];

/// The `delta.*` keys inlet refuses, and why.
const REFUSED: &[(&str, &str)] = &[
    ("delta.setTransactionRetentionDuration", "it expires the txn actions by which inlet knows which batches the table holds, so a replayed batch could be committed twice"),
    ("delta.columnMapping.mode", "inlet cannot add columns to a column-mapped table (schema evolution would fail)"),
    ("delta.checkpointPolicy", "v2 checkpoints are not written by inlet"),
    ("delta.enableRowTracking", "inlet cannot write tables with row tracking"),
    ("delta.enableTypeWidening", "inlet cannot write tables with type widening"),
    ("delta.enableInCommitTimestamps", "inlet cannot write in-commit timestamps"),
    ("delta.minReaderVersion", "inlet sets the protocol itself, from the features the schema and properties need"),
    ("delta.minWriterVersion", "inlet sets the protocol itself, from the features the schema and properties need"),
    ("delta.randomizeFilePrefixes", "inlet writes data files under partition directories"),
    ("delta.targetFileSize", "inlet sizes its files by [sink] target_file_size; set that instead"),
    ("delta.autoOptimize.autoCompact", "inlet compacts by [maintenance] auto_compact; set that instead"),
    ("delta.autoOptimize.optimizeWrite", "inlet sizes its files by [sink] target_file_size; set that instead"),
];

/// Checks one property; the error says what is wrong and what is accepted. Keys outside
/// `delta.` (e.g. `owner`, `comment`) are free-form table metadata and always accepted.
pub fn check_property(key: &str, value: &str) -> Result<(), String> {
    if let Some((_, why)) = REFUSED.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)) {
        return Err(format!("inlet refuses {key}: {why}"));
    }
    if !key.starts_with("delta.") {
        return Ok(());
    }
    let Some((canonical, kind)) = ACCEPTED.iter().find(|(k, _)| *k == key) else {
        let hint = ACCEPTED
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(k, _)| format!(" (did you mean {k}?)"))
            .unwrap_or_default();
        return Err(format!(
            "unknown Delta table property {key}{hint}; inlet accepts {}",
            known_keys().join(", ")
        ));
    };
    if *canonical == "delta.isolationLevel" && value.trim() == "SnapshotIsolation" {
        return Err(format!("{canonical} = SnapshotIsolation is refused: it lets a MERGE commit over another writer's rows for the same key, which can duplicate them; use WriteSerializable or Serializable"));
    }
    let ok = match kind {
        Kind::Bool => matches!(value.trim().to_ascii_lowercase().as_str(), "true" | "false"),
        Kind::Interval => parse_interval(value).is_some(),
        Kind::PositiveInt => value.trim().parse::<u64>().is_ok_and(|n| n > 0),
        Kind::Text => true,
        Kind::OneOf(options) => options.contains(&value.trim()),
    };
    if ok {
        return Ok(());
    }
    let expected = match kind {
        Kind::Bool => "true or false".to_string(),
        Kind::Interval => "a Delta interval such as \"interval 7 days\"".to_string(),
        Kind::PositiveInt => "a whole number above 0".to_string(),
        Kind::Text => String::new(),
        Kind::OneOf(options) => format!("one of {}", options.join(", ")),
    };
    Err(format!("{canonical} = '{value}' must be {expected}"))
}

/// Checks every property of `properties`; the first error found.
pub fn check_properties(properties: &BTreeMap<String, String>) -> Result<(), String> {
    properties
        .iter()
        .try_for_each(|(k, v)| check_property(k, v))
}

/// Refuses properties a pipeline in MERGE mode cannot write under: `delta.appendOnly =
/// true` (a MERGE updates and deletes rows).
pub fn check_for_merge(properties: &BTreeMap<String, String>) -> Result<(), String> {
    if properties
        .get("delta.appendOnly")
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
    {
        return Err(
            "mode = \"merge\" updates and deletes rows, which an append-only table refuses".into(),
        );
    }
    Ok(())
}

/// The `delta.*` keys inlet accepts.
pub fn known_keys() -> Vec<&'static str> {
    ACCEPTED.iter().map(|(k, _)| *k).collect()
}

/// A Delta interval (`interval 7 days`, `interval 1 week`, `interval 30 minutes`).
pub fn parse_interval(value: &str) -> Option<Duration> {
    let mut words = value.split_whitespace();
    if !words.next()?.eq_ignore_ascii_case("interval") {
        return None;
    }
    let n: u64 = words.next()?.parse().ok()?;
    let unit = words.next()?.to_ascii_lowercase();
    if words.next().is_some() {
        return None;
    }
    let seconds = match unit.trim_end_matches('s') {
        "nanosecond" => return Some(Duration::from_nanos(n)),
        "microsecond" => return Some(Duration::from_micros(n)),
        "millisecond" => return Some(Duration::from_millis(n)),
        "second" => 1,
        "minute" => 60,
        "hour" => 3600,
        "day" => 86_400,
        "week" => 604_800,
        _ => return None,
    };
    Some(Duration::from_secs(n.checked_mul(seconds)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_checked_and_unknown_keys_listed() {
        assert!(check_property("delta.enableChangeDataFeed", "true").is_ok());
        assert!(check_property("delta.logRetentionDuration", "interval 30 days").is_ok());
        assert!(check_property("owner", "data-team").is_ok());
        let err = check_property("delta.logRetentionDuration", "30 days").expect_err("form");
        assert!(err.contains("\"interval 7 days\""), "{err}");
        let err = check_property("delta.enableChangeDataFeeds", "true").expect_err("typo");
        assert!(
            err.starts_with("unknown Delta table property delta.enableChangeDataFeeds; inlet accepts delta.appendOnly,"),
            "{err}"
        );
        let err = check_property("delta.enablechangedatafeed", "true").expect_err("case");
        assert!(
            err.contains("did you mean delta.enableChangeDataFeed?"),
            "{err}"
        );
        let err = check_property("delta.setTransactionRetentionDuration", "interval 1 day")
            .expect_err("refused");
        assert!(err.contains("committed twice"), "{err}");
        let err = check_property("delta.isolationLevel", "SnapshotIsolation").expect_err("si");
        assert!(err.contains("duplicate"), "{err}");
        assert!(check_property("delta.isolationLevel", "WriteSerializable").is_ok());
        let err = check_property("delta.targetFileSize", "1000").expect_err("inlet's own");
        assert!(err.contains("[sink] target_file_size"), "{err}");
        assert_eq!(
            parse_interval("interval 2 weeks"),
            Some(Duration::from_secs(14 * 86_400))
        );
        assert_eq!(
            parse_interval("interval 1 hour"),
            Some(Duration::from_secs(3600))
        );
        assert_eq!(parse_interval("interval x hours"), None);
    }
}
