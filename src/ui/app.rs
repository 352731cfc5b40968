//! The Medallion desktop app: canvas in the middle, palette on the left, inspector on the
//! right, preview / problems / run log at the bottom. All engine work goes through
//! `EngineHandle`; file dialogs run on the engine's runtime, never on the UI thread.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow::datatypes::SchemaRef;
use eframe::egui::{self, RichText, Ui};
use serde::{Deserialize, Serialize};

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
}

/// What to do once unsaved changes are dealt with.
#[derive(Clone, Debug, PartialEq)]
enum Pending {
    New,
    Open,
    OpenPath(PathBuf),
    Quit,
}

#[derive(Default)]
struct PreviewState {
    request: Option<u64>,
    node: Option<NodeId>,
    output: Option<Result<Preview, String>>,
    input: Option<Result<Preview, String>>,
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

/// Nodes on the clipboard, as TOML (so they paste into another window too).
#[derive(Serialize, Deserialize)]
struct Clip {
    #[serde(default)]
    nodes: Vec<Node>,
    #[serde(default)]
    edges: Vec<Edge>,
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
    run: RunState,
    bottom: BottomTab,
    palette_filter: String,
    /// The pipeline panel's trigger interval as typed (kept while it does not parse).
    trigger_text: String,
    graph_menu_filter: String,
    pub recent: Vec<PathBuf>,
    pub picker: Picker,
    file_ops: Arc<Mutex<Vec<FileOp>>>,
    confirm: Option<Pending>,
    allow_close: bool,
    pub status: String,
    last_edit_was_move: bool,
    ctx: egui::Context,
    pub monitor: Monitor,
    pub tables: TablesState,
    panels: MonitorPanels,
    pub sql: super::sql::SqlConsole,
    pub tests: super::tests_tab::TestsTab,
    pub quality: super::quality::QualityState,
}

const RECENT_KEY: &str = "medallion.recent";

impl MedallionApp {
    pub fn new(cc: &eframe::CreationContext<'_>, path: Option<PathBuf>) -> anyhow::Result<Self> {
        cc.egui_ctx.all_styles_mut(|s| s.interaction.selectable_labels = false);
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
            run: RunState::default(),
            bottom: BottomTab::default(),
            palette_filter: String::new(),
            trigger_text: String::new(),
            graph_menu_filter: String::new(),
            recent,
            picker: Picker::Native,
            file_ops: Arc::new(Mutex::new(Vec::new())),
            confirm: None,
            allow_close: false,
            status: String::new(),
            last_edit_was_move: false,
            ctx,
            monitor: Monitor::default(),
            tables: TablesState::default(),
            panels: MonitorPanels::default(),
            quality: super::quality::QualityState::default(),
            sql: super::sql::SqlConsole::with_history(
                cc.storage.and_then(|s| eframe::get_value(s, super::sql::HISTORY_KEY)),
            ),
            tests: Default::default(),
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
            Err(e) => self.status = format!("cannot open: {e}"),
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
            Err(e) => self.status = format!("cannot save: {e}"),
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
                    if let Some(h) = picked
                        && let Ok(mut ops) = ops.lock()
                    {
                        let path = h.path().to_path_buf();
                        ops.push(if save { FileOp::SaveAs(path) } else { FileOp::Open(path) });
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
        self.schedule_plan(Duration::from_millis(250));
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

    fn copy_nodes(&mut self, ids: &[NodeId]) {
        let Some(p) = self.pipeline() else { return };
        let nodes: Vec<Node> = p.nodes.iter().filter(|n| ids.contains(&n.id)).cloned().collect();
        let edges = p
            .edges
            .iter()
            .filter(|e| ids.contains(&e.from) && ids.contains(&e.to))
            .cloned()
            .collect();
        if let Ok(text) = toml::to_string(&Clip { nodes, edges }) {
            self.ctx.copy_text(text);
            self.status = format!("copied {} node(s)", ids.len());
        }
    }

    /// Pastes nodes copied as TOML: fresh ids, shifted positions, inner edges kept.
    pub fn paste(&mut self, text: &str) {
        let Ok(clip) = toml::from_str::<Clip>(text) else { return };
        if clip.nodes.is_empty() || self.pipeline().is_none() {
            return;
        }
        self.before_edit();
        let Some(p) = self.pipeline_mut() else { return };
        let mut renamed = HashMap::new();
        for mut n in clip.nodes {
            let id = p.fresh_id(&n.kind);
            renamed.insert(n.id.clone(), id.clone());
            n.id = id;
            n.pos = Pos { x: n.pos.x + 40.0, y: n.pos.y + 40.0 };
            let _ = p.add_node(n);
        }
        for e in clip.edges {
            if let (Some(f), Some(t)) = (renamed.get(&e.from), renamed.get(&e.to)) {
                let _ = p.connect(f, t, &e.port);
            }
        }
        self.status = format!("pasted {} node(s)", renamed.len());
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
            limit: 100,
        };
        if self.engine.send(cmd) {
            self.preview = PreviewState {
                request: Some(request),
                node: Some(node),
                output: None,
                input: None,
            };
            self.bottom = BottomTab::Preview;
        }
    }

    /// Shows `output` as the preview of `node` (benchmarks and tests).
    pub fn show_preview(&mut self, node: NodeId, output: Preview) {
        self.preview =
            PreviewState { request: None, node: Some(node), output: Some(Ok(output)), input: None };
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
        if self.engine.send(cmd) {
            self.run = RunState { request: Some(request), ..RunState::default() };
            self.bottom = BottomTab::Run;
            self.status = "running…".into();
        }
    }

    /// Starts a stream pipeline until stopped (a batch pipeline runs once).
    pub fn start_pipeline(&mut self, name: &str) {
        if self.monitor.status(name).is_active() {
            return;
        }
        let request = self.engine.request_id();
        let cmd = Command::Run {
            request,
            project: Arc::new(self.doc.project.clone()),
            pipeline: Some(name.to_owned()),
            root: self.doc.lakehouse_root(),
            continuous: true,
        };
        if self.engine.send(cmd) {
            self.panels.streams.insert(request, name.to_owned());
            self.run.errors.clear();
            self.status = format!("started {name}");
        }
    }

    /// Starts every stream pipeline of the project, side by side.
    pub fn start_all_streams(&mut self) {
        let names: Vec<String> = self
            .doc
            .project
            .pipelines
            .iter()
            .filter(|p| p.mode == PipelineMode::Stream)
            .map(|p| p.name.clone())
            .collect();
        for n in names {
            self.start_pipeline(&n);
        }
        self.bottom = BottomTab::Monitor;
    }

    /// Stops a running stream after its batch in flight (all of them when `None`).
    pub fn stop_pipeline(&mut self, name: Option<&str>) {
        if !self.engine.send(Command::Stop { pipeline: name.map(str::to_owned) }) {
            self.status = "the engine is busy: Stop was not sent, try again".into();
            return;
        }
        self.status = match name {
            Some(n) => format!("stopping {n}…"),
            None => "stopping all streams…".into(),
        };
    }

    /// Shows a bottom tab (and loads what it shows).
    pub fn show_tab(&mut self, tab: BottomTab) {
        self.bottom = tab;
        self.refresh_panels(true);
    }

    pub fn bottom_tab(&self) -> BottomTab {
        self.bottom
    }

    /// Asks the engine for a Delta table's rows as of `version` (time travel).
    pub fn show_version(&mut self, path: PathBuf, version: i64) {
        if let Some((old, _)) = self.tables.loading.take() {
            self.engine.send(Command::Cancel { request: old });
        }
        let request = self.engine.request_id();
        if self.engine.send(Command::TableAt { request, path, version }) {
            self.tables.loading = Some((request, version));
            self.tables.diff = None;
        }
    }

    /// Selects a table in the lakehouse panel and loads its versions.
    pub fn select_table(&mut self, path: PathBuf) {
        let old = std::mem::take(&mut self.tables);
        let in_flight = [old.loading.map(|(r, _)| r), old.comparing];
        for request in in_flight.into_iter().flatten() {
            self.engine.send(Command::Cancel { request });
        }
        // everything about the previous table goes; the list stays
        self.tables = TablesState {
            tables: old.tables,
            error: old.error,
            selected: Some(path.clone()),
            ..TablesState::default()
        };
        self.request_history(path);
    }

    /// "⚠ small files" on the sinks whose tables need compaction.
    fn upkeep_badges(&self, pipeline: &crate::model::Pipeline) -> HashMap<NodeId, String> {
        let root = self.doc.lakehouse_root();
        pipeline
            .sinks()
            .filter_map(|n| {
                let NodeKind::DeltaSink(s) = &n.kind else { return None };
                let path = crate::engine::delta::resolve(
                    &root,
                    &crate::model::env::expand(&s.table).ok()?,
                );
                let t = self.tables.tables.iter().find(|t| t.path == path)?;
                t.needs_compaction()
                    .then(|| (n.id.clone(), format!("⚠ {} small files: optimize", t.small_files)))
            })
            .collect()
    }

    /// Health, OPTIMIZE and VACUUM requests of the Lakehouse panel.
    fn table_upkeep(&mut self, action: UpkeepAction) {
        let request = self.engine.request_id();
        match action {
            UpkeepAction::Health(path) => {
                // a stream commits every trigger: one health read at a time is plenty
                if self.tables.upkeep.health_request.is_some() {
                    return;
                }
                if self.engine.send(Command::Health { request, path }) {
                    self.tables.upkeep.health_request = Some(request);
                }
            }
            UpkeepAction::Run(path, op) => {
                if self.engine.send(Command::Upkeep { request, path, op }) {
                    self.tables.upkeep.request = Some(request);
                } else {
                    self.tables.upkeep.dialog = table_health::Dialog::Done(Err(
                        "the engine is busy: try again in a moment".into(),
                    ));
                }
            }
        }
    }

    fn request_history(&mut self, path: PathBuf) {
        self.table_upkeep(UpkeepAction::Health(path.clone()));
        let request = self.engine.request_id();
        if self.engine.send(Command::History { request, path }) {
            self.panels.history_request = Some(request);
        }
    }

    pub fn compare_versions(&mut self, path: PathBuf, from: i64, to: i64) {
        if let Some(old) = self.tables.comparing.take() {
            self.engine.send(Command::Cancel { request: old });
        }
        let request = self.engine.request_id();
        if self.engine.send(Command::Compare { request, path, from, to }) {
            self.tables.comparing = Some(request);
        }
    }

    /// Events loaded from the persisted log.
    pub fn logged_events(&self) -> &[LoggedEvent] {
        &self.panels.events
    }

    /// The checkpoint shown in the checkpoint view.
    pub fn checkpoint_info(&self) -> Option<&CheckpointInfo> {
        self.panels.checkpoint.as_ref().and_then(|(_, r)| r.as_deref().ok())
    }

    /// Reloads what the visible monitor tab shows: at once when `now`, else at most every 2 s
    /// while streams run.
    fn refresh_panels(&mut self, now: bool) {
        let due = self.panels.last_refresh.is_none_or(|t| t.elapsed() >= Duration::from_secs(2));
        let streaming_refresh = due && self.monitor.any_active();
        if !(now || streaming_refresh) {
            return;
        }
        self.panels.last_refresh = Some(Instant::now());
        let root = self.doc.lakehouse_root();
        // the sink nodes' small-files badges need the table list even when another tab is
        // open: every 10 s while streams run
        let badges_due =
            self.panels.tables_listed.is_none_or(|t| t.elapsed() >= Duration::from_secs(10));
        if self.bottom != BottomTab::Lakehouse && badges_due && self.panels.tables_request.is_none()
        {
            let request = self.engine.request_id();
            if self.engine.send(Command::Tables { request, root: root.clone() }) {
                self.panels.tables_request = Some(request);
                self.panels.tables_listed = Some(Instant::now());
            }
        }
        match self.bottom {
            BottomTab::Lakehouse if self.panels.tables_request.is_none() => {
                let request = self.engine.request_id();
                if self.engine.send(Command::Tables { request, root }) {
                    self.panels.tables_request = Some(request);
                }
            }
            BottomTab::Events if self.panels.events_request.is_none() => {
                let request = self.engine.request_id();
                // the tail travels to the engine and back: only appended bytes are read
                let tail = match self.panels.event_tail.take() {
                    Some(t) if t.root() == root => t,
                    _ => Box::new(EventTail::new(&root, 5000)),
                };
                if self.engine.send(Command::LoadEvents { request, tail }) {
                    self.panels.events_request = Some(request);
                }
            }
            BottomTab::Checkpoint if self.panels.checkpoint_request.is_none() => {
                let Some(p) = self.pipeline().filter(|p| p.mode == PipelineMode::Stream) else {
                    self.panels.checkpoint = None;
                    return;
                };
                let request = self.engine.request_id();
                let cmd = Command::Checkpoint {
                    request,
                    project: Arc::new(self.doc.project.clone()),
                    pipeline: p.name.clone(),
                    root,
                };
                if self.engine.send(cmd) {
                    self.panels.checkpoint_request = Some(request);
                }
            }
            _ => {}
        }
    }

    /// Asks to reset a stopped stream's checkpoint; a modal says what will be reprocessed.
    pub fn ask_reset_checkpoint(&mut self) {
        let Some((name, Ok(info))) = &self.panels.checkpoint else { return };
        let Some(p) = self.doc.project.pipeline(name) else { return };
        let lines = monitor::reset_consequences(info, p);
        self.panels.confirm_reset = Some((name.clone(), lines));
    }

    /// Resets the checkpoint the confirmation was about.
    pub fn confirm_reset_checkpoint(&mut self) {
        let Some((pipeline, _)) = self.panels.confirm_reset.take() else { return };
        let request = self.engine.request_id();
        let sent = self.engine.send(Command::ResetCheckpoint {
            request,
            project: Arc::new(self.doc.project.clone()),
            pipeline,
            root: self.doc.lakehouse_root(),
        });
        if !sent {
            self.status = "the engine is busy: the reset was not sent, try again".into();
        }
    }

    pub fn reset_pending(&self) -> Option<&[String]> {
        self.panels.confirm_reset.as_ref().map(|(_, l)| l.as_slice())
    }

    pub fn is_busy(&self) -> bool {
        self.preview.request.is_some() || self.run.request.is_some() || self.plan_request.is_some()
    }

    pub fn preview_rows(&self) -> Option<usize> {
        self.preview.output.as_ref().and_then(|o| o.as_ref().ok()).map(Preview::rows)
    }

    pub fn preview_error(&self) -> Option<&str> {
        self.preview.output.as_ref().and_then(|o| o.as_ref().err()).map(String::as_str)
    }

    pub fn run_rows(&self) -> &HashMap<NodeId, u64> {
        &self.run.rows
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Planned { request, pipeline, schemas, diagnostics } => {
                if self.plan_request == Some(request) {
                    self.plan_request = None;
                }
                self.schemas.retain(|(p, _), _| p != &pipeline);
                self.schemas.extend(schemas.into_iter().map(|(n, s)| ((pipeline.clone(), n), s)));
                self.diagnostics.retain(|d| d.pipeline != pipeline);
                self.diagnostics.extend(diagnostics);
            }
            Event::Previewed { request, node, output, input } => {
                if self.preview.request == Some(request) {
                    if let Err(e) = &output {
                        self.run.errors.insert(node.clone(), e.clone());
                    } else {
                        self.run.errors.remove(&node);
                    }
                    self.preview.request = None;
                    self.preview.output = Some(output);
                    self.preview.input = input;
                }
            }
            Event::Run(e) => {
                self.monitor.on_event(&e);
                self.quality.on_event(&e);
                if let RunEvent::PipelineFailed { node: Some(n), message, .. } = &e {
                    self.run.errors.insert(n.clone(), message.clone());
                }
                if let RunEvent::SinkCommitted { node, rows_added, rows_updated, .. } = &e {
                    *self.run.rows.entry(node.clone()).or_default() += rows_added + rows_updated;
                }
                if let RunEvent::BatchCompleted(p) = &e {
                    for (n, r) in &p.rows_per_node {
                        *self.run.rows.entry(NodeId::new(n.clone())).or_default() += r;
                    }
                    for (n, s) in &p.sources {
                        *self.run.rows.entry(NodeId::new(n.clone())).or_default() += s.input_rows;
                    }
                }
                self.run.log.push(e.to_string());
                if self.run.log.len() > 2000 {
                    self.run.log.drain(..1000);
                }
            }
            Event::RunFinished { request, result, failed_node }
                if self.panels.streams.contains_key(&request) =>
            {
                let pipeline = self.panels.streams.remove(&request).unwrap_or_default();
                // the run is over whatever events got lost on the way
                let error = result.as_ref().err().map(|e| (failed_node.clone(), e.clone()));
                self.monitor.run_ended(&pipeline, error);
                match result {
                    Ok(_) => self.status = format!("{pipeline} stopped"),
                    Err(e) => {
                        self.status = format!("{pipeline}: {e}");
                        self.run.log.push(format!("FAILED: {e}"));
                        if let Some(n) = failed_node {
                            self.run.errors.insert(n, e);
                        }
                    }
                }
                self.schedule_plan(Duration::ZERO);
            }
            Event::RunFinished { request, result, failed_node } => {
                if self.run.request == Some(request) {
                    self.run.request = None;
                    match result {
                        Ok(s) => {
                            self.status = format!("run finished: {} rows written", s.rows_written);
                            self.run.log.push(self.status.clone());
                        }
                        Err(e) => {
                            self.status = "run failed".into();
                            self.run.log.push(format!("FAILED: {e}"));
                            if let Some(n) = failed_node {
                                self.run.errors.insert(n, e);
                            }
                        }
                    }
                    // tables changed: schemas downstream may too
                    self.schedule_plan(Duration::ZERO);
                }
            }
            Event::NodeCounts { request: _, pipeline, counts } => {
                if self.pipeline().is_some_and(|p| p.name == pipeline) {
                    self.run.rows.extend(counts);
                }
            }
            Event::Cancelled { request } => {
                if self.run.request == Some(request) {
                    self.run.request = None;
                }
            }
            Event::Tables { request, result } => {
                if self.panels.tables_request == Some(request) {
                    self.panels.tables_request = None;
                    match result {
                        Ok(t) => {
                            // a new version of the selected table: reload its timeline
                            let changed = self.tables.selected_table().map(|t| t.version)
                                != self.tables.selected.as_ref().and_then(|sel| {
                                    t.iter().find(|x| &x.path == sel).map(|x| x.version)
                                });
                            self.tables.tables = t;
                            self.tables.error = None;
                            if changed
                                && self.panels.history_request.is_none()
                                && let Some(sel) = self.tables.selected.clone()
                            {
                                self.request_history(sel);
                            }
                        }
                        Err(e) => self.tables.error = Some(e),
                    }
                }
            }
            Event::History { request, path, result } => {
                if self.panels.history_request == Some(request)
                    && self.tables.selected.as_ref() == Some(&path)
                {
                    self.panels.history_request = None;
                    match result {
                        Ok(h) => {
                            self.tables.history = h;
                            self.tables.history_error = None;
                        }
                        Err(e) => self.tables.history_error = Some(e),
                    }
                }
            }
            Event::TableAt { request, path, version, result } => {
                if self.tables.loading.is_some_and(|(r, _)| r == request) {
                    self.tables.loading = None;
                    if self.tables.selected.as_ref() == Some(&path) {
                        self.tables.shown = Some((version, result));
                    }
                }
            }
            Event::Compared { request, path, result } => {
                if self.tables.comparing == Some(request)
                    && self.tables.selected.as_ref() == Some(&path)
                {
                    self.tables.comparing = None;
                    self.tables.diff = Some(result.map(|d| *d));
                }
            }
            Event::Health { request, result, .. } => self.tables.upkeep.on_health(request, result),
            Event::Upkeep { request, path, result } => {
                if self.tables.upkeep.on_upkeep(request, result)
                    && self.tables.selected.as_ref() == Some(&path)
                {
                    self.refresh_panels(true);
                    self.request_history(path);
                }
            }
            Event::EventLog { request, result } => {
                if self.panels.events_request == Some(request) {
                    self.panels.events_request = None;
                    match result {
                        Ok((tail, changed)) => {
                            if changed || tail.events().len() != self.panels.events.len() {
                                self.panels.events = tail.events().to_vec();
                            }
                            self.panels.event_tail = Some(tail);
                        }
                        Err(e) => self.status = format!("cannot read the event log: {e}"),
                    }
                }
            }
            Event::Checkpoint { request, pipeline, result } => {
                if self.panels.checkpoint_request == Some(request) {
                    self.panels.checkpoint_request = None;
                    self.panels.checkpoint = Some((pipeline, result));
                }
            }
            Event::CheckpointReset { pipeline, result, .. } => {
                self.status = match result {
                    Ok(()) => format!("checkpoint of {pipeline} reset: the next start reprocesses"),
                    Err(e) => format!("cannot reset the checkpoint of {pipeline}: {e}"),
                };
                // a view read before the reset must not be shown after it
                self.panels.checkpoint = None;
                self.panels.checkpoint_request = None;
                self.refresh_panels(true);
            }
            Event::Inferred { node, result, .. } => match result {
                Ok(ddl) => {
                    self.before_edit();
                    if let Some(p) = self.pipeline_mut()
                        && let Some(n) = p.node_mut(&node)
                        && let NodeKind::FileSource(s) = &mut n.kind
                    {
                        s.schema = Some(ddl);
                    }
                    self.status = format!("schema of `{node}` inferred from a sample");
                }
                Err(e) => self.status = format!("cannot infer the schema of `{node}`: {e}"),
            },
            Event::DirectQuery(e) => self.sql.on_event(e),
            Event::Tests(e) => {
                if let Some(super::tests_tab::TestsOutcome::Recorded(rec)) = self.tests.on_event(e)
                {
                    self.before_edit();
                    let tests = &mut self.doc.project.tests;
                    match tests.iter_mut().find(|t| t.name == rec.test.name) {
                        Some(t) => *t = rec.test,
                        None => tests.push(rec.test),
                    }
                    self.status = self.tests.message.clone();
                }
            }
        }
    }

