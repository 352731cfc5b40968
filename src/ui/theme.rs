//! Colours that say what a node is: role by hue, medallion layer by a badge.

use eframe::egui::{self, Color32, RichText, Ui};

use crate::model::node::{Layer, NodeRole};

pub fn role_color(role: NodeRole) -> Color32 {
    match role {
        NodeRole::Source => Color32::from_rgb(38, 84, 124),
        NodeRole::Transform => Color32::from_rgb(70, 70, 82),
        NodeRole::Sink => Color32::from_rgb(40, 110, 78),
    }
}

pub fn role_label(role: NodeRole) -> &'static str {
    match role {
        NodeRole::Source => "source",
        NodeRole::Transform => "transform",
        NodeRole::Sink => "sink",
    }
}

pub fn layer_color(layer: Layer) -> Color32 {
    match layer {
        Layer::Landing => Color32::from_rgb(140, 140, 140),
        Layer::Bronze => Color32::from_rgb(205, 127, 50),
        Layer::Silver => Color32::from_rgb(192, 192, 192),
        Layer::Gold => Color32::from_rgb(255, 200, 40),
    }
}

pub const ERROR: Color32 = Color32::from_rgb(235, 90, 80);
pub const WARNING: Color32 = Color32::from_rgb(230, 180, 60);
pub const OK: Color32 = Color32::from_rgb(110, 200, 120);
/// Outline of the node that takes the most time per batch.
pub const SLOWEST: Color32 = Color32::from_rgb(255, 140, 30);
/// State kept by stateful stream nodes (windows, dedup, joins).
pub const STATE: Color32 = Color32::from_rgb(170, 140, 235);

/// An error message as plain wrapped text. In a column of `ui.columns` (a justified layout)
/// egui justifies a label's wrapped lines, and a long word such as a path left the line before
/// it spread letter by letter.
pub fn error_label(ui: &mut Ui, text: impl Into<String>) -> egui::Response {
    let left = egui::Layout::top_down(egui::Align::Min);
    ui.with_layout(left, |ui| ui.label(RichText::new(text.into()).color(ERROR))).inner
}
