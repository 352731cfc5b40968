//! The selected table's health in the Lakehouse panel (files, small files, versions, last
//! OPTIMIZE and VACUUM, unreferenced bytes) and its upkeep: Optimize and Vacuum, each behind
//! a confirmation that shows what will be rewritten or deleted. Vacuum's list comes from a
//! dry run, so the user sees the exact files before anything is deleted.

use std::path::{Path, PathBuf};

use eframe::egui::{self, RichText, Ui};

use crate::engine::lakehouse::{
    COMPACT_MIN_FILES, TableHealth, UpkeepDone, UpkeepOp, VacuumOptions, VacuumReport,
};

use super::monitor::human_bytes;
use super::theme;

/// Where the upkeep of the selected table stands.
#[derive(Debug, Default)]
pub enum Dialog {
    #[default]
    Closed,
    /// Asks to confirm an OPTIMIZE (the small files are listed from the health).
    ConfirmOptimize,
    /// Retention for a VACUUM, before its dry run.
    VacuumRetention { hours: String, force: bool },
    /// The dry run's list, to confirm.
    ConfirmVacuum { plan: VacuumReport, options: VacuumOptions },
    /// A request in flight.
    Running(&'static str),
    /// The last operation's outcome.
    Done(Result<String, String>),
}

/// Health and upkeep of the selected table.
#[derive(Debug, Default)]
pub struct UpkeepState {
    pub health: Option<Result<Box<TableHealth>, String>>,
    pub health_request: Option<u64>,
    pub dialog: Dialog,
    pub request: Option<u64>,
    /// The retention check was waived for the VACUUM being planned.
    force: bool,
}

/// What the panel asks of the app.
#[derive(Clone, Debug, PartialEq)]
pub enum UpkeepAction {
    Health(PathBuf),
    Run(PathBuf, UpkeepOp),
}

impl UpkeepState {
    pub fn on_health(&mut self, request: u64, result: Result<Box<TableHealth>, String>) {
        if self.health_request == Some(request) {
            self.health_request = None;
            self.health = Some(result);
        }
    }

