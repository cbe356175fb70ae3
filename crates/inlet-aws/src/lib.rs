//! One AWS configuration and credential chain for everything inlet calls on AWS: S3 reads
//! and Delta writes through object_store, and SQS (and set-up calls) through the AWS SDK.
//!
//! The chain is the SDK's default one (storage-option keys first, then environment, shared
//! config and credentials files with `AWS_PROFILE`, SSO, `credential_process`, web identity,
//! ECS and EC2 roles), optionally wrapped in STS AssumeRole. [`chain_for`] keeps one
//! [`Chain`] per distinct [`AwsSettings`] in the process, so the S3 source, the Delta sink
//! and SQS share one credential cache, refreshed ahead of expiry.

mod chain;
mod settings;
mod store;

pub use chain::{chain_for, Chain, S3Credentials};
pub use settings::{AwsSettings, ASSUME_ROLE_ARN, EXTERNAL_ID, PROFILE, ROLE_SESSION_NAME};
pub use store::{endpoint_option, non_aws_origin, s3_store, UnknownKeys};

/// What can go wrong configuring AWS access.
#[derive(Debug, thiserror::Error)]
pub enum AwsError {
    /// A storage option inlet or object_store does not know, or a value it cannot use.
    #[error("storage option '{key}': {reason}")]
    BadOption { key: String, reason: String },
    /// The S3 client could not be built for `url`.
    #[error("cannot open {url}: {source}")]
    Open {
        url: String,
        #[source]
        source: object_store::Error,
    },
    /// The chain found no usable credentials, or its source refused.
    #[error(
        "no usable AWS credentials ({origin}): {reason}. inlet reads, in order: the \
         storage_options keys aws_access_key_id/aws_secret_access_key, the environment \
         (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN), the profile in \
         ~/.aws/config and ~/.aws/credentials (AWS_PROFILE or [aws] profile; for SSO run \
         `aws sso login`), web identity (IRSA), and ECS or EC2 roles; give it one of them"
    )]
    Credentials {
        origin: String,
        reason: String,
        /// True when nothing in the chain had credentials or its configuration is wrong
        /// (retrying cannot help); false for a provider that failed (STS or the network).
        permanent: bool,
    },
}

impl AwsError {
    /// Credentials that no retry can bring: nothing in the chain had any, or its
    /// configuration is wrong.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            Self::Credentials {
                permanent: true,
                ..
            }
        )
    }
}
