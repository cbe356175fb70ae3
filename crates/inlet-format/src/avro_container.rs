//! An Avro container file's framing: the header, read and written again with its schema made
//! readable by arrow-avro, and the blocks after it checked whole before any is decoded.

use serde_json::Value;

const MAGIC: &[u8; 4] = b"Obj\x01";
const SCHEMA_KEY: &[u8] = b"avro.schema";

/// A header as the spec lays it out: magic, a map of metadata (`avro.schema`, `avro.codec`,
/// any others), and the 16-byte sync marker.
#[derive(Debug)]
pub(crate) struct Header<'d> {
    metadata: Vec<(&'d [u8], &'d [u8])>,
    sync: &'d [u8],
    /// Bytes of the file the header takes.
    pub len: usize,
}

impl<'d> Header<'d> {
    /// The header at the start of `data`, or what is wrong with it.
    pub fn read(data: &'d [u8]) -> Result<Self, String> {
        let mut at = data
            .strip_prefix(MAGIC)
            .ok_or("it does not start with the Avro magic bytes `Obj\\x01`")?;
        let mut metadata = Vec::new();
        loop {
            let count = long(&mut at).map_err(|e| format!("its header {e}"))?;
            if count == 0 {
                break;
            }
            if count < 0 {
                // The block's size in bytes, which reading does not need.
                long(&mut at).map_err(|e| format!("its header {e}"))?;
            }
            for _ in 0..count.unsigned_abs() {
                let key = bytes(&mut at)?;
                let value = bytes(&mut at)?;
                metadata.push((key, value));
            }
        }
        let sync = at
            .get(..16)
            .ok_or("its header is cut short before its sync marker")?;
        let len = data.len() - at.len() + 16;
        Ok(Self {
            metadata,
            sync,
            len,
        })
    }

    /// The writer's schema, as JSON text.
    pub fn schema(&self) -> Option<&'d [u8]> {
        self.metadata
            .iter()
            .find(|(k, _)| *k == SCHEMA_KEY)
            .map(|(_, v)| *v)
    }

    /// Checks that the rest of `data` (the file this header starts) is whole blocks, each
    /// followed by the header's sync marker, and gives the records they hold. arrow-avro
    /// stops quietly at a block cut short, so a truncated file would lose rows unseen.
    pub fn check_blocks(&self, data: &[u8]) -> Result<u64, String> {
        let mut at = data.get(self.len..).unwrap_or_default();
        let mut records = 0u64;
        let mut block = 0u64;
        while !at.is_empty() {
            block += 1;
            let at_block = |what: &str| format!("block {block} (after {records} records) {what}");
            let count = long(&mut at).map_err(at_block)?;
            let size = long(&mut at).map_err(at_block)?;
            let (Ok(count), Ok(size)) = (u64::try_from(count), usize::try_from(size)) else {
                return Err(at_block("has a negative record count or size"));
            };
            let rest = at
                .get(size..)
                .ok_or_else(|| at_block("is cut short: the file ends inside it"))?;
            let (sync, rest) = rest
                .split_at_checked(16)
                .ok_or_else(|| at_block("is cut short: the file ends inside its sync marker"))?;
            if sync != self.sync {
                return Err(at_block("is not followed by the file's sync marker"));
            }
            records += count;
            at = rest;
        }
        Ok(records)
    }

    /// This header with `schema` in place of the writer's (metadata otherwise kept).
    pub fn with_schema(&self, schema: &str) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        put_long(self.metadata.len() as i64, &mut out);
        for (key, value) in &self.metadata {
            let value = if *key == SCHEMA_KEY {
                schema.as_bytes()
            } else {
                value
            };
            for b in [*key, value] {
                put_long(b.len() as i64, &mut out);
                out.extend_from_slice(b);
            }
        }
        put_long(0, &mut out);
        out.extend_from_slice(self.sync);
        out
    }
}

/// `schema` (the header's JSON) as arrow-avro 59 reads it, when that differs from the text
/// written. Three things are rewritten, each meaning what it meant:
/// - a named type whose name is a full name (`"name": "ns.User"`, as fastavro writes every
///   name) gets it as `namespace` and `name`: arrow-avro registers the dotted name whole
///   but looks references up split, so `"ns.User"` would not resolve;
/// - a string of logical type `uuid` is a plain string: arrow-avro would parse it into 16
///   bytes and fail the whole file on one value that is not a UUID (the table keeps the text
///   either way);
/// - with `dedupe`, a key written twice is kept once, the last value, as Java's and
///   Python's readers take it (`apache-avro` 0.21 writes a fixed decimal's `logicalType`,
///   `precision` and `scale` twice, and arrow-avro refuses the schema).
///
/// `None` when the schema is not JSON or needs no change.
pub(crate) fn readable_schema(schema: &[u8], dedupe: bool) -> Option<String> {
    let mut value: Value = serde_json::from_slice(schema).ok()?;
    let changed = rewrite(&mut value);
    (changed || dedupe).then(|| value.to_string())
}