    /// Engine events and due work; called every frame (and by tests between steps).
    pub fn poll(&mut self) {
        for e in self.engine.drain() {
            self.handle(e);
        }
        let ops: Vec<FileOp> = match self.file_ops.lock() {
            Ok(mut ops) => ops.drain(..).collect(),
            Err(_) => Vec::new(),
        };
        for op in ops {
            match op {
                FileOp::Open(p) => self.open_path(p),
                FileOp::SaveAs(p) => self.save_to(p),
            }
        }
        if let Some(due) = self.plan_due
            && Instant::now() >= due
        {
            self.plan_due = None;
            self.send_plan();
        }
        self.refresh_panels(false);
        self.tests.poll(&self.engine, &self.doc, &self.ctx);
        if self.is_busy() {
            self.ctx.request_repaint_after(Duration::from_millis(50));
        } else if self.monitor.any_active() {
            // edge rates decay and panels refresh even between batches
            self.ctx.request_repaint_after(Duration::from_millis(500));
        }
    }

    // ---- drawing ---------------------------------------------------------------------------

    fn shortcuts(&mut self, ui: &Ui) {
        let typing = ui.ctx().memory(|m| m.focused().is_some());
        let (undo, redo, save, delete, copy, paste) = ui.input(|i| {
            let cmd = i.modifiers.command;
            (
                cmd && !i.modifiers.shift && i.key_pressed(egui::Key::Z),
                cmd && i.modifiers.shift && i.key_pressed(egui::Key::Z),
                cmd && i.key_pressed(egui::Key::S),
                i.key_pressed(egui::Key::Delete),
                i.events.iter().any(|e| matches!(e, egui::Event::Copy)),
                i.events.iter().find_map(|e| match e {
                    egui::Event::Paste(t) => Some(t.clone()),
                    _ => None,
                }),
            )
        });
        if typing {
            return;
        }
        if redo {
            self.redo();
        } else if undo {
            self.undo();
        }
        if save {
            self.save();
        }
        let selection = self.canvas_selection(ui);
        if delete {
            self.delete_nodes(&selection);
        }
        if copy {
            self.copy_nodes(&selection);
        }
        if let Some(text) = paste {
            self.paste(&text);
        }
    }

