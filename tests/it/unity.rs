//! `uc://catalog.schema.table` sinks (issue 9) against a loopback stand-in for Unity Catalog
//! (`unity_mock.py`) whose vended credentials are the only ones an S3 gate in front of
//! moto accepts, and only until they expire. inlet is given no other S3 credentials.

use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};

use serde_json::{json, Value};

use crate::support::*;

const TOKEN: &str = "dapi-test-token-5f1e9c";

/// The catalog stand-in, the S3 gate and moto behind it.
struct Unity {
    moto: Moto,
    child: Child,
    endpoint: String,
    gate: String,
    log: PathBuf,
    bucket: String,
}

impl Unity {
    fn start(dir: &Path, setup: Value) -> Self {
        let moto = Moto::start();
        let bucket = format!("lake-{}", rand_suffix());
        moto.s3(&["mkbucket", &bucket]);
        let log = dir.join("catalog-requests.jsonl");
        let port = moto.endpoint.rsplit(':').next().expect("port").to_string();
        let mut setup = setup;
        setup["token"] = json!(TOKEN);
        let text = setup.to_string().replace("BUCKET", &bucket);
        let mut child = python_bin()
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/unity_mock.py"))
            .args([port.as_str(), text.as_str(), log.to_str().expect("utf8")])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start unity_mock.py");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("ports");
        let ports: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(ports.len(), 2, "unity_mock.py printed {line:?}");
        Self {
            endpoint: format!("http://127.0.0.1:{}", ports[0]),
            gate: format!("http://127.0.0.1:{}", ports[1]),
            moto,
            child,
            log,
            bucket,
        }
    }

    /// A table description as the catalog returns it.
    fn table(name: &str, kind: &str, location: &str) -> Value {
        json!({"full_name": name, "table_id": format!("id-{name}"), "table_type": kind,
               "data_source_format": "DELTA", "storage_location": location})
    }

    fn requests(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("log line"))
            .collect()
    }

    fn calls(&self, method: &str, path_end: &str) -> Vec<Value> {
        self.requests()
            .into_iter()
            .filter(|r| {
                r["method"] == method && r["path"].as_str().is_some_and(|p| p.ends_with(path_end))
            })
            .collect()
    }

    fn refused_s3(&self) -> usize {
        self.requests()
            .iter()
            .filter(|r| r["s3"] == "refused")
            .count()
    }

    /// A local landing zone into `sink_table`, reaching S3 only through the gate.
    fn config(&self, dir: &Path, sink_table: &str, extra_sink: &str) -> PathBuf {
        write_config(
            dir,
            &format!(
                "pipeline_id = \"uc\"\n[source]\nurl = \"landing\"\n[sink]\ntable = \"{sink_table}\"\n{extra_sink}\n\
                 storage_options = {{ aws_endpoint = \"{}\", aws_allow_http = \"true\", aws_region = \"us-east-1\", conditional_put = \"etag\" }}\n\
                 [checkpoint]\nlocation = \"state\"\n[trigger]\ninterval_seconds = 1\n",
                self.gate
            ),
        )
    }

    /// A pipeline into `uc://main.sales.{table}`, created at `s3://<bucket>/tables/{table}`
    /// when the catalog has no such table.
    fn creating_config(&self, dir: &Path, table: &str) -> PathBuf {
        let location = format!("s3://{}/tables/{table}", self.bucket);
        self.config(
            dir,
            &format!("uc://main.sales.{table}"),
            &format!("create_table = true\nstorage_location = \"{location}\""),
        )
    }

    /// The only credentials inlet gets: the workspace and its token.
    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("DATABRICKS_HOST", self.endpoint.clone()),
            ("DATABRICKS_TOKEN", TOKEN.to_string()),
        ]
    }

    fn read(&self, prefix: &str) -> TableRead {
        read_delta(
            &format!("s3://{}/{prefix}", self.bucket),
            &self.moto.reader_options(),
        )
    }
}

