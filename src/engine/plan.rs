//! Pipeline → DataFusion DataFrames, one per node, planned lazily and memoized.
//!
//! Every node is a real DataFusion plan: nothing here touches rows. Errors are pinned on the
//! node that caused them. Planning never writes: previews and validation use it as is.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::datatypes::{DataType, Schema, SchemaRef};
use datafusion::common::Column;
use datafusion::datasource::MemTable;
use datafusion::execution::SessionStateBuilder;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::{DataFrame, Expr, SessionContext, cast, col};
use deltalake::delta_datafusion::DeltaSessionContext;

use crate::model::node::{Aggregate, FileFormat, NodeKind, ParseMode, Select, Sql};
use crate::model::{NodeId, Pipeline, Project, env};

use super::error::NodeContext;
use super::meter::{EdgeKey, EdgeMeter};
use super::open_tables::OpenTables;
use super::sources::json_lines::BadRecord;
use super::{EngineError, Result, delta, schema, sources, transforms};

/// Time windows in an Aggregate's group-by, planned by the streaming operator.
mod window {
    pub use super::super::stream::operators::Clock;
    pub use super::super::stream::operators::aggregate::{AggPlan, parse_window};
}

/// The session every pipeline runs in: SQL identifiers keep their case (`keySkills`), as
/// column names do in Spark's data sources.
///
/// It is delta-rs's session (its planner executes Delta writes and merges), so plans built in
/// it can be streamed straight into a table.
pub fn session_context() -> SessionContext {
    // hash joins split into spill files past this much build side per partition
    let build_bytes = memory_limit().map_or(transforms::grace_join::BUILD_BYTES_IN_MEMORY, |cap| {
        (cap / 8).min(transforms::grace_join::BUILD_BYTES_IN_MEMORY)
    });
    let overrides = HashMap::from([
        ("datafusion.sql_parser.enable_ident_normalization".to_owned(), "false".to_owned()),
        // strings as plain UTF-8, as Delta stores them: read as views, every string was cast
        // to a view at the scan and back at the write (users_batch on 1M users −8% CPU, −40 MB)
        ("datafusion.execution.parquet.schema_force_view_types".to_owned(), "false".to_owned()),
        (
            "datafusion.optimizer.hash_join_single_partition_threshold".to_owned(),
            (build_bytes / COLLECTED_BUILD_EXPANSION).to_string(),
        ),
        // no round-robin repartition: it only spreads batches over the cores, and its output
        // coalescer copies every batch under 4,096 rows (our JSON chunks give ~4,000) and the
        // ones after them; our sources read ahead on their own threads. users_batch on 1M
        // users −8% CPU (3.19 -> 2.92 CPU-s) and −10% wall, users_stream −4% CPU (session 16)
        ("datafusion.optimizer.enable_round_robin_repartition".to_owned(), "false".to_owned()),
    ]);
    let ctx = capped_session(&overrides).unwrap_or_else(|| {
        DeltaSessionContext::new_with_session_overrides(&overrides).unwrap_or_default().into_inner()
    });
    let state = SessionStateBuilder::new_from_existing(ctx.state())
        .with_physical_optimizer_rule(Arc::new(transforms::grace_join::GraceJoinRule::new(
            build_bytes,
        )))
        .build();
    SessionContext::new_with_state(state)
}

/// A hash join's build side is hashed once for all probe partitions (DataFusion's
/// `CollectLeft`, Spark's broadcast join) when its estimated bytes (for a Delta or Parquet
/// scan, its files' compressed bytes) are under the join's in-memory budget divided by this:
/// Arrow memory is ~2-3x Snappy'd Parquet. DataFusion's default, 1 MB, hash-partitions both
/// sides of users_batch's ssn join (ssn's 13 MB file); collected, the 1M users are not
/// repartitioned: silver −10% CPU (1.79 -> 1.60 CPU-s, alternating runs, session 16). Bigger
/// build sides stay partitioned, where `grace_join.rs` can split them.
const COLLECTED_BUILD_EXPANSION: usize = 3;

