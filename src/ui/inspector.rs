//! The inspector: a form per node kind. Edits change the model directly; the app records
//! them for undo and re-plans the pipeline off the UI thread.

use std::collections::BTreeMap;

use arrow::datatypes::SchemaRef;

use eframe::egui::{self, RichText, Ui};

use crate::engine::schema::type_ddl;
use crate::model::node::{
    ColumnExpr, FileFormat, JoinHow, LateRows, Layer, NodeKind, OutputMode, ParseMode,
    SchemaEvolutionMode, SchemaMode, WriteMode,
};
use crate::model::{Diagnostic, Node, Severity};

use super::theme;

/// Requests the inspector makes of the app.
#[derive(Debug, Clone, PartialEq)]
pub enum InspectorAction {
    InferSchema,
    Preview,
}

const SQL_KEYWORDS: &[&str] = &[
    "SELECT",
    "FROM",
    "WHERE",
    "GROUP",
    "BY",
    "ORDER",
    "JOIN",
    "LEFT",
    "RIGHT",
    "FULL",
    "INNER",
    "OUTER",
    "ON",
    "AS",
    "AND",
    "OR",
    "NOT",
    "LIMIT",
    "HAVING",
    "UNION",
    "ALL",
    "DISTINCT",
    "CASE",
    "WHEN",
    "THEN",
    "ELSE",
    "END",
    "WITH",
    "IN",
    "IS",
    "NULL",
    "CAST",
    "TRUE",
    "FALSE",
    "STRING",
    "BIGINT",
    "INT",
    "DOUBLE",
    "BOOLEAN",
    "TIMESTAMP",
    "DATE",
    "STRUCT",
    "ARRAY",
    "MAP",
    "COUNT",
    "SUM",
    "MIN",
    "MAX",
    "AVG",
    "OVER",
    "PARTITION",
];

/// Colours SQL keywords, strings and numbers.
pub(crate) fn sql_job(ui: &Ui, code: &str) -> egui::text::LayoutJob {
    use egui::text::{LayoutJob, TextFormat};
    let font = egui::TextStyle::Monospace.resolve(ui.style());
    let keyword = egui::Color32::from_rgb(86, 156, 214);
    let string = egui::Color32::from_rgb(206, 145, 120);
    let number = egui::Color32::from_rgb(181, 206, 168);
    let text = ui.visuals().text_color();
    let mut job = LayoutJob::default();
    let mut rest = code;
    while let Some(c) = rest.chars().next() {
        let (len, color) = if c == '\'' {
            let end = rest[1..].find('\'').map_or(rest.len(), |i| i + 2);
            (end, string)
        } else if c.is_ascii_digit() {
            (rest.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(rest.len()), number)
        } else if c.is_alphanumeric() || c == '_' {
            let end = rest.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(rest.len());
            let word = &rest[..end];
            (
                end,
                if SQL_KEYWORDS.contains(&word.to_ascii_uppercase().as_str()) {
                    keyword
                } else {
                    text
                },
            )
        } else {
            (c.len_utf8(), text)
        };
        job.append(&rest[..len], 0.0, TextFormat::simple(font.clone(), color));
        rest = &rest[len..];
    }
    job
}

/// A multi-line SQL editor with highlighting and a monospace font.
pub fn sql_editor_ui(ui: &mut Ui, label: &str, text: &mut String, rows: usize) -> bool {
    let l = ui.label(label);
    let mut layouter = |ui: &Ui, buf: &dyn egui::TextBuffer, wrap_width: f32| {
        let mut job = sql_job(ui, buf.as_str());
        job.wrap.max_width = wrap_width;
        ui.fonts_mut(|f| f.layout_job(job))
    };
    ui.add(
        egui::TextEdit::multiline(text)
            .code_editor()
            .desired_rows(rows)
            .desired_width(f32::INFINITY)
            .layouter(&mut layouter),
    )
    .labelled_by(l.id)
    .changed()
}

