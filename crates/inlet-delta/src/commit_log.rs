//! One commit's actions read straight from the log, without the kernel: the `txn` of the
//! commits after a known version, and whether commits were blind appends only.

use deltalake::logstore::LogStore;
use serde_json::{Map, Value};

/// The actions of commit `version`, one JSON object per line of its log entry. With
/// `naming`, only lines that hold that name in quotes are parsed (a commit's adds can be
/// many); the others are left out. `None` when the commit is missing or cannot be read, or
/// a parsed line is not a JSON object.
pub(crate) async fn commit_actions(
    log: &dyn LogStore,
    version: u64,
    naming: Option<&str>,
) -> Option<Vec<Map<String, Value>>> {
    let bytes = log.read_commit_entry(version).await.ok()??;
    let quoted = naming.map(|n| format!("\"{n}\""));
    let mut actions = Vec::new();
    for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        if let Some(quoted) = &quoted {
            if !line.windows(quoted.len()).any(|w| w == quoted.as_bytes()) {
                continue;
            }
        }
        match serde_json::from_slice(line).ok()? {
            Value::Object(action) => actions.push(action),
            _ => return None,
        }
    }
    Some(actions)
}
