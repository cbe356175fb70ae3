//! Timestamps and dates from JSON: ISO-8601 text, or epoch numbers whose unit (seconds,
//! milliseconds, microseconds, nanoseconds) is told by their magnitude, as producers mix them.

use arrow::datatypes::TimeUnit;
use chrono::{DateTime, NaiveDate, NaiveDateTime};
use serde_json::{Number, Value};

const MICROS_PER_DAY: i64 = 86_400_000_000;

/// Microseconds since the epoch (UTC) of a JSON value, or `None` when it is not a time.
pub fn value_to_micros(value: &Value) -> Option<i64> {
    match value {
        Value::String(s) => text_to_micros(s),
        Value::Number(n) => epoch_to_micros(n),
        _ => None,
    }
}

/// The value in `unit` since the epoch, as the Arrow decoder takes it for a timestamp column.
pub fn micros_in_unit(micros: i64, unit: TimeUnit) -> Option<i64> {
    match unit {
        TimeUnit::Second => Some(micros.div_euclid(1_000_000)),
        TimeUnit::Millisecond => Some(micros.div_euclid(1_000)),
        TimeUnit::Microsecond => Some(micros),
        TimeUnit::Nanosecond => micros.checked_mul(1_000),
    }
}

/// Days since the epoch of a JSON value, for a DATE column.
pub fn value_to_days(value: &Value) -> Option<i32> {
    if let Value::String(s) = value {
        if let Ok(d) = NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d") {
            return i32::try_from(d.signed_duration_since(NaiveDate::default()).num_days()).ok();
        }
    }
    let micros = value_to_micros(value)?;
    i32::try_from(micros.div_euclid(MICROS_PER_DAY)).ok()
}

fn text_to_micros(text: &str) -> Option<i64> {
    let t = text.trim();
    if let Ok(dt) = DateTime::parse_from_rfc3339(t) {
        return Some(dt.timestamp_micros());
    }
    // Without an offset the time is taken as UTC, as Spark does for TIMESTAMP.
    const NAIVE: [&str; 4] = [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ];
    for format in NAIVE {
        if let Ok(dt) = NaiveDateTime::parse_from_str(t, format) {
            return Some(dt.and_utc().timestamp_micros());
        }
    }
    for format in ["%Y-%m-%d %H:%M:%S%.f%#z", "%Y-%m-%dT%H:%M:%S%.f%#z"] {
        if let Ok(dt) = DateTime::parse_from_str(t, format) {
            return Some(dt.timestamp_micros());
        }
    }
    NaiveDate::parse_from_str(t, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|dt| dt.and_utc().timestamp_micros())
}

/// Epoch numbers: below 1e11 seconds (until year 5138), below 1e14 milliseconds, below 1e17
/// microseconds, else nanoseconds. Fractions are kept to the microsecond.
fn epoch_to_micros(n: &Number) -> Option<i64> {
    if let Some(i) = n.as_i64() {
        let a = i.unsigned_abs();
        return if a < 100_000_000_000 {
            i.checked_mul(1_000_000)
        } else if a < 100_000_000_000_000 {
            i.checked_mul(1_000)
        } else if a < 100_000_000_000_000_000 {
            Some(i)
        } else {
            Some(i / 1_000)
        };
    }
    let f = n.as_f64()?;
    let a = f.abs();
    let micros = if a < 1e11 {
        f * 1e6
    } else if a < 1e14 {
        f * 1e3
    } else if a < 1e17 {
        f
    } else {
        f / 1e3
    };
    (micros.is_finite() && micros.abs() < i64::MAX as f64).then(|| micros.round() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn iso_text_and_epochs_of_every_unit_agree() {
        let want = Some(1_700_000_000_000_000);
        for v in [
            json!("2023-11-14T22:13:20Z"),
            json!("2023-11-14T23:13:20+01:00"),
            json!("2023-11-14 22:13:20"),
            json!("2023-11-14T22:13:20.000"),
            json!(1_700_000_000),
            json!(1_700_000_000_000i64),
            json!(1_700_000_000_000_000i64),
            json!(1_700_000_000_000_000_000i64),
            json!(1_700_000_000.0),
        ] {
            assert_eq!(value_to_micros(&v), want, "{v}");
        }
        assert_eq!(value_to_micros(&json!("yesterday")), None);
        assert_eq!(value_to_micros(&json!(true)), None);
        assert_eq!(value_to_days(&json!("1970-01-03")), Some(2));
        assert_eq!(value_to_days(&json!("1970-01-03T10:00:00Z")), Some(2));
        assert_eq!(
            micros_in_unit(1_500_000, TimeUnit::Millisecond),
            Some(1_500)
        );
    }
}
