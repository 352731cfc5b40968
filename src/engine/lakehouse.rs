//! The lakehouse as a user sees it: tables by layer, their versions and history.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use arrow::array::{Array, AsArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Int64Type};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use chrono::{DateTime, Utc};
use datafusion::common::Column;
use datafusion::functions_window::expr_fn::row_number;
use datafusion::logical_expr::{Expr, ExprFunctionExt};
use datafusion::prelude::{DataFrame, SessionContext};
use deltalake::DeltaTable;
use futures::TryStreamExt;
use serde_json::Value;

use crate::model::node::Layer;

use super::{EngineError, Preview, Result, delta, plan};

/// One Delta table found under the lakehouse root.
#[derive(Clone, Debug)]
pub struct TableInfo {
    /// Path relative to the root, with `/` separators (`silver/users`).
    pub name: String,
    pub path: PathBuf,
    pub layer: Option<Layer>,
    pub version: i64,
    /// From the file statistics; `None` when a file has none.
    pub rows: Option<u64>,
    pub files: usize,
    pub size_bytes: u64,
}

/// Every Delta table under `root` (up to four folders deep), sorted by layer then name.
pub async fn list_tables(root: &Path) -> Result<Vec<TableInfo>> {
    let mut dirs = Vec::new();
    find_tables(root, 0, &mut dirs)?;
    let mut out = Vec::new();
    for dir in dirs {
        let Some(table) = delta::try_open(&dir).await? else {
            continue;
        };
        let name = dir
            .strip_prefix(root)
            .unwrap_or(&dir)
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join("/");
        let snapshot = table.snapshot()?;
        let mut rows = Some(0u64);
        let mut files = 0;
        let mut size_bytes = 0u64;
        for f in snapshot.log_data().iter() {
            files += 1;
            size_bytes += f.size().max(0) as u64;
            rows = match (rows, f.num_records()) {
                (Some(r), Some(n)) => Some(r + n as u64),
                _ => None,
            };
        }
        out.push(TableInfo {
            layer: Layer::from_table_path(&name),
            name,
            path: dir,
            version: snapshot.version() as i64,
            rows,
            files,
            size_bytes,
        });
    }
    out.sort_by(|a, b| (a.layer, &a.name).cmp(&(b.layer, &b.name)));
    Ok(out)
}

