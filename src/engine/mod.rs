//! Everything that runs: planning (DataFusion), Delta reads and writes (delta-rs), batch runs,
//! previews and the lakehouse view. Knows nothing of the UI.
//!
//! Entry points: [`run_project`], [`preview_node`], [`check_project`].

pub mod batch;
pub mod bench;
pub mod bench_kafka;
pub mod bench_quality;
pub mod bench_stateful;
pub mod bench_upkeep;
pub mod cancellable;
pub mod catalog;
pub mod delta;
pub mod demo_ads;
pub mod demo_data;
pub mod direct_query;
pub mod error;
pub mod eventlog;
pub mod events;
pub mod handle;
pub mod lakehouse;
mod log_listing;
mod log_names;
pub mod meter;
pub mod open_tables;
pub mod plan;
pub mod schema;
pub mod serve;
pub mod sinks;
pub mod sources;
pub mod sql;
pub mod stream;
pub mod testing;
mod threads;
pub mod transforms;

/// The checkpoint lives with the stream runtime; this keeps `engine::checkpoint` paths.
pub use stream::checkpoint;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;

use crate::model::node::NodeKind;
use crate::model::{
    Diagnostic, NodeId, Pipeline, PipelineMode, Project, Severity, Trigger, validate,
};

pub use error::{EngineError, NodeContext, Result};
pub use events::RunEvent;

/// How `run` runs a project.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Only this pipeline (all of them when `None`).
    pub pipeline: Option<String>,
    /// Streams: stop once the data present at start has been processed.
    pub available_now: bool,
    /// Streams: becomes true to stop after the batch in flight (Ctrl-C).
    pub stop: Option<tokio::sync::watch::Receiver<bool>>,
    /// Streams: a stop switch per pipeline (the app's Stop buttons); it replaces `stop` for
    /// the pipelines it names.
    pub pipeline_stops: HashMap<String, tokio::sync::watch::Receiver<bool>>,
    /// Streams: count rows and time along every edge (the monitor's edge rates). Off for
    /// headless runs: the meter stops filter pushdown across node boundaries.
    pub meter_edges: bool,
}

/// What a whole run did.
#[derive(Clone, Debug, Default)]
pub struct RunSummary {
    pub pipelines: usize,
    pub rows_written: u64,
}

/// Tables a pipeline reads (Delta sources) and writes (Delta sinks), resolved to paths.
/// Pipelines in the order they must run (see [`Project::pipeline_order`]), tables compared
/// by their resolved paths.
pub fn pipeline_order<'a>(project: &'a Project, root: &Path) -> Result<Vec<&'a Pipeline>> {
    let resolve = |t: &str| {
        delta::resolve(root, &crate::model::env::expand(t).unwrap_or_else(|_| t.to_owned()))
    };
    project.pipeline_order(resolve).map_err(|stuck| {
        EngineError::Config(format!(
            "pipelines {} read each other's tables in a cycle; break the cycle",
            stuck.join(", ")
        ))
    })
}

fn model_errors(project: &Project) -> Result<()> {
    let errors: Vec<Diagnostic> = validate::validate_project(project)
        .into_iter()
        .filter(|d| d.severity == Severity::Error)
        .collect();
    if errors.is_empty() { Ok(()) } else { Err(EngineError::Invalid(errors)) }
}

