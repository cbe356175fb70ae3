//! Creates, adopts and removes what S3 event notifications need: the SQS queue and its
//! dead-letter queue, the queue's policy and redrive, and the bucket's notification entry.
//!
//! Every step reads what is there first and changes only what differs, so running set-up
//! again changes nothing; other entries of the bucket's notification configuration and
//! other statements of the queue's policy are kept. With `dry_run` the reads are made and
//! each change is reported instead of made.

mod policy;
mod s3;
mod sqs;

use aws_sdk_s3::error::DisplayErrorContext;
use inlet_aws::AwsSettings;

/// What to set up or tear down, in plain values (the binary builds it from the config).
#[derive(Clone, Debug)]
pub struct Request {
    pub bucket: String,
    /// Key prefix the notification is for ("" for the whole bucket).
    pub prefix: String,
    /// Key suffix, from a `path_glob` such as `**/*.json`.
    pub suffix: Option<String>,
    /// The queue to create or adopt, by name.
    pub queue_name: String,
    pub dead_letter_name: String,
    /// Receives before a message moves to the dead-letter queue.
    pub max_receive_count: u32,
    /// Names the bucket's notification entry and the queue's policy statement, so both
    /// are found again (set-up again, tear-down) among other tools' entries.
    pub id: String,
    pub via: Via,
    /// S3 endpoint override (the source's `aws_endpoint`), for LocalStack or moto.
    pub s3_endpoint: Option<String>,
    /// SQS endpoint override.
    pub sqs_endpoint: Option<String>,
    pub aws: AwsSettings,
    pub dry_run: bool,
}

/// Who sends the bucket's events to the queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Via {
    /// The bucket notifies the queue directly.
    Bucket,
    /// The bucket notifies this SNS topic, which fans out to the queue among others.
    Sns { topic_arn: String },
    /// The bucket sends events to EventBridge, where this rule targets the queue.
    EventBridge { rule_arn: String },
}

/// One call made, found unneeded, or (dry run) that would be made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// The API call, as IAM names it: `sqs:CreateQueue`.
    pub call: &'static str,
    /// What it acts on: a queue name, a bucket.
    pub target: String,
    /// What it sets, in a line.
    pub detail: String,
    pub status: Status,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Done,
    /// Already as wanted: no call made.
    Unchanged,
    /// Dry run: the call that would be made.
    WouldDo,
}

/// What set-up or tear-down did.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    /// The queue's URL (`None` on a dry run that would create it, and after tear-down).
    pub queue_url: Option<String>,
    pub queue_arn: Option<String>,
    pub steps: Vec<Step>,
    /// What the user must still do by hand (the SNS subscription, the EventBridge rule).
    pub manual: Vec<String>,
}

impl Outcome {
    /// True when no step changed (or would change) anything.
    pub fn unchanged(&self) -> bool {
        self.steps.iter().all(|s| s.status == Status::Unchanged)
    }

    fn step(&mut self, call: &'static str, target: &str, detail: String, status: Status) {
        self.steps.push(Step {
            call,
            target: target.to_string(),
            detail,
            status,
        });
    }
}

/// What can go wrong provisioning.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error("no AWS region: set [aws] region, source.storage_options.aws_region or AWS_REGION")]
    NoRegion,
    #[error("the Policy of queue {queue} is not JSON ({reason}); inlet will not replace a policy it cannot read: fix or remove it, then run set-up again")]
    UnreadablePolicy { queue: String, reason: String },
    #[error("{call} on {target} failed: {reason}{}", advice(.code.as_deref(), .reason, .call))]
    Call {
        call: &'static str,
        target: String,
        reason: String,
        code: Option<String>,
    },
}

