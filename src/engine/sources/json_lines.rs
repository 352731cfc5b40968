//! JSON lines → Arrow with Spark's parse modes, at full speed on clean data.
//!
//! A chunk of lines is decoded with arrow-json in one go (numbers and booleans into STRING
//! fields coerced to text; top-level TIMESTAMP columns read as text and converted by
//! `timestamps` with Arrow kernels). Only when that fails (a syntax error poisons the decoder,
//! a type error fails the chunk) are its records rewritten with Spark's remaining rules
//! (`json_spark`: objects and arrays into STRING fields) and decoded together again, and only
//! if that fails, one by one to find the bad ones. Bad records are never dropped silently:
//! they are returned with file, line and reason, for `_rescued_data`, the quarantine table, or
//! a fail-fast error.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch, StringArray, new_null_array};
use arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef};
use arrow::json::ReaderBuilder;

use crate::model::node::{ParseMode, RESCUED_DATA_COLUMN};

use super::super::{EngineError, Result};
use super::json_plain::PlainDecoder;
use super::{json_partial, json_spark, timestamps};

/// Bytes (whole lines) decoded together before falling back to record by record.
const CHUNK_BYTES: usize = 1 << 20;
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
        // Spark: a number or boolean read into a STRING field is its text
        .with_coerce_primitive(true)
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

/// Rows of one chunk in the target schema (none when it had no records), and the rows whose
/// TIMESTAMP text did not parse, with the reasons.
pub(super) type ChunkRows = (Option<RecordBatch>, Vec<(usize, String)>);

/// Decodes `bytes` (one record per line, `lines` of them) into exactly one row per line in
/// the target schema, or fails. Rows whose TIMESTAMP text does not parse come back with
/// their reasons.
/// `lines` is `None` on the fast path: the count is only checked (by the caller) when a row
/// has to be traced back to its line. `raw`: the records have not been through Spark's rules
/// (`json_spark`); then a schema with number or DATE fields is read by the one-pass decoder or
/// not at all, as arrow-json reads `1.5` into an integer field as 1, `"5"` into a number field
/// as 5 and a number into a DATE as days, where Spark calls the record bad.
pub(super) fn decode_rows(
    rules: &SparkRules,
    bytes: &[u8],
    lines: Option<usize>,
    raw: bool,
) -> std::result::Result<ChunkRows, String> {
    // the one-pass decoder reads plain records straight into the target columns
    let plain = rules.plain.as_ref().and_then(|f| f.decode(bytes));
    let batches = match &plain {
        Some(batch) => vec![batch.clone()],
        None if raw && rules.spark_checked => return Err("these fields need Spark's rules".into()),
        None => decode_all(&rules.read, bytes)?,
    };
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    if let Some(lines) = lines
        && rows != lines
    {
        return Err(format!("{lines} lines gave {rows} records; write one JSON record per line"));
    }
    if rows == 0 {
        return Ok((None, Vec::new()));
    }
    if plain.is_some() {
        return Ok((plain, Vec::new()));
    }
    let batch = arrow::compute::concat_batches(&rules.read, &batches).map_err(|e| e.to_string())?;
    rules.to_target(batch).map(|(b, bad)| (Some(b), bad))
}

/// The rows arrow-json and Spark's rules make of `bytes` without the one-pass decoder (`None`
/// when a record is bad): what `json_plain`'s tests compare it with.
#[cfg(test)]
pub(super) fn rows_without_plain(
    schema: &Schema,
    bytes: &[u8],
) -> std::result::Result<Option<RecordBatch>, String> {
    let rules = SparkRules { plain: None, ..SparkRules::new(schema) };
    match decode_rows(&rules, bytes, None, false)? {
        (batch, bad) if bad.is_empty() => Ok(batch),
        (_, bad) => Err(format!("{bad:?}")),
    }
}

