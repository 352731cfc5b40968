//! The lakehouse panel: tables grouped bronze / silver / gold with version, rows, size and
//! files; the selected table's Delta versions as a timeline; a click on a version previews the
//! table as it was (time travel); two versions compared (rows added and removed).
//! State and drawing only: the app turns the returned actions into engine commands.

use std::path::PathBuf;

use eframe::egui::{self, RichText, Ui};
use egui_plot::{Plot, PlotPoints, Points};

use crate::engine::lakehouse::{HistoryEntry, TableInfo, VersionDiff, VersionPreview};
use crate::model::node::Layer;

use super::monitor::{count, human_bytes};
use super::preview::preview_table_ui;
use super::table_health::{UpkeepAction, UpkeepState, health_ui};
use super::theme;

/// What the user asked for in the panel.
#[derive(Clone, Debug, PartialEq)]
pub enum TablesAction {
    Refresh,
    Select(PathBuf),
    ShowVersion(PathBuf, i64),
    Compare(PathBuf, i64, i64),
    /// Health, OPTIMIZE, VACUUM of the selected table (`table_health`).
    Upkeep(UpkeepAction),
}

/// The panel's state.
#[derive(Default)]
pub struct TablesState {
    pub tables: Vec<TableInfo>,
    pub error: Option<String>,
    pub selected: Option<PathBuf>,
    /// History of the selected table, newest first.
    pub history: Vec<HistoryEntry>,
    pub history_error: Option<String>,
    /// The version shown (time travel) and its rows.
    pub shown: Option<(i64, Result<VersionPreview, String>)>,
    /// The time-travel request in flight: (request, version).
    pub loading: Option<(u64, i64)>,
    pub compare_from: Option<i64>,
    pub compare_to: Option<i64>,
    pub diff: Option<Result<VersionDiff, String>>,
    /// The comparison request in flight.
    pub comparing: Option<u64>,
    /// The selected table's health and its OPTIMIZE / VACUUM.
    pub upkeep: UpkeepState,
}

impl TablesState {
    pub fn selected_table(&self) -> Option<&TableInfo> {
        let sel = self.selected.as_ref()?;
        self.tables.iter().find(|t| &t.path == sel)
    }

    /// The rows of the version shown, once it arrived.
    pub fn shown_rows(&self) -> Option<(i64, usize)> {
        match &self.shown {
            Some((v, Ok(p))) => Some((*v, p.preview.rows())),
            _ => None,
        }
    }
}

fn layer_name(layer: Option<Layer>) -> &'static str {
    layer.map_or("other", Layer::as_str)
}

/// The whole panel. Returns what the app must ask the engine for.
pub fn tables_ui(ui: &mut Ui, st: &mut TablesState) -> Vec<TablesAction> {
    let mut actions = Vec::new();
    ui.columns(3, |cols| {
        list_ui(&mut cols[0], st, &mut actions);
        timeline_ui(&mut cols[1], st, &mut actions);
        version_ui(&mut cols[2], st);
    });
    actions
}

fn list_ui(ui: &mut Ui, st: &mut TablesState, actions: &mut Vec<TablesAction>) {
    ui.horizontal(|ui| {
        ui.strong("Tables");
        if ui.small_button("⟳").on_hover_text("refresh").clicked() {
            actions.push(TablesAction::Refresh);
        }
    });
    if let Some(e) = &st.error {
        theme::error_label(ui, e.as_str());
    }
    if st.tables.is_empty() {
        ui.label(RichText::new("No Delta tables yet: run a pipeline.").weak());
    }
    egui::ScrollArea::vertical().id_salt("tables_list").show(ui, |ui| {
        let mut last_layer = None;
        for t in &st.tables {
            let layer = layer_name(t.layer);
            if last_layer != Some(layer) {
                let color = t.layer.map_or(egui::Color32::GRAY, theme::layer_color);
                ui.label(RichText::new(layer.to_uppercase()).strong().color(color));
                last_layer = Some(layer);
            }
            let rows = match t.rows {
                None => "? rows".into(),
                Some(1) => "1 row".into(),
                Some(r) => format!("{} rows", count(r)),
            };
            let files = if t.files == 1 { "1 file".into() } else { format!("{} files", t.files) };
            let selected = st.selected.as_ref() == Some(&t.path);
            let clicked =
                ui.selectable_label(selected, format!("{} · v{}", t.name, t.version)).clicked();
            ui.horizontal(|ui| {
                ui.label(
                    RichText::new(format!("    {rows} · {files} · {}", human_bytes(t.size_bytes)))
                        .small()
                        .weak(),
                );
                if t.needs_compaction() {
                    ui.label(RichText::new("⚠ small files").small().color(theme::WARNING))
                        .on_hover_text(format!(
                            "{} files under a quarter of the target size: Optimize compacts them",
                            t.small_files
                        ));
                }
            });
            if clicked && !selected {
                actions.push(TablesAction::Select(t.path.clone()));
            }
        }
    });
}

