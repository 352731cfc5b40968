//! Runs a stream's Watermark and stateful nodes inside a micro-batch.
//!
//! The planner plans every other node lazily; before the sinks pull their frames, each
//! Watermark and stateful node (in topological order) takes its input's rows, runs its
//! operator against the state of the previous batch, saves the new state version, and
//! leaves its output as the node's frame. Watermark nodes measure the event times that pass
//! them (Spark's `eventTime` stats), from which the runtime computes the next watermark.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use arrow::array::RecordBatch;
use arrow::datatypes::{Schema, SchemaRef};
use datafusion::datasource::MemTable;
use datafusion::prelude::DataFrame;

use crate::model::graph::parse_duration_ms;
use crate::model::node::{LateRows, NodeKind, OutputMode};
use crate::model::streaming::{self, StatefulKind};
use crate::model::{NodeId, Pipeline};

use super::super::plan::Planner;
use super::super::sources::json_lines::BadRecord;
use super::super::{EngineError, NodeContext, Result};
use super::operators::aggregate::AggPlan;
use super::operators::dedup::DedupPlan;
use super::operators::event_time::{self, EventTimeStats};
use super::operators::join::JoinPlan;
use super::operators::{Clock, StateOperatorProgress, StepOutput};
use super::state::StateStore;
use super::watermark::{BatchWatermark, WatermarkSpec, format_ms};

enum Op {
    Watermark(WatermarkSpec),
    Aggregate { id: NodeId, plan: AggPlan },
    Dedup { id: NodeId, plan: DedupPlan },
    Join { id: NodeId, plan: JoinPlan },
}

/// The stateful part of a stream pipeline.
pub struct StatefulQuery {
    pipeline: String,
    ops: Vec<Op>,
    specs: Vec<WatermarkSpec>,
    pub mode: OutputMode,
    checkpoint: PathBuf,
    /// Stateful node → the Watermark node whose late rows go to quarantine.
    quarantine_late: BTreeMap<NodeId, String>,
}

/// What the stateful nodes did in one batch.
#[derive(Debug, Default)]
pub struct BatchState {
    /// Per Watermark node: the event times that passed it.
    pub event_time: BTreeMap<String, EventTimeStats>,
    /// Per stateful node: Spark's `stateOperators` entry.
    pub operators: BTreeMap<String, StateOperatorProgress>,
    /// Late rows to quarantine: (watermark node, reason, row as JSON).
    pub quarantine: Vec<(NodeId, BadRecord)>,
    /// The earliest watermark (µs) at which some node would evict state.
    pub next_expiry_us: Option<i64>,
}

