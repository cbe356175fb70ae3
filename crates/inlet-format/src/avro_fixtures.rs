//! Test-only: Avro container files written by `apache-avro` (an implementation independent
//! of the reader under test), and by hand where that writer cannot make the case.

use std::collections::HashMap;

use apache_avro::types::Value;
use apache_avro::{
    Bzip2Settings, Codec, Decimal, DeflateSettings, Schema, Writer, XzSettings, ZstandardSettings,
};
use bytes::Bytes;

/// Every codec the Avro specification names.
pub(crate) fn codecs() -> Vec<(&'static str, Codec)> {
    vec![
        ("null", Codec::Null),
        ("deflate", Codec::Deflate(DeflateSettings::default())),
        ("snappy", Codec::Snappy),
        ("zstandard", Codec::Zstandard(ZstandardSettings::default())),
        ("bzip2", Codec::Bzip2(Bzip2Settings::default())),
        ("xz", Codec::Xz(XzSettings::default())),
    ]
}

/// A container file of `records` (each a record's fields in schema order) under `schema`.
pub(crate) fn write(schema: &str, records: Vec<Vec<(&str, Value)>>, codec: Codec) -> Bytes {
    let schema = Schema::parse_str(schema).expect("schema");
    let mut writer = Writer::with_codec(&schema, Vec::new(), codec);
    for fields in records {
        let record = Value::Record(fields.into_iter().map(|(k, v)| (k.into(), v)).collect());
        writer.append(record).expect("append");
    }
    Bytes::from(writer.into_inner().expect("finish"))
}

/// A container file by hand: header with `schema` and no codec (null), then one block of
/// `count` records whose encoded bytes are `block`.
pub(crate) fn container(schema: &str, count: i64, block: &[u8]) -> Bytes {
    let sync = [7u8; 16];
    let mut out = b"Obj\x01".to_vec();
    long(1, &mut out);
    for text in ["avro.schema".as_bytes(), schema.as_bytes()] {
        long(text.len() as i64, &mut out);
        out.extend_from_slice(text);
    }
    long(0, &mut out);
    out.extend_from_slice(&sync);
    long(count, &mut out);
    long(block.len() as i64, &mut out);
    out.extend_from_slice(block);
    out.extend_from_slice(&sync);
    Bytes::from(out)
}

