//! Demo ad events for the stateful-streaming example (`projects/ad_clicks.toml`): ad
//! impressions and the clicks on them, as JSON lines in `landing/impressions` and
//! `landing/clicks`, in event-time order across files as a real landing zone fills up.
//!
//! About a third of the impressions are clicked within the hour; some clicks arrive twice
//! (an at-least-once producer), and some come after the hour and match nothing. Deterministic
//! for a seed, so tests can compute the exact answer from the files.

use std::io::Write;
use std::path::{Path, PathBuf};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use super::{EngineError, Result};

/// The first impression's time: 2026-01-01T12:00:00Z, in milliseconds.
pub const FIRST_SHOWN_MS: i64 = 1_767_268_800_000;
/// Seconds between two impressions.
pub const IMPRESSION_EVERY_S: i64 = 3;

pub const IMPRESSIONS_DDL: &str =
    "impression_id BIGINT, ad_id STRING, user_id BIGINT, shown_at TIMESTAMP";
pub const CLICKS_DDL: &str = "click_id BIGINT, impression_id BIGINT, clicked_at TIMESTAMP";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Impression {
    pub impression_id: i64,
    pub ad_id: String,
    pub user_id: i64,
    pub shown_at: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Click {
    pub click_id: i64,
    pub impression_id: i64,
    pub clicked_at: String,
}

fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

/// The impressions and clicks of a seed, clicks in arrival (event-time) order.
pub fn ad_events(impressions: u64, seed: u64) -> (Vec<Impression>, Vec<(i64, Click)>) {
    let mut rng = StdRng::seed_from_u64(seed ^ 0xAD5);
    let mut imps = Vec::with_capacity(impressions as usize);
    let mut clicks = Vec::new();
    for i in 0..impressions as i64 {
        let shown = FIRST_SHOWN_MS + i * IMPRESSION_EVERY_S * 1000;
        imps.push(Impression {
            impression_id: i,
            ad_id: format!("ad-{:02}", rng.random_range(0..12)),
            user_id: super::demo_data::user_id(rng.random_range(0..1000)),
            shown_at: iso(shown),
        });
        if rng.random_bool(0.35) {
            // mostly within the hour; a few after it, which match nothing
            let delay_s = if rng.random_bool(0.9) {
                rng.random_range(5..3300)
            } else {
                rng.random_range(3700..5400)
            };
            let at = shown + delay_s * 1000;
            let click = Click { click_id: i * 10 + 1, impression_id: i, clicked_at: iso(at) };
            if rng.random_bool(0.1) {
                // delivered twice, a few seconds apart in arrival
                clicks.push((at + 1, click.clone()));
            }
            clicks.push((at, click));
        }
    }
    clicks.sort_by_key(|(at, c)| (*at, c.click_id));
    (imps, clicks)
}

/// Writes `landing/impressions` and `landing/clicks` under `dir`, `files` files each.
pub fn write_ad_events(
    dir: &Path,
    impressions: u64,
    files: u32,
    seed: u64,
) -> Result<Vec<PathBuf>> {
    let (imps, clicks) = ad_events(impressions, seed);
    let mut written = write_lines(&dir.join("landing").join("impressions"), &imps, files)?;
    let clicks: Vec<Click> = clicks.into_iter().map(|(_, c)| c).collect();
    written.extend(write_lines(&dir.join("landing").join("clicks"), &clicks, files)?);
    Ok(written)
}

fn write_lines<T: Serialize>(folder: &Path, rows: &[T], files: u32) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(folder).map_err(|e| EngineError::io(folder, e))?;
    let per_file = rows.len().div_ceil(files.max(1) as usize).max(1);
    let mut out = Vec::new();
    for (f, chunk) in rows.chunks(per_file).enumerate() {
        let path = folder.join(format!("part-{f:05}.json"));
        let file = std::fs::File::create(&path).map_err(|e| EngineError::io(&path, e))?;
        let mut w = std::io::BufWriter::new(file);
        for row in chunk {
            serde_json::to_writer(&mut w, row).map_err(|e| EngineError::io(&path, e.into()))?;
            w.write_all(b"\n").map_err(|e| EngineError::io(&path, e))?;
        }
        w.flush().map_err(|e| EngineError::io(&path, e))?;
        out.push(path);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_deterministic_ordered_and_include_duplicates_and_strays() {
        let (imps, clicks) = ad_events(2000, 42);
        assert_eq!(ad_events(2000, 42).1, clicks);
        assert_eq!(imps.len(), 2000);
        assert!(clicks.windows(2).all(|w| w[0].0 <= w[1].0), "clicks arrive in time order");
        let ids: std::collections::HashSet<i64> = clicks.iter().map(|(_, c)| c.click_id).collect();
        assert!(ids.len() < clicks.len(), "some clicks arrive twice");
        assert!(clicks.len() > 500);
    }
}
