//! The Tests tab: the project's recorded tests with pass/fail, run all / run one, the diff of
//! a failing test (rows missing, rows extra, changed cells), "Accept new output", and the
//! "Record test" control of the Preview tab. Tests re-run in the background after an edit:
//! debounced, and an edit while a run is in flight cancels it and starts a new one.
//!
//! Engine work goes through `EngineHandle` (`Command::Tests`); nothing here blocks.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use eframe::egui::{self, RichText, Ui};

use crate::engine::handle::{Command, EngineHandle};
use crate::engine::testing::handle::{TestsCommand, TestsEvent};
use crate::engine::testing::{RecordOptions, Recorded, TestResult};
use crate::model::{NodeId, Project};

use super::state::Document;
use super::theme;

/// Quiet time after an edit before the tests re-run.
pub const DEBOUNCE: Duration = Duration::from_millis(600);

/// Sample rows per source when recording from the app.
const RECORD_LIMIT: usize = 20;

#[derive(Default)]
pub struct TestsTab {
    /// The latest result of each test, by name.
    pub results: HashMap<String, TestResult>,
    /// The run in flight and the tests it runs.
    run: Option<(u64, Vec<String>)>,
    /// The project as it was when the last run started (an edit makes it stale).
    tested: Option<Project>,
    /// The edited project waiting for its re-run, and when that run starts.
    waiting_on: Option<Project>,
    due: Option<Instant>,
    pub selected: Option<String>,
    /// The name typed next to "Record test".
    pub record_name: String,
    record: Option<u64>,
    accept: Option<u64>,
    /// Runs finished since start (tests wait on it).
    pub runs_finished: u64,
    pub message: String,
}

/// What the app must do after a test event.
pub enum TestsOutcome {
    /// Store this test in the project (a new recording).
    Recorded(Box<Recorded>),
}

/// Whether two projects differ in anything a test could see (not node positions or names).
fn same_logic(a: &Project, b: &Project) -> bool {
    a.tests == b.tests
        && a.pipelines.len() == b.pipelines.len()
        && a.pipelines.iter().zip(&b.pipelines).all(|(x, y)| {
            x.name == y.name
                && x.mode == y.mode
                && x.edges == y.edges
                && x.watermark_policy == y.watermark_policy
                && x.nodes.len() == y.nodes.len()
                && x.nodes.iter().zip(&y.nodes).all(|(m, n)| m.id == n.id && m.kind == n.kind)
        })
}

impl TestsTab {
    pub fn is_running(&self) -> bool {
        self.run.is_some()
    }

    /// Results of the project's tests: (passed, failed, not run yet).
    pub fn counts(&self, project: &Project) -> (usize, usize, usize) {
        let mut c = (0, 0, 0);
        for t in &project.tests {
            match self.results.get(&t.name) {
                Some(r) if r.passed() => c.0 += 1,
                Some(_) => c.1 += 1,
                None => c.2 += 1,
            }
        }
        c
    }

    /// Per node of `pipeline` with tests: the badge text and whether one fails.
    pub fn badges(&self, project: &Project, pipeline: &str) -> HashMap<NodeId, (String, bool)> {
        let mut out: HashMap<NodeId, (usize, usize)> = HashMap::new();
        for t in project.tests.iter().filter(|t| t.pipeline == pipeline) {
            let e = out.entry(t.node.clone()).or_default();
            e.0 += 1;
            if self.results.get(&t.name).is_some_and(|r| !r.passed()) {
                e.1 += 1;
            }
        }
        out.into_iter()
            .map(|(node, (n, failed))| {
                let text = match failed {
                    0 => format!("✔ {n} test{}", if n == 1 { "" } else { "s" }),
                    f => format!("✖ {f} of {n} test{} failing", if n == 1 { "" } else { "s" }),
                };
                (node, (text, failed > 0))
            })
            .collect()
    }

