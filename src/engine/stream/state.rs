//! The versioned state store of a stream's stateful nodes, under the checkpoint:
//!
//! ```text
//! <checkpoint>/state/<node id>/_metadata.json      what the state was built from (fingerprint)
//! <checkpoint>/state/<node id>/<version>.<part>.arrow   the state after batch version-1
//! ```
//!
//! Batch N reads version N and writes version N+1 (Spark's numbering), before the sinks
//! commit and before `commits/N`; a replayed batch N reads version N again and overwrites
//! N+1 with the same content. Each version is a full image in Arrow IPC, written atomically
//! (temp file, fsync, rename): state is bounded by the watermark, so an image per batch costs
//! what the state holds, and loading never replays a chain of deltas. Versions older than
//! the checkpoint's retention are purged with the offsets and commits.

use std::fs::File;
use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow::ipc::reader::FileReader;
use arrow::ipc::writer::FileWriter;
use serde::{Deserialize, Serialize};

use crate::engine::{EngineError, Result};

/// One stateful node's store.
#[derive(Clone, Debug)]
pub struct StateStore {
    dir: PathBuf,
    node: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct StateMetadata {
    node: String,
    fingerprint: String,
}

/// A loaded version: its schema (when written) and rows.
#[derive(Clone, Debug, Default)]
pub struct Loaded {
    pub schema: Option<SchemaRef>,
    pub batches: Vec<RecordBatch>,
}

impl StateStore {
    pub fn new(checkpoint: &Path, node: &str) -> Self {
        Self { dir: checkpoint.join("state").join(node), node: node.to_owned() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Records what the state is built from at the first start, and refuses a different
    /// node configuration later, naming the node and the way out.
    pub fn check_fingerprint(&self, fingerprint: &str, first_batch: bool) -> Result<()> {
        let path = self.dir.join("_metadata.json");
        if path.exists() {
            let bytes = std::fs::read(&path).map_err(|e| EngineError::io(&path, e))?;
            let stored: StateMetadata = serde_json::from_slice(&bytes).map_err(|e| {
                EngineError::Config(format!("state metadata {} is corrupt: {e}", path.display()))
            })?;
            if stored.fingerprint != fingerprint {
                return Err(EngineError::Config(format!(
                    "node `{}` changed since its state was written: the checkpoint holds `{}`, the pipeline now says `{}`. \
                     State cannot be carried over to a different aggregation, deduplication or join; \
                     undo the change, or reset the checkpoint (delete {}) to rebuild the state from the sources",
                    self.node,
                    stored.fingerprint,
                    fingerprint,
                    self.dir.parent().and_then(Path::parent).unwrap_or(&self.dir).display()
                )));
            }
            return Ok(());
        }
        if !first_batch {
            return Err(EngineError::Config(format!(
                "node `{}` keeps state but the checkpoint has none for it: the node was added after the stream started. \
                 Reset the checkpoint (delete {}) to start the query over with it",
                self.node,
                self.dir.parent().and_then(Path::parent).unwrap_or(&self.dir).display()
            )));
        }
        let meta = StateMetadata { node: self.node.clone(), fingerprint: fingerprint.to_owned() };
        let bytes = serde_json::to_vec_pretty(&meta)
            .map_err(|e| EngineError::Config(format!("cannot write state metadata: {e}")))?;
        super::checkpoint::atomic_write(&path, &bytes)
    }

    fn file(&self, version: u64, part: &str) -> PathBuf {
        self.dir.join(format!("{version}.{part}.arrow"))
    }

    /// The state after batch `version - 1`; empty for version 0.
    pub fn load(&self, version: u64, part: &str) -> Result<Loaded> {
        if version == 0 {
            return Ok(Loaded::default());
        }
        let path = self.file(version, part);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(EngineError::Config(format!(
                    "state version {version} of node `{}` is missing ({}); the checkpoint is incomplete. \
                     Reset the checkpoint to rebuild the state from the sources",
                    self.node,
                    path.display()
                )));
            }
            Err(e) => return Err(EngineError::io(&path, e)),
        };
        let reader = FileReader::try_new(BufReader::new(file), None).map_err(|e| {
            EngineError::Config(format!("state file {} is corrupt: {e}", path.display()))
        })?;
        let schema = reader.schema();
        let batches = reader.collect::<std::result::Result<Vec<_>, _>>().map_err(|e| {
            EngineError::Config(format!("state file {} is corrupt: {e}", path.display()))
        })?;
        Ok(Loaded { schema: Some(schema), batches })
    }

