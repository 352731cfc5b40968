//! Delta tables kept open across a stream's micro-batches.
//!
//! Opening a table replays its log from the last log checkpoint (every commit JSON since, up to
//! `delta.checkpointInterval` = 100 of them); a stream that opened its sink and static tables
//! afresh at every batch paid that replay several times per batch, so its batch time rose from
//! one log checkpoint to the next (a saw-tooth) and the replay's buffers drove RSS up. An open
//! table is instead brought up to date with `update_incremental`, which lists and reads only the
//! commits written since — by this stream, by auto-compaction or by any other writer — so each
//! batch's Delta cost stays flat however many versions the table has.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use deltalake::DeltaTable;

use super::{Result, delta};

/// The newest snapshot of each table a stream reads (static sides) or writes, by path. Cheap to
/// clone (a shared handle); one per running stream.
#[derive(Clone, Default)]
pub struct OpenTables(Arc<tokio::sync::Mutex<HashMap<PathBuf, DeltaTable>>>);

impl OpenTables {
    /// The table at `path` at its newest version (`None` while there is no table there).
    pub async fn latest(&self, path: &Path) -> Result<Option<DeltaTable>> {
        let mut open = self.0.lock().await;
        if let Some(table) = open.get_mut(path) {
            match table.update_incremental(None).await {
                Ok(()) => return Ok(Some(table.clone())),
                Err(_) => {
                    // deleted or replaced under us: open it afresh below (or report it gone)
                    open.remove(path);
                }
            }
        }
        let table = delta::try_open(path).await?;
        if let Some(t) = &table {
            open.insert(path.to_owned(), t.clone());
        }
        Ok(table)
    }

    /// Keeps the table a write returned (its snapshot already holds the new commit).
    pub async fn remember(&self, path: &Path, table: DeltaTable) {
        if table.version().is_some() {
            self.0.lock().await.insert(path.to_owned(), table);
        }
    }

    /// Forgets `path` (after something rewrote the table in a way an update cannot follow).
    pub async fn forget(&self, path: &Path) {
        self.0.lock().await.remove(path);
    }
}

/// One table read at increasing versions (a Delta stream source): each read moves the open
/// snapshot forward by the commits in between instead of replaying the log.
#[derive(Default)]
pub struct VersionedTable(tokio::sync::Mutex<Option<DeltaTable>>);

impl VersionedTable {
    /// The table at `path` as of `version`.
    pub async fn at(&self, path: &Path, version: i64) -> Result<DeltaTable> {
        let version = u64::try_from(version).map_err(|_| {
            super::EngineError::Config(format!("{}: no version {version}", path.display()))
        })?;
        let mut open = self.0.lock().await;
        if let Some(table) = open.as_mut()
            && table.version().is_some_and(|v| v <= version)
            && table.update_incremental(Some(version)).await.is_ok()
        {
            return Ok(table.clone());
        }
        // first read, a step back (a replayed batch), or a table replaced under us
        let table = deltalake::open_table_with_version(delta::table_url(path)?, version).await?;
        *open = Some(table.clone());
        Ok(table)
    }
}
