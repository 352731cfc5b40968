//! Expected rows against actual rows: columns added, dropped or retyped; rows missing, rows
//! extra, and cells that changed (a missing row paired with the extra row that has its key,
//! or, without a key, the most cells in common).
//!
//! Rows compare as multisets unless the node sorts (`ordered`), on every column but the
//! ignored ones, by their displayed values (NULL apart from the text "NULL").

use std::collections::HashMap;
use std::fmt;

use arrow::array::{Array, RecordBatch};
use arrow::datatypes::SchemaRef;
use arrow::util::display::{ArrayFormatter, FormatOptions};

use super::super::schema::type_ddl;
use super::TestError;
use super::fixtures::Rows;

/// One row's cells as text (`None` is NULL), in the diff's column order.
pub type Cells = Vec<Option<String>>;

/// A row whose cells changed.
#[derive(Clone, Debug, PartialEq)]
pub struct ChangedRow {
    /// How the row is named: its key values, or its position.
    pub row: String,
    /// (column, expected, actual) for each changed cell.
    pub cells: Vec<(String, String, String)>,
}

/// What differs between the expected and the actual output of one batch.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Diff {
    /// Columns compared, in order (the ignored ones left out).
    pub columns: Vec<String>,
    /// Column changes: missing, extra, or of another type.
    pub schema: Vec<String>,
    /// Expected rows the node did not output.
    pub missing: Vec<Cells>,
    /// Rows the node output that were not expected.
    pub extra: Vec<Cells>,
    pub changed: Vec<ChangedRow>,
    pub expected_rows: usize,
    pub actual_rows: usize,
}

impl Diff {
    pub fn is_empty(&self) -> bool {
        self.schema.is_empty()
            && self.missing.is_empty()
            && self.extra.is_empty()
            && self.changed.is_empty()
    }
}

/// At most this many rows of each kind are listed in a diff's text.
const SHOWN: usize = 10;

fn cell_text(c: &Option<String>) -> String {
    c.clone().unwrap_or_else(|| "NULL".to_owned())
}

fn row_text(columns: &[String], row: &Cells) -> String {
    columns
        .iter()
        .zip(row)
        .map(|(c, v)| format!("{c}={}", cell_text(v)))
        .collect::<Vec<_>>()
        .join(", ")
}

impl fmt::Display for Diff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for s in &self.schema {
            writeln!(f, "  schema: {s}")?;
        }
        let list = |f: &mut fmt::Formatter<'_>, what: &str, rows: &[Cells]| -> fmt::Result {
            if rows.is_empty() {
                return Ok(());
            }
            writeln!(f, "  {} {what} row(s):", rows.len())?;
            for r in rows.iter().take(SHOWN) {
                writeln!(f, "    {}", row_text(&self.columns, r))?;
            }
            if rows.len() > SHOWN {
                writeln!(f, "    … {} more", rows.len() - SHOWN)?;
            }
            Ok(())
        };
        list(f, "missing (expected, not output)", &self.missing)?;
        list(f, "extra (output, not expected)", &self.extra)?;
        if !self.changed.is_empty() {
            writeln!(f, "  {} changed row(s):", self.changed.len())?;
            for r in self.changed.iter().take(SHOWN) {
                writeln!(f, "    {}:", r.row)?;
                for (col, exp, act) in &r.cells {
                    writeln!(f, "      column `{col}`: expected {exp}, got {act}")?;
                }
            }
            if self.changed.len() > SHOWN {
                writeln!(f, "    … {} more", self.changed.len() - SHOWN)?;
            }
        }
        Ok(())
    }
}

/// The rows of `batch` as text over `columns` (by name).
fn cells_of(batch: &RecordBatch, columns: &[String]) -> Result<Vec<Cells>, TestError> {
    let opts = FormatOptions::default();
    let schema = batch.schema();
    let mut cols = Vec::with_capacity(columns.len());
    for c in columns {
        let idx = schema.index_of(c)?;
        cols.push(batch.column(idx).clone());
    }
    let formatters = cols
        .iter()
        .map(|a| ArrayFormatter::try_new(a.as_ref(), &opts))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((0..batch.num_rows())
        .map(|i| {
            cols.iter()
                .zip(&formatters)
                .map(|(a, f)| (!a.is_null(i)).then(|| f.value(i).to_string()))
                .collect()
        })
        .collect())
}

