//! One object per batch and kind under `batches/<id>/`: the plan (created once, before any
//! data is written), the MERGE tombstones (before the commit), the outcome of a batch that
//! made no commit. Contents are the engine's JSON; this module owns keys and conditions.

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload};

use crate::{Remote, RemoteError};

/// What a batch object holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObjectKind {
    /// The batch's id and files, written once with `If-None-Match` before any data.
    Plan,
    /// The deletes a MERGE batch records as tombstones, written before its commit.
    Tombstones,
    /// The outcome of a batch that made no Delta commit (no rows): its files and states.
    Done,
}

impl ObjectKind {
    fn file(self) -> &'static str {
        match self {
            Self::Plan => "plan.json",
            Self::Tombstones => "tombstones.json",
            Self::Done => "done.json",
        }
    }

    fn parse(file: &str) -> Option<Self> {
        [Self::Plan, Self::Tombstones, Self::Done]
            .into_iter()
            .find(|k| k.file() == file)
    }
}

/// A batch object found by a listing.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct BatchObject {
    pub batch_id: i64,
    pub kind: ObjectKind,
}

fn rel(batch_id: i64, kind: ObjectKind) -> String {
    format!("batches/{batch_id:020}/{}", kind.file())
}

impl Remote {
    /// Writes batch `batch_id`'s `kind` object. A plan is created only if absent
    /// (`If-None-Match`): when another runner planned this id first, the result is
    /// [`RemoteError::PlanTaken`]. Tombstones and outcomes are overwritten (a replay writes
    /// the same ones).
    pub async fn put_batch_object(
        &self,
        batch_id: i64,
        kind: ObjectKind,
        body: Vec<u8>,
    ) -> Result<(), RemoteError> {
        let rel = rel(batch_id, kind);
        let mode = if kind == ObjectKind::Plan {
            PutMode::Create
        } else {
            PutMode::Overwrite
        };
        let opts = PutOptions {
            mode,
            ..Default::default()
        };
        match self
            .store
            .put_opts(&self.key(&rel), PutPayload::from(body), opts)
            .await
        {
            Ok(_) => Ok(()),
            Err(object_store::Error::AlreadyExists { .. }) => Err(RemoteError::PlanTaken {
                url: self.url.clone(),
                batch_id,
                key: self.name(&rel),
            }),
            Err(e) => Err(RemoteError::store("write", self.name(&rel))(e)),
        }
    }

    /// Batch `batch_id`'s `kind` object, `None` when there is none.
    pub async fn get_batch_object(
        &self,
        batch_id: i64,
        kind: ObjectKind,
    ) -> Result<Option<Bytes>, RemoteError> {
        let rel = rel(batch_id, kind);
        match self.store.get(&self.key(&rel)).await {
            Ok(got) => Ok(Some(
                got.bytes()
                    .await
                    .map_err(RemoteError::store("read", self.name(&rel)))?,
            )),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(RemoteError::store("read", self.name(&rel))(e)),
        }
    }

    /// Every batch object of batches after `batch_id`, by batch then kind: one LIST that
    /// starts after the batch's own objects, so its cost follows the batches since then,
    /// not the checkpoint's age.
    pub async fn batch_objects_after(
        &self,
        batch_id: i64,
    ) -> Result<Vec<BatchObject>, RemoteError> {
        let dir = self.key("batches");
        // `zz` sorts after every object name of batch `batch_id` (`~` would be escaped).
        let offset = self.key(&format!("batches/{batch_id:020}/zz"));
        let metas: Vec<_> = self
            .store
            .list_with_offset(Some(&dir), &offset)
            .try_collect()
            .await
            .map_err(RemoteError::store("list", self.name("batches/")))?;
        let mut out: Vec<BatchObject> = metas
            .iter()
            .filter_map(|m| {
                let mut parts = m.location.parts().collect::<Vec<_>>().into_iter().rev();
                let kind = ObjectKind::parse(parts.next()?.as_ref())?;
                let batch_id = parts.next()?.as_ref().parse().ok()?;
                Some(BatchObject { batch_id, kind })
            })
            .collect();
        out.sort();
        Ok(out)
    }

    /// Deletes the objects of batches up to `batch_id` (a snapshot covers them now).
    /// Best effort: what is left is listed past, never read.
    pub async fn forget_batches_through(&self, batch_id: i64) -> Result<usize, RemoteError> {
        let dir = self.key("batches");
        let metas: Vec<object_store::ObjectMeta> = self
            .store
            .list(Some(&dir))
            .try_collect()
            .await
            .map_err(RemoteError::store("list", self.name("batches/")))?;
        // Filtered after the listing, not in it: a closure returning a future there would
        // keep callers' futures from being `Send`.
        let keys: Vec<object_store::path::Path> = metas
            .into_iter()
            .filter(|m| {
                let parts: Vec<_> = m.location.parts().collect();
                parts
                    .iter()
                    .rev()
                    .nth(1)
                    .and_then(|p| p.as_ref().parse::<i64>().ok())
                    .is_some_and(|id| id <= batch_id)
            })
            .map(|m| m.location)
            .collect();
        let n = keys.len();
        let stream = futures::stream::iter(keys.into_iter().map(Ok)).boxed();
        self.store
            .delete_stream(stream)
            .try_collect::<Vec<_>>()
            .await
            .map_err(RemoteError::store("delete under", self.name("batches/")))?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use object_store::memory::InMemory;

    use super::*;

    fn remote() -> Remote {
        Remote::new(Arc::new(InMemory::new()), "chk/p".into(), "s3://b/chk/p")
    }

    #[tokio::test]
    async fn a_plan_is_written_once_and_listing_starts_after_a_batch() {
        let r = remote();
        r.put_batch_object(1, ObjectKind::Plan, b"1".to_vec())
            .await
            .expect("plan 1");
        r.put_batch_object(2, ObjectKind::Plan, b"2".to_vec())
            .await
            .expect("plan 2");
        r.put_batch_object(2, ObjectKind::Tombstones, b"t".to_vec())
            .await
            .expect("t");
        r.put_batch_object(2, ObjectKind::Tombstones, b"t2".to_vec())
            .await
            .expect("again");
        r.put_batch_object(11, ObjectKind::Done, b"d".to_vec())
            .await
            .expect("done");
        let err = r
            .put_batch_object(2, ObjectKind::Plan, b"other".to_vec())
            .await
            .expect_err("second plan");
        assert!(
            matches!(err, RemoteError::PlanTaken { batch_id: 2, .. }),
            "{err}"
        );
        assert_eq!(
            r.get_batch_object(2, ObjectKind::Plan)
                .await
                .expect("get")
                .as_deref(),
            Some(&b"2"[..])
        );
        let after: Vec<_> = r
            .batch_objects_after(1)
            .await
            .expect("list")
            .into_iter()
            .map(|o| (o.batch_id, o.kind))
            .collect();
        assert_eq!(
            after,
            vec![
                (2, ObjectKind::Plan),
                (2, ObjectKind::Tombstones),
                (11, ObjectKind::Done)
            ]
        );
        assert_eq!(r.forget_batches_through(2).await.expect("forget"), 3);
        assert_eq!(r.batch_objects_after(0).await.expect("list").len(), 1);
    }
}
