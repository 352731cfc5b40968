//! Local tables list their `_delta_log` in time that does not grow with the log.
//!
//! Every Delta commit lists the log twice (delta-rs asks for the latest version before it
//! writes, and the kernel lists again to update the snapshot after), each time from a version
//! on. object_store's local listing walks the whole directory and builds a path, a URL and a
//! `stat` for every entry before it filters by the offset, so a stream's small batch cost grew
//! with its table's versions (`bench upkeep`: p50 10 ms at 100 versions, 19 ms at 2,000; ~2 µs
//! per log file per listing). Here a log listing reads the directory's names, skips those at
//! or before the offset by their bytes, and `stat`s the rest in the same blocking call. (The
//! kernel lists from the last log checkpoint after every commit: asking the local store's
//! `head` for each of those up to 100 files opened each one in a blocking task of its own,
//! a saw-tooth of ~2 ms per batch at 50 commits since the checkpoint.) The names come from
//! `log_names` (a directory read once, then its inotify events), so a listing does not read
//! the whole log either. Everything else, and any listing with subdirectories to walk, is the
//! local store's own.

use std::fmt;
use std::sync::{Arc, Once};

use async_trait::async_trait;
use bytes::Bytes;
use deltalake::logstore::object_store::local::LocalFileSystem;
use deltalake::logstore::object_store::path::Path;
use deltalake::logstore::object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, Result,
};
use deltalake::logstore::{ObjectStoreFactory, ObjectStoreRef, StorageConfig};
use futures::StreamExt;
use futures::stream::BoxStream;
use url::Url;

/// Makes `file://` tables use [`LogListing`] (once per process, before the first table opens).
pub fn install() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let file = Url::parse("file://").expect("a valid URL");
        deltalake::logstore::object_store_factories().insert(file, Arc::new(Factory));
    });
}

struct Factory;

impl ObjectStoreFactory for Factory {
    fn parse_url_opts(
        &self,
        url: &Url,
        _config: &StorageConfig,
    ) -> deltalake::DeltaResult<(ObjectStoreRef, Path)> {
        // as delta-rs's own factory: a store at the filesystem root, the table as a path in it
        let path = Path::from_url_path(url.path())?;
        Ok((Arc::new(LogListing(Arc::new(LocalFileSystem::new()))), path))
    }
}

/// The local filesystem store, with a cheap listing of a `_delta_log` from an offset.
#[derive(Debug)]
pub struct LogListing(Arc<LocalFileSystem>);

impl fmt::Display for LogListing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LogListing({})", self.0)
    }
}

/// What a log listing found: the files past the offset with their metadata, or a reason to
/// let the local store list (a subdirectory to walk, a name that is not UTF-8).
enum Listed {
    After(Vec<(String, std::fs::Metadata)>),
    Walk,
}