    /// Starts a run of `names` (all when `None`), cancelling the one in flight.
    pub fn run(&mut self, engine: &EngineHandle, doc: &Document, names: Option<Vec<String>>) {
        let Some(path) = doc.path.clone() else {
            self.message =
                "save the project first: test fixtures live beside the project file".into();
            return;
        };
        if let Some((old, _)) = self.run.take() {
            engine.send(Command::Cancel { request: old });
        }
        let request = engine.request_id();
        let running: Vec<String> = doc
            .project
            .tests
            .iter()
            .filter(|t| names.as_ref().is_none_or(|n| n.contains(&t.name)))
            .map(|t| t.name.clone())
            .collect();
        let cmd = TestsCommand::Run {
            request,
            project: Arc::new(doc.project.clone()),
            project_file: path,
            names,
        };
        if engine.send(Command::Tests(cmd)) {
            self.run = Some((request, running));
            self.tested = Some(doc.project.clone());
            self.waiting_on = None;
            self.due = None;
        }
    }

    /// Called every frame: re-runs the tests once the project has been edited and then left
    /// alone for [`DEBOUNCE`] (each further edit pushes the run back).
    pub fn poll(&mut self, engine: &EngineHandle, doc: &Document, ctx: &egui::Context) {
        if doc.project.tests.is_empty() || doc.path.is_none() {
            return;
        }
        if self.tested.as_ref().is_some_and(|t| same_logic(t, &doc.project)) {
            return;
        }
        if !self.waiting_on.as_ref().is_some_and(|w| same_logic(w, &doc.project)) {
            self.waiting_on = Some(doc.project.clone());
            self.due = Some(Instant::now() + DEBOUNCE);
            ctx.request_repaint_after(DEBOUNCE);
        }
        if self.due.is_some_and(|due| Instant::now() >= due) {
            self.run(engine, doc, None);
        }
    }

    pub fn on_event(&mut self, e: TestsEvent) -> Option<TestsOutcome> {
        match e {
            TestsEvent::Ran { request, results } => {
                if self.run.as_ref().is_some_and(|(r, _)| *r == request) {
                    self.run = None;
                    self.runs_finished += 1;
                    let failed = results.iter().filter(|r| !r.passed()).count();
                    self.message = format!(
                        "{} ({} ms)",
                        crate::engine::testing::summary_line(&results),
                        results.iter().map(|r| r.duration_ms).sum::<u64>()
                    );
                    if failed > 0 && self.selected.is_none() {
                        self.selected =
                            results.iter().find(|r| !r.passed()).map(|r| r.name.clone());
                    }
                    for r in results {
                        self.results.insert(r.name.clone(), r);
                    }
                }
                None
            }
            TestsEvent::Recorded { request, result } => {
                if self.record != Some(request) {
                    return None;
                }
                self.record = None;
                match result {
                    Ok(rec) => {
                        self.message = format!(
                            "recorded test `{}` ({} expected row(s)){}; save the project to keep its [[tests]] entry",
                            rec.test.name,
                            rec.expected_rows.iter().sum::<usize>(),
                            if rec.notes.is_empty() {
                                String::new()
                            } else {
                                format!("; {}", rec.notes.join("; "))
                            }
                        );
                        self.selected = Some(rec.test.name.clone());
                        self.results.remove(&rec.test.name);
                        Some(TestsOutcome::Recorded(rec))
                    }
                    Err(e) => {
                        self.message = format!("cannot record the test: {e}");
                        None
                    }
                }
            }
            TestsEvent::Accepted { request, name, result } => {
                if self.accept == Some(request) {
                    self.accept = None;
                    self.message = match result {
                        Ok(rows) => format!("accepted the new output of `{name}` ({rows} row(s))"),
                        Err(e) => format!("cannot accept the output of `{name}`: {e}"),
                    };
                    // show the test green (or why not) from a fresh run
                    self.tested = None;
                }
                None
            }
        }
    }

