//! The side panels and the canvas: the node palette, the inspector (or the pipeline's
//! settings), and the graph with its overlays (schemas, rows, status, badges).

use super::*;

impl MedallionApp {
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
