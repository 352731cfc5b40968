//! Keyboard shortcuts, the menu bar and toolbar, and the pipeline tabs.

use super::*;

impl MedallionApp {
    pub(super) fn shortcuts(&mut self, ui: &Ui) {
        use egui::{Key, Modifiers};
        let typing = ui.ctx().text_edit_focused() || self.was_typing;
        let cmd = Modifiers::COMMAND;
        let cmd_shift = Modifiers::COMMAND | Modifiers::SHIFT;
        // file shortcuts work wherever the focus is, as in any editor
        let (save_as, save, open, new) = ui.input_mut(|i| {
            (
                i.consume_key(cmd_shift, Key::S),
                i.consume_key(cmd, Key::S),
                i.consume_key(cmd, Key::O),
                i.consume_key(cmd, Key::N),
            )
        });
        if save_as {
            self.save_as();
        } else if save {
            self.save();
        }
        if open {
            self.guarded(Pending::Open);
        }
        if new {
            self.guarded(Pending::New);
        }
        // the rest belongs to a text field while one has the focus (its own undo, copy, delete)
        if typing {
            return;
        }
        let (undo, redo, delete, escape, copy, paste, all) = ui.input_mut(|i| {
            let redo = i.consume_key(cmd_shift, Key::Z) || i.consume_key(cmd, Key::Y);
            let all = i.consume_key(cmd, Key::A);
            (
                i.consume_key(cmd, Key::Z),
                redo,
                i.key_pressed(Key::Delete) || i.key_pressed(Key::Backspace),
                i.key_pressed(Key::Escape),
                i.events.iter().any(|e| matches!(e, egui::Event::Copy)),
                i.events.iter().find_map(|e| match e {
                    egui::Event::Paste(t) => Some(t.clone()),
                    _ => None,
                }),
                all,
            )
        });
        if all {
            self.all_selected = true;
        }
        if redo {
            self.redo();
        } else if undo {
            self.undo();
        }
        let selection = self.canvas_selection(ui);
        if delete {
            self.delete_nodes(&selection);
        }
        if escape {
            self.selected = None;
            self.all_selected = false;
        }
        if copy {
            self.copy_nodes(&selection);
        }
        if let Some(text) = paste {
            self.paste(&text);
        }
    }

    pub(super) fn widget_id(&self) -> egui::Id {
        egui::Id::new(("medallion_canvas", self.tab))
    }

    /// Nodes selected on the canvas, or the inspected node.
    pub(super) fn canvas_selection(&self, ui: &Ui) -> Vec<NodeId> {
        if self.all_selected {
            return self
                .pipeline()
                .map(|p| p.nodes.iter().map(|n| n.id.clone()).collect())
                .unwrap_or_default();
        }
        let mut ids = self
            .canvases
            .get(self.tab)
            .map(|c| c.selected(ui, self.widget_id()))
            .unwrap_or_default();
        if ids.is_empty()
            && let Some(s) = &self.selected
        {
            ids.push(s.clone());
        }
        ids
    }