/// delta-rs's session with DataFusion's memory pool capped at `MEDALLION_MEMORY_LIMIT`, when
/// it is set.
fn capped_session(overrides: &HashMap<String, String>) -> Option<SessionContext> {
    let bytes = memory_limit()?;
    // aggregates and sorts spill to disk past the cap, sharing it fairly
    let pool = Arc::new(datafusion::execution::memory_pool::FairSpillPool::new(bytes));
    let runtime = datafusion::execution::runtime_env::RuntimeEnvBuilder::new()
        .with_memory_pool(pool)
        .build_arc()
        .ok()?;
    let ctx = DeltaSessionContext::with_runtime_env(runtime).into_inner();
    let state = ctx.state_ref();
    let mut state = state.write();
    for (k, v) in overrides {
        let _ = state.config_mut().options_mut().set(k, v);
    }
    drop(state);
    Some(ctx)
}

/// `MEDALLION_MEMORY_LIMIT` (`512m`, `2g`, or bytes): the memory DataFusion's operators may
/// hold per plan (as Spark's executor memory); unset, no cap. Aggregates and sorts spill past
/// it, Distinct splits its input into parts (`transforms/distinct_parts.rs`) and hash joins
/// split past an eighth of it (`transforms/grace_join.rs`); what cannot (one part's hash
/// table) fails the run with "Resources exhausted".
pub fn memory_limit() -> Option<usize> {
    static LIMIT: std::sync::OnceLock<Option<usize>> = std::sync::OnceLock::new();
    *LIMIT.get_or_init(|| parse_bytes(&std::env::var("MEDALLION_MEMORY_LIMIT").ok()?))
}

/// Distinct / Deduplicate as the streaming operator (`transforms/distinct.rs`), or `None`
/// when a key column cannot be row-encoded (DataFusion's aggregate then).
fn streamed_distinct(
    ctx: &SessionContext,
    df: DataFrame,
    keys: Option<Vec<usize>>,
) -> Result<Option<DataFrame>> {
    transforms::distinct::plan(ctx, df, keys)
}

/// `512m`, `2g`, `1.5g`, `300k` or plain bytes.
fn parse_bytes(text: &str) -> Option<usize> {
    let t = text.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (num, unit) = match t.char_indices().last()? {
        (i, 'k') => (&t[..i], 1usize << 10),
        (i, 'm') => (&t[..i], 1 << 20),
        (i, 'g') => (&t[..i], 1 << 30),
        _ => (t, 1),
    };
    let n: f64 = num.trim().parse().ok()?;
    (n > 0.0).then_some((n * unit as f64) as usize)
}

/// Files a preview of a JSON or CSV source decodes (the first ones by name).
const PREVIEW_FILES: usize = 4;

/// Schemas of tables that a project's pipelines will write but that do not exist yet, so a
/// project can be validated and previewed before its first run.
pub type PendingTables = HashMap<PathBuf, SchemaRef>;

/// Plans the nodes of one pipeline.
pub struct Planner<'a> {
    pub project: &'a Project,
    pub pipeline: &'a Pipeline,
    pub root: PathBuf,
    pub ctx: SessionContext,
    frames: HashMap<NodeId, DataFrame>,
    pending: PendingTables,
    /// Tables written by earlier pipelines that cannot be planned: (path, pipeline).
    broken: HashMap<PathBuf, String>,
    /// Malformed records found by Parse JSON nodes while planning.
    bad_records: Vec<(NodeId, ParseMode, BadRecord)>,
    /// Where file sources put theirs as the plan executes.
    streamed_bad_records: Vec<(NodeId, ParseMode, sources::file_stream::BadRecords)>,
    /// What each Expectations node found, and the rows its `drop` rules removed.
    pub quality: Vec<(NodeId, transforms::expectations::ExpectationReport)>,
    pub expectation_drops: Vec<(NodeId, BadRecord)>,
    /// Previews: sources that need a live service (Kafka) read a sample (when false they plan
    /// with their fixed schema and no rows, so validation works offline), and JSON/CSV file
    /// sources decode only their first files.
    live_samples: bool,
    /// Counts the rows and time along each edge (streams' micro-batches).
    meter: Option<Arc<EdgeMeter>>,
    /// Only the output schemas are wanted (validation): nodes that would compute their
    /// result eagerly (time windows) plan over no rows.
    schema_only: bool,
    /// A stream's tables kept open across its micro-batches (static Delta sources read their
    /// newest version through it).
    open_tables: Option<OpenTables>,
}

