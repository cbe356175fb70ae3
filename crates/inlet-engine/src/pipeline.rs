//! A pipeline: what one run of a config holds (the locked checkpoint, the source, the table,
//! the catalog), and opening it, with every check that must pass before anything is written.

use std::sync::Arc;

use inlet_checkpoint::Checkpoint;
use inlet_delta::{DeltaSink, SinkError};
use inlet_discover::{
    Discover, ListingDiscoverer, ListingOptions, NotificationDiscoverer, SourceStore,
};
use inlet_transform::Transform;

use crate::bad_records::BadRecords;
use crate::catalog::Catalog;
use crate::config::Config;
use crate::error::{EngineError, Result};
use crate::events::{Observer, Observers};
use crate::faults::{FaultPoint, Faults};
use crate::retry::BATCH_ATTEMPTS;
use crate::stats::RunStats;

/// How a pipeline is opened.
#[derive(Debug, Clone, Copy, Default)]
pub struct OpenOptions {
    /// The run will stop when nothing is left (`--available-now`, `--once`): SQS long polls
    /// are short, so an empty queue is known within a second.
    pub draining: bool,
    /// Test-only: a step of the batch protocol where the process kills itself.
    pub fault_point: Option<FaultPoint>,
    /// Test-only: stop the process (SIGSTOP) at the fault point instead of killing it.
    pub fault_freezes: bool,
}

/// A pipeline ready to run: the runner lock held, the source and table reached, recovery
/// still to come (it is the first thing [`Pipeline::run`] does).
pub struct Pipeline {
    pub(crate) cfg: Config,
    pub(crate) checkpoint: Checkpoint,
    pub(crate) sink: DeltaSink,
    pub(crate) source: SourceStore,
    /// `clean_source = "archive"`: where processed files move.
    pub(crate) archive: Option<SourceStore>,
    /// When the checkpoint was last compacted (`max_file_age`).
    pub(crate) compacted_at: Option<std::time::Instant>,
    pub(crate) discover: Box<dyn Discover>,
    /// With notifications: the listing behind `include_existing_files` and backfills.
    pub(crate) backfill: Option<ListingDiscoverer>,
    pub(crate) bad_records: BadRecords,
    pub(crate) transform: Transform,
    pub(crate) faults: Faults,
    pub(crate) stats: RunStats,
    pub(crate) events: Observers,
    /// `uc://` sinks: the catalog that vends the table's credentials.
    pub(crate) catalog: Option<Catalog>,
    /// DynamoDB exports' times by the path of their `manifest-summary.json` (exports are
    /// immutable once their manifest is written, so this only grows).
    pub(crate) exports: std::collections::HashMap<String, i64>,
    /// Table maintenance's memory between batches.
    pub(crate) upkeep: crate::upkeep::Upkeep,
    /// An `s3://` checkpoint: its lease, objects and snapshots.
    pub(crate) remote: Option<crate::remote::RemoteState>,
}

impl Pipeline {
    /// Opens the pipeline of `config`: checks the paths, reaches the source and the table
    /// (retrying transient trouble), resolves a `uc://` table in its catalog, takes the
    /// checkpoint's runner lock, and plans the SQL against the stored schema, so that a bad
    /// bucket, path or query fails before anything is written or read. Refuses with
    /// [`EngineError::Checkpoint`] (`Locked`) when another run holds the checkpoint.
    pub async fn open(config: Config, options: OpenOptions) -> Result<Self> {
        let faults = Faults::new(options.fault_point, options.fault_freezes);
        let opening: futures::future::BoxFuture<'static, _> =
            Box::pin(start(config, faults, options.draining, None));
        match opening.await? {
            Some(p) => Ok(p),
            None => Err(EngineError::Usage(
                "the pipeline stopped before it opened".into(),
            )),
        }
    }

    /// As [`Pipeline::open`], but when another runner holds an `s3://` checkpoint's lease,
    /// stands by until it lapses (`--standby`); `Ok(None)` when `stop` turned true first.
    /// A local checkpoint's lock is not waited for.
    pub fn open_standby(
        config: Config,
        options: OpenOptions,
        stop: tokio::sync::watch::Receiver<bool>,
    ) -> futures::future::BoxFuture<'static, Result<Option<Self>>> {
        let faults = Faults::new(options.fault_point, options.fault_freezes);
        Box::pin(start(config, faults, options.draining, Some(stop)))
    }

    /// Adds an observer of this pipeline's [`crate::Event`]s.
    pub fn observe(&mut self, observer: Arc<dyn Observer>) {
        self.events.add(observer);
    }

    /// The pipeline's config, as resolved (a `uc://` table's storage location included).
    pub fn config(&self) -> &Config {
        &self.cfg
    }
}

