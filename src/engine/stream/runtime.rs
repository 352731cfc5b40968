//! The micro-batch loop: triggers, restoring from the checkpoint, planning and logging each
//! batch's offsets, waiting for the next trigger (or the broker). One batch's work is in
//! `microbatch`; the sources are driven through `StreamSource` without knowing their kinds.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};

use crate::model::node::NodeKind;
use crate::model::{NodeId, Pipeline, Project, Trigger};

use super::super::delta::{self, CommitMeta};
use super::super::events::RunEvent;
use super::super::lakehouse::AutoCompactor;
use super::super::open_tables::OpenTables;
use super::super::sources::stream_source::{StreamSource, build_sources};
use super::super::{EngineError, NodeContext, Result};
use super::checkpoint::{
    Checkpoint, CommitEntry, MIN_BATCHES_TO_RETAIN, Metadata, OffsetsEntry, SourceOffset, now_ms,
};
use super::microbatch::{StatefulBatch, run_batch};
use super::progress::StreamSummary;
use super::purge::BackgroundPurge;
use super::stateful::StatefulQuery;

/// Where a test makes the runtime stop as if the process died.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrashPoint {
    /// `offsets/N` written, nothing read yet.
    AfterOffsets,
    /// Stateful nodes saved state version N+1, no sink committed yet.
    AfterStateWrite,
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

/// The pipeline's checkpoint folder: its `checkpoint` setting, or `_checkpoints/<pipeline>`.
pub fn checkpoint_dir(pipeline: &Pipeline, root: &Path) -> Result<PathBuf> {
    let rel = match &pipeline.checkpoint {
        Some(c) => crate::model::env::expand(c)?,
        None => format!("_checkpoints/{}", pipeline.name),
    };
    Ok(delta::resolve(root, &rel))
}

/// The pipeline with its sources' per-trigger caps lifted (`maxFilesPerTrigger`,
/// `maxBytesPerTrigger`, `maxOffsetsPerTrigger`), as Spark's `Trigger.Once` ignores them.
fn without_trigger_caps(pipeline: &Pipeline) -> Pipeline {
    // more files than any batch lists, small enough that `from + cap` cannot overflow
    const NO_CAP: usize = u32::MAX as usize;
    let mut p = pipeline.clone();
    for n in &mut p.nodes {
        match &mut n.kind {
            NodeKind::FileSource(f) => {
                f.max_files_per_trigger = Some(NO_CAP);
                f.max_bytes_per_trigger = None;
            }
            NodeKind::DeltaSource(d) => d.max_files_per_trigger = Some(NO_CAP),
            NodeKind::KafkaSource(k) => k.max_offsets_per_trigger = None,
            _ => {}
        }
    }
    p
}

