//! CSV → Arrow with Spark's parse modes. Every field is read as text, then each column is
//! cast to its declared type in one kernel call; a row where a non-empty field did not
//! convert is a bad record (Spark's malformed row), as is a line with more fields than the
//! schema. Fewer fields read NULL, as in Spark. Bad records are returned with file, record
//! number and reason, like `json_lines`.

use std::io::Cursor;
use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, RecordBatch};
use arrow::compute::kernels::cast::{CastOptions, cast_with_options};
use arrow::compute::{and, filter_record_batch, is_not_null, is_null, not, or};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use crate::model::node::{ParseMode, RESCUED_DATA_COLUMN};

use super::super::{EngineError, Result};
use super::json_lines::{BadRecord, Decoded, output_schema, rescued_rows};

const BATCH_ROWS: usize = 8192;

fn text_schema(schema: &Schema) -> SchemaRef {
    Arc::new(Schema::new(
        schema
            .fields()
            .iter()
            .filter(|f| f.name() != RESCUED_DATA_COLUMN)
            .map(|f| Field::new(f.name(), DataType::Utf8, true))
            .collect::<Vec<_>>(),
    ))
}

fn read_text(
    text: &SchemaRef,
    bytes: &[u8],
    header: bool,
) -> std::result::Result<Vec<RecordBatch>, String> {
    let reader = arrow::csv::ReaderBuilder::new(text.clone())
        .with_header(header)
        .with_truncated_rows(true)
        .with_batch_size(BATCH_ROWS)
        .build(Cursor::new(bytes))
        .map_err(|e| e.to_string())?;
    reader.collect::<std::result::Result<Vec<_>, _>>().map_err(|e| e.to_string())
}

/// Decodes one CSV file. `fail_fast` stops at the first bad record.
pub fn decode(
    file: &str,
    bytes: &[u8],
    schema: &Schema,
    header: bool,
    mode: ParseMode,
) -> Result<Decoded> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let schema = Schema::new(
        schema
            .fields()
            .iter()
            .filter(|f| f.name() != RESCUED_DATA_COLUMN)
            .cloned()
            .collect::<Vec<_>>(),
    );
    let target = Arc::new(schema.clone());
    let text = text_schema(&schema);
    let mut good = Vec::new();
    let mut bad = Vec::new();
    let first_record_line = if header { 2 } else { 1 };
    match read_text(&text, bytes, header) {
        Ok(batches) => {
            let mut row0 = 0u64;
            for b in batches {
                let n = b.num_rows() as u64;
                convert(&b, &target, file, first_record_line + row0, &mut good, &mut bad)?;
                row0 += n;
            }
        }
        Err(_) => {
            // a structural error (a line with too many fields): record by record
            let mut lines = bytes.split(|&b| b == b'\n').enumerate();
            if header {
                lines.next();
            }
            for (i, line) in lines {
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                match read_text(&text, line, false) {
                    Ok(batches) => {
                        for b in batches {
                            convert(&b, &target, file, i as u64 + 1, &mut good, &mut bad)?;
                        }
                    }
                    Err(reason) => bad.push(BadRecord {
                        file: file.to_owned(),
                        line: i as u64 + 1,
                        raw: String::from_utf8_lossy(line).trim_end_matches('\r').to_owned(),
                        reason,
                    }),
                }
            }
        }
    }
    bad.sort_by_key(|b| b.line);
    if mode == ParseMode::FailFast
        && let Some(record) = bad.first()
    {
        return Err(EngineError::Config(format!(
            "malformed record in {} line {}: {} (parse_mode = \"fail_fast\"; use \"permissive\" or \"drop_malformed\" to keep going)",
            record.file, record.line, record.reason
        )));
    }
    if mode != ParseMode::Permissive {
        return Ok(Decoded { batches: good, bad });
    }
    let out_schema = output_schema(&schema, mode);
    let mut batches = Vec::with_capacity(good.len() + 1);
    for b in good {
        let mut cols: Vec<ArrayRef> = b.columns().to_vec();
        cols.push(arrow::array::new_null_array(&DataType::Utf8, b.num_rows()));
        batches.push(RecordBatch::try_new(out_schema.clone(), cols)?);
    }
    if !bad.is_empty() {
        batches.push(rescued_rows(&schema, &out_schema, &bad)?);
    }
    Ok(Decoded { batches, bad })
}

