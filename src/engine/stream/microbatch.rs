//! One micro-batch: read each source's planned offsets, run the Watermark and stateful nodes
//! (saving their state version before any sink commits), plan the transforms, commit every
//! sink (skipping a Delta sink that already holds the batch), quarantine malformed records
//! and late rows, and report the batch's progress.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use deltalake::kernel::Transaction;

use crate::model::node::{NodeKind, ParseMode};
use crate::model::{NodeId, Pipeline, Project};

use super::super::delta::CommitMeta;
use super::super::lakehouse::AutoCompactor;
use super::super::meter::{EdgeMeter, node_self_ms};
use super::super::open_tables::OpenTables;
use super::super::plan::Planner;
use super::super::sources::json_lines::BadRecord;
use super::super::sources::stream_source::StreamSource;
use super::super::{EngineError, NodeContext, Result, sinks};
use super::checkpoint::{Metadata, OffsetsEntry, now_ms};
use super::operators::event_time::EventTimeStats;
use super::progress::{BadRecordCounts, EventTimeProgress, SourceProgress, StreamProgress};
use super::quarantine::{StreamBatch, quarantine_path, write_quarantine};
use super::runtime::{CrashPoint, StreamOptions};
use super::stateful::{BatchState, StatefulQuery};
use super::watermark::{BatchWatermark, format_ms};

/// The stateful part of a stream and the watermarks of this batch.
pub(super) struct StatefulBatch<'a> {
    pub query: &'a StatefulQuery,
    pub watermark: &'a BatchWatermark,
}