impl<'a> Planner<'a> {
    /// The malformed records found so far: call it after the plans have executed (file
    /// sources find theirs as they are read).
    pub fn take_bad_records(&mut self) -> Vec<(NodeId, ParseMode, BadRecord)> {
        let mut all = std::mem::take(&mut self.bad_records);
        for (node, mode, bad) in &self.streamed_bad_records {
            all.extend(bad.take().into_iter().map(|b| (node.clone(), *mode, b)));
        }
        all
    }

    pub fn new(project: &'a Project, pipeline: &'a Pipeline, root: &Path) -> Self {
        Self {
            project,
            pipeline,
            root: root.to_owned(),
            ctx: session_context(),
            frames: HashMap::new(),
            pending: PendingTables::new(),
            broken: HashMap::new(),
            bad_records: Vec::new(),
            streamed_bad_records: Vec::new(),
            quality: Vec::new(),
            expectation_drops: Vec::new(),
            live_samples: false,
            meter: None,
            schema_only: false,
            open_tables: None,
        }
    }

    /// Reads static Delta sources through a stream's open tables.
    pub fn with_open_tables(mut self, tables: OpenTables) -> Self {
        self.open_tables = Some(tables);
        self
    }

    /// Plans for the output schemas only (validation), without computing eager nodes.
    pub fn with_schema_only(mut self) -> Self {
        self.schema_only = true;
        self
    }

    pub fn with_pending_tables(mut self, pending: PendingTables) -> Self {
        self.pending = pending;
        self
    }

    /// Lets Kafka sources read a sample of their topics (previews).
    pub fn with_live_samples(mut self) -> Self {
        self.live_samples = true;
        self
    }

    /// Meters every edge: each node reads its inputs through `meter`.
    pub fn with_meter(mut self, meter: Arc<EdgeMeter>) -> Self {
        self.meter = Some(meter);
        self
    }

    /// Uses `df` as the output of `node` (a stream's micro-batch data for a source).
    pub fn set_frame(&mut self, node: NodeId, df: DataFrame) {
        self.frames.insert(node, df);
    }

    /// Tables that earlier pipelines would write but cannot plan, with the pipeline's name.
    pub fn with_broken_tables(mut self, broken: HashMap<PathBuf, String>) -> Self {
        self.broken = broken;
        self
    }

    /// Resolves a table or folder path from the project against the lakehouse root,
    /// expanding `${ENV}` references.
    pub fn resolve(&self, path: &str) -> Result<PathBuf> {
        Ok(delta::resolve(&self.root, &env::expand(path)?))
    }

    /// The DataFrame a node outputs. For a sink: what it would write (its input, in the types
    /// the Delta table stores).
    pub async fn node_frame(&mut self, id: &NodeId) -> Result<DataFrame> {
        let order = self
            .pipeline
            .topological_order()
            .ok_or_else(|| EngineError::Config("the pipeline graph has a cycle".into()))?;
        for n in order.iter().filter(|n| *n == id || self.pipeline.reaches(n, id)) {
            if !self.frames.contains_key(n) {
                let df = self.plan_one(n).await.at_node(&self.pipeline.name, n)?;
                self.frames.insert(n.clone(), df);
            }
        }
        self.frames.get(id).cloned().ok_or_else(|| EngineError::Config(format!("no node `{id}`")))
    }

    /// The frame arriving at input `port` of `id`, planning upstream nodes as needed (a
    /// stream's stateful nodes take their input this way).
    pub async fn input_frame(&mut self, id: &NodeId, port: &str) -> Result<DataFrame> {
        let from = self
            .pipeline
            .input_of(id, port)
            .cloned()
            .ok_or_else(|| EngineError::Config(format!("input `{port}` is not connected")))?;
        self.node_frame(&from).await?;
        self.input(id, port)
    }

    /// The frame on input `port` of `id`: the upstream node's output, metered along the edge
    /// when a meter is set.
    fn input(&self, id: &NodeId, port: &str) -> Result<DataFrame> {
        let from = self
            .pipeline
            .input_of(id, port)
            .ok_or_else(|| EngineError::Config(format!("input `{port}` is not connected")))?;
        let df = self.frames.get(from).cloned().ok_or_else(|| {
            EngineError::Config(format!("input `{port}` (from `{from}`) could not be planned"))
        })?;
        match &self.meter {
            Some(meter) => {
                let key = EdgeKey { from: from.clone(), to: id.clone(), port: port.to_owned() };
                meter.wrap(&self.ctx, key, df)
            }
            None => Ok(df),
        }
    }

