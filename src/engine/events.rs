//! What a run reports while it works: printed by the CLI, drawn by the monitor.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::model::NodeId;

use super::stream::StreamProgress;

/// One thing that happened during a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RunEvent {
    PipelineStarted {
        pipeline: String,
    },
    /// A sink committed to its table.
    SinkCommitted {
        pipeline: String,
        node: NodeId,
        table: String,
        version: i64,
        rows_added: u64,
        rows_updated: u64,
        duration_ms: u64,
    },
    PipelineFinished {
        pipeline: String,
        rows_written: u64,
        duration_ms: u64,
        /// A stream ended by a stop request (Stop, Ctrl-C), not by running out of work.
        #[serde(default)]
        stopped: bool,
    },
    PipelineFailed {
        pipeline: String,
        node: Option<NodeId>,
        message: String,
    },
    /// A stream finished a micro-batch.
    BatchCompleted(Box<StreamProgress>),
    /// Something the user should know that does not stop the query.
    Warning {
        pipeline: String,
        node: Option<NodeId>,
        message: String,
    },
    /// What an Expectations node found in a batch pipeline's run (a stream's micro-batches
    /// carry it in their progress instead).
    ExpectationsChecked {
        pipeline: String,
        node: NodeId,
        report: super::transforms::expectations::ExpectationReport,
    },
    /// A stream's trigger found no new data: it waits for its sources (sent once per idle
    /// spell, not at every trigger).
    Idle {
        pipeline: String,
    },
    /// A batch pipeline's rows out of each node (into each sink), counted on the edges while
    /// it ran: the canvas shows them without planning the nodes again.
    NodeRows {
        pipeline: String,
        rows: std::collections::BTreeMap<String, u64>,
    },
    /// Auto-compaction rewrote a streaming sink's small files (an OPTIMIZE commit).
    Compacted {
        pipeline: String,
        node: NodeId,
        table: String,
        files_removed: u64,
        files_added: u64,
        /// The OPTIMIZE commit; `None` when there was nothing to rewrite.
        version: Option<i64>,
        /// The compaction had fallen behind (4× its minimum of small files at its start: the
        /// streams kept the cores busy) and ran at the normal priority to catch up, instead of
        /// on the cores' idle time.
        #[serde(default)]
        caught_up: bool,
    },
}

impl RunEvent {
    /// The pipeline the event is about.
    pub fn pipeline(&self) -> &str {
        match self {
            RunEvent::PipelineStarted { pipeline }
            | RunEvent::SinkCommitted { pipeline, .. }
            | RunEvent::PipelineFinished { pipeline, .. }
            | RunEvent::PipelineFailed { pipeline, .. }
            | RunEvent::Warning { pipeline, .. }
            | RunEvent::ExpectationsChecked { pipeline, .. }
            | RunEvent::Idle { pipeline }
            | RunEvent::NodeRows { pipeline, .. }
            | RunEvent::Compacted { pipeline, .. } => pipeline,
            RunEvent::BatchCompleted(p) => &p.pipeline,
        }
    }

    /// The node the event is pinned on, if any.
    pub fn node(&self) -> Option<&str> {
        match self {
            RunEvent::SinkCommitted { node, .. }
            | RunEvent::Compacted { node, .. }
            | RunEvent::ExpectationsChecked { node, .. } => Some(node.as_str()),
            RunEvent::PipelineFailed { node, .. } | RunEvent::Warning { node, .. } => {
                node.as_ref().map(NodeId::as_str)
            }
            _ => None,
        }
    }
}

