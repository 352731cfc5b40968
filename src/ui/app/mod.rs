//! The Medallion desktop app: canvas in the middle, palette on the left, inspector on the
//! right, preview / problems / run log at the bottom. All engine work goes through
//! `EngineHandle`; file dialogs run on the engine's runtime, never on the UI thread.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::frame_stats::FrameStats;

use arrow::datatypes::SchemaRef;
use eframe::egui::{self, RichText, Ui};

use crate::engine::eventlog::{EventTail, LoggedEvent};
use crate::engine::handle::{CheckpointInfo, Command, EngineHandle, Event};
use crate::engine::{Preview, RunEvent};
use crate::model::node::NodeKind;
use crate::model::{
    Diagnostic, Edge, Node, NodeId, Pipeline, PipelineMode, Pos, Project, Severity,
};

use super::canvas::{self, Canvas, CanvasAction, Overlay};
use super::inspector::{self, InspectorAction};
use super::monitor::{self, EventFilter, Monitor, RunStatus};
use super::preview::preview_table_ui;
use super::state::{Document, History, push_recent};
use super::table_health::{self, UpkeepAction};
use super::tables::{self, TablesAction, TablesState};
use super::theme;

mod bottom;
mod clipboard;
mod events;
mod menus;
mod notices;
mod panels;
mod pipelines;
mod requests;
mod streams;

/// How Open / Save As find their file: the native dialog, or a fixed path (tests, scripts).
#[derive(Clone, Debug)]
pub enum Picker {
    Native,
    Fixed(PathBuf),
}

#[derive(Debug)]
enum FileOp {
    Open(PathBuf),
    SaveAs(PathBuf),
    /// The system's dialog returned at once without a file: there is none (no xdg portal).
    NoDialog {
        save: bool,
    },
}

/// What to do once unsaved changes are dealt with.
#[derive(Clone, Debug, PartialEq)]
enum Pending {
    New,
    Open,
    OpenPath(PathBuf),
    Quit,
}

/// The row counts a preview can show, the first by default: a preview reads only what it shows
/// (a limit pushed into the plan), and the table draws only the rows in view.
pub const PREVIEW_LIMITS: [usize; 4] = [100, 1_000, 10_000, 100_000];

#[derive(Default)]
struct PreviewState {
    request: Option<u64>,
    node: Option<NodeId>,
    output: Option<Result<Preview, String>>,
    /// The node's inputs by port (all of them: a join shows left and right).
    inputs: Vec<(String, Result<Preview, String>)>,
}

