//! The node-graph canvas (egui-snarl). The model's `Pipeline` is the truth; the snarl mirrors
//! it and is rebuilt when the model changes behind its back (load, undo). Every edit on the
//! canvas goes through `model::graph`'s rules, so the canvas and the CLI agree.

use std::collections::HashMap;

use arrow::datatypes::SchemaRef;
use eframe::egui::{self, Color32, RichText, Ui};
use egui_snarl::ui::{BackgroundPattern, PinInfo, SnarlPin, SnarlStyle, SnarlViewer, SnarlWidget};
use egui_snarl::{InPin, InPinId, NodeId as SnarlId, OutPin, OutPinId, Snarl};

use crate::model::node::NodeKind;
use crate::model::{Diagnostic, Node, NodeId, Pipeline, Pos, Severity};

use super::canvas_text::{self, BODY_RESERVE, HEADER_RESERVE, LOD_SCALE, readable_text};
use super::canvas_view::{Fitted, ViewState};
use super::monitor::{RunStatus, compact, count};
use super::theme;

/// The snarl of one pipeline, and the structure it was built from.
#[derive(Default)]
pub struct Canvas {
    pub snarl: Snarl<NodeId>,
    built_from: Option<(Vec<NodeId>, Vec<crate::model::Edge>, Vec<usize>)>,
    /// The view fits every node as drawn (false: fit at the next frame that knows their sizes).
    pub fitted: bool,
    /// Fits still to make: node sizes follow the zoom (readable text), so a fit is redone
    /// on the next frames with the sizes it led to.
    refits: u8,
    /// Zoom by this factor at the next frame (the zoom buttons).
    pub zoom: Option<f32>,
    /// The view's size and the nodes' box at the last fit, until the user pans, zooms or moves
    /// a node: a window resized, the UI zoomed, a panel shown or hidden or a node grown past
    /// the view fits again instead of leaving nodes off the view.
    fitted_at: Option<Fitted>,
    /// Screen pixels per canvas unit, as last drawn.
    pub scale: f32,
    /// Each node's rectangle as last drawn, in canvas units.
    rects: HashMap<NodeId, egui::Rect>,
    /// Where node text stops so that a node does not cover its neighbour.
    room: canvas_text::Room,
    /// Where the canvas is on screen, and the canvas → screen transform, as last drawn.
    view: Option<(egui::Rect, egui::emath::TSTransform)>,
}

/// Smallest zoom a fit or the buttons go to; text is scaled up below `canvas_text::LOD_SCALE`.
pub const MIN_SCALE: f32 = 0.25;
pub(super) const MAX_SCALE: f32 = 1.25;
/// Below this zoom a running node drops its edge rates and "running" line.
const BUSY_DETAIL_SCALE: f32 = 0.8;

fn structure(p: &Pipeline) -> (Vec<NodeId>, Vec<crate::model::Edge>, Vec<usize>) {
    (
        p.nodes.iter().map(|n| n.id.clone()).collect(),
        p.edges.clone(),
        p.nodes.iter().map(|n| n.kind.input_ports().len()).collect(),
    )
}

impl Canvas {
    /// Rebuilds the snarl if the pipeline's nodes, edges or ports changed outside the canvas.
    pub fn sync_from(&mut self, p: &Pipeline) {
        let s = structure(p);
        let positions_differ = self
            .snarl
            .nodes_info()
            .any(|n| p.node(&n.value).is_some_and(|m| (m.pos.x, m.pos.y) != (n.pos.x, n.pos.y)));
        if self.built_from.as_ref() == Some(&s) && !positions_differ {
            return;
        }
        let mut snarl = Snarl::new();
        let mut ids = HashMap::new();
        for n in &p.nodes {
            let id = snarl.insert_node(egui::pos2(n.pos.x, n.pos.y), n.id.clone());
            ids.insert(n.id.clone(), id);
        }
        for e in &p.edges {
            let (Some(&from), Some(&to), Some(dst)) =
                (ids.get(&e.from), ids.get(&e.to), p.node(&e.to))
            else {
                continue;
            };
            if let Some(input) = dst.kind.input_ports().iter().position(|port| port == &e.port) {
                snarl.connect(OutPinId { node: from, output: 0 }, InPinId { node: to, input });
            }
        }
        self.snarl = snarl;
        self.built_from = Some(s);
    }

