//! Pure data: projects, pipelines, nodes, and the rules that connect them.
//!
//! This module must not depend on `engine` or `ui`, nor on tokio, DataFusion or egui:
//! schemas stay DDL text here and are parsed by the engine. Everything in it can be
//! loaded, edited, validated and saved without running anything.

pub mod env;
pub mod graph;
pub mod node;
mod node_kind;
pub mod pipeline_test;
pub mod project;
pub mod quality;
pub mod streaming;
pub mod validate;

pub use graph::{Edge, GraphError, NodeId, Pipeline, PipelineMode, Pos, Trigger, WatermarkPolicy};
pub use node::{Node, NodeKind, NodeRole};
pub use pipeline_test::{PipelineTest, Rule};
pub use project::{Project, ProjectError};
pub use validate::{Diagnostic, Severity};
