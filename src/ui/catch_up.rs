//! How far behind a stream's sources are, in time: the backlog (files, versions or Kafka
//! messages known but not read) divided by the rate the last batch read them at — "≈ 40 s
//! behind" on the source node and in the monitor.

use std::collections::HashMap;

use crate::engine::stream::StreamProgress;
use crate::engine::stream::checkpoint::SourceOffset;
use crate::model::{NodeId, Pipeline, Trigger};
use crate::ui::monitor::PipelineMonitor;

/// Files, versions or messages an offset covers (the backlog's unit for that source).
fn units(offset: &SourceOffset) -> u64 {
    match offset {
        SourceOffset::Files { files } => files.len() as u64,
        SourceOffset::Delta { snapshot: Some([from, to, _]), .. } => to.saturating_sub(*from),
        SourceOffset::Delta { start_version, end_version, .. } => {
            end_version.saturating_sub(*start_version).max(0) as u64
        }
        SourceOffset::Generator { start, end, .. } => end.saturating_sub(*start),
        SourceOffset::Kafka { ranges } => {
            ranges.values().map(|[s, e]| e.saturating_sub(*s).max(0) as u64).sum()
        }
    }
}

/// Seconds each source needs to read its backlog at the last batch's pace (sources with a
/// backlog only). `interval_ms` is the trigger's, when batches are no closer than that.
pub fn catch_up_secs(p: &StreamProgress, interval_ms: Option<u64>) -> HashMap<NodeId, f64> {
    let batch_ms = p.duration_ms.get("total").copied().unwrap_or_default();
    let cadence_ms = batch_ms.max(interval_ms.unwrap_or(0)).max(1) as f64;
    p.sources
        .iter()
        .filter(|(_, s)| s.backlog > 0)
        .filter_map(|(node, s)| {
            let per_batch = units(&s.offset);
            (per_batch > 0).then(|| {
                let batches = (s.backlog as f64 / per_batch as f64).ceil();
                (NodeId::new(node.as_str()), batches * cadence_ms / 1000.0)
            })
        })
        .collect()
}

/// The interval of a pipeline's trigger (batches come no closer than that), if it has one.
pub fn trigger_interval_ms(p: &Pipeline) -> Option<u64> {
    match p.trigger.unwrap_or_default() {
        Trigger::Interval { interval_ms } => Some(interval_ms),
        _ => None,
    }
}

/// Seconds behind, per source, of a running pipeline (none while it is not running): what the
/// canvas and the monitor both show.
pub fn behind(pm: &PipelineMonitor, interval_ms: Option<u64>) -> HashMap<NodeId, f64> {
    match pm.last.as_deref() {
        Some(p) if pm.status.is_active() => catch_up_secs(p, interval_ms),
        _ => HashMap::new(),
    }
}

/// `≈ 40 s behind`, `≈ 3 min behind`, `≈ 2.5 h behind`.
pub fn behind_text(secs: f64) -> String {
    if secs < 90.0 {
        format!("≈ {secs:.0} s behind")
    } else if secs < 5400.0 {
        format!("≈ {:.0} min behind", secs / 60.0)
    } else {
        format!("≈ {:.1} h behind", secs / 3600.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::stream::SourceProgress;
    use crate::engine::stream::checkpoint::FileEntry;

    fn source(offset: SourceOffset, backlog: u64) -> SourceProgress {
        SourceProgress {
            offset,
            input_rows: 0,
            rescued_records: 0,
            quarantined_records: 0,
            backlog,
            lag: None,
        }
    }

    #[test]
    fn backlog_over_the_pace_of_the_last_batch() {
        let mut p = StreamProgress::default();
        p.duration_ms.insert("total".into(), 2000);
        let files = (0..10).map(|i| FileEntry { path: format!("f{i}.json"), size: 1 }).collect();
        p.sources.insert("landing".into(), source(SourceOffset::Files { files }, 200));
        p.sources.insert("idle".into(), source(SourceOffset::Files { files: Vec::new() }, 0));
        // 200 files at 10 a batch of 2 s: 20 batches, 40 s
        let secs = catch_up_secs(&p, Some(500));
        assert_eq!(secs.len(), 1);
        assert_eq!(secs[&NodeId::new("landing")], 40.0);
        assert_eq!(behind_text(40.0), "≈ 40 s behind");
        // with a 5 s trigger the batches are 5 s apart
        assert_eq!(catch_up_secs(&p, Some(5000))[&NodeId::new("landing")], 100.0);
        assert_eq!(behind_text(100.0), "≈ 2 min behind");
        assert_eq!(behind_text(9000.0), "≈ 2.5 h behind");
    }
}
