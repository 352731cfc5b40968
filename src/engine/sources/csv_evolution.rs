//! Auto Loader schema tracking for CSV file streams: columns are matched by the file's
//! header names (not by position), a header column the tracked schema lacks is a new field
//! (STRING, as Auto Loader infers CSV without `inferColumnTypes`; `schema_hints` may pin it),
//! a tracked column missing from a file reads NULL, and under `rescue` the values of unknown
//! columns go into `_rescued_data` as one JSON object with `_file_path`. Whole columns are
//! handled with Arrow kernels; only a file that has unknown columns under `rescue` is
//! written row by row (by Arrow's JSON writer).

use std::io::Cursor;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BooleanArray, RecordBatch, StringArray, new_null_array};
use arrow::compute::kernels::zip::zip;
use arrow::compute::{is_not_null, not, nullif, or};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use crate::model::node::{ParseMode, RESCUED_DATA_COLUMN};

use super::super::{EngineError, Result};
use super::json_lines::Decoded;
use super::schema_tracking::apply_hints;

/// The column names of a CSV file's header line (quoting honoured, byte-order mark skipped).
pub fn header(file: &str, bytes: &[u8]) -> Result<Vec<String>> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let (schema, _) = arrow::csv::reader::Format::default()
        .with_header(true)
        .infer_schema(Cursor::new(bytes), Some(1))
        .map_err(|e| EngineError::Config(format!("{file}: cannot read the CSV header: {e}")))?;
    Ok(schema.fields().iter().map(|f| f.name().clone()).collect())
}

/// Header columns that `schema` does not have, typed as Auto Loader adds them (STRING,
/// `hints` applied), in header order.
pub fn new_fields(header: &[String], schema: &Schema, hints: Option<&str>) -> Result<Vec<Field>> {
    let new: Vec<Field> = header
        .iter()
        .filter(|n| n.as_str() != RESCUED_DATA_COLUMN && schema.field_with_name(n).is_err())
        .map(|n| Field::new(n, DataType::Utf8, true))
        .collect();
    if new.is_empty() {
        return Ok(new);
    }
    let hinted = apply_hints(&Schema::new(new.clone()), hints)?;
    Ok(hinted
        .fields()
        .iter()
        .filter(|f| new.iter().any(|n| n.name() == f.name()))
        .map(|f| f.as_ref().clone())
        .collect())
}

/// Decodes one CSV file by its header names into `out_schema` (the tracked schema, plus
/// `_rescued_data` when permissive or rescuing). `schema` is the tracked schema without
/// `_rescued_data`; with `rescue`, unknown columns' values go into `_rescued_data`.
pub fn decode(
    file: &str,
    bytes: &[u8],
    header: &[String],
    schema: &Schema,
    mode: ParseMode,
    rescue: bool,
    out_schema: &SchemaRef,
) -> Result<Decoded> {
    // the file's own layout: known columns with their tracked type, unknown ones as text
    let file_schema = Schema::new(
        header
            .iter()
            .map(|n| match schema.field_with_name(n) {
                Ok(f) => f.clone(),
                Err(_) => Field::new(n, DataType::Utf8, true),
            })
            .collect::<Vec<_>>(),
    );
    let extras: Vec<String> = header
        .iter()
        .filter(|n| n.as_str() != RESCUED_DATA_COLUMN && schema.field_with_name(n).is_err())
        .cloned()
        .collect();
    let d = super::csv_lines::decode(file, bytes, &file_schema, true, mode)?;
    let mut batches = Vec::with_capacity(d.batches.len());
    for b in d.batches {
        let n = b.num_rows();
        let mut cols: Vec<ArrayRef> = Vec::with_capacity(out_schema.fields().len());
        for f in out_schema.fields() {
            let own = b.column_by_name(f.name()).cloned();
            if f.name() == RESCUED_DATA_COLUMN {
                let own = own.unwrap_or_else(|| new_null_array(&DataType::Utf8, n));
                if rescue && !extras.is_empty() {
                    let rescued = rescued_json(&b, &extras, file)?;
                    // a malformed record's own rescue wins
                    cols.push(zip(&is_not_null(&own)?, &own, &rescued)?);
                } else {
                    cols.push(own);
                }
            } else {
                cols.push(own.unwrap_or_else(|| new_null_array(f.data_type(), n)));
            }
        }
        batches.push(RecordBatch::try_new(out_schema.clone(), cols)?);
    }
    Ok(Decoded { batches, bad: d.bad })
}

/// Per row, the unknown columns' values as a JSON object with `_file_path` (NULL where the
/// row has none of them).
fn rescued_json(batch: &RecordBatch, extras: &[String], file: &str) -> Result<ArrayRef> {
    let n = batch.num_rows();
    let mut fields = vec![Field::new("_file_path", DataType::Utf8, false)];
    let mut cols: Vec<ArrayRef> = vec![Arc::new(StringArray::from(vec![file; n]))];
    let mut present: Option<BooleanArray> = None;
    for name in extras {
        let Some(col) = batch.column_by_name(name) else { continue };
        let here = is_not_null(col)?;
        present = Some(match present {
            Some(p) => or(&p, &here)?,
            None => here,
        });
        fields.push(Field::new(name, col.data_type().clone(), true));
        cols.push(col.clone());
    }
    let Some(present) = present else { return Ok(new_null_array(&DataType::Utf8, n)) };
    let extra = RecordBatch::try_new(Arc::new(Schema::new(fields)), cols)?;
    let mut buf = Vec::new();
    {
        let mut w = arrow::json::LineDelimitedWriter::new(&mut buf);
        w.write(&extra)?;
        w.finish()?;
    }
    let text = String::from_utf8(buf)
        .map_err(|e| EngineError::Config(format!("rescued data is not UTF-8: {e}")))?;
    let objects: StringArray = text.lines().map(Some).collect();
    if objects.len() != n {
        return Err(EngineError::Config(format!(
            "{file}: {} rescued objects for {n} rows",
            objects.len()
        )));
    }
    Ok(nullif(&objects, &not(&present)?)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_by_header_name_new_fields_and_rescue() {
        let schema = crate::engine::schema::ddl_to_schema("id BIGINT, kind STRING").unwrap();
        let bytes = b"\xEF\xBB\xBFgenre,id\n5,2\n,3\n";
        let h = header("f.csv", bytes).unwrap();
        assert_eq!(h, ["genre", "id"]);
        assert_eq!(
            new_fields(&h, &schema, Some("genre INT")).unwrap(),
            [Field::new("genre", DataType::Int32, true)]
        );
        let out = super::super::json_lines::output_schema(&schema, ParseMode::Permissive);
        let d = decode("f.csv", bytes, &h, &schema, ParseMode::Permissive, true, &out).unwrap();
        assert_eq!(
            arrow::util::pretty::pretty_format_batches(&d.batches).unwrap().to_string(),
            "+----+------+------------------------------------+\n| id | kind | _rescued_data                      |\n+----+------+------------------------------------+\n| 2  |      | {\"_file_path\":\"f.csv\",\"genre\":\"5\"} |\n| 3  |      |                                    |\n+----+------+------------------------------------+"
        );
    }
}
