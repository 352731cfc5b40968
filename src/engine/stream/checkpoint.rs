//! The checkpoint of a stream: Spark's protocol, so it can be explained in one sentence.
//!
//! `metadata` holds the query id and what the query was started with (its sources and their
//! schemas); `offsets/N` is written atomically BEFORE batch N runs and says exactly which data
//! batch N reads; `commits/N` is written after every sink has committed. A batch with offsets
//! but no commit is replayed with the same offsets on restart; Delta sinks skip a replayed
//! batch they already committed (application transactions). The event log lives apart, in
//! `<lakehouse>/_events` (see `eventlog`), so a reset keeps the history.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::model::WatermarkPolicy;

use super::super::{EngineError, Result};
use super::watermark::BatchWatermark;

/// One file taken by a files source.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    pub path: String,
    pub size: u64,
}

/// The data one source contributes to one batch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SourceOffset {
    /// The new files of this batch, in read order.
    Files { files: Vec<FileEntry> },
    /// Table versions `start_version` (exclusive) to `end_version` (inclusive); or, with
    /// `snapshot = [from, to, total]`, files `from..to` of the `total` files of the table's
    /// snapshot at `end_version` (the first batches of a query without startingVersion).
    Delta {
        start_version: i64,
        end_version: i64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        snapshot: Option<[u64; 3]>,
    },
    /// Generated rows `start` (inclusive) to `end` (exclusive); `time_anchor` = `[row, ms]`
    /// fixes the rows' event times (`signup_time` of row n = ms + (n - row) / rows per second),
    /// so a replay generates the same times.
    Generator {
        start: u64,
        end: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        time_anchor: Option<[i64; 2]>,
    },
    /// Kafka: `topic:partition` → `[start, end)` offsets.
    Kafka { ranges: BTreeMap<String, [i64; 2]> },
}

impl SourceOffset {
    pub fn is_empty(&self) -> bool {
        match self {
            SourceOffset::Files { files } => files.is_empty(),
            SourceOffset::Delta { snapshot: Some([from, to, _]), .. } => to <= from,
            SourceOffset::Delta { start_version, end_version, .. } => end_version <= start_version,
            SourceOffset::Generator { start, end, .. } => end <= start,
            SourceOffset::Kafka { ranges } => ranges.values().all(|[s, e]| e <= s),
        }
    }
}

/// `offsets/N`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OffsetsEntry {
    pub batch_id: u64,
    pub timestamp_ms: i64,
    pub sources: BTreeMap<String, SourceOffset>,
    /// Stateful streams: the watermarks this batch runs with (Spark's `batchWatermarkMs`),
    /// fixed before the batch reads anything so a replay computes the same result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watermark: Option<BatchWatermark>,
}

/// `commits/N`: the Delta version each sink committed (or found committed) for the batch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CommitEntry {
    pub batch_id: u64,
    pub timestamp_ms: i64,
    pub sinks: BTreeMap<String, i64>,
    /// Stateful streams: the watermarks for the next batch, from this batch's event times.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_watermark: Option<BatchWatermark>,
    /// Stateful streams: the watermark (µs) at which some state would be evicted, so a
    /// restart knows whether a no-data batch is due.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_expiry_us: Option<i64>,
}

/// `metadata`: identity of the query and what it started with.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    /// The query id, used in Delta application transactions (`appId = <id>/<sink>`).
    pub id: String,
    pub pipeline: String,
    /// Source node id → what it reads (`files:landing/users`, `delta:bronze/users`, ...).
    pub sources: BTreeMap<String, String>,
    /// Source node id → output schema (DDL) when the query started.
    pub schemas: BTreeMap<String, String>,
    pub created_at: String,
    /// How several watermarks combine, fixed at the first start (as Spark keeps
    /// `multipleWatermarkPolicy` in the checkpoint).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watermark_policy: Option<WatermarkPolicy>,
}

/// A checkpoint directory.
#[derive(Clone, Debug)]
pub struct Checkpoint {
    dir: PathBuf,
}

