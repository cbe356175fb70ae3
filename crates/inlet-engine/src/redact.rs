//! Redaction of secrets in anything inlet prints: storage option values whose keys name a
//! secret are shown as `***`.

use std::collections::BTreeMap;

/// True for option keys whose values must never be shown.
pub fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    ["secret", "token", "password", "session"]
        .iter()
        .any(|s| k.contains(s))
}

/// `key=value` pairs with secret values replaced by `***`.
pub fn redact_options(options: &BTreeMap<String, String>) -> String {
    options
        .iter()
        .map(|(k, v)| format!("{k}={}", if is_secret_key(k) { "***" } else { v }))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_hidden() {
        let opts = BTreeMap::from([
            ("aws_secret_access_key".to_string(), "s3cr3t".to_string()),
            ("aws_region".to_string(), "eu-west-1".to_string()),
        ]);
        let text = redact_options(&opts);
        assert!(!text.contains("s3cr3t"), "{text}");
        assert!(text.contains("aws_region=eu-west-1"), "{text}");
    }
}
