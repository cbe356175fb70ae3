//! Formats and source options, one user-visible result each: CSV, Parquet, Avro, compression,
//! partition columns, `max_file_age`, `allow_overwrites`, and `clean_source` (local and S3).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, SystemTime};

use serde_json::{json, Value};

use crate::support::*;

fn write(path: &Path, data: impl AsRef<[u8]>) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, data).expect("write");
}

fn local_table(dir: &Path) -> TableRead {
    read_delta(&url_of(&dir.join("table")), &json!({}))
}

/// The table's rows by their integer `id`.
fn by_id(t: &TableRead) -> BTreeMap<i64, Value> {
    t.rows
        .iter()
        .map(|r| (r["id"].as_i64().expect("id"), r.clone()))
        .collect()
}

#[test]
fn csv_with_a_quoted_multi_line_field_and_a_malformed_row() {
    let tmp = tempfile::tempdir().expect("tempdir");
    write(
        &tmp.path().join("landing/people.csv"),
        "id,name,note,joined\n\
         1,alice,\"line one\nline two\",2026-01-02\n\
         2,bob,\"says \"\"hi\"\", twice\",2026-02-03\n\
         3,carol\n\
         4,dave,NA,2026-03-04\n",
    );
    let config = local_config(
        tmp.path(),
        "format = \"csv\"\n[source.csv]\nnull_value = \"NA\"",
    );
    let out = drain(&config, &[], &[]);
    assert!(
        out.contains("took 1 file") && out.contains("3 rows"),
        "{out}"
    );

    let rows = by_id(&local_table(tmp.path()));
    assert_eq!(rows.keys().copied().collect::<Vec<_>>(), vec![1, 2, 4]);
    assert_eq!(rows[&1]["note"], "line one\nline two");
    assert_eq!(rows[&2]["note"], "says \"hi\", twice");
    assert_eq!(
        rows[&4]["note"],
        Value::Null,
        "the null marker reads as null"
    );
    assert_eq!(rows[&4]["joined"], "2026-03-04");

    let bad = bad_records_under(&tmp.path().join("state/bad_records"));
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert_eq!(
        (bad[0]["line"].as_i64(), bad[0]["raw"].as_str()),
        (Some(5), Some("3,carol"))
    );
    let error = bad[0]["error"].as_str().expect("error");
    assert!(
        error.contains("2 field(s) where the header has 4"),
        "{error}"
    );

    // Without a header, columns are positional; the delimiter is an option.
    let other = tmp.path().join("headerless");
    write(&other.join("landing/a.txt"), "7;x\n8;y\n");
    let config = local_config(
        &other,
        "format = \"csv\"\n[source.csv]\nheader = false\ndelimiter = \";\"",
    );
    drain(&config, &[], &[]);
    let t = local_table(&other);
    let mut got: Vec<(i64, String)> = t
        .rows
        .iter()
        .map(|r| {
            (
                r["_c0"].as_i64().expect("_c0"),
                r["_c1"].as_str().expect("_c1").to_string(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(got, vec![(7, "x".to_string()), (8, "y".to_string())]);
}

#[test]
fn parquet_files_with_differing_columns_are_merged_and_evolve() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let landing = tmp.path().join("landing");
    std::fs::create_dir_all(&landing).expect("mkdir");
    let parquet = |name: &str, rows: Value| {
        python_ok(&[
            "write-parquet",
            landing.join(name).to_str().expect("utf8"),
            &rows.to_string(),
        ]);
    };
    parquet(
        "a.parquet",
        json!([{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]),
    );
    parquet("b.parquet", json!([{"id": 3, "score": 1.5}]));
    let config = local_config(tmp.path(), "format = \"parquet\"");
    let out = drain(&config, &[], &[]);
    assert!(out.contains("took 2 files"), "{out}");
    let rows = by_id(&local_table(tmp.path()));
    assert_eq!(rows.keys().copied().collect::<Vec<_>>(), vec![1, 2, 3]);
    assert_eq!(
        (rows[&1]["name"].as_str(), rows[&1]["score"].as_f64()),
        (Some("a"), None)
    );
    assert_eq!(
        (rows[&3]["name"].as_str(), rows[&3]["score"].as_f64()),
        (None, Some(1.5))
    );

    // A later file adds a column; another has a value the column's type cannot hold.
    parquet("c.parquet", json!([{"id": 4, "name": "d", "flag": true}]));
    parquet("d.parquet", json!([{"id": 5, "score": "high"}]));
    let out = drain(&config, &[], &[]);
    assert!(out.contains("Schema evolved: added flag BOOLEAN"), "{out}");
    let rows = by_id(&local_table(tmp.path()));
    assert_eq!(rows[&4]["flag"], true);
    assert_eq!(rows[&1]["flag"], Value::Null);
    assert_eq!(rows[&5]["score"], Value::Null);
    let rescued: Value =
        serde_json::from_str(rows[&5]["_rescued_data"].as_str().expect("rescued")).expect("json");
    assert_eq!(rescued["score"], "high");
    assert!(
        rescued["_file_path"]
            .as_str()
            .is_some_and(|p| p.ends_with("/landing/d.parquet")),
        "{rescued}"
    );
}

/// Avro container files written by fastavro (no code shared with inlet), in two codecs and
/// two schema versions: nested records, arrays, maps, logical types and unions land as the
/// Delta types an outside reader expects; a file cut short is recorded failed, not half read.
#[test]
fn avro_files_in_two_codecs_and_two_schema_versions() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let landing = tmp.path().join("landing");
    std::fs::create_dir_all(&landing).expect("mkdir");
    let avro = |name: &str, codec: &str, schema: &Value, rows: Value| {
        python_ok(&[
            "write-avro",
            landing.join(name).to_str().expect("utf8"),
            codec,
            &schema.to_string(),
            &rows.to_string(),
        ]);
    };
    let user = |extra: Value| {
        let mut fields = vec![
            json!({"name": "name", "type": "string"}),
            json!({"name": "tags", "type": {"type": "array", "items": "string"}}),
        ];
        fields.extend(extra.as_array().cloned().unwrap_or_default());
        json!({"type": "record", "name": "User", "fields": fields})
    };
    let common = |user: Value| {
        vec![
            json!({"name": "id", "type": "long"}),
            json!({"name": "user", "type": user}),
            json!({"name": "attrs", "type": {"type": "map", "values": ["null", "double"]}}),
            json!({"name": "ts", "type": {"type": "long", "logicalType": "timestamp-millis"}}),
            json!({"name": "day", "type": {"type": "int", "logicalType": "date"}}),
            json!({"name": "price", "type": {"type": "bytes", "logicalType": "decimal",
                "precision": 10, "scale": 2}}),
            json!({"name": "uid", "type": {"type": "string", "logicalType": "uuid"}}),
        ]
    };
    let mut v1 = common(user(json!([])));
    v1.extend([
        json!({"name": "color", "type": {"type": "enum", "name": "Color",
            "symbols": ["RED", "BLUE"]}}),
        json!({"name": "opt", "type": ["null", "string"]}),
        json!({"name": "num", "type": ["null", "int", "long", "float"]}),
    ]);
    let v1 = json!({"type": "record", "name": "Ev", "namespace": "t", "fields": v1});
    avro(
        "a.avro",
        "deflate",
        &v1,
        json!([
            {"id": 1, "user": {"name": "ann", "tags": ["x", "y"]}, "attrs": {"k": 1.5, "n": null},
             "ts": 1_704_164_645_678_i64, "day": 19_724, "price": "123.45",
             "uid": "00000000-0000-0000-0000-000000000001", "color": "BLUE", "opt": null,
             "num": 7},
            {"id": 2, "user": {"name": "bo", "tags": []}, "attrs": {},
             "ts": 0, "day": 0, "price": "-0.05",
             "uid": "00000000-0000-0000-0000-000000000002", "color": "RED", "opt": "o",
             "num": 2.5},
        ]),
    );
    // The second version adds a column and a nested field, and lacks three columns.
    let mut v2 = common(user(json!([{"name": "email", "type": ["null", "string"]}])));
    v2.push(json!({"name": "score", "type": "double"}));
    let v2 = json!({"type": "record", "name": "Ev", "namespace": "t", "fields": v2});
    avro(
        "b.avro",
        "snappy",
        &v2,
        json!([
            {"id": 3, "user": {"name": "cy", "tags": ["z"], "email": "c@x"}, "attrs": {"q": 2.0},
             "ts": 1_704_164_645_678_i64, "day": 19_725, "price": "99999999.99",
             "uid": "00000000-0000-0000-0000-000000000003", "score": 0.25},
        ]),
    );
    // A copy of the first file cut inside its last block.
    let whole = std::fs::read(landing.join("a.avro")).expect("read");
    write(&landing.join("c.avro"), &whole[..whole.len() - 20]);

    let config = local_config(tmp.path(), "format = \"avro\"");
    let out = drain(&config, &[], &[]);
    assert!(
        out.contains("took 3 files") && out.contains("3 rows"),
        "{out}"
    );

    let rows = by_id(&local_table(tmp.path()));
    assert_eq!(rows.keys().copied().collect::<Vec<_>>(), vec![1, 2, 3]);
    let (ann, bo, cy) = (&rows[&1], &rows[&2], &rows[&3]);
    assert_eq!(ann["user"], json!({"name": "ann", "tags": ["x", "y"]}));
    // A new field inside an existing struct does not fit it: the struct keeps what fits and
    // the whole value is rescued, as for JSON.
    assert_eq!(cy["user"], json!({"name": "cy", "tags": ["z"]}));
    let rescued: Value =
        serde_json::from_str(cy["_rescued_data"].as_str().expect("rescued")).expect("json");
    assert_eq!(
        rescued["user"],
        json!({"name": "cy", "tags": ["z"], "email": "c@x"})
    );
    assert_eq!(ann["_rescued_data"], Value::Null);
    assert_eq!(bo["user"]["tags"], json!([]));
    // Maps read back as key/value pairs; a null value stays null.
    assert_eq!(ann["attrs"], json!([["k", 1.5], ["n", null]]));
    assert_eq!(bo["attrs"], json!([]));
    // Timestamps in UTC, dates as days, decimals exactly.
    assert_eq!(ann["ts"], "2024-01-02 03:04:05.678000+00:00");
    assert_eq!(bo["ts"], "1970-01-01 00:00:00+00:00");
    assert_eq!(
        (ann["day"].as_str(), cy["day"].as_str()),
        (Some("2024-01-02"), Some("2024-01-03"))
    );
    assert_eq!(
        (
            ann["price"].as_str(),
            bo["price"].as_str(),
            cy["price"].as_str()
        ),
        (Some("123.45"), Some("-0.05"), Some("99999999.99"))
    );
    assert_eq!(cy["uid"], "00000000-0000-0000-0000-000000000003");
    // Enums are their symbols; a union of numbers is one number column.
    assert_eq!(
        (ann["color"].as_str(), cy["color"].as_str()),
        (Some("BLUE"), None)
    );
    assert_eq!(
        (ann["num"].as_f64(), bo["num"].as_f64()),
        (Some(7.0), Some(2.5))
    );
    assert_eq!((bo["opt"].as_str(), ann["opt"].as_str()), (Some("o"), None));
    assert_eq!(
        (cy["score"].as_f64(), ann["score"].as_f64()),
        (Some(0.25), None)
    );

    let failed = files_in_state(&config, "failed");
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(
        failed[0]["path"]
            .as_str()
            .is_some_and(|p| p.ends_with("/landing/c.avro")),
        "{failed:?}"
    );
    let error = failed[0]["error"].as_str().unwrap_or_default();
    assert!(error.contains("is not a readable Avro file"), "{error}");
}

#[test]
fn zstd_and_bzip2_json_lines_are_read_by_extension_or_option() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let staging = tmp.path().join("staging");
    let compressed = |codec: &str, dst: &Path, ids: std::ops::Range<i64>| {
        let plain = staging.join(format!("{codec}-{}.plain", ids.start));
        let text: String = ids
            .map(|i| format!("{{\"id\":{i},\"codec\":\"{codec}\"}}\n"))
            .collect();
        write(&plain, text);
        write(dst, b"");
        python_ok(&[
            "compress",
            codec,
            plain.to_str().expect("utf8"),
            dst.to_str().expect("utf8"),
        ]);
        assert_ne!(
            std::fs::read(dst).expect("read"),
            std::fs::read(&plain).expect("read"),
            "compressed"
        );
    };
    compressed("zstd", &tmp.path().join("landing/a.json.zst"), 1..4);
    compressed("bzip2", &tmp.path().join("landing/b.json.bz2"), 4..7);
    let config = local_config(tmp.path(), "");
    drain(&config, &[], &[]);
    let rows = by_id(&local_table(tmp.path()));
    assert_eq!(
        rows.keys().copied().collect::<Vec<_>>(),
        (1..7).collect::<Vec<_>>()
    );
    assert_eq!(rows[&2]["codec"], "zstd");
    assert_eq!(rows[&5]["codec"], "bzip2");

    // Without a telling extension, the option says how files are compressed.
    let other = tmp.path().join("by-option");
    compressed("zstd", &other.join("landing/c.log"), 10..12);
    let config = local_config(&other, "compression = \"zstd\"");
    drain(&config, &[], &[]);
    assert_eq!(local_table(&other).ints("id"), vec![10, 11]);
}

#[test]
fn partition_values_in_the_path_become_columns() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let landing = tmp.path().join("landing");
    write(
        &landing.join("date=2026-11-01/region=eu/a.json"),
        "{\"id\":1}\n",
    );
    write(
        &landing.join("date=2026-11-02/region=us/hour=07/b.json"),
        "{\"id\":2}\n{\"id\":3}\n",
    );
    write(
        &landing.join("date=__HIVE_DEFAULT_PARTITION__/c.json"),
        "{\"id\":4}\n",
    );
    let config = local_config(
        tmp.path(),
        "partition_columns = [\"date\", \"region\", \"hour\"]\n[schema]\nhints = \"date DATE\"",
    );
    drain(&config, &[], &[]);
    let rows = by_id(&local_table(tmp.path()));
    assert_eq!(
        (
            rows[&1]["date"].as_str(),
            rows[&1]["region"].as_str(),
            rows[&1]["hour"].as_str()
        ),
        (Some("2026-11-01"), Some("eu"), None)
    );
    for id in [2, 3] {
        assert_eq!(rows[&id]["date"], "2026-11-02");
        assert_eq!(rows[&id]["region"], "us");
        assert_eq!(
            rows[&id]["hour"], "07",
            "a leading zero keeps the value text"
        );
    }
    assert_eq!(
        (rows[&4]["date"].clone(), rows[&4]["region"].clone()),
        (Value::Null, Value::Null)
    );
    let schema = run_ok(
        &["schema", "--config", config.to_str().expect("utf8"), "show"],
        &[],
    );
    assert!(schema.contains("date DATE"), "{schema}");
}

#[test]
fn files_older_than_max_file_age_are_not_taken() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let landing = tmp.path().join("landing");
    write(&landing.join("old.json"), "{\"id\":1}\n");
    write(&landing.join("new.json"), "{\"id\":2}\n");
    let set_age = |name: &str, age: Duration| {
        let file = std::fs::File::options()
            .write(true)
            .open(landing.join(name))
            .expect("open");
        file.set_modified(SystemTime::now() - age)
            .expect("set mtime");
    };
    set_age("old.json", Duration::from_secs(3 * 86_400));
    let config = local_config(tmp.path(), "max_file_age = \"1d\"");
    let out = drain(&config, &[], &[]);
    assert!(
        out.contains("took 1 file")
            && out.contains("1 file older than source.max_file_age not taken"),
        "{out}"
    );
    assert_eq!(local_table(tmp.path()).ints("id"), vec![2]);
    let files = files_json(&config);
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(files[0]["path"]
        .as_str()
        .is_some_and(|p| p.ends_with("/new.json")));

    // Skipped by age, not lost: made young again, it is taken.
    set_age("old.json", Duration::ZERO);
    let out = drain(&config, &[], &[]);
    assert!(out.contains("took 1 file"), "{out}");
    assert_eq!(local_table(tmp.path()).ints("id"), vec![1, 2]);
}

