//! Decompression of whole files: chosen by option, or by the file's extension in `auto`.

use std::io::Read;

use bytes::Bytes;
use serde::Deserialize;

use crate::FormatError;

/// How files are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    /// By extension: `.gz` is gzip, anything else is plain.
    #[default]
    Auto,
    None,
    Gzip,
}

/// The file's bytes, decompressed as `compression` (or its extension) says.
pub fn decompress(path: &str, data: Bytes, compression: Compression) -> Result<Bytes, FormatError> {
    let effective = match compression {
        Compression::Auto if path.ends_with(".gz") || path.ends_with(".gzip") => Compression::Gzip,
        Compression::Auto => Compression::None,
        other => other,
    };
    match effective {
        Compression::Gzip => {
            let mut out = Vec::with_capacity(data.len() * 4);
            // Multi-member: concatenated gzip streams (as Firehose and `cat a.gz b.gz` make).
            flate2::read::MultiGzDecoder::new(&data[..])
                .read_to_end(&mut out)
                .map_err(|e| FormatError::Decompress {
                    path: path.to_string(),
                    codec: "gzip",
                    detail: e.to_string(),
                })?;
            Ok(Bytes::from(out))
        }
        Compression::Auto | Compression::None => Ok(data),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn gzip_by_extension_and_truncation_named() {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(b"{\"a\":1}\n").expect("write");
        let gz = enc.finish().expect("finish");
        let out = decompress("s3://b/x.json.gz", Bytes::from(gz.clone()), Compression::Auto)
            .expect("gunzip");
        assert_eq!(&out[..], b"{\"a\":1}\n");
        let plain = decompress("x.json", Bytes::from_static(b"{}"), Compression::Auto).expect("plain");
        assert_eq!(&plain[..], b"{}");
        let cut = Bytes::from(gz[..gz.len() / 2].to_vec());
        let err = decompress("s3://b/x.json.gz", cut, Compression::Auto).expect_err("truncated");
        assert!(err.to_string().starts_with("cannot decompress s3://b/x.json.gz as gzip"), "{err}");
    }
}
