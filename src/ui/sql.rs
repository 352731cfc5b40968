//! The SQL console (a bottom tab): query the lakehouse's tables at their newest version, as
//! `silver.users` and friends. An editor with the app's SQL highlighting (Ctrl+Enter runs), the
//! catalog beside it (click a name to insert it), the result in the virtualized grid the
//! previews use, errors in place, a history kept across restarts, export to CSV or Parquet,
//! and "Serve to BI tools" for the same catalog over the Postgres wire protocol.
//!
//! Everything runs in the engine (`DirectQueryCommand`s through `EngineHandle`); nothing here
//! blocks the UI thread.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use eframe::egui::{self, RichText, Ui};

use crate::engine::Preview;
use crate::engine::direct_query::{DirectQueryCommand, DirectQueryEvent, ServerInfo, TableColumns};
use crate::engine::handle::{Command, EngineHandle};
use crate::engine::serve::{DEFAULT_PORT, ServeOptions};
use crate::engine::sql::{CONSOLE_DISPLAY_ROWS, QueryResult, SqlError};

use super::app::Picker;
use super::preview::preview_table_ui;
use super::theme;

/// Where the history is kept in the app's storage.
pub const HISTORY_KEY: &str = "medallion.sql_history";
/// Queries the history keeps (the newest).
const HISTORY_LEN: usize = 100;

const EDITOR_ID: &str = "sql_console_editor";

/// A finished query, as the grid shows it.
struct Shown {
    preview: Result<Preview, String>,
    total_rows: u64,
    elapsed_ms: u64,
}

/// The console's state; the app keeps one.
pub struct SqlConsole {
    pub text: String,
    /// Past queries, oldest first (persisted by the app).
    pub history: Vec<String>,
    request: Option<u64>,
    started: Option<Instant>,
    /// The query the result or error belongs to.
    ran: String,
    shown: Option<Shown>,
    error: Option<SqlError>,
    catalog: Vec<TableColumns>,
    catalog_request: Option<u64>,
    catalog_error: Option<String>,
    catalog_root: Option<PathBuf>,
    export_request: Option<u64>,
    pub status: String,
    /// Files picked in the export dialog, waiting to be sent.
    picked: Arc<Mutex<Vec<PathBuf>>>,
    server_request: Option<u64>,
    pub server: Option<ServerInfo>,
    pub server_error: Option<String>,
    pub server_port: u16,
}

impl Default for SqlConsole {
    fn default() -> Self {
        Self {
            text: "SELECT * FROM silver.users LIMIT 100".into(),
            history: Vec::new(),
            request: None,
            started: None,
            ran: String::new(),
            shown: None,
            error: None,
            catalog: Vec::new(),
            catalog_request: None,
            catalog_error: None,
            catalog_root: None,
            export_request: None,
            status: String::new(),
            picked: Arc::default(),
            server_request: None,
            server: None,
            server_error: None,
            server_port: DEFAULT_PORT,
        }
    }
}

impl SqlConsole {
    /// A console with the history the app kept from its last run.
    pub fn with_history(history: Option<Vec<String>>) -> Self {
        Self { history: history.unwrap_or_default(), ..Self::default() }
    }

    pub fn is_running(&self) -> bool {
        self.request.is_some()
    }

    /// Rows the grid shows.
    pub fn shown_rows(&self) -> Option<usize> {
        self.shown.as_ref().and_then(|s| s.preview.as_ref().ok()).map(Preview::rows)
    }

    /// Rows the last query returned in all.
    pub fn total_rows(&self) -> Option<u64> {
        self.shown.as_ref().map(|s| s.total_rows)
    }

    pub fn error(&self) -> Option<&SqlError> {
        self.error.as_ref()
    }

    pub fn catalog(&self) -> &[TableColumns] {
        &self.catalog
    }

    /// Runs the editor's query (a running one is cancelled first).
    pub fn run(&mut self, engine: &EngineHandle, root: PathBuf) {
        let sql = self.text.trim().to_owned();
        if sql.is_empty() {
            return;
        }
        self.cancel(engine);
        let request = engine.request_id();
        let cmd = DirectQueryCommand::Query {
            request,
            root,
            sql: sql.clone(),
            display_rows: CONSOLE_DISPLAY_ROWS,
        };
        if !engine.send(Command::DirectQuery(cmd)) {
            self.status = "the engine is busy: the query was not sent, try again".into();
            return;
        }
        self.request = Some(request);
        self.started = Some(Instant::now());
        self.ran = sql.clone();
        self.error = None;
        self.history.retain(|h| *h != sql);
        self.history.push(sql);
        let excess = self.history.len().saturating_sub(HISTORY_LEN);
        self.history.drain(..excess);
    }

