//! Delta source in batch mode: `spark.read.format("delta").load(path)`, with time travel.
//! As a stream ([`DeltaStream`]), each micro-batch reads the data files that new versions
//! appended.

use std::path::{Path, PathBuf};

use datafusion::prelude::{DataFrame, SessionContext};
use deltalake::DeltaTableBuilder;

use crate::model::NodeId;
use crate::model::node::{DeltaSource, ParseMode};

use super::super::checkpoint::SourceOffset;
use super::super::open_tables::VersionedTable;
use super::super::{EngineError, Result, delta};
use super::stream_source::{SourceData, empty, offset_mismatch};

/// Opens the table at `path` as of the source's version or timestamp (latest if neither).
pub async fn open_as_of(path: &Path, source: &DeltaSource) -> Result<deltalake::DeltaTable> {
    if !path.join("_delta_log").is_dir() {
        return Err(EngineError::TableNotFound { path: path.to_owned() });
    }
    let table = match (source.version, source.timestamp.as_deref()) {
        // the lakehouse panel's time travel: one place for the messages about missing versions
        (Some(v), _) => super::super::lakehouse::open_version(path, v).await?,
        (None, Some(ts)) => {
            DeltaTableBuilder::from_url(delta::table_url(path)?)?
                .with_datestring(ts)
                .map_err(|e| {
                    EngineError::Config(format!(
                        "timestamp `{ts}` is not RFC 3339 (e.g. 2026-11-24T10:00:00Z): {e}"
                    ))
                })?
                .load()
                .await?
        }
        (None, None) => delta::open(path).await?,
    };
    Ok(table)
}

/// The table as a DataFrame.
pub async fn read(ctx: &SessionContext, path: &Path, source: &DeltaSource) -> Result<DataFrame> {
    let table = open_as_of(path, source).await?;
    Ok(ctx.read_table(delta::scan_in(&table, ctx).await?)?)
}

/// The data files that versions `start` (exclusive) to `end` (inclusive) appended, read from
/// the commit files. A version that removes or rewrites data stops the stream with a clear
/// message, unless `skip_change_commits` is set (then the version is ignored, as in Spark).
pub fn appended_files(
    path: &Path,
    start: i64,
    end: i64,
    skip_change_commits: bool,
) -> Result<Vec<String>> {
    Ok(appended_files_with_rows(path, start, end, skip_change_commits)?.0)
}

/// What one commit did to the table's data files.
struct VersionChange {
    /// Files added with `dataChange = true`.
    adds: Vec<String>,
    /// Their rows from the statistics (`None` when a file has none).
    rows: Option<u64>,
    /// The commit removes or rewrites data (overwrite, merge, delete, update).
    data_removes: bool,
    /// The commit removes files without changing data (OPTIMIZE): files added before it
    /// are not in the snapshots from this version on.
    rearranges: bool,
}

fn version_change(path: &Path, v: i64) -> Result<VersionChange> {
    let commit = path.join("_delta_log").join(format!("{v:020}.json"));
    let text = std::fs::read_to_string(&commit).map_err(|e| {
        EngineError::Config(format!(
            "cannot read version {v} of {} ({e}); the log may have been cleaned up (delta.logRetentionDuration): reset the stream's checkpoint, and it starts from the table's current snapshot",
            path.display()
        ))
    })?;
    let mut change =
        VersionChange { adds: Vec::new(), rows: Some(0), data_removes: false, rearranges: false };
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let action: serde_json::Value = serde_json::from_str(line).map_err(|e| {
            EngineError::Config(format!("{}: bad commit JSON: {e}", commit.display()))
        })?;
        let data_change = |a: &serde_json::Value| {
            a.get("dataChange").and_then(serde_json::Value::as_bool).unwrap_or(true)
        };
        if let Some(add) = action.get("add") {
            if data_change(add)
                && let Some(p) = add.get("path").and_then(serde_json::Value::as_str)
            {
                change.adds.push(p.to_owned());
                let n = add
                    .get("stats")
                    .and_then(serde_json::Value::as_str)
                    .and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok())
                    .and_then(|s| s.get("numRecords").and_then(serde_json::Value::as_u64));
                change.rows = change.rows.zip(n).map(|(a, b)| a + b);
            }
        } else if let Some(remove) = action.get("remove") {
            if data_change(remove) {
                change.data_removes = true;
            } else {
                change.rearranges = true;
            }
        }
    }
    Ok(change)
}

