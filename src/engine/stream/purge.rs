//! The bounded checkpoint's purge, off the batch's path. Every 10 batches a stream folds all
//! but its newest `minBatchesToRetain` offsets into the compact log and deletes them, their
//! commits and the state versions no replay can need: a read of ten offsets, two fsyncs and
//! twenty-odd deletes, ~10 ms that landed in every 10th batch's `commitOffsets` (10 of the 20
//! slowest of 2,000 small batches in `bench upkeep`). It only touches batches at least
//! `retain` behind the one being written, so it runs beside the next batches; one purge at a
//! time, and a failure is the stream's error at the next purge or at the stream's end.

use super::super::Result;
use super::checkpoint::Checkpoint;
use super::state::StateStore;

/// The purge in flight, if any.
#[derive(Default)]
pub struct BackgroundPurge(Option<tokio::task::JoinHandle<Result<()>>>);

impl BackgroundPurge {
    /// Waits for the purge in flight and returns its error, if it failed.
    pub async fn wait(&mut self) -> Result<()> {
        match self.0.take() {
            Some(task) => task.await.map_err(|e| {
                super::super::EngineError::Config(format!("the checkpoint purge stopped: {e}"))
            })?,
            None => Ok(()),
        }
    }

    /// Purges what batch `last_committed` no longer needs (after the previous purge ended):
    /// the checkpoint's offsets and commits, then the `stores`' old state versions.
    pub async fn start(
        &mut self,
        cp: &Checkpoint,
        last_committed: u64,
        retain: u64,
        stores: Vec<StateStore>,
    ) -> Result<()> {
        self.wait().await?;
        let cp = cp.clone();
        self.0 = Some(tokio::task::spawn_blocking(move || {
            if let Some(keep_from) = cp.purge(last_committed, retain)? {
                for store in &stores {
                    store.purge(keep_from)?;
                }
            }
            Ok(())
        }));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A failed purge is the stream's error: at the next purge, or when the stream ends.
    #[tokio::test]
    async fn a_failed_purge_is_reported_at_the_next_wait() {
        let dir = tempfile::tempdir().unwrap();
        let cp = Checkpoint::new(dir.path().join("cp"));
        // an offsets entry that is not JSON cannot be folded into the compact log
        std::fs::create_dir_all(dir.path().join("cp/offsets")).unwrap();
        std::fs::write(dir.path().join("cp/offsets/0"), "not json").unwrap();
        let mut purge = BackgroundPurge::default();
        purge.start(&cp, 5, 1, Vec::new()).await.unwrap();
        let err = purge.wait().await.unwrap_err().to_string();
        assert!(err.contains("offsets"), "{err}");
        // nothing in flight: nothing to report
        purge.wait().await.unwrap();
    }
}
