//! The lakehouse as a user sees it: tables by layer, their versions and history.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use serde_json::Value;

use crate::model::node::Layer;

use super::{EngineError, Result, delta};

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

fn find_tables(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) -> Result<()> {
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

/// The history of the table at `path`, newest first.
pub async fn history(path: &Path, limit: Option<usize>) -> Result<Vec<HistoryEntry>> {
    let table = delta::open(path).await?;
    let latest = table.version().map(|v| v as i64).unwrap_or(-1);
    let infos: Vec<_> = table.history(limit).try_collect().await?;
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
    Ok(infos
        .into_iter()
        .enumerate()
        .map(|(i, ci)| {
            let version = ci.read_version.map(|r| r as i64 + 1).unwrap_or(latest - i as i64);
            let object =
                |v: Option<&Value>| v.and_then(Value::as_object).cloned().unwrap_or_default();
            HistoryEntry {
                version,
                timestamp: ci.timestamp.and_then(DateTime::from_timestamp_millis),
                operation: ci.operation.clone().unwrap_or_default(),
                parameters: ci
                    .operation_parameters
                    .clone()
                    .map(|m| m.into_iter().collect())
                    .unwrap_or_default(),
                metrics: object(ci.info.get("operationMetrics")),
                project: text(ci.info.get("medallion.project")),
                pipeline: text(ci.info.get("medallion.pipeline")),
                node: text(ci.info.get("medallion.node")),
            }
        })
        .collect())
}
