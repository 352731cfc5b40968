//! Kafka source on rdkafka, as Spark's: partitions are assigned directly (no group joins),
//! offsets live in the checkpoint, and each micro-batch reads exactly its offset ranges.
//! Consumer-group offsets are committed after each batch only so that external tools (and
//! the lag display) see progress.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};
use datafusion::catalog::streaming::StreamingTable;
use datafusion::datasource::MemTable;
use datafusion::physical_plan::streaming::PartitionStream;
use datafusion::prelude::SessionContext;
use rdkafka::config::ClientConfig;

use crate::model::NodeId;
use crate::model::env;
use crate::model::node::{KafkaSource, ParseMode};

use super::super::checkpoint::SourceOffset;
use super::super::{EngineError, Result};
use super::blocking;
use super::kafka_arrivals::{Arrivals, ArrivalsPartition, Reads};
pub use super::kafka_client::KafkaClient;
use super::stream_source::{SourceData, offset_mismatch};

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

pub(crate) fn header_fields() -> Fields {
    Fields::from(vec![
        Field::new("key", DataType::Utf8, true),
        Field::new("value", DataType::Binary, true),
    ])
}

/// Spark's Kafka source columns (`headers` only with `includeHeaders`, as in Spark).
pub fn schema(include_headers: bool) -> SchemaRef {
    let mut fields = vec![
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
    ];
    if include_headers {
        fields.push(Field::new("headers", headers_type(), true));
    }
    Arc::new(Schema::new(fields))
}

/// The librdkafka settings of a source or sink: bootstrap servers plus every `kafka.*` option,
/// with `${ENV}` references expanded (secrets never come from the project file itself).
pub fn client_config(bootstrap: &str, options: &BTreeMap<String, String>) -> Result<ClientConfig> {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", env::expand(bootstrap)?);
    // connect to the brokers the metadata names as soon as they are known: with librdkafka's
    // sparse connections a learned broker waited for the main thread's next timer tick before
    // it connected, ~50 ms at the start of 7 runs in 12 (music_kafka's first batch began at
    // 80 ms instead of 30). Unless the project sets it.
    cfg.set("enable.sparse.connections", "false");
    for (k, v) in options {
        let key = k.strip_prefix("kafka.").unwrap_or(k);
        // the Java client's setting, read by the source itself (librdkafka has no such key)
        if key == API_TIMEOUT_KEY {
            continue;
        }
        cfg.set(key, env::expand(v)?);
    }
    Ok(cfg)
}

/// How long an availableNow (or once) run waits at its start for a broker that never
/// answers before it fails, as Spark's query does after the consumer's
/// `default.api.timeout.ms`: `kafka.default.api.timeout.ms`, Kafka's default 60 s. A live
/// trigger waits for the broker as long as it runs, and a broker that goes away mid-run is
/// waited for by every trigger (the batch is replayed from its offsets).
const API_TIMEOUT_KEY: &str = "default.api.timeout.ms";
const DEFAULT_API_TIMEOUT: Duration = Duration::from_secs(60);

/// The value of librdkafka/Kafka setting `key` in a node's options, written with or without
/// the `kafka.` prefix.
pub(super) fn kafka_option<'a>(
    options: &'a BTreeMap<String, String>,
    key: &str,
) -> Option<&'a str> {
    options
        .iter()
        .find(|(k, _)| k.strip_prefix("kafka.").unwrap_or(k) == key)
        .map(|(_, v)| v.as_str())
}

fn api_timeout(options: &BTreeMap<String, String>) -> Result<Duration> {
    let Some(v) = kafka_option(options, API_TIMEOUT_KEY) else {
        return Ok(DEFAULT_API_TIMEOUT);
    };
    let ms = env::expand(v)?.trim().parse::<u64>().map_err(|_| {
        EngineError::Config(format!(
            "kafka.{API_TIMEOUT_KEY} = \"{v}\" is not a number of milliseconds"
        ))
    })?;
    Ok(Duration::from_millis(ms))
}

