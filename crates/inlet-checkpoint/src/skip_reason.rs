//! Why a planned file was recorded `skipped` instead of read: a stable code per reason,
//! stored in `files.skip_reason`, and the sentence `inlet files` shows for it.

use std::fmt;

use serde::Serialize;

/// Why a planned file was not read. Stored by its [`code`](Self::code), which never changes
/// once released (callers find files by it); its [`text`](Self::text) is for people and
/// is kept as the file's `error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// Gone from the source between discovery and read.
    Deleted,
    /// Rewritten between discovery and read (`allow_overwrites` pins the planned ETag):
    /// the new version is taken as a new file.
    Overwritten,
    /// An S3 key with a whole `.`, `..` or empty path segment, which object_store cannot
    /// address.
    DotSegment,
    /// A path with a control character, which object_store cannot address.
    ControlCharacter,
    /// A symbolic link loop in a local source, which is not followed.
    SymlinkLoop,
}

impl SkipReason {
    /// Every reason, in declaration order.
    pub const ALL: [Self; 5] = [
        Self::Deleted,
        Self::Overwritten,
        Self::DotSegment,
        Self::ControlCharacter,
        Self::SymlinkLoop,
    ];

    /// The codes a `files` row may hold, for errors about one that holds another.
    pub(crate) const EXPECTED: &'static str =
        "deleted, overwritten, dot_segment, control_character or symlink_loop";

    /// The stable code stored in `files.skip_reason` (and written by `inlet files --json`).
    pub fn code(self) -> &'static str {
        match self {
            Self::Deleted => "deleted",
            Self::Overwritten => "overwritten",
            Self::DotSegment => "dot_segment",
            Self::ControlCharacter => "control_character",
            Self::SymlinkLoop => "symlink_loop",
        }
    }

    /// The reason for people, stored as the file's `error` and shown by `inlet files`;
    /// it says what to do where the user can act.
    pub fn text(self) -> &'static str {
        match self {
            Self::Deleted => "deleted from the source before it was read",
            Self::Overwritten => {
                "overwritten before it was read; the new version is taken as a new file"
            }
            Self::DotSegment => "its S3 key has a '.', '..' or empty path segment, which inlet's object store client cannot address; copy the object to a key without such segments and inlet takes the copy",
            Self::ControlCharacter => "its path has a control character (a tab, line feed, carriage return or the like), which inlet's object store client cannot address; rename the file (on S3: copy the object) to a name without control characters and inlet takes it under the new name",
            Self::SymlinkLoop => "it is a symbolic link loop (a link to a directory that contains it, or links that point at each other), which inlet does not follow; files reachable without the link are taken under those paths",
        }
    }

    /// The reason stored as `code`, `None` for a code that is none of them.
    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.code() == code)
    }

    /// The reason whose [`text`](Self::text) is exactly `text`, `None` for any other text:
    /// for skips recorded as text only (by layout 2 checkpoints, or in a Delta commit's
    /// `inlet.files`).
    pub fn from_text(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.text() == text)
    }
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.text())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_texts_are_distinct_and_read_back() {
        let mut codes: Vec<&str> = SkipReason::ALL.iter().map(|r| r.code()).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), SkipReason::ALL.len());
        for r in SkipReason::ALL {
            assert_eq!(SkipReason::from_code(r.code()), Some(r));
            assert_eq!(SkipReason::from_text(r.text()), Some(r));
            assert_eq!(r.to_string(), r.text());
            // `inlet files --json` writes the code, as stored.
            assert_eq!(
                serde_json::to_value(r).expect("json"),
                serde_json::Value::from(r.code())
            );
            assert!(SkipReason::EXPECTED.contains(r.code()), "{}", r.code());
        }
        assert_eq!(SkipReason::from_code("Overwritten"), None);
        assert_eq!(SkipReason::from_text("overwritten"), None);
    }
}
