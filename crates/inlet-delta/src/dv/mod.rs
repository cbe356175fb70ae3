//! Deletion vectors: reading and writing them in the Delta format, the merge-on-read MERGE
//! that marks replaced rows in them, and the purge that rewrites files they hide much of.

pub(crate) mod format;
mod merge;
mod purge;
pub(crate) mod scan;

pub use format::DvError;
pub(crate) use merge::lost_race;
pub use purge::{DeletedRows, PurgeOutcome};
