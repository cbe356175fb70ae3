//! The queue and its dead-letter queue: found by name or created, then given inlet's
//! policy statement and the redrive policy, each only when it differs.

use aws_sdk_sqs::error::ProvideErrorMetadata;
use std::collections::HashMap;

use aws_sdk_sqs::types::QueueAttributeName;

use crate::{policy, Clients, Outcome, ProvisionError, Request, Status};

/// Attributes a new queue gets, by role.
pub(crate) struct Role {
    what: &'static str,
    attributes: &'static [(&'static str, &'static str)],
}

/// Long polling by default (fewer empty receives: cheaper), default retention.
pub(crate) const MAIN: Role = Role {
    what: "queue",
    attributes: &[("ReceiveMessageWaitTimeSeconds", "20")],
};

/// Dead letters are kept the longest SQS allows, 14 days, for someone to look at.
pub(crate) const DEAD_LETTER: Role = Role {
    what: "dead-letter queue",
    attributes: &[("MessageRetentionPeriod", "1209600")],
};

/// A queue found or created (or, on a dry run, to be created), with its attributes as read.
pub(crate) struct Queue {
    pub(crate) url: Option<String>,
    pub(crate) arn: String,
    attributes: HashMap<QueueAttributeName, String>,
}

pub(crate) async fn ensure_queue(
    c: &Clients,
    req: &Request,
    name: &str,
    role: Role,
    out: &mut Outcome,
) -> Result<Queue, ProvisionError> {
    if let Some(url) = queue_url(c, name).await? {
        out.step(
            "sqs:GetQueueUrl",
            name,
            format!("the {} exists: {url}", role.what),
            Status::Unchanged,
        );
        return read(c, name, url).await;
    }
    let detail = format!(
        "create the {} with {}",
        role.what,
        role.attributes
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if req.dry_run {
        out.step("sqs:CreateQueue", name, detail, Status::WouldDo);
        return Ok(Queue {
            url: None,
            arn: format!("arn:aws:sqs:{}:<account>:{name}", c.region),
            attributes: HashMap::new(),
        });
    }
    let mut create = c.sqs.create_queue().queue_name(name);
    for (k, v) in role.attributes {
        create = create.attributes(QueueAttributeName::from(*k), *v);
    }
    let created = create
        .send()
        .await
        .map_err(|e| ProvisionError::call("sqs:CreateQueue", name, &e))?;
    out.step("sqs:CreateQueue", name, detail, Status::Done);
    read(c, name, created.queue_url().unwrap_or_default().to_string()).await
}

/// The queue's URL, or `None` when no queue has that name.
async fn queue_url(c: &Clients, name: &str) -> Result<Option<String>, ProvisionError> {
    match c.sqs.get_queue_url().queue_name(name).send().await {
        Ok(found) => Ok(found.queue_url().map(str::to_string)),
        Err(e)
            if e.as_service_error().is_some_and(|s| {
                s.is_queue_does_not_exist()
                    || s.code() == Some("AWS.SimpleQueueService.NonExistentQueue")
            }) =>
        {
            Ok(None)
        }
        Err(e) => Err(ProvisionError::call("sqs:GetQueueUrl", name, &e)),
    }
}

/// The queue at `url`: its attributes, read once, and its ARN among them.
async fn read(c: &Clients, name: &str, url: String) -> Result<Queue, ProvisionError> {
    let got = c
        .sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::All)
        .send()
        .await
        .map_err(|e| ProvisionError::call("sqs:GetQueueAttributes", name, &e))?;
    let attributes = got.attributes().cloned().unwrap_or_default();
    let arn = attributes
        .get(&QueueAttributeName::QueueArn)
        .cloned()
        .ok_or_else(|| ProvisionError::Call {
            call: "sqs:GetQueueAttributes",
            target: name.to_string(),
            reason: "the answer has no QueueArn".into(),
            code: None,
        })?;
    Ok(Queue {
        url: Some(url),
        arn,
        attributes,
    })
}

/// Gives the queue inlet's policy statement and the redrive to the dead-letter queue.
pub(crate) async fn ensure_attributes(
    c: &Clients,
    req: &Request,
    queue: &Queue,
    dead: &Queue,
    out: &mut Outcome,
) -> Result<(), ProvisionError> {
    let current = &queue.attributes;
    let wanted = policy::statement(&req.id, &req.via, &req.bucket, &queue.arn);
    let new_policy = policy::merged(
        current.get(&QueueAttributeName::Policy).map(String::as_str),
        &req.id,
        wanted,
    )
    .map_err(|reason| ProvisionError::UnreadablePolicy {
        queue: req.queue_name.clone(),
        reason,
    })?;
    let redrive = policy::redrive(&dead.arn, req.max_receive_count);
    let redrive_same = policy::redrive_is(
        current
            .get(&QueueAttributeName::RedrivePolicy)
            .map(String::as_str),
        &redrive,
    );
    let mut set = Vec::new();
    match new_policy {
        Some(text) => {
            out.step(
                "sqs:SetQueueAttributes",
                &req.queue_name,
                format!("Policy: statement '{}' lets {} send", req.id, sender(req)),
                req.status(),
            );
            set.push((QueueAttributeName::Policy, text));
        }
        None => out.step(
            "sqs:SetQueueAttributes",
            &req.queue_name,
            format!("Policy: statement '{}' is in place", req.id),
            Status::Unchanged,
        ),
    }
    if redrive_same {
        out.step(
            "sqs:SetQueueAttributes",
            &req.queue_name,
            format!("RedrivePolicy to {} is in place", req.dead_letter_name),
            Status::Unchanged,
        );
    } else {
        out.step(
            "sqs:SetQueueAttributes",
            &req.queue_name,
            format!(
                "RedrivePolicy: after {} receives to {}",
                req.max_receive_count, req.dead_letter_name
            ),
            req.status(),
        );
        set.push((QueueAttributeName::RedrivePolicy, redrive.to_string()));
    }
    if req.dry_run || set.is_empty() {
        return Ok(());
    }
    let Some(url) = &queue.url else {
        return Ok(());
    };
    let mut call = c.sqs.set_queue_attributes().queue_url(url);
    for (k, v) in set {
        call = call.attributes(k, v);
    }
    call.send()
        .await
        .map_err(|e| ProvisionError::call("sqs:SetQueueAttributes", &req.queue_name, &e))?;
    Ok(())
}

fn sender(req: &Request) -> String {
    match &req.via {
        crate::Via::Bucket => format!("bucket {}", req.bucket),
        crate::Via::Sns { topic_arn } => format!("topic {topic_arn}"),
        crate::Via::EventBridge { rule_arn } => format!("rule {rule_arn}"),
    }
}

pub(crate) async fn delete_queue(
    c: &Clients,
    req: &Request,
    name: &str,
    out: &mut Outcome,
) -> Result<(), ProvisionError> {
    let Some(url) = queue_url(c, name).await? else {
        out.step(
            "sqs:DeleteQueue",
            name,
            "no queue by that name".into(),
            Status::Unchanged,
        );
        return Ok(());
    };
    out.step(
        "sqs:DeleteQueue",
        name,
        format!("delete {url} and its messages"),
        req.status(),
    );
    if !req.dry_run {
        c.sqs
            .delete_queue()
            .queue_url(&url)
            .send()
            .await
            .map_err(|e| ProvisionError::call("sqs:DeleteQueue", name, &e))?;
    }
    Ok(())
}
