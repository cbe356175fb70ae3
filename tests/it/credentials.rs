//! One AWS credential chain for S3 reads, Delta writes and SQS: a profile from temporary
//! shared config files, credentials that expire during a continuous run, and AssumeRole,
//! each checked by a proxy in front of moto that refuses keys it was not told about.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::support::*;

/// moto behind a key-checking proxy (`KEYS_FILE`), with a landing and a lake bucket.
struct Checked {
    moto: Moto,
    proxy: FaultProxy,
    keys: PathBuf,
}

impl Checked {
    fn start(dir: &Path, allowed: &str) -> Self {
        let moto = Moto::start();
        moto.s3(&["mkbucket", "landing"]);
        moto.s3(&["mkbucket", "lake"]);
        let keys = dir.join("keys");
        std::fs::write(&keys, allowed).expect("keys file");
        let proxy = FaultProxy::start_with(
            &moto.endpoint,
            dir,
            0.0,
            1,
            0.0,
            &[("KEYS_FILE", keys.to_str().expect("utf8"))],
        );
        Self { moto, proxy, keys }
    }

    /// storage_options through the proxy, with no region and no keys: both come from the
    /// chain.
    fn options(&self) -> String {
        format!(
            "storage_options = {{ aws_endpoint = \"{}\", aws_allow_http = \"true\" }}",
            self.proxy.endpoint
        )
    }

    fn put(&self, key: &str, ids: std::ops::Range<u32>) {
        let body: String = ids.map(|i| format!("{{\"id\": {i}}}\n")).collect();
        self.moto.s3(&["put-text", "landing", key, &body]);
    }

    /// Requests the proxy let through, by service and access key.
    fn keys_used(&self) -> Value {
        self.proxy.stats()["keys"].clone()
    }

    fn rejected(&self) -> (u64, u64) {
        let stats = self.proxy.stats();
        let n = |k: &str| stats["rejected"][k].as_u64().unwrap_or(0);
        (n("unknown"), n("expired"))
    }

    fn table_ids(&self) -> Vec<i64> {
        let mut ids = read_delta("s3://lake/tables/events", &self.moto.reader_options()).ints("id");
        ids.sort_unstable();
        ids
    }
}

/// Shared config and credentials files with one profile, `inlet-test`, in `region`.
fn aws_files(dir: &Path, credentials: &str) -> Vec<(&'static str, String)> {
    let config = dir.join("aws-config");
    let creds = dir.join("aws-credentials");
    std::fs::write(&config, "[profile inlet-test]\nregion = us-east-1\n").expect("config");
    std::fs::write(&creds, format!("[inlet-test]\n{credentials}\n")).expect("credentials");
    vec![
        (
            "AWS_CONFIG_FILE",
            config.to_str().expect("utf8").to_string(),
        ),
        (
            "AWS_SHARED_CREDENTIALS_FILE",
            creds.to_str().expect("utf8").to_string(),
        ),
        ("AWS_PROFILE", "inlet-test".to_string()),
    ]
}

fn borrowed<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    env.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

#[test]
fn a_profile_in_shared_files_signs_s3_reads_delta_writes_and_sqs() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let aws = Checked::start(tmp.path(), "AKIDPROFILE 0\n");
    let queue = aws
        .moto
        .sqs(&["mkqueue", "landing-events", "30"])
        .trim()
        .to_string();
    aws.moto.sqs(&["notify", "landing", &queue, "auto/"]);
    let through_proxy = queue.replace(&aws.moto.endpoint, &aws.proxy.endpoint);
    assert_ne!(
        through_proxy, queue,
        "queue URL {queue} names moto's endpoint"
    );
    for f in 0..3 {
        aws.put(&format!("auto/f-{f}.json"), f * 10..f * 10 + 10);
    }
    let options = aws.options();
    let config = write_config(
        tmp.path(),
        &format!(
            "pipeline_id = \"profile_test\"\n[source]\nurl = \"s3://landing/auto/\"\n\
             discovery = \"notifications\"\nqueue_url = \"{through_proxy}\"\nqueue_wait = \"1s\"\n\
             max_batch_wait = \"1s\"\npath_glob = \"**/*.json\"\n{options}\n\
             [sink]\ntable = \"s3://lake/tables/events\"\n{options}\n[checkpoint]\nlocation = \"state\"\n"
        ),
    );
    let env = aws_files(
        tmp.path(),
        "aws_access_key_id = AKIDPROFILE\naws_secret_access_key = profile-secret",
    );
    let out = drain(&config, &[], &borrowed(&env));
    assert!(out.contains("took 3 files"), "{out}");
    assert_eq!(aws.table_ids(), (0..30).collect::<Vec<i64>>());

    // Every request was signed with the profile's key, S3 and SQS alike; none refused.
    let used = aws.keys_used();
    for service in ["s3", "sqs"] {
        let keys: Vec<&String> = used[service]
            .as_object()
            .unwrap_or_else(|| panic!("no {service} request reached the proxy: {used}"))
            .keys()
            .collect();
        assert_eq!(keys, ["AKIDPROFILE"], "{service}: {used}");
    }
    assert_eq!(aws.rejected(), (0, 0));

    // A profile that does not exist: the error names it and says where inlet looked.
    std::fs::create_dir_all(tmp.path().join("bad")).expect("mkdir");
    let bad = write_config(
        &tmp.path().join("bad"),
        &format!(
            "pipeline_id = \"profile_test\"\n[source]\nurl = \"s3://landing/auto/\"\npath_glob = \"**/*.json\"\n{options}\n\
             [sink]\ntable = \"s3://lake/tables/other\"\n{options}\n[checkpoint]\nlocation = \"state\"\n\
             [aws]\nprofile = \"nobody\"\n"
        ),
    );
    let out = try_drain(&bad, &[], &borrowed(&env));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("no usable AWS credentials (profile 'nobody')")
            && stderr.contains("AWS_PROFILE"),
        "{stderr}"
    );
    assert_eq!(
        aws.rejected(),
        (0, 0),
        "no request was sent unsigned or misigned"
    );
}

