//! The protocol guard: which Delta table features a schema and table properties need, and the
//! protocol action that upgrades a table to them, so no commit leaves a table readers refuse.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use deltalake::kernel::Protocol;
use serde_json::{json, Value};

/// A table feature a table needs, by its protocol name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct NeededFeature {
    /// The feature's name in `readerFeatures` / `writerFeatures` (e.g. `timestampNtz`).
    pub name: &'static str,
    /// What needs it, for messages (e.g. "column ts is timestamp_ntz").
    pub why: String,
}

/// How a feature is supported by the protocol: with the feature lists (reader 3 / writer 7),
/// or implicitly by a legacy reader/writer version.
struct FeatureSpec {
    name: &'static str,
    /// Readers must support it too (listed in `readerFeatures` at reader version 3).
    reader: bool,
    /// The legacy (reader, writer) versions that support it without feature lists, if any.
    legacy: Option<(i32, i32)>,
    /// Whether inlet (through delta-rs 1.1) can write a table that has it.
    writable: bool,
}

/// Every feature the guard knows. The writable ones are those delta-rs's own protocol checker
/// (`deltalake::kernel::transaction::PROTOCOL`) writes with the `datafusion` feature on, less
/// column mapping: a column inlet adds would need a column id and physical name, which inlet
/// does not assign, so a schema change to a column-mapped table is refused.
const FEATURES: &[FeatureSpec] = &[
    spec("appendOnly", false, Some((1, 2)), true),
    spec("invariants", false, Some((1, 2)), true),
    spec("checkConstraints", false, Some((1, 3)), true),
    spec("changeDataFeed", false, Some((1, 4)), true),
    spec("generatedColumns", false, Some((1, 4)), true),
    spec("columnMapping", true, Some((2, 5)), false),
    spec("identityColumns", false, Some((1, 6)), false),
    spec("timestampNtz", true, None, true),
    spec("deletionVectors", true, None, true),
    spec("v2Checkpoint", true, None, true),
    spec("variantType", true, None, true),
    spec("typeWidening", true, None, false),
    spec("rowTracking", false, None, false),
    spec("domainMetadata", false, None, false),
    spec("inCommitTimestamp", false, None, false),
    spec("timestampNanos", true, None, false),
];

const fn spec(
    name: &'static str,
    reader: bool,
    legacy: Option<(i32, i32)>,
    writable: bool,
) -> FeatureSpec {
    FeatureSpec {
        name,
        reader,
        legacy,
        writable,
    }
}

/// A feature's name, and the preview name tables written before it was final may list
/// (delta-rs and Spark accept either).
fn names_of(feature: &str) -> impl Iterator<Item = &str> {
    let preview = match feature {
        "variantType" => Some("variantType-preview"),
        "typeWidening" => Some("typeWidening-preview"),
        _ => None,
    };
    std::iter::once(feature).chain(preview)
}

fn spec_of(name: &str) -> Option<&'static FeatureSpec> {
    FEATURES.iter().find(|f| f.name == name)
}

/// Errors of the guard; each names the table feature at fault.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    #[error("the table would need Delta table feature '{feature}' ({why}), which inlet cannot write; nothing was committed. Remove what needs it from the config or the data (for a column: a schema hint with another type)")]
    Unwritable { feature: String, why: String },

    #[error("the table's protocol action cannot be read or written: {0}")]
    Malformed(String),
}

/// The features `schema` (a Delta schema as its JSON form, `{"type":"struct","fields":[...]}`)
/// and the table `properties` need, each once, with the first reason found.
pub fn needed_features(schema: &Value, properties: &HashMap<String, String>) -> Vec<NeededFeature> {
    let mut found: BTreeMap<&'static str, String> = BTreeMap::new();
    walk_type(schema, "", &mut found);
    let on = |key: &str| {
        properties
            .get(key)
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
    };
    let mut need = |name: &'static str, why: String| {
        found.entry(name).or_insert(why);
    };
    for (key, name) in [
        ("delta.enableChangeDataFeed", "changeDataFeed"),
        ("delta.appendOnly", "appendOnly"),
        ("delta.enableDeletionVectors", "deletionVectors"),
        ("delta.enableRowTracking", "rowTracking"),
        ("delta.enableTypeWidening", "typeWidening"),
        ("delta.enableInCommitTimestamps", "inCommitTimestamp"),
    ] {
        if on(key) {
            need(name, format!("table property {key} = true"));
        }
    }
    if let Some(mode) = properties.get("delta.columnMapping.mode") {
        if !mode.trim().eq_ignore_ascii_case("none") {
            need(
                "columnMapping",
                format!("table property delta.columnMapping.mode = {mode}"),
            );
        }
    }
    if properties
        .get("delta.checkpointPolicy")
        .is_some_and(|v| v.trim() == "v2")
    {
        need(
            "v2Checkpoint",
            "table property delta.checkpointPolicy = v2".into(),
        );
    }
    if let Some(key) = properties
        .keys()
        .find(|k| k.starts_with("delta.constraints."))
    {
        need("checkConstraints", format!("table property {key}"));
    }
    found
        .into_iter()
        .map(|(name, why)| NeededFeature { name, why })
        .collect()
}

