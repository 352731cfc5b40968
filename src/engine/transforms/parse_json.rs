//! Parse JSON (`from_json` + `select("data.*")`): a column of JSON documents becomes typed
//! columns, decoded by arrow-json in bulk with Spark's parse modes (a bad document keeps the
//! fields that read in `permissive`, as Spark's partial results).
//!
//! The documents of a batch are joined into one JSON-lines buffer (raw newlines can only be
//! whitespace between JSON tokens, so they are replaced by spaces), decoded at full speed, and
//! only a chunk that fails is decoded record by record. Output rows keep the input order;
//! `keep` columns are carried along with `take`.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch, UInt32Array, new_null_array};
use arrow::compute::{concat_batches, take};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use datafusion::catalog::streaming::StreamingTable;
use datafusion::error::DataFusionError;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use datafusion::physical_plan::{ExecutionPlan, ExecutionPlanProperties};
use futures::{StreamExt, TryStreamExt};

use crate::model::node::{ParseJson, ParseMode};

use super::super::sources::file_stream::BadRecords;
use super::super::sources::json_lines::{self, BadRecord};
use super::super::sources::json_partial;
use super::super::{EngineError, Result, schema};

/// Output schema: kept columns, then the document's fields (+ `_rescued_data`).
pub fn output_schema(input: &Schema, cfg: &ParseJson) -> Result<SchemaRef> {
    let doc = schema::ddl_to_schema(&cfg.schema)?;
    let mut fields: Vec<Field> = Vec::new();
    for k in &cfg.keep {
        let f = input.field_with_name(k).map_err(|_| {
            EngineError::Config(format!("no column `{k}` to keep; columns are: {}", names(input)))
        })?;
        fields.push(f.clone());
    }
    fields.extend(
        json_lines::output_schema(&doc, cfg.parse_mode).fields().iter().map(|f| f.as_ref().clone()),
    );
    Ok(Arc::new(Schema::new(fields)))
}

fn names(s: &Schema) -> String {
    s.fields().iter().map(|f| f.name().as_str()).collect::<Vec<_>>().join(", ")
}

/// Where a row came from, for error messages and the quarantine table.
fn row_origin(batch: &RecordBatch, row: usize, row_base: u64) -> String {
    let get = |name: &str| batch.schema().index_of(name).ok().map(|i| batch.column(i).clone());
    match (get("topic"), get("partition"), get("offset")) {
        (Some(t), Some(p), Some(o)) => {
            let t = arrow::util::display::array_value_to_string(&t, row).unwrap_or_default();
            let p = arrow::util::display::array_value_to_string(&p, row).unwrap_or_default();
            let o = arrow::util::display::array_value_to_string(&o, row).unwrap_or_default();
            format!("{t}:{p}@{o}")
        }
        _ => format!("row {}", row_base + row as u64 + 1),
    }
}

/// The input split for decoding on every core: contiguous runs of batches of about equal
/// rows, each batch with the input row it starts at.
fn runs(batches: Vec<RecordBatch>) -> Vec<Vec<(u64, RecordBatch)>> {
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let runs = if rows < PARALLEL_FROM_ROWS { 1 } else { cores.min(batches.len()).max(1) };
    let per_run = rows.div_ceil(runs).max(1);
    let mut groups: Vec<Vec<(u64, RecordBatch)>> = vec![Vec::new()];
    let (mut in_group, mut base) = (0, 0u64);
    for b in batches {
        if in_group >= per_run {
            groups.push(Vec::new());
            in_group = 0;
        }
        in_group += b.num_rows();
        let n = b.num_rows() as u64;
        groups.last_mut().expect("one group").push((base, b));
        base += n;
    }
    groups
}

