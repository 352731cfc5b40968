//! Reading exact offset ranges with one assignment kept from batch to batch. librdkafka goes
//! on fetching while a batch is decoded and written, and what a read polls past its range's end
//! waits in a per-partition carry for the next range instead of being dropped and fetched
//! again. Before, each read assigned and unassigned its partitions, so every batch started
//! with an empty fetch queue (music_kafka, 1M messages: batches waited 400–1,000 ms for it).
//! Sources on plaintext brokers without librdkafka settings read through `kafka_fetch` instead.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::Int64Type;
use rdkafka::consumer::Consumer;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use super::super::{EngineError, Result};
use super::kafka::{parse_tp_key, tp_key};
use super::kafka_arrivals::Arrivals;
use super::kafka_batch::{BatchBuilder, OFFSET_COLUMN, VALUE_COLUMN};
use super::kafka_client::{FETCH_STALL, KafkaClient, kafka_err, take_queued};
use super::kafka_fetch::Range;

/// Messages per batch handed to the plan.
pub(super) const BATCH_ROWS: usize = 8192;
/// Payload bytes the reads may keep for later ranges (one partition far ahead of another):
/// past it the carry is dropped and the next read assigns afresh at its starts, fetching again
/// what was dropped.
const CARRY_MAX_BYTES: usize = 64 << 20;

/// A partition the consumer is assigned to.
struct Assigned {
    topic: String,
    partition: i32,
    /// Where the consumer stands in this partition: the start it was assigned at, then the end
    /// of each completed read. A read that starts here continues the assignment.
    read_to: Option<i64>,
    /// Messages polled past `read_to`, in offset order.
    carry: VecDeque<RecordBatch>,
    pending: BatchBuilder,
    carry_bytes: usize,
}

impl Assigned {
    fn new(topic: &str, partition: i32, include_headers: bool) -> Self {
        Self {
            topic: topic.to_owned(),
            partition,
            read_to: None,
            carry: VecDeque::new(),
            pending: BatchBuilder::new(include_headers),
            carry_bytes: 0,
        }
    }

    /// Keeps a message past this read's range; the payload bytes it added.
    fn keep<M: Message>(&mut self, msg: &M) -> Result<usize> {
        let bytes = msg.payload().map_or(0, <[u8]>::len);
        self.carry_bytes += bytes;
        self.pending.push(msg, &self.topic);
        if self.pending.len() >= BATCH_ROWS {
            self.carry.push_back(self.pending.finish()?);
        }
        Ok(bytes)
    }

    /// Moves the kept rows with offsets below `end` to `out`; true when the range is complete
    /// (a kept row at or past its last offset).
    fn take(&mut self, end: i64, out: &mut Vec<RecordBatch>) -> Result<bool> {
        if self.pending.len() > 0 {
            self.carry.push_back(self.pending.finish()?);
        }
        let mut complete = false;
        while let Some(batch) = self.carry.pop_front() {
            let offsets = batch.column(OFFSET_COLUMN).as_primitive::<Int64Type>();
            let n = offsets.values().partition_point(|&o| o < end);
            if n > 0 {
                complete |= offsets.value(n - 1) + 1 >= end;
                let taken = batch.slice(0, n);
                self.carry_bytes = self.carry_bytes.saturating_sub(payload_bytes(&taken));
                out.push(taken);
            }
            if n < batch.num_rows() {
                self.carry.push_front(batch.slice(n, batch.num_rows() - n));
                complete = true;
                break;
            }
        }
        Ok(complete)
    }
}

fn payload_bytes(batch: &RecordBatch) -> usize {
    let values = batch.column(VALUE_COLUMN).as_binary::<i32>();
    let offsets = values.value_offsets();
    (offsets[offsets.len() - 1] - offsets[0]) as usize
}

/// What the consumer is assigned to between reads.
#[derive(Default)]
pub(super) struct ReadState {
    parts: Vec<Assigned>,
    /// Payload bytes kept by all partitions.
    carried: usize,
    /// Set when the carry outgrew [`CARRY_MAX_BYTES`] and was dropped: the next read assigns
    /// afresh.
    dropped: bool,
}

