//! `inlet setup notifications` and `inlet teardown notifications`: the config turned into a
//! provisioning request, each AWS step printed, and (on request) the queue_url written back.

use anyhow::{bail, Context, Result};

use super::out;
use inlet_engine::Config;
use inlet_provision::{Outcome, Request, Status, Via};

use crate::cli::{NotificationTarget, SetupNotificationsArgs, TeardownNotificationsArgs, ViaArg};

pub async fn setup(args: &SetupNotificationsArgs) -> Result<()> {
    let via = match args.via {
        ViaArg::Bucket => Via::Bucket,
        ViaArg::Sns => Via::Sns {
            topic_arn: args.topic_arn.clone().unwrap_or_default(),
        },
        ViaArg::Eventbridge => Via::EventBridge {
            rule_arn: args.rule_arn.clone().unwrap_or_default(),
        },
    };
    let (cfg, req) = request(&args.target, via, args.max_receive_count)?;
    headline(&cfg, &req, "setting up", "planning")?;
    let done = inlet_provision::setup(&req)
        .await
        .context("setting up notifications")?;
    print_steps(&done)?;
    match &done.queue_url {
        Some(url) if args.write_config && !req.dry_run => {
            write_config(&args.target.config.config, url)?;
            out!(
                "wrote discovery = \"notifications\" and queue_url = \"{url}\" into {}",
                args.target.config.config.display()
            )?;
        }
        Some(url) => out!(
            "\nqueue_url = \"{url}\"\nPut it in [source] with discovery = \"notifications\" (or run again with --write-config)."
        )?,
        None => out!("\nThe queue does not exist yet: its queue_url is known once set-up runs without --dry-run.")?,
    }
    Ok(())
}

pub async fn teardown(args: &TeardownNotificationsArgs) -> Result<()> {
    let (cfg, req) = request(&args.target, Via::Bucket, 5)?;
    headline(&cfg, &req, "removing", "planning the removal of")?;
    let done = inlet_provision::teardown(&req, args.delete_queues)
        .await
        .context("tearing down notifications")?;
    print_steps(&done)?;
    if cfg.source.notifications().is_some() && !req.dry_run {
        out!(
            "The config still says discovery = \"notifications\": set it to \"listing\" before the next run."
        )?;
    }
    Ok(())
}

/// The request a config and the flags describe.
fn request(
    target: &NotificationTarget,
    via: Via,
    max_receive_count: u32,
) -> Result<(Config, Request)> {
    let cfg = Config::load(&target.config.config)?;
    let url = &cfg.source.url;
    if !matches!(url.scheme(), "s3" | "s3a") {
        bail!(
            "source.url {url} is not in S3: notifications need an s3:// source (a local source is listed)"
        );
    }
    let bucket = url.host_str().unwrap_or_default().to_string();
    // S3 matches filters against keys as they are, not as URLs spell them.
    let prefix = percent_encoding::percent_decode_str(url.path().trim_start_matches('/'))
        .decode_utf8_lossy()
        .into_owned();
    let queue_from_config = cfg
        .source
        .notifications()
        .and_then(|n| n.queue_url.rsplit('/').next().map(str::to_string))
        .filter(|n| !n.is_empty());
    let queue_name = target
        .queue_name
        .clone()
        .or(queue_from_config)
        .unwrap_or_else(|| format!("inlet-{}", cfg.pipeline_id.replace('.', "-")));
    let options = cfg.source_options();
    let s3_endpoint = inlet_aws::endpoint_option(&options);
    let sqs_endpoint = target
        .sqs_endpoint
        .clone()
        .or_else(|| cfg.source.notifications().and_then(|n| n.endpoint.clone()))
        .or_else(|| {
            let queue = cfg.source.notifications()?;
            inlet_aws::non_aws_origin(&url::Url::parse(&queue.queue_url).ok()?)
        })
        .or_else(|| s3_endpoint.clone().filter(|e| is_loopback(e)));
    let req = Request {
        bucket,
        prefix,
        suffix: cfg
            .source
            .path_glob
            .as_deref()
            .and_then(inlet_provision::suffix_of_glob),
        dead_letter_name: format!("{queue_name}-dlq"),
        queue_name,
        max_receive_count,
        id: format!("inlet-{}", cfg.pipeline_id),
        via,
        s3_endpoint,
        sqs_endpoint,
        aws: inlet_aws::AwsSettings::split(&options).0,
        dry_run: target.dry_run,
    };
    Ok((cfg, req))
}

/// The first line: what is done (or planned, on a dry run) for which source and pipeline.
fn headline(cfg: &Config, req: &Request, doing: &str, planning: &str) -> Result<()> {
    let (what, note) = if req.dry_run {
        (planning, " (dry run: nothing is changed)")
    } else {
        (doing, "")
    };
    out!(
        "inlet: {what} notifications of {} for pipeline '{}'{note}",
        cfg.source.url,
        cfg.pipeline_id
    )?;
    Ok(())
}

fn is_loopback(endpoint: &str) -> bool {
    url::Url::parse(endpoint)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .is_some_and(|h| h == "localhost" || h == "127.0.0.1" || h == "[::1]")
}

fn print_steps(done: &Outcome) -> Result<()> {
    for step in &done.steps {
        let status = match step.status {
            Status::Done => "done",
            Status::Unchanged => "unchanged",
            Status::WouldDo => "would call",
        };
        out!(
            "  {status:<10} {:<40} {}: {}",
            step.call,
            step.target,
            step.detail
        )?;
    }
    if done.unchanged() {
        out!("Nothing changed: everything was already in place.")?;
    }
    for todo in &done.manual {
        out!("To do by hand: {todo}")?;
    }
    Ok(())
}

/// Sets `discovery` and `queue_url` in the config's `[source]`, keeping its comments and
/// layout, its permissions, and a symbolic link (the file it points to is written).
fn write_config(path: &std::path::Path, queue_url: &str) -> Result<()> {
    let path =
        &std::fs::canonicalize(path).with_context(|| format!("resolving {}", path.display()))?;
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut doc: toml_edit::DocumentMut = text
        .parse()
        .with_context(|| format!("parsing {}", path.display()))?;
    let Some(source) = doc.get_mut("source").and_then(|s| s.as_table_like_mut()) else {
        bail!("{} has no [source] table", path.display());
    };
    source.insert("discovery", toml_edit::value("notifications"));
    source.insert("queue_url", toml_edit::value(queue_url));
    let tmp = path.with_extension("toml.tmp");
    let permissions = std::fs::metadata(path)
        .with_context(|| format!("reading {}", path.display()))?
        .permissions();
    std::fs::write(&tmp, doc.to_string())
        .and_then(|()| std::fs::set_permissions(&tmp, permissions))
        .and_then(|()| std::fs::rename(&tmp, path))
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
