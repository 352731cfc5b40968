//! Edge meters: rows and time flowing along each edge of a pipeline during a micro-batch.
//!
//! [`EdgeMeter::wrap`] puts a transparent node between an upstream frame and the node that
//! reads it. The node yields the frame's rows unchanged and counts, per edge, the rows and
//! batches that pass and the time spent producing them (the nanoseconds spent inside the
//! upstream stream's `poll_next`, i.e. the inclusive time of the upstream subtree). The monitor
//! turns that into rows/s per edge and, with [`node_self_ms`], a node's own time.
//!
//! What is counted, exactly:
//! - the rows the upstream node emitted along that edge: filters of the downstream node are
//!   never pushed through the meter (logically or physically), so they do not shrink the
//!   count. Column pruning does pass through (it does not change row counts), and so does a
//!   `LIMIT` right above the edge: the upstream then only produces what is asked for.
//! - every execution: a frame read by two consumers (two sinks, or both sides of a join) is
//!   computed once per consumer, and each computation counts.
//! - time is summed over partitions, so with parallel partitions it is closer to CPU time than
//!   to wall time. Work that DataFusion moves to other tasks (repartitioning) is only seen as
//!   the time to hand its results over.
//!
//! Use a fresh meter per micro-batch.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Instant;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{Statistics, internal_err};
use datafusion::error::Result as DfResult;
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{TableProviderFilterPushDown, TableType};
use datafusion::physical_plan::execution_plan::CardinalityEffect;
use datafusion::physical_plan::{
    ChildStats, ChildrenPropertiesMode, DisplayAs, DisplayFormatType, ExecutionPlan, PhysicalExpr,
    PlanProperties, RecordBatchStream, ReplaceChildrenOptions, SendableRecordBatchStream,
    StatisticsArgs,
};
use datafusion::prelude::{DataFrame, Expr, SessionContext};
use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};

use crate::model::{NodeId, Pipeline};

use super::Result;

/// One edge of the pipeline graph: `from` feeds input `port` of `to`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EdgeKey {
    pub from: NodeId,
    pub to: NodeId,
    pub port: String,
}

/// Counters of one edge, updated while batches flow.
#[derive(Debug, Default)]
pub struct EdgeCounter {
    rows: AtomicU64,
    batches: AtomicU64,
    poll_nanos: AtomicU64,
}

impl EdgeCounter {
    /// Rows that passed along the edge.
    pub fn rows(&self) -> u64 {
        self.rows.load(Ordering::Relaxed)
    }

    /// Batches that passed along the edge.
    pub fn batches(&self) -> u64 {
        self.batches.load(Ordering::Relaxed)
    }

    /// Nanoseconds spent producing them (inclusive time of the upstream subtree, summed over
    /// partitions).
    pub fn poll_nanos(&self) -> u64 {
        self.poll_nanos.load(Ordering::Relaxed)
    }
}

/// What flowed along one edge.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EdgeStats {
    pub from: NodeId,
    pub to: NodeId,
    pub port: String,
    pub rows: u64,
    /// Time to produce the rows, in milliseconds: inclusive time of the upstream subtree,
    /// summed over partitions.
    pub produce_ms: f64,
}

/// Counters for the edges of one pipeline run (use one per micro-batch).
#[derive(Debug, Default)]
pub struct EdgeMeter {
    edges: Mutex<HashMap<EdgeKey, Arc<EdgeCounter>>>,
}

impl EdgeMeter {
    /// A meter with no edges yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The counter of `key`, created on first use. Frames wrapped with the same key share it.
    pub fn counter(&self, key: EdgeKey) -> Arc<EdgeCounter> {
        let mut edges = self.edges.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(edges.entry(key).or_default())
    }

