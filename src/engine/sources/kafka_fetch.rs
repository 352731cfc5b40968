//! Exact offset ranges read straight from the brokers with the Kafka protocol's Fetch request,
//! for sources on plaintext brokers with no librdkafka settings of their own: one connection
//! and one thread per partition, each decoding its record batches into Spark's Kafka columns
//! while its next fetch is on the wire. librdkafka copies every message into an op of its own
//! that our read loop then takes one at a time on a single thread (its broker thread and that
//! loop were ~40% of music_kafka's CPU samples); reading the 1M-message demo topic bare took
//! 0.16 CPU-s and 0.28 s this way against librdkafka's 0.33 CPU-s and 0.53 s.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError, mpsc};
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::compression::{Decompressor, Gzip, Lz4, Snappy};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::AbortedTransaction;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, BrokerId, FetchRequest, FetchResponse,
    RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{
    Decodable, Encodable, HeaderVersion, StrBytes, encode_request_header_into_buffer,
};
use kafka_protocol::records::{Compression, RecordBatchDecoder};

use super::super::{EngineError, Result};
use super::kafka::{kafka_option, tp_key};
use super::kafka_batch::BatchBuilder;
use super::kafka_client::FETCH_STALL;
use super::kafka_read::BATCH_ROWS;

/// Bytes one fetch may return per partition (librdkafka's `max.partition.fetch.bytes` is 1 MB;
/// 1, 4 and 16 MB read the demo topic equally fast, 4 MB with half the round trips of 1).
const PARTITION_FETCH_BYTES: i32 = 4 << 20;
/// How long the broker may hold a fetch for data that is not there yet (librdkafka's
/// `fetch.wait.max.ms` as our consumers set it): a stopped stream's read ends within it.
const FETCH_WAIT_MS: i32 = 100;
/// How long one request may take before the connection counts as broken
/// (`socket.timeout.ms` as our consumers set it).
const SOCKET_TIMEOUT: Duration = Duration::from_secs(10);
/// The newest Fetch version asked for: 13 and later name topics by id.
const FETCH_VERSION_MAX: i16 = 12;
/// The oldest Fetch version read: 4 brought isolation levels and record batches (Kafka 0.11).
const FETCH_VERSION_MIN: i16 = 4;
/// The settings this reader honours; a source that sets any other librdkafka setting (SSL,
/// SASL, fetch sizes, …) is read through librdkafka, which knows them all.
const OWN_SETTINGS: [&str; 5] =
    ["isolation.level", "client.id", "group.id", "default.api.timeout.ms", "security.protocol"];

/// Reads offset ranges with its own connections (one per partition, kept between reads).
pub(super) struct Fetcher {
    client_id: StrBytes,
    /// `isolation.level`: read_committed (librdkafka's default) skips aborted transactions.
    committed: bool,
    conns: Mutex<HashMap<String, Conn>>,
}

/// One partition's range in a read.
pub(super) struct Range<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub start: i64,
    pub end: i64,
}

impl Fetcher {
    /// The fetcher for a source's settings, or None when librdkafka must read (TLS, SASL,
    /// headers, or settings of librdkafka's own that this reader would ignore).
    pub(super) fn for_source(
        options: &std::collections::BTreeMap<String, String>,
        include_headers: bool,
    ) -> Option<Self> {
        // Kafka allows a header key twice and Spark keeps both: librdkafka's messages do too
        if include_headers {
            return None;
        }
        for key in options.keys() {
            let key = key.strip_prefix("kafka.").unwrap_or(key);
            if !OWN_SETTINGS.contains(&key) {
                return None;
            }
        }
        if kafka_option(options, "security.protocol")
            .is_some_and(|p| !p.trim().eq_ignore_ascii_case("plaintext"))
        {
            return None;
        }
        let committed = !kafka_option(options, "isolation.level")
            .is_some_and(|l| l.trim().eq_ignore_ascii_case("read_uncommitted"));
        let client_id = kafka_option(options, "client.id").unwrap_or("medallion").to_owned();
        Some(Self {
            client_id: StrBytes::from_string(client_id),
            committed,
            conns: Mutex::default(),
        })
    }

