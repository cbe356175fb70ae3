//! The runner lease: `lease.json`, taken with `If-None-Match` (or `If-Match` on an expired
//! one), renewed with `If-Match` every third of its time to live, released by expiring it.
//! It keeps two runners from working at once; exactly-once rests on the plan and `txn`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use object_store::ObjectStoreExt;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::{Remote, RemoteError};

const LEASE: &str = "lease.json";

/// Who holds a lease.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Holder {
    pub host: String,
    pub pid: u32,
    /// RFC 3339 time the holder took the lease.
    pub since: String,
}

/// The lease object's body.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LeaseBody {
    pub holder: Holder,
    /// Unique per taking, so each renewal's body (and ETag) differs from every other's.
    pub token: String,
    pub renewals: u64,
    pub ttl_ms: u64,
    /// The holder's wall clock: when the lease lapses unless renewed. 0 once released.
    pub expires_at_ms: i64,
}

struct State {
    etag: String,
    body: LeaseBody,
    /// Monotonic: the holder may act until then (time of the last renewal's request + ttl,
    /// less a tenth of the ttl for clock drift).
    valid_until: Instant,
    lost: Option<String>,
}

/// A lease this process holds, renewed in the background until released or lost.
pub struct Lease {
    remote: Remote,
    ttl: Duration,
    state: Arc<Mutex<State>>,
    lost_rx: watch::Receiver<bool>,
    renewer: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease")
            .field("url", &self.remote.url)
            .finish()
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn token() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    h.write_u32(std::process::id());
    format!("{:016x}", h.finish())
}

impl Remote {
    /// The lease as it stands: its body and ETag, `None` when nobody holds one.
    pub async fn read_lease(&self) -> Result<Option<(LeaseBody, String)>, RemoteError> {
        let key = self.key(LEASE);
        let got = match self.store.get(&key).await {
            Ok(got) => got,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(RemoteError::store("read", self.name(LEASE))(e)),
        };
        let etag = got.meta.e_tag.clone().unwrap_or_default();
        let bytes = got
            .bytes()
            .await
            .map_err(RemoteError::store("read", self.name(LEASE)))?;
        let body = serde_json::from_slice(&bytes).map_err(|e| RemoteError::Corrupt {
            key: self.name(LEASE),
            reason: e.to_string(),
        })?;
        Ok(Some((body, etag)))
    }

    /// Writes the lease body: created when `over` is `None`, else replacing the version
    /// with that ETag. `Ok(None)`: someone else wrote it first.
    async fn write_lease(
        &self,
        body: &LeaseBody,
        over: Option<&str>,
    ) -> Result<Option<String>, RemoteError> {
        let text = serde_json::to_vec(body).unwrap_or_default();
        self.put_if(LEASE, text, over).await
    }

    /// Takes the lease for `me` with time to live `ttl`. A lease another runner holds is
    /// taken over once released, once its `expires_at_ms` is a whole ttl past (slack for a
    /// clock that differs from ours), or, standing by, once this process has seen it
    /// unchanged for the holder's ttl on its own monotonic clock (no clock needs to agree).
    /// Until then: with `standby` set, waits (checking every quarter of the holder's ttl)
    /// until it can take it or `standby` turns true (`Ok(None)`); without, fails with
    /// [`RemoteError::Held`] naming the holder.
    pub async fn acquire(
        &self,
        me: Holder,
        ttl: Duration,
        mut standby: Option<watch::Receiver<bool>>,
    ) -> Result<Option<Lease>, RemoteError> {
        let mut announced = false;
        // The holder's lease as first seen in this version, and when.
        let mut seen: Option<(String, Instant)> = None;
        loop {
            let current = self.read_lease().await?;
            let mine = LeaseBody {
                holder: me.clone(),
                token: token(),
                renewals: 0,
                ttl_ms: ttl.as_millis() as u64,
                expires_at_ms: now_ms() + ttl.as_millis() as i64,
            };
            let sent = Instant::now();
            let (taken, over) = match &current {
                None => (self.write_lease(&mine, None).await?, None),
                Some((held, etag)) => {
                    let held_ttl = Duration::from_millis(held.ttl_ms);
                    let unchanged_for = match &seen {
                        Some((e, since)) if e == etag => since.elapsed(),
                        _ => {
                            seen = Some((etag.clone(), Instant::now()));
                            Duration::ZERO
                        }
                    };
                    let lapsed = held.expires_at_ms == 0
                        || now_ms() > held.expires_at_ms.saturating_add(held.ttl_ms as i64)
                        || (standby.is_some() && unchanged_for >= held_ttl);
                    if lapsed {
                        (
                            self.write_lease(&mine, Some(etag)).await?,
                            Some(held.clone()),
                        )
                    } else {
                        let Some(stop) = standby.as_mut() else {
                            return Err(RemoteError::Held {
                                url: self.url.clone(),
                                holder: held.holder.clone(),
                                until: chrono::DateTime::from_timestamp_millis(held.expires_at_ms)
                                    .map(|t| t.to_rfc3339())
                                    .unwrap_or_default(),
                            });
                        };
                        if !announced {
                            info!(holder = ?held.holder, "standing by: another runner holds the checkpoint's lease");
                            announced = true;
                        }
                        let pause = (held_ttl / 4).max(Duration::from_millis(200));
                        tokio::select! {
                            _ = tokio::time::sleep(pause) => {}
                            _ = until_true(stop) => return Ok(None),
                        }
                        continue;
                    }
                }
            };
            let Some(etag) = taken else {
                continue; // another runner wrote it between our read and write
            };
            if let Some(former) = over {
                warn!(former = ?former.holder, "took over the checkpoint's lease: its holder let it lapse");
            }
            let (lost_tx, lost_rx) = watch::channel(false);
            let state = Arc::new(Mutex::new(State {
                etag,
                body: mine,
                valid_until: sent + ttl - ttl / 10,
                lost: None,
            }));
            let renewer = tokio::spawn(renew(self.clone(), ttl, state.clone(), lost_tx));
            return Ok(Some(Lease {
                remote: self.clone(),
                ttl,
                state,
                lost_rx,
                renewer,
            }));
        }
    }
}