/// Writes a file so that a crash leaves either the old content or the new, never half:
/// temp file, fsync, rename, fsync of the directory.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| EngineError::io(dir, e))?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp"));
    {
        let mut f = std::fs::File::create(&tmp).map_err(|e| EngineError::io(&tmp, e))?;
        f.write_all(bytes).map_err(|e| EngineError::io(&tmp, e))?;
        f.sync_all().map_err(|e| EngineError::io(&tmp, e))?;
    }
    std::fs::rename(&tmp, path).map_err(|e| EngineError::io(path, e))?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    let bytes = std::fs::read(path).map_err(|e| EngineError::io(path, e))?;
    serde_json::from_slice(&bytes).map_err(|e| {
        EngineError::Config(format!(
            "checkpoint file {} is corrupt ({e}); delete the checkpoint folder to start over",
            path.display()
        ))
    })
}

impl Checkpoint {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Loads the metadata, or writes `fresh` if the checkpoint is new. A checkpoint written
    /// for other sources or schemas is refused with what changed and how to reset.
    pub fn open(&self, fresh: Metadata) -> Result<Metadata> {
        let path = self.dir.join("metadata");
        if !path.exists() {
            atomic_write(&path, &serde_json::to_vec_pretty(&fresh).map_err(json_err)?)?;
            return Ok(fresh);
        }
        let stored: Metadata = read_json(&path)?;
        let mut changes = Vec::new();
        for (node, what) in &stored.sources {
            match fresh.sources.get(node) {
                None => changes.push(format!("source `{node}` ({what}) was removed")),
                Some(now) if now != what => {
                    changes.push(format!("source `{node}` changed from {what} to {now}"))
                }
                _ => {}
            }
        }
        for (node, what) in &fresh.sources {
            if !stored.sources.contains_key(node) {
                changes.push(format!("source `{node}` ({what}) was added"));
            }
        }
        for (node, schema) in &stored.schemas {
            if let Some(now) = fresh.schemas.get(node)
                && now != schema
            {
                changes.push(format!(
                    "the schema of source `{node}` changed: {} (was `{schema}`, now `{now}`)",
                    schema_change(schema, now)
                ));
            }
        }
        if !changes.is_empty() {
            return Err(EngineError::Config(format!(
                "the checkpoint at {} was written for a different pipeline: {}. \
                 To reprocess everything with the new pipeline, delete that folder (the sinks' \
                 tables keep their data; reset them too if they must not hold it twice)",
                self.dir.display(),
                changes.join("; ")
            )));
        }
        Ok(stored)
    }