    /// `df`, with the same rows, columns and schema, counting what flows out of it in the
    /// counter of `key`.
    pub fn wrap(&self, ctx: &SessionContext, key: EdgeKey, df: DataFrame) -> Result<DataFrame> {
        let table = MeteredTable { inner: df.into_view(), counter: self.counter(key) };
        Ok(ctx.read_table(Arc::new(table))?)
    }

    /// What flowed so far along each metered edge, ordered by edge.
    pub fn snapshot(&self) -> Vec<EdgeStats> {
        let edges = self.edges.lock().unwrap_or_else(PoisonError::into_inner);
        let mut out: Vec<EdgeStats> = edges
            .iter()
            .map(|(k, c)| EdgeStats {
                from: k.from.clone(),
                to: k.to.clone(),
                port: k.port.clone(),
                rows: c.rows(),
                produce_ms: c.poll_nanos() as f64 / 1e6,
            })
            .collect();
        out.sort_by(|a, b| (&a.from, &a.to, &a.port).cmp(&(&b.from, &b.to, &b.port)));
        out
    }
}

/// Each node's own time in milliseconds: the inclusive time of its outgoing edges minus that
/// of its incoming edges, clamped at 0.
///
/// Outgoing edges are summed, not maxed: every consumer of a frame recomputes it, so an
/// incoming edge's time already adds up the runs for all of the node's outgoing edges. A node
/// with no metered outgoing edge (a sink) uses its write wall time from `sink_write_ms` (keyed
/// by node id) and is left out when that is missing. Edge times are summed over partitions
/// (roughly CPU time) while write times are wall time, so for sinks this is an estimate.
pub fn node_self_ms(
    edges: &[EdgeStats],
    pipeline: &Pipeline,
    sink_write_ms: &BTreeMap<String, u64>,
) -> BTreeMap<NodeId, f64> {
    let mut out = BTreeMap::new();
    for node in &pipeline.nodes {
        let id = &node.id;
        let incoming: f64 = edges.iter().filter(|e| &e.to == id).map(|e| e.produce_ms).sum();
        let outgoing: Vec<f64> =
            edges.iter().filter(|e| &e.from == id).map(|e| e.produce_ms).collect();
        let inclusive = if outgoing.is_empty() {
            match sink_write_ms.get(id.as_str()) {
                Some(&ms) => ms as f64,
                None => continue,
            }
        } else {
            outgoing.iter().sum()
        };
        out.insert(id.clone(), (inclusive - incoming).max(0.0));
    }
    out
}

/// A frame seen as a table whose scans are metered.
#[derive(Debug)]
struct MeteredTable {
    inner: Arc<dyn TableProvider>,
    counter: Arc<EdgeCounter>,
}

#[async_trait::async_trait]
impl TableProvider for MeteredTable {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }

    fn table_type(&self) -> TableType {
        self.inner.table_type()
    }

    /// Filters stay above the meter, so it counts every row the upstream node emits.
    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        Ok(vec![TableProviderFilterPushDown::Unsupported; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let input = self.inner.scan(state, projection, filters, limit).await?;
        Ok(Arc::new(MeteredExec { input, counter: Arc::clone(&self.counter) }))
    }
}

/// Passes its input through unchanged, counting rows and time in `counter`.
#[derive(Debug)]
struct MeteredExec {
    input: Arc<dyn ExecutionPlan>,
    counter: Arc<EdgeCounter>,
}

impl DisplayAs for MeteredExec {
    fn fmt_as(&self, t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        match t {
            DisplayFormatType::Default | DisplayFormatType::Verbose => write!(f, "MeteredExec"),
            DisplayFormatType::TreeRender => Ok(()),
        }
    }
}

impl ExecutionPlan for MeteredExec {
    fn name(&self) -> &str {
        "MeteredExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        // transparent: same partitioning, ordering, boundedness as the input
        self.input.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![true]
    }

