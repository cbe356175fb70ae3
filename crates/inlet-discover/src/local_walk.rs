//! The walk of a local source directory: what object_store's `LocalFileSystem` lists (files
//! and links to files, links followed), but going on past names it cannot parse and loops.

use std::fs::Metadata;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// One entry of the walk.
#[derive(Debug)]
pub(crate) enum Walked {
    /// A regular file, or a symbolic link to one, with the file's metadata.
    File { path: PathBuf, meta: Metadata },
    /// A symbolic link loop, not followed: a link to a directory being walked (an ancestor
    /// of the link, or the root), or a link the system cannot resolve for too many levels
    /// of links (links pointing at each other). `meta` is the link's own.
    Loop { path: PathBuf, meta: Metadata },
}

/// A directory (or a link, or an entry's metadata) that could not be read: the walk stops,
/// as the files in it are unknown.
#[derive(Debug)]
pub(crate) struct WalkError {
    pub path: PathBuf,
    pub source: std::io::Error,
}

/// Every file under `root`, as object_store lists them: links are followed; dangling links,
/// FIFOs, sockets and devices are left out, as are object_store's staged uploads
/// (`name#123`) and entries gone during the walk. Symbolic link loops are returned as
/// [`Walked::Loop`] and not entered. A directory or link that cannot be read for another
/// reason (permissions) stops the walk, as it does object_store's. Blocking.
///
/// Why not object_store's listing: version 0.13 ends the whole local listing at the first
/// name it cannot parse (a control character: an `InvalidPath` item) or the first loop
/// (walkdir's error, as `Generic`): under tokio the stream stops after that error item. It
/// cannot be resumed past it either, as a listing from an offset parses every name again.
pub(crate) fn walk(root: &Path) -> Result<Vec<Walked>, WalkError> {
    let fail = |path: &Path, source| WalkError {
        path: path.to_path_buf(),
        source,
    };
    let root_meta = std::fs::metadata(root).map_err(|e| fail(root, e))?;
    let entries = std::fs::read_dir(root).map_err(|e| fail(root, e))?;
    // The directories from the root down to the one being read, as walkdir keeps them.
    let mut open = vec![(dir_id(&root_meta, root), root.to_path_buf(), entries)];
    let mut out = Vec::new();
    loop {
        let Some((_, dir, entries)) = open.last_mut() else {
            return Ok(out);
        };
        let entry = match entries.next() {
            None => {
                open.pop();
                continue;
            }
            Some(Err(e)) if gone(&e) => continue,
            Some(Err(e)) => return Err(fail(dir, e)),
            Some(Ok(entry)) => entry,
        };
        let path = entry.path();
        let file_type = match entry.file_type() {
            Ok(t) => t,
            Err(e) if gone(&e) => continue,
            Err(e) => return Err(fail(&path, e)),
        };
        let meta = if file_type.is_symlink() {
            match std::fs::metadata(&path) {
                Ok(meta) => meta,
                Err(e) if gone(&e) => {
                    // As object_store: a link that leads nowhere is no file.
                    tracing::debug!(path = %shown(&path), "dangling symbolic link left out");
                    continue;
                }
                Err(e) if is_loop_error(&e) => {
                    match std::fs::symlink_metadata(&path) {
                        Ok(meta) => out.push(Walked::Loop { path, meta }),
                        Err(e) if gone(&e) => {}
                        Err(e) => return Err(fail(&path, e)),
                    }
                    continue;
                }
                Err(e) => return Err(fail(&path, e)),
            }
        } else {
            match entry.metadata() {
                Ok(meta) => meta,
                Err(e) if gone(&e) => continue,
                Err(e) => return Err(fail(&path, e)),
            }
        };
        if meta.is_dir() {
            let id = dir_id(&meta, &path);
            if open.iter().any(|(open_id, _, _)| *open_id == id) {
                match std::fs::symlink_metadata(&path) {
                    Ok(meta) => out.push(Walked::Loop { path, meta }),
                    Err(e) if gone(&e) => {}
                    Err(e) => return Err(fail(&path, e)),
                }
                continue;
            }
            match std::fs::read_dir(&path) {
                Ok(entries) => open.push((id, path, entries)),
                Err(e) if gone(&e) => {}
                Err(e) => return Err(fail(&path, e)),
            }
        } else if meta.is_file() && !is_staged_upload(&entry.file_name().to_string_lossy()) {
            out.push(Walked::File { path, meta });
        }
    }
}