    fn numbered(&self, sub: &str) -> Result<Vec<u64>> {
        let dir = self.dir.join(sub);
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(EngineError::io(&dir, e)),
        };
        let mut ids: Vec<u64> =
            entries.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect();
        ids.sort_unstable();
        Ok(ids)
    }

    /// The highest batch id with a commit.
    pub fn last_committed(&self) -> Result<Option<u64>> {
        Ok(self.numbered("commits")?.last().copied())
    }

    pub fn offsets(&self, batch_id: u64) -> Result<Option<OffsetsEntry>> {
        let path = self.dir.join("offsets").join(batch_id.to_string());
        if path.exists() { Ok(Some(read_json(&path)?)) } else { Ok(None) }
    }

    /// Every offsets entry, oldest first (files sources rebuild their seen-files set from it).
    pub fn all_offsets(&self) -> Result<Vec<OffsetsEntry>> {
        self.numbered("offsets")?
            .into_iter()
            .map(|n| read_json(&self.dir.join("offsets").join(n.to_string())))
            .collect()
    }

    pub fn commit(&self, batch_id: u64) -> Result<Option<CommitEntry>> {
        let path = self.dir.join("commits").join(batch_id.to_string());
        if path.exists() { Ok(Some(read_json(&path)?)) } else { Ok(None) }
    }

    pub fn write_offsets(&self, entry: &OffsetsEntry) -> Result<()> {
        let path = self.dir.join("offsets").join(entry.batch_id.to_string());
        atomic_write(&path, &serde_json::to_vec(entry).map_err(json_err)?)
    }

    pub fn write_commit(&self, entry: &CommitEntry) -> Result<()> {
        let path = self.dir.join("commits").join(entry.batch_id.to_string());
        atomic_write(&path, &serde_json::to_vec(entry).map_err(json_err)?)
    }

    /// What purged batches consumed, per source (Spark's compacted source log): the files
    /// read, the newest Delta version, generator rows, Kafka offsets. Empty before a purge.
    pub fn compacted(&self) -> Result<BTreeMap<String, SourceOffset>> {
        let path = self.dir.join(COMPACT_FILE);
        if path.exists() { read_json(&path) } else { Ok(BTreeMap::new()) }
    }

    /// Keeps the newest `retain` committed batches (Spark's `minBatchesToRetain`): older
    /// `offsets/N` are folded into the compact log first (so a files source still knows every
    /// file it read), then deleted with their `commits/N`. Returns the first batch kept.
    /// A crash between the two steps leaves offsets that are also in the compact log, which
    /// is harmless: consuming the same offsets twice changes nothing.
    pub fn purge(&self, last_committed: u64, retain: u64) -> Result<Option<u64>> {
        let keep_from = (last_committed + 1).saturating_sub(retain.max(1));
        let old: Vec<u64> =
            self.numbered("offsets")?.into_iter().filter(|n| *n < keep_from).collect();
        if old.is_empty() {
            return Ok(None);
        }
        let mut compact = self.compacted()?;
        for n in &old {
            let entry: OffsetsEntry = read_json(&self.dir.join("offsets").join(n.to_string()))?;
            for (node, offset) in entry.sources {
                match compact.get_mut(&node) {
                    Some(c) => fold_offset(c, &offset),
                    None => {
                        compact.insert(node, offset);
                    }
                }
            }
        }
        atomic_write(
            &self.dir.join(COMPACT_FILE),
            &serde_json::to_vec(&compact).map_err(json_err)?,
        )?;
        for n in old {
            for sub in ["offsets", "commits"] {
                let path = self.dir.join(sub).join(n.to_string());
                match std::fs::remove_file(&path) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        return Err(EngineError::io(&path, e));
                    }
                    _ => {}
                }
            }
        }
        Ok(Some(keep_from))
    }
}

/// Batches whose offsets, commits and state a stream keeps (Spark's `minBatchesToRetain`).
pub const MIN_BATCHES_TO_RETAIN: u64 = 100;

/// The compact log of purged batches' offsets.
const COMPACT_FILE: &str = "offsets_compact.json";

/// Adds `next` (a later batch's offsets) to `acc`, so `acc` covers both.
fn fold_offset(acc: &mut SourceOffset, next: &SourceOffset) {
    match (acc, next) {
        (SourceOffset::Files { files }, SourceOffset::Files { files: more }) => {
            files.extend(more.iter().cloned());
        }
        (
            SourceOffset::Delta { start_version, end_version, snapshot },
            SourceOffset::Delta { start_version: s, end_version: e, snapshot: more },
        ) => {
            // the later batch's position in an initial snapshot wins; versions after it clear it
            if *e > *end_version
                || (*e == *end_version
                    && more.is_some_and(|m| snapshot.is_none_or(|o| m[1] > o[1])))
            {
                *snapshot = *more;
            }
            *start_version = (*start_version).min(*s);
            *end_version = (*end_version).max(*e);
        }
        (
            SourceOffset::Generator { start, end, .. },
            SourceOffset::Generator { start: s, end: e, .. },
        ) => {
            *start = (*start).min(*s);
            *end = (*end).max(*e);
        }
        (SourceOffset::Kafka { ranges }, SourceOffset::Kafka { ranges: more }) => {
            for (tp, [s, e]) in more {
                let r = ranges.entry(tp.clone()).or_insert([*s, *e]);
                r[0] = r[0].min(*s);
                r[1] = r[1].max(*e);
            }
        }
        _ => {}
    }
}

