//! Pipelines as graphs: nodes, edges between an output and a named input port, and the
//! rules for connecting them. The canvas and the CLI share these rules.

use serde::{Deserialize, Serialize};

use super::node::{DEFAULT_PORT, Node, NodeKind};

/// A node's id: unique within its pipeline, used in edges, errors and the CLI (`--node`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NodeId(String);

impl NodeId {
    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for NodeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for NodeId {
    fn from(s: &str) -> Self {
        Self(s.to_owned())
    }
}

/// Position of a node on the canvas, in canvas units. Part of the model so files round-trip.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(from = "[f32; 2]", into = "[f32; 2]")]
pub struct Pos {
    pub x: f32,
    pub y: f32,
}

impl From<[f32; 2]> for Pos {
    fn from([x, y]: [f32; 2]) -> Self {
        Self { x, y }
    }
}

impl From<Pos> for [f32; 2] {
    fn from(p: Pos) -> Self {
        [p.x, p.y]
    }
}

/// An edge from `from`'s output into `to`'s input `port`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Edge {
    pub from: NodeId,
    pub to: NodeId,
    #[serde(default = "default_port", skip_serializing_if = "is_default_port")]
    pub port: String,
}

impl Edge {
    pub fn new(from: impl Into<String>, to: impl Into<String>, port: impl Into<String>) -> Self {
        Self { from: NodeId::new(from), to: NodeId::new(to), port: port.into() }
    }
}

fn default_port() -> String {
    DEFAULT_PORT.to_owned()
}

fn is_default_port(p: &String) -> bool {
    p == DEFAULT_PORT
}

/// Batch pipelines run once; stream pipelines run micro-batches with a checkpoint.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PipelineMode {
    #[default]
    Batch,
    Stream,
}

/// When a stream runs its micro-batches, as Spark's `trigger(...)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Trigger {
    /// `processingTime`: start a batch every interval (at once if the last one ran longer).
    Interval { interval_ms: u64 },
    /// `availableNow`: everything present at start, in bounded batches, then stop.
    AvailableNow,
    /// `once`: everything present at start in one batch, then stop; the per-trigger caps
    /// (`max_files_per_trigger`, `max_bytes_per_trigger`, `maxOffsetsPerTrigger`) are ignored.
    Once,
}

impl Default for Trigger {
    fn default() -> Self {
        Trigger::Interval { interval_ms: 500 }
    }
}

impl TryFrom<String> for Trigger {
    type Error = String;

    fn try_from(s: String) -> Result<Self, String> {
        let t = s.trim().to_ascii_lowercase();
        match t.as_str() {
            "available_now" | "availablenow" => return Ok(Trigger::AvailableNow),
            "once" => return Ok(Trigger::Once),
            _ => {}
        }
        parse_duration_ms(&t).map(|interval_ms| Trigger::Interval { interval_ms }).ok_or_else(|| {
            format!(
                "trigger `{s}` is not `available_now`, `once` or an interval such as `500ms`, `2s`, `1 minute`"
            )
        })
    }
}

impl From<Trigger> for String {
    fn from(t: Trigger) -> String {
        match t {
            Trigger::AvailableNow => "available_now".into(),
            Trigger::Once => "once".into(),
            Trigger::Interval { interval_ms } if interval_ms % 1000 == 0 => {
                format!("{}s", interval_ms / 1000)
            }
            Trigger::Interval { interval_ms } => format!("{interval_ms}ms"),
        }
    }
}

/// How the watermarks of several Watermark nodes combine into the global one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WatermarkPolicy {
    /// The slowest input decides: nothing is late that any input still waits for.
    #[default]
    Min,
    /// The fastest input decides: rows of a slower input may become late.
    Max,
}

impl WatermarkPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            WatermarkPolicy::Min => "min",
            WatermarkPolicy::Max => "max",
        }
    }
}

fn is_default_policy(p: &WatermarkPolicy) -> bool {
    *p == WatermarkPolicy::Min
}

