//! Tables whose protocol lacks a feature their schema needs (an inlet before the protocol guard
//! could commit one): found by reading the log itself, and repaired by one protocol commit.

use std::collections::HashMap;

use bytes::Bytes;
use deltalake::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use deltalake::parquet::arrow::ProjectionMask;
use deltalake::{DeltaTableBuilder, ObjectStore, Path};
use futures::TryStreamExt;
use object_store::{ObjectStoreExt as _, PutMode, PutOptions, PutPayload};
use serde_json::{json, Value};
use url::Url;

use crate::protocol::{needed_features, upgrade_for, NeededFeature, ProtocolState};
use crate::SinkError;

/// The newest protocol and metadata of a table, read from its log without the kernel (which
/// refuses to load a table whose protocol misses a feature its schema uses).
#[derive(Debug, Clone)]
pub(crate) struct LogState {
    /// The newest commit's version.
    pub version: i64,
    pub protocol: ProtocolState,
    /// The `metaData` action's JSON.
    pub metadata: Value,
}

impl LogState {
    /// The features the schema and properties need that the protocol does not declare.
    pub fn missing(&self) -> Result<Vec<NeededFeature>, String> {
        let schema: Value = self
            .metadata
            .get("schemaString")
            .and_then(Value::as_str)
            .map(serde_json::from_str)
            .transpose()
            .map_err(|e| format!("metaData.schemaString is not JSON: {e}"))?
            .unwrap_or(Value::Null);
        let properties: HashMap<String, String> = self
            .metadata
            .get("configuration")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        Ok(needed_features(&schema, &properties)
            .into_iter()
            .filter(|n| !self.protocol.supports(n.name))
            .collect())
    }
}

/// The log entry file name of commit `v`.
pub(crate) fn commit_name(v: i64) -> String {
    format!("{v:020}.json")
}

/// The log entry of commit `v`, from the table's root.
pub(crate) fn commit_path(v: i64) -> Path {
    Path::from("_delta_log").join(commit_name(v))
}

/// The oldest JSON commit the log holds (`None` without a log): 0 unless log clean-up removed
/// older commits.
pub(crate) async fn oldest_commit(store: &dyn ObjectStore) -> Result<Option<i64>, String> {
    let listed: Vec<_> = store
        .list(Some(&Path::from("_delta_log")))
        .try_collect()
        .await
        .map_err(|e| format!("cannot list _delta_log: {e}"))?;
    Ok(listed
        .iter()
        .filter_map(|m| {
            m.location
                .filename()?
                .strip_suffix(".json")?
                .parse::<i64>()
                .ok()
        })
        .min())
}

/// Reads the newest `protocol` and `metaData` actions: from the newest JSON commits back to
/// the newest checkpoint, then from that checkpoint. `Ok(None)` when there is no log.
pub(crate) async fn log_state(store: &dyn ObjectStore) -> Result<Option<LogState>, String> {
    let log = Path::from("_delta_log");
    let listed: Vec<_> = store
        .list(Some(&log))
        .try_collect()
        .await
        .map_err(|e| format!("cannot list _delta_log: {e}"))?;
    let mut commits: Vec<i64> = Vec::new();
    let mut checkpoints: HashMap<i64, Vec<Path>> = HashMap::new();
    for meta in &listed {
        let Some(name) = meta.location.filename() else {
            continue;
        };
        let Some((digits, rest)) = name.split_once('.') else {
            continue;
        };
        let Ok(v) = digits.parse::<i64>() else {
            continue;
        };
        if rest == "json" {
            commits.push(v);
        } else if rest.starts_with("checkpoint") && rest.ends_with(".parquet") {
            checkpoints
                .entry(v)
                .or_default()
                .push(meta.location.clone());
        }
    }
    let Some(&latest) = commits.iter().max() else {
        return Ok(None);
    };
    let checkpoint = checkpoints.keys().copied().filter(|v| *v <= latest).max();
    commits.sort_unstable_by(|a, b| b.cmp(a));
    let (mut protocol, mut metadata) = (None, None);
    for v in commits
        .into_iter()
        .take_while(|v| checkpoint.is_none_or(|c| *v > c))
    {
        let read_err = |e: object_store::Error| format!("cannot read commit {v}: {e}");
        let bytes = store
            .get(&log.clone().join(commit_name(v)))
            .await
            .map_err(read_err)?
            .bytes()
            .await
            .map_err(read_err)?;
        take_actions(&bytes, &mut protocol, &mut metadata)
            .map_err(|e| format!("commit {v}: {e}"))?;
        if protocol.is_some() && metadata.is_some() {
            break;
        }
    }
    if protocol.is_none() || metadata.is_none() {
        if let Some(parts) = checkpoint.and_then(|c| checkpoints.get(&c)) {
            for part in parts {
                let bytes = store
                    .get(part)
                    .await
                    .map_err(|e| format!("cannot read checkpoint {part}: {e}"))?
                    .bytes()
                    .await
                    .map_err(|e| format!("cannot read checkpoint {part}: {e}"))?;
                checkpoint_actions(bytes, &mut protocol, &mut metadata)
                    .map_err(|e| format!("checkpoint {part}: {e}"))?;
            }
        }
    }
    match (protocol, metadata) {
        (Some(p), Some(metadata)) => Ok(Some(LogState {
            version: latest,
            protocol: ProtocolState::from_json(&p).map_err(|e| e.to_string())?,
            metadata,
        })),
        _ => Err("the log holds no protocol or no metaData action".into()),
    }
}