impl BatchState {
    fn expires(&mut self, at: Option<i64>) {
        self.next_expiry_us = match (self.next_expiry_us, at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
}

fn frame(planner: &Planner<'_>, schema: SchemaRef, rows: Vec<RecordBatch>) -> Result<DataFrame> {
    Ok(planner.ctx.read_table(Arc::new(MemTable::try_new(schema, vec![rows])?))?)
}

async fn input_rows(
    planner: &mut Planner<'_>,
    id: &NodeId,
    port: &str,
) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let df = planner.input_frame(id, port).await?;
    let schema = Arc::new(Schema::new(df.schema().fields().clone()));
    Ok((schema, df.collect().await?))
}

/// Rows as JSON lines (for the quarantine table's `raw` column).
fn json_lines(batches: &[RecordBatch]) -> Vec<String> {
    let mut buf = Vec::new();
    {
        let mut w = arrow::json::LineDelimitedWriter::new(&mut buf);
        for b in batches {
            if w.write(b).is_err() {
                break;
            }
        }
        let _ = w.finish();
    }
    String::from_utf8_lossy(&buf).lines().map(str::to_owned).collect()
}

impl StatefulQuery {
    /// The stateful part of `pipeline`, or `None` when it has no Watermark or stateful node.
    pub fn analyze(pipeline: &Pipeline, checkpoint: &Path) -> Result<Option<Self>> {
        let stateful = streaming::stateful_nodes(pipeline);
        let streaming_set = streaming::streaming_nodes(pipeline);
        let order = pipeline
            .topological_order()
            .ok_or_else(|| EngineError::Config("the pipeline graph has a cycle".into()))?;
        let mut ops = Vec::new();
        let mut specs = Vec::new();
        let mut quarantine_late = BTreeMap::new();
        let config =
            |id: &NodeId, msg: String| EngineError::Config(msg).at_node(&pipeline.name, id);
        for id in &order {
            let Some(node) = pipeline.node(id) else { continue };
            if let NodeKind::Watermark(w) = &node.kind {
                if !streaming_set.contains(id) {
                    continue;
                }
                let delay_ms = parse_duration_ms(&w.delay).ok_or_else(|| {
                    config(
                        id,
                        format!("delay `{}` is not a duration such as `10 minutes`", w.delay),
                    )
                })? as i64;
                let spec = WatermarkSpec {
                    node: id.to_string(),
                    column: w.column.clone(),
                    delay_ms,
                    late_rows: w.late_rows,
                };
                specs.push(spec.clone());
                ops.push(Op::Watermark(spec));
                continue;
            }
            let Some((_, kind)) = stateful.iter().find(|(s, _)| s == id) else { continue };
            let wm_col = streaming::event_time_column(pipeline, id, None);
            if let Some(q) =
                streaming::watermarks_into(pipeline, id, None).into_iter().find_map(|n| {
                    match &n.kind {
                        NodeKind::Watermark(w) if w.late_rows == LateRows::Quarantine => {
                            Some(n.id.to_string())
                        }
                        _ => None,
                    }
                })
            {
                quarantine_late.insert(id.clone(), q);
            }
            let op = match (kind, &node.kind) {
                (StatefulKind::Aggregate, NodeKind::Aggregate(a)) => Op::Aggregate {
                    id: id.clone(),
                    plan: AggPlan::parse(a, wm_col.as_deref()).map_err(|e| config(id, e))?,
                },
                (StatefulKind::Dedup, NodeKind::Deduplicate(d)) => {
                    let delay = streaming::watermarks_into(pipeline, id, None)
                        .into_iter()
                        .rev()
                        .find_map(|n| match &n.kind {
                            NodeKind::Watermark(w) => parse_duration_ms(&w.delay),
                            _ => None,
                        });
                    Op::Dedup {
                        id: id.clone(),
                        plan: DedupPlan {
                            keys: d.keys.clone(),
                            event_time: wm_col.clone(),
                            within_watermark_us: if d.within_watermark {
                                Some(delay.unwrap_or(0) as i64 * 1000)
                            } else {
                                None
                            },
                        },
                    }
                }
                (StatefulKind::Dedup, NodeKind::Distinct(_)) => Op::Dedup {
                    id: id.clone(),
                    // keys filled in from the input's columns at run time
                    plan: DedupPlan {
                        keys: Vec::new(),
                        event_time: wm_col.clone(),
                        within_watermark_us: None,
                    },
                },
                (StatefulKind::Join, NodeKind::Join(j)) => {
                    let lw = !streaming::watermarks_into(pipeline, id, Some("left")).is_empty();
                    let rw = !streaming::watermarks_into(pipeline, id, Some("right")).is_empty();
                    Op::Join {
                        id: id.clone(),
                        plan: JoinPlan::try_new(j, lw, rw).map_err(|e| config(id, e))?,
                    }
                }
                _ => continue,
            };
            ops.push(op);
        }
        if ops.is_empty() {
            return Ok(None);
        }
        let mode = streaming::output_mode(pipeline).map_err(EngineError::Config)?;
        Ok(Some(Self {
            pipeline: pipeline.name.clone(),
            ops,
            specs,
            mode,
            checkpoint: checkpoint.to_owned(),
            quarantine_late,
        }))
    }

    pub fn watermark_specs(&self) -> &[WatermarkSpec] {
        &self.specs
    }

    /// Whether any node keeps state (a pipeline with only Watermark nodes keeps none).
    pub fn has_state(&self) -> bool {
        self.ops.iter().any(|o| !matches!(o, Op::Watermark(_)))
    }

