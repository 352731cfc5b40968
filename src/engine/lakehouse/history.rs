//! The history of a table: one entry per commit still in `_delta_log`, with the rows each
//! commit added and removed and who wrote it.

use std::collections::HashMap;
use std::path::Path;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::super::{EngineError, Result, delta};
use super::versions::{open_version, snapshot_files};

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
pub(super) async fn commit_versions(log: &Path) -> Result<Vec<i64>> {
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