/// Source schemas as DDL, for the checkpoint metadata.
fn source_schemas(sources: &[StreamSource]) -> BTreeMap<String, String> {
    sources.iter().filter_map(|s| Some((s.node().to_string(), s.schema_ddl()?))).collect()
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
    // Trigger.Once: everything available at start in one batch, the per-trigger caps ignored
    let uncapped = (trigger == Trigger::Once).then(|| without_trigger_caps(pipeline));
    let mut sources =
        build_sources(project, uncapped.as_ref().unwrap_or(pipeline), root, &wake_tx).await?;
    let cp = Checkpoint::new(checkpoint_dir(pipeline, root)?);
    let stateful = StatefulQuery::analyze(pipeline, cp.dir())?;
    let meta = cp.open(Metadata {
        id: uuid::Uuid::new_v4().to_string(),
        pipeline: pipeline.name.clone(),
        sources: sources.iter().map(|s| (s.node().to_string(), s.describe())).collect(),
        schemas: source_schemas(&sources),
        created_at: chrono::Utc::now().to_rfc3339(),
        watermark_policy: stateful.as_ref().map(|_| pipeline.watermark_policy),
    })?;
    // the policy is the checkpoint's, as Spark keeps it across restarts
    let policy = meta.watermark_policy.unwrap_or(pipeline.watermark_policy);
    if policy != pipeline.watermark_policy
        && stateful.as_ref().is_some_and(|q| q.watermark_specs().len() > 1)
    {
        on_event(RunEvent::Warning {
            pipeline: pipeline.name.clone(),
            node: None,
            message: format!(
                "watermark_policy is \"{}\" in the checkpoint; the pipeline's \"{}\" applies only to a new checkpoint",
                policy.as_str(),
                pipeline.watermark_policy.as_str()
            ),
        });
    }
    let mut compactor = auto_compactor(project, pipeline, root).await?;
    let mut purge = BackgroundPurge::default();
    // sink and static tables stay open across batches (see open_tables)
    let tables = OpenTables::default();
    // restore: every committed batch's offsets are processed (purged ones via the compact log)
    let last_committed = cp.last_committed()?;
    for (node, offset) in cp.compacted()? {
        for s in sources.iter_mut().filter(|s| s.node().as_str() == node) {
            s.advance(&offset);
        }
    }
    if let Some(q) = &stateful {
        q.check_state(last_committed.is_none())?;
    }
    let last_commit = match last_committed {
        Some(c) => cp.commit(c)?,
        None => None,
    };
    // the watermarks for the next batch, and when state would next be evicted
    let mut next_watermark =
        last_commit.as_ref().and_then(|c| c.next_watermark.clone()).unwrap_or_default();
    let mut next_expiry_us = last_commit.as_ref().and_then(|c| c.next_expiry_us);
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
        s.restart_clock();
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
                    for w in s.take_warnings() {
                        on_event(RunEvent::Warning {
                            pipeline: pipeline.name.clone(),
                            node: Some(s.node().clone()),
                            message: w,
                        });
                    }
                }
                if let Some(e) = away {
                    waiting(pipeline, &e, on_event);
                    wait(1000, Instant::now(), &mut stop, &mut wake_rx).await;
                    continue;
                }
                // a batch without new data still runs when the watermark has moved far enough
                // to close a window, evict a key or emit an outer join's NULL row
                let no_data_due = stateful.is_some()
                    && next_expiry_us.is_some_and(|e| e <= next_watermark.watermark_ms * 1000);
                if offsets.values().all(SourceOffset::is_empty) && !no_data_due {
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
                let entry = OffsetsEntry {
                    batch_id,
                    timestamp_ms: now_ms(),
                    sources: offsets,
                    watermark: stateful.as_ref().map(|_| next_watermark.clone()),
                };
                cp.write_offsets(&entry)?;
                (entry, false)
            }
        };
        let plan_ms = planned.elapsed().as_millis() as u64;
        if opts.crash_at == Some((CrashPoint::AfterOffsets, batch_id)) {
            return Err(EngineError::InjectedCrash("after offsets"));
        }
        // a replay runs with the watermarks its offsets fixed
        let watermark = entry.watermark.clone().unwrap_or_else(|| next_watermark.clone());
        let stateful_batch =
            stateful.as_ref().map(|query| StatefulBatch { query, watermark: &watermark });
        let batch = run_batch(
            project,
            pipeline,
            root,
            &meta,
            &sources,
            &entry,
            replayed,
            opts,
            stateful_batch,
            &mut compactor,
            &tables,
        )
        .await;
        report_compactions(pipeline, &mut compactor, on_event);
        // a plan that broke on a source's read reports the read's error (a broker away is
        // retried: the batch is replayed from its offsets)
        let batch = match batch {
            Err(e) if !e.is_retryable() => {
                let mut failure = None;
                for s in &sources {
                    if let Some(f) = s.read_failure().await {
                        failure = Some(f.at_node(&pipeline.name, s.node()));
                        break;
                    }
                }
                Err(failure.unwrap_or(e))
            }
            b => b,
        };
        let (progress, batch_state) = match batch {
            Ok(p) => p,
            Err(e) if e.is_retryable() => {
                // offsets/N stays: the same batch is replayed when the broker is back
                waiting(pipeline, &e, on_event);
                wait(1000, Instant::now(), &mut stop, &mut wake_rx).await;
                continue;
            }
            Err(e) => return Err(e),
        };
        if let (Some(q), Some(bs)) = (&stateful, &batch_state) {
            next_watermark = watermark.next(q.watermark_specs(), &bs.event_time, policy);
            next_expiry_us = bs.next_expiry_us;
        }
        let committing = Instant::now();
        cp.write_commit(&CommitEntry {
            batch_id,
            timestamp_ms: now_ms(),
            sinks: progress.sinks.clone(),
            next_watermark: stateful.as_ref().map(|_| next_watermark.clone()),
            next_expiry_us,
        })?;
        // small files gathered: compact in the background while the next batch is planned
        compactor.start_due(&tables).await;
        // bounded checkpoint: every 10 batches, fold all but the newest 100 into the compact
        // log and delete them, with the state versions no replay can need (beside the next
        // batches: see `purge`)
        let retain = pipeline.min_batches_to_retain.unwrap_or(MIN_BATCHES_TO_RETAIN).max(1);
        if (batch_id + 1) % 10 == 0 {
            let stores = stateful.as_ref().map(|q| q.state_stores()).unwrap_or_default();
            purge.start(&cp, batch_id, retain, stores).await?;
        }
        for s in sources.iter_mut() {
            if let Some(o) = entry.sources.get(s.node().as_str()) {
                s.advance(o);
            }
            s.after_commit();
        }
        let mut progress = progress;
        for (node, sp) in progress.sources.iter_mut() {
            if let Some(s) = sources.iter().find(|s| s.node().as_str() == node) {
                sp.backlog = s.backlog();
                if let Some(lag) = s.lag() {
                    sp.lag = Some(lag);
                }
            }
        }
        // Spark's name: the commit log's entry (here with the upkeep it starts and the purge)
        progress
            .duration_ms
            .insert("commitOffsets".into(), committing.elapsed().as_millis() as u64);
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
    let stopped = *stop.borrow();
    compactor.finish(&tables, !stopped).await;
    purge.wait().await?;
    report_compactions(pipeline, &mut compactor, on_event);
    on_event(RunEvent::PipelineFinished {
        pipeline: pipeline.name.clone(),
        rows_written: summary.rows_written,
        duration_ms: run_started.elapsed().as_millis() as u64,
        stopped,
    });
    Ok(summary)
}

