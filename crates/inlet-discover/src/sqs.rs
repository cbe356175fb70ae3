//! Notification discovery: a background task long-polls an SQS queue for S3 event
//! notifications while batches run; each message is held (its visibility extended) until
//! every file it names is settled, then deleted.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry, QueueAttributeName,
};
use aws_sdk_sqs::Client;
use futures::future::BoxFuture;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::error::{escape_controls, DiscoverError};
use crate::event::FileEvent;
use crate::key_filter::KeyFilter;
use crate::notification::{parse_notification, Notification};
use crate::store::SourceStore;
use crate::Discover;

/// How to reach the queue and what to take from it.
#[derive(Debug, Clone, Default)]
pub struct NotificationOptions {
    /// The queue's URL, as SQS gives it.
    pub queue_url: String,
    /// SQS endpoint override. Default: `AWS_ENDPOINT_URL_SQS`/`AWS_ENDPOINT_URL`, else the
    /// queue URL's own origin when it is not an AWS host (LocalStack, moto, ElasticMQ).
    pub endpoint: Option<String>,
    /// The credential chain's settings (the source's storage options): SQS is signed by
    /// the same chain, and the same cache, as the S3 reads.
    pub aws: inlet_aws::AwsSettings,
    /// Messages per receive call, 1–10.
    pub max_messages: i32,
    /// Long poll length, seconds, 0–20 (the background receiver always waits this long).
    pub max_wait_seconds: i32,
    /// After a receive that came back with fewer than `max_messages` (the queue is nearly
    /// empty), wait this long before the next: at a trickle each receive then brings more
    /// messages for the same call. Zero receives again at once.
    pub receive_pause: Duration,
    /// How long a received message stays hidden; held messages are extended by this much
    /// before it runs out. `None`: the queue's own setting.
    pub visibility_timeout: Option<Duration>,
    /// Glob over keys relative to the source prefix.
    pub path_glob: Option<String>,
    /// Leave out DynamoDB export manifests and checksums (see `ListingOptions`); their
    /// notifications are acknowledged like those of any key left out. Default `false`.
    pub skip_export_manifests: bool,
}

/// A received message not yet deleted.
#[derive(Debug)]
struct HeldMessage {
    receipt: String,
    /// When its visibility runs out, as last set (at receipt or by the heartbeat).
    hidden_until: std::time::Instant,
    /// Files (path, ETag) it names that are not settled yet.
    pending: HashSet<(String, String)>,
}

/// Messages held by this run, by message id, and the messages naming each path.
#[derive(Debug, Default)]
struct Held {
    messages: HashMap<String, HeldMessage>,
    by_path: HashMap<String, Vec<(String, String)>>,
}

/// What the caller and the background tasks share.
struct Shared {
    client: Client,
    queue_url: String,
    held: Mutex<Held>,
    /// Set by `release`: the poller finishes the receive in flight and stops.
    stopping: AtomicBool,
}

/// Events the poller found, a receive call's worth at a time.
type Received = Result<Vec<FileEvent>, DiscoverError>;

/// At most this many receive calls' worth of events wait for the pipeline; beyond it the
/// poller stops receiving (messages stay on the queue), so memory stays bounded.
const READ_AHEAD: usize = 100;

/// How long a clean stop waits for the receive in flight to come back.
const STOP_GRACE: Duration = Duration::from_secs(3);