fn text_ui(ui: &mut Ui, label: &str, text: &mut String) -> bool {
    ui.horizontal(|ui| {
        let l = ui.label(label);
        ui.add(egui::TextEdit::singleline(text).desired_width(f32::INFINITY))
            .labelled_by(l.id)
            .changed()
    })
    .inner
}

fn opt_text_ui(ui: &mut Ui, label: &str, value: &mut Option<String>) -> bool {
    let mut text = value.clone().unwrap_or_default();
    let changed = text_ui(ui, label, &mut text);
    if changed {
        *value = (!text.trim().is_empty()).then_some(text);
    }
    changed
}

/// A list edited as one entry per line.
fn lines_ui(ui: &mut Ui, label: &str, items: &mut Vec<String>, sql: bool) -> bool {
    let mut text = items.join("\n");
    let changed = if sql {
        sql_editor_ui(ui, label, &mut text, items.len().clamp(2, 10))
    } else {
        let l = ui.label(label);
        ui.add(
            egui::TextEdit::multiline(&mut text)
                .code_editor()
                .desired_rows(2)
                .desired_width(f32::INFINITY),
        )
        .labelled_by(l.id)
        .changed()
    };
    if changed {
        *items = text.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_owned).collect();
    }
    changed
}

/// A `key = value` per line editor for a map (table properties, Kafka options). The text
/// being typed lives in egui's memory while the field has focus, so a line without its `=`
/// yet is not lost between frames; complete lines land in the map as they are typed.
fn map_ui(ui: &mut Ui, label: &str, map: &mut BTreeMap<String, String>) -> bool {
    let from_map = || map.iter().map(|(k, v)| format!("{k} = {v}")).collect::<Vec<_>>().join("\n");
    let id = ui.make_persistent_id(("map_ui", label));
    let mut text: String = ui.data_mut(|d| d.get_temp(id)).unwrap_or_else(from_map);
    let l = ui.label(label);
    let r = ui
        .add(
            egui::TextEdit::multiline(&mut text)
                .code_editor()
                .desired_rows(2)
                .hint_text("key = value")
                .desired_width(f32::INFINITY),
        )
        .labelled_by(l.id);
    let mut changed = false;
    if r.changed() {
        let parsed: BTreeMap<String, String> = text
            .lines()
            .filter_map(|line| {
                let (k, v) = line.split_once('=')?;
                let k = k.trim();
                (!k.is_empty()).then(|| (k.to_owned(), v.trim().to_owned()))
            })
            .collect();
        if parsed != *map {
            *map = parsed;
            changed = true;
        }
    }
    if r.has_focus() {
        ui.data_mut(|d| d.insert_temp(id, text));
    } else {
        ui.data_mut(|d| d.remove::<String>(id));
    }
    changed
}

fn combo_ui<T: PartialEq + Copy>(
    ui: &mut Ui,
    label: &str,
    value: &mut T,
    all: &[T],
    name: impl Fn(T) -> &'static str,
) -> bool {
    let before = *value;
    ui.horizontal(|ui| {
        ui.label(label);
        egui::ComboBox::from_id_salt(label).selected_text(name(*value)).show_ui(ui, |ui| {
            for v in all {
                ui.selectable_value(value, *v, name(*v));
            }
        });
    });
    before != *value
}

fn opt_number_ui<T: egui::emath::Numeric>(
    ui: &mut Ui,
    label: &str,
    value: &mut Option<T>,
    default: T,
) -> bool {
    ui.horizontal(|ui| {
        let mut on = value.is_some();
        let mut changed = ui.checkbox(&mut on, label).changed();
        if on {
            let v = value.get_or_insert(default);
            changed |= ui.add(egui::DragValue::new(v)).changed();
        } else {
            *value = None;
        }
        changed
    })
    .inner
}