    pub fn cancel(&mut self, engine: &EngineHandle) {
        if let Some(request) = self.request.take() {
            engine.send(Command::Cancel { request });
            self.status = "query cancelled".into();
        }
    }

    fn load_catalog(&mut self, engine: &EngineHandle, root: &Path) {
        let request = engine.request_id();
        let cmd = DirectQueryCommand::Catalog { request, root: root.to_owned() };
        if engine.send(Command::DirectQuery(cmd)) {
            self.catalog_request = Some(request);
            self.catalog_root = Some(root.to_owned());
        }
    }

    /// Takes the engine's replies.
    pub fn on_event(&mut self, event: DirectQueryEvent) {
        match event {
            DirectQueryEvent::Queried { request, result } if self.request == Some(request) => {
                self.request = None;
                match result {
                    Ok(r) => {
                        self.status.clear();
                        self.shown = Some(shown(r));
                    }
                    Err(e) => self.error = Some(e),
                }
            }
            DirectQueryEvent::Catalog { request, result }
                if self.catalog_request == Some(request) =>
            {
                self.catalog_request = None;
                match result {
                    Ok(tables) => {
                        self.catalog = tables;
                        self.catalog_error = None;
                    }
                    Err(e) => self.catalog_error = Some(e),
                }
            }
            DirectQueryEvent::Exported { request, path, result }
                if self.export_request == Some(request) =>
            {
                self.export_request = None;
                self.status = match result {
                    Ok(rows) => format!("exported {rows} rows to {}", path.display()),
                    Err(e) => format!("export to {} failed: {e}", path.display()),
                };
            }
            DirectQueryEvent::ServerStarted { request, result }
                if self.server_request == Some(request) =>
            {
                self.server_request = None;
                match result {
                    Ok(info) => {
                        self.server = Some(info);
                        self.server_error = None;
                    }
                    Err(e) => self.server_error = Some(e),
                }
            }
            DirectQueryEvent::ServerStopped => self.server = None,
            _ => {}
        }
    }

    /// Draws the console and sends what the user asked for.
    pub fn console_ui(&mut self, ui: &mut Ui, engine: &EngineHandle, root: &Path, picker: &Picker) {
        if self.catalog_root.as_deref() != Some(root) && self.catalog_request.is_none() {
            self.load_catalog(engine, root);
        }
        let picked: Vec<PathBuf> =
            std::mem::take(&mut *self.picked.lock().unwrap_or_else(PoisonError::into_inner));
        for path in picked {
            self.export(engine, root, path);
        }
        // before the editor sees the keys: Ctrl+Enter runs instead of adding a line
        if ui.input_mut(|i| i.consume_key(egui::Modifiers::COMMAND, egui::Key::Enter)) {
            self.run(engine, root.to_owned());
        }
        self.toolbar_ui(ui, engine, root, picker);
        self.server_ui(ui, engine, root);
        ui.separator();
        egui::Panel::left("sql_catalog")
            .resizable(true)
            .default_size(230.0)
            .show(ui, |ui| self.catalog_ui(ui, engine, root));
        self.editor_ui(ui);
        self.result_ui(ui);
    }

    fn toolbar_ui(&mut self, ui: &mut Ui, engine: &EngineHandle, root: &Path, picker: &Picker) {
        ui.horizontal(|ui| {
            let run = ui.button("▶ Run query").on_hover_text("Ctrl+Enter");
            if run.clicked() {
                self.run(engine, root.to_owned());
            }
            if let Some(started) = self.started.filter(|_| self.is_running()) {
                ui.spinner();
                ui.label(format!("{:.1} s", started.elapsed().as_secs_f32()));
                if ui.button("Cancel").clicked() {
                    self.cancel(engine);
                }
                ui.ctx().request_repaint_after(std::time::Duration::from_millis(100));
            }
            ui.menu_button("History", |ui| {
                if self.history.is_empty() {
                    ui.label("No queries yet.");
                }
                for q in self.history.iter().rev() {
                    let line: String = q.split_whitespace().collect::<Vec<_>>().join(" ");
                    let label: String = line.chars().take(90).collect();
                    if ui.button(label).on_hover_text(q).clicked() {
                        self.text = q.clone();
                        ui.close();
                    }
                }
            });
            let can_export = self.shown.is_some() && self.export_request.is_none();
            if ui.add_enabled(can_export, egui::Button::new("Export result…")).clicked() {
                self.pick_export(&ui.ctx().clone(), engine, root, picker);
            }
            if let Some(s) = &self.shown {
                ui.label(summary(s));
            }
            if !self.status.is_empty() {
                ui.label(RichText::new(&self.status).weak());
            }
        });
    }

