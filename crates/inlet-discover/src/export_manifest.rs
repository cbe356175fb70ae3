//! DynamoDB export-to-S3 layout: which keys of an export are its manifests (never data), where
//! a data file's `manifest-summary.json` is, and the export's time and kind that file states.
//!
//! AWS writes each export under `<export-prefix>/AWSDynamoDB/<export-id>/`: `_started`,
//! `manifest-summary.json`, `manifest-files.json`, their checksums (`manifest-summary.md5`,
//! `manifest-files.md5`, or `.checksum` in newer exports), and the data under `data/`
//! (`data/<hash>.json.gz`), for full and incremental exports alike.

use serde::Deserialize;

/// The directory every export is written under, below the export prefix.
const EXPORTS_DIR: &str = "AWSDynamoDB";

/// The export's summary, beside its `data/` directory.
pub const MANIFEST_SUMMARY: &str = "manifest-summary.json";

/// Names of an export's manifests, which describe its data and are not data themselves.
const MANIFESTS: [&str; 2] = [MANIFEST_SUMMARY, "manifest-files.json"];

/// True when `name` is named like an export's manifest or checksum: `manifest-summary.json`,
/// `manifest-files.json`, or ending in `.md5` or `.checksum` (whether the key lies in an
/// export is [`is_export_manifest`]'s question).
pub(crate) fn is_manifest_name(name: &str) -> bool {
    MANIFESTS.contains(&name) || name.ends_with(".md5") || name.ends_with(".checksum")
}

/// True when the key whose segments are `parts` (the whole key, source prefix included) is
/// a manifest or checksum of a DynamoDB export: named so ([`is_manifest_name`]) and under
/// `AWSDynamoDB/<export-id>/`. (`_started` is left out by the rule for names starting
/// with `_`.)
pub(crate) fn is_export_manifest<S: AsRef<str>>(parts: &[S]) -> bool {
    let Some((name, dirs)) = parts.split_last() else {
        return false;
    };
    // `AWSDynamoDB` with at least the export id between it and the name.
    is_manifest_name(name.as_ref()) && dirs.iter().rev().skip(1).any(|d| d.as_ref() == EXPORTS_DIR)
}

/// The `manifest-summary.json` of the export a data file belongs to:
/// `.../AWSDynamoDB/<export-id>/data/<file>` gives `.../AWSDynamoDB/<export-id>/manifest-summary.json`
/// (a URL or a key, `/`-separated). `None` when the path is not laid out so.
pub fn export_manifest_path(data_path: &str) -> Option<String> {
    let parts: Vec<&str> = data_path.split('/').collect();
    if parts.last().is_none_or(|name| name.is_empty()) {
        return None; // a directory, not a file
    }
    // The last `AWSDynamoDB/<id>/data/` with a file below it.
    let at = (0..parts.len().saturating_sub(3))
        .rev()
        .find(|&i| parts[i] == EXPORTS_DIR && !parts[i + 1].is_empty() && parts[i + 2] == "data")?;
    Some(format!("{}/{MANIFEST_SUMMARY}", parts[..at + 2].join("/")))
}

/// Whether an export holds the whole table or the changes of a time window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportKind {
    /// `FULL_EXPORT`: `{"Item": ...}` lines, the table as of `exportTime`.
    Full,
    /// `INCREMENTAL_EXPORT`: `{"Metadata", "Keys", "NewImage", "OldImage"}` lines, each with
    /// its own write time.
    Incremental,
}

/// What a `manifest-summary.json` says that decoding needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportManifest {
    pub kind: ExportKind,
    /// µs since the epoch. A full export: `exportTime`, the instant whose table state it
    /// holds (the event time of its items). An incremental export: `exportToTime`, the
    /// exclusive end of its window, when the summary gives it (its lines carry their own
    /// times, so decoding does not need it).
    pub export_time_micros: Option<i64>,
}

