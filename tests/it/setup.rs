//! `inlet setup notifications` and `teardown notifications` against moto: the queues, their
//! policies and the bucket entry made, used by a run, found in place the second time, and
//! removed, while another tool's entry on the same bucket survives throughout.

use serde_json::Value;

use crate::support::*;

fn queues(moto: &Moto) -> serde_json::Map<String, Value> {
    serde_json::from_str(&moto.sqs(&["queues"])).expect("queues JSON")
}

/// The access policy of queue `name`, as text.
fn queue_policy(moto: &Moto, name: &str) -> String {
    queues(moto)[name]["attributes"]["Policy"]
        .as_str()
        .expect("policy")
        .to_string()
}

/// A listing pipeline `id` over `source` (an `s3://` URL on this moto), `source_extra`
/// lines added to `[source]`, into a local table; `header` goes first.
fn pipeline(
    dir: &std::path::Path,
    moto: &Moto,
    header: &str,
    id: &str,
    source: &str,
    source_extra: &str,
) -> std::path::PathBuf {
    write_config(
        dir,
        &format!(
            "{header}pipeline_id = \"{id}\"\n[source]\nurl = \"{source}\"\n{source_extra}{}\n\
             [sink]\ntable = \"table\"\n[checkpoint]\nlocation = \"state\"\n",
            moto.storage_options()
        ),
    )
}