/// The schema arrow-json reads with, and how its columns become the declared ones.
pub(super) struct SparkRules {
    target: SchemaRef,
    /// Top-level TIMESTAMP and DATE columns read as text, converted by `timestamps`.
    read: SchemaRef,
    /// What Spark's rules (`json_spark`) check raw records against: the target (a JSON
    /// integer into a TIMESTAMP becomes its ISO text, a JSON number into a DATE is bad).
    pub(super) check: SchemaRef,
    /// Nested TIMESTAMP fields: every record takes the slow path (JSON integers are
    /// seconds there, which arrow-json would read as microseconds).
    always_normalize: bool,
    /// Plain records in one pass, straight into the target columns (`json_plain`).
    plain: Option<PlainDecoder>,
    /// A number or DATE field anywhere: raw records go through Spark's rules unless the
    /// one-pass decoder reads them (see [`decode_rows`]).
    spark_checked: bool,
}

impl SparkRules {
    pub(super) fn new(schema: &Schema) -> Self {
        let as_text = |f: &FieldRef| match f.data_type() {
            DataType::Timestamp(_, _) | DataType::Date32 => {
                Field::new(f.name(), DataType::Utf8, true)
            }
            _ => f.as_ref().clone(),
        };
        let read: Vec<Field> = schema.fields().iter().map(as_text).collect();
        let always_normalize = schema.fields().iter().any(|f| {
            !matches!(f.data_type(), DataType::Timestamp(_, _)) && has_timestamp(f.data_type())
        });
        let target = Arc::new(schema.clone());
        let spark_checked = schema.fields().iter().any(|f| spark_checks(f.data_type()));
        Self {
            spark_checked,
            plain: PlainDecoder::new(&target),
            check: target.clone(),
            target,
            read: Arc::new(Schema::new(read)),
            always_normalize,
        }
    }

    fn to_target(
        &self,
        batch: RecordBatch,
    ) -> std::result::Result<(RecordBatch, Vec<(usize, String)>), String> {
        if self.read == self.target {
            return Ok((batch, Vec::new()));
        }
        let mut cols = Vec::with_capacity(batch.num_columns());
        let mut bad = Vec::new();
        for (i, f) in self.target.fields().iter().enumerate() {
            let col = batch.column(i);
            if col.data_type() == f.data_type() {
                cols.push(col.clone());
                continue;
            }
            let (converted, failed) = match f.data_type() {
                DataType::Date32 => dates(col)?,
                t => timestamps::from_text(col, t)?,
            };
            let what = if f.data_type() == &DataType::Date32 { "DATE" } else { "TIMESTAMP" };
            for row in failed {
                let text =
                    arrow::util::display::array_value_to_string(col, row).unwrap_or_default();
                bad.push((
                    row,
                    format!("field `{}`: cannot read \"{text}\" as a {what}", f.name()),
                ));
            }
            cols.push(converted);
        }
        let out = RecordBatch::try_new(self.target.clone(), cols).map_err(|e| e.to_string())?;
        Ok((out, bad))
    }
}

/// A DATE column from its text, as Spark's JSON reader has it, and the rows that did not read.
fn dates(text: &ArrayRef) -> std::result::Result<(ArrayRef, Vec<usize>), String> {
    let strings = text
        .as_any()
        .downcast_ref::<StringArray>()
        .ok_or_else(|| format!("expected text, got {}", text.data_type()))?;
    let dates = timestamps::dates_from_text(strings, true);
    let failed = (0..dates.len()).filter(|&i| strings.is_valid(i) && dates.is_null(i)).collect();
    Ok((Arc::new(dates), failed))
}

fn has_timestamp(t: &DataType) -> bool {
    match t {
        DataType::Timestamp(_, _) => true,
        DataType::Struct(fields) => fields.iter().any(|f| has_timestamp(f.data_type())),
        DataType::List(f) | DataType::LargeList(f) => has_timestamp(f.data_type()),
        DataType::Map(f, _) => has_timestamp(f.data_type()),
        _ => false,
    }
}

