//! Stateful streams in the model: the settings of their pieces (the Watermark node, late
//! rows, output modes), and what makes a stream stateful, read off the graph: which nodes carry streaming data, which
//! of them keep state across micro-batches, which watermarks reach them, and Spark's rules
//! for what a stateful query may do (`UnsupportedOperationChecker`), as diagnostics that name
//! the node and the fix. Pure graph logic: the engine plans with the same answers.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use super::graph::{NodeId, Pipeline, PipelineMode};
use super::node::{JoinHow, Node, NodeKind};
use super::validate::Diagnostic;

/// `withWatermark(column, delay)`: event time for the stateful nodes downstream.
///
/// The watermark is the largest event time seen minus `delay`; it never goes back and takes
/// effect from the next micro-batch, as in Spark. Rows at or below the previous batch's
/// watermark are late where a stateful node would drop them: always counted, and with
/// `late_rows = "quarantine"` written to the pipeline's quarantine table.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Watermark {
    /// The event-time column (a TIMESTAMP).
    pub column: String,
    /// `"10 minutes"`, `"30 seconds"`, `"1 hour"`.
    pub delay: String,
    #[serde(default, skip_serializing_if = "is_default_late_rows")]
    pub late_rows: LateRows,
}

/// What happens to a late row (beyond counting it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LateRows {
    /// Dropped and counted, as Spark does.
    #[default]
    Drop,
    /// Dropped, counted and written to the quarantine table with the reason.
    Quarantine,
}

impl LateRows {
    pub const ALL: [LateRows; 2] = [LateRows::Drop, LateRows::Quarantine];

    pub fn as_str(self) -> &'static str {
        match self {
            LateRows::Drop => "drop",
            LateRows::Quarantine => "quarantine",
        }
    }
}

/// Spark's output modes, on a stream's sinks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputMode {
    /// Rows that will never change: a window once the watermark passes its end.
    #[default]
    Append,
    /// The rows that changed in the batch (a Delta sink MERGEs them on the grouping keys).
    Update,
    /// The whole result, every batch (a Delta sink overwrites the table).
    Complete,
}

impl OutputMode {
    pub const ALL: [OutputMode; 3] = [OutputMode::Append, OutputMode::Update, OutputMode::Complete];

    pub fn as_str(self) -> &'static str {
        match self {
            OutputMode::Append => "append",
            OutputMode::Update => "update",
            OutputMode::Complete => "complete",
        }
    }
}

fn is_default_late_rows(v: &LateRows) -> bool {
    *v == LateRows::Drop
}

/// The kind of state a node keeps in a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatefulKind {
    Aggregate,
    Dedup,
    Join,
}

/// Whether a source delivers new data batch after batch (a static Delta table does not).
pub fn is_streaming_source(kind: &NodeKind) -> bool {
    match kind {
        NodeKind::FileSource(_) | NodeKind::KafkaSource(_) | NodeKind::GeneratorSource(_) => true,
        NodeKind::DeltaSource(d) => !d.static_table,
        _ => false,
    }
}

/// Nodes that carry streaming data: everything downstream of a streaming source.
pub fn streaming_nodes(p: &Pipeline) -> HashSet<NodeId> {
    if p.mode != PipelineMode::Stream {
        return HashSet::new();
    }
    let mut out = HashSet::new();
    let mut stack: Vec<&NodeId> =
        p.nodes.iter().filter(|n| is_streaming_source(&n.kind)).map(|n| &n.id).collect();
    while let Some(id) = stack.pop() {
        if out.insert(id.clone()) {
            stack.extend(p.edges.iter().filter(|e| &e.from == id).map(|e| &e.to));
        }
    }
    out
}

