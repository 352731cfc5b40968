//! The monitor: what running pipelines report, kept per pipeline in bounded series, and the
//! panels that draw it (egui_plot): rows per second, batch duration by phase, backlog, the
//! event log and the checkpoint view. State and drawing only; the app sends the commands.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Instant;

use eframe::egui::{self, Color32, RichText, Ui};
use egui_plot::{Bar, BarChart, Legend, Line, Plot, PlotPoints};

use crate::engine::RunEvent;
use crate::engine::checkpoint::Consumed;
use crate::engine::eventlog::{Level, LoggedEvent};
use crate::engine::handle::CheckpointInfo;
use crate::engine::meter::EdgeStats;
use crate::engine::stream::StreamProgress;
use crate::model::{NodeId, Pipeline};

use super::theme;

/// Points kept per pipeline (at one batch a second, ten minutes).
pub const MAX_POINTS: usize = 600;
/// Edge rates are rows over this window, divided by it.
const EDGE_WINDOW_SECS: f64 = 10.0;

/// What a pipeline (or one of its nodes) is doing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RunStatus {
    #[default]
    Idle,
    Running,
    /// A stream whose sources have no new data (or whose broker is away).
    Waiting,
    Failed,
    Stopped,
}

impl RunStatus {
    pub fn label(self) -> &'static str {
        match self {
            RunStatus::Idle => "idle",
            RunStatus::Running => "running",
            RunStatus::Waiting => "waiting for source",
            RunStatus::Failed => "failed",
            RunStatus::Stopped => "stopped",
        }
    }

    pub fn color(self) -> Color32 {
        match self {
            RunStatus::Idle => Color32::from_gray(150),
            RunStatus::Running => theme::OK,
            RunStatus::Waiting => Color32::from_rgb(110, 170, 230),
            RunStatus::Failed => theme::ERROR,
            RunStatus::Stopped => theme::WARNING,
        }
    }

    /// Running or waiting: the pipeline's task is alive.
    pub fn is_active(self) -> bool {
        matches!(self, RunStatus::Running | RunStatus::Waiting)
    }
}

/// One micro-batch, as plotted.
#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    /// Seconds since the app started.
    pub t: f64,
    pub batch_id: u64,
    pub input_rows_per_sec: f64,
    pub processed_rows_per_sec: f64,
    pub rows: u64,
    pub plan_ms: f64,
    pub read_ms: f64,
    pub write_ms: f64,
    /// Files, versions or Kafka messages known but not processed yet, over all sources.
    pub backlog: f64,
    /// Wall clock minus the batch's watermark, seconds (streams with a Watermark node).
    pub watermark_gap_s: Option<f64>,
    /// Rows kept in state by all stateful nodes after the batch.
    pub state_rows: f64,
    /// Bytes of state written for the batch.
    pub state_bytes: f64,
    /// Rows dropped as late in the batch.
    pub late_rows: f64,
}

/// What one pipeline has reported.
#[derive(Default)]
pub struct PipelineMonitor {
    pub status: RunStatus,
    /// The failure, pinned on its node when the engine knows it.
    pub error: Option<(Option<NodeId>, String)>,
    /// The newest warning (such as "waiting for the broker").
    pub warning: Option<String>,
    pub points: VecDeque<Point>,
    /// Per batch: when it ended, the rows along each edge, each node's own time.
    edges: VecDeque<(f64, Vec<EdgeStats>, BTreeMap<String, f64>)>,
    pub last: Option<Box<StreamProgress>>,
    pub batches: u64,
    pub rows: u64,
    started_at: f64,
}

/// Every pipeline's reports, fed from the engine's events.
pub struct Monitor {
    start: Instant,
    pub pipelines: BTreeMap<String, PipelineMonitor>,
}

impl Default for Monitor {
    fn default() -> Self {
        Self { start: Instant::now(), pipelines: BTreeMap::new() }
    }
}

impl Monitor {
    /// Seconds since the monitor started (the plots' x axis).
    pub fn now(&self) -> f64 {
        self.start.elapsed().as_secs_f64()
    }