/// Avro's `long`: zig-zag, then 7 bits a byte, low first.
pub(crate) fn long(n: i64, out: &mut Vec<u8>) {
    let mut z = ((n << 1) ^ (n >> 63)) as u64;
    while z >= 0x80 {
        out.push((z & 0x7f) as u8 | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

/// A decimal's unscaled value as Avro's big-endian two's complement bytes.
pub(crate) fn decimal(unscaled: i64) -> Value {
    Value::Decimal(Decimal::from(unscaled.to_be_bytes().to_vec()))
}

pub(crate) fn union(branch: u32, value: Value) -> Value {
    Value::Union(branch, Box::new(value))
}

pub(crate) fn map(entries: Vec<(&str, Value)>) -> Value {
    Value::Map(
        entries
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect::<HashMap<_, _>>(),
    )
}

pub(crate) fn string(s: &str) -> Value {
    Value::String(s.to_string())
}

/// A schema with every kind of Avro type: primitives, fixed, enum, arrays, maps, records
/// nested in records, arrays and maps, every logical type the table has a type for, and
/// unions (with null first and last, of numbers, of unlike types).
pub(crate) const ALL_TYPES: &str = r#"{"type": "record", "name": "Event", "namespace": "inlet.test",
  "fields": [
    {"name": "id", "type": "long"},
    {"name": "count", "type": "int"},
    {"name": "score", "type": "float"},
    {"name": "ratio", "type": "double"},
    {"name": "ok", "type": "boolean"},
    {"name": "name", "type": "string"},
    {"name": "raw", "type": "bytes"},
    {"name": "code", "type": {"type": "fixed", "name": "Code", "size": 4}},
    {"name": "color", "type": {"type": "enum", "name": "Color", "symbols": ["RED", "GREEN"]}},
    {"name": "tags", "type": {"type": "array", "items": "string"}},
    {"name": "attrs", "type": {"type": "map", "values": "long"}},
    {"name": "address", "type": {"type": "record", "name": "Address", "fields": [
      {"name": "street", "type": "string"},
      {"name": "geo", "type": {"type": "record", "name": "Geo", "fields": [
        {"name": "lat", "type": "double"}, {"name": "lon", "type": "double"}]}}]}},
    {"name": "visits", "type": {"type": "array", "items": {"type": "record", "name": "Visit",
      "fields": [
        {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "pages", "type": {"type": "map", "values": {"type": "array", "items": "int"}}}
      ]}}},
    {"name": "ts_ms", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    {"name": "ts_us", "type": {"type": "long", "logicalType": "timestamp-micros"}},
    {"name": "local_ms", "type": {"type": "long", "logicalType": "local-timestamp-millis"}},
    {"name": "local_us", "type": {"type": "long", "logicalType": "local-timestamp-micros"}},
    {"name": "day", "type": {"type": "int", "logicalType": "date"}},
    {"name": "price", "type": {"type": "bytes", "logicalType": "decimal", "precision": 10,
      "scale": 2}},
    {"name": "amount", "type": {"type": "fixed", "name": "Amount", "size": 8,
      "logicalType": "decimal", "precision": 18, "scale": 3}},
    {"name": "uid", "type": {"type": "string", "logicalType": "uuid"}},
    {"name": "note", "type": ["null", "string"]},
    {"name": "level", "type": ["long", "null"]},
    {"name": "opt_geo", "type": ["null", "Geo"]},
    {"name": "num", "type": ["null", "int", "double"]},
    {"name": "any", "type": ["null", "string", "long", "Geo"]}
  ]}"#;

fn geo(lat: f64, lon: f64) -> Value {
    Value::Record(vec![
        ("lat".into(), Value::Double(lat)),
        ("lon".into(), Value::Double(lon)),
    ])
}

/// Three records of [`ALL_TYPES`]: every field set, then the unions' other branches and
/// nulls, then empty arrays and maps.
pub(crate) fn all_types_records() -> Vec<Vec<(&'static str, Value)>> {
    // 2024-01-02T03:04:05.678Z, and a day: 2024-01-02.
    let ms = 1_704_164_645_678i64;
    let day = 19_724;
    let record = |i: i64,
                  tags: Vec<Value>,
                  attrs: Vec<(&str, Value)>,
                  visits: Vec<Value>,
                  unions: [Value; 5]| {
        let [note, level, opt_geo, num, any] = unions;
        vec![
            ("id", Value::Long(i)),
            ("count", Value::Int(i as i32 * 10)),
            ("score", Value::Float(1.5)),
            ("ratio", Value::Double(0.25 * i as f64)),
            ("ok", Value::Boolean(i % 2 == 1)),
            ("name", string(&format!("name {i}"))),
            ("raw", Value::Bytes(vec![0, 1, 254, 255])),
            ("code", Value::Fixed(4, vec![b'a', b'b', b'c', i as u8])),
            (
                "color",
                Value::Enum((i % 2) as u32, ["RED", "GREEN"][(i % 2) as usize].into()),
            ),
            ("tags", Value::Array(tags)),
            ("attrs", map(attrs)),
            (
                "address",
                Value::Record(vec![
                    ("street".into(), string("1 Main St")),
                    ("geo".into(), geo(52.5, 13.4)),
                ]),
            ),
            ("visits", Value::Array(visits)),
            ("ts_ms", Value::TimestampMillis(ms + i)),
            ("ts_us", Value::TimestampMicros(ms * 1000 + i)),
            ("local_ms", Value::LocalTimestampMillis(ms + i)),
            ("local_us", Value::LocalTimestampMicros(ms * 1000 + i)),
            ("day", Value::Date(day + i as i32)),
            ("price", decimal(12_345 * i)),
            ("amount", decimal(-1_000_001 * i)),
            ("uid", string("1481531d-ccc9-46d9-a56f-5b67459c0537")),
            ("note", note),
            ("level", level),
            ("opt_geo", opt_geo),
            ("num", num),
            ("any", any),
        ]
    };
    let visit = |at: i64, pages: Vec<(&str, Value)>| {
        Value::Record(vec![
            ("at".into(), Value::TimestampMillis(at)),
            ("pages".into(), map(pages)),
        ])
    };
    vec![
        record(
            1,
            vec![string("a"), string("b")],
            vec![("x", Value::Long(1)), ("y", Value::Long(-2))],
            vec![visit(
                ms,
                vec![("home", Value::Array(vec![Value::Int(1), Value::Int(2)]))],
            )],
            [
                union(1, string("hello")),
                union(0, Value::Long(7)),
                union(1, geo(1.0, 2.0)),
                union(1, Value::Int(3)),
                union(1, string("text")),
            ],
        ),
        record(
            2,
            vec![string("c")],
            vec![("z", Value::Long(3))],
            vec![
                visit(ms + 1, vec![]),
                visit(ms + 2, vec![("a", Value::Array(vec![]))]),
            ],
            [
                union(0, Value::Null),
                union(1, Value::Null),
                union(0, Value::Null),
                union(2, Value::Double(2.5)),
                union(2, Value::Long(42)),
            ],
        ),
        record(
            3,
            vec![],
            vec![],
            vec![],
            [
                union(1, string("")),
                union(0, Value::Long(-1)),
                union(0, Value::Null),
                union(0, Value::Null),
                union(3, geo(-1.5, 0.0)),
            ],
        ),
    ]
}
