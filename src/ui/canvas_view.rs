//! The canvas's view: where it is on screen, its zoom, and when it fits the nodes again.
//! A fitted view the user has not panned, zoomed or rearranged follows the window and the
//! nodes' sizes; once they have, it stays as they left it.

use std::collections::HashMap;

use eframe::egui;
use egui_snarl::Snarl;

use super::canvas::{MAX_SCALE, MIN_SCALE};
use super::canvas_text;
use crate::model::NodeId;

/// The view's size and the nodes' bounding box (canvas units) at the last fit, kept until the
/// user pans, zooms or moves a node.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Fitted {
    pub(super) size: egui::Vec2,
    pub(super) nodes: egui::Rect,
}

/// What the viewer needs to fit and zoom the view, taken from the `Canvas` for a frame.
pub(super) struct ViewState {
    pub(super) transform: egui::emath::TSTransform,
    pub(super) fitted: bool,
    pub(super) refits: u8,
    pub(super) zoom: Option<f32>,
    pub(super) fitted_at: Option<Fitted>,
    /// The transform as last drawn: another one now means the user panned or zoomed.
    pub(super) drawn: Option<egui::emath::TSTransform>,
    pub(super) scale: f32,
    pub(super) rects: HashMap<NodeId, egui::Rect>,
    pub(super) view: egui::Rect,
    pub(super) room: canvas_text::Room,
}

/// The transform that shows `bb` (canvas units) centred in `view` (screen). A graph too big
/// for the view even at `MIN_SCALE` shows its start (top left: the sources) rather than
/// its middle, with both ends cut.
fn fit_transform(bb: egui::Rect, view: egui::Rect) -> egui::emath::TSTransform {
    let bb = bb.expand(24.0);
    let scale = (view.size() / bb.size()).min_elem().clamp(MIN_SCALE, MAX_SCALE);
    let mut shift = view.center().to_vec2() - bb.center().to_vec2() * scale;
    if bb.width() * scale > view.width() {
        shift.x = view.left() - bb.left() * scale;
    }
    if bb.height() * scale > view.height() {
        shift.y = view.top() - bb.top() * scale;
    }
    egui::emath::TSTransform::new(shift, scale)
}

impl ViewState {
    /// Sets this frame's canvas → screen transform: a fit when one is due, the zoom buttons'
    /// step, and where node text stops (`canvas_text`).
    pub(super) fn place(
        &mut self,
        to_global: &mut egui::emath::TSTransform,
        snarl: &Snarl<NodeId>,
    ) {
        let v = self;
        if v.drawn.is_some_and(|t| t != *to_global) {
            v.fitted_at = None;
        } else if v.fitted_at.is_some_and(|f| (f.size - v.view.size()).length() > 1.0) {
            v.fitted = false;
        }
        // fit once every node has been drawn (their sizes are known only then)
        // measured sizes at the nodes' current places (an auto-layout may have moved them)
        let drawn: Vec<(NodeId, egui::Rect)> = snarl
            .nodes_info()
            .filter_map(|n| {
                let size = v.rects.get(&n.value)?.size();
                Some((n.value.clone(), egui::Rect::from_min_size(n.pos, size)))
            })
            .collect();
        let bb = drawn.iter().fold(egui::Rect::NOTHING, |a, (_, r)| a.union(*r));
        // a node that grew past a fitted view (a longer name, the monitor's figures once a
        // stream runs) fits it again: the first fit knew only the nodes' first sizes. Nodes
        // that have not changed since the fit stay as fitted, even when they do not fit at all.
        if v.fitted
            && v.refits == 0
            && v.fitted_at.is_some_and(|f| f.nodes != bb)
            && !drawn.is_empty()
            && !v.view.expand(1.0).contains_rect(*to_global * bb)
        {
            v.fitted = false;
        }
        if (!v.fitted || v.refits > 0) && v.view.is_positive() {
            if drawn.len() == snarl.nodes().count() && !drawn.is_empty() {
                *to_global = fit_transform(bb, v.view);
                v.refits = if v.fitted { v.refits - 1 } else { 3 };
                v.fitted = true;
                v.fitted_at = Some(Fitted { size: v.view.size(), nodes: bb });
            } else if drawn.is_empty() && snarl.nodes().count() == 0 {
                v.fitted = true;
            }
        }
        if let Some(factor) = v.zoom.take() {
            v.fitted_at = None;
            let centre = v.view.center();
            let old = to_global.scaling;
            let new = (old * factor).clamp(MIN_SCALE, MAX_SCALE);
            // keep the canvas point under the view's centre where it is
            let g = (centre.to_vec2() - to_global.translation) / old;
            *to_global = egui::emath::TSTransform::new(centre.to_vec2() - g * new, new);
        }
        v.scale = to_global.scaling;
        v.transform = *to_global;
        v.room.plan(&drawn, v.scale);
    }
}

#[cfg(test)]
mod tests {
    use eframe::egui::{Rect, pos2, vec2};

    #[test]
    fn a_graph_that_fits_is_centred_and_one_too_big_shows_its_start() {
        let view = Rect::from_min_size(pos2(100.0, 50.0), vec2(400.0, 300.0));
        let small = Rect::from_min_size(pos2(0.0, 0.0), vec2(200.0, 100.0));
        let t = super::fit_transform(small, view);
        assert!(((t * small).center() - view.center()).length() < 0.01);
        // 4,000 units wide: even at MIN_SCALE (1,000 px) wider than the view
        let big = Rect::from_min_size(pos2(-500.0, 20.0), vec2(4000.0, 100.0));
        let t = super::fit_transform(big, view);
        assert_eq!(t.scaling, super::MIN_SCALE);
        let shown = t * big.expand(24.0);
        assert!((shown.left() - view.left()).abs() < 0.01, "{shown:?}");
        assert!((shown.center().y - view.center().y).abs() < 0.01, "centred across: {shown:?}");
    }
}