    async fn plan_one(&mut self, id: &NodeId) -> Result<DataFrame> {
        let node =
            self.pipeline.node(id).ok_or_else(|| EngineError::Config(format!("no node `{id}`")))?;
        let in_ = || self.input(id, crate::model::node::DEFAULT_PORT);
        match &node.kind {
            NodeKind::FileSource(src) => {
                let dir = self.resolve(&src.path)?;
                let files = sources::files::list_files(&dir, src)?;
                if files.is_empty() {
                    return Err(EngineError::NoFiles {
                        path: dir,
                        glob: src.glob.clone().unwrap_or_else(|| src.format.default_glob().into()),
                    });
                }
                if src.format == FileFormat::Parquet {
                    return sources::files::read_files(&self.ctx, &files, src).await;
                }
                // JSON and CSV: Spark's parse modes, the same decoder a stream uses
                let schema = match sources::files::declared_schema(src)? {
                    Some(s) => s,
                    None => sources::files::infer_schema(&self.ctx, &dir, src).await?,
                };
                let schema = sources::files::strip_rescued(&schema);
                if self.schema_only {
                    let out = sources::json_lines::output_schema(&schema, src.parse_mode);
                    let empty = MemTable::try_new(out, vec![vec![]])?;
                    return Ok(self.ctx.read_table(Arc::new(empty))?);
                }
                // a preview decodes a sample of the files, as "infer from sample" does
                let files = if self.live_samples {
                    files.into_iter().take(PREVIEW_FILES).collect()
                } else {
                    files
                };
                if src.parse_mode == ParseMode::FailFast && !self.live_samples {
                    // decoded before any sink writes: a malformed record stops the run at this
                    // node with every table at its previous version
                    let decoded = sources::files::decode_files(files, src, schema).await?;
                    let table = MemTable::try_new(decoded.schema, vec![decoded.batches])?;
                    return Ok(self.ctx.read_table(Arc::new(table))?);
                }
                // decoded as the plan reads it: memory holds segments, not the input
                let (table, bad) =
                    sources::file_stream::streaming_table(id.as_str(), files, src, schema)?;
                self.streamed_bad_records.push((id.clone(), src.parse_mode, bad));
                Ok(self.ctx.read_table(Arc::new(table))?)
            }
            NodeKind::KafkaSource(k) if !self.live_samples => {
                let empty =
                    MemTable::try_new(sources::kafka::schema(k.include_headers), vec![vec![]])?;
                Ok(self.ctx.read_table(Arc::new(empty))?)
            }
            NodeKind::KafkaSource(k) => {
                // a sample: the first messages of each partition (streams read by offsets)
                let cfg = k.clone();
                let batches = tokio::task::spawn_blocking(move || -> Result<_> {
                    let client = sources::kafka::KafkaClient::new(&cfg, "medallion-preview")?;
                    let marks = client.all_watermarks()?;
                    let ranges = (marks.into_iter())
                        .map(|(tp, (low, high))| (tp, [low, high.min(low + 100)]))
                        .collect();
                    client.read(&ranges)
                })
                .await
                .map_err(|e| EngineError::Config(format!("Kafka reader failed: {e}")))??;
                let table =
                    MemTable::try_new(sources::kafka::schema(k.include_headers), vec![batches])?;
                Ok(self.ctx.read_table(Arc::new(table))?)
            }
            NodeKind::ParseJson(cfg) => {
                let df = in_()?;
                let input_schema = arrow_schema(&df);
                let out_schema = transforms::parse_json::output_schema(&input_schema, cfg)?;
                if cfg.parse_mode != ParseMode::FailFast {
                    // decoded as the plan reads its input, which is read as it arrives
                    let input = in_one_partition(df).await?;
                    let (table, bad) =
                        transforms::parse_json::streaming_table(id.as_str(), input, cfg)?;
                    self.streamed_bad_records.push((id.clone(), cfg.parse_mode, bad));
                    return Ok(self.ctx.read_table(Arc::new(table))?);
                }
                // fail_fast: a bad record stops the plan here, before any sink writes
                let batches = df.collect().await?;
                let mut parts = Vec::new();
                for (parsed, bad) in transforms::parse_json::parse_all(batches, cfg).await? {
                    parts.push(parsed);
                    self.bad_records
                        .extend(bad.into_iter().map(|b| (id.clone(), cfg.parse_mode, b)));
                }
                let table = MemTable::try_new(out_schema, parts)?;
                Ok(self.ctx.read_table(Arc::new(table))?)
            }
            NodeKind::GeneratorSource(g) => {
                // a sample of what the stream will deliver
                // a fixed clock, so the sample is the same at every planning (2026-01-01)
                let clock = sources::generator::Clock {
                    anchor: [0, 1_767_225_600_000],
                    rows_per_second: g.rows_per_second,
                };
                let batches = sources::generator::generate(g.seed, 0, 100, 100, clock)?;
                let table = MemTable::try_new(sources::generator::schema(), vec![batches])?;
                Ok(self.ctx.read_table(Arc::new(table))?)
            }
            NodeKind::DeltaSource(src) => {
                let path = self.resolve(&src.table)?;
                if !path.join("_delta_log").is_dir()
                    && let Some(schema) = self.pending.get(&path)
                {
                    let empty = MemTable::try_new(schema.clone(), vec![vec![]])?;
                    return Ok(self.ctx.read_table(Arc::new(empty))?);
                }
                if !path.join("_delta_log").is_dir()
                    && let Some(writer) = self.broken.get(&path)
                {
                    return Err(EngineError::Upstream {
                        table: src.table.clone(),
                        pipeline: writer.clone(),
                    });
                }
                match &self.open_tables {
                    Some(open) if src.version.is_none() && src.timestamp.is_none() => {
                        let table = open
                            .latest(&path)
                            .await?
                            .ok_or_else(|| EngineError::TableNotFound { path: path.clone() })?;
                        Ok(self.ctx.read_table(delta::scan_in(&table, &self.ctx).await?)?)
                    }
                    _ => sources::delta::read(&self.ctx, &path, src).await,
                }
            }
            NodeKind::Select(Select { columns }) => {
                self.sql_over(in_()?, |v| format!("SELECT {} FROM {v}", columns.join(", "))).await
            }
            NodeKind::Flatten(cfg) => transforms::flatten::plan(in_()?, cfg),
            NodeKind::WithColumns(cfg) => {
                let mut df = in_()?;
                for c in &cfg.columns {
                    let expr = df.parse_sql_expr(&c.expr).map_err(|e| {
                        EngineError::Config(format!("column `{}` = `{}`: {e}", c.name, c.expr))
                    })?;
                    df = df.with_column(&c.name, expr)?;
                }
                Ok(df)
            }
            NodeKind::Filter(cfg) => {
                let df = in_()?;
                let cond = df.parse_sql_expr(&cfg.condition)?;
                Ok(df.filter(cond)?)
            }
            NodeKind::Sql(Sql { inputs, query }) => {
                let frames: Vec<(String, DataFrame)> = inputs
                    .iter()
                    .map(|port| Ok((port.clone(), self.input(id, port)?)))
                    .collect::<Result<_>>()?;
                for (name, df) in &frames {
                    self.ctx.register_table(quoted(name), df.clone().into_view())?;
                }
                let result = self.ctx.sql(query).await;
                for (name, _) in &frames {
                    self.ctx.deregister_table(quoted(name))?;
                }
                Ok(result?)
            }
            NodeKind::Join(cfg) => {
                transforms::join::plan(self.input(id, "left")?, self.input(id, "right")?, cfg)
            }
            // streamed: each new row passes at once (`transforms::distinct`)
            NodeKind::Distinct(_) => {
                let df = in_()?;
                match streamed_distinct(&self.ctx, df.clone(), None)? {
                    Some(distinct) => Ok(distinct),
                    None => Ok(df.distinct()?),
                }
            }
            // within_watermark only matters in streams; a batch query drops duplicates
            NodeKind::Deduplicate(cfg) => {
                let df = in_()?;
                let names: Vec<String> =
                    df.schema().fields().iter().map(|f| f.name().clone()).collect();
                for k in &cfg.keys {
                    if !names.contains(k) {
                        return Err(EngineError::Config(format!(
                            "no key column `{k}`; columns are: {}",
                            names.join(", ")
                        )));
                    }
                }
                // the first row of each key, streamed (`transforms::distinct`)
                let at: Vec<usize> =
                    cfg.keys.iter().filter_map(|k| names.iter().position(|n| n == k)).collect();
                if !at.is_empty()
                    && let Some(deduped) = streamed_distinct(&self.ctx, df.clone(), Some(at))?
                {
                    return Ok(deduped);
                }
                let keys: Vec<Expr> = cfg.keys.iter().map(|k| column(k)).collect();
                let all: Vec<Expr> = names.iter().map(|n| column(n)).collect();
                Ok(df.distinct_on(keys, all, None)?)
            }
            NodeKind::Aggregate(agg)
                if agg.group_by.iter().any(|g| matches!(window::parse_window(g), Ok(Some(_)))) =>
            {
                // time windows: the stream operator over all rows at once, every group emitted
                // (a batch query, or a preview of what one batch over the sample would emit)
                let df = in_()?;
                let schema = arrow_schema(&df);
                let plan = window::AggPlan::parse(agg, None).map_err(EngineError::Config)?;
                let rows = if self.schema_only { Vec::new() } else { df.collect().await? };
                let out = plan
                    .step(
                        &rows,
                        &schema,
                        Vec::new(),
                        None,
                        window::Clock::none(),
                        crate::model::node::OutputMode::Complete,
                    )
                    .await?;
                Ok(self.ctx.read_table(Arc::new(MemTable::try_new(out.schema, vec![out.rows])?))?)
            }
            NodeKind::Aggregate(Aggregate { group_by, aggregates }) => {
                let df = in_()?;
                self.sql_over(df, |v| {
                    let select: Vec<&str> =
                        group_by.iter().chain(aggregates.iter()).map(String::as_str).collect();
                    if group_by.is_empty() {
                        format!("SELECT {} FROM {v}", select.join(", "))
                    } else {
                        format!(
                            "SELECT {} FROM {v} GROUP BY {}",
                            select.join(", "),
                            group_by.join(", ")
                        )
                    }
                })
                .await
            }
            // a batch query ignores watermarks, as Spark's does; streams apply them per batch
            NodeKind::Watermark(_) => in_(),
            NodeKind::Expectations(cfg) => {
                let df = in_()?;
                if self.schema_only {
                    transforms::expectations::compile(&self.ctx, &df, cfg)?;
                    return Ok(df);
                }
                let checked = transforms::expectations::check(&self.ctx, df, cfg).await?;
                self.quality.push((id.clone(), checked.report));
                self.expectation_drops.extend(checked.dropped.into_iter().map(|d| (id.clone(), d)));
                let parts = self.partitioned(checked.batches);
                let table = MemTable::try_new(checked.schema, parts)?;
                Ok(self.ctx.read_table(Arc::new(table))?)
            }
            NodeKind::DeltaSink(_) => Ok(conform_for_delta(in_()?)?),
            NodeKind::KafkaSink(_) => in_(),
        }
    }

