//! A streaming source's state between batches, one variant per kind: the micro-batch runtime
//! plans, reads and advances sources through [`StreamSource`] without knowing their kinds.
//! Each kind's offset planning, reading and availableNow binding lives in its own file
//! (`files`, `delta`, `kafka`, `generator`).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use datafusion::datasource::MemTable;
use datafusion::prelude::{DataFrame, SessionContext};
use tokio::sync::mpsc;

use crate::model::node::{NodeKind, ParseMode};
use crate::model::{NodeId, Pipeline, Project};

use super::super::checkpoint::SourceOffset;
use super::super::plan::Planner;
use super::super::{EngineError, NodeContext, Result};
use super::delta::DeltaStream;
use super::files::FileStream;
use super::generator::GeneratorStream;
use super::json_lines::BadRecord;
use super::kafka::KafkaStream;

/// A streaming source's state between batches.
pub(crate) enum StreamSource {
    Files(FileStream),
    Delta(DeltaStream),
    Kafka(KafkaStream),
    Generator(GeneratorStream),
}

/// What a source read for one batch.
pub(crate) struct SourceData {
    pub df: DataFrame,
    pub rows: u64,
    pub bad: Vec<BadRecord>,
    pub mode: ParseMode,
}

impl StreamSource {
    pub fn node(&self) -> &NodeId {
        match self {
            StreamSource::Files(s) => s.node(),
            StreamSource::Delta(s) => s.node(),
            StreamSource::Kafka(s) => s.node(),
            StreamSource::Generator(s) => s.node(),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            StreamSource::Files(s) => s.describe(),
            StreamSource::Delta(s) => s.describe(),
            StreamSource::Kafka(s) => s.describe(),
            StreamSource::Generator(s) => s.describe(),
        }
    }

    /// The source's schema as DDL, for the checkpoint metadata (files sources only).
    pub fn schema_ddl(&self) -> Option<String> {
        match self {
            StreamSource::Files(s) => s.schema_ddl(),
            StreamSource::Delta(_) | StreamSource::Kafka(_) | StreamSource::Generator(_) => None,
        }
    }

    pub fn backlog(&self) -> u64 {
        match self {
            StreamSource::Files(s) => s.backlog(),
            StreamSource::Delta(s) => s.backlog(),
            StreamSource::Kafka(s) => s.backlog(),
            StreamSource::Generator(s) => s.backlog(),
        }
    }

    /// Kafka: per `topic:partition`, end offset minus processed offset.
    pub fn lag(&self) -> Option<BTreeMap<String, i64>> {
        match self {
            StreamSource::Kafka(s) => Some(s.lag()),
            StreamSource::Files(_) | StreamSource::Delta(_) | StreamSource::Generator(_) => None,
        }
    }

    /// Warnings found while planning (Kafka data loss), drained.
    pub fn take_warnings(&mut self) -> Vec<String> {
        match self {
            StreamSource::Kafka(s) => s.take_warnings(),
            StreamSource::Files(_) | StreamSource::Delta(_) | StreamSource::Generator(_) => {
                Vec::new()
            }
        }
    }

    /// Marks a batch's offsets as processed.
    pub fn advance(&mut self, offset: &SourceOffset) {
        match self {
            StreamSource::Files(s) => s.advance(offset),
            StreamSource::Delta(s) => s.advance(offset),
            StreamSource::Kafka(s) => s.advance(offset),
            StreamSource::Generator(s) => s.advance(offset),
        }
    }

    /// After `commits/N`: Kafka commits its consumer-group offsets, for progress tracking only.
    pub fn after_commit(&self) {
        match self {
            StreamSource::Kafka(s) => s.commit_for_progress(),
            StreamSource::Files(_) | StreamSource::Delta(_) | StreamSource::Generator(_) => {}
        }
    }

    /// A run starts: the generator's rate counts from now, from the restored offset.
    pub fn restart_clock(&mut self) {
        match self {
            StreamSource::Generator(s) => s.restart_clock(),
            StreamSource::Files(_) | StreamSource::Delta(_) | StreamSource::Kafka(_) => {}
        }
    }

    /// Fixes what "available now" means: the data present at this moment.
    pub async fn bind_available_now(&mut self) -> Result<()> {
        match self {
            StreamSource::Files(s) => s.bind_available_now(),
            StreamSource::Delta(s) => s.bind_available_now().await,
            StreamSource::Kafka(s) => s.bind_available_now().await,
            StreamSource::Generator(s) => s.bind_available_now(),
        }
    }