#[derive(Default)]
struct RunState {
    request: Option<u64>,
    log: Vec<String>,
    rows: HashMap<NodeId, u64>,
    errors: HashMap<NodeId, String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum BottomTab {
    #[default]
    Preview,
    Problems,
    Run,
    Monitor,
    Lakehouse,
    Events,
    Checkpoint,
    Sql,
    Tests,
    Quality,
}

/// The monitor's panels: what they show and the requests in flight.
#[derive(Default)]
struct MonitorPanels {
    /// Continuous runs started from the app: request → pipeline.
    streams: HashMap<u64, String>,
    tables_request: Option<u64>,
    history_request: Option<u64>,
    events: Vec<LoggedEvent>,
    /// The event logs read so far (back from the engine between refreshes).
    event_tail: Option<Box<EventTail>>,
    events_request: Option<u64>,
    event_filter: EventFilter,
    checkpoint: Option<(String, Result<Box<CheckpointInfo>, String>)>,
    checkpoint_request: Option<u64>,
    /// Pipeline whose checkpoint reset waits for confirmation, with what it would redo.
    confirm_reset: Option<(String, Vec<String>)>,
    last_refresh: Option<Instant>,
    /// When the table list was last asked for outside the Lakehouse tab.
    tables_listed: Option<Instant>,
}

pub struct MedallionApp {
    pub doc: Document,
    pub history: History,
    engine: EngineHandle,
    pub tab: usize,
    canvases: Vec<Canvas>,
    pub selected: Option<NodeId>,
    pub schemas: HashMap<(String, NodeId), SchemaRef>,
    pub diagnostics: Vec<Diagnostic>,
    plan_due: Option<Instant>,
    plan_request: Option<u64>,
    preview: PreviewState,
    /// Rows a preview shows (the Preview tab's choice).
    preview_limit: usize,
    frame_stats: FrameStats,
    run: RunState,
    bottom: BottomTab,
    palette_filter: String,
    /// The pipeline panel's trigger interval as typed (kept while it does not parse).
    trigger_text: String,
    /// A pipeline renamed to a name that is not valid yet (taken, empty): its tab and the last
    /// valid name, under which its recorded tests wait.
    renaming: Option<(usize, String)>,
    graph_menu_filter: String,
    pub recent: Vec<PathBuf>,
    pub picker: Picker,
    file_ops: Arc<Mutex<Vec<FileOp>>>,
    notices: Vec<notices::Notice>,
    /// Which side and bottom panels are shown (View menu).
    pub panels_shown: [bool; 3],
    /// Which of them fit this frame: those that would leave the canvas too little room are
    /// left out until the window grows (`panels::panels_that_fit`).
    pub panels_fit: [bool; 3],
    path_dialog: Option<notices::PathDialog>,
    confirm: Option<Pending>,
    allow_close: bool,
    pub status: String,
    last_edit_was_move: bool,
    /// The text field the last edit was typed into: further keystrokes there are the same
    /// undo step.
    typing_in: Option<egui::Id>,
    /// A text field had the focus at the end of the last frame (egui drops the focus on
    /// Escape before the frame's shortcuts see the key).
    was_typing: bool,
    /// Ctrl+A: every node of the tab is selected (until Escape, a click or another tab).
    pub all_selected: bool,
    ctx: egui::Context,
    pub monitor: Monitor,
    pub tables: TablesState,
    panels: MonitorPanels,
    pub sql: super::sql::SqlConsole,
    pub tests: super::tests_tab::TestsTab,
    pub quality: super::quality::QualityState,
    pub export: super::export::ExportDialog,
}

const RECENT_KEY: &str = "medallion.recent";
/// Which of the palette, inspector and bottom panels are shown (View menu).
const PANELS_KEY: &str = "medallion.panels_shown";

impl MedallionApp {
    pub fn new(cc: &eframe::CreationContext<'_>, path: Option<PathBuf>) -> anyhow::Result<Self> {
        cc.egui_ctx.all_styles_mut(|s| s.interaction.selectable_labels = false);
        super::fonts::install_fallback(&cc.egui_ctx);
        let ctx = cc.egui_ctx.clone();
        let wake_ctx = ctx.clone();
        let engine = EngineHandle::start(move || wake_ctx.request_repaint())?;
        let recent = cc
            .storage
            .and_then(|s| eframe::get_value::<Vec<PathBuf>>(s, RECENT_KEY))
            .unwrap_or_default();
        let mut app = Self {
            doc: Document::new(Project::new("untitled"), None),
            history: History::default(),
            engine,
            tab: 0,
            canvases: Vec::new(),
            selected: None,
            schemas: HashMap::new(),
            diagnostics: Vec::new(),
            plan_due: None,
            plan_request: None,
            preview: PreviewState::default(),
            preview_limit: PREVIEW_LIMITS[0],
            frame_stats: FrameStats::from_env(),
            run: RunState::default(),
            bottom: BottomTab::default(),
            palette_filter: String::new(),
            trigger_text: String::new(),
            renaming: None,
            graph_menu_filter: String::new(),
            recent,
            picker: Picker::Native,
            file_ops: Arc::new(Mutex::new(Vec::new())),
            notices: Vec::new(),
            panels_shown: cc
                .storage
                .and_then(|s| eframe::get_value(s, PANELS_KEY))
                .unwrap_or([true; 3]),
            panels_fit: [true; 3],
            path_dialog: None,
            confirm: None,
            allow_close: false,
            status: String::new(),
            last_edit_was_move: false,
            typing_in: None,
            was_typing: false,
            all_selected: false,
            ctx,
            monitor: Monitor::default(),
            tables: TablesState::default(),
            panels: MonitorPanels::default(),
            quality: super::quality::QualityState::default(),
            sql: super::sql::SqlConsole::with_history(
                cc.storage.and_then(|s| eframe::get_value(s, super::sql::HISTORY_KEY)),
            ),
            tests: Default::default(),
            export: Default::default(),
        };
        match path {
            Some(p) => app.open_path(p),
            None => app.new_project(),
        }
        Ok(app)
    }

    // ---- documents -------------------------------------------------------------------------

    fn reset_views(&mut self) {
        self.canvases = self.doc.project.pipelines.iter().map(|_| Canvas::default()).collect();
        self.tab = self.tab.min(self.doc.project.pipelines.len().saturating_sub(1));
        self.selected = None;
        self.schemas.clear();
        self.diagnostics.clear();
        self.preview = PreviewState::default();
        self.run = RunState::default();
        self.tests = Default::default();
        self.schedule_plan(Duration::ZERO);
    }

