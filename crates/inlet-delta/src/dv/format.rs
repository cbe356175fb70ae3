//! Deletion vectors as bytes: reading a file's existing vector (inline, relative or absolute)
//! and writing a batch's vectors into one `deletion_vector_<uuid>.bin` with the checksum.

use std::sync::Arc;

use bytes::Bytes;
use delta_kernel::actions::deletion_vector_writer::{
    KernelDeletionVector, StreamingDeletionVectorWriter,
};
use deltalake::kernel::{DeletionVectorDescriptor, StorageType};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use roaring::RoaringTreemap;

/// The magic number before a portable RoaringBitmapArray (little-endian).
const PORTABLE_MAGIC: u32 = 1_681_511_377;

/// Why a deletion vector could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum DvError {
    #[error("deletion vector {path}: {detail}")]
    Corrupt { path: String, detail: String },
    #[error("deletion vector {path}: {source}")]
    Store {
        path: String,
        #[source]
        source: object_store::Error,
    },
}

/// The rows `dv` marks deleted. `store` is rooted at the table (relative vectors are read
/// from its root); `root_store` reads absolute (`p`) vectors.
pub async fn read(
    store: &Arc<dyn ObjectStore>,
    root_store: &Arc<dyn ObjectStore>,
    dv: &DeletionVectorDescriptor,
) -> Result<RoaringTreemap, DvError> {
    let corrupt = |detail: String| DvError::Corrupt {
        path: dv.path_or_inline_dv.clone(),
        detail,
    };
    let (store, path) = match dv.storage_type {
        StorageType::Inline => {
            let raw = z85::decode(&dv.path_or_inline_dv)
                .map_err(|e| corrupt(format!("inline vector is not Z85: {e}")))?;
            return portable(&raw).map_err(corrupt);
        }
        StorageType::UuidRelativePath => (
            store,
            relative_path(&dv.path_or_inline_dv).map_err(corrupt)?,
        ),
        StorageType::AbsolutePath => {
            let url = url::Url::parse(&dv.path_or_inline_dv)
                .map_err(|e| corrupt(format!("absolute path is not a URL: {e}")))?;
            let path = Path::from_url_path(url.path())
                .map_err(|e| corrupt(format!("absolute path: {e}")))?;
            (root_store, path)
        }
    };
    let corrupt = |detail: String| DvError::Corrupt {
        path: path.to_string(),
        detail,
    };
    let start = u64::try_from(dv.offset.unwrap_or(1)).map_err(|e| corrupt(e.to_string()))?;
    let size = u64::try_from(dv.size_in_bytes).map_err(|e| corrupt(e.to_string()))?;
    if start < 1 || size < 4 {
        return Err(corrupt(format!(
            "offset {start} and size {size} cannot hold a vector"
        )));
    }
    // One file holds the vectors of every file a MERGE touched: read the version byte and
    // this vector's own range, never the whole file.
    // size (4, big-endian) | magic + bitmap (`size` bytes) | CRC-32 of them (4, big-endian)
    let parts = store
        .get_ranges(&path, &[0..1, start..start + 4 + size + 4])
        .await
        .map_err(|source| DvError::Store {
            path: path.to_string(),
            source,
        })?;
    let (Some(version), Some(range)) = (parts.first(), parts.get(1)) else {
        return Err(corrupt("the store returned no bytes".into()));
    };
    if version.first() != Some(&1) {
        return Err(corrupt("the file's format version is not 1".into()));
    }
    let size = usize::try_from(size).map_err(|e| corrupt(e.to_string()))?;
    if range.len() < 4 + size + 4 {
        return Err(corrupt(format!(
            "{} bytes at offset {start}, too short for a vector of {size} bytes",
            range.len()
        )));
    }
    let stated = u32::from_be_bytes(be4(&range[..4]));
    if usize::try_from(stated).ok() != Some(size) {
        return Err(corrupt(format!(
            "the file says {stated} bytes, the log {size}"
        )));
    }
    let body = &range[4..4 + size];
    let crc = u32::from_be_bytes(be4(&range[4 + size..8 + size]));
    let expected = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC).checksum(body);
    if crc != expected {
        return Err(corrupt(format!(
            "checksum {crc:#x} does not match its bytes ({expected:#x})"
        )));
    }
    portable(body).map_err(corrupt)
}

fn be4(b: &[u8]) -> [u8; 4] {
    [b[0], b[1], b[2], b[3]]
}

/// A portable RoaringBitmapArray after its magic number.
fn portable(raw: &[u8]) -> Result<RoaringTreemap, String> {
    if raw.len() < 4 || u32::from_le_bytes(be4(raw)) != PORTABLE_MAGIC {
        return Err("not a portable RoaringBitmapArray (wrong magic number)".into());
    }
    RoaringTreemap::deserialize_from(&raw[4..]).map_err(|e| e.to_string())
}

