//! Where new files come from. A [`Discover`] yields [`FileEvent`]s (by listing a prefix, or
//! from S3 event notifications on an SQS queue); [`SourceStore`] reads the files planned.

mod error;
mod event;
mod export_manifest;
mod incremental;
mod key_filter;
mod listing;
mod local_walk;
mod notification;
mod read_buffers;
mod sqs;
mod store;
mod unreadable;

pub use error::{escape_controls, DiscoverError};
pub use event::FileEvent;
pub use export_manifest::{
    export_manifest_path, ExportKind, ExportManifest, ManifestError, MANIFEST_SUMMARY,
};
pub use incremental::ListingMode;
pub use listing::{ListingDiscoverer, ListingOptions};
pub use notification::{parse_notification, Notification, NotificationParseError, ObjectCreated};
pub use sqs::{NotificationDiscoverer, NotificationOptions};
pub use store::SourceStore;
pub use unreadable::{Unreadable, CONTROL_CHARACTER, SYMLINK_LOOP, UNADDRESSABLE};

use std::time::Duration;

use futures::future::BoxFuture;

/// A source of file events. Implementations return every candidate they see; the pipeline
/// dedupes against the checkpoint, then tells the source which paths are durably handled.
pub trait Discover: Send {
    /// Candidates found now. A queue waits up to `wait` for the first event (long polling);
    /// a listing returns at once with everything it sees.
    fn discover(&mut self, wait: Duration) -> BoxFuture<'_, Result<Vec<FileEvent>, DiscoverError>>;

    /// These files are durably handled (committed, skipped, failed, or seen before):
    /// acknowledge the events that named them, as (path, ETag) or (path, `None`) for every
    /// version of the path. A no-op for listing.
    fn settle<'a>(
        &'a mut self,
        _files: &'a [(String, Option<String>)],
    ) -> BoxFuture<'a, Result<(), DiscoverError>> {
        Box::pin(async { Ok(()) })
    }

    /// These files cannot be taken yet (a DynamoDB export's data before its manifest is
    /// written): stop holding the events that named them and let them be delivered again
    /// after `after`. A no-op for listing, whose next listing finds the files again.
    fn defer<'a>(
        &'a mut self,
        _files: &'a [String],
        _after: Duration,
    ) -> BoxFuture<'a, Result<(), DiscoverError>> {
        Box::pin(async { Ok(()) })
    }

    /// On a clean stop: give back events not yet settled so they are delivered again at
    /// once rather than after their visibility timeout. A no-op for listing.
    fn release(&mut self) -> BoxFuture<'_, Result<(), DiscoverError>> {
        Box::pin(async { Ok(()) })
    }

    /// Events waiting upstream (approximate queue depth), when the source knows.
    fn backlog(&mut self) -> BoxFuture<'_, Option<u64>> {
        Box::pin(async { None })
    }

    /// True when the last `discover` came back empty because the source has nothing more
    /// (an empty receive), not because the wait ran out. Always true for a listing.
    fn exhausted(&self) -> bool {
        true
    }

    /// True when `settle` must hear of every file handled, seen before or too old included
    /// (a queue acknowledges them; an incremental listing moves past them).
    fn wants_settled(&self) -> bool {
        self.is_stream()
    }

    /// Where this source has got to, as JSON to keep in the checkpoint and hand back at the
    /// next start, when it changed since last asked (an incremental listing's last key).
    fn position(&mut self) -> Option<String> {
        None
    }

    /// True when events trickle in (a queue) rather than come whole (a listing).
    fn is_stream(&self) -> bool {
        false
    }

    /// A short name for logs ("listing", "notifications").
    fn kind(&self) -> &'static str;
}