    /// Marks the snarl as matching the pipeline (after edits made through the viewer).
    pub fn mark_synced(&mut self, p: &Pipeline) {
        self.built_from = Some(structure(p));
    }

    /// Copies node positions from the snarl to the model; true if any moved.
    pub fn positions_to(&self, p: &mut Pipeline) -> bool {
        let mut moved = false;
        for n in self.snarl.nodes_info() {
            if let Some(m) = p.node_mut(&n.value) {
                let pos = Pos { x: n.pos.x, y: n.pos.y };
                if m.pos != pos {
                    m.pos = pos;
                    moved = true;
                }
            }
        }
        moved
    }

    /// The canvas on screen and every node's rectangle there, as last drawn.
    pub fn on_screen(&self) -> Option<(egui::Rect, Vec<egui::Rect>)> {
        let (view, t) = self.view?;
        let rects = self
            .snarl
            .nodes_info()
            .filter_map(|n| {
                let size = self.rects.get(&n.value)?.size();
                Some(t * egui::Rect::from_min_size(n.pos, size))
            })
            .collect();
        Some((view, rects))
    }

    /// Screen pixels of node titles at the current zoom.
    pub fn title_px(&self, ctx: &egui::Context) -> f32 {
        let body = ctx.global_style().text_styles[&egui::TextStyle::Body].size;
        let scaled =
            if self.scale < LOD_SCALE { body.max(11.5 / self.scale).min(body * 2.2) } else { body };
        scaled * self.scale
    }

    pub fn snarl_id(&self, node: &NodeId) -> Option<SnarlId> {
        self.snarl.node_ids().find(|(_, n)| *n == node).map(|(id, _)| id)
    }

    /// Model ids of the nodes selected on the canvas (shift-click, rectangle).
    pub fn selected(&self, ui: &Ui, widget_id: egui::Id) -> Vec<NodeId> {
        egui_snarl::ui::get_selected_nodes(widget_id, ui.ctx())
            .into_iter()
            .filter_map(|id| self.snarl.get_node(id).cloned())
            .collect()
    }
}

/// What the canvas shows besides the graph: schemas, problems, run counts.
#[derive(Default)]
pub struct Overlay<'a> {
    pub schemas: Option<&'a HashMap<NodeId, SchemaRef>>,
    pub diagnostics: &'a [Diagnostic],
    pub rows: Option<&'a HashMap<NodeId, u64>>,
    pub errors: Option<&'a HashMap<NodeId, String>>,
    pub selected: Option<&'a NodeId>,
    /// Ctrl+A: every node is drawn as selected.
    pub all_selected: bool,
    /// Rows per second along each edge of a running stream, by target node and port.
    pub edge_rates: Option<&'a HashMap<(NodeId, String), f64>>,
    /// What each node is doing while its pipeline runs.
    pub status: Option<&'a HashMap<NodeId, RunStatus>>,
    /// The node with the most time of its own per batch, and that time in ms.
    pub slowest: Option<&'a (NodeId, f64)>,
    /// Every node's own time per batch (ms) while its stream runs.
    pub node_ms: Option<&'a HashMap<NodeId, f64>>,
    /// Sources with a backlog: how long reading it takes at the current pace.
    pub behind: Option<&'a HashMap<NodeId, String>>,
    /// Stateful nodes: state rows and late rows at the last batch (see `ui::stateful`).
    pub state: Option<&'a HashMap<NodeId, String>>,
    /// Sinks whose tables have gathered many small files.
    pub upkeep: Option<&'a HashMap<NodeId, String>>,
    /// Nodes with recorded tests: the badge and whether one fails (see `ui::tests_tab`).
    pub tests: Option<&'a HashMap<NodeId, (String, bool)>>,
}

/// Something the user asked for on the canvas that the app must do.
#[derive(Debug, Clone, PartialEq)]
pub enum CanvasAction {
    Select(NodeId),
    Preview(NodeId),
    Delete(NodeId),
    Duplicate(NodeId),
    Add(NodeKind, Pos),
    Refused(String),
}

pub struct Viewer<'a> {
    pub pipeline: &'a mut Pipeline,
    pub overlay: Overlay<'a>,
    pub actions: Vec<CanvasAction>,
    pub palette_filter: &'a mut String,
    /// Fit, zoom and node sizes (see `current_transform`).
    view: ViewState,
}

