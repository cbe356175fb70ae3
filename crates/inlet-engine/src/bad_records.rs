//! The bad-records location: lines that did not parse, and files that could not be read at
//! all, written as JSON lines under `source.bad_records_path` (local or S3), one object per file.

use std::collections::HashMap;

use crate::error::Result;
use bytes::Bytes;
use inlet_discover::SourceStore;
use inlet_format::BadRecord;
use serde::Serialize;
use url::Url;

/// One line of a bad-records object.
#[derive(Debug, Serialize)]
struct Entry<'a> {
    pipeline_id: &'a str,
    batch_id: i64,
    file: &'a str,
    /// `None` when the whole file could not be read.
    line: Option<u64>,
    byte_offset: Option<u64>,
    error: &'a str,
    raw: Option<&'a str>,
}

/// Writes bad records. Each source file's records go to one object named after the batch
/// and the file, so a replayed batch rewrites the same objects instead of adding copies.
pub struct BadRecords {
    store: SourceStore,
    pipeline_id: String,
}

impl BadRecords {
    /// The location at `url`; S3 locations use `options` (the source's storage options).
    pub fn open(url: &Url, options: &HashMap<String, String>, pipeline_id: &str) -> Result<Self> {
        let options = if url.scheme() == "file" {
            HashMap::new()
        } else {
            options.clone()
        };
        Ok(Self {
            store: SourceStore::open(url, &options)?,
            pipeline_id: pipeline_id.to_string(),
        })
    }

    /// The location, as configured.
    pub fn url(&self) -> &Url {
        self.store.url()
    }

    /// Records the lines of `file` that did not become (whole) rows.
    pub async fn file_records(
        &self,
        batch_id: i64,
        file: &str,
        records: &[BadRecord],
    ) -> Result<String> {
        let out = json_lines(records.iter().map(|r| Entry {
            pipeline_id: &self.pipeline_id,
            batch_id,
            file,
            line: Some(r.line),
            byte_offset: Some(r.byte_offset),
            error: &r.error,
            raw: Some(&r.raw),
        }))?;
        self.put(batch_id, file, out).await
    }

    /// Records rows (as their JSON text) that decoded but cannot go into the table, such as
    /// MERGE rows with a null key. Kept apart from the file's line records (`file_records`),
    /// so neither overwrites the other when a file has both.
    pub async fn rows_refused(
        &self,
        batch_id: i64,
        file: &str,
        rows: &[String],
        error: &str,
    ) -> Result<String> {
        let out = json_lines(rows.iter().map(|row| Entry {
            pipeline_id: &self.pipeline_id,
            batch_id,
            file,
            line: None,
            byte_offset: None,
            error,
            raw: Some(row),
        }))?;
        self.put(batch_id, &format!("{file}#refused-rows"), out)
            .await
    }

    /// Records that `file` could not be read at all (it is also `failed` in the checkpoint).
    pub async fn failed_file(&self, batch_id: i64, file: &str, error: &str) -> Result<String> {
        let out = json_lines(std::iter::once(Entry {
            pipeline_id: &self.pipeline_id,
            batch_id,
            file,
            line: None,
            byte_offset: None,
            error,
            raw: None,
        }))?;
        self.put(batch_id, file, out).await
    }

    async fn put(&self, batch_id: i64, file: &str, data: Vec<u8>) -> Result<String> {
        let base = file.rsplit('/').next().unwrap_or(file);
        let safe: String = base
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "._-".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let name = format!(
            "{}/batch-{batch_id:010}/{safe}-{:016x}.jsonl",
            self.pipeline_id,
            fnv1a(file.as_bytes())
        );
        Ok(self.store.put(&name, Bytes::from(data)).await?)
    }
}

/// Entries as JSON lines, one object per line.
fn json_lines<'a>(entries: impl Iterator<Item = Entry<'a>>) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    for entry in entries {
        serde_json::to_writer(&mut out, &entry)?;
        out.push(b'\n');
    }
    Ok(out)
}

/// A stable 64-bit hash of the source path, so that files with the same name in different
/// folders get different objects.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}
