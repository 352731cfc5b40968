//! Upkeep of streaming Delta sinks in the background, as Databricks does it:
//! - **auto-compaction** (`autoCompact`): after a commit, once at least
//!   [`COMPACT_MIN_FILES`] small files have gathered in the table, an OPTIMIZE runs while the
//!   stream plans and reads its next batch;
//! - **log cleanup**: stream commits skip delta-rs's per-commit cleanup (it lists the whole
//!   `_delta_log` at every commit, a cost that grows with the log); instead, after a commit
//!   that wrote a log checkpoint, expired log files are deleted once, in the background, as
//!   Delta does "after checkpoint operations" per `delta.logRetentionDuration`.
//!
//! The next write to the same table waits for its upkeep, so our own commits never race it.
//! Even blind appends wait: Delta's rules allow an append and an OPTIMIZE to commit in either
//! order, but with delta-rs 1.1.3 letting them overlap lost a batch's rows (10–20 of 12,000 in
//! `upkeep::twelve_hundred_tiny_batches…`, with and without our open-table cache).
//! Exactly-once is untouched: a compaction's commit carries no stream transaction and adds
//! its files with `dataChange = false`, and a crash in the middle leaves only files no commit
//! references (VACUUM removes them); the stream's own batches are in the log already.
//! The small-file count is per table, not per partition: a table's partitions are compacted
//! together.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use deltalake::DeltaTable;
use deltalake::table::config::TablePropertiesExt as _;
use tokio::task::JoinHandle;

use super::super::delta::{self, CommitMeta};
use super::super::open_tables::OpenTables;
use super::super::{EngineError, Result};
use super::health::{COMPACT_MIN_FILES, small_file_count};
use super::upkeep::{OptimizeOptions, OptimizeReport, optimize_open};

/// What one background upkeep did.
#[derive(Debug)]
pub struct Compacted {
    pub sink: String,
    pub table: PathBuf,
    /// The compaction's outcome (`None` when only the log was cleaned).
    pub result: Option<Result<OptimizeReport>>,
    /// Log files deleted, or why cleaning failed.
    pub logs_cleaned: Option<Result<usize>>,
}

struct Done {
    compaction: Option<Result<OptimizeReport>>,
    small_after: Option<usize>,
    logs_cleaned: Option<Result<usize>>,
}

struct Sink {
    path: PathBuf,
    meta: CommitMeta,
    /// Small files believed to be in the table now.
    small_files: usize,
    /// Compact once this many small files gathered; `None`: never (auto_compact = false).
    min_files: Option<usize>,
    /// delta.checkpointInterval: a commit at version k·interval − 1 writes a log checkpoint.
    checkpoint_interval: u64,
    clean_logs: bool,
    pending: Option<JoinHandle<Done>>,
}

/// The background upkeep of one stream's Delta sinks.
#[derive(Default)]
pub struct AutoCompactor {
    sinks: BTreeMap<String, Sink>,
    done: Vec<Compacted>,
}

/// Small files of the table at `path` now (0 when there is no table yet), and its
/// checkpoint interval.
async fn table_state(path: &Path) -> Result<Option<(usize, u64)>> {
    let Some(table) = delta::try_open(path).await? else { return Ok(None) };
    let interval = table.snapshot()?.table_config().checkpoint_interval().get();
    Ok(Some((small_files(&table)?, interval)))
}

/// Small files of `table`.
fn small_files(table: &DeltaTable) -> Result<usize> {
    let snapshot = table.snapshot()?;
    let target = snapshot.table_config().target_file_size().get();
    Ok(small_file_count(snapshot.log_data().iter().map(|f| f.size()), target))
}

/// Deletes the expired log files of the table at `path` (up to its newest checkpoint), unless
/// the table turned `delta.enableExpiredLogCleanup` off.
async fn clean_logs(path: &Path) -> Result<usize> {
    let table = delta::open(path).await?;
    if !table.snapshot()?.table_config().enable_expired_log_cleanup() {
        return Ok(0);
    }
    Ok(deltalake::checkpoints::cleanup_metadata(&table, None).await?)
}

