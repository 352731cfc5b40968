//! Stateful streams in the monitor: the state each node keeps and the rows it dropped as
//! late (badges on the graph), the watermark's gap to wall-clock time and the state size
//! over time (plots), and the state versions in the checkpoint view.

use std::collections::HashMap;

use eframe::egui::{RichText, Ui};
use egui_plot::{Line, PlotPoints};

use crate::engine::stream::watermark::format_ms;
use crate::model::NodeId;

use super::monitor::{PipelineMonitor, compact, human_bytes};
use super::theme;

/// Whether a pipeline's batches report watermarks or state.
pub fn has_state(pm: &PipelineMonitor) -> bool {
    pm.last.as_ref().is_some_and(|p| p.event_time.is_some() || !p.state_operators.is_empty())
}

/// Per node, the text shown on the canvas: state rows and late rows for stateful nodes, the
/// watermark on the Watermark node(s).
pub fn state_badges(pm: Option<&PipelineMonitor>) -> HashMap<NodeId, String> {
    let mut out = HashMap::new();
    let Some(p) = pm.and_then(|pm| pm.last.as_ref()) else { return out };
    for (node, op) in &p.state_operators {
        let rows = match op.num_rows_total {
            n if n < 10_000 => n.to_string(),
            n => compact(n as f64),
        };
        let word = if op.num_rows_total == 1 { "row" } else { "rows" };
        let mut text = format!("state {rows} {word} · {}", human_bytes(op.state_on_disk_bytes));
        if op.num_rows_dropped_by_watermark > 0 {
            text.push_str(&format!(" · {} late", op.num_rows_dropped_by_watermark));
        }
        if op.num_dropped_duplicate_rows > 0 {
            text.push_str(&format!(" · {} duplicates", op.num_dropped_duplicate_rows));
        }
        out.insert(NodeId::new(node.clone()), text);
    }
    if let Some(et) = &p.event_time {
        // the time of day is what moves; the whole timestamp is in the Monitor tab
        let text = if et.watermark_ms > 0 {
            chrono::DateTime::from_timestamp_millis(et.watermark_ms)
                .map(|t| format!("watermark {} UTC", t.format("%H:%M:%S")))
                .unwrap_or_default()
        } else {
            "watermark: none yet".to_owned()
        };
        for node in &et.watermark_nodes {
            out.insert(NodeId::new(node.clone()), text.clone());
        }
    }
    out
}

/// Watermark gap and state size over time, under the other plots.
pub fn state_plots_ui(ui: &mut Ui, name: &str, pm: &PipelineMonitor) {
    if !has_state(pm) {
        return;
    }
    if let Some(et) = pm.last.as_ref().and_then(|p| p.event_time.as_ref()) {
        ui.label(
            RichText::new(format!(
                "watermark {} · event time {} … {} in the last batch",
                format_ms(et.watermark_ms),
                et.min,
                et.max
            ))
            .color(theme::STATE),
        );
    }
    let height = (ui.available_height() - 4.0).clamp(70.0, 220.0);
    let series = |f: fn(&super::monitor::Point) -> Option<f64>| -> Vec<[f64; 2]> {
        pm.points.iter().filter_map(|p| f(p).map(|v| [p.t, v])).collect()
    };
    let width = ui.available_width() / 2.0;
    ui.columns(2, |cols| {
        super::monitor::live_plot("watermark_gap", name, height, width, "s").show(
            &mut cols[0],
            |plot| {
                plot.line(
                    Line::new(
                        "watermark gap to now (s)",
                        PlotPoints::from(series(|p| p.watermark_gap_s)),
                    )
                    .color(theme::STATE),
                );
                plot.line(
                    Line::new("late rows", PlotPoints::from(series(|p| Some(p.late_rows))))
                        .color(theme::ERROR),
                );
            },
        );
        super::monitor::live_plot("state_size", name, height, width, "s").show(
            &mut cols[1],
            |plot| {
                plot.line(
                    Line::new("state rows", PlotPoints::from(series(|p| Some(p.state_rows))))
                        .color(theme::STATE),
                );
                plot.line(Line::new(
                    "state KB on disk",
                    PlotPoints::from(series(|p| Some(p.state_bytes / 1024.0))),
                ));
            },
        );
    });
}

/// The state versions a checkpoint holds, per stateful node.
pub fn state_versions_ui(ui: &mut Ui, versions: &[(String, Vec<(u64, u64)>)]) {
    for (node, v) in versions {
        ui.label(format!("state `{node}`"));
        let text = match (v.first(), v.last()) {
            (Some((first, _)), Some((last, bytes))) => {
                format!("{} version(s), {first}…{last}; newest {}", v.len(), human_bytes(*bytes))
            }
            _ => "no versions yet".into(),
        };
        ui.label(text);
        ui.end_row();
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::engine::RunEvent;
    use crate::engine::stream::operators::StateOperatorProgress;
    use crate::engine::stream::{EventTimeProgress, StreamProgress};
    use crate::ui::monitor::Monitor;

    #[test]
    fn stateful_nodes_and_the_watermark_get_badges_from_the_last_batch() {
        let mut m = Monitor::default();
        let progress = StreamProgress {
            pipeline: "gold".into(),
            batch_id: 3,
            event_time: Some(EventTimeProgress {
                watermark: "2026-01-01T12:02:00.000Z".into(),
                watermark_ms: 1_767_268_920_000,
                watermark_nodes: vec!["wm".into()],
                ..EventTimeProgress::default()
            }),
            state_operators: BTreeMap::from([(
                "agg".into(),
                StateOperatorProgress {
                    num_rows_total: 2,
                    num_rows_dropped_by_watermark: 1,
                    state_on_disk_bytes: 2048,
                    ..StateOperatorProgress::default()
                },
            )]),
            ..StreamProgress::default()
        };
        m.on_event(&RunEvent::BatchCompleted(Box::new(progress)));
        let pm = &m.pipelines["gold"];
        assert!(has_state(pm));
        let badges = state_badges(Some(pm));
        assert_eq!(badges[&NodeId::new("agg")], "state 2 rows · 2.0 KB · 1 late");
        assert_eq!(badges[&NodeId::new("wm")], "watermark 12:02:00 UTC");
        let point = pm.points.back().unwrap();
        assert_eq!((point.state_rows, point.late_rows, point.state_bytes), (2.0, 1.0, 2048.0));
        assert!(point.watermark_gap_s.is_some_and(|g| g > 0.0));
    }
}