/// Whether `t` has a field whose values `json_spark` checks (see [`decode_rows`]).
fn spark_checks(t: &DataType) -> bool {
    match t {
        t if t.is_integer() || t.is_floating() => true,
        DataType::Date32 | DataType::Timestamp(_, _) => true,
        DataType::Struct(fields) => fields.iter().any(|f| spark_checks(f.data_type())),
        DataType::List(f) | DataType::LargeList(f) => spark_checks(f.data_type()),
        DataType::Map(f, _) => spark_checks(f.data_type()),
        _ => false,
    }
}

/// The non-blank lines of a chunk: (start, end) byte spans, newline excluded.
fn line_spans(chunk: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = 0;
    for end in memchr_newlines(chunk).chain(std::iter::once(chunk.len())) {
        if start < end && !chunk[start..end].iter().all(u8::is_ascii_whitespace) {
            out.push((start, end));
        }
        start = end + 1;
        if start > chunk.len() {
            break;
        }
    }
    out
}

fn memchr_newlines(chunk: &[u8]) -> impl Iterator<Item = usize> + '_ {
    memchr::memchr_iter(b'\n', chunk)
}

/// One row per document in `schema`, when every document is a plain record that the
/// one-pass decoder reads (`json_plain`); `None` sends them to [`decode`] as lines.
pub fn decode_documents(docs: &arrow::array::BinaryArray, schema: &Schema) -> Option<RecordBatch> {
    PlainDecoder::new(&Arc::new(schema.clone()))?.decode_documents(docs)
}

/// Decodes one file's bytes. `fail_fast` stops at the first bad record.
///
/// Spark's rules (see the README's "JSON the way Spark reads it"): a number or boolean into a
/// STRING field is its text, an object or array its compact JSON text; TIMESTAMP reads
/// Spark's default formats (`yyyy-MM-dd'T'HH:mm:ss[.SSS][XXX]`, a space for the `T`, a date
/// alone) and a JSON integer as seconds since the epoch; a UTF-8 byte-order mark at the start
/// of the file is skipped.
pub fn decode(file: &str, bytes: &[u8], schema: &Schema, mode: ParseMode) -> Result<Decoded> {
    decode_at(file, bytes, schema, mode, &mut 0)
}