/// `<prefix><20 Z85 characters of a UUID>` → `<prefix>/deletion_vector_<uuid>.bin`.
pub(crate) fn relative_path(encoded: &str) -> Result<Path, String> {
    if encoded.len() < 20 || !encoded.is_char_boundary(encoded.len() - 20) {
        return Err("relative path is shorter than an encoded UUID".into());
    }
    let (prefix, id) = encoded.split_at(encoded.len() - 20);
    let raw = z85::decode(id).map_err(|e| format!("UUID is not Z85: {e}"))?;
    let uuid = uuid::Uuid::from_slice(&raw).map_err(|e| e.to_string())?;
    let name = format!("deletion_vector_{uuid}.bin");
    Ok(if prefix.is_empty() {
        Path::from(name)
    } else {
        Path::from(format!("{prefix}/{name}"))
    })
}

/// A written file of vectors: its path under the table and one descriptor per vector.
pub struct WrittenVectors {
    pub path: Path,
    pub descriptors: Vec<DeletionVectorDescriptor>,
}

/// Writes `vectors` into one new `deletion_vector_<uuid>.bin` at the table's root (each with
/// its size, magic and CRC-32, as the protocol lays them out) and returns their descriptors
/// (`storageType = u`), in order. Nothing refers to the file until a commit does.
pub async fn write(
    store: &Arc<dyn ObjectStore>,
    vectors: Vec<RoaringTreemap>,
) -> Result<WrittenVectors, DvError> {
    let uuid = uuid::Uuid::new_v4();
    let path = Path::from(format!("deletion_vector_{uuid}.bin"));
    let encoded = z85::encode(uuid.as_bytes());
    let corrupt = |detail: String| DvError::Corrupt {
        path: path.to_string(),
        detail,
    };
    let mut buffer = Vec::new();
    let mut descriptors = Vec::with_capacity(vectors.len());
    {
        let mut writer = StreamingDeletionVectorWriter::new(&mut buffer);
        for rows in vectors {
            let mut dv = KernelDeletionVector::new();
            dv.add_deleted_row_indexes(rows);
            let written = writer
                .write_deletion_vector(dv)
                .map_err(|e| corrupt(e.to_string()))?;
            descriptors.push(DeletionVectorDescriptor {
                storage_type: StorageType::UuidRelativePath,
                path_or_inline_dv: encoded.clone(),
                offset: Some(written.offset),
                size_in_bytes: written.size_in_bytes,
                cardinality: written.cardinality,
            });
        }
        writer.finalize().map_err(|e| corrupt(e.to_string()))?;
    }
    store
        .put(&path, Bytes::from(buffer).into())
        .await
        .map_err(|source| DvError::Store {
            path: path.to_string(),
            source,
        })?;
    Ok(WrittenVectors { path, descriptors })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn written_vectors_read_back_with_their_checksum() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store: Arc<dyn ObjectStore> = Arc::new(
            object_store::local::LocalFileSystem::new_with_prefix(dir.path()).expect("store"),
        );
        let a: RoaringTreemap = [0u64, 5, 70_000, 5_000_000_000].into_iter().collect();
        let b: RoaringTreemap = [3u64].into_iter().collect();
        let written = write(&store, vec![a.clone(), b.clone()])
            .await
            .expect("write");
        assert_eq!(written.descriptors.len(), 2);
        assert_eq!(written.descriptors[0].cardinality, 4);
        assert_eq!(
            read(&store, &store, &written.descriptors[0])
                .await
                .expect("a"),
            a
        );
        assert_eq!(
            read(&store, &store, &written.descriptors[1])
                .await
                .expect("b"),
            b
        );
        // A flipped byte fails the checksum instead of deleting other rows.
        let file = dir.path().join(written.path.to_string());
        let mut raw = std::fs::read(&file).expect("read");
        let last = raw.len() - 6;
        raw[last] ^= 0xff;
        std::fs::write(&file, raw).expect("write");
        let err = read(&store, &store, &written.descriptors[1])
            .await
            .expect_err("corrupt");
        assert!(err.to_string().contains("checksum"), "{err}");
    }

    #[test]
    fn inline_vectors_decode() {
        // Z85 encodes whole 4-byte words: grow the set until its serialized form is one.
        let (rows, raw) = (9u64..)
            .map(|last| {
                let rows: RoaringTreemap = (1..=last).collect();
                let mut raw = PORTABLE_MAGIC.to_le_bytes().to_vec();
                rows.serialize_into(&mut raw).expect("serialize");
                (rows, raw)
            })
            .find(|(_, raw)| raw.len() % 4 == 0)
            .expect("some size is a multiple of 4");
        let dv = DeletionVectorDescriptor {
            storage_type: StorageType::Inline,
            path_or_inline_dv: z85::encode(&raw),
            offset: None,
            size_in_bytes: i32::try_from(raw.len()).expect("small"),
            cardinality: i64::try_from(rows.len()).expect("small"),
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let store: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
        assert_eq!(
            rt.block_on(read(&store, &store, &dv)).expect("inline"),
            rows
        );
    }
}