    pub fn on_event(&mut self, e: &RunEvent) {
        let now = self.now();
        let pm = self.pipelines.entry(e.pipeline().to_owned()).or_default();
        match e {
            RunEvent::PipelineStarted { .. } => {
                pm.status = RunStatus::Running;
                pm.error = None;
                pm.warning = None;
                pm.started_at = now;
                // rates and the slowest node are about this run only
                pm.edges.clear();
            }
            RunEvent::BatchCompleted(p) => {
                pm.status = RunStatus::Running;
                pm.warning = None;
                let d = |k: &str| p.duration_ms.get(k).copied().unwrap_or_default() as f64;
                pm.points.push_back(Point {
                    t: now,
                    batch_id: p.batch_id,
                    input_rows_per_sec: p.input_rows_per_second,
                    processed_rows_per_sec: p.processed_rows_per_second,
                    rows: p.num_input_rows,
                    plan_ms: d("plan"),
                    read_ms: d("read"),
                    write_ms: d("write"),
                    backlog: p.sources.values().map(|s| s.backlog as f64).sum(),
                    // no gap before the first watermark (it starts at 0, like Spark's)
                    watermark_gap_s: p.event_time.as_ref().filter(|e| e.watermark_ms > 0).map(
                        |e| {
                            (chrono::Utc::now().timestamp_millis() - e.watermark_ms) as f64 / 1000.0
                        },
                    ),
                    state_rows: p.state_operators.values().map(|o| o.num_rows_total as f64).sum(),
                    state_bytes: p
                        .state_operators
                        .values()
                        .map(|o| o.state_on_disk_bytes as f64)
                        .sum(),
                    late_rows: p
                        .state_operators
                        .values()
                        .map(|o| o.num_rows_dropped_by_watermark as f64)
                        .sum(),
                });
                pm.edges.push_back((now, p.edges.clone(), p.node_ms.clone()));
                while pm.points.len() > MAX_POINTS {
                    pm.points.pop_front();
                }
                while pm.edges.front().is_some_and(|(t, _, _)| *t < now - EDGE_WINDOW_SECS) {
                    pm.edges.pop_front();
                }
                pm.batches += 1;
                pm.rows += p.num_input_rows;
                pm.last = Some(p.clone());
            }
            RunEvent::Idle { .. } => pm.status = RunStatus::Waiting,
            // the table's upkeep; the event log and the Lakehouse tab show it
            RunEvent::Compacted { .. } | RunEvent::NodeRows { .. } => {}
            RunEvent::Warning { message, .. } => {
                if message.starts_with("waiting for") {
                    pm.status = RunStatus::Waiting;
                }
                pm.warning = Some(message.clone());
            }
            RunEvent::PipelineFailed { node, message, .. } => {
                pm.status = RunStatus::Failed;
                pm.error = Some((node.clone(), message.clone()));
            }
            // stopped by the user, or done (a batch run, an availableNow stream)
            RunEvent::PipelineFinished { stopped, .. } => {
                if pm.status != RunStatus::Failed {
                    pm.status = if *stopped { RunStatus::Stopped } else { RunStatus::Idle };
                }
            }
            RunEvent::SinkCommitted { .. } | RunEvent::ExpectationsChecked { .. } => {}
        }
    }

    /// A run of `pipeline` ended (the engine said so): if its last events were lost, the
    /// status must not stay "running".
    pub fn run_ended(&mut self, pipeline: &str, error: Option<(Option<NodeId>, String)>) {
        let pm = self.pipelines.entry(pipeline.to_owned()).or_default();
        match error {
            Some(e) => {
                pm.status = RunStatus::Failed;
                pm.error = Some(e);
            }
            None if pm.status.is_active() => pm.status = RunStatus::Stopped,
            None => {}
        }
    }

    pub fn status(&self, pipeline: &str) -> RunStatus {
        self.pipelines.get(pipeline).map(|p| p.status).unwrap_or_default()
    }

    pub fn any_active(&self) -> bool {
        self.pipelines.values().any(|p| p.status.is_active())
    }