    fn widget_id(&self) -> egui::Id {
        let generation = self.canvases.get(self.tab).map_or(0, |c| c.generation);
        egui::Id::new(("medallion_canvas", self.tab, generation))
    }

    /// Nodes selected on the canvas, or the inspected node.
    fn canvas_selection(&self, ui: &Ui) -> Vec<NodeId> {
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

    fn menu_ui(&mut self, ui: &mut Ui) {
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
                ui.menu_button("Open Recent", |ui| {
                    for p in self.recent.clone() {
                        if ui.button(p.display().to_string()).clicked() {
                            self.guarded(Pending::OpenPath(p));
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
                if ui.button("Fit to view").clicked()
                    && let Some(c) = self.canvases.get_mut(self.tab)
                {
                    c.generation += 1;
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
                        c.generation += 1;
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
            if ui.button("Fit").clicked()
                && let Some(c) = self.canvases.get_mut(self.tab)
            {
                c.generation += 1;
            }
            ui.label(RichText::new(&self.status).weak());
        });
    }

    fn tabs_ui(&mut self, ui: &mut Ui) {
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
                    self.tab = i;
                    self.trigger_text.clear();
                    self.selected = None;
                    self.schedule_plan(Duration::ZERO);
                }
            }
            if ui.button("+ pipeline").clicked() {
                self.before_edit();
                let n = self.doc.project.pipelines.len() + 1;
                self.doc.project.pipelines.push(Pipeline::new(format!("pipeline_{n}")));
                self.canvases.push(Canvas::default());
                self.tab = n - 1;
                self.trigger_text.clear();
            }
        });
    }

