//! A hash join whose build side may outgrow memory: DataFusion 55's `HashJoinExec` holds its
//! whole build side (no spilling; apache/datafusion#24768), so users_batch's ssn join on 10M
//! users held ~0.5 GB. `GraceJoinRule` wraps each partitioned hash join whose statistics do
//! not put it well within `build_bytes` (users_batch on 1M users stays DataFusion's; on 10M
//! it is wrapped) in `GraceHashJoinExec`, which reads the build side of its partition first:
//! when it ends within `build_bytes` the join runs as before, in memory; past it, the build
//! side is split by a hash of the join keys into `JOIN_PARTS` spill files (`spill_parts.rs`).
//! The first parts that fit in half of `build_bytes` together (their hash tables take about
//! as much again) are joined while the probe side is read (a hybrid hash join: their probe
//! rows are never written); the probe rows of the other parts go to spill files too, and those
//! parts are joined one by one after. Each join is DataFusion's own `HashJoinExec` — every
//! join type, filter and NULL rule as DataFusion has them, since a key's rows on both sides
//! meet in one part.

use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Poll, ready};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode, TreeNodeRecursion};
use datafusion::common::{Result as DfResult, internal_err};
use datafusion::execution::TaskContext;
use datafusion::physical_expr::PhysicalExprRef;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::joins::{HashJoinExec, PartitionMode};
use datafusion::physical_plan::metrics::{ExecutionPlanMetricsSet, MetricsSet};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::{PartitionStream, StreamingTableExec};
use datafusion::physical_plan::{
    ChildrenPropertiesMode, DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties,
    InputDistributionRequirements, PhysicalExpr, PlanProperties, ReplaceChildrenOptions,
    SendableRecordBatchStream, StatisticsArgs, StatisticsContext,
};
use futures::{StreamExt, TryStreamExt};

use super::spill_parts::{SpillParts, SpilledParts, key_hashes};

/// Build-side bytes (Arrow memory) a join partition holds before it splits into parts, when
/// no memory cap sets a lower figure: users_batch's ssn on 1M users is ~12 MB per partition
/// (joined in memory, as before); on 10M ~110 MB (split, so the peak stays near 1M's).
pub const BUILD_BYTES_IN_MEMORY: usize = 48 << 20;
/// Parts a join partition splits into past `BUILD_BYTES_IN_MEMORY`: each then holds 1/16th of
/// the build side (10M users: ~7 MB).
const JOIN_PARTS: usize = 16;

/// Wraps every hash join that reads its build side one partition at a time (partitioned mode,
/// or a single partition on both sides) in a `GraceHashJoinExec`.
///
/// Joins whose build side the statistics say is well within `build_bytes` per partition are
/// left as DataFusion planned them: the wrapper would hold the same memory, and DataFusion's
/// join keeps its dynamic filter, which prunes a probe-side scan by the build side's keys
/// (wrapped, users_stream on 1M users cost +10% CPU: its micro-batches' joins scan ssn).
#[derive(Debug)]
pub struct GraceJoinRule {
    build_bytes: usize,
    /// Wrap joins whatever their statistics say (tests of the in-memory path).
    always: bool,
}

impl GraceJoinRule {
    pub fn new(build_bytes: usize) -> Self {
        Self { build_bytes, always: false }
    }

    /// Whether statistics put `join`'s build side at under half of `build_bytes` per partition
    /// (unknown statistics: no).
    fn small(&self, join: &HashJoinExec) -> bool {
        let Ok(stats) =
            StatisticsContext::new().compute(join.left.as_ref(), &StatisticsArgs::new())
        else {
            return false;
        };
        let schema = join.left.schema();
        let bytes = match (stats.total_byte_size.get_value(), stats.num_rows.get_value()) {
            (Some(&bytes), _) => bytes,
            (None, Some(&rows)) => rows.saturating_mul(row_width(&schema)),
            (None, None) => return false,
        };
        let partitions = join.left.output_partitioning().partition_count().max(1);
        bytes / partitions <= self.build_bytes / 2
    }
}