pub(crate) fn find_tables(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) -> Result<()> {
    if dir.join("_delta_log").is_dir() {
        out.push(dir.to_owned());
        return Ok(());
    }
    if depth >= 4 {
        return Ok(());
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(EngineError::io(dir, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| EngineError::io(dir, e))?;
        let name = entry.file_name();
        if entry.file_type().is_ok_and(|t| t.is_dir()) && !name.to_string_lossy().starts_with('.') {
            find_tables(&entry.path(), depth + 1, out)?;
        }
    }
    Ok(())
}

/// One commit of a table's history.
#[derive(Clone, Debug)]
pub struct HistoryEntry {
    pub version: i64,
    pub timestamp: Option<DateTime<Utc>>,
    pub operation: String,
    pub parameters: serde_json::Map<String, Value>,
    pub metrics: serde_json::Map<String, Value>,
    pub project: Option<String>,
    pub pipeline: Option<String>,
    pub node: Option<String>,
    /// Rows the commit added to the table. An updated row counts as one added row (its new
    /// value) and one removed row (its old value); rows only copied into rewritten files do
    /// not count. `None` when neither the metrics nor the file statistics say.
    ///
    /// Where the count comes from, by operation:
    /// - MERGE: `operationMetrics` inserted + updated rows (`num_target_rows_inserted` +
    ///   `num_target_rows_updated`; Spark: `numTargetRowsInserted` + `numTargetRowsUpdated`).
    /// - UPDATE: `num_updated_rows` (Spark: `numUpdatedRows`).
    /// - DELETE: 0.
    /// - WRITE (append, overwrite) and any other commit that records `num_added_rows`
    ///   (Spark: `numOutputRows`, e.g. CREATE TABLE AS SELECT, STREAMING UPDATE): that metric.
    /// - Anything else (RESTORE, metadata changes, writers without metrics, or when one of the
    ///   metrics above is missing): the `numRecords` statistics of the commit's `add` actions
    ///   with `dataChange` (so OPTIMIZE counts 0), minus rows their deletion vectors delete.
    pub rows_added: Option<u64>,
    /// Rows the commit removed from the table: deleted, replaced by an overwrite, or the old
    /// value of an updated row. `None` when neither the metrics nor the file statistics say.
    ///
    /// Where the count comes from, by operation:
    /// - MERGE: deleted + updated rows (`num_target_rows_deleted` + `num_target_rows_updated`;
    ///   Spark: `numTargetRowsDeleted` + `numTargetRowsUpdated`).
    /// - UPDATE: `num_updated_rows` (Spark: `numUpdatedRows`).
    /// - DELETE: `num_deleted_rows` (Spark: `numDeletedRows`); delta-rs leaves it out when it
    ///   drops whole files, then: rows of the removed files minus rows of the rewritten ones.
    /// - WRITE and the other commits with `num_added_rows`/`numOutputRows`: 0 without `remove`
    ///   actions; else the rows of the removed files minus the rows copied unchanged into the
    ///   new files (rows of the `add` actions minus the added rows; 0 for a plain overwrite).
    /// - Anything else: the rows of the `remove` actions with `dataChange`.
    ///
    /// "Rows of the removed files" come from the `remove` action's own `stats` when it has
    /// them (Spark may write them), else from the `numRecords` of the `add` action that made
    /// the file live (delta-rs writes `remove` actions without statistics): the history
    /// replays the commits it lists on top of the snapshot of the version before the oldest.
    pub rows_removed: Option<u64>,
}

impl HistoryEntry {
    /// `pipeline/node` that wrote the commit, or `-`.
    pub fn written_by(&self) -> String {
        match (&self.pipeline, &self.node) {
            (Some(p), Some(n)) => format!("{p}/{n}"),
            (None, Some(n)) => n.clone(),
            _ => "-".into(),
        }
    }

    /// Rows added, updated and removed, as far as the commit recorded them.
    pub fn metrics_summary(&self) -> String {
        let keys = [
            ("num_added_rows", "rows added"),
            ("num_target_rows_inserted", "inserted"),
            ("num_target_rows_updated", "updated"),
            ("num_target_rows_deleted", "deleted"),
            ("num_added_files", "files added"),
            ("num_removed_files", "files removed"),
        ];
        keys.iter()
            .filter_map(|(k, label)| {
                let n = self.metrics.get(*k)?.as_u64()?;
                (n > 0 || *k == "num_added_rows").then(|| format!("{n} {label}"))
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The history of the table at `path`, newest first: the last `limit` commits (all if
/// `None`) whose commit files are still in `_delta_log`.
///
/// Versions come from the commit file names, so they are exact even for commits without a
/// `readVersion`. See [`HistoryEntry::rows_added`] for where the row counts come from.
pub async fn history(path: &Path, limit: Option<usize>) -> Result<Vec<HistoryEntry>> {
    let table = delta::open(path).await?;
    let latest = table.version().map(|v| v as i64).unwrap_or(-1);
    let log = path.join("_delta_log");
    let mut versions: Vec<i64> =
        commit_versions(&log).await?.into_iter().filter(|v| *v <= latest).collect();
    versions.sort_unstable_by(|a, b| b.cmp(a));
    if let Some(limit) = limit {
        versions.truncate(limit);
    }
    // oldest first, so that the files each commit removes can be looked up in the files
    // that the commits before it added
    let mut commits = Vec::with_capacity(versions.len());
    for &version in versions.iter().rev() {
        if let Some(commit) = read_commit(&log, version).await? {
            commits.push(commit);
        }
    }

    let needs_lookup = commits.iter().any(|c| {
        c.removes.iter().any(|r| r.data_change && r.num_records.is_none())
            && c.row_changes(None).1.is_none()
    });
    let mut live = match commits.first() {
        Some(first) if needs_lookup => live_file_records(path, first.version - 1).await,
        _ => None,
    };

    let mut out = Vec::with_capacity(commits.len());
    let mut previous: Option<i64> = None;
    for commit in commits {
        if previous.is_some_and(|p| p + 1 != commit.version) {
            // a commit file is missing: the files live before this one are unknown
            live = None;
        }
        previous = Some(commit.version);
        let removed_rows = commit.removed_rows(live.as_ref());
        let (rows_added, rows_removed) = commit.row_changes(removed_rows);
        if let Some(live) = live.as_mut() {
            commit.apply(live);
        }
        out.push(commit.into_entry(rows_added, rows_removed));
    }
    out.reverse();
    Ok(out)
}

/// Versions of the commit files (`<20 digits>.json`) in a `_delta_log` folder.
async fn commit_versions(log: &Path) -> Result<Vec<i64>> {
    let mut entries = tokio::fs::read_dir(log).await.map_err(|e| EngineError::io(log, e))?;
    let mut versions = Vec::new();
    while let Some(entry) = entries.next_entry().await.map_err(|e| EngineError::io(log, e))? {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if let Some(stem) = name.strip_suffix(".json")
            && stem.len() == 20
            && stem.bytes().all(|b| b.is_ascii_digit())
            && let Ok(v) = stem.parse::<i64>()
        {
            versions.push(v);
        }
    }
    Ok(versions)
}

/// An `add` or `remove` action of a commit.
#[derive(Debug)]
struct FileAction {
    /// The path as written in the log.
    path: String,
    data_change: bool,
    /// `numRecords` of the action's statistics (rows in the file, deleted or not).
    num_records: Option<u64>,
    /// Rows of the file that the action's deletion vector marks deleted.
    deleted_by_dv: u64,
}

impl FileAction {
    fn parse(action: &Value) -> Option<Self> {
        let path = action.get("path")?.as_str()?.to_owned();
        let num_records = action
            .get("stats")
            .and_then(Value::as_str)
            .and_then(|s| serde_json::from_str::<Value>(s).ok())
            .and_then(|s| s.get("numRecords").and_then(Value::as_u64));
        Some(Self {
            path,
            data_change: action.get("dataChange").and_then(Value::as_bool).unwrap_or(true),
            num_records,
            deleted_by_dv: action
                .get("deletionVector")
                .and_then(|dv| dv.get("cardinality"))
                .and_then(Value::as_u64)
                .unwrap_or(0),
        })
    }
}

/// What one commit file holds.
#[derive(Debug)]
struct Commit {
    version: i64,
    info: serde_json::Map<String, Value>,
    adds: Vec<FileAction>,
    removes: Vec<FileAction>,
}

async fn read_commit(log: &Path, version: i64) -> Result<Option<Commit>> {
    let file = log.join(format!("{version:020}.json"));
    let text = match tokio::fs::read_to_string(&file).await {
        Ok(t) => t,
        // cleaned up since the listing
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(EngineError::io(&file, e)),
    };
    let mut commit = Commit { version, info: Default::default(), adds: vec![], removes: vec![] };
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let action: Value = serde_json::from_str(line).map_err(|e| {
            EngineError::Config(format!("{}: bad commit JSON: {e}", file.display()))
        })?;
        if let Some(info) = action.get("commitInfo").and_then(Value::as_object) {
            commit.info = info.clone();
        } else if let Some(add) = action.get("add").and_then(FileAction::parse) {
            commit.adds.push(add);
        } else if let Some(remove) = action.get("remove").and_then(FileAction::parse) {
            commit.removes.push(remove);
        }
    }
    Ok(Some(commit))
}

/// `numRecords` of every file live at `version` (empty before version 0), by log path; `None`
/// when that version cannot be read.
async fn live_file_records(path: &Path, version: i64) -> Option<HashMap<String, Option<u64>>> {
    if version < 0 {
        return Some(HashMap::new());
    }
    let table = open_version(path, version).await.ok()?;
    let files = snapshot_files(&table).ok()?;
    Some(files.into_iter().map(|f| (f.path, f.num_records)).collect())
}

impl Commit {
    fn metric(&self, keys: &[&str]) -> Option<u64> {
        let metrics = self.info.get("operationMetrics")?.as_object()?;
        keys.iter().find_map(|k| match metrics.get(*k)? {
            Value::Number(n) => n.as_u64(),
            // Spark writes its metrics as strings
            Value::String(s) => s.parse().ok(),
            _ => None,
        })
    }

    fn operation(&self) -> &str {
        self.info.get("operation").and_then(Value::as_str).unwrap_or_default()
    }

    /// Rows of the data-changing `add` actions (statistics minus deletion vectors).
    fn added_rows(&self) -> Option<u64> {
        self.adds
            .iter()
            .filter(|a| a.data_change)
            .map(|a| a.num_records.map(|n| n.saturating_sub(a.deleted_by_dv)))
            .sum()
    }

    /// Rows of the data-changing `remove` actions, from their own statistics or else from the
    /// `add` that made the file live (`live`: the files live before this commit).
    fn removed_rows(&self, live: Option<&HashMap<String, Option<u64>>>) -> Option<u64> {
        self.removes
            .iter()
            .filter(|r| r.data_change)
            .map(|r| {
                let n = r.num_records.or_else(|| live?.get(&r.path).copied().flatten())?;
                Some(n.saturating_sub(r.deleted_by_dv))
            })
            .sum()
    }

    /// Rows added and removed; `removed_by_stats` is [`Commit::removed_rows`] when known.
    fn row_changes(&self, removed_by_stats: Option<u64>) -> (Option<u64>, Option<u64>) {
        let added_by_stats = self.added_rows();
        let inserted = self.metric(&["num_target_rows_inserted", "numTargetRowsInserted"]);
        let updated = self.metric(&[
            "num_target_rows_updated",
            "numTargetRowsUpdated",
            "num_updated_rows",
            "numUpdatedRows",
        ]);
        let deleted = self.metric(&[
            "num_target_rows_deleted",
            "numTargetRowsDeleted",
            "num_deleted_rows",
            "numDeletedRows",
        ]);
        let written = self.metric(&["num_added_rows", "numOutputRows"]);
        let no_removes = !self.removes.iter().any(|r| r.data_change);
        // Rows that the commit removed, knowing it added `added` new rows: the removed files'
        // rows minus those copied unchanged into its new files.
        let removed_given = |added: Option<u64>| -> Option<u64> {
            if no_removes {
                return Some(0);
            }
            let copied = added_by_stats?.checked_sub(added?)?;
            removed_by_stats?.checked_sub(copied)
        };
        match self.operation() {
            "MERGE" => match (inserted, updated, deleted) {
                (Some(i), Some(u), Some(d)) => (Some(i + u), Some(d + u)),
                _ => (added_by_stats, removed_by_stats),
            },
            "UPDATE" => match updated {
                Some(u) => (Some(u), Some(u)),
                None => (added_by_stats, removed_by_stats),
            },
            "DELETE" => (Some(0), deleted.or_else(|| removed_given(Some(0)))),
            _ if written.is_some() => (written, removed_given(written)),
            _ => (added_by_stats, if no_removes { Some(0) } else { removed_by_stats }),
        }
    }

    /// Updates the live files (as of the version before this commit) to this commit.
    fn apply(&self, live: &mut HashMap<String, Option<u64>>) {
        for r in &self.removes {
            live.remove(&r.path);
        }
        for a in &self.adds {
            live.insert(a.path.clone(), a.num_records);
        }
    }

    fn into_entry(self, rows_added: Option<u64>, rows_removed: Option<u64>) -> HistoryEntry {
        let text = |k: &str| self.info.get(k).and_then(Value::as_str).map(str::to_owned);
        let object = |k: &str| self.info.get(k).and_then(Value::as_object).cloned();
        let timestamp = ["inCommitTimestamp", "timestamp"]
            .iter()
            .find_map(|k| self.info.get(*k).and_then(Value::as_i64))
            .and_then(DateTime::from_timestamp_millis);
        HistoryEntry {
            version: self.version,
            timestamp,
            operation: self.operation().to_owned(),
            parameters: object("operationParameters").unwrap_or_default(),
            metrics: object("operationMetrics").unwrap_or_default(),
            project: text("medallion.project"),
            pipeline: text("medallion.pipeline"),
            node: text("medallion.node"),
            rows_added,
            rows_removed,
        }
    }
}

/// One data file of a snapshot.
#[derive(Debug)]
struct SnapshotFile {
    /// The path as written in the log (URL-encoded, usually relative to the table root), which
    /// is what a file selection of the table provider matches.
    path: String,
    /// The file's deletion vector, printed (`None` without one): the same path with another
    /// deletion vector holds other rows.
    deletion_vector: Option<String>,
    /// `numRecords` of the statistics: rows in the file, deleted or not.
    num_records: Option<u64>,
    /// Rows that the deletion vector marks deleted.
    deleted_by_dv: u64,
}

/// The data files of the table's loaded snapshot.
fn snapshot_files(table: &DeltaTable) -> Result<Vec<SnapshotFile>> {
    let mut out = Vec::new();
    for batch in table.snapshot()?.add_actions_batches(false)? {
        let column = |name: &str| {
            batch.column_by_name(name).cloned().ok_or_else(|| {
                EngineError::Config(format!("the table's file list has no `{name}` column"))
            })
        };
        let paths = cast(&column("path")?, &DataType::Utf8)?;
        let paths = paths.as_string::<i32>();
        let records = cast(&column("num_records")?, &DataType::Int64)?;
        let records = records.as_primitive::<Int64Type>();
        let dv = batch.column_by_name("deletion_vector").and_then(|c| c.as_struct_opt());
        let dv_text = dv.map(|dv| ArrayFormatter::try_new(dv, &FormatOptions::default()));
        let dv_text = dv_text.transpose()?;
        let cardinality = match dv.and_then(|dv| dv.column_by_name("cardinality")) {
            Some(c) => Some(cast(c, &DataType::Int64)?),
            None => None,
        };
        let cardinality = cardinality.as_ref().map(|c| c.as_primitive::<Int64Type>());
        for i in 0..batch.num_rows() {
            let has_dv = dv.is_some_and(|dv| dv.is_valid(i));
            out.push(SnapshotFile {
                path: paths.value(i).to_owned(),
                deletion_vector: match &dv_text {
                    Some(f) if has_dv => Some(f.value(i).to_string()),
                    _ => None,
                },
                num_records: records.is_valid(i).then(|| records.value(i).max(0) as u64),
                deleted_by_dv: match cardinality {
                    Some(c) if has_dv && c.is_valid(i) => c.value(i).max(0) as u64,
                    _ => 0,
                },
            });
        }
    }
    Ok(out)
}

/// Rows of the files according to their statistics (minus deletion vectors); `None` when a
/// file has no statistics.
fn stats_rows(files: &[SnapshotFile]) -> Option<u64> {
    files.iter().map(|f| f.num_records.map(|n| n.saturating_sub(f.deleted_by_dv))).sum()
}

/// Opens the table at `path` as it was at `version`, with a message naming the table and the
/// version when that version does not exist or can no longer be read.
pub(crate) async fn open_version(path: &Path, version: i64) -> Result<DeltaTable> {
    if !path.join("_delta_log").is_dir() {
        return Err(EngineError::TableNotFound { path: path.to_owned() });
    }
    let missing =
        |why: String| EngineError::Config(format!("version {version} of {} {why}", path.display()));
    let v = u64::try_from(version)
        .map_err(|_| missing("does not exist: versions start at 0".to_owned()))?;
    let log = path.join("_delta_log");
    if let Some(latest) = commit_versions(&log).await?.into_iter().max()
        && version > latest
    {
        return Err(missing(format!("does not exist: the latest version is {latest}")));
    }
    deltalake::open_table_with_version(delta::table_url(path)?, v).await.map_err(|e| {
        missing(format!("cannot be read; its log may have been cleaned up (log retention): {e}"))
    })
}

/// A table as it was at one version.
#[derive(Clone, Debug)]
pub struct VersionPreview {
    pub version: i64,
    /// All rows of that version: from the file statistics (minus rows that deletion vectors
    /// delete), or counted by a scan when a file has no statistics.
    pub rows: u64,
    /// The first rows of that version.
    pub preview: Preview,
}

/// Time travel: the table at `path` as it was at `version`, its row count and its first
/// `limit` rows. A version that does not exist or whose log was cleaned up is an error that
/// names the table and the version.
pub async fn table_at_version(path: &Path, version: i64, limit: usize) -> Result<VersionPreview> {
    let table = open_version(path, version).await?;
    let unreadable = |e: datafusion::error::DataFusionError| {
        EngineError::Config(format!(
            "cannot read version {version} of {}; its data files may have been vacuumed: {e}",
            path.display()
        ))
    };
    let ctx = plan::session_context();
    let df = ctx.read_table(table.table_provider().await?)?;
    let rows = match stats_rows(&snapshot_files(&table)?) {
        Some(n) => n,
        None => df.clone().count().await.map_err(unreadable)? as u64,
    };
    let schema = plan::arrow_schema(&df);
    let batches = df.limit(0, Some(limit))?.collect().await.map_err(unreadable)?;
    Ok(VersionPreview { version, rows, preview: Preview { schema, batches } })
}

/// How the rows of two versions of a table differ.
#[derive(Clone, Debug)]
pub struct VersionDiff {
    pub from: i64,
    pub to: i64,
    /// Rows in `to` that are not in `from`, counting duplicates (`to EXCEPT ALL from`).
    pub rows_added: u64,
    /// Rows in `from` that are not in `to`, counting duplicates (`from EXCEPT ALL to`).
    pub rows_removed: u64,
    /// Up to `limit` of the added rows, in no particular order.
    pub added: Preview,
    /// Up to `limit` of the removed rows, in no particular order.
    pub removed: Preview,
}

/// Compares versions `from` and `to` of the table at `path` row by row, as multisets: a row
/// that `to` holds twice and `from` once is one added row. An updated row is one removed
/// row (its old value) and one added row (its new value).
///
/// Only the data files that differ between the two snapshots are read: a file in both (same
/// path, same deletion vector) holds the same rows in both, so it cancels out. The rows of
/// the files only in `to` are compared with those of the files only in `from`, each side read
/// through its version's Delta table provider restricted to those files (so partition values
/// and deletion vectors are applied as in a normal read). The cost is that of reading (and
/// sorting) the differing files, not the table.
///
/// Nested columns (structs, lists, maps) compare by value, as is, and NULL equals NULL. When
/// the two versions have different columns (names or types), a row of one cannot equal a
/// row of the other: every row of the differing files counts.
pub async fn compare_versions(
    path: &Path,
    from: i64,
    to: i64,
    limit: usize,
) -> Result<VersionDiff> {
    let old = open_version(path, from).await?;
    let new = open_version(path, to).await?;
    let old_files = snapshot_files(&old)?;
    let new_files = snapshot_files(&new)?;
    let only_in = |files: &[SnapshotFile], other: &[SnapshotFile]| -> Vec<String> {
        let other: HashSet<(&str, Option<&str>)> =
            other.iter().map(|f| (f.path.as_str(), f.deletion_vector.as_deref())).collect();
        files
            .iter()
            .filter(|f| !other.contains(&(f.path.as_str(), f.deletion_vector.as_deref())))
            .map(|f| f.path.clone())
            .collect()
    };
    let only_new = only_in(&new_files, &old_files);
    let only_old = only_in(&old_files, &new_files);

    let ctx = plan::session_context();
    let added_side = files_frame(&ctx, &new, &only_new).await?;
    let removed_side = files_frame(&ctx, &old, &only_old).await?;
    let comparable = same_columns(&added_side, &removed_side);
    let unreadable = |e: EngineError| {
        EngineError::Config(format!(
            "cannot compare versions {from} and {to} of {}: {e}",
            path.display()
        ))
    };
    let (rows_added, added) = except_all(
        added_side.clone(),
        (comparable && !only_old.is_empty()).then(|| removed_side.clone()),
        limit,
    )
    .await
    .map_err(unreadable)?;
    let (rows_removed, removed) =
        except_all(removed_side, (comparable && !only_new.is_empty()).then_some(added_side), limit)
            .await
            .map_err(unreadable)?;
    Ok(VersionDiff { from, to, rows_added, rows_removed, added, removed })
}

/// The rows of exactly `files` (log paths) of the table's loaded version.
async fn files_frame(
    ctx: &SessionContext,
    table: &DeltaTable,
    files: &[String],
) -> Result<DataFrame> {
    let provider = table.table_provider().with_file_paths(files.iter().cloned()).await?;
    Ok(ctx.read_table(provider)?)
}

/// Whether two frames have the same column names and types (in order).
fn same_columns(a: &DataFrame, b: &DataFrame) -> bool {
    let (a, b) = (a.schema().fields(), b.schema().fields());
    a.len() == b.len()
        && a.iter()
            .zip(b.iter())
            .all(|(x, y)| x.name() == y.name() && x.data_type() == y.data_type())
}

/// Name of the column that numbers equal rows while comparing.
const OCCURRENCE: &str = "__medallion_occurrence";

/// `left EXCEPT ALL right` with multiset semantics (all of `left` without `right`): the number
/// of rows and the first `limit` of them.
///
/// DataFusion's `EXCEPT ALL` is an anti join, which drops every copy of a row that the right
/// side holds once; numbering the copies of each distinct row on both sides (`row_number()`
/// over all columns) and anti-joining on the columns and that number keeps `n - m` copies of
/// a row held `n` times on the left and `m` times on the right. The join treats NULLs as equal.
async fn except_all(
    left: DataFrame,
    right: Option<DataFrame>,
    limit: usize,
) -> Result<(u64, Preview)> {
    let diff = match right {
        None => left,
        Some(right) => {
            let columns: Vec<Expr> = left
                .schema()
                .fields()
                .iter()
                .map(|f| Expr::Column(Column::from_name(f.name())))
                .collect();
            numbered(left)?.except(numbered(right)?)?.select(columns)?
        }
    };
    let mut stream = diff.execute_stream().await?;
    let schema = stream.schema();
    let mut rows = 0u64;
    let mut batches = Vec::new();
    let mut kept = 0usize;
    while let Some(batch) = stream.try_next().await? {
        if kept < limit && batch.num_rows() > 0 {
            let take = (limit - kept).min(batch.num_rows());
            batches.push(batch.slice(0, take));
            kept += take;
        }
        rows += batch.num_rows() as u64;
    }
    Ok((rows, Preview { schema, batches }))
}

/// `df` with a column numbering the copies of each distinct row (1, 2, ...).
fn numbered(df: DataFrame) -> Result<DataFrame> {
    let columns: Vec<Expr> =
        df.schema().fields().iter().map(|f| Expr::Column(Column::from_name(f.name()))).collect();
    let number = row_number().partition_by(columns).build()?.alias(OCCURRENCE);
    Ok(df.window(vec![number])?)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{
        ArrayRef, Int32Array, Int64Array, ListBuilder, RecordBatch, StringArray, StringBuilder,
        StructArray,
    };
    use arrow::datatypes::{Field, Schema};
    use datafusion::logical_expr::{col, lit};
    use deltalake::protocol::SaveMode;

    use super::*;
    use crate::engine::delta::CommitMeta;

    /// (id, name, user_skills, (city, zip))
    type Row = (i64, Option<&'static str>, Option<&'static [&'static str]>, (&'static str, i32));

    const ROWS: [Row; 6] = [
        (1, Some("ann"), Some(&["sql", "rust"]), ("Oslo", 100)),
        (2, None, None, ("Rome", 200)),
        (3, Some("cid"), Some(&[]), ("Lima", 300)),
        (4, Some("dan"), Some(&["go"]), ("Kyiv", 400)),
        (5, Some("eve"), Some(&["sql", "go"]), ("Oslo", 500)),
        (6, Some("fay"), Some(&["rust"]), ("Oslo", 100)),
    ];

    fn batch(ids: &[i64]) -> RecordBatch {
        let rows: Vec<&Row> =
            ids.iter().map(|id| ROWS.iter().find(|r| r.0 == *id).expect("known id")).collect();
        let mut skills = ListBuilder::new(StringBuilder::new());
        for r in &rows {
            match r.2 {
                Some(list) => {
                    for s in list {
                        skills.values().append_value(s);
                    }
                    skills.append(true);
                }
                None => skills.append(false),
            }
        }
        let address = StructArray::from(vec![
            (
                Arc::new(Field::new("city", DataType::Utf8, true)),
                Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.3.0))) as ArrayRef,
            ),
            (
                Arc::new(Field::new("zip", DataType::Int32, true)),
                Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| r.3.1))) as ArrayRef,
            ),
        ]);
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))),
            Arc::new(StringArray::from_iter(rows.iter().map(|r| r.1))),
            Arc::new(skills.finish()),
            Arc::new(address),
        ];
        let schema = Schema::new(
            columns
                .iter()
                .zip(["id", "name", "user_skills", "address"])
                .map(|(c, n)| Field::new(n, c.data_type().clone(), n != "id"))
                .collect::<Vec<_>>(),
        );
        RecordBatch::try_new(Arc::new(schema), columns).expect("batch")
    }

    async fn overwrite(path: &Path, ids: &[i64]) {
        delta::overwrite_batches(path, vec![batch(ids)], &CommitMeta::tool("test"))
            .await
            .expect("overwrite");
    }

    async fn append(path: &Path, ids: &[i64]) {
        delta::open_for_write(path)
            .await
            .expect("open")
            .write(vec![batch(ids)])
            .with_save_mode(SaveMode::Append)
            .await
            .expect("append");
    }

    /// The ids of a preview's rows, sorted.
    fn ids(preview: &Preview) -> Vec<i64> {
        let mut ids: Vec<i64> = preview
            .batches
            .iter()
            .flat_map(|b| {
                let c = cast(b.column_by_name("id").expect("id column"), &DataType::Int64)
                    .expect("cast");
                c.as_primitive::<Int64Type>().values().to_vec()
            })
            .collect();
        ids.sort_unstable();
        ids
    }

    fn counts(h: &[HistoryEntry]) -> Vec<(i64, Option<u64>, Option<u64>)> {
        h.iter().map(|e| (e.version, e.rows_added, e.rows_removed)).collect()
    }

    /// v0: 3 rows; v1: append 2; v2: overwrite with 2 of the first rows and a new one;
    /// v3: overwrite with a duplicate of one row.
    async fn four_versions() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path();
        overwrite(path, &[1, 2, 3]).await;
        append(path, &[4, 5]).await;
        overwrite(path, &[1, 2, 6]).await;
        overwrite(path, &[1, 1, 2, 6]).await;
        dir
    }

    #[tokio::test]
    async fn history_counts_rows_added_and_removed() {
        let dir = four_versions().await;
        let h = history(dir.path(), None).await.expect("history");
        assert_eq!(
            counts(&h),
            vec![
                (3, Some(4), Some(3)),
                (2, Some(3), Some(5)),
                (1, Some(2), Some(0)),
                (0, Some(3), Some(0))
            ]
        );
        assert_eq!(h[1].operation, "WRITE");
        assert_eq!(h[1].parameters.get("mode").and_then(Value::as_str), Some("Overwrite"));
        assert_eq!(h[2].parameters.get("mode").and_then(Value::as_str), Some("Append"));
        assert_eq!(h[0].node.as_deref(), Some("test"));
        assert!(h[0].timestamp.is_some());

        // with a limit, the removed files are looked up in the version before the oldest
        let h = history(dir.path(), Some(2)).await.expect("history");
        assert_eq!(counts(&h), vec![(3, Some(4), Some(3)), (2, Some(3), Some(5))]);
    }

    #[tokio::test]
    async fn time_travel_reads_an_old_version() {
        let dir = four_versions().await;
        let v1 = table_at_version(dir.path(), 1, 100).await.expect("version 1");
        assert_eq!((v1.version, v1.rows), (1, 5));
        assert_eq!(ids(&v1.preview), vec![1, 2, 3, 4, 5]);
        assert_eq!(v1.preview.schema.fields().len(), 4);

        let v2 = table_at_version(dir.path(), 2, 2).await.expect("version 2");
        assert_eq!(v2.rows, 3);
        assert_eq!(v2.preview.rows(), 2, "limited to 2 rows");

        let v3 = table_at_version(dir.path(), 3, 100).await.expect("version 3");
        assert_eq!((v3.rows, ids(&v3.preview)), (4, vec![1, 1, 2, 6]));
    }

    #[tokio::test]
    async fn missing_versions_name_the_table() {
        let dir = four_versions().await;
        let shown = dir.path().display().to_string();
        for v in [4, 99, -1] {
            let err = table_at_version(dir.path(), v, 10).await.expect_err("no such version");
            let msg = err.to_string();
            assert!(msg.contains(&shown) && msg.contains(&format!("version {v}")), "{msg}");
            let err = compare_versions(dir.path(), 0, v, 10).await.expect_err("no such version");
            assert!(err.to_string().contains(&shown), "{err}");
        }
        assert!(
            table_at_version(dir.path(), 4, 10)
                .await
                .expect_err("")
                .to_string()
                .contains("latest version is 3")
        );

        // the log of version 0 cleaned up (no checkpoint): version 0 can no longer be read
        std::fs::remove_file(dir.path().join("_delta_log/00000000000000000000.json"))
            .expect("remove");
        let err = table_at_version(dir.path(), 0, 10).await.expect_err("cleaned up");
        assert!(err.to_string().contains(&shown), "{err}");

        let none = dir.path().join("nothing");
        let err = table_at_version(&none, 0, 10).await.expect_err("no table");
        assert!(matches!(err, EngineError::TableNotFound { .. }), "{err}");
    }

    #[tokio::test]
    async fn compare_finds_added_and_removed_rows() {
        let dir = four_versions().await;
        let diff = |from, to| compare_versions(dir.path(), from, to, 100);

        let d = diff(0, 1).await.expect("0 to 1");
        assert_eq!((d.from, d.to, d.rows_added, d.rows_removed), (0, 1, 2, 0));
        assert_eq!((ids(&d.added), ids(&d.removed)), (vec![4, 5], vec![]));
        assert_eq!(d.added.schema.fields().len(), 4);

        // rows 1 and 2 (with a list, a struct and NULLs) were rewritten but are unchanged
        let d = diff(1, 2).await.expect("1 to 2");
        assert_eq!((d.rows_added, d.rows_removed), (1, 3));
        assert_eq!((ids(&d.added), ids(&d.removed)), (vec![6], vec![3, 4, 5]));
        let shown = d.added.pretty().expect("pretty");
        assert!(shown.contains("fay") && shown.contains("rust"), "{shown}");

        let d = diff(2, 1).await.expect("2 to 1");
        assert_eq!((ids(&d.added), ids(&d.removed)), (vec![3, 4, 5], vec![6]));

        // multiset: a second copy of row 1 is one added row
        let d = diff(2, 3).await.expect("2 to 3");
        assert_eq!((d.rows_added, d.rows_removed), (1, 0));
        assert_eq!(ids(&d.added), vec![1]);
        let d = diff(3, 0).await.expect("3 to 0");
        assert_eq!((ids(&d.added), ids(&d.removed)), (vec![3], vec![1, 6]));

        let d = diff(2, 2).await.expect("same version");
        assert_eq!((d.rows_added, d.rows_removed), (0, 0));

        let d = compare_versions(dir.path(), 1, 2, 2).await.expect("limited");
        assert_eq!((d.rows_removed, d.removed.rows()), (3, 2));
    }

    /// A partitioned table changed by MERGE, DELETE and UPDATE.
    #[tokio::test]
    async fn merge_delete_update_and_partitions() {
        // a partition value that the log path must escape
        const SE: &str = "S E:1%/x";
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path();
        let people = |rows: &[(i64, &str, &str)]| {
            RecordBatch::try_from_iter(vec![
                (
                    "id",
                    Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))) as ArrayRef,
                ),
                ("name", Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.1)))),
                ("country", Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.2)))),
            ])
            .expect("batch")
        };
        // v0
        delta::open_for_write(path)
            .await
            .expect("open")
            .write(vec![people(&[
                (1, "ann", "NO"),
                (2, "bob", "NO"),
                (3, "cid", SE),
                (4, "dan", SE),
            ])])
            .with_partition_columns(["country"])
            .await
            .expect("write");
        // v1: merge updates 2 and inserts 5
        let ctx = plan::session_context();
        let source = ctx.read_batch(people(&[(2, "bo", "NO"), (5, "eve", "DK")])).expect("source");
        let src = |c: &str| Expr::Column(Column::new(Some("source"), c));
        let tgt = |c: &str| Expr::Column(Column::new(Some("target"), c));
        let names = ["id", "name", "country"];
        delta::open(path)
            .await
            .expect("open")
            .merge(source, tgt("id").eq(src("id")))
            .with_source_alias("source")
            .with_target_alias("target")
            .when_matched_update(|u| {
                names.iter().fold(u, |u, c| u.update(Column::new_unqualified(*c), src(c)))
            })
            .expect("update clause")
            .when_not_matched_insert(|i| {
                names.iter().fold(i, |i, c| i.set(Column::new_unqualified(*c), src(c)))
            })
            .expect("insert clause")
            .await
            .expect("merge");
        // v2: delete one row (rewrites a file of the SE partition)
        delta::open(path)
            .await
            .expect("open")
            .delete()
            .with_predicate(col("id").eq(lit(3i64)))
            .await
            .expect("delete");
        // v3: update one row
        delta::open(path)
            .await
            .expect("open")
            .update()
            .with_predicate(col("id").eq(lit(1i64)))
            .with_update("name", lit("anne"))
            .await
            .expect("update");
        // v4: delete a whole partition (whole files, no rewrite)
        delta::open(path)
            .await
            .expect("open")
            .delete()
            .with_predicate(col("country").eq(lit(SE)))
            .await
            .expect("delete");

        let h = history(path, None).await.expect("history");
        let ops: Vec<&str> = h.iter().map(|e| e.operation.as_str()).collect();
        assert_eq!(ops, ["DELETE", "UPDATE", "DELETE", "MERGE", "WRITE"]);
        assert_eq!(
            counts(&h),
            vec![
                (4, Some(0), Some(1)),
                (3, Some(1), Some(1)),
                (2, Some(0), Some(1)),
                (1, Some(2), Some(1)),
                (0, Some(4), Some(0)),
            ]
        );

        let v1 = table_at_version(path, 1, 100).await.expect("version 1");
        assert_eq!((v1.rows, ids(&v1.preview)), (5, vec![1, 2, 3, 4, 5]));

        // partition values come back for the differing files
        let d = compare_versions(path, 0, 3, 100).await.expect("0 to 3");
        assert_eq!((ids(&d.added), ids(&d.removed)), (vec![1, 2, 5], vec![1, 2, 3]));
        let added = d.added.pretty().expect("pretty");
        assert!(added.contains("anne") && added.contains("DK") && added.contains("NO"), "{added}");
        let removed = d.removed.pretty().expect("pretty");
        assert!(removed.contains(SE), "{removed}");
        let d = compare_versions(path, 3, 4, 100).await.expect("3 to 4");
        assert_eq!((d.rows_added, ids(&d.removed)), (0, vec![4]));
    }

    /// Versions with other columns: no row of one equals a row of the other.
    #[tokio::test]
    async fn compare_across_a_schema_change() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path();
        let ids = |ids: &[i64]| {
            RecordBatch::try_from_iter(vec![(
                "id",
                Arc::new(Int64Array::from_iter_values(ids.iter().copied())) as ArrayRef,
            )])
            .expect("batch")
        };
        delta::overwrite_batches(path, vec![ids(&[1, 2])], &CommitMeta::tool("test"))
            .await
            .expect("v0");
        overwrite(path, &[1, 3]).await;
        let d = compare_versions(path, 0, 1, 10).await.expect("0 to 1");
        assert_eq!((d.rows_added, d.rows_removed), (2, 2));
        assert_eq!((d.added.schema.fields().len(), d.removed.schema.fields().len()), (4, 1));
        let h = history(path, None).await.expect("history");
        assert_eq!(counts(&h), vec![(1, Some(2), Some(2)), (0, Some(2), Some(0))]);
    }

    /// Multiset difference with NULLs and a MAP column, on in-memory frames.
    #[tokio::test]
    async fn except_all_keeps_extra_copies() {
        use arrow::array::MapBuilder;
        let frame = |rows: &[(i64, Option<&str>)]| {
            let mut m = MapBuilder::new(None, StringBuilder::new(), StringBuilder::new());
            for (id, _) in rows {
                m.keys().append_value("k");
                m.values().append_value(id.to_string());
                m.append(true).expect("map");
            }
            let batch = RecordBatch::try_from_iter(vec![
                (
                    "id",
                    Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))) as ArrayRef,
                ),
                ("name", Arc::new(StringArray::from_iter(rows.iter().map(|r| r.1)))),
                ("m", Arc::new(m.finish())),
            ])
            .expect("batch");
            plan::session_context().read_batch(batch).expect("frame")
        };
        let left = frame(&[(1, None), (1, None), (1, None), (2, Some("b")), (3, Some("c"))]);
        let right = frame(&[(1, None), (3, Some("c")), (3, Some("c")), (4, None)]);
        let (n, preview) = except_all(left, Some(right), 10).await.expect("except all");
        assert_eq!((n, ids(&preview)), (3, vec![1, 1, 2]));
        assert_eq!(preview.schema.fields().len(), 3, "the numbering column is dropped");
    }
}
