//! The `tombstones` table: the latest MERGE delete per key, so that an older update arriving
//! later cannot bring a deleted row back; expired after `tombstone_retention_hours`.

use rusqlite::{params, OptionalExtension};

use crate::db::now_ms;
use crate::error::sql_error;
use crate::{Checkpoint, CheckpointError};

pub(crate) const TABLE: &str = "
-- MERGE tombstones: the latest delete per key (key = JSON array of the key values; seq in
-- an order-preserving text form), so an older update arriving later cannot revive the row.
CREATE TABLE IF NOT EXISTS tombstones(
    key           TEXT PRIMARY KEY,
    seq           TEXT NOT NULL,
    batch_id      INTEGER NOT NULL,
    deleted_at_ms INTEGER NOT NULL
) WITHOUT ROWID;
";

impl Checkpoint {
    /// The tombstone sequence of each of `keys` that has one, in the order given (`None`
    /// where there is none). One indexed look-up per key.
    pub fn tombstones(&mut self, keys: &[String]) -> Result<Vec<Option<String>>, CheckpointError> {
        let sql = sql_error(&self.db);
        let tx = self.conn.transaction().map_err(&sql)?;
        let mut out = Vec::with_capacity(keys.len());
        {
            let mut stmt = tx
                .prepare_cached("SELECT seq FROM tombstones WHERE key = ?1")
                .map_err(&sql)?;
            for key in keys {
                out.push(
                    stmt.query_row([key], |r| r.get(0))
                        .optional()
                        .map_err(&sql)?,
                );
            }
        }
        tx.commit().map_err(&sql)?;
        Ok(out)
    }

    /// Records deletes of batch `batch_id` as tombstones, keeping the higher sequence per key,
    /// and drops tombstones older than `retain_ms` (by the time they were written). Written
    /// before the batch commits: a replay writes the same ones again. One transaction:
    /// all of `deletes` and the expiry, or none. Refuses nothing.
    pub fn put_tombstones(
        &mut self,
        batch_id: i64,
        deletes: &[(String, String)],
        retain_ms: i64,
    ) -> Result<(), CheckpointError> {
        let sql = sql_error(&self.db);
        let now = now_ms();
        let tx = self.conn.transaction().map_err(&sql)?;
        {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT INTO tombstones(key, seq, batch_id, deleted_at_ms) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT(key) DO UPDATE SET seq = excluded.seq, batch_id = excluded.batch_id,
                         deleted_at_ms = excluded.deleted_at_ms
                     WHERE excluded.seq > tombstones.seq",
                )
                .map_err(&sql)?;
            for (key, seq) in deletes {
                stmt.execute(params![key, seq, batch_id, now])
                    .map_err(&sql)?;
            }
        }
        tx.execute(
            "DELETE FROM tombstones WHERE deleted_at_ms < ?1",
            [now.saturating_sub(retain_ms)],
        )
        .map_err(&sql)?;
        tx.commit().map_err(&sql)
    }
}

#[cfg(test)]
mod tests {
    use crate::test_support::me;
    use crate::Checkpoint;

    #[test]
    fn tombstones_keep_the_latest_delete() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cp = Checkpoint::open(dir.path(), "p", me()).expect("open");
        let day = 86_400_000;
        cp.put_tombstones(
            1,
            &[("[1]".into(), "05".into()), ("[2]".into(), "03".into())],
            day,
        )
        .expect("put");
        cp.put_tombstones(
            2,
            &[("[1]".into(), "04".into()), ("[2]".into(), "09".into())],
            day,
        )
        .expect("put");
        let got = cp
            .tombstones(&["[1]".into(), "[2]".into(), "[3]".into()])
            .expect("get");
        assert_eq!(got, vec![Some("05".into()), Some("09".into()), None]);
        cp.put_tombstones(3, &[], -1).expect("expire all");
        assert_eq!(cp.tombstones(&["[1]".into()]).expect("get"), vec![None]);
    }
}
