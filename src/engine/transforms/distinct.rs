//! Distinct and Deduplicate in batch pipelines, as a streaming operator: each row whose key
//! was not seen before passes at once, later ones are dropped. The key is all columns
//! (Distinct, SQL's `SELECT DISTINCT`) or the named ones (Deduplicate, Spark's
//! `dropDuplicates(keys)`: the first row of each key is kept, whole).
//!
//! DataFusion plans both as a hash aggregate, which holds every group and emits them all at
//! the end: with a list column among the keys (users_batch's `user_skills`) it falls back to
//! row-encoded groups, and the emit converts all of them back to columns at once, beside the
//! groups. Here the keys seen are kept as bytes (`key_bytes.rs`, arrow-row for the types it
//! has no encoding of; NULLs equal as in DISTINCT) and the rows themselves flow on: nothing is
//! emitted twice, a `LIMIT` downstream stops the scan early, and the output is in input order
//! until the keys outgrow memory (then the rest comes part by part: `distinct_parts.rs`).
//! users_batch's silver on 1M users: see `docs/SESSION_NOTES.md` (sessions 9 and 21).
//!
//! Exact, not probabilistic: a key's bytes are compared whenever hashes match.

use std::fmt;
use std::sync::Arc;

use arrow::datatypes::{DataType, SchemaRef};
use arrow::row::{RowConverter, SortField};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{Statistics, internal_err};
use datafusion::error::Result as DfResult;
use datafusion::execution::TaskContext;
use datafusion::execution::memory_pool::MemoryConsumer;
use datafusion::logical_expr::{TableProviderFilterPushDown, TableType};
use datafusion::physical_expr::EquivalenceProperties;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_plan::execution_plan::{Boundedness, CardinalityEffect, EmissionType};
use datafusion::physical_plan::metrics::{ExecutionPlanMetricsSet, MetricsSet};
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    ChildStats, ChildrenPropertiesMode, DisplayAs, DisplayFormatType, Distribution, ExecutionPlan,
    ExecutionPlanProperties, Partitioning, PhysicalExpr, PlanProperties, ReplaceChildrenOptions,
    SendableRecordBatchStream, StatisticsArgs,
};
use datafusion::prelude::{DataFrame, Expr, SessionContext};

use super::distinct_keys::Seen;
use super::distinct_parts::{self, Dedupe};
use crate::engine::Result;

/// `df` without rows whose `keys` (column indices; all columns when `None`) repeat an earlier
/// row's, or `None` when a key column's type cannot be row-encoded (the caller plans
/// DataFusion's aggregate instead).
pub fn plan(
    ctx: &SessionContext,
    df: DataFrame,
    keys: Option<Vec<usize>>,
) -> Result<Option<DataFrame>> {
    let schema = Arc::new(df.schema().as_arrow().clone());
    let keys = keys.unwrap_or_else(|| (0..schema.fields().len()).collect());
    let fields: Vec<SortField> =
        keys.iter().map(|&k| SortField::new(schema.field(k).data_type().clone())).collect();
    if fields.is_empty() || !RowConverter::supports_fields(&fields) {
        return Ok(None);
    }
    let table = DistinctTable { inner: df.into_view(), keys };
    Ok(Some(ctx.read_table(Arc::new(table))?))
}

/// A frame seen as a table whose scans drop repeated keys.
#[derive(Debug)]
struct DistinctTable {
    inner: Arc<dyn TableProvider>,
    keys: Vec<usize>,
}

#[async_trait::async_trait]
impl TableProvider for DistinctTable {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }

    fn table_type(&self) -> TableType {
        self.inner.table_type()
    }

    /// Filters stay above: a row dropped before the distinct would let a later duplicate
    /// through in its place.
    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        Ok(vec![TableProviderFilterPushDown::Unsupported; filters.len()])
    }

    /// Columns and limits are not pushed below the distinct (they change which rows are
    /// duplicates); the projection is applied above it.
    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let input = self.inner.scan(state, None, &[], None).await?;
        let distinct: Arc<dyn ExecutionPlan> =
            Arc::new(DistinctExec::new(input, self.keys.clone()));
        let Some(p) = projection else { return Ok(distinct) };
        let schema = distinct.schema();
        let columns = p.iter().map(|&i| {
            let name = schema.field(i).name().clone();
            let expr: Arc<dyn PhysicalExpr> = Arc::new(Column::new(&name, i));
            (expr, name)
        });
        Ok(Arc::new(ProjectionExec::try_new(columns, distinct)?))
    }
}

