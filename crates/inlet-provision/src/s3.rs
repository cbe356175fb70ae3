//! The bucket's notification configuration: inlet's entry (by id) added, updated or
//! removed, with every other queue, topic, Lambda and EventBridge setting kept as it was.

use aws_sdk_s3::types::{
    Event, EventBridgeConfiguration, FilterRule, FilterRuleName, NotificationConfiguration,
    NotificationConfigurationFilter, QueueConfiguration, S3KeyFilter, TopicConfiguration,
};

use crate::{Clients, Outcome, ProvisionError, Request, Status, Via};

const GET: &str = "s3:GetBucketNotificationConfiguration";
const PUT: &str = "s3:PutBucketNotificationConfiguration";

/// The bucket's notification configuration; reading it also shows that the bucket exists
/// and may be configured.
pub(crate) async fn current(
    c: &Clients,
    req: &Request,
) -> Result<NotificationConfiguration, ProvisionError> {
    let got = match c
        .s3
        .get_bucket_notification_configuration()
        .bucket(&req.bucket)
        .send()
        .await
    {
        Ok(got) => got,
        // S3 answers `<NotificationConfiguration/>` for a bucket without entries; some
        // emulators (moto) answer 200 with no body at all, which means the same.
        Err(e)
            if e.raw_response().is_some_and(|r| {
                r.status().is_success() && r.body().bytes().is_some_and(<[u8]>::is_empty)
            }) =>
        {
            return Ok(NotificationConfiguration::builder().build());
        }
        Err(e) => return Err(ProvisionError::call(GET, &req.bucket, &e)),
    };
    Ok(NotificationConfiguration::builder()
        .set_queue_configurations(Some(got.queue_configurations().to_vec()))
        .set_topic_configurations(Some(got.topic_configurations().to_vec()))
        .set_lambda_function_configurations(Some(got.lambda_function_configurations().to_vec()))
        .set_event_bridge_configuration(got.event_bridge_configuration().cloned())
        .build())
}

async fn put(
    c: &Clients,
    req: &Request,
    config: NotificationConfiguration,
) -> Result<(), ProvisionError> {
    c.s3.put_bucket_notification_configuration()
        .bucket(&req.bucket)
        .notification_configuration(config)
        .send()
        .await
        .map_err(|e| ProvisionError::call(PUT, &req.bucket, &e))?;
    Ok(())
}

/// `config` with its queue and topic entries and EventBridge switch replaced; its Lambda
/// entries as they were.
fn rebuilt(
    config: &NotificationConfiguration,
    queues: Vec<QueueConfiguration>,
    topics: Vec<TopicConfiguration>,
    eventbridge: Option<EventBridgeConfiguration>,
) -> NotificationConfiguration {
    NotificationConfiguration::builder()
        .set_queue_configurations(Some(queues))
        .set_topic_configurations(Some(topics))
        .set_lambda_function_configurations(Some(config.lambda_function_configurations().to_vec()))
        .set_event_bridge_configuration(eventbridge)
        .build()
}

/// The bucket's queue and topic entries without the one named `id`, and whether it was
/// there.
fn without_entry(
    config: &NotificationConfiguration,
    id: &str,
) -> (Vec<QueueConfiguration>, Vec<TopicConfiguration>, bool) {
    let mut queues = config.queue_configurations().to_vec();
    let mut topics = config.topic_configurations().to_vec();
    let before = queues.len() + topics.len();
    queues.retain(|q| q.id() != Some(id));
    topics.retain(|t| t.id() != Some(id));
    let found = queues.len() + topics.len() != before;
    (queues, topics, found)
}

/// Reports the change `detail` and, unless this is a dry run, writes `merged`.
async fn apply(
    c: &Clients,
    req: &Request,
    out: &mut Outcome,
    detail: String,
    merged: NotificationConfiguration,
) -> Result<(), ProvisionError> {
    out.step(PUT, &req.bucket, detail, req.status());
    if req.dry_run {
        return Ok(());
    }
    put(c, req, merged).await
}

fn filter(req: &Request) -> Option<NotificationConfigurationFilter> {
    let mut rules = Vec::new();
    if !req.prefix.is_empty() {
        rules.push(
            FilterRule::builder()
                .name(FilterRuleName::Prefix)
                .value(&req.prefix)
                .build(),
        );
    }
    if let Some(suffix) = &req.suffix {
        rules.push(
            FilterRule::builder()
                .name(FilterRuleName::Suffix)
                .value(suffix)
                .build(),
        );
    }
    (!rules.is_empty()).then(|| {
        NotificationConfigurationFilter::builder()
            .key(S3KeyFilter::builder().set_filter_rules(Some(rules)).build())
            .build()
    })
}

/// An entry's target, events and filter, in a form that compares by meaning.
fn shape(
    target: &str,
    events: &[Event],
    filter: Option<&NotificationConfigurationFilter>,
) -> (String, Vec<String>, Vec<(String, String)>) {
    let mut events: Vec<String> = events.iter().map(|e| e.as_str().to_string()).collect();
    events.sort();
    let mut rules: Vec<(String, String)> = filter
        .and_then(|f| f.key())
        .map(|k| k.filter_rules())
        .unwrap_or_default()
        .iter()
        .map(|r| {
            (
                r.name()
                    .map(|n| n.as_str().to_ascii_lowercase())
                    .unwrap_or_default(),
                r.value().unwrap_or_default().to_string(),
            )
        })
        .collect();
    rules.sort();
    (target.to_string(), events, rules)
}

