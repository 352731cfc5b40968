//! The stream of a Distinct / Deduplicate (`distinct.rs`): rows whose key is new pass at once,
//! in input order, while the keys seen fit in memory. Once their index outgrows it
//! (`Seen::outgrown`: ~1M keys, or the memory pool refuses), the keys seen so far go to one of
//! `DISTINCT_PARTS` spill files by their hash and are dropped from memory, and each later row
//! goes to one of as many files by the hash of its key (`spill_parts.rs`). When the input
//! ends, each part is de-duplicated on its own: its keys seen before the split first (their
//! rows were passed already), then its rows, in input order. A key's rows all land in one
//! part, so the first row of each key is kept, as before, and memory holds one part's keys:
//! users_batch on 10M users keeps ~1/32nd of them at a time, not 10M.
//! The rows of the parts come out part by part, after the others (a batch Distinct has no
//! order; Spark's has none either).

use std::sync::Arc;

use arrow::array::{LargeBinaryArray, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::common::internal_err;
use datafusion::error::Result as DfResult;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion::physical_plan::metrics::ExecutionPlanMetricsSet;
use futures::StreamExt;

use super::distinct_keys::Seen;
use super::spill_parts::{SpillParts, SpilledParts};

/// Parts the input is split into past the keys in memory: each holds ~1/32nd of the keys
/// (10M users: ~60 MB of key bytes, within the 64 MB a `Seen` keeps before spilling them; with
/// 16 parts they spilled ~0.9 GB that was never read back).
const DISTINCT_PARTS: usize = 32;

/// What the stream needs besides its state: the key columns, a way to make an empty `Seen`,
/// and where parts are spilled.
pub(super) struct Dedupe {
    pub keys: Vec<usize>,
    pub new_seen: Box<dyn Fn() -> DfResult<Seen> + Send + Sync>,
    pub schema: SchemaRef,
    pub env: Arc<RuntimeEnv>,
    pub metrics: ExecutionPlanMetricsSet,
}

enum State {
    /// Reading the input; `split` once the keys outgrew memory (`seen`, empty, then only
    /// hashes rows).
    Reading {
        input: SendableRecordBatchStream,
        seen: Seen,
        split: Option<Split>,
    },
    /// De-duplicating part `next - 1` (`current`), then the next ones.
    Parts {
        rows: SpilledParts,
        old: SpilledParts,
        next: usize,
        current: Option<(SendableRecordBatchStream, Seen)>,
    },
    Done,
}

/// The parts being written after the split: rows, and the keys seen before it.
struct Split {
    rows: SpillParts,
    old: SpilledParts,
    hashes: Vec<u64>,
}

/// The spilled keys' schema: encoded bytes (`key_bytes.rs`).
fn key_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new("key", DataType::LargeBinary, false)]))
}

/// The rows of `input` whose key was not seen before.
pub(super) fn dedupe(
    input: SendableRecordBatchStream,
    d: Dedupe,
) -> DfResult<impl futures::Stream<Item = DfResult<RecordBatch>> + Send> {
    let state = State::Reading { input, seen: (d.new_seen)()?, split: None };
    Ok(futures::stream::unfold((d, state), |(d, state)| async move {
        match d.step(state).await {
            Ok(Some((batch, state))) => Some((Ok(batch), (d, state))),
            Ok(None) => None,
            Err(e) => Some((Err(e), (d, State::Done))),
        }
    }))
}

impl Dedupe {
    /// The next batch of output rows (never empty), and the state after it.
    async fn step(&self, mut state: State) -> DfResult<Option<(RecordBatch, State)>> {
        loop {
            state = match state {
                State::Reading { mut input, mut seen, mut split } => {
                    let Some(batch) = input.next().await else {
                        let Some(split) = split else { return Ok(None) };
                        drop(seen);
                        let rows = split.rows.finish()?;
                        state = State::Parts { rows, old: split.old, next: 0, current: None };
                        continue;
                    };
                    let batch = batch?;
                    if let Some(s) = split.as_mut() {
                        seen.hash_rows(&batch, &self.keys, &mut s.hashes)?;
                        s.rows.push(&batch, &s.hashes)?;
                        State::Reading { input, seen, split }
                    } else {
                        let out = seen.first_seen(&batch, &self.keys)?;
                        if seen.outgrown() {
                            let full = std::mem::replace(&mut seen, (self.new_seen)()?);
                            split = Some(self.split(full)?);
                        }
                        let state = State::Reading { input, seen, split };
                        if out.num_rows() > 0 {
                            return Ok(Some((out, state)));
                        }
                        state
                    }
                }
                State::Parts { mut rows, mut old, next, current: None } => {
                    if next == rows.parts() {
                        return Ok(None);
                    }
                    let mut seen = (self.new_seen)()?;
                    let mut keys = old.read(next)?;
                    while let Some(batch) = keys.next().await {
                        let batch = batch?;
                        let Some(keys) =
                            batch.column(0).as_any().downcast_ref::<LargeBinaryArray>()
                        else {
                            return internal_err!("Distinct's spilled keys are not binary");
                        };
                        seen.remember(keys)?;
                    }
                    let part = rows.read(next)?;
                    State::Parts { rows, old, next: next + 1, current: Some((part, seen)) }
                }
                State::Parts { rows, old, next, current: Some((mut part, mut seen)) } => {
                    let Some(batch) = part.next().await else {
                        // this part is done: its keys are dropped before the next one's
                        state = State::Parts { rows, old, next, current: None };
                        continue;
                    };
                    let out = seen.first_seen(&batch?, &self.keys)?;
                    let state = State::Parts { rows, old, next, current: Some((part, seen)) };
                    if out.num_rows() > 0 {
                        return Ok(Some((out, state)));
                    }
                    state
                }
                State::Done => return Ok(None),
            };
        }
    }

