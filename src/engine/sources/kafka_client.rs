//! The Kafka client of the source: a consumer that assigns partitions (never joins a group) and
//! reads (its exact-range reads are in `kafka_read`), and a second one for metadata,
//! watermarks and progress commits.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use crate::model::node::KafkaSource;

use super::super::{EngineError, Result};
use super::kafka::{client_config, parse_tp_key, tp_key};
use super::kafka_batch::BatchBuilder;
use super::kafka_fetch::Fetcher;
use super::kafka_read::ReadState;

/// librdkafka's `fetch.queue.backoff.ms` for our consumers (its default: 1000).
const FETCH_QUEUE_BACKOFF_MS: &str = "10";
/// How long one metadata or watermark request may take before the broker counts as away.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the check of the end offsets at an availableNow start may take.
const PROBE_WAIT: Duration = Duration::from_secs(2);
/// How long a batch may wait for messages that the offsets say exist.
pub(super) const FETCH_STALL: Duration = Duration::from_secs(20);

/// Messages taken from librdkafka's queue per call (`poll_batch`, vendor/rdkafka): one call
/// per message read the clock three times and built an event and an `Arc` each (music_kafka,
/// 1M messages: the clock reads were 7.4% of the run's CPU samples).
const POLL_BATCH: usize = 1024;

/// Appends what `consumer`'s queue holds now (up to [`POLL_BATCH`], in one call) to `out`, or,
/// when it holds nothing, waits up to `wait` for one message. False when nothing came. The
/// source's reads and the bare consumer of `bench kafka-consume` both read this way.
pub(crate) fn take_queued<'a>(
    consumer: &'a BaseConsumer,
    wait: Duration,
    out: &mut Vec<rdkafka::error::KafkaResult<rdkafka::message::BorrowedMessage<'a>>>,
) -> bool {
    if consumer.poll_batch(Duration::ZERO, POLL_BATCH, out) > 0 {
        return true;
    }
    match consumer.poll(wait) {
        Some(one) => {
            out.push(one);
            true
        }
        None => false,
    }
}

pub(super) fn kafka_err(what: &str, e: rdkafka::error::KafkaError) -> EngineError {
    EngineError::Broker(format!("{what}: {e}"))
}

/// A consumer used for metadata, watermarks and reads; assigns partitions, never joins.
pub struct KafkaClient {
    /// (Both consumers are taken by `drop`, which closes them on a thread of its own.)
    consumer: Option<BaseConsumer>,
    /// Metadata, watermarks and commits on a connection of their own: on the reading
    /// connection they queued behind fetches (tansu answers one request at a time; planning a
    /// batch took 300–400 ms while the read-ahead fetched).
    meta: Option<BaseConsumer>,
    pub(super) cfg: KafkaSource,
    /// The consumers' settings: the availableNow probe makes a consumer of its own with them.
    config: rdkafka::ClientConfig,
    /// Set when the stream that owns the client ends: a read still running (the read-ahead)
    /// stops at its next poll instead of fetching for nobody.
    pub(super) stopped: std::sync::atomic::AtomicBool,
    /// The assignment kept between reads (`kafka_read`).
    pub(super) reader: std::sync::Mutex<ReadState>,
    /// Reads without librdkafka, when the source's settings allow (`kafka_fetch`).
    pub(super) fetcher: Option<Fetcher>,
}

impl Drop for KafkaClient {
    fn drop(&mut self) {
        close_later((self.consumer.take(), self.meta.take()));
    }
}

/// Closes consumers on a thread of their own: rust-rdkafka closes a consumer of a group by
/// polling in 100 ms steps (the end of every run waited 200 ms for it), and nobody needs the
/// close.
pub(crate) fn close_later<T: Send + 'static>(consumers: T) {
    let _ = std::thread::Builder::new().name("kafka-close".into()).spawn(move || drop(consumers));
}

impl KafkaClient {
    /// The consumer that reads (assigned partitions).
    pub(super) fn consumer(&self) -> &BaseConsumer {
        self.consumer.as_ref().expect("the consumers live until the client is dropped")
    }