    /// Rows per second along each edge of a running pipeline, keyed by the edge's target node
    /// and port (an input has one wire), over the last ten seconds.
    pub fn edge_rates(&self, pipeline: &str) -> HashMap<(NodeId, String), f64> {
        let mut out = HashMap::new();
        let Some(pm) = self.pipelines.get(pipeline).filter(|p| p.status.is_active()) else {
            return out;
        };
        let now = self.now();
        let span = (now - pm.started_at).clamp(1.0, EDGE_WINDOW_SECS);
        for (t, edges, _) in &pm.edges {
            if *t < now - EDGE_WINDOW_SECS {
                continue;
            }
            for e in edges {
                *out.entry((e.to.clone(), e.port.clone())).or_insert(0.0) += e.rows as f64;
            }
        }
        for v in out.values_mut() {
            *v /= span;
        }
        out
    }

    /// The node with the most time of its own over the recent batches of a running pipeline,
    /// with its average milliseconds per batch.
    pub fn slowest(&self, pipeline: &str) -> Option<(NodeId, f64)> {
        slowest_of(&self.node_ms(pipeline))
    }

    /// Each node's own time per batch (ms), averaged over the recent batches of a running
    /// pipeline.
    pub fn node_ms(&self, pipeline: &str) -> HashMap<NodeId, f64> {
        let Some(pm) = self.pipelines.get(pipeline).filter(|p| p.status.is_active()) else {
            return HashMap::new();
        };
        let since = self.now() - EDGE_WINDOW_SECS;
        let recent: Vec<_> = pm.edges.iter().filter(|(t, _, _)| *t >= since).collect();
        let mut total: HashMap<NodeId, f64> = HashMap::new();
        for (_, _, nodes) in &recent {
            for (n, ms) in nodes {
                *total.entry(NodeId::new(n.as_str())).or_default() += ms;
            }
        }
        let batches = recent.len().max(1) as f64;
        total.values_mut().for_each(|ms| *ms /= batches);
        total
    }

    /// Each node's status: the pipeline's, except that a failure is pinned on its node and a
    /// waiting stream waits at its sources.
    pub fn node_status(&self, pipeline: &Pipeline) -> HashMap<NodeId, RunStatus> {
        let Some(pm) = self.pipelines.get(&pipeline.name) else { return HashMap::new() };
        pipeline
            .nodes
            .iter()
            .map(|n| {
                let status = match pm.status {
                    RunStatus::Failed => match &pm.error {
                        Some((Some(bad), _)) if bad != &n.id => RunStatus::Stopped,
                        _ => RunStatus::Failed,
                    },
                    RunStatus::Waiting if n.kind.input_ports().is_empty() => RunStatus::Waiting,
                    RunStatus::Waiting => RunStatus::Idle,
                    s => s,
                };
                (n.id.clone(), status)
            })
            .collect()
    }
}

/// `12.3k` style numbers for small labels.
pub fn compact(n: f64) -> String {
    match n.abs() {
        x if x >= 1e6 => format!("{:.1}M", n / 1e6),
        x if x >= 1e4 => format!("{:.0}k", n / 1e3),
        x if x >= 1e3 => format!("{:.1}k", n / 1e3),
        x if x >= 10.0 => format!("{n:.0}"),
        _ => format!("{n:.1}"),
    }
}

/// A count of things (rows, files): whole below 1,000 ("5", not the rate's "5.0"), then as
/// [`compact`].
pub fn count(n: u64) -> String {
    if n < 1_000 { n.to_string() } else { compact(n as f64) }
}

/// A coloured status chip.
pub fn status_chip_ui(ui: &mut Ui, status: RunStatus) {
    ui.label(RichText::new(format!("⏺ {}", status.label())).color(status.color()));
}

/// One of the live plots: fixed height, y from 0, no scroll-zoom (the panel scrolls), and a
/// legend when its `width` and `height` leave it room (in a narrow or short window the legend
/// covered the whole plot; hovering a line still names it).
pub fn live_plot<'a>(
    what: &str,
    pipeline: &str,
    height: f32,
    width: f32,
    x_label: &str,
) -> Plot<'a> {
    let plot = Plot::new((what, pipeline))
        .height(height)
        .include_y(0.0)
        .x_axis_label(x_label)
        .allow_scroll(false);
    let roomy = width >= 260.0 && height >= 110.0;
    if roomy { plot.legend(Legend::default()) } else { plot }
}

