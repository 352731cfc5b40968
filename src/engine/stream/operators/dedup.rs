//! Streaming deduplication: `dropDuplicates(keys)` and `dropDuplicatesWithinWatermark(keys)`
//! with the keys seen kept in state across micro-batches.
//!
//! As in Spark: the first row of a key is emitted, later ones are dropped and counted
//! (`numDroppedDuplicateRows`). With an event-time column among the keys, rows at or below
//! the previous watermark are late and a key is forgotten once the watermark passes its
//! event time. Within the watermark, a key is remembered until `event time + delay`, and
//! late rows are dropped.
//!
//! State columns: the key columns, then `__exp` (µs; the key is evicted when the watermark
//! reaches it; NULL = kept for ever).

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Int64Array, RecordBatch, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::datasource::MemTable;

use crate::engine::{EngineError, Result};

use super::aggregate::sql_context;
use super::event_time::{self, micros};
use super::{Clock, StateOperatorProgress, StepOutput, count_rows, memory_bytes};

/// A parsed Deduplicate (or Distinct) node in a stream.
#[derive(Clone, Debug, PartialEq)]
pub struct DedupPlan {
    pub keys: Vec<String>,
    /// The watermark's event-time column upstream, if any.
    pub event_time: Option<String>,
    /// `dropDuplicatesWithinWatermark`: remember a key for the watermark delay (µs).
    pub within_watermark_us: Option<i64>,
}

