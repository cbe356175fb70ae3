//! Locations in a config: a URL (`s3://`, `file://`) or a local path relative to the config
//! file, resolved to one URL form; durations as people write them (`20s`, `7d`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use url::Url;

/// A URL for a location given as a URL or as a local path relative to `base`. Directories
/// get a trailing slash so that joins and prefixes behave.
pub(super) fn location_url(base: &Path, value: &str, dir: bool) -> Result<Url, String> {
    if value.contains("://") {
        let mut url = Url::parse(value).map_err(|e| e.to_string())?;
        match url.scheme() {
            "s3" | "s3a" | "file" => {}
            other => {
                return Err(format!(
                    "scheme '{other}' is not supported (use s3:// or file://)"
                ))
            }
        }
        if url.scheme() != "file" && url.host_str().is_none_or(str::is_empty) {
            return Err("no bucket name".into());
        }
        if dir && !url.path().ends_with('/') {
            let path = format!("{}/", url.path());
            url.set_path(&path);
        }
        return Ok(url);
    }
    let path = normalize(&base.join(value));
    Url::from_directory_path(&path)
        .map_err(|()| format!("{} is not an absolute path", path.display()))
}

/// The absolute form of `path` with `.` and `..` resolved lexically (symlinks untouched),
/// so that `../landing` next to the config names the directory a user means.
pub(super) fn normalize(path: &Path) -> PathBuf {
    let path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// A duration as people write it: `500ms`, `20s`, `5m`, `1h 30m`.
pub(super) fn de_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    humantime::parse_duration(&text).map_err(|e| {
        serde::de::Error::custom(format!(
            "'{text}' is not a duration ({e}); write e.g. \"500ms\", \"20s\", \"5m\""
        ))
    })
}

pub(super) fn de_duration_opt<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Duration>, D::Error> {
    de_duration(d).map(Some)
}
