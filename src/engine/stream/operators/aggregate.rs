//! Streaming aggregation: `groupBy(keys, window(ts, '1 minute')).agg(...)` with state kept
//! across micro-batches, Spark's output modes and watermark eviction.
//!
//! Two-phase, as Spark and Arroyo do it: each batch is reduced to partial aggregates per
//! group (count, sum, min, max; avg as sum and count), merged with the state's partials, and
//! the final values are computed only for the groups emitted. Every step is DataFusion SQL
//! or an Arrow kernel over whole columns; nothing runs per row in Rust except window
//! assignment, a loop over a primitive array.
//!
//! State columns: `__k0..` (group keys), `__ws` (window start, µs), `__we` (the group's event
//! time bound, µs: window end, or the key itself when a key carries the watermark), then the
//! partials `__p0..`.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanArray, Int64Array, RecordBatch, StructArray, UInt32Array,
};
use arrow::compute::{filter_record_batch, take_record_batch};
use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef};
use datafusion::datasource::MemTable;
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion::sql::sqlparser::ast::Expr as SqlExpr;

use crate::engine::{EngineError, Result};
use crate::model::node::{Aggregate, OutputMode};

use super::aggregate_spec::{AggFunc, AggItem, GroupItem, parse_agg, parse_sql_expr};
pub use super::aggregate_spec::{WindowSpec, parse_window};
use super::event_time::{self, micros};
use super::{Clock, StateOperatorProgress, StepOutput, count_rows, memory_bytes};

/// A parsed Aggregate node, ready to run batch after batch.
#[derive(Clone, Debug, PartialEq)]
pub struct AggPlan {
    group: Vec<GroupItem>,
    aggs: Vec<AggItem>,
    /// A plain key that is the watermark's column: groups are evicted when it passes.
    event_time_key: Option<(usize, String)>,
}