/// Renews every third of `ttl` (sooner after a failed try; each try bounded by a quarter
/// of `ttl`) until the lease is lost: another runner took it, or no renewal succeeded
/// before it lapsed. Then says so on `lost`.
async fn renew(remote: Remote, ttl: Duration, state: Arc<Mutex<State>>, lost: watch::Sender<bool>) {
    let mut pause = ttl / 3;
    loop {
        tokio::time::sleep(pause).await;
        let (etag, mut body, valid_until) = {
            let Ok(s) = state.lock() else { return };
            if s.lost.is_some() {
                return;
            }
            (s.etag.clone(), s.body.clone(), s.valid_until)
        };
        if Instant::now() >= valid_until {
            set_lost(&state, &lost, "it lapsed before a renewal got through (was the process paused, or the store unreachable?)".into());
            return;
        }
        body.renewals += 1;
        body.expires_at_ms = now_ms() + ttl.as_millis() as i64;
        let sent = Instant::now();
        let adopt = |etag: String, body: LeaseBody| {
            if let Ok(mut s) = state.lock() {
                s.etag = etag;
                s.body = body;
                s.valid_until = sent + ttl - ttl / 10;
            }
        };
        match tokio::time::timeout(ttl / 4, remote.write_lease(&body, Some(&etag))).await {
            Ok(Ok(Some(etag))) => {
                adopt(etag, body);
                pause = ttl / 3;
            }
            Ok(Ok(None)) => {
                // Either another runner took it, or an earlier try of ours landed though
                // its answer was lost: the token tells which.
                match remote.read_lease().await {
                    Ok(Some((current, etag))) if current.token == body.token => {
                        adopt(etag, current);
                        pause = ttl / 3;
                    }
                    Ok(Some((current, _))) => {
                        let taker =
                            format!("host {}, pid {}", current.holder.host, current.holder.pid);
                        set_lost(
                            &state,
                            &lost,
                            format!("it was taken over by {taker} after it lapsed"),
                        );
                        return;
                    }
                    Ok(None) => {
                        set_lost(&state, &lost, "lease.json was deleted".into());
                        return;
                    }
                    Err(e) => {
                        warn!(error = %e, "cannot read the checkpoint's lease after a refused renewal; retrying");
                        pause = ttl / 10;
                    }
                }
            }
            Ok(Err(e)) => {
                warn!(error = %e, "cannot renew the checkpoint's lease; retrying");
                pause = ttl / 10;
            }
            Err(_) => {
                warn!(
                    timeout_ms = (ttl / 4).as_millis() as u64,
                    "renewing the checkpoint's lease timed out; retrying"
                );
                pause = ttl / 10;
            }
        }
    }
}

/// Returns once `rx` holds true, or its sender is gone (a loop on `changed`: `wait_for`'s
/// closure would keep callers' futures from being `Send`).
async fn until_true(rx: &mut watch::Receiver<bool>) {
    while !*rx.borrow_and_update() {
        if rx.changed().await.is_err() {
            return;
        }
    }
}

fn set_lost(state: &Mutex<State>, lost: &watch::Sender<bool>, reason: String) {
    warn!(%reason, "lost the checkpoint's lease; stopping");
    if let Ok(mut s) = state.lock() {
        s.lost.get_or_insert(reason);
    }
    let _ = lost.send(true);
}

