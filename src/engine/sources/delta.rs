//! Delta source in batch mode: `spark.read.format("delta").load(path)`, with time travel.

use std::path::Path;

use datafusion::prelude::{DataFrame, SessionContext};
use deltalake::DeltaTableBuilder;

use crate::model::node::DeltaSource;

use super::super::{EngineError, Result, delta};

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
    Ok(ctx.read_table(table.table_provider().await?)?)
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
        let commit = path.join("_delta_log").join(format!("{v:020}.json"));
        let text = std::fs::read_to_string(&commit).map_err(|e| {
            EngineError::Config(format!(
                "cannot read version {v} of {} ({e}); the log may have been cleaned up: restart the stream with a new checkpoint",
                path.display()
            ))
        })?;
        let mut adds = Vec::new();
        let mut version_rows = Some(0u64);
        let mut changes = false;
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
                    adds.push(p.to_owned());
                    let n = add
                        .get("stats")
                        .and_then(serde_json::Value::as_str)
                        .and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok())
                        .and_then(|s| s.get("numRecords").and_then(serde_json::Value::as_u64));
                    version_rows = version_rows.zip(n).map(|(a, b)| a + b);
                }
            } else if let Some(remove) = action.get("remove")
                && data_change(remove)
            {
                changes = true;
            }
        }
        if changes {
            if skip_change_commits {
                continue;
            }
            return Err(EngineError::Config(format!(
                "version {v} of {} removes or rewrites data (overwrite, merge, delete, update), which a Delta stream cannot follow; set skip_change_commits = true on the source to ignore such versions, or read the table in batch mode",
                path.display()
            )));
        }
        files.extend(adds);
        rows = rows.zip(version_rows).map(|(a, b)| a + b);
    }
    Ok((files, rows))
}

/// The data of exactly the given files of the table at `version`.
pub async fn read_files_at(
    ctx: &SessionContext,
    path: &Path,
    version: i64,
    files: Vec<String>,
) -> Result<DataFrame> {
    let url = delta::table_url(path)?;
    let table = deltalake::open_table_with_version(url, version as u64).await?;
    let provider = table.table_provider().with_file_paths(files).await?;
    Ok(ctx.read_table(provider)?)
}