/// What a checkpoint holds, for the monitor's checkpoint view.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CheckpointView {
    pub dir: PathBuf,
    pub metadata: Option<Metadata>,
    /// The newest `offsets/N` (planned, maybe not yet committed).
    pub last_planned: Option<u64>,
    pub last_committed: Option<u64>,
    /// The newest commit: the Delta version each sink holds for it.
    pub last_commit: Option<CommitEntry>,
    /// Per source node, everything the committed batches consumed.
    pub consumed: BTreeMap<String, Consumed>,
    /// Stateful nodes: their state versions (version, bytes) under `state/`.
    pub state: Vec<(String, Vec<(u64, u64)>)>,
    /// Files and bytes the checkpoint folder holds (bounded by the purge).
    pub disk_files: usize,
    pub disk_bytes: u64,
}

/// Files and bytes under `dir`, recursively.
pub fn disk_usage(dir: &Path) -> (usize, u64) {
    let mut files = 0;
    let mut bytes = 0;
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(e.path()),
                Ok(_) => {
                    files += 1;
                    bytes += e.metadata().map(|m| m.len()).unwrap_or(0);
                }
                Err(_) => {}
            }
        }
    }
    (files, bytes)
}

impl CheckpointView {
    /// A batch was planned but not committed: the next start replays it with the same offsets.
    pub fn pending_replay(&self) -> Option<u64> {
        match (self.last_planned, self.last_committed) {
            (Some(p), Some(c)) if p > c => Some(p),
            (Some(p), None) => Some(p),
            _ => None,
        }
    }
}

/// What one source consumed over all committed batches.
#[derive(Clone, Debug, PartialEq)]
pub enum Consumed {
    Files {
        files: u64,
        bytes: u64,
        last_file: Option<String>,
    },
    /// The last table version read (inclusive).
    Delta {
        version: i64,
    },
    Generator {
        rows: u64,
    },
    /// Next offset to read per `topic:partition`.
    Kafka {
        next: BTreeMap<String, i64>,
    },
}

impl Consumed {
    fn add(&mut self, offset: &SourceOffset) {
        match (self, offset) {
            (Consumed::Files { files, bytes, last_file }, SourceOffset::Files { files: f }) => {
                *files += f.len() as u64;
                *bytes += f.iter().map(|e| e.size).sum::<u64>();
                if let Some(last) = f.last() {
                    *last_file = Some(last.path.clone());
                }
            }
            (Consumed::Delta { version }, SourceOffset::Delta { end_version, .. }) => {
                *version = (*version).max(*end_version);
            }
            (Consumed::Generator { rows }, SourceOffset::Generator { end, .. }) => {
                *rows = (*rows).max(*end);
            }
            (Consumed::Kafka { next }, SourceOffset::Kafka { ranges }) => {
                for (tp, [_, end]) in ranges {
                    let e = next.entry(tp.clone()).or_insert(*end);
                    *e = (*e).max(*end);
                }
            }
            _ => {}
        }
    }

    fn new(offset: &SourceOffset) -> Self {
        let mut c = match offset {
            SourceOffset::Files { .. } => Consumed::Files { files: 0, bytes: 0, last_file: None },
            SourceOffset::Delta { .. } => Consumed::Delta { version: -1 },
            SourceOffset::Generator { .. } => Consumed::Generator { rows: 0 },
            SourceOffset::Kafka { .. } => Consumed::Kafka { next: BTreeMap::new() },
        };
        c.add(offset);
        c
    }
}

