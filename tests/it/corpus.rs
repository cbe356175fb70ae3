//! The bad-input corpus (issue 8): inputs that break naive readers. Each must end as rows, a
//! bad record or `_rescued_data` with a reason, never a crash, a hang, or an allocation
//! out of proportion to the input; and the good rows beside them land once.

use std::io::Write as _;
use std::path::Path;

use serde_json::{json, Value};

use crate::support::*;

/// What an input must come to besides its rows.
#[derive(Clone, Copy, PartialEq)]
enum Expect {
    /// Rows only.
    Clean,
    /// Rows, and at least one bad record naming a line of the file.
    BadLines,
    /// The file cannot be read at all: recorded `failed` with its reason, and a bad record
    /// for the whole file.
    Failed,
    /// The file cannot be addressed: recorded `skipped` with the reason.
    Skipped,
}
use Expect::*;

/// One input: file name, bytes, and the ids of the rows it must give.
struct Input {
    name: String,
    bytes: Vec<u8>,
    ids: Vec<i64>,
    expect: Expect,
}

fn input(name: &str, bytes: impl Into<Vec<u8>>, ids: &[i64], expect: Expect) -> Input {
    Input {
        name: name.into(),
        bytes: bytes.into(),
        ids: ids.to_vec(),
        expect,
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).expect("gzip");
    enc.finish().expect("gzip")
}

const BIG: usize = 50 * 1024 * 1024;

