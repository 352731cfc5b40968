//! The side panels and the canvas: the node palette, the inspector (or the pipeline's
//! settings), and the graph with its overlays (schemas, rows, status, badges).

use super::*;

/// The least room the canvas keeps in a small window: a panel that would leave it less is
/// left out (the palette first, then the inspector; the bottom panel by height) until the
/// window grows, and a panel dragged wide is held to what leaves the canvas this much. Before,
/// a 360 x 260 window squeezed the canvas to ~40 px and the inspector ran off the window.
const CANVAS_MIN: egui::Vec2 = egui::vec2(240.0, 140.0);
/// The panels' sizes when first shown (palette and inspector widths, bottom height) and the
/// least they shrink to (the palette's entries, the inspector's fields and the monitor's rows
/// need that much).
pub(super) const PANEL_DEFAULTS: [f32; 3] = [170.0, 330.0, 280.0];
pub(super) const PANEL_MINS: [f32; 3] = [170.0, 240.0, 220.0];
const PANEL_IDS: [&str; 3] = ["palette", "inspector", "bottom"];

/// Of the panels asked for (`shown`: palette, inspector, bottom), those that fit in `room`
/// beside a canvas of [`CANVAS_MIN`], each with the most it may grow to; `sizes` are their
/// sizes now. The inspector goes before the palette: it is where a node is edited.
fn panels_that_fit(shown: [bool; 3], room: egui::Vec2, sizes: [f32; 3]) -> [Option<f32>; 3] {
    let [palette, inspector, bottom] = shown;
    let width = room.x - CANVAS_MIN.x;
    let inspector = inspector && width >= PANEL_MINS[1];
    let beside_inspector = if inspector { PANEL_MINS[1] } else { 0.0 };
    let palette =
        (palette && width - beside_inspector >= PANEL_MINS[0]).then_some(width - beside_inspector);
    let palette_now = palette.map_or(0.0, |max| sizes[0].clamp(PANEL_MINS[0], max));
    let inspector = inspector.then_some(width - palette_now);
    let bottom =
        (bottom && room.y - CANVAS_MIN.y >= PANEL_MINS[2]).then_some(room.y - CANVAS_MIN.y);
    [palette, inspector, bottom]
}

impl MedallionApp {
    /// The panels to show this frame, each with the most it may grow to: those ticked in View
    /// that fit the room left under the menu, at the sizes they were last drawn at.
    pub(super) fn fit_panels(&mut self, ui: &Ui) -> [Option<f32>; 3] {
        let room = ui.available_rect_before_wrap().size();
        let sizes: [f32; 3] =
            std::array::from_fn(|i| {
                egui::containers::panel::PanelState::load(ui.ctx(), egui::Id::new(PANEL_IDS[i]))
                    .map_or(PANEL_DEFAULTS[i], |s| {
                        if i == 2 { s.outer_rect.height() } else { s.outer_rect.width() }
                    })
            });
        let fit = panels_that_fit(self.panels_shown, room, sizes);
        self.panels_fit = fit.map(|f| f.is_some());
        fit
    }

    pub(super) fn palette_panel_ui(&mut self, ui: &mut Ui) {
        ui.heading("Nodes");
        egui::ScrollArea::vertical().show(ui, |ui| {
            if let Some(kind) = canvas::palette_ui(ui, &mut self.palette_filter) {
                self.add_node(kind, None);
            }
        });
    }

    pub(super) fn inspector_panel_ui(&mut self, ui: &mut Ui) {
        let Some(sel) = self.selected.clone() else {
            self.pipeline_panel_ui(ui);
            return;
        };
        let pipeline_name = self.pipeline().map(|p| p.name.clone()).unwrap_or_default();
        let schema = self.schemas.get(&(pipeline_name.clone(), sel.clone())).cloned();
        let diags: Vec<Diagnostic> = self
            .diagnostics
            .iter()
            .filter(|d| d.pipeline == pipeline_name && d.node.as_ref() == Some(&sel))
            .cloned()
            .collect();
        // the node as it was: the project before an edit is rebuilt from it only on a change
        // (cloning the whole project every frame cost the most on a large pipeline)
        let Some(pipeline) = self.pipeline() else { return };
        let node_before = pipeline.node(&sel).cloned();
        let rewire = inputs_ui(ui, pipeline, &sel);
        let Some(node) = self.pipeline_mut().and_then(|p| p.node_mut(&sel)) else {
            self.selected = None;
            return;
        };
        let file_source = match &node.kind {
            crate::model::node::NodeKind::FileSource(f) => Some(f.clone()),
            _ => None,
        };
        let (changed, actions) = egui::ScrollArea::vertical()
            .show(ui, |ui| inspector::inspector_ui(ui, node, schema.as_ref(), &diags))
            .inner;
        if let Some((port, from)) = rewire {
            self.rewire(&sel, &port, from);
        }
        if let (Some(f), Some(p)) = (file_source, self.doc.project.pipelines.get(self.tab)) {
            let root = self.doc.lakehouse_root();
            self.quality.tracked_schema_ui(ui, p, &root, &sel, &f);
        }
        if changed {
            // the edit already happened: remember the state before it
            let mut before = self.doc.project.clone();
            let slot = before.pipelines.get_mut(self.tab).and_then(|p| p.node_mut(&sel));
            if let (Some(slot), Some(old)) = (slot, node_before) {
                *slot = old;
            }
            self.record_typing(&before);
            self.schedule_plan(Duration::from_millis(300));
        }
        for a in actions {
            match a {
                InspectorAction::Preview => self.request_preview(sel.clone()),
                InspectorAction::InferSchema => {
                    let request = self.engine.request_id();
                    self.engine.send(Command::InferSchema {
                        request,
                        project: Arc::new(self.doc.project.clone()),
                        pipeline: pipeline_name.clone(),
                        node: sel.clone(),
                        root: self.doc.lakehouse_root(),
                    });
                }
            }
        }
    }

