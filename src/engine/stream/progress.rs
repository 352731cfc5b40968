//! What a stream reports: per-batch progress (Spark's `StreamingQueryProgress`) and the
//! summary of a run.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::super::meter::EdgeStats;
use super::checkpoint::SourceOffset;
pub use super::operators::StateOperatorProgress;

/// Per-batch progress, like Spark's `StreamingQueryProgress`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StreamProgress {
    pub pipeline: String,
    pub query_id: String,
    pub batch_id: u64,
    pub timestamp: String,
    /// Whether this batch replayed offsets planned before a restart.
    pub replayed: bool,
    pub num_input_rows: u64,
    pub input_rows_per_second: f64,
    pub processed_rows_per_second: f64,
    pub duration_ms: BTreeMap<String, u64>,
    pub sources: BTreeMap<String, SourceProgress>,
    /// Sink node → Delta version holding this batch.
    pub sinks: BTreeMap<String, i64>,
    /// Rows written per sink node (0 when the batch was already committed).
    pub rows_per_node: BTreeMap<String, u64>,
    /// Bad records found by transforms (Parse JSON), per node.
    pub transforms: BTreeMap<String, BadRecordCounts>,
    /// Rows (and time to produce them) along each edge of the graph in this batch.
    #[serde(default)]
    pub edges: Vec<EdgeStats>,
    /// Each node's own time in this batch, in milliseconds (see `meter::node_self_ms`).
    #[serde(default)]
    pub node_ms: BTreeMap<String, f64>,
    /// Spark's `eventTime`: event times seen by the Watermark nodes, and the watermark the
    /// batch ran with.
    #[serde(default, rename = "eventTime", skip_serializing_if = "Option::is_none")]
    pub event_time: Option<EventTimeProgress>,
    /// Spark's `stateOperators`, per stateful node.
    #[serde(default, rename = "stateOperators", skip_serializing_if = "BTreeMap::is_empty")]
    pub state_operators: BTreeMap<String, StateOperatorProgress>,
    /// Per Expectations node: rows in, out, dropped, and each rule's passed/failed counts.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub expectations: BTreeMap<String, super::super::transforms::expectations::ExpectationReport>,
}

/// Spark's `eventTime` block (times in UTC, RFC 3339), with the watermark in milliseconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EventTimeProgress {
    pub min: String,
    pub max: String,
    pub avg: String,
    pub watermark: String,
    #[serde(rename = "watermarkMs")]
    pub watermark_ms: i64,
    /// The Watermark nodes of the pipeline.
    #[serde(default, rename = "watermarkNodes")]
    pub watermark_nodes: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SourceProgress {
    pub offset: SourceOffset,
    pub input_rows: u64,
    /// Malformed records kept in `_rescued_data` (permissive mode).
    pub rescued_records: u64,
    /// Malformed records sent to the quarantine table (drop_malformed mode).
    pub quarantined_records: u64,
    /// Files (or versions, or messages) known but not yet processed.
    pub backlog: u64,
    /// Kafka: per `topic:partition`, end offset minus processed offset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lag: Option<BTreeMap<String, i64>>,
}

/// Malformed records a transform (Parse JSON) found in a batch.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BadRecordCounts {
    pub rescued_records: u64,
    pub quarantined_records: u64,
}

/// What a stream run did.
#[derive(Clone, Debug, Default)]
pub struct StreamSummary {
    pub batches: u64,
    pub rows_written: u64,
}