#[test]
fn an_overwritten_file_is_taken_again_only_with_allow_overwrites() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let pipeline = |name: &str, sink: &str, overwrites: bool| {
        let dir = tmp.path().join(name);
        write(
            &dir.join("landing/a.json"),
            "{\"id\":1,\"v\":1}\n{\"id\":2,\"v\":1}\n",
        );
        let config = write_config(
            &dir,
            &format!(
                "pipeline_id = \"{name}\"\n[source]\nurl = \"landing\"\nallow_overwrites = {overwrites}\n\
                 [sink]\ntable = \"table\"\n{sink}\n[checkpoint]\nlocation = \"state\"\n"
            ),
        );
        drain(&config, &[], &[]);
        write(
            &dir.join("landing/a.json"),
            "{\"id\":1,\"v\":2}\n{\"id\":2,\"v\":2}\n{\"id\":3,\"v\":2}\n",
        );
        let out = drain(&config, &[], &[]);
        (dir, config, out)
    };
    // Off (the default): the path was taken, so its new content is not.
    let (dir, _, out) = pipeline("plain", "", false);
    assert!(out.contains("took 0 files"), "{out}");
    assert_eq!(local_table(&dir).ints("id"), vec![1, 2]);

    // On, appending: the new version's rows are appended.
    let (dir, config, out) = pipeline("append", "", true);
    assert!(out.contains("took 1 file"), "{out}");
    assert_eq!(local_table(&dir).ints("id"), vec![1, 1, 2, 2, 3]);
    let versions: Vec<Value> = files_json(&config)
        .into_iter()
        .filter(|f| f["path"].as_str().is_some_and(|p| p.ends_with("/a.json")))
        .collect();
    assert_eq!(
        versions.len(),
        2,
        "both versions are in the file log: {versions:?}"
    );
    assert_ne!(versions[0]["etag"], versions[1]["etag"]);

    // On, merging: the new version upserts.
    let (dir, _, _) = pipeline(
        "merge",
        "mode = \"merge\"\nkeys = [\"id\"]\nsequence_by = \"v\"",
        true,
    );
    let rows = by_id(&local_table(&dir));
    assert_eq!(rows.keys().copied().collect::<Vec<_>>(), vec![1, 2, 3]);
    assert!(rows.values().all(|r| r["v"] == 2), "{rows:?}");
}

