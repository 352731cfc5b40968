//! `medallion bench stateful`: stateful streams at scale, with figures (never a test):
//! events through a 1-minute tumbling count by key with a 10-minute watermark, and a
//! stream-stream join of two event streams, both `--available-now` from landing files.
//! Run under `/usr/bin/time -v` for CPU seconds and peak RSS.

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::model::Project;

use super::events::RunEvent;
use super::stream::{StreamOptions, run_stream};
use super::{EngineError, Result};

/// What one stateful benchmark measured.
#[derive(Clone, Debug, Default)]
pub struct StatefulReport {
    pub what: String,
    pub input_rows: u64,
    pub output_rows: u64,
    pub batches: u64,
    pub secs: f64,
    /// Most rows held in state after any batch.
    pub max_state_rows: u64,
    /// Bytes of the newest state version on disk.
    pub state_bytes: u64,
}

impl std::fmt::Display for StatefulReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: {} input rows in {} batches, {:.2} s, {:.0} rows/s; {} rows out; state at most {} rows, {} bytes on disk at the end",
            self.what,
            self.input_rows,
            self.batches,
            self.secs,
            self.input_rows as f64 / self.secs.max(1e-9),
            self.output_rows,
            self.max_state_rows,
            self.state_bytes
        )
    }
}

/// First event: 2026-01-01T00:00:00Z.
const BASE_MS: i64 = 1_767_225_600_000;

fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_default()
}

/// Writes `rows` JSON lines in event-time order over `files` files of `folder`.
fn write_files(folder: &Path, files: usize, rows: u64, line: impl Fn(u64) -> String) -> Result<()> {
    std::fs::create_dir_all(folder).map_err(|e| EngineError::io(folder, e))?;
    let per_file = rows.div_ceil(files.max(1) as u64).max(1);
    let mut n = 0;
    let mut f = 0;
    while n < rows {
        let path = folder.join(format!("part-{f:05}.json"));
        let file = std::fs::File::create(&path).map_err(|e| EngineError::io(&path, e))?;
        let mut w = std::io::BufWriter::new(file);
        for i in n..(n + per_file).min(rows) {
            w.write_all(line(i).as_bytes()).map_err(|e| EngineError::io(&path, e))?;
            w.write_all(b"\n").map_err(|e| EngineError::io(&path, e))?;
        }
        w.flush().map_err(|e| EngineError::io(&path, e))?;
        n += per_file;
        f += 1;
    }
    Ok(())
}

async fn run(
    project_toml: &str,
    root: &Path,
    what: &str,
    input_rows: u64,
    sink: &str,
) -> Result<StatefulReport> {
    let project = Project::from_toml(project_toml, Path::new("bench.toml"))
        .map_err(|e| EngineError::Config(e.to_string()))?;
    let pipeline = &project.pipelines[0];
    let max_state = Arc::new(Mutex::new(0u64));
    let batches = Arc::new(Mutex::new(0u64));
    let (m, b) = (max_state.clone(), batches.clone());
    let started = Instant::now();
    run_stream(&project, pipeline, root, &StreamOptions::new(true), &move |e| {
        if let RunEvent::BatchCompleted(p) = e {
            let rows: u64 = p.state_operators.values().map(|o| o.num_rows_total).sum();
            if let Ok(mut m) = m.lock() {
                *m = (*m).max(rows);
            }
            if let Ok(mut b) = b.lock() {
                *b += 1;
            }
        }
    })
    .await?;
    let secs = started.elapsed().as_secs_f64();
    let checkpoint = root.join("_checkpoints").join(&pipeline.name);
    let state_bytes = super::stream::state::list_versions(&checkpoint)
        .iter()
        .filter_map(|(_, v)| v.last().map(|(_, bytes)| *bytes))
        .sum();
    let table = super::delta::open(&root.join(sink)).await?;
    let ctx = super::plan::session_context();
    ctx.register_table("t", table.table_provider().await?)?;
    let counted = ctx.sql("SELECT * FROM t").await?.count().await? as u64;
    let read = |m: &Arc<Mutex<u64>>| m.lock().map(|v| *v).unwrap_or(0);
    Ok(StatefulReport {
        what: what.to_owned(),
        input_rows,
        output_rows: counted,
        batches: read(&batches),
        secs,
        max_state_rows: read(&max_state),
        state_bytes,
    })
}

