//! The listing loop: list the source, take everything new in bounded batches, then wait for
//! the trigger interval (or stop, when draining).

use std::time::Duration;

use tokio::sync::watch;
use tracing::info;

use super::backlog::Backlog;
use super::{may_retry, RunMode};
use crate::error::Result;
use crate::pipeline::Pipeline;

impl Pipeline {
    /// Listing: list, take everything new in bounded batches, wait for the trigger.
    pub(super) async fn run_listing(
        &mut self,
        mode: RunMode,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<()> {
        let mut backlog = Backlog::default();
        let mut failures = 0u32;
        loop {
            let found = match self.discover.discover(Duration::ZERO).await {
                Ok(found) => found,
                // A continuous run retries until the source answers; a draining run retries
                // transient trouble as often as a batch would.
                Err(e)
                    if mode == RunMode::Continuous
                        || (e.is_transient() && may_retry(mode, failures)) =>
                {
                    failures += 1;
                    if self.pause_after(failures, &e, shutdown).await {
                        return Ok(());
                    }
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            failures = 0;
            self.healthy();
            let listed = found.len();
            let new = self.admit(found, &mut backlog).await?;
            self.save_listing_position()?;
            info!(
                discovery = self.discover.kind(),
                listed, new, "discovered files"
            );
            while !backlog.is_empty() {
                if *shutdown.borrow() {
                    info!("shutdown requested: stopping between batches");
                    return Ok(());
                }
                if !self.next_batch(&mut backlog, mode, shutdown).await? {
                    return Ok(());
                }
                self.save_listing_position()?;
                if mode == RunMode::Once {
                    return Ok(());
                }
            }
            match mode {
                RunMode::Once | RunMode::AvailableNow => return Ok(()),
                RunMode::Continuous => {
                    self.clean_up().await?;
                    self.compact()?;
                    let wait = Duration::from_secs(self.cfg.trigger.interval_seconds);
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = super::until_true(shutdown) => return Ok(()),
                    }
                }
            }
        }
    }
}