impl ReadState {
    /// Forgets the assignment (the consumer was unassigned or assigned elsewhere).
    pub(super) fn reset(&mut self) {
        self.parts.clear();
        self.carried = 0;
        self.dropped = false;
    }

    /// Keeps `msg` for partition `i`'s later reads, unless the carry is full (then it is all
    /// dropped, to be fetched again).
    fn keep<M: Message>(&mut self, i: usize, msg: &M) -> Result<()> {
        if self.dropped {
            return Ok(());
        }
        self.carried += self.parts[i].keep(msg)?;
        if self.carried > CARRY_MAX_BYTES {
            for a in &mut self.parts {
                a.carry.clear();
                a.pending = a.pending.empty_like();
                a.carry_bytes = 0;
            }
            self.carried = 0;
            self.dropped = true;
        }
        Ok(())
    }

    fn index(&self, topic: &str, partition: i32) -> Option<usize> {
        self.parts.iter().position(|a| a.partition == partition && a.topic == topic)
    }
}

impl KafkaClient {
    /// Reads exactly `[start, end)` of each partition. A read whose ranges start where the
    /// previous read's ended keeps the assignment (and what it already fetched); any other
    /// read (a replay, a restart, partitions added) assigns at its starts.
    pub fn read(&self, ranges: &BTreeMap<String, [i64; 2]>) -> Result<Vec<RecordBatch>> {
        let mut out = Vec::new();
        self.read_each(ranges, &mut |b| out.push(b))?;
        Ok(out)
    }

    /// [`Self::read`], handing each batch to `emit` as it is built.
    pub fn read_with(
        &self,
        ranges: &BTreeMap<String, [i64; 2]>,
        emit: &mut dyn FnMut(RecordBatch),
    ) -> Result<()> {
        self.read_each(ranges, emit)
    }

    /// Assigns the partitions at `starts` before any read asks for them, so that librdkafka
    /// fetches while the query still takes its end offsets; a first read that starts there
    /// continues the assignment. Nothing when a read has assigned already.
    pub fn assign_ahead(&self, starts: &BTreeMap<String, i64>) -> Result<()> {
        let mut st = self.reader.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // (reads without librdkafka fetch when asked: its consumer would fetch for nobody)
        if !st.parts.is_empty() || self.fetcher.is_some() {
            return Ok(());
        }
        let mut at = Vec::new();
        for (key, start) in starts {
            let (topic, partition) = parse_tp_key(key).ok_or_else(|| {
                EngineError::Config(format!("bad offset key `{key}` in checkpoint"))
            })?;
            at.push((topic, partition, *start));
        }
        self.assign_at(&mut st, &at)
    }

    /// Assigns the consumer to each `(topic, partition, start)` afresh; a read that starts
    /// there continues the assignment. The state lists the partitions only once the consumer is
    /// assigned as it says.
    fn assign_at(&self, st: &mut ReadState, at: &[(&str, i32, i64)]) -> Result<()> {
        st.reset();
        let (mut tpl, mut parts) = (TopicPartitionList::new(), Vec::new());
        for &(topic, partition, start) in at {
            tpl.add_partition_offset(topic, partition, Offset::Offset(start))
                .map_err(|e| kafka_err("cannot assign partitions", e))?;
            let mut part = Assigned::new(topic, partition, self.cfg.include_headers);
            part.read_to = Some(start);
            parts.push(part);
        }
        self.consumer().assign(&tpl).map_err(|e| kafka_err("cannot assign partitions", e))?;
        st.parts = parts;
        Ok(())
    }

    /// [`Self::read`], handing each batch to `arrivals` as soon as it is built (the plan
    /// decodes and writes while the rest is fetched); the read's outcome ends it.
    pub(crate) fn read_into(&self, ranges: &BTreeMap<String, [i64; 2]>, arrivals: &Arrivals) {
        let result = self.read_each(ranges, &mut |b| arrivals.push(b));
        arrivals.finish(&result);
    }

