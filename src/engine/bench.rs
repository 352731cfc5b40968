//! Benchmarks that need the engine's inside view (`medallion bench ...`). They print figures;
//! tests never assert on them.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::model::node::{DeltaSink, FileSource, NodeKind, ParseMode, WriteMode};
use crate::model::{Node, Pipeline, PipelineMode, Project, Trigger};

use super::events::RunEvent;
use super::stream::{StreamOptions, run_stream};
use super::{EngineError, Result, checkpoint::SourceOffset, demo_data};

/// Delay from a file's arrival in the landing folder to its rows being committed to bronze.
#[derive(Clone, Debug)]
pub struct LatencyReport {
    pub files: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub batches: usize,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[idx]
}

/// Streams `files` small JSON files, one every `interval_ms`, into a bronze table in
/// notification mode, and measures arrival → commit delays.
pub async fn stream_latency(
    dir: &Path,
    files: usize,
    interval_ms: u64,
    rows_per_file: usize,
) -> Result<LatencyReport> {
    let landing = dir.join("landing/users");
    std::fs::create_dir_all(&landing).map_err(|e| EngineError::io(&landing, e))?;
    let mut pipeline = Pipeline::new("bench_bronze");
    pipeline.mode = PipelineMode::Stream;
    pipeline.trigger = Some(Trigger::Interval { interval_ms: 1000 });
    pipeline
        .add_node(Node::new(
            "landing",
            NodeKind::FileSource(FileSource {
                path: "landing/users".into(),
                schema: Some(demo_data::USERS_DDL.into()),
                parse_mode: ParseMode::DropMalformed,
                use_notifications: true,
                ..FileSource::default()
            }),
        ))
        .map_err(|e| EngineError::Config(e.to_string()))?;
    pipeline
        .add_node(Node::new(
            "bronze",
            NodeKind::DeltaSink(DeltaSink {
                table: "bronze/users".into(),
                mode: WriteMode::Append,
                ..DeltaSink::default()
            }),
        ))
        .map_err(|e| EngineError::Config(e.to_string()))?;
    pipeline
        .connect(&"landing".into(), &"bronze".into(), "in")
        .map_err(|e| EngineError::Config(e.to_string()))?;
    let mut project = Project::new("bench");
    project.pipelines.push(pipeline);

    let committed: Mutex<HashMap<String, Instant>> = Mutex::new(HashMap::new());
    let batches = Mutex::new(0usize);
    let on_event = |e: RunEvent| {
        if let RunEvent::BatchCompleted(p) = e {
            let now = Instant::now();
            if let Ok(mut b) = batches.lock() {
                *b += 1;
            }
            for s in p.sources.values() {
                if let SourceOffset::Files { files } = &s.offset
                    && let Ok(mut c) = committed.lock()
                {
                    for f in files {
                        c.insert(f.path.clone(), now);
                    }
                }
            }
        }
    };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let opts =
        StreamOptions { available_now: false, stop: stop_rx, crash_at: None, meter_edges: false };
    let pipeline = &project.pipelines[0];
    let run = run_stream(&project, pipeline, dir, &opts, &on_event);
    let mut written: HashMap<String, Instant> = HashMap::new();
    let writer = async {
        // let the stream start and settle
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut n = 0u64;
        for i in 0..files {
            let mut text = String::new();
            for _ in 0..rows_per_file {
                let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(n);
                let user = demo_data::random_user(&mut rng, n);
                text.push_str(&serde_json::to_string(&user).unwrap_or_default());
                text.push('\n');
                n += 1;
            }
            let name = format!("bench-{i:06}.json");
            let tmp = landing.join(format!(".{name}"));
            std::fs::write(&tmp, text).map_err(|e| EngineError::io(&tmp, e))?;
            std::fs::rename(&tmp, landing.join(&name)).map_err(|e| EngineError::io(&tmp, e))?;
            written.insert(name, Instant::now());
            tokio::time::sleep(Duration::from_millis(interval_ms)).await;
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if committed.lock().map(|c| c.len() >= files).unwrap_or(false) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = stop_tx.send(true);
        Ok::<_, EngineError>(())
    };
    let (run_result, write_result) = tokio::join!(run, writer);
    run_result?;
    write_result?;
    let committed = committed.into_inner().unwrap_or_default();
    let mut delays: Vec<f64> = written
        .iter()
        .filter_map(|(name, at)| {
            committed.get(name).map(|c| c.saturating_duration_since(*at).as_secs_f64() * 1000.0)
        })
        .collect();
    if delays.len() < files {
        return Err(EngineError::Config(format!(
            "only {} of {files} files were committed within 30 s",
            delays.len()
        )));
    }
    delays.sort_by(f64::total_cmp);
    Ok(LatencyReport {
        files,
        p50_ms: percentile(&delays, 0.5),
        p99_ms: percentile(&delays, 0.99),
        max_ms: delays.last().copied().unwrap_or(f64::NAN),
        batches: batches.into_inner().unwrap_or_default(),
    })
}
