//! The micro-batch loop: triggers, the checkpoint protocol, idempotent Delta commits, progress.
//!
//! Per batch N: plan each source's offsets and write `offsets/N` (atomically) before reading;
//! read exactly that data; run the transforms; commit each Delta sink with the application
//! transaction `(<query id>/<sink id>, N)`, skipping a sink whose table already has it; write
//! `commits/N`. A restart replays a batch that has offsets but no commit, with the same
//! offsets, so every input record lands exactly once.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::datasource::MemTable;
use datafusion::prelude::{DataFrame, SessionContext};
use deltalake::kernel::Transaction;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};

use crate::model::node::{FileFormat, FileSource, KafkaSource, NodeKind, ParseMode};
use crate::model::{NodeId, Pipeline, Project, Trigger};

use super::checkpoint::{
    Checkpoint, CommitEntry, FileEntry, Metadata, OffsetsEntry, SourceOffset, now_ms,
};
use super::delta::{self, CommitMeta};
use super::error::NodeContext;
use super::events::RunEvent;
use super::meter::{EdgeMeter, EdgeStats, node_self_ms};
use super::plan::Planner;
use super::sources::json_lines::{self, BadRecord};
use super::sources::{self, files::ListedFile};
use super::{EngineError, Result, schema, sinks};

/// Where a test makes the runtime stop as if the process died.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrashPoint {
    /// `offsets/N` written, nothing read yet.
    AfterOffsets,
    /// Every sink committed to Delta, `commits/N` not yet written.
    AfterSinkCommit,
}

/// How a stream runs.
#[derive(Clone, Debug)]
pub struct StreamOptions {
    /// Overrides the pipeline's trigger with `availableNow`.
    pub available_now: bool,
    /// Becomes true to ask for a clean stop after the batch in flight.
    pub stop: watch::Receiver<bool>,
    /// Tests: fail with [`EngineError::InjectedCrash`] at this point of this batch.
    pub crash_at: Option<(CrashPoint, u64)>,
    /// Count rows and time along every edge (see `meter`).
    pub meter_edges: bool,
}

impl StreamOptions {
    pub fn new(available_now: bool) -> Self {
        let (_tx, rx) = watch::channel(false);
        Self { available_now, stop: rx, crash_at: None, meter_edges: false }
    }
}

/// Per-batch progress, like Spark's `StreamingQueryProgress`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StreamProgress {
    pub pipeline: String,
    pub query_id: String,
    pub batch_id: u64,
    pub timestamp: String,
    /// Whether this batch replayed offsets planned before a restart.
    pub replayed: bool,
    pub num_input_rows: u64,
    pub input_rows_per_second: f64,
    pub processed_rows_per_second: f64,
    pub duration_ms: BTreeMap<String, u64>,
    pub sources: BTreeMap<String, SourceProgress>,
    /// Sink node → Delta version holding this batch.
    pub sinks: BTreeMap<String, i64>,
    /// Rows written per sink node (0 when the batch was already committed).
    pub rows_per_node: BTreeMap<String, u64>,
    /// Bad records found by transforms (Parse JSON), per node.
    pub transforms: BTreeMap<String, BadRecordCounts>,
    /// Rows (and time to produce them) along each edge of the graph in this batch.
    #[serde(default)]
    pub edges: Vec<EdgeStats>,
    /// Each node's own time in this batch, in milliseconds (see `meter::node_self_ms`).
    #[serde(default)]
    pub node_ms: BTreeMap<String, f64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SourceProgress {
    pub offset: SourceOffset,
    pub input_rows: u64,
    /// Malformed records kept in `_rescued_data` (permissive mode).
    pub rescued_records: u64,
    /// Malformed records sent to the quarantine table (drop_malformed mode).
    pub quarantined_records: u64,
    /// Files (or versions, or messages) known but not yet processed.
    pub backlog: u64,
    /// Kafka: per `topic:partition`, end offset minus processed offset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lag: Option<BTreeMap<String, i64>>,
}

/// Malformed records a transform (Parse JSON) found in a batch.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BadRecordCounts {
    pub rescued_records: u64,
    pub quarantined_records: u64,
}

/// What a stream run did.
#[derive(Clone, Debug, Default)]
pub struct StreamSummary {
    pub batches: u64,
    pub rows_written: u64,
}

pub fn checkpoint_dir(pipeline: &Pipeline, root: &Path) -> Result<PathBuf> {
    let rel = match &pipeline.checkpoint {
        Some(c) => crate::model::env::expand(c)?,
        None => format!("_checkpoints/{}", pipeline.name),
    };
    Ok(delta::resolve(root, &rel))
}

/// Kafka messages fetched while planning a batch: its offset ranges and the data.
type Prefetched = (BTreeMap<String, [i64; 2]>, Vec<RecordBatch>);

