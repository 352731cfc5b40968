//! Spark Declarative Pipelines source (placeholder replaced below).
use crate::model::{Pipeline, Project};

use super::Todo;

pub fn source(project: &Project, pipelines: &[&Pipeline]) -> (String, Vec<Todo>) {
    super::pyspark::script(project, pipelines)
}