    /// Takes an operation's outcome; true when the table changed (the panel reloads).
    pub fn on_upkeep(&mut self, request: u64, result: Result<UpkeepDone, String>) -> bool {
        if self.request != Some(request) {
            return false;
        }
        self.request = None;
        match result {
            Ok(UpkeepDone::Vacuumed(plan)) if plan.dry_run => {
                let options = VacuumOptions {
                    retain_hours: Some(plan.retain_hours),
                    dry_run: false,
                    force: self.force,
                };
                self.dialog = Dialog::ConfirmVacuum { plan, options };
                false
            }
            Ok(UpkeepDone::Vacuumed(done)) => {
                self.dialog = Dialog::Done(Ok(done.to_string()));
                true
            }
            Ok(UpkeepDone::Optimized(done)) => {
                self.dialog = Dialog::Done(Ok(done.to_string()));
                true
            }
            Err(e) => {
                self.dialog = Dialog::Done(Err(e));
                false
            }
        }
    }
}

fn when(v: &Option<(i64, chrono::DateTime<chrono::Utc>)>) -> String {
    match v {
        Some((version, t)) => {
            format!("v{version} at {}", t.with_timezone(&chrono::Local).format("%Y-%m-%d %H:%M"))
        }
        None => "never (in the last 1000 versions)".into(),
    }
}

/// The health lines and the Optimize / Vacuum buttons (and their dialogs).
pub fn health_ui(ui: &mut Ui, st: &mut UpkeepState, path: &Path, actions: &mut Vec<UpkeepAction>) {
    match &st.health {
        None => {
            ui.horizontal(|ui| {
                ui.spinner();
                ui.small("reading the table's health…");
            });
        }
        Some(Err(e)) => {
            ui.label(RichText::new(format!("health: {e}")).small().color(theme::ERROR));
        }
        Some(Ok(h)) => {
            let small = RichText::new(format!(
                "{} files, {} small (< {}) · avg {} · {} total",
                h.files,
                h.small_files,
                human_bytes(h.target_file_bytes / 4),
                human_bytes(h.avg_file_bytes),
                human_bytes(h.total_bytes)
            ))
            .small();
            let small = if h.needs_compaction() { small.color(theme::WARNING) } else { small };
            ui.label(small).on_hover_text(format!(
                "target file size {} (delta.targetFileSize); {COMPACT_MIN_FILES} or more small files: OPTIMIZE helps",
                human_bytes(h.target_file_bytes)
            ));
            ui.label(
                RichText::new(format!(
                    "{} versions in the log (oldest v{}) · unreferenced {} files, {}",
                    h.log_versions,
                    h.oldest_version.unwrap_or(0),
                    h.unreferenced_files,
                    human_bytes(h.unreferenced_bytes)
                ))
                .small(),
            )
            .on_hover_text(format!(
                "log kept {} h (delta.logRetentionDuration), a stream's upkeep checkpoints the log every {} commits (delta.checkpointInterval, Spark's 10 when unset); removed files kept {} h (delta.deletedFileRetentionDuration) before VACUUM may delete them",
                h.log_retention_hours, h.checkpoint_interval, h.deleted_file_retention_hours
            ));
            ui.label(
                RichText::new(format!(
                    "last OPTIMIZE {} · last VACUUM {}",
                    when(&h.last_optimize),
                    when(&h.last_vacuum)
                ))
                .small()
                .weak(),
            );
        }
    }
    let busy = st.request.is_some();
    ui.horizontal(|ui| {
        let health = st.health.as_ref().and_then(|h| h.as_ref().ok());
        if ui
            .add_enabled(!busy && health.is_some(), egui::Button::new("Optimize…"))
            .on_hover_text("rewrite small files into large ones (bin-packing)")
            .clicked()
        {
            st.dialog = Dialog::ConfirmOptimize;
        }
        if ui
            .add_enabled(!busy && health.is_some(), egui::Button::new("Vacuum…"))
            .on_hover_text("delete files no version within the retention needs")
            .clicked()
        {
            let hours = health.map_or(168.0, |h| h.deleted_file_retention_hours);
            st.dialog = Dialog::VacuumRetention { hours: format!("{hours}"), force: false };
        }
        if busy {
            ui.spinner();
        }
        if let Dialog::Done(r) = &st.dialog {
            let (text, color) = match r {
                Ok(t) => (t.as_str(), theme::OK),
                Err(e) => (e.as_str(), theme::ERROR),
            };
            ui.label(RichText::new(super::canvas::clipped(text, 90)).small().color(color))
                .on_hover_text(text);
        }
    });
    dialogs_ui(ui, st, path, actions);
}

fn dialogs_ui(ui: &mut Ui, st: &mut UpkeepState, path: &Path, actions: &mut Vec<UpkeepAction>) {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let mut next = None;
    let mut forced = None;
    match &mut st.dialog {
        Dialog::ConfirmOptimize => {
            let health = st.health.as_ref().and_then(|h| h.as_ref().ok());
            egui::Modal::new(egui::Id::new("confirm_optimize")).show(ui.ctx(), |ui| {
                ui.heading(format!("Optimize {name}?"));
                if let Some(h) = health {
                    ui.label(format!(
                        "{} small file(s) of {} are rewritten into files of up to {}. Readers and streams keep going: the new files are dataChange = false, and the old ones stay for time travel until VACUUM.",
                        h.small_files,
                        h.files,
                        human_bytes(h.target_file_bytes)
                    ));
                    file_list(ui, "optimize_files", &h.small_file_list);
                }
                ui.horizontal(|ui| {
                    if ui.button("Optimize").clicked() {
                        actions.push(UpkeepAction::Run(path.to_owned(), UpkeepOp::Optimize));
                        next = Some(Dialog::Running("optimize"));
                    }
                    if ui.button("Cancel").clicked() {
                        next = Some(Dialog::Closed);
                    }
                });
            });
        }
        Dialog::VacuumRetention { hours, force } => {
            let table_hours = st
                .health
                .as_ref()
                .and_then(|h| h.as_ref().ok())
                .map_or(168.0, |h| h.deleted_file_retention_hours);
            egui::Modal::new(egui::Id::new("vacuum_retention")).show(ui.ctx(), |ui| {
                ui.heading(format!("Vacuum {name}"));
                ui.label("Files that no version within the retention references, and that are older than it, are deleted. Time travel to versions older than the retention stops working.");
                ui.horizontal(|ui| {
                    let l = ui.label("Keep files younger than (hours)");
                    ui.add(egui::TextEdit::singleline(hours).desired_width(60.0)).labelled_by(l.id);
                });
                let parsed = hours.trim().parse::<f64>().ok().filter(|h| h.is_finite() && *h >= 0.0);
                if parsed.is_none() {
                    ui.label(RichText::new("give a number of hours ≥ 0").color(theme::ERROR));
                }
                let below = parsed.is_some_and(|h| h < table_hours);
                if below {
                    ui.label(
                        RichText::new(format!(
                            "below the table's retention of {table_hours} h: a reader or a stream still using an older version could lose its files"
                        ))
                        .color(theme::WARNING),
                    );
                    ui.checkbox(force, "nothing reads or writes this table now (force)");
                }
                ui.horizontal(|ui| {
                    let ok = parsed.is_some() && (!below || *force);
                    if ui.add_enabled(ok, egui::Button::new("List files (dry run)")).clicked() {
                        let options = VacuumOptions { retain_hours: parsed, dry_run: true, force: *force };
                        actions.push(UpkeepAction::Run(path.to_owned(), UpkeepOp::VacuumPlan(options)));
                        forced = Some(*force);
                        next = Some(Dialog::Running("vacuum dry run"));
                    }
                    if ui.button("Cancel").clicked() {
                        next = Some(Dialog::Closed);
                    }
                });
            });
        }
        Dialog::ConfirmVacuum { plan, options } => {
            egui::Modal::new(egui::Id::new("confirm_vacuum")).show(ui.ctx(), |ui| {
                ui.heading(format!("Vacuum {name}?"));
                if plan.files.is_empty() {
                    ui.label(format!(
                        "Nothing to delete: no unreferenced file is older than {} hours.",
                        plan.retain_hours
                    ));
                } else {
                    ui.label(format!(
                        "{} file(s), {} will be deleted:",
                        plan.files.len(),
                        human_bytes(plan.bytes)
                    ));
                    file_list(ui, "vacuum_files", &plan.files);
                }
                ui.horizontal(|ui| {
                    if !plan.files.is_empty() && ui.button("Delete these files").clicked() {
                        actions.push(UpkeepAction::Run(
                            path.to_owned(),
                            UpkeepOp::Vacuum(options.clone()),
                        ));
                        next = Some(Dialog::Running("vacuum"));
                    }
                    if ui.button(if plan.files.is_empty() { "Close" } else { "Cancel" }).clicked() {
                        next = Some(Dialog::Closed);
                    }
                });
            });
        }
        Dialog::Closed | Dialog::Running(_) | Dialog::Done(_) => {}
    }
    if let Some(d) = next {
        st.dialog = d;
    }
    if let Some(f) = forced {
        st.force = f;
    }
}

fn file_list(ui: &mut Ui, id: &str, files: &[(String, u64)]) {
    let row = ui.text_style_height(&egui::TextStyle::Small) + 2.0;
    egui::ScrollArea::vertical().id_salt(id).max_height(220.0).show_rows(
        ui,
        row,
        files.len(),
        |ui, range| {
            ui.style_mut().wrap_mode = Some(egui::TextWrapMode::Truncate);
            for (file, bytes) in &files[range] {
                ui.label(
                    RichText::new(format!("{file}  {}", human_bytes(*bytes))).small().monospace(),
                );
            }
        },
    );
}
