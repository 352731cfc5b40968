//! The persisted event log: every [`RunEvent`] of every run (CLI or app), one JSON line each,
//! in `<lakehouse>/_events/<pipeline>.jsonl`. The monitor's event log panel reads it back, so
//! history survives a restart of the app; it lives outside the checkpoint, so resetting a
//! checkpoint does not erase the history of what ran.
//!
//! A file past [`MAX_LOG_BYTES`] is rotated to `<pipeline>.jsonl.1` (one generation kept), so a
//! long-running stream keeps the log bounded.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::events::RunEvent;
use super::{EngineError, Result};

/// A log file is rotated once it grows past this size.
pub const MAX_LOG_BYTES: u64 = 8 * 1024 * 1024;

/// How much of the end of each log file [`read_recent`] looks at.
const TAIL_BYTES: u64 = 2 * 1024 * 1024;

/// How serious an event is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Info,
    Warning,
    Error,
}

impl Level {
    pub fn of(event: &RunEvent) -> Self {
        match event {
            RunEvent::PipelineFailed { .. } => Level::Error,
            RunEvent::Warning { .. } => Level::Warning,
            _ => Level::Info,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Info => "info",
            Level::Warning => "warning",
            Level::Error => "error",
        }
    }
}

/// One line of the log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LoggedEvent {
    /// Milliseconds since the Unix epoch.
    pub ts_ms: i64,
    pub level: Level,
    pub event: RunEvent,
}

impl LoggedEvent {
    pub fn now(event: RunEvent) -> Self {
        Self { ts_ms: super::checkpoint::now_ms(), level: Level::of(&event), event }
    }
}

/// Where a lakehouse keeps its event logs.
pub fn log_dir(root: &Path) -> PathBuf {
    root.join("_events")
}

/// Appends events to the log files under one lakehouse root.
#[derive(Clone, Debug)]
pub struct EventLog {
    dir: PathBuf,
    max_bytes: u64,
}

impl EventLog {
    pub fn new(root: &Path) -> Self {
        Self { dir: log_dir(root), max_bytes: MAX_LOG_BYTES }
    }

    /// Rotates at `max_bytes` instead of [`MAX_LOG_BYTES`] (tests).
    pub fn with_max_bytes(mut self, max_bytes: u64) -> Self {
        self.max_bytes = max_bytes;
        self
    }

    fn file(&self, pipeline: &str) -> PathBuf {
        // pipeline names are identifiers in practice; keep the file name safe regardless
        let safe: String = pipeline
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '_' })
            .collect();
        self.dir.join(format!("{safe}.jsonl"))
    }

    /// Appends one event (a line written with a single `write`, so lines never interleave).
    /// Size check, rotation and append happen under an exclusive lock on
    /// `<pipeline>.jsonl.lock`, so the app and a CLI run writing the same log at once never
    /// rotate twice (which would overwrite the `.1` generation) nor append to a file being
    /// renamed.
    pub fn append(&self, event: &LoggedEvent) -> Result<()> {
        std::fs::create_dir_all(&self.dir).map_err(|e| EngineError::io(&self.dir, e))?;
        let path = self.file(event.event.pipeline());
        let lock_path = path.with_extension("jsonl.lock");
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| EngineError::io(&lock_path, e))?;
        lock.lock().map_err(|e| EngineError::io(&lock_path, e))?;
        let appended = self.append_locked(&path, event);
        // released on drop too; unlocking explicitly keeps the critical section obvious
        let _ = lock.unlock();
        appended
    }

    fn append_locked(&self, path: &Path, event: &LoggedEvent) -> Result<()> {
        let path = path.to_owned();
        if std::fs::metadata(&path).is_ok_and(|m| m.len() > self.max_bytes) {
            let old = path.with_extension("jsonl.1");
            std::fs::rename(&path, &old).map_err(|e| EngineError::io(&path, e))?;
        }
        let mut line = serde_json::to_vec(event)
            .map_err(|e| EngineError::Config(format!("cannot serialize an event: {e}")))?;
        line.push(b'\n');
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&path)
            .map_err(|e| EngineError::io(&path, e))?;
        // a crash can leave a torn last line: start on a fresh line, or this event is lost too
        let len = f.metadata().map_err(|e| EngineError::io(&path, e))?.len();
        if len > 0 {
            let mut last = [0u8; 1];
            f.seek(SeekFrom::Start(len - 1)).map_err(|e| EngineError::io(&path, e))?;
            f.read_exact(&mut last).map_err(|e| EngineError::io(&path, e))?;
            if last[0] != b'\n' {
                line.insert(0, b'\n');
            }
        }
        f.write_all(&line).map_err(|e| EngineError::io(&path, e))
    }
}