/// Nodes that keep state across micro-batches, in topological order.
pub fn stateful_nodes(p: &Pipeline) -> Vec<(NodeId, StatefulKind)> {
    let streaming = streaming_nodes(p);
    let Some(order) = p.topological_order() else { return Vec::new() };
    order
        .into_iter()
        .filter(|id| streaming.contains(id))
        .filter_map(|id| {
            let node = p.node(&id)?;
            let kind = match &node.kind {
                NodeKind::Aggregate(_) => StatefulKind::Aggregate,
                NodeKind::Deduplicate(_) | NodeKind::Distinct(_) => StatefulKind::Dedup,
                NodeKind::Join(_) => {
                    let both = ["left", "right"].iter().all(|port| {
                        p.input_of(&id, port).is_some_and(|from| streaming.contains(from))
                    });
                    if !both {
                        return None;
                    }
                    StatefulKind::Join
                }
                _ => return None,
            };
            Some((id, kind))
        })
        .collect()
}

/// Watermark nodes whose output reaches `id`'s input `port` (any port when `None`).
pub fn watermarks_into<'a>(p: &'a Pipeline, id: &NodeId, port: Option<&str>) -> Vec<&'a Node> {
    let starts: Vec<&NodeId> = p
        .edges
        .iter()
        .filter(|e| &e.to == id && port.is_none_or(|pt| e.port == pt))
        .map(|e| &e.from)
        .collect();
    p.nodes
        .iter()
        .filter(|n| matches!(n.kind, NodeKind::Watermark(_)))
        .filter(|n| starts.iter().any(|s| *s == &n.id || p.reaches(&n.id, s)))
        .collect()
}

/// The event-time column a watermark gives `id` (the nearest Watermark upstream's column).
pub fn event_time_column(p: &Pipeline, id: &NodeId, port: Option<&str>) -> Option<String> {
    watermarks_into(p, id, port).into_iter().rev().find_map(|n| match &n.kind {
        NodeKind::Watermark(w) => Some(w.column.clone()),
        _ => None,
    })
}

/// The query's output mode: what its sinks ask for (they must agree).
pub fn output_mode(p: &Pipeline) -> Result<OutputMode, String> {
    let modes: Vec<OutputMode> = p
        .sinks()
        .map(|s| match &s.kind {
            NodeKind::DeltaSink(d) => d.output_mode,
            _ => OutputMode::Append,
        })
        .collect();
    let first = modes.first().copied().unwrap_or_default();
    if modes.iter().any(|m| *m != first) {
        return Err(format!(
            "the sinks of a stream ask for different output modes ({}); one query has one output mode: set the same output_mode on every sink",
            modes.iter().map(|m| m.as_str()).collect::<Vec<_>>().join(", ")
        ));
    }
    Ok(first)
}

fn is_window_item(item: &str) -> bool {
    let t = item.trim().to_ascii_lowercase();
    t.starts_with("window(") || t.starts_with("window (")
}

fn is_session_item(item: &str) -> bool {
    let t = item.trim().to_ascii_lowercase();
    t.starts_with("session_window(") || t.starts_with("session_window (")
}

