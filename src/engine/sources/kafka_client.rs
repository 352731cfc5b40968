//! The Kafka client of the source: one rdkafka consumer that assigns partitions (never joins a
//! group), reads metadata and watermarks, and turns messages into Spark's Kafka columns.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{
    ArrayRef, BinaryBuilder, Int32Builder, Int64Builder, ListBuilder, RecordBatch, StringBuilder,
    StructBuilder, TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, Field};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};

use crate::model::node::KafkaSource;

use super::super::{EngineError, Result};
use super::kafka::{client_config, header_fields, parse_tp_key, schema, tp_key};

/// How long one metadata or watermark request may take before the broker counts as away.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the check of the end offsets at an availableNow start may take.
const PROBE_WAIT: Duration = Duration::from_secs(2);
/// How long a batch may wait for messages that the offsets say exist.
const FETCH_STALL: Duration = Duration::from_secs(20);

fn kafka_err(what: &str, e: rdkafka::error::KafkaError) -> EngineError {
    EngineError::Broker(format!("{what}: {e}"))
}

/// A consumer used for metadata, watermarks and reads; assigns partitions, never joins.
pub struct KafkaClient {
    consumer: BaseConsumer,
    cfg: KafkaSource,
    /// Set when the stream that owns the client ends: a read still running (the read-ahead)
    /// stops at its next poll instead of fetching for nobody.
    stopped: std::sync::atomic::AtomicBool,
}

impl KafkaClient {
    pub fn new(cfg: &KafkaSource, group_id: &str) -> Result<Self> {
        let mut config = client_config(&cfg.bootstrap_servers, &cfg.options)?;
        config
            .set("group.id", group_id)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("enable.partition.eof", "false")
            .set("socket.timeout.ms", "10000")
            .set("fetch.wait.max.ms", "100")
            .set("log_level", "3");
        let consumer: BaseConsumer =
            config.create().map_err(|e| EngineError::Config(format!("bad Kafka settings: {e}")))?;
        Ok(Self { consumer, cfg: cfg.clone(), stopped: Default::default() })
    }

    /// Partitions of the subscribed topics (or those matching the pattern).
    pub fn partitions(&self) -> Result<Vec<(String, i32)>> {
        let md = self
            .consumer
            .fetch_metadata(None, REQUEST_TIMEOUT)
            .map_err(|e| kafka_err("cannot reach the Kafka brokers", e))?;
        let pattern = match &self.cfg.subscribe_pattern {
            Some(p) => Some(regex::Regex::new(&format!("^(?:{p})$")).map_err(|e| {
                EngineError::Config(format!("subscribePattern `{p}` is not a valid regex: {e}"))
            })?),
            None => None,
        };
        let mut out = Vec::new();
        for t in md.topics() {
            let wanted = match &pattern {
                Some(re) => re.is_match(t.name()) && !t.name().starts_with("__"),
                None => self.cfg.subscribe.iter().any(|s| s == t.name()),
            };
            if wanted {
                out.extend(t.partitions().iter().map(|p| (t.name().to_owned(), p.id())));
            }
        }
        for topic in &self.cfg.subscribe {
            if !out.iter().any(|(t, _)| t == topic) {
                return Err(EngineError::Broker(format!(
                    "topic `{topic}` does not exist (yet) on {}",
                    self.cfg.bootstrap_servers
                )));
            }
        }
        out.sort();
        Ok(out)
    }

    /// (low, high) watermarks of one partition.
    pub fn watermarks(&self, topic: &str, partition: i32) -> Result<(i64, i64)> {
        self.consumer
            .fetch_watermarks(topic, partition, REQUEST_TIMEOUT)
            .map_err(|e| kafka_err(&format!("cannot read the offsets of {topic}:{partition}"), e))
    }

    /// (low, high) watermarks of every subscribed partition, by `topic:partition`.
    pub fn all_watermarks(&self) -> Result<BTreeMap<String, (i64, i64)>> {
        let mut marks = BTreeMap::new();
        for (t, p) in self.partitions()? {
            marks.insert(tp_key(&t, p), self.watermarks(&t, p)?);
        }
        Ok(marks)
    }

