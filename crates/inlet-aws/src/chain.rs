//! The shared credential chain: built once per settings, cached, refreshed ahead of expiry,
//! and offered both to object_store (as its `CredentialProvider`) and to the AWS SDK.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use aws_config::sts::AssumeRoleProvider;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::{
    error::CredentialsError, future, ProvideCredentials, SharedCredentialsProvider,
};
use aws_credential_types::Credentials;
use object_store::aws::AwsCredential;
use tokio::sync::OnceCell;

use crate::{AwsError, AwsSettings};

/// Credentials are renewed this long before they expire (or at half their lifetime, if
/// that is sooner), so no request is signed with credentials about to lapse.
const REFRESH_AHEAD: Duration = Duration::from_secs(300);

/// One credential chain and its cache. Get it with [`chain_for`].
#[derive(Debug)]
pub struct Chain {
    settings: AwsSettings,
    /// The SDK configuration and the uncached provider underneath, built on first use.
    inner: OnceCell<(SdkConfig, SharedCredentialsProvider)>,
    cached: tokio::sync::Mutex<Option<Cached>>,
    region: OnceLock<Option<String>>,
}

/// A failed renewal with the old credentials still valid is tried again this much later,
/// not on every request.
const RETRY_RENEWAL: Duration = Duration::from_secs(30);

#[derive(Debug)]
struct Cached {
    credentials: Credentials,
    /// When to fetch new ones; `None` for credentials that never expire.
    refresh_at: Option<SystemTime>,
}

/// The process's chain for `settings`: the same one for every caller with equal settings.
/// Settings carrying keys of their own (Unity Catalog's vended credentials, renewed by
/// replacing them) get a chain of their own instead, dropped with the stores using it.
pub fn chain_for(settings: &AwsSettings) -> Arc<Chain> {
    if settings.access_key_id.is_some() && settings.assume_role_arn.is_none() {
        return Arc::new(Chain::new(settings));
    }
    static CHAINS: OnceLock<Mutex<HashMap<AwsSettings, Arc<Chain>>>> = OnceLock::new();
    let chains = CHAINS.get_or_init(Default::default);
    let mut chains = chains
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    chains
        .entry(settings.clone())
        .or_insert_with(|| Arc::new(Chain::new(settings)))
        .clone()
}

impl Chain {
    fn new(settings: &AwsSettings) -> Self {
        Self {
            settings: settings.clone(),
            inner: OnceCell::new(),
            cached: tokio::sync::Mutex::new(None),
            region: OnceLock::new(),
        }
    }

    /// An SDK configuration whose credentials come from this chain's cache (for SQS, S3
    /// set-up calls and anything else on the SDK).
    pub async fn sdk_config(self: &Arc<Self>) -> SdkConfig {
        let (base, _) = self.inner().await;
        base.clone()
            .into_builder()
            .credentials_provider(SharedCredentialsProvider::new(Shared(self.clone())))
            .build()
    }

    async fn inner(&self) -> &(SdkConfig, SharedCredentialsProvider) {
        self.inner
            .get_or_init(|| async {
                let s = &self.settings;
                let mut loader = aws_config::defaults(BehaviorVersion::latest());
                if let Some(profile) = &s.profile {
                    loader = loader.profile_name(profile);
                }
                if let Some(region) = &s.region {
                    loader = loader.region(Region::new(region.clone()));
                }
                if let (Some(id), Some(secret)) = (&s.access_key_id, &s.secret_access_key) {
                    loader = loader.credentials_provider(Credentials::new(
                        id,
                        secret,
                        s.session_token.clone(),
                        None,
                        "inlet storage_options",
                    ));
                }
                let base = loader.load().await;
                let provider = base
                    .credentials_provider()
                    .unwrap_or_else(|| SharedCredentialsProvider::new(NoCredentials));
                let provider = match &s.assume_role_arn {
                    Some(arn) => {
                        let session = s
                            .role_session_name
                            .clone()
                            .unwrap_or_else(default_session_name);
                        let mut role = AssumeRoleProvider::builder(arn)
                            .session_name(session)
                            .configure(&base);
                        if let Some(id) = &s.external_id {
                            role = role.external_id(id);
                        }
                        SharedCredentialsProvider::new(role.build_from_provider(provider).await)
                    }
                    None => provider,
                };
                (base, provider)
            })
            .await
    }

