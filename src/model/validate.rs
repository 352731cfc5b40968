//! Graph checks that need no engine: every finding is collected, none stops the others.
//!
//! The engine adds its own findings (unknown columns, missing tables, bad SQL) when it plans.

use std::collections::HashSet;

use serde::Serialize;

use super::graph::{NodeId, Pipeline};
use super::node::{NodeKind, WriteMode};
use super::project::Project;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Warning,
    Error,
}

/// One finding, pinned on a node where there is one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub pipeline: String,
    pub node: Option<NodeId>,
    pub severity: Severity,
    pub message: String,
}

impl Diagnostic {
    pub fn error(pipeline: &str, node: Option<&NodeId>, message: impl Into<String>) -> Self {
        Self {
            pipeline: pipeline.to_owned(),
            node: node.cloned(),
            severity: Severity::Error,
            message: message.into(),
        }
    }

    pub fn warning(pipeline: &str, node: Option<&NodeId>, message: impl Into<String>) -> Self {
        Self { severity: Severity::Warning, ..Self::error(pipeline, node, message) }
    }
}

impl std::fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let level = match self.severity {
            Severity::Warning => "warning",
            Severity::Error => "error",
        };
        match &self.node {
            Some(node) => {
                write!(f, "{level}: pipeline `{}`, node `{node}`: {}", self.pipeline, self.message)
            }
            None => write!(f, "{level}: pipeline `{}`: {}", self.pipeline, self.message),
        }
    }
}

/// Checks every pipeline of a project.
pub fn validate_project(project: &Project) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let mut names = HashSet::new();
    for p in &project.pipelines {
        if !names.insert(p.name.as_str()) {
            out.push(Diagnostic::error(&p.name, None, "two pipelines share this name"));
        }
        out.extend(validate_pipeline(p));
    }
    out.extend(super::pipeline_test::validate_tests(project));
    out
}

/// Checks one pipeline's graph and the settings that need no engine.
pub fn validate_pipeline(p: &Pipeline) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let err = |node: Option<&NodeId>, msg: String| Diagnostic::error(&p.name, node, msg);
    if p.name.trim().is_empty() {
        out.push(err(None, "pipeline has no name".into()));
    }
    let mut ids = HashSet::new();
    for n in &p.nodes {
        if n.id.as_str().is_empty() {
            out.push(err(None, "a node has an empty id".into()));
        } else if !ids.insert(&n.id) {
            out.push(err(Some(&n.id), "two nodes share this id".into()));
        }
    }
    for e in &p.edges {
        match (p.node(&e.from), p.node(&e.to)) {
            (None, _) => out.push(err(Some(&e.to), format!("edge from unknown node `{}`", e.from))),
            (_, None) => out.push(err(Some(&e.from), format!("edge to unknown node `{}`", e.to))),
            (Some(src), Some(dst)) => {
                if !src.kind.has_output() {
                    out.push(err(
                        Some(&e.from),
                        format!("a sink has no output, but an edge leads from it to `{}`", e.to),
                    ));
                }
                if !dst.kind.input_ports().contains(&e.port) {
                    out.push(err(
                        Some(&e.to),
                        format!(
                            "edge from `{}` into unknown input port `{}` (ports: {})",
                            e.from,
                            e.port,
                            dst.kind.input_ports().join(", ")
                        ),
                    ));
                }
            }
        }
    }
    for n in &p.nodes {
        for port in n.kind.input_ports() {
            let feeding = p.edges.iter().filter(|e| e.to == n.id && e.port == port).count();
            if feeding == 0 {
                out.push(err(Some(&n.id), format!("input `{port}` is not connected")));
            } else if feeding > 1 {
                out.push(err(Some(&n.id), format!("input `{port}` has {feeding} edges; keep one")));
            }
        }
        if n.kind.has_output() && !p.edges.iter().any(|e| e.from == n.id) {
            out.push(Diagnostic::warning(
                &p.name,
                Some(&n.id),
                "output is not used by any node".to_owned(),
            ));
        }
        for msg in settings_problems(&n.kind) {
            out.push(err(Some(&n.id), msg));
        }
    }
    if p.topological_order().is_none() {
        out.push(err(None, "the graph has a cycle".into()));
    }
    if p.mode == super::PipelineMode::Batch {
        for n in &p.nodes {
            if matches!(n.kind, NodeKind::GeneratorSource(_) | NodeKind::KafkaSource(_)) {
                out.push(err(
                    Some(&n.id),
                    "this source only runs in a stream pipeline (mode = \"stream\")".into(),
                ));
            }
        }
        if p.trigger.is_some() {
            out.push(Diagnostic::warning(&p.name, None, "trigger is ignored in a batch pipeline"));
        }
    }
    out.extend(super::streaming::check(p));
    if !p.nodes.is_empty() && p.sinks().next().is_none() {
        out.push(Diagnostic::warning(&p.name, None, "pipeline has no sink; nothing is written"));
    }
    out
}

