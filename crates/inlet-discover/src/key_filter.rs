//! Which keys are source files, whether a listing or a notification found them: under the
//! source prefix, not hidden (`_SUCCESS`, `.tmp`), and matching `path_glob` when one is set.

use globset::{Glob, GlobMatcher};
use object_store::path::Path;

use crate::error::DiscoverError;

/// Which keys are source files, whoever found them: under the prefix, not hidden, and
/// matching the glob if one is set.
#[derive(Debug, Clone)]
pub(crate) struct KeyFilter {
    prefix: Path,
    glob: Option<GlobMatcher>,
}

impl KeyFilter {
    pub(crate) fn new(prefix: Path, path_glob: Option<String>) -> Result<Self, DiscoverError> {
        let glob = path_glob
            .map(|g| {
                Glob::new(&g)
                    .map(|glob| glob.compile_matcher())
                    .map_err(|source| DiscoverError::BadGlob { glob: g, source })
            })
            .transpose()?;
        Ok(Self { prefix, glob })
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
        match &self.glob {
            None => true,
            Some(glob) => glob.is_match(relative.join("/")),
        }
    }
}
