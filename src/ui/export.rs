//! File → Export: the project as a PySpark script or a Spark Declarative Pipelines source,
//! previewed in a window with a Copy button and Save (to `export/` beside the project file).
//! The code comes from `crate::export` (pure text generation, redone when the project changes).

use std::path::{Path, PathBuf};

use eframe::egui::{self, RichText};

use crate::export::{Export, NodeSchemas, Target, export_project_with_schemas};
use crate::model::Project;

/// The export window's state.
#[derive(Default)]
pub struct ExportDialog {
    pub open: bool,
    pub target: Option<Target>,
    /// One pipeline, or every pipeline when `None`.
    pub pipeline: Option<String>,
    /// The last generation: the code, or why there is none.
    pub result: Option<Result<Export, String>>,
    /// What `result` was generated from (project, target, pipeline, planned schemas): the
    /// code is generated again only when one of them changed, not every frame.
    generated_from: Option<(Project, Target, Option<String>, usize)>,
    /// What the last Copy or Save did, shown under the code.
    pub note: String,
}

impl ExportDialog {
    /// Opens the window for `target`.
    pub fn open(&mut self, target: Target) {
        self.open = true;
        self.target = Some(target);
        self.result = None;
        self.note.clear();
    }

    /// Generates the code again if the project, the choices or the planned schemas changed.
    fn regenerate(&mut self, project: &Project, schemas: &NodeSchemas) {
        let target = self.target.unwrap_or(Target::PySpark);
        let same = self.generated_from.as_ref().is_some_and(|(p, t, only, n)| {
            *t == target && *only == self.pipeline && *n == schemas.len() && p == project
        });
        if same && self.result.is_some() {
            return;
        }
        let only: Vec<String> = self.pipeline.iter().cloned().collect();
        self.result = Some(
            export_project_with_schemas(project, target, &only, schemas).map_err(|e| e.to_string()),
        );
        self.generated_from = Some((project.clone(), target, self.pipeline.clone(), schemas.len()));
    }

    /// The window; `schemas` are the node schemas the app planned for the inspector (SDP lists
    /// a Flatten's and a Join's columns from them); `project_path` decides where Save writes.
    pub fn export_ui(
        &mut self,
        ctx: &egui::Context,
        project: &Project,
        schemas: &NodeSchemas,
        project_path: Option<&Path>,
    ) {
        if !self.open {
            return;
        }
        let target = self.target.unwrap_or(Target::PySpark);
        if self.pipeline.as_ref().is_some_and(|p| project.pipeline(p).is_none()) {
            self.pipeline = None;
        }
        self.regenerate(project, schemas);
        let mut open = self.open;
        egui::Window::new(format!("Export to {}", target.label()))
            .id(egui::Id::new("export_window"))
            .open(&mut open)
            .default_size([760.0, 560.0])
            .resizable(true)
            .show(ctx, |ui| self.body_ui(ui, project, project_path));
        self.open = open;
    }

    fn body_ui(&mut self, ui: &mut egui::Ui, project: &Project, project_path: Option<&Path>) {
        ui.horizontal(|ui| {
            ui.label("Target");
            for t in Target::ALL {
                if ui.selectable_label(self.target == Some(t), t.label()).clicked() {
                    self.target = Some(t);
                    self.note.clear();
                }
            }
        });
        ui.horizontal(|ui| {
            ui.label("Pipelines");
            egui::ComboBox::from_id_salt("export_pipeline")
                .selected_text(self.pipeline.clone().unwrap_or_else(|| "all".into()))
                .show_ui(ui, |ui| {
                    ui.selectable_value(&mut self.pipeline, None, "all");
                    for p in &project.pipelines {
                        ui.selectable_value(&mut self.pipeline, Some(p.name.clone()), &p.name);
                    }
                });
        });
        ui.separator();
        // taken out for the frame (the buttons below set `note`), put back after
        let result = self.result.take();
        match &result {
            Some(Ok(export)) => {
                ui.horizontal(|ui| {
                    ui.label(RichText::new(&export.file_name).strong());
                    ui.label(format!("{} lines", export.code.lines().count()));
                    if ui.button("Copy").clicked() {
                        ui.ctx().copy_text(export.code.clone());
                        self.note = format!("copied {} to the clipboard", export.file_name);
                    }
                    if ui.button("Save").clicked() {
                        self.note = match save(export, project_path) {
                            Ok(p) => format!("saved {}", p.display()),
                            Err(e) => format!("cannot save: {e}"),
                        };
                    }
                });
                if !export.todos.is_empty() {
                    ui.label(
                        RichText::new(format!(
                            "⚠ {} construct(s) without a faithful Spark equivalent (marked # TODO(medallion)):",
                            export.todos.len()
                        ))
                        .color(ui.visuals().warn_fg_color),
                    );
                    for t in &export.todos {
                        ui.label(format!("• {t}"));
                    }
                }
                if !self.note.is_empty() {
                    ui.label(&self.note);
                }
                egui::ScrollArea::both().auto_shrink([false, false]).show(ui, |ui| {
                    let mut code = export.code.as_str();
                    ui.add(
                        egui::TextEdit::multiline(&mut code)
                            .code_editor()
                            .desired_width(f32::INFINITY),
                    );
                });
            }
            Some(Err(e)) => {
                ui.label(RichText::new(e).color(ui.visuals().error_fg_color));
            }
            None => {}
        }
        self.result = result;
    }
}

/// Writes the export to `export/` beside the project file (the working folder if unsaved).
fn save(export: &Export, project_path: Option<&Path>) -> std::io::Result<PathBuf> {
    let base = project_path.and_then(Path::parent).unwrap_or(Path::new("."));
    let dir = base.join("export");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(&export.file_name);
    std::fs::write(&path, &export.code)?;
    Ok(path)
}