/// Casts a text batch to the target types; rows whose text did not convert become bad
/// records (their first record is line `first_line`).
fn convert(
    text: &RecordBatch,
    target: &SchemaRef,
    file: &str,
    first_line: u64,
    good: &mut Vec<RecordBatch>,
    bad: &mut Vec<BadRecord>,
) -> Result<()> {
    let safe = CastOptions { safe: true, ..CastOptions::default() };
    let mut cols = Vec::with_capacity(text.num_columns());
    let mut failed: Option<BooleanArray> = None;
    let mut failed_cols: Vec<(usize, BooleanArray)> = Vec::new();
    for (i, f) in target.fields().iter().enumerate() {
        let col = text.column(i);
        if f.data_type() == &DataType::Utf8 {
            cols.push(col.clone());
            continue;
        }
        let cast = cast_with_options(col, f.data_type(), &safe)?;
        let lost = and(&is_not_null(col)?, &is_null(&cast)?)?;
        if lost.true_count() > 0 {
            failed = Some(match failed {
                Some(f) => or(&f, &lost)?,
                None => lost.clone(),
            });
            failed_cols.push((i, lost));
        }
        cols.push(cast);
    }
    let batch = RecordBatch::try_new(target.clone(), cols)?;
    let Some(failed) = failed else {
        good.push(batch);
        return Ok(());
    };
    for row in (0..failed.len()).filter(|&r| failed.value(r)) {
        let (col, _) = failed_cols
            .iter()
            .find(|(_, lost)| lost.value(row))
            .ok_or_else(|| EngineError::Config("a failed row without a failed column".into()))?;
        let field = target.field(*col);
        let value = arrow::util::display::array_value_to_string(text.column(*col), row)?;
        let raw: Vec<String> = (0..text.num_columns())
            .map(|c| arrow::util::display::array_value_to_string(text.column(c), row))
            .collect::<std::result::Result<_, _>>()?;
        bad.push(BadRecord {
            file: file.to_owned(),
            line: first_line + row as u64,
            raw: raw.join(","),
            reason: format!(
                "field `{}`: cannot read \"{value}\" as {}",
                field.name(),
                super::super::schema::type_ddl(field.data_type())
            ),
        });
    }
    good.push(filter_record_batch(&batch, &not(&failed)?)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const INPUT: &[u8] = b"\xEF\xBB\xBFid,amount,day\n1,2.5,2026-01-01\nx,3.0,2026-01-02\n3,4,2026-01-03,extra\n4,,2026-01-04\n";

    fn schema() -> Schema {
        crate::engine::schema::ddl_to_schema("id BIGINT, amount DOUBLE, day DATE").unwrap()
    }

    #[test]
    fn each_mode_handles_bad_rows() {
        let d = decode("a.csv", INPUT, &schema(), true, ParseMode::DropMalformed).unwrap();
        assert_eq!(
            arrow::util::pretty::pretty_format_batches(&d.batches).unwrap().to_string(),
            "+----+--------+------------+\n| id | amount | day        |\n+----+--------+------------+\n| 1  | 2.5    | 2026-01-01 |\n| 4  |        | 2026-01-04 |\n+----+--------+------------+"
        );
        assert_eq!(d.bad.iter().map(|b| b.line).collect::<Vec<_>>(), [3, 4]);
        assert_eq!(d.bad[0].reason, "field `id`: cannot read \"x\" as BIGINT");
        assert_eq!(d.bad[0].raw, "x,3.0,2026-01-02");
        let p = decode("a.csv", INPUT, &schema(), true, ParseMode::Permissive).unwrap();
        assert_eq!(p.batches.iter().map(RecordBatch::num_rows).sum::<usize>(), 4);
        let err = decode("a.csv", INPUT, &schema(), true, ParseMode::FailFast).unwrap_err();
        assert!(err.to_string().contains("a.csv line 3: field `id`"), "{err}");
    }
}