/// `500ms`, `2s`, `2 seconds`, `1 minute`, `10 minutes`, `1 day`, `0` → milliseconds.
pub fn parse_duration_ms(text: &str) -> Option<u64> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().ok()?;
    let factor = match unit.trim() {
        "" | "ms" | "millisecond" | "milliseconds" => 1.0,
        "s" | "sec" | "second" | "seconds" => 1000.0,
        "m" | "min" | "minute" | "minutes" => 60_000.0,
        "h" | "hour" | "hours" => 3_600_000.0,
        "d" | "day" | "days" => 86_400_000.0,
        _ => return None,
    };
    (n >= 0.0).then(|| (n * factor).round() as u64)
}

/// One graph of nodes; a project holds several.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pipeline {
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(default)]
    pub mode: PipelineMode,
    /// Streams: when micro-batches run (`"500ms"`, `"available_now"`, `"once"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<Trigger>,
    /// Streams: `checkpointLocation`, relative to the lakehouse root
    /// (default `_checkpoints/<pipeline name>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<String>,
    /// Streams with several Watermark nodes: the global watermark is their minimum (default)
    /// or maximum (Spark's `spark.sql.streaming.multipleWatermarkPolicy`). Fixed in the
    /// checkpoint at the first start.
    #[serde(default, skip_serializing_if = "is_default_policy")]
    pub watermark_policy: WatermarkPolicy,
    /// Streams: how many recent batches the checkpoint keeps (Spark's
    /// `spark.sql.streaming.minBatchesToRetain`, default 100); older ones are folded into
    /// the compact log and deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_batches_to_retain: Option<u64>,
    #[serde(default)]
    pub nodes: Vec<Node>,
    #[serde(default)]
    pub edges: Vec<Edge>,
}

/// Why a connection or edit was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GraphError {
    #[error("no node `{0}` in this pipeline")]
    UnknownNode(NodeId),
    #[error("node `{0}` has no output (sinks end a pipeline)")]
    NoOutput(NodeId),
    #[error("node `{node}` has no input port `{port}`")]
    UnknownPort { node: NodeId, port: String },
    #[error("input `{port}` of node `{node}` is already connected; disconnect it first")]
    PortTaken { node: NodeId, port: String },
    #[error("connecting `{from}` to `{to}` would make a cycle")]
    Cycle { from: NodeId, to: NodeId },
    #[error("a node with id `{0}` already exists")]
    DuplicateId(NodeId),
}

impl Pipeline {
    pub fn new(name: impl Into<String>) -> Self {
        Self { name: name.into(), ..Self::default() }
    }

    pub fn node(&self, id: &NodeId) -> Option<&Node> {
        self.nodes.iter().find(|n| &n.id == id)
    }

    pub fn node_mut(&mut self, id: &NodeId) -> Option<&mut Node> {
        self.nodes.iter_mut().find(|n| &n.id == id)
    }

    /// Adds a node; its id must be new.
    pub fn add_node(&mut self, node: Node) -> Result<(), GraphError> {
        if self.node(&node.id).is_some() {
            return Err(GraphError::DuplicateId(node.id));
        }
        self.nodes.push(node);
        Ok(())
    }

    /// A fresh id for a node of `kind`: `select`, `select_2`, ...
    pub fn fresh_id(&self, kind: &NodeKind) -> NodeId {
        let base = kind.tag();
        if self.node(&NodeId::new(base)).is_none() {
            return NodeId::new(base);
        }
        (2..)
            .map(|i| NodeId::new(format!("{base}_{i}")))
            .find(|id| self.node(id).is_none())
            .unwrap_or_else(|| NodeId::new(base))
    }

    /// Removes a node and every edge touching it.
    pub fn remove_node(&mut self, id: &NodeId) -> Option<Node> {
        let idx = self.nodes.iter().position(|n| &n.id == id)?;
        self.edges.retain(|e| &e.from != id && &e.to != id);
        Some(self.nodes.remove(idx))
    }