/// Parses `batches` now, on every core (a run of batches per core): `fail_fast` stops the
/// plan at planning, before any sink writes. One partition per run, in input order, each with
/// its bad records.
pub async fn parse_all(
    batches: Vec<RecordBatch>,
    cfg: &ParseJson,
) -> Result<Vec<(Vec<RecordBatch>, Vec<BadRecord>)>> {
    let tasks: Vec<_> = runs(batches)
        .into_iter()
        .map(|group| {
            let cfg = cfg.clone();
            tokio::task::spawn_blocking(move || -> Result<(Vec<RecordBatch>, Vec<BadRecord>)> {
                let (mut out, mut bad) = (Vec::new(), Vec::new());
                for (base, batch) in &group {
                    let (parsed, mut found) = parse_at(batch, &cfg, *base)?;
                    out.push(parsed);
                    bad.append(&mut found);
                }
                Ok((out, bad))
            })
        })
        .collect();
    let mut parts = Vec::with_capacity(tasks.len());
    for task in tasks {
        parts.push(
            task.await
                .map_err(|e| EngineError::Config(format!("JSON decoding stopped: {e}")))??,
        );
    }
    Ok(parts)
}

/// A table that decodes its input as it is read: input batches are decoded in order, as
/// many at once as there are cores, while the sink encodes Parquet (music_kafka: ~100 ms of
/// each 200,000-message batch), and the input itself is read as it arrives (a Kafka batch is
/// decoded while the rest of it is fetched). Bad records go to the returned collector, once
/// per input row however often the plan runs.
pub fn streaming_table(
    node: &str,
    input: Arc<dyn ExecutionPlan>,
    cfg: &ParseJson,
) -> Result<(StreamingTable, BadRecords)> {
    let input_schema = input.schema();
    let out = output_schema(&input_schema, cfg)?;
    // what would fail on every batch fails here, at the node
    let idx = input_schema.index_of(&cfg.column).map_err(|_| {
        EngineError::Config(format!(
            "no column `{}` to parse; columns are: {}",
            cfg.column,
            names(&input_schema)
        ))
    })?;
    let ty = input_schema.field(idx).data_type();
    if !arrow::compute::can_cast_types(ty, &DataType::Binary) {
        return Err(EngineError::Config(format!(
            "column `{}` is {ty}, not text or bytes",
            cfg.column
        )));
    }
    let bad = BadRecords::default();
    let partition = Arc::new(ParseStream {
        node: node.to_owned(),
        input,
        cfg: cfg.clone(),
        schema: out.clone(),
        bad: bad.clone(),
    }) as Arc<dyn PartitionStream>;
    Ok((StreamingTable::try_new(out, vec![partition])?, bad))
}

#[derive(Debug)]
struct ParseStream {
    node: String,
    input: Arc<dyn ExecutionPlan>,
    cfg: ParseJson,
    schema: SchemaRef,
    bad: BadRecords,
}

impl PartitionStream for ParseStream {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        // the input's partitions one after another: rows are numbered the same way at
        // every execution (the caller plans the input as one partition)
        let plan = Arc::clone(&self.input);
        let input = futures::stream::iter(0..plan.output_partitioning().partition_count())
            .map(move |p| plan.execute(p, Arc::clone(&ctx)))
            .try_flatten();
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let (cfg, bad, node) = (self.cfg.clone(), self.bad.clone(), self.node.clone());
        let decoded = input
            // each batch with the input row it starts at (bad records are numbered by it)
            .scan(0u64, |rows, batch| {
                let at = *rows;
                if let Ok(b) = &batch {
                    *rows += b.num_rows() as u64;
                }
                futures::future::ready(Some(batch.map(|b| (at, b))))
            })
            .map(move |item| {
                let (cfg, bad, node) = (cfg.clone(), bad.clone(), node.clone());
                async move {
                    let (base, batch) = item?;
                    let (parsed, found) =
                        tokio::task::spawn_blocking(move || parse_at(&batch, &cfg, base))
                            .await
                            .map_err(|e| DataFusionError::External(e.into()))?
                            .map_err(|e| {
                                DataFusionError::External(format!("node `{node}`: {e}").into())
                            })?;
                    bad.add(found);
                    Ok(parsed)
                }
            })
            .buffered(cores);
        Box::pin(RecordBatchStreamAdapter::new(self.schema.clone(), decoded))
    }
}

/// Below this many rows one core decodes (a task per core costs more than it saves).
const PARALLEL_FROM_ROWS: usize = 16_384;

