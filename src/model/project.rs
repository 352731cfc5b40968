//! The project file: TOML with `format_version = 1`, a name, a lakehouse root and pipelines.
//!
//! Unknown fields and bad values are rejected with the line and column; load → save → load
//! gives the same project. Paths in the file are relative to the file unless absolute.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::graph::{NodeId, Pipeline};
use super::node::{Node, NodeKind};
use super::pipeline_test::PipelineTest;

/// The project file format this build reads and writes.
pub const FORMAT_VERSION: u32 = 1;

/// A saved project: what the CLI runs and the designer edits.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Project {
    pub format_version: u32,
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Root that relative table paths resolve against, relative to the project file.
    #[serde(default = "default_lakehouse")]
    pub lakehouse: String,
    #[serde(default, rename = "pipeline")]
    pub pipelines: Vec<Pipeline>,
    /// Recorded pipeline tests (`[[tests]]`), replayed by `medallion test`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tests: Vec<PipelineTest>,
}

fn default_lakehouse() -> String {
    "lakehouse".to_owned()
}

#[derive(Debug, thiserror::Error)]
pub enum ProjectError {
    #[error("cannot read project file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("cannot write project file {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String, line: Option<usize>, column: Option<usize> },
    #[error(
        "{path}: format_version {found} is not supported (this Medallion reads version {FORMAT_VERSION}); upgrade Medallion"
    )]
    Version { path: PathBuf, found: u32 },
    #[error("cannot serialize project: {0}")]
    Serialize(#[from] toml::ser::Error),
}

impl Default for Project {
    fn default() -> Self {
        Self::new("untitled")
    }
}

impl Project {
    /// Pipelines in the order they must run: a pipeline that reads a table another one writes
    /// comes after it; ties keep file order. `table` names a table path (the engine resolves
    /// it under the lakehouse, the export normalizes it). On a cycle: the pipelines in it.
    pub fn pipeline_order<K: std::hash::Hash + Eq>(
        &self,
        table: impl Fn(&str) -> K,
    ) -> Result<Vec<&Pipeline>, Vec<String>> {
        use std::collections::HashSet;
        let io: Vec<(HashSet<K>, HashSet<K>)> = (self.pipelines.iter())
            .map(|p| {
                let (mut reads, mut writes) = (HashSet::new(), HashSet::new());
                for n in &p.nodes {
                    match &n.kind {
                        NodeKind::DeltaSource(s) => {
                            reads.insert(table(&s.table));
                        }
                        NodeKind::DeltaSink(s) => {
                            writes.insert(table(&s.table));
                        }
                        _ => {}
                    }
                }
                (reads, writes)
            })
            .collect();
        let n = self.pipelines.len();
        let depends = |a: usize, b: usize| a != b && io[a].0.iter().any(|t| io[b].1.contains(t));
        let mut done = vec![false; n];
        let mut order = Vec::with_capacity(n);
        while order.len() < n {
            match (0..n).find(|&a| !done[a] && (0..n).all(|b| done[b] || !depends(a, b))) {
                Some(a) => {
                    done[a] = true;
                    order.push(&self.pipelines[a]);
                }
                None => {
                    let stuck = (0..n).filter(|&a| !done[a]);
                    return Err(stuck.map(|a| self.pipelines[a].name.clone()).collect());
                }
            }
        }
        Ok(order)
    }

    pub fn new(name: impl Into<String>) -> Self {
        Self {
            format_version: FORMAT_VERSION,
            name: name.into(),
            description: String::new(),
            lakehouse: default_lakehouse(),
            pipelines: Vec::new(),
            tests: Vec::new(),
        }
    }

    /// Parses project text; `path` only names the file in errors.
    pub fn from_toml(text: &str, path: &Path) -> Result<Self, ProjectError> {
        let project: Project = toml::from_str(text).map_err(|e| {
            let (line, column) = match e.span() {
                Some(span) => {
                    let (l, c) = line_col(text, span.start);
                    (Some(l), Some(c))
                }
                None => (None, None),
            };
            let where_ = match (line, column) {
                (Some(l), Some(c)) => format!("line {l}, column {c}: "),
                _ => String::new(),
            };
            ProjectError::Parse {
                path: path.to_owned(),
                message: format!("{where_}{}", e.message()),
                line,
                column,
            }
        })?;
        if project.format_version != FORMAT_VERSION {
            return Err(ProjectError::Version {
                path: path.to_owned(),
                found: project.format_version,
            });
        }
        Ok(project)
    }