/// Keys that must keep their exact relative path in the archive.
const ODD_NAMES: [&str; 3] = ["a b+c é.json", "v1../x.json", "sub/dir/y.json"];

fn odd_rows(i: usize) -> String {
    format!("{{\"id\":{i}}}\n")
}

#[test]
fn clean_source_archives_and_deletes_local_files() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let setup = |name: &str, clean: &str| {
        let dir = tmp.path().join(name);
        for (i, key) in ODD_NAMES.iter().enumerate() {
            write(&dir.join("landing").join(key), odd_rows(i));
        }
        let config = local_config(&dir, &format!("{clean}\nclean_source_retention = \"0s\""));
        (dir, config)
    };

    // Archive, first into a location that cannot be written: the move fails, the files stay
    // and are archived by the next run once the location is fixed.
    let (dir, config) = setup(
        "archive",
        "clean_source = \"archive\"\narchive_url = \"archive\"",
    );
    write(
        &dir.join("archive"),
        "a file where the archive directory should be",
    );
    let out = drain(&config, &[], &[]);
    assert!(out.contains("took 3 files"), "{out}");
    for key in ODD_NAMES {
        assert!(
            dir.join("landing").join(key).exists(),
            "{key} stays while the move fails"
        );
    }
    assert!(
        files_json(&config)
            .iter()
            .all(|f| f["cleaned_at_ms"].is_null()),
        "nothing recorded as cleaned"
    );
    std::fs::remove_file(dir.join("archive")).expect("fix the archive location");
    let out = drain(&config, &[], &[]);
    assert!(
        out.contains("took 0 files") && out.contains("Cleaned up 3 archived"),
        "{out}"
    );
    for (i, key) in ODD_NAMES.iter().enumerate() {
        assert!(!dir.join("landing").join(key).exists(), "{key} moved away");
        assert_eq!(
            std::fs::read_to_string(dir.join("archive").join(key)).expect("archived"),
            odd_rows(i)
        );
    }
    let files = files_json(&config);
    assert_eq!(files.len(), 3);
    for f in &files {
        assert_eq!(f["clean_action"], "archived", "{f}");
        let from = f["path"].as_str().expect("path");
        let to = f["archive_path"].as_str().expect("archive path");
        let relative = from
            .strip_prefix(&format!("{}/", url_of(&dir.join("landing"))))
            .expect("under landing");
        let archived = to
            .strip_prefix(&format!("{}/", url_of(&dir.join("archive"))))
            .expect("under archive");
        assert_eq!(archived, relative, "{to} keeps the relative path of {from}");
    }
    assert_eq!(local_table(&dir).ints("id"), vec![0, 1, 2]);

    // Delete.
    let (dir, config) = setup("delete", "clean_source = \"delete\"");
    let out = drain(&config, &[], &[]);
    assert!(
        out.contains("took 3 files") && out.contains("3 deleted"),
        "{out}"
    );
    for key in ODD_NAMES {
        assert!(!dir.join("landing").join(key).exists(), "{key} deleted");
    }
    assert!(files_json(&config)
        .iter()
        .all(|f| f["clean_action"] == "deleted"));
    assert_eq!(local_table(&dir).ints("id"), vec![0, 1, 2]);
}