/// Files in `dir` after `after` (byte order, as object_store compares paths), skipping the
/// local store's staged uploads (`name#123`) and files deleted since the directory was read
/// (as a walk would have missed them).
fn files_after(dir: &std::path::Path, after: &str) -> std::io::Result<Listed> {
    let names = match super::log_names::names_after(dir, after) {
        Some(names) => names,
        None => {
            let mut names = Vec::new();
            for entry in std::fs::read_dir(dir)? {
                let entry = entry?;
                let Ok(name) = entry.file_name().into_string() else { return Ok(Listed::Walk) };
                if name.as_bytes() > after.as_bytes() {
                    names.push((name, entry.file_type()?.is_dir()));
                }
            }
            names
        }
    };
    let mut out = Vec::new();
    for (name, is_dir) in names {
        if is_dir {
            return Ok(Listed::Walk);
        }
        let staged = name
            .split_once('#')
            .is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        if staged {
            continue;
        }
        // as the local store: the metadata of what a link points to
        match std::fs::metadata(dir.join(&name)) {
            Ok(meta) => out.push((name, meta)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(Listed::After(out))
}

/// A file's `ObjectMeta` as the local store makes it (its e-tag: inode, mtime in µs and size,
/// in hex).
fn object_meta(location: Path, meta: &std::fs::Metadata) -> Result<ObjectMeta> {
    use std::os::unix::fs::MetadataExt as _;
    let modified =
        meta.modified().map_err(|e| deltalake::logstore::object_store::Error::Generic {
            store: "LocalFileSystem",
            source: Box::new(e),
        })?;
    let micros = modified.duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_micros();
    Ok(ObjectMeta {
        location,
        last_modified: modified.into(),
        size: meta.len(),
        e_tag: Some(format!("{:x}-{micros:x}-{:x}", meta.ino(), meta.len())),
        version: None,
    })
}

impl LogListing {
    /// The directory and the offset's name when this is a listing of a `_delta_log` from a
    /// name in it (what the kernel and delta-rs ask for), else None.
    fn log_listing(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> Option<(std::path::PathBuf, String)> {
        let prefix = prefix?;
        if prefix.filename() != Some("_delta_log") {
            return None;
        }
        let name = offset.filename()?;
        if prefix.clone().join(name) != *offset {
            return None;
        }
        let dir = self.0.path_to_filesystem(prefix).ok()?;
        Some((dir, name.to_owned()))
    }
}

#[async_trait]
impl ObjectStore for LogListing {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        self.0.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.0.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.0.get_opts(location, options).await
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[std::ops::Range<u64>],
    ) -> Result<Vec<Bytes>> {
        self.0.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        self.0.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.0.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        let Some((dir, after)) = self.log_listing(prefix, offset) else {
            return self.0.list_with_offset(prefix, offset);
        };
        let (store, prefix, offset) =
            (Arc::clone(&self.0), prefix.cloned().unwrap_or_default(), offset.clone());
        futures::stream::once(async move {
            let found = match tokio::runtime::Handle::try_current() {
                Ok(rt) => rt.spawn_blocking(move || files_after(&dir, &after)).await,
                Err(_) => Ok(files_after(&dir, &after)),
            };
            let files = match found {
                Ok(Ok(Listed::After(files))) => files,
                // gone, unreadable, or not ours to read: the local store's listing says why
                _ => return store.list_with_offset(Some(&prefix), &offset),
            };
            let metas: Vec<Result<ObjectMeta>> = files
                .iter()
                .map(|(name, meta)| object_meta(prefix.clone().join(name.as_str()), meta))
                .collect();
            futures::stream::iter(metas).boxed()
        })
        .flatten()
        .boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.0.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.0.copy_opts(from, to, options).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        self.0.rename_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::TryStreamExt;

    /// A log listing from an offset gives what the local store's own listing gives: the same
    /// files with the same sizes, no staged upload, whatever was added since the last one;
    /// a log with a subdirectory is walked by the local store.
    #[tokio::test]
    async fn log_listings_from_an_offset_match_the_local_stores() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("t/_delta_log");
        std::fs::create_dir_all(&log).unwrap();
        for v in 0..30 {
            std::fs::write(log.join(format!("{v:020}.json")), vec![b'x'; v + 1]).unwrap();
        }
        std::fs::write(log.join(format!("{:020}.checkpoint.parquet", 20)), b"cp").unwrap();
        std::fs::write(log.join("_last_checkpoint"), b"{}").unwrap();
        std::fs::write(log.join(format!("{:020}.json#1", 30)), b"staged").unwrap();
        let local = Arc::new(LocalFileSystem::new());
        let ours = LogListing(local.clone());
        let prefix = Path::from_filesystem_path(&log).unwrap();
        let listed = |store: &dyn ObjectStore, from: u64| {
            let offset = prefix.clone().join(format!("{from:020}").as_str());
            let s = store.list_with_offset(Some(&prefix), &offset);
            async move {
                let mut v: Vec<(String, u64)> = s
                    .map_ok(|m| {
                        // the e-tag and time of the local store's own listing too
                        let tag = format!("{:?} {}", m.e_tag, m.last_modified.timestamp_micros());
                        (format!("{} {tag}", m.location.filename().unwrap()), m.size)
                    })
                    .try_collect()
                    .await
                    .unwrap();
                v.sort();
                v
            }
        };
        for from in [0, 19, 20, 29, 30] {
            let expected = listed(local.as_ref(), from).await;
            assert_eq!(listed(&ours, from).await, expected, "from {from}");
        }
        let from_20 = listed(&ours, 20).await;
        assert_eq!(from_20.len(), 12, "20.checkpoint, 20..=29 json, _last_checkpoint: {from_20:?}");
        assert!(from_20.iter().all(|(n, _)| !n.contains('#')), "{from_20:?}");
        // a commit written after a listing is in the next one
        std::fs::write(log.join(format!("{:020}.json", 30)), b"new").unwrap();
        let new = format!("{:020}.json ", 30);
        assert!(listed(&ours, 29).await.iter().any(|(n, size)| n.starts_with(&new) && *size == 3));
        // a subdirectory (v2 checkpoint sidecars): the local store walks it
        std::fs::create_dir(log.join("_sidecars")).unwrap();
        std::fs::write(log.join("_sidecars/a.parquet"), b"s").unwrap();
        let walked = listed(&ours, 29).await;
        assert_eq!(walked, listed(local.as_ref(), 29).await);
        assert!(walked.iter().any(|(n, _)| n.starts_with("a.parquet ")), "{walked:?}");
    }
}
