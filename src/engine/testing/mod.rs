//! Recorded pipeline tests: replay a node on fixture rows and compare with what it output
//! when the test was recorded.
//!
//! Replay plans the pipeline with the engine's own planner, each source's frame replaced by
//! its fixture rows (`Planner::set_frame`, as a stream's micro-batch does with the rows it
//! read) and the sinks never written: the node's output is collected instead. A stream is
//! replayed batch by batch through the stream runtime's `StatefulQuery` (watermarks, windows,
//! dedup, joins), its state in a scratch checkpoint that is deleted afterwards, so stateful
//! nodes are tested across micro-batches exactly as they run.
//!
//! `record` makes a test from a node's preview, `accept` re-records the expected output of an
//! existing one after an intended change, `run_tests` replays them (`medallion test`).

pub mod assertions;
pub mod diff;
pub mod fixtures;
pub mod handle;
pub mod record;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use datafusion::datasource::MemTable;

use crate::model::pipeline_test::glob_matches;
use crate::model::streaming;
use crate::model::{NodeId, Pipeline, PipelineMode, PipelineTest, Project};

use super::EngineError;
use super::plan::{Planner, arrow_schema};
use super::stream::stateful::StatefulQuery;
use super::stream::watermark::BatchWatermark;

pub use diff::Diff;
pub use fixtures::Rows;
pub use record::{RecordOptions, Recorded, record};

#[derive(Debug, thiserror::Error)]
pub enum TestError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Arrow(#[from] arrow::error::ArrowError),
    #[error("Parquet: {0}")]
    Parquet(#[from] datafusion::parquet::errors::ParquetError),
    #[error(transparent)]
    DataFusion(#[from] datafusion::error::DataFusionError),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error(
        "fixture {path}: {message}; record the test again (`medallion test record`) or restore the file"
    )]
    Fixture { path: PathBuf, message: String },
    #[error("{0}")]
    Config(String),
}

impl TestError {
    /// The message a user reads: engine errors with their node.
    pub fn detail(&self) -> String {
        match self {
            TestError::Engine(e) => e.detail(),
            e => e.to_string(),
        }
    }
}

pub type Result<T, E = TestError> = std::result::Result<T, E>;

/// How one batch of a test compared.
#[derive(Clone, Debug)]
pub struct BatchResult {
    pub batch: usize,
    pub diff: Diff,
}

/// A failed property assertion.
#[derive(Clone, Debug, PartialEq)]
pub struct AssertionFailure {
    pub assertion: String,
    pub message: String,
}

/// The outcome of one test.
#[derive(Clone, Debug)]
pub struct TestResult {
    pub name: String,
    pub pipeline: String,
    pub node: NodeId,
    /// The test could not run (missing fixture, a node that does not plan): why.
    pub error: Option<String>,
    /// Batches whose output differs from the expected rows.
    pub diffs: Vec<BatchResult>,
    pub assertions: Vec<AssertionFailure>,
    pub batches: usize,
    pub duration_ms: u64,
}

impl TestResult {
    pub fn passed(&self) -> bool {
        self.error.is_none() && self.diffs.is_empty() && self.assertions.is_empty()
    }

    /// What failed, as printed by `medallion test` (empty when it passed).
    pub fn failure_text(&self) -> String {
        let mut out = String::new();
        if let Some(e) = &self.error {
            out.push_str(&format!("  error: {e}\n"));
        }
        for b in &self.diffs {
            if self.batches > 1 {
                out.push_str(&format!("  micro-batch {}:\n", b.batch));
            }
            out.push_str(&format!(
                "  node `{}`: {} row(s) expected, {} output\n",
                self.node, b.diff.expected_rows, b.diff.actual_rows
            ));
            out.push_str(&b.diff.to_string());
        }
        for a in &self.assertions {
            out.push_str(&format!("  assertion {}: {}\n", a.assertion, a.message));
        }
        out
    }