#[test]
fn clean_source_archives_and_deletes_on_s3() {
    let moto = Moto::start();
    moto.s3(&["mkbucket", "landing"]);
    moto.s3(&["mkbucket", "lake"]);
    let tmp = tempfile::tempdir().expect("tempdir");
    let opts = moto.storage_options();
    let run = |name: &str, clean: &str| {
        let dir = tmp.path().join(name);
        std::fs::create_dir_all(&dir).expect("mkdir");
        for (i, key) in ODD_NAMES.iter().enumerate() {
            moto.s3(&[
                "put-text",
                "landing",
                &format!("{name}/in/{key}"),
                &odd_rows(i),
            ]);
        }
        let config = write_config(
            &dir,
            &format!(
                "pipeline_id = \"{name}\"\n[source]\nurl = \"s3://landing/{name}/in/\"\n{clean}\nclean_source_retention = \"0s\"\n{opts}\n\
                 [sink]\ntable = \"s3://lake/{name}\"\n{opts}\n[checkpoint]\nlocation = \"state\"\n"
            ),
        );
        let out = drain(&config, &[], &moto.env());
        assert!(out.contains("took 3 files"), "{out}");
        let table = read_delta(&format!("s3://lake/{name}"), &moto.reader_options());
        assert_eq!(table.ints("id"), vec![0, 1, 2]);
        config
    };

    // Same bucket: a server-side copy, then the delete.
    let config = run(
        "archive",
        "clean_source = \"archive\"\narchive_url = \"s3://landing/archived/\"",
    );
    assert!(
        moto.dump("landing", "archive/in/").is_empty(),
        "the source prefix is empty"
    );
    let archived = moto.dump("landing", "archived/");
    let expected: BTreeMap<String, Value> = ODD_NAMES
        .iter()
        .enumerate()
        .map(|(i, k)| (format!("archived/{k}"), Value::from(odd_rows(i))))
        .collect();
    assert_eq!(archived.into_iter().collect::<BTreeMap<_, _>>(), expected);
    assert!(files_json(&config)
        .iter()
        .all(|f| f["clean_action"] == "archived"
            && f["archive_path"]
                .as_str()
                .is_some_and(|p| p.starts_with("s3://landing/archived/"))));

    // Another bucket: read and written.
    run(
        "other",
        "clean_source = \"archive\"\narchive_url = \"s3://lake/moved/\"",
    );
    assert!(moto.dump("landing", "other/in/").is_empty());
    let moved: Vec<String> = moto
        .dump("lake", "moved/")
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(
        moved,
        ODD_NAMES
            .iter()
            .map(|k| format!("moved/{k}"))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect::<Vec<_>>()
    );

    let config = run("delete", "clean_source = \"delete\"");
    assert!(moto.dump("landing", "delete/in/").is_empty());
    assert!(files_json(&config)
        .iter()
        .all(|f| f["clean_action"] == "deleted"));
}

#[test]
fn text_files_become_one_row_per_line() {
    let tmp = tempfile::tempdir().expect("tempdir");
    write(
        &tmp.path().join("landing/app.log"),
        "started\r\n\nGET /health 200\n{\"not\": \"parsed\"}",
    );
    let config = local_config(tmp.path(), "format = \"text\"");
    let out = drain(&config, &[], &[]);
    assert!(out.contains("4 rows"), "{out}");
    let mut lines: Vec<String> = local_table(tmp.path())
        .rows
        .iter()
        .map(|r| r["value"].as_str().expect("value").to_string())
        .collect();
    lines.sort();
    assert_eq!(
        lines,
        ["", "GET /health 200", "started", "{\"not\": \"parsed\"}"]
    );
}