    /// Batches spread over the session's target partitions (round robin), so what follows a
    /// node that computed its rows runs in parallel as it does after a file scan.
    fn partitioned(
        &self,
        batches: Vec<arrow::array::RecordBatch>,
    ) -> Vec<Vec<arrow::array::RecordBatch>> {
        let n = self.ctx.state().config().target_partitions().clamp(1, batches.len().max(1));
        let mut parts = vec![Vec::new(); n];
        for (i, b) in batches.into_iter().enumerate() {
            parts[i % n].push(b);
        }
        parts
    }

    /// Runs generated SQL over `df`, registered under a private view name.
    async fn sql_over(&self, df: DataFrame, sql: impl FnOnce(&str) -> String) -> Result<DataFrame> {
        // Registered just for this statement; errors then read `input.col`.
        let view = "input";
        self.ctx.register_table(quoted(view), df.into_view())?;
        let result = self.ctx.sql(&sql(&quoted(view))).await;
        self.ctx.deregister_table(quoted(view))?;
        Ok(result?)
    }
}

fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A column by exact name (no identifier folding, no `a.b` splitting).
pub fn column(name: &str) -> Expr {
    col(Column::new_unqualified(name))
}

/// Casts columns to the types Delta stores: TIMESTAMP as microseconds in UTC (Spark's
/// `TIMESTAMP`), strings as plain UTF-8.
pub fn conform_for_delta(df: DataFrame) -> Result<DataFrame> {
    let fields = df.schema().fields().clone();
    if !fields.iter().any(|f| needs_conform(f.data_type())) {
        return Ok(df);
    }
    let exprs: Vec<Expr> = fields
        .iter()
        .map(|f| {
            let c = column(f.name());
            match f.data_type() {
                DataType::Timestamp(_, _) => cast(c, schema::delta_timestamp()).alias(f.name()),
                DataType::Utf8View | DataType::LargeUtf8 => cast(c, DataType::Utf8).alias(f.name()),
                _ => c,
            }
        })
        .collect();
    Ok(df.select(exprs)?)
}

