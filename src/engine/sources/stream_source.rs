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

use crate::model::node::{NodeKind, ParseMode, WriteMode};
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
                    .at_node(&pipeline.name, &node.id)?
                    .read_once(read_once(pipeline, &node.id));
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

/// Whether each micro-batch's plan reads `source` exactly once: a chain from it through
/// single-pass transforms (select, parse_json, flatten, with_columns, filter), one output each,
/// into an appending Delta sink or a Kafka sink, the pipeline's only sink. Anything else (a
/// second sink, a join, SQL, an aggregation, expectations, a MERGE) may read it again.
pub(crate) fn read_once(pipeline: &Pipeline, source: &NodeId) -> bool {
    if pipeline.sinks().count() != 1 {
        return false;
    }
    let mut at = source;
    for _ in 0..pipeline.nodes.len() {
        let mut out = pipeline.edges.iter().filter(|e| &e.from == at);
        let (Some(edge), None) = (out.next(), out.next()) else { return false };
        let Some(node) = pipeline.nodes.iter().find(|n| n.id == edge.to) else { return false };
        match &node.kind {
            NodeKind::Select(_)
            | NodeKind::ParseJson(_)
            | NodeKind::Flatten(_)
            | NodeKind::WithColumns(_)
            | NodeKind::Filter(_) => at = &node.id,
            NodeKind::DeltaSink(sink) => return sink.mode == WriteMode::Append,
            NodeKind::KafkaSink(_) => return true,
            _ => return false,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Node;
    use crate::model::node::{
        DeltaSink, Distinct, Expectations, Filter, KafkaSink, KafkaSource, ParseJson,
    };

    /// `kafka -> parse_json -> [middle] -> sink`, plus `extra` nodes fed by parse_json.
    fn chain(middle: Option<NodeKind>, sink: NodeKind, extra: &[NodeKind]) -> Pipeline {
        let mut p = Pipeline::new("p");
        let id = |s: &str| NodeId::new(s);
        p.add_node(Node::new("k", NodeKind::KafkaSource(KafkaSource::default()))).unwrap();
        p.add_node(Node::new("j", NodeKind::ParseJson(ParseJson::default()))).unwrap();
        p.connect(&id("k"), &id("j"), "in").unwrap();
        let mut last = id("j");
        if let Some(m) = middle {
            p.add_node(Node::new("m", m)).unwrap();
            p.connect(&last, &id("m"), "in").unwrap();
            last = id("m");
        }
        p.add_node(Node::new("s", sink)).unwrap();
        p.connect(&last, &id("s"), "in").unwrap();
        for (i, kind) in extra.iter().enumerate() {
            let n = id(&format!("x{i}"));
            p.add_node(Node::new(n.as_str(), kind.clone())).unwrap();
            p.connect(&id("j"), &n, "in").unwrap();
        }
        p
    }

    /// Only a chain of single-pass transforms into the one appending sink reads its Kafka
    /// source once; every other shape keeps the batch for the plan's later reads.
    #[test]
    fn a_source_is_read_once_only_by_a_single_pass_chain() {
        let append = || NodeKind::DeltaSink(DeltaSink::default());
        let k = NodeId::new("k");
        assert!(read_once(&chain(None, append(), &[]), &k));
        assert!(read_once(&chain(Some(NodeKind::Filter(Filter::default())), append(), &[]), &k));
        assert!(read_once(&chain(None, NodeKind::KafkaSink(KafkaSink::default()), &[]), &k));
        let merge = NodeKind::DeltaSink(DeltaSink { mode: WriteMode::Merge, ..Default::default() });
        assert!(!read_once(&chain(None, merge, &[]), &k));
        assert!(!read_once(
            &chain(Some(NodeKind::Distinct(Distinct::default())), append(), &[]),
            &k
        ));
        let checks = NodeKind::Expectations(Expectations::default());
        assert!(!read_once(&chain(Some(checks), append(), &[]), &k));
        // parse_json feeds a second sink: the source is read by both writes
        assert!(!read_once(&chain(None, append(), &[append()]), &k));
        // a filter that leads nowhere: judged as a second reader (never wrong, at worst kept)
        assert!(!read_once(&chain(None, append(), &[NodeKind::Filter(Filter::default())]), &k));
    }
}
