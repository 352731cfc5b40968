//! `medallion bench kafka-consume`: the ceiling for Kafka → bronze. A bare rdkafka consumer
//! that only counts the messages (and their bytes) of a topic from earliest to the end
//! offsets at start — the same end offsets an availableNow query targets — with partitions
//! assigned directly, as the source does; or (`--reader protocol`) the source's own protocol
//! reader, which plaintext sources use. Prints figures, never a test.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use crate::model::node::KafkaSource;

use super::sources::kafka::{KafkaClient, client_config};
use super::sources::kafka_client::take_queued;
use super::{EngineError, Result};

/// What the consumer read.
#[derive(Clone, Debug, Default)]
pub struct ConsumeReport {
    pub messages: u64,
    pub bytes: u64,
    pub secs: f64,
}

impl std::fmt::Display for ConsumeReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "messages={} bytes={} seconds={:.2} msg_per_s={:.0}",
            self.messages,
            self.bytes,
            self.secs,
            self.messages as f64 / self.secs.max(1e-9)
        )
    }
}

/// The source's client for `topic`, its partitions' (low, high) watermarks and the end offsets
/// an availableNow query would target.
#[allow(clippy::type_complexity)]
fn topic_ends(
    bootstrap: &str,
    topic: &str,
) -> Result<(KafkaClient, BTreeMap<String, (i64, i64)>, BTreeMap<String, i64>)> {
    let source = KafkaSource {
        bootstrap_servers: bootstrap.to_owned(),
        subscribe: vec![topic.to_owned()],
        ..Default::default()
    };
    let client = KafkaClient::new(&source, &format!("medallion-bench-{}", std::process::id()))?;
    let marks = client.all_watermarks()?;
    let ends = client.end_offsets(&marks)?;
    Ok((client, marks, ends))
}

/// Counts every message of `topic` up to the end offsets at start with the source's protocol
/// reader (`kafka_fetch`): the Kafka columns it builds are counted and dropped (blocking).
pub fn consume_protocol(bootstrap: &str, topic: &str) -> Result<ConsumeReport> {
    use arrow::array::AsArray;
    let started = Instant::now();
    let (client, marks, ends) = topic_ends(bootstrap, topic)?;
    let ranges: BTreeMap<String, [i64; 2]> = marks
        .iter()
        .map(|(key, (low, _))| (key.clone(), [*low, ends.get(key).copied().unwrap_or(*low)]))
        .collect();
    let (mut messages, mut bytes) = (0u64, 0u64);
    client.read_with(&ranges, &mut |batch| {
        messages += batch.num_rows() as u64;
        if let Some(values) = batch.column_by_name("value") {
            bytes += values.as_binary::<i32>().value_data().len() as u64;
        }
    })?;
    let secs = started.elapsed().as_secs_f64();
    drop(client); // (its consumers close on a thread of their own)
    Ok(ConsumeReport { messages, bytes, secs })
}

/// Counts every message of `topic` up to the end offsets at start (blocking).
pub fn consume(bootstrap: &str, topic: &str) -> Result<ConsumeReport> {
    let started = Instant::now();
    let (_meta, marks, ends) = topic_ends(bootstrap, topic)?;
    let mut cfg = client_config(bootstrap, &Default::default())?;
    cfg.set("group.id", format!("medallion-bench-{}", std::process::id()))
        .set("enable.auto.commit", "false")
        .set("log_level", "3");
    let consumer: BaseConsumer =
        cfg.create().map_err(|e| EngineError::Config(format!("bad Kafka settings: {e}")))?;
    let mut tpl = TopicPartitionList::new();
    // per partition of the one topic: the end offset, or None once reached
    let mut left: BTreeMap<i32, Option<i64>> = BTreeMap::new();
    for (key, (low, _)) in &marks {
        let end = ends.get(key).copied().unwrap_or(*low);
        if let Some((t, p)) = super::sources::kafka::parse_tp_key(key)
            && end > *low
        {
            tpl.add_partition_offset(t, p, Offset::Offset(*low))
                .map_err(|e| EngineError::Broker(e.to_string()))?;
            left.insert(p, Some(end));
        }
    }
    consumer.assign(&tpl).map_err(|e| EngineError::Broker(e.to_string()))?;
    let (mut messages, mut bytes) = (0u64, 0u64);
    let mut remaining = left.len();
    let (mut last, mut progressed) = (Instant::now(), false);
    // per message only what a counting consumer must (no allocation, no clock read of its
    // own), so the ceiling stays honest: 0.81 -> 0.76 s for 1M messages (session 26); and the
    // queued messages in one call, as the source reads them (`poll_batch`)
    let mut polled = Vec::new();
    while remaining > 0 {
        take_queued(&consumer, Duration::from_millis(100), &mut polled);
        let mut got = false;
        for m in polled.drain(..).flatten() {
            got = true;
            let Some(slot) = left.get_mut(&m.partition()) else { continue };
            let Some(end) = *slot else { continue };
            if m.offset() < end {
                messages += 1;
                bytes += m.payload_len() as u64;
            }
            if m.offset() + 1 >= end {
                *slot = None;
                remaining -= 1;
            }
        }
        if got {
            progressed = true;
            continue;
        }
        // the clock is read when the queue is empty, not once per message
        if progressed {
            progressed = false;
            last = Instant::now();
        }
        if last.elapsed() > Duration::from_secs(20) {
            return Err(EngineError::Broker(format!(
                "no messages for 20 s with {remaining} partition(s) short of their end offsets",
            )));
        }
    }
    let secs = started.elapsed().as_secs_f64();
    drop(polled);
    // closed on a thread of its own, as the source closes its consumers: closing in line added
    // 0–110 ms of rust-rdkafka's close polling to the process's wall time (what bench.sh
    // measures), a handicap the ceiling should not have
    super::sources::kafka_client::close_later(consumer);
    Ok(ConsumeReport { messages, bytes, secs })
}