/// The node with the most time of its own in `node_ms` (see [`Monitor::node_ms`]).
pub fn slowest_of(node_ms: &HashMap<NodeId, f64>) -> Option<(NodeId, f64)> {
    (node_ms.iter())
        .filter(|(_, ms)| **ms > 0.0)
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map(|(n, ms)| (n.clone(), *ms))
}

/// The live plots of one pipeline: rows/s, batch duration by phase, backlog. `interval_ms` is
/// its trigger's interval (the pace a backlog is read at, at most).
pub fn plots_ui(ui: &mut Ui, name: &str, pm: &PipelineMonitor, interval_ms: Option<u64>) {
    ui.horizontal_wrapped(|ui| {
        ui.strong(name);
        status_chip_ui(ui, pm.status);
        ui.label(format!(
            "{}, {}",
            super::preview::counted(pm.batches, "batch", "batches"),
            super::preview::counted(pm.rows, "row", "rows")
        ));
        if let Some(p) = &pm.last {
            let sinks: Vec<String> =
                p.sinks.iter().map(|(n, v)| format!("{n}: Delta v{v}")).collect();
            ui.label(RichText::new(sinks.join(", ")).weak());
            for (node, secs) in super::catch_up::behind(pm, interval_ms) {
                let text = format!("{node}: {}", super::catch_up::behind_text(secs));
                ui.label(RichText::new(text).color(theme::WARNING));
            }
        }
    });
    if let Some((node, msg)) = &pm.error {
        let at = node.as_ref().map(|n| format!("node `{n}`: ")).unwrap_or_default();
        ui.label(RichText::new(format!("{at}{msg}")).color(theme::ERROR));
    } else if let Some(w) = &pm.warning {
        ui.label(RichText::new(w).color(theme::WARNING));
    }
    // streams with state get a second row of plots (watermark, state; see `ui::stateful`)
    let rows = if super::stateful::has_state(pm) { 2.0 } else { 1.0 };
    let height = ((ui.available_height() - 8.0) / rows - 4.0).clamp(70.0, 220.0);
    let width = ui.available_width() / 3.0;
    ui.columns(3, |cols| {
        let series = |f: fn(&Point) -> f64| -> Vec<[f64; 2]> {
            pm.points.iter().map(|p| [p.t, f(p)]).collect()
        };
        live_plot("rows_per_sec", name, height, width, "s").show(&mut cols[0], |plot| {
            plot.line(Line::new(
                "input rows/s",
                PlotPoints::from(series(|p| p.input_rows_per_sec)),
            ));
            plot.line(Line::new(
                "processed rows/s",
                PlotPoints::from(series(|p| p.processed_rows_per_sec)),
            ));
        });
        let bars = |label: &str, f: fn(&Point) -> f64, color: Color32| {
            BarChart::new(
                label,
                pm.points
                    .iter()
                    .rev()
                    .take(120)
                    .map(|p| Bar::new(p.batch_id as f64, f(p)).width(0.8))
                    .collect(),
            )
            .color(color)
        };
        let plan = bars("plan ms", |p| p.plan_ms, Color32::from_rgb(110, 170, 230));
        let read =
            bars("read ms", |p| p.read_ms, Color32::from_rgb(120, 200, 140)).stack_on(&[&plan]);
        let write = bars("write ms", |p| p.write_ms, Color32::from_rgb(230, 160, 70))
            .stack_on(&[&plan, &read]);
        live_plot("batch_ms", name, height, width, "batch").show(&mut cols[1], |plot| {
            plot.bar_chart(plan);
            plot.bar_chart(read);
            plot.bar_chart(write);
        });
        live_plot("backlog", name, height, width, "s").show(&mut cols[2], |plot| {
            plot.line(
                Line::new(
                    "backlog (files / versions / Kafka lag)",
                    PlotPoints::from(series(|p| p.backlog)),
                )
                .color(theme::WARNING),
            );
        });
    });
}

