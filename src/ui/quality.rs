//! Data quality in the app: what the Expectations nodes report (a badge on the node with the
//! pass rate and the rows dropped, and the Quality tab with each rule's counts over the last
//! batches and runs and a plot of its failures), the Expectations form of the inspector, and
//! a file source's tracked schema with its history.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::Path;
use std::time::{Duration, Instant};

use eframe::egui::{self, RichText, Ui};
use egui_plot::{Legend, Line, Plot, PlotPoints};

use crate::engine::RunEvent;
use crate::engine::sources::schema_tracking::{self, SchemaVersion};
use crate::engine::transforms::expectations::ExpectationReport;
use crate::model::node::{Expectations, FileSource, NodeKind, OnViolation, Rule};
use crate::model::{NodeId, Pipeline, Project};

use super::theme;

/// Points kept per node (batches of a stream, or runs of a batch pipeline).
const MAX_POINTS: usize = 300;

/// One batch's (or run's) report, with when it arrived.
#[derive(Clone, Debug)]
pub struct QualityPoint {
    /// Seconds since the app started.
    pub t: f64,
    /// The stream's batch id; `None` for a batch pipeline's run.
    pub batch: Option<u64>,
    pub report: ExpectationReport,
}

/// What the Quality tab asks of the app.
#[derive(Clone, Debug, PartialEq)]
pub enum QualityAction {
    /// Show the quarantined rows that `rule` of `node` dropped (SQL over the quarantine table).
    ShowQuarantined { pipeline: String, node: String, rule: String },
}

/// Every Expectations node's reports, fed from the engine's events.
pub struct QualityState {
    start: Instant,
    /// (pipeline, node) → reports, oldest first.
    pub series: BTreeMap<(String, String), VecDeque<QualityPoint>>,
    /// A file source's tracked schema, read at most every 2 s while the node is selected.
    tracked: Option<(String, Instant, Vec<SchemaVersion>)>,
}

impl Default for QualityState {
    fn default() -> Self {
        Self { start: Instant::now(), series: BTreeMap::new(), tracked: None }
    }
}

impl QualityState {
    pub fn on_event(&mut self, event: &RunEvent) {
        let t = self.start.elapsed().as_secs_f64();
        match event {
            RunEvent::BatchCompleted(p) => {
                for (node, report) in &p.expectations {
                    self.push(&p.pipeline, node, Some(p.batch_id), report.clone(), t);
                }
            }
            RunEvent::ExpectationsChecked { pipeline, node, report } => {
                self.push(pipeline, node.as_str(), None, report.clone(), t);
            }
            _ => {}
        }
    }

    fn push(
        &mut self,
        pipeline: &str,
        node: &str,
        batch: Option<u64>,
        r: ExpectationReport,
        t: f64,
    ) {
        let points = self.series.entry((pipeline.to_owned(), node.to_owned())).or_default();
        points.push_back(QualityPoint { t, batch, report: r });
        while points.len() > MAX_POINTS {
            points.pop_front();
        }
    }

    /// Per Expectations node of `pipeline`: "✔ 97.5% · 12 dropped" over the points kept.
    pub fn badges(&self, pipeline: &str) -> HashMap<NodeId, String> {
        let mut out = HashMap::new();
        for ((p, node), points) in &self.series {
            if p != pipeline {
                continue;
            }
            let (input, passed, dropped) = points.iter().fold((0u64, 0u64, 0u64), |a, q| {
                (a.0 + q.report.input_rows, a.1 + q.report.passed_rows, a.2 + q.report.dropped_rows)
            });
            out.insert(NodeId::new(node.clone()), badge_text(input, passed, dropped));
        }
        out
    }

    /// The Quality tab.
    pub fn tab_ui(&mut self, ui: &mut Ui) -> Option<QualityAction> {
        let mut action = None;
        if self.series.is_empty() {
            ui.label(
                "No expectations have run yet: add an Expectations node and run the pipeline.",
            );
            return None;
        }
        egui::ScrollArea::vertical().show(ui, |ui| {
            for ((pipeline, node), points) in &self.series {
                ui.label(RichText::new(format!("{pipeline} · {node}")).strong());
                let Some(last) = points.back() else { continue };
                egui::Grid::new(("quality_rules", pipeline, node)).striped(true).show(ui, |ui| {
                    for h in ["rule", "on violation", "passed", "failed", "failed (last)", ""] {
                        ui.label(RichText::new(h).weak());
                    }
                    ui.end_row();
                    for (i, rule) in last.report.rules.iter().enumerate() {
                        let (passed, failed) = points.iter().fold((0, 0), |a, q| {
                            let r = q.report.rules.get(i);
                            (a.0 + r.map_or(0, |r| r.passed), a.1 + r.map_or(0, |r| r.failed))
                        });
                        ui.monospace(&rule.name);
                        ui.label(&rule.on_violation);
                        ui.label(passed.to_string());
                        let color = if failed > 0 { theme::ERROR } else { theme::OK };
                        ui.label(RichText::new(failed.to_string()).color(color));
                        ui.label(rule.failed.to_string());
                        if rule.on_violation == OnViolation::Drop.as_str()
                            && ui.small_button("quarantined rows").clicked()
                        {
                            action = Some(QualityAction::ShowQuarantined {
                                pipeline: pipeline.clone(),
                                node: node.clone(),
                                rule: rule.name.clone(),
                            });
                        }
                        ui.end_row();
                    }
                });
                Plot::new(("quality_plot", pipeline, node))
                    .legend(Legend::default())
                    .height(120.0)
                    .include_y(0.0)
                    .x_axis_label("s")
                    .allow_scroll(false)
                    .show(ui, |plot| {
                        for (i, rule) in last.report.rules.iter().enumerate() {
                            let series: Vec<[f64; 2]> = points
                                .iter()
                                .map(|q| {
                                    [q.t, q.report.rules.get(i).map_or(0, |r| r.failed) as f64]
                                })
                                .collect();
                            plot.line(Line::new(
                                format!("{} failed", rule.name),
                                PlotPoints::from(series),
                            ));
                        }
                    });
                ui.separator();
            }
        });
        action
    }