#[test]
fn credentials_that_expire_during_a_continuous_run_are_renewed_before_they_lapse() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let aws = Checked::start(tmp.path(), "");
    // Each call of the process issues a new key that lives 12 seconds.
    let process = format!(
        "credential_process = {} {} {} 12",
        std::env::var("INLET_TEST_PYTHON").unwrap_or_else(|_| "python3".into()),
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/it/issue_credentials.py")
            .display(),
        aws.keys.display()
    );
    let env = aws_files(tmp.path(), &process);
    let options = aws.options();
    let config = write_config(
        tmp.path(),
        &format!(
            "pipeline_id = \"expiry_test\"\n[source]\nurl = \"s3://landing/auto/\"\npath_glob = \"**/*.json\"\n{options}\n\
             [sink]\ntable = \"s3://lake/tables/events\"\n{options}\n[checkpoint]\nlocation = \"state\"\n\
             [trigger]\ninterval_seconds = 1\n"
        ),
    );
    let issued = || {
        std::fs::read_to_string(&aws.keys)
            .unwrap_or_default()
            .lines()
            .count()
    };
    let run = Running::start(&config, &borrowed(&env), &[]);
    // Files keep arriving until the run has been through four keys (three renewals).
    let mut files = 0;
    while issued() < 4 || files < 3 {
        aws.put(
            &format!("auto/f-{files:03}.json"),
            files * 10..files * 10 + 10,
        );
        files += 1;
        wait_for(60, "the file to be committed", Some(&run), || {
            committed(&config) == files as usize
        });
        assert!(files < 200, "only {} keys issued", issued());
    }
    run.stop();
    assert_eq!(
        aws.table_ids(),
        (0..files as i64 * 10).collect::<Vec<i64>>()
    );
    assert_eq!(
        aws.rejected(),
        (0, 0),
        "no request went out with an expired or unknown key: {}",
        aws.proxy.stats()
    );
    let used = aws.keys_used()["s3"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    assert!(used.len() >= 4, "S3 was signed with each new key: {used:?}");
    // Renewed ahead of expiry (half of a 12 s life here), not when the key has lapsed: no
    // request went out with a key about to expire.
    let least = aws.proxy.stats()["min_seconds_left"]
        .as_f64()
        .expect("requests with expiring keys");
    assert!(
        least > 2.0,
        "a request was signed {least:.1} s before its key expired"
    );
}

#[test]
fn assume_role_arn_signs_s3_with_the_role_and_sts_with_the_base_credentials() {
    let tmp = tempfile::tempdir().expect("tempdir");
    // moto's assumed-role keys start with ASIA.
    let aws = Checked::start(tmp.path(), "AKIDBASE 0\nASIA* 0\n");
    aws.put("auto/f-0.json", 0..10);
    let options = aws.options();
    let config = write_config(
        tmp.path(),
        &format!(
            "pipeline_id = \"role_test\"\n[source]\nurl = \"s3://landing/auto/\"\npath_glob = \"**/*.json\"\n{options}\n\
             [sink]\ntable = \"s3://lake/tables/events\"\n{options}\n[checkpoint]\nlocation = \"state\"\n\
             [aws]\nregion = \"us-east-1\"\nassume_role_arn = \"arn:aws:iam::123456789012:role/inlet-writer\"\n"
        ),
    );
    let sts = aws.proxy.endpoint.clone();
    let env = [
        ("AWS_ACCESS_KEY_ID", "AKIDBASE"),
        ("AWS_SECRET_ACCESS_KEY", "base-secret"),
        ("AWS_ENDPOINT_URL_STS", sts.as_str()),
    ];
    let out = drain(&config, &[], &env);
    assert!(out.contains("took 1 file "), "{out}");
    assert_eq!(aws.table_ids(), (0..10).collect::<Vec<i64>>());
    let used = aws.keys_used();
    let keys = |service: &str| -> Vec<String> {
        used[service]
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    };
    assert_eq!(keys("sts"), ["AKIDBASE"], "{used}");
    let s3 = keys("s3");
    assert!(
        !s3.is_empty() && s3.iter().all(|k| k.starts_with("ASIA")),
        "S3 requests are signed by the role only: {used}"
    );
    assert_eq!(
        s3.len(),
        1,
        "one assumed session serves the whole run: {used}"
    );
    assert_eq!(aws.rejected(), (0, 0));
}