/// Filters of the event log panel.
#[derive(Default)]
pub struct EventFilter {
    pub pipeline: Option<String>,
    pub node: String,
    pub hide_info: bool,
    pub hide_warnings: bool,
}

impl EventFilter {
    pub fn accepts(&self, e: &LoggedEvent) -> bool {
        if self.pipeline.as_deref().is_some_and(|p| p != e.event.pipeline()) {
            return false;
        }
        if !self.node.is_empty() && !e.event.node().is_some_and(|n| n.contains(&self.node)) {
            return false;
        }
        match e.level {
            Level::Info => !self.hide_info,
            Level::Warning => !self.hide_warnings,
            Level::Error => true,
        }
    }
}

fn level_color(level: Level) -> Color32 {
    match level {
        Level::Info => Color32::from_gray(190),
        Level::Warning => theme::WARNING,
        Level::Error => theme::ERROR,
    }
}

/// The event log, newest last, with its filters.
pub fn event_log_ui(
    ui: &mut Ui,
    events: &[LoggedEvent],
    pipelines: &[String],
    f: &mut EventFilter,
) {
    ui.horizontal(|ui| {
        egui::ComboBox::from_id_salt("event_pipeline")
            .selected_text(f.pipeline.clone().unwrap_or_else(|| "all pipelines".into()))
            .show_ui(ui, |ui| {
                ui.selectable_value(&mut f.pipeline, None, "all pipelines");
                for p in pipelines {
                    ui.selectable_value(&mut f.pipeline, Some(p.clone()), p);
                }
            });
        ui.add(egui::TextEdit::singleline(&mut f.node).hint_text("node…").desired_width(120.0));
        let mut info = !f.hide_info;
        let mut warn = !f.hide_warnings;
        ui.checkbox(&mut info, "info");
        ui.checkbox(&mut warn, "warnings");
        f.hide_info = !info;
        f.hide_warnings = !warn;
        ui.label(RichText::new("errors always shown").weak());
    });
    let shown: Vec<&LoggedEvent> = events.iter().filter(|e| f.accepts(e)).collect();
    ui.label(RichText::new(format!("{} of {} events", shown.len(), events.len())).weak());
    let row_height = ui.text_style_height(&egui::TextStyle::Monospace);
    egui::ScrollArea::both().stick_to_bottom(true).auto_shrink(false).show_rows(
        ui,
        row_height,
        shown.len(),
        |ui, range| {
            for e in &shown[range] {
                let time = chrono::DateTime::from_timestamp_millis(e.ts_ms)
                    .map(|t| t.with_timezone(&chrono::Local).format("%m-%d %H:%M:%S").to_string())
                    .unwrap_or_default();
                ui.horizontal(|ui| {
                    ui.monospace(RichText::new(time).weak());
                    ui.monospace(
                        RichText::new(format!("{:7}", e.level.as_str()))
                            .color(level_color(e.level)),
                    );
                    ui.monospace(e.event.to_string());
                });
            }
        },
    );
}

/// One source's part of the checkpoint, in words.
fn consumed_text(c: &Consumed, end: Option<&BTreeMap<String, i64>>) -> Vec<String> {
    match c {
        Consumed::Files { files, bytes, last_file } => vec![format!(
            "{files} files processed ({}), last {}",
            human_bytes(*bytes),
            last_file.as_deref().unwrap_or("-")
        )],
        Consumed::Delta { version } => vec![format!("Delta versions read: up to v{version}")],
        Consumed::Generator { rows } => vec![format!("{rows} rows generated")],
        Consumed::Kafka { next } => next
            .iter()
            .map(|(tp, off)| match end.and_then(|l| l.get(tp)) {
                Some(lag) => format!("{tp}: offset {off} of {} (lag {lag})", off + lag),
                None => format!("{tp}: offset {off}"),
            })
            .collect(),
    }
}

pub fn human_bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.1} GB", n as f64 / (1u64 << 30) as f64),
        n if n >= 1 << 20 => format!("{:.1} MB", n as f64 / (1u64 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.1} KB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}