fn schema_changes(expected: &SchemaRef, actual: &SchemaRef) -> Vec<String> {
    let mut out = Vec::new();
    for f in expected.fields() {
        match actual.field_with_name(f.name()) {
            Err(_) => out.push(format!("column `{}` is missing", f.name())),
            Ok(a) if a.data_type() != f.data_type() => {
                let (mut got, mut want) = (type_ddl(a.data_type()), type_ddl(f.data_type()));
                if got == want {
                    (got, want) = (format!("{:?}", a.data_type()), format!("{:?}", f.data_type()));
                }
                out.push(format!("column `{}` is {got} but {want} was expected", f.name()))
            }
            Ok(_) => {}
        }
    }
    for f in actual.fields() {
        if expected.field_with_name(f.name()).is_err() {
            out.push(format!("column `{}` is new (not in the expected output)", f.name()));
        }
    }
    out
}

/// Compares one batch's output; `key` names rows, `ignore` columns are left out.
pub fn compare(
    expected: &Rows,
    actual: &Rows,
    ignore: &[String],
    key: &[String],
    ordered: bool,
) -> Result<Diff, TestError> {
    let schema = schema_changes(&expected.schema, &actual.schema);
    let columns: Vec<String> = expected
        .schema
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .filter(|n| !ignore.contains(n) && actual.schema.field_with_name(n).is_ok())
        .collect();
    let exp = cells_of(&expected.concat()?, &columns)?;
    let act = cells_of(&actual.concat()?, &columns)?;
    let key_idx: Vec<usize> =
        key.iter().filter_map(|k| columns.iter().position(|c| c == k)).collect();
    let key_idx = if key_idx.len() == key.len() { key_idx } else { Vec::new() };
    let mut diff = Diff {
        columns: columns.clone(),
        schema,
        expected_rows: exp.len(),
        actual_rows: act.len(),
        ..Diff::default()
    };
    if ordered {
        for (i, (e, a)) in exp.iter().zip(&act).enumerate() {
            if e != a {
                diff.changed.push(changed(&columns, &key_idx, e, a, Some(i)));
            }
        }
        diff.missing.extend(exp.iter().skip(act.len()).cloned());
        diff.extra.extend(act.iter().skip(exp.len()).cloned());
        return Ok(diff);
    }
    // multisets: each actual row cancels one equal expected row
    let mut counts: HashMap<&Cells, usize> = HashMap::new();
    for a in &act {
        *counts.entry(a).or_default() += 1;
    }
    let mut missing: Vec<&Cells> = Vec::new();
    for e in &exp {
        match counts.get_mut(e) {
            Some(n) if *n > 0 => *n -= 1,
            _ => missing.push(e),
        }
    }
    let mut extra: Vec<&Cells> = Vec::new();
    for a in &act {
        if let Some(n) = counts.get_mut(a)
            && *n > 0
        {
            *n -= 1;
            extra.push(a);
        }
    }
    // a missing row and an extra row that are the same row changed
    let mut extra_used = vec![false; extra.len()];
    for m in missing {
        let pick = if key_idx.is_empty() {
            let half = columns.len().div_ceil(2).max(1);
            extra
                .iter()
                .enumerate()
                .filter(|(i, _)| !extra_used[*i])
                .map(|(i, x)| {
                    let flags: Vec<bool> = m.iter().zip(x.iter()).map(|(a, b)| a == b).collect();
                    (i, flags.iter().filter(|f| **f).count(), flags)
                })
                .filter(|(_, same, _)| *same >= half && *same < columns.len())
                // most cells in common; on a tie, the earlier columns (group keys come first)
                .max_by(|a, b| (a.1, &a.2).cmp(&(b.1, &b.2)).then(b.0.cmp(&a.0)))
                .map(|(i, _, _)| i)
        } else {
            extra
                .iter()
                .enumerate()
                .position(|(i, x)| !extra_used[i] && key_idx.iter().all(|&k| x[k] == m[k]))
        };
        match pick {
            Some(i) => {
                extra_used[i] = true;
                diff.changed.push(changed(&columns, &key_idx, m, extra[i], None));
            }
            None => diff.missing.push(m.clone()),
        }
    }
    diff.extra = extra
        .into_iter()
        .zip(extra_used)
        .filter(|(_, used)| !used)
        .map(|(x, _)| x.clone())
        .collect();
    Ok(diff)
}

