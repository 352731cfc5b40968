//! The bounded checkpoint's purge, off the batch's path. Every 10 batches a stream folds all
//! but its newest `minBatchesToRetain` offsets into the compact log and deletes them, their
//! commits and the state versions no replay can need: a read of ten offsets, two fsyncs and
//! twenty-odd deletes, ~10 ms that landed in every 10th batch's `commitOffsets` (10 of the 20
//! slowest of 2,000 small batches in `bench upkeep`). It only touches batches at least
//! `retain` behind the one being written, so it runs on a thread of its own beside the next
//! batches; one purge at a time, and a failure is the stream's error at the next purge or at
//! the stream's end.

use super::super::{EngineError, Result};
use super::checkpoint::Checkpoint;
use super::state::StateStore;

/// The purge in flight, if any. Dropped with one in flight (the stream stopped on an error),
/// it waits for it: a restart in the same process must not read the offsets it is deleting.
#[derive(Default)]
pub struct BackgroundPurge(Option<std::thread::JoinHandle<Result<()>>>);

fn stopped() -> EngineError {
    EngineError::Config("the checkpoint purge stopped unexpectedly".to_owned())
}

impl BackgroundPurge {
    /// Waits for the purge in flight and returns its error, if it failed.
    pub async fn wait(&mut self) -> Result<()> {
        match self.0.take() {
            Some(task) => super::super::threads::join(task).await.ok_or_else(stopped)?,
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
        let purge = move || {
            if let Some(keep_from) = cp.purge(last_committed, retain)? {
                for store in &stores {
                    store.purge(keep_from)?;
                }
            }
            Ok(())
        };
        let thread = std::thread::Builder::new().name("medallion-purge".to_owned());
        self.0 = Some(thread.spawn(purge).map_err(|e| {
            EngineError::Config(format!("the checkpoint purge could not start a thread: {e}"))
        })?);
        Ok(())
    }
}

impl Drop for BackgroundPurge {
    fn drop(&mut self) {
        if let Some(task) = self.0.take() {
            let _ = task.join();
        }
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

    /// A stream that stops on an error drops its purge: the drop waits, so a restart in the
    /// same process never lists offsets the purge is deleting.
    #[tokio::test]
    async fn a_dropped_purge_has_finished() {
        let dir = tempfile::tempdir().unwrap();
        let cp = Checkpoint::new(dir.path().join("cp"));
        // enough that the purge is still deleting when `drop` is called
        for batch_id in 0..500 {
            let entry = super::super::checkpoint::OffsetsEntry {
                batch_id,
                timestamp_ms: 1,
                sources: Default::default(),
                watermark: None,
            };
            cp.write_offsets(&entry).unwrap();
        }
        let mut purge = BackgroundPurge::default();
        purge.start(&cp, 499, 3, Vec::new()).await.unwrap();
        drop(purge);
        assert_eq!(cp.all_offsets().unwrap().len(), 3);
    }
}