/// The last `limit` events of one pipeline, oldest first (see [`read_recent`]).
pub fn read_recent_of(
    root: &Path,
    pipeline: &str,
    limit: usize,
) -> Result<(Vec<LoggedEvent>, usize)> {
    let path = EventLog::new(root).file(pipeline);
    if !path.exists() {
        return Ok((Vec::new(), 0));
    }
    let mut events = Vec::new();
    let skipped = read_log_file(&path, &mut events)?;
    let excess = events.len().saturating_sub(limit);
    events.drain(..excess);
    Ok((events, skipped))
}

/// Parses the tail of a log file (and, when that is short, of its rotated generation) into
/// `out`; returns the lines that did not parse.
fn read_log_file(path: &Path, out: &mut Vec<LoggedEvent>) -> Result<usize> {
    let mut skipped = 0;
    let mut texts = Vec::new();
    let rotated = path.with_extension("jsonl.1");
    let current = read_tail(path)?;
    if (current.len() as u64) < TAIL_BYTES && rotated.exists() {
        // just after a rotation the current file holds little: the history is in `.1`
        texts.push(read_tail(&rotated)?);
    }
    texts.push(current);
    let start = out.len();
    for text in &texts {
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            match serde_json::from_str::<LoggedEvent>(line) {
                Ok(e) => out.push(e),
                Err(_) => skipped += 1,
            }
        }
    }
    out[start..].sort_by_key(|e| e.ts_ms);
    Ok(skipped)
}

/// The last `limit` events of every pipeline under `root`, oldest first. Lines that do not
/// parse (a torn last line after a crash, a newer format) are skipped and counted.
pub fn read_recent(root: &Path, limit: usize) -> Result<(Vec<LoggedEvent>, usize)> {
    let dir = log_dir(root);
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
        Err(e) => return Err(EngineError::io(&dir, e)),
    };
    let mut events = Vec::new();
    let mut skipped = 0;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "jsonl") {
            continue;
        }
        skipped += read_log_file(&path, &mut events)?;
    }
    events.sort_by_key(|e| e.ts_ms);
    let excess = events.len().saturating_sub(limit);
    events.drain(..excess);
    Ok((events, skipped))
}

/// Where a reader stopped in one log file: the file's identity (its inode, so a rotation is
/// noticed) and the offset after the last whole line read.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Cursor {
    id: u64,
    offset: u64,
}

#[cfg(unix)]
fn file_id(meta: &std::fs::Metadata) -> u64 {
    std::os::unix::fs::MetadataExt::ino(meta)
}

#[cfg(not(unix))]
fn file_id(_meta: &std::fs::Metadata) -> u64 {
    0
}

/// The event log panel's reader: the newest `cap` events of every pipeline, kept up to date
/// by reading only what was appended since the last [`EventTail::refresh`] (and, after a
/// rotation, the rest of the rotated generation), not the files again.
#[derive(Debug)]
pub struct EventTail {
    root: PathBuf,
    cap: usize,
    cursors: std::collections::HashMap<PathBuf, Cursor>,
    events: Vec<LoggedEvent>,
    /// Lines that did not parse, over every refresh.
    pub skipped: usize,
    /// Bytes read by the last refresh (what the incremental read saves is visible here).
    pub last_read_bytes: u64,
}

