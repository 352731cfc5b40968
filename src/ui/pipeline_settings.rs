//! The pipeline's own settings, shown in the inspector when no node is selected: name, mode,
//! trigger, checkpoint location, watermark policy and description, with the same values and
//! checks as the project file; rename, duplicate, move and delete; the pipeline's problems.

use eframe::egui::{self, RichText, Ui};

use crate::model::graph::parse_duration_ms;
use crate::model::{Diagnostic, Pipeline, PipelineMode, Severity, Trigger, WatermarkPolicy};

use super::form::edits;
use super::theme;

/// Edits to the project's list of pipelines that the panel asks the app to make.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PipelineAction {
    Duplicate,
    MoveLeft,
    MoveRight,
    Delete,
}

/// What the panel needs besides the pipeline itself.
pub struct PipelineContext<'a> {
    /// The other pipelines' names (a name must be unique).
    pub others: &'a [String],
    /// Findings about this pipeline that are not on a node.
    pub diagnostics: &'a [Diagnostic],
    pub index: usize,
    pub count: usize,
}

/// Why a pipeline name cannot be used, if it cannot.
pub fn name_problem(name: &str, others: &[String]) -> Option<String> {
    if name.trim().is_empty() {
        Some("a pipeline needs a name".into())
    } else if name.trim() != name {
        Some("no spaces at the start or end of the name".into())
    } else if others.iter().any(|o| o == name) {
        Some(format!("another pipeline is named `{name}`"))
    } else {
        None
    }
}

/// The form; returns whether the pipeline changed, and a list edit to make.
pub fn pipeline_settings_ui(
    ui: &mut Ui,
    p: &mut Pipeline,
    trigger_text: &mut String,
    cx: &PipelineContext<'_>,
) -> (bool, Option<PipelineAction>) {
    let mut changed = false;
    let mut action = None;
    ui.heading(format!("Pipeline `{}`", p.name));
    ui.label(RichText::new(format!("{} nodes, {} edges", p.nodes.len(), p.edges.len())).weak());
    ui.horizontal_wrapped(|ui| {
        if ui.add_enabled(cx.index > 0, egui::Button::new("◀ Move left")).clicked() {
            action = Some(PipelineAction::MoveLeft);
        }
        if ui.add_enabled(cx.index + 1 < cx.count, egui::Button::new("Move right ▶")).clicked() {
            action = Some(PipelineAction::MoveRight);
        }
        if ui.button("Duplicate pipeline").clicked() {
            action = Some(PipelineAction::Duplicate);
        }
        if ui.button("Delete pipeline").on_hover_text("Ctrl+Z brings it back").clicked() {
            action = Some(PipelineAction::Delete);
        }
    });
    ui.separator();
    changed |= super::form::text_ui(ui, "Pipeline name", "name", &mut p.name);
    if let Some(problem) = name_problem(&p.name, cx.others) {
        ui.label(RichText::new(problem).color(theme::ERROR));
    }
    edits("mode");
    ui.horizontal(|ui| {
        ui.label("Mode");
        for (mode, label) in [(PipelineMode::Batch, "batch"), (PipelineMode::Stream, "stream")] {
            changed |= ui.selectable_value(&mut p.mode, mode, label).changed();
        }
    });
    if p.mode == PipelineMode::Stream {
        edits("trigger");
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
                let l = ui.label("Trigger interval");
                let r = ui
                    .add(egui::TextEdit::singleline(trigger_text).desired_width(90.0))
                    .labelled_by(l.id);
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
        edits("checkpoint");
        let mut cp = p.checkpoint.clone().unwrap_or_default();
        ui.horizontal(|ui| {
            let l = ui.label("Checkpoint location");
            let r = ui
                .add(
                    egui::TextEdit::singleline(&mut cp)
                        .hint_text(format!("_checkpoints/{}", p.name))
                        .desired_width(f32::INFINITY),
                )
                .labelled_by(l.id);
            if r.changed() {
                p.checkpoint = (!cp.trim().is_empty()).then_some(cp.clone());
                changed = true;
            }
        });
        edits("min_batches_to_retain");
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
        edits("watermark_policy");
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
    edits("description");
    ui.label("Description");
    changed |= ui
        .add(
            egui::TextEdit::multiline(&mut p.description)
                .desired_rows(2)
                .desired_width(f32::INFINITY),
        )
        .changed();
    let problems: Vec<&Diagnostic> = cx.diagnostics.iter().filter(|d| d.node.is_none()).collect();
    if !problems.is_empty() {
        ui.separator();
        ui.label(RichText::new("Problems").strong());
        for d in problems {
            let color = if d.severity == Severity::Error { theme::ERROR } else { theme::WARNING };
            ui.label(RichText::new(&d.message).color(color));
        }
    }
    ui.separator();
    ui.label(RichText::new("Select a node (click its title) to edit its settings.").weak());
    (changed, action)
}
