//! Colours that say what a node is: role by hue, medallion layer by a badge.

use eframe::egui::Color32;

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
