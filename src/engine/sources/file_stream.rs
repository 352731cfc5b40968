//! A batch read of JSON or CSV files as a stream: the files are decoded a segment at a time
//! while the plan consumes the batches, so a run holds a few segments instead of the whole
//! input decoded (users_batch on 10M users reads 2 GB of JSON). Malformed records are collected
//! as they are found; the run takes them after the plan has executed.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use arrow::datatypes::{Schema, SchemaRef};
use datafusion::catalog::streaming::StreamingTable;
use datafusion::error::DataFusionError;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_plan::stream::RecordBatchReceiverStreamBuilder;
use datafusion::physical_plan::streaming::PartitionStream;

use super::json_lines::{self, BadRecord};
use crate::engine::error::{EngineError, Result};
use crate::model::node::{FileFormat, FileSource, ParseMode};

/// Bytes of JSON decoded at once (whole lines): what a read holds of a file beyond the
/// batches in flight. Larger segments save nothing measurable (the decoder works in 1 MiB
/// chunks anyway).
pub const SEGMENT_BYTES: usize = 16 << 20;

/// Batches handed over ahead of the consumer.
const BATCHES_AHEAD: usize = 4;

/// The malformed records a stream found, once each: a plan that reads the source twice (a node
/// feeding two sinks) decodes the files twice.
#[derive(Clone, Debug, Default)]
pub struct BadRecords(Arc<Mutex<BTreeMap<(String, u64), BadRecord>>>);

impl BadRecords {
    pub(crate) fn add(&self, records: Vec<BadRecord>) {
        if records.is_empty() {
            return;
        }
        let mut all = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for r in records {
            all.entry((r.file.clone(), r.line)).or_insert(r);
        }
    }

    /// The records found so far, by file and line.
    pub fn take(&self) -> Vec<BadRecord> {
        let mut all = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        std::mem::take(&mut *all).into_values().collect()
    }
}

/// The files of one source, read in order as one partition (the rows come in the order a
/// whole-file read gave them).
#[derive(Debug)]
struct FilesPartition {
    node: String,
    files: Vec<PathBuf>,
    format: FileFormat,
    mode: ParseMode,
    header: bool,
    /// The declared (or inferred) schema, without `_rescued_data`.
    decode_as: Arc<Schema>,
    /// What the batches carry (with `_rescued_data` in permissive mode).
    schema: SchemaRef,
    bad: BadRecords,
}

/// A table that decodes `files` as it is read, and where its malformed records go.
pub fn streaming_table(
    node: &str,
    files: Vec<PathBuf>,
    cfg: &FileSource,
    schema: Schema,
) -> Result<(StreamingTable, BadRecords)> {
    let out = json_lines::output_schema(&schema, cfg.parse_mode);
    let bad = BadRecords::default();
    let partition = FilesPartition {
        node: node.to_owned(),
        files,
        format: cfg.format,
        mode: cfg.parse_mode,
        header: cfg.header,
        decode_as: Arc::new(schema),
        schema: out.clone(),
        bad: bad.clone(),
    };
    Ok((StreamingTable::try_new(out, vec![Arc::new(partition)])?, bad))
}

impl PartitionStream for FilesPartition {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let mut builder = RecordBatchReceiverStreamBuilder::new(self.schema.clone(), BATCHES_AHEAD);
        let tx = builder.tx();
        let (files, format, mode, header) =
            (self.files.clone(), self.format, self.mode, self.header);
        let (schema, node, bad) = (self.decode_as.clone(), self.node.clone(), self.bad.clone());
        builder.spawn_blocking(move || {
            // false once the consumer is gone (a LIMIT satisfied, a cancelled preview)
            let send = |d: json_lines::Decoded| {
                bad.add(d.bad);
                d.batches.into_iter().all(|b| tx.blocking_send(Ok(b)).is_ok())
            };
            // one read buffer for all the files: a fresh one per file was page-faulted in
            // anew each time: users_batch bronze on 10M users 13.7 -> 11.1 CPU-s (sys 3.8 -> 1.9)
            let mut buf = Vec::new();
            let mut read = || -> Result<()> {
                for path in &files {
                    let going = match format {
                        // CSV whole (its header and quoting cross any segment boundary)
                        FileFormat::Csv => {
                            send(super::files::decode_file(path, format, &schema, header, mode)?)
                        }
                        _ => json_segments(path, &schema, mode, &send, &mut buf)?,
                    };
                    if !going {
                        break;
                    }
                }
                Ok(())
            };
            read().map_err(|e| DataFusionError::External(format!("node `{node}`: {e}").into()))
        });
        builder.build()
    }
}