/// Like [`appended_files`], with the number of rows the files hold according to their
/// statistics (`None` when a file has no statistics).
pub fn appended_files_with_rows(
    path: &Path,
    start: i64,
    end: i64,
    skip_change_commits: bool,
) -> Result<(Vec<String>, Option<u64>)> {
    let mut files = Vec::new();
    let mut rows = Some(0u64);
    for v in (start + 1)..=end {
        let change = version_change(path, v)?;
        if change.data_removes {
            if skip_change_commits {
                continue;
            }
            return Err(EngineError::Config(format!(
                "version {v} of {} removes or rewrites data (overwrite, merge, delete, update), which a Delta stream cannot follow; set skip_change_commits = true on the source to ignore such versions, or read the table in batch mode",
                path.display()
            )));
        }
        files.extend(change.adds);
        rows = rows.zip(change.rows).map(|(a, b)| a + b);
    }
    Ok((files, rows))
}

/// The data files of the table's snapshot at `version`, in Spark's order for an initial
/// snapshot (modification time, then path), with their rows from the statistics.
async fn snapshot_files(
    open: &VersionedTable,
    path: &Path,
    version: i64,
) -> Result<Vec<(String, Option<u64>)>> {
    let table = open.at(path, version).await?;
    let mut files: Vec<(i64, String, Option<u64>)> = table
        .snapshot()?
        .log_data()
        .iter()
        .map(|f| (f.modification_time(), f.path().into_owned(), f.num_records().map(|n| n as u64)))
        .collect();
    files.sort();
    Ok(files.into_iter().map(|(_, p, n)| (p, n)).collect())
}

/// The data of exactly the given files of `table` (opened at the version that has them).
pub async fn read_files_of(
    ctx: &SessionContext,
    table: &deltalake::DeltaTable,
    files: Vec<String>,
) -> Result<DataFrame> {
    let provider = delta::scan_in(table, ctx).with_file_paths(files).await?;
    Ok(ctx.read_table(provider)?)
}

/// A streaming Delta source's state between batches.
pub(crate) struct DeltaStream {
    node: NodeId,
    path: PathBuf,
    skip_change_commits: bool,
    max_files: usize,
    last: i64,
    /// No `starting_version`: the first batches read the table's snapshot, as Spark's Delta
    /// source does, then the versions after it.
    initial_snapshot: bool,
    /// The snapshot being read: (version, files read so far, files in it).
    snapshot: Option<(i64, u64, u64)>,
    bound: Option<i64>,
    backlog: u64,
    /// The newest version seen: later ones are found by probing their commit files.
    head: Option<i64>,
    /// The table as of the version last read, moved forward batch by batch.
    open: VersionedTable,
}

impl DeltaStream {
    /// Tails the table at `path` from the source's `startingVersion`.
    pub fn new(node: NodeId, path: PathBuf, cfg: &DeltaSource) -> Self {
        Self {
            node,
            path,
            skip_change_commits: cfg.skip_change_commits,
            max_files: cfg.max_files_per_trigger.unwrap_or(1000).max(1),
            last: cfg.starting_version.map_or(-1, |v| v - 1),
            initial_snapshot: cfg.starting_version.is_none(),
            snapshot: None,
            bound: None,
            backlog: 0,
            head: None,
            open: VersionedTable::default(),
        }
    }

    /// The table's newest version (-1 when there is no table): opened once, then found by
    /// probing for the commit files after the last one seen — O(new commits) per batch, where
    /// opening the table would replay the log since its last checkpoint.
    async fn latest_version(&mut self) -> Result<i64> {
        let mut v = match self.head {
            Some(v) => v,
            None => match delta::try_open(&self.path).await? {
                Some(t) => t.version().map_or(-1, |v| v as i64),
                None => -1,
            },
        };
        let log = self.path.join("_delta_log");
        while log.join(format!("{:020}.json", v + 1)).is_file() {
            v += 1;
        }
        self.head = Some(v);
        Ok(v)
    }

    pub fn node(&self) -> &NodeId {
        &self.node
    }

