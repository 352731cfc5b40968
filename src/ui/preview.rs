//! Sample rows of a node in a virtualized table: only the visible rows are formatted and
//! drawn, so 100,000 rows scroll as smoothly as 100.

use arrow::array::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use eframe::egui::{self, Ui};
use egui_extras::{Column, TableBuilder};

use crate::engine::Preview;
use crate::engine::schema::type_ddl;

/// Row index → (batch, row in batch), without copying data.
fn locate(batches: &[RecordBatch], mut row: usize) -> Option<(&RecordBatch, usize)> {
    for b in batches {
        if row < b.num_rows() {
            return Some((b, row));
        }
        row -= b.num_rows();
    }
    None
}

fn cell(batch: &RecordBatch, col: usize, row: usize) -> String {
    let opts = FormatOptions::default().with_null("null");
    match ArrayFormatter::try_new(batch.column(col).as_ref(), &opts) {
        Ok(f) => f.value(row).to_string(),
        Err(e) => format!("<{e}>"),
    }
}

/// Draws one preview (or its error).
pub fn preview_table_ui(ui: &mut Ui, id: &str, preview: &Result<Preview, String>) {
    let p = match preview {
        Ok(p) => p,
        Err(e) => {
            super::theme::error_label(ui, e.as_str());
            return;
        }
    };
    let rows = p.rows();
    let cols = p.schema.fields().len();
    ui.label(format!("{} × {}", counted(rows, "row", "rows"), counted(cols, "column", "columns")));
    egui::ScrollArea::horizontal().id_salt(("preview_h", id)).show(ui, |ui| {
        TableBuilder::new(ui)
            .id_salt(("preview", id))
            .striped(true)
            .resizable(true)
            .column(Column::auto().at_least(36.0))
            .columns(Column::initial(130.0).at_least(40.0).clip(true), cols)
            .header(36.0, |mut header| {
                header.col(|ui| {
                    ui.strong("#");
                });
                for f in p.schema.fields() {
                    header.col(|ui| {
                        ui.vertical(|ui| {
                            ui.strong(f.name());
                            ui.small(type_ddl(f.data_type()));
                        });
                    });
                }
            })
            .body(|body| {
                body.rows(18.0, rows, |mut row| {
                    let i = row.index();
                    row.col(|ui| {
                        ui.small(i.to_string());
                    });
                    if let Some((batch, r)) = locate(&p.batches, i) {
                        for c in 0..cols {
                            row.col(|ui| {
                                ui.label(cell(batch, c, r));
                            });
                        }
                    }
                });
            });
    });
}

/// `n` with its thousands grouped: 100000 → "100,000".
pub fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `n` grouped and the word that goes with it: "1 row", "0 rows", "1,000 rows".
pub fn counted(n: impl TryInto<usize>, one: &str, many: &str) -> String {
    let n = n.try_into().unwrap_or(usize::MAX);
    format!("{} {}", thousands(n), if n == 1 { one } else { many })
}

#[cfg(test)]
mod tests {
    #[test]
    fn counted_says_one_row_and_many_rows() {
        assert_eq!(super::counted(1u64, "row", "rows"), "1 row");
        assert_eq!(super::counted(0, "row", "rows"), "0 rows");
        assert_eq!(super::counted(12_345, "column", "columns"), "12,345 columns");
    }

    #[test]
    fn thousands_groups_digits() {
        let cases = [(0, "0"), (100, "100"), (1000, "1,000"), (100_000, "100,000")];
        for (n, text) in cases {
            assert_eq!(super::thousands(n), text);
        }
        assert_eq!(super::thousands(1_234_567), "1,234,567");
    }
}