/// The form of one node; returns (changed, actions).
pub fn inspector_ui(
    ui: &mut Ui,
    node: &mut Node,
    schema: Option<&SchemaRef>,
    diagnostics: &[Diagnostic],
) -> (bool, Vec<InspectorAction>) {
    let mut changed = false;
    let mut actions = Vec::new();
    ui.horizontal(|ui| {
        ui.heading(node.title().to_owned());
        ui.label(RichText::new(node.kind.tag().replace('_', " ")).italics());
    });
    ui.label(RichText::new(format!("id: {}", node.id)).small());
    changed |= text_ui(ui, "Name", &mut node.name);
    ui.separator();
    match &mut node.kind {
        NodeKind::FileSource(s) => {
            changed |= text_ui(ui, "Path", &mut s.path);
            changed |= combo_ui(ui, "Format", &mut s.format, &FileFormat::ALL, FileFormat::as_str);
            changed |= opt_text_ui(ui, "Glob", &mut s.glob);
            if s.format == FileFormat::Csv {
                changed |= ui.checkbox(&mut s.header, "Header line").changed();
            }
            let mut ddl = s.schema.clone().unwrap_or_default();
            if sql_editor_ui(ui, "Schema (DDL; inferred when empty)", &mut ddl, 3) {
                s.schema = (!ddl.trim().is_empty()).then_some(ddl);
                changed = true;
            }
            if ui.button("Infer from sample").clicked() {
                actions.push(InspectorAction::InferSchema);
            }
            changed |=
                combo_ui(ui, "Parse mode", &mut s.parse_mode, &ParseMode::ALL, ParseMode::as_str);
            if s.schema.as_deref().is_none_or(|d| d.trim().is_empty()) {
                changed |= opt_text_ui(ui, "Schema hints (DDL)", &mut s.schema_hints);
                changed |= opt_text_ui(ui, "Schema location", &mut s.schema_location);
            }
            let mut evolution = s.schema_evolution_mode;
            ui.horizontal(|ui| {
                ui.label("Schema evolution");
                egui::ComboBox::from_id_salt("schema_evolution")
                    .selected_text(evolution.map_or("default", SchemaEvolutionMode::as_str))
                    .show_ui(ui, |ui| {
                        ui.selectable_value(&mut evolution, None, "default");
                        for m in SchemaEvolutionMode::ALL {
                            ui.selectable_value(&mut evolution, Some(m), m.as_str());
                        }
                    });
            });
            if evolution != s.schema_evolution_mode {
                s.schema_evolution_mode = evolution;
                changed = true;
            }
            changed |=
                opt_number_ui(ui, "Max files per trigger", &mut s.max_files_per_trigger, 1000);
            changed |=
                ui.checkbox(&mut s.use_notifications, "Notification mode (file events)").changed();
        }
        NodeKind::DeltaSource(s) => {
            changed |= text_ui(ui, "Table", &mut s.table);
            changed |= opt_number_ui(ui, "Version as of", &mut s.version, 0);
            changed |= opt_text_ui(ui, "Timestamp as of", &mut s.timestamp);
            changed |=
                ui.checkbox(&mut s.static_table, "Static table (stream-static join)").changed();
            changed |= ui.checkbox(&mut s.skip_change_commits, "Skip change commits").changed();
        }
        NodeKind::GeneratorSource(g) => {
            ui.horizontal(|ui| {
                ui.label("Rows per second");
                changed |= ui
                    .add(egui::DragValue::new(&mut g.rows_per_second).range(1..=10_000_000))
                    .changed();
            });
            changed |= opt_number_ui(ui, "Max rows", &mut g.max_rows, 10_000);
        }
        NodeKind::KafkaSource(k) => {
            changed |= text_ui(ui, "kafka.bootstrap.servers", &mut k.bootstrap_servers);
            changed |= lines_ui(ui, "subscribe (one topic per line)", &mut k.subscribe, false);
            changed |= opt_text_ui(ui, "subscribePattern", &mut k.subscribe_pattern);
            changed |= opt_text_ui(ui, "startingOffsets", &mut k.starting_offsets);
            changed |=
                opt_number_ui(ui, "maxOffsetsPerTrigger", &mut k.max_offsets_per_trigger, 100_000);
            changed |= ui.checkbox(&mut k.fail_on_data_loss, "failOnDataLoss").changed();
        }
        NodeKind::ParseJson(p) => {
            changed |= text_ui(ui, "Column", &mut p.column);
            changed |= sql_editor_ui(ui, "Schema (DDL)", &mut p.schema, 3);
            changed |=
                combo_ui(ui, "Parse mode", &mut p.parse_mode, &ParseMode::ALL, ParseMode::as_str);
            changed |= lines_ui(ui, "Keep columns (one per line)", &mut p.keep, false);
        }
        NodeKind::Select(s) => {
            changed |= lines_ui(ui, "Columns (one expression per line)", &mut s.columns, true)
        }
        NodeKind::Flatten(f) => {
            changed |= text_ui(ui, "Separator", &mut f.separator);
            changed |= lines_ui(ui, "Only these struct columns", &mut f.columns, false);
            changed |= ui.checkbox(&mut f.recursive, "Recursive").changed();
        }
        NodeKind::WithColumns(w) => {
            let mut remove = None;
            for (i, c) in w.columns.iter_mut().enumerate() {
                ui.horizontal(|ui| {
                    changed |= ui
                        .add(egui::TextEdit::singleline(&mut c.name).desired_width(110.0))
                        .changed();
                    ui.label("=");
                    changed |= ui
                        .add(
                            egui::TextEdit::singleline(&mut c.expr)
                                .code_editor()
                                .desired_width(f32::INFINITY),
                        )
                        .changed();
                    if ui.small_button("✕").clicked() {
                        remove = Some(i);
                    }
                });
            }
            if let Some(i) = remove {
                w.columns.remove(i);
                changed = true;
            }
            if ui.button("Add column").clicked() {
                w.columns.push(ColumnExpr {
                    name: format!("col{}", w.columns.len() + 1),
                    expr: "NULL".into(),
                });
                changed = true;
            }
        }
        NodeKind::Filter(f) => changed |= sql_editor_ui(ui, "Condition", &mut f.condition, 2),
        NodeKind::Sql(s) => {
            changed |=
                lines_ui(ui, "Input views (one per line; each is a port)", &mut s.inputs, false);
            changed |= sql_editor_ui(ui, "Query", &mut s.query, 10);
        }
        NodeKind::Join(j) => {
            changed |= combo_ui(ui, "How", &mut j.how, &JoinHow::ALL, JoinHow::as_str);
            let mut keys: Vec<String> = j.on.iter().map(|[l, r]| format!("{l} = {r}")).collect();
            if lines_ui(ui, "Keys (left = right, one pair per line)", &mut keys, false) {
                j.on = keys
                    .iter()
                    .filter_map(|k| {
                        k.split_once('=').map(|(l, r)| [l.trim().to_owned(), r.trim().to_owned()])
                    })
                    .collect();
                changed = true;
            }
            let mut cond = j.condition.clone().unwrap_or_default();
            if sql_editor_ui(
                ui,
                "Condition (SQL over left./right.; time range for streams)",
                &mut cond,
                2,
            ) {
                j.condition = (!cond.trim().is_empty()).then_some(cond);
                changed = true;
            }
        }
        NodeKind::Distinct(_) => {
            ui.label("Keeps one of each identical row.");
        }
        NodeKind::Deduplicate(d) => {
            changed |= lines_ui(ui, "Key columns (one per line)", &mut d.keys, false);
            changed |= ui
                .checkbox(&mut d.within_watermark, "Within watermark (streams)")
                .on_hover_text("dropDuplicatesWithinWatermark: forget a key once the watermark passes its event time + delay")
                .changed();
        }
        NodeKind::Aggregate(a) => {
            changed |= lines_ui(
                ui,
                "Group by (one per line; window(ts, '1 minute'), session_window(ts, '5 minutes'))",
                &mut a.group_by,
                true,
            );
            changed |= lines_ui(ui, "Aggregates (one per line, with AS)", &mut a.aggregates, true);
        }
        NodeKind::Watermark(w) => {
            changed |= text_ui(ui, "Event-time column", &mut w.column);
            changed |= text_ui(ui, "Delay (e.g. 10 minutes)", &mut w.delay);
            changed |=
                combo_ui(ui, "Late rows", &mut w.late_rows, &LateRows::ALL, LateRows::as_str);
        }
        NodeKind::Expectations(e) => changed |= super::quality::expectations_form_ui(ui, e),
        NodeKind::DeltaSink(s) => {
            changed |= text_ui(ui, "Table", &mut s.table);
            changed |= combo_ui(ui, "Mode", &mut s.mode, &WriteMode::ALL, WriteMode::as_str);
            let mut schema_mode = s.schema_mode;
            ui.horizontal(|ui| {
                ui.label("Schema mode");
                egui::ComboBox::from_id_salt("schema_mode")
                    .selected_text(schema_mode.map_or("enforce", SchemaMode::as_str))
                    .show_ui(ui, |ui| {
                        ui.selectable_value(&mut schema_mode, None, "enforce");
                        for m in [SchemaMode::Merge, SchemaMode::Overwrite] {
                            ui.selectable_value(&mut schema_mode, Some(m), m.as_str());
                        }
                    });
            });
            if schema_mode != s.schema_mode {
                s.schema_mode = schema_mode;
                changed = true;
            }
            if s.mode == WriteMode::Merge {
                changed |= lines_ui(ui, "Merge keys (one per line)", &mut s.merge_keys, false);
            }
            changed |= lines_ui(ui, "Partition by (one per line)", &mut s.partition_by, false);
            changed |= combo_ui(
                ui,
                "Output mode (streams)",
                &mut s.output_mode,
                &OutputMode::ALL,
                OutputMode::as_str,
            );
            let mut compact = s.auto_compact != Some(false);
            if ui
                .checkbox(&mut compact, "Auto-compact small files (streams)")
                .on_hover_text("Databricks' autoCompact: after a commit, once enough small files have gathered, OPTIMIZE runs in the background")
                .changed()
            {
                s.auto_compact = if compact { None } else { Some(false) };
                changed = true;
            }
            if compact {
                changed |= opt_number_ui(
                    ui,
                    "Small files that start a compaction",
                    &mut s.auto_compact_min_files,
                    crate::engine::lakehouse::COMPACT_MIN_FILES,
                );
            }
            changed |= map_ui(
                ui,
                "Table properties when created (delta.logRetentionDuration = interval 30 days)",
                &mut s.properties,
            );
            let mut layer = s.layer();
            let before = layer;
            ui.horizontal(|ui| {
                ui.label("Layer");
                egui::ComboBox::from_id_salt("layer")
                    .selected_text(layer.map_or("none", Layer::as_str))
                    .show_ui(ui, |ui| {
                        ui.selectable_value(&mut layer, None, "none");
                        for l in Layer::ALL {
                            ui.selectable_value(&mut layer, Some(l), l.as_str());
                        }
                    });
            });
            if layer != before {
                s.layer = layer;
                changed = true;
            }
        }
        NodeKind::KafkaSink(k) => {
            changed |= text_ui(ui, "kafka.bootstrap.servers", &mut k.bootstrap_servers);
            changed |= text_ui(ui, "Topic", &mut k.topic);
            changed |=
                opt_text_ui(ui, "Value column (row as JSON when empty)", &mut k.value_column);
            changed |= opt_text_ui(ui, "Key column", &mut k.key_column);
        }
    }
    ui.separator();
    for d in diagnostics {
        let color = if d.severity == Severity::Error { theme::ERROR } else { theme::WARNING };
        ui.label(RichText::new(&d.message).color(color));
    }
    if ui.button("Preview rows").clicked() {
        actions.push(InspectorAction::Preview);
    }
    ui.separator();
    ui.label(RichText::new("Output schema").strong());
    match schema {
        Some(s) => {
            egui::Grid::new("schema").striped(true).show(ui, |ui| {
                for f in s.fields() {
                    ui.monospace(f.name());
                    ui.monospace(type_ddl(f.data_type()));
                    ui.end_row();
                }
            });
        }
        None => {
            ui.label("not planned yet");
        }
    }
    (changed, actions)
}