    /// The offsets of the next batch (possibly empty).
    pub async fn plan_next(&mut self) -> Result<SourceOffset> {
        match self {
            StreamSource::Files(s) => s.plan_next(),
            StreamSource::Delta(s) => s.plan_next().await,
            StreamSource::Kafka(s) => s.plan_next().await,
            StreamSource::Generator(s) => s.plan_next(),
        }
    }

    /// Reads exactly the data of `offset`.
    pub async fn read(&self, ctx: &SessionContext, offset: &SourceOffset) -> Result<SourceData> {
        match self {
            StreamSource::Files(s) => s.read(ctx, offset).await,
            StreamSource::Delta(s) => s.read(ctx, offset).await,
            StreamSource::Kafka(s) => s.read(ctx, offset).await,
            StreamSource::Generator(s) => s.read(ctx, offset),
        }
    }

    /// The rows of the last read, for a source whose plan read them as they arrived (Kafka),
    /// once that read has ended; its error if it failed.
    pub async fn rows_read(&self) -> Result<Option<u64>> {
        match self {
            StreamSource::Kafka(s) => s.rows_read().await,
            _ => Ok(None),
        }
    }

    /// The error of the last read when it failed while the plan read it (the plan's own
    /// error only says the stream broke).
    pub async fn read_failure(&self) -> Option<EngineError> {
        match self {
            StreamSource::Kafka(s) => s.read_failure().await,
            _ => None,
        }
    }
}

/// The error for checkpoint offsets of another kind than the source reading them.
pub(super) fn offset_mismatch(offset: &SourceOffset, describe: &str) -> EngineError {
    EngineError::Config(format!(
        "checkpoint offsets {offset:?} do not belong to source {describe}; the checkpoint was written for another pipeline"
    ))
}

/// An empty DataFrame of `schema`.
pub(super) fn empty(
    ctx: &SessionContext,
    schema: arrow::datatypes::SchemaRef,
) -> Result<DataFrame> {
    Ok(ctx.read_table(Arc::new(MemTable::try_new(schema, vec![vec![]])?))?)
}

/// Builds the pipeline's streaming sources (static Delta sources are planned per batch).
pub(crate) async fn build_sources(
    project: &Project,
    pipeline: &Pipeline,
    root: &Path,
    wake: &mpsc::Sender<()>,
) -> Result<Vec<StreamSource>> {
    let planner = Planner::new(project, pipeline, root);
    let mut out = Vec::new();
    for node in &pipeline.nodes {
        let source = match &node.kind {
            NodeKind::FileSource(cfg) => {
                let dir = planner.resolve(&cfg.path).at_node(&pipeline.name, &node.id)?;
                let schema_dir = super::schema_tracking::schema_dir(pipeline, root, &node.id, cfg)
                    .at_node(&pipeline.name, &node.id)?;
                let files = FileStream::try_new(
                    &planner.ctx,
                    node.id.clone(),
                    cfg,
                    dir,
                    wake,
                    Some(schema_dir),
                )
                .await
                .at_node(&pipeline.name, &node.id)?;
                StreamSource::Files(files)
            }
            NodeKind::DeltaSource(cfg) if !cfg.static_table => {
                let path = planner.resolve(&cfg.table).at_node(&pipeline.name, &node.id)?;
                StreamSource::Delta(DeltaStream::new(node.id.clone(), path, cfg))
            }
            NodeKind::KafkaSource(cfg) => {
                let group = format!("medallion-{}-{}", pipeline.name, node.id);
                let kafka = KafkaStream::try_new(node.id.clone(), cfg, &group)
                    .at_node(&pipeline.name, &node.id)?;
                StreamSource::Kafka(kafka)
            }
            NodeKind::GeneratorSource(cfg) => {
                StreamSource::Generator(GeneratorStream::new(node.id.clone(), cfg))
            }
            _ => continue,
        };
        out.push(source);
    }
    if out.is_empty() {
        return Err(EngineError::Config(format!(
            "stream pipeline `{}` has no streaming source (a files, generator, or non-static Delta source)",
            pipeline.name
        )));
    }
    Ok(out)
}