/// True when `path` (under `root`) is what [`walk`] returns as [`Walked::Loop`]: a link
/// the system cannot resolve for too many levels of links, or a link to a directory on
/// its own way down from `root` (or `root` itself).
pub(crate) fn is_symlink_loop(root: &Path, path: &Path) -> bool {
    if !std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
        return false;
    }
    let target = match std::fs::metadata(path) {
        Ok(target) => target,
        Err(e) => return is_loop_error(&e),
    };
    let Ok(relative) = path.strip_prefix(root) else {
        return false;
    };
    if !target.is_dir() {
        return false;
    }
    let id = dir_id(&target, path);
    let mut dir = root.to_path_buf();
    let mut ids = Vec::new();
    if let Ok(meta) = std::fs::metadata(&dir) {
        ids.push(dir_id(&meta, &dir));
    }
    for part in relative.parent().into_iter().flat_map(Path::components) {
        dir.push(part);
        if let Ok(meta) = std::fs::metadata(&dir) {
            ids.push(dir_id(&meta, &dir));
        }
    }
    ids.contains(&id)
}

/// The ETag object_store's `LocalFileSystem` gives a file (inode, mtime in µs and size, in
/// hex), so a listed file's ETag matches the one its read checks against, and the ETags in
/// checkpoints written by earlier versions. A test pins it to object_store's own.
pub(crate) fn etag(meta: &Metadata) -> String {
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .unwrap_or_default()
        .as_micros();
    format!("{:x}-{mtime:x}-{:x}", inode(meta), meta.len())
}

/// Last modification, in ms since the Unix epoch, as object_store reports it.
pub(crate) fn modified_ms(meta: &Metadata) -> i64 {
    let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
    chrono::DateTime::<chrono::Utc>::from(modified).timestamp_millis()
}

/// object_store writes a file as `name#N` and renames it when complete; listings leave the
/// staged file out.
fn is_staged_upload(name: &str) -> bool {
    match name.split_once('#') {
        Some((_, suffix)) if !suffix.is_empty() => suffix.bytes().all(|b| b.is_ascii_digit()),
        _ => false,
    }
}

/// ELOOP ("Too many levels of symbolic links"). `ErrorKind::FilesystemLoop`, which std
/// maps it to, is not stable yet (`io_error_more`), so the kind is matched by its name.
fn is_loop_error(e: &std::io::Error) -> bool {
    format!("{:?}", e.kind()) == "FilesystemLoop"
}

fn gone(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::NotFound
}

/// A path for a log line, control characters escaped.
pub(crate) fn shown(path: &Path) -> String {
    crate::error::escape_controls(&path.to_string_lossy()).into_owned()
}

#[cfg(unix)]
type DirId = (u64, u64);

/// What makes a directory the same as another: device and inode, as walkdir compares.
#[cfg(unix)]
fn dir_id(meta: &Metadata, _path: &Path) -> DirId {
    use std::os::unix::fs::MetadataExt;
    (meta.dev(), meta.ino())
}

#[cfg(unix)]
fn inode(meta: &Metadata) -> u64 {
    std::os::unix::fs::MetadataExt::ino(meta)
}

#[cfg(not(unix))]
type DirId = PathBuf;

/// Without inodes, the directory's canonical path.
#[cfg(not(unix))]
fn dir_id(_meta: &Metadata, path: &Path) -> DirId {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

#[cfg(not(unix))]
fn inode(_meta: &Metadata) -> u64 {
    0
}