    /// The end offsets of the partitions in `marks` (`topic:partition` → (low, high)) as the
    /// query's availableNow target: ListOffsets' high watermark, checked by reading from just
    /// before it. On Apache Kafka that read returns the last message and confirms the mark;
    /// brokers such as tansu report the start of the last record batch instead (seen: 1 for
    /// 3,000 messages produced in one batch), and the read finds the batch's real end.
    pub fn end_offsets(
        &self,
        marks: &BTreeMap<String, (i64, i64)>,
    ) -> Result<BTreeMap<String, i64>> {
        let mut ends: BTreeMap<String, i64> =
            marks.iter().map(|(tp, (_, high))| (tp.clone(), *high)).collect();
        let mut tpl = TopicPartitionList::new();
        let mut unseen = std::collections::HashSet::new();
        for (tp, (low, high)) in marks {
            if high <= low {
                continue;
            }
            let (topic, partition) = parse_tp_key(tp)
                .ok_or_else(|| EngineError::Config(format!("bad partition key `{tp}`")))?;
            tpl.add_partition_offset(topic, partition, Offset::Offset(high - 1))
                .map_err(|e| kafka_err("cannot assign partitions", e))?;
            unseen.insert(tp.clone());
        }
        if unseen.is_empty() {
            return Ok(ends);
        }
        self.consumer.assign(&tpl).map_err(|e| kafka_err("cannot assign partitions", e))?;
        let started = Instant::now();
        let mut last = Instant::now();
        // every partition answered and then a quiet spell; a partition whose last offset is a
        // control record (transactions) never answers: its mark stands after PROBE_WAIT
        while started.elapsed() < PROBE_WAIT
            && !(unseen.is_empty() && last.elapsed() > Duration::from_millis(100))
        {
            if let Some(Ok(msg)) = self.consumer.poll(Duration::from_millis(20)) {
                let tp = tp_key(msg.topic(), msg.partition());
                if let Some(end) = ends.get_mut(&tp) {
                    *end = (*end).max(msg.offset() + 1);
                }
                unseen.remove(&tp);
                last = Instant::now();
            }
        }
        let _ = self.consumer.unassign();
        Ok(ends)
    }

    /// Ends reads in progress (see `stopped`).
    pub fn stop(&self) {
        self.stopped.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Reads exactly `[start, end)` of each partition.
    pub fn read(&self, ranges: &BTreeMap<String, [i64; 2]>) -> Result<Vec<RecordBatch>> {
        let mut tpl = TopicPartitionList::new();
        let mut remaining: HashMap<(String, i32), i64> = HashMap::new();
        for (key, [start, end]) in ranges {
            if end <= start {
                continue;
            }
            let (topic, partition) = parse_tp_key(key).ok_or_else(|| {
                EngineError::Config(format!("bad offset key `{key}` in checkpoint"))
            })?;
            tpl.add_partition_offset(topic, partition, Offset::Offset(*start))
                .map_err(|e| kafka_err("cannot assign partitions", e))?;
            remaining.insert((topic.to_owned(), partition), *end);
        }
        let mut builder = BatchBuilder::new();
        if remaining.is_empty() {
            return Ok(Vec::new());
        }
        self.consumer.assign(&tpl).map_err(|e| kafka_err("cannot assign partitions", e))?;
        let mut batches = Vec::new();
        let mut last_progress = Instant::now();
        while !remaining.is_empty() {
            if self.stopped.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = self.consumer.unassign();
                return Err(EngineError::Config("the Kafka stream stopped".into()));
            }
            match self.consumer.poll(Duration::from_millis(200)) {
                Some(Ok(msg)) => {
                    let key = (msg.topic().to_owned(), msg.partition());
                    let Some(&end) = remaining.get(&key) else { continue };
                    if msg.offset() < end {
                        builder.push(&msg);
                        last_progress = Instant::now();
                        if builder.len() >= 8192 {
                            batches.push(builder.finish()?);
                        }
                    }
                    if msg.offset() + 1 >= end {
                        remaining.remove(&key);
                    }
                }
                Some(Err(e)) => {
                    if last_progress.elapsed() > FETCH_STALL {
                        return Err(kafka_err("reading from Kafka stalled", e));
                    }
                }
                None => {
                    // offsets that carry no message (transaction markers, aborted records at
                    // the end of a range) are never delivered: the consumer's position moving
                    // past the range's end says it is done
                    if let Ok(positions) = self.consumer.position() {
                        for e in positions.elements() {
                            let key = (e.topic().to_owned(), e.partition());
                            if let (Offset::Offset(at), Some(&end)) =
                                (e.offset(), remaining.get(&key))
                                && at >= end
                            {
                                remaining.remove(&key);
                            }
                        }
                    }
                    if remaining.is_empty() {
                        break;
                    }
                    if last_progress.elapsed() > FETCH_STALL {
                        let missing: Vec<String> =
                            remaining.keys().map(|(t, p)| tp_key(t, *p)).collect();
                        return Err(EngineError::Broker(format!(
                            "no messages from {} for {} s; waiting for the broker",
                            missing.join(", "),
                            FETCH_STALL.as_secs()
                        )));
                    }
                }
            }
        }
        let _ = self.consumer.unassign();
        if builder.len() > 0 {
            batches.push(builder.finish()?);
        }
        Ok(batches)
    }