    /// Records a test of `node` named by the text next to the button.
    pub fn request_record(
        &mut self,
        engine: &EngineHandle,
        doc: &Document,
        pipeline: &str,
        node: &NodeId,
    ) {
        let Some(path) = doc.path.clone() else {
            self.message =
                "save the project first: test fixtures live beside the project file".into();
            return;
        };
        let name = if self.record_name.trim().is_empty() {
            node.to_string()
        } else {
            self.record_name.trim().to_owned()
        };
        let request = engine.request_id();
        let cmd = TestsCommand::Record {
            request,
            project: Arc::new(doc.project.clone()),
            project_file: path,
            root: doc.lakehouse_root(),
            options: RecordOptions {
                name,
                pipeline: Some(pipeline.to_owned()),
                node: node.clone(),
                limit: RECORD_LIMIT,
                batches: None,
            },
        };
        if engine.send(Command::Tests(cmd)) {
            self.record = Some(request);
            self.message = format!("recording a test of `{node}`…");
        }
    }

    fn request_accept(&mut self, engine: &EngineHandle, doc: &Document, name: &str) {
        let Some(path) = doc.path.clone() else { return };
        let request = engine.request_id();
        let cmd = TestsCommand::Accept {
            request,
            project: Arc::new(doc.project.clone()),
            project_file: path,
            name: name.to_owned(),
        };
        if engine.send(Command::Tests(cmd)) {
            self.accept = Some(request);
        }
    }

    /// "Record test" next to a node's preview.
    pub fn record_ui(
        &mut self,
        ui: &mut Ui,
        engine: &EngineHandle,
        doc: &Document,
        pipeline: &str,
        node: &NodeId,
    ) {
        ui.separator();
        ui.label("test name");
        ui.add(
            egui::TextEdit::singleline(&mut self.record_name)
                .hint_text(node.as_str())
                .desired_width(140.0),
        );
        let busy = self.record.is_some();
        if ui
            .add_enabled(!busy, egui::Button::new("⏺ Record test"))
            .on_hover_text(
                "Save this node's input rows and its output as a test (fixtures beside the project file); `medallion test` replays it",
            )
            .clicked()
        {
            self.request_record(engine, doc, pipeline, node);
        }
        if busy {
            ui.spinner();
        }
    }

    /// The Tests tab.
    pub fn tab_ui(&mut self, ui: &mut Ui, engine: &EngineHandle, doc: &Document) {
        let project = &doc.project;
        ui.horizontal(|ui| {
            if ui.button("▶ Run all").clicked() {
                self.run(engine, doc, None);
            }
            if self.run.is_some() {
                ui.spinner();
                ui.label("running…");
            }
            let (passed, failed, not_run) = self.counts(project);
            ui.label(RichText::new(format!("{passed} passed")).color(theme::OK));
            ui.label(RichText::new(format!("{failed} failed")).color(if failed > 0 {
                theme::ERROR
            } else {
                theme::OK
            }));
            if not_run > 0 {
                ui.label(format!("{not_run} not run"));
            }
            ui.label(RichText::new(&self.message).weak());
        });
        if project.tests.is_empty() {
            ui.label("No tests yet: preview a node and press “Record test”, or run `medallion test record`.");
            return;
        }
        ui.separator();
        let mut run_one = None;
        let mut accept = None;
        ui.columns(2, |cols| {
            egui::ScrollArea::vertical().id_salt("tests_list").show(&mut cols[0], |ui| {
                for t in &project.tests {
                    ui.horizontal(|ui| {
                        let (mark, color) = match self.results.get(&t.name) {
                            Some(r) if r.passed() => ("✔", theme::OK),
                            Some(_) => ("✖", theme::ERROR),
                            None => ("○", theme::WARNING),
                        };
                        ui.label(RichText::new(mark).color(color));
                        let selected = self.selected.as_deref() == Some(t.name.as_str());
                        if ui
                            .selectable_label(selected, &t.name)
                            .on_hover_text(format!("node `{}` of pipeline `{}`", t.node, t.pipeline))
                            .clicked()
                        {
                            self.selected = Some(t.name.clone());
                        }
                        ui.label(RichText::new(format!("{} / {}", t.pipeline, t.node)).weak());
                        if let Some(r) = self.results.get(&t.name) {
                            ui.label(RichText::new(format!("{} ms", r.duration_ms)).weak());
                        }
                        if ui.small_button("Run").on_hover_text(format!("run `{}`", t.name)).clicked() {
                            run_one = Some(t.name.clone());
                        }
                    });
                }
            });
            let ui = &mut cols[1];
            let Some(name) = self.selected.clone() else {
                ui.label("Select a test to see its diff.");
                return;
            };
            let Some(r) = self.results.get(&name) else {
                ui.label(format!("`{name}` has not run yet."));
                return;
            };
            if r.passed() {
                ui.label(RichText::new(format!("`{name}` passed")).color(theme::OK));
                return;
            }
            ui.horizontal(|ui| {
                ui.label(RichText::new(format!("`{name}` failed")).color(theme::ERROR));
                if r.error.is_none()
                    && ui
                        .button("Accept new output")
                        .on_hover_text("store what the node outputs now as the expected rows (after an intended change)")
                        .clicked()
                {
                    accept = Some(name.clone());
                }
            });
            egui::ScrollArea::both().id_salt("tests_diff").show(ui, |ui| {
                // not the column's justified layout: a long error's first line was spread
                // letter by letter across the width
                ui.with_layout(egui::Layout::top_down(egui::Align::Min), |ui| diff_ui(ui, r));
            });
        });
        if let Some(n) = run_one {
            self.run(engine, doc, Some(vec![n]));
        }
        if let Some(n) = accept {
            self.request_accept(engine, doc, &n);
        }
    }
}

