//! Generator source: synthetic demo users at a steady rate (like Spark's `rate` source).
//!
//! Row `n` depends only on the seed and `n`, so any offset range can be generated again: the
//! source is replayable, as exactly-once needs. Columns are built as Arrow arrays directly.

use std::sync::Arc;
use std::time::Instant;

use arrow::array::{
    ArrayRef, Int64Array, ListBuilder, RecordBatch, StringBuilder, StructArray,
    TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::model::NodeId;
use crate::model::node::{GeneratorSource, ParseMode};

use super::super::Result;
use super::super::checkpoint::SourceOffset;
use super::super::demo_data::{random_user, user_id};
use super::stream_source::{SourceData, offset_mismatch};

pub fn schema() -> SchemaRef {
    let skills = DataType::List(Arc::new(Field::new("element", DataType::Utf8, true)));
    Arc::new(Schema::new(vec![
        Field::new("uuid", DataType::Utf8, true),
        Field::new("id", DataType::Int64, true),
        Field::new("first_name", DataType::Utf8, true),
        Field::new("last_name", DataType::Utf8, true),
        Field::new("date_of_birth", DataType::Utf8, true),
        Field::new("gender", DataType::Utf8, true),
        Field::new("email", DataType::Utf8, true),
        Field::new(
            "employment",
            DataType::Struct(Fields::from(vec![
                Field::new("title", DataType::Utf8, true),
                Field::new("keySkills", skills, true),
            ])),
            true,
        ),
        // event time: when the user signed up (rows arrive in signup order, at the rate)
        Field::new(
            "signup_time",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
    ]))
}

/// Event times of generated rows: `[row, ms]` means row `row` signed up at `ms`, and each
/// following row `1000 / rows_per_second` ms later.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Clock {
    pub anchor: [i64; 2],
    pub rows_per_second: u64,
}

impl Clock {
    fn micros(&self, n: u64) -> i64 {
        let [row, ms] = self.anchor;
        ms * 1000 + (n as i64 - row) * 1_000_000 / self.rows_per_second.max(1) as i64
    }
}

/// Rows `start..end` as batches of at most `batch_rows`, with event times from `clock`.
pub fn generate(
    seed: u64,
    start: u64,
    end: u64,
    batch_rows: usize,
    clock: Clock,
) -> Result<Vec<RecordBatch>> {
    let mut out = Vec::new();
    let mut n = start;
    while n < end {
        let stop = end.min(n + batch_rows as u64);
        out.push(generate_batch(seed, n, stop, clock)?);
        n = stop;
    }
    Ok(out)
}

fn generate_batch(seed: u64, start: u64, end: u64, clock: Clock) -> Result<RecordBatch> {
    let schema = schema();
    let mut uuid = StringBuilder::new();
    let mut ids = Vec::with_capacity((end - start) as usize);
    let mut first = StringBuilder::new();
    let mut last = StringBuilder::new();
    let mut dob = StringBuilder::new();
    let mut gender = StringBuilder::new();
    let mut email = StringBuilder::new();
    let mut title = StringBuilder::new();
    let mut skills = ListBuilder::new(StringBuilder::new()).with_field(Arc::new(Field::new(
        "element",
        DataType::Utf8,
        true,
    )));
    for n in start..end {
        let mut rng = StdRng::seed_from_u64(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ n);
        let u = random_user(&mut rng, n);
        debug_assert_eq!(u.id, user_id(n));
        uuid.append_value(&u.uuid);
        ids.push(u.id);
        first.append_value(u.first_name);
        last.append_value(u.last_name);
        dob.append_value(&u.date_of_birth);
        gender.append_value(u.gender);
        email.append_value(&u.email);
        title.append_value(u.employment.title);
        for s in &u.employment.key_skills {
            skills.values().append_value(s);
        }
        skills.append(true);
    }
    let DataType::Struct(emp_fields) = schema.field(7).data_type().clone() else {
        unreachable!("employment is a struct")
    };
    let skills: ArrayRef = Arc::new(skills.finish());
    let employment = StructArray::try_new(
        emp_fields.clone(),
        vec![Arc::new(title.finish()) as ArrayRef, skills],
        None,
    )?;
    Ok(RecordBatch::try_new(
        schema,
        vec![
            Arc::new(uuid.finish()),
            Arc::new(Int64Array::from(ids)),
            Arc::new(first.finish()),
            Arc::new(last.finish()),
            Arc::new(dob.finish()),
            Arc::new(gender.finish()),
            Arc::new(email.finish()),
            Arc::new(employment),
            Arc::new(
                TimestampMicrosecondArray::from_iter_values((start..end).map(|n| clock.micros(n)))
                    .with_timezone("UTC"),
            ),
        ],
    )?)
}

/// A generator source's state between batches.
pub(crate) struct GeneratorStream {
    node: NodeId,
    seed: u64,
    rows_per_second: u64,
    max_rows: Option<u64>,
    next: u64,
    run_start: Instant,
    run_start_row: u64,
    bound: Option<u64>,
    /// This run's event-time anchor `[row, ms]` (re-anchored to the wall clock at each start).
    anchor: [i64; 2],
}

impl GeneratorStream {
    pub fn new(node: NodeId, cfg: &GeneratorSource) -> Self {
        Self {
            node,
            seed: cfg.seed,
            rows_per_second: cfg.rows_per_second,
            max_rows: cfg.max_rows,
            next: 0,
            run_start: Instant::now(),
            run_start_row: 0,
            bound: None,
            anchor: [0, super::super::checkpoint::now_ms()],
        }
    }

    pub fn node(&self) -> &NodeId {
        &self.node
    }

    pub fn describe(&self) -> String {
        format!("generator:seed={}", self.seed)
    }

    pub fn backlog(&self) -> u64 {
        0
    }

    /// Marks a batch's rows as generated.
    pub fn advance(&mut self, offset: &SourceOffset) {
        if let SourceOffset::Generator { end, .. } = offset {
            self.next = self.next.max(*end);
        }
    }

    /// The rate counts from now, from the next row to generate.
    pub fn restart_clock(&mut self) {
        self.run_start = Instant::now();
        self.run_start_row = self.next;
        self.anchor = [self.next as i64, super::super::checkpoint::now_ms()];
    }

    /// availableNow: up to `max_rows`, or one second's worth of rows.
    pub fn bind_available_now(&mut self) -> Result<()> {
        self.bound = Some(self.max_rows.unwrap_or(self.next + self.rows_per_second));
        Ok(())
    }

    /// The rows due since the run started, at most ten seconds' worth.
    pub fn plan_next(&mut self) -> Result<SourceOffset> {
        let end = match self.bound {
            Some(b) => b,
            None => {
                let due = self.run_start_row
                    + (self.run_start.elapsed().as_secs_f64() * self.rows_per_second as f64) as u64;
                self.max_rows.map_or(due, |m| due.min(m))
            }
        };
        // bounded batches: at most ten seconds' worth of rows at a time
        let end = end.min(self.next + (self.rows_per_second * 10).max(1));
        Ok(SourceOffset::Generator {
            start: self.next,
            end: end.max(self.next),
            time_anchor: Some(self.anchor),
        })
    }

    /// Generates exactly the rows of `offset`.
    pub fn read(&self, ctx: &SessionContext, offset: &SourceOffset) -> Result<SourceData> {
        let SourceOffset::Generator { start, end, time_anchor } = offset else {
            return Err(offset_mismatch(offset, &self.describe()));
        };
        // checkpoints from before event times: the rows' times count from the epoch
        let clock =
            Clock { anchor: time_anchor.unwrap_or([0, 0]), rows_per_second: self.rows_per_second };
        let batches = generate(self.seed, *start, *end, 8192, clock)?;
        let df = ctx.read_table(Arc::new(MemTable::try_new(schema(), vec![batches])?))?;
        Ok(SourceData { df, rows: end - start, bad: Vec::new(), mode: ParseMode::Permissive })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_replayable() {
        let clock = Clock { anchor: [0, 1_000], rows_per_second: 10 };
        let a = generate(7, 0, 100, 30, clock).unwrap();
        assert_eq!(a.iter().map(RecordBatch::num_rows).collect::<Vec<_>>(), [30, 30, 30, 10]);
        let b = generate(7, 60, 70, 100, clock).unwrap();
        assert_eq!(b[0], a[2].slice(0, 10));
        // row 60 signed up 6 s after row 0
        let t = b[0].column(8).as_any().downcast_ref::<TimestampMicrosecondArray>().unwrap();
        assert_eq!(t.value(0), 7_000_000);
    }
}