impl Drop for Unity {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn env_refs<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    env.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

fn assert_no_token(outputs: &[&str]) {
    for out in outputs {
        assert!(
            !out.contains(TOKEN),
            "the token appears in inlet's output:\n{out}"
        );
        assert!(
            !out.contains("vended-secret-"),
            "a vended secret appears in inlet's output:\n{out}"
        );
        assert!(
            !out.contains("vended-session-"),
            "a vended session token appears in inlet's output:\n{out}"
        );
    }
}

#[test]
fn a_catalog_table_is_written_at_its_location_with_vended_credentials() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let unity = Unity::start(
        tmp.path(),
        json!({"tables": {"main.sales.events": Unity::table("main.sales.events", "EXTERNAL", "s3://BUCKET/tables/events")}}),
    );
    let mut landing = Landing::new(&tmp.path().join("landing"));
    landing.add_files(3, 40);
    let config = unity.config(tmp.path(), "uc://main.sales.events", "");
    let cfg = config.to_str().expect("utf8");
    let env = unity.env();
    let validate = run_ok(&["validate", "--config", cfg], &env_refs(&env));
    assert!(
        validate.contains("Unity Catalog table main.sales.events"),
        "{validate}"
    );
    let out = run_inlet(
        &[
            "run",
            "--config",
            cfg,
            "--available-now",
            "--log-format",
            "json",
        ],
        &env_refs(&env),
    );
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stderr}");
    assert_no_token(&[&validate, &stdout, &stderr]);

    let ids = unity.read("tables/events").ints("id");
    assert_eq!(ids, landing.ids.iter().copied().collect::<Vec<_>>());
    assert!(!unity.calls("GET", "/tables/main.sales.events").is_empty());
    let creds = unity.calls("POST", "/temporary-table-credentials");
    assert!(
        !creds.is_empty()
            && creds.iter().all(|c| c["body"]
                == json!({"table_id": "id-main.sales.events", "operation": "READ_WRITE"})),
        "{creds:?}"
    );
    assert_eq!(
        unity.refused_s3(),
        0,
        "every S3 request carried vended credentials"
    );
}