/// Collects what a (nested) type needs; `path` names the column for messages.
fn walk_type(t: &Value, path: &str, found: &mut BTreeMap<&'static str, String>) {
    match t {
        Value::String(name) => {
            let feature = match name.as_str() {
                "timestamp_ntz" => Some("timestampNtz"),
                "variant" => Some("variantType"),
                _ => None,
            };
            if let Some(f) = feature {
                found
                    .entry(f)
                    .or_insert_with(|| format!("column {path} is {name}"));
            }
        }
        Value::Object(obj) => match obj.get("type").and_then(Value::as_str) {
            Some("struct") => {
                for field in obj
                    .get("fields")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let name = field.get("name").and_then(Value::as_str).unwrap_or("?");
                    let child = if path.is_empty() {
                        name.to_string()
                    } else {
                        format!("{path}.{name}")
                    };
                    if let Some(meta) = field.get("metadata").and_then(Value::as_object) {
                        for (key, feature) in [
                            ("delta.generationExpression", "generatedColumns"),
                            ("delta.invariants", "invariants"),
                            ("delta.identity.start", "identityColumns"),
                            ("delta.identity.step", "identityColumns"),
                        ] {
                            if meta.contains_key(key) {
                                found
                                    .entry(feature)
                                    .or_insert_with(|| format!("column {child} has {key}"));
                            }
                        }
                    }
                    if let Some(t) = field.get("type") {
                        walk_type(t, &child, found);
                    }
                }
            }
            Some("array") => {
                if let Some(t) = obj.get("elementType") {
                    walk_type(t, &format!("{path}[]"), found);
                }
            }
            Some("map") => {
                for key in ["keyType", "valueType"] {
                    if let Some(t) = obj.get(key) {
                        walk_type(t, &format!("{path}.{key}"), found);
                    }
                }
            }
            _ => {}
        },
        _ => {}
    }
}

/// A protocol action in the plain form the log holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolState {
    pub min_reader_version: i32,
    pub min_writer_version: i32,
    pub reader_features: Option<BTreeSet<String>>,
    pub writer_features: Option<BTreeSet<String>>,
}

impl ProtocolState {
    /// From a protocol action's JSON (`{"minReaderVersion": 1, ...}`).
    pub fn from_json(v: &Value) -> Result<Self, ProtocolError> {
        let version = |key: &str| {
            v.get(key)
                .and_then(Value::as_i64)
                .and_then(|n| i32::try_from(n).ok())
                .ok_or_else(|| ProtocolError::Malformed(format!("{key} missing in {v}")))
        };
        let list = |key: &str| {
            v.get(key).and_then(Value::as_array).map(|items| {
                items
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect::<BTreeSet<_>>()
            })
        };
        Ok(Self {
            min_reader_version: version("minReaderVersion")?,
            min_writer_version: version("minWriterVersion")?,
            reader_features: list("readerFeatures"),
            writer_features: list("writerFeatures"),
        })
    }

    /// The kernel's protocol as this plain form.
    pub fn of(protocol: &Protocol) -> Result<Self, ProtocolError> {
        let v =
            serde_json::to_value(protocol).map_err(|e| ProtocolError::Malformed(e.to_string()))?;
        Self::from_json(&v)
    }