    /// The keys of `full` sent to parts, and the parts for the rows to come.
    fn split(&self, full: Seen) -> DfResult<Split> {
        let schema = key_schema();
        let mut old = SpillParts::new(
            Arc::clone(&self.env),
            Arc::clone(&schema),
            DISTINCT_PARTS,
            "Distinct keys seen before the split",
            &self.metrics,
            0,
        );
        full.drain_keys(|keys, hashes| {
            let batch = RecordBatch::try_new(Arc::clone(&schema), vec![Arc::new(keys)])?;
            old.push(&batch, hashes)
        })?;
        let rows = SpillParts::new(
            Arc::clone(&self.env),
            Arc::clone(&self.schema),
            DISTINCT_PARTS,
            "Distinct rows after the split",
            &self.metrics,
            0,
        );
        Ok(Split { rows, old: old.finish()?, hashes: Vec::new() })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use arrow::array::{Array, Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use datafusion::execution::disk_manager::DiskManager;
    use datafusion::execution::memory_pool::{MemoryConsumer, MemoryPool, UnboundedMemoryPool};
    use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
    use futures::TryStreamExt;

    use super::*;

    /// 20 batches of 1,000 rows: (id, name, seq) with 5,000 distinct (id, name) keys, NULL
    /// names among them, each key repeated across batches; `seq` is the row's position.
    fn input(schema: &SchemaRef) -> SendableRecordBatchStream {
        let batches: Vec<DfResult<RecordBatch>> = (0..20i64)
            .map(|b| {
                let seq: Vec<i64> = (b * 1000..b * 1000 + 1000).collect();
                let ids: Vec<i64> = seq.iter().map(|i| (i * 7919) % 5000).collect();
                let names: Vec<Option<String>> =
                    ids.iter().map(|id| (id % 13 != 0).then(|| format!("名 ü {id}"))).collect();
                Ok(RecordBatch::try_new(
                    Arc::clone(schema),
                    vec![
                        Arc::new(Int64Array::from(ids)),
                        Arc::new(StringArray::from(names)),
                        Arc::new(Int64Array::from(seq)),
                    ],
                )
                .unwrap())
            })
            .collect();
        Box::pin(RecordBatchStreamAdapter::new(Arc::clone(schema), futures::stream::iter(batches)))
    }

    /// (id, name) → seq of each output row, and the rows spilled to parts.
    async fn run(index_budget: usize) -> (HashMap<(i64, Option<String>), i64>, usize, usize) {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
            Field::new("seq", DataType::Int64, false),
        ]));
        let pool: Arc<dyn MemoryPool> = Arc::new(UnboundedMemoryPool::default());
        let disk = Arc::new(DiskManager::builder().build().unwrap());
        let new_seen = Box::new(move || {
            let types = vec![DataType::Int64, DataType::Utf8];
            let reservation = MemoryConsumer::new("t").register(&pool);
            let seen = Seen::new(types, reservation, Arc::clone(&disk))?;
            Ok(seen.with_index_budget(index_budget))
        });
        let metrics = ExecutionPlanMetricsSet::new();
        let d = Dedupe {
            keys: vec![0, 1],
            new_seen,
            schema: Arc::clone(&schema),
            env: Arc::new(RuntimeEnv::default()),
            metrics: metrics.clone(),
        };
        let out: Vec<RecordBatch> = dedupe(input(&schema), d).unwrap().try_collect().await.unwrap();
        let mut kept = HashMap::new();
        let mut rows = 0;
        for b in &out {
            let id = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
            let name = b.column(1).as_any().downcast_ref::<StringArray>().unwrap();
            let seq = b.column(2).as_any().downcast_ref::<Int64Array>().unwrap();
            for i in 0..b.num_rows() {
                let name = (!name.is_null(i)).then(|| name.value(i).to_owned());
                kept.insert((id.value(i), name), seq.value(i));
                rows += 1;
            }
        }
        let spilled = metrics.clone_inner().spilled_rows().unwrap_or(0);
        (kept, rows, spilled)
    }

    /// Past the index budget the rest of the input goes to parts, and the output is the same
    /// set as in memory: each key once, with the row where it first appeared (`seq` < 5,000:
    /// the ids repeat every 5,000 rows), NULL names a key of their own.
    #[tokio::test]
    async fn keys_past_the_budget_split_into_parts_and_keep_first_rows() {
        let (whole, rows, spilled) = run(usize::MAX).await;
        assert_eq!((whole.len(), rows, spilled), (5000, 5000, 0));
        assert!(whole.values().all(|&seq| seq < 5000), "first rows kept");
        assert!(whole.keys().any(|(_, name)| name.is_none()));
        let (split, rows, spilled) = run(1).await;
        assert!(spilled > 15_000, "rows after the first batch went to parts: {spilled}");
        assert_eq!(rows, 5000, "each key once");
        assert_eq!(split, whole);
    }
}