    fn benefits_from_input_partitioning(&self) -> Vec<bool> {
        vec![false]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DfResult<TreeNodeRecursion>,
    ) -> DfResult<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn replace_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
        _options: ReplaceChildrenOptions,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        // the properties are the child's, so there is nothing to recompute
        match <[_; 1]>::try_from(children) {
            Ok([input]) => Ok(Arc::new(MeteredExec { input, counter: Arc::clone(&self.counter) })),
            Err(children) => {
                internal_err!("MeteredExec takes 1 child, got {}", children.len())
            }
        }
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        self.replace_children(
            children,
            ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute),
        )
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> DfResult<SendableRecordBatchStream> {
        Ok(Box::pin(MeteredStream {
            input: self.input.execute(partition, context)?,
            counter: Arc::clone(&self.counter),
        }))
    }

    fn child_stats_requests(&self, partition: Option<usize>) -> Vec<ChildStats> {
        vec![ChildStats::At(partition)]
    }

    fn statistics_from_inputs(
        &self,
        input_stats: &[Arc<Statistics>],
        _args: &StatisticsArgs,
    ) -> DfResult<Arc<Statistics>> {
        match input_stats.first() {
            Some(stats) => Ok(Arc::clone(stats)),
            None => Ok(Arc::new(Statistics::new_unknown(&self.schema()))),
        }
    }

    fn cardinality_effect(&self) -> CardinalityEffect {
        CardinalityEffect::Equal
    }
}

struct MeteredStream {
    input: SendableRecordBatchStream,
    counter: Arc<EdgeCounter>,
}

impl Stream for MeteredStream {
    type Item = DfResult<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let start = Instant::now();
        let poll = self.input.poll_next_unpin(cx);
        let nanos = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.counter.poll_nanos.fetch_add(nanos, Ordering::Relaxed);
        if let Poll::Ready(Some(Ok(batch))) = &poll {
            self.counter.rows.fetch_add(batch.num_rows() as u64, Ordering::Relaxed);
            self.counter.batches.fetch_add(1, Ordering::Relaxed);
        }
        poll
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.input.size_hint()
    }
}