    fn pick_export(
        &mut self,
        ui_ctx: &egui::Context,
        engine: &EngineHandle,
        root: &Path,
        picker: &Picker,
    ) {
        match picker {
            Picker::Fixed(path) => self.export(engine, root, path.clone()),
            Picker::Native => {
                let picked = self.picked.clone();
                let ctx = ui_ctx.clone();
                engine.spawn(async move {
                    let file = rfd::AsyncFileDialog::new()
                        .add_filter("CSV", &["csv"])
                        .add_filter("Parquet", &["parquet"])
                        .set_file_name("result.csv")
                        .save_file()
                        .await;
                    if let Some(f) = file {
                        picked.lock().unwrap_or_else(PoisonError::into_inner).push(f.path().into());
                    }
                    ctx.request_repaint();
                });
            }
        }
    }

    fn export(&mut self, engine: &EngineHandle, root: &Path, path: PathBuf) {
        let request = engine.request_id();
        let cmd = DirectQueryCommand::Export {
            request,
            root: root.to_owned(),
            sql: self.ran.clone(),
            path: path.clone(),
        };
        if engine.send(Command::DirectQuery(cmd)) {
            self.export_request = Some(request);
            self.status = format!("exporting to {}…", path.display());
        }
    }

    fn server_ui(&mut self, ui: &mut Ui, engine: &EngineHandle, root: &Path) {
        ui.horizontal(|ui| match &self.server {
            Some(info) => {
                ui.label(RichText::new("● serving").color(theme::OK)).on_hover_text(&info.banner);
                ui.monospace(&info.connection_string);
                if ui.small_button("Copy").clicked() {
                    ui.ctx().copy_text(info.connection_string.clone());
                }
                if ui.button("Stop serving").clicked() {
                    engine.send(Command::DirectQuery(DirectQueryCommand::StopServer));
                }
            }
            None => {
                let start = ui
                    .add_enabled(
                        self.server_request.is_none(),
                        egui::Button::new("Serve to BI tools"),
                    )
                    .on_hover_text(
                        "Postgres wire protocol on 127.0.0.1, read-only; password from \
                         MEDALLION_PASSWORD when set",
                    );
                ui.label("port");
                ui.add(egui::DragValue::new(&mut self.server_port).range(1..=65535));
                if start.clicked() {
                    let mut options = ServeOptions::new(root);
                    options.port = self.server_port;
                    let request = engine.request_id();
                    let cmd =
                        DirectQueryCommand::StartServer { request, options: Box::new(options) };
                    if engine.send(Command::DirectQuery(cmd)) {
                        self.server_request = Some(request);
                    }
                }
                if let Some(e) = &self.server_error {
                    ui.label(RichText::new(e).color(theme::ERROR));
                }
            }
        });
    }