    fn palette_panel_ui(&mut self, ui: &mut Ui) {
        ui.heading("Nodes");
        egui::ScrollArea::vertical().show(ui, |ui| {
            if let Some(kind) = canvas::palette_ui(ui, &mut self.palette_filter) {
                self.add_node(kind, None);
            }
        });
    }

    fn inspector_panel_ui(&mut self, ui: &mut Ui) {
        let Some(sel) = self.selected.clone() else {
            let before = self.doc.project.clone();
            let mut trigger_text = std::mem::take(&mut self.trigger_text);
            let changed = match self.pipeline_mut() {
                Some(p) => super::pipeline_settings::pipeline_settings_ui(ui, p, &mut trigger_text),
                None => {
                    ui.heading("Inspector");
                    ui.label("Select a node (click it) to edit its settings.");
                    false
                }
            };
            self.trigger_text = trigger_text;
            if changed {
                self.history.record(&before);
                self.last_edit_was_move = false;
                self.schedule_plan(Duration::from_millis(300));
            }
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
        let before = self.doc.project.clone();
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
        if let (Some(f), Some(p)) = (file_source, self.doc.project.pipelines.get(self.tab)) {
            let root = self.doc.lakehouse_root();
            self.quality.tracked_schema_ui(ui, p, &root, &sel, &f);
        }
        if changed {
            // the edit already happened: remember the state before it
            self.history.record(&before);
            self.last_edit_was_move = false;
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

    fn bottom_panel_ui(&mut self, ui: &mut Ui) {
        ui.horizontal(|ui| {
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
        match self.bottom {
            BottomTab::Preview => {
                let Some(node) = self.preview.node.clone() else {
                    ui.label("Right-click a node and choose Preview, or use the inspector's Preview button.");
                    return;
                };
                ui.horizontal(|ui| {
                    ui.strong(format!("preview of `{node}`"));
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
                match (&self.preview.input, &self.preview.output) {
                    (Some(input), Some(output)) => {
                        ui.columns(2, |cols| {
                            cols[0].label(RichText::new("input").weak());
                            preview_table_ui(&mut cols[0], "input", input);
                            cols[1].label(RichText::new("output").weak());
                            preview_table_ui(&mut cols[1], "output", output);
                        });
                    }
                    (None, Some(output)) => preview_table_ui(ui, "output", output),
                    _ => {}
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
                if let Some(super::quality::QualityAction::ShowQuarantined { pipeline, node, rule }) =
                    self.quality.tab_ui(ui)
                    && let Some(sql) =
                        super::quality::quarantine_query(&self.doc.project, &pipeline, &node, &rule)
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

    fn monitor_tab_ui(&mut self, ui: &mut Ui) {
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
        ui.horizontal(|ui| {
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
                monitor::plots_ui(ui, &name, pm);
                super::stateful::state_plots_ui(ui, &name, pm);
            }
            None => {
                ui.label(format!("`{name}` has not run since the app started: ▶ Start it."));
            }
        }
    }

    fn confirm_reset_ui(&mut self, ui: &Ui) {
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

    fn confirm_ui(&mut self, ui: &Ui) {
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

    /// The whole window; shared by `App::ui` and the benchmarks.
    pub fn frame_ui(&mut self, ui: &mut Ui) {
        self.poll();
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
        egui::Panel::left("palette")
            .resizable(true)
            .default_size(190.0)
            .show(ui, |ui| self.palette_panel_ui(ui));
        egui::Panel::right("inspector")
            .resizable(true)
            .default_size(360.0)
            .min_size(240.0)
            .show(ui, |ui| self.inspector_panel_ui(ui));
        egui::Panel::bottom("bottom")
            .resizable(true)
            .default_size(340.0)
            .min_size(220.0)
            .show(ui, |ui| self.bottom_panel_ui(ui));
        egui::CentralPanel::default().show(ui, |ui| self.canvas_panel_ui(ui));
        self.confirm_ui(ui);
        self.confirm_reset_ui(ui);
    }

    fn canvas_panel_ui(&mut self, ui: &mut Ui) {
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
        let slowest = self.monitor.slowest(&name);
        let mut state_badges = super::stateful::state_badges(self.monitor.pipelines.get(&name));
        state_badges.extend(self.quality.badges(&name));
        let overlay = Overlay {
            schemas: Some(&schemas),
            diagnostics: &diags,
            rows: Some(&self.run.rows),
            errors: Some(&self.run.errors),
            selected: self.selected.as_ref(),
            edge_rates: Some(&edge_rates),
            status: Some(&node_status),
            slowest: slowest.as_ref(),
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
                CanvasAction::Select(id) => self.selected = Some(id),
                CanvasAction::Preview(id) => {
                    self.selected = Some(id.clone());
                    self.request_preview(id);
                }
                CanvasAction::Delete(id) => self.delete_nodes(&[id]),
                CanvasAction::Duplicate(id) => {
                    self.copy_nodes(std::slice::from_ref(&id));
                    if let Some(p) = self.pipeline() {
                        let nodes: Vec<Node> =
                            p.nodes.iter().filter(|n| n.id == id).cloned().collect();
                        if let Ok(t) = toml::to_string(&Clip { nodes, edges: Vec::new() }) {
                            self.paste(&t);
                        }
                    }
                }
                CanvasAction::Add(kind, pos) => {
                    self.add_node(kind, Some(pos));
                }
                CanvasAction::Refused(msg) => self.status = msg,
            }
        }
    }
}

impl eframe::App for MedallionApp {
    fn ui(&mut self, ui: &mut Ui, _frame: &mut eframe::Frame) {
        self.frame_ui(ui);
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        eframe::set_value(storage, RECENT_KEY, &self.recent);
        eframe::set_value(storage, super::sql::HISTORY_KEY, &self.sql.history);
    }
}