    /// Checks that `from` may feed `to.port`, without changing anything.
    pub fn can_connect(&self, from: &NodeId, to: &NodeId, port: &str) -> Result<(), GraphError> {
        let src = self.node(from).ok_or_else(|| GraphError::UnknownNode(from.clone()))?;
        let dst = self.node(to).ok_or_else(|| GraphError::UnknownNode(to.clone()))?;
        if !src.kind.has_output() {
            return Err(GraphError::NoOutput(from.clone()));
        }
        if !dst.kind.input_ports().iter().any(|p| p == port) {
            return Err(GraphError::UnknownPort { node: to.clone(), port: port.to_owned() });
        }
        if self.edges.iter().any(|e| &e.to == to && e.port == port) {
            return Err(GraphError::PortTaken { node: to.clone(), port: port.to_owned() });
        }
        if from == to || self.reaches(to, from) {
            return Err(GraphError::Cycle { from: from.clone(), to: to.clone() });
        }
        Ok(())
    }

    /// Connects `from`'s output to `to.port` if the rules allow it.
    pub fn connect(&mut self, from: &NodeId, to: &NodeId, port: &str) -> Result<(), GraphError> {
        self.can_connect(from, to, port)?;
        self.edges.push(Edge { from: from.clone(), to: to.clone(), port: port.to_owned() });
        Ok(())
    }

    /// Removes the edge into `to.port`, returning it.
    pub fn disconnect(&mut self, to: &NodeId, port: &str) -> Option<Edge> {
        let idx = self.edges.iter().position(|e| &e.to == to && e.port == port)?;
        Some(self.edges.remove(idx))
    }

    /// The node feeding `to.port`.
    pub fn input_of(&self, to: &NodeId, port: &str) -> Option<&NodeId> {
        self.edges.iter().find(|e| &e.to == to && e.port == port).map(|e| &e.from)
    }

    /// Whether data flows from `from` to `to` along edges.
    pub fn reaches(&self, from: &NodeId, to: &NodeId) -> bool {
        let mut stack = vec![from];
        let mut seen = std::collections::HashSet::new();
        while let Some(n) = stack.pop() {
            if n == to {
                return true;
            }
            if seen.insert(n) {
                stack.extend(self.edges.iter().filter(|e| &e.from == n).map(|e| &e.to));
            }
        }
        false
    }

    /// Arranges the nodes left to right by their edges: a node's column is its longest path
    /// from a source, and within a column nodes keep their order in the file.
    pub fn auto_layout(&mut self) {
        const COLUMN_GAP: f32 = 240.0;
        const ROW_GAP: f32 = 130.0;
        let order = self
            .topological_order()
            .unwrap_or_else(|| self.nodes.iter().map(|n| n.id.clone()).collect());
        let mut depth: std::collections::HashMap<NodeId, usize> = Default::default();
        for id in &order {
            let d = self
                .edges
                .iter()
                .filter(|e| &e.to == id)
                .filter_map(|e| depth.get(&e.from).map(|d| d + 1))
                .max()
                .unwrap_or(0);
            depth.insert(id.clone(), d);
        }
        let mut rows: std::collections::HashMap<usize, usize> = Default::default();
        for node in &mut self.nodes {
            let col = depth.get(&node.id).copied().unwrap_or(0);
            let row = rows.entry(col).or_insert(0);
            node.pos = Pos { x: col as f32 * COLUMN_GAP, y: *row as f32 * ROW_GAP };
            *row += 1;
        }
    }

    /// Whether two nodes sit at the same place, as in a hand-written file without positions.
    pub fn has_overlapping_nodes(&self) -> bool {
        self.nodes.iter().enumerate().any(|(i, a)| {
            self.nodes[i + 1..]
                .iter()
                .any(|b| (a.pos.x - b.pos.x).abs() < 1.0 && (a.pos.y - b.pos.y).abs() < 1.0)
        })
    }

    /// Nodes in an order where every node comes after its inputs; `None` on a cycle.
    pub fn topological_order(&self) -> Option<Vec<NodeId>> {
        let mut indegree: std::collections::HashMap<&NodeId, usize> =
            self.nodes.iter().map(|n| (&n.id, 0)).collect();
        for e in &self.edges {
            if let Some(d) = indegree.get_mut(&e.to) {
                *d += 1;
            }
        }
        let mut ready: Vec<&NodeId> =
            self.nodes.iter().map(|n| &n.id).filter(|id| indegree[id] == 0).collect();
        ready.reverse();
        let mut order = Vec::with_capacity(self.nodes.len());
        while let Some(id) = ready.pop() {
            order.push(id.clone());
            for e in self.edges.iter().filter(|e| &e.from == id) {
                if let Some(d) = indegree.get_mut(&e.to) {
                    *d -= 1;
                    if *d == 0 {
                        ready.push(&e.to);
                    }
                }
            }
        }
        (order.len() == self.nodes.len()).then_some(order)
    }

