//! Where new files come from. A [`Discover`] yields [`FileEvent`]s; [`SourceStore`] opens a
//! `file://` or `s3://` prefix through object_store and reads the files the pipeline plans.

mod error;
mod event;
mod listing;
mod store;

pub use error::DiscoverError;
pub use event::FileEvent;
pub use listing::{ListingDiscoverer, ListingOptions};
pub use store::SourceStore;

use futures::future::BoxFuture;

/// A source of file events. `--available-now` calls [`Discover::discover`] once; continuous
/// runs call it every trigger. Implementations return every candidate they see; the
/// pipeline dedupes against the checkpoint.
pub trait Discover: Send {
    /// Candidates found now, in no particular order.
    fn discover(&mut self) -> BoxFuture<'_, Result<Vec<FileEvent>, DiscoverError>>;

    /// A short name for logs ("listing", "notifications").
    fn kind(&self) -> &'static str;
}