    fn catalog_ui(&mut self, ui: &mut Ui, engine: &EngineHandle, root: &Path) {
        ui.horizontal(|ui| {
            ui.strong("Tables");
            if ui.small_button("⟳").on_hover_text("list the tables again").clicked() {
                self.load_catalog(engine, root);
            }
            if self.catalog_request.is_some() {
                ui.spinner();
            }
        });
        if let Some(e) = &self.catalog_error {
            ui.label(RichText::new(e).color(theme::ERROR));
        }
        if self.catalog.is_empty() && self.catalog_request.is_none() {
            ui.label(RichText::new("No Delta tables yet: run a pipeline.").weak());
        }
        let mut insert = None;
        egui::ScrollArea::vertical().id_salt("sql_catalog_tree").show(ui, |ui| {
            let mut last_schema = None;
            for t in &self.catalog {
                if last_schema != Some(&t.table.schema) {
                    ui.label(RichText::new(t.table.schema.to_uppercase()).strong());
                    last_schema = Some(&t.table.schema);
                }
                let id = ui.make_persistent_id(("sql_table", &t.table.schema, &t.table.name));
                egui::collapsing_header::CollapsingState::load_with_default_open(
                    ui.ctx(),
                    id,
                    false,
                )
                .show_header(ui, |ui| {
                    let name = ui.link(&t.table.name).on_hover_text("insert the name");
                    if name.clicked() {
                        insert = Some(t.table.qualified());
                    }
                })
                .body(|ui| {
                    if let Some(e) = &t.error {
                        ui.label(RichText::new(e).color(theme::ERROR).small());
                    }
                    for (column, ty) in &t.columns {
                        ui.horizontal(|ui| {
                            if ui.link(column).clicked() {
                                insert = Some(column.clone());
                            }
                            ui.label(RichText::new(ty).weak().small());
                        });
                    }
                });
            }
        });
        if let Some(text) = insert {
            self.insert_at_cursor(ui.ctx(), &text);
        }
    }

    /// Inserts `text` where the editor's cursor is (at the end when it has none).
    fn insert_at_cursor(&mut self, ctx: &egui::Context, text: &str) {
        use egui::text::{CCursor, CCursorRange};
        let id = egui::Id::new(EDITOR_ID);
        let mut state = egui::TextEdit::load_state(ctx, id).unwrap_or_default();
        let len = self.text.chars().count();
        let at = state.cursor.char_range().map_or(len, |r| r.primary.index.0.min(len));
        let byte = self.text.char_indices().nth(at).map_or(self.text.len(), |(b, _)| b);
        self.text.insert_str(byte, text);
        let end = CCursor::new(at + text.chars().count());
        state.cursor.set_char_range(Some(CCursorRange::one(end)));
        state.store(ctx, id);
        ctx.memory_mut(|m| m.request_focus(id));
    }

    fn editor_ui(&mut self, ui: &mut Ui) {
        let mut layouter = |ui: &Ui, buf: &dyn egui::TextBuffer, wrap_width: f32| {
            let mut job = super::inspector::sql_job(ui, buf.as_str());
            job.wrap.max_width = wrap_width;
            ui.fonts_mut(|f| f.layout_job(job))
        };
        let label = ui.label("SQL (Ctrl+Enter runs; tables are schema.table, e.g. silver.users)");
        ui.add(
            egui::TextEdit::multiline(&mut self.text)
                .id(egui::Id::new(EDITOR_ID))
                .code_editor()
                // three lines leave room for the result grid in the bottom panel
                .desired_rows(3)
                .desired_width(f32::INFINITY)
                .layouter(&mut layouter),
        )
        .labelled_by(label.id);
    }

    fn result_ui(&mut self, ui: &mut Ui) {
        if let Some(e) = &self.error {
            let place = match e.line_column(&self.ran) {
                Some((line, column)) => format!(" (line {line}, column {column})"),
                None => String::new(),
            };
            let text = format!("ERROR {}{place}: {e}", e.code);
            ui.label(RichText::new(text).color(theme::ERROR).monospace());
            return;
        }
        if let Some(s) = &self.shown {
            preview_table_ui(ui, "sql_result", &s.preview);
        }
    }
}

fn shown(r: QueryResult) -> Shown {
    Shown {
        total_rows: r.total_rows,
        elapsed_ms: r.elapsed_ms,
        preview: Ok(Preview { schema: r.schema, batches: r.batches }),
    }
}

/// "42 rows · 12 ms", or "10,000 of 1,234,567 rows shown (display capped) · 2.1 s".
fn summary(s: &Shown) -> String {
    let shown = s.preview.as_ref().map_or(0, Preview::rows) as u64;
    let time = if s.elapsed_ms >= 1000 {
        format!("{:.1} s", s.elapsed_ms as f64 / 1000.0)
    } else {
        format!("{} ms", s.elapsed_ms)
    };
    if shown < s.total_rows {
        format!(
            "first {shown} of {} rows shown (the display keeps {CONSOLE_DISPLAY_ROWS}; \
             Export writes them all) · {time}",
            s.total_rows
        )
    } else {
        format!("{} · {time}", super::preview::counted(s.total_rows, "row", "rows"))
    }
}
