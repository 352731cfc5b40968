//! The names in local `_delta_log` directories, kept up to date by inotify, so a listing of
//! a log costs what changed since the last one, not the log's size.
//!
//! Delta keeps every commit file for `delta.logRetentionDuration` (30 days), and each commit
//! lists the log twice (see `log_listing`). Reading the whole directory each time made a
//! stream's small batch grow with its table's age: 1.8 ms per read at 8,000 commits (`bench
//! upkeep --batches 100,2000,4000,6000,8000`: p50 6 → 10 ms, p99 15 → 27 ms), ~20 ms a read
//! after a day of 1-second batches. Here a directory is read once; then the events of its
//! watch (create, delete, rename; the kernel queues them before the changing call returns, so
//! whatever finished before a listing is in it) are applied before each listing.
//!
//! Only on filesystems whose changes all pass through this kernel (a network or FUSE mount
//! may change without an event: those are read each time), for up to [`MAX_DIRS`] directories;
//! a queue overflow, a directory moved away or replaced at its path, or a name that is not
//! UTF-8 send the listing back to reading the directory.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Bound;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask};

/// Directories watched at most (each holds its names in memory; the kernel's default limit is
/// 8,192 watches per user, shared with file sources' notifications).
const MAX_DIRS: usize = 256;

/// Filesystems whose every change is made by this kernel, so inotify sees it.
const LOCAL_FILESYSTEMS: &[&str] = &[
    "ext2", "ext3", "ext4", "xfs", "btrfs", "tmpfs", "overlay", "zfs", "f2fs", "bcachefs", "ramfs",
];

/// The names after `after` (byte order) in `dir`, each with whether it is a directory, from
/// the process's watched directories; `None`: not watched (read the directory).
pub fn names_after(dir: &Path, after: &str) -> Option<Vec<(String, bool)>> {
    static CACHE: OnceLock<Option<Mutex<Cache>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Cache::new().ok().map(Mutex::new)).as_ref()?;
    cache.lock().ok()?.names_after(dir, after)
}

struct Watched {
    /// The directory's device and inode when the watch was added.
    id: (u64, u64),
    /// Name → is a directory; `None`: to be read again (after a queue overflow).
    names: Option<BTreeMap<String, bool>>,
}

struct Cache {
    inotify: Inotify,
    dirs: HashMap<WatchDescriptor, Watched>,
    by_path: HashMap<PathBuf, WatchDescriptor>,
    /// Directories that cannot be watched (not a local filesystem, watch refused).
    refused: HashSet<PathBuf>,
    buffer: Vec<u8>,
    /// Directory reads so far (for the tests: a listing of a watched log reads nothing).
    reads: usize,
}

impl Cache {
    fn new() -> std::io::Result<Self> {
        Ok(Self {
            inotify: Inotify::init()?,
            dirs: HashMap::new(),
            by_path: HashMap::new(),
            refused: HashSet::new(),
            buffer: vec![0; 64 * 1024],
            reads: 0,
        })
    }

    fn names_after(&mut self, dir: &Path, after: &str) -> Option<Vec<(String, bool)>> {
        if self.refused.contains(dir) {
            return None;
        }
        if self.drain().is_err() {
            self.read_all_again();
            return None;
        }
        let meta = std::fs::metadata(dir).ok()?;
        let id = (meta.dev(), meta.ino());
        let wd = match self.by_path.get(dir) {
            Some(wd) if self.dirs.get(wd).is_some_and(|w| w.id == id) => wd.clone(),
            known => {
                // a directory that moved away or was replaced: watch the one at the path now
                if let Some(wd) = known.cloned() {
                    self.forget(&wd);
                }
                match self.watch(dir, id) {
                    Some(wd) => wd,
                    None => {
                        if self.refused.len() < MAX_DIRS {
                            self.refused.insert(dir.to_owned());
                        }
                        return None;
                    }
                }
            }
        };
        let watched = self.dirs.get_mut(&wd)?;
        if watched.names.is_none() {
            self.reads += 1;
            // events queued while it is read are applied at the next listing: the last event of
            // each name says whether it is there, so the names end up as the directory's
            watched.names = Some(read_names(dir).ok()??);
        }
        let names = watched.names.as_ref()?;
        Some(
            names
                .range::<str, _>((Bound::Excluded(after), Bound::Unbounded))
                .map(|(name, is_dir)| (name.clone(), *is_dir))
                .collect(),
        )
    }

    fn watch(&mut self, dir: &Path, id: (u64, u64)) -> Option<WatchDescriptor> {
        if self.dirs.len() >= MAX_DIRS || !local_filesystem(dir) {
            return None;
        }
        let mask = WatchMask::CREATE
            | WatchMask::DELETE
            | WatchMask::MOVED_FROM
            | WatchMask::MOVED_TO
            | WatchMask::DELETE_SELF
            | WatchMask::MOVE_SELF
            | WatchMask::ONLYDIR;
        let wd = self.inotify.watches().add(dir, mask).ok()?;
        // a second path to a watched directory shares its watch
        self.dirs.entry(wd.clone()).or_insert(Watched { id, names: None });
        self.by_path.insert(dir.to_owned(), wd.clone());
        Some(wd)
    }