    fn read_each(
        &self,
        ranges: &BTreeMap<String, [i64; 2]>,
        emit: &mut dyn FnMut(RecordBatch),
    ) -> Result<()> {
        let mut wanted = Vec::new();
        for (key, [start, end]) in ranges {
            if end <= start {
                continue;
            }
            let (topic, partition) = parse_tp_key(key).ok_or_else(|| {
                EngineError::Config(format!("bad offset key `{key}` in checkpoint"))
            })?;
            wanted.push((topic, partition, *start, *end));
        }
        if wanted.is_empty() {
            return Ok(());
        }
        if let Some(fetcher) = &self.fetcher {
            let ranges: Vec<_> = wanted
                .iter()
                .map(|&(topic, partition, start, end)| Range { topic, partition, start, end })
                .collect();
            return fetcher.read(&ranges, &|t, p| self.leader(t, p), &self.stopped, emit);
        }
        let mut st = self.reader.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let result = self.read_locked(&mut st, &wanted, emit);
        if result.is_err() {
            st.reset();
            let _ = self.consumer().unassign();
        }
        result
    }

    fn read_locked(
        &self,
        st: &mut ReadState,
        wanted: &[(&str, i32, i64, i64)],
        emit: &mut dyn FnMut(RecordBatch),
    ) -> Result<()> {
        let continues = !st.dropped
            && wanted.iter().all(|(t, p, start, _)| {
                st.index(t, *p).is_some_and(|i| st.parts[i].read_to == Some(*start))
            });
        if !continues {
            let at: Vec<_> = wanted.iter().map(|&(t, p, start, _)| (t, p, start)).collect();
            self.assign_at(st, &at)?;
        }
        // per assigned partition: this read's range, and whether it is complete
        let mut range: Vec<Option<[i64; 2]>> = vec![None; st.parts.len()];
        let mut done = vec![true; st.parts.len()];
        let mut left = 0;
        let mut carried = Vec::new();
        for (topic, partition, start, end) in wanted {
            let i = st.index(topic, *partition).expect("assigned above");
            range[i] = Some([*start, *end]);
            let before = st.parts[i].carry_bytes;
            done[i] = st.parts[i].take(*end, &mut carried)?;
            st.carried -= before - st.parts[i].carry_bytes;
            left += usize::from(!done[i]);
        }
        carried.into_iter().for_each(&mut *emit);
        let mut builder = BatchBuilder::new(self.cfg.include_headers);
        // one topic (the usual case): a message's partition finds its slot, without reading
        // and UTF-8-checking its topic name per message (music_kafka: 0.3% of samples -> 0)
        let one_topic = st.parts.windows(2).all(|w| w[0].topic == w[1].topic);
        let mut last_progress = Instant::now();
        let mut delivered = 0u64;
        let mut polled = Vec::new();
        while left > 0 {
            if self.stopped.load(Ordering::Relaxed) {
                return Err(EngineError::Config("the Kafka stream stopped".into()));
            }
            let came = take_queued(self.consumer(), Duration::from_millis(200), &mut polled);
            let mut error = None;
            // every message polled is kept (in this read or the carry), even past the point
            // where the ranges are complete: librdkafka does not deliver it again
            for one in polled.drain(..) {
                let msg = match one {
                    Ok(msg) => msg,
                    Err(e) => {
                        error = Some(e);
                        continue;
                    }
                };
                let found = if one_topic {
                    st.parts.iter().position(|a| a.partition == msg.partition())
                } else {
                    st.index(msg.topic(), msg.partition())
                };
                let Some(i) = found else { continue };
                delivered += 1;
                let offset = msg.offset();
                match range[i] {
                    Some([start, end]) if offset < end => {
                        if offset >= start {
                            builder.push(&msg, &st.parts[i].topic);
                            if builder.len() >= BATCH_ROWS {
                                emit(builder.finish()?);
                            }
                        }
                    }
                    // past this read's range, or a partition this read does not want
                    _ => st.keep(i, &msg)?,
                }
                if let Some([_, end]) = range[i]
                    && !done[i]
                    && offset + 1 >= end
                {
                    done[i] = true;
                    left -= 1;
                }
            }
            if came && error.is_none() {
                continue;
            }
            // the clock is read when the queue is empty, not once per message
            if delivered > 0 {
                delivered = 0;
                last_progress = Instant::now();
            }
            if !came {
                // offsets that carry no message (transaction markers, aborted records at the
                // end of a range) are never delivered: the consumer's position moving past the
                // range's end says it is done
                left -= self.complete_by_position(st, &range, &mut done);
            }
            if left > 0 && last_progress.elapsed() > FETCH_STALL {
                return Err(match error {
                    Some(e) => kafka_err("reading from Kafka stalled", e),
                    None => {
                        let missing: Vec<String> = (0..done.len())
                            .filter(|&i| !done[i])
                            .map(|i| tp_key(&st.parts[i].topic, st.parts[i].partition))
                            .collect();
                        EngineError::Broker(format!(
                            "no messages from {} for {} s; waiting for the broker",
                            missing.join(", "),
                            FETCH_STALL.as_secs()
                        ))
                    }
                });
            }
        }
        if builder.len() > 0 {
            emit(builder.finish()?);
        }
        for (i, r) in range.iter().enumerate() {
            if let Some([_, end]) = r {
                st.parts[i].read_to = Some(*end);
            }
        }
        Ok(())
    }