/// A streaming source's state between batches.
enum Source {
    Files {
        node: NodeId,
        cfg: FileSource,
        dir: PathBuf,
        schema: SchemaRef,
        seen: HashSet<String>,
        /// availableNow: only the files present at start.
        bound: Option<HashSet<String>>,
        backlog: u64,
        _watcher: Option<notify::RecommendedWatcher>,
    },
    Delta {
        node: NodeId,
        path: PathBuf,
        skip_change_commits: bool,
        max_files: usize,
        last: i64,
        bound: Option<i64>,
        backlog: u64,
    },
    Kafka {
        node: NodeId,
        cfg: KafkaSource,
        client: Arc<sources::kafka::KafkaClient>,
        /// Next offset to read per `topic:partition`.
        next: BTreeMap<String, i64>,
        /// Whether the checkpoint had offsets (then `startingOffsets` no longer applies).
        started: bool,
        /// availableNow: only messages stamped before the query started (ms since epoch).
        bound: Option<i64>,
        /// Messages fetched while planning, for the batch that reads exactly them.
        prefetched: std::sync::Mutex<Option<Prefetched>>,
        lag: BTreeMap<String, i64>,
        warnings: Vec<String>,
    },
    Generator {
        node: NodeId,
        seed: u64,
        rows_per_second: u64,
        max_rows: Option<u64>,
        next: u64,
        run_start: Instant,
        run_start_row: u64,
        bound: Option<u64>,
    },
}

impl Source {
    fn node(&self) -> &NodeId {
        match self {
            Source::Files { node, .. }
            | Source::Delta { node, .. }
            | Source::Generator { node, .. }
            | Source::Kafka { node, .. } => node,
        }
    }

    fn describe(&self) -> String {
        match self {
            Source::Files { cfg, .. } => format!("files:{}:{}", cfg.format.as_str(), cfg.path),
            Source::Delta { path, .. } => format!("delta:{}", path.display()),
            Source::Generator { seed, .. } => format!("generator:seed={seed}"),
            Source::Kafka { cfg, .. } => match &cfg.subscribe_pattern {
                Some(p) => format!("kafka:pattern={p}"),
                None => format!("kafka:{}", cfg.subscribe.join(",")),
            },
        }
    }

    fn backlog(&self) -> u64 {
        match self {
            Source::Files { backlog, .. } | Source::Delta { backlog, .. } => *backlog,
            Source::Generator { .. } => 0,
            Source::Kafka { lag, .. } => lag.values().map(|l| (*l).max(0) as u64).sum(),
        }
    }

    /// Marks a batch's offsets as processed.
    fn advance(&mut self, offset: &SourceOffset) {
        match (self, offset) {
            (Source::Files { seen, .. }, SourceOffset::Files { files }) => {
                seen.extend(files.iter().map(|f| f.path.clone()));
            }
            (Source::Delta { last, .. }, SourceOffset::Delta { end_version, .. }) => {
                *last = (*last).max(*end_version);
            }
            (Source::Generator { next, .. }, SourceOffset::Generator { end, .. }) => {
                *next = (*next).max(*end);
            }
            (Source::Kafka { next, started, .. }, SourceOffset::Kafka { ranges }) => {
                *started = true;
                for (tp, [_, end]) in ranges {
                    let n = next.entry(tp.clone()).or_insert(*end);
                    *n = (*n).max(*end);
                }
            }
            _ => {}
        }
    }

    /// Fixes what "available now" means: the data present at this moment.
    async fn bind_available_now(&mut self) -> Result<()> {
        match self {
            Source::Files { cfg, dir, bound, .. } => {
                let listed = sources::files::list_with_sizes(dir, cfg)?;
                *bound = Some(listed.into_iter().map(|f| f.name).collect());
            }
            Source::Delta { path, bound, .. } => {
                *bound = Some(match delta::try_open(path).await? {
                    Some(t) => t.version().map_or(-1, |v| v as i64),
                    None => -1,
                });
            }
            Source::Generator { max_rows, rows_per_second, next, bound, .. } => {
                *bound = Some(max_rows.unwrap_or(*next + *rows_per_second));
            }
            Source::Kafka { client, bound, .. } => {
                // fail early (and wait) if the brokers are away
                let client = client.clone();
                blocking(move || client.partitions()).await?;
                *bound = Some(now_ms());
            }
        }
        Ok(())
    }