impl Lease {
    /// `Ok` while this process may act on the checkpoint: the lease was renewed within its
    /// time to live and nobody took it. Checked before a batch is planned and before it is
    /// committed; a pause between this check and the act is caught by the plan's
    /// `If-None-Match` and the table's `txn` (docs/architecture.md).
    pub fn check(&self) -> Result<(), RemoteError> {
        let Ok(s) = self.state.lock() else {
            return Err(self.lost("its state is unreadable".into()));
        };
        if let Some(reason) = &s.lost {
            return Err(self.lost(reason.clone()));
        }
        if Instant::now() >= s.valid_until {
            return Err(self.lost(format!(
                "it was last renewed more than {:?} ago (was the process paused?)",
                self.ttl - self.ttl / 10
            )));
        }
        Ok(())
    }

    fn lost(&self, reason: String) -> RemoteError {
        RemoteError::Lost {
            url: self.remote.url.clone(),
            reason,
        }
    }

    /// Turns true when the lease is lost.
    pub fn lost_signal(&self) -> watch::Receiver<bool> {
        self.lost_rx.clone()
    }

    /// The holder's body as last written.
    pub fn body(&self) -> Option<LeaseBody> {
        self.state.lock().ok().map(|s| s.body.clone())
    }

    /// Stops renewing and expires the lease at once, so a standby takes over without
    /// waiting out the ttl. Best effort: a lease not released lapses by itself.
    pub async fn release(self) {
        self.renewer.abort();
        let (etag, mut body) = match self.state.lock() {
            Ok(s) if s.lost.is_none() => (s.etag.clone(), s.body.clone()),
            _ => return,
        };
        body.renewals += 1;
        body.expires_at_ms = 0;
        match self.remote.write_lease(&body, Some(&etag)).await {
            Ok(Some(_)) => {}
            Ok(None) => warn!(
                "cannot release the checkpoint's lease: it changed meanwhile; it lapses by itself"
            ),
            Err(e) => {
                warn!(error = %e, "cannot release the checkpoint's lease; it lapses by itself")
            }
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.renewer.abort();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use object_store::memory::InMemory;

    use super::*;

    fn holder(pid: u32) -> Holder {
        Holder {
            host: "h".into(),
            pid,
            since: "2026-01-01T00:00:00Z".into(),
        }
    }

    #[tokio::test]
    async fn a_held_lease_names_its_holder_a_standby_takes_it_when_it_lapses() {
        let r = Remote::new(Arc::new(InMemory::new()), "chk".into(), "s3://b/chk");
        let ttl = Duration::from_millis(600);
        let first = r
            .acquire(holder(1), ttl, None)
            .await
            .expect("take")
            .expect("held");
        first.check().expect("valid");
        let err = r.acquire(holder(2), ttl, None).await.expect_err("held");
        assert!(err.to_string().contains("pid 1"), "{err}");
        // Renewals keep it: after three ttls it is still the first holder's.
        tokio::time::sleep(ttl * 3).await;
        first.check().expect("renewed");
        assert_eq!(
            r.read_lease()
                .await
                .expect("read")
                .expect("some")
                .0
                .holder
                .pid,
            1
        );
        // Frozen (renewals stopped): a standby takes over once it lapses, and the former
        // holder finds out.
        first.renewer.abort();
        let (_stop_tx, stop) = watch::channel(false);
        let second = r
            .acquire(holder(2), ttl, Some(stop))
            .await
            .expect("take")
            .expect("held");
        second.check().expect("valid");
        let err = first.check().expect_err("lapsed");
        assert!(err.to_string().contains("lost the lease"), "{err}");
        // Releasing expires it at once.
        second.release().await;
        let third = r
            .acquire(holder(3), ttl, None)
            .await
            .expect("take")
            .expect("held");
        third.check().expect("valid");
    }

    #[tokio::test]
    async fn a_taken_over_holder_learns_it_on_its_next_renewal() {
        let r = Remote::new(Arc::new(InMemory::new()), "chk".into(), "s3://b/chk");
        let ttl = Duration::from_millis(900);
        let first = r
            .acquire(holder(1), ttl, None)
            .await
            .expect("take")
            .expect("held");
        let mut lost = first.lost_signal();
        // Someone overwrites the lease behind its back (a standby whose clock ran ahead).
        let (body, etag) = r.read_lease().await.expect("read").expect("some");
        let mut other = body.clone();
        other.holder = holder(2);
        other.token = "x".into();
        r.write_lease(&other, Some(&etag))
            .await
            .expect("write")
            .expect("won");
        lost.wait_for(|l| *l).await.expect("signal");
        let err = first.check().expect_err("lost");
        assert!(
            err.to_string().contains("taken over by host h, pid 2"),
            "{err}"
        );
    }
}
