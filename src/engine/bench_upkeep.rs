//! `medallion bench upkeep`: figures for lakehouse upkeep (never a test). A generator stream
//! of small batches (the demo's 200 rows) runs as fast as it can, with auto-compaction and the
//! bounded checkpoint; at each checkpoint of the run it reports the table's data files and
//! versions, the checkpoint's files, the start-up time of a restart, RSS and batch times.
//! And `SELECT count(*)` over a table of many small files, before and after OPTIMIZE.

use std::num::NonZeroU64;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use arrow::array::{Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema};

use crate::model::Project;

use super::delta::{self, CommitMeta};
use super::events::RunEvent;
use super::lakehouse::{OptimizeOptions, optimize, table_health};
use super::stream::checkpoint::disk_usage;
use super::stream::{StreamOptions, run_stream};
use super::{EngineError, Result};

/// The stream at one point of the run.
#[derive(Clone, Debug, Default)]
pub struct LongStreamPoint {
    pub batches: u64,
    pub data_files: usize,
    pub table_versions: i64,
    pub checkpoint_files: usize,
    pub checkpoint_bytes: u64,
    /// A restart with nothing new to do: restore from the checkpoint, plan, stop.
    pub startup_ms: f64,
    pub rss_mb: f64,
    pub peak_rss_mb: f64,
    /// Batch durations over the segment that ended here.
    pub batch_p50_ms: f64,
    pub batch_p99_ms: f64,
    pub secs: f64,
}

impl std::fmt::Display for LongStreamPoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "batch {:>6}: {:>4} data files, v{:<6} checkpoint {:>4} files {:>8} B, start-up {:>6.1} ms, RSS {:>6.1} MB (peak {:>6.1}), batch p50 {:>5.1} ms p99 {:>6.1} ms, segment {:.1} s",
            self.batches,
            self.data_files,
            self.table_versions,
            self.checkpoint_files,
            self.checkpoint_bytes,
            self.startup_ms,
            self.rss_mb,
            self.peak_rss_mb,
            self.batch_p50_ms,
            self.batch_p99_ms,
            self.secs
        )
    }
}

/// `VmRSS` and `VmHWM` of this process in MB (0 where /proc is not there).
pub fn rss_mb() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// The long stream: availableNow (`trigger_ms` None: batches as fast as they go, the worst case
/// for upkeep running beside them) or a trigger interval, as the demo runs.
fn project(rows_per_batch: u64, max_rows: u64, trigger_ms: Option<u64>) -> Result<Project> {
    // availableNow batches hold at most ten seconds' worth of generator rows; with a trigger,
    // the generator makes `rows_per_batch` rows per interval of wall time
    let (trigger, rows_per_second) = match trigger_ms {
        None => ("available_now".to_owned(), (rows_per_batch / 10).max(1)),
        Some(ms) => (format!("{ms}ms"), (rows_per_batch * 1000 / ms.max(1)).max(1)),
    };
    let text = format!(
        r#"
format_version = 1
name = "bench_upkeep"
[[pipeline]]
name = "long"
mode = "stream"
trigger = "{trigger}"
[[pipeline.nodes]]
id = "gen"
kind = "generator_source"
rows_per_second = {rows_per_second}
max_rows = {max_rows}
[[pipeline.nodes]]
id = "sink"
kind = "delta_sink"
table = "bronze/users"
[[pipeline.edges]]
from = "gen"
to = "sink"
"#
    );
    Project::from_toml(&text, Path::new("bench_upkeep.toml"))
        .map_err(|e| EngineError::Config(e.to_string()))
}