    pub fn load(path: &Path) -> Result<Self, ProjectError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ProjectError::Read { path: path.to_owned(), source })?;
        Self::from_toml(&text, path)
    }

    pub fn to_toml(&self) -> Result<String, ProjectError> {
        Ok(toml::to_string_pretty(self)?)
    }

    /// Writes the file atomically (temp file, then rename), so a crash never leaves half a file.
    pub fn save(&self, path: &Path) -> Result<(), ProjectError> {
        let text = self.to_toml()?;
        let write = |source| ProjectError::Write { path: path.to_owned(), source };
        let tmp = path.with_extension("toml.tmp");
        std::fs::write(&tmp, text).map_err(write)?;
        std::fs::rename(&tmp, path).map_err(write)
    }

    pub fn pipeline(&self, name: &str) -> Option<&Pipeline> {
        self.pipelines.iter().find(|p| p.name == name)
    }

    /// Finds a node by id in any pipeline; `pipeline` narrows the search.
    pub fn find_node(
        &self,
        id: &NodeId,
        pipeline: Option<&str>,
    ) -> Result<(&Pipeline, &Node), String> {
        let hits: Vec<(&Pipeline, &Node)> = self
            .pipelines
            .iter()
            .filter(|p| pipeline.is_none_or(|name| p.name == name))
            .filter_map(|p| p.node(id).map(|n| (p, n)))
            .collect();
        match hits.as_slice() {
            [one] => Ok(*one),
            [] => Err(match pipeline {
                Some(name) if self.pipeline(name).is_none() => {
                    format!("no pipeline `{name}` in project `{}`", self.name)
                }
                _ => format!(
                    "no node `{id}` in project `{}`; nodes are: {}",
                    self.name,
                    self.pipelines
                        .iter()
                        .flat_map(|p| p.nodes.iter().map(|n| n.id.to_string()))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }),
            many => Err(format!(
                "node `{id}` is in several pipelines ({}); choose one with --pipeline",
                many.iter().map(|(p, _)| p.name.as_str()).collect::<Vec<_>>().join(", ")
            )),
        }
    }

    /// The lakehouse root: `override_dir` if given, else `lakehouse` relative to the file.
    pub fn lakehouse_root(&self, project_file: &Path, override_dir: Option<&Path>) -> PathBuf {
        if let Some(dir) = override_dir {
            return dir.to_owned();
        }
        let base = project_file.parent().unwrap_or(Path::new("."));
        // without the `.` of `lakehouse = "."` (the demo's), which every table path showed
        // (`/home/me/demo/./bronze/users`); `..` stays (lexically it can be wrong)
        base.join(&self.lakehouse).components().collect()
    }
}

/// 1-based line and column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
format_version = 1
name = "demo"

[[pipeline]]
name = "bronze"

[[pipeline.nodes]]
id = "raw"
kind = "file_source"
pos = [10, 20]
path = "landing/users"
schema = "id BIGINT"

[[pipeline.nodes]]
id = "sink"
kind = "delta_sink"
table = "bronze/users"
mode = "overwrite"

[[pipeline.edges]]
from = "raw"
to = "sink"
"#;

    #[test]
    fn loads_and_round_trips() {
        let p = Project::from_toml(SAMPLE, Path::new("demo.toml")).unwrap();
        assert_eq!(p.pipelines[0].nodes.len(), 2);
        assert_eq!(p.pipelines[0].nodes[0].pos.x, 10.0);
        let text = p.to_toml().unwrap();
        let again = Project::from_toml(&text, Path::new("demo.toml")).unwrap();
        assert_eq!(p, again);
        assert_eq!(text, again.to_toml().unwrap());
    }

    #[test]
    fn unknown_field_names_line() {
        let bad = SAMPLE.replace("mode = \"overwrite\"", "mode = \"overwrite\"\nmdoe = 1");
        let err = Project::from_toml(&bad, Path::new("demo.toml")).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("unknown field `mdoe`"), "{msg}");
        assert!(msg.contains("line "), "{msg}");
    }

    #[test]
    fn bad_value_names_line_and_column() {
        let bad = SAMPLE.replace("mode = \"overwrite\"", "mode = \"upsert\"");
        let err = Project::from_toml(&bad, Path::new("demo.toml")).unwrap_err();
        let ProjectError::Parse { line, message, .. } = err else { panic!("{err}") };
        assert!(message.contains("upsert"), "{message}");
        assert!(line.is_some(), "{message}");
    }

    #[test]
    fn newer_format_version_is_refused() {
        let bad = SAMPLE.replace("format_version = 1", "format_version = 7");
        let err = Project::from_toml(&bad, Path::new("demo.toml")).unwrap_err();
        assert!(matches!(err, ProjectError::Version { found: 7, .. }));
    }

    #[test]
    fn pipelines_run_after_the_ones_whose_tables_they_read() {
        let pipeline = |name: &str, reads: &str, writes: &str| {
            let mut p = Pipeline::new(name);
            let src = crate::model::node::DeltaSource { table: reads.into(), ..Default::default() };
            let sink = crate::model::node::DeltaSink { table: writes.into(), ..Default::default() };
            p.add_node(crate::model::Node::new("in", NodeKind::DeltaSource(src))).unwrap();
            p.add_node(crate::model::Node::new("out", NodeKind::DeltaSink(sink))).unwrap();
            p
        };
        let mut project = Project::new("order");
        project.pipelines = vec![
            pipeline("gold", "silver/x", "gold/x"),
            pipeline("silver", "bronze/x", "silver/x"),
            pipeline("other", "bronze/y", "silver/y"),
        ];
        let names = |r: Result<Vec<&Pipeline>, Vec<String>>| {
            r.map(|v| v.iter().map(|p| p.name.clone()).collect::<Vec<_>>())
        };
        assert_eq!(
            names(project.pipeline_order(str::to_owned)).unwrap(),
            ["silver", "gold", "other"]
        );
        project.pipelines.push(pipeline("loop", "gold/x", "silver/x"));
        let stuck = names(project.pipeline_order(str::to_owned)).unwrap_err();
        assert_eq!(stuck, ["gold", "loop"], "silver reads only bronze: it can run");
    }
}
