//! The bottom panel: its tabs (preview, problems, run, monitor, lakehouse, event log,
//! checkpoint, SQL, tests, quality) and the checkpoint-reset confirmation.

use super::*;
use crate::ui::catch_up;
use crate::ui::preview::thousands;

impl MedallionApp {
    pub(super) fn bottom_panel_ui(&mut self, ui: &mut Ui) {
        ui.horizontal_wrapped(|ui| {
            ui.selectable_value(&mut self.bottom, BottomTab::Preview, "Preview");
            let problems = self.diagnostics.len();
            ui.selectable_value(
                &mut self.bottom,
                BottomTab::Problems,
                format!("Problems ({problems})"),
            );
            ui.selectable_value(&mut self.bottom, BottomTab::Run, "Run");
            for (tab, label) in [
                (BottomTab::Monitor, "Monitor"),
                (BottomTab::Lakehouse, "Lakehouse"),
                (BottomTab::Events, "Event log"),
                (BottomTab::Checkpoint, "Checkpoint"),
                (BottomTab::Sql, "SQL"),
                (BottomTab::Quality, "Quality"),
            ] {
                if ui.selectable_label(self.bottom == tab, label).clicked() && self.bottom != tab {
                    self.show_tab(tab);
                }
            }
            let (_, failed, _) = self.tests.counts(&self.doc.project);
            let label = match (self.doc.project.tests.len(), failed) {
                (0, _) => RichText::new("Tests"),
                (n, 0) => RichText::new(format!("Tests ({n})")),
                (n, f) => RichText::new(format!("Tests ({f} of {n} failing)")).color(theme::ERROR),
            };
            ui.selectable_value(&mut self.bottom, BottomTab::Tests, label);
        });
        ui.separator();
        // the tab's content scrolls inside the panel instead of growing it: a taller tab (the
        // gold stream's second row of plots) moved the tab bar under the pointer between
        // two clicks and refitted the canvas
        egui::ScrollArea::vertical()
            .id_salt("bottom_content")
            .auto_shrink(false)
            .show(ui, |ui| self.bottom_content_ui(ui));
    }

    fn bottom_content_ui(&mut self, ui: &mut Ui) {
        match self.bottom {
            BottomTab::Preview => {
                let Some(node) = self.preview.node.clone() else {
                    ui.label("Right-click a node and choose Preview, or use the inspector's Preview button.");
                    return;
                };
                ui.horizontal(|ui| {
                    ui.strong(format!("preview of `{node}`"));
                    let before = self.preview_limit;
                    egui::ComboBox::from_id_salt("preview_limit")
                        .selected_text(format!("first {} rows", thousands(self.preview_limit)))
                        .show_ui(ui, |ui| {
                            for n in super::PREVIEW_LIMITS {
                                let text = format!("first {} rows", thousands(n));
                                ui.selectable_value(&mut self.preview_limit, n, text);
                            }
                        });
                    if self.preview_limit != before {
                        self.request_preview(node.clone());
                    }
                    if self.preview.request.is_some() {
                        ui.spinner();
                        if ui.button("Cancel").clicked() {
                            self.cancel_preview();
                        }
                    }
                    if let Some(p) =
                        self.doc.project.pipelines.get(self.tab).map(|p| p.name.clone())
                    {
                        self.tests.record_ui(ui, &self.engine, &self.doc, &p, &node);
                    }
                });
                if let Some(output) = &self.preview.output {
                    let inputs = &self.preview.inputs;
                    ui.columns(inputs.len() + 1, |cols| {
                        for (i, (port, rows)) in inputs.iter().enumerate() {
                            let label = if port == crate::model::node::DEFAULT_PORT {
                                "input".to_owned()
                            } else {
                                format!("input `{port}`")
                            };
                            cols[i].label(RichText::new(&label).weak());
                            preview_table_ui(&mut cols[i], &label, rows);
                        }
                        let last = inputs.len();
                        cols[last].label(RichText::new("output").weak());
                        preview_table_ui(&mut cols[last], "output", output);
                    });
                }
            }
            BottomTab::Problems => {
                egui::ScrollArea::vertical().show(ui, |ui| {
                    let diags = self.diagnostics.clone();
                    if diags.is_empty() {
                        ui.label(RichText::new("No problems.").color(theme::OK));
                    }
                    for d in diags {
                        let color = if d.severity == Severity::Error {
                            theme::ERROR
                        } else {
                            theme::WARNING
                        };
                        if ui.link(RichText::new(d.to_string()).color(color)).clicked() {
                            if let Some(i) =
                                self.doc.project.pipelines.iter().position(|p| p.name == d.pipeline)
                            {
                                self.tab = i;
                                self.trigger_text.clear();
                            }
                            self.selected = d.node.clone();
                        }
                    }
                });
            }
            BottomTab::Monitor => self.monitor_tab_ui(ui),
            BottomTab::Tests => self.tests.tab_ui(ui, &self.engine, &self.doc),
            BottomTab::Quality => {
                if let Some(super::super::quality::QualityAction::ShowQuarantined {
                    pipeline,
                    node,
                    rule,
                }) = self.quality.tab_ui(ui)
                    && let Some(sql) = super::super::quality::quarantine_query(
                        &self.doc.project,
                        &pipeline,
                        &node,
                        &rule,
                    )
                {
                    self.sql.text = sql;
                    self.sql.run(&self.engine, self.doc.lakehouse_root());
                    self.show_tab(BottomTab::Sql);
                }
            }
            BottomTab::Sql => {
                let root = self.doc.lakehouse_root();
                self.sql.console_ui(ui, &self.engine, &root, &self.picker);
            }
            BottomTab::Lakehouse => {
                for a in tables::tables_ui(ui, &mut self.tables) {
                    match a {
                        TablesAction::Refresh => self.refresh_panels(true),
                        TablesAction::Select(p) => self.select_table(p),
                        TablesAction::ShowVersion(p, v) => self.show_version(p, v),
                        TablesAction::Compare(p, a, b) => self.compare_versions(p, a, b),
                        TablesAction::Upkeep(a) => self.table_upkeep(a),
                    }
                }
            }
            BottomTab::Events => {
                let names: Vec<String> =
                    self.doc.project.pipelines.iter().map(|p| p.name.clone()).collect();
                ui.horizontal(|ui| {
                    if ui.small_button("⟳ reload").clicked() {
                        self.refresh_panels(true);
                    }
                    ui.label(
                        RichText::new(format!(
                            "from {}",
                            crate::engine::eventlog::log_dir(&self.doc.lakehouse_root()).display()
                        ))
                        .weak(),
                    );
                });
                monitor::event_log_ui(
                    ui,
                    &self.panels.events,
                    &names,
                    &mut self.panels.event_filter,
                );
            }
            BottomTab::Checkpoint => {
                let current = self.pipeline().map(|p| (p.name.clone(), p.mode));
                let mut ask_reset = false;
                let mut reload = false;
                match (&self.panels.checkpoint, current) {
                    (_, Some((_, PipelineMode::Batch))) | (_, None) => {
                        ui.label(
                            "Batch pipelines have no checkpoint; pick a stream pipeline's tab.",
                        );
                    }
                    (Some((name, Ok(info))), Some((tab_name, _))) if *name == tab_name => {
                        let running = self.monitor.status(name).is_active();
                        ask_reset = monitor::checkpoint_ui(ui, info, running);
                    }
                    (Some((name, Err(e))), Some((tab_name, _))) if *name == tab_name => {
                        ui.label(RichText::new(e).color(theme::ERROR));
                    }
                    _ => {
                        ui.spinner();
                        reload = true;
                    }
                }
                if ask_reset {
                    self.ask_reset_checkpoint();
                }
                if reload {
                    self.refresh_panels(true);
                }
            }
            BottomTab::Run => {
                egui::ScrollArea::vertical().stick_to_bottom(true).show(ui, |ui| {
                    for line in &self.run.log {
                        ui.monospace(line);
                    }
                    if self.run.request.is_some() {
                        ui.spinner();
                    }
                });
            }
        }
    }