/// Keeps the first `protocol` and `metaData` of a JSON commit's lines not already found.
fn take_actions(
    bytes: &[u8],
    protocol: &mut Option<Value>,
    metadata: &mut Option<Value>,
) -> Result<(), String> {
    for line in bytes.split(|b| *b == b'\n') {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let mut action: Value = serde_json::from_slice(line).map_err(|e| e.to_string())?;
        if protocol.is_none() {
            *protocol = action.get_mut("protocol").map(Value::take);
        }
        if metadata.is_none() {
            *metadata = action.get_mut("metaData").map(Value::take);
        }
    }
    Ok(())
}

/// The `protocol` and `metaData` of a Parquet checkpoint (or one part of it).
fn checkpoint_actions(
    bytes: Bytes,
    protocol: &mut Option<Value>,
    metadata: &mut Option<Value>,
) -> Result<(), String> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(|e| e.to_string())?;
    let roots: Vec<usize> = builder
        .parquet_schema()
        .root_schema()
        .get_fields()
        .iter()
        .enumerate()
        .filter(|(_, f)| matches!(f.name(), "protocol" | "metaData"))
        .map(|(i, _)| i)
        .collect();
    let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
    let reader = builder
        .with_projection(mask)
        .build()
        .map_err(|e| e.to_string())?;
    for batch in reader {
        let batch = batch.map_err(|e| e.to_string())?;
        let mut writer = arrow::json::ArrayWriter::new(Vec::new());
        writer.write(&batch).map_err(|e| e.to_string())?;
        writer.finish().map_err(|e| e.to_string())?;
        let rows: Vec<Value> =
            serde_json::from_slice(&writer.into_inner()).map_err(|e| e.to_string())?;
        for mut row in rows {
            if protocol.is_none() {
                *protocol = row.get_mut("protocol").map(Value::take);
            }
            if metadata.is_none() {
                *metadata = row.get_mut("metaData").map(Value::take);
            }
        }
    }
    Ok(())
}

/// What [`repair_protocol`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RepairOutcome {
    /// The protocol already declares every feature the table needs.
    Healthy { version: i64 },
    /// A commit at `version` upgraded the protocol to `protocol`, adding `added`.
    Upgraded {
        version: i64,
        protocol: Value,
        added: Vec<NeededFeature>,
    },
}

/// Repairs a table whose protocol lacks features its schema or properties need: reads the
/// newest protocol and metadata from the log (the kernel cannot load such a table), and
/// commits the next version with only the upgraded `protocol` action (and commitInfo). The
/// commit is a create-if-absent write of the next log entry, so it never overwrites a
/// concurrent commit (then it fails and can be run again). No data file or row is touched.
pub async fn repair_protocol(
    url: &Url,
    storage_options: &HashMap<String, String>,
) -> Result<RepairOutcome, SinkError> {
    let open_err = |source| SinkError::Open {
        url: url.to_string(),
        source,
    };
    crate::storage::register();
    let table = DeltaTableBuilder::from_url(url.clone())
        .map_err(open_err)?
        .with_storage_options(storage_options.clone())
        .build()
        .map_err(open_err)?;
    let store = table.object_store();
    let not_readable = |detail: String| SinkError::Schema {
        url: url.to_string(),
        detail,
    };
    let state = log_state(store.as_ref())
        .await
        .map_err(not_readable)?
        .ok_or_else(|| SinkError::NotCreated {
            url: url.to_string(),
        })?;
    let missing = state.missing().map_err(not_readable)?;
    let Some(next) =
        upgrade_for(&state.protocol, &missing).map_err(|source| SinkError::Protocol {
            url: url.to_string(),
            source,
        })?
    else {
        return Ok(RepairOutcome::Healthy {
            version: state.version,
        });
    };
    let version = state.version + 1;
    let now = chrono_millis();
    let info = json!({"commitInfo": {
        "timestamp": now,
        "operation": "UPGRADE PROTOCOL",
        "operationParameters": {"newProtocol": next.to_json().to_string()},
        "isBlindAppend": true,
        "clientVersion": concat!("inlet-", env!("CARGO_PKG_VERSION")),
        "inlet.repair": "protocol",
        "inlet.addedFeatures": missing.iter().map(|n| format!("{} ({})", n.name, n.why)).collect::<Vec<_>>(),
    }});
    let body = format!("{info}\n{}\n", json!({ "protocol": next.to_json() }));
    store
        .put_opts(
            &commit_path(version),
            PutPayload::from(body.into_bytes()),
            PutOptions::from(PutMode::Create),
        )
        .await
        .map_err(|source| SinkError::Commit {
            url: url.to_string(),
            source: deltalake::DeltaTableError::ObjectStore { source },
        })?;
    Ok(RepairOutcome::Upgraded {
        version,
        protocol: next.to_json(),
        added: missing,
    })
}

fn chrono_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