impl AutoCompactor {
    /// Watches the sink `id` writing to `path`. `min_files` small files start a compaction
    /// (`Some(None)`: the default [`COMPACT_MIN_FILES`]; `None`: no compaction, only log
    /// cleanup). `interval` is the sink's `delta.checkpointInterval` for a table it creates.
    pub async fn watch(
        &mut self,
        id: &str,
        path: &Path,
        meta: CommitMeta,
        min_files: Option<Option<usize>>,
        interval: Option<u64>,
    ) -> Result<()> {
        let (small_files, table_interval) = table_state(path).await?.unwrap_or((0, 100));
        self.sinks.insert(
            id.to_owned(),
            Sink {
                path: path.to_owned(),
                meta,
                small_files,
                min_files: min_files.map(|m| m.unwrap_or(COMPACT_MIN_FILES).max(2)),
                checkpoint_interval: interval.unwrap_or(table_interval).max(1),
                clean_logs: false,
                pending: None,
            },
        );
        Ok(())
    }

    /// Waits for the sink's upkeep in flight, if any; call before writing to its table.
    pub async fn before_write(&mut self, id: &str) {
        let Some(sink) = self.sinks.get_mut(id) else { return };
        let Some(task) = sink.pending.take() else { return };
        let done = task.await.unwrap_or_else(|e| Done {
            compaction: Some(Err(EngineError::Config(format!("auto-compaction stopped: {e}")))),
            small_after: None,
            logs_cleaned: None,
        });
        if let Some(small) = done.small_after {
            sink.small_files = small;
        }
        self.done.push(Compacted {
            sink: id.to_owned(),
            table: sink.path.clone(),
            result: done.compaction,
            logs_cleaned: done.logs_cleaned,
        });
    }

    /// Counts what a commit of the sink added, at `version`.
    pub fn committed(&mut self, id: &str, files_added: u64, version: i64) {
        if let Some(sink) = self.sinks.get_mut(id) {
            sink.small_files += files_added as usize;
            // delta-rs wrote a log checkpoint with this commit: time to clean the log
            if version >= 0 && (version as u64 + 1).is_multiple_of(sink.checkpoint_interval) {
                sink.clean_logs = true;
            }
        }
    }

    /// Starts the upkeep that is due: compaction of tables with enough small files, log
    /// cleanup after a checkpoint.
    pub fn start_due(&mut self, tables: &OpenTables) {
        for sink in self.sinks.values_mut() {
            let compact = sink.min_files.is_some_and(|m| sink.small_files >= m);
            if sink.pending.is_some() || !(compact || sink.clean_logs) {
                continue;
            }
            let (path, meta, clean) = (sink.path.clone(), sink.meta.clone(), sink.clean_logs);
            let tables = tables.clone();
            sink.pending = Some(tokio::spawn(async move {
                let mut done = Done { compaction: None, small_after: None, logs_cleaned: None };
                if compact {
                    // the stream's open table: no log replay (its cost grows with the log)
                    let compacted = async {
                        let table = tables.latest(&path).await?.ok_or_else(|| {
                            EngineError::Config(format!("{}: no table to compact", path.display()))
                        })?;
                        // delta-rs would list the whole `_delta_log` after the commit to clean
                        // it (a cost that grows with the log): cleaned below, after log
                        // checkpoints only
                        let props = meta.properties().with_cleanup_expired_logs(Some(false));
                        let opts = OptimizeOptions::default();
                        let (report, table) = optimize_open(table, &path, &opts, props).await?;
                        let small = small_files(&table).ok();
                        tables.remember(&path, table).await;
                        Ok((report, small))
                    }
                    .await;
                    done.compaction = Some(compacted.map(|(report, small)| {
                        done.small_after = small;
                        report
                    }));
                }
                if clean {
                    done.logs_cleaned = Some(clean_logs(&path).await);
                }
                done
            }));
            if compact {
                // counted again from the table when the compaction ends
                sink.small_files = 0;
            }
            sink.clean_logs = false;
        }
    }

    /// Waits for every upkeep in flight (the stream is ending).
    pub async fn finish(&mut self) {
        let ids: Vec<String> = self.sinks.keys().cloned().collect();
        for id in ids {
            self.before_write(&id).await;
        }
    }

    /// The upkeep that ended since the last call.
    pub fn take_done(&mut self) -> Vec<Compacted> {
        std::mem::take(&mut self.done)
    }
}