fn q(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

impl AggPlan {
    /// Parses the node's settings; `watermark_column` is the event-time column upstream.
    pub fn parse(
        cfg: &Aggregate,
        watermark_column: Option<&str>,
    ) -> std::result::Result<Self, String> {
        let mut group = Vec::new();
        for item in &cfg.group_by {
            match parse_window(item)? {
                Some(w) => group.push(GroupItem::Window(w)),
                None => {
                    let expr = parse_sql_expr(item)?;
                    let name = match &expr {
                        SqlExpr::Identifier(i) => i.value.clone(),
                        SqlExpr::CompoundIdentifier(parts) => {
                            parts.last().map(|p| p.value.clone()).unwrap_or_default()
                        }
                        _ => item.trim().to_owned(),
                    };
                    group.push(GroupItem::Key { sql: item.clone(), name });
                }
            }
        }
        if group.iter().filter(|g| matches!(g, GroupItem::Window(_))).count() > 1 {
            return Err("group by at most one window(...) or session_window(...)".into());
        }
        let aggs = cfg
            .aggregates
            .iter()
            .map(|a| parse_agg(a))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let event_time_key = match watermark_column {
            Some(wm) if !group.iter().any(|g| matches!(g, GroupItem::Window(_))) => group
                .iter()
                .enumerate()
                .find(|(_, g)| matches!(g, GroupItem::Key { name, sql } if name == wm && sql.trim() == wm))
                .map(|(i, _)| (i, wm.to_owned())),
            _ => None,
        };
        Ok(Self { group, aggs, event_time_key })
    }

    pub fn window(&self) -> Option<&WindowSpec> {
        self.group.iter().find_map(|g| match g {
            GroupItem::Window(w) => Some(w),
            GroupItem::Key { .. } => None,
        })
    }

    /// Whether groups ever close (a window, or a key that carries the watermark).
    pub fn has_event_time(&self) -> bool {
        self.window().is_some() || self.event_time_key.is_some()
    }

    /// The grouping output columns (for MERGE in update mode): keys and the window.
    pub fn key_columns(&self) -> Vec<String> {
        self.group
            .iter()
            .map(|g| match g {
                GroupItem::Key { name, .. } => name.clone(),
                GroupItem::Window(w) => w.output_name().to_owned(),
            })
            .collect()
    }

    /// What the state was built from: a different fingerprint cannot reuse the state.
    pub fn fingerprint(&self) -> String {
        let group: Vec<String> = self
            .group
            .iter()
            .map(|g| match g {
                GroupItem::Key { sql, .. } => format!("key:{sql}"),
                GroupItem::Window(w) => format!("{w:?}"),
            })
            .collect();
        let aggs: Vec<String> = self
            .aggs
            .iter()
            .map(|a| format!("{:?}({})", a.func, a.arg.as_deref().unwrap_or("*")))
            .collect();
        format!("aggregate group_by [{}] aggregates [{}]", group.join(", "), aggs.join(", "))
    }

    fn keys(&self) -> Vec<&str> {
        self.group
            .iter()
            .filter_map(|g| match g {
                GroupItem::Key { sql, .. } => Some(sql.as_str()),
                GroupItem::Window(_) => None,
            })
            .collect()
    }

    /// (partial column, SQL over the input, SQL that merges partials).
    fn partials(&self) -> Vec<(String, String, &'static str)> {
        let mut out = Vec::new();
        for (i, a) in self.aggs.iter().enumerate() {
            let arg = a.arg.clone().unwrap_or_else(|| "*".into());
            match a.func {
                AggFunc::Count => out.push((format!("__p{i}"), format!("count({arg})"), "sum")),
                AggFunc::Sum => out.push((format!("__p{i}"), format!("sum({arg})"), "sum")),
                AggFunc::Min => out.push((format!("__p{i}"), format!("min({arg})"), "min")),
                AggFunc::Max => out.push((format!("__p{i}"), format!("max({arg})"), "max")),
                AggFunc::Avg => {
                    out.push((format!("__p{i}s"), format!("sum(CAST({arg} AS DOUBLE))"), "sum"));
                    out.push((format!("__p{i}c"), format!("count({arg})"), "sum"));
                }
            }
        }
        out
    }

    fn finals(&self) -> Vec<String> {
        self.aggs
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let v = match a.func {
                    AggFunc::Count => format!("CAST(coalesce(\"__p{i}\", 0) AS BIGINT)"),
                    AggFunc::Avg => format!(
                        "CASE WHEN \"__p{i}c\" = 0 THEN NULL ELSE \"__p{i}s\" / CAST(\"__p{i}c\" AS DOUBLE) END"
                    ),
                    _ => format!("\"__p{i}\""),
                };
                format!("{v} AS {}", q(&a.name))
            })
            .collect()
    }

    /// Adds `__ws` and `__we` to each input row (one row per window it falls in), dropping
    /// rows without an event time when grouping by a window (as Spark's `window` does).
    fn assign_windows(
        &self,
        batches: &[RecordBatch],
        schema: &SchemaRef,
    ) -> Result<(SchemaRef, Vec<RecordBatch>)> {
        let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.push(Field::new("__ws", DataType::Int64, true));
        fields.push(Field::new("__we", DataType::Int64, true));
        let out_schema = Arc::new(Schema::new(fields));
        let mut out = Vec::with_capacity(batches.len());
        for b in batches {
            let (indices, ws, we): (Vec<u32>, Vec<Option<i64>>, Vec<Option<i64>>) =
                match self.window() {
                    Some(w) => {
                        let ts = micros(b, w.column())?;
                        let mut idx = Vec::with_capacity(ts.len());
                        let mut ws = Vec::with_capacity(ts.len());
                        let mut we = Vec::with_capacity(ts.len());
                        for (row, t) in ts.iter().enumerate() {
                            let Some(t) = t else { continue };
                            match w {
                                WindowSpec::Tumbling { size_us, .. } => {
                                    let s = t.div_euclid(*size_us) * size_us;
                                    idx.push(row as u32);
                                    ws.push(Some(s));
                                    we.push(Some(s + size_us));
                                }
                                WindowSpec::Sliding { size_us, slide_us, .. } => {
                                    let last = t.div_euclid(*slide_us) * slide_us;
                                    let mut s = last;
                                    while s + size_us > t {
                                        idx.push(row as u32);
                                        ws.push(Some(s));
                                        we.push(Some(s + size_us));
                                        s -= slide_us;
                                    }
                                }
                                WindowSpec::Session { gap_us, .. } => {
                                    idx.push(row as u32);
                                    ws.push(Some(t));
                                    we.push(Some(t + gap_us));
                                }
                            }
                        }
                        (idx, ws, we)
                    }
                    None => {
                        let n = b.num_rows();
                        let we = match &self.event_time_key {
                            Some((_, col)) => micros(b, col)?.iter().collect(),
                            None => vec![None; n],
                        };
                        ((0..n as u32).collect(), vec![None; n], we)
                    }
                };
            let taken = if indices.len() == b.num_rows()
                && indices.iter().enumerate().all(|(i, v)| i as u32 == *v)
            {
                b.clone()
            } else {
                take_record_batch(b, &UInt32Array::from(indices))?
            };
            let mut cols: Vec<ArrayRef> = taken.columns().to_vec();
            cols.push(Arc::new(Int64Array::from(ws)));
            cols.push(Arc::new(Int64Array::from(we)));
            out.push(RecordBatch::try_new(out_schema.clone(), cols)?);
        }
        Ok((out_schema, out))
    }

    /// One micro-batch: `input` rows in, rows to emit and the new state out.
    pub async fn step(
        &self,
        input: &[RecordBatch],
        input_schema: &SchemaRef,
        state: Vec<RecordBatch>,
        state_schema: Option<SchemaRef>,
        clock: Clock,
        mode: OutputMode,
    ) -> Result<StepOutput> {
        let ctx = sql_context();
        let (expanded_schema, expanded) = self.assign_windows(input, input_schema)?;
        // late: the group's time bound (window end, or the key) at or below the previous
        // batch's watermark, as Spark tests `window.end`
        let mut kept = Vec::with_capacity(expanded.len());
        let mut late = Vec::new();
        for b in &expanded {
            match clock.late_us {
                Some(wm) if self.has_event_time() => {
                    let we = b
                        .column(b.num_columns() - 1)
                        .as_any()
                        .downcast_ref::<Int64Array>()
                        .ok_or_else(|| EngineError::Config("window bound is not BIGINT".into()))?;
                    let mask = event_time::reached(we, Some(wm))?;
                    let (k, l) = event_time::split(b, &mask)?;
                    kept.push(k);
                    if l.num_rows() > 0 {
                        // back to the input's columns
                        late.push(
                            l.project(&(0..input_schema.fields().len()).collect::<Vec<_>>())?,
                        );
                    }
                }
                _ => kept.push(b.clone()),
            }
        }
        ctx.register_table("__in", Arc::new(MemTable::try_new(expanded_schema, vec![kept])?))?;
        let keys = self.keys();
        let mut select: Vec<String> =
            keys.iter().enumerate().map(|(i, k)| format!("{k} AS \"__k{i}\"")).collect();
        select.push("\"__ws\"".into());
        select.push("\"__we\"".into());
        let partials = self.partials();
        select.extend(partials.iter().map(|(name, sql, _)| format!("{sql} AS {}", q(name))));
        let mut group_by: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
        group_by.push("\"__ws\"".into());
        group_by.push("\"__we\"".into());
        let batch_sql =
            format!("SELECT {} FROM \"__in\" GROUP BY {}", select.join(", "), group_by.join(", "));
        let batch_df = ctx
            .sql(&batch_sql)
            .await
            .map_err(|e| EngineError::Config(format!("aggregate: {e}")))?;
        let batch_schema = Arc::new(Schema::new(batch_df.schema().fields().clone()));
        let batch_rows = batch_df.collect().await?;
        let state_schema = state_schema.unwrap_or_else(|| batch_schema.clone());
        if state_schema.fields().len() != batch_schema.fields().len() {
            return Err(EngineError::Config(format!(
                "the stored state has {} columns but this aggregate needs {}; the aggregate changed since the checkpoint was written",
                state_schema.fields().len(),
                batch_schema.fields().len()
            )));
        }
        ctx.register_table(
            "__batch",
            Arc::new(MemTable::try_new(batch_schema.clone(), vec![batch_rows])?),
        )?;
        ctx.register_table(
            "__state",
            Arc::new(MemTable::try_new(state_schema.clone(), vec![state])?),
        )?;
        let key_cols: Vec<String> = (0..keys.len()).map(|i| format!("\"__k{i}\"")).collect();
        let all_cols: Vec<String> = batch_schema.fields().iter().map(|f| q(f.name())).collect();
        let union = format!(
            "SELECT {cols}, false AS \"__t\" FROM \"__state\" UNION ALL SELECT {cols}, true AS \"__t\" FROM \"__batch\"",
            cols = all_cols.join(", ")
        );
        let merges: Vec<String> =
            partials.iter().map(|(name, _, m)| format!("{m}({n}) AS {n}", n = q(name))).collect();
        let merge_sql = if self.window().is_some_and(WindowSpec::is_session) {
            let part = if key_cols.is_empty() {
                String::new()
            } else {
                format!("PARTITION BY {}", key_cols.join(", "))
            };
            let mut out_keys = key_cols.clone();
            out_keys.push("min(\"__ws\") AS \"__ws\"".into());
            out_keys.push("max(\"__we\") AS \"__we\"".into());
            let mut gb = key_cols.clone();
            gb.push("\"__sid\"".into());
            format!(
                "WITH u AS ({union}), \
                 m AS (SELECT *, max(\"__we\") OVER ({part} ORDER BY \"__ws\", \"__we\" ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS \"__prev\" FROM u), \
                 g AS (SELECT *, sum(CASE WHEN \"__prev\" IS NULL OR \"__ws\" > \"__prev\" THEN 1 ELSE 0 END) OVER ({part} ORDER BY \"__ws\", \"__we\" ROWS UNBOUNDED PRECEDING) AS \"__sid\" FROM m) \
                 SELECT {sel}, {merges}, bool_or(\"__t\") AS \"__t\" FROM g GROUP BY {gb}",
                sel = out_keys.join(", "),
                merges = merges.join(", "),
                gb = gb.join(", ")
            )
        } else {
            let mut gb = key_cols.clone();
            gb.push("\"__ws\"".into());
            gb.push("\"__we\"".into());
            format!(
                "SELECT {gbs}, {merges}, bool_or(\"__t\") AS \"__t\" FROM ({union}) u GROUP BY {gbs}",
                gbs = gb.join(", "),
                merges = merges.join(", ")
            )
        };
        let merged_df = ctx.sql(&merge_sql).await?;
        let merged_schema = Arc::new(Schema::new(merged_df.schema().fields().clone()));
        let merged = merged_df.collect().await?;
        let we_idx = merged_schema.index_of("__we")?;
        let t_idx = merged_schema.index_of("__t")?;
        let mut emit = Vec::new();
        let mut next_state = Vec::new();
        let (mut updated, mut removed) = (0u64, 0u64);
        for b in &merged {
            let we = b
                .column(we_idx)
                .as_any()
                .downcast_ref::<Int64Array>()
                .cloned()
                .ok_or_else(|| EngineError::Config("window bound is not BIGINT".into()))?;
            let touched = b
                .column(t_idx)
                .as_any()
                .downcast_ref::<BooleanArray>()
                .cloned()
                .map(event_time::without_nulls)
                .ok_or_else(|| EngineError::Config("touched flag is not BOOLEAN".into()))?;
            updated += touched.true_count() as u64;
            // complete mode keeps every group
            let wm = clock.evict_us.filter(|_| mode != OutputMode::Complete);
            let evicted = event_time::reached(&we, wm)?;
            removed += evicted.true_count() as u64;
            let (keep, gone) = event_time::split(b, &evicted)?;
            next_state.push(keep);
            match mode {
                OutputMode::Append => emit.push(gone),
                OutputMode::Update => emit.push(filter_record_batch(b, &touched)?),
                OutputMode::Complete => emit.push(b.clone()),
            }
        }
        // final values for the emitted groups only
        ctx.register_table(
            "__emit",
            Arc::new(MemTable::try_new(merged_schema.clone(), vec![emit])?),
        )?;
        let mut final_select: Vec<String> = key_cols.clone();
        final_select.push("\"__ws\"".into());
        final_select.push("\"__we\"".into());
        final_select.extend(self.finals());
        let final_df =
            ctx.sql(&format!("SELECT {} FROM \"__emit\"", final_select.join(", "))).await?;
        let final_schema = Arc::new(Schema::new(final_df.schema().fields().clone()));
        let final_rows = final_df.collect().await?;
        let (schema, rows) = self.output(&final_rows, &final_schema, keys.len())?;
        let state_out_cols: Vec<usize> =
            (0..merged_schema.fields().len()).filter(|i| *i != t_idx).collect();
        let state_schema = Arc::new(merged_schema.project(&state_out_cols)?);
        let next_state: Vec<RecordBatch> = next_state
            .iter()
            .filter(|b| b.num_rows() > 0)
            .map(|b| b.project(&state_out_cols))
            .collect::<std::result::Result<_, _>>()?;
        let metrics = StateOperatorProgress {
            operator_name: if self.window().is_some_and(WindowSpec::is_session) {
                "sessionWindowStateStoreSaveExec".into()
            } else {
                "stateStoreSave".into()
            },
            num_rows_total: count_rows(&next_state),
            num_rows_updated: updated,
            num_rows_removed: if mode == OutputMode::Complete { 0 } else { removed },
            num_rows_dropped_by_watermark: count_rows(&late),
            memory_used_bytes: memory_bytes(&next_state),
            ..StateOperatorProgress::default()
        };
        let next_expiry_us = match mode {
            OutputMode::Complete => None,
            _ => super::min_i64(&next_state, state_schema.index_of("__we")?),
        };
        Ok(StepOutput {
            schema,
            rows,
            state: next_state,
            state_schema,
            late,
            metrics,
            next_expiry_us,
        })
    }

    /// The node's output: group-by columns in their order (the window as Spark's
    /// `STRUCT<start, end>`), then the aggregates. `finals` has the keys, `__ws`, `__we`,
    /// then the aggregates.
    fn output(
        &self,
        finals: &[RecordBatch],
        final_schema: &SchemaRef,
        n_keys: usize,
    ) -> Result<(SchemaRef, Vec<RecordBatch>)> {
        let ts_type = event_time::micros_type();
        let window_fields = Fields::from(vec![
            Field::new("start", ts_type.clone(), true),
            Field::new("end", ts_type, true),
        ]);
        let mut fields = Vec::new();
        let mut k = 0;
        for g in &self.group {
            match g {
                GroupItem::Key { name, .. } => {
                    let f = final_schema.field(k).clone();
                    fields.push(f.with_name(name.clone()).with_nullable(true));
                    k += 1;
                }
                GroupItem::Window(w) => fields.push(Field::new(
                    w.output_name(),
                    DataType::Struct(window_fields.clone()),
                    true,
                )),
            }
        }
        for (i, a) in self.aggs.iter().enumerate() {
            let f = final_schema.field(n_keys + 2 + i).clone();
            fields.push(f.with_name(a.name.clone()).with_nullable(true));
        }
        let schema = Arc::new(Schema::new(fields));
        let mut out = Vec::with_capacity(finals.len());
        for b in finals {
            let mut cols: Vec<ArrayRef> = Vec::new();
            let mut k = 0;
            for g in &self.group {
                match g {
                    GroupItem::Key { .. } => {
                        cols.push(b.column(k).clone());
                        k += 1;
                    }
                    GroupItem::Window(_) => {
                        let ws = b.column(n_keys).as_any().downcast_ref::<Int64Array>().cloned();
                        let we =
                            b.column(n_keys + 1).as_any().downcast_ref::<Int64Array>().cloned();
                        let (Some(ws), Some(we)) = (ws, we) else {
                            return Err(EngineError::Config("window bounds are not BIGINT".into()));
                        };
                        let start: ArrayRef = event_time::timestamps(ws.iter().collect());
                        let end: ArrayRef = event_time::timestamps(we.iter().collect());
                        cols.push(Arc::new(StructArray::try_new(
                            window_fields.clone(),
                            vec![start, end],
                            None,
                        )?));
                    }
                }
            }
            for i in 0..self.aggs.len() {
                cols.push(b.column(n_keys + 2 + i).clone());
            }
            out.push(RecordBatch::try_new(schema.clone(), cols)?);
        }
        Ok((schema, out))
    }
}

