//! Rows sent to one of N spill files by a hash of their key, for operators whose state would
//! not fit in memory: they then work one part at a time (a Grace hash join, `grace_join.rs`;
//! Distinct past its key budget, `distinct_stream.rs`). Equal keys hash alike, so each key's
//! rows all land in one part, in input order.
//!
//! Each part gathers its rows in a coalescer and writes Arrow IPC batches of `PART_BATCH_ROWS`
//! through DataFusion's spill manager (temp files of its disk manager, deleted when dropped):
//! what stays in memory is at most one unfinished batch per part.

use std::sync::Arc;

use arrow::array::{BooleanArray, RecordBatch};
use arrow::buffer::{BooleanBuffer, MutableBuffer};
use arrow::compute::{BatchCoalescer, filter_record_batch};
use arrow::datatypes::SchemaRef;
use arrow::ipc::writer::StreamWriter;
use arrow::util::bit_util;
use datafusion::common::hash_utils::{RandomState, create_hashes};
use datafusion::error::Result as DfResult;
use datafusion::execution::SpillFile;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::execution::spill_file::SpillWriter;
use datafusion::physical_expr::PhysicalExprRef;
use datafusion::physical_plan::metrics::{ExecutionPlanMetricsSet, SpillMetrics};
use datafusion::physical_plan::{EmptyRecordBatchStream, SendableRecordBatchStream, SpillManager};
use futures::StreamExt;

/// Rows per batch written to a part, at most: one unfinished batch per part stays in memory.
const PART_BATCH_ROWS: usize = 4096;
/// Bytes per batch written to a part, about, for wide rows (fewer rows then): 32 parts hold
/// ~32 MB whatever the rows' width (users_batch's ~300-byte rows: ~3,400 rows a batch).
const PART_BATCH_BYTES: usize = 1 << 20;

/// The hash that picks a part: its own seed, so that it splits rows that DataFusion's
/// repartition (seed 0) already put in one partition.
const PART_HASH: RandomState = RandomState::with_seed(0x6d65_6461_6c6c_696f);

/// The part of a row whose key hashes to `hash`: high bits, as the low ones pick the bucket
/// of the hash table that later holds the part.
pub(crate) fn part_of(hash: u64, parts: usize) -> usize {
    ((hash >> 40) % parts as u64) as usize
}

/// Hashes of `keys` evaluated on `batch` (as DataFusion's repartition hashes join keys: NULLs
/// alike, so NULL keys meet in one part).
pub(crate) fn key_hashes(
    keys: &[PhysicalExprRef],
    batch: &RecordBatch,
    hashes: &mut Vec<u64>,
) -> DfResult<()> {
    let n = batch.num_rows();
    let arrays =
        keys.iter().map(|k| k.evaluate(batch)?.into_array(n)).collect::<DfResult<Vec<_>>>()?;
    hashes.clear();
    hashes.resize(n, 0);
    create_hashes(&arrays, &PART_HASH, hashes)?;
    Ok(())
}

/// The bytes `batch`'s rows use, not its buffers' capacity: a slice, or a filtered or taken
/// batch, can hold far more than its rows use (counted whole, the parts' estimates made the
/// hybrid join keep fewer parts in memory than fit).
fn used_bytes(batch: &RecordBatch) -> usize {
    batch
        .columns()
        .iter()
        .map(|c| c.to_data().get_slice_memory_size().unwrap_or(c.get_array_memory_size()))
        .sum()
}

/// One part's file: Arrow IPC (stream format), as DataFusion's spill manager reads it.
struct PartFile {
    file: Arc<dyn SpillFile>,
    // unbuffered: each IPC message is one encoded batch (~0.5 MB), a buffer would copy it again
    writer: StreamWriter<Box<dyn SpillWriter>>,
}

/// N spill files being written.
pub(crate) struct SpillParts {
    manager: SpillManager,
    metrics: SpillMetrics,
    env: Arc<RuntimeEnv>,
    what: &'static str,
    schema: SchemaRef,
    files: Vec<Option<PartFile>>,
    /// One per part, made at the first push (their batch size follows its rows' width).
    coalescers: Vec<BatchCoalescer>,
    /// Rows sent to each part.
    rows: Vec<usize>,
    /// Arrow bytes and rows of the batches pushed (a row's average size).
    pushed: (usize, usize),
}