/// A failing test's diff: per batch, schema changes, missing and extra rows, changed cells.
pub fn diff_ui(ui: &mut Ui, r: &TestResult) {
    if let Some(e) = &r.error {
        ui.label(RichText::new(e).color(theme::ERROR));
    }
    for b in &r.diffs {
        let d = &b.diff;
        let title = if r.batches > 1 {
            format!(
                "micro-batch {}: {} row(s) expected, {} output",
                b.batch, d.expected_rows, d.actual_rows
            )
        } else {
            format!("{} row(s) expected, {} output", d.expected_rows, d.actual_rows)
        };
        ui.strong(title);
        for s in &d.schema {
            ui.label(RichText::new(s).color(theme::WARNING));
        }
        for (what, rows, color) in [
            ("missing rows (expected, not output)", &d.missing, theme::ERROR),
            ("extra rows (output, not expected)", &d.extra, theme::WARNING),
        ] {
            if rows.is_empty() {
                continue;
            }
            ui.label(RichText::new(format!("{} {what}", rows.len())).color(color));
            egui::Grid::new((what, b.batch)).striped(true).show(ui, |ui| {
                for c in &d.columns {
                    ui.strong(c);
                }
                ui.end_row();
                for row in rows.iter().take(50) {
                    for cell in row {
                        ui.label(cell.as_deref().unwrap_or("NULL"));
                    }
                    ui.end_row();
                }
            });
        }
        if !d.changed.is_empty() {
            ui.label(
                RichText::new(format!("{} changed row(s)", d.changed.len())).color(theme::ERROR),
            );
            for (i, c) in d.changed.iter().take(50).enumerate() {
                ui.label(RichText::new(&c.row).weak());
                egui::Grid::new(("changed", b.batch, i)).striped(true).show(ui, |ui| {
                    for (col, exp, act) in &c.cells {
                        ui.label(col);
                        ui.label(exp);
                        ui.label(RichText::new(act).color(theme::ERROR));
                        ui.end_row();
                    }
                });
            }
        }
        ui.add_space(6.0);
    }
    for a in &r.assertions {
        ui.label(
            RichText::new(format!("assertion {}: {}", a.assertion, a.message)).color(theme::ERROR),
        );
    }
}
