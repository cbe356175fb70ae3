//! Why a file that was found cannot be read (a key object_store cannot address, a symbolic
//! link loop): the reasons such a file is recorded as skipped, typed, with their texts.

use std::fmt;

/// Why a key with a `.`, `..` or empty path segment is skipped.
pub const UNADDRESSABLE: &str = "its S3 key has a '.', '..' or empty path segment, which inlet's object store client cannot address; copy the object to a key without such segments and inlet takes the copy";

/// Why a file whose path holds an ASCII control character (tab, line feed, carriage
/// return...) is skipped: object_store refuses such paths, on S3 and on local disks alike.
pub const CONTROL_CHARACTER: &str = "its path has a control character (a tab, line feed, carriage return or the like), which inlet's object store client cannot address; rename the file (on S3: copy the object) to a name without control characters and inlet takes it under the new name";

/// Why a symbolic link loop in a local source is skipped: a link to a directory that
/// contains it, or links that point at each other.
pub const SYMLINK_LOOP: &str = "it is a symbolic link loop (a link to a directory that contains it, or links that point at each other), which inlet does not follow; files reachable without the link are taken under those paths";

/// Why a found file cannot be read. Such a file is recorded as skipped, with
/// [`Unreadable::reason`] as its reason; match on the variant, never on the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Unreadable {
    /// Its key has a `.`, `..` or empty path segment ([`UNADDRESSABLE`]).
    DotOrEmptySegment,
    /// Its path holds an ASCII control character ([`CONTROL_CHARACTER`]).
    ControlCharacter,
    /// It is a symbolic link loop in a local source, not followed ([`SYMLINK_LOOP`]).
    SymlinkLoop,
}

impl Unreadable {
    /// Why object_store cannot parse `raw_key` (a key it refused).
    pub(crate) fn of_key(raw_key: &str) -> Self {
        if raw_key.chars().any(|c| c.is_ascii_control()) {
            Self::ControlCharacter
        } else {
            Self::DotOrEmptySegment
        }
    }

    /// The reason as a sentence for logs and the checkpoint: what is wrong and what to do.
    pub fn reason(self) -> &'static str {
        match self {
            Self::DotOrEmptySegment => UNADDRESSABLE,
            Self::ControlCharacter => CONTROL_CHARACTER,
            Self::SymlinkLoop => SYMLINK_LOOP,
        }
    }
}

impl fmt::Display for Unreadable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_object_store_refuses_are_told_apart() {
        assert_eq!(
            Unreadable::of_key("landing/bad\tname.json"),
            Unreadable::ControlCharacter
        );
        assert_eq!(
            Unreadable::of_key("landing/../a.json"),
            Unreadable::DotOrEmptySegment
        );
        assert_eq!(Unreadable::of_key("a//b.json").to_string(), UNADDRESSABLE);
        assert_eq!(Unreadable::SymlinkLoop.reason(), SYMLINK_LOOP);
    }
}