    /// Fetches the messages after `starts` (per `topic:partition`) that are there now: until no
    /// message came for `idle` or `max_fetch` has passed, at most `max_total` messages.
    /// Planning from what was fetched, not from ListOffsets, keeps batches right on brokers
    /// whose end offsets lag behind (seen with tansu).
    #[allow(clippy::type_complexity)]
    pub fn fetch_new(
        &self,
        starts: &BTreeMap<String, i64>,
        max_total: Option<u64>,
        idle: Duration,
        max_fetch: Duration,
    ) -> Result<(BTreeMap<String, [i64; 2]>, Vec<RecordBatch>)> {
        let fetch_started = Instant::now();
        let mut ranges: BTreeMap<String, [i64; 2]> =
            starts.iter().map(|(k, s)| (k.clone(), [*s, *s])).collect();
        if starts.is_empty() {
            return Ok((ranges, Vec::new()));
        }
        let mut tpl = TopicPartitionList::new();
        for (key, start) in starts {
            let (topic, partition) = parse_tp_key(key)
                .ok_or_else(|| EngineError::Config(format!("bad partition key `{key}`")))?;
            tpl.add_partition_offset(topic, partition, Offset::Offset(*start))
                .map_err(|e| kafka_err("cannot assign partitions", e))?;
        }
        self.consumer.assign(&tpl).map_err(|e| kafka_err("cannot assign partitions", e))?;
        let mut builder = BatchBuilder::new();
        let mut batches = Vec::new();
        let mut total = 0u64;
        let mut last = Instant::now();
        // the first messages may take a fetch round trip to arrive
        let first_wait = idle.max(Duration::from_millis(500));
        loop {
            if max_total.is_some_and(|m| total >= m) {
                break;
            }
            // a steady stream never goes idle: a batch also ends when its time is up
            if total > 0 && fetch_started.elapsed() > max_fetch {
                break;
            }
            let waited = last.elapsed();
            if waited > if total == 0 { first_wait } else { idle } {
                break;
            }
            match self.consumer.poll(Duration::from_millis(20)) {
                Some(Ok(msg)) => {
                    let key = tp_key(msg.topic(), msg.partition());
                    let Some(range) = ranges.get_mut(&key) else { continue };
                    if msg.offset() < range[1] {
                        continue; // already taken
                    }
                    builder.push(&msg);
                    range[1] = msg.offset() + 1;
                    total += 1;
                    last = Instant::now();
                    if builder.len() >= 8192 {
                        batches.push(builder.finish()?);
                    }
                }
                Some(Err(e)) if total == 0 && waited > first_wait => {
                    return Err(kafka_err("cannot fetch from Kafka", e));
                }
                Some(Err(_)) | None => {}
            }
        }
        let _ = self.consumer.unassign();
        if builder.len() > 0 {
            batches.push(builder.finish()?);
        }
        Ok((ranges, batches))
    }