    /// Under a file source's form: its tracked schema and the versions before it.
    pub fn tracked_schema_ui(
        &mut self,
        ui: &mut Ui,
        pipeline: &Pipeline,
        root: &Path,
        node: &NodeId,
        cfg: &FileSource,
    ) {
        if !schema_tracking::is_tracked(cfg) {
            return;
        }
        let Ok(dir) = schema_tracking::schema_dir(pipeline, root, node, cfg) else { return };
        let key = dir.to_string_lossy().into_owned();
        let stale = self
            .tracked
            .as_ref()
            .is_none_or(|(k, at, _)| k != &key || at.elapsed() > Duration::from_secs(2));
        if stale {
            let versions = schema_tracking::history(&dir).unwrap_or_default();
            self.tracked = Some((key, Instant::now(), versions));
        }
        let Some((_, _, versions)) = &self.tracked else { return };
        tracked_schema_list_ui(ui, versions);
    }
}

/// The tracked schema's versions, newest first.
pub fn tracked_schema_list_ui(ui: &mut Ui, versions: &[SchemaVersion]) {
    ui.separator();
    ui.label(RichText::new("Tracked schema (Auto Loader)").strong());
    if versions.is_empty() {
        ui.label("inferred from the first files at the first start");
        return;
    }
    for v in versions.iter().rev() {
        ui.label(RichText::new(format!("v{} · {}", v.version, v.created_at)).small());
        ui.monospace(&v.ddl);
        ui.label(RichText::new(&v.reason).small().weak());
    }
}

fn badge_text(input: u64, passed: u64, dropped: u64) -> String {
    let rate = if input == 0 { 100.0 } else { passed as f64 * 100.0 / input as f64 };
    format!("✔ {rate:.1}% · {dropped} dropped")
}

/// The SQL that shows the rows `rule` of `node` sent to the pipeline's quarantine table.
pub fn quarantine_query(
    project: &Project,
    pipeline: &str,
    node: &str,
    rule: &str,
) -> Option<String> {
    let p = project.pipelines.iter().find(|p| p.name == pipeline)?;
    let table = p.sinks().find_map(|s| match &s.kind {
        NodeKind::DeltaSink(d) => Some(d.table.clone()),
        _ => None,
    })?;
    let (schema, name) = crate::engine::catalog::table_name(&format!("{table}_quarantine"));
    let esc = |s: &str| s.replace('\'', "''");
    Some(format!(
        "SELECT * FROM {schema}.{name} WHERE source_node = '{}' AND reason LIKE '%{}%' ORDER BY quarantined_at DESC LIMIT 1000",
        esc(node),
        esc(rule)
    ))
}

/// The Expectations node's form: one row per rule (name, condition, on violation).
pub fn expectations_form_ui(ui: &mut Ui, e: &mut Expectations) -> bool {
    let mut changed = false;
    let mut remove = None;
    ui.label("Rules: a row passes when the condition is true (NULL fails)");
    for (i, rule) in e.rules.iter_mut().enumerate() {
        ui.horizontal(|ui| {
            changed |= ui
                .add(
                    egui::TextEdit::singleline(&mut rule.name)
                        .hint_text("name")
                        .desired_width(100.0),
                )
                .changed();
            egui::ComboBox::from_id_salt(("on_violation", i))
                .selected_text(rule.on_violation.as_str())
                .show_ui(ui, |ui| {
                    for v in OnViolation::ALL {
                        changed |=
                            ui.selectable_value(&mut rule.on_violation, v, v.as_str()).changed();
                    }
                });
            if ui.small_button("✕").clicked() {
                remove = Some(i);
            }
        });
        changed |= ui
            .add(
                egui::TextEdit::singleline(&mut rule.condition)
                    .code_editor()
                    .hint_text("SQL condition, e.g. amount >= 0")
                    .desired_width(f32::INFINITY),
            )
            .changed();
    }
    if let Some(i) = remove {
        e.rules.remove(i);
        changed = true;
    }
    if ui.button("Add rule").clicked() {
        e.rules.push(Rule {
            name: format!("rule_{}", e.rules.len() + 1),
            condition: "id IS NOT NULL".into(),
            on_violation: OnViolation::Warn,
        });
        changed = true;
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::stream::StreamProgress;
    use crate::engine::transforms::expectations::RuleCounts;

    fn report(input: u64, passed: u64, dropped: u64) -> ExpectationReport {
        ExpectationReport {
            input_rows: input,
            output_rows: input - dropped,
            passed_rows: passed,
            dropped_rows: dropped,
            rules: vec![RuleCounts {
                name: "valid_id".into(),
                on_violation: "drop".into(),
                passed,
                failed: input - passed,
            }],
        }
    }

    #[test]
    fn badges_sum_the_batches_of_a_pipeline() {
        let mut q = QualityState::default();
        for (b, r) in [(0, report(100, 90, 10)), (1, report(100, 100, 0))] {
            let mut p = StreamProgress {
                pipeline: "bronze".into(),
                batch_id: b,
                ..StreamProgress::default()
            };
            p.expectations.insert("checks".into(), r);
            q.on_event(&RunEvent::BatchCompleted(Box::new(p)));
        }
        let badges = q.badges("bronze");
        assert_eq!(badges[&NodeId::new("checks")], "✔ 95.0% · 10 dropped");
        assert!(q.badges("silver").is_empty());
    }
}