    /// The offsets of the next batch (possibly empty).
    async fn plan_next(&mut self) -> Result<SourceOffset> {
        match self {
            Source::Files { cfg, dir, seen, bound, backlog, .. } => {
                let listed: Vec<ListedFile> = sources::files::list_with_sizes(dir, cfg)?
                    .into_iter()
                    .filter(|f| !seen.contains(&f.name))
                    .filter(|f| bound.as_ref().is_none_or(|b| b.contains(&f.name)))
                    .filter(|f| sources::files::looks_complete(&f.path, cfg.format, f.size))
                    .collect();
                let max_files = cfg.max_files_per_trigger.unwrap_or(1000);
                let mut files = Vec::new();
                let mut bytes = 0u64;
                for f in &listed {
                    if files.len() >= max_files {
                        break;
                    }
                    if let Some(max) = cfg.max_bytes_per_trigger
                        && !files.is_empty()
                        && bytes + f.size > max
                    {
                        break;
                    }
                    bytes += f.size;
                    files.push(FileEntry { path: f.name.clone(), size: f.size });
                }
                *backlog = (listed.len() - files.len()) as u64;
                Ok(SourceOffset::Files { files })
            }
            Source::Delta {
                path, last, bound, backlog, max_files, skip_change_commits, ..
            } => {
                let latest = match delta::try_open(path).await? {
                    Some(t) => t.version().map_or(-1, |v| v as i64),
                    None => -1,
                };
                let target = bound.map_or(latest, |b| b.min(latest));
                // whole versions, until about max_files new files
                let mut end = *last;
                let mut files = 0;
                while end < target && (files < *max_files || end == *last) {
                    files +=
                        sources::delta::appended_files(path, end, end + 1, *skip_change_commits)?
                            .len();
                    end += 1;
                }
                *backlog = (target - end).max(0) as u64;
                Ok(SourceOffset::Delta { start_version: *last, end_version: end })
            }
            Source::Kafka {
                cfg, client, next, started, bound, lag, warnings, prefetched, ..
            } => {
                let meta_client = client.clone();
                let marks = blocking(move || {
                    let client = meta_client;
                    let mut marks = BTreeMap::new();
                    for (t, p) in client.partitions()? {
                        marks.insert(sources::kafka::tp_key(&t, p), client.watermarks(&t, p)?);
                    }
                    Ok(marks)
                })
                .await?;
                let starting = match cfg.starting_offsets.as_deref().map(str::trim) {
                    None | Some("earliest") => None,
                    Some("latest") => Some(BTreeMap::new()),
                    Some(json) => Some(sources::kafka::parse_starting_offsets(json)?),
                };
                let latest = cfg.starting_offsets.as_deref().map(str::trim) == Some("latest");
                let mut ranges = BTreeMap::new();
                for (tp, (low, high)) in &marks {
                    let start = match next.get(tp) {
                        Some(n) => *n,
                        // a partition seen for the first time: startingOffsets for a new
                        // query, earliest for a partition added later (as Spark)
                        None if !*started && latest => *high,
                        None if !*started => match starting.as_ref().and_then(|s| s.get(tp)) {
                            Some(-1) => *high,
                            Some(o) if *o >= 0 => *o,
                            _ => *low,
                        },
                        None => *low,
                    };
                    let start = if start < *low {
                        if cfg.fail_on_data_loss {
                            return Err(EngineError::Config(format!(
                                "offsets {start}..{low} of {tp} were deleted (retention) before they were read; set failOnDataLoss = false to continue from offset {low}"
                            )));
                        }
                        warnings.push(format!(
                            "offsets {start}..{low} of {tp} were deleted before they were read; continuing from {low} (failOnDataLoss = false)"
                        ));
                        *low
                    } else {
                        start
                    };
                    ranges.insert(tp.clone(), [start, start]);
                }
                for tp in next.keys() {
                    if !marks.contains_key(tp) {
                        let msg = format!("partition {tp} is gone from the topic");
                        if cfg.fail_on_data_loss {
                            return Err(EngineError::Config(format!(
                                "{msg}; set failOnDataLoss = false to continue without it"
                            )));
                        }
                        warnings.push(msg);
                    }
                }
                let starts: BTreeMap<String, i64> =
                    ranges.iter().map(|(k, [s, _])| (k.clone(), *s)).collect();
                let (client, max, until) = (client.clone(), cfg.max_offsets_per_trigger, *bound);
                let (ranges, batches) = blocking(move || {
                    // availableNow drains in big batches; a live stream keeps batches short
                    let max_fetch = Duration::from_millis(if until.is_some() { 2000 } else { 200 });
                    client.fetch_new(&starts, max, until, Duration::from_millis(150), max_fetch)
                })
                .await?;
                // lag as far as the broker's end offsets tell (they may lag behind themselves)
                *lag = ranges
                    .iter()
                    .map(|(tp, [_, e])| {
                        (tp.clone(), marks.get(tp).map_or(0, |(_, h)| (h - e).max(0)))
                    })
                    .collect();
                if let Ok(p) = prefetched.get_mut() {
                    *p = Some((ranges.clone(), batches));
                }
                Ok(SourceOffset::Kafka { ranges })
            }
            Source::Generator {
                rows_per_second,
                max_rows,
                next,
                run_start,
                run_start_row,
                bound,
                ..
            } => {
                let end = match bound {
                    Some(b) => *b,
                    None => {
                        let due = *run_start_row
                            + (run_start.elapsed().as_secs_f64() * *rows_per_second as f64) as u64;
                        max_rows.map_or(due, |m| due.min(m))
                    }
                };
                // bounded batches: at most ten seconds' worth of rows at a time
                let end = end.min(*next + (*rows_per_second * 10).max(1));
                Ok(SourceOffset::Generator { start: *next, end: end.max(*next) })
            }
        }
    }