impl EventTail {
    pub fn new(root: &Path, cap: usize) -> Self {
        Self {
            root: root.to_owned(),
            cap,
            cursors: Default::default(),
            events: Vec::new(),
            skipped: 0,
            last_read_bytes: 0,
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The newest events, oldest first.
    pub fn events(&self) -> &[LoggedEvent] {
        &self.events
    }

    /// Reads what was appended since the last call; returns whether anything new arrived.
    pub fn refresh(&mut self) -> Result<bool> {
        let dir = log_dir(&self.root);
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(EngineError::io(&dir, e)),
        };
        self.last_read_bytes = 0;
        let mut fresh = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_none_or(|e| e != "jsonl") {
                continue;
            }
            let Ok(meta) = std::fs::metadata(&path) else { continue };
            let (id, len) = (file_id(&meta), meta.len());
            let text = match self.cursors.get(&path).copied() {
                // first sight: the tail only (and the rotated generation when that is short)
                None => {
                    let mut events = Vec::new();
                    self.skipped += read_log_file(&path, &mut events)?;
                    fresh.extend(events);
                    self.cursors.insert(path.clone(), Cursor { id, offset: len });
                    self.last_read_bytes += len.min(TAIL_BYTES);
                    continue;
                }
                Some(c) if c.id == id && len >= c.offset => {
                    let (text, end) = read_from(&path, c.offset)?;
                    self.cursors.insert(path.clone(), Cursor { id, offset: end });
                    text
                }
                // rotated (a new file) or truncated: the rest of the old generation, then all
                Some(c) => {
                    let mut text = String::new();
                    let rotated = path.with_extension("jsonl.1");
                    if std::fs::metadata(&rotated).is_ok_and(|m| file_id(&m) == c.id) {
                        text = read_from(&rotated, c.offset)?.0;
                    }
                    let (rest, end) = read_from(&path, 0)?;
                    text.push_str(&rest);
                    self.cursors.insert(path.clone(), Cursor { id, offset: end });
                    text
                }
            };
            self.last_read_bytes += text.len() as u64;
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                match serde_json::from_str::<LoggedEvent>(line) {
                    Ok(e) => fresh.push(e),
                    Err(_) => self.skipped += 1,
                }
            }
        }
        if fresh.is_empty() {
            return Ok(false);
        }
        self.events.extend(fresh);
        // stable and adaptive: the old events are sorted already
        self.events.sort_by_key(|e| e.ts_ms);
        let excess = self.events.len().saturating_sub(self.cap);
        self.events.drain(..excess);
        Ok(true)
    }
}

/// The whole lines of `path` from `offset`, and the offset after the last whole line (a line
/// still being written is read next time).
fn read_from(path: &Path, offset: u64) -> Result<(String, u64)> {
    let mut f = std::fs::File::open(path).map_err(|e| EngineError::io(path, e))?;
    f.seek(SeekFrom::Start(offset)).map_err(|e| EngineError::io(path, e))?;
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes).map_err(|e| EngineError::io(path, e))?;
    let whole = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    bytes.truncate(whole);
    Ok((String::from_utf8_lossy(&bytes).into_owned(), offset + whole as u64))
}

