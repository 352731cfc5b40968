//! Sources: where a pipeline's data comes from. One file per kind; [`stream_source`] ties the
//! streaming ones together for the micro-batch runtime.

pub mod csv_evolution;
pub mod csv_lines;
pub mod delta;
pub mod file_stream;
pub mod files;
pub mod generator;
pub mod json_lines;
pub mod json_partial;
mod json_plain;
pub mod json_spark;
mod json_tokens;
pub mod kafka;
mod kafka_arrivals;
mod kafka_batch;
pub mod kafka_client;
mod kafka_fetch;
mod kafka_read;
mod kafka_records;
mod kafka_wire;
pub mod schema_tracking;
pub mod spark_timestamp;
pub(crate) mod stream_source;
pub mod timestamps;

use super::{EngineError, Result};

/// Runs blocking client calls (rdkafka) off the async workers.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| EngineError::Config(format!("worker task failed: {e}")))?
}