    /// Credentials from the cache, fetched anew when they are close to expiry. A failed
    /// refresh keeps serving the old credentials while they are still valid.
    pub async fn credentials(&self) -> Result<Credentials, AwsError> {
        let mut cached = self.cached.lock().await;
        let now = SystemTime::now();
        if let Some(c) = cached.as_ref() {
            if c.refresh_at.is_none_or(|at| now < at) {
                return Ok(c.credentials.clone());
            }
        }
        let (_, provider) = self.inner().await;
        match provider.provide_credentials().await {
            Ok(credentials) => {
                let refresh_at = credentials.expiry().map(|expiry| {
                    let life = expiry.duration_since(now).unwrap_or_default();
                    expiry - REFRESH_AHEAD.min(life / 2)
                });
                tracing::debug!(
                    access_key_id = credentials.access_key_id(),
                    expiry = ?credentials.expiry(),
                    "AWS credentials fetched"
                );
                *cached = Some(Cached {
                    credentials: credentials.clone(),
                    refresh_at,
                });
                Ok(credentials)
            }
            Err(e) => {
                // Once the chain has produced credentials (the cache is never emptied), a
                // later "nothing found" (the metadata service unreachable for a moment) is
                // an outage to retry, not a set-up error.
                let permanent = cached.is_none()
                    && matches!(
                        e,
                        CredentialsError::CredentialsNotLoaded(_)
                            | CredentialsError::InvalidConfiguration(_)
                    );
                let reason = error_chain(&e);
                if let Some(c) = cached.as_mut() {
                    if let Some(expiry) = c.credentials.expiry().filter(|e| now < *e) {
                        tracing::warn!(%reason, "renewing AWS credentials failed; the current ones are still valid and are kept");
                        c.refresh_at = Some((now + RETRY_RENEWAL).min(expiry));
                        return Ok(c.credentials.clone());
                    }
                }
                Err(AwsError::Credentials {
                    origin: self.settings.origin(),
                    reason,
                    permanent,
                })
            }
        }
    }

    /// The region requests are signed for: the settings' region, else the SDK's region
    /// chain (`AWS_REGION`, the profile's `region`, instance metadata). Resolved once, on a
    /// thread of its own so that synchronous callers inside a runtime can ask.
    pub fn region_blocking(&self) -> Option<String> {
        self.region
            .get_or_init(|| {
                if let Some(region) = &self.settings.region {
                    return Some(region.clone());
                }
                let profile = self.settings.profile.clone();
                std::thread::spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .ok()?;
                    runtime.block_on(async move {
                        let mut chain =
                            aws_config::default_provider::region::DefaultRegionChain::builder();
                        if let Some(p) = &profile {
                            chain = chain.profile_name(p);
                        }
                        chain.build().region().await.map(|r| r.to_string())
                    })
                })
                .join()
                .ok()
                .flatten()
            })
            .clone()
    }
}

/// The chain as object_store's credential provider for one bucket (named in errors).
#[derive(Debug)]
pub struct S3Credentials {
    pub chain: Arc<Chain>,
    pub bucket: String,
}

#[async_trait::async_trait]
impl object_store::CredentialProvider for S3Credentials {
    type Credential = AwsCredential;

    async fn get_credential(&self) -> object_store::Result<Arc<AwsCredential>> {
        let c = self.chain.credentials().await.map_err(|e| {
            if e.is_permanent() {
                // Not a service or network failure: inlet's retries stop at once.
                object_store::Error::Unauthenticated {
                    path: format!("s3://{}", self.bucket),
                    source: Box::new(e),
                }
            } else {
                object_store::Error::Generic {
                    store: "S3",
                    source: Box::new(e),
                }
            }
        })?;
        Ok(Arc::new(AwsCredential {
            key_id: c.access_key_id().to_string(),
            secret_key: c.secret_access_key().to_string(),
            token: c.session_token().map(str::to_string),
        }))
    }
}

/// The chain as an SDK credentials provider, answering from the shared cache.
#[derive(Debug)]
struct Shared(Arc<Chain>);

impl ProvideCredentials for Shared {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(async move {
            self.0.credentials().await.map_err(|e| {
                if e.is_permanent() {
                    CredentialsError::not_loaded(e)
                } else {
                    CredentialsError::provider_error(e)
                }
            })
        })
    }
}

#[derive(Debug)]
struct NoCredentials;

impl ProvideCredentials for NoCredentials {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::ready(Err(CredentialsError::not_loaded(
            "the SDK configuration has no credentials provider",
        )))
    }
}

fn default_session_name() -> String {
    let secs = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    format!("inlet-{secs}")
}

/// An error and its sources on one line (the SDK's list of providers it tried spans
/// several).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}
