//! JSON lines: a sampling pass for inference (serde_json, stops at the limit) and the
//! decoding pass through arrow-json's streaming decoder against a fixed schema.

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use inlet_schema::JsonInference;
use serde_json::Value;

use crate::{FormatError, BATCH_ROWS};

/// Feeds up to `max_records` records of `data` to `inference`; returns how many it read.
/// A broken record ends the sample of this file: decoding reports it with its line.
pub fn sample_json(data: &[u8], inference: &mut JsonInference, max_records: usize) -> usize {
    let mut n = 0;
    for value in serde_json::Deserializer::from_slice(data)
        .into_iter::<Value>()
        .take(max_records)
    {
        match value {
            Ok(v) => {
                inference.add(&v);
                n += 1;
            }
            Err(_) => break,
        }
    }
    n
}

/// Decodes every record of `data` into batches of `schema`. Fields not in the schema are
/// ignored; numbers and booleans are accepted into string columns. On error, names the
/// file and the line of the first record at fault.
pub fn decode_json(
    path: &str,
    data: &[u8],
    schema: SchemaRef,
) -> Result<Vec<RecordBatch>, FormatError> {
    decode_all(data, schema.clone()).map_err(|detail| {
        let (line, detail) = locate_error(data, schema).unwrap_or((1, detail));
        FormatError::Decode {
            path: path.to_string(),
            line,
            detail,
        }
    })
}

fn decoder(schema: SchemaRef) -> Result<arrow::json::reader::Decoder, String> {
    arrow::json::ReaderBuilder::new(schema)
        .with_batch_size(BATCH_ROWS)
        .with_coerce_primitive(true)
        .build_decoder()
        .map_err(|e| e.to_string())
}

fn decode_all(data: &[u8], schema: SchemaRef) -> Result<Vec<RecordBatch>, String> {
    let mut decoder = decoder(schema)?;
    let mut batches = Vec::new();
    let mut offset = 0;
    while offset < data.len() {
        let read = decoder.decode(&data[offset..]).map_err(|e| e.to_string())?;
        if read == 0 {
            break;
        }
        offset += read;
        if let Some(batch) = decoder.flush().map_err(|e| e.to_string())? {
            batches.push(batch);
        }
    }
    if let Some(batch) = decoder.flush().map_err(|e| e.to_string())? {
        batches.push(batch);
    }
    Ok(batches)
}

/// The slow path, run only after a failure: walk the records one by one to find the first
/// that does not parse or does not fit the schema, and its 1-based line.
fn locate_error(data: &[u8], schema: SchemaRef) -> Option<(u64, String)> {
    let line_of = |offset: usize| 1 + data[..offset.min(data.len())].iter().filter(|&&b| b == b'\n').count() as u64;
    let mut stream = serde_json::Deserializer::from_slice(data).into_iter::<Value>();
    loop {
        let start = stream.byte_offset();
        match stream.next()? {
            Err(e) => {
                // serde_json reports its own line; prefer it, it counts from the file start.
                return Some((e.line() as u64, format!("invalid JSON: {e}")));
            }
            Ok(value) => {
                let end = stream.byte_offset();
                if !value.is_object() {
                    return Some((line_of(start + leading_ws(&data[start..end])), "record is not a JSON object".into()));
                }
                if let Err(detail) = decode_all(&data[start..end], schema.clone()) {
                    return Some((line_of(start + leading_ws(&data[start..end])), detail));
                }
            }
        }
    }
}

fn leading_ws(bytes: &[u8]) -> usize {
    bytes.iter().take_while(|b| b.is_ascii_whitespace()).count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, Int64Array, StringArray};
    use std::sync::Arc;

    fn infer(data: &[u8]) -> SchemaRef {
        let mut inf = JsonInference::new();
        sample_json(data, &mut inf, usize::MAX);
        Arc::new(inf.schema())
    }

    #[test]
    fn decodes_lines_crlf_and_concatenated_objects() {
        let data = b"{\"a\":1,\"b\":\"x\"}\r\n{\"a\":2}{\"a\":3,\"b\":4}\n\n";
        let schema = infer(data);
        let batches = decode_json("f", data, schema).expect("decode");
        let batch = &batches[0];
        assert_eq!(batch.num_rows(), 3);
        let a = batch.column(0).as_any().downcast_ref::<Int64Array>().expect("a");
        assert_eq!(a.values(), &[1, 2, 3]);
        let b = batch.column(1).as_any().downcast_ref::<StringArray>().expect("b");
        assert_eq!((b.value(0), b.is_null(1), b.value(2)), ("x", true, "4"));
    }

    #[test]
    fn broken_line_is_named() {
        let data = b"{\"a\":1}\n{\"a\":2}\n{\"a\": oops}\n";
        let schema = infer(b"{\"a\":1}");
        let err = decode_json("s3://b/k.json", data, schema).expect_err("broken");
        let text = err.to_string();
        assert!(text.starts_with("s3://b/k.json, line 3: invalid JSON"), "{text}");
    }

    #[test]
    fn type_mismatch_is_named() {
        let data = b"{\"a\":1}\n{\"a\":\"x\"}\n";
        let schema = infer(b"{\"a\":1}");
        let err = decode_json("k.json", data, schema).expect_err("mismatch");
        assert!(err.to_string().starts_with("k.json, line 2:"), "{err}");
    }
}