impl ProvisionError {
    fn call<E>(call: &'static str, target: &str, e: &aws_sdk_s3::error::SdkError<E>) -> Self
    where
        E: std::error::Error + aws_sdk_s3::error::ProvideErrorMetadata + 'static,
    {
        let code = e
            .as_service_error()
            .and_then(|s| s.code())
            .map(str::to_string);
        // A service's own error says it best ("NoSuchBucket: The specified bucket does not
        // exist"); anything else (no connection, a timeout) with its whole context.
        let reason = match (&code, e.as_service_error().and_then(|s| s.message())) {
            (Some(code), Some(message)) => format!("{code}: {message}"),
            (Some(code), None) => code.clone(),
            _ => DisplayErrorContext(e).to_string(),
        };
        Self::Call {
            call,
            target: target.to_string(),
            reason,
            code,
        }
    }
}

fn advice(code: Option<&str>, reason: &str, call: &str) -> String {
    if reason.contains("Unable to validate") {
        return "; S3 sent the queue a test event and could not deliver it: the queue policy \
                may not have reached every S3 server yet (run set-up again in a minute), or the \
                queue is encrypted with the AWS-managed aws/sqs key, which S3 cannot use (use a \
                customer-managed key that lets s3.amazonaws.com use it, or SSE-SQS)"
            .to_string();
    }
    match code {
        Some("AccessDenied" | "AccessDeniedException" | "AuthorizationError") => format!(
            "; the credentials need {call} (docs/deploy.md lists the IAM policy for set-up)"
        ),
        Some("NoSuchBucket") => "; check the bucket name in source.url".to_string(),
        Some("InvalidArgument") if reason.to_ascii_lowercase().contains("overlap") => {
            "; S3 refuses notification entries whose prefix and suffix overlap another \
             entry's for the same events: remove or narrow the other entry"
                .to_string()
        }
        _ => String::new(),
    }
}

struct Clients {
    s3: aws_sdk_s3::Client,
    sqs: aws_sdk_sqs::Client,
    region: String,
}

async fn clients(req: &Request) -> Result<Clients, ProvisionError> {
    let sdk = inlet_aws::chain_for(&req.aws).sdk_config().await;
    let region = sdk
        .region()
        .map(|r| r.to_string())
        .ok_or(ProvisionError::NoRegion)?;
    let mut s3 = aws_sdk_s3::config::Builder::from(&sdk);
    if let Some(endpoint) = &req.s3_endpoint {
        s3 = s3.endpoint_url(endpoint).force_path_style(true);
    }
    let mut sqs = aws_sdk_sqs::config::Builder::from(&sdk);
    if let Some(endpoint) = &req.sqs_endpoint {
        sqs = sqs.endpoint_url(endpoint);
    }
    Ok(Clients {
        s3: aws_sdk_s3::Client::from_conf(s3.build()),
        sqs: aws_sdk_sqs::Client::from_conf(sqs.build()),
        region,
    })
}

/// Creates or adopts the queues, sets their policy and redrive, and adds (or updates) the
/// bucket's notification entry, keeping every other entry.
pub async fn setup(req: &Request) -> Result<Outcome, ProvisionError> {
    let c = clients(req).await?;
    let mut out = Outcome::default();
    // The bucket first: a wrong name or a missing permission fails before any queue is made.
    let bucket = s3::current(&c, req).await?;
    let dead =
        sqs::ensure_queue(&c, req, &req.dead_letter_name, sqs::DEAD_LETTER, &mut out).await?;
    let queue = sqs::ensure_queue(&c, req, &req.queue_name, sqs::MAIN, &mut out).await?;
    sqs::ensure_attributes(&c, req, &queue, &dead, &mut out).await?;
    out.queue_url = queue.url.clone();
    out.queue_arn = Some(queue.arn.clone());
    match &req.via {
        Via::Bucket => s3::ensure_entry(&c, req, bucket, &queue.arn, &mut out).await?,
        Via::Sns { topic_arn } => {
            s3::ensure_entry(&c, req, bucket, &queue.arn, &mut out).await?;
            out.manual.push(format!(
                "subscribe the queue to the topic, and let the bucket publish to it: aws sns \
                 subscribe --topic-arn {topic_arn} --protocol sqs --notification-endpoint {}",
                queue.arn
            ));
        }
        Via::EventBridge { rule_arn } => {
            s3::ensure_eventbridge(&c, req, bucket, &mut out).await?;
            let rule = rule_arn.rsplit('/').next().unwrap_or(rule_arn);
            out.manual.push(format!(
                "create the rule and its target: aws events put-rule --name {rule} \
                 --event-pattern '{}' && aws events put-targets --rule {rule} --targets \
                 Id=inlet,Arn={}",
                policy::eventbridge_pattern(&req.bucket, &req.prefix),
                queue.arn
            ));
        }
    }
    Ok(out)
}

/// Removes the bucket's notification entry set up for `req.id` (keeping every other), and
/// with `delete_queues` the queue and its dead-letter queue (their messages with them).
pub async fn teardown(req: &Request, delete_queues: bool) -> Result<Outcome, ProvisionError> {
    let c = clients(req).await?;
    let mut out = Outcome::default();
    s3::remove_entry(&c, req, &mut out).await?;
    if delete_queues {
        sqs::delete_queue(&c, req, &req.queue_name, &mut out).await?;
        sqs::delete_queue(&c, req, &req.dead_letter_name, &mut out).await?;
    } else {
        out.manual.push(format!(
            "the queues {} and {} are kept, with any messages on them; pass --delete-queues to delete them",
            req.queue_name, req.dead_letter_name
        ));
    }
    Ok(out)
}

impl Request {
    fn status(&self) -> Status {
        if self.dry_run {
            Status::WouldDo
        } else {
            Status::Done
        }
    }
}

/// The S3 notification suffix a `path_glob` implies: `**/*.json` gives `.json`; a glob
/// that is not "anything, then a fixed ending" gives none (inlet filters keys itself).
pub fn suffix_of_glob(glob: &str) -> Option<String> {
    let tail = glob.rsplit('/').next().unwrap_or(glob);
    let ending = tail.strip_prefix('*')?;
    let plain = !ending.is_empty() && !ending.contains(['*', '?', '[', ']', '{', '}', '\\']);
    plain.then(|| ending.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_glob_gives_a_suffix_only_when_it_ends_in_a_fixed_string() {
        assert_eq!(suffix_of_glob("**/*.json").as_deref(), Some(".json"));
        assert_eq!(suffix_of_glob("*.json.gz").as_deref(), Some(".json.gz"));
        assert_eq!(suffix_of_glob("2026/*/*.csv").as_deref(), Some(".csv"));
        assert_eq!(suffix_of_glob("**/*.{json,csv}"), None);
        assert_eq!(suffix_of_glob("**/data-*"), None);
        assert_eq!(suffix_of_glob("**/*"), None);
        assert_eq!(suffix_of_glob("exact.json"), None);
    }
}