/// Runs the stream to each of `marks` batches in turn, measuring at each (with a trigger
/// interval, the segment stops once its rows are committed).
pub async fn long_stream(
    dir: &Path,
    marks: &[u64],
    rows_per_batch: u64,
    trigger_ms: Option<u64>,
) -> Result<Vec<LongStreamPoint>> {
    let rows_per_batch = (rows_per_batch / 10).max(1) * 10;
    let mut out = Vec::new();
    let mut rows_before = 0;
    for &mark in marks {
        let max_rows = mark * rows_per_batch;
        let p = project(rows_per_batch, max_rows, trigger_ms)?;
        let pipeline = &p.pipelines[0];
        // batch durations, and the rows the stream has made so far
        let seen = Mutex::new((Vec::new(), rows_before));
        // with a trigger the stream waits for rows forever: it stops once the mark's are in
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let opts = StreamOptions { stop: stop_rx, ..StreamOptions::new(trigger_ms.is_none()) };
        let started = Instant::now();
        run_stream(&p, pipeline, dir, &opts, &|e| {
            if let RunEvent::BatchCompleted(b) = e
                && let Some(&total) = b.duration_ms.get("total")
                && let Ok(mut seen) = seen.lock()
            {
                // durationMs is whole ms (as Spark's): the rate gives the fraction a ~5 ms
                // batch's p50 needs
                let ms = if b.processed_rows_per_second > 0.0 {
                    b.num_input_rows as f64 / b.processed_rows_per_second * 1000.0
                } else {
                    total as f64
                };
                seen.0.push(ms);
                seen.1 += b.num_input_rows;
                if seen.1 >= max_rows {
                    let _ = stop.send(true);
                }
            }
        })
        .await?;
        rows_before = max_rows;
        let secs = started.elapsed().as_secs_f64();
        // a restart with nothing to do: what start-up costs at this point
        let restart = Instant::now();
        run_stream(&p, pipeline, dir, &StreamOptions::new(true), &|_| {}).await?;
        let startup_ms = restart.elapsed().as_secs_f64() * 1000.0;
        let mut d = seen.into_inner().map(|s| s.0).unwrap_or_default();
        d.sort_by(f64::total_cmp);
        let health = table_health(&dir.join("bronze/users")).await?;
        let (checkpoint_files, checkpoint_bytes) = disk_usage(&dir.join("_checkpoints/long"));
        let (rss, peak) = rss_mb();
        out.push(LongStreamPoint {
            batches: mark,
            data_files: health.files,
            table_versions: health.version,
            checkpoint_files,
            checkpoint_bytes,
            startup_ms,
            rss_mb: rss,
            peak_rss_mb: peak,
            batch_p50_ms: percentile(&d, 0.5),
            batch_p99_ms: percentile(&d, 0.99),
            secs,
        });
    }
    Ok(out)
}

/// `SELECT count(*)` over a table of `files` one-row files, before and after OPTIMIZE.
#[derive(Clone, Debug, Default)]
pub struct SmallFilesReport {
    pub files_before: usize,
    pub files_after: usize,
    pub count_before_ms: f64,
    pub count_after_ms: f64,
    pub optimize_ms: f64,
}

impl std::fmt::Display for SmallFilesReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SELECT count(*) over {} small files: {:.0} ms; OPTIMIZE took {:.0} ms; over {} file(s): {:.0} ms",
            self.files_before,
            self.count_before_ms,
            self.optimize_ms,
            self.files_after,
            self.count_after_ms
        )
    }
}

async fn time_count(path: &Path) -> Result<f64> {
    let started = Instant::now();
    let ctx = super::plan::session_context();
    let table = delta::open(path).await?;
    ctx.register_table("t", table.table_provider().await?)?;
    ctx.sql("SELECT count(*) FROM t").await?.collect().await?;
    Ok(started.elapsed().as_secs_f64() * 1000.0)
}

pub async fn small_files_query(dir: &Path, files: usize) -> Result<SmallFilesReport> {
    let path = dir.join("bronze/small");
    let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
    // one row per batch and a 1-byte target size: one file per row, in one commit
    let batches: Vec<RecordBatch> = (0..files as i64)
        .map(|i| RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(vec![i]))]))
        .collect::<std::result::Result<_, _>>()?;
    delta::open_for_write(&path)
        .await?
        .write(batches)
        .with_target_file_size(NonZeroU64::new(1))
        .await?;
    let files_before = table_health(&path).await?.files;
    let count_before_ms = time_count(&path).await?;
    let started = Instant::now();
    optimize(&path, &OptimizeOptions::default(), &CommitMeta::tool("bench")).await?;
    let optimize_ms = started.elapsed().as_secs_f64() * 1000.0;
    let files_after = table_health(&path).await?.files;
    let count_after_ms = time_count(&path).await?;
    Ok(SmallFilesReport { files_before, files_after, count_before_ms, count_after_ms, optimize_ms })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// With a trigger interval, each segment stops once its rows are in: the marks' batches
    /// and rows land (the generator makes 200 rows per interval) and the run ends.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_triggered_long_stream_stops_at_each_mark() {
        let dir = tempfile::tempdir().unwrap();
        let run = long_stream(dir.path(), &[3, 6], 200, Some(50));
        // a stop that never came would leave the stream waiting for rows forever
        let points = tokio::time::timeout(std::time::Duration::from_secs(120), run)
            .await
            .expect("the triggered stream stopped")
            .unwrap();
        assert_eq!(points.len(), 2);
        assert!(points.iter().all(|p| p.batch_p50_ms > 0.0), "every segment ran batches");
        let ctx = super::super::plan::session_context();
        let table = delta::open(&dir.path().join("bronze/users")).await.unwrap();
        ctx.register_table("t", delta::scan_in(&table, &ctx).await.unwrap()).unwrap();
        let n = ctx.sql("SELECT count(*) AS n FROM t").await.unwrap().collect().await.unwrap();
        let n = n[0].column(0).as_any().downcast_ref::<Int64Array>().unwrap().value(0);
        assert_eq!(n, 6 * 200);
    }
}
