//! Delta tables kept open across a stream's micro-batches.
//!
//! Opening a table replays its log from the last log checkpoint (every commit JSON since, up to
//! `delta.checkpointInterval` of them: 10 for a stream's table, Spark's default, unless it sets
//! another); a stream that opened its sink and static tables
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
    /// The map's lock is not held while a table is updated or opened: the stream and its
    /// upkeep thread (at `SCHED_IDLE`) share it, and a stream batch that waited for the
    /// upkeep's update took 2–4 ms longer.
    pub async fn latest(&self, path: &Path) -> Result<Option<DeltaTable>> {
        let kept = self.0.lock().await.get(path).cloned();
        if let Some(mut table) = kept {
            // its commit still there and nobody committed since: no listing. delta-rs finds new commits by listing
            // `_delta_log`, which on a local disk reads the whole directory, a cost that grows
            // with every version (batch p50 17 → 30 ms over 2,000 small batches)
            let commit = |v: u64| path.join("_delta_log").join(format!("{v:020}.json"));
            let version = table.version().unwrap_or_default();
            if !commit(version).exists() {
                // deleted (and maybe made again) under us: the kept snapshot is of a table
                // that is gone (log cleanup never deletes the newest commit)
                self.forget_version(path, version).await;
            } else if !commit(version + 1).exists() {
                return Ok(Some(table));
            } else {
                match table.update_incremental(None).await {
                    Ok(()) => {
                        self.remember(path, table.clone()).await;
                        return Ok(Some(table));
                    }
                    // replaced under us: open it afresh below (or report it gone)
                    Err(_) => self.forget_version(path, version).await,
                }
            }
        }
        let table = delta::try_open(path).await?;
        if let Some(t) = &table {
            self.remember(path, t.clone()).await;
        }
        Ok(table)
    }

    /// Forgets `path`'s table if the one kept is still at `version` (a newer one another
    /// caller kept meanwhile stays).
    async fn forget_version(&self, path: &Path, version: u64) {
        let mut open = self.0.lock().await;
        if open.get(path).and_then(DeltaTable::version) == Some(version) {
            open.remove(path);
        }
    }

    /// Keeps the table a write returned (its snapshot already holds the new commit), unless a
    /// newer one is kept already (a background compaction can end after a stream's append).
    pub async fn remember(&self, path: &Path, table: DeltaTable) {
        let Some(version) = table.version() else { return };
        let mut open = self.0.lock().await;
        if open.get(path).and_then(DeltaTable::version).is_none_or(|kept| kept <= version) {
            open.insert(path.to_owned(), table);
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

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, RecordBatch};
    use arrow::datatypes::{DataType, Field, Schema};

    fn rows(n: i64) -> Vec<RecordBatch> {
        let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
        vec![
            RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from_iter_values(0..n))])
                .unwrap(),
        ]
    }

    /// The kept table skips delta-rs's log listing only while it is current: a commit by
    /// another writer, or the table deleted and made again, is seen at the next call.
    #[tokio::test]
    async fn latest_sees_other_writers_and_a_table_made_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t");
        let meta = delta::CommitMeta::default();
        let tables = OpenTables::default();
        assert!(tables.latest(&path).await.unwrap().is_none());
        delta::overwrite_batches(&path, rows(3), &meta).await.unwrap();
        assert_eq!(tables.latest(&path).await.unwrap().unwrap().version(), Some(0));
        // unchanged: the same version, no update
        assert_eq!(tables.latest(&path).await.unwrap().unwrap().version(), Some(0));
        // another writer
        delta::overwrite_batches(&path, rows(5), &meta).await.unwrap();
        let t = tables.latest(&path).await.unwrap().unwrap();
        assert_eq!(t.version(), Some(1));
        assert_eq!(t.snapshot().unwrap().log_data().num_files(), 1);
        // deleted and made again: version 0 of a new table, not the kept version 1
        std::fs::remove_dir_all(&path).unwrap();
        delta::overwrite_batches(&path, rows(2), &meta).await.unwrap();
        assert_eq!(tables.latest(&path).await.unwrap().unwrap().version(), Some(0));
    }

    /// A table kept open across commits holds its files in one record batch, not one per
    /// commit: delta-rs replays every held batch at each update, so a stream of small commits
    /// paid ~0.1 ms per commit since the last compaction (the fix is in vendor/deltalake-core).
    #[tokio::test]
    async fn a_kept_table_holds_its_files_in_one_batch() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t");
        let meta = delta::CommitMeta::default();
        let tables = OpenTables::default();
        delta::overwrite_batches(&path, rows(1), &meta).await.unwrap();
        for _ in 0..24 {
            let table = tables.latest(&path).await.unwrap().unwrap();
            let table = table
                .write(rows(2))
                .with_save_mode(deltalake::protocol::SaveMode::Append)
                .await
                .unwrap();
            tables.remember(&path, table).await;
        }
        // and a commit by another writer, read by an incremental update
        let other = delta::open(&path).await.unwrap();
        other.write(rows(3)).with_save_mode(deltalake::protocol::SaveMode::Append).await.unwrap();
        let table = tables.latest(&path).await.unwrap().unwrap();
        assert_eq!(table.version(), Some(25));
        let snapshot = table.snapshot().unwrap();
        let files = snapshot.log_data();
        assert_eq!(files.num_files(), 26);
        assert_eq!(files.iter().map(|f| f.num_records().unwrap_or(0)).sum::<usize>(), 1 + 48 + 3);
        assert_eq!(files.num_batches(), 1, "one record batch per commit is replayed per update");
    }

    /// A writer whose snapshot is behind (a background compaction beside a stream) checks
    /// every commit it missed and lands after them, and its table then holds their files too:
    /// delta-rs's commit loop no longer updates the read snapshot between attempts (the patch
    /// in vendor/deltalake-core), the post-commit update brings it to the committed version.
    /// A write that removes a file a missed commit removed still conflicts.
    #[tokio::test]
    async fn a_writer_behind_lands_after_the_commits_it_missed() {
        use deltalake::protocol::SaveMode::{Append, Overwrite};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t");
        let behind = delta::overwrite_batches(&path, rows(1), &Default::default()).await.unwrap();
        let other = delta::open(&path).await.unwrap();
        let other = other.write(rows(2)).with_save_mode(Append).await.unwrap();
        other.write(rows(3)).with_save_mode(Append).await.unwrap();
        let stale = behind.clone();
        let table = behind.write(rows(4)).with_save_mode(Append).await.unwrap();
        assert_eq!(table.version(), Some(3));
        let files = table.snapshot().unwrap().log_data();
        assert_eq!(files.num_files(), 4);
        assert_eq!(
            files.iter().map(|f| f.num_records().unwrap_or(0)).sum::<usize>(),
            1 + 2 + 3 + 4
        );
        // a missed commit removed the file this write removes: a conflict, nothing committed
        table.write(rows(5)).with_save_mode(Overwrite).await.unwrap();
        let err = stale.write(rows(6)).with_save_mode(Overwrite).await.unwrap_err();
        assert!(err.to_string().contains("oncurrent"), "{err}");
        assert_eq!(delta::open(&path).await.unwrap().version(), Some(4));
    }
}