    fn forget(&mut self, wd: &WatchDescriptor) {
        if self.dirs.remove(wd).is_some() {
            let _ = self.inotify.watches().remove(wd.clone());
        }
        self.by_path.retain(|_, w| w != wd);
    }

    /// After lost events (a queue overflow, a failed read of the queue): every watched
    /// directory is read again at its next listing.
    fn read_all_again(&mut self) {
        for watched in self.dirs.values_mut() {
            watched.names = None;
        }
    }

    /// Applies the queued events to the names.
    fn drain(&mut self) -> std::io::Result<()> {
        loop {
            let events = match self.inotify.read_events(&mut self.buffer) {
                Ok(events) => events,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(e),
            };
            let (mut gone, mut overflow) = (Vec::new(), false);
            for event in events {
                if event.mask.contains(EventMask::Q_OVERFLOW) {
                    overflow = true;
                    continue;
                }
                let Some(watched) = self.dirs.get_mut(&event.wd) else { continue };
                if event
                    .mask
                    .intersects(EventMask::IGNORED | EventMask::DELETE_SELF | EventMask::MOVE_SELF)
                {
                    gone.push(event.wd.clone());
                    continue;
                }
                let (Some(names), Some(name)) = (watched.names.as_mut(), event.name) else {
                    continue;
                };
                let Some(name) = name.to_str() else {
                    // read again: that read finds the name and sends the listing to the walk
                    watched.names = None;
                    continue;
                };
                if event.mask.intersects(EventMask::CREATE | EventMask::MOVED_TO) {
                    names.insert(name.to_owned(), event.mask.contains(EventMask::ISDIR));
                } else if event.mask.intersects(EventMask::DELETE | EventMask::MOVED_FROM) {
                    names.remove(name);
                }
            }
            for wd in gone {
                self.forget(&wd);
            }
            if overflow {
                self.read_all_again();
            }
        }
    }
}

/// The directory's names with whether each is a directory; `None` if one is not UTF-8.
fn read_names(dir: &Path) -> std::io::Result<Option<BTreeMap<String, bool>>> {
    let mut names = BTreeMap::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else { return Ok(None) };
        names.insert(name, entry.file_type()?.is_dir());
    }
    Ok(Some(names))
}

/// Whether `dir` is on a filesystem in [`LOCAL_FILESYSTEMS`] (by `/proc/self/mountinfo`: the
/// last mount at the longest mount point above it).
fn local_filesystem(dir: &Path) -> bool {
    let (Ok(dir), Ok(info)) = (dir.canonicalize(), std::fs::read_to_string("/proc/self/mountinfo"))
    else {
        return false;
    };
    let mut best: Option<(usize, String)> = None;
    for line in info.lines() {
        let (Some(mount), Some(fstype)) = (
            line.split(' ').nth(4),
            line.split_once(" - ").and_then(|(_, rest)| rest.split(' ').next()),
        ) else {
            continue;
        };
        let mount = unescape_octal(mount);
        if dir.starts_with(&mount) && best.as_ref().is_none_or(|(len, _)| mount.len() >= *len) {
            best = Some((mount.len(), fstype.to_owned()));
        }
    }
    best.is_some_and(|(_, fstype)| LOCAL_FILESYSTEMS.contains(&fstype.as_str()))
}