/// Passes each row whose key columns were not seen before, as one partition.
#[derive(Debug)]
struct DistinctExec {
    input: Arc<dyn ExecutionPlan>,
    keys: Vec<usize>,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl DistinctExec {
    fn new(input: Arc<dyn ExecutionPlan>, keys: Vec<usize>) -> Self {
        let props = input.properties();
        let properties = Arc::new(PlanProperties::new(
            EquivalenceProperties::new(input.schema()),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Incremental,
            if props.boundedness.is_unbounded() { props.boundedness } else { Boundedness::Bounded },
        ));
        Self { input, keys, properties, metrics: ExecutionPlanMetricsSet::new() }
    }
}

impl DisplayAs for DistinctExec {
    fn fmt_as(&self, t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        match t {
            DisplayFormatType::Default | DisplayFormatType::Verbose => {
                write!(f, "DistinctExec: keys={:?}", self.keys)
            }
            DisplayFormatType::TreeRender => Ok(()),
        }
    }
}

impl ExecutionPlan for DistinctExec {
    fn name(&self) -> &str {
        "DistinctExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    /// One set of keys seen: the input's partitions are merged in front of it (the merge runs
    /// them in parallel; the row encoding here is a fraction of the scan's cost).
    fn required_input_distribution(&self) -> Vec<Distribution> {
        vec![Distribution::SinglePartition]
    }

    /// Not past the keys in memory, where the rest comes out part by part.
    fn maintains_input_order(&self) -> Vec<bool> {
        vec![false]
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
        match <[_; 1]>::try_from(children) {
            Ok([input]) => Ok(Arc::new(DistinctExec::new(input, self.keys.clone()))),
            Err(children) => internal_err!("DistinctExec takes 1 child, got {}", children.len()),
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
        if partition != 0 {
            return internal_err!("DistinctExec has one partition, asked for {partition}");
        }
        let schema = self.input.schema();
        // normally one (the merge in front); several only if the optimizer was skipped
        let inputs = (0..self.input.output_partitioning().partition_count())
            .map(|p| self.input.execute(p, Arc::clone(&context)))
            .collect::<DfResult<Vec<_>>>()?;
        let input = Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&schema),
            futures::stream::select_all(inputs),
        ));
        let types: Vec<DataType> =
            self.keys.iter().map(|&k| schema.field(k).data_type().clone()).collect();
        let pool = Arc::clone(context.memory_pool());
        let disk = Arc::clone(&context.runtime_env().disk_manager);
        let new_seen = Box::new(move || {
            let reservation =
                MemoryConsumer::new("DistinctExec").with_can_spill(true).register(&pool);
            Seen::new(types.clone(), reservation, Arc::clone(&disk))
        });
        let dedupe = Dedupe {
            keys: self.keys.clone(),
            new_seen,
            schema: Arc::clone(&schema),
            env: context.runtime_env(),
            metrics: self.metrics.clone(),
        };
        let rows = distinct_parts::dedupe(input, dedupe)?;
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, rows)))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }

    fn child_stats_requests(&self, _partition: Option<usize>) -> Vec<ChildStats> {
        vec![ChildStats::At(None)]
    }

    /// At most the input's rows: the join planner needs an estimate to put the smaller side
    /// in its hash table (unknown, it would build on ours: 1M users instead of 0.9M ssns).
    fn statistics_from_inputs(
        &self,
        input_stats: &[Arc<Statistics>],
        _args: &StatisticsArgs,
    ) -> DfResult<Arc<Statistics>> {
        match input_stats.first() {
            Some(stats) => Ok(Arc::new(stats.as_ref().clone().to_inexact())),
            None => Ok(Arc::new(Statistics::new_unknown(&self.schema()))),
        }
    }

    fn cardinality_effect(&self) -> CardinalityEffect {
        CardinalityEffect::LowerEqual
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{ArrayRef, Int64Array, ListBuilder, RecordBatch, StringBuilder};
    use arrow::datatypes::{DataType, Field, Schema};
    use datafusion::datasource::MemTable;
    use datafusion::execution::runtime_env::RuntimeEnvBuilder;
    use datafusion::prelude::{SessionConfig, col, lit};

    use super::*;

    /// (id, name, tags) of one test row.
    type Row<'a> = (Option<i64>, Option<&'a str>, Option<&'a [&'a str]>);

    /// A batch of rows; `tags` a list of strings (DataFusion's aggregate falls back to
    /// row-encoded groups for it, as users_batch's `user_skills`).
    fn batch(rows: &[Row]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
            Field::new(
                "tags",
                DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
                true,
            ),
        ]));
        let mut tags = ListBuilder::new(StringBuilder::new());
        for (_, _, t) in rows {
            match t {
                Some(t) => {
                    for v in *t {
                        tags.values().append_value(v);
                    }
                    tags.append(true);
                }
                None => tags.append(false),
            }
        }
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(rows.iter().map(|r| r.0).collect::<Vec<_>>()))
                    as ArrayRef,
                Arc::new(arrow::array::StringArray::from(
                    rows.iter().map(|r| r.1).collect::<Vec<_>>(),
                )),
                Arc::new(tags.finish()),
            ],
        )
        .unwrap()
    }

    /// Two partitions of two batches: duplicates within a batch, across batches and across
    /// partitions; NULLs equal to NULLs; lists that differ only in order or length.
    fn input() -> MemTable {
        let a: &[&str] = &["x", "y"];
        let b: &[&str] = &["y", "x"];
        let c: &[&str] = &["x"];
        let p1 = vec![
            batch(&[
                (Some(1), Some("ada"), Some(a)),
                (Some(1), Some("ada"), Some(a)),
                (None, None, None),
            ]),
            batch(&[
                (Some(1), Some("ada"), Some(b)),
                (None, None, None),
                (Some(2), Some("é"), Some(c)),
            ]),
        ];
        let p2 = vec![
            batch(&[(Some(2), Some("é"), Some(c)), (Some(1), Some("ada"), Some(a))]),
            batch(&[(Some(2), Some("é"), Some(a)), (Some(3), None, Some(&[]))]),
        ];
        MemTable::try_new(p1[0].schema(), vec![p1, p2]).unwrap()
    }

    async fn sorted(df: DataFrame) -> String {
        let names: Vec<datafusion::logical_expr::SortExpr> =
            df.schema().fields().iter().map(|f| col(f.name()).sort(true, true)).collect();
        let rows = df.sort(names).unwrap().collect().await.unwrap();
        arrow::util::pretty::pretty_format_batches(&rows).unwrap().to_string()
    }

    #[tokio::test]
    async fn distinct_gives_datafusions_rows_and_keeps_the_first_of_each_key() {
        let ctx = SessionContext::new_with_config(SessionConfig::new().with_target_partitions(2));
        let df = ctx.read_table(Arc::new(input())).unwrap();
        let ours = plan(&ctx, df.clone(), None).unwrap().expect("lists are row-encodable");
        let plan_text = format!("{:?}", ours.clone().create_physical_plan().await.unwrap());
        assert!(plan_text.contains("DistinctExec"), "{plan_text}");
        let theirs = df.clone().distinct().unwrap();
        let expected = sorted(theirs).await;
        assert_eq!(sorted(ours.clone()).await, expected);
        assert_eq!(ours.clone().count().await.unwrap(), 6, "{expected}");

        // columns and filters apply above the distinct: (1, ada, [x, y]) and (1, ada, [y, x])
        // are two rows, so `id = 1` shows twice
        let ids =
            ours.clone().filter(col("id").eq(lit(1_i64))).unwrap().select(vec![col("id")]).unwrap();
        assert_eq!(ids.count().await.unwrap(), 2);

        // Deduplicate by (id): the first row of each id, in input order, whole
        let one = MemTable::try_new(
            input().schema(),
            vec![vec![
                batch(&[(Some(1), Some("first"), None), (Some(2), Some("two"), None)]),
                batch(&[
                    (Some(1), Some("later"), None),
                    (None, Some("n1"), None),
                    (None, Some("n2"), None),
                ]),
            ]],
        )
        .unwrap();
        let df = ctx.read_table(Arc::new(one)).unwrap();
        let deduped = plan(&ctx, df, Some(vec![0])).unwrap().unwrap();
        let rows = deduped.collect().await.unwrap();
        let text = arrow::util::pretty::pretty_format_batches(&rows).unwrap().to_string();
        assert_eq!(
            text,
            "\
+----+-------+------+
| id | name  | tags |
+----+-------+------+
| 1  | first |      |
| 2  | two   |      |
|    | n1    |      |
+----+-------+------+"
        );
    }

    /// 20,000 keys of ~400 bytes (8 MB), 5,000 of them twice: a 3 MiB pool cannot hold them,
    /// so the run only succeeds if they move to a spill file, and every repeat must still be
    /// found there; with 64 KiB even the index does not fit, and the rows after it are split
    /// into parts (`distinct_parts.rs`), each id still once.
    #[tokio::test]
    async fn keys_past_the_memory_pool_spill_and_stay_exact() {
        let name = "a name that takes room, ".repeat(16);
        let rows: Vec<Row> =
            (0..25_000).map(|i| (Some(i % 20_000), Some(name.as_str()), None)).collect();
        let batches: Vec<RecordBatch> = rows.chunks(1_000).map(batch).collect();
        let table = || MemTable::try_new(batches[0].schema(), vec![batches.clone()]).unwrap();
        let limited = |bytes: usize| {
            let runtime =
                RuntimeEnvBuilder::new().with_memory_limit(bytes, 1.0).build_arc().unwrap();
            let ctx = SessionContext::new_with_config_rt(SessionConfig::new(), runtime);
            let df = ctx.read_table(Arc::new(table())).unwrap();
            plan(&ctx, df, None).unwrap().unwrap()
        };
        for (pool, split) in [(3 << 20, false), (64 << 10, true)] {
            let df = limited(pool);
            let task = Arc::new(df.task_ctx());
            let exec = df.create_physical_plan().await.unwrap();
            let kept = datafusion::physical_plan::collect(Arc::clone(&exec), task).await.unwrap();
            let mut ids: Vec<i64> = kept
                .iter()
                .flat_map(|b| {
                    b.column(0).as_any().downcast_ref::<Int64Array>().unwrap().values().to_vec()
                })
                .collect();
            ids.sort_unstable();
            let repeated = ids.iter().enumerate().find(|&(i, &id)| id != i as i64);
            assert_eq!((ids.len(), repeated), (20_000, None), "each id once ({pool} bytes)");
            let spilled = exec.metrics().and_then(|m| m.spilled_rows()).unwrap_or(0);
            assert_eq!(spilled > 0, split, "{pool} bytes: {spilled} rows to parts");
        }
    }
}