    fn meta(&self) -> &BaseConsumer {
        self.meta.as_ref().expect("the consumers live until the client is dropped")
    }

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
        // librdkafka stops fetching a partition whose local queue is full and, by default,
        // waits 1 s before it fetches again: a batch processed in 150 ms then waited ~850 ms
        // for its messages (music_kafka, 1M messages). Unless the project sets it.
        if super::kafka::kafka_option(&cfg.options, "fetch.queue.backoff.ms").is_none() {
            config.set("fetch.queue.backoff.ms", FETCH_QUEUE_BACKOFF_MS);
        }
        let create = |config: &rdkafka::ClientConfig| -> Result<BaseConsumer> {
            config.create().map_err(|e| EngineError::Config(format!("bad Kafka settings: {e}")))
        };
        Ok(Self {
            consumer: Some(create(&config)?),
            meta: Some(create(&config)?),
            cfg: cfg.clone(),
            config,
            stopped: Default::default(),
            reader: Default::default(),
            fetcher: Fetcher::for_source(cfg),
        })
    }

    /// Partitions of the subscribed topics (or those matching the pattern).
    pub fn partitions(&self) -> Result<Vec<(String, i32)>> {
        let md = self
            .meta()
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
                    self.servers()
                )));
            }
        }
        out.sort();
        Ok(out)
    }

    /// The bootstrap servers as the consumers were given them (variables expanded).
    pub fn servers(&self) -> String {
        crate::model::env::expand(&self.cfg.bootstrap_servers)
            .unwrap_or_else(|_| self.cfg.bootstrap_servers.clone())
    }

    /// A subscribed topic the brokers answer without (None when they do not answer at all).
    pub fn missing_topic(&self) -> Option<String> {
        let md = self.meta().fetch_metadata(None, REQUEST_TIMEOUT).ok()?;
        let has =
            |s: &String| md.topics().iter().any(|t| t.name() == s && !t.partitions().is_empty());
        self.cfg.subscribe.iter().find(|s| !has(s)).cloned()
    }

    /// True when reads go straight to the brokers (`kafka_fetch`), not through librdkafka.
    pub fn reads_without_librdkafka(&self) -> bool {
        self.fetcher.is_some()
    }

    /// `host:port` of the broker that leads `topic`'s `partition` now.
    pub(super) fn leader(&self, topic: &str, partition: i32) -> Result<String> {
        let md = self
            .meta()
            .fetch_metadata(Some(topic), REQUEST_TIMEOUT)
            .map_err(|e| kafka_err("cannot reach the Kafka brokers", e))?;
        let leader = md
            .topics()
            .iter()
            .filter(|t| t.name() == topic)
            .flat_map(|t| t.partitions())
            .find(|p| p.id() == partition)
            .map(|p| p.leader());
        md.brokers()
            .iter()
            .find(|b| Some(b.id()) == leader)
            .map(|b| format!("{}:{}", b.host(), b.port()))
            .ok_or_else(|| {
                EngineError::Broker(format!("no broker leads {} now", tp_key(topic, partition)))
            })
    }

    /// (low, high) watermarks of one partition.
    pub fn watermarks(&self, topic: &str, partition: i32) -> Result<(i64, i64)> {
        self.meta()
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
        // a consumer of its own: librdkafka keeps fetching at the marks after the last
        // message, and the broker holds that fetch up to `fetch.wait.max.ms` (100 ms) — on the
        // reading consumer, the first read's fetch waited behind it (every availableNow start)
        let probe: BaseConsumer = self
            .config
            .create()
            .map_err(|e| EngineError::Config(format!("bad Kafka settings: {e}")))?;
        probe.assign(&tpl).map_err(|e| kafka_err("cannot assign partitions", e))?;
        let started = Instant::now();
        let see = |msg: &rdkafka::message::BorrowedMessage<'_>,
                   ends: &mut BTreeMap<String, i64>,
                   unseen: &mut std::collections::HashSet<String>| {
            let tp = tp_key(msg.topic(), msg.partition());
            if let Some(end) = ends.get_mut(&tp) {
                *end = (*end).max(msg.offset() + 1);
            }
            unseen.remove(&tp);
        };
        // until every partition has answered; a partition whose last offset is a control
        // record (transactions) never answers: its mark stands after PROBE_WAIT
        while started.elapsed() < PROBE_WAIT && !unseen.is_empty() {
            if let Some(Ok(msg)) = probe.poll(Duration::from_millis(20)) {
                see(&msg, &mut ends, &mut unseen);
            }
        }
        // then what is already queued: librdkafka queues a fetched record batch whole, so the
        // rest of the batch holding each mark is here (a 100 ms quiet spell waited here before:
        // every availableNow start and `bench kafka-consume` paid it)
        while let Some(Ok(msg)) = probe.poll(Duration::ZERO) {
            see(&msg, &mut ends, &mut unseen);
        }
        close_later(probe);
        Ok(ends)
    }

    /// Ends reads in progress (see `stopped`).
    pub fn stop(&self) {
        self.stopped.store(true, std::sync::atomic::Ordering::Relaxed);
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
        let mut reader = self.reader.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        reader.reset();
        self.consumer().assign(&tpl).map_err(|e| kafka_err("cannot assign partitions", e))?;
        let mut builder = BatchBuilder::new(self.cfg.include_headers);
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
            match self.consumer().poll(Duration::from_millis(20)) {
                Some(Ok(msg)) => {
                    let topic = msg.topic();
                    let key = tp_key(topic, msg.partition());
                    let Some(range) = ranges.get_mut(&key) else { continue };
                    if msg.offset() < range[1] {
                        continue; // already taken
                    }
                    builder.push(&msg, topic);
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
        let _ = self.consumer().unassign();
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
        let _ = self.meta().commit(&tpl, CommitMode::Async);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_stops_at_its_next_poll_once_the_stream_stops() {
        // the protocol reader, and librdkafka (a setting of its own)
        for options in
            [BTreeMap::new(), BTreeMap::from([("fetch.wait.max.ms".into(), "100".into())])]
        {
            a_read_stops_once_the_stream_stops(options);
        }
    }

    fn a_read_stops_once_the_stream_stops(options: BTreeMap<String, String>) {
        // nothing listens there: the read would wait for the broker for FETCH_STALL
        let cfg = KafkaSource {
            bootstrap_servers: "127.0.0.1:9".into(),
            subscribe: vec!["t".into()],
            options,
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