/// `events` events over 100 keys, 60 ms apart in event time, through a 1-minute tumbling
/// count by key with a 10-minute watermark, append mode.
pub async fn windowed_count(dir: &Path, events: u64, files: usize) -> Result<StatefulReport> {
    write_files(&dir.join("landing/events"), files, events, |i| {
        format!("{{\"k\":\"key-{:03}\",\"t\":\"{}\"}}", i % 100, iso(BASE_MS + i as i64 * 60))
    })?;
    let toml = r#"
format_version = 1
name = "bench_window"
[[pipeline]]
name = "window_count"
mode = "stream"
[[pipeline.nodes]]
id = "events"
kind = "file_source"
path = "landing/events"
schema = "k STRING, t TIMESTAMP"
parse_mode = "drop_malformed"
max_files_per_trigger = 1
[[pipeline.nodes]]
id = "wm"
kind = "watermark"
column = "t"
delay = "10 minutes"
[[pipeline.nodes]]
id = "per_minute"
kind = "aggregate"
group_by = ["k", "window(t, '1 minute')"]
aggregates = ["count(*) AS n"]
[[pipeline.nodes]]
id = "sink"
kind = "delta_sink"
table = "gold/per_minute"
[[pipeline.edges]]
from = "events"
to = "wm"
[[pipeline.edges]]
from = "wm"
to = "per_minute"
[[pipeline.edges]]
from = "per_minute"
to = "sink"
"#;
    run(toml, dir, "1-minute tumbling count by key, 10-minute watermark", events, "gold/per_minute")
        .await
}

/// Two streams of `per_side` rows each (impressions 10 ms apart; a click 30 s after each),
/// joined inner on the id within the hour, watermarks of 10 minutes on both sides.
pub async fn stream_join(dir: &Path, per_side: u64, files: usize) -> Result<StatefulReport> {
    write_files(&dir.join("landing/left"), files, per_side, |i| {
        format!("{{\"id\":{i},\"shown_at\":\"{}\"}}", iso(BASE_MS + i as i64 * 10))
    })?;
    write_files(&dir.join("landing/right"), files, per_side, |i| {
        format!("{{\"click_id\":{i},\"clicked_at\":\"{}\"}}", iso(BASE_MS + i as i64 * 10 + 30_000))
    })?;
    let toml = r#"
format_version = 1
name = "bench_join"
[[pipeline]]
name = "stream_join"
mode = "stream"
[[pipeline.nodes]]
id = "left"
kind = "file_source"
path = "landing/left"
schema = "id BIGINT, shown_at TIMESTAMP"
parse_mode = "drop_malformed"
max_files_per_trigger = 1
[[pipeline.nodes]]
id = "right"
kind = "file_source"
path = "landing/right"
schema = "click_id BIGINT, clicked_at TIMESTAMP"
parse_mode = "drop_malformed"
max_files_per_trigger = 1
[[pipeline.nodes]]
id = "lw"
kind = "watermark"
column = "shown_at"
delay = "10 minutes"
[[pipeline.nodes]]
id = "rw"
kind = "watermark"
column = "clicked_at"
delay = "10 minutes"
[[pipeline.nodes]]
id = "join"
kind = "join"
how = "inner"
on = [["id", "click_id"]]
condition = "right.clicked_at BETWEEN left.shown_at AND left.shown_at + INTERVAL '1 hour'"
[[pipeline.nodes]]
id = "sink"
kind = "delta_sink"
table = "silver/joined"
[[pipeline.edges]]
from = "left"
to = "lw"
[[pipeline.edges]]
from = "right"
to = "rw"
[[pipeline.edges]]
from = "lw"
to = "join"
port = "left"
[[pipeline.edges]]
from = "rw"
to = "join"
port = "right"
[[pipeline.edges]]
from = "join"
to = "sink"
"#;
    run(
        toml,
        dir,
        "stream-stream inner join within 1 hour, 10-minute watermarks",
        per_side * 2,
        "silver/joined",
    )
    .await
}