impl Viewer<'_> {
    fn model_id(&self, snarl: &Snarl<NodeId>, id: SnarlId) -> Option<NodeId> {
        snarl.get_node(id).cloned()
    }

    fn port_name(&self, node: &NodeId, input: usize) -> Option<String> {
        self.pipeline.node(node)?.kind.input_ports().get(input).cloned()
    }
}

/// The palette: every node kind, searchable. Returns the chosen kind.
pub fn palette_ui(ui: &mut Ui, filter: &mut String) -> Option<NodeKind> {
    ui.add(egui::TextEdit::singleline(filter).hint_text("search nodes…").desired_width(180.0));
    let needle = filter.to_lowercase();
    let mut chosen = None;
    for kind in NodeKind::palette() {
        let label = kind.tag().replace('_', " ");
        if !needle.is_empty() && !label.contains(&needle) {
            continue;
        }
        let text = RichText::new(format!("{}  ·  {}", label, theme::role_label(kind.role())))
            .color(theme::role_color(kind.role()).gamma_multiply(1.8));
        if ui.button(text).clicked() {
            chosen = Some(kind);
        }
    }
    chosen
}

impl SnarlViewer<NodeId> for Viewer<'_> {
    fn current_transform(
        &mut self,
        to_global: &mut egui::emath::TSTransform,
        snarl: &mut Snarl<NodeId>,
    ) {
        self.view.place(to_global, snarl);
    }

    fn final_node_rect(
        &mut self,
        node: SnarlId,
        rect: egui::Rect,
        ui: &mut Ui,
        snarl: &mut Snarl<NodeId>,
    ) {
        if let Some(id) = snarl.get_node(node) {
            self.view.rects.insert(id.clone(), rect);
            if self.view.room.drawn(id, rect) {
                ui.ctx().request_repaint();
            }
        }
    }

    fn title(&mut self, node: &NodeId) -> String {
        self.pipeline.node(node).map(|n| n.title().to_owned()).unwrap_or_default()
    }

    fn inputs(&mut self, node: &NodeId) -> usize {
        self.pipeline.node(node).map_or(0, |n| n.kind.input_ports().len())
    }

    fn outputs(&mut self, node: &NodeId) -> usize {
        self.pipeline.node(node).map_or(0, |n| usize::from(n.kind.has_output()))
    }

    fn show_input(
        &mut self,
        pin: &InPin,
        ui: &mut Ui,
        snarl: &mut Snarl<NodeId>,
    ) -> impl SnarlPin + 'static {
        readable_text(ui, self.view.scale);
        let name = snarl
            .get_node(pin.id.node)
            .and_then(|n| self.port_name(n, pin.id.input))
            .unwrap_or_default();
        if name != crate::model::node::DEFAULT_PORT {
            ui.small(&name);
        }
        let rate = snarl
            .get_node(pin.id.node)
            .and_then(|n| self.overlay.edge_rates.and_then(|r| r.get(&(n.clone(), name.clone()))));
        // zoomed out, the rates along edges give way to the nodes' own labels
        if let Some(r) = rate.filter(|_| self.view.scale >= BUSY_DETAIL_SCALE) {
            ui.label(RichText::new(format!("{} rows/s", compact(*r))).small().color(theme::OK));
        }
        PinInfo::circle().with_fill(Color32::from_rgb(120, 160, 230))
    }

    fn show_output(
        &mut self,
        _pin: &OutPin,
        _ui: &mut Ui,
        _snarl: &mut Snarl<NodeId>,
    ) -> impl SnarlPin + 'static {
        PinInfo::circle().with_fill(Color32::from_rgb(120, 210, 140))
    }

    fn show_header(
        &mut self,
        node: SnarlId,
        _inputs: &[InPin],
        _outputs: &[OutPin],
        ui: &mut Ui,
        snarl: &mut Snarl<NodeId>,
    ) {
        let Some(id) = self.model_id(snarl, node) else { return };
        readable_text(ui, self.view.scale);
        if let Some(edge) = self.view.room.text_edge(&id, HEADER_RESERVE) {
            canvas_text::keep_left_of(ui, edge);
        }
        let title = self.pipeline.node(&id).map(|n| n.title().to_owned()).unwrap_or_default();
        // click the title to select (a click-only widget leaves drags to the canvas)
        let response =
            ui.add(egui::Label::new(RichText::new(title).strong()).sense(egui::Sense::click()));
        if response.clicked() {
            self.actions.push(CanvasAction::Select(id.clone()));
        }
        if response.double_clicked() {
            self.actions.push(CanvasAction::Preview(id));
        }
    }

    fn has_body(&mut self, _node: &NodeId) -> bool {
        true
    }

    fn show_body(
        &mut self,
        node: SnarlId,
        _inputs: &[InPin],
        _outputs: &[OutPin],
        ui: &mut Ui,
        snarl: &mut Snarl<NodeId>,
    ) {
        let Some(id) = self.model_id(snarl, node) else { return };
        let Some(n) = self.pipeline.node(&id) else { return };
        readable_text(ui, self.view.scale);
        if let Some(edge) = self.view.room.text_edge(&id, BODY_RESERVE) {
            canvas_text::keep_left_of(ui, edge);
        }
        // zoomed far out: fewer but larger labels (status, rows, problems)
        let detail = self.view.scale >= 0.55;
        ui.vertical(|ui| {
            if detail {
                ui.horizontal(|ui| {
                ui.small(RichText::new(n.kind.tag().replace('_', " ")).italics());
                if let Some(layer) = n.kind.layer() {
                    ui.label(
                        RichText::new(layer.as_str())
                            .small()
                            .strong()
                            .color(theme::layer_color(layer)),
                    );
                }
            });
            }
            // "running" on every node says what the tab already does: only when zoomed in
            if let Some(status) = self.overlay.status.and_then(|s| s.get(&id)).filter(|s| {
                **s != RunStatus::Running || self.view.scale >= BUSY_DETAIL_SCALE
            }) {
                ui.label(
                    RichText::new(format!("⏺ {}", status.label())).small().color(status.color()),
                );
            }
            if let Some((slow, ms)) = self.overlay.slowest.filter(|(n, _)| n == &id) {
                let _ = slow;
                ui.label(
                    RichText::new(format!("slowest · {ms:.0} ms"))
                        .small()
                        .strong()
                        .color(theme::SLOWEST),
                );
            } else if let Some(ms) =
                self.overlay.node_ms.and_then(|t| t.get(&id)).filter(|ms| **ms >= 0.5)
            {
                ui.small(format!("{ms:.0} ms / batch"))
                    .on_hover_text("this node's own time per micro-batch, recent average");
            }
            if let Some(behind) = self.overlay.behind.and_then(|b| b.get(&id)) {
                ui.label(RichText::new(behind).small().color(theme::WARNING)).on_hover_text(
                    "backlog ÷ the pace of the last batch: how long this source needs to catch up",
                );
            }
            if let Some(r) = self.overlay.rows.and_then(|r| r.get(&id)) {
                let word = if *r == 1 { "row" } else { "rows" };
                ui.small(format!("{} {word}", count(*r)))
                    .on_hover_text(format!("{r} rows out of this node in the last run"));
            }
            match self.overlay.schemas.and_then(|s| s.get(&id)) {
                Some(schema) if detail => {
                    ui.small(format!("{} columns", schema.fields().len()));
                }
                Some(_) => {}
                None => {
                    ui.small("…");
                }
            }
            if let Some(badge) = self.overlay.state.and_then(|s| s.get(&id)) {
                ui.label(RichText::new(badge).small().color(theme::STATE)).on_hover_text(
                    "state kept across micro-batches, and rows dropped as late, at the last batch",
                );
            }
            if let Some(badge) = self.overlay.upkeep.and_then(|s| s.get(&id)) {
                ui.label(RichText::new(badge).small().color(theme::WARNING)).on_hover_text(
                    "its table has many files under a quarter of the target size: press Optimize in the Lakehouse tab, or leave auto_compact on for streams",
                );
            }
            if let Some((badge, failing)) = self.overlay.tests.and_then(|t| t.get(&id)) {
                let color = if *failing { theme::ERROR } else { theme::OK };
                ui.label(RichText::new(badge).small().color(color))
                    .on_hover_text("recorded tests of this node; the Tests tab shows their diffs");
            }
            for d in self.overlay.diagnostics.iter().filter(|d| d.node.as_ref() == Some(&id)) {
                let color =
                    if d.severity == Severity::Error { theme::ERROR } else { theme::WARNING };
                ui.label(RichText::new(clipped(&d.message, 80)).small().color(color))
                    .on_hover_text(&d.message);
            }
            if let Some(e) = self.overlay.errors.and_then(|e| e.get(&id)) {
                ui.label(RichText::new(clipped(e, 80)).small().color(theme::ERROR))
                    .on_hover_text(e);
            }
        });
    }

    fn header_frame(
        &mut self,
        default: egui::Frame,
        node: SnarlId,
        _inputs: &[InPin],
        _outputs: &[OutPin],
        snarl: &Snarl<NodeId>,
    ) -> egui::Frame {
        let role =
            snarl.get_node(node).and_then(|id| self.pipeline.node(id)).map(|n| n.kind.role());
        match role {
            Some(r) => default.fill(theme::role_color(r)),
            None => default,
        }
    }

    fn node_frame(
        &mut self,
        default: egui::Frame,
        node: SnarlId,
        _inputs: &[InPin],
        _outputs: &[OutPin],
        snarl: &Snarl<NodeId>,
    ) -> egui::Frame {
        let id = snarl.get_node(node);
        let has_error = id.is_some_and(|id| {
            self.overlay
                .diagnostics
                .iter()
                .any(|d| d.node.as_ref() == Some(id) && d.severity == Severity::Error)
                || self.overlay.errors.is_some_and(|e| e.contains_key(id))
        });
        let selected = id.is_some() && (self.overlay.all_selected || id == self.overlay.selected);
        let layer = id.and_then(|id| self.pipeline.node(id)).and_then(|n| n.kind.layer());
        let slowest = id.is_some_and(|id| self.overlay.slowest.is_some_and(|(n, _)| n == id));
        let stroke = if has_error {
            egui::Stroke::new(2.0, theme::ERROR)
        } else if slowest {
            egui::Stroke::new(3.0, theme::SLOWEST)
        } else if selected {
            egui::Stroke::new(2.0, Color32::WHITE)
        } else if let Some(l) = layer {
            egui::Stroke::new(1.5, theme::layer_color(l))
        } else {
            default.stroke
        };
        default.stroke(stroke)
    }

    fn connect(&mut self, from: &OutPin, to: &InPin, snarl: &mut Snarl<NodeId>) {
        let (Some(src), Some(dst)) =
            (self.model_id(snarl, from.id.node), self.model_id(snarl, to.id.node))
        else {
            return;
        };
        let Some(port) = self.port_name(&dst, to.id.input) else { return };
        // a new wire into a taken input replaces the old one
        if !to.remotes.is_empty() {
            self.pipeline.disconnect(&dst, &port);
            for &r in &to.remotes {
                snarl.disconnect(r, to.id);
            }
        }
        match self.pipeline.connect(&src, &dst, &port) {
            Ok(()) => {
                snarl.connect(from.id, to.id);
            }
            Err(e) => self.actions.push(CanvasAction::Refused(e.to_string())),
        }
    }

    fn disconnect(&mut self, from: &OutPin, to: &InPin, snarl: &mut Snarl<NodeId>) {
        if let Some(dst) = self.model_id(snarl, to.id.node)
            && let Some(port) = self.port_name(&dst, to.id.input)
        {
            self.pipeline.disconnect(&dst, &port);
        }
        snarl.disconnect(from.id, to.id);
    }

    fn drop_inputs(&mut self, pin: &InPin, snarl: &mut Snarl<NodeId>) {
        if let Some(dst) = self.model_id(snarl, pin.id.node)
            && let Some(port) = self.port_name(&dst, pin.id.input)
        {
            self.pipeline.disconnect(&dst, &port);
        }
        snarl.drop_inputs(pin.id);
    }

    fn drop_outputs(&mut self, pin: &OutPin, snarl: &mut Snarl<NodeId>) {
        if let Some(src) = self.model_id(snarl, pin.id.node) {
            self.pipeline.edges.retain(|e| e.from != src);
        }
        snarl.drop_outputs(pin.id);
    }

    fn has_graph_menu(&mut self, _pos: egui::Pos2, _snarl: &mut Snarl<NodeId>) -> bool {
        true
    }

    fn show_graph_menu(&mut self, pos: egui::Pos2, ui: &mut Ui, _snarl: &mut Snarl<NodeId>) {
        ui.label("Add node");
        if let Some(kind) = palette_ui(ui, self.palette_filter) {
            self.actions.push(CanvasAction::Add(kind, Pos { x: pos.x, y: pos.y }));
            ui.close();
        }
    }

    fn has_node_menu(&mut self, _node: &NodeId) -> bool {
        true
    }

    fn show_node_menu(
        &mut self,
        node: SnarlId,
        _inputs: &[InPin],
        _outputs: &[OutPin],
        ui: &mut Ui,
        snarl: &mut Snarl<NodeId>,
    ) {
        let Some(id) = self.model_id(snarl, node) else { return };
        if ui.button("Preview").clicked() {
            self.actions.push(CanvasAction::Preview(id.clone()));
            ui.close();
        }
        if ui.button("Duplicate").clicked() {
            self.actions.push(CanvasAction::Duplicate(id.clone()));
            ui.close();
        }
        if ui.button("Delete").clicked() {
            self.actions.push(CanvasAction::Delete(id));
            ui.close();
        }
    }
}