    pub(super) fn monitor_tab_ui(&mut self, ui: &mut Ui) {
        let names: Vec<(String, PipelineMode)> =
            self.doc.project.pipelines.iter().map(|p| (p.name.clone(), p.mode)).collect();
        let streams: Vec<&String> =
            names.iter().filter(|(_, m)| *m == PipelineMode::Stream).map(|(n, _)| n).collect();
        if streams.is_empty() {
            ui.label("No stream pipelines in this project: the monitor plots streams.");
            return;
        }
        // the pipeline in the tab first when it is a stream, else the first that reported
        let current = self.pipeline().map(|p| p.name.clone());
        let shown = streams
            .iter()
            .find(|n| Some(**n) == current.as_ref())
            .or_else(|| streams.iter().find(|n| self.monitor.pipelines.contains_key(n.as_str())))
            .or(streams.first())
            .map(|n| (*n).clone());
        // wrapped: one row would run under the inspector with three streams or a narrow window
        ui.horizontal_wrapped(|ui| {
            for (name, mode) in &names {
                if *mode != PipelineMode::Stream {
                    continue;
                }
                let status = self.monitor.status(name);
                ui.label(RichText::new(name).strong());
                monitor::status_chip_ui(ui, status);
                if status.is_active() {
                    if ui.small_button(format!("■ Stop {name}")).clicked() {
                        self.stop_pipeline(Some(name));
                    }
                } else if ui.small_button(format!("▶ Start {name}")).clicked() {
                    self.start_pipeline(name);
                }
                ui.separator();
            }
        });
        let Some(name) = shown else { return };
        match self.monitor.pipelines.get(&name) {
            Some(pm) => {
                let interval =
                    self.doc.project.pipeline(&name).and_then(catch_up::trigger_interval_ms);
                monitor::plots_ui(ui, &name, pm, interval);
                super::super::stateful::state_plots_ui(ui, &name, pm);
            }
            None => {
                ui.label(format!("`{name}` has not run since the app started: ▶ Start it."));
            }
        }
    }

    pub(super) fn confirm_reset_ui(&mut self, ui: &Ui) {
        let Some((name, lines)) = self.panels.confirm_reset.clone() else { return };
        let mut choice = None;
        let modal = egui::Modal::new(egui::Id::new("reset_checkpoint")).show(ui.ctx(), |ui| {
            ui.heading(format!("Reset the checkpoint of {name}?"));
            ui.label("The next start begins as a new query. It will:");
            for l in &lines {
                ui.label(format!("• {l}"));
            }
            ui.horizontal(|ui| {
                if ui.button(RichText::new("Reset checkpoint").color(theme::ERROR)).clicked() {
                    choice = Some(true);
                }
                if ui.button("Cancel").clicked() {
                    choice = Some(false);
                }
            });
        });
        if modal.should_close() && choice.is_none() {
            choice = Some(false);
        }
        match choice {
            Some(true) => self.confirm_reset_checkpoint(),
            Some(false) => self.panels.confirm_reset = None,
            None => {}
        }
    }
}