/// A changed row, named by its key (or, without one, its position and unchanged first cells).
fn changed(
    columns: &[String],
    key_idx: &[usize],
    e: &Cells,
    a: &Cells,
    position: Option<usize>,
) -> ChangedRow {
    let cells: Vec<(String, String, String)> = columns
        .iter()
        .zip(e.iter().zip(a))
        .filter(|(_, (x, y))| x != y)
        .map(|(c, (x, y))| (c.clone(), cell_text(x), cell_text(y)))
        .collect();
    let named: Vec<String> = if key_idx.is_empty() {
        columns
            .iter()
            .zip(e)
            .zip(a)
            .filter(|((_, x), y)| x == y)
            .take(2)
            .map(|((c, x), _)| format!("{c}={}", cell_text(x)))
            .collect()
    } else {
        key_idx.iter().map(|&k| format!("{}={}", columns[k], cell_text(&e[k]))).collect()
    };
    let row = match position {
        Some(i) => format!("row {} ({})", i + 1, named.join(", ")),
        None => format!("row {}", named.join(", ")),
    };
    ChangedRow { row, cells }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    fn rows(ids: &[i64], names: &[Option<&str>]) -> Rows {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
        ]));
        let cols: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(ids.to_vec())),
            Arc::new(StringArray::from(names.to_vec())),
        ];
        Rows { schema: schema.clone(), batches: vec![RecordBatch::try_new(schema, cols).unwrap()] }
    }

    #[test]
    fn same_rows_in_another_order_are_equal_unless_ordered() {
        let e = rows(&[1, 2], &[Some("a"), Some("b")]);
        let a = rows(&[2, 1], &[Some("b"), Some("a")]);
        assert!(compare(&e, &a, &[], &[], false).unwrap().is_empty());
        let d = compare(&e, &a, &[], &["id".into()], true).unwrap();
        assert_eq!(d.changed.len(), 2);
        assert_eq!(d.changed[0].row, "row 1 (id=1)");
    }

    #[test]
    fn duplicates_count_as_a_multiset() {
        let e = rows(&[1, 1], &[Some("a"), Some("a")]);
        let a = rows(&[1], &[Some("a")]);
        let d = compare(&e, &a, &[], &[], false).unwrap();
        assert_eq!((d.missing.len(), d.extra.len(), d.changed.len()), (1, 0, 0));
    }

    #[test]
    fn a_changed_cell_names_its_column_and_row_by_key() {
        let e = rows(&[1, 2, 3], &[Some("a"), Some("b"), Some("c")]);
        let a = rows(&[1, 2, 4], &[Some("a"), Some("B"), Some("d")]);
        let d = compare(&e, &a, &[], &["id".into()], false).unwrap();
        assert_eq!(
            d.changed,
            vec![ChangedRow {
                row: "row id=2".into(),
                cells: vec![("name".into(), "b".into(), "B".into())]
            }]
        );
        assert_eq!(d.missing, vec![vec![Some("3".to_owned()), Some("c".to_owned())]]);
        assert_eq!(d.extra, vec![vec![Some("4".to_owned()), Some("d".to_owned())]]);
        let text = d.to_string();
        assert!(text.contains("column `name`: expected b, got B"), "{text}");
        assert!(text.contains("1 missing"), "{text}");
    }

    #[test]
    fn without_a_key_a_changed_row_pairs_by_its_leading_columns() {
        // (1, a) → (1, b) and (2, b) → (2, c): (1, a) shares `name` with (2, b)'s old value too
        let e = rows(&[1, 2], &[Some("a"), Some("b")]);
        let a = rows(&[2, 1], &[Some("c"), Some("b")]);
        let d = compare(&e, &a, &[], &[], false).unwrap();
        let rows: Vec<&str> = d.changed.iter().map(|c| c.row.as_str()).collect();
        assert_eq!(rows, ["row id=1", "row id=2"], "{d}");
        assert!(d.missing.is_empty() && d.extra.is_empty(), "{d}");
    }

    #[test]
    fn null_differs_from_the_text_null_and_pairs_without_a_key() {
        let e = rows(&[1], &[None]);
        let a = rows(&[1], &[Some("NULL")]);
        let d = compare(&e, &a, &[], &[], false).unwrap();
        assert_eq!(d.changed.len(), 1, "{d}");
        assert_eq!(d.changed[0].row, "row id=1");
    }

    #[test]
    fn ignored_columns_and_schema_changes() {
        let e = rows(&[1], &[Some("a")]);
        let a = rows(&[1], &[Some("zzz")]);
        assert!(compare(&e, &a, &["name".into()], &[], false).unwrap().is_empty());
        let only_id = Rows {
            schema: Arc::new(Schema::new(vec![Field::new("id", DataType::Utf8, false)])),
            batches: vec![
                RecordBatch::try_new(
                    Arc::new(Schema::new(vec![Field::new("id", DataType::Utf8, false)])),
                    vec![Arc::new(StringArray::from(vec!["1"]))],
                )
                .unwrap(),
            ],
        };
        let d = compare(&e, &only_id, &[], &[], false).unwrap();
        assert!(d.schema.iter().any(|s| s.contains("`name` is missing")), "{d}");
        assert!(d.schema.iter().any(|s| s.contains("`id` is STRING but BIGINT")), "{d}");
        assert!(d.missing.is_empty() && d.extra.is_empty(), "the ids display the same: {d}");
    }
}