    /// The protocol action's JSON.
    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "minReaderVersion": self.min_reader_version,
            "minWriterVersion": self.min_writer_version,
        });
        if let Some(f) = &self.reader_features {
            v["readerFeatures"] = json!(f);
        }
        if let Some(f) = &self.writer_features {
            v["writerFeatures"] = json!(f);
        }
        v
    }

    /// As the kernel's type, for a commit's `Action::Protocol`.
    pub fn to_kernel(&self) -> Result<Protocol, ProtocolError> {
        serde_json::from_value(self.to_json()).map_err(|e| ProtocolError::Malformed(e.to_string()))
    }

    /// Whether this protocol supports `feature` (listed, or implied by a legacy version).
    pub fn supports(&self, feature: &str) -> bool {
        let Some(spec) = spec_of(feature) else {
            return self.lists_writer(feature);
        };
        let writer_ok = if self.min_writer_version >= 7 {
            self.lists_writer(feature)
        } else {
            spec.legacy
                .is_some_and(|(_, w)| self.min_writer_version >= w)
        };
        let reader_ok = !spec.reader
            || if self.min_reader_version >= 3 {
                self.reader_features
                    .as_ref()
                    .is_some_and(|f| names_of(feature).any(|n| f.contains(n)))
            } else {
                spec.legacy
                    .is_some_and(|(r, _)| self.min_reader_version >= r)
            };
        writer_ok && reader_ok
    }

    fn lists_writer(&self, feature: &str) -> bool {
        self.writer_features
            .as_ref()
            .is_some_and(|f| names_of(feature).any(|n| f.contains(n)))
    }

    /// Whether a reader must support one of `features` to read a table with this protocol
    /// (as opposed to features only writers must know).
    pub fn any_reader_feature<'a>(mut features: impl Iterator<Item = &'a str>) -> bool {
        features.any(|f| spec_of(f).is_none_or(|s| s.reader))
    }

    /// The features a legacy writer version supports implicitly, listed as a writer version 7
    /// protocol must list them when a table moves to feature lists (as Spark does).
    fn implied_writer_features(&self) -> BTreeSet<String> {
        FEATURES
            .iter()
            .filter(|f| {
                f.legacy.is_some_and(|(r, w)| {
                    self.min_writer_version >= w && (!f.reader || self.min_reader_version >= r)
                })
            })
            .map(|f| f.name.to_string())
            .collect()
    }
}