    pub(crate) fn errored(test: &PipelineTest, message: String, started: Instant) -> Self {
        Self {
            name: test.name.clone(),
            pipeline: test.pipeline.clone(),
            node: test.node.clone(),
            error: Some(message),
            diffs: Vec::new(),
            assertions: Vec::new(),
            batches: test.batches,
            duration_ms: started.elapsed().as_millis() as u64,
        }
    }
}

/// `N passed, M failed`.
pub fn summary_line(results: &[TestResult]) -> String {
    let passed = results.iter().filter(|r| r.passed()).count();
    format!("{passed} passed, {} failed", results.len() - passed)
}

/// The sources whose rows a replay of `node` needs: those upstream of it, or, in a stream with
/// stateful nodes (which all run in every micro-batch), every source of the pipeline.
pub fn needed_sources(pipeline: &Pipeline, node: &NodeId) -> Vec<NodeId> {
    let all = stateful(pipeline);
    pipeline
        .nodes
        .iter()
        .filter(|n| n.kind.role() == crate::model::NodeRole::Source)
        .filter(|n| all || &n.id == node || pipeline.reaches(&n.id, node))
        .map(|n| n.id.clone())
        .collect()
}

/// Whether the pipeline is a stream with Watermark or stateful nodes.
fn stateful(pipeline: &Pipeline) -> bool {
    pipeline.mode == PipelineMode::Stream
        && (pipeline.nodes.iter().any(|n| matches!(n.kind, crate::model::NodeKind::Watermark(_)))
            || !streaming::stateful_nodes(pipeline).is_empty())
}

/// A scratch folder for a replay's state store, deleted on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Self {
        Self(std::env::temp_dir().join(format!("medallion-test-{}", uuid::Uuid::new_v4())))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Replays `node` over each batch's fixture rows; returns its output after each batch.
/// Nothing is read from or written to the lakehouse: the planner's root is an empty scratch
/// folder and sinks are only planned, never written.
pub async fn replay(
    project: &Project,
    pipeline: &Pipeline,
    node: &NodeId,
    inputs: &[fixtures::BatchInput],
) -> Result<Vec<Rows>> {
    let scratch = Scratch::new();
    let root = scratch.0.join("lakehouse");
    let query = if stateful(pipeline) {
        StatefulQuery::analyze(pipeline, &scratch.0.join("checkpoint"))?
    } else {
        None
    };
    let mut watermark = BatchWatermark::default();
    let mut outputs = Vec::with_capacity(inputs.len());
    for (batch_id, input) in inputs.iter().enumerate() {
        let mut planner = Planner::new(project, pipeline, &root);
        for (source, rows) in input {
            let table = MemTable::try_new(rows.schema.clone(), vec![rows.batches.clone()])
                .map_err(EngineError::from)?;
            let df = planner.ctx.read_table(Arc::new(table)).map_err(EngineError::from)?;
            planner.set_frame(source.clone(), df);
        }
        let state = match &query {
            Some(q) => Some(q.run(&mut planner, batch_id as u64, &watermark).await?),
            None => None,
        };
        let df = planner.node_frame(node).await?;
        let schema = arrow_schema(&df);
        let batches =
            df.collect().await.map_err(|e| EngineError::from(e).at_node(&pipeline.name, node))?;
        outputs.push(Rows { schema, batches });
        if let (Some(q), Some(bs)) = (&query, &state) {
            watermark =
                watermark.next(q.watermark_specs(), &bs.event_time, pipeline.watermark_policy);
        }
    }
    Ok(outputs)
}

/// Whether the node's output is sorted (its plan ends in a sort): then rows compare in order.
pub async fn sorts(
    project: &Project,
    pipeline: &Pipeline,
    node: &NodeId,
    inputs: &fixtures::BatchInput,
) -> bool {
    use datafusion::logical_expr::LogicalPlan;
    let scratch = Scratch::new();
    let mut planner = Planner::new(project, pipeline, &scratch.0);
    for (source, rows) in inputs {
        let Ok(table) = MemTable::try_new(rows.schema.clone(), vec![rows.batches.clone()]) else {
            return false;
        };
        let Ok(df) = planner.ctx.read_table(Arc::new(table)) else { return false };
        planner.set_frame(source.clone(), df);
    }
    let Ok(df) = planner.node_frame(node).await else { return false };
    let mut plan = df.logical_plan();
    loop {
        match plan {
            LogicalPlan::Sort(_) => return true,
            LogicalPlan::Projection(p) => plan = p.input.as_ref(),
            LogicalPlan::SubqueryAlias(p) => plan = p.input.as_ref(),
            LogicalPlan::Limit(p) => plan = p.input.as_ref(),
            _ => return false,
        }
    }
}