/// Opens the source and the table (checking both are reachable, before anything is
/// written), then the checkpoint with its runner lock. `draining`: the run stops when
/// nothing is left (`--available-now`, `--once`).
async fn start(
    mut cfg: Config,
    faults: Faults,
    draining: bool,
    standby: Option<tokio::sync::watch::Receiver<bool>>,
) -> Result<Option<Pipeline>> {
    crate::preflight::check_paths(&cfg)?;
    let source = SourceStore::open(&cfg.source.url, &cfg.source_options())?;
    crate::retry::transient_retried(
        "the source",
        BATCH_ATTEMPTS,
        inlet_discover::DiscoverError::is_transient,
        || source.check_reachable(),
    )
    .await?;
    let mut catalog = Catalog::resolve(&mut cfg).await?;
    let sink_options = cfg.sink_options();
    let mut sink = crate::retry::transient_retried(
        "the table",
        BATCH_ATTEMPTS,
        SinkError::is_transient,
        || DeltaSink::open(&cfg.table_url, &sink_options),
    )
    .await?;
    if let Some(catalog) = catalog.as_mut() {
        if let Some(options) = catalog.start(&sink.spark_fields()?, &mut cfg).await? {
            sink = DeltaSink::open(&cfg.table_url, &options).await?;
        }
    }
    let (checkpoint, remote) = match cfg.remote.clone() {
        None => (
            Checkpoint::open(&cfg.checkpoint_dir, &cfg.pipeline_id, crate::lock_holder())?,
            None,
        ),
        Some(rc) => match crate::remote::open(&cfg, rc, &mut sink, standby).await? {
            Some((cp, state)) => (cp, Some(state)),
            None => return Ok(None),
        },
    };
    // Bad SQL, keys the table lacks and the like fail here, before any file is read.
    let stored = crate::preflight::files_schema(&cfg, checkpoint.latest_schema()?)?;
    crate::preflight::check_sql(&cfg, stored.as_ref(), sink.arrow_schema()?.as_deref()).await?;
    let transform = Transform::new(cfg.transform.sql.as_deref());
    let archive = open_archive(&cfg).await?;
    let bad_records = BadRecords::open(
        &cfg.source.bad_records,
        &cfg.bad_records_options(),
        &cfg.pipeline_id,
    )?;

    // Without include_existing_files, files older than the pipeline's first start are not
    // taken; that start time is kept so later runs draw the same line.
    let modified_after_ms = if cfg.source.include_existing_files {
        None
    } else {
        let first_start = match checkpoint.meta("first_start_ms")? {
            Some(v) => v.parse().map_err(|_| EngineError::CheckpointMeta {
                key: "first_start_ms",
                value: v.clone(),
            })?,
            None => {
                let now = chrono::Utc::now().timestamp_millis();
                checkpoint.set_meta("first_start_ms", &now.to_string())?;
                now
            }
        };
        Some(first_start)
    };
    let options = ListingOptions {
        path_glob: cfg.source.path_glob.clone(),
        modified_after_ms,
        skip_export_manifests: cfg.source.format.is_dynamodb(),
        ..ListingOptions::default()
    };
    // The backfill listing of notifications is always full.
    let listing = ListingDiscoverer::new(
        source.clone(),
        match cfg.source.notifications() {
            Some(_) => options,
            None => ListingOptions {
                mode: cfg.source.listing.into(),
                full_listing_interval: cfg.source.full_listing_interval,
                position: checkpoint.meta(LISTING_POSITION)?,
                ..options
            },
        },
    )?;
    let (discover, backfill): (Box<dyn Discover>, _) = match cfg.notification_options() {
        None => (Box::new(listing), None),
        Some(mut options) => {
            if draining {
                // Short long polls, so an empty queue is known within a second, and no
                // pause: a drain takes what is there as fast as it can.
                options.max_wait_seconds = 1;
                options.receive_pause = std::time::Duration::ZERO;
            }
            let queue = NotificationDiscoverer::connect(source.clone(), options).await?;
            (Box::new(queue), Some(listing))
        }
    };
    Ok(Some(Pipeline {
        cfg,
        checkpoint,
        sink,
        source,
        archive,
        compacted_at: None,
        discover,
        backfill,
        stats: RunStats {
            bad_records_location: bad_records.url().to_string(),
            ..RunStats::default()
        },
        bad_records,
        transform,
        faults,
        events: Observers::default(),
        catalog,
        exports: std::collections::HashMap::new(),
        upkeep: Default::default(),
        remote,
    }))
}

/// The checkpoint's meta key for an incremental listing's position.
pub(crate) const LISTING_POSITION: &str = "listing_position";

impl Pipeline {
    /// Keeps where an incremental listing has got to, when it moved: the next start lists
    /// from there. Kept after the files it passes are durably handled, so a crash leaves an
    /// older position (listing more), never a newer one.
    pub(crate) fn save_listing_position(&mut self) -> Result<()> {
        if let Some(position) = self.discover.position() {
            self.checkpoint.set_meta(LISTING_POSITION, &position)?;
        }
        Ok(())
    }
}

/// `clean_source = "archive"`: the archive's store, checked reachable when it is a bucket (a
/// local archive directory is created by the first move).
pub(crate) async fn open_archive(cfg: &Config) -> Result<Option<SourceStore>> {
    let Some(url) = cfg.source.clean.archive() else {
        return Ok(None);
    };
    let store = SourceStore::open(url, &cfg.source_options()).map_err(EngineError::Archive)?;
    if store.bucket().is_some() {
        store
            .check_reachable()
            .await
            .map_err(EngineError::Archive)?;
    }
    Ok(Some(store))
}