/// Why a `manifest-summary.json` could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ManifestError {
    #[error("manifest-summary.json is not the JSON object an export writes: {detail}")]
    NotJson { detail: String },

    #[error("manifest-summary.json of a full export has no exportTime")]
    NoExportTime,

    #[error("manifest-summary.json: {field} '{value}' is not an ISO-8601 time")]
    BadTime { field: &'static str, value: String },

    #[error(
        "manifest-summary.json: exportType '{value}' is not FULL_EXPORT or INCREMENTAL_EXPORT"
    )]
    UnknownKind { value: String },

    #[error(
        "manifest-summary.json: outputFormat '{value}' cannot be read; export with DYNAMODB_JSON"
    )]
    UnreadableFormat { value: String },
}

/// The members of `manifest-summary.json` read here.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Summary {
    export_time: Option<String>,
    export_to_time: Option<String>,
    export_type: Option<String>,
    output_format: Option<String>,
}

impl ExportManifest {
    /// Reads the bytes of an export's `manifest-summary.json`. An export without
    /// `exportType` (as full exports were written before incremental ones existed) is full.
    /// Refuses an `ION` export (inlet reads DynamoDB JSON) and a full export without a time.
    pub fn parse(bytes: &[u8]) -> Result<Self, ManifestError> {
        let summary: Summary =
            serde_json::from_slice(bytes).map_err(|e| ManifestError::NotJson {
                detail: e.to_string(),
            })?;
        if let Some(format) = summary.output_format.filter(|f| f != "DYNAMODB_JSON") {
            return Err(ManifestError::UnreadableFormat { value: format });
        }
        let time = |field: &'static str, value: Option<String>| {
            value
                .map(|v| match chrono::DateTime::parse_from_rfc3339(v.trim()) {
                    Ok(t) => Ok(t.timestamp_micros()),
                    Err(_) => Err(ManifestError::BadTime { field, value: v }),
                })
                .transpose()
        };
        match summary.export_type.as_deref() {
            None | Some("FULL_EXPORT") => Ok(Self {
                kind: ExportKind::Full,
                export_time_micros: Some(
                    time("exportTime", summary.export_time)?.ok_or(ManifestError::NoExportTime)?,
                ),
            }),
            Some("INCREMENTAL_EXPORT") => Ok(Self {
                kind: ExportKind::Incremental,
                export_time_micros: time("exportToTime", summary.export_to_time)?,
            }),
            Some(other) => Err(ManifestError::UnknownKind {
                value: other.to_string(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_and_checksums_under_an_export_are_told_apart_from_data() {
        let manifest = |key: &str| is_export_manifest(&key.split('/').collect::<Vec<_>>());
        for key in [
            "AWSDynamoDB/01234567890123-a1b2c3d4/manifest-summary.json",
            "AWSDynamoDB/01234567890123-a1b2c3d4/manifest-files.json",
            "AWSDynamoDB/01234567890123-a1b2c3d4/manifest-summary.md5",
            "AWSDynamoDB/01234567890123-a1b2c3d4/manifest-files.md5",
            "AWSDynamoDB/01234567890123-a1b2c3d4/manifest-files.checksum",
            "exports/2026/AWSDynamoDB/01234567890123-a1b2c3d4/manifest-summary.json",
            "exports/AWSDynamoDB/01234567890123-a1b2c3d4/data/abc.md5",
        ] {
            assert!(manifest(key), "{key}");
        }
        for key in [
            "AWSDynamoDB/01234567890123-a1b2c3d4/data/wfwk3xw5dq7xjl4zq6ebd2wd5m.json.gz",
            "AWSDynamoDB/manifest-summary.json", // no export id between
            "manifest-summary.json",
            "other/01234567890123-a1b2c3d4/manifest-summary.json",
            "awsdynamodb/01234567890123-a1b2c3d4/manifest-summary.json",
            "AWSDynamoDB/01234567890123-a1b2c3d4/manifest-summary.json.gz",
        ] {
            assert!(!manifest(key), "{key}");
        }
    }

    #[test]
    fn a_data_files_manifest_is_beside_its_data_directory() {
        assert_eq!(
            export_manifest_path(
                "s3://bucket/exports/AWSDynamoDB/01234567890123-a1b2c3d4/data/x7.json.gz"
            )
            .as_deref(),
            Some("s3://bucket/exports/AWSDynamoDB/01234567890123-a1b2c3d4/manifest-summary.json")
        );
        assert_eq!(
            export_manifest_path("AWSDynamoDB/0123-ab/data/x.json.gz").as_deref(),
            Some("AWSDynamoDB/0123-ab/manifest-summary.json")
        );
        // The innermost export layout counts.
        assert_eq!(
            export_manifest_path("file:///l/AWSDynamoDB/a/data/AWSDynamoDB/b/data/x.json")
                .as_deref(),
            Some("file:///l/AWSDynamoDB/a/data/AWSDynamoDB/b/manifest-summary.json")
        );
        for path in [
            "s3://bucket/exports/AWSDynamoDB/0123-ab/manifest-files.json",
            "s3://bucket/exports/AWSDynamoDB/0123-ab/data/",
            "s3://bucket/exports/AWSDynamoDB//data/x.json.gz",
            "s3://bucket/stream/2026/11/25/x.json.gz",
        ] {
            assert_eq!(export_manifest_path(path), None, "{path}");
        }
    }

    #[test]
    fn the_summary_gives_the_exports_kind_and_time() {
        let full = br#"{"version":"2020-06-30","exportArn":"arn:aws:dynamodb:us-east-1:123456789012:table/ProductCatalog/export/01234567890123-a1b2c3d4","startTime":"2020-11-04T07:28:34.028Z","endTime":"2020-11-04T07:33:43.897Z","tableArn":"arn:aws:dynamodb:us-east-1:123456789012:table/ProductCatalog","tableId":"12345a12-abcd-123a-ab12-1234abc12345","exportTime":"2020-11-04T07:28:34.028Z","s3Bucket":"ddb-productcatalog-export","s3Prefix":"2020-Nov","s3SseAlgorithm":"AES256","s3SseKmsKeyId":null,"manifestFilesS3Key":"2020-Nov/AWSDynamoDB/01234567890123-a1b2c3d4/manifest-files.json","billedSizeBytes":0,"itemCount":8,"outputFormat":"DYNAMODB_JSON","exportType":"FULL_EXPORT"}"#;
        assert_eq!(
            ExportManifest::parse(full),
            Ok(ExportManifest {
                kind: ExportKind::Full,
                export_time_micros: Some(1_604_474_914_028_000),
            })
        );
        // Written before incremental exports: no exportType.
        let old =
            br#"{"exportTime":"2020-11-04T07:28:34.028123+01:00","outputFormat":"DYNAMODB_JSON"}"#;
        assert_eq!(
            ExportManifest::parse(old).map(|m| m.export_time_micros),
            Ok(Some(1_604_471_314_028_123))
        );
        let incremental = br#"{"version":"2023-08-01","exportFromTime":"2026-11-25T10:00:00Z","exportToTime":"2026-11-25T11:00:00Z","outputFormat":"DYNAMODB_JSON","outputView":"NEW_AND_OLD_IMAGES","exportType":"INCREMENTAL_EXPORT"}"#;
        assert_eq!(
            ExportManifest::parse(incremental),
            Ok(ExportManifest {
                kind: ExportKind::Incremental,
                export_time_micros: Some(1_795_604_400_000_000),
            })
        );
        let refused = |text: &str| {
            ExportManifest::parse(text.as_bytes())
                .expect_err("refused")
                .to_string()
        };
        assert_eq!(
            refused(r#"{"exportType":"FULL_EXPORT"}"#),
            "manifest-summary.json of a full export has no exportTime"
        );
        assert_eq!(
            refused(r#"{"exportTime":"yesterday"}"#),
            "manifest-summary.json: exportTime 'yesterday' is not an ISO-8601 time"
        );
        assert_eq!(
            refused(r#"{"exportTime":"2020-11-04T07:28:34Z","outputFormat":"ION"}"#),
            "manifest-summary.json: outputFormat 'ION' cannot be read; export with DYNAMODB_JSON"
        );
        assert_eq!(
            refused(r#"{"exportType":"PARTIAL"}"#),
            "manifest-summary.json: exportType 'PARTIAL' is not FULL_EXPORT or INCREMENTAL_EXPORT"
        );
        assert!(refused("[1]")
            .starts_with("manifest-summary.json is not the JSON object an export writes: "));
    }
}
