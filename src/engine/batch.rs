//! Run a batch pipeline once: plan every sink, stream its input into Delta, report.

use std::path::Path;
use std::time::Instant;

use crate::model::node::NodeKind;
use crate::model::{Pipeline, Project};

use super::delta::CommitMeta;
use super::error::NodeContext;
use super::events::RunEvent;
use super::plan::Planner;
use super::{Result, sinks};

/// Rows and versions a pipeline run wrote.
#[derive(Clone, Debug, Default)]
pub struct PipelineSummary {
    pub rows_written: u64,
    /// (sink node, table path, version)
    pub commits: Vec<(String, String, i64)>,
}

pub async fn run_pipeline(
    project: &Project,
    pipeline: &Pipeline,
    root: &Path,
    on_event: &(dyn Fn(RunEvent) + Send + Sync),
) -> Result<PipelineSummary> {
    let started = Instant::now();
    on_event(RunEvent::PipelineStarted { pipeline: pipeline.name.clone() });
    let mut planner = Planner::new(project, pipeline, root);
    let mut summary = PipelineSummary::default();
    for sink in pipeline.sinks() {
        if let NodeKind::KafkaSink(cfg) = &sink.kind {
            let df = planner.node_frame(&sink.id).await?;
            let sent = sinks::kafka::write(cfg, df).await.at_node(&pipeline.name, &sink.id)?;
            summary.rows_written += sent;
            continue;
        }
        let NodeKind::DeltaSink(cfg) = &sink.kind else {
            continue;
        };
        let sink_started = Instant::now();
        let df = planner.node_frame(&sink.id).await?;
        let path = planner.resolve(&cfg.table).at_node(&pipeline.name, &sink.id)?;
        let meta = CommitMeta {
            project: project.name.clone(),
            pipeline: pipeline.name.clone(),
            node: sink.id.to_string(),
        };
        let outcome = sinks::delta::write(&path, cfg, df, meta.properties())
            .await
            .at_node(&pipeline.name, &sink.id)?;
        summary.rows_written += outcome.rows_added + outcome.rows_updated;
        summary.commits.push((sink.id.to_string(), cfg.table.clone(), outcome.version));
        on_event(RunEvent::SinkCommitted {
            pipeline: pipeline.name.clone(),
            node: sink.id.clone(),
            table: cfg.table.clone(),
            version: outcome.version,
            rows_added: outcome.rows_added,
            rows_updated: outcome.rows_updated,
            duration_ms: sink_started.elapsed().as_millis() as u64,
        });
    }
    on_event(RunEvent::PipelineFinished {
        pipeline: pipeline.name.clone(),
        rows_written: summary.rows_written,
        duration_ms: started.elapsed().as_millis() as u64,
        stopped: false,
    });
    Ok(summary)
}