fn resolve<'a>(project: &'a Project, test: &PipelineTest) -> Result<&'a Pipeline> {
    let pipeline = project.pipeline(&test.pipeline).ok_or_else(|| {
        TestError::Config(format!(
            "test `{}` is of pipeline `{}`, which the project no longer has; record it again or delete it",
            test.name, test.pipeline
        ))
    })?;
    if pipeline.node(&test.node).is_none() {
        return Err(TestError::Config(format!(
            "test `{}` checks node `{}`, which pipeline `{}` no longer has; record it again or delete it",
            test.name, test.node, test.pipeline
        )));
    }
    Ok(pipeline)
}

/// Replays one test and compares.
pub async fn run_test(project: &Project, project_file: &Path, test: &PipelineTest) -> TestResult {
    let started = Instant::now();
    match run_test_inner(project, project_file, test).await {
        Ok(mut r) => {
            r.duration_ms = started.elapsed().as_millis() as u64;
            r
        }
        Err(e) => TestResult::errored(test, e.detail(), started),
    }
}

async fn run_test_inner(
    project: &Project,
    project_file: &Path,
    test: &PipelineTest,
) -> Result<TestResult> {
    let pipeline = resolve(project, test)?;
    let dir = fixtures::test_dir(project_file, test);
    let sources = needed_sources(pipeline, &test.node);
    let inputs = fixtures::read_inputs(&dir, test.batches, &sources)?;
    let outputs = replay(project, pipeline, &test.node, &inputs).await?;
    let mut diffs = Vec::new();
    if test.compare_rows {
        let expected = fixtures::read_expected(&dir, test.batches)?;
        for (batch, (e, a)) in expected.iter().zip(&outputs).enumerate() {
            let diff = diff::compare(e, a, &test.ignore_columns, &test.key, test.ordered)?;
            if !diff.is_empty() {
                diffs.push(BatchResult { batch, diff });
            }
        }
    }
    let assertions = assertions::check(test, &outputs).await?;
    Ok(TestResult {
        name: test.name.clone(),
        pipeline: test.pipeline.clone(),
        node: test.node.clone(),
        error: None,
        diffs,
        assertions,
        batches: test.batches,
        duration_ms: 0,
    })
}

/// The project's tests whose names match `glob` (all when `None`).
pub fn select<'a>(project: &'a Project, glob: Option<&str>) -> Vec<&'a PipelineTest> {
    project.tests.iter().filter(|t| glob.is_none_or(|g| glob_matches(g, &t.name))).collect()
}

/// Replays the project's tests (those matching `glob`), one after the other.
pub async fn run_tests(
    project: &Project,
    project_file: &Path,
    glob: Option<&str>,
) -> Vec<TestResult> {
    let mut out = Vec::new();
    for t in select(project, glob) {
        out.push(run_test(project, project_file, t).await);
    }
    out
}

/// "Accept new output": replays test `name` and stores its output as the expected rows.
pub async fn accept(project: &Project, project_file: &Path, name: &str) -> Result<usize> {
    let test = project.tests.iter().find(|t| t.name == name).ok_or_else(|| {
        TestError::Config(format!("no test `{name}` in project `{}`", project.name))
    })?;
    let pipeline = resolve(project, test)?;
    let dir = fixtures::test_dir(project_file, test);
    let inputs = fixtures::read_inputs(&dir, test.batches, &needed_sources(pipeline, &test.node))?;
    let outputs = replay(project, pipeline, &test.node, &inputs).await?;
    fixtures::write_expected(&dir, &outputs)?;
    Ok(outputs.iter().map(Rows::count).sum())
}
