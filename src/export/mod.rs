//! Export a project to Spark: a PySpark script (`pyspark.rs`) or a Spark Declarative
//! Pipelines source (`sdp.rs`), so a pipeline that outgrows one machine runs on a cluster
//! without a rewrite.
//!
//! Pure text generation from the model: no engine, no I/O (the CLI and the app write the
//! file). Every node kind maps to the Spark calls a data engineer would write (`nodes.rs`,
//! `sinks.rs`); what has no faithful equivalent is exported with a `# TODO(medallion)` comment
//! and returned in [`Export::todos`], never dropped.

mod helpers;
mod nodes;
mod pyspark;
mod python;
mod sdp;
mod sinks;
mod sources;
mod transforms;

use std::collections::HashMap;

use arrow::datatypes::SchemaRef;

use crate::model::{NodeId, Pipeline, Project, Severity, validate};

/// What to generate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// A script: `python <project>.py LAKEHOUSE [PIPELINE...]`.
    PySpark,
    /// A Spark Declarative Pipelines (`pyspark.pipelines`) source for `spark-pipelines run`.
    Sdp,
}

impl Target {
    pub const ALL: [Target; 2] = [Target::PySpark, Target::Sdp];

    pub fn as_str(self) -> &'static str {
        match self {
            Target::PySpark => "pyspark",
            Target::Sdp => "sdp",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Target::PySpark => "PySpark",
            Target::Sdp => "Spark Declarative Pipelines",
        }
    }
}

impl std::str::FromStr for Target {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "pyspark" => Ok(Target::PySpark),
            "sdp" => Ok(Target::Sdp),
            _ => Err(format!("unknown export target `{s}`: use pyspark or sdp")),
        }
    }
}

/// A construct exported without a faithful Spark equivalent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Todo {
    pub pipeline: String,
    pub node: Option<NodeId>,
    pub message: String,
}

impl std::fmt::Display for Todo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.node {
            Some(n) => write!(f, "pipeline `{}`, node `{n}`: {}", self.pipeline, self.message),
            None => write!(f, "pipeline `{}`: {}", self.pipeline, self.message),
        }
    }
}

/// The generated source.
#[derive(Clone, Debug)]
pub struct Export {
    /// `<project name>.py`.
    pub file_name: String,
    pub code: String,
    pub todos: Vec<Todo>,
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("no pipeline `{name}` in project `{project}`; pipelines are: {known}")]
    UnknownPipeline { name: String, project: String, known: String },
    #[error("project `{project}` is not valid, fix it before exporting:\n{diagnostics}")]
    Invalid { project: String, diagnostics: String },
    #[error("pipelines {0} read each other's tables in a cycle; break the cycle")]
    Cycle(String),
}

/// Output schemas of nodes, by pipeline name and node id (the engine's `plan_schemas`).
pub type NodeSchemas = HashMap<(String, NodeId), SchemaRef>;

/// The planned output schemas of the nodes of the project's pipelines (all, or those named),
/// over the tables under `root`: best effort, a node that does not plan (no data yet) has none
/// and is exported with a TODO.
pub async fn plan_schemas(
    project: &Project,
    root: &std::path::Path,
    only: &[String],
) -> NodeSchemas {
    let mut schemas = NodeSchemas::new();
    for p in &project.pipelines {
        if only.is_empty() || only.contains(&p.name) {
            let (planned, _) = crate::engine::plan_schemas(project, p, root).await;
            schemas.extend(planned.into_iter().map(|(id, s)| ((p.name.clone(), id), s)));
        }
    }
    schemas
}

/// Generates `target` source for the project's pipelines (all, or those named), in the
/// order they must run.
pub fn export_project(
    project: &Project,
    target: Target,
    only: &[String],
) -> Result<Export, ExportError> {
    export_project_with_schemas(project, target, only, &NodeSchemas::new())
}

/// [`export_project`], with the nodes' planned output schemas: the SDP source then lists a
/// Flatten's and a Join's columns (its query functions may not analyze a DataFrame).
pub fn export_project_with_schemas(
    project: &Project,
    target: Target,
    only: &[String],
    schemas: &NodeSchemas,
) -> Result<Export, ExportError> {
    let errors: Vec<String> = validate::validate_project(project)
        .into_iter()
        .filter(|d| d.severity == Severity::Error)
        .map(|d| d.to_string())
        .collect();
    if !errors.is_empty() {
        return Err(ExportError::Invalid {
            project: project.name.clone(),
            diagnostics: errors.join("\n"),
        });
    }
    for name in only {
        if project.pipeline(name).is_none() {
            return Err(ExportError::UnknownPipeline {
                name: name.clone(),
                project: project.name.clone(),
                known: project
                    .pipelines
                    .iter()
                    .map(|p| p.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
    }
    let order: Vec<&Pipeline> = (project.pipeline_order(nodes::normalize_table))
        .map_err(|stuck| ExportError::Cycle(stuck.join(", ")))?
        .into_iter()
        .filter(|p| only.is_empty() || only.contains(&p.name))
        .collect();
    let (code, todos) = match target {
        Target::PySpark => pyspark::script(project, &order),
        Target::Sdp => sdp::source(project, &order, schemas),
    };
    Ok(Export { file_name: format!("{}.py", file_stem(&project.name)), code, todos })
}

/// The project name as a file stem (and Python module name where it can be).
pub fn file_stem(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| if c.is_alphanumeric() || c == '_' || c == '-' { c } else { '_' })
        .collect();
    if s.is_empty() { "project".to_owned() } else { s }
}

/// Nodes of a pipeline that reach a sink (or are one), in topological order: a node whose
/// output goes nowhere is not exported (it would be a dead variable).
fn exported_nodes(p: &Pipeline) -> Vec<NodeId> {
    let order = p.topological_order().unwrap_or_default();
    let sinks: Vec<&NodeId> = p.sinks().map(|s| &s.id).collect();
    order
        .into_iter()
        .filter(|id| sinks.contains(&id) || sinks.iter().any(|s| p.reaches(id, s)))
        .collect()
}