/// Settings that are wrong whatever the data: empty paths, missing keys, ...
fn settings_problems(kind: &NodeKind) -> Vec<String> {
    let mut out = Vec::new();
    let mut need = |ok: bool, msg: &str| {
        if !ok {
            out.push(msg.to_owned());
        }
    };
    match kind {
        NodeKind::DeltaSource(s) => {
            need(!s.table.trim().is_empty(), "set the table path");
            need(
                s.version.is_none() || s.timestamp.is_none(),
                "set either version or timestamp for time travel, not both",
            );
        }
        NodeKind::FileSource(s) => {
            need(!s.path.trim().is_empty(), "set the folder path");
            need(s.max_files_per_trigger != Some(0), "max_files_per_trigger must be at least 1");
        }
        NodeKind::GeneratorSource(g) => need(g.rows_per_second > 0, "rows_per_second must be > 0"),
        NodeKind::KafkaSource(k) => {
            need(!k.bootstrap_servers.trim().is_empty(), "set kafka.bootstrap.servers");
            need(
                k.subscribe.is_empty() != k.subscribe_pattern.is_none(),
                "set either subscribe (topics) or subscribePattern, not both",
            );
            need(
                k.options.keys().all(|key| key.starts_with("kafka.")),
                "options are Kafka client settings and start with `kafka.` (e.g. kafka.security.protocol)",
            );
            need(k.max_offsets_per_trigger != Some(0), "maxOffsetsPerTrigger must be at least 1");
        }
        NodeKind::ParseJson(p) => {
            need(!p.column.trim().is_empty(), "set the column that holds JSON");
            need(!p.schema.trim().is_empty(), "set the schema of the JSON documents (DDL)");
        }
        NodeKind::KafkaSink(k) => {
            need(!k.bootstrap_servers.trim().is_empty(), "set kafka.bootstrap.servers");
            need(!k.topic.trim().is_empty(), "set the topic");
            need(
                k.options.keys().all(|key| key.starts_with("kafka.")),
                "options are Kafka client settings and start with `kafka.`",
            );
        }
        NodeKind::Select(s) => {
            need(!s.columns.is_empty(), "list at least one column");
            need(s.columns.iter().all(|c| !c.trim().is_empty()), "a column expression is empty");
        }
        NodeKind::Flatten(f) => need(!f.separator.is_empty(), "the separator is empty"),
        NodeKind::WithColumns(w) => {
            need(!w.columns.is_empty(), "add at least one column");
            need(
                w.columns.iter().all(|c| !c.name.trim().is_empty() && !c.expr.trim().is_empty()),
                "every column needs a name and an expression",
            );
        }
        NodeKind::Filter(f) => need(!f.condition.trim().is_empty(), "set the condition"),
        NodeKind::Sql(s) => {
            need(!s.query.trim().is_empty(), "write the query");
            need(!s.inputs.is_empty(), "add at least one input view");
            let unique: HashSet<_> = s.inputs.iter().collect();
            need(unique.len() == s.inputs.len(), "two inputs share a view name");
            need(
                s.inputs.iter().all(|i| is_identifier(i)),
                "view names must be identifiers (letters, digits, _)",
            );
        }
        NodeKind::Join(j) => need(!j.on.is_empty(), "add at least one key pair"),
        NodeKind::Distinct(_) => {}
        NodeKind::Deduplicate(d) => need(!d.keys.is_empty(), "list the key columns"),
        NodeKind::Aggregate(a) => need(!a.aggregates.is_empty(), "add at least one aggregate"),
        NodeKind::Watermark(w) => {
            need(!w.column.trim().is_empty(), "set the event-time column");
            need(
                super::graph::parse_duration_ms(&w.delay).is_some(),
                "delay must be a duration such as `10 minutes`, `30 seconds` or `1 hour`",
            );
        }
        NodeKind::Expectations(e) => {
            for problem in super::quality::expectation_problems(e) {
                need(false, &problem);
            }
        }
        NodeKind::DeltaSink(s) => {
            need(!s.table.trim().is_empty(), "set the table path");
            need(
                s.schema_mode != Some(super::quality::SchemaMode::Overwrite)
                    || s.mode == WriteMode::Overwrite,
                "schema_mode = \"overwrite\" needs mode = \"overwrite\" (Delta's overwriteSchema); use schema_mode = \"merge\" to add columns while appending",
            );
            need(
                s.mode != WriteMode::Merge || !s.merge_keys.is_empty(),
                "merge mode needs merge_keys (the columns that identify a row)",
            );
            need(
                s.auto_compact_min_files.is_none_or(|n| n >= 2),
                "auto_compact_min_files must be at least 2",
            );
            for (key, value) in &s.properties {
                if let Some(why) = table_property_problem(key, value) {
                    out.push(why);
                }
            }
        }
    }
    out
}

