//! The inspector's form widgets: text, lists, maps, choices and numbers, each bound to the
//! project-file key it edits. Every editor registers its key, so a test can check that every
//! option of every node kind has one (see `inspector::coverage_tests`).

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

use eframe::egui::{self, Ui};

thread_local! {
    static KEYS: RefCell<Option<BTreeSet<&'static str>>> = const { RefCell::new(None) };
}

/// Marks the project-file key `key` as having an editor on screen.
pub fn edits(key: &'static str) {
    KEYS.with(|k| {
        if let Some(keys) = k.borrow_mut().as_mut() {
            keys.insert(key);
        }
    });
}

/// Runs `f` and returns the keys whose editors it drew.
pub fn keys_drawn(f: impl FnOnce()) -> BTreeSet<&'static str> {
    KEYS.with(|k| *k.borrow_mut() = Some(BTreeSet::new()));
    f();
    KEYS.with(|k| k.borrow_mut().take()).unwrap_or_default()
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
    sql_editor_response(ui, label, text, rows).changed()
}

fn sql_editor_response(ui: &mut Ui, label: &str, text: &mut String, rows: usize) -> egui::Response {
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
}

pub fn text_ui(ui: &mut Ui, label: &str, key: &'static str, text: &mut String) -> bool {
    edits(key);
    ui.horizontal(|ui| {
        let l = ui.label(label);
        ui.add(egui::TextEdit::singleline(text).desired_width(f32::INFINITY))
            .labelled_by(l.id)
            .changed()
    })
    .inner
}

pub fn opt_text_ui(
    ui: &mut Ui,
    label: &str,
    key: &'static str,
    value: &mut Option<String>,
) -> bool {
    let mut text = value.clone().unwrap_or_default();
    let changed = text_ui(ui, label, key, &mut text);
    if changed {
        *value = (!text.trim().is_empty()).then_some(text);
    }
    changed
}

/// A list edited as one entry per line. While the field has focus the text as typed stays in
/// egui's memory, so Enter starts a new line (an empty line is not an entry yet).
pub fn lines_ui(
    ui: &mut Ui,
    label: &str,
    key: &'static str,
    items: &mut Vec<String>,
    sql: bool,
) -> bool {
    edits(key);
    let id = ui.make_persistent_id(("lines_ui", label));
    let mut text: String = ui.data_mut(|d| d.get_temp(id)).unwrap_or_else(|| items.join("\n"));
    let r = if sql {
        sql_editor_response(ui, label, &mut text, items.len().clamp(2, 10))
    } else {
        let l = ui.label(label);
        ui.add(
            egui::TextEdit::multiline(&mut text)
                .code_editor()
                .desired_rows(2)
                .desired_width(f32::INFINITY),
        )
        .labelled_by(l.id)
    };
    keep_typed(ui, id, &r, text, items, |text| {
        text.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_owned).collect()
    })
}

/// After a multi-line field: on a change, `parse` the text into `value` (true if it differs);
/// while the field has focus its text stays in egui's memory under `id` (a half-typed line is
/// not lost between frames), and is dropped when focus leaves.
fn keep_typed<T: PartialEq>(
    ui: &Ui,
    id: egui::Id,
    r: &egui::Response,
    text: String,
    value: &mut T,
    parse: impl Fn(&str) -> T,
) -> bool {
    let mut changed = false;
    if r.changed() {
        let parsed = parse(&text);
        if parsed != *value {
            *value = parsed;
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

/// A `key = value` per line editor for a map (table properties, Kafka options). The text
/// being typed lives in egui's memory while the field has focus, so a line without its `=`
/// yet is not lost between frames; complete lines land in the map as they are typed.
pub fn map_ui(
    ui: &mut Ui,
    label: &str,
    key: &'static str,
    map: &mut BTreeMap<String, String>,
) -> bool {
    edits(key);
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
    keep_typed(ui, id, &r, text, map, |text| {
        text.lines()
            .filter_map(|line| {
                let (k, v) = line.split_once('=')?;
                let k = k.trim();
                (!k.is_empty()).then(|| (k.to_owned(), v.trim().to_owned()))
            })
            .collect()
    })
}

pub fn combo_ui<T: PartialEq + Copy>(
    ui: &mut Ui,
    label: &str,
    key: &'static str,
    value: &mut T,
    all: &[T],
    name: impl Fn(T) -> &'static str,
) -> bool {
    edits(key);
    let before = *value;
    ui.horizontal(|ui| {
        let l = ui.label(label);
        egui::ComboBox::from_id_salt(label)
            .selected_text(name(*value))
            .show_ui(ui, |ui| {
                for v in all {
                    ui.selectable_value(value, *v, name(*v));
                }
            })
            .response
            .labelled_by(l.id);
    });
    before != *value
}

pub fn opt_number_ui<T: egui::emath::Numeric>(
    ui: &mut Ui,
    label: &str,
    key: &'static str,
    value: &mut Option<T>,
    default: T,
    min: T,
) -> bool {
    edits(key);
    ui.horizontal(|ui| {
        let mut on = value.is_some();
        let check = ui.checkbox(&mut on, label);
        let mut changed = check.changed();
        if on {
            let v = value.get_or_insert(default);
            changed |=
                ui.add(egui::DragValue::new(v).range(min..=T::MAX)).labelled_by(check.id).changed();
        } else {
            *value = None;
        }
        changed
    })
    .inner
}

/// A checkbox for a boolean option.
pub fn check_ui(ui: &mut Ui, label: &str, key: &'static str, value: &mut bool) -> egui::Response {
    edits(key);
    ui.checkbox(value, label)
}

/// A choice among `None` (shown as `none_label`) and every value of `all`.
pub fn opt_combo_ui<T: PartialEq + Copy>(
    ui: &mut Ui,
    label: &str,
    key: &'static str,
    value: &mut Option<T>,
    none_label: &'static str,
    all: &[T],
    name: impl Fn(T) -> &'static str,
) -> bool {
    edits(key);
    let before = *value;
    ui.horizontal(|ui| {
        let l = ui.label(label);
        egui::ComboBox::from_id_salt(key)
            .selected_text(value.map_or(none_label, &name))
            .show_ui(ui, |ui| {
                ui.selectable_value(value, None, none_label);
                for v in all {
                    ui.selectable_value(value, Some(*v), name(*v));
                }
            })
            .response
            .labelled_by(l.id);
    });
    before != *value
}

/// [`sql_editor_ui`] for the option `key`.
pub fn sql_ui(ui: &mut Ui, label: &str, key: &'static str, text: &mut String, rows: usize) -> bool {
    edits(key);
    sql_editor_ui(ui, label, text, rows)
}

/// An optional DDL or SQL text: empty means absent.
pub fn opt_sql_ui(
    ui: &mut Ui,
    label: &str,
    key: &'static str,
    value: &mut Option<String>,
    rows: usize,
) -> bool {
    let mut text = value.clone().unwrap_or_default();
    let changed = sql_ui(ui, label, key, &mut text, rows);
    if changed {
        *value = (!text.trim().is_empty()).then_some(text);
    }
    changed
}
