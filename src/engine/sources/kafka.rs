//! Kafka source on rdkafka, as Spark's: partitions are assigned directly (no group joins),
//! offsets live in the checkpoint, and each micro-batch reads exactly its offset ranges.
//! Consumer-group offsets are committed after each batch only so that external tools (and
//! the lag display) see progress.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow::array::{
    ArrayRef, BinaryBuilder, Int32Builder, Int64Builder, ListBuilder, RecordBatch, StringBuilder,
    StructBuilder, TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};

use crate::model::NodeId;
use crate::model::env;
use crate::model::node::{KafkaSource, ParseMode};

use super::super::checkpoint::{SourceOffset, now_ms};
use super::super::{EngineError, Result};
use super::blocking;
use super::stream_source::{SourceData, offset_mismatch};

/// How long one metadata or watermark request may take before the broker counts as away.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a batch may wait for messages that the offsets say exist.
const FETCH_STALL: Duration = Duration::from_secs(20);

/// `topic:partition`, the key of Kafka offsets in the checkpoint.
pub fn tp_key(topic: &str, partition: i32) -> String {
    format!("{topic}:{partition}")
}

pub fn parse_tp_key(key: &str) -> Option<(&str, i32)> {
    let (t, p) = key.rsplit_once(':')?;
    Some((t, p.parse().ok()?))
}

fn headers_type() -> DataType {
    DataType::List(Arc::new(Field::new("element", DataType::Struct(header_fields()), true)))
}

fn header_fields() -> Fields {
    Fields::from(vec![
        Field::new("key", DataType::Utf8, true),
        Field::new("value", DataType::Binary, true),
    ])
}

/// Spark's Kafka source columns.
pub fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("key", DataType::Binary, true),
        Field::new("value", DataType::Binary, true),
        Field::new("topic", DataType::Utf8, false),
        Field::new("partition", DataType::Int32, false),
        Field::new("offset", DataType::Int64, false),
        Field::new(
            "timestamp",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
        Field::new("timestampType", DataType::Int32, true),
        Field::new("headers", headers_type(), true),
    ]))
}

/// The librdkafka settings of a source or sink: bootstrap servers plus every `kafka.*` option,
/// with `${ENV}` references expanded (secrets never come from the project file itself).
pub fn client_config(bootstrap: &str, options: &BTreeMap<String, String>) -> Result<ClientConfig> {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", env::expand(bootstrap)?);
    for (k, v) in options {
        let key = k.strip_prefix("kafka.").unwrap_or(k);
        cfg.set(key, env::expand(v)?);
    }
    Ok(cfg)
}

fn kafka_err(what: &str, e: rdkafka::error::KafkaError) -> EngineError {
    EngineError::Broker(format!("{what}: {e}"))
}

