//! One micro-batch's Kafka messages as they arrive. The read fills it on its own thread while
//! the plan reads it as a table, so decoding and writing start with the first messages instead
//! of after the last (music_kafka, 200,000 messages a batch: the first batch waited ~400 ms for
//! its fetch before any work began). Every later execution of the plan replays what was read,
//! unless the plan reads the source once ([`Reads::Once`]): then each batch is handed over and
//! not kept.

use std::sync::{Arc, Mutex};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::error::DataFusionError;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use tokio::sync::watch;

use super::super::{EngineError, Result};

/// How a read ended: its error is kept as text and rebuilt for the runtime, which retries a
/// broker error (the batch is replayed from its offsets) and stops on any other.
#[derive(Clone, Debug)]
enum End {
    Done,
    Broker(String),
    Failed(String),
}

#[derive(Default)]
struct State {
    /// `None` once handed over to the one reader of [`Reads::Once`].
    batches: Vec<Option<RecordBatch>>,
    rows: u64,
    end: Option<End>,
    readers: usize,
}

/// How many times the micro-batch's plan reads the source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reads {
    /// Any number: every reader replays every batch, so all are kept until the micro-batch ends.
    Replayed,
    /// Exactly once (a chain of single-pass transforms into one appending sink: see
    /// `stream_source::read_once`): each batch is handed to the reader and dropped here, so the
    /// raw messages are freed as they are decoded instead of at the end of the micro-batch
    /// (music_kafka, 200k messages a batch: 0.835 -> 0.785 CPU-s, peak RSS 221 -> 157 MB, the
    /// freed pages reused by the next messages instead of faulted in). A second reader is an
    /// error, never a silent empty read.
    Once,
}

/// The messages of one read, in the order the read delivered them.
pub(crate) struct Arrivals {
    schema: SchemaRef,
    reads: Reads,
    state: Mutex<State>,
    /// Bumped at every change, so a waiting reader wakes.
    changed: watch::Sender<u64>,
}

impl std::fmt::Debug for Arrivals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Arrivals").finish_non_exhaustive()
    }
}

impl Arrivals {
    pub fn new(schema: SchemaRef, reads: Reads) -> Arc<Self> {
        Arc::new(Self { schema, reads, state: Mutex::default(), changed: watch::Sender::new(0) })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn push(&self, batch: RecordBatch) {
        {
            let mut st = self.state();
            st.rows += batch.num_rows() as u64;
            st.batches.push(Some(batch));
        }
        self.changed.send_modify(|v| *v += 1);
    }

    /// The read is over: with every message of its ranges, or with `result`'s error.
    pub fn finish(&self, result: &Result<()>) {
        let end = match result {
            Ok(()) => End::Done,
            Err(e) if e.is_retryable() => End::Broker(strip_prefix(e)),
            Err(e) => End::Failed(e.to_string()),
        };
        self.state().end.get_or_insert(end);
        self.changed.send_modify(|v| *v += 1);
    }

    /// Waits for the read to end: the rows it read, or its error.
    pub async fn finished(&self) -> Result<u64> {
        let mut rx = self.changed.subscribe();
        loop {
            rx.borrow_and_update();
            {
                let st = self.state();
                match &st.end {
                    Some(End::Done) => return Ok(st.rows),
                    Some(End::Broker(m)) => return Err(EngineError::Broker(m.clone())),
                    Some(End::Failed(m)) => return Err(EngineError::Config(m.clone())),
                    None => {}
                }
            }
            if rx.changed().await.is_err() {
                return Err(EngineError::Config("the Kafka read was dropped".into()));
            }
        }
    }

    /// Blocks this (blocking) thread until the read ends, whatever its outcome.
    pub fn wait_blocking(&self) {
        let mut rx = self.changed.subscribe();
        loop {
            rx.borrow_and_update();
            if self.state().end.is_some() {
                return;
            }
            let handle = tokio::runtime::Handle::current();
            if handle.block_on(rx.changed()).is_err() {
                return;
            }
        }
    }

    /// The batches from the first, as they arrive; ends with the read (or its error).
    pub fn stream(self: &Arc<Self>) -> SendableRecordBatchStream {
        let once = self.reads == Reads::Once;
        let readers = {
            let mut st = self.state();
            st.readers += 1;
            st.readers
        };
        if once && readers > 1 {
            // a plan that reads the source twice where it was judged to read it once: an
            // error that names the cause (an empty second read would lose the batch's rows)
            let e = "the Kafka batch was handed to the plan's one reader already and a second \
                     reader asked for it: a bug in Medallion (the source is read once only in a \
                     chain of single-pass transforms into one sink)";
            let refused =
                futures::stream::once(async move { Err(DataFusionError::External(e.into())) });
            return Box::pin(RecordBatchStreamAdapter::new(self.schema.clone(), refused));
        }
        let rx = self.changed.subscribe();
        let s = futures::stream::unfold(
            (Arc::clone(self), rx, Some(0usize)),
            move |(me, mut rx, next)| async move {
                // `None` after an error: the stream has ended
                let next = next?;
                loop {
                    rx.borrow_and_update();
                    let step = {
                        let mut st = me.state();
                        let taken = st.batches.get_mut(next).map(|b| match once {
                            true => b.take(),
                            false => b.clone(),
                        });
                        match (taken, &st.end) {
                            (Some(Some(b)), _) => Step::Batch(b),
                            (Some(None), _) => {
                                Step::Error("the Kafka batch was read already".into())
                            }
                            (None, Some(End::Done)) => Step::End,
                            (None, Some(End::Broker(m) | End::Failed(m))) => Step::Error(m.clone()),
                            (None, None) => Step::Wait,
                        }
                    };
                    return match step {
                        Step::Batch(b) => Some((Ok(b), (me, rx, Some(next + 1)))),
                        Step::Error(m) => {
                            Some((Err(DataFusionError::External(m.into())), (me, rx, None)))
                        }
                        Step::End => None,
                        Step::Wait => {
                            if rx.changed().await.is_err() {
                                return None;
                            }
                            continue;
                        }
                    };
                }
            },
        );
        Box::pin(RecordBatchStreamAdapter::new(self.schema.clone(), s))
    }
}

/// What a reader does next.
enum Step {
    Batch(RecordBatch),
    Error(String),
    End,
    Wait,
}

/// A broker error's message without the "Kafka: " its display adds (rebuilt as one).
fn strip_prefix(e: &EngineError) -> String {
    match e {
        EngineError::Broker(m) => m.clone(),
        EngineError::Node { source, .. } => strip_prefix(source),
        other => other.to_string(),
    }
}

/// [`Arrivals`] as one partition of a table.
#[derive(Debug)]
pub(crate) struct ArrivalsPartition(pub Arc<Arrivals>);

impl PartitionStream for ArrivalsPartition {
    fn schema(&self) -> &SchemaRef {
        &self.0.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        self.0.stream()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Field, Schema};
    use futures::StreamExt;