/// A plain DataFusion session for operator SQL: identifiers keep their case, as in the
/// pipeline's own session.
pub fn sql_context() -> SessionContext {
    let config =
        SessionConfig::new().set_bool("datafusion.sql_parser.enable_ident_normalization", false);
    SessionContext::new_with_config(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::StringArray;
    use arrow::util::pretty::pretty_format_batches;

    fn ts(s: &str) -> i64 {
        chrono::DateTime::parse_from_rfc3339(s).unwrap().timestamp_micros()
    }

    fn events(rows: &[(&str, &str)]) -> (SchemaRef, Vec<RecordBatch>) {
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Utf8, true),
            Field::new("t", event_time::micros_type(), true),
        ]));
        let k: Vec<&str> = rows.iter().map(|r| r.0).collect();
        let t: Vec<Option<i64>> = rows.iter().map(|r| Some(ts(r.1))).collect();
        let b = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(StringArray::from(k)), event_time::timestamps(t)],
        )
        .unwrap();
        (schema, vec![b])
    }

    fn plan(group_by: &[&str]) -> AggPlan {
        AggPlan::parse(
            &Aggregate {
                group_by: group_by.iter().map(|s| s.to_string()).collect(),
                aggregates: vec!["count(*) AS n".into()],
            },
            Some("t"),
        )
        .unwrap()
    }

    fn text(out: &StepOutput) -> String {
        pretty_format_batches(&out.rows).unwrap().to_string()
    }

    const MIN: i64 = 60_000_000;

    #[tokio::test]
    async fn tumbling_append_emits_closed_windows_once_and_drops_late_rows() {
        let p = plan(&["k", "window(t, '1 minute')"]);
        let (schema, b0) = events(&[
            ("a", "2026-01-01T12:00:10Z"),
            ("a", "2026-01-01T12:00:50Z"),
            ("a", "2026-01-01T12:01:30Z"),
        ]);
        let out0 =
            p.step(&b0, &schema, vec![], None, Clock::none(), OutputMode::Append).await.unwrap();
        assert_eq!(count_rows(&out0.rows), 0);
        assert_eq!(out0.metrics.num_rows_total, 2);
        // the watermark reaches 12:02: both windows close
        let wm = ts("2026-01-01T12:02:00Z");
        let clock = Clock { late_us: Some(wm - 10 * MIN), evict_us: Some(wm) };
        let out1 = p
            .step(&[], &schema, out0.state, Some(out0.state_schema), clock, OutputMode::Append)
            .await
            .unwrap();
        let t = text(&out1);
        assert!(t.contains("{start: 2026-01-01T12:00:00Z, end: 2026-01-01T12:01:00Z} | 2 "), "{t}");
        assert!(t.contains("{start: 2026-01-01T12:01:00Z, end: 2026-01-01T12:02:00Z} | 1 "), "{t}");
        assert_eq!(out1.metrics.num_rows_total, 0);
        // a row whose window ends at the watermark is late; the next window is not
        let (_, b2) = events(&[("a", "2026-01-01T12:01:59Z"), ("a", "2026-01-01T12:02:00Z")]);
        let clock = Clock { late_us: Some(wm), evict_us: Some(wm) };
        let out2 = p
            .step(&b2, &schema, out1.state, Some(out1.state_schema), clock, OutputMode::Append)
            .await
            .unwrap();
        assert_eq!(out2.metrics.num_rows_dropped_by_watermark, 1);
        assert_eq!(out2.metrics.num_rows_total, 1);
    }

    #[tokio::test]
    async fn sliding_windows_count_a_row_in_each_window() {
        let p = plan(&["window(t, '10 minutes', '5 minutes')"]);
        let (schema, b) = events(&[("a", "2026-01-01T12:07:00Z")]);
        let out =
            p.step(&b, &schema, vec![], None, Clock::none(), OutputMode::Complete).await.unwrap();
        let t = text(&out);
        assert_eq!(count_rows(&out.rows), 2, "{t}");
        assert!(t.contains("12:00:00Z, end: 2026-01-01T12:10:00Z"), "{t}");
        assert!(t.contains("12:05:00Z, end: 2026-01-01T12:15:00Z"), "{t}");
        // once the watermark is 12:12, a row at 12:09 is late for [12:00,12:10) only
        let (_, b) = events(&[("a", "2026-01-01T12:09:00Z")]);
        let wm = ts("2026-01-01T12:12:00Z");
        let clock = Clock { late_us: Some(wm), evict_us: Some(wm) };
        let out = p
            .step(&b, &schema, out.state, Some(out.state_schema), clock, OutputMode::Update)
            .await
            .unwrap();
        assert_eq!(out.metrics.num_rows_dropped_by_watermark, 1);
        let t = text(&out);
        assert!(t.contains("12:05:00Z, end: 2026-01-01T12:15:00Z} | 2"), "{t}");
    }

    #[tokio::test]
    async fn sessions_merge_when_a_row_bridges_them() {
        let p = plan(&["k", "session_window(t, '5 minutes')"]);
        let (schema, b) = events(&[("u1", "2026-01-01T12:00:00Z"), ("u1", "2026-01-01T12:08:00Z")]);
        let out =
            p.step(&b, &schema, vec![], None, Clock::none(), OutputMode::Complete).await.unwrap();
        assert_eq!(count_rows(&out.rows), 2, "{}", text(&out));
        let (_, b) = events(&[("u1", "2026-01-01T12:04:00Z")]);
        let out = p
            .step(
                &b,
                &schema,
                out.state,
                Some(out.state_schema),
                Clock::none(),
                OutputMode::Complete,
            )
            .await
            .unwrap();
        let t = text(&out);
        assert_eq!(count_rows(&out.rows), 1, "{t}");
        assert!(t.contains("{start: 2026-01-01T12:00:00Z, end: 2026-01-01T12:13:00Z} | 3"), "{t}");
    }

    #[test]
    fn unsupported_aggregates_and_bad_windows_say_what_works() {
        let err = AggPlan::parse(
            &Aggregate { group_by: vec![], aggregates: vec!["count(DISTINCT x) AS d".into()] },
            None,
        )
        .unwrap_err();
        assert!(err.contains("count, sum, min, max and avg"), "{err}");
        let err = parse_window("window(t, 5)").unwrap_err();
        assert!(err.contains("quoted"), "{err}");
        assert_eq!(
            parse_window("window(t, '1 minute')").unwrap(),
            Some(WindowSpec::Tumbling { column: "t".into(), size_us: 60_000_000 })
        );
    }
}