    /// Commits processed offsets to the consumer group (for lag in external tools only).
    pub fn commit_for_progress(&self, next_offsets: &BTreeMap<String, i64>) {
        let mut tpl = TopicPartitionList::new();
        for (key, next) in next_offsets {
            if let Some((t, p)) = parse_tp_key(key) {
                let _ = tpl.add_partition_offset(t, p, Offset::Offset(*next));
            }
        }
        let _ = self.consumer.commit(&tpl, CommitMode::Async);
    }
}

/// Builds Spark's Kafka columns message by message (columnar builders, no JSON).
struct BatchBuilder {
    key: BinaryBuilder,
    value: BinaryBuilder,
    topic: StringBuilder,
    partition: Int32Builder,
    offset: Int64Builder,
    timestamp: TimestampMicrosecondBuilder,
    timestamp_type: Int32Builder,
    headers: ListBuilder<StructBuilder>,
    rows: usize,
}

impl BatchBuilder {
    fn new() -> Self {
        Self {
            key: BinaryBuilder::new(),
            value: BinaryBuilder::new(),
            topic: StringBuilder::new(),
            partition: Int32Builder::new(),
            offset: Int64Builder::new(),
            timestamp: TimestampMicrosecondBuilder::new().with_timezone("UTC"),
            timestamp_type: Int32Builder::new(),
            headers: ListBuilder::new(StructBuilder::from_fields(header_fields(), 0)).with_field(
                Arc::new(Field::new("element", DataType::Struct(header_fields()), true)),
            ),
            rows: 0,
        }
    }

    fn len(&self) -> usize {
        self.rows
    }

    fn push<M: Message>(&mut self, msg: &M) {
        self.key.append_option(msg.key());
        self.value.append_option(msg.payload());
        self.topic.append_value(msg.topic());
        self.partition.append_value(msg.partition());
        self.offset.append_value(msg.offset());
        let (ts, ty) = match msg.timestamp() {
            rdkafka::Timestamp::NotAvailable => (None, None),
            rdkafka::Timestamp::CreateTime(ms) => (Some(ms * 1000), Some(0)),
            rdkafka::Timestamp::LogAppendTime(ms) => (Some(ms * 1000), Some(1)),
        };
        self.timestamp.append_option(ts);
        self.timestamp_type.append_option(ty);
        match msg.headers() {
            Some(h) => {
                for header in h.iter() {
                    let s = self.headers.values();
                    if let Some(b) = s.field_builder::<StringBuilder>(0) {
                        b.append_value(header.key);
                    }
                    if let Some(b) = s.field_builder::<BinaryBuilder>(1) {
                        b.append_option(header.value);
                    }
                    s.append(true);
                }
                self.headers.append(true);
            }
            None => self.headers.append(false),
        }
        self.rows += 1;
    }

    fn finish(&mut self) -> Result<RecordBatch> {
        self.rows = 0;
        let cols: Vec<ArrayRef> = vec![
            Arc::new(self.key.finish()),
            Arc::new(self.value.finish()),
            Arc::new(self.topic.finish()),
            Arc::new(self.partition.finish()),
            Arc::new(self.offset.finish()),
            Arc::new(self.timestamp.finish()),
            Arc::new(self.timestamp_type.finish()),
            Arc::new(self.headers.finish()),
        ];
        Ok(RecordBatch::try_new(schema(), cols)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_stops_at_its_next_poll_once_the_stream_stops() {
        // nothing listens there: the read would wait for the broker for FETCH_STALL
        let cfg = KafkaSource {
            bootstrap_servers: "127.0.0.1:9".into(),
            subscribe: vec!["t".into()],
            ..KafkaSource::default()
        };
        let client = std::sync::Arc::new(KafkaClient::new(&cfg, "test").unwrap());
        let reader = client.clone();
        let read = std::thread::spawn(move || {
            let started = Instant::now();
            let ranges = BTreeMap::from([(tp_key("t", 0), [0, 10])]);
            (reader.read(&ranges), started.elapsed())
        });
        std::thread::sleep(Duration::from_millis(300));
        client.stop();
        let (result, took) = read.join().unwrap();
        let err = result.unwrap_err().to_string();
        assert!(err.contains("stopped"), "{err}");
        // far sooner than the stall it would otherwise wait out
        assert!(took < FETCH_STALL / 2, "the read ended {took:?} after it started");
    }
}
