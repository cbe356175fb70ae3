//! Data files written again without some of their rows: the copy-on-write MERGE's touched
//! files and the purge's, read a batch at a time and handed to a table writer.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use object_store::ObjectStore;
use roaring::RoaringTreemap;

use super::scan::{FileBatches, FileToRead};
use crate::SinkError;

/// Writes the live rows of `files` (each past its `deleted` rows) into `writer`, in order,
/// a decoded batch at a time: memory holds a batch, not a file, while the writer's lanes
/// encode the batches before it.
pub(crate) async fn rewrite_into(
    writer: &mut crate::TableWriter,
    store: &Arc<dyn ObjectStore>,
    columns: &SchemaRef,
    files: &[(FileToRead, RoaringTreemap)],
    fail: impl Fn(String) -> SinkError,
) -> Result<(), SinkError> {
    for (read, deleted) in files {
        let mut batches = FileBatches::open(store, read, columns)
            .await
            .map_err(|e| fail(e.to_string()))?;
        while let Some((_, batch, live)) = batches
            .next(deleted)
            .await
            .map_err(|e| fail(e.to_string()))?
        {
            let batch = match live {
                Some(mask) => arrow::compute::filter_record_batch(&batch, &mask)
                    .map_err(|e| fail(format!("data file {}: {e}", read.path)))?,
                None => batch,
            };
            writer.write(batch).await?;
        }
    }
    Ok(())
}