#[test]
fn a_new_table_is_created_registered_and_its_columns_follow_evolution() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let unity = Unity::start(tmp.path(), json!({"tables": {}}));
    let landing = tmp.path().join("landing");
    std::fs::create_dir_all(&landing).expect("mkdir");
    std::fs::write(
        landing.join("a.json"),
        "{\"id\":1,\"name\":\"x\"}\n{\"id\":2,\"name\":\"y\"}\n",
    )
    .expect("write");
    let config = unity.creating_config(tmp.path(), "new_events");
    let cfg = config.to_str().expect("utf8");
    let env = unity.env();
    run_ok(
        &["run", "--config", cfg, "--available-now"],
        &env_refs(&env),
    );

    let path_creds = unity.calls("POST", "/temporary-path-credentials");
    assert_eq!(path_creds[0]["body"]["operation"], "PATH_CREATE_TABLE");
    let created = unity.calls("POST", "/unity-catalog/tables");
    assert_eq!(created.len(), 1, "{created:?}");
    let create = &created[0]["body"];
    assert_eq!(
        (
            create["table_type"].as_str(),
            create["data_source_format"].as_str()
        ),
        (Some("EXTERNAL"), Some("DELTA"))
    );
    assert_eq!(
        create["storage_location"],
        format!("s3://{}/tables/new_events", unity.bucket)
    );
    let names = |cols: &Value| -> Vec<(String, String)> {
        cols.as_array()
            .expect("columns")
            .iter()
            .map(|c| {
                (
                    c["name"].as_str().unwrap_or_default().to_string(),
                    c["type_name"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect()
    };
    let rescued = ("_rescued_data".to_string(), "STRING".to_string());
    assert_eq!(
        names(&create["columns"]),
        vec![
            ("id".into(), "LONG".into()),
            ("name".into(), "STRING".into()),
            rescued.clone()
        ]
    );

    // A new column: the catalog gets the new column list.
    std::fs::write(
        landing.join("b.json"),
        "{\"id\":3,\"name\":\"z\",\"score\":1.5}\n",
    )
    .expect("write");
    run_ok(
        &["run", "--config", cfg, "--available-now"],
        &env_refs(&env),
    );
    let updates = unity.calls("PATCH", "/tables/main.sales.new_events");
    assert_eq!(updates.len(), 1, "{updates:?}");
    assert_eq!(
        names(&updates[0]["body"]["columns"]),
        vec![
            ("id".into(), "LONG".into()),
            ("name".into(), "STRING".into()),
            rescued,
            ("score".into(), "DOUBLE".into())
        ]
    );
    assert_eq!(unity.read("tables/new_events").ints("id"), vec![1, 2, 3]);
    assert_eq!(
        unity.calls("POST", "/unity-catalog/tables").len(),
        1,
        "registered once"
    );
}

#[test]
fn catalog_errors_name_the_privilege_the_table_and_what_to_do() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let unity = Unity::start(
        tmp.path(),
        json!({"tables": {"main.sales.managed": Unity::table("main.sales.managed", "MANAGED", "s3://BUCKET/__unitystorage/x")},
               "deny": {"main.sales.secret": "User does not have USE SCHEMA on Schema 'main.sales'."}}),
    );
    Landing::new(&tmp.path().join("landing")).add_files(1, 2);
    let env = unity.env();
    let error_of = |table: &str, env: &[(&'static str, &str)]| {
        let config = unity.config(tmp.path(), table, "");
        let out = try_drain(&config, &[], env);
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let denied = error_of("uc://main.sales.secret", &env_refs(&env));
    assert!(
        denied.contains("needs USE SCHEMA") && denied.contains("main.sales.secret"),
        "{denied}"
    );
    let missing = error_of("uc://main.sales.nothing", &env_refs(&env));
    assert!(
        missing.contains("no table main.sales.nothing") && missing.contains("create_table"),
        "{missing}"
    );
    let managed = error_of("uc://main.sales.managed", &env_refs(&env));
    assert!(
        managed.contains("MANAGED table") && managed.contains("EXTERNAL"),
        "{managed}"
    );
    let wrong_token = [
        ("DATABRICKS_HOST", unity.endpoint.as_str()),
        ("DATABRICKS_TOKEN", "dapi-expired"),
    ];
    let expired = error_of("uc://main.sales.nothing", &wrong_token);
    assert!(
        expired.contains("refused inlet's credentials") && expired.contains("expired"),
        "{expired}"
    );
    assert_no_token(&[&denied, &missing, &managed, &expired]);
    assert!(!expired.contains("dapi-expired"), "{expired}");
}

#[test]
fn credentials_expiring_mid_run_are_renewed_without_a_failed_batch() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let unity = Unity::start(
        tmp.path(),
        json!({"ttl_seconds": 4, "tables": {"main.sales.events": Unity::table("main.sales.events", "EXTERNAL", "s3://BUCKET/tables/events")}}),
    );
    let mut landing = Landing::new(&tmp.path().join("landing"));
    landing.add_files(1, 10);
    let config = unity.config(tmp.path(), "uc://main.sales.events", "");
    let env = unity.env();
    let run = Running::start(&config, &env_refs(&env), &["--log-format", "json"]);
    // Files keep landing for longer than two lifetimes of the credentials.
    for round in 0..5 {
        wait_for(60, "the files so far committed", Some(&run), || {
            committed(&config) == 1 + round * 2
        });
        landing.add_files(2, 10);
        std::thread::sleep(std::time::Duration::from_millis(2000));
    }
    wait_for(60, "every file committed", Some(&run), || {
        committed(&config) == 11
    });
    let log = run.stop();
    assert!(!log.contains("batch failed"), "{log}");
    assert_eq!(
        unity.refused_s3(),
        0,
        "no S3 request went out with expired credentials"
    );
    let renewals = unity.calls("POST", "/temporary-table-credentials").len();
    assert!(renewals >= 3, "credentials renewed {renewals} times");
    assert!(log.contains("renewed the table's credentials"), "{log}");
    assert_no_token(&[&log]);
    assert_eq!(
        unity.read("tables/events").ints("id"),
        landing.ids.iter().copied().collect::<Vec<_>>()
    );
}

#[test]
fn a_service_principal_signs_in_with_oauth_client_credentials() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let unity = Unity::start(
        tmp.path(),
        json!({"client_id": "sp-inlet", "client_secret": "sp-secret-77",
               "tables": {"main.sales.events": Unity::table("main.sales.events", "EXTERNAL", "s3://BUCKET/tables/events")}}),
    );
    let mut landing = Landing::new(&tmp.path().join("landing"));
    landing.add_files(2, 5);
    let config = unity.config(tmp.path(), "uc://main.sales.events", "");
    let env = [
        ("DATABRICKS_HOST", unity.endpoint.as_str()),
        ("DATABRICKS_CLIENT_ID", "sp-inlet"),
        ("DATABRICKS_CLIENT_SECRET", "sp-secret-77"),
    ];
    let out = try_drain(&config, &[], &env);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("sp-secret-77"), "{stderr}");
    assert_eq!(
        unity.calls("POST", "/oidc/v1/token").len(),
        1,
        "one access token for the run"
    );
    assert_eq!(
        unity.read("tables/events").ints("id"),
        landing.ids.iter().copied().collect::<Vec<_>>()
    );
}

#[test]
fn a_table_created_by_a_run_killed_before_registering_it_is_registered_by_the_next() {
    use std::os::unix::process::ExitStatusExt;
    let tmp = tempfile::tempdir().expect("tempdir");
    let unity = Unity::start(tmp.path(), json!({"tables": {}}));
    let mut landing = Landing::new(&tmp.path().join("landing"));
    landing.add_files(2, 5);
    let config = unity.creating_config(tmp.path(), "late");
    let cfg = config.to_str().expect("utf8");
    let env = unity.env();
    let out = run_inlet(
        &[
            "run",
            "--config",
            cfg,
            "--available-now",
            "--fault-point",
            "after-commit",
        ],
        &env_refs(&env),
    );
    assert_eq!(out.status.signal(), Some(9), "{out:?}");
    assert!(
        unity.calls("POST", "/unity-catalog/tables").is_empty(),
        "killed before registering"
    );
    run_ok(
        &["run", "--config", cfg, "--available-now"],
        &env_refs(&env),
    );
    assert_eq!(
        unity.calls("POST", "/unity-catalog/tables").len(),
        1,
        "registered by the next run"
    );
    assert_eq!(
        unity.read("tables/late").ints("id"),
        landing.ids.iter().copied().collect::<Vec<_>>()
    );
}