    /// Reads exactly `[start, end)` of each range, handing batches to `emit` as they are
    /// built (each holds one partition's rows in offset order). `leader` names the broker
    /// (`host:port`) that leads a partition now; `stopped` ends the read at its next fetch.
    pub(super) fn read(
        &self,
        ranges: &[Range<'_>],
        leader: &(dyn Fn(&str, i32) -> Result<String> + Sync),
        stopped: &AtomicBool,
        emit: &mut dyn FnMut(RecordBatch),
    ) -> Result<()> {
        // a failed partition stops the others at their next fetch
        let failed = AtomicBool::new(false);
        // two batches per partition in flight: the plan's pace bounds the read's memory
        let (tx, rx) = mpsc::sync_channel::<Result<RecordBatch>>(2 * ranges.len());
        std::thread::scope(|s| {
            for range in ranges {
                let (tx, failed) = (tx.clone(), &failed);
                let work = move || {
                    let stop = || stopped.load(Ordering::Relaxed) || failed.load(Ordering::Relaxed);
                    let send = |b: RecordBatch| tx.send(Ok(b)).is_ok();
                    if let Err(e) = self.read_partition(range, leader, &stop, &send) {
                        let _ = tx.send(Err(e));
                    }
                };
                if let Err(e) =
                    std::thread::Builder::new().name("kafka-fetch".into()).spawn_scoped(s, work)
                {
                    failed.store(true, Ordering::Relaxed);
                    return Err(EngineError::Config(format!("cannot start a Kafka read: {e}")));
                }
            }
            drop(tx);
            let mut result = Ok(());
            for item in rx {
                match item {
                    Ok(batch) if result.is_ok() => emit(batch),
                    Ok(_) => {}
                    Err(e) => {
                        if result.is_ok() {
                            result = Err(e);
                        }
                        failed.store(true, Ordering::Relaxed);
                    }
                }
            }
            result
        })
    }

    /// One partition's range, on a connection of its own.
    fn read_partition(
        &self,
        range: &Range<'_>,
        leader: &(dyn Fn(&str, i32) -> Result<String> + Sync),
        stop: &dyn Fn() -> bool,
        send: &dyn Fn(RecordBatch) -> bool,
    ) -> Result<()> {
        let key = tp_key(range.topic, range.partition);
        let mut conn = self.conns.lock().unwrap_or_else(PoisonError::into_inner).remove(&key);
        let topic = TopicName(StrBytes::from_string(range.topic.to_owned()));
        let mut builder = BatchBuilder::new(false);
        let mut next = range.start;
        // a fetch sent whose answer is not read yet (it asked for `next`)
        let mut in_flight = false;
        let mut last_progress = Instant::now();
        let mut last_error = None::<String>;
        while next < range.end {
            if stop() {
                return Err(EngineError::Config("the Kafka stream stopped".into()));
            }
            if last_progress.elapsed() > FETCH_STALL {
                return Err(EngineError::Broker(match last_error {
                    Some(e) => format!("reading {key} from Kafka stalled: {e}"),
                    None => format!(
                        "no messages from {key} for {} s; waiting for the broker",
                        FETCH_STALL.as_secs()
                    ),
                }));
            }
            let c = match conn.as_mut() {
                Some(c) => c,
                None => match leader(range.topic, range.partition)
                    .and_then(|a| Conn::open(&a, &self.client_id))
                {
                    Ok(c) => conn.insert(c),
                    Err(e) => {
                        last_error = Some(e.to_string());
                        std::thread::sleep(Duration::from_millis(200));
                        continue;
                    }
                },
            };
            let answer = (|| {
                if !in_flight {
                    c.send_fetch(&self.fetch_request(&topic, range.partition, next))?;
                }
                in_flight = false;
                c.receive_fetch()
            })();
            let response = match answer {
                Ok(r) => r,
                Err(e) => {
                    // the connection's state is unknown: a new one, to the leader then
                    conn = None;
                    in_flight = false;
                    last_error = Some(e.to_string());
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
            };
            let Some(part) = response
                .responses
                .into_iter()
                .flat_map(|t| t.partitions)
                .find(|p| p.partition_index == range.partition)
            else {
                conn = None;
                last_error = Some("the broker's fetch answer left the partition out".into());
                continue;
            };
            match part.error_code {
                0 => {}
                1 => {
                    return Err(EngineError::Broker(format!(
                        "offset {next} of {key} is no longer on the broker (log start {}); \
                         it was deleted (retention) while the batch was read",
                        part.log_start_offset
                    )));
                }
                code if retriable(code) => {
                    // a new leader, or a broker still loading the partition: ask again
                    conn = None;
                    last_error = Some(format!("the broker answered error code {code}"));
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
                code => {
                    return Err(EngineError::Broker(format!(
                        "cannot fetch {key}: the broker answered error code {code}"
                    )));
                }
            }
            let records = part.records.unwrap_or_default();
            let batches = whole_batches(&records)?;
            let Some(fetched_to) = batches.last().map(BatchHead::next_offset) else {
                continue; // nothing new yet: the broker held the fetch for FETCH_WAIT_MS
            };
            // the next fetch goes out before this one is decoded
            if fetched_to < range.end {
                c.send_fetch(&self.fetch_request(&topic, range.partition, fetched_to))?;
                in_flight = true;
            }
            let mut txns = Transactions::new(self.committed, part.aborted_transactions);
            for head in &batches {
                let from = next.max(range.start);
                if head.next_offset() > from && !txns.skips(head, &records)? {
                    decode_into(&records, head, from, range, &mut builder)?;
                    while builder.len() >= BATCH_ROWS {
                        if !send(builder.finish()?) {
                            return Ok(()); // the read is over (another partition failed)
                        }
                    }
                }
                next = next.max(head.next_offset());
            }
            last_progress = Instant::now();
            last_error = None;
        }
        if builder.len() > 0 {
            send(builder.finish()?);
        }
        if let Some(c) = conn.filter(|_| !in_flight) {
            self.conns.lock().unwrap_or_else(PoisonError::into_inner).insert(key, c);
        }
        Ok(())
    }

    fn fetch_request(&self, topic: &TopicName, partition: i32, offset: i64) -> FetchRequest {
        FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(FETCH_WAIT_MS)
            .with_min_bytes(1)
            .with_max_bytes(PARTITION_FETCH_BYTES)
            .with_isolation_level(i8::from(self.committed))
            .with_session_id(0)
            .with_session_epoch(-1)
            .with_topics(vec![FetchTopic::default().with_topic(topic.clone()).with_partitions(
                vec![
                    FetchPartition::default()
                        .with_partition(partition)
                        .with_fetch_offset(offset)
                        .with_partition_max_bytes(PARTITION_FETCH_BYTES),
                ],
            )])
    }
}

/// Error codes after which the fetch is asked again (of the leader the metadata names then):
/// NOT_LEADER_OR_FOLLOWER, LEADER_NOT_AVAILABLE, UNKNOWN_TOPIC_OR_PARTITION (a partition not
/// known to this broker yet), REQUEST_TIMED_OUT, NETWORK_EXCEPTION, NOT_ENOUGH_REPLICAS,
/// KAFKA_STORAGE_ERROR, FENCED_LEADER_EPOCH, UNKNOWN_LEADER_EPOCH and OFFSET_NOT_AVAILABLE,
/// as the Java consumer retries them.
fn retriable(code: i16) -> bool {
    matches!(code, 3 | 5 | 6 | 7 | 13 | 19 | 56 | 74 | 75 | 78)
}

/// One connection to a broker, asking one thing at a time.
struct Conn {
    stream: TcpStream,
    fetch_version: i16,
    correlation: i32,
    client_id: StrBytes,
}

impl Conn {
    fn open(addr: &str, client_id: &StrBytes) -> Result<Self> {
        let err = |e: std::io::Error| EngineError::Broker(format!("cannot connect to {addr}: {e}"));
        let to = addr.to_socket_addrs().map_err(err)?.next().ok_or_else(|| {
            EngineError::Broker(format!("the broker address {addr} resolves to nothing"))
        })?;
        let stream = TcpStream::connect_timeout(&to, SOCKET_TIMEOUT).map_err(err)?;
        stream.set_nodelay(true).map_err(err)?;
        stream.set_read_timeout(Some(SOCKET_TIMEOUT)).map_err(err)?;
        stream.set_write_timeout(Some(SOCKET_TIMEOUT)).map_err(err)?;
        let mut conn =
            Self { stream, fetch_version: 0, correlation: 0, client_id: client_id.clone() };
        conn.send(ApiKey::ApiVersions, 0, &ApiVersionsRequest::default())?;
        let versions: ApiVersionsResponse = conn.receive(0)?;
        let fetch = versions.api_keys.iter().find(|k| k.api_key == ApiKey::Fetch as i16);
        let Some(fetch) = fetch.filter(|k| k.max_version >= FETCH_VERSION_MIN) else {
            return Err(EngineError::Broker(format!(
                "the broker at {addr} does not serve Fetch v{FETCH_VERSION_MIN} (Kafka 0.11)"
            )));
        };
        conn.fetch_version = fetch.max_version.min(FETCH_VERSION_MAX);
        Ok(conn)
    }

    fn send_fetch(&mut self, request: &FetchRequest) -> Result<()> {
        self.send(ApiKey::Fetch, self.fetch_version, request)
    }

    fn receive_fetch(&mut self) -> Result<FetchResponse> {
        self.receive(self.fetch_version)
    }

    fn send<T: Encodable>(&mut self, key: ApiKey, version: i16, body: &T) -> Result<()> {
        self.correlation = self.correlation.wrapping_add(1);
        let header = RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation)
            .with_client_id(Some(self.client_id.clone()));
        let mut buf = BytesMut::new();
        buf.put_i32(0); // the size, filled in below
        encode_request_header_into_buffer(&mut buf, &header)
            .and_then(|()| body.encode(&mut buf, version))
            .map_err(|e| EngineError::Broker(format!("cannot encode a Kafka request: {e}")))?;
        let size = i32::try_from(buf.len() - 4).unwrap_or(i32::MAX);
        buf[..4].copy_from_slice(&size.to_be_bytes());
        self.stream.write_all(&buf).map_err(io_err)
    }

    /// The answer to the request sent last.
    fn receive<T: Decodable + HeaderVersion>(&mut self, version: i16) -> Result<T> {
        let mut size = [0u8; 4];
        self.stream.read_exact(&mut size).map_err(io_err)?;
        let size = usize::try_from(i32::from_be_bytes(size))
            .map_err(|_| EngineError::Broker("a Kafka answer with a negative size".into()))?;
        let mut buf = BytesMut::zeroed(size);
        self.stream.read_exact(&mut buf).map_err(io_err)?;
        let mut buf = buf.freeze();
        let bad =
            |e: anyhow::Error| EngineError::Broker(format!("a Kafka answer is malformed: {e}"));
        let header = ResponseHeader::decode(&mut buf, T::header_version(version)).map_err(bad)?;
        // one request is outstanding at a time: the answer is to the last one sent
        if header.correlation_id != self.correlation {
            return Err(EngineError::Broker(format!(
                "a Kafka answer to request {} came for request {}",
                header.correlation_id, self.correlation
            )));
        }
        T::decode(&mut buf, version).map_err(bad)
    }
}

fn io_err(e: std::io::Error) -> EngineError {
    EngineError::Broker(format!("the broker connection failed: {e}"))
}

/// What a record batch's header says (v2, Kafka 0.11 and later).
#[derive(Debug, Clone, Copy, PartialEq)]
struct BatchHead {
    /// Where the batch is in the fetched bytes.
    at: usize,
    len: usize,
    base_offset: i64,
    last_offset_delta: i32,
    attributes: i16,
    max_timestamp: i64,
    producer_id: i64,
}

/// Bytes of a v2 record batch's header, up to and with its record count.
const BATCH_HEAD_BYTES: usize = 61;

impl BatchHead {
    fn next_offset(&self) -> i64 {
        self.base_offset + i64::from(self.last_offset_delta) + 1
    }
    fn last_offset(&self) -> i64 {
        self.next_offset() - 1
    }
    fn transactional(&self) -> bool {
        self.attributes & (1 << 4) != 0
    }
    fn control(&self) -> bool {
        self.attributes & (1 << 5) != 0
    }
    fn log_append_time(&self) -> bool {
        self.attributes & (1 << 3) != 0
    }
}

fn be<const N: usize>(b: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&b[at..at + N]);
    out
}

/// The whole record batches of a fetched partition's bytes: a fetch may end inside a batch
/// (the rest comes with the next fetch).
fn whole_batches(records: &[u8]) -> Result<Vec<BatchHead>> {
    let mut out = Vec::new();
    let mut at = 0;
    while records.len() - at >= BATCH_HEAD_BYTES {
        let b = &records[at..];
        let len = 12 + usize::try_from(i32::from_be_bytes(be(b, 8))).unwrap_or(usize::MAX - 12);
        if len > b.len() {
            break;
        }
        let magic = b[16];
        if magic != 2 {
            return Err(EngineError::Broker(format!(
                "the topic holds messages in format v{magic} (before Kafka 0.11), which \
                 Medallion reads through librdkafka: set any librdkafka option on the source, \
                 e.g. options = {{ \"kafka.fetch.wait.max.ms\" = \"100\" }}"
            )));
        }
        out.push(BatchHead {
            at,
            len,
            base_offset: i64::from_be_bytes(be(b, 0)),
            attributes: i16::from_be_bytes(be(b, 21)),
            last_offset_delta: i32::from_be_bytes(be(b, 23)),
            max_timestamp: i64::from_be_bytes(be(b, 35)),
            producer_id: i64::from_be_bytes(be(b, 43)),
        });
        at += len;
    }
    Ok(out)
}

/// Appends the records of `head` at offsets `from..range.end` to `builder`.
fn decode_into(
    records: &Bytes,
    head: &BatchHead,
    from: i64,
    range: &Range<'_>,
    builder: &mut BatchBuilder,
) -> Result<()> {
    let mut bytes = records.slice(head.at..head.at + head.len);
    let set = RecordBatchDecoder::decode_with_custom_compression(&mut bytes, Some(decompress))
        .map_err(|e| {
            EngineError::Broker(format!(
                "a record batch of {} at offset {} is corrupt: {e}",
                tp_key(range.topic, range.partition),
                head.base_offset
            ))
        })?;
    for r in &set.records {
        if r.offset < from || r.offset >= range.end {
            continue;
        }
        // with LogAppendTime the batch's max timestamp is every record's (the broker's clock)
        let ts = if head.log_append_time() { head.max_timestamp } else { r.timestamp };
        let stamp = (ts >= 0).then_some((ts, i32::from(head.log_append_time())));
        builder.push_parts(
            r.key.as_deref(),
            r.value.as_deref(),
            range.topic,
            range.partition,
            r.offset,
            stamp,
        );
    }
    Ok(())
}

/// A record batch's records, uncompressed: kafka-protocol's codecs, and zstd from the crate the
/// tree builds already (see Cargo.toml).
fn decompress(buf: &mut Bytes, codec: Compression) -> anyhow::Result<Bytes> {
    let whole = |b: &mut Bytes| Ok(std::mem::take(b));
    match codec {
        Compression::None => Ok(std::mem::take(buf)),
        Compression::Gzip => Gzip::decompress(buf, whole),
        Compression::Snappy => Snappy::decompress(buf, whole),
        Compression::Lz4 => Lz4::decompress(buf, whole),
        Compression::Zstd => Ok(Bytes::from(zstd::stream::decode_all(&buf[..])?)),
    }
}

/// read_committed: which batches belong to aborted transactions (the Java consumer's rule,
/// per fetch answer: a producer's batches are skipped from the first offset of its aborted
/// transaction up to the transaction's abort marker). Control batches (the markers) are
/// never rows.
struct Transactions {
    /// Aborted transactions not reached yet, first offset first.
    pending: BinaryHeap<Reverse<(i64, i64)>>,
    aborted: HashSet<i64>,
}

impl Transactions {
    fn new(committed: bool, list: Option<Vec<AbortedTransaction>>) -> Self {
        let pending = if committed {
            list.unwrap_or_default()
                .iter()
                .map(|t| Reverse((t.first_offset, t.producer_id.0)))
                .collect()
        } else {
            BinaryHeap::new()
        };
        Self { pending, aborted: HashSet::new() }
    }