/// The documents as JSON lines, one per document: a line break inside one (JSON allows them
/// between tokens) becomes a space, a NULL document is the line `null` (an all-null row).
fn as_lines(text: &arrow::array::BinaryArray) -> Vec<u8> {
    let mut buf = Vec::with_capacity(text.value_data().len() + text.len());
    // one scan of all the documents' bytes instead of one per document (~3% of music_kafka)
    let offsets = text.value_offsets();
    let all = &text.value_data()[offsets[0] as usize..offsets[text.len()] as usize];
    let any_break = memchr::memchr2(b'\n', b'\r', all).is_some();
    for i in 0..text.len() {
        if text.is_null(i) {
            buf.extend_from_slice(b"null");
        } else {
            let value = text.value(i);
            if !any_break || memchr::memchr2(b'\n', b'\r', value).is_none() {
                buf.extend_from_slice(value);
            } else {
                buf.extend(value.iter().map(|&b| if b == b'\n' || b == b'\r' { b' ' } else { b }));
            }
        }
        buf.push(b'\n');
    }
    buf
}

/// Parses one batch of input. Returns the output batch and the bad records (with their
/// origin in `file` and the row number in `line`).
pub fn parse(input: &RecordBatch, cfg: &ParseJson) -> Result<(RecordBatch, Vec<BadRecord>)> {
    parse_at(input, cfg, 0)
}

