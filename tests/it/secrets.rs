//! Credentials never appear in anything inlet prints: logs at debug level (text and JSON),
//! `validate`, the run summary, errors, `inlet files`/`schema`, and `/metrics`/`/healthz`.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::support::*;

#[test]
fn the_secret_given_appears_in_no_output() {
    let moto = Moto::start();
    moto.s3(&["mkbucket", "landing"]);
    moto.s3(&["mkbucket", "lake"]);
    moto.s3(&["put-text", "landing", "in/a.json", "{\"id\": 1}\n"]);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(7);
    let secret = format!("S3cr3t-{nanos:09}-do-not-print");
    let token = format!("T0ken-{nanos:09}-do-not-print");
    let tmp = tempfile::tempdir().expect("tempdir");
    let opts = format!(
        "storage_options = {{ aws_endpoint = \"{}\", aws_allow_http = \"true\", aws_region = \"us-east-1\", \
         aws_access_key_id = \"test\", aws_secret_access_key = \"${{INLET_TEST_SECRET}}\", aws_session_token = \"${{INLET_TEST_TOKEN}}\" }}",
        moto.endpoint
    );
    let body = |bucket: &str| {
        format!(
            "pipeline_id = \"secrets\"\n[source]\nurl = \"s3://landing/in/\"\n{opts}\n[sink]\ntable = \"s3://{bucket}/t\"\n{opts}\n\
             [checkpoint]\nlocation = \"state\"\n[trigger]\ninterval_seconds = 1\n"
        )
    };
    let config = write_config(tmp.path(), &body("lake"));
    let cfg = config.to_str().expect("utf8");
    let env = [
        ("INLET_TEST_SECRET", secret.as_str()),
        ("INLET_TEST_TOKEN", token.as_str()),
        ("AWS_SECRET_ACCESS_KEY", secret.as_str()),
        ("AWS_SESSION_TOKEN", token.as_str()),
        ("INLET_LOG", "debug"),
    ];
    let mut outputs: Vec<(String, String)> = Vec::new();
    let mut record = |what: &str, out: std::process::Output| {
        outputs.push((
            what.to_string(),
            format!(
                "{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        ));
        out
    };

    let out = record("validate", run_inlet(&["validate", "--config", cfg], &env));
    assert!(out.status.success(), "{outputs:?}");
    let out = record(
        "run",
        run_inlet(&["run", "--config", cfg, "--available-now", "--json"], &env),
    );
    assert!(out.status.success(), "{outputs:?}");
    record(
        "json logs",
        run_inlet(
            &[
                "--log-format",
                "json",
                "run",
                "--config",
                cfg,
                "--available-now",
            ],
            &env,
        ),
    );
    record("files", run_inlet(&["files", "--config", cfg], &env));
    record(
        "schema",
        run_inlet(&["schema", "--config", cfg, "show"], &env),
    );

    // Errors: a missing bucket, and a secret written into the file (named, not shown).
    let dir = |name: &str| {
        let d = tmp.path().join(name);
        std::fs::create_dir_all(&d).expect("mkdir");
        d
    };
    let missing = write_config(&dir("missing"), &body("no-such-bucket"));
    let out = record(
        "missing bucket",
        run_inlet(
            &["run", "--config", missing.to_str().expect("utf8"), "--once"],
            &env,
        ),
    );
    assert!(!out.status.success());
    let literal = write_config(
        &dir("literal"),
        &body("lake").replace("${INLET_TEST_SECRET}", &secret),
    );
    let out = record(
        "literal secret",
        run_inlet(
            &["validate", "--config", literal.to_str().expect("utf8")],
            &env,
        ),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("aws_secret_access_key = ***"),
        "{err}"
    );

    // A continuous run serving metrics.
    moto.s3(&["put-text", "landing", "in/b.json", "{\"id\": 2}\n"]);
    let port = free_port();
    let run = Running::start(
        &config,
        &env,
        &["--metrics-addr", &format!("127.0.0.1:{port}")],
    );
    let committed = || {
        let out = run_inlet(
            &["files", "--config", cfg, "--state", "committed", "--json"],
            &env,
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout)
            .ok()
            .and_then(|v| v.as_array().map(Vec::len))
            == Some(2)
    };
    wait_for(60, "the second file", Some(&run), committed);
    outputs.push(("metrics".into(), http_get(port, "/metrics").1));
    outputs.push(("healthz".into(), http_get(port, "/healthz").1));
    outputs.push(("continuous".into(), run.stop()));

    assert!(
        outputs.iter().any(|(_, text)| text.contains("DEBUG")),
        "debug logs were captured"
    );
    for (what, text) in &outputs {
        for needle in [&secret, &token] {
            assert!(
                !text.contains(needle.as_str()),
                "{what} printed a credential:\n{text}"
            );
        }
    }
}