impl SpillParts {
    /// `what` names the files for DataFusion's disk manager ("Grace join build side").
    pub(crate) fn new(
        env: Arc<RuntimeEnv>,
        schema: SchemaRef,
        parts: usize,
        what: &'static str,
        metrics: &ExecutionPlanMetricsSet,
        partition: usize,
    ) -> Self {
        let metrics = SpillMetrics::new(metrics, partition);
        let manager = SpillManager::new(Arc::clone(&env), metrics.clone(), Arc::clone(&schema));
        Self {
            manager,
            metrics,
            env,
            what,
            files: (0..parts).map(|_| None).collect(),
            schema,
            coalescers: Vec::new(),
            rows: vec![0; parts],
            pushed: (0, 0),
        }
    }

    pub(crate) fn parts(&self) -> usize {
        self.files.len()
    }

    /// Sends row `i` of `batch` to part `part_of(hashes[i])`.
    pub(crate) fn push(&mut self, batch: &RecordBatch, hashes: &[u64]) -> DfResult<()> {
        self.push_but(batch, hashes, &[]).map(|_| ())
    }

    /// Sends row `i` of `batch` to part `part_of(hashes[i])` unless `kept[part]`: those rows
    /// are returned instead, in order.
    pub(crate) fn push_but(
        &mut self,
        batch: &RecordBatch,
        hashes: &[u64],
        kept: &[bool],
    ) -> DfResult<RecordBatch> {
        let n = batch.num_rows();
        let parts = self.parts();
        let used = used_bytes(batch);
        if self.coalescers.is_empty() && n > 0 {
            let row_bytes = (used / n).max(1);
            let rows = (PART_BATCH_BYTES / row_bytes).clamp(16, PART_BATCH_ROWS);
            self.coalescers =
                (0..parts).map(|_| BatchCoalescer::new(Arc::clone(&self.schema), rows)).collect();
        }
        let is_kept = |p: usize| kept.get(p).copied().unwrap_or(false);
        // one bitmap per part, the kept rows' last: bits set in one pass (as `Vec<bool>`s
        // packed per part, this was ~1.5% of users_batch's CPU on 10M users)
        let mut masks: Vec<MutableBuffer> =
            (0..=parts).map(|_| MutableBuffer::new_null(n)).collect();
        let mut counts = vec![0usize; parts + 1];
        for (i, &h) in hashes.iter().enumerate() {
            let p = part_of(h, parts);
            let p = if is_kept(p) { parts } else { p };
            bit_util::set_bit(masks[p].as_slice_mut(), i);
            counts[p] += 1;
        }
        let keep = masks.pop().expect("the kept rows' bitmap");
        let kept_rows = counts.pop().expect("the kept rows' count");
        self.pushed.0 += used;
        self.pushed.1 += n;
        for (p, mask) in masks.into_iter().enumerate() {
            self.rows[p] += counts[p];
            match counts[p] {
                0 => continue,
                c if c == n => self.coalescers[p].push_batch(batch.clone())?,
                _ => {
                    let mask = BooleanArray::new(BooleanBuffer::new(mask.into(), 0, n), None);
                    self.coalescers[p].push_batch_with_filter(batch.clone(), &mask)?;
                }
            }
            self.write_completed(p)?;
        }
        self.metrics.spilled_rows.add(n - kept_rows);
        match kept_rows {
            0 => Ok(batch.slice(0, 0)),
            k if k == n => Ok(batch.clone()),
            _ => {
                let keep = BooleanArray::new(BooleanBuffer::new(keep.into(), 0, n), None);
                Ok(filter_record_batch(batch, &keep)?)
            }
        }
    }