impl Checkpoint {
    /// Reads the whole checkpoint (without changing it).
    pub fn view(&self) -> Result<CheckpointView> {
        let meta_path = self.dir.join("metadata");
        let metadata = if meta_path.exists() { Some(read_json(&meta_path)?) } else { None };
        let last_committed = self.last_committed()?;
        let mut consumed: BTreeMap<String, Consumed> = self
            .compacted()?
            .iter()
            .map(|(node, offset)| (node.clone(), Consumed::new(offset)))
            .collect();
        let mut last_planned = None;
        for entry in self.all_offsets()? {
            last_planned = Some(entry.batch_id);
            if last_committed.is_none_or(|c| entry.batch_id > c) {
                continue;
            }
            for (node, offset) in &entry.sources {
                match consumed.get_mut(node) {
                    Some(c) => c.add(offset),
                    None => {
                        consumed.insert(node.clone(), Consumed::new(offset));
                    }
                }
            }
        }
        let last_commit = match last_committed {
            Some(n) => self.commit(n)?,
            None => None,
        };
        let (disk_files, disk_bytes) = disk_usage(&self.dir);
        Ok(CheckpointView {
            dir: self.dir.clone(),
            metadata,
            last_planned,
            last_committed,
            last_commit,
            consumed,
            state: super::state::list_versions(&self.dir),
            disk_files,
            disk_bytes,
        })
    }

    /// Deletes the checkpoint: the next start begins from the sources' starting positions.
    ///
    /// The folder is first renamed away (atomic), so a crash leaves either the whole old
    /// checkpoint or none of it, never offsets without their metadata. A folder that holds a
    /// table, an event log or other checkpoints is refused: only a checkpoint is deleted.
    pub fn reset(&self) -> Result<()> {
        if !self.dir.exists() {
            return Ok(());
        }
        for not_ours in ["_delta_log", "_events", "_checkpoints"] {
            if self.dir.join(not_ours).exists() {
                return Err(EngineError::Config(format!(
                    "{} holds {not_ours}, not only a checkpoint; refusing to delete it",
                    self.dir.display()
                )));
            }
        }
        let name = self.dir.file_name().map(|n| n.to_string_lossy().into_owned());
        let trash = self.dir.with_file_name(format!(
            ".{}.reset-{}",
            name.unwrap_or_else(|| "checkpoint".into()),
            now_ms()
        ));
        std::fs::rename(&self.dir, &trash).map_err(|e| EngineError::io(&self.dir, e))?;
        std::fs::remove_dir_all(&trash).map_err(|e| EngineError::io(&trash, e))
    }
}

