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

/// Runs a batch pipeline. With `meter_edges` (the app), rows are counted on every edge as they
/// flow and reported per node ([`RunEvent::NodeRows`]).
pub async fn run_pipeline(
    project: &Project,
    pipeline: &Pipeline,
    root: &Path,
    meter_edges: bool,
    on_event: &(dyn Fn(RunEvent) + Send + Sync),
) -> Result<PipelineSummary> {
    let started = Instant::now();
    on_event(RunEvent::PipelineStarted { pipeline: pipeline.name.clone() });
    let meter = meter_edges.then(|| std::sync::Arc::new(super::meter::EdgeMeter::new()));
    let mut planner = Planner::new(project, pipeline, root);
    if let Some(m) = &meter {
        planner = planner.with_meter(m.clone());
    }
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
    if let Some(m) = &meter {
        on_event(RunEvent::NodeRows {
            pipeline: pipeline.name.clone(),
            rows: node_rows(&m.snapshot()),
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
    for (node, mode, record) in planner.take_bad_records() {
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
                "{n} malformed {} kept with the fields that read, the raw text in `_rescued_data` (parse_mode = \"permissive\")",
                if n == 1 { "record" } else { "records" }
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

/// Rows out of each node from the edge counts: what a node's outgoing edges carried (each
/// carries all of it), and for a sink what came in.
fn node_rows(edges: &[super::meter::EdgeStats]) -> std::collections::BTreeMap<String, u64> {
    let mut out = std::collections::BTreeMap::new();
    for e in edges {
        let from = out.entry(e.from.to_string()).or_insert(0);
        *from = (*from).max(e.rows);
    }
    for e in edges {
        if !edges.iter().any(|o| o.from == e.to) {
            *out.entry(e.to.to_string()).or_insert(0) += e.rows;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::meter::EdgeStats;

    #[test]
    fn rows_per_node_from_the_edges() {
        let e = |from: &str, to: &str, port: &str, rows| EdgeStats {
            from: NodeId::new(from),
            to: NodeId::new(to),
            port: port.into(),
            rows,
            produce_ms: 0.0,
        };
        // users (10) and ssn (4) join into 7 rows that feed two sinks
        let edges = [
            e("users", "join", "left", 10),
            e("ssn", "join", "right", 4),
            e("join", "silver", "in", 7),
            e("join", "audit", "in", 7),
        ];
        let rows = node_rows(&edges);
        let got: Vec<(&str, u64)> = rows.iter().map(|(n, r)| (n.as_str(), *r)).collect();
        assert_eq!(got, [("audit", 7), ("join", 7), ("silver", 7), ("ssn", 4), ("users", 10)]);
    }
}