    pub fn describe(&self) -> String {
        format!("delta:{}", self.path.display())
    }

    pub fn backlog(&self) -> u64 {
        self.backlog
    }

    /// Marks a batch's versions (or part of the initial snapshot) as processed.
    pub fn advance(&mut self, offset: &SourceOffset) {
        match offset {
            SourceOffset::Delta { end_version, snapshot: Some([_, to, total]), .. } => {
                if to >= total {
                    self.last = self.last.max(*end_version);
                    self.snapshot = None;
                    self.initial_snapshot = false;
                } else if self.last < *end_version {
                    self.snapshot = Some((*end_version, *to, *total));
                }
            }
            SourceOffset::Delta { end_version, snapshot: None, .. } => {
                self.last = self.last.max(*end_version);
                self.initial_snapshot = false;
                self.snapshot = None;
            }
            _ => {}
        }
    }

    /// availableNow: only the versions committed now.
    pub async fn bind_available_now(&mut self) -> Result<()> {
        self.bound = Some(self.latest_version().await?);
        Ok(())
    }

    /// The next whole versions, up to about `maxFilesPerTrigger` new files.
    pub async fn plan_next(&mut self) -> Result<SourceOffset> {
        let latest = self.latest_version().await?;
        let target = self.bound.map_or(latest, |b| b.min(latest));
        // a fresh query without startingVersion reads the snapshot first (maxFilesPerTrigger
        // files a batch), then the versions after it: a log cleaned up long ago is no obstacle
        if self.snapshot.is_some() || (self.initial_snapshot && self.last < 0 && target >= 0) {
            let (version, from) = match self.snapshot {
                Some((v, read, _)) => (v, read),
                None => (target, 0),
            };
            let total = snapshot_files(&self.open, &self.path, version).await?.len() as u64;
            let to = (from + self.max_files as u64).min(total);
            self.backlog = total - to + (target - version).max(0) as u64;
            return Ok(SourceOffset::Delta {
                start_version: -1,
                end_version: version,
                snapshot: Some([from, to, total]),
            });
        }
        // whole versions, until about max_files new files; a version that rearranges files
        // (OPTIMIZE) only ever starts a batch, so every file a batch reads is in the snapshot
        // at its end version
        let last = self.last;
        let mut end = last;
        let mut files = 0;
        while end < target && (files < self.max_files || end == last) {
            let change = version_change(&self.path, end + 1)?;
            if change.rearranges && end > last {
                break;
            }
            if change.data_removes && !self.skip_change_commits {
                // stops the query with the message that names the version
                appended_files_with_rows(&self.path, end, end + 1, false)?;
            }
            files += change.adds.len();
            end += 1;
        }
        self.backlog = (target - end).max(0) as u64;
        Ok(SourceOffset::Delta { start_version: last, end_version: end, snapshot: None })
    }

    /// Reads exactly the files that the versions of `offset` appended.
    pub async fn read(&self, ctx: &SessionContext, offset: &SourceOffset) -> Result<SourceData> {
        let SourceOffset::Delta { start_version, end_version, snapshot } = offset else {
            return Err(offset_mismatch(offset, &self.describe()));
        };
        let path = &self.path;
        let (files, stats_rows) = match snapshot {
            Some([from, to, _]) => {
                let all = snapshot_files(&self.open, path, *end_version).await?;
                let part = all.get(*from as usize..(*to as usize).min(all.len())).unwrap_or(&[]);
                let rows = part.iter().map(|(_, n)| *n).sum::<Option<u64>>();
                (part.iter().map(|(p, _)| p.clone()).collect(), rows)
            }
            None => appended_files_with_rows(
                path,
                *start_version,
                *end_version,
                self.skip_change_commits,
            )?,
        };
        let table = self.open.at(path, *end_version).await?;
        let df = if files.is_empty() {
            empty(ctx, table.snapshot()?.snapshot().arrow_schema())?
        } else {
            read_files_of(ctx, &table, files).await?
        };
        // from the file statistics; only files without statistics are counted by a scan
        let rows = match stats_rows {
            Some(n) => n,
            None => df.clone().count().await? as u64,
        };
        Ok(SourceData { df, rows, bad: Vec::new(), mode: ParseMode::Permissive })
    }
}