    pub fn new_project(&mut self) {
        let mut project = Project::new("untitled");
        project.pipelines.push(Pipeline::new("pipeline_1"));
        self.doc = Document::new(project, None);
        self.history.clear();
        self.reset_views();
        self.status = "new project".into();
    }

    /// Opens a project file (errors go to the status line; the current project stays).
    pub fn open_path(&mut self, path: PathBuf) {
        match Project::load(&path) {
            Ok(mut project) => {
                // a hand-written file without positions: every node would sit on the others
                for p in &mut project.pipelines {
                    if p.has_overlapping_nodes() {
                        p.auto_layout();
                    }
                }
                let lakehouse = self.doc.lakehouse_override.take();
                self.doc = Document::new(project, Some(path.clone()));
                self.doc.lakehouse_override = lakehouse;
                self.history.clear();
                self.tab = 0;
                self.reset_views();
                push_recent(&mut self.recent, path.clone());
                self.status = format!("opened {}", path.display());
            }
            Err(e) => self.notify(format!("Cannot open the project: {e}"), true),
        }
    }

    /// Saves to `path` (atomically); the project file is the same TOML the CLI runs.
    pub fn save_to(&mut self, path: PathBuf) {
        let path = if path.extension().is_none() { path.with_extension("toml") } else { path };
        match self.doc.project.save(&path) {
            Ok(()) => {
                self.doc.mark_saved(path.clone());
                push_recent(&mut self.recent, path.clone());
                self.status = format!("saved {}", path.display());
            }
            Err(e) => self.notify(format!("Cannot save the project: {e}"), true),
        }
    }

    pub fn save(&mut self) {
        match self.doc.path.clone() {
            Some(p) => self.save_to(p),
            None => self.save_as(),
        }
    }

    fn pick(&mut self, save: bool) {
        match self.picker.clone() {
            Picker::Fixed(path) => {
                if save {
                    self.save_to(path);
                } else {
                    self.open_path(path);
                }
            }
            Picker::Native => {
                let ops = self.file_ops.clone();
                let ctx = self.ctx.clone();
                let name = self
                    .doc
                    .path
                    .as_ref()
                    .and_then(|p| p.file_name())
                    .map(|n| n.to_string_lossy().into_owned());
                self.engine.spawn(async move {
                    let asked = Instant::now();
                    let dialog =
                        rfd::AsyncFileDialog::new().add_filter("Medallion project", &["toml"]);
                    let picked = if save {
                        dialog
                            .set_file_name(name.unwrap_or_else(|| "project.toml".into()))
                            .save_file()
                            .await
                    } else {
                        dialog.pick_file().await
                    };
                    if let Ok(mut ops) = ops.lock() {
                        match picked {
                            Some(h) => {
                                let path = h.path().to_path_buf();
                                ops.push(if save {
                                    FileOp::SaveAs(path)
                                } else {
                                    FileOp::Open(path)
                                });
                            }
                            // no person cancels a dialog within 300 ms: none could open
                            None if asked.elapsed() < Duration::from_millis(300) => {
                                ops.push(FileOp::NoDialog { save });
                            }
                            None => {}
                        }
                    }
                    ctx.request_repaint();
                });
            }
        }
    }

    pub fn save_as(&mut self) {
        self.pick(true);
    }

    /// Runs `action` now, or asks first when there are unsaved changes.
    fn guarded(&mut self, action: Pending) {
        if self.doc.dirty() {
            self.confirm = Some(action);
        } else {
            self.perform(action);
        }
    }

    fn perform(&mut self, action: Pending) {
        match action {
            Pending::New => self.new_project(),
            Pending::Open => self.pick(false),
            Pending::OpenPath(p) => self.open_path(p),
            Pending::Quit => {
                self.allow_close = true;
                self.ctx.send_viewport_cmd(egui::ViewportCommand::Close);
            }
        }
    }

    // ---- editing ---------------------------------------------------------------------------

    /// The canvas of the current tab.
    pub fn canvas(&self) -> Option<&Canvas> {
        self.canvases.get(self.tab)
    }

    pub fn pipeline(&self) -> Option<&Pipeline> {
        self.doc.project.pipelines.get(self.tab)
    }