    fn write_completed(&mut self, p: usize) -> DfResult<()> {
        while let Some(done) = self.coalescers[p].next_completed_batch() {
            let part = match &mut self.files[p] {
                Some(part) => part,
                slot => {
                    let file = self.env.disk_manager.create_tmp_file(self.what)?;
                    self.metrics.spill_file_count.add(1);
                    let writer = StreamWriter::try_new(file.open_writer()?, &done.schema())?;
                    slot.insert(PartFile { file, writer })
                }
            };
            part.writer.write(&done)?;
        }
        Ok(())
    }

    /// Writes what each part still holds and closes the files.
    pub(crate) fn finish(mut self) -> DfResult<SpilledParts> {
        let mut done = Vec::with_capacity(self.parts());
        for p in 0..self.parts() {
            if let Some(coalescer) = self.coalescers.get_mut(p) {
                coalescer.finish_buffered_batch()?;
                self.write_completed(p)?;
            }
            done.push(match self.files[p].take() {
                Some(mut part) => {
                    part.writer.finish()?;
                    part.writer.into_inner()?.finish()?;
                    Some(part.file)
                }
                None => None,
            });
        }
        // each part's bytes in memory, by the average row of the batches pushed
        let per_row = self.pushed.0 / self.pushed.1.max(1);
        let bytes = self.rows.iter().map(|&r| r.saturating_mul(per_row)).collect();
        Ok(SpilledParts { manager: self.manager, files: done, bytes })
    }
}

/// The finished parts, read back one at a time.
pub(crate) struct SpilledParts {
    manager: SpillManager,
    files: Vec<Option<Arc<dyn SpillFile>>>,
    /// Each part's estimated bytes in memory.
    bytes: Vec<usize>,
}

impl SpilledParts {
    pub(crate) fn parts(&self) -> usize {
        self.files.len()
    }

    /// The first parts whose bytes fit in `budget` together.
    pub(crate) fn fitting(&self, budget: usize) -> Vec<bool> {
        let mut total: usize = 0;
        self.bytes
            .iter()
            .map(|&b| {
                total = total.saturating_add(b);
                total <= budget
            })
            .collect()
    }

    /// The rows of the parts marked in `which`, one part after another.
    pub(crate) fn read_many(&mut self, which: &[bool]) -> DfResult<SendableRecordBatchStream> {
        let schema = Arc::clone(self.manager.schema());
        let parts = (0..self.parts())
            .filter(|&p| which.get(p).copied().unwrap_or(false))
            .map(|p| self.read(p))
            .collect::<DfResult<Vec<_>>>()?;
        let rows = futures::stream::iter(parts).flatten();
        Ok(Box::pin(datafusion::physical_plan::stream::RecordBatchStreamAdapter::new(schema, rows)))
    }