    /// Sink nodes, in file order.
    pub fn sinks(&self) -> impl Iterator<Item = &Node> {
        self.nodes.iter().filter(|n| n.kind.role() == super::NodeRole::Sink)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::node::{DeltaSink, Distinct, FileSource, Join};

    fn pipeline() -> Pipeline {
        let mut p = Pipeline::new("p");
        p.add_node(Node::new("src", NodeKind::FileSource(FileSource::default()))).unwrap();
        p.add_node(Node::new("other", NodeKind::FileSource(FileSource::default()))).unwrap();
        p.add_node(Node::new("d", NodeKind::Distinct(Distinct::default()))).unwrap();
        p.add_node(Node::new("j", NodeKind::Join(Join::default()))).unwrap();
        p.add_node(Node::new("sink", NodeKind::DeltaSink(DeltaSink::default()))).unwrap();
        p
    }

    #[test]
    fn connection_rules() {
        let mut p = pipeline();
        let id = |s: &str| NodeId::new(s);
        p.connect(&id("src"), &id("d"), "in").unwrap();
        assert_eq!(
            p.connect(&id("other"), &id("d"), "in"),
            Err(GraphError::PortTaken { node: id("d"), port: "in".into() })
        );
        assert_eq!(p.connect(&id("sink"), &id("d"), "in"), Err(GraphError::NoOutput(id("sink"))));
        assert!(matches!(
            p.connect(&id("src"), &id("j"), "middle"),
            Err(GraphError::UnknownPort { .. })
        ));
        p.connect(&id("d"), &id("j"), "left").unwrap();
        p.connect(&id("other"), &id("j"), "right").unwrap();
        p.connect(&id("j"), &id("sink"), "in").unwrap();
        assert!(matches!(p.connect(&id("j"), &id("d"), "in"), Err(GraphError::PortTaken { .. })));
        p.disconnect(&id("d"), "in").unwrap();
        assert!(matches!(p.connect(&id("j"), &id("d"), "in"), Err(GraphError::Cycle { .. })));
    }

    #[test]
    fn auto_layout_puts_each_node_right_of_its_inputs() {
        let mut p = pipeline();
        let id = |s: &str| NodeId::new(s);
        p.connect(&id("src"), &id("d"), "in").unwrap();
        p.connect(&id("d"), &id("j"), "left").unwrap();
        p.connect(&id("other"), &id("j"), "right").unwrap();
        p.connect(&id("j"), &id("sink"), "in").unwrap();
        assert!(p.has_overlapping_nodes(), "no positions in the file: all at the origin");
        p.auto_layout();
        assert!(!p.has_overlapping_nodes());
        let x = |n: &str| p.node(&id(n)).unwrap().pos.x;
        for e in &p.edges {
            assert!(x(e.from.as_str()) < x(e.to.as_str()), "{} before {}", e.from, e.to);
        }
        assert_eq!(x("src"), x("other"), "both sources in the first column");
        assert!(x("j") > x("d"), "the join after the longest input path");
    }

    #[test]
    fn topological_order_puts_inputs_first() {
        let mut p = pipeline();
        let id = |s: &str| NodeId::new(s);
        p.connect(&id("j"), &id("sink"), "in").unwrap();
        p.connect(&id("d"), &id("j"), "left").unwrap();
        p.connect(&id("src"), &id("d"), "in").unwrap();
        let order = p.topological_order().unwrap();
        let pos = |s: &str| order.iter().position(|n| n.as_str() == s).unwrap();
        assert!(pos("src") < pos("d") && pos("d") < pos("j") && pos("j") < pos("sink"));
        p.remove_node(&id("d"));
        assert!(p.edges.iter().all(|e| e.from.as_str() != "d" && e.to.as_str() != "d"));
    }
}