/// Bytes of a row of `schema` in Arrow, about: fixed widths as they are, 32 for the rest.
fn row_width(schema: &SchemaRef) -> usize {
    schema
        .fields()
        .iter()
        .map(|f| f.data_type().primitive_width().unwrap_or(32))
        .sum::<usize>()
        .max(1)
}

impl PhysicalOptimizerRule for GraceJoinRule {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            let Some(join) = node.downcast_ref::<HashJoinExec>() else {
                return Ok(Transformed::no(node));
            };
            if !splittable(join) || (!self.always && self.small(join)) {
                return Ok(Transformed::no(node));
            }
            let grace = GraceHashJoinExec::new(Arc::clone(&node), self.build_bytes);
            Ok(Transformed::yes(Arc::new(grace) as Arc<dyn ExecutionPlan>))
        })
        .data()
    }

    fn name(&self) -> &str {
        "grace_hash_join"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// Whether `join` can run part by part: each output partition joins one partition of each
/// side; keys of the same types on both sides (so equal keys hash alike); no row limit pushed
/// into it (each part would apply it); not a null-aware anti join (`NOT IN` looks at every
/// probe row's NULL); no output order claimed (a split join's parts come out one after
/// another, and the optimizer may have dropped a sort above it on that claim).
fn splittable(join: &HashJoinExec) -> bool {
    let one_each = join.left.output_partitioning().partition_count() == 1
        && join.right.output_partitioning().partition_count() == 1;
    let per_partition = match join.mode {
        PartitionMode::Partitioned => true,
        PartitionMode::CollectLeft => one_each,
        PartitionMode::Auto => false,
    };
    let (left, right) = (join.left.schema(), join.right.schema());
    let same_types = join.on.iter().all(|(l, r)| match (l.data_type(&left), r.data_type(&right)) {
        (Ok(l), Ok(r)) => l == r,
        _ => false,
    });
    let ordered = join.properties().output_ordering().is_some();
    per_partition && same_types && !join.null_aware && join.fetch().is_none() && !ordered
}

/// A `HashJoinExec` (`join`) that splits into parts when its build side outgrows
/// `build_bytes`; same children, schema, partitioning and results.
#[derive(Debug)]
pub struct GraceHashJoinExec {
    join: Arc<dyn ExecutionPlan>,
    build_bytes: usize,
    metrics: ExecutionPlanMetricsSet,
}

impl GraceHashJoinExec {
    fn new(join: Arc<dyn ExecutionPlan>, build_bytes: usize) -> Self {
        Self { join, build_bytes, metrics: ExecutionPlanMetricsSet::new() }
    }

    fn hash_join(&self) -> &HashJoinExec {
        hash_join(&self.join)
    }
}

impl DisplayAs for GraceHashJoinExec {
    fn fmt_as(&self, t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "GraceHashJoinExec: build_bytes={}, then ", self.build_bytes)?;
        self.join.fmt_as(t, f)
    }
}

impl ExecutionPlan for GraceHashJoinExec {
    fn name(&self) -> &str {
        "GraceHashJoinExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.join.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        self.join.children()
    }

    fn input_distribution_requirements(&self) -> InputDistributionRequirements {
        self.join.input_distribution_requirements()
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        // the parts come out one after another, not in the probe side's order
        vec![false, false]
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> DfResult<TreeNodeRecursion>,
    ) -> DfResult<TreeNodeRecursion> {
        self.join.apply_expressions(f)
    }

    fn replace_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
        options: ReplaceChildrenOptions,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let join = Arc::clone(&self.join).replace_children(children, options)?;
        Ok(Arc::new(GraceHashJoinExec::new(join, self.build_bytes)))
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
        let join = self.hash_join();
        let build = join.left.execute(partition, Arc::clone(&context))?;
        let probe = join.right.execute(partition, Arc::clone(&context))?;
        let grace = Grace {
            join: Arc::clone(&self.join),
            build_bytes: self.build_bytes,
            context,
            partition,
            metrics: self.metrics.clone(),
        };
        let out = futures::stream::once(grace.run(build, probe)).try_flatten();
        Ok(Box::pin(RecordBatchStreamAdapter::new(self.schema(), out)))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
}

