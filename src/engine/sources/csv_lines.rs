//! CSV → Arrow with Spark's parse modes. Every field is read as text, then each column is
//! cast to its declared type in one kernel call; a row where a non-empty field did not
//! convert is a bad record (Spark's malformed row), as is a line with more or fewer fields
//! than the schema (PySpark 4.3: `drop_malformed` drops it, `permissive` keeps it with the
//! missing fields NULL). Bad records are returned with file, record number and reason, like
//! `json_lines`; in `permissive` they keep the fields that convert (Spark's partial results).

use std::io::Cursor;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BooleanArray, RecordBatch, RecordBatchOptions, StringArray};
use arrow::compute::kernels::cast::{CastOptions, cast_with_options};
use arrow::compute::{and, filter_record_batch, is_not_null, is_null, not, or};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

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
        // a short line is a bad record (Spark 4.3), found record by record
        .with_truncated_rows(false)
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
                let line_of = |row: usize| first_record_line + row0 + row as u64;
                convert(&b, &target, file, &line_of, &mut good, &mut bad)?;
                row0 += n;
            }
        }
        // a line with more or fewer fields than the schema: record by record
        Err(_) => decode_records(&text, &target, file, bytes, header, &mut good, &mut bad)?,
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
        let records: Vec<&[u8]> = bad.iter().map(|r| r.raw.as_bytes()).collect();
        let partial = partial_rows(&target, &records)?;
        batches.push(rescued_rows(&out_schema, partial, &bad)?);
    }
    Ok(Decoded { batches, bad })
}

/// Records read one by one (the csv crate, as arrow's reader underneath): those with the
/// schema's number of fields are converted in batches, the others are bad records.
fn decode_records(
    text: &SchemaRef,
    target: &SchemaRef,
    file: &str,
    bytes: &[u8],
    header: bool,
    good: &mut Vec<RecordBatch>,
    bad: &mut Vec<BadRecord>,
) -> Result<()> {
    let n = text.fields().len();
    let mut reader =
        csv::ReaderBuilder::new().has_headers(header).flexible(true).from_reader(bytes);
    let mut record = csv::ByteRecord::new();
    let mut cols: Vec<Vec<Option<String>>> = vec![Vec::new(); n];
    let mut lines: Vec<u64> = Vec::new();
    let flush = |cols: &mut Vec<Vec<Option<String>>>,
                 lines: &mut Vec<u64>,
                 good: &mut Vec<RecordBatch>,
                 bad: &mut Vec<BadRecord>|
     -> Result<()> {
        let arrays: Vec<ArrayRef> = cols
            .iter_mut()
            .map(|c| Arc::new(StringArray::from(std::mem::take(c))) as ArrayRef)
            .collect();
        let options = RecordBatchOptions::new().with_row_count(Some(lines.len()));
        let batch = RecordBatch::try_new_with_options(text.clone(), arrays, &options)?;
        let at = std::mem::take(lines);
        convert(&batch, target, file, &|row| at[row], good, bad)
    };
    loop {
        let start = reader.position().clone();
        match reader.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                bad.push(BadRecord {
                    file: file.to_owned(),
                    line: start.line(),
                    raw: String::new(),
                    reason: e.to_string(),
                });
                break;
            }
        }
        let line = record.position().map_or(start.line(), csv::Position::line);
        let from = record.position().map_or(start.byte(), csv::Position::byte) as usize;
        let to = (reader.position().byte() as usize).min(bytes.len());
        let raw = String::from_utf8_lossy(&bytes[from.min(to)..to]);
        let raw = raw.trim_end_matches(['\n', '\r']);
        if raw.trim().is_empty() {
            continue;
        }
        let fields: Option<Vec<Option<String>>> = record
            .iter()
            .map(|f| match f.is_empty() {
                true => Some(None),
                false => std::str::from_utf8(f).ok().map(|f| Some(f.to_owned())),
            })
            .collect();
        let reason = match &fields {
            None => "the line is not valid UTF-8".to_owned(),
            Some(f) if f.len() != n => {
                format!("the line has {} field(s); the schema has {n}", f.len())
            }
            Some(_) => String::new(),
        };
        match fields {
            Some(fields) if reason.is_empty() => {
                for (col, f) in cols.iter_mut().zip(fields) {
                    col.push(f);
                }
                lines.push(line);
                if lines.len() >= BATCH_ROWS {
                    flush(&mut cols, &mut lines, good, bad)?;
                }
            }
            _ => bad.push(BadRecord { file: file.to_owned(), line, raw: raw.to_owned(), reason }),
        }
    }
    if !lines.is_empty() {
        flush(&mut cols, &mut lines, good, bad)?;
    }
    Ok(())
}

