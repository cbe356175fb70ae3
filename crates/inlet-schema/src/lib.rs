//! Schemas of landing-zone data: inference from a bounded sample with widening, hints,
//! evolution modes, schema differences, and fitting records to columns with rescue.

mod column_name;
mod conform;
mod error;
mod evolution;
mod hints;
mod infer;
mod json_text;
mod stored;
mod temporal;

pub use column_name::{column_names, is_valid_column_name, same_column_name};
pub use conform::{fits, Conformed, Conformer, FILE_PATH_KEY};
pub use error::SchemaError;
pub use evolution::{diff, with_columns, with_rescued_column, EvolutionMode, SchemaDiff};
pub use hints::{apply_hints, ddl_type, hinted_types, parse_hints};
pub use infer::{JsonInference, MAX_NESTING};
pub use json_text::{compact, field, field_text, members, Member};
pub use stored::{from_json, to_json};