/// Runs the project's pipelines (or one), in dependency order.
pub async fn run_project(
    project: &Project,
    root: &Path,
    opts: &RunOptions,
    on_event: &(dyn Fn(RunEvent) + Send + Sync),
) -> Result<RunSummary> {
    // every event is persisted, so the monitor shows the history of CLI runs and past sessions
    let log = eventlog::EventLog::new(root);
    let log_warned = std::sync::atomic::AtomicBool::new(false);
    let on_event = &|e: RunEvent| {
        if let Err(err) = log.append(&eventlog::LoggedEvent::now(e.clone()))
            && !log_warned.swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            // the run goes on: losing the log must not lose data
            on_event(RunEvent::Warning {
                pipeline: e.pipeline().to_owned(),
                node: None,
                message: format!("cannot write the event log: {err}"),
            });
        }
        on_event(e)
    };
    model_errors(project)?;
    let order = pipeline_order(project, root)?;
    let selected: Vec<&Pipeline> = match &opts.pipeline {
        Some(name) => {
            let p = order.into_iter().find(|p| &p.name == name).ok_or_else(|| {
                EngineError::Config(format!(
                    "no pipeline `{name}` in project `{}`; pipelines are: {}",
                    project.name,
                    project
                        .pipelines
                        .iter()
                        .map(|p| p.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?;
            vec![p]
        }
        None => order,
    };
    let mut summary = RunSummary::default();
    let global_stop = opts.stop.clone().unwrap_or_else(|| tokio::sync::watch::channel(false).1);
    let stream_opts = |p: &Pipeline| stream::StreamOptions {
        available_now: opts.available_now,
        stop: opts.pipeline_stops.get(&p.name).cloned().unwrap_or_else(|| global_stop.clone()),
        crash_at: None,
        meter_edges: opts.meter_edges,
    };
    let fail = |pipeline: &Pipeline, e: &EngineError| {
        on_event(RunEvent::PipelineFailed {
            pipeline: pipeline.name.clone(),
            node: e.node().cloned(),
            message: e.detail(),
        })
    };
    // Batch pipelines, and streams with availableNow, run one after the other in dependency
    // order, so a reader starts after its writer has caught up. Continuous streams run side by
    // side once the batch pipelines are done.
    let mut continuous = Vec::new();
    for pipeline in selected {
        let result = match pipeline.mode {
            PipelineMode::Batch => {
                batch::run_pipeline(project, pipeline, root, opts.meter_edges, on_event)
                    .await
                    .map(|s| s.rows_written)
            }
            PipelineMode::Stream
                if opts.available_now
                    || matches!(pipeline.trigger, Some(Trigger::AvailableNow | Trigger::Once)) =>
            {
                stream::run_stream(project, pipeline, root, &stream_opts(pipeline), on_event)
                    .await
                    .map(|s| s.rows_written)
            }
            PipelineMode::Stream => {
                continuous.push(pipeline);
                continue;
            }
        };
        match result {
            Ok(rows) => {
                summary.pipelines += 1;
                summary.rows_written += rows;
            }
            Err(e) => {
                fail(pipeline, &e);
                return Err(e);
            }
        }
    }
    let runs = continuous.iter().map(|p| async {
        stream::run_stream(project, p, root, &stream_opts(p), on_event)
            .await
            .inspect_err(|e| fail(p, e))
    });
    for s in futures::future::try_join_all(runs).await? {
        summary.pipelines += 1;
        summary.rows_written += s.rows_written;
    }
    Ok(summary)
}

/// Sample rows of a node's output. Never writes: a sink shows what it would write.
#[derive(Clone, Debug)]
pub struct Preview {
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
}

impl Preview {
    pub fn rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }

    pub fn schema_line(&self) -> String {
        format!("schema: {}", schema::schema_to_ddl(&self.schema))
    }

    pub fn pretty(&self) -> Result<String> {
        Ok(arrow::util::pretty::pretty_format_batches(&self.batches)?.to_string())
    }
}

/// Plans the tables that earlier pipelines (in run order) would write, so later pipelines can
/// be planned before those tables exist.
async fn planner_for<'a>(
    project: &'a Project,
    pipeline: &'a Pipeline,
    root: &Path,
) -> plan::Planner<'a> {
    let (pending, broken) = pending_tables_before(project, root, &pipeline.name).await;
    plan::Planner::new(project, pipeline, root)
        .with_pending_tables(pending)
        .with_broken_tables(broken)
}

async fn pending_tables_before(
    project: &Project,
    root: &Path,
    stop_at: &str,
) -> (HashMap<PathBuf, SchemaRef>, HashMap<PathBuf, String>) {
    let mut pending = HashMap::new();
    let mut broken = HashMap::new();
    let Ok(order) = pipeline_order(project, root) else {
        return (pending, broken);
    };
    for p in order {
        if p.name == stop_at {
            break;
        }
        // only the schemas are wanted: nothing is read or checked eagerly
        let mut planner = plan::Planner::new(project, p, root)
            .with_pending_tables(pending.clone())
            .with_broken_tables(broken.clone())
            .with_schema_only();
        for sink in p.sinks() {
            let NodeKind::DeltaSink(cfg) = &sink.kind else {
                continue;
            };
            let Ok(path) = planner.resolve(&cfg.table) else {
                continue;
            };
            if path.join("_delta_log").is_dir() {
                continue;
            }
            match planner.node_frame(&sink.id).await {
                Ok(df) => {
                    pending.insert(path, plan::arrow_schema(&df));
                }
                Err(_) => {
                    broken.insert(path, p.name.clone());
                }
            }
        }
    }
    (pending, broken)
}

pub async fn preview_node(
    project: &Project,
    pipeline: &Pipeline,
    node: &NodeId,
    root: &Path,
    limit: usize,
) -> Result<Preview> {
    let mut planner = planner_for(project, pipeline, root).await.with_live_samples();
    preview_planned(&mut planner, pipeline, node, limit).await
}

/// A node's preview and each of its inputs' by port (a join's left and right), from one
/// planning: the inputs are planned on the way to the node.
pub async fn preview_with_inputs(
    project: &Project,
    pipeline: &Pipeline,
    node: &NodeId,
    root: &Path,
    limit: usize,
) -> (Result<Preview>, Vec<(String, Result<Preview>)>) {
    let mut planner = planner_for(project, pipeline, root).await.with_live_samples();
    let output = preview_planned(&mut planner, pipeline, node, limit).await;
    let ports = pipeline.node(node).map(|n| n.kind.input_ports()).unwrap_or_default();
    let mut inputs = Vec::new();
    for port in ports {
        if let Some(from) = pipeline.input_of(node, &port) {
            inputs.push((port, preview_planned(&mut planner, pipeline, from, limit).await));
        }
    }
    (output, inputs)
}

async fn preview_planned(
    planner: &mut plan::Planner<'_>,
    pipeline: &Pipeline,
    node: &NodeId,
    limit: usize,
) -> Result<Preview> {
    let df = planner.node_frame(node).await?;
    let schema = plan::arrow_schema(&df);
    let batches = match df.limit(0, Some(limit)) {
        Ok(df) => df.collect().await.at_node(&pipeline.name, node)?,
        Err(e) => return Err(EngineError::from(e).at_node(&pipeline.name, node)),
    };
    Ok(Preview { schema, batches })
}

/// Output schema of every node of a pipeline that plans; errors become diagnostics.
pub async fn plan_schemas(
    project: &Project,
    pipeline: &Pipeline,
    root: &Path,
) -> (HashMap<NodeId, SchemaRef>, Vec<Diagnostic>) {
    let mut planner = planner_for(project, pipeline, root).await.with_schema_only();
    let mut schemas = HashMap::new();
    let mut diags = Vec::new();
    let order = pipeline.topological_order().unwrap_or_default();
    for id in &order {
        // Skip nodes downstream of a failed node: their own error would only repeat it.
        if diags
            .iter()
            .any(|d: &Diagnostic| d.node.as_ref().is_some_and(|bad| pipeline.reaches(bad, id)))
        {
            continue;
        }
        match planner.node_frame(id).await {
            Ok(df) => {
                schemas.insert(id.clone(), plan::arrow_schema(&df));
            }
            Err(e) if e.is_upstream() => diags.push(Diagnostic::warning(
                &pipeline.name,
                Some(e.node().unwrap_or(id)),
                e.detail(),
            )),
            Err(e) => diags.push(Diagnostic::error(
                &pipeline.name,
                Some(e.node().unwrap_or(id)),
                e.detail(),
            )),
        }
    }
    (schemas, diags)
}

/// Engine-side checks of every pipeline: plans each node against the real data and tables.
pub async fn check_project(project: &Project, root: &Path) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    if let Err(e) = pipeline_order(project, root) {
        out.push(Diagnostic::error("*", None, e.to_string()));
        return out;
    }
    for p in &project.pipelines {
        out.extend(plan_schemas(project, p, root).await.1);
    }
    out
}
