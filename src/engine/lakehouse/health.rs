//! A table's health, as the Lakehouse panel shows it: how many of its files are small, how
//! many versions its log holds, when it was last optimized and vacuumed, and how many bytes
//! lie in files no version references any more (what VACUUM would reclaim).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use deltalake::table::config::TablePropertiesExt as _;

use super::super::{Result, delta};
use super::files::{data_files_on_disk, decode_path};
use super::history::{commit_versions, history};

/// A file smaller than this fraction of the target size counts as small.
pub const SMALL_FILE_FRACTION: u64 = 4;
/// Databricks' `autoCompact.minNumFiles`: a table with at least this many small files needs
/// compaction (the sink's badge, and when auto-compaction runs).
pub const COMPACT_MIN_FILES: usize = 50;
/// Delta Lake's (Spark's) `delta.checkpointInterval` for a table that sets none: a stream's
/// upkeep writes a log checkpoint every this many commits (delta-rs's own default is 100). Each
/// commit's snapshot update lists and merges every commit since the last log checkpoint, ~25 µs
/// each (delta-kernel's incremental snapshot), so with 100 the update rose from 1.6 to 3.8 ms
/// between checkpoints; with 10, `bench upkeep --batches 100,1000,2000` back to back: batch p50
/// 6–7 → 4–5 ms, 1,000 batches in 5.0–6.2 s instead of 6.0–7.9.
pub const SPARK_CHECKPOINT_INTERVAL: u64 = 10;

/// The table's `delta.checkpointInterval`, or Spark's default when it sets none.
pub fn checkpoint_interval(snapshot: &deltalake::table::state::DeltaTableState) -> u64 {
    let set = snapshot.metadata().configuration().contains_key("delta.checkpointInterval");
    if set {
        snapshot.table_config().checkpoint_interval().get()
    } else {
        SPARK_CHECKPOINT_INTERVAL
    }
}

/// How many of the newest commits are searched for the last OPTIMIZE and VACUUM.
const HISTORY_SEARCHED: usize = 1000;

/// One table's health.
#[derive(Clone, Debug, Default)]
pub struct TableHealth {
    pub path: PathBuf,
    pub version: i64,
    pub files: usize,
    pub small_files: usize,
    /// The small files (relative paths) and their sizes: what OPTIMIZE would rewrite.
    pub small_file_list: Vec<(String, u64)>,
    pub total_bytes: u64,
    pub avg_file_bytes: u64,
    pub target_file_bytes: u64,
    /// Commit files still in `_delta_log`, and the oldest of them.
    pub log_versions: usize,
    pub oldest_version: Option<i64>,
    pub last_optimize: Option<(i64, DateTime<Utc>)>,
    pub last_vacuum: Option<(i64, DateTime<Utc>)>,
    /// Data files on disk that the current version does not reference (removed by a later
    /// version, or never committed), and their bytes.
    pub unreferenced_files: usize,
    pub unreferenced_bytes: u64,
    pub deleted_file_retention_hours: f64,
    pub log_retention_hours: f64,
    /// Commits between the log checkpoints a stream's upkeep writes ([`checkpoint_interval`]);
    /// a batch write through delta-rs checkpoints at delta-rs's own default (100) when unset.
    pub checkpoint_interval: u64,
}

impl TableHealth {
    pub fn needs_compaction(&self) -> bool {
        self.small_files >= COMPACT_MIN_FILES
    }
}

/// Counts the files under `target / SMALL_FILE_FRACTION` bytes.
pub(crate) fn small_file_count(sizes: impl Iterator<Item = i64>, target: u64) -> usize {
    let limit = (target / SMALL_FILE_FRACTION) as i64;
    sizes.filter(|s| *s < limit).count()
}

/// The health of the table at `path`.
pub async fn table_health(path: &Path) -> Result<TableHealth> {
    let table = delta::open(path).await?;
    let snapshot = table.snapshot()?;
    let config = snapshot.table_config();
    let target = config.target_file_size().get();
    let mut live = HashSet::new();
    let mut files = 0;
    let mut total_bytes = 0u64;
    let mut sizes = Vec::new();
    let mut small_file_list = Vec::new();
    let small_limit = (target / SMALL_FILE_FRACTION) as i64;
    for f in snapshot.log_data().iter() {
        files += 1;
        total_bytes += f.size().max(0) as u64;
        sizes.push(f.size());
        let path = decode_path(&f.path());
        if f.size() < small_limit {
            small_file_list.push((path.clone(), f.size().max(0) as u64));
        }
        live.insert(path);
    }
    small_file_list.sort();
    let unreferenced: Vec<(String, u64)> =
        data_files_on_disk(path).into_iter().filter(|(p, _)| !live.contains(p)).collect();
    let versions = commit_versions(&path.join("_delta_log")).await?;
    let recent = history(path, Some(HISTORY_SEARCHED)).await?;
    let last = |op: &str| {
        recent.iter().find(|h| h.operation == op).and_then(|h| Some((h.version, h.timestamp?)))
    };
    Ok(TableHealth {
        path: path.to_owned(),
        version: snapshot.version() as i64,
        files,
        small_files: small_file_count(sizes.into_iter(), target),
        small_file_list,
        total_bytes,
        avg_file_bytes: if files == 0 { 0 } else { total_bytes / files as u64 },
        target_file_bytes: target,
        log_versions: versions.len(),
        oldest_version: versions.iter().min().copied(),
        last_optimize: last("OPTIMIZE"),
        last_vacuum: last("VACUUM END"),
        unreferenced_files: unreferenced.len(),
        unreferenced_bytes: unreferenced.iter().map(|f| f.1).sum(),
        deleted_file_retention_hours: config.deleted_file_retention_duration().as_secs_f64()
            / 3600.0,
        log_retention_hours: config.log_retention_duration().as_secs_f64() / 3600.0,
        checkpoint_interval: checkpoint_interval(snapshot),
    })
}
