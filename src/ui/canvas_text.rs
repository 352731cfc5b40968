//! Node text on the canvas at any zoom: its size and the room it has. Zoomed out, node text
//! grows to stay readable ([`readable_text`]) while nodes keep their places, so a node could
//! grow over the next one to its right (the demo's silver graph at 68%: `bronze/users
//! (stream)` covered `Flatten employment`). Each node that has a neighbour to its right on the
//! same row gets a right edge its text stays left of; what does not fit is cut with "…", and
//! the whole text shows on hover.

use std::collections::HashMap;
use std::hash::Hash;

use eframe::egui::{self, Rect, Ui};

use crate::model::NodeId;

/// Below this zoom the node text grows so that it stays readable on screen.
pub const LOD_SCALE: f32 = 0.92;

/// Text sizes that stay readable on screen when the canvas is zoomed out: titles and body
/// text at least ~11.5 px, small text ~10.5 px (a level of detail, as maps do).
pub fn readable_text(ui: &mut Ui, scale: f32) {
    if scale >= LOD_SCALE || scale <= 0.0 {
        return;
    }
    for (style, font) in ui.style_mut().text_styles.iter_mut() {
        let on_screen = match style {
            egui::TextStyle::Small => 10.5,
            egui::TextStyle::Heading => 14.0,
            _ => 11.5,
        };
        font.size = font.size.max(on_screen / scale).min(font.size * 2.2);
    }
}

/// Canvas units kept clear between a node and the next one to its right.
const GAP: f32 = 12.0;
/// Canvas units between a node's title and its right edge (the header's margins).
pub const HEADER_RESERVE: f32 = 12.0;
/// Canvas units between a node's body text and its right edge (the output pins' column and
/// the margins).
pub const BODY_RESERVE: f32 = 28.0;
/// Narrowest text a node is cut to, however close its neighbour (a few characters and "…").
const MIN_TEXT_WIDTH: f32 = 36.0;

/// For each node with a neighbour to its right on the same row (their vertical extents
/// overlap), the x (canvas units) its frame must end before (that neighbour's left edge less
/// [`GAP`]) and its room (that x less its own left). `nodes`: each node and its rectangle as
/// last drawn, in canvas units.
fn right_edges<K: Clone + Eq + Hash>(nodes: &[(K, Rect)]) -> HashMap<K, (f32, f32)> {
    let mut edges = HashMap::new();
    for (key, r) in nodes {
        let next = nodes
            .iter()
            .filter(|(_, o)| o.min.x > r.min.x && o.min.y < r.max.y && o.max.y > r.min.y)
            .map(|(_, o)| o.min.x)
            .fold(f32::INFINITY, f32::min);
        if next.is_finite() {
            edges.insert(key.clone(), (next - GAP, next - GAP - r.min.x));
        }
    }
    edges
}

/// Where node text must stop, learned frame to frame: the edges come from the nodes' places and
/// last sizes; a node whose frame still crossed its edge (margins, pins or a narrowest text the
/// reserves did not cover) is squeezed by that much more from the next frame on, until the
/// zoom or its room changes.
#[derive(Default)]
pub struct Room {
    /// This frame's edge of each node with a neighbour to its right, and its room (the edge
    /// less the node's left).
    edges: HashMap<NodeId, (f32, f32)>,
    /// Each squeezed node's squeeze, and the room it was learned in.
    squeeze: HashMap<NodeId, (f32, f32)>,
    /// The zoom the squeezes were learned at.
    scale: f32,
}

impl Room {
    /// This frame's edges, from each node's rectangle as last drawn (canvas units), at `scale`.
    pub fn plan(&mut self, nodes: &[(NodeId, Rect)], scale: f32) {
        self.edges = right_edges(nodes);
        if (scale - self.scale).abs() > 1e-4 {
            self.squeeze.clear();
            self.scale = scale;
        }
        // a node moved, or its neighbour did: learn its squeeze afresh
        let edges = &self.edges;
        self.squeeze.retain(|id, (room, _)| {
            edges.get(id).is_some_and(|(_, now)| (now - *room).abs() <= 0.5)
        });
    }

    /// The x (canvas units) `node`'s text stops at, `reserve` left of its frame's edge.
    pub fn text_edge(&self, node: &NodeId, reserve: f32) -> Option<f32> {
        let (edge, _) = self.edges.get(node)?;
        Some(edge - reserve - self.squeeze.get(node).map_or(0.0, |(_, s)| *s))
    }

