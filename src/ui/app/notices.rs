//! What the user must see or answer: notifications in the window's corner (errors stay
//! until dismissed, information fades after a few seconds), the in-app file dialog used
//! when the system has none (rfd's xdg portal missing on a bare desktop), and the unsaved
//! changes question.

use super::*;

/// How long an information notice stays.
const INFO_FOR: Duration = Duration::from_secs(6);

pub(super) struct Notice {
    pub text: String,
    pub error: bool,
    pub at: Instant,
}

/// The in-app file dialog: a path typed by the user.
pub(super) struct PathDialog {
    pub save: bool,
    pub text: String,
}

impl MedallionApp {
    /// Shows `text` as a notification (and on the status line).
    pub fn notify(&mut self, text: impl Into<String>, error: bool) {
        let text = text.into();
        self.status = crate::ui::canvas::clipped(&text, 120);
        self.notices.retain(|n| n.text != text);
        self.notices.push(Notice { text, error, at: Instant::now() });
        if !error {
            self.ctx.request_repaint_after(INFO_FOR);
        }
    }

    /// The notices shown now (tests).
    pub fn notices(&self) -> Vec<(String, bool)> {
        self.notices.iter().map(|n| (n.text.clone(), n.error)).collect()
    }

    /// Sends a command to the engine, or says that its queue is full.
    pub(super) fn send_or_notify(&mut self, cmd: Command, what: &str) -> bool {
        let sent = self.engine.send(cmd);
        if !sent {
            self.notify(format!("The engine is busy: {what} was not sent. Try again."), true);
        }
        sent
    }

    pub(super) fn notices_ui(&mut self, ui: &Ui) {
        self.notices.retain(|n| n.error || n.at.elapsed() < INFO_FOR);
        if self.notices.is_empty() {
            return;
        }
        let mut dismiss = None;
        egui::Area::new(egui::Id::new("notices"))
            .anchor(egui::Align2::RIGHT_BOTTOM, [-16.0, -16.0])
            .order(egui::Order::Foreground)
            .show(ui.ctx(), |ui| {
                ui.set_max_width(420.0);
                for (i, n) in self.notices.iter().enumerate() {
                    let color = if n.error { theme::ERROR } else { theme::OK };
                    egui::Frame::popup(ui.style()).stroke(egui::Stroke::new(1.5, color)).show(
                        ui,
                        |ui| {
                            ui.horizontal(|ui| {
                                if ui.small_button("✕").on_hover_text("Dismiss").clicked() {
                                    dismiss = Some(i);
                                }
                                ui.add(
                                    egui::Label::new(RichText::new(&n.text).color(color)).wrap(),
                                );
                            });
                        },
                    );
                }
            });
        if let Some(i) = dismiss {
            self.notices.remove(i);
        }
    }

    /// Opens the in-app file dialog (Open when `save` is false).
    pub fn open_path_dialog(&mut self, save: bool) {
        let text = match (&self.doc.path, save) {
            (Some(p), _) => p.display().to_string(),
            (None, true) => std::env::current_dir()
                .map(|d| d.join("project.toml").display().to_string())
                .unwrap_or_default(),
            (None, false) => String::new(),
        };
        self.path_dialog = Some(PathDialog { save, text });
    }

    pub(super) fn path_dialog_ui(&mut self, ui: &Ui) {
        let Some(dialog) = &mut self.path_dialog else { return };
        let mut done = None;
        let modal = egui::Modal::new(egui::Id::new("path_dialog")).show(ui.ctx(), |ui| {
            ui.heading(if dialog.save { "Save project as" } else { "Open project" });
            let l = ui.label("Project file path");
            let r = ui
                .add(egui::TextEdit::singleline(&mut dialog.text).desired_width(420.0))
                .labelled_by(l.id);
            let enter = r.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
            ui.horizontal(|ui| {
                let ok = if dialog.save { "Save" } else { "Open" };
                if ui.button(ok).clicked() || enter {
                    done = Some(true);
                }
                if ui.button("Cancel").clicked() {
                    done = Some(false);
                }
            });
        });
        if modal.should_close() && done.is_none() {
            done = Some(false);
        }
        if let Some(ok) = done {
            let dialog = self.path_dialog.take();
            if let (true, Some(d)) = (ok, dialog) {
                let path = PathBuf::from(d.text.trim());
                if d.text.trim().is_empty() {
                    self.notify("No file chosen: type a path.", true);
                } else if d.save {
                    self.save_to(path);
                } else {
                    self.guarded(Pending::OpenPath(path));
                }
            }
        }
    }

    pub(super) fn confirm_ui(&mut self, ui: &Ui) {
        let Some(pending) = self.confirm.clone() else { return };
        let mut choice = None;
        let modal = egui::Modal::new(egui::Id::new("unsaved")).show(ui.ctx(), |ui| {
            ui.heading("Unsaved changes");
            ui.label("The project has changes that are not saved.");
            ui.horizontal(|ui| {
                if ui.button("Save").clicked() {
                    choice = Some(0);
                }
                if ui.button("Discard").clicked() {
                    choice = Some(1);
                }
                if ui.button("Cancel").clicked() {
                    choice = Some(2);
                }
            });
        });
        if modal.should_close() && choice.is_none() {
            choice = Some(2);
        }
        match choice {
            Some(0) => {
                self.save();
                self.confirm = None;
                if !self.doc.dirty() {
                    self.perform(pending);
                }
            }
            Some(1) => {
                self.confirm = None;
                self.doc.saved = self.doc.project.clone();
                self.perform(pending);
            }
            Some(_) => self.confirm = None,
            None => {}
        }
    }
}
