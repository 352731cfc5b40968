//! JSON lines → Arrow with Spark's parse modes, at full speed on clean data.
//!
//! A chunk of lines is decoded with arrow-json in one go; only when that fails (a syntax error
//! poisons the decoder, a type error fails the chunk) are its lines decoded one by one to find
//! the bad ones. Bad records are never dropped silently: they are returned with file, line and
//! reason, for `_rescued_data`, the quarantine table, or a fail-fast error.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringArray, new_null_array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::json::ReaderBuilder;

use crate::model::node::{ParseMode, RESCUED_DATA_COLUMN};

use super::super::{EngineError, Result};

/// Lines decoded together before falling back to one by one.
const CHUNK_LINES: usize = 4096;
const BATCH_ROWS: usize = 8192;

/// A record that did not parse or did not fit the schema.
#[derive(Clone, Debug, PartialEq)]
pub struct BadRecord {
    pub file: String,
    /// 1-based line number in the file.
    pub line: u64,
    pub raw: String,
    pub reason: String,
}

/// What decoding produced.
#[derive(Debug, Default)]
pub struct Decoded {
    pub batches: Vec<RecordBatch>,
    pub bad: Vec<BadRecord>,
}

/// The output schema: the declared one, plus `_rescued_data` in permissive mode.
pub fn output_schema(schema: &Schema, mode: ParseMode) -> SchemaRef {
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    if mode == ParseMode::Permissive && schema.field_with_name(RESCUED_DATA_COLUMN).is_err() {
        fields.push(Field::new(RESCUED_DATA_COLUMN, DataType::Utf8, true));
    }
    Arc::new(Schema::new(fields))
}

fn decode_all(schema: &SchemaRef, bytes: &[u8]) -> std::result::Result<Vec<RecordBatch>, String> {
    let mut decoder = ReaderBuilder::new(schema.clone())
        .with_batch_size(BATCH_ROWS)
        .build_decoder()
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let n = decoder.decode(rest).map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        rest = &rest[n..];
        if let Some(b) = decoder.flush().map_err(|e| e.to_string())? {
            out.push(b);
        }
    }
    if decoder.has_partial_record() {
        return Err("the record is incomplete (truncated JSON)".into());
    }
    if let Some(b) = decoder.flush().map_err(|e| e.to_string())? {
        out.push(b);
    }
    Ok(out)
}

/// Decodes one file's bytes. `fail_fast` stops at the first bad record.
pub fn decode(file: &str, bytes: &[u8], schema: &Schema, mode: ParseMode) -> Result<Decoded> {
    let schema = Arc::new(schema.clone());
    let mut good: Vec<RecordBatch> = Vec::new();
    let mut bad = Vec::new();
    let mut line_no = 0u64;
    let mut rest = bytes;
    while !rest.is_empty() {
        // the next chunk: up to CHUNK_LINES lines
        let mut end = 0;
        let mut lines = 0;
        while end < rest.len() && lines < CHUNK_LINES {
            end = rest[end..].iter().position(|&b| b == b'\n').map_or(rest.len(), |p| end + p + 1);
            lines += 1;
        }
        let chunk = &rest[..end];
        rest = &rest[end..];
        match decode_all(&schema, chunk) {
            Ok(batches) => good.extend(batches),
            Err(_) => {
                // find the bad records: decode line by line, keep the good ones
                let mut ok_lines: Vec<u8> = Vec::with_capacity(chunk.len());
                for (i, line) in chunk.split(|&b| b == b'\n').enumerate() {
                    if line.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    match decode_all(&schema, line) {
                        Ok(_) => {
                            ok_lines.extend_from_slice(line);
                            ok_lines.push(b'\n');
                        }
                        Err(reason) => {
                            let record = BadRecord {
                                file: file.to_owned(),
                                line: line_no + i as u64 + 1,
                                raw: String::from_utf8_lossy(line).into_owned(),
                                reason,
                            };
                            if mode == ParseMode::FailFast {
                                return Err(EngineError::Config(format!(
                                    "malformed record in {} line {}: {} (parse_mode = \"fail_fast\"; use \"permissive\" or \"drop_malformed\" to keep going)",
                                    record.file, record.line, record.reason
                                )));
                            }
                            bad.push(record);
                        }
                    }
                }
                good.extend(decode_all(&schema, &ok_lines).map_err(|e| {
                    EngineError::Config(format!(
                        "{file}: lines that decode alone fail together: {e}"
                    ))
                })?);
            }
        }
        line_no += lines as u64;
    }
    let out_schema = output_schema(&schema, mode);
    if mode != ParseMode::Permissive {
        return Ok(Decoded { batches: good, bad });
    }
    // permissive: every row gets `_rescued_data`; bad rows keep only that
    let mut batches = Vec::with_capacity(good.len() + 1);
    for b in good {
        let mut cols: Vec<ArrayRef> = b.columns().to_vec();
        cols.push(new_null_array(&DataType::Utf8, b.num_rows()));
        batches.push(RecordBatch::try_new(out_schema.clone(), cols)?);
    }
    if !bad.is_empty() {
        let rescued: Vec<String> = bad
            .iter()
            .map(|r| {
                serde_json::json!({
                    "_raw": r.raw, "_reason": r.reason, "_file_path": r.file, "_line": r.line
                })
                .to_string()
            })
            .collect();
        let mut cols: Vec<ArrayRef> =
            schema.fields().iter().map(|f| new_null_array(f.data_type(), bad.len())).collect();
        cols.push(Arc::new(StringArray::from(rescued)));
        batches.push(RecordBatch::try_new(out_schema, cols)?);
    }
    Ok(Decoded { batches, bad })
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::Field;

    fn schema() -> Schema {
        Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
        ])
    }

    const INPUT: &[u8] = b"{\"id\": 1, \"name\": \"a\"}\n{\"id\": \"x\"}\n{oops\n\n{\"id\": 4}\n";

    #[test]
    fn permissive_keeps_bad_rows_in_rescued_data() {
        let d = decode("f.json", INPUT, &schema(), ParseMode::Permissive).unwrap();
        let rows: usize = d.batches.iter().map(RecordBatch::num_rows).sum();
        assert_eq!(rows, 4);
        assert_eq!(d.bad.iter().map(|b| b.line).collect::<Vec<_>>(), [2, 3]);
        let last = d.batches.last().unwrap();
        assert_eq!(last.schema().field(2).name(), RESCUED_DATA_COLUMN);
        let rescued = last.column(2).as_any().downcast_ref::<StringArray>().unwrap();
        assert!(rescued.value(0).contains("\"_line\":2"), "{}", rescued.value(0));
    }

    #[test]
    fn drop_malformed_returns_bad_records_and_fail_fast_stops() {
        let d = decode("f.json", INPUT, &schema(), ParseMode::DropMalformed).unwrap();
        let rows: usize = d.batches.iter().map(RecordBatch::num_rows).sum();
        assert_eq!(rows, 2);
        assert_eq!(d.bad.len(), 2);
        assert_eq!(d.bad[1].raw, "{oops");
        let err = decode("f.json", INPUT, &schema(), ParseMode::FailFast).unwrap_err().to_string();
        assert!(err.contains("f.json line 2"), "{err}");
    }

    #[test]
    fn clean_input_takes_the_fast_path() {
        let text: String = (0..10_000).map(|i| format!("{{\"id\": {i}}}\n")).collect();
        let d = decode("f.json", text.as_bytes(), &schema(), ParseMode::DropMalformed).unwrap();
        assert_eq!(d.batches.iter().map(RecordBatch::num_rows).sum::<usize>(), 10_000);
        assert!(d.bad.is_empty());
    }
}
