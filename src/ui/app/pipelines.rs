//! The project's pipelines as a list: the settings panel of the pipeline in the current tab,
//! and creating, renaming, duplicating, moving and deleting pipelines, each one undo step.

use super::*;
use crate::ui::pipeline_settings::{PipelineAction, PipelineContext, pipeline_settings_ui};

impl MedallionApp {
    /// The inspector when no node is selected: the current pipeline's own settings.
    pub(super) fn pipeline_panel_ui(&mut self, ui: &mut Ui) {
        let tab = self.tab;
        let count = self.doc.project.pipelines.len();
        let Some(name) = self.pipeline().map(|p| p.name.clone()) else {
            ui.heading("Inspector");
            ui.label("No pipeline: add one with “+ pipeline”.");
            return;
        };
        let others: Vec<String> = (self.doc.project.pipelines.iter().enumerate())
            .filter(|(i, _)| *i != tab)
            .map(|(_, p)| p.name.clone())
            .collect();
        let diagnostics: Vec<Diagnostic> =
            self.diagnostics.iter().filter(|d| d.pipeline == name).cloned().collect();
        // the settings as they were (without the nodes and edges, which the panel does not
        // edit) and the tests (a rename moves them): the project before an edit is rebuilt
        // from them only on a change
        let settings_before = {
            let p = &mut self.doc.project.pipelines[tab];
            let (nodes, edges) = (std::mem::take(&mut p.nodes), std::mem::take(&mut p.edges));
            let settings = p.clone();
            (p.nodes, p.edges) = (nodes, edges);
            settings
        };
        let tests_before = self.doc.project.tests.clone();
        let mut trigger_text = std::mem::take(&mut self.trigger_text);
        let cx = PipelineContext { others: &others, diagnostics: &diagnostics, index: tab, count };
        let (changed, action) = egui::ScrollArea::vertical()
            .show(ui, |ui| {
                let p = &mut self.doc.project.pipelines[tab];
                pipeline_settings_ui(ui, p, &mut trigger_text, &cx)
            })
            .inner;
        self.trigger_text = trigger_text;
        if changed {
            let renamed = self.doc.project.pipelines[tab].name.clone();
            if renamed != name {
                // recorded tests follow their pipeline once its new name is valid: while the
                // name typed is another pipeline's, they wait under the last valid one
                let from = match self.renaming.take() {
                    Some((t, from)) if t == tab => from,
                    _ => name.clone(),
                };
                if super::super::pipeline_settings::name_problem(&renamed, &others).is_none() {
                    for t in self.doc.project.tests.iter_mut().filter(|t| t.pipeline == from) {
                        t.pipeline = renamed.clone();
                    }
                } else {
                    self.renaming = Some((tab, from));
                }
            }
            let mut before = self.doc.project.clone();
            let now = &before.pipelines[tab];
            before.pipelines[tab] =
                Pipeline { nodes: now.nodes.clone(), edges: now.edges.clone(), ..settings_before };
            before.tests = tests_before;
            self.record_typing(&before);
            self.schedule_plan(Duration::from_millis(300));
        }
        if let Some(a) = action {
            self.pipeline_action(a);
        }
    }

    /// A name `base`, `base_2`, ... no pipeline has.
    fn fresh_pipeline_name(&self, base: &str) -> String {
        let taken = |n: &str| self.doc.project.pipelines.iter().any(|p| p.name == n);
        if !taken(base) {
            return base.to_owned();
        }
        (2..).map(|i| format!("{base}_{i}")).find(|n| !taken(n)).unwrap_or_else(|| base.into())
    }

    /// Adds an empty pipeline (batch or stream) after the others and opens its tab.
    pub fn add_pipeline(&mut self, mode: PipelineMode) {
        self.before_edit();
        let base = match mode {
            PipelineMode::Batch => "batch_pipeline",
            PipelineMode::Stream => "stream_pipeline",
        };
        let mut p = Pipeline::new(self.fresh_pipeline_name(base));
        p.mode = mode;
        self.doc.project.pipelines.push(p);
        self.canvases.push(Canvas::default());
        self.open_tab(self.doc.project.pipelines.len() - 1);
    }

    pub(super) fn open_tab(&mut self, i: usize) {
        self.tab = i;
        self.all_selected = false;
        self.trigger_text.clear();
        self.selected = None;
        self.schedule_plan(Duration::ZERO);
    }

    /// Duplicates, moves or deletes the pipeline of the current tab.
    pub fn pipeline_action(&mut self, action: PipelineAction) {
        let tab = self.tab;
        let n = self.doc.project.pipelines.len();
        if tab >= n {
            return;
        }
        self.before_edit();
        let pipelines = &mut self.doc.project.pipelines;
        match action {
            PipelineAction::MoveLeft if tab > 0 => {
                pipelines.swap(tab, tab - 1);
                self.canvases.swap(tab, tab - 1);
                self.tab = tab - 1;
            }
            PipelineAction::MoveRight if tab + 1 < n => {
                pipelines.swap(tab, tab + 1);
                self.canvases.swap(tab, tab + 1);
                self.tab = tab + 1;
            }
            PipelineAction::MoveLeft | PipelineAction::MoveRight => {}
            PipelineAction::Duplicate => {
                let mut copy = pipelines[tab].clone();
                copy.name = self.fresh_pipeline_name(&format!("{}_copy", copy.name));
                // two pipelines must never share a checkpoint
                if let Some(cp) = &mut copy.checkpoint {
                    cp.push_str("_copy");
                }
                self.doc.project.pipelines.insert(tab + 1, copy);
                self.canvases.insert(tab + 1, Canvas::default());
                self.open_tab(tab + 1);
                self.status = "duplicated the pipeline".into();
            }
            PipelineAction::Delete => {
                let gone = pipelines.remove(tab);
                self.canvases.remove(tab);
                self.open_tab(tab.min(self.doc.project.pipelines.len().saturating_sub(1)));
                self.status = format!("deleted pipeline {} (Ctrl+Z brings it back)", gone.name);
            }
        }
        self.schedule_plan(Duration::ZERO);
    }
}
