//! Kafka sink: rows to a topic with an idempotent producer. At-least-once: every message of a
//! batch is acknowledged before the batch's commit is written, and a batch replayed after a
//! crash is sent again (consumers that need exactly-once deduplicate by key or offset).

use std::time::Duration;

use arrow::array::{Array, RecordBatch};
use arrow::datatypes::DataType;
use datafusion::prelude::DataFrame;
use futures::StreamExt;
use rdkafka::producer::{FutureProducer, FutureRecord};

use crate::model::env;
use crate::model::node::KafkaSink;

use super::super::sources::kafka::client_config;
use super::super::{EngineError, Result};

fn column_bytes(batch: &RecordBatch, name: &str) -> Result<Vec<Option<Vec<u8>>>> {
    let idx = batch.schema().index_of(name).map_err(|_| {
        EngineError::Config(format!("no column `{name}` in the input of the Kafka sink"))
    })?;
    let col = arrow::compute::cast(batch.column(idx), &DataType::Utf8)
        .map_err(|_| EngineError::Config(format!("column `{name}` cannot be sent as text")))?;
    let col = col
        .as_any()
        .downcast_ref::<arrow::array::StringArray>()
        .ok_or_else(|| EngineError::Config(format!("column `{name}` is not text")))?;
    Ok((0..col.len()).map(|i| col.is_valid(i).then(|| col.value(i).as_bytes().to_vec())).collect())
}

/// Rows as JSON lines, written by arrow-json for a whole batch at once.
fn rows_as_json(batch: &RecordBatch) -> Result<Vec<Option<Vec<u8>>>> {
    let mut buf = Vec::new();
    {
        let mut w = arrow::json::LineDelimitedWriter::new(&mut buf);
        w.write(batch)?;
        w.finish()?;
    }
    Ok(buf.split(|&b| b == b'\n').filter(|l| !l.is_empty()).map(|l| Some(l.to_vec())).collect())
}

/// Sends every row of `df`; returns the number of messages acknowledged.
pub async fn write(sink: &KafkaSink, df: DataFrame) -> Result<u64> {
    let mut config = client_config(&sink.bootstrap_servers, &sink.options)?;
    config.set("enable.idempotence", "true").set("linger.ms", "5").set("log_level", "3");
    let producer: FutureProducer = config
        .create()
        .map_err(|e| EngineError::Config(format!("bad Kafka producer settings: {e}")))?;
    let topic = env::expand(&sink.topic)?;
    let mut stream = df.execute_stream().await?;
    let mut sent = 0u64;
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        let values = match &sink.value_column {
            Some(c) => column_bytes(&batch, c)?,
            None => rows_as_json(&batch)?,
        };
        let keys = match &sink.key_column {
            Some(c) => Some(column_bytes(&batch, c)?),
            None => None,
        };
        let mut deliveries = Vec::with_capacity(values.len());
        for (i, value) in values.iter().enumerate() {
            let mut record: FutureRecord<'_, Vec<u8>, Vec<u8>> = FutureRecord::to(&topic);
            if let Some(v) = value {
                record = record.payload(v);
            }
            if let Some(Some(k)) = keys.as_ref().map(|k| &k[i]) {
                record = record.key(k);
            }
            deliveries.push(producer.send(record, Duration::from_secs(30)));
        }
        for d in futures::future::join_all(deliveries).await {
            d.map_err(|(e, _)| {
                EngineError::Broker(format!("Kafka did not acknowledge a message: {e}"))
            })?;
            sent += 1;
        }
    }
    Ok(sent)
}