impl fmt::Display for RunEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunEvent::PipelineStarted { pipeline } => write!(f, "[{pipeline}] started"),
            RunEvent::Compacted {
                pipeline,
                node,
                table,
                files_removed,
                files_added,
                version,
                caught_up,
            } => {
                let behind = if *caught_up {
                    "; it had fallen behind the stream, so it ran at the normal priority to catch up"
                } else {
                    ""
                };
                match version {
                    Some(v) => write!(
                        f,
                        "[{pipeline}] node `{node}`: auto-compacted {table}: {files_removed} small file(s) rewritten as {files_added} (Delta version {v}, OPTIMIZE{behind})"
                    ),
                    None => write!(
                        f,
                        "[{pipeline}] node `{node}`: auto-compaction of {table} found nothing to rewrite"
                    ),
                }
            }
            RunEvent::SinkCommitted {
                pipeline,
                node,
                table,
                version,
                rows_added,
                rows_updated,
                duration_ms,
            } => {
                let secs = (*duration_ms as f64 / 1000.0).max(0.001);
                let rows = rows_added + rows_updated;
                write!(
                    f,
                    "[{pipeline}] node `{node}`: {rows_added} rows added{} to {table} (Delta version {version}) in {secs:.2} s, {:.0} rows/s",
                    if *rows_updated > 0 {
                        format!(", {rows_updated} updated")
                    } else {
                        String::new()
                    },
                    rows as f64 / secs
                )
            }
            RunEvent::BatchCompleted(p) => {
                let mut parts = Vec::new();
                for (node, s) in &p.sources {
                    let mut part = format!("{node}: {} rows", s.input_rows);
                    if s.rescued_records > 0 {
                        part.push_str(&format!(", {} rescued", s.rescued_records));
                    }
                    if s.quarantined_records > 0 {
                        part.push_str(&format!(", {} quarantined", s.quarantined_records));
                    }
                    if s.backlog > 0 {
                        part.push_str(&format!(", backlog {}", s.backlog));
                    }
                    parts.push(part);
                }
                for (node, e) in &p.expectations {
                    parts.push(format!("{node}: {}", expectation_summary(e)));
                }
                for (node, b) in &p.transforms {
                    if b.rescued_records > 0 {
                        parts.push(format!("{node}: {} rescued", b.rescued_records));
                    }
                    if b.quarantined_records > 0 {
                        parts.push(format!("{node}: {} quarantined", b.quarantined_records));
                    }
                }
                let sinks: Vec<String> =
                    p.sinks.iter().map(|(n, v)| format!("{n} -> v{v}")).collect();
                write!(
                    f,
                    "[{}] batch {}{}: {} | {} | {:.0} rows/s | {} ms",
                    p.pipeline,
                    p.batch_id,
                    if p.replayed { " (replayed)" } else { "" },
                    parts.join("; "),
                    sinks.join(", "),
                    p.processed_rows_per_second,
                    p.duration_ms.get("total").copied().unwrap_or_default()
                )
            }
            RunEvent::Warning { pipeline, node: Some(n), message } => {
                write!(f, "[{pipeline}] warning at node `{n}`: {message}")
            }
            RunEvent::Warning { pipeline, node: None, message } => {
                write!(f, "[{pipeline}] warning: {message}")
            }
            RunEvent::PipelineFinished { pipeline, rows_written, stopped: true, .. } => {
                write!(f, "[{pipeline}] stopped: {rows_written} rows written")
            }
            RunEvent::PipelineFinished { pipeline, rows_written, duration_ms, .. } => write!(
                f,
                "[{pipeline}] finished: {rows_written} rows written in {:.2} s",
                *duration_ms as f64 / 1000.0
            ),
            RunEvent::ExpectationsChecked { pipeline, node, report } => {
                write!(f, "[{pipeline}] node `{node}`: {}", expectation_summary(report))
            }
            RunEvent::Idle { pipeline } => {
                write!(f, "[{pipeline}] waiting for new data in its sources")
            }
            RunEvent::NodeRows { pipeline, rows } => {
                let each: Vec<String> = rows.iter().map(|(n, r)| format!("{n} {r}")).collect();
                write!(f, "[{pipeline}] rows per node: {}", each.join(", "))
            }
            RunEvent::PipelineFailed { pipeline, node, message } => match node {
                Some(n) => write!(f, "[{pipeline}] FAILED at node `{n}`: {message}"),
                None => write!(f, "[{pipeline}] FAILED: {message}"),
            },
        }
    }
}

/// `3 of 4 rows passed (1 dropped); valid_id 3/1, ...` (passed/failed per rule).
fn expectation_summary(r: &super::transforms::expectations::ExpectationReport) -> String {
    let rules: Vec<String> =
        r.rules.iter().map(|c| format!("{} {}/{}", c.name, c.passed, c.failed)).collect();
    format!(
        "expectations: {} of {} rows out ({} dropped); passed/failed: {}",
        r.output_rows,
        r.input_rows,
        r.dropped_rows,
        rules.join(", ")
    )
}