    /// `node` was drawn in `rect`: true when it crossed its edge and is squeezed more from the
    /// next frame (draw again); false once it fits, or cannot get narrower.
    pub fn drawn(&mut self, node: &NodeId, rect: Rect) -> bool {
        let Some(&(edge, room)) = self.edges.get(node) else { return false };
        let over = rect.right() - edge;
        if over <= 0.25 {
            return false;
        }
        let (_, squeeze) = self.squeeze.entry(node.clone()).or_insert((room, 0.0));
        let before = *squeeze;
        *squeeze = (before + over).min(MAX_SQUEEZE);
        *squeeze > before
    }
}

/// The most a node is squeezed beyond its reserves (canvas units).
const MAX_SQUEEZE: f32 = 400.0;

/// Keeps what `ui` lays out from here left of `right` (canvas units), cutting text that would
/// cross it.
pub fn keep_left_of(ui: &mut Ui, right: f32) {
    let width = (right - ui.max_rect().left()).max(MIN_TEXT_WIDTH);
    ui.set_max_width(width);
    ui.style_mut().wrap_mode = Some(egui::TextWrapMode::Truncate);
}

#[cfg(test)]
mod tests {
    use super::*;
    use eframe::egui::{pos2, vec2};

    /// A node's rectangle at `x`, `w` wide, on the first row.
    fn at(x: f32, w: f32) -> Rect {
        Rect::from_min_size(pos2(x, 0.0), vec2(w, 50.0))
    }

    /// Nodes `a` at 0 (150 wide) and `b` at `b_x`.
    fn two(b_x: f32) -> (NodeId, NodeId, [(NodeId, Rect); 2]) {
        let (a, b) = (NodeId::new("a"), NodeId::new("b"));
        (a.clone(), b.clone(), [(a, at(0.0, 150.0)), (b, at(b_x, 150.0))])
    }

    #[test]
    fn a_node_stops_before_its_nearest_neighbour_on_the_same_row_only() {
        let at = |x, y, w, h| Rect::from_min_size(pos2(x, y), vec2(w, h));
        let nodes = [
            ("a", at(0.0, 0.0, 150.0, 80.0)),
            ("b", at(190.0, 10.0, 150.0, 80.0)),
            ("far", at(600.0, 0.0, 100.0, 80.0)),
            // below `a`, not beside it: no limit from it
            ("under", at(20.0, 200.0, 300.0, 80.0)),
            ("last", at(400.0, 200.0, 100.0, 80.0)),
        ];
        let edges = right_edges(&nodes);
        let edge = |k| edges.get(k).copied();
        assert_eq!(edge("a"), Some((190.0 - GAP, 190.0 - GAP)), "the nearest, not the farther");
        assert_eq!(edge("b"), Some((600.0 - GAP, 410.0 - GAP)));
        assert_eq!(edge("under"), Some((400.0 - GAP, 380.0 - GAP)));
        assert_eq!(edge("far"), None, "nothing to its right");
        assert_eq!(edge("last"), None);
    }

    /// A node drawn past its edge is squeezed by the excess from the next frame, more if it
    /// still crosses, and afresh at another zoom.
    #[test]
    fn a_node_drawn_past_its_edge_is_squeezed_until_the_zoom_changes() {
        let (a, b, nodes) = two(190.0);
        let mut room = Room::default();
        room.plan(&nodes, 0.5);
        let edge = 190.0 - GAP;
        assert_eq!(room.text_edge(&a, 10.0), Some(edge - 10.0));
        assert_eq!(room.text_edge(&b, 10.0), None, "nothing to its right");
        assert!(!room.drawn(&a, at(0.0, edge)), "up to its edge: not squeezed");
        assert!(room.drawn(&a, at(0.0, edge + 6.0)));
        room.plan(&nodes, 0.5);
        assert_eq!(room.text_edge(&a, 10.0), Some(edge - 16.0));
        assert!(room.drawn(&a, at(0.0, edge + 2.0)));
        room.plan(&nodes, 0.5);
        assert_eq!(room.text_edge(&a, 10.0), Some(edge - 18.0));
        room.plan(&nodes, 0.6);
        assert_eq!(room.text_edge(&a, 10.0), Some(edge - 10.0), "another zoom starts afresh");
    }

    /// A node whose text is at its narrowest stops asking for frames; moved apart again, it
    /// gets its whole room back.
    #[test]
    fn a_squeeze_ends_at_the_narrowest_and_is_forgotten_when_the_room_changes() {
        // `b` dragged almost onto `a`: `a` cannot fit, however squeezed
        let (a, _, close) = two(40.0);
        let mut room = Room::default();
        let mut frames = 0;
        loop {
            room.plan(&close, 0.5);
            if !room.drawn(&a, at(0.0, 80.0)) {
                break;
            }
            frames += 1;
            assert!(frames < 100, "still asking for frames after {frames}");
        }
        room.plan(&two(300.0).2, 0.5);
        assert_eq!(room.text_edge(&a, 10.0), Some(300.0 - GAP - 10.0));
    }
}
