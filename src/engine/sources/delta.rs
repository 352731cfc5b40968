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
    let url = delta::table_url(path)?;
    let table = match (source.version, source.timestamp.as_deref()) {
        (Some(v), _) => {
            let v = u64::try_from(v)
                .map_err(|_| EngineError::Config(format!("version {v} is negative")))?;
            deltalake::open_table_with_version(url, v).await.map_err(|e| {
                EngineError::Config(format!("cannot read version {v} of {}: {e}", path.display()))
            })?
        }
        (None, Some(ts)) => {
            DeltaTableBuilder::from_url(url)?
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
