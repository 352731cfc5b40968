//! The stream of a Distinct / Deduplicate (`distinct.rs`): rows whose key is new pass at once,
//! in input order, while the keys seen fit in memory. Once their index outgrows it
//! (`Seen::outgrown`: ~1M keys, or the memory pool refuses), the keys seen so far become a
//! fixed filter and each later row that passes it goes to one of `DISTINCT_PARTS` spill files
//! by the hash of its key (`spill_parts.rs`); when the input ends, the filter is dropped and
//! each part is de-duplicated on its own, in input order. A key's rows all land in one part,
//! so the first row of each key is kept, as before, and memory holds the filter plus one
//! part's keys: users_batch on 10M users keeps ~1/16th of the later keys at a time, not 10M.
//! The rows of the parts come out part by part, after the others (a batch Distinct has no
//! order; Spark's has none either).

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::error::Result as DfResult;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion::physical_plan::metrics::ExecutionPlanMetricsSet;
use futures::StreamExt;

use super::distinct_keys::Seen;
use super::spill_parts::{SpillParts, SpilledParts};

/// Parts the rows after the switch are split into: each holds ~1/16th of their keys.
const DISTINCT_PARTS: usize = 16;
/// Key bytes a part keeps in memory before they spill (the filter is gone by then): 10M
/// users' parts hold ~110 MB each, written to a second spill file and never read back
/// (~0.9 GB of writes) with the 64 MB of a whole input.
const PART_KEYS_IN_MEMORY: usize = 128 << 20;

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
    /// Reading the input; `parts` once the keys outgrew memory (`seen` is then a fixed filter).
    Reading {
        input: SendableRecordBatchStream,
        seen: Seen,
        parts: Option<SpillParts>,
    },
    /// De-duplicating part `next - 1` (`current`), then the next ones.
    Parts {
        spilled: SpilledParts,
        next: usize,
        current: Option<(SendableRecordBatchStream, Seen)>,
    },
    Done,
}

/// The rows of `input` whose key was not seen before.
pub(super) fn dedupe(
    input: SendableRecordBatchStream,
    d: Dedupe,
) -> DfResult<impl futures::Stream<Item = DfResult<RecordBatch>> + Send> {
    let state = State::Reading { input, seen: (d.new_seen)()?, parts: None };
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
                State::Reading { mut input, mut seen, mut parts } => {
                    let Some(batch) = input.next().await else {
                        let Some(parts) = parts else { return Ok(None) };
                        drop(seen);
                        state = State::Parts { spilled: parts.finish()?, next: 0, current: None };
                        continue;
                    };
                    let batch = batch?;
                    if let Some(p) = parts.as_mut() {
                        let (new, hashes) = seen.unseen(&batch, &self.keys)?;
                        p.push(&new, &hashes)?;
                        State::Reading { input, seen, parts }
                    } else {
                        let out = seen.first_seen(&batch, &self.keys)?;
                        if seen.outgrown() {
                            parts = Some(SpillParts::new(
                                Arc::clone(&self.env),
                                Arc::clone(&self.schema),
                                DISTINCT_PARTS,
                                "Distinct rows past the keys in memory",
                                &self.metrics,
                                0,
                            ));
                        }
                        let state = State::Reading { input, seen, parts };
                        if out.num_rows() > 0 {
                            return Ok(Some((out, state)));
                        }
                        state
                    }
                }
                State::Parts { mut spilled, next, current: None } => {
                    if next == spilled.parts() {
                        return Ok(None);
                    }
                    let part = spilled.read(next)?;
                    let seen = (self.new_seen)()?.with_keys_in_memory(PART_KEYS_IN_MEMORY);
                    State::Parts { spilled, next: next + 1, current: Some((part, seen)) }
                }
                State::Parts { spilled, next, current: Some((mut part, mut seen)) } => {
                    let Some(batch) = part.next().await else {
                        // this part is done: its keys are dropped before the next one's
                        state = State::Parts { spilled, next, current: None };
                        continue;
                    };
                    let out = seen.first_seen(&batch?, &self.keys)?;
                    let state = State::Parts { spilled, next, current: Some((part, seen)) };
                    if out.num_rows() > 0 {
                        return Ok(Some((out, state)));
                    }
                    state
                }
                State::Done => return Ok(None),
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use arrow::array::{Array, Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use arrow::row::{RowConverter, SortField};
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
            let fields = vec![SortField::new(DataType::Int64), SortField::new(DataType::Utf8)];
            let reservation = MemoryConsumer::new("t").register(&pool);
            let seen = Seen::new(RowConverter::new(fields)?, reservation, Arc::clone(&disk));
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