/// One partition's run.
struct Grace {
    join: Arc<dyn ExecutionPlan>,
    build_bytes: usize,
    context: Arc<TaskContext>,
    partition: usize,
    metrics: ExecutionPlanMetricsSet,
}

impl Grace {
    fn hash_join(&self) -> &HashJoinExec {
        hash_join(&self.join)
    }

    async fn run(
        self,
        mut build: SendableRecordBatchStream,
        probe: SendableRecordBatchStream,
    ) -> DfResult<SendableRecordBatchStream> {
        let mut held = Vec::new();
        let mut bytes = 0;
        while bytes <= self.build_bytes {
            let Some(batch) = build.next().await else {
                // the whole build side fits: one join, in memory
                let held = futures::stream::iter(held.into_iter().map(Ok));
                let build = adapt(build.schema(), held);
                return self.join_part(build, probe);
            };
            let batch = batch?;
            bytes += batch.get_array_memory_size();
            held.push(batch);
        }
        let env = self.context.runtime_env();
        let (on_build, on_probe): (Vec<_>, Vec<_>) = self.hash_join().on.iter().cloned().unzip();
        let mut hashes = Vec::new();
        let mut build_parts = SpillParts::new(
            Arc::clone(&env),
            build.schema(),
            JOIN_PARTS,
            "Grace join build side",
            &self.metrics,
            self.partition,
        );
        for batch in held.drain(..) {
            key_hashes(&on_build, &batch, &mut hashes)?;
            build_parts.push(&batch, &hashes)?;
        }
        while let Some(batch) = build.next().await {
            let batch = batch?;
            key_hashes(&on_build, &batch, &mut hashes)?;
            build_parts.push(&batch, &hashes)?;
        }
        let mut build_parts = build_parts.finish()?;
        // hybrid: the first parts that fit in memory together are joined as the probe side
        // is read (its rows for them are never spilled); the others part by part after
        // (half the budget: their hash tables take about as much again)
        let resident = build_parts.fitting(self.build_bytes / 2);
        let probe_schema = probe.schema();
        let split = Arc::new(Mutex::new(SplitProbe {
            input: probe,
            keys: on_probe,
            resident: resident.clone(),
            parts: Some(SpillParts::new(
                env,
                Arc::clone(&probe_schema),
                JOIN_PARTS,
                "Grace join probe side",
                &self.metrics,
                self.partition,
            )),
            hashes: Vec::new(),
        }));
        let schema = self.join.schema();
        let resident_build = build_parts.read_many(&resident)?;
        let split_probe = adapt(probe_schema, SharedProbe(Arc::clone(&split)));
        let first = self.join_part(resident_build, split_probe)?;
        let rest = futures::stream::once(async move {
            // rows the resident join did not read (it stops early when its result is empty
            // whatever they hold) still go to their parts
            while let Some(batch) = futures::future::poll_fn(|cx| poll_split(&split, cx)).await {
                batch?;
            }
            let probe_parts = match split.lock().ok().and_then(|mut s| s.parts.take()) {
                Some(parts) => parts.finish()?,
                None => return internal_err!("the Grace join's probe parts were finished twice"),
            };
            let parts =
                Parts { grace: self, build: build_parts, probe: probe_parts, skip: resident };
            let out = futures::stream::try_unfold((parts, 0), |(parts, p)| next_part(parts, p))
                .try_flatten();
            DfResult::<_>::Ok(out)
        })
        .try_flatten();
        Ok(adapt(schema, first.chain(rest)))
    }

    /// DataFusion's hash join of one build stream (collected into its hash table) with one
    /// probe stream.
    fn join_part(
        &self,
        build: SendableRecordBatchStream,
        probe: SendableRecordBatchStream,
    ) -> DfResult<SendableRecordBatchStream> {
        let join = self
            .hash_join()
            .builder()
            .with_new_children(vec![once(build)?, once(probe)?])?
            .with_partition_mode(PartitionMode::CollectLeft)
            .reset_state()
            .build()?;
        join.execute(0, Arc::clone(&self.context))
    }
}

/// The `HashJoinExec` a `GraceHashJoinExec` wraps.
fn hash_join(join: &Arc<dyn ExecutionPlan>) -> &HashJoinExec {
    join.downcast_ref::<HashJoinExec>().expect("GraceHashJoinExec wraps a HashJoinExec")
}