/// A Delta table property whose value Delta would not accept, as Spark checks
/// `TBLPROPERTIES`: durations are `interval <n> <unit>`, counts and sizes positive numbers.
fn table_property_problem(key: &str, value: &str) -> Option<String> {
    let v = value.trim();
    match key {
        "delta.logRetentionDuration" | "delta.deletedFileRetentionDuration" => {
            let mut words = v.split_whitespace();
            let ok = words.next() == Some("interval")
                && words.next().is_some_and(|n| n.parse::<u64>().is_ok())
                && words.next().is_some_and(|u| {
                    let u = u.strip_suffix('s').unwrap_or(u);
                    [
                        "nanosecond",
                        "microsecond",
                        "millisecond",
                        "second",
                        "minute",
                        "hour",
                        "day",
                        "week",
                    ]
                    .contains(&u)
                })
                && words.next().is_none();
            (!ok).then(|| {
                format!("table property {key} = \"{value}\" is not a duration: write e.g. \"interval 7 days\"")
            })
        }
        "delta.checkpointInterval" | "delta.targetFileSize" => (v
            .parse::<u64>()
            .map_or(true, |n| n == 0))
        .then(|| format!("table property {key} = \"{value}\" must be a positive whole number")),
        "delta.enableExpiredLogCleanup" | "delta.appendOnly" => (!matches!(v, "true" | "false"))
            .then(|| format!("table property {key} = \"{value}\" must be true or false")),
        _ => None,
    }
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::node::{DeltaSink, Node, Select};

    #[test]
    fn table_properties_are_checked_as_delta_would() {
        for (k, v) in [
            ("delta.logRetentionDuration", "interval 30 days"),
            ("delta.deletedFileRetentionDuration", "interval 1 hour"),
            ("delta.checkpointInterval", "10"),
            ("delta.enableExpiredLogCleanup", "false"),
            ("delta.somethingElse", "x"),
        ] {
            assert_eq!(table_property_problem(k, v), None, "{k} = {v}");
        }
        let e = table_property_problem("delta.logRetentionDuration", "30 days").unwrap();
        assert!(e.contains("interval 7 days"), "{e}");
        assert!(table_property_problem("delta.checkpointInterval", "0").is_some());
        assert!(table_property_problem("delta.appendOnly", "yes").is_some());
    }

    #[test]
    fn reports_every_problem_with_its_node() {
        let mut p = Pipeline::new("p");
        p.add_node(Node::new("sel", NodeKind::Select(Select::default()))).unwrap();
        p.add_node(Node::new(
            "sink",
            NodeKind::DeltaSink(DeltaSink { mode: WriteMode::Merge, ..DeltaSink::default() }),
        ))
        .unwrap();
        let diags = validate_pipeline(&p);
        let on = |id: &str| {
            diags
                .iter()
                .filter(|d| d.node.as_ref().is_some_and(|n| n.as_str() == id))
                .map(|d| d.message.clone())
                .collect::<Vec<_>>()
        };
        assert!(on("sel").contains(&"input `in` is not connected".to_owned()));
        assert!(on("sel").contains(&"list at least one column".to_owned()));
        assert!(on("sink").iter().any(|m| m.contains("merge_keys")));
        assert!(on("sink").contains(&"set the table path".to_owned()));
    }
}