/// Spark's rules for stateful streams, each finding on the node it concerns.
pub fn check(p: &Pipeline) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    if p.mode != PipelineMode::Stream {
        return out;
    }
    let stateful = stateful_nodes(p);
    let mode = match output_mode(p) {
        Ok(m) => m,
        Err(e) => {
            out.push(Diagnostic::error(&p.name, None, e));
            return out;
        }
    };
    let has_aggregate = stateful.iter().any(|(_, k)| *k == StatefulKind::Aggregate);
    if mode == OutputMode::Complete && !has_aggregate {
        out.push(Diagnostic::error(
            &p.name,
            p.sinks().next().map(|s| &s.id),
            "output_mode = \"complete\" needs a streaming aggregation (the whole result is rewritten each batch); use append",
        ));
    }
    for (id, kind) in &stateful {
        let Some(node) = p.node(id) else { continue };
        let watermark = !watermarks_into(p, id, None).is_empty();
        let wm_col = event_time_column(p, id, None);
        let downstream_stateful =
            stateful.iter().any(|(other, _)| other != id && p.reaches(id, other));
        match (&node.kind, kind) {
            (NodeKind::Aggregate(a), StatefulKind::Aggregate) => {
                let windowed = a.group_by.iter().any(|g| is_window_item(g) || is_session_item(g));
                let session = a.group_by.iter().any(|g| is_session_item(g));
                let keyed_by_time = wm_col
                    .as_ref()
                    .is_some_and(|c| a.group_by.iter().any(|g| g.trim() == c.as_str()));
                if mode == OutputMode::Append && !(watermark && (windowed || keyed_by_time)) {
                    out.push(Diagnostic::error(
                        &p.name,
                        Some(id),
                        "a streaming aggregation in append mode emits a group only when the watermark closes it: add a Watermark node upstream and group by window(<event time>, '<size>') (or the event-time column), or set output_mode = \"update\" or \"complete\" on the sink",
                    ));
                }
                if session && mode == OutputMode::Update {
                    out.push(Diagnostic::error(
                        &p.name,
                        Some(id),
                        "session windows do not support update mode (as in Spark): use append with a watermark, or complete",
                    ));
                }
                if session && a.group_by.len() < 2 {
                    out.push(Diagnostic::error(
                        &p.name,
                        Some(id),
                        "a session window needs at least one other grouping key (e.g. the user id)",
                    ));
                }
                if downstream_stateful && mode != OutputMode::Append {
                    out.push(Diagnostic::error(
                        &p.name,
                        Some(id),
                        "an aggregation in update or complete mode cannot feed another stateful node (its rows may still change); use append mode with a watermark",
                    ));
                }
                if !windowed && !keyed_by_time && mode != OutputMode::Append {
                    out.push(Diagnostic::warning(
                        &p.name,
                        Some(id),
                        "the state keeps every group for ever (no window or event-time key); it grows with the number of distinct keys",
                    ));
                }
            }
            (NodeKind::Deduplicate(d), StatefulKind::Dedup) => {
                if d.within_watermark && !watermark {
                    out.push(Diagnostic::error(
                        &p.name,
                        Some(id),
                        "within_watermark (dropDuplicatesWithinWatermark) needs a Watermark node upstream",
                    ));
                }
                let bounded =
                    d.within_watermark || wm_col.as_ref().is_some_and(|c| d.keys.contains(c));
                if !bounded {
                    out.push(Diagnostic::warning(
                        &p.name,
                        Some(id),
                        "the state keeps every key for ever: add the event-time column (with a Watermark upstream) to the keys, or set within_watermark = true",
                    ));
                }
            }
            (NodeKind::Distinct(_), StatefulKind::Dedup) => {
                out.push(Diagnostic::warning(
                    &p.name,
                    Some(id),
                    "distinct in a stream keeps every row it has seen for ever; prefer a Deduplicate on keys with the event-time column",
                ));
            }
            (NodeKind::Join(j), StatefulKind::Join) => {
                let lw = !watermarks_into(p, id, Some("left")).is_empty();
                let rw = !watermarks_into(p, id, Some("right")).is_empty();
                let ranged = j.condition.as_ref().is_some_and(|c| {
                    let c = c.to_ascii_lowercase();
                    c.contains("left.")
                        && c.contains("right.")
                        && (c.contains("between") || c.contains('<') || c.contains('>'))
                });
                if mode != OutputMode::Append {
                    out.push(Diagnostic::error(
                        &p.name,
                        Some(id),
                        "a join of two streams supports append mode only (as in Spark): set output_mode = \"append\" on the sink",
                    ));
                }
                match j.how {
                    JoinHow::Left | JoinHow::Right | JoinHow::Full if !(lw && rw && ranged) => {
                        out.push(Diagnostic::error(
                            &p.name,
                            Some(id),
                            format!(
                                "a {} outer join of two streams needs a Watermark on both inputs and a time range in `condition` (e.g. right.t BETWEEN left.t AND left.t + INTERVAL '1 hour'), so an unmatched row can be emitted with NULLs once it can no longer match",
                                j.how.as_str()
                            ),
                        ));
                    }
                    JoinHow::LeftSemi | JoinHow::LeftAnti => out.push(Diagnostic::error(
                        &p.name,
                        Some(id),
                        "semi and anti joins of two streams are not supported; use inner or an outer join",
                    )),
                    JoinHow::Inner if !(lw && rw && ranged) => out.push(Diagnostic::warning(
                        &p.name,
                        Some(id),
                        "without a Watermark on both inputs and a time range in `condition`, this join keeps every row of both streams for ever",
                    )),
                    _ => {}
                }
            }
            _ => {}
        }
    }
    for n in &p.nodes {
        if let NodeKind::Watermark(_) = &n.kind
            && !streaming_nodes(p).contains(&n.id)
            && p.mode == PipelineMode::Stream
        {
            out.push(Diagnostic::warning(
                &p.name,
                Some(&n.id),
                "this watermark is not on a stream (its input is a static table); it has no effect",
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::node::{Aggregate, DeltaSink, GeneratorSource, Watermark};
    use crate::model::{Node, Pipeline};

    fn pipeline(with_watermark: bool, group_by: &[&str], mode: OutputMode) -> Pipeline {
        let mut p = Pipeline::new("p");
        p.mode = PipelineMode::Stream;
        p.add_node(Node::new("gen", NodeKind::GeneratorSource(GeneratorSource::default())))
            .unwrap();
        p.add_node(Node::new(
            "wm",
            NodeKind::Watermark(Watermark {
                column: "signup_time".into(),
                delay: "10 minutes".into(),
                ..Watermark::default()
            }),
        ))
        .unwrap();
        p.add_node(Node::new(
            "agg",
            NodeKind::Aggregate(Aggregate {
                group_by: group_by.iter().map(|s| s.to_string()).collect(),
                aggregates: vec!["count(*) AS n".into()],
            }),
        ))
        .unwrap();
        p.add_node(Node::new(
            "sink",
            NodeKind::DeltaSink(DeltaSink {
                table: "gold/x".into(),
                output_mode: mode,
                ..DeltaSink::default()
            }),
        ))
        .unwrap();
        let id = |s: &str| NodeId::new(s);
        if with_watermark {
            p.connect(&id("gen"), &id("wm"), "in").unwrap();
            p.connect(&id("wm"), &id("agg"), "in").unwrap();
        } else {
            p.connect(&id("gen"), &id("agg"), "in").unwrap();
        }
        p.connect(&id("agg"), &id("sink"), "in").unwrap();
        p
    }

    fn errors(p: &Pipeline) -> Vec<String> {
        check(p)
            .into_iter()
            .filter(|d| d.severity == super::super::Severity::Error)
            .map(|d| d.message)
            .collect()
    }

    #[test]
    fn spark_rules_for_aggregations() {
        let ok = pipeline(true, &["window(signup_time, '1 minute')"], OutputMode::Append);
        assert!(errors(&ok).is_empty(), "{:?}", errors(&ok));
        let no_wm = pipeline(false, &["window(signup_time, '1 minute')"], OutputMode::Append);
        assert!(errors(&no_wm)[0].contains("add a Watermark node upstream"));
        let update_ok = pipeline(false, &["user_title"], OutputMode::Update);
        assert!(errors(&update_ok).is_empty());
        let session = pipeline(
            true,
            &["user_title", "session_window(signup_time, '5 minutes')"],
            OutputMode::Update,
        );
        assert!(
            errors(&session).iter().any(|e| e.contains("session windows do not support update"))
        );
        assert_eq!(stateful_nodes(&ok), vec![(NodeId::new("agg"), StatefulKind::Aggregate)]);
        assert_eq!(
            event_time_column(&ok, &NodeId::new("agg"), None).as_deref(),
            Some("signup_time")
        );
    }
}