    fn batch(schema: &SchemaRef, values: &[i64]) -> RecordBatch {
        RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(values.to_vec()))])
            .unwrap()
    }

    async fn values(mut s: SendableRecordBatchStream) -> std::result::Result<Vec<i64>, String> {
        let mut out = Vec::new();
        while let Some(b) = s.next().await {
            let b = b.map_err(|e| e.to_string())?;
            out.extend(b.column(0).as_any().downcast_ref::<Int64Array>().unwrap().values());
        }
        Ok(out)
    }

    /// A reader started before the first message gets every batch in order as it arrives; a
    /// second reader after the end replays them; a broker failure reaches readers as an error
    /// and the runtime as a retryable one.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn readers_get_every_batch_as_it_arrives_and_replays_see_the_same() {
        let schema = Arc::new(Schema::new(vec![Field::new("offset", DataType::Int64, false)]));
        let arrivals = Arrivals::new(schema.clone(), Reads::Replayed);
        let early = tokio::spawn(values(arrivals.stream()));
        let writer = {
            let (a, schema) = (arrivals.clone(), schema.clone());
            tokio::task::spawn_blocking(move || {
                for i in 0..5 {
                    std::thread::sleep(std::time::Duration::from_millis(5));
                    a.push(batch(&schema, &[2 * i, 2 * i + 1]));
                }
                a.finish(&Ok(()));
            })
        };
        assert_eq!(early.await.unwrap().unwrap(), (0..10).collect::<Vec<_>>());
        writer.await.unwrap();
        assert_eq!(values(arrivals.stream()).await.unwrap(), (0..10).collect::<Vec<_>>());
        assert_eq!(arrivals.finished().await.unwrap(), 10);

        let failing = Arrivals::new(schema.clone(), Reads::Replayed);
        failing.push(batch(&schema, &[7]));
        let reader = tokio::spawn(values(failing.stream()));
        failing.finish(&Err(EngineError::Broker("no messages from t:0 for 30 s".into())));
        let err = reader.await.unwrap().unwrap_err();
        assert!(err.contains("no messages from t:0"), "{err}");
        let err = failing.finished().await.unwrap_err();
        assert!(err.is_retryable() && err.to_string().contains("t:0 for 30 s"), "{err}");
    }

    /// Read once: the one reader gets every batch as it arrives and nothing stays behind; a
    /// second reader gets an error, not an empty read.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_source_read_once_hands_its_batches_over() {
        let schema = Arc::new(Schema::new(vec![Field::new("offset", DataType::Int64, false)]));
        let arrivals = Arrivals::new(schema.clone(), Reads::Once);
        let reader = tokio::spawn(values(arrivals.stream()));
        for i in 0..4 {
            arrivals.push(batch(&schema, &[i]));
        }
        arrivals.finish(&Ok(()));
        assert_eq!(reader.await.unwrap().unwrap(), vec![0, 1, 2, 3]);
        assert!(arrivals.state().batches.iter().all(Option::is_none), "batches kept");
        assert_eq!(arrivals.finished().await.unwrap(), 4);
        let err = values(arrivals.stream()).await.unwrap_err();
        assert!(err.contains("second reader"), "{err}");
    }
}