fn timeline_ui(ui: &mut Ui, st: &mut TablesState, actions: &mut Vec<TablesAction>) {
    let Some(path) = st.selected.clone() else {
        ui.label(RichText::new("Select a table to see its versions.").weak());
        return;
    };
    let name = st.selected_table().map(|t| t.name.clone()).unwrap_or_default();
    let mut upkeep = Vec::new();
    health_ui(ui, &mut st.upkeep, &path, &mut upkeep);
    actions.extend(upkeep.into_iter().map(TablesAction::Upkeep));
    ui.strong(format!("Versions of {name}"));
    if let Some(e) = &st.history_error {
        theme::error_label(ui, e.as_str());
        return;
    }
    // the timeline: one point per version, at its commit time
    let points: Vec<[f64; 2]> = st
        .history
        .iter()
        .filter_map(|h| Some([h.timestamp?.timestamp_millis() as f64 / 1000.0, h.version as f64]))
        .collect();
    let first = points.iter().map(|p| p[0]).fold(f64::INFINITY, f64::min);
    let rel: Vec<[f64; 2]> = points.iter().map(|p| [p[0] - first, p[1]]).collect();
    Plot::new(("timeline", &name))
        .height(70.0)
        .x_axis_label("s since first version")
        .allow_scroll(false)
        .show(ui, |plot| {
            plot.points(Points::new("versions", PlotPoints::from(rel)).radius(3.0));
        });
    ui.horizontal_wrapped(|ui| {
        let versions: Vec<i64> = st.history.iter().map(|h| h.version).collect();
        // labelled pickers: "[v3] older [v9] newer [Compare]"
        let pick = |ui: &mut Ui, label: &str, v: &mut Option<i64>| {
            egui::ComboBox::new(("compare", label), label)
                .width(56.0)
                .selected_text(v.map_or("—".into(), |v| format!("v{v}")))
                .show_ui(ui, |ui| {
                    for x in &versions {
                        ui.selectable_value(v, Some(*x), format!("v{x}"));
                    }
                });
        };
        pick(ui, "older", &mut st.compare_from);
        pick(ui, "newer", &mut st.compare_to);
        let ready = matches!((st.compare_from, st.compare_to), (Some(a), Some(b)) if a != b);
        if ui.add_enabled(ready, egui::Button::new("Compare")).clicked()
            && let (Some(a), Some(b)) = (st.compare_from, st.compare_to)
        {
            actions.push(TablesAction::Compare(path.clone(), a.min(b), a.max(b)));
        }
    });
    let row_height = ui.text_style_height(&egui::TextStyle::Body) + 4.0;
    egui::ScrollArea::vertical().id_salt("timeline").auto_shrink(false).show_rows(
        ui,
        row_height,
        st.history.len(),
        |ui, range| {
            // one line per version, whatever the width: the rest is in the hover text
            ui.style_mut().wrap_mode = Some(egui::TextWrapMode::Truncate);
            for h in &st.history[range] {
                let local = h.timestamp.map(|t| t.with_timezone(&chrono::Local));
                let time = local.map_or("?".into(), |t| t.format("%H:%M:%S").to_string());
                let added = h.rows_added.map_or("?".into(), |r| format!("+{r}"));
                let removed = h.rows_removed.map_or(String::new(), |r| format!(" −{r}"));
                let text = format!(
                    "v{}  {time}  {}  {added}{removed}  {}",
                    h.version,
                    h.operation,
                    h.pipeline.as_deref().unwrap_or("-")
                );
                let hover = format!(
                    "{}\nwritten by {}\n{}\nclick: the table as of this version",
                    local.map_or("?".into(), |t| t.format("%Y-%m-%d %H:%M:%S").to_string()),
                    h.written_by(),
                    h.metrics_summary()
                );
                let shown = st.shown.as_ref().is_some_and(|(v, _)| *v == h.version)
                    || st.loading.is_some_and(|(_, v)| v == h.version);
                if ui.selectable_label(shown, text).on_hover_text(hover).clicked() {
                    actions.push(TablesAction::ShowVersion(path.clone(), h.version));
                }
            }
        },
    );
}

fn version_ui(ui: &mut Ui, st: &mut TablesState) {
    if st.comparing.is_some() {
        ui.spinner();
    }
    // the tables fill the height left: nothing may come after them, or the panel grows
    let mut close = false;
    if let Some(diff) = &st.diff {
        match diff {
            Ok(d) => {
                ui.horizontal(|ui| {
                    ui.strong(format!(
                        "v{} to v{}: {} rows added, {} removed",
                        d.from, d.to, d.rows_added, d.rows_removed
                    ));
                    close = ui.small_button("close comparison").clicked();
                });
                ui.columns(2, |cols| {
                    cols[0].label(RichText::new("added").color(theme::OK));
                    preview_table_ui(&mut cols[0], "diff_added", &Ok(d.added.clone()));
                    cols[1].label(RichText::new("removed").color(theme::ERROR));
                    preview_table_ui(&mut cols[1], "diff_removed", &Ok(d.removed.clone()));
                });
            }
            Err(e) => {
                theme::error_label(ui, e.as_str());
                close = ui.small_button("close comparison").clicked();
            }
        }
    }
    if close {
        st.diff = None;
    }
    if st.diff.is_some() {
        return;
    }
    if let Some((_, v)) = st.loading {
        ui.horizontal(|ui| {
            ui.spinner();
            ui.label(format!("reading version {v}…"));
        });
    }
    match &st.shown {
        Some((v, Ok(p))) => {
            ui.strong(format!("as of version {v}: {} rows (time travel)", p.rows));
            preview_table_ui(ui, "version_preview", &Ok(p.preview.clone()));
        }
        Some((v, Err(e))) => {
            theme::error_label(ui, format!("version {v}: {e}"));
        }
        None => {
            ui.label(RichText::new("Click a version to see the table as it was.").weak());
        }
    }
}