/// The last [`TAIL_BYTES`] of a file, starting at a line boundary.
fn read_tail(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).map_err(|e| EngineError::io(path, e))?;
    let len = f.metadata().map_err(|e| EngineError::io(path, e))?.len();
    let start = len.saturating_sub(TAIL_BYTES);
    f.seek(SeekFrom::Start(start)).map_err(|e| EngineError::io(path, e))?;
    let mut bytes = Vec::new();
    f.read_to_end(&mut bytes).map_err(|e| EngineError::io(path, e))?;
    if start > 0 {
        // drop the partial first line
        let cut = bytes.iter().position(|b| *b == b'\n').map_or(bytes.len(), |i| i + 1);
        bytes.drain(..cut);
    }
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::NodeId;

    #[test]
    fn events_round_trip_and_torn_lines_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::new(dir.path());
        let started = RunEvent::PipelineStarted { pipeline: "bronze".into() };
        let failed = RunEvent::PipelineFailed {
            pipeline: "silver".into(),
            node: Some(NodeId::new("typed")),
            message: "no column x".into(),
        };
        log.append(&LoggedEvent { ts_ms: 1, level: Level::of(&started), event: started.clone() })
            .unwrap();
        log.append(&LoggedEvent { ts_ms: 2, level: Level::of(&failed), event: failed.clone() })
            .unwrap();
        // a crash in the middle of a line
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(dir.path().join("_events/silver.jsonl"))
            .unwrap();
        f.write_all(b"{\"ts_ms\": 3, \"lev").unwrap();
        let (events, skipped) = read_recent(dir.path(), 10).unwrap();
        assert_eq!(skipped, 1);
        assert_eq!(events.len(), 2);
        // the next event after the torn line is not glued onto it
        let restarted = RunEvent::PipelineStarted { pipeline: "silver".into() };
        log.append(&LoggedEvent { ts_ms: 4, level: Level::Info, event: restarted.clone() })
            .unwrap();
        let (silver, _) = read_recent_of(dir.path(), "silver", 10).unwrap();
        assert_eq!(silver.len(), 2, "the failure and the restart, not the torn line");
        assert_eq!(silver.last().map(|e| &e.event), Some(&restarted));
        assert_eq!(events[0].event, started);
        assert_eq!(events[1].event, failed);
        assert_eq!(events[1].level, Level::Error);
        // a progress event as the stream writes it reads back whole
        let line = include_str!("../../tests/data/progress_event.json");
        let e: LoggedEvent = serde_json::from_str(line).unwrap();
        assert!(matches!(e.event, RunEvent::BatchCompleted(p) if p.num_input_rows == 200));
        let (last, _) = read_recent(dir.path(), 1).unwrap();
        assert_eq!(last.len(), 1);
        assert_eq!(last[0].ts_ms, 4, "the newest events are kept");
    }

    fn started(pipeline: &str, ts_ms: i64) -> LoggedEvent {
        LoggedEvent {
            ts_ms,
            level: Level::Info,
            event: RunEvent::PipelineStarted { pipeline: pipeline.into() },
        }
    }

    #[test]
    fn the_tail_reads_only_what_was_appended_and_follows_a_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::new(dir.path()).with_max_bytes(2_000);
        for ts in 0..10 {
            log.append(&started("bronze", ts)).unwrap();
        }
        let mut tail = EventTail::new(dir.path(), 1000);
        assert!(tail.refresh().unwrap());
        assert_eq!(tail.events().len(), 10);
        assert!(!tail.refresh().unwrap(), "nothing new");
        assert_eq!(tail.last_read_bytes, 0, "an unchanged log is not read again");
        log.append(&started("bronze", 10)).unwrap();
        log.append(&started("silver", 11)).unwrap();
        assert!(tail.refresh().unwrap());
        let line = serde_json::to_vec(&started("bronze", 10)).unwrap().len() as u64 + 1;
        assert!(tail.last_read_bytes <= 2 * line + 10, "read {} bytes", tail.last_read_bytes);
        assert_eq!(
            tail.events().iter().map(|e| e.ts_ms).collect::<Vec<_>>(),
            (0..12).collect::<Vec<_>>()
        );
        // enough to rotate bronze's file once (~85 bytes a line, rotation past 2,000 bytes)
        for ts in 12..40 {
            log.append(&started("bronze", ts)).unwrap();
        }
        let rotated = std::fs::read_to_string(dir.path().join("_events/bronze.jsonl.1")).unwrap();
        assert!(rotated.starts_with("{\"ts_ms\":0,"), "rotated once, from the first event");
        tail.refresh().unwrap();
        let ts: Vec<i64> = tail.events().iter().map(|e| e.ts_ms).collect();
        assert_eq!(ts, (0..40).collect::<Vec<_>>(), "every event once, across the rotation");
        assert_eq!(tail.skipped, 0);
    }

    #[test]
    fn two_writers_rotating_the_same_log_lose_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_owned();
        // two handles, as the app and a CLI run would have, each rotating at 4,000 bytes
        let writers: Vec<_> = (0..2)
            .map(|w| {
                let root = root.clone();
                std::thread::spawn(move || {
                    let log = EventLog::new(&root).with_max_bytes(4_000);
                    for i in 0..150 {
                        log.append(&started("bronze", w * 1000 + i)).unwrap();
                    }
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
        // one rotation generation is kept: what is in the two files must be exactly the
        // newest events, with no line lost in the middle (a double rotation loses a .1)
        let text =
            |p: &str| std::fs::read_to_string(root.join("_events").join(p)).unwrap_or_default();
        let all = format!("{}{}", text("bronze.jsonl.1"), text("bronze.jsonl"));
        let lines: Vec<&str> = all.lines().collect();
        assert!(
            lines.iter().all(|l| serde_json::from_str::<LoggedEvent>(l).is_ok()),
            "no torn line"
        );
        let bytes: usize = lines.iter().map(|l| l.len() + 1).sum();
        assert!(bytes > 4_000, "the kept generations hold more than one file's worth: {bytes}");
        // the current file never grows far past the limit: each append checked under the lock
        let current = text("bronze.jsonl").len();
        assert!(current <= 4_000 + 200, "current file {current} bytes");
        // per writer, the kept events are a contiguous run (a lost generation in the middle
        // would leave a gap), and the last line written is some writer's last event
        let kept: Vec<i64> = lines
            .iter()
            .filter_map(|l| serde_json::from_str::<LoggedEvent>(l).ok())
            .map(|e| e.ts_ms)
            .collect();
        for w in 0..2i64 {
            let mine: Vec<i64> = kept.iter().copied().filter(|t| t / 1000 == w).collect();
            assert!(mine.windows(2).all(|p| p[1] == p[0] + 1), "writer {w}: a gap in {mine:?}");
        }
        assert_eq!(kept.last().map(|t| t % 1000), Some(149));
    }
}
