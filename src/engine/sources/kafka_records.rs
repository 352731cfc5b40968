//! Record batches as a fetch returns them (v2, Kafka 0.11 and later): their headers, the whole
//! batches of a fetched partition's bytes, their records appended to Spark's Kafka columns,
//! and read_committed's skipping of aborted transactions.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet};

use bytes::Bytes;
use kafka_protocol::compression::{Decompressor, Gzip, Lz4, Snappy};
use kafka_protocol::messages::fetch_response::AbortedTransaction;
use kafka_protocol::records::Compression;

use super::super::{EngineError, Result};
use super::kafka::tp_key;
use super::kafka_batch::BatchBuilder;
use super::kafka_fetch::Range;

/// What a record batch's header says (v2, Kafka 0.11 and later).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct BatchHead {
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
    pub(super) fn next_offset(&self) -> i64 {
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
pub(super) fn whole_batches(records: &[u8]) -> Result<Vec<BatchHead>> {
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

/// Appends the records of `head` at offsets `from..range.end` to `builder`, parsed in place
/// (kafka-protocol's decoder built a `Record` with two reference-counted slices and a header
/// map per message, and a `Vec` of them per batch: ~8% of music_kafka's CPU samples).
pub(super) fn decode_into(
    records: &Bytes,
    head: &BatchHead,
    from: i64,
    range: &Range<'_>,
    builder: &mut BatchBuilder,
) -> Result<()> {
    let corrupt = |what: &str| {
        EngineError::Broker(format!(
            "a record batch of {} at offset {} is corrupt: {what}",
            tp_key(range.topic, range.partition),
            head.base_offset
        ))
    };
    let log_append = head.log_append_time();
    for_each_record(records, head, &mut |r| {
        let offset = head.base_offset + i64::from(r.offset_delta);
        if offset >= from && offset < range.end {
            // with LogAppendTime the batch's max timestamp is every record's (the broker's)
            let ts = if log_append { head.max_timestamp } else { r.timestamp };
            let stamp = (ts >= 0).then_some((ts, i32::from(log_append)));
            builder.push_parts(r.key, r.value, range.topic, range.partition, offset, stamp);
        }
    })
    .map_err(|e| corrupt(&e))
}

/// One record of a batch, borrowed from the fetched (or uncompressed) bytes.
struct RecordView<'a> {
    offset_delta: i32,
    timestamp: i64,
    key: Option<&'a [u8]>,
    value: Option<&'a [u8]>,
}

/// Calls `f` with each record of the batch `head`, after checking its CRC-32C (as the Java
/// consumer's `check.crcs`) and uncompressing it. An error says what is wrong.
fn for_each_record(
    records: &Bytes,
    head: &BatchHead,
    f: &mut dyn FnMut(RecordView<'_>),
) -> std::result::Result<(), String> {
    let batch = &records[head.at..head.at + head.len];
    // the CRC covers everything from the attributes on
    if crc32c::crc32c(&batch[21..]) != u32::from_be_bytes(be(batch, 17)) {
        return Err("its CRC does not match".into());
    }
    let base_timestamp = i64::from_be_bytes(be(batch, 27));
    let count = i32::from_be_bytes(be(batch, 57));
    let uncompressed;
    let body = match codec(head.attributes)? {
        Compression::None => &batch[BATCH_HEAD_BYTES..],
        codec => {
            let mut packed = records.slice(head.at + BATCH_HEAD_BYTES..head.at + head.len);
            uncompressed = decompress(&mut packed, codec).map_err(|e| e.to_string())?;
            &uncompressed[..]
        }
    };
    let mut p = Cursor { bytes: body, at: 0 };
    for _ in 0..count {
        let len = usize::try_from(p.varint()?).map_err(|_| "a negative record length")?;
        let end = p.at.checked_add(len).filter(|&e| e <= body.len()).ok_or("a cut record")?;
        p.at += 1; // the record's attributes (unused)
        let timestamp = base_timestamp.wrapping_add(p.varlong()?);
        let offset_delta = p.varint()?;
        let key = p.bytes()?;
        let value = p.bytes()?;
        // (headers are read only through librdkafka, `includeHeaders`)
        p.at = end;
        f(RecordView { offset_delta, timestamp, key, value });
    }
    Ok(())
}

/// The codec of a batch's attributes (their low three bits).
fn codec(attributes: i16) -> std::result::Result<Compression, String> {
    Ok(match attributes & 0x7 {
        0 => Compression::None,
        1 => Compression::Gzip,
        2 => Compression::Snappy,
        3 => Compression::Lz4,
        4 => Compression::Zstd,
        c => return Err(format!("unknown compression codec {c}")),
    })
}

/// Reads the Kafka protocol's zigzag varints and length-prefixed bytes of a record.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn varlong(&mut self) -> std::result::Result<i64, String> {
        let mut raw = 0u64;
        for shift in (0..70).step_by(7) {
            let b = *self.bytes.get(self.at).ok_or("a cut varint")?;
            self.at += 1;
            raw |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok((raw >> 1) as i64 ^ -((raw & 1) as i64));
            }
        }
        Err("a varint longer than 10 bytes".into())
    }

    fn varint(&mut self) -> std::result::Result<i32, String> {
        i32::try_from(self.varlong()?).map_err(|_| "a varint out of range".into())
    }

    /// A length-prefixed field: None for length -1.
    fn bytes(&mut self) -> std::result::Result<Option<&'a [u8]>, String> {
        let Ok(len) = usize::try_from(self.varint()?) else { return Ok(None) };
        let end =
            self.at.checked_add(len).filter(|&e| e <= self.bytes.len()).ok_or("a cut field")?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(Some(out))
    }
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
pub(super) struct Transactions {
    /// Aborted transactions not reached yet, first offset first.
    pending: BinaryHeap<Reverse<(i64, i64)>>,
    aborted: HashSet<i64>,
}