    /// True when `head`'s records are not rows.
    fn skips(&mut self, head: &BatchHead, records: &Bytes) -> Result<bool> {
        while let Some(Reverse((first, producer))) = self.pending.peek().copied()
            && first <= head.last_offset()
        {
            self.aborted.insert(producer);
            self.pending.pop();
        }
        if head.control() {
            // an abort marker ends the producer's aborted transaction
            if self.aborted.contains(&head.producer_id) && is_abort_marker(records, head) {
                self.aborted.remove(&head.producer_id);
            }
            return Ok(true);
        }
        Ok(head.transactional() && self.aborted.contains(&head.producer_id))
    }
}

/// A control batch's record key says `(version, type)`; type 0 is ABORT, 1 COMMIT.
fn is_abort_marker(records: &Bytes, head: &BatchHead) -> bool {
    let mut bytes = records.slice(head.at..head.at + head.len);
    RecordBatchDecoder::decode_with_custom_compression(&mut bytes, Some(decompress))
        .ok()
        .is_some_and(|set| {
            set.records
                .first()
                .and_then(|r| r.key.as_ref())
                .is_some_and(|k| k.len() >= 4 && i16::from_be_bytes([k[2], k[3]]) == 0)
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{AsArray, BinaryArray};
    use arrow::datatypes::{Int64Type, TimestampMicrosecondType};
    use kafka_protocol::messages::ProducerId;
    use kafka_protocol::records::{Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};

    fn record(offset: i64, producer: i64, transactional: bool, control: bool) -> Record {
        Record {
            transactional,
            control,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: producer,
            producer_epoch: 0,
            timestamp_type: TimestampType::Creation,
            offset,
            sequence: offset as i32,
            timestamp: 1_700_000_000_000 + offset,
            key: None,
            value: Some(Bytes::from(format!("{{\"n\":{offset}}}"))),
            headers: Default::default(),
        }
    }

    /// A marker: key (version 0, type), value (version, coordinator epoch).
    fn marker(offset: i64, producer: i64, abort: bool) -> Record {
        let mut r = record(offset, producer, true, true);
        r.key = Some(Bytes::from(vec![0, 0, 0, u8::from(!abort)]));
        r.value = Some(Bytes::from(vec![0, 0, 0, 0, 0, 0]));
        r
    }

    fn encode(buf: &mut BytesMut, records: &[Record], compression: Compression) {
        let options = RecordEncodeOptions { version: 2, compression };
        // zstd with the tree's crate, as the reader decodes it
        let zstd = |raw: &mut BytesMut, out: &mut BytesMut, _: Compression| {
            out.put_slice(&zstd::stream::encode_all(&raw[..], 3)?);
            Ok(())
        };
        if compression == Compression::Zstd {
            RecordBatchEncoder::encode_with_custom_compression(
                buf,
                records.iter(),
                &options,
                Some(zstd),
            )
            .unwrap();
        } else {
            RecordBatchEncoder::encode(buf, records.iter(), &options).unwrap();
        }
    }

    fn rows(
        records: &Bytes,
        committed: bool,
        aborted: &[(i64, i64)],
        range: Range<'_>,
    ) -> Vec<i64> {
        let list = aborted
            .iter()
            .map(|&(p, first)| {
                AbortedTransaction::default()
                    .with_producer_id(ProducerId(p))
                    .with_first_offset(first)
            })
            .collect();
        let mut txns = Transactions::new(committed, Some(list));
        let mut builder = BatchBuilder::new(false);
        let mut next = range.start;
        for head in whole_batches(records).unwrap() {
            if head.next_offset() > next && !txns.skips(&head, records).unwrap() {
                decode_into(records, &head, next, &range, &mut builder).unwrap();
            }
            next = next.max(head.next_offset());
        }
        let batch = builder.finish().unwrap();
        batch.column(4).as_primitive::<Int64Type>().values().to_vec()
    }

    fn range(start: i64, end: i64) -> Range<'static> {
        Range { topic: "t", partition: 0, start, end }
    }

    /// Rows come from every codec the brokers use, exactly the range's offsets, with the
    /// records' values and timestamps; a fetch that ends inside a batch keeps the whole
    /// batches only.
    #[test]
    fn batches_of_every_codec_decode_to_the_ranges_rows() {
        let mut buf = BytesMut::new();
        let codecs = [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ];
        for (i, c) in codecs.into_iter().enumerate() {
            let base = i as i64 * 10;
            let recs: Vec<_> = (base..base + 10).map(|o| record(o, -1, false, false)).collect();
            encode(&mut buf, &recs, c);
        }
        let all = buf.freeze();
        assert_eq!(rows(&all, true, &[], range(0, 50)), (0..50).collect::<Vec<_>>());
        assert_eq!(rows(&all, true, &[], range(7, 33)), (7..33).collect::<Vec<_>>());
        // the fetch cut inside the last batch: its rows wait for the next fetch
        let cut = all.slice(..all.len() - 5);
        assert_eq!(whole_batches(&cut).unwrap().len(), 4);
        assert_eq!(rows(&cut, true, &[], range(0, 50)), (0..40).collect::<Vec<_>>());

        let mut builder = BatchBuilder::new(false);
        let heads = whole_batches(&all).unwrap();
        decode_into(&all, &heads[2], 0, &range(0, 50), &mut builder).unwrap();
        let b = builder.finish().unwrap();
        let values: &BinaryArray = b.column(1).as_binary();
        assert_eq!(values.value(0), b"{\"n\":20}");
        let ts = b.column(5).as_primitive::<TimestampMicrosecondType>();
        assert_eq!(ts.value(3), (1_700_000_000_000 + 23) * 1000);
        assert_eq!(b.column(6).as_primitive::<arrow::datatypes::Int32Type>().value(0), 0);
    }

    /// read_committed skips an aborted transaction's records and every marker, keeps a
    /// committed one's and those of other producers in between; read_uncommitted keeps all
    /// records but the markers.
    #[test]
    fn aborted_transactions_and_markers_are_not_rows() {
        let mut buf = BytesMut::new();
        // producer 7 aborts offsets 0..3 (marker 3), producer 8 commits 4..6 (marker 6),
        // plain records 7..9, producer 7 again commits 10..11 (marker 12)
        encode(
            &mut buf,
            &[record(0, 7, true, false), record(1, 7, true, false)],
            Compression::None,
        );
        encode(&mut buf, &[record(2, 7, true, false)], Compression::None);
        encode(&mut buf, &[marker(3, 7, true)], Compression::None);
        encode(
            &mut buf,
            &[record(4, 8, true, false), record(5, 8, true, false)],
            Compression::None,
        );
        encode(&mut buf, &[marker(6, 8, false)], Compression::None);
        encode(
            &mut buf,
            &(7..10).map(|o| record(o, -1, false, false)).collect::<Vec<_>>(),
            Compression::None,
        );
        encode(
            &mut buf,
            &[record(10, 7, true, false), record(11, 7, true, false)],
            Compression::None,
        );
        encode(&mut buf, &[marker(12, 7, false)], Compression::None);
        let all = buf.freeze();
        assert_eq!(rows(&all, true, &[(7, 0)], range(0, 13)), vec![4, 5, 7, 8, 9, 10, 11]);
        assert_eq!(
            rows(&all, false, &[(7, 0)], range(0, 13)),
            vec![0, 1, 2, 4, 5, 7, 8, 9, 10, 11]
        );
        // a range ending on a marker is complete at the marker's offset
        let heads = whole_batches(&all).unwrap();
        assert_eq!(heads.last().unwrap().next_offset(), 13);
    }

    /// librdkafka reads what this reader cannot: TLS, SASL, headers, or any setting of its own.
    #[test]
    fn sources_with_librdkafka_settings_are_read_by_librdkafka() {
        use std::collections::BTreeMap;
        let opts = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
        };
        assert!(Fetcher::for_source(&opts(&[]), false).is_some());
        let f = Fetcher::for_source(&opts(&[("kafka.isolation.level", "read_uncommitted")]), false);
        assert!(f.is_some_and(|f| !f.committed));
        assert!(
            Fetcher::for_source(&opts(&[("kafka.security.protocol", "PLAINTEXT")]), false)
                .is_some()
        );
        assert!(Fetcher::for_source(&opts(&[]), true).is_none());
        assert!(Fetcher::for_source(&opts(&[("kafka.security.protocol", "SSL")]), false).is_none());
        assert!(Fetcher::for_source(&opts(&[("kafka.sasl.mechanism", "PLAIN")]), false).is_none());
        assert!(Fetcher::for_source(&opts(&[("fetch.wait.max.ms", "50")]), false).is_none());
    }
}