/// What a reset makes the pipeline do again, in the words of the confirmation.
pub fn reset_consequences(info: &CheckpointInfo, pipeline: &Pipeline) -> Vec<String> {
    let mut out = Vec::new();
    let what = info.view.metadata.as_ref().map(|m| m.sources.clone()).unwrap_or_default();
    for (node, c) in &info.view.consumed {
        let source = what.get(node).cloned().unwrap_or_else(|| node.clone());
        out.push(match c {
            Consumed::Files { files, .. } => {
                format!("`{node}` reads all files again ({source}; {files} were processed)")
            }
            Consumed::Delta { version } => {
                format!("`{node}` reads versions 0 to {version} again ({source}), from its starting_version")
            }
            Consumed::Generator { rows } => {
                format!("`{node}` generates rows from 0 again ({rows} were generated)")
            }
            Consumed::Kafka { .. } => {
                format!("`{node}` reads {source} again from its startingOffsets")
            }
        });
    }
    let sinks: Vec<String> = pipeline
        .sinks()
        .map(|s| match &s.kind {
            crate::model::node::NodeKind::DeltaSink(d) => {
                format!("{} ({})", d.table, d.mode.as_str())
            }
            _ => s.id.to_string(),
        })
        .collect();
    if !sinks.is_empty() {
        out.push(format!(
            "the sinks {} receive those rows again: append sinks will hold them twice unless \
             their tables are emptied; a new query id means earlier Delta transactions no longer \
             deduplicate",
            sinks.join(", ")
        ));
    }
    if out.is_empty() {
        out.push("the checkpoint is empty: nothing was processed yet".into());
    }
    out
}

/// The checkpoint of one stream pipeline. Returns true when "Reset checkpoint…" is clicked.
pub fn checkpoint_ui(ui: &mut Ui, info: &CheckpointInfo, running: bool) -> bool {
    let v = &info.view;
    egui::Grid::new("checkpoint_grid").num_columns(2).striped(true).show(ui, |ui| {
        ui.label("folder");
        ui.monospace(v.dir.display().to_string());
        ui.end_row();
        ui.label("query id");
        ui.monospace(v.metadata.as_ref().map_or("— (no checkpoint yet)".into(), |m| m.id.clone()));
        ui.end_row();
        ui.label("on disk");
        ui.label(format!("{} files, {}", v.disk_files, human_bytes(v.disk_bytes)))
            .on_hover_text("offsets, commits and state of the newest batches (minBatchesToRetain); older ones are folded into offsets_compact.json");
        ui.end_row();
        ui.label("last batch");
        ui.label(match (v.last_committed, v.pending_replay()) {
            (_, Some(p)) => format!("batch {p} planned, not committed: replayed on the next start"),
            (Some(c), None) => format!("batch {c} committed"),
            (None, None) => "none".into(),
        });
        ui.end_row();
        if let Some(c) = &v.last_commit {
            ui.label("sinks at last commit");
            let s: Vec<String> = c.sinks.iter().map(|(n, v)| format!("{n}: v{v}")).collect();
            ui.label(s.join(", "));
            ui.end_row();
        }
        super::stateful::state_versions_ui(ui, &v.state);
        for (node, c) in &v.consumed {
            let lag = info
                .last_progress
                .as_ref()
                .and_then(|p| p.sources.get(node))
                .and_then(|s| s.lag.as_ref());
            ui.label(format!("source `{node}`"));
            ui.vertical(|ui| {
                for line in consumed_text(c, lag) {
                    ui.label(line);
                }
                if let Some(b) =
                    info.last_progress.as_ref().and_then(|p| p.sources.get(node)).map(|s| s.backlog)
                {
                    ui.label(RichText::new(format!("backlog at last batch: {b}")).weak());
                }
            });
            ui.end_row();
        }
    });
    ui.add_space(6.0);
    let reset = ui
        .add_enabled(!running && v.metadata.is_some(), egui::Button::new("Reset checkpoint…"))
        .on_disabled_hover_text("stop the pipeline first (or there is no checkpoint)");
    reset.clicked()
}

#[cfg(test)]
#[path = "monitor_tests.rs"]
mod tests;