/// Watermarks (`topic:partition` → (low, high)) for the next planning.
enum MarksAhead {
    Ready(BTreeMap<String, (i64, i64)>),
    Taking(tokio::task::JoinHandle<Result<BTreeMap<String, (i64, i64)>>>),
}

/// Messages of a batch read ahead: fetched while planning it (a live trigger), or being read
/// on a thread of their own while the previous batch is processed (availableNow).
enum Prefetch {
    Ready(BTreeMap<String, [i64; 2]>, Vec<RecordBatch>),
    Reading(BTreeMap<String, [i64; 2]>, Arc<Arrivals>),
}

/// A Kafka source's state between batches.
pub(crate) struct KafkaStream {
    node: NodeId,
    cfg: KafkaSource,
    client: Arc<KafkaClient>,
    /// Next offset to read per `topic:partition`.
    next: BTreeMap<String, i64>,
    /// Whether the checkpoint had offsets (then `startingOffsets` no longer applies).
    started: bool,
    /// availableNow: the end offsets of every partition taken when the query started. Spark's
    /// rule: the query processes everything up to them (in `maxOffsetsPerTrigger` batches),
    /// however slowly a fetch answers, then stops.
    bound: Option<BTreeMap<String, i64>>,
    prefetched: Mutex<Option<Prefetch>>,
    /// availableNow: the watermarks the next [`Self::plan_next`] checks its starts against,
    /// taken ahead (at the start, then while each batch runs) so that no batch waits for the
    /// metadata and ListOffsets round trips (music_kafka: 3–12 ms a batch unloaded, up to
    /// ~50 ms with the broker busy serving the read-ahead).
    marks_ahead: Option<MarksAhead>,
    /// When the first attempt to take availableNow's end offsets began, and how long they
    /// may be waited for (`kafka.default.api.timeout.ms`).
    binding_since: Option<Instant>,
    api_timeout: Duration,
    /// The read of the batch being processed, while the plan reads it.
    current: Mutex<Option<Arc<Arrivals>>>,
    /// Whether the micro-batch's plan reads this source once (its batches are then freed as
    /// they are decoded) or may replay it.
    reads: Reads,
    lag: BTreeMap<String, i64>,
    warnings: Vec<String>,
}