/// Spark's PERMISSIVE partial results (PySpark 4.3): one row per bad record in `target`, the
/// fields that convert (of a line with more fields, the first ones; of one with fewer, NULL
/// for the missing).
fn partial_rows(target: &SchemaRef, records: &[&[u8]]) -> Result<RecordBatch> {
    let n = target.fields().len();
    let mut cols: Vec<Vec<Option<String>>> = vec![Vec::with_capacity(records.len()); n];
    for r in records {
        let mut reader =
            csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(*r);
        let record = reader.byte_records().next().and_then(|r| r.ok());
        for (c, col) in cols.iter_mut().enumerate() {
            let field = record.as_ref().and_then(|rec| rec.get(c)).filter(|f| !f.is_empty());
            col.push(field.and_then(|f| std::str::from_utf8(f).ok()).map(str::to_owned));
        }
    }
    let columns = target
        .fields()
        .iter()
        .zip(cols)
        .map(|(f, col)| spark_cast(&(Arc::new(StringArray::from(col)) as ArrayRef), f.data_type()))
        .collect::<Result<Vec<_>>>()?;
    let options = RecordBatchOptions::new().with_row_count(Some(records.len()));
    Ok(RecordBatch::try_new_with_options(target.clone(), columns, &options)?)
}

/// A text column as `to`, NULL where the text does not read, as Spark's CSV reader reads it
/// (PySpark 4.3, `scripts/spark_read_rules.py`): arrow's cast, except where it takes text that
/// Spark refuses — a BOOLEAN other than `true` or `false` in any case (arrow reads `yes`, `1`,
/// `t`, `on` as true), an integer or DECIMAL with a space or tab around it, a DOUBLE's NaN or
/// infinity spelled other than Spark's `NaN`, `Inf`, `-Inf`, `Infinity` (arrow reads `nan`,
/// `inf`) — and a DOUBLE with blanks around it read (Java's `parseDouble` trims them), a DATE
/// and a TIMESTAMP as Spark reads them (`timestamps::spark_date`, `spark_timestamp`).
fn spark_cast(text: &ArrayRef, to: &DataType) -> Result<ArrayRef> {
    use arrow::compute::kernels::comparison::{ends_with, ilike, starts_with};
    let strings = text.as_any().downcast_ref::<StringArray>();
    match (to, strings) {
        (DataType::Date32, Some(strings)) => {
            return Ok(Arc::new(super::timestamps::dates_from_text(strings, false)));
        }
        (DataType::Timestamp(TimeUnit::Microsecond, Some(tz)), Some(strings))
            if tz.as_ref() == "UTC" =>
        {
            return Ok(Arc::new(super::spark_timestamp::timestamps_from_text(strings)));
        }
        _ => {}
    }
    let pattern = |p: &str| StringArray::new_scalar(p);
    // values with a space or tab at either end (numbers only: four kernel passes)
    let blanks = || -> Result<BooleanArray> {
        let mut any = BooleanArray::from(vec![false; text.len()]);
        for blank in [" ", "\t"] {
            let here =
                or(&starts_with(text, &pattern(blank))?, &ends_with(text, &pattern(blank))?)?;
            any = or(&any, &here)?;
        }
        Ok(any)
    };
    let safe = CastOptions { safe: true, ..CastOptions::default() };
    if let (true, Some(strings)) = (to.is_floating(), strings) {
        let trimmed: StringArray = match blanks()?.true_count() {
            0 => strings.clone(),
            _ => strings.iter().map(|v| v.map(|v| v.trim_matches([' ', '\t']))).collect(),
        };
        let cast = cast_with_options(&trimmed, to, &safe)?;
        let as_f64 = cast_with_options(&cast, &DataType::Float64, &safe)?;
        let values = as_f64.as_any().downcast_ref::<arrow::array::Float64Array>();
        let spark_word = |t: &str| {
            matches!(
                t,
                "NaN" | "+NaN" | "-NaN" | "Inf" | "-Inf" | "Infinity" | "+Infinity" | "-Infinity"
            )
        };
        let refused: BooleanArray = (0..cast.len())
            .map(|i| {
                let odd = values.is_some_and(|v| v.is_valid(i) && !v.value(i).is_finite());
                Some(odd && !spark_word(trimmed.value(i)))
            })
            .collect();
        return match refused.true_count() {
            0 => Ok(cast),
            _ => Ok(arrow::compute::nullif(&cast, &refused)?),
        };
    }
    let cast = cast_with_options(text, to, &safe)?;
    let refused = match to {
        DataType::Boolean => {
            not(&or(&ilike(text, &pattern("true"))?, &ilike(text, &pattern("false"))?)?)?
        }
        t if t.is_numeric() => blanks()?,
        _ => return Ok(cast),
    };
    if refused.true_count() == 0 {
        return Ok(cast);
    }
    Ok(arrow::compute::nullif(&cast, &refused)?)
}