/// The probe side of a split join: rows of the resident parts pass on to the join with their
/// build rows; the others go to their part's spill file as they are read.
struct SplitProbe {
    input: SendableRecordBatchStream,
    keys: Vec<PhysicalExprRef>,
    resident: Vec<bool>,
    parts: Option<SpillParts>,
    hashes: Vec<u64>,
}

/// The next batch of resident rows (never empty), spilling the others on the way.
fn poll_split(
    split: &Mutex<SplitProbe>,
    cx: &mut std::task::Context<'_>,
) -> Poll<Option<DfResult<RecordBatch>>> {
    let Ok(mut s) = split.lock() else {
        return Poll::Ready(Some(internal_err!("a Grace join's probe split panicked")));
    };
    let s = &mut *s;
    loop {
        let batch = match ready!(s.input.poll_next_unpin(cx)) {
            None => return Poll::Ready(None),
            Some(Err(e)) => return Poll::Ready(Some(Err(e))),
            Some(Ok(batch)) => batch,
        };
        let Some(parts) = s.parts.as_mut() else {
            return Poll::Ready(Some(internal_err!("a Grace join's probe read after its end")));
        };
        let kept = key_hashes(&s.keys, &batch, &mut s.hashes)
            .and_then(|()| parts.push_but(&batch, &s.hashes, &s.resident));
        match kept {
            Ok(kept) if kept.num_rows() == 0 => continue,
            other => return Poll::Ready(Some(other)),
        }
    }
}

/// `poll_split` as a stream, for the resident join's probe side.
struct SharedProbe(Arc<Mutex<SplitProbe>>);

impl futures::Stream for SharedProbe {
    type Item = DfResult<RecordBatch>;

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<Option<Self::Item>> {
        poll_split(&self.0, cx)
    }
}

/// The spilled sides of one partition, joined part by part (but the resident ones, `skip`).
struct Parts {
    grace: Grace,
    build: SpilledParts,
    probe: SpilledParts,
    skip: Vec<bool>,
}

/// Part `p` joined, and what joins the next.
async fn next_part(
    mut parts: Parts,
    p: usize,
) -> DfResult<Option<(SendableRecordBatchStream, (Parts, usize))>> {
    let mut p = p;
    while parts.skip.get(p).copied().unwrap_or(false) {
        p += 1;
    }
    if p >= parts.build.parts() {
        return Ok(None);
    }
    let build = parts.build.read(p)?;
    let probe = parts.probe.read(p)?;
    let joined = parts.grace.join_part(build, probe)?;
    Ok(Some((joined, (parts, p + 1))))
}

fn adapt(
    schema: SchemaRef,
    stream: impl futures::Stream<Item = DfResult<RecordBatch>> + Send + 'static,
) -> SendableRecordBatchStream {
    Box::pin(RecordBatchStreamAdapter::new(schema, stream))
}

/// A stream as a one-partition plan, to hand to a `HashJoinExec`.
fn once(stream: SendableRecordBatchStream) -> DfResult<Arc<dyn ExecutionPlan>> {
    let schema = stream.schema();
    let part =
        Arc::new(OnceStream { schema: Arc::clone(&schema), stream: Mutex::new(Some(stream)) });
    Ok(Arc::new(StreamingTableExec::try_new(schema, vec![part], None, vec![], false, None)?))
}

struct OnceStream {
    schema: SchemaRef,
    stream: Mutex<Option<SendableRecordBatchStream>>,
}

impl fmt::Debug for OnceStream {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("OnceStream")
    }
}

impl PartitionStream for OnceStream {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let taken = self.stream.lock().ok().and_then(|mut s| s.take());
        taken.unwrap_or_else(|| {
            let err = internal_err!("a Grace join part was read twice");
            adapt(Arc::clone(&self.schema), futures::stream::once(async move { err }))
        })
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use arrow::util::pretty::pretty_format_batches;
    use datafusion::datasource::MemTable;
    use datafusion::execution::SessionStateBuilder;
    use datafusion::physical_plan::{collect, displayable};
    use datafusion::prelude::{SessionConfig, SessionContext};

