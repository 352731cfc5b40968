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
}

impl EventLog {
    pub fn new(root: &Path) -> Self {
        Self { dir: log_dir(root) }
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
    pub fn append(&self, event: &LoggedEvent) -> Result<()> {
        std::fs::create_dir_all(&self.dir).map_err(|e| EngineError::io(&self.dir, e))?;
        let path = self.file(event.event.pipeline());
        if std::fs::metadata(&path).is_ok_and(|m| m.len() > MAX_LOG_BYTES) {
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
        let line = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/progress_event.json"),
        )
        .unwrap();
        let e: LoggedEvent = serde_json::from_str(&line).unwrap();
        assert!(matches!(e.event, RunEvent::BatchCompleted(p) if p.num_input_rows == 200));
        let (last, _) = read_recent(dir.path(), 1).unwrap();
        assert_eq!(last.len(), 1);
        assert_eq!(last[0].ts_ms, 4, "the newest events are kept");
    }
}