/// The protocol a table with `current` needs to carry `needed`: `None` when `current` already
/// supports every needed feature. Upgrades go to feature lists (reader 3 when a needed feature
/// is a reader feature, writer 7), keeping every feature `current` supported. Refuses with
/// [`ProtocolError::Unwritable`] when a needed feature is one inlet cannot write, before
/// anything is committed.
pub fn upgrade_for(
    current: &ProtocolState,
    needed: &[NeededFeature],
) -> Result<Option<ProtocolState>, ProtocolError> {
    for n in needed {
        if spec_of(n.name).is_some_and(|s| !s.writable) {
            return Err(ProtocolError::Unwritable {
                feature: n.name.to_string(),
                why: n.why.clone(),
            });
        }
    }
    let missing: Vec<&NeededFeature> = needed
        .iter()
        .filter(|n| !current.supports(n.name))
        .collect();
    if missing.is_empty() {
        return Ok(None);
    }
    let mut next = current.clone();
    // Writer side: to version 7, listing what the legacy version implied.
    if next.min_writer_version < 7 {
        next.writer_features = Some(current.implied_writer_features());
        next.min_writer_version = 7;
    }
    let writers = next.writer_features.get_or_insert_with(BTreeSet::new);
    for n in &missing {
        writers.insert(n.name.to_string());
    }
    // Reader side: only when a missing feature is a reader feature.
    let reader_missing: Vec<&str> = missing
        .iter()
        .filter(|n| spec_of(n.name).is_none_or(|s| s.reader))
        .map(|n| n.name)
        .collect();
    if !reader_missing.is_empty() {
        if next.min_reader_version < 3 {
            let mut readers = BTreeSet::new();
            // Reader version 2 implied column mapping.
            if next.min_reader_version >= 2 {
                readers.insert("columnMapping".to_string());
            }
            next.reader_features = Some(readers);
            next.min_reader_version = 3;
        }
        let readers = next.reader_features.get_or_insert_with(BTreeSet::new);
        for name in reader_missing {
            readers.insert(name.to_string());
        }
    }
    Ok(Some(next))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(fields: Value) -> Value {
        json!({"type": "struct", "fields": fields})
    }

    fn field(name: &str, t: Value) -> Value {
        json!({"name": name, "type": t, "nullable": true, "metadata": {}})
    }

    fn legacy(r: i32, w: i32) -> ProtocolState {
        ProtocolState {
            min_reader_version: r,
            min_writer_version: w,
            reader_features: None,
            writer_features: None,
        }
    }

    #[test]
    fn a_nested_timestamp_ntz_upgrades_a_legacy_table_to_feature_lists() {
        let s = schema(json!([
            field("id", json!("long")),
            field(
                "s",
                json!({"type": "array", "elementType": {"type": "struct", "fields": [field("t", json!("timestamp_ntz"))]}, "containsNull": true})
            ),
        ]));
        let needed = needed_features(&s, &HashMap::new());
        assert_eq!(needed.len(), 1);
        assert_eq!(needed[0].name, "timestampNtz");
        assert_eq!(needed[0].why, "column s[].t is timestamp_ntz");
        let next = upgrade_for(&legacy(1, 2), &needed)
            .expect("writable")
            .expect("an upgrade");
        assert_eq!(
            next.to_json(),
            json!({"minReaderVersion": 3, "minWriterVersion": 7,
                   "readerFeatures": ["timestampNtz"],
                   "writerFeatures": ["appendOnly", "invariants", "timestampNtz"]})
        );
        next.to_kernel().expect("the kernel accepts it");
        // Applying it again changes nothing.
        assert_eq!(upgrade_for(&next, &needed).expect("ok"), None);
    }

    #[test]
    fn features_the_protocol_already_has_need_no_upgrade() {
        let props = HashMap::from([("delta.enableChangeDataFeed".to_string(), "true".to_string())]);
        let needed = needed_features(&schema(json!([field("a", json!("string"))])), &props);
        assert_eq!(needed[0].name, "changeDataFeed");
        assert_eq!(upgrade_for(&legacy(1, 4), &needed).expect("ok"), None);
        let next = upgrade_for(&legacy(1, 2), &needed)
            .expect("ok")
            .expect("upgrade");
        // A writer-only feature leaves the reader version alone.
        assert_eq!(
            next.to_json(),
            json!({"minReaderVersion": 1, "minWriterVersion": 7,
                   "writerFeatures": ["appendOnly", "changeDataFeed", "invariants"]})
        );
        next.to_kernel().expect("the kernel accepts it");
    }

    #[test]
    fn preview_names_count_and_column_mapping_is_refused() {
        let current = ProtocolState {
            min_reader_version: 3,
            min_writer_version: 7,
            reader_features: Some(BTreeSet::from(["variantType-preview".to_string()])),
            writer_features: Some(BTreeSet::from(["variantType-preview".to_string()])),
        };
        let needed = needed_features(
            &schema(json!([field("v", json!("variant"))])),
            &HashMap::new(),
        );
        assert_eq!(upgrade_for(&current, &needed).expect("ok"), None);
        let props = HashMap::from([("delta.columnMapping.mode".to_string(), "name".to_string())]);
        let err = upgrade_for(&legacy(2, 5), &needed_features(&schema(json!([])), &props))
            .expect_err("inlet assigns no column ids");
        assert!(err.to_string().contains("'columnMapping'"), "{err}");
    }

    #[test]
    fn column_mapping_from_reader_two_is_kept_in_the_lists() {
        let needed = needed_features(
            &schema(json!([field("v", json!("variant"))])),
            &HashMap::new(),
        );
        let next = upgrade_for(&legacy(2, 5), &needed)
            .expect("ok")
            .expect("upgrade");
        let readers = next.reader_features.clone().expect("reader list");
        assert!(readers.contains("columnMapping") && readers.contains("variantType"));
        let writers = next.writer_features.clone().expect("writer list");
        for f in [
            "appendOnly",
            "invariants",
            "checkConstraints",
            "changeDataFeed",
            "generatedColumns",
            "columnMapping",
            "variantType",
        ] {
            assert!(writers.contains(f), "{f} in {writers:?}");
        }
        next.to_kernel().expect("the kernel accepts it");
    }

    #[test]
    fn a_feature_inlet_cannot_write_is_refused_with_its_reason() {
        let s = schema(json!([{"name": "id", "type": "long", "nullable": true,
                               "metadata": {"delta.identity.start": 1, "delta.identity.step": 1}}]));
        let err =
            upgrade_for(&legacy(1, 2), &needed_features(&s, &HashMap::new())).expect_err("refused");
        let text = err.to_string();
        assert!(
            text.contains("'identityColumns'")
                && text.contains("column id has delta.identity.start"),
            "{text}"
        );
        let props = HashMap::from([("delta.enableRowTracking".to_string(), "true".to_string())]);
        let err = upgrade_for(&legacy(1, 2), &needed_features(&schema(json!([])), &props))
            .expect_err("refused");
        assert!(err.to_string().contains("'rowTracking'"), "{err}");
    }

    #[test]
    fn deletion_vectors_and_constraints_come_from_properties() {
        let props = HashMap::from([
            (
                "delta.enableDeletionVectors".to_string(),
                "TRUE".to_string(),
            ),
            (
                "delta.constraints.positive".to_string(),
                "id > 0".to_string(),
            ),
            (
                "delta.logRetentionDuration".to_string(),
                "interval 30 days".to_string(),
            ),
        ]);
        let names: Vec<&str> = needed_features(&schema(json!([])), &props)
            .iter()
            .map(|n| n.name)
            .collect();
        assert_eq!(names, vec!["checkConstraints", "deletionVectors"]);
        let current = ProtocolState {
            min_reader_version: 3,
            min_writer_version: 7,
            reader_features: Some(BTreeSet::new()),
            writer_features: Some(BTreeSet::from(["appendOnly".to_string()])),
        };
        let next = upgrade_for(&current, &needed_features(&schema(json!([])), &props))
            .expect("ok")
            .expect("upgrade");
        assert_eq!(
            next.to_json(),
            json!({"minReaderVersion": 3, "minWriterVersion": 7,
                   "readerFeatures": ["deletionVectors"],
                   "writerFeatures": ["appendOnly", "checkConstraints", "deletionVectors"]})
        );
    }
}
