//! The deployment files under `deploy/`: the alert rules pass `promtool`, every inlet metric
//! the rules and the dashboard name is one inlet exports, and the Kubernetes manifests hold
//! what the docs promise (one replica, a volume for the checkpoint, probes on /livez and
//! /readyz), checked by `kubectl` too when it can reach an API server.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn deploy(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(file)
}

/// The `inlet_*` metric names in `text`, histogram series folded to their metric.
pub(crate) fn metric_names(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(at) = text[i..].find("inlet_") {
        let start = i + at;
        let boundary =
            start == 0 || !(bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
        let end = text[start..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .map_or(text.len(), |e| start + e);
        if boundary {
            let name = &text[start..end];
            let name = ["_bucket", "_count", "_sum"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .unwrap_or(name);
            out.insert(name.to_string());
        }
        i = end;
    }
    out
}

/// Every inlet metric the alert rules and the dashboard name.
pub(crate) fn monitored_metrics() -> BTreeSet<String> {
    let rules = std::fs::read_to_string(deploy("monitoring/alerts.yml")).expect("rules");
    let dashboard =
        std::fs::read_to_string(deploy("monitoring/dashboard.json")).expect("dashboard");
    let _: Value = serde_json::from_str(&dashboard).expect("the dashboard is JSON");
    let mut names = metric_names(&rules);
    names.extend(metric_names(&dashboard));
    names
}

#[test]
fn alert_rules_pass_promtool() {
    let Ok(out) = Command::new("promtool")
        .args(["check", "rules"])
        .arg(deploy("monitoring/alerts.yml"))
        .output()
    else {
        eprintln!("SKIPPED: promtool is not installed (scripts/setup-test-env.sh installs Debian's prometheus package as root)");
        return;
    };
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(monitored_metrics().len() >= 10, "{:?}", monitored_metrics());
}

#[test]
fn kubernetes_manifests_hold_one_runner_a_checkpoint_volume_and_both_probes() {
    let path = deploy("kubernetes/inlet.yaml");
    let text = python_ok(&["yaml-json", path.to_str().expect("utf8")]);
    let docs: Vec<Value> = serde_json::from_str(text.trim()).expect("json");
    let kinds: BTreeSet<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
    assert_eq!(
        kinds,
        BTreeSet::from(["ConfigMap", "Service", "StatefulSet"])
    );
    let set = docs
        .iter()
        .find(|d| d["kind"] == "StatefulSet")
        .expect("statefulset");
    assert_eq!(set["spec"]["replicas"], 1, "one runner per pipeline");
    let pod = &set["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/livez");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(
        set["spec"]["volumeClaimTemplates"][0]["metadata"]["name"],
        "checkpoint"
    );
    let mounts = container["volumeMounts"].as_array().expect("mounts");
    assert!(mounts
        .iter()
        .any(|m| m["name"] == "checkpoint" && m["mountPath"] == "/var/lib/inlet"));
    // The shipped pipeline config keeps its checkpoint on that volume, and parses.
    let map = docs
        .iter()
        .find(|d| d["kind"] == "ConfigMap")
        .expect("configmap");
    let toml = map["data"]["pipeline.toml"]
        .as_str()
        .expect("pipeline.toml");
    assert!(toml.contains("location = \"/var/lib/inlet/"), "{toml}");
    // The container's arguments are ones inlet accepts.
    let args: Vec<&str> = container["args"]
        .as_array()
        .expect("args")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let mut help = args.clone();
    help.push("--help");
    run_ok(&help, &[]);
    match Command::new("kubectl")
        .args(["apply", "--dry-run=client", "-f"])
        .arg(&path)
        .output()
    {
        Ok(out) if out.status.success() => {}
        Ok(out) => {
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                err.contains("connection refused") || err.contains("unable to recognize"),
                "kubectl refused the manifests: {err}"
            );
            eprintln!(
                "SKIPPED kubectl: no API server to validate against ({})",
                err.lines().last().unwrap_or("")
            );
        }
        Err(_) => eprintln!("SKIPPED kubectl: not installed"),
    }
}

use crate::support::*;