fn describe(req: &Request, target: &str) -> String {
    let mut text = format!("entry '{}': s3:ObjectCreated:* ", req.id);
    if !req.prefix.is_empty() {
        text += &format!("under '{}' ", req.prefix);
    }
    if let Some(suffix) = &req.suffix {
        text += &format!("ending '{suffix}' ");
    }
    text + &format!("to {target}")
}

fn build_err(e: impl std::fmt::Display, req: &Request) -> ProvisionError {
    ProvisionError::Call {
        call: PUT,
        target: req.bucket.clone(),
        reason: e.to_string(),
        code: None,
    }
}

/// Adds inlet's entry (a queue entry, or a topic entry for SNS) to the bucket's `config`,
/// or updates it in place.
pub(crate) async fn ensure_entry(
    c: &Clients,
    req: &Request,
    config: NotificationConfiguration,
    queue_arn: &str,
    out: &mut Outcome,
) -> Result<(), ProvisionError> {
    let events = [Event::S3ObjectCreated];
    let (target, same) = match &req.via {
        Via::Sns { topic_arn } => {
            let wanted = shape(topic_arn, &events, filter(req).as_ref());
            let same = config.topic_configurations().iter().any(|t| {
                t.id() == Some(&req.id) && shape(t.topic_arn(), t.events(), t.filter()) == wanted
            });
            (topic_arn.clone(), same)
        }
        _ => {
            let wanted = shape(queue_arn, &events, filter(req).as_ref());
            let same = config.queue_configurations().iter().any(|q| {
                q.id() == Some(&req.id) && shape(q.queue_arn(), q.events(), q.filter()) == wanted
            });
            (queue_arn.to_string(), same)
        }
    };
    let detail = describe(req, &target);
    if same {
        out.step(PUT, &req.bucket, detail + " is in place", Status::Unchanged);
        return Ok(());
    }
    let (mut queues, mut topics, _) = without_entry(&config, &req.id);
    let kept = queues.len() + topics.len() + config.lambda_function_configurations().len();
    match &req.via {
        Via::Sns { topic_arn } => topics.push(
            TopicConfiguration::builder()
                .id(&req.id)
                .topic_arn(topic_arn)
                .events(Event::S3ObjectCreated)
                .set_filter(filter(req))
                .build()
                .map_err(|e| build_err(e, req))?,
        ),
        _ => queues.push(
            QueueConfiguration::builder()
                .id(&req.id)
                .queue_arn(queue_arn)
                .events(Event::S3ObjectCreated)
                .set_filter(filter(req))
                .build()
                .map_err(|e| build_err(e, req))?,
        ),
    }
    let merged = rebuilt(
        &config,
        queues,
        topics,
        config.event_bridge_configuration().cloned(),
    );
    let detail = format!("{detail}, keeping the bucket's {kept} other entries");
    apply(c, req, out, detail, merged).await
}

/// Turns on the EventBridge delivery of the bucket with `config` (a bucket-wide switch
/// other consumers may share), keeping every other entry.
pub(crate) async fn ensure_eventbridge(
    c: &Clients,
    req: &Request,
    config: NotificationConfiguration,
    out: &mut Outcome,
) -> Result<(), ProvisionError> {
    // An entry of an earlier set-up by the bucket or a topic would now be refused by the
    // queue's policy, which lets only the rule send: it goes.
    let (queues, topics, stale) = without_entry(&config, &req.id);
    if config.event_bridge_configuration().is_some() && !stale {
        out.step(
            PUT,
            &req.bucket,
            "EventBridge delivery is on".into(),
            Status::Unchanged,
        );
        return Ok(());
    }
    let merged = rebuilt(
        &config,
        queues,
        topics,
        Some(EventBridgeConfiguration::builder().build()),
    );
    let detail = if stale {
        format!("turn on EventBridge delivery and remove entry '{}', keeping the bucket's other entries", req.id)
    } else {
        "turn on EventBridge delivery, keeping the bucket's other entries".into()
    };
    apply(c, req, out, detail, merged).await
}

/// Removes inlet's entry (queue or topic, by id); EventBridge delivery is left on, as other
/// consumers of the bucket's events may rely on it.
pub(crate) async fn remove_entry(
    c: &Clients,
    req: &Request,
    out: &mut Outcome,
) -> Result<(), ProvisionError> {
    let config = current(c, req).await?;
    let (queues, topics, found) = without_entry(&config, &req.id);
    if !found {
        out.step(
            PUT,
            &req.bucket,
            format!("no entry '{}' on the bucket", req.id),
            Status::Unchanged,
        );
        return Ok(());
    }
    let merged = rebuilt(
        &config,
        queues,
        topics,
        config.event_bridge_configuration().cloned(),
    );
    let detail = format!(
        "remove entry '{}', keeping the bucket's other entries",
        req.id
    );
    apply(c, req, out, detail, merged).await
}