impl RecordBatchStream for MeteredStream {
    fn schema(&self) -> SchemaRef {
        self.input.schema()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::path::Path;

    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use datafusion::common::{Column, JoinType};
    use datafusion::datasource::MemTable;
    use datafusion::prelude::{col, lit};

    use super::*;
    use crate::engine::plan::{Planner, session_context};
    use crate::model::Project;

    fn key(from: &str, to: &str, port: &str) -> EdgeKey {
        EdgeKey { from: from.into(), to: to.into(), port: port.into() }
    }

    /// 35 rows in 3 batches (10 + 20 + 5), ids 0..35, with field and schema metadata.
    fn table() -> MemTable {
        let id = Field::new("id", DataType::Int64, false)
            .with_metadata(HashMap::from([("doc".into(), "row id".into())]));
        let schema = Arc::new(
            Schema::new(vec![id, Field::new("name", DataType::Utf8, true)])
                .with_metadata(HashMap::from([("origin".into(), "test".into())])),
        );
        let batch = |ids: std::ops::Range<i64>| {
            let names: Vec<Option<String>> =
                ids.clone().map(|i| (i % 3 != 0).then(|| format!("n{i}"))).collect();
            RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(Int64Array::from_iter_values(ids)),
                    Arc::new(StringArray::from(names)),
                ],
            )
            .unwrap()
        };
        MemTable::try_new(schema.clone(), vec![vec![batch(0..10), batch(10..30), batch(30..35)]])
            .unwrap()
    }

    fn pretty(batches: &[RecordBatch]) -> String {
        arrow::util::pretty::pretty_format_batches(batches).unwrap().to_string()
    }

    #[tokio::test]
    async fn wrapped_frame_yields_the_same_rows_and_counts_the_edge() {
        let ctx = session_context();
        let plain = ctx.read_table(Arc::new(table())).unwrap();
        let meter = EdgeMeter::new();
        let wrapped = meter.wrap(&ctx, key("src", "f", "in"), plain.clone()).unwrap();
        // same columns, types, nullability and metadata (only the qualifier changes)
        assert_eq!(wrapped.schema().inner(), plain.schema().inner());

        let downstream = |df: DataFrame| {
            df.filter(col("id").gt_eq(lit(12_i64)))
                .unwrap()
                .select(vec![col("name"), (col("id") * lit(2_i64)).alias("twice")])
                .unwrap()
                .sort(vec![col("twice").sort(true, false)])
                .unwrap()
        };
        let expected = downstream(plain).collect().await.unwrap();
        let plan = downstream(wrapped.clone()).create_physical_plan().await.unwrap();
        let shown = datafusion::physical_plan::displayable(plan.as_ref()).indent(true).to_string();
        let line = |name: &str| shown.lines().position(|l| l.contains(name));
        assert!(line("FilterExec") < line("MeteredExec"), "{shown}");
        let got = downstream(wrapped).collect().await.unwrap();
        assert_eq!(pretty(&got), pretty(&expected));
        assert_eq!(got.iter().map(RecordBatch::num_rows).sum::<usize>(), 23);

        // The filter is not pushed through the meter (it reports Unsupported), so the edge
        // counts all 35 rows the source emitted, not the 23 that pass the filter.
        let counter = meter.counter(key("src", "f", "in"));
        assert_eq!(counter.rows(), 35);
        assert_eq!(counter.batches(), 3);
        let stats = meter.snapshot();
        assert_eq!(stats.len(), 1);
        assert_eq!((stats[0].from.as_str(), stats[0].rows), ("src", 35));
        assert!(stats[0].produce_ms >= 0.0);
    }

    #[tokio::test]
    async fn wrapped_frame_works_in_sql_and_on_both_sides_of_a_join() {
        let ctx = session_context();
        let plain = ctx.read_table(Arc::new(table())).unwrap();
        let meter = EdgeMeter::new();
        let wrapped = meter.wrap(&ctx, key("src", "j", "in"), plain).unwrap();

        let l = |c: &str| col(Column::new(Some("l"), c));
        let r = |c: &str| col(Column::new(Some("r"), c));
        let joined = wrapped
            .clone()
            .alias("l")
            .unwrap()
            .join_on(wrapped.clone().alias("r").unwrap(), JoinType::Inner, [l("id").eq(r("id"))])
            .unwrap()
            .select(vec![l("id").alias("id"), r("name").alias("name")])
            .unwrap();
        assert_eq!(joined.collect().await.unwrap().iter().map(|b| b.num_rows()).sum::<usize>(), 35);
        // each side scans the frame: 2 × 35
        assert_eq!(meter.counter(key("src", "j", "in")).rows(), 70);

        ctx.register_table("v", wrapped.into_view()).unwrap();
        let n = ctx.sql("SELECT count(*) AS n FROM v WHERE name IS NULL").await.unwrap();
        let batches = n.collect().await.unwrap();
        let count = batches[0].column(0).as_any().downcast_ref::<Int64Array>().unwrap().value(0);
        assert_eq!(count, 12);
        assert_eq!(meter.counter(key("src", "j", "in")).rows(), 105);
    }

    #[tokio::test]
    async fn planner_meters_every_edge() {
        let text = r#"
format_version = 1
name = "m"
[[pipeline]]
name = "p"
mode = "stream"
[[pipeline.nodes]]
id = "gen"
kind = "generator_source"
rows_per_second = 100
[[pipeline.nodes]]
id = "f"
kind = "filter"
condition = "id % 4 = 0"
[[pipeline.nodes]]
id = "s"
kind = "select"
columns = ["id AS rid"]
[[pipeline.nodes]]
id = "j"
kind = "join"
on = [["id", "rid"]]
[[pipeline.nodes]]
id = "out"
kind = "kafka_sink"
"kafka.bootstrap.servers" = "localhost:9092"
topic = "t"
[[pipeline.edges]]
from = "gen"
to = "f"
[[pipeline.edges]]
from = "f"
to = "s"
[[pipeline.edges]]
from = "gen"
to = "j"
port = "left"
[[pipeline.edges]]
from = "s"
to = "j"
port = "right"
[[pipeline.edges]]
from = "j"
to = "out"
"#;
        let project = Project::from_toml(text, Path::new("m.toml")).unwrap();
        let pipeline = &project.pipelines[0];
        let root = Path::new("/nonexistent");
        let sink = NodeId::from("out");

        let mut plain = Planner::new(&project, pipeline, root);
        let expected = plain.node_frame(&sink).await.unwrap();
        let expected_schema = expected.schema().inner().clone();
        let expected = expected.sort(vec![col("id").sort(true, false)]).unwrap();
        let expected = expected.collect().await.unwrap();

        let meter = Arc::new(EdgeMeter::new());
        let mut metered = Planner::new(&project, pipeline, root).with_meter(meter.clone());
        let got = metered.node_frame(&sink).await.unwrap();
        assert_eq!(got.schema().inner(), &expected_schema);
        let got = got.sort(vec![col("id").sort(true, false)]).unwrap().collect().await.unwrap();
        assert_eq!(pretty(&got), pretty(&expected));

        // the generator's sample is 100 rows; a quarter of the ids pass the filter
        let snapshot = meter.snapshot();
        let rows: Vec<(&str, &str, &str, u64)> = snapshot
            .iter()
            .map(|e| (e.from.as_str(), e.to.as_str(), e.port.as_str(), e.rows))
            .collect();
        assert_eq!(
            rows,
            [
                ("f", "s", "in", 25),
                ("gen", "f", "in", 100),
                ("gen", "j", "left", 100),
                ("j", "out", "in", 25),
                ("s", "j", "right", 25),
            ]
        );
    }

    #[test]
    fn self_time_is_outgoing_minus_incoming() {
        let text = r#"
format_version = 1
name = "m"
[[pipeline]]
name = "p"
[[pipeline.nodes]]
id = "a"
kind = "generator_source"
rows_per_second = 1
[[pipeline.nodes]]
id = "b"
kind = "filter"
condition = "true"
[[pipeline.nodes]]
id = "c"
kind = "kafka_sink"
"kafka.bootstrap.servers" = "x"
topic = "t"
[[pipeline.nodes]]
id = "d"
kind = "kafka_sink"
"kafka.bootstrap.servers" = "x"
topic = "t"
[[pipeline.edges]]
from = "a"
to = "b"
[[pipeline.edges]]
from = "b"
to = "c"
[[pipeline.edges]]
from = "b"
to = "d"
"#;
        let project = Project::from_toml(text, Path::new("m.toml")).unwrap();
        let edge = |from: &str, to: &str, ms: f64| EdgeStats {
            from: from.into(),
            to: to.into(),
            port: "in".into(),
            rows: 1,
            produce_ms: ms,
        };
        // b feeds two sinks, so a→b ran twice: 2 × 10 ms of a, 2 × 5 ms of b
        let edges = [edge("a", "b", 20.0), edge("b", "c", 15.0), edge("b", "d", 15.0)];
        let writes = BTreeMap::from([("c".to_owned(), 18), ("d".to_owned(), 12)]);
        let got = node_self_ms(&edges, &project.pipelines[0], &writes);
        let want: BTreeMap<NodeId, f64> = [("a", 20.0), ("b", 10.0), ("c", 3.0), ("d", 0.0)]
            .into_iter()
            .map(|(n, ms)| (NodeId::from(n), ms))
            .collect();
        assert_eq!(got, want);

        // a sink without a write time is left out
        let got = node_self_ms(&edges, &project.pipelines[0], &BTreeMap::new());
        assert_eq!(got.keys().map(NodeId::as_str).collect::<Vec<_>>(), ["a", "b"]);
    }
}