/// Decodes one JSON Lines file a segment of whole lines at a time, handing each segment's
/// batches to `send`; false when `send` says the consumer is gone. `buf` is scratch space.
fn json_segments(
    path: &std::path::Path,
    schema: &Schema,
    mode: ParseMode,
    send: &dyn Fn(json_lines::Decoded) -> bool,
    buf: &mut Vec<u8>,
) -> Result<bool> {
    let name = path.to_string_lossy();
    let mut file = File::open(path).map_err(|e| EngineError::io(path, e))?;
    // grows as read: a small file costs its size, a large one a segment and a partial line
    buf.clear();
    let mut lines_before = 0u64;
    let mut eof = false;
    while !eof {
        // a segment's worth of bytes after the carried partial line
        let want = SEGMENT_BYTES as u64;
        let n = (&mut file).take(want).read_to_end(buf).map_err(|e| EngineError::io(path, e))?;
        eof = (n as u64) < want;
        // whole lines now, the partial last one on the next round (all of it at the end)
        let cut = match memchr::memrchr(b'\n', buf) {
            Some(p) if !eof => p + 1,
            // a line longer than a segment: read on until it ends
            None if !eof => continue,
            _ => buf.len(),
        };
        if cut > 0 {
            let segment = &buf[..cut];
            let decoded = json_lines::decode_at(&name, segment, schema, mode, &mut lines_before)?;
            if !send(decoded) {
                return Ok(false);
            }
        }
        buf.drain(..cut);
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::{DataType, Field};

    fn decode_all(bytes: &[u8], mode: ParseMode) -> (usize, Vec<BadRecord>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.json");
        std::fs::write(&path, bytes).unwrap();
        let schema = Schema::new(vec![Field::new("id", DataType::Int64, true)]);
        let rows = std::cell::Cell::new(0);
        let bad = std::cell::RefCell::new(Vec::new());
        let send = |d: json_lines::Decoded| {
            rows.set(rows.get() + d.batches.iter().map(|b| b.num_rows()).sum::<usize>());
            bad.borrow_mut().extend(d.bad);
            true
        };
        assert!(json_segments(&path, &schema, mode, &send, &mut Vec::new()).unwrap());
        (rows.get(), bad.into_inner())
    }

    #[test]
    fn segments_number_bad_lines_by_their_line_in_the_file() {
        // three segments and more, a bad line in each, the last line without a newline
        let line = b"{\"id\": 1234567890}\n";
        let per_segment = SEGMENT_BYTES / line.len();
        let mut bytes = Vec::new();
        let mut bad_lines = Vec::new();
        for i in 0..(per_segment * 3 + 10) {
            if i % per_segment == per_segment / 2 {
                bytes.extend_from_slice(b"{\"id\": oops}\n");
                bad_lines.push(i as u64 + 1);
            } else {
                bytes.extend_from_slice(line);
            }
        }
        bytes.extend_from_slice(b"{\"id\": 7}");
        let total = per_segment * 3 + 11;
        let (rows, bad) = decode_all(&bytes, ParseMode::DropMalformed);
        assert_eq!(rows, total - bad_lines.len());
        assert_eq!(bad.iter().map(|b| b.line).collect::<Vec<_>>(), bad_lines);
        assert!(bad.iter().all(|b| b.raw == "{\"id\": oops}"), "{:?}", bad[0]);
    }

    #[test]
    fn a_line_longer_than_a_segment_is_read_whole() {
        let mut bytes = b"{\"id\": 1}\n{\"id\": 2, \"pad\": \"".to_vec();
        bytes.extend(std::iter::repeat_n(b'x', SEGMENT_BYTES + 100));
        bytes.extend_from_slice(b"\"}\n{\"id\": 3}\n");
        let (rows, bad) = decode_all(&bytes, ParseMode::FailFast);
        assert_eq!((rows, bad.len()), (3, 0));
    }

    #[test]
    fn small_and_empty_files() {
        assert_eq!(decode_all(b"", ParseMode::FailFast), (0, vec![]));
        assert_eq!(decode_all(b"{\"id\": 1}\n{\"id\": 2}", ParseMode::FailFast).0, 2);
        // a file of exactly one segment, whole lines
        let line = b"{\"id\": 1234567}\n";
        assert_eq!(SEGMENT_BYTES % line.len(), 0, "the case needs a whole number of lines");
        let bytes = line.repeat(SEGMENT_BYTES / line.len());
        assert_eq!(decode_all(&bytes, ParseMode::FailFast).0, SEGMENT_BYTES / line.len());
    }
}
