//! Which keys are source files, whether a listing or a notification found them: under the
//! source prefix, not hidden (`_SUCCESS`, `.tmp`), no DynamoDB export manifest when those are
//! skipped, and matching `path_glob` when one is set.

use globset::{Glob, GlobMatcher};
use object_store::path::Path;

use crate::error::DiscoverError;
use crate::export_manifest::{is_export_manifest, is_manifest_name};

/// Which keys are source files, whoever found them: under the prefix, not hidden, no export
/// manifest (with `skip_export_manifests`), and matching the glob if one is set.
#[derive(Debug, Clone)]
pub(crate) struct KeyFilter {
    prefix: Path,
    glob: Option<GlobMatcher>,
    skip_export_manifests: bool,
}

impl KeyFilter {
    pub(crate) fn new(
        prefix: Path,
        path_glob: Option<String>,
        skip_export_manifests: bool,
    ) -> Result<Self, DiscoverError> {
        let glob = path_glob
            .map(|g| {
                Glob::new(&g)
                    .map(|glob| glob.compile_matcher())
                    .map_err(|source| DiscoverError::BadGlob { glob: g, source })
            })
            .transpose()?;
        Ok(Self {
            prefix,
            glob,
            skip_export_manifests,
        })
    }

    /// True when the key is taken.
    pub(crate) fn keeps(&self, key: &Path) -> bool {
        let Some(parts) = key.prefix_match(&self.prefix) else {
            return false;
        };
        let relative = parts.map(|p| p.as_ref().to_string()).collect::<Vec<_>>();
        let Some(name) = relative.last() else {
            return false;
        };
        // Like Spark and Auto Loader: `_SUCCESS`, `.tmp` files and the like are not data.
        if name.starts_with('.') || name.starts_with('_') {
            return false;
        }
        // The whole key: the source prefix may lie inside `AWSDynamoDB/<export-id>/`.
        if self.skip_export_manifests
            && is_manifest_name(name)
            && is_export_manifest(&key.parts().collect::<Vec<_>>())
        {
            return false;
        }
        match &self.glob {
            None => true,
            Some(glob) => glob.is_match(relative.join("/")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The keys of a DynamoDB export (the layout AWS documents) a filter keeps.
    fn kept(filter: &KeyFilter, keys: &[&str]) -> Vec<String> {
        keys.iter()
            .filter(|k| filter.keeps(&Path::from(**k)))
            .map(|k| k.to_string())
            .collect()
    }

    const EXPORT: [&str; 9] = [
        "landing/exports/AWSDynamoDB/01234567890123-a1b2c3d4/_started",
        "landing/exports/AWSDynamoDB/01234567890123-a1b2c3d4/manifest-summary.json",
        "landing/exports/AWSDynamoDB/01234567890123-a1b2c3d4/manifest-summary.md5",
        "landing/exports/AWSDynamoDB/01234567890123-a1b2c3d4/manifest-files.json",
        "landing/exports/AWSDynamoDB/01234567890123-a1b2c3d4/manifest-files.md5",
        "landing/exports/AWSDynamoDB/01234567890123-a1b2c3d4/manifest-files.checksum",
        "landing/exports/AWSDynamoDB/01234567890123-a1b2c3d4/data/q5x7yzmf4e3wj.json.gz",
        "landing/exports/AWSDynamoDB/01234567890123-a1b2c3d4/data/dmq2rsvzve3b.json.gz",
        "landing/stream/2026/11/25/orders-1-2026-11-25-10-00-00-abcd.gz",
    ];

    #[test]
    fn export_manifests_are_never_taken_when_skipped_with_no_glob_needed() {
        let skip = KeyFilter::new(Path::from("landing"), None, true).expect("filter");
        assert_eq!(kept(&skip, &EXPORT), EXPORT[6..].to_vec());
        // From inside the export's own directory too.
        let inside = KeyFilter::new(
            Path::from("landing/exports/AWSDynamoDB/01234567890123-a1b2c3d4"),
            None,
            true,
        )
        .expect("filter");
        assert_eq!(kept(&inside, &EXPORT), EXPORT[6..8].to_vec());
        // Off (every format but the DynamoDB ones): only the `_` rule applies.
        let keep = KeyFilter::new(Path::from("landing"), None, false).expect("filter");
        assert_eq!(kept(&keep, &EXPORT), EXPORT[1..].to_vec());
        // A glob still narrows what is left.
        let glob =
            KeyFilter::new(Path::from("landing"), Some("exports/**".into()), true).expect("filter");
        assert_eq!(kept(&glob, &EXPORT), EXPORT[6..8].to_vec());
    }
}