    /// Marks complete the ranges the consumer's position has passed; how many it marked.
    fn complete_by_position(
        &self,
        st: &ReadState,
        range: &[Option<[i64; 2]>],
        done: &mut [bool],
    ) -> usize {
        let Ok(positions) = self.consumer().position() else { return 0 };
        let mut marked = 0;
        for e in positions.elements() {
            if let (Offset::Offset(at), Some(i)) = (e.offset(), st.index(e.topic(), e.partition()))
                && let Some([_, end]) = range[i]
                && !done[i]
                && at >= end
            {
                done[i] = true;
                marked += 1;
            }
        }
        marked
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::Timestamp;
    use rdkafka::message::OwnedMessage;

    fn msg(offset: i64) -> OwnedMessage {
        let value = format!("m{offset}").into_bytes();
        OwnedMessage::new(Some(value), None, "t".into(), Timestamp::CreateTime(1), 0, offset, None)
    }

    fn offsets(batches: &[RecordBatch]) -> Vec<i64> {
        let col = |b: &RecordBatch| b.column(OFFSET_COLUMN).as_primitive::<Int64Type>().clone();
        batches.iter().flat_map(|b| col(b).values().to_vec()).collect()
    }

    /// What a read polled past its range is handed to the next ranges in order, sliced at
    /// each range's end, across the builder's batch boundary; a range is complete once a kept
    /// row reaches its end.
    #[test]
    fn kept_messages_go_to_the_next_ranges_exactly() {
        let mut a = Assigned::new("t", 0, true);
        let n = BATCH_ROWS as i64 + 100;
        for o in 10..10 + n {
            a.keep(&msg(o)).unwrap();
        }
        let mut out = Vec::new();
        assert!(a.take(20, &mut out).unwrap(), "rows past 20 are kept: complete");
        assert_eq!(offsets(&out), (10..20).collect::<Vec<_>>());
        out.clear();
        // across the 8,192-row batch boundary
        assert!(a.take(8_250, &mut out).unwrap());
        assert_eq!(offsets(&out), (20..8_250).collect::<Vec<_>>());
        out.clear();
        // more than is kept: the rest must still be fetched
        assert!(!a.take(20_000, &mut out).unwrap());
        assert_eq!(offsets(&out), (8_250..10 + n).collect::<Vec<_>>());
        assert_eq!(a.carry_bytes, 0);
    }

    /// The carry is bounded: past the limit everything kept is dropped and the next read
    /// assigns afresh.
    #[test]
    fn an_outgrown_carry_is_dropped() {
        let mut st = ReadState { parts: vec![Assigned::new("t", 0, true)], ..Default::default() };
        st.parts[0].read_to = Some(0);
        let big = vec![b'x'; 1 << 20];
        let m = |o| {
            OwnedMessage::new(
                Some(big.clone()),
                None,
                "t".into(),
                Timestamp::CreateTime(1),
                0,
                o,
                None,
            )
        };
        for o in 0..64 {
            st.keep(0, &m(o)).unwrap();
        }
        assert!(!st.dropped && st.carried == 64 << 20);
        st.keep(0, &m(64)).unwrap();
        assert!(st.dropped && st.carried == 0 && st.parts[0].carry_bytes == 0);
        let mut out = Vec::new();
        assert!(!st.parts[0].take(100, &mut out).unwrap() && out.is_empty());
    }
}