    use super::*;

    fn table(n: i64, modulo: i64, null_every: i64, text: &str, parts: usize) -> Arc<MemTable> {
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, true),
            Field::new("v", DataType::Int64, false),
            Field::new("s", DataType::Utf8, false),
        ]));
        let batches: Vec<RecordBatch> = (0..n)
            .step_by(500)
            .map(|from| {
                let ids = from..(from + 500).min(n);
                let k: Vec<Option<i64>> =
                    ids.clone().map(|i| (i % null_every != 0).then_some(i % modulo)).collect();
                let s: Vec<String> = ids.clone().map(|i| format!("{text} {i}")).collect();
                RecordBatch::try_new(
                    Arc::clone(&schema),
                    vec![
                        Arc::new(Int64Array::from(k)),
                        Arc::new(Int64Array::from_iter_values(ids)),
                        Arc::new(StringArray::from(s)),
                    ],
                )
                .unwrap()
            })
            .collect();
        let per = batches.len().div_ceil(parts);
        let parts = batches.chunks(per).map(<[_]>::to_vec).collect();
        Arc::new(MemTable::try_new(schema, parts).unwrap())
    }

    /// A session with partitioned hash joins (no single-partition shortcut for small
    /// tables), with the rule at `build_bytes` (wrapping every join) or without it.
    fn session(partitions: usize, rule: Option<usize>) -> SessionContext {
        session_with(
            partitions,
            rule.map(|bytes| GraceJoinRule { build_bytes: bytes, always: true }),
        )
    }

    fn session_with(partitions: usize, rule: Option<GraceJoinRule>) -> SessionContext {
        let config = SessionConfig::new()
            .with_target_partitions(partitions)
            .set_usize("datafusion.optimizer.hash_join_single_partition_threshold", 0)
            .set_usize("datafusion.optimizer.hash_join_single_partition_threshold_rows", 0);
        let mut state =
            SessionStateBuilder::new().with_config(config).with_default_features().build();
        if let Some(rule) = rule {
            // after DataFusion's own rules, as `plan::session_context` adds it
            state = SessionStateBuilder::new_from_existing(state)
                .with_physical_optimizer_rule(Arc::new(rule))
                .build();
        }
        let ctx = SessionContext::new_with_state(state);
        ctx.register_table("l", table(3_000, 500, 13, "名", partitions)).unwrap();
        ctx.register_table("r", table(2_000, 700, 11, "ü", partitions)).unwrap();
        ctx
    }

    /// Sorted lines of the result, and the rows the Grace joins spilled.
    async fn run(ctx: &SessionContext, sql: &str) -> (Vec<String>, usize, String) {
        let plan = ctx.sql(sql).await.unwrap().create_physical_plan().await.unwrap();
        let batches = collect(Arc::clone(&plan), ctx.task_ctx()).await.unwrap();
        let text = pretty_format_batches(&batches).unwrap().to_string();
        let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
        lines.sort();
        let mut spilled = 0;
        let mut stack = vec![Arc::clone(&plan)];
        while let Some(node) = stack.pop() {
            if let Some(g) = node.downcast_ref::<GraceHashJoinExec>() {
                spilled += g.metrics().and_then(|m| m.spilled_rows()).unwrap_or(0);
            }
            stack.extend(node.children().into_iter().cloned());
        }
        (lines, spilled, displayable(plan.as_ref()).indent(false).to_string())
    }

    /// Every join type, a join filter and NULL-equal keys give the same rows split into parts
    /// (build side past 0 bytes: all parts spilled; past 24 KiB: the first parts joined as the
    /// probe side is read, fewer rows spilled), kept in memory (past 1 GB), and without the
    /// rule.
    #[tokio::test]
    async fn split_joins_return_what_datafusion_returns() {
        let queries = [
            "SELECT l.k, l.v, r.v AS rv, r.s FROM l JOIN r ON l.k = r.k",
            "SELECT l.k, l.v, l.s, r.s AS rs FROM l LEFT JOIN r ON l.k = r.k",
            "SELECT l.v, r.k, r.v AS rv FROM l RIGHT JOIN r ON l.k = r.k",
            "SELECT l.v, r.v AS rv FROM l FULL JOIN r ON l.k = r.k",
            "SELECT l.v, r.v AS rv FROM l LEFT JOIN r ON l.k = r.k AND l.v < r.v",
            "SELECT l.v, l.s FROM l WHERE l.k IN (SELECT k FROM r)",
            "SELECT l.v FROM l WHERE NOT EXISTS (SELECT 1 FROM r WHERE r.k = l.k)",
            "SELECT l.v, r.v AS rv FROM l JOIN r ON l.k IS NOT DISTINCT FROM r.k",
        ];
        let mut hybrid = false;
        for partitions in [2, 1] {
            let plain = session(partitions, None);
            // every part spilled; some parts joined as the probe side is read, others spilled
            let splits = [session(partitions, Some(0)), session(partitions, Some(24 << 10))];
            let held = session(partitions, Some(1 << 30));
            for sql in queries {
                let (want, _, _) = run(&plain, sql).await;
                assert!(want.len() > 10, "{sql}: {} lines", want.len());
                let mut spilled_rows = Vec::new();
                for split in &splits {
                    let (got, spilled, plan) = run(split, sql).await;
                    assert!(plan.contains("GraceHashJoinExec"), "{sql}\n{plan}");
                    spilled_rows.push(spilled);
                    // (not assert_eq: thousands of lines on a failure)
                    let n = (got.len(), want.len());
                    assert!(got == want, "{sql} ({partitions} partitions), split: {n:?} lines");
                }
                assert!(spilled_rows[0] > 0, "{sql}: split into parts");
                assert!(spilled_rows[1] < spilled_rows[0], "{sql}: {spilled_rows:?}");
                hybrid |= spilled_rows[1] > 0;
                let (got, spilled, _) = run(&held, sql).await;
                assert_eq!(spilled, 0, "{sql}: in memory");
                let n = (got.len(), want.len());
                assert!(got == want, "{sql} ({partitions} partitions), in memory: {n:?} lines");
            }
        }
        assert!(hybrid, "some join kept parts in memory and spilled others");
    }

    /// A join that promises its probe side's order (a sorted probe side, one partition) is
    /// left to DataFusion even when every join is to be wrapped: its parts would break it.
    #[tokio::test]
    async fn joins_that_promise_an_order_stay_datafusions() {
        let ctx = session_with(1, Some(GraceJoinRule { build_bytes: 0, always: true }));
        // the larger side is the probe side: sorted by `v`
        let sorted = Arc::try_unwrap(table(3_000, 500, 13, "名", 1)).unwrap();
        let by_v = vec![vec![datafusion::prelude::col("v").sort(true, false)]];
        ctx.deregister_table("l").unwrap();
        ctx.register_table("l", Arc::new(sorted.with_sort_order(by_v))).unwrap();
        let sql = "SELECT l.v, r.v AS rv FROM r JOIN l ON r.k = l.k ORDER BY l.v";
        let (lines, _, plan) = run(&ctx, sql).await;
        assert!(plan.contains("HashJoinExec") && !plan.contains("GraceHashJoinExec"), "{plan}");
        assert!(!plan.contains("SortExec"), "the join's order serves the ORDER BY: {plan}");
        assert!(lines.len() > 10);
    }

    /// A join whose statistics put its build side well within the budget is left to
    /// DataFusion (its dynamic filter intact); one past it, or of unknown size, is wrapped.
    #[tokio::test]
    async fn joins_small_by_their_statistics_stay_datafusions() {
        let sql = "SELECT l.v, r.v AS rv FROM l JOIN r ON l.k = r.k";
        let (_, _, plan) = run(&session_with(2, Some(GraceJoinRule::new(1 << 30))), sql).await;
        assert!(!plan.contains("GraceHashJoinExec"), "{plan}");
        assert!(plan.contains("HashJoinExec"), "{plan}");
        let (_, spilled, plan) =
            run(&session_with(2, Some(GraceJoinRule::new(1 << 10))), sql).await;
        assert!(plan.contains("GraceHashJoinExec"), "{plan}");
        assert!(spilled > 0, "{plan}");
    }
}