fn json_err(e: serde_json::Error) -> EngineError {
    EngineError::Config(format!("cannot serialize checkpoint entry: {e}"))
}

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// What changed between two DDL schemas, column by column.
fn schema_change(was: &str, now: &str) -> String {
    let (Ok(a), Ok(b)) =
        (super::super::schema::ddl_to_schema(was), super::super::schema::ddl_to_schema(now))
    else {
        return "the DDL differs".into();
    };
    let ddl = super::super::schema::type_ddl;
    let mut out = Vec::new();
    for f in a.fields() {
        match b.field_with_name(f.name()) {
            Err(_) => out.push(format!("column `{}` was removed", f.name())),
            Ok(g) if g.data_type() != f.data_type() => out.push(format!(
                "column `{}` changed from {} to {}",
                f.name(),
                ddl(f.data_type()),
                ddl(g.data_type())
            )),
            Ok(_) => {}
        }
    }
    for g in b.fields() {
        if a.field_with_name(g.name()).is_err() {
            out.push(format!("column `{}` ({}) was added", g.name(), ddl(g.data_type())));
        }
    }
    if out.is_empty() { "the column order changed".into() } else { out.join(", ") }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(source: &str) -> Metadata {
        Metadata {
            id: "q1".into(),
            pipeline: "p".into(),
            sources: BTreeMap::from([("raw".into(), source.into())]),
            schemas: BTreeMap::from([("raw".into(), "id BIGINT".into())]),
            created_at: "now".into(),
            watermark_policy: None,
        }
    }

    fn files_entry(batch_id: u64, name: &str) -> OffsetsEntry {
        OffsetsEntry {
            batch_id,
            timestamp_ms: 1,
            sources: BTreeMap::from([(
                "raw".into(),
                SourceOffset::Files { files: vec![FileEntry { path: name.into(), size: 1 }] },
            )]),
            watermark: None,
        }
    }

    fn commit(batch_id: u64) -> CommitEntry {
        CommitEntry {
            batch_id,
            timestamp_ms: 2,
            sinks: BTreeMap::new(),
            next_watermark: None,
            next_expiry_us: None,
        }
    }

    #[test]
    fn purge_keeps_the_newest_batches_and_compacts_what_older_ones_read() {
        let dir = tempfile::tempdir().unwrap();
        let cp = Checkpoint::new(dir.path().join("cp"));
        for n in 0..10 {
            cp.write_offsets(&files_entry(n, &format!("f{n}.json"))).unwrap();
            cp.write_commit(&commit(n)).unwrap();
        }
        assert_eq!(cp.purge(9, 3).unwrap(), Some(7));
        assert_eq!(cp.all_offsets().unwrap().len(), 3);
        assert_eq!(cp.last_committed().unwrap(), Some(9));
        let SourceOffset::Files { files } = &cp.compacted().unwrap()["raw"] else { panic!() };
        assert_eq!(files.len(), 7, "every file read by a purged batch is remembered");
        assert_eq!(cp.purge(9, 3).unwrap(), None, "nothing more to purge");
        assert_eq!(
            cp.view().unwrap().consumed["raw"],
            Consumed::Files { files: 10, bytes: 10, last_file: Some("f9.json".into()) }
        );
    }

    #[test]
    fn offsets_and_commits_round_trip_and_changes_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let cp = Checkpoint::new(dir.path().join("cp"));
        assert_eq!(cp.open(meta("files:landing")).unwrap().id, "q1");
        let mut fresh = meta("files:landing");
        fresh.id = "other".into();
        assert_eq!(cp.open(fresh).unwrap().id, "q1", "the stored query id is kept");
        let err = cp.open(meta("files:elsewhere")).unwrap_err().to_string();
        assert!(err.contains("changed from files:landing to files:elsewhere"), "{err}");
        assert!(err.contains("delete that folder"), "{err}");

        let entry = OffsetsEntry {
            batch_id: 0,
            timestamp_ms: 1,
            sources: BTreeMap::from([(
                "raw".into(),
                SourceOffset::Files { files: vec![FileEntry { path: "a.json".into(), size: 3 }] },
            )]),
            watermark: None,
        };
        cp.write_offsets(&entry).unwrap();
        assert_eq!(cp.offsets(0).unwrap(), Some(entry));
        assert_eq!(cp.last_committed().unwrap(), None);
        cp.write_commit(&commit(0)).unwrap();
        assert_eq!(cp.last_committed().unwrap(), Some(0));
        // no temp files are left behind
        let names: Vec<_> = std::fs::read_dir(dir.path().join("cp/offsets"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, ["0"]);

        // the view sums what committed batches consumed; an uncommitted batch is a replay
        let second = OffsetsEntry {
            batch_id: 1,
            timestamp_ms: 3,
            sources: BTreeMap::from([(
                "raw".into(),
                SourceOffset::Files { files: vec![FileEntry { path: "b.json".into(), size: 5 }] },
            )]),
            watermark: None,
        };
        cp.write_offsets(&second).unwrap();
        let view = cp.view().unwrap();
        assert_eq!(view.last_planned, Some(1));
        assert_eq!(view.last_committed, Some(0));
        assert_eq!(view.pending_replay(), Some(1));
        assert_eq!(
            view.consumed["raw"],
            Consumed::Files { files: 1, bytes: 3, last_file: Some("a.json".into()) }
        );
        cp.write_commit(&commit(1)).unwrap();
        let view = cp.view().unwrap();
        assert_eq!(view.pending_replay(), None);
        assert_eq!(
            view.consumed["raw"],
            Consumed::Files { files: 2, bytes: 8, last_file: Some("b.json".into()) }
        );
        cp.reset().unwrap();
        assert!(!dir.path().join("cp").exists());
        assert_eq!(cp.view().unwrap().last_committed, None);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "no trash left behind");
        // a folder that is not only a checkpoint is never deleted
        std::fs::create_dir_all(dir.path().join("lake/_delta_log")).unwrap();
        let err = Checkpoint::new(dir.path().join("lake")).reset().unwrap_err().to_string();
        assert!(err.contains("refusing"), "{err}");
        assert!(dir.path().join("lake/_delta_log").exists());
    }
}