fn q(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

impl DedupPlan {
    /// Whether keys are ever forgotten (otherwise the state grows with every new key).
    pub fn is_bounded(&self) -> bool {
        self.within_watermark_us.is_some() || self.event_time_in_keys()
    }

    fn event_time_in_keys(&self) -> bool {
        self.event_time.as_ref().is_some_and(|t| self.keys.contains(t))
    }

    pub fn fingerprint(&self) -> String {
        format!(
            "deduplicate keys [{}]{}",
            self.keys.join(", "),
            if self.within_watermark_us.is_some() { " within watermark" } else { "" }
        )
    }

    /// One micro-batch: the first row of each key not seen before is emitted.
    pub async fn step(
        &self,
        input: &[RecordBatch],
        input_schema: &SchemaRef,
        state: Vec<RecordBatch>,
        state_schema: Option<SchemaRef>,
        clock: Clock,
    ) -> Result<StepOutput> {
        for k in &self.keys {
            if input_schema.index_of(k).is_err() {
                let names: Vec<String> =
                    input_schema.fields().iter().map(|f| f.name().clone()).collect();
                return Err(EngineError::Config(format!(
                    "no key column `{k}`; columns are: {}",
                    names.join(", ")
                )));
            }
        }
        let drops_late = self.within_watermark_us.is_some() || self.event_time_in_keys();
        let (kept, late) = match (&self.event_time, drops_late) {
            (Some(col), true) => event_time::split_late(input, col, clock.late_us)?,
            _ => (input.to_vec(), Vec::new()),
        };
        // a sequence number fixes "first" as the input order, so a replay keeps the same row
        let mut fields: Vec<Field> =
            input_schema.fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.push(Field::new("__seq", DataType::UInt64, false));
        fields.push(Field::new("__exp", DataType::Int64, true));
        let seq_schema = Arc::new(Schema::new(fields));
        let mut numbered = Vec::with_capacity(kept.len());
        let mut next = 0u64;
        for b in &kept {
            let n = b.num_rows() as u64;
            let exp: Vec<Option<i64>> = match (&self.event_time, self.within_watermark_us) {
                (Some(col), Some(delay)) => {
                    micros(b, col)?.iter().map(|t| t.map(|t| t + delay)).collect()
                }
                (Some(col), None) if self.event_time_in_keys() => micros(b, col)?.iter().collect(),
                _ => vec![None; n as usize],
            };
            let mut cols: Vec<ArrayRef> = b.columns().to_vec();
            cols.push(Arc::new(UInt64Array::from_iter_values(next..next + n)));
            cols.push(Arc::new(Int64Array::from(exp)));
            numbered.push(RecordBatch::try_new(seq_schema.clone(), cols)?);
            next += n;
        }
        let input_rows = next;
        let mut key_fields: Vec<Field> = self
            .keys
            .iter()
            .map(|k| input_schema.field_with_name(k).map(|f| f.clone().with_nullable(true)))
            .collect::<std::result::Result<_, _>>()?;
        key_fields.push(Field::new("__exp", DataType::Int64, true));
        let own_state_schema = Arc::new(Schema::new(key_fields));
        let state_schema = state_schema.unwrap_or_else(|| own_state_schema.clone());
        let ctx = sql_context();
        ctx.register_table("__in", Arc::new(MemTable::try_new(seq_schema, vec![numbered])?))?;
        // the batches are shared (Arc'd arrays): the same state is filtered below
        ctx.register_table(
            "__state",
            Arc::new(MemTable::try_new(state_schema, vec![state.clone()])?),
        )?;
        let keys: Vec<String> = self.keys.iter().map(|k| q(k)).collect();
        let on: Vec<String> =
            keys.iter().map(|k| format!("(f.{k} IS NOT DISTINCT FROM s.{k})")).collect();
        let out_cols: Vec<String> =
            input_schema.fields().iter().map(|f| format!("f.{}", q(f.name()))).collect();
        let sql = format!(
            "WITH b AS (SELECT *, row_number() OVER (PARTITION BY {keys} ORDER BY \"__seq\") AS \"__rn\" FROM \"__in\"), \
             f AS (SELECT * FROM b WHERE \"__rn\" = 1) \
             SELECT {out}, f.\"__exp\" FROM f LEFT ANTI JOIN \"__state\" s ON {on} ORDER BY f.\"__seq\"",
            keys = keys.join(", "),
            out = out_cols.join(", "),
            on = on.join(" AND ")
        );
        let fresh = ctx.sql(&sql).await?.collect().await?;
        let emitted_rows = count_rows(&fresh);
        let n_out = input_schema.fields().len();
        let rows: Vec<RecordBatch> = fresh
            .iter()
            .map(|b| b.project(&(0..n_out).collect::<Vec<_>>()))
            .collect::<std::result::Result<_, _>>()?;
        // the new state: what was kept, plus the new keys, less what the watermark evicts
        let key_idx: Vec<usize> = self
            .keys
            .iter()
            .map(|k| input_schema.index_of(k))
            .chain(std::iter::once(Ok(n_out)))
            .collect::<std::result::Result<_, _>>()?;
        let mut next_state = Vec::new();
        let mut removed = 0u64;
        let state_batches = state;
        let new_keys: Vec<RecordBatch> = fresh
            .iter()
            .map(|b| {
                let projected = b.project(&key_idx)?;
                RecordBatch::try_new(own_state_schema.clone(), projected.columns().to_vec())
            })
            .collect::<std::result::Result<_, _>>()?;
        for b in state_batches.iter().chain(new_keys.iter()) {
            let b = RecordBatch::try_new(own_state_schema.clone(), b.columns().to_vec())?;
            let exp = b
                .column(b.num_columns() - 1)
                .as_any()
                .downcast_ref::<Int64Array>()
                .cloned()
                .ok_or_else(|| EngineError::Config("dedup expiry is not BIGINT".into()))?;
            let evicted = event_time::reached(&exp, clock.evict_us)?;
            removed += evicted.true_count() as u64;
            let (keep, _) = event_time::split(&b, &evicted)?;
            if keep.num_rows() > 0 {
                next_state.push(keep);
            }
        }
        let metrics = StateOperatorProgress {
            operator_name: if self.within_watermark_us.is_some() {
                "dedupeWithinWatermark".into()
            } else {
                "dedupe".into()
            },
            num_rows_total: count_rows(&next_state),
            num_rows_updated: emitted_rows,
            num_rows_removed: removed,
            num_rows_dropped_by_watermark: count_rows(&late),
            num_dropped_duplicate_rows: input_rows - emitted_rows,
            memory_used_bytes: memory_bytes(&next_state),
            ..StateOperatorProgress::default()
        };
        let next_expiry_us = super::min_i64(&next_state, own_state_schema.fields().len() - 1);
        Ok(StepOutput {
            schema: input_schema.clone(),
            rows,
            state: next_state,
            state_schema: own_state_schema,
            late,
            metrics,
            next_expiry_us,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::StringArray;

    fn ts(s: &str) -> i64 {
        chrono::DateTime::parse_from_rfc3339(s).unwrap().timestamp_micros()
    }

    fn rows(data: &[(&str, &str)]) -> (SchemaRef, Vec<RecordBatch>) {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Utf8, true),
            Field::new("t", event_time::micros_type(), true),
        ]));
        let id: Vec<&str> = data.iter().map(|r| r.0).collect();
        let t: Vec<Option<i64>> = data.iter().map(|r| Some(ts(r.1))).collect();
        let b = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(StringArray::from(id)), event_time::timestamps(t)],
        )
        .unwrap();
        (schema, vec![b])
    }

    #[tokio::test]
    async fn keys_are_remembered_across_batches_and_evicted_by_the_watermark() {
        let p = DedupPlan {
            keys: vec!["id".into(), "t".into()],
            event_time: Some("t".into()),
            within_watermark_us: None,
        };
        let (schema, b) = rows(&[("a", "2026-01-01T12:00:00Z"), ("a", "2026-01-01T12:00:00Z")]);
        let out = p.step(&b, &schema, vec![], None, Clock::none()).await.unwrap();
        assert_eq!(count_rows(&out.rows), 1);
        assert_eq!(out.metrics.num_dropped_duplicate_rows, 1);
        let out =
            p.step(&b, &schema, out.state, Some(out.state_schema), Clock::none()).await.unwrap();
        assert_eq!(count_rows(&out.rows), 0, "a duplicate in the next batch is dropped");
        let wm = ts("2026-01-01T12:00:00Z");
        let clock = Clock { late_us: None, evict_us: Some(wm) };
        let out = p.step(&[], &schema, out.state, Some(out.state_schema), clock).await.unwrap();
        assert_eq!(out.metrics.num_rows_total, 0);
        assert_eq!(out.metrics.num_rows_removed, 1);
        let clock = Clock { late_us: Some(wm), evict_us: Some(wm) };
        let out = p.step(&b, &schema, out.state, Some(out.state_schema), clock).await.unwrap();
        assert_eq!(out.metrics.num_rows_dropped_by_watermark, 2, "a late copy is late, not new");
        assert_eq!(count_rows(&out.rows), 0);
    }

    #[tokio::test]
    async fn within_watermark_forgets_a_key_after_the_delay() {
        let p = DedupPlan {
            keys: vec!["id".into()],
            event_time: Some("t".into()),
            within_watermark_us: Some(10 * 60_000_000),
        };
        let (schema, b) = rows(&[("id1", "2026-01-01T12:00:00Z"), ("id1", "2026-01-01T12:05:00Z")]);
        let out = p.step(&b, &schema, vec![], None, Clock::none()).await.unwrap();
        assert_eq!(count_rows(&out.rows), 1);
        assert_eq!(out.next_expiry_us, Some(ts("2026-01-01T12:10:00Z")));
        // a batch whose watermark is 12:20 evicts the key (at its end, as Spark does)
        let wm = ts("2026-01-01T12:20:00Z");
        let clock = Clock { late_us: None, evict_us: Some(wm) };
        let out = p.step(&[], &schema, out.state, Some(out.state_schema), clock).await.unwrap();
        assert_eq!(out.metrics.num_rows_total, 0);
        let (_, b) = rows(&[("id1", "2026-01-01T12:25:00Z")]);
        let clock = Clock { late_us: Some(wm), evict_us: Some(wm) };
        let out = p.step(&b, &schema, out.state, Some(out.state_schema), clock).await.unwrap();
        assert_eq!(count_rows(&out.rows), 1, "the key expired at 12:10");
    }
}
