//! Event-time watermarks, as Spark's `WatermarkTracker`.
//!
//! Each Watermark node's watermark is the largest event time it has seen minus its delay,
//! and never goes back; a node that has seen nothing counts as 0. The global watermark is
//! the minimum (or, with `watermark_policy = "max"`, the maximum) of them, never goes back
//! either, and takes effect from the next batch: it is written into `offsets/N+1` before
//! that batch reads anything, so a replay uses the same value.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::WatermarkPolicy;
use crate::model::node::LateRows;

use super::operators::event_time::EventTimeStats;

/// One Watermark node's settings.
#[derive(Clone, Debug, PartialEq)]
pub struct WatermarkSpec {
    pub node: String,
    pub column: String,
    pub delay_ms: i64,
    pub late_rows: LateRows,
}

/// The watermarks in effect for a batch, as stored in `offsets/N`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BatchWatermark {
    /// Spark's `batchWatermarkMs`: state at or below it is evicted in this batch.
    pub watermark_ms: i64,
    /// The previous batch's watermark: rows at or below it are late in this batch.
    pub late_watermark_ms: i64,
    /// Each Watermark node's own watermark (max event time − delay).
    pub per_node_ms: BTreeMap<String, i64>,
}

impl BatchWatermark {
    /// The watermarks for the batch after this one, given the event times this batch saw.
    pub fn next(
        &self,
        specs: &[WatermarkSpec],
        seen: &BTreeMap<String, EventTimeStats>,
        policy: WatermarkPolicy,
    ) -> BatchWatermark {
        let mut per_node = self.per_node_ms.clone();
        for s in specs {
            let entry = per_node.entry(s.node.clone()).or_insert(0);
            if let Some(stats) = seen.get(&s.node).filter(|st| st.count > 0) {
                *entry = (*entry).max(stats.max_ms - s.delay_ms);
            }
        }
        let values = specs.iter().filter_map(|s| per_node.get(&s.node).copied());
        let chosen = match policy {
            WatermarkPolicy::Min => values.min(),
            WatermarkPolicy::Max => values.max(),
        }
        .unwrap_or(0);
        BatchWatermark {
            watermark_ms: self.watermark_ms.max(chosen),
            late_watermark_ms: self.watermark_ms,
            per_node_ms: per_node,
        }
    }

    /// Whether the watermark moved from `earlier` to this one (then a no-data batch may
    /// close windows).
    pub fn moved_since(&self, earlier: &BatchWatermark) -> bool {
        self.watermark_ms > earlier.watermark_ms
    }
}

/// Milliseconds as an RFC 3339 UTC time, for messages and the monitor.
pub fn format_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_else(|| ms.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(node: &str, delay_ms: i64) -> WatermarkSpec {
        WatermarkSpec { node: node.into(), column: "t".into(), delay_ms, late_rows: LateRows::Drop }
    }

    fn seen(node: &str, max_ms: i64) -> BTreeMap<String, EventTimeStats> {
        BTreeMap::from([(
            node.to_owned(),
            EventTimeStats { min_ms: max_ms, max_ms, avg_ms: max_ms, count: 1 },
        )])
    }

    #[test]
    fn watermark_is_max_minus_delay_never_goes_back_and_min_waits_for_idle_inputs() {
        let specs = [spec("a", 10)];
        let w0 = BatchWatermark::default();
        let w1 = w0.next(&specs, &seen("a", 100), WatermarkPolicy::Min);
        assert_eq!((w1.watermark_ms, w1.late_watermark_ms), (90, 0));
        let w2 = w1.next(&specs, &seen("a", 50), WatermarkPolicy::Min);
        assert_eq!((w2.watermark_ms, w2.late_watermark_ms), (90, 90), "never goes back");
        let two = [spec("a", 10), spec("b", 10)];
        let idle = w0.next(&two, &seen("a", 100), WatermarkPolicy::Min);
        assert_eq!(idle.watermark_ms, 0, "an input that saw nothing holds the min at 0");
        let max = w0.next(&two, &seen("a", 100), WatermarkPolicy::Max);
        assert_eq!(max.watermark_ms, 90);
        assert!(max.moved_since(&w0) && !idle.moved_since(&w0));
    }
}
