//! How files are read: their format, the CSV dialect, and the options every decoder takes
//! (evolution mode, rescued data column, hints, partition columns).

use arrow::datatypes::Field;
use inlet_schema::EvolutionMode;
use serde::Deserialize;

use crate::dynamodb::NumberMode;

/// Input format of the landing zone's files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// JSON objects, one per line, concatenated on a line (Firehose), or in an array per
    /// line (one row per object, as Spark reads it).
    #[default]
    Json,
    /// Delimited text with an optional header (`CsvOptions`).
    Csv,
    /// Apache Parquet: the schema comes from the files' footers.
    Parquet,
    /// Apache Avro object container files: the schema comes from the files' headers; each
    /// file's blocks carry their own codec.
    Avro,
    /// One row per line, in the column `value`.
    Text,
    /// Every shape DynamoDB changes reach S3 in, told apart record by record: stream records,
    /// Kinesis Data Streams records (as Firehose writes them: concatenated, or one per line),
    /// full export items (`{"Item": ...}`, at `DecodeOptions::export_time_micros`), incremental
    /// export lines, and `{"Records": [...]}` events of these. Rows of the keys and new image
    /// plus `_op`, `_event_time` and a `_seq` comparable across shapes (`dynamodb_change.rs`).
    Dynamodb,
    /// DynamoDB Streams records, one per line (or concatenated, in arrays, or in
    /// `{"Records": [...]}` events): rows of the keys and new image plus `_op`, `_seq`,
    /// `_event_time`.
    DynamodbStream,
    /// DynamoDB export-to-S3 lines (`{"Item": {...}}`), for backfills.
    DynamodbExport,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::Csv => "csv",
            Self::Parquet => "parquet",
            Self::Avro => "avro",
            Self::Text => "text",
            Self::Dynamodb => "dynamodb",
            Self::DynamodbStream => "dynamodb_stream",
            Self::DynamodbExport => "dynamodb_export",
        }
    }

    /// One of the DynamoDB formats (their exports' manifests are never data; `_event_time`
    /// is a timestamp).
    pub fn is_dynamodb(self) -> bool {
        matches!(
            self,
            Self::Dynamodb | Self::DynamodbStream | Self::DynamodbExport
        )
    }
}

/// How records are read and fitted to the schema.
#[derive(Debug, Clone, Copy)]
pub struct DecodeOptions<'a> {
    pub format: Format,
    /// How DynamoDB `N` values are read.
    pub numbers: NumberMode,
    /// Read JSON and DynamoDB files as whole documents (`multiline = true`, Auto Loader's
    /// `multiLine`): one document or several, each an object or an array of objects,
    /// pretty-printed or not; a file that does not parse as a whole fails. Default `false`
    /// (one or more records per line).
    pub multiline: bool,
    /// `format = "dynamodb"`: the time of the full export the file belongs to, in µs since
    /// the epoch (`exportTime` of the export's `manifest-summary.json`), the event time of its
    /// `{"Item": ...}` lines. Default `None`: such lines are bad records.
    pub export_time_micros: Option<i64>,
    /// How `csv` files are split into fields.
    pub csv: &'a CsvOptions,
    pub mode: EvolutionMode,
    /// The column receiving what does not fit; `None` sends such records to bad records.
    pub rescued_column: Option<&'a str>,
    /// Whether new columns get inferred types (else all strings).
    pub infer_types: bool,
    /// Types for new columns named here, overriding inference.
    pub hints: &'a [Field],
    /// Hive-style `name=value` directories of the file's path that become columns.
    pub partition_columns: &'a [String],
    /// Every JSON line of the file is known to fit the schema as written (inference walked
    /// it: `SchemaSample::fitted`, `fits_within`): the tape decoder takes such lines
    /// unchecked, and one the direct builder does not take goes to it, not to fitting.
    pub known_to_fit: bool,
}

/// `[source.csv]`: how a delimited file splits into fields.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CsvOptions {
    /// The first line names the columns; without it columns are `_c0`, `_c1`, ...
    pub header: bool,
    /// One ASCII character between fields.
    pub delimiter: String,
    /// One ASCII character around fields holding delimiters, quotes or newlines.
    pub quote: String,
    /// One ASCII character escaping a quote inside a quoted field; empty means a quote is
    /// escaped by doubling it (`""`), as RFC 4180 says.
    pub escape: String,
    /// A field equal to this is null (the default: an empty field is null).
    pub null_value: String,
    /// Lines starting with this ASCII character are skipped; empty for none.
    pub comment: String,
}

impl Default for CsvOptions {
    fn default() -> Self {
        Self {
            header: true,
            delimiter: ",".into(),
            quote: "\"".into(),
            escape: String::new(),
            null_value: String::new(),
            comment: String::new(),
        }
    }
}

impl CsvOptions {
    /// Checks every character option is one ASCII character (or empty where allowed):
    /// `Err((key, reason))` names the first that is not.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        for (key, value, may_be_empty) in [
            ("delimiter", &self.delimiter, false),
            ("quote", &self.quote, false),
            ("escape", &self.escape, true),
            ("comment", &self.comment, true),
        ] {
            let ok = (value.is_empty() && may_be_empty)
                || (value.len() == 1 && value.is_ascii() && value != "\n" && value != "\r");
            if !ok {
                let want = if may_be_empty {
                    "one ASCII character, or empty"
                } else {
                    "one ASCII character"
                };
                return Err((key, format!("must be {want}")));
            }
        }
        if self.delimiter == self.quote {
            return Err(("quote", "must differ from delimiter".into()));
        }
        Ok(())
    }
}