pub fn style() -> SnarlStyle {
    SnarlStyle {
        bg_pattern: Some(BackgroundPattern::Grid(egui_snarl::ui::Grid::new(
            egui::vec2(40.0, 40.0),
            0.0,
        ))),
        collapsible: Some(false),
        // fitting a small graph should not blow it up
        max_scale: Some(MAX_SCALE),
        min_scale: Some(MIN_SCALE),
        // double-click the background: fit the nodes as drawn (the initial fit only knows
        // their top-left corners)
        centering: Some(true),
        ..SnarlStyle::new()
    }
}

/// Draws the canvas for `pipeline`; returns what the user asked for.
pub fn canvas_ui(
    ui: &mut Ui,
    canvas: &mut Canvas,
    pipeline: &mut Pipeline,
    overlay: Overlay<'_>,
    palette_filter: &mut String,
    widget_id: egui::Id,
) -> Vec<CanvasAction> {
    canvas.sync_from(pipeline);
    let view_rect = ui.available_rect_before_wrap().shrink(4.0);
    let view = ViewState {
        transform: Default::default(),
        refits: canvas.refits,
        fitted: canvas.fitted,
        zoom: canvas.zoom.take(),
        fitted_at: canvas.fitted_at,
        drawn: canvas.view.map(|(_, t)| t),
        scale: if canvas.scale > 0.0 { canvas.scale } else { 1.0 },
        rects: std::mem::take(&mut canvas.rects),
        view: view_rect,
        room: std::mem::take(&mut canvas.room),
    };
    let mut viewer = Viewer { pipeline, overlay, actions: Vec::new(), palette_filter, view };
    SnarlWidget::new().id(widget_id).style(style()).show(&mut canvas.snarl, &mut viewer, ui);
    let Viewer { pipeline, actions, view, .. } = viewer;
    canvas.fitted = view.fitted;
    canvas.refits = view.refits;
    canvas.zoom = view.zoom;
    canvas.fitted_at = view.fitted_at;
    canvas.scale = view.scale;
    canvas.view = Some((view_rect, view.transform));
    canvas.rects = view.rects;
    canvas.room = view.room;
    if canvas.positions_to(pipeline) {
        // a node moved by the user: the view is theirs now, as after a pan or zoom
        canvas.fitted_at = None;
    }
    canvas.mark_synced(pipeline);
    actions
}