    /// Refuses a checkpoint whose state was built by a different node configuration.
    pub fn check_state(&self, first_batch: bool) -> Result<()> {
        for op in &self.ops {
            let (id, fp) = match op {
                Op::Watermark(_) => continue,
                Op::Aggregate { id, plan } => (id, plan.fingerprint()),
                Op::Dedup { id, plan } => (id, plan.fingerprint()),
                Op::Join { id, plan } => (id, plan.fingerprint()),
            };
            StateStore::new(&self.checkpoint, id.as_str())
                .check_fingerprint(&fp, first_batch)
                .at_node(&self.pipeline, id)?;
        }
        Ok(())
    }

    /// The columns that identify an output row of the last aggregation (update mode MERGE).
    pub fn merge_keys(&self) -> Option<Vec<String>> {
        self.ops.iter().rev().find_map(|o| match o {
            Op::Aggregate { plan, .. } => Some(plan.key_columns()),
            _ => None,
        })
    }

    /// Runs every Watermark and stateful node of batch `batch_id` and saves the state.
    pub async fn run(
        &self,
        planner: &mut Planner<'_>,
        batch_id: u64,
        wm: &BatchWatermark,
    ) -> Result<BatchState> {
        let clock = if self.specs.is_empty() {
            Clock::none()
        } else {
            Clock::from_ms(Some(wm.late_watermark_ms), Some(wm.watermark_ms))
        };
        let mut out = BatchState::default();
        for op in &self.ops {
            match op {
                Op::Watermark(spec) => {
                    let id = NodeId::new(spec.node.clone());
                    let (schema, rows) = input_rows(planner, &id, crate::model::node::DEFAULT_PORT)
                        .await
                        .at_node(&self.pipeline, &id)?;
                    if let Some(stats) =
                        event_time::stats(&rows, &spec.column).at_node(&self.pipeline, &id)?
                    {
                        out.event_time.insert(spec.node.clone(), stats);
                    } else if schema.index_of(&spec.column).is_err() {
                        // no rows: still say when the column is missing
                        let names: Vec<String> =
                            schema.fields().iter().map(|f| f.name().clone()).collect();
                        return Err(EngineError::Config(format!(
                            "no event-time column `{}`; columns are: {}",
                            spec.column,
                            names.join(", ")
                        ))
                        .at_node(&self.pipeline, &id));
                    }
                    let df = frame(planner, schema, rows)?;
                    planner.set_frame(id, df);
                }
                Op::Aggregate { id, plan } => {
                    let started = Instant::now();
                    let (schema, rows) = input_rows(planner, id, crate::model::node::DEFAULT_PORT)
                        .await
                        .at_node(&self.pipeline, id)?;
                    let store = StateStore::new(&self.checkpoint, id.as_str());
                    let loaded = store.load(batch_id, "state").at_node(&self.pipeline, id)?;
                    let step = plan
                        .step(&rows, &schema, loaded.batches, loaded.schema, clock, self.mode)
                        .await
                        .at_node(&self.pipeline, id)?;
                    self.finish(planner, id, &store, batch_id, step, started, clock, &mut out)?;
                }
                Op::Dedup { id, plan } => {
                    let started = Instant::now();
                    let (schema, rows) = input_rows(planner, id, crate::model::node::DEFAULT_PORT)
                        .await
                        .at_node(&self.pipeline, id)?;
                    let plan = if plan.keys.is_empty() {
                        // Distinct: every column is a key
                        DedupPlan {
                            keys: schema.fields().iter().map(|f| f.name().clone()).collect(),
                            ..plan.clone()
                        }
                    } else {
                        plan.clone()
                    };
                    let store = StateStore::new(&self.checkpoint, id.as_str());
                    let loaded = store.load(batch_id, "state").at_node(&self.pipeline, id)?;
                    let step = plan
                        .step(&rows, &schema, loaded.batches, loaded.schema, clock)
                        .await
                        .at_node(&self.pipeline, id)?;
                    self.finish(planner, id, &store, batch_id, step, started, clock, &mut out)?;
                }
                Op::Join { id, plan } => {
                    let started = Instant::now();
                    let (ls, lrows) =
                        input_rows(planner, id, "left").await.at_node(&self.pipeline, id)?;
                    let (rs, rrows) =
                        input_rows(planner, id, "right").await.at_node(&self.pipeline, id)?;
                    let store = StateStore::new(&self.checkpoint, id.as_str());
                    let left = store.load(batch_id, "left").at_node(&self.pipeline, id)?;
                    let right = store.load(batch_id, "right").at_node(&self.pipeline, id)?;
                    let step = plan
                        .step(
                            batch_id,
                            (&lrows, &ls),
                            (&rrows, &rs),
                            left.batches,
                            right.batches,
                            clock,
                        )
                        .await
                        .at_node(&self.pipeline, id)?;
                    let mut bytes = store
                        .save(batch_id + 1, "left", &step.left_state_schema, &step.left_state)
                        .at_node(&self.pipeline, id)?;
                    bytes += store
                        .save(batch_id + 1, "right", &step.right_state_schema, &step.right_state)
                        .at_node(&self.pipeline, id)?;
                    let mut metrics = step.metrics;
                    metrics.state_on_disk_bytes = bytes;
                    metrics.commit_time_ms = started.elapsed().as_millis() as u64;
                    self.late(id, &step.late, clock, &mut out);
                    self.late(id, &step.late_right, clock, &mut out);
                    out.expires(step.next_expiry_us);
                    out.operators.insert(id.to_string(), metrics);
                    let df = frame(planner, step.schema, step.rows)?;
                    planner.set_frame(id.clone(), df);
                }
            }
        }
        Ok(out)
    }