/// Reads S3 event notifications from SQS.
pub struct NotificationDiscoverer {
    shared: Arc<Shared>,
    events: mpsc::Receiver<Received>,
    visibility: Duration,
    /// The last `discover` found nothing because a receive came back empty.
    exhausted: bool,
    /// The receiver before the first `discover`: connecting (as `inlet validate` does)
    /// receives nothing, so no message is hidden by a run that never reads it.
    idle: Option<Poller>,
    /// The poller and the visibility heartbeat; stopped on release and on drop.
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for NotificationDiscoverer {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

fn lock(held: &Mutex<Held>) -> std::sync::MutexGuard<'_, Held> {
    held.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The background receiver: long polls, parses, holds, and hands events over.
struct Poller {
    shared: Arc<Shared>,
    store: SourceStore,
    bucket: String,
    filter: KeyFilter,
    options: NotificationOptions,
    visibility: Duration,
    /// Ids of messages that did not parse, so each is logged once however often it returns.
    unparsed: HashSet<String>,
    events: mpsc::Sender<Received>,
}

impl NotificationDiscoverer {
    /// Connects to the queue and checks it is there and readable, so a wrong URL or missing
    /// permission fails at start with the queue named.
    pub async fn connect(
        store: SourceStore,
        options: NotificationOptions,
    ) -> Result<Self, DiscoverError> {
        let queue_url = options.queue_url.clone();
        let queue_err = |reason: String| DiscoverError::Queue {
            url: queue_url.clone(),
            reason,
        };
        let bucket = store
            .bucket()
            .ok_or_else(|| queue_err("notifications need an s3:// source url".into()))?
            .to_string();
        let parsed =
            url::Url::parse(&queue_url).map_err(|e| queue_err(format!("not a URL: {e}")))?;
        let host = parsed.host_str().unwrap_or_default().to_string();

        let sdk = inlet_aws::chain_for(&options.aws).sdk_config().await;
        let mut config = aws_sdk_sqs::config::Builder::from(&sdk);
        if let Some(endpoint) = &options.endpoint {
            config = config.endpoint_url(endpoint);
        } else if sdk.endpoint_url().is_none() {
            if let Some(origin) = inlet_aws::non_aws_origin(&parsed) {
                config = config.endpoint_url(origin);
            }
        }
        // The chain's region includes the settings' (`aws_region`, `[aws] region`); past
        // it, the queue URL's: sqs.<region>.amazonaws.com.
        if sdk.region().is_none() {
            let from_url = host
                .strip_prefix("sqs.")
                .and_then(|r| r.split('.').next())
                .map(str::to_string);
            let region = from_url.ok_or_else(|| {
                queue_err(
                    "no AWS region: set AWS_REGION or source.storage_options.aws_region".into(),
                )
            })?;
            config = config.region(aws_sdk_sqs::config::Region::new(region));
        }
        let client = Client::from_conf(config.build());

        let attrs = client
            .get_queue_attributes()
            .queue_url(&queue_url)
            .attribute_names(QueueAttributeName::VisibilityTimeout)
            .send()
            .await
            .map_err(|e| queue_err(sqs_reason(&DisplayErrorContext(&e).to_string())))?;
        let queue_visibility = attrs
            .attributes()
            .and_then(|a| a.get(&QueueAttributeName::VisibilityTimeout))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(30);
        let visibility = options
            .visibility_timeout
            .unwrap_or(Duration::from_secs(queue_visibility.max(1)));
        let filter = KeyFilter::new(
            store.prefix().clone(),
            options.path_glob.clone(),
            options.skip_export_manifests,
        )?;
        let shared = Arc::new(Shared {
            client,
            queue_url: queue_url.clone(),
            held: Mutex::new(Held::default()),
            stopping: AtomicBool::new(false),
        });
        let (tx, events) = mpsc::channel(READ_AHEAD);
        let poller = Poller {
            shared: shared.clone(),
            store,
            bucket,
            filter,
            options,
            visibility,
            unparsed: HashSet::new(),
            events: tx,
        };
        Ok(Self {
            shared,
            events,
            visibility,
            exhausted: false,
            idle: Some(poller),
            tasks: Vec::new(),
        })
    }

    /// The visibility timeout held messages are kept under.
    pub fn visibility(&self) -> Duration {
        self.visibility
    }
}

impl Poller {
    /// Receives until the discoverer goes away, backing off after errors (which are handed
    /// over too, so the pipeline can report them).
    async fn run(mut self) {
        let mut failures = 0u32;
        while !self.shared.stopping.load(Ordering::Acquire) {
            // Every result goes over, an empty one too: it tells a draining run the queue
            // had nothing left.
            let received = self.receive().await;
            let failed = received.is_err();
            // A short receive that brought something: the queue is nearly empty, so the next
            // one waits a little to come back fuller (an empty one long-polled already).
            let short = received.as_ref().is_ok_and(|files| {
                !files.is_empty()
                    && files.len() < usize::try_from(self.options.max_messages).unwrap_or(10)
            });
            if self.events.send(received).await.is_err() {
                return;
            }
            if short && !self.options.receive_pause.is_zero() {
                tokio::time::sleep(self.options.receive_pause).await;
            }
            if failed {
                failures += 1;
                tokio::time::sleep(Duration::from_secs(1u64 << failures.min(5))).await;
            } else {
                failures = 0;
            }
        }
    }

    /// One long poll: messages parsed into file events; messages with nothing for this
    /// source deleted at once; messages that do not parse left for the redrive policy.
    async fn receive(&mut self) -> Result<Vec<FileEvent>, DiscoverError> {
        // Before the call: the visibility runs from when SQS handed the messages out.
        let received_at = std::time::Instant::now();
        let out = self
            .shared
            .client
            .receive_message()
            .queue_url(&self.shared.queue_url)
            .max_number_of_messages(self.options.max_messages)
            .wait_time_seconds(self.options.max_wait_seconds.clamp(0, 20))
            .visibility_timeout(i32::try_from(self.visibility.as_secs()).unwrap_or(i32::MAX))
            .send()
            .await
            .map_err(|e| self.shared.error(e))?;
        let mut events = Vec::new();
        let mut done = Vec::new();
        for message in out.messages() {
            let (Some(id), Some(receipt)) = (message.message_id(), message.receipt_handle()) else {
                continue;
            };
            let body = message.body().unwrap_or_default();
            let parsed = parse_notification(body).map(|n| self.files_of(n));
            match parsed {
                Err(reason) => {
                    if self.unparsed.insert(id.to_string()) {
                        warn!(
                            queue = %self.shared.queue_url,
                            message_id = id,
                            error = %reason,
                            body = %truncate(body, 300),
                            "SQS message is not an S3 notification inlet can use; leaving it on the queue for its redrive policy (dead-letter queue)"
                        );
                    } else {
                        debug!(message_id = id, "unusable SQS message delivered again");
                    }
                }
                Ok(files) if files.is_empty() => done.push(receipt.to_string()),
                Ok(files) => {
                    let mut held = lock(&self.shared.held);
                    let pending: HashSet<(String, String)> = files
                        .iter()
                        .map(|f| (f.path.clone(), f.etag.clone()))
                        .collect();
                    for (path, etag) in &pending {
                        let ids = held.by_path.entry(path.clone()).or_default();
                        if !ids.iter().any(|(known, e)| known == id && e == etag) {
                            ids.push((id.to_string(), etag.clone()));
                        }
                    }
                    // A message delivered again (its visibility ran out) keeps its place
                    // with the new receipt.
                    let entry =
                        held.messages
                            .entry(id.to_string())
                            .or_insert_with(|| HeldMessage {
                                receipt: String::new(),
                                hidden_until: received_at,
                                pending: HashSet::new(),
                            });
                    entry.receipt = receipt.to_string();
                    entry.hidden_until = received_at + self.visibility;
                    entry.pending.extend(pending);
                    events.extend(files);
                }
            }
        }
        if !done.is_empty() {
            self.shared.delete(done).await;
        }
        Ok(events)
    }

    /// The files of this source a notification names; none for a test event or when every
    /// object is elsewhere (another bucket, outside the prefix, not matching the glob).
    fn files_of(&self, notification: Notification) -> Vec<FileEvent> {
        let objects = match notification {
            Notification::TestEvent => {
                info!(queue = %self.shared.queue_url, "s3:TestEvent received and deleted");
                return Vec::new();
            }
            Notification::Created { objects, .. } => objects,
        };
        let mut files = Vec::new();
        for object in objects {
            if object.bucket != self.bucket {
                debug!(bucket = %object.bucket, key = %escape_controls(&object.key), "notification for another bucket ignored");
                continue;
            }
            // A key object_store cannot address is still an event: reading it records it
            // as skipped, with the reason, instead of leaving the message on the queue.
            let (key, url) = self.store.event_key(&object.key);
            if !self.filter.keeps(&key) {
                debug!(key = %escape_controls(&object.key), "notification outside the source prefix or glob ignored");
                continue;
            }
            files.push(FileEvent {
                path: url,
                etag: object.etag,
                size: object.size,
                last_modified_ms: object.event_time_ms,
            });
        }
        files
    }
}

impl Shared {
    fn error(&self, e: impl std::error::Error) -> DiscoverError {
        DiscoverError::Queue {
            url: self.queue_url.clone(),
            reason: sqs_reason(&DisplayErrorContext(e).to_string()),
        }
    }

    /// Deletes messages by receipt, ten per call, the calls at once. A failed delete is
    /// logged, not raised: the message returns later and costs one checkpoint look-up.
    async fn delete(&self, receipts: Vec<String>) {
        let calls = receipts.chunks(10).map(|chunk| {
            let entries: Vec<DeleteMessageBatchRequestEntry> = chunk
                .iter()
                .enumerate()
                .filter_map(|(i, r)| {
                    DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(r)
                        .build()
                        .ok()
                })
                .collect();
            self.client
                .delete_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
        });
        for outcome in futures::future::join_all(calls).await {
            match outcome {
                Ok(out) => {
                    for failed in out.failed() {
                        warn!(queue = %self.queue_url, code = failed.code(), error = failed.message().unwrap_or_default(),
                              "SQS message not deleted; it will be delivered again and skipped as seen");
                    }
                }
                Err(e) => warn!(queue = %self.queue_url, error = %self.error(e),
                                "SQS messages not deleted; they will be delivered again and skipped as seen"),
            }
        }
    }

    /// Sets the visibility of messages, ten per call, the calls at once.
    /// Returns the receipts SQS changed (a failed call or entry leaves its receipts out).
    async fn change_visibility(&self, receipts: &[String], seconds: i32) -> HashSet<String> {
        let calls = receipts.chunks(10).map(|chunk| {
            let entries: Vec<ChangeMessageVisibilityBatchRequestEntry> = chunk
                .iter()
                .enumerate()
                .filter_map(|(i, r)| {
                    ChangeMessageVisibilityBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(r)
                        .visibility_timeout(seconds)
                        .build()
                        .ok()
                })
                .collect();
            self.client
                .change_message_visibility_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
        });
        let mut changed = HashSet::new();
        for (chunk, outcome) in receipts
            .chunks(10)
            .zip(futures::future::join_all(calls).await)
        {
            match outcome {
                Ok(out) => changed.extend(
                    out.successful()
                        .iter()
                        .filter_map(|ok| ok.id().parse::<usize>().ok())
                        .filter_map(|i| chunk.get(i).cloned()),
                ),
                Err(e) => {
                    warn!(queue = %self.queue_url, error = %DisplayErrorContext(&e), "cannot change the visibility of held SQS messages");
                }
            }
        }
        changed
    }
}

impl Discover for NotificationDiscoverer {
    /// What the poller has received: waits up to `wait` for the first events, then takes
    /// whatever else is ready.
    fn discover(&mut self, wait: Duration) -> BoxFuture<'_, Result<Vec<FileEvent>, DiscoverError>> {
        Box::pin(async move {
            if let Some(poller) = self.idle.take() {
                info!(queue = %self.shared.queue_url, visibility_seconds = self.visibility.as_secs(), "reading S3 notifications from SQS");
                self.tasks.push(tokio::spawn(poller.run()));
                self.tasks.push(tokio::spawn(extend_visibility(
                    self.shared.clone(),
                    self.visibility,
                )));
            }
            let mut files = match tokio::time::timeout(wait, self.events.recv()).await {
                Err(_) => {
                    self.exhausted = false;
                    return Ok(Vec::new());
                }
                Ok(None) => {
                    return Err(DiscoverError::Queue {
                        url: self.shared.queue_url.clone(),
                        reason: "the queue reader stopped".into(),
                    })
                }
                Ok(Some(first)) => first?,
            };
            // Files already received are held: never drop them for a later error, which
            // the next call reports instead.
            let mut last_empty = files.is_empty();
            while let Ok(Ok(more)) = self.events.try_recv() {
                last_empty = more.is_empty();
                files.extend(more);
            }
            self.exhausted = files.is_empty() && last_empty;
            Ok(files)
        })
    }

    fn settle<'a>(
        &'a mut self,
        files: &'a [(String, Option<String>)],
    ) -> BoxFuture<'a, Result<(), DiscoverError>> {
        Box::pin(async move {
            let receipts = {
                let mut held = lock(&self.shared.held);
                let mut receipts = Vec::new();
                for (path, version) in files {
                    let Some(ids) = held.by_path.remove(path) else {
                        continue;
                    };
                    let (settled, kept): (Vec<_>, Vec<_>) = ids
                        .into_iter()
                        .partition(|(_, etag)| version.as_ref().is_none_or(|v| v == etag));
                    if !kept.is_empty() {
                        held.by_path.insert(path.clone(), kept);
                    }
                    for (id, etag) in settled {
                        let finished = held.messages.get_mut(&id).is_some_and(|m| {
                            m.pending.remove(&(path.clone(), etag));
                            m.pending.is_empty()
                        });
                        if finished {
                            if let Some(m) = held.messages.remove(&id) {
                                receipts.push(m.receipt);
                            }
                        }
                    }
                }
                receipts
            };
            if !receipts.is_empty() {
                debug!(
                    messages = receipts.len(),
                    "deleting SQS messages of settled files"
                );
                self.shared.delete(receipts).await;
            }
            Ok(())
        })
    }

    fn defer<'a>(
        &'a mut self,
        files: &'a [String],
        after: Duration,
    ) -> BoxFuture<'a, Result<(), DiscoverError>> {
        Box::pin(async move {
            let receipts = {
                let mut held = lock(&self.shared.held);
                let mut ids = HashSet::new();
                for path in files {
                    if let Some(named) = held.by_path.get(path) {
                        ids.extend(named.iter().map(|(id, _)| id.clone()));
                    }
                }
                let mut receipts = Vec::new();
                for id in ids {
                    let Some(message) = held.messages.remove(&id) else {
                        continue;
                    };
                    // The message's other files come again with it; each is then one
                    // checkpoint look-up.
                    for (path, _) in &message.pending {
                        if let Some(named) = held.by_path.get_mut(path) {
                            named.retain(|(held_id, _)| *held_id != id);
                            if named.is_empty() {
                                held.by_path.remove(path);
                            }
                        }
                    }
                    receipts.push(message.receipt);
                }
                receipts
            };
            if !receipts.is_empty() {
                let seconds = i32::try_from(after.as_secs()).unwrap_or(i32::MAX);
                debug!(messages = receipts.len(), seconds, "deferring SQS messages");
                self.shared.change_visibility(&receipts, seconds).await;
            }
            Ok(())
        })
    }

    fn release(&mut self) -> BoxFuture<'_, Result<(), DiscoverError>> {
        Box::pin(async move {
            // Stop receiving first, so nothing is held after the hand-back. The receive in
            // flight is let finish (bounded), so no message is taken and then forgotten: it
            // would stay hidden for its whole visibility timeout.
            self.idle = None;
            self.shared.stopping.store(true, Ordering::Release);
            let mut tasks = self.tasks.drain(..);
            if let Some(mut poller) = tasks.next() {
                if tokio::time::timeout(STOP_GRACE, &mut poller).await.is_err() {
                    poller.abort();
                }
            }
            for task in tasks {
                task.abort();
            }
            let receipts: Vec<String> = {
                let mut held = lock(&self.shared.held);
                held.by_path.clear();
                held.messages.drain().map(|(_, m)| m.receipt).collect()
            };
            if !receipts.is_empty() {
                info!(
                    messages = receipts.len(),
                    "returning unprocessed SQS messages to the queue"
                );
                self.shared.change_visibility(&receipts, 0).await;
            }
            Ok(())
        })
    }

    fn backlog(&mut self) -> BoxFuture<'_, Option<u64>> {
        Box::pin(async move {
            let out = self
                .shared
                .client
                .get_queue_attributes()
                .queue_url(&self.shared.queue_url)
                .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
                .send()
                .await
                .ok()?;
            out.attributes()?
                .get(&QueueAttributeName::ApproximateNumberOfMessages)?
                .parse()
                .ok()
        })
    }

    fn is_stream(&self) -> bool {
        true
    }

    fn exhausted(&self) -> bool {
        self.exhausted
    }

    fn kind(&self) -> &'static str {
        "notifications"
    }
}