    /// Reads exactly the data of `offset`.
    async fn read(&self, ctx: &SessionContext, offset: &SourceOffset) -> Result<SourceData> {
        match (self, offset) {
            (Source::Files { cfg, dir, schema, .. }, SourceOffset::Files { files }) => {
                let paths: Vec<PathBuf> = files.iter().map(|f| dir.join(&f.path)).collect();
                if cfg.format == FileFormat::Json {
                    let (schema_in, mode) = (schema.clone(), cfg.parse_mode);
                    let decoded = tokio::task::spawn_blocking(move || -> Result<_> {
                        let mut batches = Vec::new();
                        let mut bad = Vec::new();
                        for (path, entry) in paths.iter().zip(files_names(&paths)) {
                            let bytes =
                                std::fs::read(path).map_err(|e| EngineError::io(path, e))?;
                            let d = json_lines::decode(
                                &entry,
                                &bytes,
                                &strip_rescued(&schema_in),
                                mode,
                            )?;
                            batches.extend(d.batches);
                            bad.extend(d.bad);
                        }
                        Ok((batches, bad))
                    })
                    .await
                    .map_err(|e| EngineError::Config(format!("reader task failed: {e}")))??;
                    let (batches, bad) = decoded;
                    let out_schema = json_lines::output_schema(&strip_rescued(schema), mode);
                    let rows = batches.iter().map(RecordBatch::num_rows).sum::<usize>() as u64;
                    let df =
                        ctx.read_table(Arc::new(MemTable::try_new(out_schema, vec![batches])?))?;
                    Ok(SourceData { df, rows, bad, mode })
                } else {
                    let df = if paths.is_empty() {
                        empty(ctx, schema.clone())?
                    } else {
                        sources::files::read_files(ctx, &paths, &with_schema(cfg, schema)).await?
                    };
                    let rows = df.clone().count().await? as u64;
                    Ok(SourceData { df, rows, bad: Vec::new(), mode: cfg.parse_mode })
                }
            }
            (
                Source::Delta { path, skip_change_commits, .. },
                SourceOffset::Delta { start_version, end_version },
            ) => {
                let (files, stats_rows) = sources::delta::appended_files_with_rows(
                    path,
                    *start_version,
                    *end_version,
                    *skip_change_commits,
                )?;
                let df = if files.is_empty() {
                    let t = delta::open(path).await?;
                    let s = t.snapshot()?.snapshot().arrow_schema();
                    empty(ctx, s)?
                } else {
                    sources::delta::read_files_at(ctx, path, *end_version, files).await?
                };
                // from the file statistics; only files without statistics are counted by a scan
                let rows = match stats_rows {
                    Some(n) => n,
                    None => df.clone().count().await? as u64,
                };
                Ok(SourceData { df, rows, bad: Vec::new(), mode: ParseMode::Permissive })
            }
            (Source::Generator { seed, .. }, SourceOffset::Generator { start, end }) => {
                let batches = sources::generator::generate(*seed, *start, *end, 8192)?;
                let df = ctx.read_table(Arc::new(MemTable::try_new(
                    sources::generator::schema(),
                    vec![batches],
                )?))?;
                Ok(SourceData {
                    df,
                    rows: end - start,
                    bad: Vec::new(),
                    mode: ParseMode::Permissive,
                })
            }
            (Source::Kafka { client, prefetched, .. }, SourceOffset::Kafka { ranges }) => {
                let fetched = prefetched.lock().ok().and_then(|mut p| p.take());
                let batches = match fetched {
                    Some((r, batches)) if &r == ranges => batches,
                    // a replay after a restart: read the same offsets again
                    _ => {
                        let (client, ranges) = (client.clone(), ranges.clone());
                        blocking(move || client.read(&ranges)).await?
                    }
                };
                let rows = batches.iter().map(RecordBatch::num_rows).sum::<usize>() as u64;
                let table = MemTable::try_new(sources::kafka::schema(), vec![batches])?;
                let df = ctx.read_table(Arc::new(table))?;
                Ok(SourceData { df, rows, bad: Vec::new(), mode: ParseMode::Permissive })
            }
            (s, o) => Err(EngineError::Config(format!(
                "checkpoint offsets {o:?} do not belong to source {}; the checkpoint was written for another pipeline",
                s.describe()
            ))),
        }
    }
}

/// Runs blocking client calls (rdkafka) off the async workers.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| EngineError::Config(format!("worker task failed: {e}")))?
}

fn files_names(paths: &[PathBuf]) -> Vec<String> {
    paths.iter().map(|p| p.to_string_lossy().into_owned()).collect()
}

fn strip_rescued(schema: &Schema) -> Schema {
    Schema::new(
        schema
            .fields()
            .iter()
            .filter(|f| f.name() != crate::model::node::RESCUED_DATA_COLUMN)
            .cloned()
            .collect::<Vec<_>>(),
    )
}

fn with_schema(cfg: &FileSource, schema: &SchemaRef) -> FileSource {
    FileSource { schema: Some(schema::schema_to_ddl(schema)), ..cfg.clone() }
}

fn empty(ctx: &SessionContext, schema: SchemaRef) -> Result<DataFrame> {
    Ok(ctx.read_table(Arc::new(MemTable::try_new(schema, vec![vec![]])?))?)
}

struct SourceData {
    df: DataFrame,
    rows: u64,
    bad: Vec<BadRecord>,
    mode: ParseMode,
}

