//! What selects a credential chain: region, profile, role to assume and explicit keys, read
//! out of a storage-options map (inlet's own `aws_*` keys beside object_store's).

use std::collections::HashMap;

use object_store::aws::AmazonS3ConfigKey;

/// Storage-option key naming the shared-config profile (as `AWS_PROFILE` does).
pub const PROFILE: &str = "aws_profile";
/// Storage-option key naming an IAM role to assume on top of the chain's credentials.
pub const ASSUME_ROLE_ARN: &str = "aws_assume_role_arn";
/// Storage-option key naming the AssumeRole session (default `inlet-<unix seconds>`).
pub const ROLE_SESSION_NAME: &str = "aws_role_session_name";
/// Storage-option key giving the AssumeRole external id.
pub const EXTERNAL_ID: &str = "aws_external_id";

/// The settings one chain is built from. Equal settings share one chain in a process.
/// `Debug` shows the access key id but never the secret or the session token.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct AwsSettings {
    pub region: Option<String>,
    pub profile: Option<String>,
    pub assume_role_arn: Option<String>,
    pub role_session_name: Option<String>,
    pub external_id: Option<String>,
    /// Keys written in the config; when present they are the base credentials.
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub session_token: Option<String>,
}

impl std::fmt::Debug for AwsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hidden = |v: &Option<String>| v.as_ref().map(|_| "***");
        f.debug_struct("AwsSettings")
            .field("region", &self.region)
            .field("profile", &self.profile)
            .field("assume_role_arn", &self.assume_role_arn)
            .field("role_session_name", &self.role_session_name)
            .field("external_id", &self.external_id)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &hidden(&self.secret_access_key))
            .field("session_token", &hidden(&self.session_token))
            .finish()
    }
}

impl AwsSettings {
    /// Splits `options` into the settings of its chain and the options left for
    /// object_store (keys lower-cased; credentials and inlet's own keys removed, region
    /// kept, since the S3 client signs for it).
    pub fn split(options: &HashMap<String, String>) -> (Self, HashMap<String, String>) {
        let mut settings = Self::default();
        let mut rest = HashMap::new();
        for (key, value) in options {
            let key = key.to_ascii_lowercase();
            let value = value.clone();
            match key.as_str() {
                PROFILE => settings.profile = Some(value),
                ASSUME_ROLE_ARN => settings.assume_role_arn = Some(value),
                ROLE_SESSION_NAME => settings.role_session_name = Some(value),
                EXTERNAL_ID => settings.external_id = Some(value),
                _ => match key.parse::<AmazonS3ConfigKey>() {
                    Ok(AmazonS3ConfigKey::AccessKeyId) => settings.access_key_id = Some(value),
                    Ok(AmazonS3ConfigKey::SecretAccessKey) => {
                        settings.secret_access_key = Some(value)
                    }
                    Ok(AmazonS3ConfigKey::Token) => settings.session_token = Some(value),
                    Ok(AmazonS3ConfigKey::Region) => {
                        settings.region = Some(value.clone());
                        rest.insert(key, value);
                    }
                    _ => {
                        rest.insert(key, value);
                    }
                },
            }
        }
        (settings, rest)
    }

    /// Where the chain's credentials come from, for messages ("profile 'x'", "role …").
    pub fn origin(&self) -> String {
        let mut parts = Vec::new();
        if self.access_key_id.is_some() {
            parts.push("keys in storage_options".to_string());
        } else if let Some(p) = &self.profile {
            parts.push(format!("profile '{p}'"));
        } else {
            parts.push("the default chain".to_string());
        }
        if let Some(arn) = &self.assume_role_arn {
            parts.push(format!("assuming {arn}"));
        }
        parts.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_inlet_keys_and_credentials_from_object_store_options() {
        let options: HashMap<String, String> = [
            ("AWS_PROFILE", "dev"),
            ("aws_assume_role_arn", "arn:aws:iam::1:role/r"),
            ("aws_access_key_id", "AKID"),
            ("secret_access_key", "S"),
            ("aws_region", "eu-west-1"),
            ("aws_endpoint", "http://127.0.0.1:1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let (settings, rest) = AwsSettings::split(&options);
        assert_eq!(settings.profile.as_deref(), Some("dev"));
        assert_eq!(
            settings.assume_role_arn.as_deref(),
            Some("arn:aws:iam::1:role/r")
        );
        assert_eq!(settings.access_key_id.as_deref(), Some("AKID"));
        assert_eq!(settings.secret_access_key.as_deref(), Some("S"));
        assert_eq!(settings.region.as_deref(), Some("eu-west-1"));
        let mut left: Vec<_> = rest.keys().cloned().collect();
        left.sort();
        assert_eq!(left, ["aws_endpoint", "aws_region"]);
        assert_eq!(
            settings.origin(),
            "keys in storage_options, assuming arn:aws:iam::1:role/r"
        );
    }
}
