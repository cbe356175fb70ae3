//! `${NAME}` in a config: substituted into the parsed string values (never into comments or
//! the TOML text), and secrets refused unless they are whole `${NAME}` references.

use std::path::Path;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::ConfigError;

/// Parses `text` and replaces `${NAME}` in every string value with `env(NAME)` (`$${` is a
/// literal `${`). Spans still point into `text`, so later errors name the line. Refuses a
/// secret written into the file before anything is substituted.
pub(super) fn parse<'t>(
    path: &Path,
    text: &'t str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Spanned<DeTable<'t>>, ConfigError> {
    let mut table = DeTable::parse(text).map_err(|e| syntax(path, text, &e))?;
    refuse_literal_secrets(path, table.get_ref())?;
    let span = table.span();
    substitute_table(path, text, table.get_mut(), env)?;
    debug_assert_eq!(span, table.span());
    Ok(table)
}

/// A TOML error as the config's one-line error, with the line it points at.
pub(super) fn syntax(path: &Path, text: &str, e: &toml::de::Error) -> ConfigError {
    ConfigError::Syntax {
        path: path.to_path_buf(),
        line: line_at(text, e.span().map_or(0, |s| s.start)),
        message: e.message().trim().to_string(),
    }
}

fn line_at(text: &str, offset: usize) -> usize {
    1 + text[..offset.min(text.len())].matches('\n').count()
}

fn substitute_table(
    path: &Path,
    text: &str,
    table: &mut DeTable<'_>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(), ConfigError> {
    for (_, value) in table.iter_mut() {
        substitute_value(path, text, value, env)?;
    }
    Ok(())
}

fn substitute_value(
    path: &Path,
    text: &str,
    value: &mut Spanned<DeValue<'_>>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(), ConfigError> {
    let line = line_at(text, value.span().start);
    match value.get_mut() {
        DeValue::String(s) if s.contains("${") => {
            *s = std::borrow::Cow::Owned(substitute(path, line, s, env)?);
        }
        DeValue::Array(items) => {
            for item in items.iter_mut() {
                substitute_value(path, text, item, env)?;
            }
        }
        DeValue::Table(t) => substitute_table(path, text, t, env)?,
        _ => {}
    }
    Ok(())
}

/// Replaces `${NAME}` with the variable's value; `$${` stands for a literal `${`.
fn substitute(
    path: &Path,
    line: usize,
    value: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, ConfigError> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(at) = rest.find("${") {
        if at > 0 && rest.as_bytes()[at - 1] == b'$' {
            out.push_str(&rest[..at - 1]);
            out.push_str("${");
            rest = &rest[at + 2..];
            continue;
        }
        out.push_str(&rest[..at]);
        let Some(end) = rest[at..].find('}') else {
            return Err(ConfigError::Syntax {
                path: path.to_path_buf(),
                line,
                message: "unclosed ${".into(),
            });
        };
        let name = &rest[at + 2..at + end];
        match env(name) {
            Some(v) => out.push_str(&v),
            None => {
                return Err(ConfigError::MissingEnv {
                    path: path.to_path_buf(),
                    line,
                    name: name.to_string(),
                })
            }
        }
        rest = &rest[at + end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Secrets stay out of config files (they are copied, committed and shown): a storage
/// option whose key names a secret, and the catalog's token and client secret, must be a
/// whole `${NAME}` reference in the file as written. The error names the key, never the value.
fn refuse_literal_secrets(path: &Path, raw: &DeTable<'_>) -> Result<(), ConfigError> {
    let section = |name: &str| -> Option<&DeTable<'_>> {
        match raw.get(name).map(|v| v.get_ref()) {
            Some(DeValue::Table(t)) => Some(t),
            _ => None,
        }
    };
    let string = |table: &DeTable<'_>, key: &str| -> Option<String> {
        match table.get(key).map(|v| v.get_ref()) {
            Some(DeValue::String(s)) => Some(s.to_string()),
            _ => None,
        }
    };
    if let Some(unity) = section("unity") {
        for key in ["token", "client_secret"] {
            if string(unity, key).is_some_and(|v| !is_reference(&v)) {
                return Err(ConfigError::Value {
                    path: path.to_path_buf(),
                    key: if key == "token" { "unity.token" } else { "unity.client_secret" },
                    value: format!("{key} = ***"),
                    reason: "a secret written into the config file: leave it out and set DATABRICKS_TOKEN (or DATABRICKS_CLIENT_SECRET), or write it as \"${NAME}\" to read the environment variable NAME".into(),
                });
            }
        }
    }
    for (name, key) in [
        ("source", "source.storage_options"),
        ("sink", "sink.storage_options"),
    ] {
        let Some(DeValue::Table(options)) = section(name)
            .and_then(|s| s.get("storage_options"))
            .map(|v| v.get_ref())
        else {
            continue;
        };
        for (option, value) in options.iter() {
            let option = option.get_ref();
            let reference = matches!(value.get_ref(), DeValue::String(s) if is_reference(s));
            if crate::redact::is_secret_key(option) && !reference {
                return Err(ConfigError::Value {
                    path: path.to_path_buf(),
                    key,
                    value: format!("{option} = ***"),
                    reason: format!(
                        "a secret written into the config file: leave it out and set the standard variable \
                         (e.g. AWS_SECRET_ACCESS_KEY) or an instance/task role, or write {option} = \"${{NAME}}\" \
                         to read it from the environment variable NAME"
                    ),
                });
            }
        }
    }
    Ok(())
}

/// True for a whole `${NAME}` reference.
fn is_reference(v: &str) -> bool {
    v.strip_prefix("${")
        .and_then(|v| v.strip_suffix('}'))
        .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
}