/// A consumer used for metadata, watermarks and reads; assigns partitions, never joins.
pub struct KafkaClient {
    consumer: BaseConsumer,
    cfg: KafkaSource,
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
        Ok(Self { consumer, cfg: cfg.clone() })
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
    /// message came for `idle` or `max_fetch` has passed, at most `max_total` messages, and with
    /// `until_ms` only messages
    /// stamped no later than it. Planning from what was fetched, not from ListOffsets, keeps
    /// batches right on brokers whose end offsets lag behind (seen with tansu).
    #[allow(clippy::type_complexity)]
    pub fn fetch_new(
        &self,
        starts: &BTreeMap<String, i64>,
        max_total: Option<u64>,
        until_ms: Option<i64>,
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
        let mut done: std::collections::HashSet<String> = std::collections::HashSet::new();
        let mut total = 0u64;
        let mut last = Instant::now();
        // the first messages may take a fetch round trip to arrive
        let first_wait = idle.max(Duration::from_millis(500));
        loop {
            if max_total.is_some_and(|m| total >= m) || done.len() == ranges.len() {
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
                    if done.contains(&key) {
                        continue;
                    }
                    let Some(range) = ranges.get_mut(&key) else { continue };
                    if msg.offset() < range[1] {
                        continue; // already taken
                    }
                    let stamp = match msg.timestamp() {
                        rdkafka::Timestamp::CreateTime(ms)
                        | rdkafka::Timestamp::LogAppendTime(ms) => Some(ms),
                        rdkafka::Timestamp::NotAvailable => None,
                    };
                    if let (Some(until), Some(ts)) = (until_ms, stamp)
                        && ts > until
                    {
                        done.insert(key);
                        continue;
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

/// Kafka messages fetched while planning a batch: its offset ranges and the data.
type Prefetched = (BTreeMap<String, [i64; 2]>, Vec<RecordBatch>);

/// A Kafka source's state between batches.
pub(crate) struct KafkaStream {
    node: NodeId,
    cfg: KafkaSource,
    client: Arc<KafkaClient>,
    /// Next offset to read per `topic:partition`.
    next: BTreeMap<String, i64>,
    /// Whether the checkpoint had offsets (then `startingOffsets` no longer applies).
    started: bool,
    /// availableNow: only messages stamped before the query started (ms since epoch).
    bound: Option<i64>,
    /// Messages fetched while planning, for the batch that reads exactly them.
    prefetched: Mutex<Option<Prefetched>>,
    lag: BTreeMap<String, i64>,
    warnings: Vec<String>,
}

impl KafkaStream {
    /// The source with its client in consumer group `group` (used for progress only).
    pub fn try_new(node: NodeId, cfg: &KafkaSource, group: &str) -> Result<Self> {
        let client = KafkaClient::new(cfg, group)?;
        Ok(Self {
            node,
            cfg: cfg.clone(),
            client: Arc::new(client),
            next: BTreeMap::new(),
            started: false,
            bound: None,
            prefetched: Mutex::new(None),
            lag: BTreeMap::new(),
            warnings: Vec::new(),
        })
    }

    pub fn node(&self) -> &NodeId {
        &self.node
    }

    pub fn describe(&self) -> String {
        match &self.cfg.subscribe_pattern {
            Some(p) => format!("kafka:pattern={p}"),
            None => format!("kafka:{}", self.cfg.subscribe.join(",")),
        }
    }

    pub fn backlog(&self) -> u64 {
        self.lag.values().map(|l| (*l).max(0) as u64).sum()
    }

    /// Per `topic:partition`, end offset minus processed offset.
    pub fn lag(&self) -> BTreeMap<String, i64> {
        self.lag.clone()
    }

    /// Data-loss warnings of the last planning, drained.
    pub fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.warnings)
    }

    /// Marks a batch's offset ranges as processed.
    pub fn advance(&mut self, offset: &SourceOffset) {
        if let SourceOffset::Kafka { ranges } = offset {
            self.started = true;
            for (tp, [_, end]) in ranges {
                let n = self.next.entry(tp.clone()).or_insert(*end);
                *n = (*n).max(*end);
            }
        }
    }

    /// Commits the processed offsets to the consumer group (for progress tracking only).
    pub fn commit_for_progress(&self) {
        self.client.commit_for_progress(&self.next);
    }

    /// availableNow: only messages stamped before now.
    pub async fn bind_available_now(&mut self) -> Result<()> {
        // fail early (and wait) if the brokers are away
        let client = self.client.clone();
        blocking(move || client.partitions()).await?;
        self.bound = Some(now_ms());
        Ok(())
    }

    /// The next offset ranges per partition; fetches their messages for [`Self::read`].
    pub async fn plan_next(&mut self) -> Result<SourceOffset> {
        let cfg = &self.cfg;
        let meta_client = self.client.clone();
        let marks = blocking(move || {
            let client = meta_client;
            let mut marks = BTreeMap::new();
            for (t, p) in client.partitions()? {
                marks.insert(tp_key(&t, p), client.watermarks(&t, p)?);
            }
            Ok(marks)
        })
        .await?;
        let starting = match cfg.starting_offsets.as_deref().map(str::trim) {
            None | Some("earliest") => None,
            Some("latest") => Some(BTreeMap::new()),
            Some(json) => Some(parse_starting_offsets(json)?),
        };
        let latest = cfg.starting_offsets.as_deref().map(str::trim) == Some("latest");
        let mut ranges = BTreeMap::new();
        for (tp, (low, high)) in &marks {
            let start = match self.next.get(tp) {
                Some(n) => *n,
                // a partition seen for the first time: startingOffsets for a new
                // query, earliest for a partition added later (as Spark)
                None if !self.started && latest => *high,
                None if !self.started => match starting.as_ref().and_then(|s| s.get(tp)) {
                    Some(-1) => *high,
                    Some(o) if *o >= 0 => *o,
                    _ => *low,
                },
                None => *low,
            };
            let start = if start < *low {
                if cfg.fail_on_data_loss {
                    return Err(EngineError::Config(format!(
                        "offsets {start}..{low} of {tp} were deleted (retention) before they were read; set failOnDataLoss = false to continue from offset {low}"
                    )));
                }
                self.warnings.push(format!(
                    "offsets {start}..{low} of {tp} were deleted before they were read; continuing from {low} (failOnDataLoss = false)"
                ));
                *low
            } else {
                start
            };
            ranges.insert(tp.clone(), [start, start]);
        }
        for tp in self.next.keys() {
            if !marks.contains_key(tp) {
                let msg = format!("partition {tp} is gone from the topic");
                if cfg.fail_on_data_loss {
                    return Err(EngineError::Config(format!(
                        "{msg}; set failOnDataLoss = false to continue without it"
                    )));
                }
                self.warnings.push(msg);
            }
        }
        let starts: BTreeMap<String, i64> =
            ranges.iter().map(|(k, [s, _])| (k.clone(), *s)).collect();
        let (client, max, until) = (self.client.clone(), cfg.max_offsets_per_trigger, self.bound);
        let (ranges, batches) = blocking(move || {
            // availableNow drains in big batches; a live stream keeps batches short
            let max_fetch = Duration::from_millis(if until.is_some() { 2000 } else { 200 });
            client.fetch_new(&starts, max, until, Duration::from_millis(150), max_fetch)
        })
        .await?;
        // lag as far as the broker's end offsets tell (they may lag behind themselves)
        self.lag = ranges
            .iter()
            .map(|(tp, [_, e])| (tp.clone(), marks.get(tp).map_or(0, |(_, h)| (h - e).max(0))))
            .collect();
        if let Ok(p) = self.prefetched.get_mut() {
            *p = Some((ranges.clone(), batches));
        }
        Ok(SourceOffset::Kafka { ranges })
    }

    /// Reads exactly the offset ranges of `offset` (prefetched while planning, unless replayed).
    pub async fn read(&self, ctx: &SessionContext, offset: &SourceOffset) -> Result<SourceData> {
        let SourceOffset::Kafka { ranges } = offset else {
            return Err(offset_mismatch(offset, &self.describe()));
        };
        let fetched = self.prefetched.lock().ok().and_then(|mut p| p.take());
        let batches = match fetched {
            Some((r, batches)) if &r == ranges => batches,
            // a replay after a restart: read the same offsets again
            _ => {
                let (client, ranges) = (self.client.clone(), ranges.clone());
                blocking(move || client.read(&ranges)).await?
            }
        };
        let rows = batches.iter().map(RecordBatch::num_rows).sum::<usize>() as u64;
        let table = MemTable::try_new(schema(), vec![batches])?;
        let df = ctx.read_table(Arc::new(table))?;
        Ok(SourceData { df, rows, bad: Vec::new(), mode: ParseMode::Permissive })
    }
}

/// Parses `startingOffsets` JSON: `{"topic": {"0": 23}}` → `topic:0` → 23.
pub fn parse_starting_offsets(json: &str) -> Result<BTreeMap<String, i64>> {
    let v: BTreeMap<String, BTreeMap<String, i64>> = serde_json::from_str(json).map_err(|e| {
        EngineError::Config(format!(
            "startingOffsets must be `earliest`, `latest` or JSON like {{\"topic\": {{\"0\": 23}}}}: {e}"
        ))
    })?;
    let mut out = BTreeMap::new();
    for (topic, parts) in v {
        for (p, off) in parts {
            let p: i32 = p.parse().map_err(|_| {
                EngineError::Config(format!("startingOffsets: partition `{p}` is not a number"))
            })?;
            out.insert(tp_key(&topic, p), off);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starting_offsets_json() {
        let m = parse_starting_offsets(r#"{"music": {"0": 23, "2": -2}}"#).unwrap();
        assert_eq!(m.get("music:0"), Some(&23));
        assert_eq!(m.get("music:2"), Some(&-2));
        assert!(parse_starting_offsets("soon").is_err());
        assert_eq!(parse_tp_key("a:b:3"), Some(("a:b", 3)));
    }
}