    pub(super) fn menu_ui(&mut self, ui: &mut Ui) {
        egui::MenuBar::new().ui(ui, |ui| {
            ui.menu_button("File", |ui| {
                if ui.button("New").clicked() {
                    self.guarded(Pending::New);
                }
                if ui.button("Open…").clicked() {
                    self.guarded(Pending::Open);
                }
                if ui.button("Save").clicked() {
                    self.save();
                }
                if ui.button("Save As…").clicked() {
                    self.save_as();
                }
                if ui
                    .button("Open path…")
                    .on_hover_text("Type the file's path (no system dialog)")
                    .clicked()
                {
                    self.open_path_dialog(false);
                }
                if ui
                    .button("Save to path…")
                    .on_hover_text("Type the file's path (no system dialog)")
                    .clicked()
                {
                    self.open_path_dialog(true);
                }
                ui.menu_button("Open Recent", |ui| {
                    for p in self.recent.clone() {
                        if ui.button(p.display().to_string()).clicked() {
                            self.guarded(Pending::OpenPath(p));
                        }
                    }
                });
                ui.menu_button("Export", |ui| {
                    for target in crate::export::Target::ALL {
                        if ui.button(format!("{}…", target.label())).clicked() {
                            self.export.open(target);
                        }
                    }
                });
                ui.separator();
                if ui.button("Quit").clicked() {
                    self.guarded(Pending::Quit);
                }
            });
            ui.menu_button("Edit", |ui| {
                if ui.add_enabled(self.history.can_undo(), egui::Button::new("Undo")).clicked() {
                    self.undo();
                }
                if ui.add_enabled(self.history.can_redo(), egui::Button::new("Redo")).clicked() {
                    self.redo();
                }
                if ui.button("Delete selected").clicked() {
                    let sel = self.canvas_selection(ui);
                    self.delete_nodes(&sel);
                }
            });
            ui.menu_button("Run", |ui| {
                if ui.button("Run pipeline").clicked() {
                    self.request_run(false);
                }
                if ui.button("Run all pipelines").clicked() {
                    self.request_run(true);
                }
                ui.separator();
                if ui.button("Start all streams").clicked() {
                    self.start_all_streams();
                }
                if ui.button("Stop all streams").clicked() {
                    self.stop_pipeline(None);
                }
            });
            ui.menu_button("View", |ui| {
                let labels =
                    ["Node palette", "Inspector", "Bottom panel (preview, problems, monitor…)"];
                for (i, label) in labels.into_iter().enumerate() {
                    ui.checkbox(&mut self.panels_shown[i], label);
                    if self.panels_shown[i] && !self.panels_fit[i] {
                        ui.weak("  hidden while the window is too small for it");
                    }
                }
                ui.separator();
                if ui.button("Fit to view").clicked()
                    && let Some(c) = self.canvases.get_mut(self.tab)
                {
                    c.fitted = false;
                }
                if ui
                    .button("Auto-layout")
                    .on_hover_text("arrange left to right by the edges")
                    .clicked()
                    && self.doc.project.pipelines.get(self.tab).is_some()
                {
                    self.history.record(&self.doc.project);
                    self.doc.project.pipelines[self.tab].auto_layout();
                    if let Some(c) = self.canvases.get_mut(self.tab) {
                        c.fitted = false;
                    }
                }
            });
            ui.separator();
            let current = self.pipeline().map(|p| (p.name.clone(), p.mode));
            match current {
                Some((name, PipelineMode::Stream)) => {
                    let status = self.monitor.status(&name);
                    if status.is_active() {
                        if ui
                            .button("■ Stop")
                            .on_hover_text("Stop after the batch in flight")
                            .clicked()
                        {
                            self.stop_pipeline(Some(&name));
                        }
                    } else if ui
                        .button("▶ Start")
                        .on_hover_text("Run this stream until stopped")
                        .clicked()
                    {
                        self.start_pipeline(&name);
                        self.bottom = BottomTab::Monitor;
                    }
                    if ui
                        .button("▶ Run")
                        .on_hover_text("Process what is available now, then stop (availableNow)")
                        .clicked()
                    {
                        self.request_run(false);
                    }
                }
                _ => {
                    if ui.button("▶ Run").on_hover_text("Run the pipeline in this tab").clicked()
                    {
                        self.request_run(false);
                    }
                }
            }
            if self.monitor.any_active() {
                if ui.button("■ Stop all").clicked() {
                    self.stop_pipeline(None);
                }
            } else if ui.button("▶ Start all streams").clicked() {
                self.start_all_streams();
            }
            if let Some(c) = self.canvases.get_mut(self.tab) {
                ui.separator();
                if ui.button("−").on_hover_text("Zoom out").clicked() {
                    c.zoom = Some(0.8);
                }
                ui.label(format!("{:.0}%", c.scale * 100.0));
                if ui.button("+").on_hover_text("Zoom in").clicked() {
                    c.zoom = Some(1.25);
                }
                if ui.button("Fit").on_hover_text("Show every node").clicked() {
                    c.fitted = false;
                }
            }
            ui.label(RichText::new(&self.status).weak());
        });
    }

    pub(super) fn tabs_ui(&mut self, ui: &mut Ui) {
        ui.horizontal(|ui| {
            let names: Vec<String> =
                self.doc.project.pipelines.iter().map(|p| p.name.clone()).collect();
            for (i, name) in names.iter().enumerate() {
                let errors = self
                    .diagnostics
                    .iter()
                    .filter(|d| &d.pipeline == name && d.severity == Severity::Error)
                    .count();
                let label = if errors > 0 { format!("{name} ({errors})") } else { name.clone() };
                let status = self.monitor.status(name);
                let label = if status == RunStatus::Idle {
                    RichText::new(label)
                } else {
                    RichText::new(format!("⏺ {label}")).color(status.color())
                };
                if ui.selectable_label(self.tab == i, label).clicked() && self.tab != i {
                    self.open_tab(i);
                }
            }
            ui.menu_button("+ pipeline", |ui| {
                if ui.button("Batch pipeline").clicked() {
                    self.add_pipeline(PipelineMode::Batch);
                }
                if ui.button("Stream pipeline").clicked() {
                    self.add_pipeline(PipelineMode::Stream);
                }
            });
        });
    }
}