    /// Connects `from` (or nothing) to `to.port`, replacing what fed it; one undo step.
    pub fn rewire(&mut self, to: &NodeId, port: &str, from: Option<NodeId>) {
        self.before_edit();
        let Some(p) = self.pipeline_mut() else { return };
        let old = p.disconnect(to, port);
        if let Some(from) = from
            && let Err(e) = p.connect(&from, to, port)
        {
            if let Some(old) = old {
                p.edges.push(old);
            }
            self.status = e.to_string();
        }
    }

    pub(super) fn canvas_panel_ui(&mut self, ui: &mut Ui) {
        if self.canvases.len() != self.doc.project.pipelines.len() {
            self.canvases.resize_with(self.doc.project.pipelines.len(), Canvas::default);
        }
        let widget_id = self.widget_id();
        let before = self.doc.project.clone();
        let tab = self.tab;
        let upkeep_badges =
            self.doc.project.pipelines.get(tab).map(|p| self.upkeep_badges(p)).unwrap_or_default();
        let test_badges = match self.doc.project.pipelines.get(tab) {
            Some(p) => self.tests.badges(&self.doc.project, &p.name),
            None => HashMap::new(),
        };
        let Some(pipeline) = self.doc.project.pipelines.get_mut(tab) else {
            ui.label("No pipeline: add one with “+ pipeline”.");
            return;
        };
        let name = pipeline.name.clone();
        let schemas: HashMap<NodeId, SchemaRef> = self
            .schemas
            .iter()
            .filter(|((p, _), _)| p == &name)
            .map(|((_, n), s)| (n.clone(), s.clone()))
            .collect();
        let diags: Vec<Diagnostic> =
            self.diagnostics.iter().filter(|d| d.pipeline == name).cloned().collect();
        let edge_rates = self.monitor.edge_rates(&name);
        let node_status = self.monitor.node_status(pipeline);
        let node_ms = self.monitor.node_ms(&name);
        let slowest = crate::ui::monitor::slowest_of(&node_ms);
        let interval = crate::ui::catch_up::trigger_interval_ms(pipeline);
        let behind: HashMap<NodeId, String> = (self.monitor.pipelines.get(&name))
            .map(|pm| crate::ui::catch_up::behind(pm, interval))
            .unwrap_or_default()
            .into_iter()
            .map(|(n, secs)| (n, crate::ui::catch_up::behind_text(secs)))
            .collect();
        let mut state_badges =
            super::super::stateful::state_badges(self.monitor.pipelines.get(&name));
        state_badges.extend(self.quality.badges(&name));
        let overlay = Overlay {
            schemas: Some(&schemas),
            diagnostics: &diags,
            rows: Some(&self.run.rows),
            errors: Some(&self.run.errors),
            selected: self.selected.as_ref(),
            all_selected: self.all_selected,
            edge_rates: Some(&edge_rates),
            status: Some(&node_status),
            slowest: slowest.as_ref(),
            node_ms: Some(&node_ms),
            behind: Some(&behind),
            state: Some(&state_badges),
            upkeep: Some(&upkeep_badges),
            tests: Some(&test_badges),
        };
        let actions = canvas::canvas_ui(
            ui,
            &mut self.canvases[tab],
            pipeline,
            overlay,
            &mut self.graph_menu_filter,
            widget_id,
        );
        if self.doc.project != before {
            let structural = {
                let (a, b) = (&before.pipelines[tab], &self.doc.project.pipelines[tab]);
                a.edges != b.edges || a.nodes.len() != b.nodes.len()
            };
            // a drag is one undo step, not one per frame
            if structural || !self.last_edit_was_move {
                self.history.record(&before);
            }
            self.last_edit_was_move = !structural;
            if structural {
                self.schedule_plan(Duration::from_millis(100));
            }
        }
        for a in actions {
            match a {
                CanvasAction::Select(id) => {
                    self.selected = Some(id);
                    self.all_selected = false;
                }
                CanvasAction::Preview(id) => {
                    self.selected = Some(id.clone());
                    self.request_preview(id);
                }
                CanvasAction::Delete(id) => self.delete_nodes(&[id]),
                CanvasAction::Duplicate(id) => self.duplicate_node(&id),
                CanvasAction::Add(kind, pos) => {
                    self.add_node(kind, Some(pos));
                }
                CanvasAction::Refused(msg) => self.notify(msg, true),
            }
        }
    }
}