/// The ids of the bucket's queue entries, sorted.
fn entry_ids(moto: &Moto) -> Vec<String> {
    let got: Value =
        serde_json::from_str(&moto.sqs(&["bucket-notifications", "landing"])).expect("JSON");
    let mut ids: Vec<String> = got["QueueConfigurations"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|q| q["Id"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    ids.sort();
    ids
}

#[test]
fn setup_notifications_makes_a_working_pipeline_changes_nothing_twice_and_keeps_other_entries() {
    let moto = Moto::start();
    moto.s3(&["mkbucket", "landing"]);
    // Another tool's notification on the same bucket, for another prefix.
    let other = moto
        .sqs(&["mkqueue", "audit-events", "30"])
        .trim()
        .to_string();
    moto.sqs(&["notify", "landing", &other, "audit/", "audit-tool"]);

    let tmp = tempfile::tempdir().expect("tempdir");
    let config = pipeline(
        tmp.path(),
        &moto,
        "# the team's pipeline\n",
        "setup_test",
        "s3://landing/auto/",
        "path_glob = \"**/*.json\"\n",
    );
    let cfg = config.to_str().expect("utf8");
    let env = moto.env();

    // A dry run says what it would do and does nothing.
    let plan = run_ok(&["setup", "notifications", "-c", cfg, "--dry-run"], &env);
    for call in [
        "would call sqs:CreateQueue",
        "inlet-setup_test-dlq",
        "sqs:SetQueueAttributes",
        "s3:PutBucketNotificationConfiguration",
    ] {
        assert!(plan.contains(call), "{call} missing from:\n{plan}");
    }
    assert!(!queues(&moto).contains_key("inlet-setup_test"), "{plan}");
    assert_eq!(entry_ids(&moto), ["audit-tool"]);

    let done = run_ok(
        &["setup", "notifications", "-c", cfg, "--write-config"],
        &env,
    );
    assert!(done.contains("done       sqs:CreateQueue"), "{done}");
    let all = queues(&moto);
    let queue = &all["inlet-setup_test"];
    let dead = &all["inlet-setup_test-dlq"];
    let redrive: Value = serde_json::from_str(
        queue["attributes"]["RedrivePolicy"]
            .as_str()
            .expect("redrive"),
    )
    .expect("redrive JSON");
    assert_eq!(
        redrive["deadLetterTargetArn"],
        dead["attributes"]["QueueArn"]
    );
    let policy = queue["attributes"]["Policy"].as_str().expect("policy");
    assert!(
        policy.contains("arn:aws:s3:::landing") && policy.contains("sqs:SendMessage"),
        "{policy}"
    );
    assert_eq!(entry_ids(&moto), ["audit-tool", "inlet-setup_test"]);
    let written = std::fs::read_to_string(&config).expect("config");
    let url = queue["url"].as_str().expect("url");
    assert!(
        written.contains("discovery = \"notifications\"")
            && written.contains(&format!("queue_url = \"{url}\""))
            && written.starts_with("# the team's pipeline"),
        "{written}"
    );

    // The bucket now notifies the queue: a run takes the new files through SQS.
    for f in 0..3 {
        let body: String = (f * 5..f * 5 + 5)
            .map(|i| format!("{{\"id\": {i}}}\n"))
            .collect();
        moto.s3(&["put-text", "landing", &format!("auto/f-{f}.json"), &body]);
    }
    moto.s3(&["put-text", "landing", "auto/notes.txt", "not data"]);
    moto.s3(&["put-text", "landing", "audit/a.json", "{}"]);
    let out = drain(&config, &[], &env);
    assert!(out.contains("took 3 files"), "{out}");
    let mut ids = read_delta(&url_of(&tmp.path().join("table")), &Value::Null).ints("id");
    ids.sort_unstable();
    assert_eq!(ids, (0..15).collect::<Vec<i64>>());
    // The other tool's entry still delivers to its queue (beside S3's test events).
    let peek: Value = serde_json::from_str(&moto.sqs(&["peek", &other])).expect("peek JSON");
    assert!(
        peek["visible"]
            .as_array()
            .is_some_and(|m| m.iter().any(|m| m[0].as_str().is_some_and(|b| b
                .contains("\"configurationId\": \"audit-tool\"")
                && b.contains("a.json")))),
        "{peek}"
    );

    // Again: nothing to do.
    let again = run_ok(&["setup", "notifications", "-c", cfg], &env);
    assert!(again.contains("Nothing changed"), "{again}");
    assert!(!again.contains("done "), "{again}");

    // Tear-down removes inlet's entry and, asked to, the queues; the other entry stays.
    let gone = run_ok(
        &["teardown", "notifications", "-c", cfg, "--delete-queues"],
        &env,
    );
    assert!(gone.contains("sqs:DeleteQueue"), "{gone}");
    assert_eq!(entry_ids(&moto), ["audit-tool"]);
    let left = queues(&moto);
    assert!(
        !left.contains_key("inlet-setup_test") && !left.contains_key("inlet-setup_test-dlq"),
        "{left:?}"
    );
    assert!(left.contains_key("audit-events"));
    let twice = run_ok(
        &["teardown", "notifications", "-c", cfg, "--delete-queues"],
        &env,
    );
    assert!(twice.contains("Nothing changed"), "{twice}");
}

#[test]
fn setup_through_an_sns_topic_lets_the_topic_send_and_says_what_is_left_by_hand() {
    let moto = Moto::start();
    moto.s3(&["mkbucket", "landing"]);
    let topic = moto.sqs(&["mktopic", "landing-fanout"]).trim().to_string();
    let tmp = tempfile::tempdir().expect("tempdir");
    let config = pipeline(
        tmp.path(),
        &moto,
        "",
        "sns_test",
        "s3://landing/auto/",
        "path_glob = \"**/*.json\"\n",
    );
    let cfg = config.to_str().expect("utf8");
    let args = [
        "setup",
        "notifications",
        "-c",
        cfg,
        "--via",
        "sns",
        "--topic-arn",
        &topic,
    ];
    let out = run_ok(&args, &moto.env());
    assert!(
        out.contains("To do by hand: subscribe the queue to the topic")
            && out.contains(&format!("--topic-arn {topic}")),
        "{out}"
    );
    let got: Value =
        serde_json::from_str(&moto.sqs(&["bucket-notifications", "landing"])).expect("JSON");
    let topics = got["TopicConfigurations"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(topics.len(), 1, "{got}");
    assert_eq!(topics[0]["Id"], "inlet-sns_test");
    assert_eq!(topics[0]["TopicArn"], topic.as_str());
    assert!(
        got["QueueConfigurations"]
            .as_array()
            .is_none_or(|q| q.is_empty()),
        "{got}"
    );
    let policy = queue_policy(&moto, "inlet-sns_test");
    assert!(
        policy.contains("sns.amazonaws.com")
            && policy.contains(&topic)
            && !policy.contains("arn:aws:s3:::landing"),
        "{policy}"
    );
    // Again: in place.
    let again = run_ok(&args, &moto.env());
    assert!(again.contains("Nothing changed"), "{again}");
}

#[test]
fn moving_to_eventbridge_turns_its_delivery_on_and_removes_the_direct_entry() {
    let moto = Moto::start();
    moto.s3(&["mkbucket", "landing"]);
    let tmp = tempfile::tempdir().expect("tempdir");
    let config = pipeline(tmp.path(), &moto, "", "eb_test", "s3://landing/auto/", "");
    let cfg = config.to_str().expect("utf8");
    run_ok(&["setup", "notifications", "-c", cfg], &moto.env());
    assert_eq!(entry_ids(&moto), ["inlet-eb_test"]);
    let rule = "arn:aws:events:us-east-1:123456789012:rule/inlet-eb_test";
    let args = [
        "setup",
        "notifications",
        "-c",
        cfg,
        "--via",
        "eventbridge",
        "--rule-arn",
        rule,
    ];
    let out = run_ok(&args, &moto.env());
    assert!(
        out.contains("turn on EventBridge delivery and remove entry 'inlet-eb_test'")
            && out.contains("aws events put-rule --name inlet-eb_test"),
        "{out}"
    );
    // moto stores the (empty) EventBridgeConfiguration but leaves it out of its answers, so
    // that S3's side of the switch and a second run's "Nothing changed" cannot be seen here;
    // the direct entry's removal and the queue policy can.
    assert!(entry_ids(&moto).is_empty());
    let policy = queue_policy(&moto, "inlet-eb_test");
    assert!(
        policy.contains("events.amazonaws.com")
            && policy.contains(rule)
            && !policy.contains("s3.amazonaws.com"),
        "{policy}"
    );
}

#[test]
fn setup_names_what_is_at_fault() {
    let moto = Moto::start();
    let tmp = tempfile::tempdir().expect("tempdir");
    let config = pipeline(
        tmp.path(),
        &moto,
        "",
        "setup_bad",
        "s3://no-such-bucket/auto/",
        "",
    );
    let out = run_inlet(
        &[
            "setup",
            "notifications",
            "-c",
            config.to_str().expect("utf8"),
        ],
        &moto.env(),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("s3:GetBucketNotificationConfiguration on no-such-bucket failed")
            && stderr.contains("check the bucket name in source.url"),
        "{stderr}"
    );
    let local = local_config(tmp.path(), "");
    let out = run_inlet(
        &[
            "setup",
            "notifications",
            "-c",
            local.to_str().expect("utf8"),
        ],
        &[],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("notifications need an s3:// source"),
        "{stderr}"
    );
}
