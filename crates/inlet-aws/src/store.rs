//! S3 clients (object_store's `AmazonS3`) signed by the shared chain, for the source and for
//! the Delta table alike.

use std::collections::HashMap;

use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey};
use object_store::RetryConfig;
use url::Url;

use crate::{chain_for, AwsError, AwsSettings, S3Credentials};

/// What to do with a storage-option key neither inlet nor object_store knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnknownKeys {
    /// Refuse it, naming the key (the source's options, which inlet alone reads).
    Refuse,
    /// Pass over it (the sink's options, which delta-rs reads too).
    Ignore,
}

/// An S3 client for the bucket of `url`, configured by `options` (object_store keys such as
/// `aws_endpoint`, `aws_allow_http`, `aws_region`, and inlet's `aws_profile`,
/// `aws_assume_role_arn`, …; `AWS_*` environment variables too, options winning) and
/// signed with the process's chain for those settings. `aws_skip_signature = true` sends
/// unsigned requests (public buckets).
pub fn s3_store(
    url: &Url,
    options: &HashMap<String, String>,
    unknown: UnknownKeys,
    retry: Option<RetryConfig>,
) -> Result<AmazonS3, AwsError> {
    let (settings, rest) = AwsSettings::split(options);
    if settings.access_key_id.is_some() != settings.secret_access_key.is_some() {
        let (key, missing) = if settings.access_key_id.is_some() {
            ("aws_access_key_id", "aws_secret_access_key")
        } else {
            ("aws_secret_access_key", "aws_access_key_id")
        };
        return Err(AwsError::BadOption {
            key: key.into(),
            reason: format!(
                "given without {missing}: give both, or neither to use the AWS credential chain"
            ),
        });
    }
    let mut builder = AmazonS3Builder::from_env().with_url(url.as_str());
    if let Some(retry) = retry {
        builder = builder.with_retry(retry);
    }
    for (key, value) in &rest {
        match key.parse::<AmazonS3ConfigKey>() {
            Ok(parsed) => builder = builder.with_config(parsed, value),
            Err(e) if unknown == UnknownKeys::Refuse => {
                return Err(AwsError::BadOption {
                    key: key.clone(),
                    reason: e.to_string(),
                })
            }
            Err(_) => {}
        }
    }
    let unsigned = builder
        .get_config_value(&AmazonS3ConfigKey::SkipSignature)
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    if !unsigned {
        let chain = chain_for(&settings);
        // A region from the options or AWS_REGION/AWS_DEFAULT_REGION (read by from_env);
        // else the chain's (the profile's, instance metadata).
        if builder
            .get_config_value(&AmazonS3ConfigKey::Region)
            .is_none()
        {
            if let Some(region) = chain.region_blocking() {
                builder = builder.with_region(region);
            }
        }
        builder = builder.with_credentials(std::sync::Arc::new(S3Credentials {
            chain,
            bucket: url.host_str().unwrap_or_default().to_string(),
        }));
    }
    builder.build().map_err(|source| AwsError::Open {
        url: url.to_string(),
        source,
    })
}

/// The S3 endpoint override among `options` (`aws_endpoint` or any alias object_store
/// accepts for it).
pub fn endpoint_option(options: &HashMap<String, String>) -> Option<String> {
    options
        .iter()
        .find(|(k, _)| {
            matches!(
                k.to_ascii_lowercase().parse::<AmazonS3ConfigKey>(),
                Ok(AmazonS3ConfigKey::Endpoint)
            )
        })
        .map(|(_, v)| v.clone())
}

/// The origin of `url` when its host is not AWS's (LocalStack, moto, ElasticMQ), where SDK
/// clients must then be sent; `None` for `*.amazonaws.com` and `*.amazonaws.com.cn`.
pub fn non_aws_origin(url: &Url) -> Option<String> {
    let host = url.host_str()?;
    let aws = host.ends_with(".amazonaws.com") || host.ends_with(".amazonaws.com.cn");
    (!aws).then(|| url.origin().ascii_serialization())
}
