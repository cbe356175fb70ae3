//! `[schema]`: how the first schema is inferred, which types hints fix, how it evolves, and
//! where what does not fit is kept; checked, with the hints parsed.

use arrow::datatypes::Field;
use inlet_format::Format;
use inlet_schema::EvolutionMode;
use serde::Deserialize;

use super::{Checker, ConfigError};

/// `[schema]`: inference, hints, evolution and rescue.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchemaSection {
    /// Most files read to infer the first schema. Default 1000.
    #[serde(default = "default_sample_files")]
    pub sample_files: usize,
    /// Most (decompressed) bytes read to infer the first schema. Default 50 GiB.
    #[serde(default = "default_sample_bytes")]
    pub sample_bytes: u64,
    /// Infer numbers, booleans, structs and lists; `false` makes every column a string.
    /// Default `true`.
    #[serde(default = "default_true")]
    pub infer_column_types: bool,
    /// Column types that override inference, as DDL: `id BIGINT, at TIMESTAMP`.
    #[serde(default)]
    pub hints: String,
    /// `add_new_columns`, `rescue`, `fail_on_new_columns` or `none`. Default `add_new_columns`.
    #[serde(default)]
    pub evolution: EvolutionMode,
    /// The column holding what did not fit, as JSON; empty turns it off. Default
    /// `_rescued_data`.
    #[serde(default = "default_rescued_column")]
    pub rescued_data_column: String,
}

impl Default for SchemaSection {
    fn default() -> Self {
        Self {
            sample_files: default_sample_files(),
            sample_bytes: default_sample_bytes(),
            infer_column_types: true,
            hints: String::new(),
            evolution: EvolutionMode::default(),
            rescued_data_column: default_rescued_column(),
        }
    }
}

impl SchemaSection {
    /// Checks the section and parses its hints (plus the `_event_time` type the DynamoDB
    /// formats give, unless a hint says otherwise).
    pub(super) fn check(
        &self,
        check: &Checker<'_>,
        format: Format,
    ) -> Result<Vec<Field>, ConfigError> {
        if self.sample_files == 0 {
            return Err(check.bad("schema.sample_files", "0", "must be at least 1"));
        }
        let mut hints = inlet_schema::parse_hints(&self.hints).map_err(|e| {
            let reason = match e {
                inlet_schema::SchemaError::Hints { at, detail, .. } => {
                    format!("{detail} at character {at}")
                }
                other => other.to_string(),
            };
            check.bad("schema.hints", &self.hints, &reason)
        })?;
        if format.is_dynamodb() && !hints.iter().any(|h| h.name() == "_event_time") {
            hints.push(Field::new(
                "_event_time",
                arrow::datatypes::DataType::Timestamp(
                    arrow::datatypes::TimeUnit::Microsecond,
                    Some("UTC".into()),
                ),
                true,
            ));
        }
        let rescued = &self.rescued_data_column;
        if self.evolution == EvolutionMode::Rescue && rescued.is_empty() {
            return Err(check.bad(
                "schema.rescued_data_column",
                "",
                "evolution = \"rescue\" keeps unknown fields in the rescued data column; name one (default _rescued_data)",
            ));
        }
        if !rescued.is_empty() && !inlet_schema::is_valid_column_name(rescued) {
            return Err(check.bad(
                "schema.rescued_data_column",
                rescued,
                "not a valid Delta column name",
            ));
        }
        Ok(hints)
    }
}

const fn default_true() -> bool {
    true
}
const fn default_sample_files() -> usize {
    1000
}
const fn default_sample_bytes() -> u64 {
    50 << 30
}
fn default_rescued_column() -> String {
    "_rescued_data".into()
}