/// Builds the pipeline's streaming sources (static Delta sources are planned per batch).
async fn build_sources(
    project: &Project,
    pipeline: &Pipeline,
    root: &Path,
    wake: &mpsc::Sender<()>,
) -> Result<Vec<Source>> {
    let planner = Planner::new(project, pipeline, root);
    let mut out = Vec::new();
    for node in &pipeline.nodes {
        let source = match &node.kind {
            NodeKind::FileSource(cfg) => {
                let dir = planner.resolve(&cfg.path).at_node(&pipeline.name, &node.id)?;
                let schema =
                    match sources::files::declared_schema(cfg).at_node(&pipeline.name, &node.id)? {
                        Some(s) => s,
                        None => sources::files::infer_schema(&planner.ctx, &dir, cfg)
                            .await
                            .at_node(&pipeline.name, &node.id)?,
                    };
                let schema = if cfg.format == FileFormat::Json {
                    json_lines::output_schema(&schema, cfg.parse_mode)
                } else {
                    Arc::new(schema)
                };
                let watcher = if cfg.use_notifications {
                    Some(watch_folder(&dir, wake.clone()).at_node(&pipeline.name, &node.id)?)
                } else {
                    None
                };
                Source::Files {
                    node: node.id.clone(),
                    cfg: cfg.clone(),
                    dir,
                    schema,
                    seen: HashSet::new(),
                    bound: None,
                    backlog: 0,
                    _watcher: watcher,
                }
            }
            NodeKind::DeltaSource(cfg) if !cfg.static_table => Source::Delta {
                node: node.id.clone(),
                path: planner.resolve(&cfg.table).at_node(&pipeline.name, &node.id)?,
                skip_change_commits: cfg.skip_change_commits,
                max_files: cfg.max_files_per_trigger.unwrap_or(1000).max(1),
                last: cfg.starting_version.map_or(-1, |v| v - 1),
                bound: None,
                backlog: 0,
            },
            NodeKind::KafkaSource(cfg) => {
                let group = format!("medallion-{}-{}", pipeline.name, node.id);
                let client = sources::kafka::KafkaClient::new(cfg, &group)
                    .at_node(&pipeline.name, &node.id)?;
                Source::Kafka {
                    node: node.id.clone(),
                    cfg: cfg.clone(),
                    client: Arc::new(client),
                    next: BTreeMap::new(),
                    started: false,
                    bound: None,
                    prefetched: std::sync::Mutex::new(None),
                    lag: BTreeMap::new(),
                    warnings: Vec::new(),
                }
            }
            NodeKind::GeneratorSource(cfg) => Source::Generator {
                node: node.id.clone(),
                seed: cfg.seed,
                rows_per_second: cfg.rows_per_second,
                max_rows: cfg.max_rows,
                next: 0,
                run_start: Instant::now(),
                run_start_row: 0,
                bound: None,
            },
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

/// Wakes the loop on file events in `dir` (notification mode).
fn watch_folder(dir: &Path, wake: mpsc::Sender<()>) -> Result<notify::RecommendedWatcher> {
    use notify::Watcher;
    std::fs::create_dir_all(dir).map_err(|e| EngineError::io(dir, e))?;
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if event.is_ok() {
            let _ = wake.try_send(()); // a full channel already holds a wake-up
        }
    })
    .map_err(|e| EngineError::Config(format!("cannot watch {}: {e}", dir.display())))?;
    watcher
        .watch(dir, notify::RecursiveMode::NonRecursive)
        .map_err(|e| EngineError::Config(format!("cannot watch {}: {e}", dir.display())))?;
    Ok(watcher)
}

/// Source schemas as DDL, for the checkpoint metadata.
fn source_schemas(sources: &[Source]) -> BTreeMap<String, String> {
    sources
        .iter()
        .filter_map(|s| match s {
            Source::Files { node, schema, .. } => {
                Some((node.to_string(), schema::schema_to_ddl(schema)))
            }
            _ => None,
        })
        .collect()
}

/// Runs one stream pipeline until its trigger says stop (or `opts.stop`).
pub async fn run_stream(
    project: &Project,
    pipeline: &Pipeline,
    root: &Path,
    opts: &StreamOptions,
    on_event: &(dyn Fn(RunEvent) + Send + Sync),
) -> Result<StreamSummary> {
    let trigger = if opts.available_now {
        Trigger::AvailableNow
    } else {
        pipeline.trigger.unwrap_or_default()
    };
    let (wake_tx, mut wake_rx) = mpsc::channel::<()>(1);
    let mut sources = build_sources(project, pipeline, root, &wake_tx).await?;
    let cp = Checkpoint::new(checkpoint_dir(pipeline, root)?);
    let meta = cp.open(Metadata {
        id: uuid::Uuid::new_v4().to_string(),
        pipeline: pipeline.name.clone(),
        sources: sources.iter().map(|s| (s.node().to_string(), s.describe())).collect(),
        schemas: source_schemas(&sources),
        created_at: chrono::Utc::now().to_rfc3339(),
    })?;
    // restore: every committed batch's offsets are processed
    let last_committed = cp.last_committed()?;
    for entry in cp.all_offsets()? {
        if last_committed.is_some_and(|c| entry.batch_id <= c) {
            for s in sources.iter_mut() {
                if let Some(o) = entry.sources.get(s.node().as_str()) {
                    s.advance(o);
                }
            }
        }
    }
    for s in sources.iter_mut() {
        if let Source::Generator { next, run_start, run_start_row, .. } = s {
            *run_start = Instant::now();
            *run_start_row = *next;
        }
    }
    if matches!(trigger, Trigger::AvailableNow | Trigger::Once) {
        for s in sources.iter_mut() {
            loop {
                match s.bind_available_now().await.at_node(&pipeline.name, s.node()) {
                    Err(e) if e.is_retryable() && !*opts.stop.borrow() => {
                        waiting(pipeline, &e, on_event);
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                    other => break other?,
                }
            }
        }
    }
    let mut batch_id = last_committed.map_or(0, |c| c + 1);
    let mut summary = StreamSummary::default();
    let mut stop = opts.stop.clone();
    on_event(RunEvent::PipelineStarted { pipeline: pipeline.name.clone() });
    let run_started = Instant::now();
    let mut idle = false;
    // Spark's inputRowsPerSecond: rows over the time since the previous batch started
    let mut previous_batch_started: Option<Instant> = None;
    loop {
        if *stop.borrow() {
            break;
        }
        let batch_started = Instant::now();
        let planned = Instant::now();
        let (entry, replayed) = match cp.offsets(batch_id)? {
            Some(entry) => (entry, true),
            None => {
                let mut offsets = BTreeMap::new();
                let mut away = None;
                for s in sources.iter_mut() {
                    match s.plan_next().await.at_node(&pipeline.name, s.node()) {
                        Ok(o) => {
                            offsets.insert(s.node().to_string(), o);
                        }
                        Err(e) if e.is_retryable() => {
                            away = Some(e);
                            break;
                        }
                        Err(e) => return Err(e),
                    }
                    if let Source::Kafka { warnings, node, .. } = s {
                        for w in warnings.drain(..) {
                            on_event(RunEvent::Warning {
                                pipeline: pipeline.name.clone(),
                                node: Some(node.clone()),
                                message: w,
                            });
                        }
                    }
                }
                if let Some(e) = away {
                    waiting(pipeline, &e, on_event);
                    wait(1000, Instant::now(), &mut stop, &mut wake_rx).await;
                    continue;
                }
                if offsets.values().all(SourceOffset::is_empty) {
                    match trigger {
                        Trigger::AvailableNow | Trigger::Once => break,
                        Trigger::Interval { interval_ms } => {
                            if !idle {
                                idle = true;
                                on_event(RunEvent::Idle { pipeline: pipeline.name.clone() });
                            }
                            wait(interval_ms, batch_started, &mut stop, &mut wake_rx).await;
                            continue;
                        }
                    }
                }
                let entry = OffsetsEntry { batch_id, timestamp_ms: now_ms(), sources: offsets };
                cp.write_offsets(&entry)?;
                (entry, false)
            }
        };
        let plan_ms = planned.elapsed().as_millis() as u64;
        if opts.crash_at == Some((CrashPoint::AfterOffsets, batch_id)) {
            return Err(EngineError::InjectedCrash("after offsets"));
        }
        let progress =
            match run_batch(project, pipeline, root, &meta, &sources, &entry, replayed, opts).await
            {
                Ok(p) => p,
                Err(e) if e.is_retryable() => {
                    // offsets/N stays: the same batch is replayed when the broker is back
                    waiting(pipeline, &e, on_event);
                    wait(1000, Instant::now(), &mut stop, &mut wake_rx).await;
                    continue;
                }
                Err(e) => return Err(e),
            };
        cp.write_commit(&CommitEntry {
            batch_id,
            timestamp_ms: now_ms(),
            sinks: progress.sinks.clone(),
        })?;
        for s in sources.iter_mut() {
            if let Some(o) = entry.sources.get(s.node().as_str()) {
                s.advance(o);
            }
            if let Source::Kafka { client, next, .. } = s {
                client.commit_for_progress(next);
            }
        }
        let mut progress = progress;
        for (node, sp) in progress.sources.iter_mut() {
            if let Some(s) = sources.iter().find(|s| s.node().as_str() == node) {
                sp.backlog = s.backlog();
                if let Source::Kafka { lag, .. } = s {
                    sp.lag = Some(lag.clone());
                }
            }
        }
        progress.duration_ms.insert("total".into(), batch_started.elapsed().as_millis() as u64);
        if let Some(prev) = previous_batch_started.replace(batch_started) {
            let secs = batch_started.duration_since(prev).as_secs_f64().max(1e-3);
            progress.input_rows_per_second = progress.num_input_rows as f64 / secs;
        }
        progress.duration_ms.insert("plan".into(), plan_ms);
        summary.batches += 1;
        summary.rows_written += progress.rows_per_node.values().sum::<u64>();
        on_event(RunEvent::BatchCompleted(Box::new(progress)));
        idle = false;
        batch_id += 1;
        match trigger {
            Trigger::Once => break,
            Trigger::AvailableNow => {}
            Trigger::Interval { interval_ms } => {
                wait(interval_ms, batch_started, &mut stop, &mut wake_rx).await;
            }
        }
    }
    on_event(RunEvent::PipelineFinished {
        pipeline: pipeline.name.clone(),
        rows_written: summary.rows_written,
        duration_ms: run_started.elapsed().as_millis() as u64,
        stopped: *stop.borrow(),
    });
    Ok(summary)
}

fn waiting(pipeline: &Pipeline, e: &EngineError, on_event: &(dyn Fn(RunEvent) + Send + Sync)) {
    on_event(RunEvent::Warning {
        pipeline: pipeline.name.clone(),
        node: e.node().cloned(),
        message: format!("waiting for the broker: {}", e.detail()),
    });
}

/// Sleeps until the next trigger time, a file event, or a stop request.
async fn wait(
    interval_ms: u64,
    since: Instant,
    stop: &mut watch::Receiver<bool>,
    wake: &mut mpsc::Receiver<()>,
) {
    let deadline = since + Duration::from_millis(interval_ms);
    tokio::select! {
        _ = tokio::time::sleep_until(deadline.into()) => {}
        _ = stop.changed() => {}
        _ = wake.recv() => {}
    }
}

#[allow(clippy::too_many_arguments)]
async fn run_batch(
    project: &Project,
    pipeline: &Pipeline,
    root: &Path,
    meta: &Metadata,
    sources: &[Source],
    entry: &OffsetsEntry,
    replayed: bool,
    opts: &StreamOptions,
) -> Result<StreamProgress> {
    let mut durations = BTreeMap::new();
    let t_read = Instant::now();
    let meter = opts.meter_edges.then(|| Arc::new(EdgeMeter::new()));
    let mut planner = Planner::new(project, pipeline, root);
    if let Some(m) = &meter {
        planner = planner.with_meter(m.clone());
    }
    let mut sink_write_ms = BTreeMap::new();
    let mut source_progress = BTreeMap::new();
    let mut quarantine: Vec<(NodeId, BadRecord)> = Vec::new();
    let mut input_rows = 0;
    for s in sources {
        let Some(offset) = entry.sources.get(s.node().as_str()) else {
            return Err(EngineError::Config(format!(
                "offsets/{} has no entry for source `{}`; the checkpoint was written for another pipeline",
                entry.batch_id,
                s.node()
            )));
        };
        let data = s.read(&planner.ctx, offset).await.at_node(&pipeline.name, s.node())?;
        input_rows += data.rows;
        let bad = data.bad.len() as u64;
        source_progress.insert(
            s.node().to_string(),
            SourceProgress {
                offset: offset.clone(),
                input_rows: data.rows,
                rescued_records: if data.mode == ParseMode::Permissive { bad } else { 0 },
                quarantined_records: if data.mode == ParseMode::DropMalformed { bad } else { 0 },
                backlog: 0,
                lag: None,
            },
        );
        if data.mode == ParseMode::DropMalformed {
            quarantine.extend(data.bad.into_iter().map(|b| (s.node().clone(), b)));
        }
        planner.set_frame(s.node().clone(), data.df);
    }
    durations.insert("read".to_owned(), t_read.elapsed().as_millis() as u64);

    let t_write = Instant::now();
    let mut sinks_done = BTreeMap::new();
    let mut rows_per_node = BTreeMap::new();
    let mut first_sink_table = None;
    for sink in pipeline.sinks() {
        let t_sink = Instant::now();
        if let NodeKind::KafkaSink(cfg) = &sink.kind {
            // at-least-once: every message acknowledged before commits/N
            let df = planner.node_frame(&sink.id).await?;
            let sent = sinks::kafka::write(cfg, df).await.at_node(&pipeline.name, &sink.id)?;
            rows_per_node.insert(sink.id.to_string(), sent);
            sink_write_ms.insert(sink.id.to_string(), t_sink.elapsed().as_millis() as u64);
            continue;
        }
        let NodeKind::DeltaSink(cfg) = &sink.kind else { continue };
        let path = planner.resolve(&cfg.table).at_node(&pipeline.name, &sink.id)?;
        first_sink_table.get_or_insert_with(|| path.clone());
        let app_id = format!("{}/{}", meta.id, sink.id);
        if let Some(v) = committed_version(&path, &app_id, entry.batch_id).await? {
            sinks_done.insert(sink.id.to_string(), v);
            rows_per_node.insert(sink.id.to_string(), 0);
            continue;
        }
        let df = planner.node_frame(&sink.id).await?;
        let props = CommitMeta {
            project: project.name.clone(),
            pipeline: pipeline.name.clone(),
            node: sink.id.to_string(),
        }
        .properties()
        .with_application_transaction(Transaction::new(&app_id, entry.batch_id as i64));
        let outcome =
            sinks::delta::write(&path, cfg, df, props).await.at_node(&pipeline.name, &sink.id)?;
        sinks_done.insert(sink.id.to_string(), outcome.version);
        rows_per_node.insert(sink.id.to_string(), outcome.rows_added + outcome.rows_updated);
        sink_write_ms.insert(sink.id.to_string(), t_sink.elapsed().as_millis() as u64);
    }
    let mut transforms: BTreeMap<String, BadRecordCounts> = BTreeMap::new();
    for (node, mode, record) in std::mem::take(&mut planner.bad_records) {
        let counts = transforms.entry(node.to_string()).or_default();
        match mode {
            ParseMode::Permissive => counts.rescued_records += 1,
            ParseMode::DropMalformed => {
                counts.quarantined_records += 1;
                quarantine.push((node, record));
            }
            ParseMode::FailFast => {}
        }
    }
    if !quarantine.is_empty() {
        let table = quarantine_path(first_sink_table.as_deref(), root, pipeline);
        write_quarantine(&table, meta, pipeline, project, entry.batch_id, &quarantine).await?;
    }
    durations.insert("write".to_owned(), t_write.elapsed().as_millis() as u64);
    if opts.crash_at == Some((CrashPoint::AfterSinkCommit, entry.batch_id)) {
        return Err(EngineError::InjectedCrash("after the Delta commit, before commits/N"));
    }
    let (edges, node_ms) = match &meter {
        Some(m) => {
            let edges = m.snapshot();
            let node_ms = node_self_ms(&edges, pipeline, &sink_write_ms)
                .into_iter()
                .map(|(n, ms)| (n.to_string(), ms))
                .collect();
            (edges, node_ms)
        }
        None => (Vec::new(), BTreeMap::new()),
    };
    let total_secs = (t_read.elapsed().as_secs_f64()).max(1e-3);
    let since_planned = ((now_ms() - entry.timestamp_ms).max(1) as f64) / 1000.0;
    Ok(StreamProgress {
        pipeline: pipeline.name.clone(),
        query_id: meta.id.clone(),
        batch_id: entry.batch_id,
        timestamp: chrono::Utc::now().to_rfc3339(),
        replayed,
        num_input_rows: input_rows,
        input_rows_per_second: input_rows as f64 / since_planned.max(total_secs),
        processed_rows_per_second: input_rows as f64 / total_secs,
        duration_ms: durations,
        sources: source_progress,
        sinks: sinks_done,
        rows_per_node,
        transforms,
        edges,
        node_ms,
    })
}

/// The table version holding batch `batch_id` of `app_id`, if the table already has it.
async fn committed_version(path: &Path, app_id: &str, batch_id: u64) -> Result<Option<i64>> {
    let Some(table) = delta::try_open(path).await? else { return Ok(None) };
    let snapshot = table.snapshot()?;
    let txn = snapshot.transaction_version(table.log_store().as_ref(), app_id).await?;
    Ok(match txn {
        Some(v) if v >= batch_id as i64 => Some(table.version().map_or(-1, |v| v as i64)),
        _ => None,
    })
}

/// The quarantine table: next to the first sink (`bronze/users_quarantine`).
fn quarantine_path(first_sink: Option<&Path>, root: &Path, pipeline: &Pipeline) -> PathBuf {
    match first_sink {
        Some(p) => {
            let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            p.with_file_name(format!("{name}_quarantine"))
        }
        None => root.join("_quarantine").join(&pipeline.name),
    }
}

pub fn quarantine_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("source_node", DataType::Utf8, false),
        Field::new("file", DataType::Utf8, true),
        Field::new("line", DataType::Int64, true),
        Field::new("raw", DataType::Utf8, true),
        Field::new("reason", DataType::Utf8, false),
        Field::new("batch_id", DataType::Int64, false),
        Field::new(
            "quarantined_at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
    ]))
}