/// Rewrites full names and `uuid` strings throughout `value`; whether anything changed.
fn rewrite(value: &mut Value) -> bool {
    match value {
        Value::Object(object) => {
            let kind = object.get("type").and_then(Value::as_str);
            let named = matches!(kind, Some("record" | "error" | "enum" | "fixed"));
            let uuid_string = kind == Some("string")
                && object.get("logicalType").and_then(Value::as_str) == Some("uuid");
            let mut changed = uuid_string && object.remove("logicalType").is_some();
            let full_name = object
                .get("name")
                .and_then(Value::as_str)
                .and_then(|n| n.rsplit_once('.'))
                .map(|(ns, name)| (ns.to_string(), name.to_string()));
            if let (true, Some((namespace, name))) = (named, full_name) {
                object.insert("namespace".into(), Value::String(namespace));
                object.insert("name".into(), Value::String(name));
                changed = true;
            }
            for v in object.values_mut() {
                changed |= rewrite(v);
            }
            changed
        }
        Value::Array(items) => items
            .iter_mut()
            .fold(false, |changed, v| rewrite(v) | changed),
        _ => false,
    }
}

/// Avro's `long`: zig-zag encoded, 7 bits a byte, low bits first.
fn long(at: &mut &[u8]) -> Result<i64, &'static str> {
    let mut z = 0u64;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = at.split_first().ok_or("is cut short inside a number")?;
        *at = rest;
        z |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok((z >> 1) as i64 ^ -((z & 1) as i64));
        }
    }
    Err("has a number longer than 10 bytes")
}

fn bytes<'d>(at: &mut &'d [u8]) -> Result<&'d [u8], String> {
    let len = long(at).map_err(|e| format!("its header {e}"))?;
    let len = usize::try_from(len).map_err(|_| "its header has a negative length")?;
    if at.len() < len {
        return Err("its header is cut short inside its metadata".into());
    }
    let (b, rest) = at.split_at(len);
    *at = rest;
    Ok(b)
}

fn put_long(n: i64, out: &mut Vec<u8>) {
    let mut z = ((n << 1) ^ (n >> 63)) as u64;
    while z >= 0x80 {
        out.push((z & 0x7f) as u8 | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longs_read_back_as_written() {
        for n in [0, 1, -1, 63, -64, 64, 300, -301, i64::MAX, i64::MIN] {
            let mut out = Vec::new();
            put_long(n, &mut out);
            let mut at = &out[..];
            assert_eq!(long(&mut at), Ok(n));
            assert!(at.is_empty());
        }
        assert!(long(&mut &[0x80u8][..]).is_err(), "cut short");
        assert!(long(&mut &[0xffu8; 11][..]).is_err(), "too long");
    }

    #[test]
    fn a_header_is_written_again_with_another_schema() {
        let file = crate::avro_fixtures::container(r#""long""#, 1, &[2]);
        let header = Header::read(&file).expect("header");
        assert_eq!(header.schema(), Some(&b"\"long\""[..]));
        assert_eq!(
            &file[header.len..],
            &[2, 2, 2, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7]
        );
        let again = header.with_schema("\"int\"");
        let reread = Header::read(&again).expect("header");
        assert_eq!(reread.schema(), Some(&b"\"int\""[..]));
        assert_eq!(reread.len, again.len());
        for cut in [0, 3, 5, header.len - 1] {
            assert!(Header::read(&file[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn schemas_change_only_where_arrow_avro_needs_it() {
        let uuid = br#"{"type":"record","name":"R","fields":[
            {"name":"u","type":{"type":"string","logicalType":"uuid"}},
            {"name":"f","type":{"type":"fixed","name":"F","size":16,"logicalType":"uuid"}}]}"#;
        let plain: Value =
            serde_json::from_str(&readable_schema(uuid, false).expect("changed")).expect("json");
        assert_eq!(
            plain["fields"][0]["type"],
            serde_json::json!({"type": "string"})
        );
        assert_eq!(plain["fields"][1]["type"]["logicalType"], "uuid");
        assert_eq!(readable_schema(br#"{"type":"string"}"#, false), None);
        // Full names as namespace and name, at any depth; references stay as written.
        let full = br#"{"type":"record","name":"py.Ev","fields":[
            {"name":"u","type":{"type":"record","name":"py.sub.User","namespace":"x",
              "fields":[]}},
            {"name":"v","type":["null","py.sub.User"]}]}"#;
        let split: Value =
            serde_json::from_str(&readable_schema(full, false).expect("changed")).expect("json");
        assert_eq!(
            (&split["name"], &split["namespace"]),
            (&"Ev".into(), &"py".into())
        );
        let user = &split["fields"][0]["type"];
        assert_eq!(
            (&user["name"], &user["namespace"]),
            (&"User".into(), &"py.sub".into())
        );
        assert_eq!(split["fields"][1]["type"][1], "py.sub.User");
        assert_eq!(
            readable_schema(br#"{"type":"fixed","size":1,"size":1}"#, true).as_deref(),
            Some(r#"{"size":1,"type":"fixed"}"#)
        );
        assert_eq!(readable_schema(b"not json", true), None);
    }
}