/// Adds a node of `kind` at `pos` with a fresh id; returns the id.
pub fn add_node(pipeline: &mut Pipeline, kind: NodeKind, pos: Pos) -> NodeId {
    let id = pipeline.fresh_id(&kind);
    let mut node = Node::new(id.as_str(), kind);
    node.pos = pos;
    let _ = pipeline.add_node(node);
    id
}

/// The first line of `text`, cut to at most `max_chars` characters (never inside a
/// character: messages carry column names such as `preço`).
pub fn clipped(text: &str, max_chars: usize) -> String {
    let first = text.lines().next().unwrap_or_default();
    let mut out: String = first.chars().take(max_chars).collect();
    if out.len() < first.len() || text.lines().nth(1).is_some() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod clip_tests {
    use super::clipped;

    #[test]
    fn clipping_never_splits_a_character_at_any_position() {
        let base = "coluna região não existe; colunas: preço, ação, 名前, emoji 🦀 ";
        for n in 0..base.chars().count() + 2 {
            let text: String = base.chars().cycle().take(n + 40).collect();
            for max in 0..n + 3 {
                let c = clipped(&text, max);
                assert!(c.chars().count() <= max + 1, "{c}");
            }
        }
        assert_eq!(clipped("short", 80), "short");
        assert_eq!(clipped("first line\nsecond", 80), "first line…");
    }
}