async fn write_quarantine(
    table: &Path,
    meta: &Metadata,
    pipeline: &Pipeline,
    project: &Project,
    batch_id: u64,
    records: &[(NodeId, BadRecord)],
) -> Result<()> {
    let app_id = format!("{}/quarantine", meta.id);
    if committed_version(table, &app_id, batch_id).await?.is_some() {
        return Ok(());
    }
    let n = records.len();
    let now = chrono::Utc::now().timestamp_micros();
    let batch = RecordBatch::try_new(
        quarantine_schema(),
        vec![
            Arc::new(StringArray::from_iter_values(records.iter().map(|(n, _)| n.as_str()))),
            Arc::new(StringArray::from_iter(records.iter().map(|(_, r)| Some(r.file.as_str())))),
            Arc::new(Int64Array::from_iter(records.iter().map(|(_, r)| Some(r.line as i64)))),
            Arc::new(StringArray::from_iter(records.iter().map(|(_, r)| Some(r.raw.as_str())))),
            Arc::new(StringArray::from_iter_values(records.iter().map(|(_, r)| r.reason.as_str()))),
            Arc::new(Int64Array::from(vec![batch_id as i64; n])),
            Arc::new(TimestampMicrosecondArray::from(vec![now; n]).with_timezone("UTC")),
        ],
    )?;
    let props = CommitMeta {
        project: project.name.clone(),
        pipeline: pipeline.name.clone(),
        node: "quarantine".into(),
    }
    .properties()
    .with_application_transaction(Transaction::new(&app_id, batch_id as i64));
    let t = delta::open_for_write(table).await?;
    t.write(vec![batch])
        .with_save_mode(deltalake::protocol::SaveMode::Append)
        .with_commit_properties(props)
        .await?;
    Ok(())
}