    fn pipeline_mut(&mut self) -> Option<&mut Pipeline> {
        self.doc.project.pipelines.get_mut(self.tab)
    }

    /// Remembers the project for undo before an edit.
    fn before_edit(&mut self) {
        self.history.record(&self.doc.project);
        self.last_edit_was_move = false;
        self.typing_in = None;
        self.schedule_plan(Duration::from_millis(250));
    }

    /// Remembers `before` for undo after an edit made in a form: typing in one text field is
    /// one undo step, not one per keystroke.
    fn record_typing(&mut self, before: &Project) {
        let focus =
            self.ctx.memory(|m| m.focused()).filter(|_| self.ctx.egui_wants_keyboard_input());
        if focus.is_none() || focus != self.typing_in {
            self.history.record(before);
        }
        self.typing_in = focus;
        self.last_edit_was_move = false;
    }

    /// Adds a node of `kind` to the current pipeline; returns its id.
    pub fn add_node(&mut self, kind: NodeKind, pos: Option<Pos>) -> Option<NodeId> {
        self.pipeline()?;
        self.before_edit();
        let pipeline = self.pipeline_mut()?;
        let n = pipeline.nodes.len() as f32;
        let pos = pos.unwrap_or(Pos { x: 80.0 + 40.0 * (n % 8.0), y: 80.0 + 60.0 * (n % 6.0) });
        let id = canvas::add_node(pipeline, kind, pos);
        self.selected = Some(id.clone());
        Some(id)
    }

    /// Connects two nodes of the current pipeline by the model's rules.
    pub fn connect(&mut self, from: &NodeId, to: &NodeId, port: &str) -> Result<(), String> {
        let p = self.pipeline().ok_or("no pipeline")?;
        p.can_connect(from, to, port).map_err(|e| e.to_string())?;
        self.before_edit();
        let p = self.pipeline_mut().ok_or("no pipeline")?;
        p.connect(from, to, port).map_err(|e| e.to_string())
    }

    pub fn delete_nodes(&mut self, ids: &[NodeId]) {
        if ids.is_empty() {
            return;
        }
        self.before_edit();
        if let Some(p) = self.pipeline_mut() {
            for id in ids {
                p.remove_node(id);
            }
        }
        if self.selected.as_ref().is_some_and(|s| ids.contains(s)) {
            self.selected = None;
        }
        self.all_selected = false;
    }

    pub fn undo(&mut self) {
        if self.history.undo(&mut self.doc.project) {
            self.after_history();
            self.status = "undo".into();
        }
    }

    pub fn redo(&mut self) {
        if self.history.redo(&mut self.doc.project) {
            self.after_history();
            self.status = "redo".into();
        }
    }

    fn after_history(&mut self) {
        self.typing_in = None;
        self.trigger_text.clear();
        let n = self.doc.project.pipelines.len();
        self.canvases.resize_with(n, Canvas::default);
        self.tab = self.tab.min(n.saturating_sub(1));
        if let Some(sel) = &self.selected
            && self.pipeline().is_none_or(|p| p.node(sel).is_none())
        {
            self.selected = None;
        }
        self.schedule_plan(Duration::ZERO);
    }

    // ---- engine ----------------------------------------------------------------------------

    fn schedule_plan(&mut self, after: Duration) {
        self.plan_due = Some(Instant::now() + after);
        self.ctx.request_repaint_after(after);
    }

    fn send_plan(&mut self) {
        let Some(p) = self.pipeline() else { return };
        let name = p.name.clone();
        let request = self.engine.request_id();
        let cmd = Command::Plan {
            request,
            project: Arc::new(self.doc.project.clone()),
            pipeline: name,
            root: self.doc.lakehouse_root(),
        };
        if self.engine.send(cmd) {
            self.plan_request = Some(request);
        }
    }

    /// Previews `node` of the current pipeline (never writes).
    pub fn request_preview(&mut self, node: NodeId) {
        let Some(pipeline) = self.pipeline().map(|p| p.name.clone()) else { return };
        if let Some(old) = self.preview.request.take() {
            self.engine.send(Command::Cancel { request: old });
        }
        let request = self.engine.request_id();
        let cmd = Command::Preview {
            request,
            project: Arc::new(self.doc.project.clone()),
            pipeline,
            node: node.clone(),
            root: self.doc.lakehouse_root(),
            limit: self.preview_limit,
        };
        if self.send_or_notify(cmd, "the preview") {
            self.preview = PreviewState {
                request: Some(request),
                node: Some(node),
                output: None,
                inputs: Vec::new(),
            };
            self.bottom = BottomTab::Preview;
        }
    }

