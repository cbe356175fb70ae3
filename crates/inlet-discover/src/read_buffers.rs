//! Memory that source files are read into, reused: a bulk run reads each file into the
//! buffer an earlier file was decoded from, not into fresh pages the kernel must fault in.

use std::io::{Read, Seek, SeekFrom};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use bytes::Bytes;
use futures::StreamExt;
use object_store::{GetResult, GetResultPayload};

/// Bytes of freed buffers kept for later reads, at most. A buffer that would pass it is
/// freed as before; so is any buffer larger than it. Kept buffers are memory held: two
/// suffice when each read follows a decode that frees one.
const KEPT_BYTES: usize = 32 << 20;

/// Freed buffers kept, at most.
const KEPT_BUFFERS: usize = 4;

/// Files smaller than this are read into memory of their own: a page or two, which the
/// allocator recycles well without help.
const SMALLEST_POOLED: usize = 64 << 10;

/// Buffers freed by the last `Bytes` over them, for the next files to be read into.
///
/// A file's bytes were a fresh allocation each time (object_store zero-fills one, then
/// reads into it). The allocator returns allocations of more than 8 MiB to the system
/// as soon as they are freed, so every page of every file was faulted in and zeroed
/// again: in W1 (48 files of 10 MiB) 130,000 of the run's 290,000 page faults.
#[derive(Debug, Clone, Default)]
pub(crate) struct ReadBuffers {
    free: Arc<Mutex<Free>>,
}

#[derive(Debug, Default)]
struct Free {
    buffers: Vec<Vec<u8>>,
    bytes: usize,
}

/// A buffer lent out as `Bytes`; dropping it hands the buffer back.
struct Lent {
    buf: Vec<u8>,
    home: Weak<Mutex<Free>>,
}

impl AsRef<[u8]> for Lent {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for Lent {
    fn drop(&mut self) {
        if let Some(home) = self.home.upgrade() {
            lock(&home).keep(std::mem::take(&mut self.buf));
        }
    }
}

fn lock(free: &Mutex<Free>) -> MutexGuard<'_, Free> {
    // The lists stay consistent whatever panicked while holding them.
    free.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Free {
    fn keep(&mut self, mut buf: Vec<u8>) {
        let size = buf.capacity();
        if self.buffers.len() < KEPT_BUFFERS && self.bytes + size <= KEPT_BYTES {
            buf.clear();
            self.bytes += size;
            self.buffers.push(buf);
        }
    }

    /// The smallest kept buffer that holds `len` bytes, and not twice over (a small file
    /// would hold a large buffer as long as its bytes are kept).
    fn take(&mut self, len: usize) -> Option<Vec<u8>> {
        let (i, _) = self
            .buffers
            .iter()
            .enumerate()
            .filter(|(_, b)| b.capacity() >= len && b.capacity() / 2 <= len)
            .min_by_key(|(_, b)| b.capacity())?;
        let buf = self.buffers.swap_remove(i);
        self.bytes -= buf.capacity();
        Some(buf)
    }
}

impl ReadBuffers {
    /// An empty buffer with room for `len` bytes: a kept one when one fits.
    fn buffer(&self, len: usize) -> Vec<u8> {
        if len < SMALLEST_POOLED {
            return Vec::with_capacity(len);
        }
        lock(&self.free)
            .take(len)
            .unwrap_or_else(|| Vec::with_capacity(roomy(len)))
    }

    fn lend(&self, buf: Vec<u8>) -> Bytes {
        if buf.capacity() < SMALLEST_POOLED {
            return Bytes::from(buf);
        }
        Bytes::from_owner(Lent {
            buf,
            home: Arc::downgrade(&self.free),
        })
    }