    /// After a single-input node's step: saves state version N+1, records its metrics, late
    /// rows and next expiry, and leaves its output as the node's frame.
    #[allow(clippy::too_many_arguments)]
    fn finish(
        &self,
        planner: &mut Planner<'_>,
        id: &NodeId,
        store: &StateStore,
        batch_id: u64,
        step: StepOutput,
        started: Instant,
        clock: Clock,
        out: &mut BatchState,
    ) -> Result<()> {
        let bytes = store
            .save(batch_id + 1, "state", &step.state_schema, &step.state)
            .at_node(&self.pipeline, id)?;
        let mut metrics = step.metrics;
        metrics.state_on_disk_bytes = bytes;
        metrics.commit_time_ms = started.elapsed().as_millis() as u64;
        self.late(id, &step.late, clock, out);
        out.expires(step.next_expiry_us);
        out.operators.insert(id.to_string(), metrics);
        let df = frame(planner, step.schema, step.rows)?;
        planner.set_frame(id.clone(), df);
        Ok(())
    }

    /// Late rows of a stateful node go to quarantine when its Watermark asks for it.
    fn late(&self, id: &NodeId, late: &[RecordBatch], clock: Clock, out: &mut BatchState) {
        let Some(wm_node) = self.quarantine_late.get(id) else { return };
        if late.is_empty() {
            return;
        }
        let wm = clock.late_us.map(|us| format_ms(us.div_euclid(1000))).unwrap_or_default();
        let reason = format!(
            "late row: its event time is at or below the watermark {wm}; dropped by `{id}`"
        );
        for (i, raw) in json_lines(late).into_iter().enumerate() {
            out.quarantine.push((
                NodeId::new(wm_node.clone()),
                BadRecord { file: String::new(), line: i as u64 + 1, raw, reason: reason.clone() },
            ));
        }
    }

    /// The state stores of the query's stateful operators (what the checkpoint purge trims).
    pub fn state_stores(&self) -> Vec<StateStore> {
        self.ops
            .iter()
            .filter_map(|op| match op {
                Op::Watermark(_) => None,
                Op::Aggregate { id, .. } | Op::Dedup { id, .. } | Op::Join { id, .. } => {
                    Some(StateStore::new(&self.checkpoint, id.as_str()))
                }
            })
            .collect()
    }
}