/// Decodes a segment of a file that starts after its line `*lines_before` (whole lines: the
/// segment starts at a line's start), numbering bad records by their line in the file, and
/// moves `*lines_before` past the segment (a caller counting them again read them twice).
pub fn decode_at(
    file: &str,
    bytes: &[u8],
    schema: &Schema,
    mode: ParseMode,
    lines_before: &mut u64,
) -> Result<Decoded> {
    let bytes = match *lines_before {
        0 => bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes),
        _ => bytes,
    };
    let rules = SparkRules::new(schema);
    let mut good: Vec<RecordBatch> = Vec::new();
    let mut bad = Vec::new();
    let mut line_no = *lines_before;
    let mut rest = bytes;
    while !rest.is_empty() {
        // the next chunk: about CHUNK_BYTES, up to the end of a line (memchr: our own crate
        // is built without optimisation in dev, so no byte loops here)
        let end = if rest.len() <= CHUNK_BYTES {
            rest.len()
        } else {
            memchr::memchr(b'\n', &rest[CHUNK_BYTES..]).map_or(rest.len(), |p| CHUNK_BYTES + p + 1)
        };
        let chunk = &rest[..end];
        rest = &rest[end..];
        let lines = memchr::memchr_iter(b'\n', chunk).count();
        let line_of = |span: (usize, usize)| -> u64 {
            line_no + memchr::memchr_iter(b'\n', &chunk[..span.0]).count() as u64 + 1
        };
        let mut chunk_bad: Vec<((usize, usize), String)> = Vec::new();
        let fast = if rules.always_normalize {
            Err(String::new())
        } else {
            decode_rows(&rules, chunk, None, true).and_then(|(batch, rows_bad)| {
                if rows_bad.is_empty() {
                    return Ok((batch, rows_bad, Vec::new()));
                }
                // trace the bad rows back to their lines
                let spans = line_spans(chunk);
                let rows = batch.as_ref().map_or(0, RecordBatch::num_rows);
                if rows != spans.len() {
                    return Err(format!("{} lines gave {rows} records", spans.len()));
                }
                Ok((batch, rows_bad, spans))
            })
        };
        match fast {
            Ok((batch, rows_bad, spans)) => {
                if let Some(batch) = batch {
                    good.push(drop_rows(batch, &rows_bad)?);
                }
                chunk_bad.extend(rows_bad.into_iter().map(|(r, why)| (spans[r], why)));
            }
            Err(_) => {
                let spans = line_spans(chunk);
                // slow path: Spark's rules record by record, then decode the rewritten
                // records together; only if that fails, one by one
                let mut kept: Vec<(usize, usize)> = Vec::with_capacity(spans.len());
                let mut normalized: Vec<Vec<u8>> = Vec::with_capacity(spans.len());
                for &span in &spans {
                    match json_spark::normalize_record(&chunk[span.0..span.1], &rules.check) {
                        Ok(n) => {
                            kept.push(span);
                            normalized.push(n);
                        }
                        Err(why) => chunk_bad.push((span, why)),
                    }
                }
                let joined: Vec<u8> = normalized.join(&b'\n');
                match decode_rows(&rules, &joined, Some(kept.len()), false) {
                    Ok((batch, rows_bad)) => {
                        if let Some(batch) = batch {
                            good.push(drop_rows(batch, &rows_bad)?);
                        }
                        chunk_bad.extend(rows_bad.into_iter().map(|(r, why)| (kept[r], why)));
                    }
                    Err(_) => {
                        for (span, record) in kept.iter().zip(&normalized) {
                            match decode_rows(&rules, record, Some(1), false) {
                                Ok((batch, rows_bad)) if rows_bad.is_empty() => {
                                    good.extend(batch);
                                }
                                Ok((_, mut rows_bad)) => {
                                    chunk_bad.push((*span, rows_bad.remove(0).1))
                                }
                                Err(why) => chunk_bad.push((*span, why)),
                            }
                        }
                    }
                }
            }
        }
        chunk_bad.sort_by_key(|(span, _)| span.0);
        for (span, reason) in chunk_bad {
            let record = BadRecord {
                file: file.to_owned(),
                line: line_of(span),
                raw: String::from_utf8_lossy(&chunk[span.0..span.1]).into_owned(),
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
        line_no += lines as u64;
    }
    *lines_before = line_no;
    let out_schema = output_schema(&rules.target, mode);
    if mode != ParseMode::Permissive {
        return Ok(Decoded { batches: good, bad });
    }
    // permissive: every row gets `_rescued_data`; bad rows keep the fields that read
    let mut batches = Vec::with_capacity(good.len() + 1);
    for b in good {
        let mut cols: Vec<ArrayRef> = b.columns().to_vec();
        cols.push(new_null_array(&DataType::Utf8, b.num_rows()));
        batches.push(RecordBatch::try_new(out_schema.clone(), cols)?);
    }
    if !bad.is_empty() {
        let records: Vec<&[u8]> = bad.iter().map(|r| r.raw.as_bytes()).collect();
        let partial = json_partial::partial_rows(&rules.target, &records)?;
        batches.push(rescued_rows(&out_schema, partial, &bad)?);
    }
    Ok(Decoded { batches, bad })
}

/// Bad records as rows: `partial` (one row per record: the fields that read, Spark's
/// PERMISSIVE partial result), then `_rescued_data` holding the raw record, the reason and
/// where it came from.
pub fn rescued_rows(
    out_schema: &SchemaRef,
    partial: RecordBatch,
    bad: &[BadRecord],
) -> Result<RecordBatch> {
    let rescued: Vec<String> = bad
        .iter()
        .map(|r| {
            serde_json::json!({
                "_raw": r.raw, "_reason": r.reason, "_file_path": r.file, "_line": r.line
            })
            .to_string()
        })
        .collect();
    let mut cols: Vec<ArrayRef> = partial.columns().to_vec();
    cols.push(Arc::new(StringArray::from(rescued)));
    Ok(RecordBatch::try_new(out_schema.clone(), cols)?)
}

/// The batch without the rows listed in `bad` (a filter kernel; no copy when none).
fn drop_rows(batch: RecordBatch, bad: &[(usize, String)]) -> Result<RecordBatch> {
    if bad.is_empty() {
        return Ok(batch);
    }
    let mut keep = vec![true; batch.num_rows()];
    for (r, _) in bad {
        keep[*r] = false;
    }
    Ok(arrow::compute::filter_record_batch(&batch, &arrow::array::BooleanArray::from(keep))?)
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

    /// Spark reads only a JSON integer into a BIGINT: `1.5` makes the record bad (arrow-json
    /// alone read it as 1); in permissive the record keeps its name (Spark's partial result).
    #[test]
    fn a_fraction_into_an_integer_field_is_a_bad_record() {
        let input =
            "{\"id\": 1, \"name\": \"a\"}\n{\"id\": 1.5, \"name\": \"Zoë\"}\n{\"id\": 2e0}\n";
        let d = decode("f.json", input.as_bytes(), &schema(), ParseMode::DropMalformed).unwrap();
        assert_eq!(d.batches.iter().map(RecordBatch::num_rows).sum::<usize>(), 1);
        let reasons: Vec<&str> = d.bad.iter().map(|b| b.reason.as_str()).collect();
        assert_eq!(reasons, ["cannot read 1.5 as BIGINT", "cannot read 2e0 as BIGINT"]);
        let d = decode("f.json", input.as_bytes(), &schema(), ParseMode::Permissive).unwrap();
        let got = arrow::util::pretty::pretty_format_batches(&d.batches).unwrap().to_string();
        assert!(got.contains("|    | Zoë  | {"), "{got}");
        assert!(!got.contains("| 1  | Zoë"), "{got}");
    }

    /// What PySpark 4.3 reads of these records as `k INT, i INT, d DOUBLE, dt DATE` (checked
    /// by hand): text is no number (but `"NaN"`, `"Infinity"` into a DOUBLE), a number no DATE.
    #[test]
    fn text_into_numbers_and_numbers_into_dates_are_bad_as_in_spark() {
        let schema =
            crate::engine::schema::ddl_to_schema("k INT, i INT, d DOUBLE, dt DATE").unwrap();
        let input = concat!(
            "{\"k\":1,\"i\":\"5\",\"d\":\"1.5\",\"dt\":\"2026-01-02\"}\n",
            "{\"k\":2,\"i\":5,\"d\":\"-Infinity\",\"dt\":\"2026-1-2\"}\n",
            "{\"k\":3,\"i\":-0,\"d\":\"NaN\",\"dt\":20260102}\n",
        );
        let d = decode("f.json", input.as_bytes(), &schema, ParseMode::Permissive).unwrap();
        let got = arrow::util::pretty::pretty_format_batches(&d.batches).unwrap().to_string();
        let rows: Vec<String> = got
            .lines()
            .filter(|l| l.starts_with("| ") && !l.starts_with("| k "))
            .map(|l| l.split('|').take(5).collect::<Vec<_>>().join("|"))
            .collect();
        // Spark: 1 NULL NULL 2026-01-02 (bad) / 2 5 -Infinity 2026-01-02 / 3 0 NaN NULL (bad)
        assert_eq!(
            rows,
            [
                "| 2 | 5 | -inf | 2026-01-02 ",
                "| 1 |   |      | 2026-01-02 ",
                "| 3 | 0 | NaN  |            "
            ],
            "{got}"
        );
        let reasons: Vec<&str> = d.bad.iter().map(|b| b.reason.as_str()).collect();
        assert_eq!(reasons, ["cannot read \"5\" as INT", "cannot read 20260102 as DATE"]);
    }

    /// PySpark 4.3 (`scripts/spark_read_rules.py`): a JSON integer into a TIMESTAMP is
    /// seconds, a string of digits is read as Spark's text (`"2026"` is 2026-01-01, ten digits
    /// are no timestamp).
    #[test]
    fn integer_seconds_and_digit_strings_read_as_in_spark() {
        let schema = crate::engine::schema::ddl_to_schema("k INT, t TIMESTAMP").unwrap();
        let input = "{\"k\":1,\"t\":1767323045}\n{\"k\":2,\"t\":\"2026\"}\n{\"k\":3,\"t\":\"1767323045\"}\n";
        let d = decode("f.json", input.as_bytes(), &schema, ParseMode::DropMalformed).unwrap();
        let got = arrow::util::pretty::pretty_format_batches(&d.batches).unwrap().to_string();
        assert!(got.contains("| 1 | 2026-01-02T03:04:05Z |"), "{got}");
        assert!(got.contains("| 2 | 2026-01-01T00:00:00Z |"), "{got}");
        assert_eq!(d.bad.iter().map(|b| b.line).collect::<Vec<_>>(), [3]);
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
        // the demo's users and music events are plain records: read in one pass
        for ddl in [crate::engine::demo_data::USERS_DDL, crate::engine::demo_data::MUSIC_DDL] {
            let rules = SparkRules::new(&crate::engine::schema::ddl_to_schema(ddl).unwrap());
            assert!(rules.plain.is_some() && !rules.always_normalize, "{ddl}");
        }
    }

    fn rows_of(d: &Decoded) -> String {
        arrow::util::pretty::pretty_format_batches(&d.batches).unwrap().to_string()
    }

    #[test]
    fn spark_rules_for_string_fields_and_the_byte_order_mark() {
        // PySpark 4.3 (scripts/spark_read_rules.py): `{"track_id": 0, "ok": true, "o": {"a": 1}}`
        // as `track_id STRING, ok STRING, o STRING` gives '0', 'true', '{"a": 1}' (raw text)
        let s =
            crate::engine::schema::ddl_to_schema("track_id STRING, ok STRING, o STRING").unwrap();
        let input = "\u{feff}{\"track_id\": 0, \"ok\": true, \"o\": {\"a\": 1}}\n{\"track_id\": \"x\", \"ok\": null, \"o\": [1, {\"b\": 2.50}]}\n";
        let d = decode("f.json", input.as_bytes(), &s, ParseMode::FailFast).unwrap();
        assert!(d.bad.is_empty(), "{:?}", d.bad);
        assert_eq!(
            rows_of(&d),
            "+----------+------+------------------+\n| track_id | ok   | o                |\n+----------+------+------------------+\n| 0        | true | {\"a\": 1}         |\n| x        |      | [1, {\"b\": 2.50}] |\n+----------+------+------------------+"
        );
    }

    #[test]
    fn timestamps_read_spark_formats_and_bad_ones_are_bad_records() {
        let s = crate::engine::schema::ddl_to_schema("id BIGINT, ts TIMESTAMP, d DATE").unwrap();
        let input = b"{\"id\": 1, \"ts\": \"2026-01-02T03:04:05.120+01:00\", \"d\": \"2026-01-02\"}\n{\"id\": 2, \"ts\": 1767323045}\n{\"id\": 3, \"ts\": \"soon\"}\n";
        let d = decode("f.json", input, &s, ParseMode::DropMalformed).unwrap();
        assert_eq!(
            rows_of(&d),
            "+----+--------------------------+------------+\n| id | ts                       | d          |\n+----+--------------------------+------------+\n| 1  | 2026-01-02T02:04:05.120Z | 2026-01-02 |\n| 2  | 2026-01-02T03:04:05Z     |            |\n+----+--------------------------+------------+"
        );
        assert_eq!(d.bad.len(), 1);
        assert_eq!(d.bad[0].line, 3);
        assert!(
            d.bad[0].reason.contains("cannot read \"soon\" as a TIMESTAMP"),
            "{}",
            d.bad[0].reason
        );
    }
}