    /// Writes version `version` atomically; returns its size in bytes.
    pub fn save(
        &self,
        version: u64,
        part: &str,
        schema: &SchemaRef,
        batches: &[RecordBatch],
    ) -> Result<u64> {
        std::fs::create_dir_all(&self.dir).map_err(|e| EngineError::io(&self.dir, e))?;
        let path = self.file(version, part);
        let tmp = self.dir.join(format!(".{version}.{part}.arrow.tmp"));
        {
            let file = File::create(&tmp).map_err(|e| EngineError::io(&tmp, e))?;
            let mut writer = FileWriter::try_new(std::io::BufWriter::new(file), schema)?;
            for b in batches {
                writer.write(b)?;
            }
            writer.finish()?;
            let mut inner = writer.into_inner()?;
            inner.flush().map_err(|e| EngineError::io(&tmp, e))?;
            let file = inner.into_inner().map_err(|e| EngineError::io(&tmp, e.into_error()))?;
            file.sync_all().map_err(|e| EngineError::io(&tmp, e))?;
        }
        std::fs::rename(&tmp, &path).map_err(|e| EngineError::io(&path, e))?;
        if let Ok(d) = File::open(&self.dir) {
            let _ = d.sync_all();
        }
        Ok(std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0))
    }

    /// Deletes versions below `keep_from`.
    pub fn purge(&self, keep_from: u64) -> Result<usize> {
        let mut removed = 0;
        for (version, path, _) in self.files()? {
            if version < keep_from {
                std::fs::remove_file(&path).map_err(|e| EngineError::io(&path, e))?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// (version, file, bytes) of every state file, oldest first.
    pub fn files(&self) -> Result<Vec<(u64, PathBuf, u64)>> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(EngineError::io(&self.dir, e)),
        };
        let mut out: Vec<(u64, PathBuf, u64)> = entries
            .filter_map(|e| {
                let e = e.ok()?;
                let name = e.file_name().to_str()?.to_owned();
                let version: u64 = name.strip_suffix(".arrow")?.split('.').next()?.parse().ok()?;
                Some((version, e.path(), e.metadata().ok()?.len()))
            })
            .collect();
        out.sort();
        Ok(out)
    }
}

/// Every stateful node's versions in a checkpoint, for the monitor's checkpoint view:
/// node → [(version, bytes)].
pub fn list_versions(checkpoint: &Path) -> Vec<(String, Vec<(u64, u64)>)> {
    let Ok(entries) = std::fs::read_dir(checkpoint.join("state")) else { return Vec::new() };
    let mut out: Vec<(String, Vec<(u64, u64)>)> = entries
        .filter_map(|e| {
            let e = e.ok()?;
            let node = e.file_name().to_str()?.to_owned();
            let store = StateStore::new(checkpoint, &node);
            let mut versions: Vec<(u64, u64)> = Vec::new();
            for (v, _, bytes) in store.files().ok()? {
                match versions.last_mut() {
                    Some((last, b)) if *last == v => *b += bytes,
                    _ => versions.push((v, bytes)),
                }
            }
            Some((node, versions))
        })
        .collect();
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    #[test]
    fn versions_round_trip_purge_and_refuse_a_changed_node() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::new(dir.path(), "agg");
        store.check_fingerprint("count by k", true).unwrap();
        store.check_fingerprint("count by k", false).unwrap();
        let err = store.check_fingerprint("sum by k", false).unwrap_err().to_string();
        assert!(
            err.contains("node `agg` changed") && err.contains("reset the checkpoint"),
            "{err}"
        );
        let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]));
        let b = RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(vec![1, 2]))])
            .unwrap();
        for v in 1..=3 {
            store.save(v, "state", &schema, std::slice::from_ref(&b)).unwrap();
        }
        let loaded = store.load(2, "state").unwrap();
        assert_eq!(loaded.batches[0], b);
        assert_eq!(store.purge(3).unwrap(), 2);
        assert!(store.load(2, "state").unwrap_err().to_string().contains("missing"));
        assert_eq!(
            list_versions(dir.path()),
            vec![("agg".to_owned(), vec![(3, loaded_size(&store))])]
        );
        let other = StateStore::new(dir.path(), "new_node");
        assert!(other.check_fingerprint("x", false).unwrap_err().to_string().contains("added"));
    }

    fn loaded_size(store: &StateStore) -> u64 {
        store.files().unwrap()[0].2
    }
}
