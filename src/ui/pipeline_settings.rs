//! The pipeline's own settings, shown in the inspector when no node is selected: mode,
//! trigger, checkpoint location, watermark policy and description, with the same values and
//! checks as the project file.

use eframe::egui::{self, RichText, Ui};

use crate::model::graph::parse_duration_ms;
use crate::model::{Pipeline, PipelineMode, Trigger, WatermarkPolicy};

use super::theme;

/// The form; returns true when something changed.
pub fn pipeline_settings_ui(ui: &mut Ui, p: &mut Pipeline, trigger_text: &mut String) -> bool {
    let mut changed = false;
    ui.heading(format!("Pipeline `{}`", p.name));
    ui.label(RichText::new(format!("{} nodes, {} edges", p.nodes.len(), p.edges.len())).weak());
    ui.separator();
    ui.horizontal(|ui| {
        ui.label("Mode");
        for (mode, label) in [(PipelineMode::Batch, "batch"), (PipelineMode::Stream, "stream")] {
            changed |= ui.selectable_value(&mut p.mode, mode, label).changed();
        }
    });
    if p.mode == PipelineMode::Stream {
        ui.horizontal(|ui| {
            ui.label("Trigger");
            let current = p.trigger.unwrap_or_default();
            for (t, label) in [(Trigger::AvailableNow, "availableNow"), (Trigger::Once, "once")] {
                if ui.selectable_label(current == t, label).clicked() && current != t {
                    p.trigger = Some(t);
                    changed = true;
                }
            }
            let interval = matches!(current, Trigger::Interval { .. });
            if ui.selectable_label(interval, "interval").clicked() && !interval {
                p.trigger = Some(Trigger::default());
                changed = true;
            }
        });
        if let Some(Trigger::Interval { interval_ms }) = p.trigger.or(Some(Trigger::default())) {
            if trigger_text.is_empty() {
                *trigger_text = String::from(Trigger::Interval { interval_ms });
            }
            ui.horizontal(|ui| {
                ui.label("every");
                let r = ui.add(egui::TextEdit::singleline(trigger_text).desired_width(90.0));
                match parse_duration_ms(trigger_text) {
                    Some(ms) if ms > 0 => {
                        if r.changed() && Some(Trigger::Interval { interval_ms: ms }) != p.trigger {
                            p.trigger = Some(Trigger::Interval { interval_ms: ms });
                            changed = true;
                        }
                    }
                    _ => {
                        ui.label(RichText::new("e.g. 500ms, 2s, 1 minute").color(theme::ERROR));
                    }
                }
            });
        }
        let mut cp = p.checkpoint.clone().unwrap_or_default();
        ui.horizontal(|ui| {
            ui.label("Checkpoint location");
            let r = ui.add(
                egui::TextEdit::singleline(&mut cp)
                    .hint_text(format!("_checkpoints/{}", p.name))
                    .desired_width(f32::INFINITY),
            );
            if r.changed() {
                p.checkpoint = (!cp.trim().is_empty()).then_some(cp.clone());
                changed = true;
            }
        });
        changed |= ui
            .horizontal(|ui| {
                let mut on = p.min_batches_to_retain.is_some();
                let mut c = ui
                    .checkbox(&mut on, "Batches kept in the checkpoint")
                    .on_hover_text("Spark's minBatchesToRetain (default 100): older offsets, commits and state versions are folded into the compact log and deleted")
                    .changed();
                if on {
                    let v = p.min_batches_to_retain.get_or_insert(100);
                    c |= ui.add(egui::DragValue::new(v).range(1..=100_000)).changed();
                } else {
                    p.min_batches_to_retain = None;
                }
                c
            })
            .inner;
        ui.horizontal(|ui| {
            ui.label("Watermark policy");
            for policy in [WatermarkPolicy::Min, WatermarkPolicy::Max] {
                changed |= ui
                    .selectable_value(&mut p.watermark_policy, policy, policy.as_str())
                    .on_hover_text("with several Watermark nodes: the slowest (min) or fastest (max) input sets the global watermark; fixed in the checkpoint at the first start")
                    .changed();
            }
        });
    }
    ui.label("Description");
    changed |= ui
        .add(
            egui::TextEdit::multiline(&mut p.description)
                .desired_rows(2)
                .desired_width(f32::INFINITY),
        )
        .changed();
    ui.separator();
    ui.label(RichText::new("Select a node (click its title) to edit its settings.").weak());
    changed
}