/// A mount point as `/proc/self/mountinfo` writes it, with `\040` for a space and so on.
fn unescape_octal(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let code = bytes.get(i + 1..i + 4).filter(|d| d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match (bytes[i], code) {
            (b'\\', Some(d)) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(cache: &mut Cache, dir: &Path, after: &str) -> Vec<String> {
        let names = cache.names_after(dir, after).expect("a watched directory");
        names.into_iter().map(|(n, d)| if d { format!("{n}/") } else { n }).collect()
    }

    fn read(dir: &Path, after: &str) -> Vec<String> {
        let names = read_names(dir).unwrap().unwrap();
        let after = names.range::<str, _>((Bound::Excluded(after), Bound::Unbounded));
        after.map(|(n, d)| if *d { format!("{n}/") } else { n.clone() }).collect()
    }

    /// After commits, staged uploads linked into place and removed, renames, deletions and a
    /// subdirectory, a watched log lists what a read of the directory lists, without reading it.
    #[test]
    fn a_watched_log_lists_its_changes_without_reading_the_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let log = tmp.path().join("t/_delta_log");
        std::fs::create_dir_all(&log).unwrap();
        let mut cache = Cache::new().unwrap();
        for v in 0..5 {
            std::fs::write(log.join(format!("{v:020}.json")), b"{}").unwrap();
        }
        assert_eq!(listed(&mut cache, &log, ""), read(&log, ""));
        assert_eq!(cache.reads, 1);
        for v in 5_u32..300 {
            // as object_store's put with PutMode::Create: a staged file, linked, then removed
            let staged = log.join(format!("{v:020}.json#{v}"));
            std::fs::write(&staged, b"{}").unwrap();
            std::fs::hard_link(&staged, log.join(format!("{v:020}.json"))).unwrap();
            std::fs::remove_file(&staged).unwrap();
            if v % 100 == 99 {
                let tmp_cp = log.join("_last_checkpoint.tmp");
                std::fs::write(&tmp_cp, format!("{{\"version\":{v}}}")).unwrap();
                std::fs::rename(&tmp_cp, log.join("_last_checkpoint")).unwrap();
            }
            let after = format!("{:020}", v.saturating_sub(3));
            assert_eq!(listed(&mut cache, &log, &after), read(&log, &after), "at {v}");
        }
        // log cleanup, a subdirectory, a name in another script
        for v in 0..100 {
            std::fs::remove_file(log.join(format!("{v:020}.json"))).unwrap();
        }
        std::fs::create_dir(log.join("_sidecars")).unwrap();
        std::fs::write(log.join("ünïcødé.json"), b"{}").unwrap();
        assert_eq!(listed(&mut cache, &log, ""), read(&log, ""));
        assert!(listed(&mut cache, &log, "").contains(&"_sidecars/".to_owned()));
        assert_eq!(cache.reads, 1, "one read of the directory, then its events");
        // a name that is not UTF-8: no answer while it is there (the caller's walk reports it)
        use std::os::unix::ffi::OsStrExt as _;
        let odd = log.join(std::ffi::OsStr::from_bytes(b"\xff.json"));
        std::fs::write(&odd, b"{}").unwrap();
        assert!(cache.names_after(&log, "").is_none());
        std::fs::remove_file(&odd).unwrap();
        assert_eq!(listed(&mut cache, &log, ""), read(&log, ""));
    }

    /// A log replaced at its path (a table dropped and written again, or its directory moved
    /// away and another put there) lists the new directory's names, not the old one's.
    #[test]
    fn a_log_replaced_at_its_path_lists_the_new_one() {
        let tmp = tempfile::tempdir().unwrap();
        let log = tmp.path().join("t/_delta_log");
        std::fs::create_dir_all(&log).unwrap();
        std::fs::write(log.join("00000000000000000000.json"), b"old").unwrap();
        std::fs::write(log.join("00000000000000000001.json"), b"old").unwrap();
        let mut cache = Cache::new().unwrap();
        assert_eq!(listed(&mut cache, &log, "").len(), 2);
        // the table moved away (its log's watch sees nothing), a new one at the path
        std::fs::rename(tmp.path().join("t"), tmp.path().join("old_t")).unwrap();
        std::fs::create_dir_all(&log).unwrap();
        std::fs::write(log.join("00000000000000000000.json"), b"new").unwrap();
        assert_eq!(listed(&mut cache, &log, ""), vec!["00000000000000000000.json"]);
        // dropped and written again
        std::fs::remove_dir_all(tmp.path().join("t")).unwrap();
        std::fs::create_dir_all(&log).unwrap();
        for v in 0..3 {
            std::fs::write(log.join(format!("{v:020}.json")), b"again").unwrap();
        }
        assert_eq!(listed(&mut cache, &log, ""), read(&log, ""));
        assert_eq!(read(&log, "").len(), 3);
        // gone: no answer (the caller's read says why)
        std::fs::remove_dir_all(tmp.path().join("t")).unwrap();
        assert!(cache.names_after(&log, "").is_none());
    }

    /// More changes than the kernel queues between two listings: the directory is read again.
    #[test]
    fn a_queue_overflow_reads_the_directory_again() {
        let tmp = tempfile::tempdir().unwrap();
        let log = tmp.path().join("_delta_log");
        std::fs::create_dir_all(&log).unwrap();
        let mut cache = Cache::new().unwrap();
        assert!(listed(&mut cache, &log, "").is_empty());
        let queued: usize = std::fs::read_to_string("/proc/sys/fs/inotify/max_queued_events")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(16_384);
        for i in 0..=queued {
            std::fs::write(log.join(format!("{i:020}.json")), b"").unwrap();
        }
        let names = listed(&mut cache, &log, "");
        assert_eq!(names.len(), queued + 1);
        assert_eq!(names, read(&log, ""));
        assert_eq!(cache.reads, 2);
    }

    #[test]
    fn mount_points_with_spaces_are_unescaped() {
        assert_eq!(unescape_octal("/mnt/my\\040lake"), "/mnt/my lake");
        assert_eq!(unescape_octal("/a\\134b\\0"), "/a\\b\\0");
        assert_eq!(unescape_octal("/ü"), "/ü");
    }
}