/// The node's inputs, each a choice of the node that feeds it (the keyboard's way to draw an
/// edge). Returns a port to rewire and its new source.
fn inputs_ui(ui: &mut Ui, p: &Pipeline, id: &NodeId) -> Option<(String, Option<NodeId>)> {
    let node = p.node(id)?;
    let mut out = None;
    for port in node.kind.input_ports() {
        let current = p.input_of(id, &port).cloned();
        let label = if port == crate::model::node::DEFAULT_PORT {
            "Input from".to_owned()
        } else {
            format!("Input `{port}` from")
        };
        let mut chosen = current.clone();
        ui.horizontal(|ui| {
            let l = ui.label(&label);
            egui::ComboBox::from_id_salt(("input", &port))
                .selected_text(current.as_ref().map_or("not connected", |c| c.as_str()))
                .show_ui(ui, |ui| {
                    ui.selectable_value(&mut chosen, None, "not connected");
                    // any node with an output that does not depend on this one
                    for n in p
                        .nodes
                        .iter()
                        .filter(|n| &n.id != id && n.kind.has_output() && !p.reaches(id, &n.id))
                    {
                        ui.selectable_value(&mut chosen, Some(n.id.clone()), format!("← {}", n.id));
                    }
                })
                .response
                .labelled_by(l.id);
        });
        if chosen != current {
            out = Some((port, chosen));
        }
    }
    if !node.kind.input_ports().is_empty() {
        ui.separator();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fit(shown: [bool; 3], w: f32, h: f32, sizes: [f32; 3]) -> [Option<f32>; 3] {
        panels_that_fit(shown, egui::vec2(w, h), sizes)
    }

    #[test]
    fn panels_are_left_out_so_the_canvas_keeps_its_room() {
        let all = |w, h| fit([true; 3], w, h, PANEL_DEFAULTS).map(|f| f.is_some());
        assert_eq!(all(1400.0, 860.0), [true, true, true]);
        // narrower: the palette goes first, the inspector stays
        assert_eq!(all(600.0, 860.0), [false, true, true]);
        // too narrow for the inspector: the palette alone may still fit
        assert_eq!(all(450.0, 860.0), [true, false, true]);
        // tiny: the canvas alone
        assert_eq!(all(360.0, 210.0), [false, false, false]);
        // low: the bottom panel goes, the side panels stay
        assert_eq!(all(1400.0, 300.0), [true, true, false]);
        // a panel unticked in View stays out
        assert_eq!(
            fit([false, true, false], 1400.0, 860.0, PANEL_DEFAULTS).map(|f| f.is_some()),
            [false, true, false]
        );
    }

    #[test]
    fn a_panel_dragged_wide_is_held_to_what_leaves_the_canvas_its_room() {
        // 800 px: the palette as it is (170), the inspector up to 800 - 240 - 170
        assert_eq!(
            fit([true; 3], 800.0, 860.0, PANEL_DEFAULTS),
            [Some(320.0), Some(390.0), Some(720.0)]
        );
        // the palette dragged to 600 px: held to 800 - 240 - the inspector's least width
        let [palette, inspector, _] = fit([true; 3], 800.0, 860.0, [600.0, 330.0, 340.0]);
        assert_eq!((palette, inspector), (Some(320.0), Some(240.0)));
        // whatever the sizes, the panels shown leave the canvas its least room
        for w in [380.0, 500.0, 640.0, 900.0] {
            let [p, i, _] = fit([true; 3], w, 860.0, [900.0, 900.0, 900.0]);
            let (p, i) = (p.map_or(0.0, |m| 900f32.clamp(PANEL_MINS[0], m)), i.unwrap_or(0.0));
            assert!(w - p - i >= CANVAS_MIN.x, "{w} px: palette {p}, inspector up to {i}");
        }
    }
}
