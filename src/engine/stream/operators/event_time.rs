//! Event time as Arrow arrays: any timestamp (or date, or ISO text) column read as
//! microseconds since the epoch in UTC, its statistics, and the late-row split. All of it
//! runs as Arrow kernels over whole columns.

use std::sync::Arc;

use arrow::array::{
    Array, BooleanArray, PrimitiveArray, RecordBatch, Scalar, TimestampMicrosecondArray,
};
use arrow::compute::kernels::cmp;
use arrow::compute::{cast, filter_record_batch, not};
use arrow::datatypes::{DataType, TimeUnit, TimestampMicrosecondType};
use serde::{Deserialize, Serialize};

use crate::engine::{EngineError, Result};

/// The type event times are normalised to (Spark's `TIMESTAMP`).
pub fn micros_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// The event-time column of `batch` as microseconds (UTC).
pub fn micros(
    batch: &RecordBatch,
    column: &str,
) -> Result<PrimitiveArray<TimestampMicrosecondType>> {
    let idx = batch.schema().index_of(column).map_err(|_| {
        let names: Vec<String> = batch.schema().fields().iter().map(|f| f.name().clone()).collect();
        EngineError::Config(format!(
            "no event-time column `{column}`; columns are: {}",
            names.join(", ")
        ))
    })?;
    let array = batch.column(idx);
    let as_ts = match array.data_type() {
        DataType::Timestamp(_, _)
        | DataType::Date32
        | DataType::Date64
        | DataType::Utf8
        | DataType::LargeUtf8
        | DataType::Utf8View => cast(array, &micros_type())?,
        other => {
            return Err(EngineError::Config(format!(
                "event-time column `{column}` is {other}, not a TIMESTAMP; cast it first (e.g. a Select with `CAST({column} AS TIMESTAMP) AS {column}`)"
            )));
        }
    };
    as_ts
        .as_any()
        .downcast_ref::<TimestampMicrosecondArray>()
        .cloned()
        .ok_or_else(|| EngineError::Config(format!("cannot read `{column}` as a timestamp")))
}

/// Spark's `eventTime` block of a progress report, in milliseconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EventTimeStats {
    pub min_ms: i64,
    pub max_ms: i64,
    pub avg_ms: i64,
    pub count: u64,
}

impl EventTimeStats {
    pub fn merge(&mut self, other: &EventTimeStats) {
        if other.count == 0 {
            return;
        }
        if self.count == 0 {
            *self = other.clone();
            return;
        }
        let total = self.count + other.count;
        let avg = (self.avg_ms as f64 * self.count as f64
            + other.avg_ms as f64 * other.count as f64)
            / total as f64;
        self.min_ms = self.min_ms.min(other.min_ms);
        self.max_ms = self.max_ms.max(other.max_ms);
        self.avg_ms = avg as i64;
        self.count = total;
    }
}

/// Min, max and average event time over `batches` (nulls ignored); `None` with no values.
pub fn stats(batches: &[RecordBatch], column: &str) -> Result<Option<EventTimeStats>> {
    let mut out = EventTimeStats::default();
    for b in batches {
        let ts = micros(b, column)?;
        let n = (ts.len() - ts.null_count()) as u64;
        if n == 0 {
            continue;
        }
        let (Some(min), Some(max)) = (arrow::compute::min(&ts), arrow::compute::max(&ts)) else {
            continue;
        };
        let sum: f64 = ts.iter().flatten().map(|v| v as f64).sum();
        out.merge(&EventTimeStats {
            min_ms: min.div_euclid(1000),
            max_ms: max.div_euclid(1000),
            avg_ms: (sum / n as f64 / 1000.0) as i64,
            count: n,
        });
    }
    Ok((out.count > 0).then_some(out))
}