/// While messages are held, pushes their visibility out before it runs out, so a long
/// batch does not see its messages delivered to another consumer. Every sixth of the
/// visibility timeout, the messages whose visibility would run out within two thirds of it
/// are extended: one is extended with at least half its timeout left, so a failed call
/// (or entry) still leaves a third when the next tick tries again, and a message settled
/// within a third of its timeout costs no call. Only what SQS confirms is counted as
/// extended.
async fn extend_visibility(shared: Arc<Shared>, visibility: Duration) {
    let period = (visibility / 6).max(Duration::from_millis(500));
    let seconds = i32::try_from(visibility.as_secs()).unwrap_or(i32::MAX);
    loop {
        tokio::time::sleep(period).await;
        let now = std::time::Instant::now();
        let due: Vec<(String, String)> = lock(&shared.held)
            .messages
            .iter()
            .filter(|(_, m)| m.hidden_until < now + visibility * 2 / 3)
            .map(|(id, m)| (id.clone(), m.receipt.clone()))
            .collect();
        if due.is_empty() {
            continue;
        }
        let receipts: Vec<String> = due.iter().map(|(_, r)| r.clone()).collect();
        let changed = shared.change_visibility(&receipts, seconds).await;
        let mut held = lock(&shared.held);
        for (id, receipt) in due {
            if !changed.contains(&receipt) {
                continue;
            }
            if let Some(m) = held.messages.get_mut(&id).filter(|m| m.receipt == receipt) {
                m.hidden_until = now + visibility;
            }
        }
    }
}

/// A queue error in words a user can act on.
fn sqs_reason(detail: &str) -> String {
    let hint = if detail.contains("NonExistentQueue") || detail.contains("QueueDoesNotExist") {
        "the queue does not exist: check source.queue_url (and its region)"
    } else if detail.contains("AccessDenied") || detail.contains("not authorized") {
        "access denied: inlet needs sqs:ReceiveMessage, sqs:DeleteMessage, sqs:ChangeMessageVisibility and sqs:GetQueueAttributes on the queue"
    } else if detail.contains("ExpiredToken")
        || detail.contains("InvalidClientTokenId")
        || detail.contains("SignatureDoesNotMatch")
    {
        "the AWS credentials were refused or have expired: refresh them"
    } else if detail.contains("dispatch failure")
        || detail.contains("io error")
        || detail.contains("timed out")
    {
        "cannot reach SQS: check the network and the endpoint"
    } else {
        ""
    };
    if hint.is_empty() {
        detail.to_string()
    } else {
        format!("{hint} ({detail})")
    }
}

fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}