/// The background upkeep of the stream's Delta sinks: compaction of small files (unless
/// `auto_compact = false`), log checkpoints and log cleanup.
async fn auto_compactor(
    project: &Project,
    pipeline: &Pipeline,
    root: &Path,
) -> Result<AutoCompactor> {
    let mut compactor = AutoCompactor::default();
    for sink in pipeline.sinks() {
        let NodeKind::DeltaSink(cfg) = &sink.kind else { continue };
        let compact = (cfg.auto_compact != Some(false)).then_some(cfg.auto_compact_min_files);
        let interval =
            cfg.properties.get("delta.checkpointInterval").and_then(|v| v.trim().parse().ok());
        let path = delta::resolve(root, &crate::model::env::expand(&cfg.table)?);
        let meta = CommitMeta {
            project: project.name.clone(),
            pipeline: pipeline.name.clone(),
            node: sink.id.to_string(),
        };
        compactor
            .watch(sink.id.as_str(), &path, meta, compact, interval)
            .await
            .at_node(&pipeline.name, &sink.id)?;
    }
    Ok(compactor)
}

/// Tells what the background compactions did: a failed one is a warning (the table stays as
/// it was; the next one tries again), never a failed stream.
fn report_compactions(
    pipeline: &Pipeline,
    compactor: &mut AutoCompactor,
    on_event: &(dyn Fn(RunEvent) + Send + Sync),
) {
    for c in compactor.take_done() {
        if let Some(Err(e)) = &c.logs_cleaned {
            on_event(RunEvent::Warning {
                pipeline: pipeline.name.clone(),
                node: Some(NodeId::new(c.sink.clone())),
                message: format!(
                    "the log checkpoint or log cleanup of {} failed (the table is unchanged; the next interval tries again): {}",
                    c.table.display(),
                    e.detail()
                ),
            });
        }
        match c.result {
            None => {}
            Some(Ok(report)) => on_event(RunEvent::Compacted {
                pipeline: pipeline.name.clone(),
                node: NodeId::new(c.sink),
                table: c.table.display().to_string(),
                files_removed: report.files_removed,
                files_added: report.files_added,
                version: report.version,
                caught_up: c.caught_up,
            }),
            Some(Err(e)) => on_event(RunEvent::Warning {
                pipeline: pipeline.name.clone(),
                node: Some(NodeId::new(c.sink)),
                message: format!(
                    "auto-compaction of {} failed (the table is unchanged): {}",
                    c.table.display(),
                    e.detail()
                ),
            }),
        }
    }
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