fn corpus() -> Vec<Input> {
    let mut invalid_utf8 = b"{\"id\":10}\n{\"id\":11,\"s\":\"".to_vec();
    invalid_utf8.extend_from_slice(&[0xff, 0xfe, 0xc3]);
    invalid_utf8.extend_from_slice(b"\"}\n{\"id\":12}\n");

    let deep = format!(
        "{{\"id\":51,\"n\":{}1{}}}\n",
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let deep_objects = format!(
        "{{\"id\":52,\"n\":{}1{}}}\n",
        "{\"a\":".repeat(10_000),
        "}".repeat(10_000)
    );

    let mut big_value = String::with_capacity(BIG + 64);
    big_value.push_str("{\"id\":40,\"big\":\"");
    big_value.push_str(&"x".repeat(BIG));
    big_value.push_str("\"}\n{\"id\":41}\n");
    let mut big_garbage = vec![b'!'; BIG];
    big_garbage.extend_from_slice(b"\n{\"id\":42}\n");

    // Deterministic binary garbage, some of it newlines.
    let mut rng = Rng(99);
    let garbage: Vec<u8> = (0..100_000).map(|_| rng.below(256) as u8).collect();

    vec![
        input("utf8-invalid.json", invalid_utf8, &[10, 12], BadLines),
        input("bom.json", b"\xEF\xBB\xBF{\"id\":20}\n{\"id\":21}\n".to_vec(), &[20, 21], Clean),
        input("crlf.json", b"{\"id\":30}\r\n{\"id\":31}\r\n\r\n".to_vec(), &[30, 31], Clean),
        input("big-value.json", big_value, &[40, 41], Clean),
        input("big-garbage.json", big_garbage, &[42], BadLines),
        input("deep-arrays.json", deep, &[], BadLines),
        input("deep-objects.json", deep_objects, &[], BadLines),
        input("dup-keys.json", b"{\"id\":60,\"a\":1,\"a\":2}\n".to_vec(), &[60], Clean),
        input("nan.json", b"{\"id\":70,\"x\":NaN}\n{\"id\":71,\"x\":Infinity}\n{\"id\":72,\"x\":1.5}\n".to_vec(), &[72], BadLines),
        input("huge-int.json", b"{\"id\":80,\"h\":123456789012345678901234567890}\n{\"id\":81,\"h\":-99999999999999999999}\n".to_vec(), &[80, 81], Clean),
        input("empty.json", Vec::new(), &[], Clean),
        input("zero-byte.json.gz", Vec::new(), &[], Clean),
        input("gzip-of-nothing.json.gz", gzip(b""), &[], Clean),
        input("garbage.json", garbage, &[], BadLines),
        input("not-gzip.json.gz", b"this is not gzip at all\n".to_vec(), &[], Failed),
        input("key with spaces.json", b"{\"id\":90}\n".to_vec(), &[90], Clean),
        input("a+b=c&d.json", b"{\"id\":91}\n".to_vec(), &[91], Clean),
        input("données-é-日本.json", b"{\"id\":92}\n".to_vec(), &[92], Clean),
        input("v1..2.json", b"{\"id\":93}\n".to_vec(), &[93], Clean),
        // A top-level array of objects is a row per object, as Spark and Auto Loader read it.
        input("top-level-array.json", b"[{\"id\":100}]\n\"just a string\"\n42\nnull\n{\"id\":101}\n".to_vec(), &[100, 101], BadLines),
        input("unterminated.json", b"{\"id\":110}\n{\"id\":111,\"s\":\"no end".to_vec(), &[110], BadLines),
    ]
}

/// The largest `raw` a bad record may carry: a 50 MB line is named, not copied.
const RAW_LIMIT: usize = 1 << 20;

/// Checks every input's outcome, then reports the corpus's figures as campaign `name`.
fn check_outcome(name: &str, inputs: &[Input], ids: &[i64], bad: &[Value], files: &[Value]) {
    let mut expected: Vec<i64> = inputs.iter().flat_map(|i| i.ids.iter().copied()).collect();
    expected.sort_unstable();
    assert_eq!(ids, expected, "rows of the corpus");
    assert_eq!(files.len(), inputs.len(), "every input recorded: {files:?}");
    for i in inputs {
        let name_of = |v: &Value, key: &str| {
            v[key]
                .as_str()
                .is_some_and(|f| f.ends_with(&format!("/{}", i.name)))
        };
        let file = files
            .iter()
            .find(|f| name_of(f, "path"))
            .unwrap_or_else(|| panic!("{} not recorded", i.name));
        let named: Vec<&Value> = bad.iter().filter(|b| name_of(b, "file")).collect();
        assert!(
            named
                .iter()
                .all(|b| b["error"].as_str().is_some_and(|e| !e.is_empty())),
            "{named:?}"
        );
        match i.expect {
            Clean => assert!(
                file["state"] == "committed" && named.is_empty(),
                "{}: {file} {named:?}",
                i.name
            ),
            BadLines => {
                assert_eq!(file["state"], "committed", "{}", i.name);
                assert!(
                    named.iter().any(|b| b["line"].is_u64()),
                    "no bad record names a line of {}",
                    i.name
                );
            }
            Skipped => {
                assert_eq!(file["state"], "skipped", "{}", i.name);
                assert!(
                    file["error"]
                        .as_str()
                        .is_some_and(|e| e.contains("'..' or empty path segment")),
                    "{file}"
                );
            }
            Failed => {
                assert_eq!(file["state"], "failed", "{}", i.name);
                assert!(
                    file["error"].as_str().is_some_and(|e| e.contains(&i.name)),
                    "{file}"
                );
                assert!(
                    named.iter().any(|b| b["line"].is_null()),
                    "no bad record for the whole of {}",
                    i.name
                );
            }
        }
    }
    for b in bad {
        let raw = b["raw"].as_str().map_or(0, str::len);
        assert!(
            raw <= RAW_LIMIT,
            "a bad record carries {raw} bytes of raw text: {}",
            b["file"]
        );
    }
    let count = |e: Expect| inputs.iter().filter(|i| i.expect == e).count();
    report_campaign(
        name,
        json!({"inputs": inputs.len(), "clean": count(Clean), "with_bad_lines": count(BadLines),
               "failed_files": count(Failed), "skipped_keys": count(Skipped), "rows": ids.len(),
               "bad_records": bad.len(), "crashes": 0}),
    );
}

fn write_corpus(dir: &Path, inputs: &[Input]) {
    std::fs::create_dir_all(dir).expect("mkdir");
    for i in inputs {
        std::fs::write(dir.join(&i.name), &i.bytes).expect("write input");
    }
}

#[test]
fn bad_input_corpus_local() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let inputs = corpus();
    write_corpus(&tmp.path().join("landing"), &inputs);
    let config = local_config(tmp.path(), "max_files_per_batch = 5");
    let out = try_drain(&config, &["--json"], &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let ids = read_delta(&url_of(&tmp.path().join("table")), &json!({})).ints("id");
    let bad = bad_records_under(&tmp.path().join("state/bad_records"));
    check_outcome("bad-input-local", &inputs, &ids, &bad, &files_json(&config));
}

/// The corpus on S3 (moto), with keys with spaces, `+`, `&`, `=`, unicode, `..` inside a
/// segment, and whole `.`, `..` and empty segments.
#[test]
fn bad_input_corpus_s3_with_odd_keys() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let moto = Moto::start();
    let bucket = format!("corpus-{}", rand_suffix());
    moto.s3(&["mkbucket", &bucket]);
    let mut inputs: Vec<Input> = corpus()
        .into_iter()
        .filter(|i| i.bytes.len() < 1_000_000)
        .collect();
    inputs.push(input(
        "sub/v1../up.json",
        b"{\"id\":200}\n".to_vec(),
        &[200],
        Clean,
    ));
    // Keys S3 allows and object_store cannot address: listed, recorded as skipped with
    // the reason, and the keys around them (before and after, in the same page) still taken.
    inputs.push(input(
        "sub/../up.json",
        b"{\"id\":201}\n".to_vec(),
        &[],
        Skipped,
    ));
    inputs.push(input(
        "./dot.json",
        b"{\"id\":202}\n".to_vec(),
        &[],
        Skipped,
    ));
    inputs.push(input(
        "double//slash.json",
        b"{\"id\":203}\n".to_vec(),
        &[],
        Skipped,
    ));
    let staging = tmp.path().join("staging");
    std::fs::create_dir_all(&staging).expect("mkdir");
    for (n, i) in inputs.iter().enumerate() {
        let file = staging.join(n.to_string());
        std::fs::write(&file, &i.bytes).expect("write");
        moto.s3(&[
            "put",
            &bucket,
            &format!("landing/{}", i.name),
            file.to_str().expect("utf8"),
        ]);
    }
    let config = write_config(
        tmp.path(),
        &format!(
            "pipeline_id = \"corpus\"\n[source]\nurl = \"s3://{bucket}/landing/\"\n{}\n[sink]\ntable = \"table\"\n[checkpoint]\nlocation = \"state\"\n",
            moto.storage_options()
        ),
    );
    let out = try_drain(&config, &[], &moto.env());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let ids = read_delta(&url_of(&tmp.path().join("table")), &json!({})).ints("id");
    let bad = bad_records_under(&tmp.path().join("state/bad_records"));
    check_outcome("bad-input-s3", &inputs, &ids, &bad, &files_json(&config));
}

/// A notification for a key object_store cannot address is recorded as skipped with the
/// reason and its message deleted, not left to come back forever.
#[test]
fn a_notified_key_with_a_dot_dot_segment_is_skipped_and_acknowledged() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let notified = crate::notify::Notified::start(30);
    notified.put("auto/in/../odd.json", "{\"id\":1}\n");
    notified.put("auto/fine.json", "{\"id\":2}\n");
    let config = notified.config(tmp.path(), "include_existing_files = false");
    let cfg = config.to_str().expect("utf8");
    run_ok(
        &["run", "--config", cfg, "--available-now"],
        &notified.env(),
    );
    let ids = read_delta(&url_of(&tmp.path().join("table")), &json!({})).ints("id");
    assert_eq!(ids, vec![2]);
    let skipped = files_in_state(&config, "skipped");
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    assert!(
        skipped[0]["path"]
            .as_str()
            .is_some_and(|p| p.ends_with("auto/in/../odd.json")),
        "{skipped:?}"
    );
    assert_eq!(notified.messages(), 0, "every message is settled");
}
