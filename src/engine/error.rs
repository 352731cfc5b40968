//! Engine errors: each keeps its source, and failures inside a pipeline carry the node.

use std::path::{Path, PathBuf};

use crate::model::NodeId;
use crate::model::env::MissingEnvVar;

pub type Result<T, E = EngineError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A failure while planning or running one node.
    #[error("pipeline `{pipeline}`, node `{node}`: {source}")]
    Node {
        pipeline: String,
        node: NodeId,
        #[source]
        source: Box<EngineError>,
    },
    #[error(transparent)]
    DataFusion(#[from] datafusion::error::DataFusionError),
    #[error("Delta: {0}")]
    Delta(#[from] deltalake::DeltaTableError),
    #[error(transparent)]
    Arrow(#[from] arrow::error::ArrowError),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error(
        "no Delta table at {path}; run the pipeline that writes it first (or `medallion demo-data`), or fix the path"
    )]
    TableNotFound { path: PathBuf },
    #[error("no files matching `{glob}` in {path}; add data or fix the path")]
    NoFiles { path: PathBuf, glob: String },
    /// The table is written by an earlier pipeline that has errors of its own.
    #[error(
        "reads `{table}`, which pipeline `{pipeline}` writes but cannot run yet; fix that pipeline first"
    )]
    Upstream { table: String, pipeline: String },
    /// The Kafka brokers cannot be reached or did not answer; retrying can help.
    #[error("Kafka: {0}")]
    Broker(String),
    /// Tests only: the runtime stopped as if the process had died here.
    #[error("injected crash {0}")]
    InjectedCrash(&'static str),
    #[error("schema: {0}")]
    Schema(String),
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Env(#[from] MissingEnvVar),
    #[error("the project is not valid:\n{}", .0.iter().map(|d| format!("  {d}")).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<crate::model::Diagnostic>),
}

impl EngineError {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io { path: path.to_owned(), source }
    }

    /// Pins this error on a node, unless it already names one.
    pub fn at_node(self, pipeline: &str, node: &NodeId) -> Self {
        match self {
            e @ EngineError::Node { .. } => e,
            e => EngineError::Node {
                pipeline: pipeline.to_owned(),
                node: node.clone(),
                source: Box::new(e),
            },
        }
    }

    /// The node an error is pinned on, if any.
    pub fn node(&self) -> Option<&NodeId> {
        match self {
            EngineError::Node { node, .. } => Some(node),
            _ => None,
        }
    }

    /// Whether waiting and trying again can help (an unreachable broker).
    pub fn is_retryable(&self) -> bool {
        match self {
            EngineError::Node { source, .. } => source.is_retryable(),
            EngineError::Broker(_) => true,
            _ => false,
        }
    }

    /// Whether the cause lies in another pipeline (so it is not this node's own problem).
    pub fn is_upstream(&self) -> bool {
        match self {
            EngineError::Node { source, .. } => source.is_upstream(),
            EngineError::Upstream { .. } => true,
            _ => false,
        }
    }

    /// The message without the pipeline/node prefix (for pinning on the node itself).
    pub fn detail(&self) -> String {
        match self {
            EngineError::Node { source, .. } => source.to_string(),
            e => e.to_string(),
        }
    }
}

/// Adds node context to results inside the planner and runner.
pub trait NodeContext<T> {
    fn at_node(self, pipeline: &str, node: &NodeId) -> Result<T>;
}

impl<T, E: Into<EngineError>> NodeContext<T> for std::result::Result<T, E> {
    fn at_node(self, pipeline: &str, node: &NodeId) -> Result<T> {
        self.map_err(|e| e.into().at_node(pipeline, node))
    }
}