#[allow(clippy::too_many_arguments)]
pub(super) async fn run_batch(
    project: &Project,
    pipeline: &Pipeline,
    root: &Path,
    meta: &Metadata,
    sources: &[StreamSource],
    entry: &OffsetsEntry,
    replayed: bool,
    opts: &StreamOptions,
    stateful: Option<StatefulBatch<'_>>,
    compactor: &mut AutoCompactor,
    tables: &OpenTables,
) -> Result<(StreamProgress, Option<BatchState>)> {
    let mut durations = BTreeMap::new();
    let t_read = Instant::now();
    let meter = opts.meter_edges.then(|| Arc::new(EdgeMeter::new()));
    let mut planner = Planner::new(project, pipeline, root).with_open_tables(tables.clone());
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

    // stateful nodes: their state version N+1 is on disk before any sink commits batch N
    let t_state = Instant::now();
    let batch_state = match &stateful {
        Some(s) => Some(s.query.run(&mut planner, entry.batch_id, s.watermark).await?),
        None => None,
    };
    if let Some(bs) = &batch_state {
        quarantine.extend(bs.quarantine.iter().cloned());
        durations.insert("state".to_owned(), t_state.elapsed().as_millis() as u64);
    }
    if opts.crash_at == Some((CrashPoint::AfterStateWrite, entry.batch_id)) {
        return Err(EngineError::InjectedCrash("after the state write, before the Delta commit"));
    }

    // every sink's input is planned before any commit: an expectation that fails (or a
    // fail_fast record) stops the batch with nothing written. Only a replayed batch can be in
    // a table already (a fresh batch id was never written): the check reads the log since its
    // last checkpoint, so it is not paid on every batch.
    let mut already_committed = BTreeMap::new();
    for sink in pipeline.sinks() {
        if let NodeKind::DeltaSink(cfg) = &sink.kind
            && replayed
        {
            let path = planner.resolve(&cfg.table).at_node(&pipeline.name, &sink.id)?;
            let app_id = format!("{}/{}", meta.id, sink.id);
            if let Some(v) = committed_version(tables, &path, &app_id, entry.batch_id).await? {
                already_committed.insert(sink.id.clone(), v);
                continue;
            }
        }
        planner.node_frame(&sink.id).await?;
    }
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
        if let Some(&v) = already_committed.get(&sink.id) {
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
        .with_application_transaction(Transaction::new(&app_id, entry.batch_id as i64))
        // delta-rs would list the whole _delta_log at every commit to clean it, and write
        // every 100th commit's log checkpoint inline: the sink's upkeep does both in the
        // background (lakehouse::auto_compact)
        .with_cleanup_expired_logs(Some(false))
        .with_create_checkpoint(false);
        // a stateful query's output mode decides how its rows land (update = MERGE on keys)
        let cfg = match &stateful {
            Some(s) => sinks::delta::for_output_mode(cfg, s.query.mode, s.query.merge_keys()),
            None => cfg.clone(),
        };
        // an append goes ahead of a background compaction of this table (Delta lets both
        // commit, in either order); a MERGE or an overwrite reads its files, and waits for it
        compactor
            .before_write(sink.id.as_str(), cfg.mode == crate::model::node::WriteMode::Append)
            .await;
        let table = tables.latest(&path).await.at_node(&pipeline.name, &sink.id)?;
        let (outcome, table) = sinks::delta::write(table, &path, &cfg, df, props)
            .await
            .at_node(&pipeline.name, &sink.id)?;
        tables.remember(&path, table).await;
        compactor.committed(sink.id.as_str(), &outcome);
        sinks_done.insert(sink.id.to_string(), outcome.version);
        rows_per_node.insert(sink.id.to_string(), outcome.rows_added + outcome.rows_updated);
        sink_write_ms.insert(sink.id.to_string(), t_sink.elapsed().as_millis() as u64);
    }
    // a source read as the plan ran (Kafka) knows its rows once its read has ended
    for s in sources {
        if let Some(rows) = s.rows_read().await.at_node(&pipeline.name, s.node())? {
            input_rows += rows;
            if let Some(p) = source_progress.get_mut(s.node().as_str()) {
                p.input_rows = rows;
            }
        }
    }
    let mut transforms: BTreeMap<String, BadRecordCounts> = BTreeMap::new();
    for (node, mode, record) in planner.take_bad_records() {
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
    let mut expectations = BTreeMap::new();
    for (node, report) in std::mem::take(&mut planner.quality) {
        expectations.insert(node.to_string(), report);
    }
    quarantine.append(&mut planner.expectation_drops);
    if !quarantine.is_empty() {
        let table = quarantine_path(first_sink_table.as_deref(), root, pipeline);
        let batch = StreamBatch { meta, tables, replayed };
        write_quarantine(&table, Some(batch), pipeline, project, entry.batch_id, &quarantine)
            .await?;
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
    let event_time = match (&stateful, &batch_state) {
        (Some(s), Some(bs)) if !s.query.watermark_specs().is_empty() => {
            let mut seen = EventTimeStats::default();
            for st in bs.event_time.values() {
                seen.merge(st);
            }
            let some = |ms: i64| if seen.count > 0 { format_ms(ms) } else { String::new() };
            Some(EventTimeProgress {
                min: some(seen.min_ms),
                max: some(seen.max_ms),
                avg: some(seen.avg_ms),
                watermark: format_ms(s.watermark.watermark_ms),
                watermark_ms: s.watermark.watermark_ms,
                watermark_nodes: s.query.watermark_specs().iter().map(|w| w.node.clone()).collect(),
            })
        }
        _ => None,
    };
    let state_operators = batch_state.as_ref().map(|b| b.operators.clone()).unwrap_or_default();
    let progress = StreamProgress {
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
        event_time,
        state_operators,
        expectations,
    };
    Ok((progress, batch_state))
}

/// The table version holding batch `batch_id` of `app_id`, if the table already has it.
pub(super) async fn committed_version(
    tables: &OpenTables,
    path: &Path,
    app_id: &str,
    batch_id: u64,
) -> Result<Option<i64>> {
    let Some(table) = tables.latest(path).await? else { return Ok(None) };
    let snapshot = table.snapshot()?;
    let txn = snapshot.transaction_version(table.log_store().as_ref(), app_id).await?;
    Ok(match txn {
        Some(v) if v >= batch_id as i64 => Some(table.version().map_or(-1, |v| v as i64)),
        _ => None,
    })
}
