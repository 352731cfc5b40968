//! Stateful operators of a stream: windowed and plain aggregations, deduplication and
//! stream-stream joins, with Spark's semantics.
//!
//! Each operator is a pure step: (its state after batch N-1, the rows of batch N, the
//! batch's watermarks) → (the rows it emits, its state after batch N, metrics). The runtime
//! loads and saves the state (`stream::state`) and fixes the watermarks in `offsets/N`, so a
//! replayed batch computes exactly what the first attempt did.
//!
//! Times inside operators are microseconds since the epoch (UTC); watermarks are kept in
//! milliseconds as Spark's `batchWatermarkMs` and converted at the boundary.

pub mod aggregate;
mod aggregate_spec;
pub mod dedup;
pub mod event_time;
pub mod join;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use serde::{Deserialize, Serialize};

use crate::model::node::OutputMode;

/// The two watermarks a batch uses, as Spark does since 3.4 (SPARK-40925): rows at or below
/// the previous batch's watermark are late; state at or below this batch's is evicted.
/// `None` when no Watermark node is upstream.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Clock {
    /// Previous batch's watermark, microseconds: event time `<=` this is late.
    pub late_us: Option<i64>,
    /// This batch's watermark, microseconds: state whose time `<=` this is evicted.
    pub evict_us: Option<i64>,
}

impl Clock {
    pub fn from_ms(late_ms: Option<i64>, evict_ms: Option<i64>) -> Self {
        Self { late_us: late_ms.map(|m| m * 1000), evict_us: evict_ms.map(|m| m * 1000) }
    }

    /// A clock that never drops or evicts (batch queries, previews).
    pub fn none() -> Self {
        Self::default()
    }
}

/// Spark's `stateOperators[]` entry for one node and one batch.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StateOperatorProgress {
    pub operator_name: String,
    pub num_rows_total: u64,
    pub num_rows_updated: u64,
    pub num_rows_removed: u64,
    pub num_rows_dropped_by_watermark: u64,
    /// Dedup: rows dropped as duplicates in this batch.
    #[serde(default)]
    pub num_dropped_duplicate_rows: u64,
    /// Arrow memory of the state after the batch.
    pub memory_used_bytes: u64,
    /// Bytes of the state file written for this batch.
    #[serde(default)]
    pub state_on_disk_bytes: u64,
    #[serde(default)]
    pub commit_time_ms: u64,
}

/// What one step of an operator produced.
#[derive(Debug)]
pub struct StepOutput {
    pub schema: SchemaRef,
    pub rows: Vec<RecordBatch>,
    /// The state after this batch (the operator's own schema).
    pub state: Vec<RecordBatch>,
    pub state_schema: SchemaRef,
    /// Input rows dropped as late (in the input's schema), for counting and quarantine.
    pub late: Vec<RecordBatch>,
    pub metrics: StateOperatorProgress,
    /// The earliest time (µs) at which a watermark evicts something from the new state; a
    /// no-data batch runs when the watermark has reached it (Spark's `shouldRunAnotherBatch`).
    pub next_expiry_us: Option<i64>,
}

/// The smallest value of an Int64 (or timestamp) column over a set of batches.
pub fn min_i64(batches: &[RecordBatch], column: usize) -> Option<i64> {
    batches
        .iter()
        .filter_map(|b| {
            let c =
                arrow::compute::cast(b.column(column), &arrow::datatypes::DataType::Int64).ok()?;
            let a = c.as_any().downcast_ref::<arrow::array::Int64Array>()?.clone();
            arrow::compute::min(&a)
        })
        .min()
}

/// How the query's sinks want a stateful result.
pub fn emits_all(mode: OutputMode) -> bool {
    mode == OutputMode::Complete
}

/// Rows in a set of batches.
pub fn count_rows(batches: &[RecordBatch]) -> u64 {
    batches.iter().map(|b| b.num_rows() as u64).sum()
}

/// Arrow memory held by a set of batches.
pub fn memory_bytes(batches: &[RecordBatch]) -> u64 {
    batches.iter().map(|b| b.get_array_memory_size() as u64).sum()
}