fn needs_conform(t: &DataType) -> bool {
    match t {
        DataType::Timestamp(_, _) => t != &schema::delta_timestamp(),
        DataType::Utf8View | DataType::LargeUtf8 => true,
        _ => false,
    }
}

/// `df`'s physical plan in one partition, in its input order (no round-robin split for
/// parallelism: a consumer that numbers rows needs them in the same order every time).
pub async fn in_one_partition(df: DataFrame) -> Result<Arc<dyn ExecutionPlan>> {
    let (state, logical) = df.into_parts();
    let config = state.config().clone().with_target_partitions(1);
    let state = SessionStateBuilder::new_from_existing(state).with_config(config).build();
    Ok(state.create_physical_plan(&logical).await?)
}

/// Arrow schema of a DataFrame, detached from DataFusion's qualified schema.
pub fn arrow_schema(df: &DataFrame) -> SchemaRef {
    Arc::new(Schema::new(df.schema().fields().clone()))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int64Array, RecordBatch, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use datafusion::datasource::MemTable;
    use datafusion::physical_plan::displayable;

    /// A one-partition table of `rows` rows: `k`, and `v` of `width` bytes.
    fn table(rows: i64, width: usize) -> Arc<MemTable> {
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, false),
            Field::new("v", DataType::Utf8, false),
        ]));
        let v: StringArray = (0..rows).map(|i| Some(format!("{i:0width$}"))).collect();
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(Int64Array::from_iter_values(0..rows)), Arc::new(v)],
        )
        .unwrap();
        Arc::new(MemTable::try_new(schema, vec![vec![batch]]).unwrap())
    }

    async fn plan_of(sql: &str, small: i64, small_width: usize) -> String {
        let ctx = super::session_context();
        ctx.register_table("big", table(200_000, 100)).unwrap();
        ctx.register_table("small", table(small, small_width)).unwrap();
        let plan = ctx.sql(sql).await.unwrap().create_physical_plan().await.unwrap();
        displayable(plan.as_ref()).indent(true).to_string()
    }

    #[tokio::test]
    async fn joins_hash_a_small_build_side_once_and_nothing_is_dealt_round_robin() {
        let join = "SELECT b.v, s.v AS sv FROM big b LEFT JOIN small s ON b.k = s.k";
        // ~1 MB of build side: hashed once, the big side is not repartitioned (DataFusion's
        // default threshold would have partitioned both sides)
        let plan = plan_of(join, 40_000, 16).await;
        assert!(plan.contains("mode=CollectLeft"), "{plan}");
        assert!(!plan.contains("Hash(["), "{plan}");
        // both sides ~20 MB, past a third of the join's in-memory budget: partitioned
        let plan = plan_of(join, 200_000, 100).await;
        assert!(plan.contains("mode=Partitioned"), "{plan}");
        // an aggregate over one partition: DataFusion would deal its batches round robin
        let plan = plan_of("SELECT v, count(*) FROM big GROUP BY v", 1, 1).await;
        assert!(plan.contains("AggregateExec"), "{plan}");
        assert!(!plan.contains("RoundRobinBatch"), "{plan}");
    }

    #[test]
    fn memory_limits_read_like_spark_sizes() {
        assert_eq!(super::parse_bytes("512m"), Some(512 << 20));
        assert_eq!(super::parse_bytes("2G"), Some(2 << 30));
        assert_eq!(super::parse_bytes("1.5g"), Some(3 << 29));
        assert_eq!(super::parse_bytes("300kb"), Some(300 << 10));
        assert_eq!(super::parse_bytes("1048576"), Some(1 << 20));
        assert_eq!(super::parse_bytes("lots"), None);
        assert_eq!(super::parse_bytes("0"), None);
        assert_eq!(super::parse_bytes(""), None);
    }
}