impl Transactions {
    pub(super) fn new(committed: bool, list: Option<Vec<AbortedTransaction>>) -> Self {
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
    pub(super) fn skips(&mut self, head: &BatchHead, records: &Bytes) -> Result<bool> {
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
    let mut abort = false;
    let _ = for_each_record(records, head, &mut |r| {
        abort |= r.key.is_some_and(|k| k.len() >= 4 && i16::from_be_bytes([k[2], k[3]]) == 0);
    });
    abort
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray, BinaryArray};
    use arrow::datatypes::{Int64Type, TimestampMicrosecondType};
    use bytes::{BufMut, BytesMut};
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

    /// A record's headers are stepped over (its key and value stay right), and a batch whose
    /// bytes changed on the way fails its CRC with an error naming the partition and offset.
    #[test]
    fn headers_are_stepped_over_and_a_damaged_batch_is_an_error() {
        let mut with_headers = record(0, -1, false, false);
        with_headers.key = Some(Bytes::from_static("clé".as_bytes()));
        with_headers.headers.insert("h".into(), Some(Bytes::from_static(b"1")));
        with_headers.headers.insert("ünïcode".into(), None);
        let mut buf = BytesMut::new();
        encode(&mut buf, &[with_headers, record(1, -1, false, false)], Compression::None);
        let all = buf.freeze();
        let head = whole_batches(&all).unwrap()[0];
        let mut builder = BatchBuilder::new(false);
        decode_into(&all, &head, 0, &range(0, 2), &mut builder).unwrap();
        let b = builder.finish().unwrap();
        let keys: &BinaryArray = b.column(0).as_binary();
        let values: &BinaryArray = b.column(1).as_binary();
        assert_eq!(keys.value(0), "clé".as_bytes());
        assert!(keys.is_null(1));
        assert_eq!((values.value(0), values.value(1)), (&b"{\"n\":0}"[..], &b"{\"n\":1}"[..]));

        let mut damaged = all.to_vec();
        let last = damaged.len() - 3;
        damaged[last] ^= 0x20;
        let damaged = Bytes::from(damaged);
        let err = decode_into(&damaged, &head, 0, &range(0, 2), &mut builder).unwrap_err();
        assert!(err.to_string().contains("t:0 at offset 0 is corrupt: its CRC"), "{err}");
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
}