impl Drop for KafkaStream {
    fn drop(&mut self) {
        // a read-ahead still fetching would hold the consumer for nobody
        self.client.stop();
    }
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
            marks_ahead: None,
            binding_since: None,
            // a bad value fails at the start of every trigger, not only availableNow
            api_timeout: api_timeout(&cfg.options)?,
            current: Mutex::new(None),
            reads: Reads::Replayed,
            lag: BTreeMap::new(),
            warnings: Vec::new(),
        })
    }

    /// The source for a plan that reads it exactly once per micro-batch (`once`): its messages
    /// are then freed as they are decoded (see [`Reads::Once`]).
    pub fn read_once(mut self, once: bool) -> Self {
        self.reads = if once { Reads::Once } else { Reads::Replayed };
        self
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

    /// availableNow: the end offsets of every partition now are the query's target.
    /// A broker away fails it (retryable) until `kafka.default.api.timeout.ms` has passed
    /// since the first attempt; then the error says where nothing answered and what to do.
    pub async fn bind_available_now(&mut self) -> Result<()> {
        let timeout = self.api_timeout;
        let since = *self.binding_since.get_or_insert_with(Instant::now);
        let client = self.client.clone();
        let ends = async {
            let marks = blocking(move || client.all_watermarks()).await?;
            self.fetch_ahead(&marks).await;
            let client = self.client.clone();
            blocking(move || {
                let ends = client.end_offsets(&marks)?;
                Ok((marks, ends))
            })
            .await
        }
        .await;
        match ends {
            Ok((marks, ends)) => {
                self.bound = Some(ends);
                self.marks_ahead = Some(MarksAhead::Ready(marks));
                Ok(())
            }
            Err(e) if e.is_retryable() && since.elapsed() >= timeout => {
                let servers = self.client.servers();
                let waited = timeout.as_secs_f64();
                let client = self.client.clone();
                let missing = blocking(move || Ok(client.missing_topic())).await.ok().flatten();
                Err(EngineError::Config(match missing {
                    // the broker answers, without the topic
                    Some(topic) => format!(
                        "topic `{topic}` does not exist on {servers}, {waited} s after the run \
                         started; create it (or produce to it) or fix `subscribe`; \
                         kafka.{API_TIMEOUT_KEY} sets how long to wait"
                    ),
                    None => format!(
                        "no Kafka broker answered at {servers} for {waited} s after the run \
                         started ({}); start the broker or point kafka.bootstrap.servers at it \
                         (the demo projects read KAFKA_BOOTSTRAP_SERVERS); \
                         kafka.{API_TIMEOUT_KEY} sets how long to wait",
                        e.detail()
                    ),
                }))
            }
            Err(e) => Err(e),
        }
    }

    /// availableNow: assigns the partitions at their starts while the end offsets are taken
    /// (a probe of its own, a new connection and a fetch), so that the first batch's messages
    /// are on their way when it is planned instead of asked for after (music_kafka, 1M
    /// messages, 24 alternating runs: median 0.69 -> 0.68 s, paired median -25 ms; librdkafka's
    /// queue holds more at the start, peak RSS 155 -> 184 MB).
    async fn fetch_ahead(&self, marks: &BTreeMap<String, (i64, i64)>) {
        // planning takes the starts again from the same marks, and raises their warnings and
        // errors
        let Ok((starts, _)) = self.starts(marks) else { return };
        let client = self.client.clone();
        // a failure only loses the head start: the first read assigns as before
        let _ = blocking(move || client.assign_ahead(&starts)).await;
    }

    /// Where each partition starts: the processed offset, else `startingOffsets` (a new
    /// query) or earliest (a partition added later), moved up to the low watermark when
    /// retention deleted what was not read yet (or an error, with `failOnDataLoss`).
    /// Returns them with the data-loss warnings to raise.
    fn starts(
        &self,
        marks: &BTreeMap<String, (i64, i64)>,
    ) -> Result<(BTreeMap<String, i64>, Vec<String>)> {
        let cfg = &self.cfg;
        let mut warnings = Vec::new();
        let starting = match cfg.starting_offsets.as_deref().map(str::trim) {
            None | Some("earliest") => None,
            Some("latest") => Some(BTreeMap::new()),
            Some(json) => Some(parse_starting_offsets(json)?),
        };
        let latest = cfg.starting_offsets.as_deref().map(str::trim) == Some("latest");
        let mut starts = BTreeMap::new();
        for (tp, (low, high)) in marks {
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
                warnings.push(format!(
                    "offsets {start}..{low} of {tp} were deleted before they were read; continuing from {low} (failOnDataLoss = false)"
                ));
                *low
            } else {
                start
            };
            starts.insert(tp.clone(), start);
        }
        for tp in self.next.keys() {
            if !marks.contains_key(tp) {
                let msg = format!("partition {tp} is gone from the topic");
                if cfg.fail_on_data_loss {
                    return Err(EngineError::Config(format!(
                        "{msg}; set failOnDataLoss = false to continue without it"
                    )));
                }
                warnings.push(msg);
            }
        }
        Ok((starts, warnings))
    }

    /// The next offset ranges per partition. availableNow: up to the end offsets taken at
    /// start, `maxOffsetsPerTrigger` at a time (read in [`Self::read`], the next batch's
    /// while this one is processed). A live trigger: what the brokers hand out now, fetched
    /// here for the batch to read (end offsets can lag behind on some brokers).
    pub async fn plan_next(&mut self) -> Result<SourceOffset> {
        let marks = match self.marks_ahead.take() {
            Some(MarksAhead::Ready(marks)) => marks,
            // an error (a broker away) is retried with marks taken then
            Some(MarksAhead::Taking(task)) => task.await.map_err(|e| {
                EngineError::Config(format!("reading the Kafka watermarks stopped: {e}"))
            })??,
            None => {
                let client = self.client.clone();
                blocking(move || client.all_watermarks()).await?
            }
        };
        let (starts, warnings) = self.starts(&marks)?;
        self.warnings.extend(warnings);
        if let Some(bound) = &self.bound {
            // a partition that appeared since the query started has no target: it waits
            // for the next query, as in Spark
            let ends: BTreeMap<String, i64> = starts
                .iter()
                .map(|(tp, s)| (tp.clone(), bound.get(tp).copied().unwrap_or(*s).max(*s)))
                .collect();
            let ranges = rate_limit(&starts, &ends, self.cfg.max_offsets_per_trigger);
            self.lag = ranges
                .iter()
                .map(|(tp, [_, e])| (tp.clone(), ends.get(tp).map_or(0, |b| b - e)))
                .collect();
            // a batch with data is followed by another planning: its marks are taken now
            if ranges.values().any(|[s, e]| e > s) {
                let client = self.client.clone();
                let task = tokio::task::spawn_blocking(move || client.all_watermarks());
                self.marks_ahead = Some(MarksAhead::Taking(task));
            }
            // the first batch's messages start coming while its offsets are written
            if let Ok(mut p) = self.prefetched.lock()
                && p.is_none()
                && ranges.values().any(|[s, e]| e > s)
            {
                *p = Some(Prefetch::Reading(ranges.clone(), self.start_read(ranges.clone(), None)));
            }
            return Ok(SourceOffset::Kafka { ranges });
        }
        let (client, max) = (self.client.clone(), self.cfg.max_offsets_per_trigger);
        let (ranges, batches) = blocking(move || {
            client.fetch_new(&starts, max, Duration::from_millis(150), Duration::from_millis(200))
        })
        .await?;
        // lag as far as the broker's end offsets tell (they may lag behind themselves)
        self.lag = ranges
            .iter()
            .map(|(tp, [_, e])| (tp.clone(), marks.get(tp).map_or(0, |(_, h)| (h - e).max(0))))
            .collect();
        if let Ok(p) = self.prefetched.get_mut() {
            *p = Some(Prefetch::Ready(ranges.clone(), batches));
        }
        Ok(SourceOffset::Kafka { ranges })
    }

    /// Starts reading `ranges` on a blocking thread, once `after` (the read before it on this
    /// consumer) has ended; the plan reads the messages as they arrive.
    fn start_read(
        &self,
        ranges: BTreeMap<String, [i64; 2]>,
        after: Option<Arc<Arrivals>>,
    ) -> Arc<Arrivals> {
        let arrivals = Arrivals::new(schema(self.cfg.include_headers), self.reads);
        let (client, out) = (self.client.clone(), arrivals.clone());
        tokio::task::spawn_blocking(move || {
            // ends the arrivals if the read never does (a panic): no reader waits forever
            struct Ends(Arc<Arrivals>);
            impl Drop for Ends {
                fn drop(&mut self) {
                    self.0.finish(&Err(EngineError::Config("the Kafka read stopped".into())));
                }
            }
            let ends = Ends(out);
            if let Some(previous) = after {
                previous.wait_blocking();
            }
            client.read_into(&ranges, &ends.0);
        });
        arrivals
    }

    /// Reads exactly the offset ranges of `offset`: read ahead when they are the ones
    /// expected, else now (a replay after a restart). The plan reads the messages as they
    /// arrive (decoding and writing overlap the fetch); availableNow also starts the next
    /// batch's read, which fetches while this batch is processed.
    pub async fn read(&self, ctx: &SessionContext, offset: &SourceOffset) -> Result<SourceData> {
        let SourceOffset::Kafka { ranges } = offset else {
            return Err(offset_mismatch(offset, &self.describe()));
        };
        let ahead = self.prefetched.lock().ok().and_then(|mut p| p.take());
        let arrivals = match ahead {
            Some(Prefetch::Ready(r, batches)) if &r == ranges => {
                if let Ok(mut c) = self.current.lock() {
                    *c = None;
                }
                let rows = batches.iter().map(RecordBatch::num_rows).sum::<usize>() as u64;
                let table = MemTable::try_new(schema(self.cfg.include_headers), vec![batches])?;
                let df = ctx.read_table(Arc::new(table))?;
                return Ok(SourceData { df, rows, bad: Vec::new(), mode: ParseMode::Permissive });
            }
            Some(Prefetch::Reading(r, arrivals)) if &r == ranges => arrivals,
            // never two reads on one consumer: a stale read ends first
            Some(Prefetch::Reading(_, stale)) => self.start_read(ranges.clone(), Some(stale)),
            _ => self.start_read(ranges.clone(), None),
        };
        if let Some(bound) = &self.bound {
            let starts = ranges.iter().map(|(tp, [_, e])| (tp.clone(), *e)).collect();
            let ends = ranges
                .iter()
                .map(|(tp, [_, e])| (tp.clone(), bound.get(tp).copied().unwrap_or(*e).max(*e)))
                .collect();
            let next = rate_limit(&starts, &ends, self.cfg.max_offsets_per_trigger);
            if next.values().any(|[s, e]| e > s) {
                let reading = self.start_read(next.clone(), Some(arrivals.clone()));
                if let Ok(mut p) = self.prefetched.lock() {
                    *p = Some(Prefetch::Reading(next, reading));
                }
            }
        }
        if let Ok(mut c) = self.current.lock() {
            *c = Some(arrivals.clone());
        }
        let partition = Arc::new(ArrivalsPartition(arrivals)) as Arc<dyn PartitionStream>;
        let table = StreamingTable::try_new(schema(self.cfg.include_headers), vec![partition])?;
        let df = ctx.read_table(Arc::new(table))?;
        // the rows are counted when the read ends (`rows_read`)
        Ok(SourceData { df, rows: 0, bad: Vec::new(), mode: ParseMode::Permissive })
    }

    /// The rows the current batch's read delivered, once it has ended (None for a live
    /// trigger's batch, whose rows were counted at the read); its error if it failed.
    pub async fn rows_read(&self) -> Result<Option<u64>> {
        let current = self.current.lock().ok().and_then(|mut c| c.take());
        match current {
            Some(a) => a.finished().await.map(Some),
            None => Ok(None),
        }
    }

    /// Why the current batch's read failed, if it did (waits for it to end): a plan that
    /// fails on it reports the read's own error, which says whether retrying helps.
    pub async fn read_failure(&self) -> Option<EngineError> {
        let current = self.current.lock().ok().and_then(|c| c.clone())?;
        current.finished().await.err()
    }
}