    /// The whole of a GET's body, as object_store's `GetResult::bytes` returns it, read
    /// into a kept buffer. A local file is read on a blocking thread, as object_store does.
    pub(crate) async fn read(&self, got: GetResult) -> Result<Bytes, object_store::Error> {
        let range = got.range.clone();
        let len = usize::try_from(range.end.saturating_sub(range.start)).map_err(|_| {
            generic(
                "object store",
                format!("{} bytes do not fit in memory", range.end - range.start),
            )
        })?;
        match got.payload {
            GetResultPayload::File(file, path) => {
                let buf = self.buffer(len);
                let read = move || read_file(file, &path, range.start, len, buf);
                let buf = match tokio::runtime::Handle::try_current() {
                    Ok(runtime) => runtime.spawn_blocking(read).await.map_err(|e| {
                        generic("LocalFileSystem", format!("reading a file stopped: {e}"))
                    })??,
                    Err(_) => read()?,
                };
                Ok(self.lend(buf))
            }
            GetResultPayload::Stream(mut chunks) => {
                let Some(first) = chunks.next().await.transpose()? else {
                    return Ok(Bytes::new());
                };
                if first.len() == len {
                    // The whole body in one piece: no copy, and no buffer taken.
                    return Ok(first);
                }
                let mut buf = self.buffer(len);
                buf.extend_from_slice(&first);
                while let Some(chunk) = chunks.next().await {
                    buf.extend_from_slice(&chunk?);
                }
                Ok(self.lend(buf))
            }
        }
    }
}

/// `len` bytes of `file` from `start` into `buf`, without zero-filling it first.
fn read_file(
    mut file: std::fs::File,
    path: &std::path::Path,
    start: u64,
    len: usize,
    mut buf: Vec<u8>,
) -> Result<Vec<u8>, object_store::Error> {
    file.seek(SeekFrom::Start(start))
        .and_then(|_| file.take(len as u64).read_to_end(&mut buf))
        .map_err(|source| {
            generic(
                "LocalFileSystem",
                format!("reading {}: {source}", path.display()),
            )
        })?;
    if buf.len() < len {
        return Err(generic(
            "LocalFileSystem",
            format!(
                "{} ended after {} of its {len} bytes (truncated while read)",
                path.display(),
                buf.len()
            ),
        ));
    }
    Ok(buf)
}

/// `len` and a sixteenth more, in whole 64 KiB: files of a landing zone differ a little
/// in size, and a buffer made for one should hold the next.
fn roomy(len: usize) -> usize {
    len.saturating_add(len / 16).next_multiple_of(64 << 10)
}

fn generic(store: &'static str, message: String) -> object_store::Error {
    object_store::Error::Generic {
        store,
        source: message.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::local::LocalFileSystem;
    use object_store::path::Path;
    use object_store::ObjectStoreExt;

    /// Files read into kept buffers hold their own bytes while others are read, and a
    /// freed buffer is read into again.
    #[tokio::test]
    async fn buffers_are_reused_only_once_freed_and_hold_each_files_bytes() {
        let dir = tempfile::tempdir().expect("dir");
        let store = LocalFileSystem::new_with_prefix(dir.path()).expect("store");
        let sizes = [200_000usize, 150_000, 210_000, 10, 0];
        for (i, size) in sizes.iter().enumerate() {
            let body: Vec<u8> = (0..*size).map(|b| (b * 7 + i) as u8).collect();
            std::fs::write(dir.path().join(format!("f{i}")), body).expect("write");
        }
        let buffers = ReadBuffers::default();
        let read = |i: usize| {
            let (store, buffers) = (&store, &buffers);
            async move {
                let got = store.get(&Path::from(format!("f{i}"))).await.expect("get");
                buffers.read(got).await.expect("read")
            }
        };
        let expect = |i: usize| -> Vec<u8> { (0..sizes[i]).map(|b| (b * 7 + i) as u8).collect() };
        let first = read(0).await;
        let second = read(1).await;
        assert_eq!((&first[..], &second[..]), (&expect(0)[..], &expect(1)[..]));
        let first_at = first.as_ptr();
        drop(first);
        assert_eq!(lock(&buffers.free).buffers.len(), 1);
        // The freed buffer, made with room to spare, fits the larger third file and is
        // read into again, while the second file's bytes stay as they were.
        let third = read(2).await;
        assert_eq!(third.as_ptr(), first_at);
        assert_eq!(&third[..], &expect(2)[..]);
        assert_eq!(&second[..], &expect(1)[..]);
        assert_eq!(&read(3).await[..], &expect(3)[..]);
        assert!(read(4).await.is_empty());
        // A slice keeps its buffer lent until it drops.
        let slice = third.slice(10..20);
        drop(third);
        assert!(lock(&buffers.free).buffers.is_empty());
        drop(slice);
        assert_eq!(lock(&buffers.free).buffers.len(), 1);
    }

    #[test]
    fn kept_buffers_are_bounded_in_bytes_and_count() {
        let mut free = Free::default();
        free.keep(Vec::with_capacity(KEPT_BYTES + 1));
        assert!(free.buffers.is_empty());
        for _ in 0..KEPT_BUFFERS + 4 {
            free.keep(Vec::with_capacity(SMALLEST_POOLED));
        }
        assert_eq!(free.buffers.len(), KEPT_BUFFERS);
        assert_eq!(free.bytes, KEPT_BUFFERS * SMALLEST_POOLED);
        assert!(free.take(SMALLEST_POOLED + 1).is_none());
        // Nor is a buffer lent for less than half its size.
        assert!(free.take(SMALLEST_POOLED / 2 - 1).is_none());
        assert!(free.take(SMALLEST_POOLED / 2).is_some());
        assert_eq!(free.bytes, (KEPT_BUFFERS - 1) * SMALLEST_POOLED);
    }
}
