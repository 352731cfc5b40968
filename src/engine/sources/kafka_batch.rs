//! Spark's Kafka source columns, built message by message into Arrow arrays.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryBuilder, Int32Builder, Int64Builder, ListBuilder, RecordBatch, StringBuilder,
    StructBuilder, TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, Field};
use rdkafka::message::{Headers, Message};

use super::super::Result;
use super::kafka::{header_fields, schema};

/// Where `value` and `offset` are in [`schema`].
pub(super) const VALUE_COLUMN: usize = 1;
pub(super) const OFFSET_COLUMN: usize = 4;

/// Builds Spark's Kafka columns message by message (columnar builders, no JSON).
pub(super) struct BatchBuilder {
    key: BinaryBuilder,
    value: BinaryBuilder,
    topic: StringBuilder,
    partition: Int32Builder,
    offset: Int64Builder,
    timestamp: TimestampMicrosecondBuilder,
    timestamp_type: Int32Builder,
    /// Spark's `headers` column, with `includeHeaders` only (reading them costs a
    /// librdkafka allocation per message: ~3% of music_kafka's CPU).
    headers: Option<ListBuilder<StructBuilder>>,
    rows: usize,
}

impl BatchBuilder {
    pub(super) fn new(include_headers: bool) -> Self {
        Self {
            key: BinaryBuilder::new(),
            value: BinaryBuilder::new(),
            topic: StringBuilder::new(),
            partition: Int32Builder::new(),
            offset: Int64Builder::new(),
            timestamp: TimestampMicrosecondBuilder::new().with_timezone("UTC"),
            timestamp_type: Int32Builder::new(),
            headers: include_headers.then(|| {
                ListBuilder::new(StructBuilder::from_fields(header_fields(), 0)).with_field(
                    Arc::new(Field::new("element", DataType::Struct(header_fields()), true)),
                )
            }),
            rows: 0,
        }
    }

    /// An empty builder for the same columns.
    pub(super) fn empty_like(&self) -> Self {
        Self::new(self.headers.is_some())
    }

    pub(super) fn len(&self) -> usize {
        self.rows
    }

    /// Appends `msg` of `topic` (its topic, known to the caller: `msg.topic()` measures and
    /// checks the C string every time).
    pub(super) fn push<M: Message>(&mut self, msg: &M, topic: &str) {
        let stamp = match msg.timestamp() {
            rdkafka::Timestamp::NotAvailable => None,
            rdkafka::Timestamp::CreateTime(ms) => Some((ms, 0)),
            rdkafka::Timestamp::LogAppendTime(ms) => Some((ms, 1)),
        };
        self.push_parts(msg.key(), msg.payload(), topic, msg.partition(), msg.offset(), stamp);
        if let Some(headers) = &mut self.headers {
            match msg.headers() {
                Some(h) => {
                    for header in h.iter() {
                        let s = headers.values();
                        if let Some(b) = s.field_builder::<StringBuilder>(0) {
                            b.append_value(header.key);
                        }
                        if let Some(b) = s.field_builder::<BinaryBuilder>(1) {
                            b.append_option(header.value);
                        }
                        s.append(true);
                    }
                    headers.append(true);
                }
                None => headers.append(false),
            }
        }
    }

    /// Appends a message's columns but `headers` (`push` appends those; a builder with a
    /// headers column is filled by `push` only): `stamp` is its timestamp in ms and its type
    /// (0 CreateTime, 1 LogAppendTime).
    pub(super) fn push_parts(
        &mut self,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        topic: &str,
        partition: i32,
        offset: i64,
        stamp: Option<(i64, i32)>,
    ) {
        self.key.append_option(key);
        self.value.append_option(value);
        self.topic.append_value(topic);
        self.partition.append_value(partition);
        self.offset.append_value(offset);
        self.timestamp.append_option(stamp.map(|(ms, _)| ms * 1000));
        self.timestamp_type.append_option(stamp.map(|(_, ty)| ty));
        self.rows += 1;
    }

    pub(super) fn finish(&mut self) -> Result<RecordBatch> {
        let rows = std::mem::take(&mut self.rows);
        let (key, value, topic) = (self.key.finish(), self.value.finish(), self.topic.finish());
        // the next batch is sized like this one, with room to spare: grown by doubling, the
        // byte buffers were copied ~20 times per batch into fresh pages (~4% of music_kafka's
        // CPU in `perf`: realloc and its page faults)
        let room = |bytes: usize| bytes + bytes / 4;
        self.key = BinaryBuilder::with_capacity(rows, room(key.value_data().len()));
        self.value = BinaryBuilder::with_capacity(rows, room(value.value_data().len()));
        self.topic = StringBuilder::with_capacity(rows, room(topic.value_data().len()));
        let mut cols: Vec<ArrayRef> = vec![
            Arc::new(key),
            Arc::new(value),
            Arc::new(topic),
            Arc::new(self.partition.finish()),
            Arc::new(self.offset.finish()),
            Arc::new(self.timestamp.finish()),
            Arc::new(self.timestamp_type.finish()),
        ];
        // the number columns too: `finish` left them empty, to grow by doubling (and copy)
        // again; their share was ~1% of music_kafka's samples, the run's CPU within noise of
        // it after (0.805 -> 0.800 CPU-s, 8 alternating rounds)
        self.partition = Int32Builder::with_capacity(rows);
        self.offset = Int64Builder::with_capacity(rows);
        self.timestamp = TimestampMicrosecondBuilder::with_capacity(rows).with_timezone("UTC");
        self.timestamp_type = Int32Builder::with_capacity(rows);
        if let Some(headers) = &mut self.headers {
            cols.push(Arc::new(headers.finish()));
        }
        Ok(RecordBatch::try_new(schema(self.headers.is_some()), cols)?)
    }
}
