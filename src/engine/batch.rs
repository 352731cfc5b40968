//! Run a batch pipeline once: plan every sink, stream its input into Delta, report.

use std::path::Path;
use std::time::Instant;

use crate::model::node::{NodeKind, ParseMode};
use crate::model::{NodeId, Pipeline, Project};

use super::delta::{self, CommitMeta};
use super::error::NodeContext;
use super::events::RunEvent;
use super::plan::Planner;
use super::stream::quarantine::{quarantine_path, write_quarantine};
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
    // every sink's input is planned before any write: a failing expectation or a fail_fast
    // record stops the run with every table at its previous version
    for sink in pipeline.sinks() {
        planner.node_frame(&sink.id).await?;
    }
    let mut first_sink_table = None;
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
        first_sink_table.get_or_insert_with(|| path.clone());
        let meta = CommitMeta {
            project: project.name.clone(),
            pipeline: pipeline.name.clone(),
            node: sink.id.to_string(),
        };
        let table = delta::try_open(&path).await.at_node(&pipeline.name, &sink.id)?;
        let (outcome, _) = sinks::delta::write(table, &path, cfg, df, meta.properties())
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
    quarantine(project, pipeline, root, &mut planner, first_sink_table.as_deref(), on_event)
        .await?;
    on_event(RunEvent::PipelineFinished {
        pipeline: pipeline.name.clone(),
        rows_written: summary.rows_written,
        duration_ms: started.elapsed().as_millis() as u64,
        stopped: false,
    });
    Ok(summary)
}

/// Reports what the Expectations nodes found and writes the rows they dropped, and the
/// malformed records of `drop_malformed` sources, to the pipeline's quarantine table.
async fn quarantine(
    project: &Project,
    pipeline: &Pipeline,
    root: &Path,
    planner: &mut Planner<'_>,
    first_sink_table: Option<&Path>,
    on_event: &(dyn Fn(RunEvent) + Send + Sync),
) -> Result<()> {
    for (node, report) in std::mem::take(&mut planner.quality) {
        on_event(RunEvent::ExpectationsChecked { pipeline: pipeline.name.clone(), node, report });
    }
    let mut records = std::mem::take(&mut planner.expectation_drops);
    let mut rescued = std::collections::BTreeMap::<NodeId, u64>::new();
    for (node, mode, record) in std::mem::take(&mut planner.bad_records) {
        match mode {
            ParseMode::DropMalformed => records.push((node, record)),
            _ => *rescued.entry(node).or_default() += 1,
        }
    }
    for (node, n) in rescued {
        on_event(RunEvent::Warning {
            pipeline: pipeline.name.clone(),
            node: Some(node),
            message: format!(
                "{n} malformed records kept in `_rescued_data` (parse_mode = \"permissive\")"
            ),
        });
    }
    if records.is_empty() {
        return Ok(());
    }
    let table = quarantine_path(first_sink_table, root, pipeline);
    write_quarantine(&table, None, pipeline, project, 0, &records).await?;
    on_event(RunEvent::Warning {
        pipeline: pipeline.name.clone(),
        node: None,
        message: format!(
            "{} rows written to the quarantine table {}",
            records.len(),
            table.display()
        ),
    });
    Ok(())
}