    /// Shows `output` as the preview of `node` (benchmarks and tests).
    pub fn show_preview(&mut self, node: NodeId, output: Preview) {
        self.preview = PreviewState {
            request: None,
            node: Some(node),
            output: Some(Ok(output)),
            inputs: Vec::new(),
        };
        self.bottom = BottomTab::Preview;
    }

    pub fn cancel_preview(&mut self) {
        if let Some(r) = self.preview.request.take() {
            self.engine.send(Command::Cancel { request: r });
            self.status = "preview cancelled".into();
        }
    }

    /// Runs the current pipeline (or all) on the engine.
    pub fn request_run(&mut self, all: bool) {
        let pipeline = if all { None } else { self.pipeline().map(|p| p.name.clone()) };
        let request = self.engine.request_id();
        let cmd = Command::Run {
            request,
            project: Arc::new(self.doc.project.clone()),
            pipeline,
            root: self.doc.lakehouse_root(),
            continuous: false,
        };
        if self.send_or_notify(cmd, "the run") {
            self.run = RunState { request: Some(request), ..RunState::default() };
            self.bottom = BottomTab::Run;
            self.status = "running…".into();
        }
    }

    /// The whole window; shared by `App::ui` and the benchmarks.
    pub fn frame_ui(&mut self, ui: &mut Ui) {
        self.poll();
        // focus left the field typed in: typing there again is a new undo step
        if self.typing_in.is_some() && ui.ctx().memory(|m| m.focused()) != self.typing_in {
            self.typing_in = None;
        }
        self.shortcuts(ui);
        if ui.input(|i| i.viewport().close_requested()) && self.doc.dirty() && !self.allow_close {
            ui.send_viewport_cmd(egui::ViewportCommand::CancelClose);
            self.confirm = Some(Pending::Quit);
        }
        ui.send_viewport_cmd(egui::ViewportCommand::Title(self.doc.title()));
        egui::Panel::top("menu").show(ui, |ui| {
            self.menu_ui(ui);
            self.tabs_ui(ui);
        });
        let [palette, inspector, bottom] = self.fit_panels(ui);
        if let Some(max) = palette {
            egui::Panel::left("palette")
                .resizable(true)
                .default_size(panels::PANEL_DEFAULTS[0])
                .size_range(panels::PANEL_MINS[0]..=max)
                .show(ui, |ui| self.palette_panel_ui(ui));
        }
        if let Some(max) = inspector {
            egui::Panel::right("inspector")
                .resizable(true)
                .default_size(panels::PANEL_DEFAULTS[1])
                .size_range(panels::PANEL_MINS[1]..=max)
                .show(ui, |ui| self.inspector_panel_ui(ui));
        }
        if let Some(max) = bottom {
            egui::Panel::bottom("bottom")
                .resizable(true)
                .default_size(panels::PANEL_DEFAULTS[2])
                .size_range(panels::PANEL_MINS[2]..=max)
                .show(ui, |ui| self.bottom_panel_ui(ui));
        }
        egui::CentralPanel::default().show(ui, |ui| self.canvas_panel_ui(ui));
        self.confirm_ui(ui);
        self.confirm_reset_ui(ui);
        self.export.export_ui(ui.ctx(), &self.doc.project, &self.schemas, self.doc.path.as_deref());
        self.path_dialog_ui(ui);
        self.notices_ui(ui);
        self.was_typing = ui.ctx().text_edit_focused();
    }
}

impl eframe::App for MedallionApp {
    fn ui(&mut self, ui: &mut Ui, frame: &mut eframe::Frame) {
        if self.frame_stats.enabled() {
            let mut stats = std::mem::replace(&mut self.frame_stats, FrameStats::off());
            stats.measure(frame, || self.frame_ui(ui));
            self.frame_stats = stats;
        } else {
            self.frame_ui(ui);
        }
    }

    /// The window closes (Quit or the window manager): running streams stop after their
    /// batch in flight before the engine's runtime goes.
    fn on_exit(&mut self, _gl: Option<&eframe::glow::Context>) {
        self.stop_streams_before_exit(streams::STOP_ON_EXIT);
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        eframe::set_value(storage, RECENT_KEY, &self.recent);
        eframe::set_value(storage, PANELS_KEY, &self.panels_shown);
        eframe::set_value(storage, super::sql::HISTORY_KEY, &self.sql.history);
    }
}