/// `fields` as one CSV line, quoted where a field needs it (so the record reads back).
fn csv_line(fields: &[Option<String>]) -> String {
    let quote = |f: &str| {
        if f.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", f.replace('"', "\"\""))
        } else {
            f.to_owned()
        }
    };
    fields.iter().map(|f| f.as_deref().map_or(String::new(), quote)).collect::<Vec<_>>().join(",")
}

/// Casts a text batch to the target types; rows whose text did not convert become bad
/// records (row `r` is from line `line_of(r)`).
fn convert(
    text: &RecordBatch,
    target: &SchemaRef,
    file: &str,
    line_of: &dyn Fn(usize) -> u64,
    good: &mut Vec<RecordBatch>,
    bad: &mut Vec<BadRecord>,
) -> Result<()> {
    let mut cols = Vec::with_capacity(text.num_columns());
    let mut failed: Option<BooleanArray> = None;
    let mut failed_cols: Vec<(usize, BooleanArray)> = Vec::new();
    for (i, f) in target.fields().iter().enumerate() {
        let col = text.column(i);
        if f.data_type() == &DataType::Utf8 {
            cols.push(col.clone());
            continue;
        }
        let cast = spark_cast(col, f.data_type())?;
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
        let fields: Vec<Option<String>> = (0..text.num_columns())
            .map(|c| {
                let col = text.column(c);
                (!col.is_null(row))
                    .then(|| arrow::util::display::array_value_to_string(col, row))
                    .transpose()
            })
            .collect::<std::result::Result<_, _>>()?;
        bad.push(BadRecord {
            file: file.to_owned(),
            line: line_of(row),
            raw: csv_line(&fields),
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
        assert_eq!(d.bad[1].reason, "the line has 4 field(s); the schema has 3");
        assert_eq!(d.bad[1].raw, "3,4,2026-01-03,extra");
    }

    fn table(batches: &[RecordBatch]) -> String {
        arrow::util::pretty::pretty_format_batches(batches).unwrap().to_string()
    }

    /// What PySpark 4.3 reads of these lines as `a STRING, b INT, c STRING` (checked by hand
    /// on this machine): a short line and a long one are malformed like a field that does not
    /// convert; PERMISSIVE keeps what converts (the first fields of a long line), DROPMALFORMED
    /// keeps only `a,1,x`. (Spark interleaves the rows; ours come good first, then bad.)
    #[test]
    fn lines_that_do_not_fit_are_bad_and_keep_what_reads_as_in_spark() {
        let input = b"a,1,x\nb,2\nc,3,4,extra\nd,zz,5\n";
        let schema = crate::engine::schema::ddl_to_schema("a STRING, b INT, c STRING").unwrap();
        let d = decode("b.csv", input, &schema, false, ParseMode::Permissive).unwrap();
        let got = table(&d.batches);
        let rows: Vec<&str> = got.lines().skip(3).filter(|l| l.starts_with('|')).collect();
        assert_eq!(rows.len(), 4, "{got}");
        assert!(rows[0].starts_with("| a | 1 | x |  "), "{got}");
        assert!(rows[1].starts_with("| b | 2 |   | {"), "{got}");
        assert!(rows[2].starts_with("| c | 3 | 4 | {"), "{got}");
        assert!(rows[3].starts_with("| d |   | 5 | {"), "{got}");
        assert!(rows[1].contains(r#""_raw":"b,2""#), "{got}");
        let reasons: Vec<&str> = d.bad.iter().map(|b| b.reason.as_str()).collect();
        assert_eq!(
            reasons,
            [
                "the line has 2 field(s); the schema has 3",
                "the line has 4 field(s); the schema has 3",
                "field `b`: cannot read \"zz\" as INT",
            ]
        );
        assert_eq!(d.bad.iter().map(|b| b.line).collect::<Vec<_>>(), [2, 3, 4]);
        let d = decode("b.csv", input, &schema, false, ParseMode::DropMalformed).unwrap();
        assert_eq!(
            table(&d.batches),
            "+---+---+---+\n| a | b | c |\n+---+---+---+\n| a | 1 | x |\n+---+---+---+"
        );
    }

    /// Text arrow's cast reads but Spark does not (PySpark 4.3, checked by hand): BOOLEAN
    /// only as `true`/`false` in any case, no blank around a number.
    #[test]
    fn booleans_and_numbers_read_as_strictly_as_in_spark() {
        let input = b"k,b,i\n1,TRUE,5\n2,yes,5\n3,1,5\n4,False, 7 \n5,t,+5\n6,true,\t8\n";
        let schema = crate::engine::schema::ddl_to_schema("k INT, b BOOLEAN, i INT").unwrap();
        let d = decode("c.csv", input, &schema, true, ParseMode::Permissive).unwrap();
        let got = table(&d.batches);
        let rows: Vec<String> = got
            .lines()
            .filter(|l| l.starts_with("| ") && !l.starts_with("| k "))
            .map(|l| l.split('|').take(4).collect::<Vec<_>>().join("|"))
            .collect();
        // Spark: 1 true 5 / 2 NULL 5 / 3 NULL 5 / 4 false NULL / 5 NULL 5 / 6 true NULL,
        // every row but the first a corrupt record
        assert_eq!(
            rows,
            [
                "| 1 | true  | 5 ",
                "| 2 |       | 5 ",
                "| 3 |       | 5 ",
                "| 4 | false |   ",
                "| 5 |       | 5 ",
                "| 6 | true  |   ",
            ],
            "{got}"
        );
        assert_eq!(d.bad.iter().map(|b| b.line).collect::<Vec<_>>(), [3, 4, 5, 6, 7]);
    }

    /// DATE as Spark's CSV reader reads it (PySpark 4.3): `2026` is 2026-01-01, text after a
    /// space is ignored, `20260102` is a bad record (arrow's cast read only that one).
    #[test]
    fn dates_read_as_in_spark() {
        let input = b"k,d\n1,2026\n2,20260102\n3, 2026-01-02 x\n";
        let schema = crate::engine::schema::ddl_to_schema("k INT, d DATE").unwrap();
        let d = decode("d.csv", input, &schema, true, ParseMode::DropMalformed).unwrap();
        assert_eq!(
            table(&d.batches),
            "+---+------------+\n| k | d          |\n+---+------------+\n| 1 | 2026-01-01 |\n| 3 | 2026-01-02 |\n+---+------------+"
        );
        assert_eq!(d.bad[0].reason, "field `d`: cannot read \"20260102\" as DATE");
    }

    /// DOUBLE as Spark's CSV reader reads it (PySpark 4.3): blanks around it are trimmed;
    /// NaN and infinity only as Spark spells them; DECIMAL takes no blanks.
    #[test]
    fn doubles_read_as_in_spark() {
        let input =
            "k,d\n0, 1.5 \n1,nan\n2,NaN\n3,+Infinity\n4,-Inf\n5,inf\n6,1e3\n7,\t2.5\n8,Inf\n";
        let schema = crate::engine::schema::ddl_to_schema("k INT, d DOUBLE").unwrap();
        let d = decode("d.csv", input.as_bytes(), &schema, true, ParseMode::DropMalformed).unwrap();
        let got = table(&d.batches);
        let rows: Vec<&str> =
            got.lines().filter(|l| l.starts_with("| ") && !l.starts_with("| k ")).collect();
        // Spark: 1.5, bad, NaN, inf, -inf, bad, 1000.0, 2.5, inf
        assert_eq!(
            rows,
            [
                "| 0 | 1.5    |",
                "| 2 | NaN    |",
                "| 3 | inf    |",
                "| 4 | -inf   |",
                "| 6 | 1000.0 |",
                "| 7 | 2.5    |",
                "| 8 | inf    |"
            ],
            "{got}"
        );
        assert_eq!(d.bad.iter().map(|b| b.line).collect::<Vec<_>>(), [3, 7]);
        let schema = crate::engine::schema::ddl_to_schema("k INT, d DECIMAL(10,2)").unwrap();
        let d = decode("d.csv", b"k,d\n0, 1.5 \n1,+1.5\n", &schema, true, ParseMode::DropMalformed)
            .unwrap();
        assert_eq!(d.bad.iter().map(|b| b.line).collect::<Vec<_>>(), [2]);
    }

    /// TIMESTAMP as Spark's CSV reader reads it (`spark_timestamp`): no minutes' seconds
    /// needed, no epoch seconds.
    #[test]
    fn timestamps_read_as_in_spark() {
        let input = b"k,t\n1,2026-01-02 03:04\n2,1700000000\n3,2026\n";
        let schema = crate::engine::schema::ddl_to_schema("k INT, t TIMESTAMP").unwrap();
        let d = decode("t.csv", input, &schema, true, ParseMode::DropMalformed).unwrap();
        let got = table(&d.batches);
        assert!(got.contains("| 1 | 2026-01-02T03:04:00Z |"), "{got}");
        assert!(got.contains("| 3 | 2026-01-01T00:00:00Z |"), "{got}");
        assert_eq!(d.bad.iter().map(|b| b.line).collect::<Vec<_>>(), [3]);
    }

    /// A bad record's text reads back as the record (a quoted field with a comma stays one
    /// field), so its other fields keep their values, non-ASCII included.
    #[test]
    fn a_quoted_field_survives_in_the_bad_record() {
        let input = "ville,montant\n\"São Paulo, SP\",abc\n東京,7\n".as_bytes();
        let schema = crate::engine::schema::ddl_to_schema("ville STRING, montant DOUBLE").unwrap();
        let d = decode("v.csv", input, &schema, true, ParseMode::Permissive).unwrap();
        assert_eq!(d.bad.len(), 1);
        assert_eq!(d.bad[0].raw, "\"São Paulo, SP\",abc");
        assert_eq!(d.bad[0].line, 2);
        let got = table(&d.batches);
        assert!(got.contains("| São Paulo, SP |         | {"), "{got}");
        assert!(got.contains("| 東京          | 7.0     |  "), "{got}");
    }
}
