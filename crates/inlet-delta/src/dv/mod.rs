//! Deletion vectors and the key scan: reading and writing vectors in the Delta format, the
//! scanned MERGE (replaced rows marked in vectors, or their files rewritten), and the purge.

pub(crate) mod format;
mod merge;
mod purge;
mod rewrite;
pub(crate) mod scan;

pub use format::DvError;
pub(crate) use merge::{lost_race, Removal};
pub use purge::{DeletedRows, PurgeOutcome};
