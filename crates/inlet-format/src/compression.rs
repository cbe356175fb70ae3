//! Decompression of whole files: chosen by option, or by the file's extension in `auto`.

use std::io::Read;

use bytes::Bytes;
use serde::Deserialize;

use crate::error::FormatError;

/// How files are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    /// By extension: `.gz`/`.gzip` gzip, `.zst`/`.zstd` zstd, `.bz2` bzip2, else plain.
    #[default]
    Auto,
    None,
    Gzip,
    Zstd,
    Bzip2,
}

impl Compression {
    /// What `auto` means for `path`.
    pub fn for_path(self, path: &str) -> Self {
        if self != Self::Auto {
            return self;
        }
        let lower = path.to_ascii_lowercase();
        if lower.ends_with(".gz") || lower.ends_with(".gzip") {
            Self::Gzip
        } else if lower.ends_with(".zst") || lower.ends_with(".zstd") {
            Self::Zstd
        } else if lower.ends_with(".bz2") {
            Self::Bzip2
        } else {
            Self::None
        }
    }
}

/// The file's bytes, decompressed as `compression` (or its extension) says.
pub fn decompress(path: &str, data: Bytes, compression: Compression) -> Result<Bytes, FormatError> {
    let failed = |codec: &'static str| {
        move |e: std::io::Error| FormatError::Decompress {
            path: path.to_string(),
            codec,
            detail: e.to_string(),
        }
    };
    if data.is_empty() {
        // A zero-byte object is an empty file whatever its name says (writers that create
        // the object before they have anything to write leave these).
        return Ok(data);
    }
    // Each decoder reads concatenated streams (as Firehose and `cat a.gz b.gz` make).
    let (mut decoder, codec): (Box<dyn Read + '_>, &'static str) = match compression.for_path(path)
    {
        Compression::Gzip => (
            Box::new(flate2::read::MultiGzDecoder::new(&data[..])),
            "gzip",
        ),
        Compression::Zstd => (
            Box::new(zstd::stream::read::Decoder::new(&data[..]).map_err(failed("zstd"))?),
            "zstd",
        ),
        Compression::Bzip2 => (
            Box::new(bzip2::read::MultiBzDecoder::new(&data[..])),
            "bzip2",
        ),
        Compression::Auto | Compression::None => return Ok(data),
    };
    // Reserved only for a file that is decompressed.
    let mut out = Vec::with_capacity(data.len().saturating_mul(4));
    decoder.read_to_end(&mut out).map_err(failed(codec))?;
    Ok(Bytes::from(out))
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
        let out = decompress(
            "s3://b/x.json.gz",
            Bytes::from(gz.clone()),
            Compression::Auto,
        )
        .expect("gunzip");
        assert_eq!(&out[..], b"{\"a\":1}\n");
        let plain =
            decompress("x.json", Bytes::from_static(b"{}"), Compression::Auto).expect("plain");
        assert_eq!(&plain[..], b"{}");
        let cut = Bytes::from(gz[..gz.len() / 2].to_vec());
        let err = decompress("s3://b/x.json.gz", cut, Compression::Auto).expect_err("truncated");
        assert!(
            err.to_string()
                .starts_with("cannot decompress s3://b/x.json.gz as gzip"),
            "{err}"
        );
    }

    #[test]
    fn zstd_and_bzip2_by_extension_or_option() {
        let text = b"{\"a\":1}\n{\"a\":2}\n";
        let zst = zstd::stream::encode_all(&text[..], 3).expect("zstd");
        let mut bz = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
        bz.write_all(text).expect("bz");
        let bz = bz.finish().expect("finish");
        for (path, data, option) in [
            ("x.json.zst", zst.clone(), Compression::Auto),
            ("x.json", zst, Compression::Zstd),
            ("x.JSON.BZ2", bz.clone(), Compression::Auto),
            ("x", bz, Compression::Bzip2),
        ] {
            let out = decompress(path, Bytes::from(data), option).expect(path);
            assert_eq!(&out[..], text, "{path}");
        }
        let err = decompress("x.zst", Bytes::from_static(b"nope"), Compression::Auto)
            .expect_err("garbage");
        assert!(
            err.to_string()
                .starts_with("cannot decompress x.zst as zstd"),
            "{err}"
        );
    }
}
