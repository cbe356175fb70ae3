//! `[aws]`: the settings of the one AWS credential chain that signs S3 reads, writes to an
//! S3 table and SQS calls — profile, region, a role to assume — applied to both sides.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{Checker, ConfigError};

/// `[aws]`. Each key is also accepted per side in `storage_options` (as `aws_profile`,
/// `aws_region`, `aws_assume_role_arn`, `aws_role_session_name`, `aws_external_id`), where
/// it wins over this section.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsSection {
    /// Shared-config profile (as `AWS_PROFILE`); default: the SDK's choice.
    pub profile: Option<String>,
    /// Region for S3 and SQS; default: `AWS_REGION`, the profile's, instance metadata.
    pub region: Option<String>,
    /// An IAM role to assume with STS on top of the chain's credentials.
    pub assume_role_arn: Option<String>,
    /// The AssumeRole session name; default `inlet-<unix seconds>`.
    pub role_session_name: Option<String>,
    /// The AssumeRole external id, when the role's trust policy asks for one.
    pub external_id: Option<String>,
}

impl AwsSection {
    pub(super) fn check(&self, check: &Checker) -> Result<(), ConfigError> {
        if let Some(arn) = &self.assume_role_arn {
            if !arn.starts_with("arn:") || !arn.contains(":role/") {
                return Err(check.bad(
                    "aws.assume_role_arn",
                    arn,
                    "give a role ARN, such as arn:aws:iam::123456789012:role/inlet",
                ));
            }
        }
        Ok(())
    }

    /// Adds this section's settings to one side's `storage_options`, which win.
    pub(super) fn apply(&self, options: &mut BTreeMap<String, String>) {
        let pairs = [
            (inlet_aws::PROFILE, &self.profile),
            ("aws_region", &self.region),
            (inlet_aws::ASSUME_ROLE_ARN, &self.assume_role_arn),
            (inlet_aws::ROLE_SESSION_NAME, &self.role_session_name),
            (inlet_aws::EXTERNAL_ID, &self.external_id),
        ];
        for (key, value) in pairs {
            if let Some(value) = value {
                let present = options.keys().any(|k| k.eq_ignore_ascii_case(key))
                    || (key == "aws_region"
                        && options.keys().any(|k| k.eq_ignore_ascii_case("region")));
                if !present {
                    options.insert(key.to_string(), value.clone());
                }
            }
        }
    }
}