/// [`parse`] for a batch that starts at row `row_base` of its input (bad records are numbered
/// by their row in the whole input).
fn parse_at(
    input: &RecordBatch,
    cfg: &ParseJson,
    row_base: u64,
) -> Result<(RecordBatch, Vec<BadRecord>)> {
    let out_schema = output_schema(&input.schema(), cfg)?;
    let idx = input.schema().index_of(&cfg.column).map_err(|_| {
        EngineError::Config(format!(
            "no column `{}` to parse; columns are: {}",
            cfg.column,
            names(&input.schema())
        ))
    })?;
    let col = input.column(idx);
    let text = arrow::compute::cast(col, &DataType::Binary).map_err(|_| {
        EngineError::Config(format!(
            "column `{}` is {}, not text or bytes",
            cfg.column,
            col.data_type()
        ))
    })?;
    let text = text.as_any().downcast_ref::<arrow::array::BinaryArray>().ok_or_else(|| {
        EngineError::Config(format!("column `{}` is not text or bytes", cfg.column))
    })?;
    let doc = schema::ddl_to_schema(&cfg.schema)?;
    // plain records are read where they are, in one pass (no copy into lines, no line
    // scans: with `json_plain`, music_kafka's CPU 1.6 -> 1.35 s on 1M messages)
    let decoded = if let Some(batch) = json_lines::decode_documents(text, &doc) {
        json_lines::Decoded { batches: vec![batch], bad: Vec::new() }
    } else {
        let buf = as_lines(text);
        // decode without permissive extras; alignment is rebuilt below
        json_lines::decode("", &buf, &doc, ParseMode::DropMalformed)?
    };
    let bad_rows: Vec<usize> = decoded.bad.iter().map(|b| b.line as usize - 1).collect();
    let mut is_bad = vec![false; input.num_rows()];
    for &r in &bad_rows {
        is_bad[r] = true;
    }
    let doc_schema = Arc::new(doc.clone());
    let parsed = if decoded.batches.is_empty() {
        RecordBatch::new_empty(doc_schema.clone())
    } else {
        concat_batches(&doc_schema, &decoded.batches)?
    };
    let bad: Vec<BadRecord> = decoded
        .bad
        .into_iter()
        .map(|b| {
            let row = b.line as usize - 1;
            BadRecord {
                file: row_origin(input, row, row_base),
                line: row_base + b.line,
                raw: b.raw,
                reason: b.reason,
            }
        })
        .collect();
    if cfg.parse_mode == ParseMode::FailFast
        && let Some(b) = bad.first()
    {
        return Err(EngineError::Config(format!(
            "malformed JSON in `{}` at {}: {} (parse_mode = \"fail_fast\"; use \"permissive\" or \"drop_malformed\" to keep going)",
            cfg.column, b.file, b.reason
        )));
    }
    let keep_cols = |rows: &UInt32Array| -> Result<Vec<ArrayRef>> {
        cfg.keep
            .iter()
            .map(|k| {
                let i = input.schema().index_of(k)?;
                Ok(take(input.column(i).as_ref(), rows, None)?)
            })
            .collect()
    };
    let good_rows = input.num_rows() - bad_rows.len();
    let mut cols = if bad_rows.is_empty() {
        // every row parsed: the kept columns as they are, no copy
        (cfg.keep.iter())
            .map(|k| Ok(input.column(input.schema().index_of(k)?).clone()))
            .collect::<Result<Vec<_>>>()?
    } else {
        let good_idx: UInt32Array =
            (0..input.num_rows() as u32).filter(|&r| !is_bad[r as usize]).collect();
        keep_cols(&good_idx)?
    };
    cols.extend(parsed.columns().iter().cloned());
    if cfg.parse_mode != ParseMode::Permissive {
        return Ok((RecordBatch::try_new(out_schema, cols)?, bad));
    }
    // permissive: good rows with null `_rescued_data`, then the bad rows with what of them read
    cols.push(new_null_array(&DataType::Utf8, good_rows));
    let good = RecordBatch::try_new(out_schema.clone(), cols)?;
    if bad.is_empty() {
        return Ok((good, bad));
    }
    let bad_idx = UInt32Array::from(bad_rows.iter().map(|&r| r as u32).collect::<Vec<_>>());
    let mut bcols = keep_cols(&bad_idx)?;
    // Spark's partial results: a bad document keeps the fields that read
    let records: Vec<&[u8]> = bad.iter().map(|b| b.raw.as_bytes()).collect();
    bcols.extend(json_partial::partial_rows(&doc, &records)?.columns().iter().cloned());
    let rescued: Vec<String> = bad
        .iter()
        .map(|b| {
            serde_json::json!({"_raw": b.raw, "_reason": b.reason, "_origin": b.file}).to_string()
        })
        .collect();
    bcols.push(Arc::new(arrow::array::StringArray::from(rescued)));
    let bad_batch = RecordBatch::try_new(out_schema.clone(), bcols)?;
    Ok((concat_batches(&out_schema, &[good, bad_batch])?, bad))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::node::RESCUED_DATA_COLUMN;
    use arrow::array::{Int64Array, StringArray};

    async fn memory_plan(
        ctx: &datafusion::prelude::SessionContext,
        schema: &SchemaRef,
        batches: Vec<RecordBatch>,
    ) -> Arc<dyn ExecutionPlan> {
        let table =
            datafusion::datasource::MemTable::try_new(schema.clone(), vec![batches]).unwrap();
        crate::engine::plan::in_one_partition(ctx.read_table(Arc::new(table)).unwrap())
            .await
            .unwrap()
    }

    /// Streamed, on two cores: every good row once, each bad row once by its row in the whole
    /// input (not in its batch), however often the plan runs.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_streamed_parse_reports_each_bad_row_once_by_its_input_row() {
        let schema = Arc::new(Schema::new(vec![Field::new("value", DataType::Utf8, true)]));
        // 3 batches of 10,000 documents; row 3 of the second and the last row are bad
        let batches: Vec<RecordBatch> = (0..3)
            .map(|b| {
                let docs: Vec<String> = (0..10_000)
                    .map(|i| match (b, i) {
                        (1, 2) | (2, 9_999) => "{bad".to_owned(),
                        _ => format!("{{\"a\": {}}}", b * 10_000 + i),
                    })
                    .collect();
                RecordBatch::try_new(schema.clone(), vec![Arc::new(StringArray::from(docs))])
                    .unwrap()
            })
            .collect();
        let cfg = ParseJson {
            column: "value".into(),
            schema: "a BIGINT".into(),
            parse_mode: ParseMode::DropMalformed,
            keep: vec![],
        };
        let ctx = datafusion::prelude::SessionContext::new();
        let (table, bad) =
            streaming_table("parse", memory_plan(&ctx, &schema, batches).await, &cfg).unwrap();
        let df = ctx.read_table(Arc::new(table)).unwrap();
        for _ in 0..2 {
            let rows = df.clone().aggregate(
                vec![],
                vec![
                    datafusion::functions_aggregate::expr_fn::count(datafusion::prelude::col("a")),
                    datafusion::functions_aggregate::expr_fn::sum(datafusion::prelude::col("a")),
                ],
            );
            let out = rows.unwrap().collect().await.unwrap();
            let shown = arrow::util::pretty::pretty_format_batches(&out).unwrap().to_string();
            let sum: i64 = (0..30_000).sum::<i64>() - 10_002 - 29_999;
            assert!(shown.contains("| 29998 ") && shown.contains(&sum.to_string()), "{shown}");
        }
        let mut found: Vec<(String, u64)> =
            bad.take().into_iter().map(|b| (b.file, b.line)).collect();
        found.sort();
        assert_eq!(found, [("row 10003".to_owned(), 10_003), ("row 30000".to_owned(), 30_000)]);
        // a column that cannot be parsed fails at planning, naming it
        let wrong = ParseJson { column: "nope".into(), ..cfg };
        let err = streaming_table("parse", memory_plan(&ctx, &schema, vec![]).await, &wrong)
            .unwrap_err()
            .to_string();
        assert!(err.contains("no column `nope` to parse"), "{err}");
    }

    #[test]
    fn parses_in_order_keeps_columns_and_reports_bad_rows() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("value", DataType::Utf8, true),
            Field::new("offset", DataType::Int64, false),
        ]));
        let input = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec!["{\"a\": 1}", "{bad", "{\"a\":\n 3}"])),
                Arc::new(Int64Array::from(vec![10, 11, 12])),
            ],
        )
        .unwrap();
        let cfg = ParseJson {
            column: "value".into(),
            schema: "a BIGINT".into(),
            parse_mode: ParseMode::DropMalformed,
            keep: vec!["offset".into()],
        };
        let (out, bad) = parse(&input, &cfg).unwrap();
        assert_eq!(
            arrow::util::pretty::pretty_format_batches(&[out]).unwrap().to_string(),
            "+--------+---+\n| offset | a |\n+--------+---+\n| 10     | 1 |\n| 12     | 3 |\n+--------+---+"
        );
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0].raw, "{bad");
        let permissive = ParseJson { parse_mode: ParseMode::Permissive, ..cfg.clone() };
        let (out, _) = parse(&input, &permissive).unwrap();
        assert_eq!(out.num_rows(), 3);
        assert_eq!(out.schema().field(2).name(), RESCUED_DATA_COLUMN);
        let fail = ParseJson { parse_mode: ParseMode::FailFast, ..cfg };
        assert!(parse(&input, &fail).unwrap_err().to_string().contains("row 2"));
    }

    #[test]
    fn kafka_values_with_numbers_and_objects_into_strings_are_kept_as_in_spark() {
        // the issue's case: `track_id` is sometimes a JSON number; Spark keeps every message
        let schema = Arc::new(Schema::new(vec![Field::new("value", DataType::Binary, true)]));
        let docs: Vec<&[u8]> = vec![
            br#"{"track_id": 0, "ok": true, "o": {"a": 1}}"#,
            br#"{"track_id": "t-2", "ok": false, "o": [1, 2]}"#,
        ];
        let input = RecordBatch::try_new(
            schema,
            vec![Arc::new(arrow::array::BinaryArray::from(docs)) as ArrayRef],
        )
        .unwrap();
        let cfg = ParseJson {
            column: "value".into(),
            schema: "track_id STRING, ok STRING, o STRING".into(),
            parse_mode: ParseMode::DropMalformed,
            keep: vec![],
        };
        let (out, bad) = parse(&input, &cfg).unwrap();
        assert!(bad.is_empty(), "{bad:?}");
        assert_eq!(
            arrow::util::pretty::pretty_format_batches(&[out]).unwrap().to_string(),
            "+----------+-------+----------+\n| track_id | ok    | o        |\n+----------+-------+----------+\n| 0        | true  | {\"a\": 1} |\n| t-2      | false | [1, 2]   |\n+----------+-------+----------+"
        );
    }
}