    /// Part `p`'s rows, in the order they were pushed; its file is deleted once the stream
    /// and this are dropped.
    pub(crate) fn read(&mut self, p: usize) -> DfResult<SendableRecordBatchStream> {
        match self.files[p].take() {
            Some(file) => self.manager.read_spill_as_stream(file, None),
            None => Ok(Box::pin(EmptyRecordBatchStream::new(Arc::clone(self.manager.schema())))),
        }
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{Array, Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use datafusion::physical_expr::expressions::Column;
    use futures::TryStreamExt;

    use super::*;

    /// Every row lands in exactly one part, each key's rows in one part and in input order,
    /// non-ASCII strings intact.
    #[tokio::test]
    async fn rows_land_once_by_key_in_input_order() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, true),
            Field::new("s", DataType::Utf8, false),
        ]));
        let batch = |from: i64| {
            let ks: Vec<Option<i64>> =
                (from..from + 1000).map(|i| (i % 7 != 0).then_some(i % 97)).collect();
            let ss: Vec<String> = (from..from + 1000).map(|i| format!("行 {i}")).collect();
            RecordBatch::try_new(
                Arc::clone(&schema),
                vec![Arc::new(Int64Array::from(ks)), Arc::new(StringArray::from(ss))],
            )
            .unwrap()
        };
        let keys: Vec<PhysicalExprRef> = vec![Arc::new(Column::new("k", 0))];
        let env = Arc::new(RuntimeEnv::default());
        let metrics = ExecutionPlanMetricsSet::new();
        let mut parts = SpillParts::new(env, Arc::clone(&schema), 5, "test", &metrics, 0);
        let mut hashes = Vec::new();
        for from in [0, 1000, 2000, 3000, 4000, 5000, 6000, 7000, 8000, 9000] {
            let b = batch(from);
            key_hashes(&keys, &b, &mut hashes).unwrap();
            parts.push(&b, &hashes).unwrap();
        }
        let mut spilled = parts.finish().unwrap();
        let mut seen_in = std::collections::HashMap::new();
        let mut total = 0;
        for p in 0..spilled.parts() {
            let batches: Vec<RecordBatch> = spilled.read(p).unwrap().try_collect().await.unwrap();
            let mut last = -1i64;
            for b in &batches {
                let k = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
                let s = b.column(1).as_any().downcast_ref::<StringArray>().unwrap();
                for i in 0..b.num_rows() {
                    let n: i64 = s.value(i).strip_prefix("行 ").unwrap().parse().unwrap();
                    assert!(n > last, "input order within a part");
                    last = n;
                    let key = (!k.is_null(i)).then(|| k.value(i));
                    assert_eq!(key, (n % 7 != 0).then_some(n % 97));
                    assert_eq!(*seen_in.entry(key).or_insert(p), p, "key {key:?} in one part");
                }
                total += b.num_rows();
            }
        }
        assert_eq!(total, 10_000);
        assert!(seen_in.len() == 98, "97 keys and NULL");
        let parts_used: std::collections::HashSet<_> = seen_in.values().collect();
        assert!(parts_used.len() > 1, "keys spread over parts");
    }

    /// A part's bytes count what its rows use: 100 rows sliced from a 10 MB batch are ~10 KB,
    /// and fit in a 1 MB budget (counted by their buffers, they were 10 MB).
    #[test]
    fn a_slice_counts_its_rows_bytes() {
        let schema = Arc::new(Schema::new(vec![Field::new("s", DataType::Utf8, false)]));
        let values: Vec<String> = (0..100_000).map(|i| format!("{i:0100}")).collect();
        let batch =
            RecordBatch::try_new(Arc::clone(&schema), vec![Arc::new(StringArray::from(values))])
                .unwrap();
        let env = Arc::new(RuntimeEnv::default());
        let metrics = ExecutionPlanMetricsSet::new();
        let mut parts = SpillParts::new(env, schema, 2, "test", &metrics, 0);
        parts.push(&batch.slice(500, 100), &[0; 100]).unwrap();
        assert_eq!(parts.finish().unwrap().fitting(1 << 20), vec![true, true]);
    }

    /// Wide rows (64 KiB each) are written in batches of ~1 MB, not of 4,096 rows (256 MB
    /// per part in memory): every row comes back.
    #[tokio::test]
    async fn wide_rows_go_in_small_batches() {
        let schema = Arc::new(Schema::new(vec![Field::new("s", DataType::Utf8, false)]));
        let wide: Vec<String> =
            (0..200).map(|i| format!("{i:05}{}", "é".repeat(32 << 10))).collect();
        let batch =
            RecordBatch::try_new(Arc::clone(&schema), vec![Arc::new(StringArray::from(wide))])
                .unwrap();
        let env = Arc::new(RuntimeEnv::default());
        let metrics = ExecutionPlanMetricsSet::new();
        let mut parts = SpillParts::new(env, Arc::clone(&schema), 4, "test", &metrics, 0);
        let hashes: Vec<u64> = (0..200u64).map(|i| i << 40).collect();
        parts.push(&batch, &hashes).unwrap();
        let mut spilled = parts.finish().unwrap();
        let mut rows = 0;
        for p in 0..spilled.parts() {
            let batches: Vec<RecordBatch> = spilled.read(p).unwrap().try_collect().await.unwrap();
            assert!(batches.iter().all(|b| b.num_rows() <= 16), "part {p}: ~1 MB batches");
            rows += batches.iter().map(RecordBatch::num_rows).sum::<usize>();
        }
        assert_eq!(rows, 200);
    }
}