/// Splits rows into (kept, late): late when the event time is `<= late_us`. Rows without an
/// event time are kept.
pub fn split_late(
    batches: &[RecordBatch],
    column: &str,
    late_us: Option<i64>,
) -> Result<(Vec<RecordBatch>, Vec<RecordBatch>)> {
    let Some(wm) = late_us else { return Ok((batches.to_vec(), Vec::new())) };
    let mut kept = Vec::with_capacity(batches.len());
    let mut late = Vec::new();
    for b in batches {
        let ts = micros(b, column)?;
        let late_mask = at_or_below(&ts, wm)?;
        let (k, l) = split(b, &late_mask)?;
        kept.push(k);
        if l.num_rows() > 0 {
            late.push(l);
        }
    }
    Ok((kept, late))
}

/// `ts <= bound` per row, with nulls as false.
pub fn at_or_below(
    ts: &PrimitiveArray<TimestampMicrosecondType>,
    bound_us: i64,
) -> Result<BooleanArray> {
    let scalar = TimestampMicrosecondArray::from(vec![bound_us]).with_timezone("UTC");
    let ts = ts.clone().with_timezone("UTC");
    let mask = cmp::lt_eq(&ts, &Scalar::new(&scalar))?;
    Ok(without_nulls(mask))
}

/// `bound <= wm` per row as an Arrow kernel (state whose time bound the watermark has
/// reached); all false without a watermark, and for rows without a bound.
pub fn reached(bounds: &arrow::array::Int64Array, wm: Option<i64>) -> Result<BooleanArray> {
    match wm {
        Some(wm) => {
            let mask = cmp::lt_eq(bounds, &arrow::array::Int64Array::new_scalar(wm))?;
            Ok(without_nulls(mask))
        }
        None => Ok(BooleanArray::from(vec![false; bounds.len()])),
    }
}

/// A mask whose nulls count as false.
pub fn without_nulls(mask: BooleanArray) -> BooleanArray {
    if mask.null_count() == 0 {
        return mask;
    }
    mask.iter().map(|v| Some(v.unwrap_or(false))).collect()
}

/// (rows where `mask` is false, rows where it is true).
pub fn split(batch: &RecordBatch, mask: &BooleanArray) -> Result<(RecordBatch, RecordBatch)> {
    let yes = filter_record_batch(batch, mask)?;
    let no = filter_record_batch(batch, &not(mask)?)?;
    Ok((no, yes))
}

/// Microseconds as a UTC timestamp column.
pub fn timestamps(values: Vec<Option<i64>>) -> Arc<TimestampMicrosecondArray> {
    Arc::new(TimestampMicrosecondArray::from(values).with_timezone("UTC"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::{Field, Schema};

    fn batch(values: Vec<Option<i64>>) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("ts", micros_type(), true)]));
        RecordBatch::try_new(schema, vec![timestamps(values)]).unwrap()
    }

    #[test]
    fn late_rows_are_at_or_below_the_watermark_and_nulls_are_kept() {
        let b = batch(vec![Some(1_000_000), Some(2_000_000), None, Some(3_000_000)]);
        let (kept, late) = split_late(&[b], "ts", Some(2_000_000)).unwrap();
        assert_eq!(kept[0].num_rows(), 2);
        assert_eq!(late[0].num_rows(), 2);
        let s = stats(&kept, "ts").unwrap().unwrap();
        assert_eq!((s.min_ms, s.max_ms, s.count), (3000, 3000, 1));
    }

    #[test]
    fn text_and_other_units_read_as_micros() {
        let schema = Arc::new(Schema::new(vec![Field::new("t", DataType::Utf8, true)]));
        let b = RecordBatch::try_new(
            schema,
            vec![Arc::new(arrow::array::StringArray::from(vec!["1970-01-01T00:00:01Z"]))],
        )
        .unwrap();
        assert_eq!(micros(&b, "t").unwrap().value(0), 1_000_000);
        let err = micros(&b, "nope").unwrap_err().to_string();
        assert!(err.contains("columns are: t"), "{err}");
    }
}
