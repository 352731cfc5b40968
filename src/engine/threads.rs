//! Threads the engine starts for work beside a stream (upkeep, the checkpoint purge).

/// Joins `thread` without holding one of the runtime's workers while it runs (a finished one is
/// joined at once); `None` when it panicked.
pub async fn join<T: Send + 'static>(thread: std::thread::JoinHandle<T>) -> Option<T> {
    if thread.is_finished() {
        return thread.join().ok();
    }
    tokio::task::spawn_blocking(move || thread.join().ok()).await.ok().flatten()
}