/// Spark's `maxOffsetsPerTrigger` (KafkaMicroBatchStream.rateLimit): the limit is shared out in
/// proportion to what each partition has between its start and end, rounding down (up below
/// one, so that no partition starves); without a limit, everything up to the ends.
pub fn rate_limit(
    starts: &BTreeMap<String, i64>,
    ends: &BTreeMap<String, i64>,
    limit: Option<u64>,
) -> BTreeMap<String, [i64; 2]> {
    let size = |tp: &String, s: i64| ends.get(tp).map_or(0, |e| (e - s).max(0));
    let total: i64 = starts.iter().map(|(tp, s)| size(tp, *s)).sum();
    starts
        .iter()
        .map(|(tp, &s)| {
            let available = size(tp, s);
            let take = match limit {
                Some(limit) if total > 0 && available > 0 => {
                    let prorate = limit as f64 * (available as f64 / total as f64);
                    let n = if prorate < 1.0 { prorate.ceil() } else { prorate.floor() };
                    (n as i64).min(available)
                }
                _ => available,
            };
            (tp.clone(), [s, s + take])
        })
        .collect()
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
    fn rate_limit_shares_the_limit_by_backlog_as_spark() {
        let m = |v: &[(&str, i64)]| -> BTreeMap<String, i64> {
            v.iter().map(|(k, o)| (k.to_string(), *o)).collect()
        };
        let starts = m(&[("t:0", 0), ("t:1", 100), ("t:2", 50)]);
        let ends = m(&[("t:0", 600), ("t:1", 400), ("t:2", 51)]);
        // 901 waiting: 600, 300 and 1; 100 shared as 66.6 → 66, 33.3 → 33, 0.11 → 1
        let r = rate_limit(&starts, &ends, Some(100));
        assert_eq!(r["t:0"], [0, 66]);
        assert_eq!(r["t:1"], [100, 133]);
        assert_eq!(r["t:2"], [50, 51]);
        // no limit, or more than is there: up to the ends
        assert_eq!(rate_limit(&starts, &ends, None)["t:0"], [0, 600]);
        assert_eq!(rate_limit(&starts, &ends, Some(10_000))["t:1"], [100, 400]);
        // nothing left: empty ranges
        assert!(rate_limit(&ends, &ends, Some(5)).values().all(|[s, e]| s == e));
    }

    /// Spark's `failOnDataLoss` rules at the start of a batch; the warnings come back with the
    /// starts (raised by planning, not by the assignment ahead that computes them too).
    #[test]
    fn starts_follow_the_checkpoint_and_the_data_loss_rules() {
        let cfg = KafkaSource {
            bootstrap_servers: "127.0.0.1:9".into(),
            subscribe: vec!["t".into()],
            fail_on_data_loss: false,
            ..KafkaSource::default()
        };
        let mut s = KafkaStream::try_new(NodeId::from("k"), &cfg, "test").unwrap();
        let marks = BTreeMap::from([("t:0".to_string(), (50, 90)), ("t:1".to_string(), (0, 9))]);
        // a new query without startingOffsets reads from the low watermarks
        let (starts, warned) = s.starts(&marks).unwrap();
        assert_eq!(starts, BTreeMap::from([("t:0".into(), 50), ("t:1".into(), 0)]));
        assert!(warned.is_empty(), "{warned:?}");
        // the checkpoint's offsets; 10..50 of t:0 deleted by retention, t:2 gone from the topic
        s.started = true;
        s.next = BTreeMap::from([("t:0".into(), 10), ("t:1".into(), 7), ("t:2".into(), 3)]);
        let (starts, warned) = s.starts(&marks).unwrap();
        assert_eq!(starts, BTreeMap::from([("t:0".into(), 50), ("t:1".into(), 7)]));
        assert_eq!(warned.len(), 2, "{warned:?}");
        assert!(warned[0].contains("offsets 10..50 of t:0 were deleted"), "{warned:?}");
        assert!(warned[1].contains("partition t:2 is gone"), "{warned:?}");
        assert!(s.take_warnings().is_empty(), "starts alone raises nothing");
        // failOnDataLoss (Spark's default) stops instead, naming the fix
        s.cfg.fail_on_data_loss = true;
        let err = s.starts(&marks).unwrap_err().to_string();
        assert!(err.contains("offsets 10..50 of t:0 were deleted"), "{err}");
        assert!(err.contains("set failOnDataLoss = false"), "{err}");
    }

    #[test]
    fn starting_offsets_json() {
        let m = parse_starting_offsets(r#"{"music": {"0": 23, "2": -2}}"#).unwrap();
        assert_eq!(m.get("music:0"), Some(&23));
        assert_eq!(m.get("music:2"), Some(&-2));
        assert!(parse_starting_offsets("soon").is_err());
        assert_eq!(parse_tp_key("a:b:3"), Some(("a:b", 3)));
    }
}
