//! The inspector: a form per node kind. Edits change the model directly; the app records
//! them for undo and re-plans the pipeline off the UI thread.

use arrow::datatypes::SchemaRef;

use eframe::egui::{self, RichText, Ui};

use crate::engine::schema::type_ddl;
use crate::model::node::{
    ColumnExpr, FileFormat, JoinHow, LateRows, Layer, NodeKind, OutputMode, ParseMode,
    SchemaEvolutionMode, SchemaMode, WriteMode,
};
use crate::model::{Diagnostic, Node, Severity};

pub use super::form::sql_editor_ui;
pub(crate) use super::form::sql_job;
use super::form::{
    check_ui, combo_ui, edits, lines_ui, map_ui, opt_combo_ui, opt_number_ui, opt_sql_ui,
    opt_text_ui, sql_ui, text_ui,
};
use super::theme;

/// Requests the inspector makes of the app.
#[derive(Debug, Clone, PartialEq)]
pub enum InspectorAction {
    InferSchema,
    Preview,
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
    changed |= text_ui(ui, "Name", "name", &mut node.name);
    ui.separator();
    match &mut node.kind {
        NodeKind::FileSource(s) => {
            changed |= text_ui(ui, "Path", "path", &mut s.path);
            changed |= combo_ui(
                ui,
                "Format",
                "format",
                &mut s.format,
                &FileFormat::ALL,
                FileFormat::as_str,
            );
            changed |= opt_text_ui(ui, "Glob", "glob", &mut s.glob);
            if s.format == FileFormat::Csv {
                changed |= check_ui(ui, "Header line", "header", &mut s.header).changed();
            }
            changed |=
                opt_sql_ui(ui, "Schema (DDL; inferred when empty)", "schema", &mut s.schema, 3);
            if ui.button("Infer from sample").clicked() {
                actions.push(InspectorAction::InferSchema);
            }
            changed |= combo_ui(
                ui,
                "Parse mode",
                "parse_mode",
                &mut s.parse_mode,
                &ParseMode::ALL,
                ParseMode::as_str,
            );
            if s.schema.as_deref().is_none_or(|d| d.trim().is_empty()) {
                changed |=
                    opt_text_ui(ui, "Schema hints (DDL)", "schema_hints", &mut s.schema_hints);
                changed |=
                    opt_text_ui(ui, "Schema location", "schema_location", &mut s.schema_location);
            }
            changed |= opt_combo_ui(
                ui,
                "Schema evolution",
                "schema_evolution_mode",
                &mut s.schema_evolution_mode,
                "default",
                &SchemaEvolutionMode::ALL,
                SchemaEvolutionMode::as_str,
            );
            changed |= opt_number_ui(
                ui,
                "Max files per trigger",
                "max_files_per_trigger",
                &mut s.max_files_per_trigger,
                1000,
                1,
            );
            changed |= opt_number_ui(
                ui,
                "Max bytes per trigger",
                "max_bytes_per_trigger",
                &mut s.max_bytes_per_trigger,
                10 << 20,
                1,
            );
            changed |= check_ui(
                ui,
                "Notification mode (file events)",
                "use_notifications",
                &mut s.use_notifications,
            )
            .changed();
        }
        NodeKind::DeltaSource(s) => {
            changed |= text_ui(ui, "Table", "table", &mut s.table);
            changed |= opt_number_ui(ui, "Version as of", "version", &mut s.version, 0, 0);
            changed |= opt_text_ui(ui, "Timestamp as of", "timestamp", &mut s.timestamp);
            changed |= check_ui(
                ui,
                "Static table (stream-static join)",
                "static_table",
                &mut s.static_table,
            )
            .changed();
            changed |= check_ui(
                ui,
                "Skip change commits",
                "skip_change_commits",
                &mut s.skip_change_commits,
            )
            .changed();
            changed |= opt_number_ui(
                ui,
                "Starting version (streams)",
                "starting_version",
                &mut s.starting_version,
                0,
                0,
            );
            changed |= opt_number_ui(
                ui,
                "Max files per trigger (streams)",
                "max_files_per_trigger",
                &mut s.max_files_per_trigger,
                1000,
                1,
            );
        }
        NodeKind::GeneratorSource(g) => {
            edits("rows_per_second");
            ui.horizontal(|ui| {
                let l = ui.label("Rows per second");
                changed |= ui
                    .add(egui::DragValue::new(&mut g.rows_per_second).range(1..=10_000_000))
                    .labelled_by(l.id)
                    .changed();
            });
            changed |= opt_number_ui(ui, "Max rows", "max_rows", &mut g.max_rows, 10_000, 0);
            edits("seed");
            ui.horizontal(|ui| {
                let l = ui.label("Seed");
                changed |= ui.add(egui::DragValue::new(&mut g.seed)).labelled_by(l.id).changed();
            });
        }
        NodeKind::KafkaSource(k) => {
            changed |= text_ui(
                ui,
                "kafka.bootstrap.servers",
                "kafka.bootstrap.servers",
                &mut k.bootstrap_servers,
            );
            changed |= lines_ui(
                ui,
                "subscribe (one topic per line)",
                "subscribe",
                &mut k.subscribe,
                false,
            );
            changed |=
                opt_text_ui(ui, "subscribePattern", "subscribePattern", &mut k.subscribe_pattern);
            changed |=
                opt_text_ui(ui, "startingOffsets", "startingOffsets", &mut k.starting_offsets);
            changed |= opt_number_ui(
                ui,
                "maxOffsetsPerTrigger",
                "maxOffsetsPerTrigger",
                &mut k.max_offsets_per_trigger,
                100_000,
                1,
            );
            changed |= check_ui(ui, "failOnDataLoss", "failOnDataLoss", &mut k.fail_on_data_loss)
                .changed();
            changed |= check_ui(
                ui,
                "includeHeaders (a headers column)",
                "includeHeaders",
                &mut k.include_headers,
            )
            .changed();
            changed |= map_ui(
                ui,
                "Other kafka.* options (kafka.security.protocol = SASL_SSL)",
                "options",
                &mut k.options,
            );
        }
        NodeKind::ParseJson(p) => {
            changed |= text_ui(ui, "Column", "column", &mut p.column);
            changed |= sql_ui(ui, "Schema (DDL)", "schema", &mut p.schema, 3);
            changed |= combo_ui(
                ui,
                "Parse mode",
                "parse_mode",
                &mut p.parse_mode,
                &ParseMode::ALL,
                ParseMode::as_str,
            );
            changed |= lines_ui(ui, "Keep columns (one per line)", "keep", &mut p.keep, false);
        }
        NodeKind::Select(s) => {
            changed |=
                lines_ui(ui, "Columns (one expression per line)", "columns", &mut s.columns, true)
        }
        NodeKind::Flatten(f) => {
            changed |= text_ui(ui, "Separator", "separator", &mut f.separator);
            changed |= lines_ui(ui, "Only these struct columns", "columns", &mut f.columns, false);
            changed |= check_ui(ui, "Recursive", "recursive", &mut f.recursive).changed();
        }
        NodeKind::WithColumns(w) => {
            edits("columns");
            let mut remove = None;
            for (i, c) in w.columns.iter_mut().enumerate() {
                ui.horizontal(|ui| {
                    changed |= ui
                        .add(egui::TextEdit::singleline(&mut c.name).desired_width(110.0))
                        .on_hover_text("column name")
                        .labelled_by(ui.label(format!("Column {}", i + 1)).id)
                        .changed();
                    let l = ui.label("=");
                    // room for the ✕ after it: an infinite width would widen the panel
                    let width = (ui.available_width() - 28.0).max(60.0);
                    changed |= ui
                        .add(
                            egui::TextEdit::singleline(&mut c.expr)
                                .code_editor()
                                .desired_width(width),
                        )
                        .labelled_by(l.id)
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
        NodeKind::Filter(f) => {
            changed |= sql_ui(ui, "Condition", "condition", &mut f.condition, 2);
        }
        NodeKind::Sql(s) => {
            changed |= lines_ui(
                ui,
                "Input views (one per line; each is a port)",
                "inputs",
                &mut s.inputs,
                false,
            );
            changed |= sql_ui(ui, "Query", "query", &mut s.query, 10);
        }
        NodeKind::Join(j) => {
            changed |= combo_ui(ui, "How", "how", &mut j.how, &JoinHow::ALL, JoinHow::as_str);
            let mut keys: Vec<String> = j.on.iter().map(|[l, r]| format!("{l} = {r}")).collect();
            if lines_ui(ui, "Keys (left = right, one pair per line)", "on", &mut keys, false) {
                j.on = keys
                    .iter()
                    .filter_map(|k| {
                        k.split_once('=').map(|(l, r)| [l.trim().to_owned(), r.trim().to_owned()])
                    })
                    .collect();
                changed = true;
            }
            changed |= opt_sql_ui(
                ui,
                "Condition (SQL over left./right.; time range for streams)",
                "condition",
                &mut j.condition,
                2,
            );
        }
        NodeKind::Distinct(_) => {
            ui.label("Keeps one of each identical row.");
        }
        NodeKind::Deduplicate(d) => {
            changed |= lines_ui(ui, "Key columns (one per line)", "keys", &mut d.keys, false);
            changed |= check_ui(
                ui,
                "Within watermark (streams)",
                "within_watermark",
                &mut d.within_watermark,
            )
            .on_hover_text("dropDuplicatesWithinWatermark: forget a key once the watermark passes its event time + delay")
            .changed();
        }
        NodeKind::Aggregate(a) => {
            changed |= lines_ui(
                ui,
                "Group by (one per line; window(ts, '1 minute'), session_window(ts, '5 minutes'))",
                "group_by",
                &mut a.group_by,
                true,
            );
            changed |= lines_ui(
                ui,
                "Aggregates (one per line, with AS)",
                "aggregates",
                &mut a.aggregates,
                true,
            );
        }
        NodeKind::Watermark(w) => {
            changed |= text_ui(ui, "Event-time column", "column", &mut w.column);
            changed |= text_ui(ui, "Delay (e.g. 10 minutes)", "delay", &mut w.delay);
            changed |= combo_ui(
                ui,
                "Late rows",
                "late_rows",
                &mut w.late_rows,
                &LateRows::ALL,
                LateRows::as_str,
            );
        }
        NodeKind::Expectations(e) => {
            edits("rules");
            changed |= super::quality::expectations_form_ui(ui, e);
        }
        NodeKind::DeltaSink(s) => {
            changed |= text_ui(ui, "Table", "table", &mut s.table);
            changed |=
                combo_ui(ui, "Mode", "mode", &mut s.mode, &WriteMode::ALL, WriteMode::as_str);
            changed |= opt_combo_ui(
                ui,
                "Schema mode",
                "schema_mode",
                &mut s.schema_mode,
                "enforce",
                &[SchemaMode::Merge, SchemaMode::Overwrite],
                SchemaMode::as_str,
            );
            if s.mode == WriteMode::Merge {
                changed |= lines_ui(
                    ui,
                    "Merge keys (one per line)",
                    "merge_keys",
                    &mut s.merge_keys,
                    false,
                );
            }
            changed |= lines_ui(
                ui,
                "Partition by (one per line)",
                "partition_by",
                &mut s.partition_by,
                false,
            );
            changed |= combo_ui(
                ui,
                "Output mode (streams)",
                "output_mode",
                &mut s.output_mode,
                &OutputMode::ALL,
                OutputMode::as_str,
            );
            let mut compact = s.auto_compact != Some(false);
            if check_ui(ui, "Auto-compact small files (streams)", "auto_compact", &mut compact)
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
                    "auto_compact_min_files",
                    &mut s.auto_compact_min_files,
                    crate::engine::lakehouse::COMPACT_MIN_FILES,
                    1,
                );
            }
            changed |= map_ui(
                ui,
                "Table properties when created (delta.logRetentionDuration = interval 30 days)",
                "properties",
                &mut s.properties,
            );
            let mut layer = s.layer();
            let before = layer;
            opt_combo_ui(ui, "Layer", "layer", &mut layer, "none", &Layer::ALL, Layer::as_str);
            if layer != before {
                s.layer = layer;
                changed = true;
            }
        }
        NodeKind::KafkaSink(k) => {
            changed |= text_ui(
                ui,
                "kafka.bootstrap.servers",
                "kafka.bootstrap.servers",
                &mut k.bootstrap_servers,
            );
            changed |= text_ui(ui, "Topic", "topic", &mut k.topic);
            changed |= opt_text_ui(
                ui,
                "Value column (row as JSON when empty)",
                "value_column",
                &mut k.value_column,
            );
            changed |= opt_text_ui(ui, "Key column", "key_column", &mut k.key_column);
            changed |=
                map_ui(ui, "Other kafka.* options for the producer", "options", &mut k.options);
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
            // rows, not a grid: a nested type (a struct, Kafka's headers) wraps in the width
            // left, where a grid's column widened the whole panel and squeezed the graph
            let name_width = (ui.available_width() * 0.4).min(160.0);
            for f in s.fields() {
                ui.horizontal(|ui| {
                    let size = egui::vec2(name_width, ui.spacing().interact_size.y);
                    let left = egui::Layout::left_to_right(egui::Align::Center);
                    ui.allocate_ui_with_layout(size, left, |ui| {
                        ui.set_min_width(name_width);
                        let name = egui::Label::new(RichText::new(f.name()).monospace());
                        ui.add(name.truncate()).on_hover_text(f.name());
                    });
                    let ddl = RichText::new(type_ddl(f.data_type())).monospace();
                    ui.add(egui::Label::new(ddl).wrap());
                });
            }
        }
        None => {
            ui.label("not planned yet");
        }
    }
    (changed, actions)
}

#[cfg(test)]
#[path = "inspector_coverage.rs"]
mod coverage_tests;
