//! The stateful example project (ad_clicks: dedup, watermarks, a stream-stream outer join)
//! end to end, and a SIGKILL crash loop on a windowed pipeline.

use std::path::Path;

use medallion::engine;

use crate::common::*;
use crate::stateful::{add_events, rows, run_collect, window_project};

/// The stateful example: every deduplicated click within the hour joined once, and a NULL row
/// exactly for the impressions that the final watermark closed without a click.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ad_clicks_example_joins_each_click_once_and_null_rows_only_after_the_watermark() {
    use medallion::engine::demo_ads;
    let (lake, _) = demo_lakehouse().await;
    let root = lake.path();
    let project = load_project("projects/ad_clicks.toml");
    let opts = engine::RunOptions { available_now: true, ..Default::default() };
    engine::run_project(&project, root, &opts, &|_| {}).await.unwrap();
    let (imps, clicks) = demo_ads::ad_events(2000, 7);
    let ms = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap().timestamp_millis();
    let in_range: std::collections::BTreeMap<i64, i64> = clicks
        .iter()
        .filter(|(_, c)| {
            let shown = ms(&imps[c.impression_id as usize].shown_at);
            let at = ms(&c.clicked_at);
            at >= shown && at <= shown + 3_600_000
        })
        .map(|(_, c)| (c.impression_id, c.click_id))
        .collect();
    let silver = root.join("silver/ad_clicks");
    let matched =
        rows(&silver, "SELECT impression_id, click_id FROM t WHERE click_id IS NOT NULL").await;
    let mut expected: Vec<String> = in_range.iter().map(|(i, c)| format!("{i} | {c}")).collect();
    expected.sort();
    assert_eq!(matched, expected, "each click within the hour exactly once");
    // the final watermark: min over both inputs of (max event time - 10 minutes)
    let last_shown = ms(&imps.last().unwrap().shown_at);
    let last_click = clicks.iter().map(|(_, c)| ms(&c.clicked_at)).max().unwrap();
    let wm = (last_shown - 600_000).min(last_click - 600_000);
    let nulls = rows(&silver, "SELECT impression_id FROM t WHERE click_id IS NULL").await;
    let mut expected_nulls: Vec<String> = imps
        .iter()
        .filter(|i| !in_range.contains_key(&i.impression_id))
        .filter(|i| ms(&i.shown_at) + 3_600_000 < wm)
        .map(|i| i.impression_id.to_string())
        .collect();
    expected_nulls.sort();
    assert!(!expected_nulls.is_empty());
    assert_eq!(
        nulls, expected_nulls,
        "NULL rows only for unmatched impressions the watermark closed"
    );
    // gold: every 10-minute window its watermark (newest shown_at in silver - 75 minutes)
    // closed, with each of its impressions once and its clicks
    let newest = rows(&silver, "SELECT max(shown_at) FROM t").await;
    let gold_wm = ms(&newest[0]) - 75 * 60_000;
    let closed: Vec<&demo_ads::Impression> =
        imps.iter().filter(|i| (ms(&i.shown_at) / 600_000 + 1) * 600_000 <= gold_wm).collect();
    assert!(closed.len() >= 200, "{}", closed.len());
    let gold = root.join("gold/clicks_per_ad");
    assert_eq!(scalar_i64(&gold, "SELECT sum(impressions) FROM t").await, closed.len() as i64);
    let clicked = closed.iter().filter(|i| in_range.contains_key(&i.impression_id)).count();
    assert_eq!(scalar_i64(&gold, "SELECT sum(clicks) FROM t").await, clicked as i64);
}

/// Kills `medallion run --available-now` on a windowed pipeline at random moments (20
/// times); the final table equals an uninterrupted run's over the same files.
#[test]
fn sigkill_crash_loop_on_a_windowed_pipeline_matches_an_uninterrupted_run() {
    use rand::{Rng, SeedableRng};
    // one minute of events per file, 40 per file over keys a..e
    let write_events = |root: &Path, files: std::ops::Range<usize>| {
        for f in files {
            let rows: Vec<(String, String)> = (0..40)
                .map(|i| {
                    let secs = f * 60 + i;
                    let t =
                        format!("{:02}:{:02}:{:02}", 12 + secs / 3600, (secs / 60) % 60, secs % 60);
                    (["a", "b", "c", "d", "e"][i % 5].to_owned(), t)
                })
                .collect();
            let refs: Vec<(&str, &str)> =
                rows.iter().map(|(k, t)| (k.as_str(), t.as_str())).collect();
            add_events(root, "landing/events", &format!("part-{f:04}.json"), &refs);
        }
    };
    let text = r#"
format_version = 1
name = "killme"
[[pipeline]]
name = "counts"
mode = "stream"
[[pipeline.nodes]]
id = "events"
kind = "file_source"
path = "landing/events"
schema = "k STRING, t TIMESTAMP"
max_files_per_trigger = 1
[[pipeline.nodes]]
id = "wm"
kind = "watermark"
column = "t"
delay = "2 minutes"
[[pipeline.nodes]]
id = "agg"
kind = "aggregate"
group_by = ["k", "window(t, '1 minute')"]
aggregates = ["count(*) AS n", "max(t) AS last_seen"]
[[pipeline.nodes]]
id = "sink"
kind = "delta_sink"
table = "gold/counts"
[[pipeline.edges]]
from = "events"
to = "wm"
[[pipeline.edges]]
from = "wm"
to = "agg"
[[pipeline.edges]]
from = "agg"
to = "sink"
"#;
    let run = |root: &Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_medallion"))
            .args([
                "run",
                root.join("p.toml").to_str().unwrap(),
                "--lakehouse",
                root.to_str().unwrap(),
                "--available-now",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let lake = tempfile::tempdir().unwrap();
    let root = lake.path();
    let mut files = 30;
    write_events(root, 0..files);
    std::fs::write(root.join("p.toml"), text).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let mut kills = 0;
    let mut finished = 0;
    while kills < 20 {
        let mut child = run(root);
        std::thread::sleep(std::time::Duration::from_millis(rng.random_range(40..500)));
        match child.try_wait().unwrap() {
            None => {
                child.kill().unwrap(); // SIGKILL
                child.wait().unwrap();
                kills += 1;
            }
            Some(status) => {
                assert!(status.success(), "run failed: {status}");
                finished += 1;
                assert!(finished < 200, "never got to kill it");
                // more minutes of events for the next rounds
                write_events(root, files..files + 5);
                files += 5;
            }
        }
    }
    let out = run(root).wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let q = "SELECT k, \"window\", n, last_seen FROM t";
    let rt = tokio::runtime::Runtime::new().unwrap();
    let got = rt.block_on(rows(&root.join("gold/counts"), q));

    // the same files, never interrupted
    let calm = tempfile::tempdir().unwrap();
    write_events(calm.path(), 0..files);
    std::fs::write(calm.path().join("p.toml"), text).unwrap();
    let out = run(calm.path()).wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let expected = rt.block_on(rows(&calm.path().join("gold/counts"), q));
    assert!(expected.len() >= 5 * (files - 3), "{}", expected.len());
    assert_eq!(got, expected, "after {kills} kills");
}

/// A long run keeps the state bounded by the watermark and purges old state versions and
/// old offsets/commits (Spark's minBatchesToRetain = 100).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_stays_bounded_and_old_versions_are_purged_over_a_long_run() {
    let lake = tempfile::tempdir().unwrap();
    let root = lake.path();
    let project = window_project("\"k\", \"window(t, '1 minute')\"", "append", "drop");
    for f in 0..150 {
        let secs = f * 30;
        let t = format!("{:02}:{:02}:{:02}", 12 + secs / 3600, (secs / 60) % 60, secs % 60);
        add_events(
            root,
            "landing/events",
            &format!("f{f:04}.json"),
            &[("a", t.as_str()), ("b", t.as_str())],
        );
    }
    let (result, progress) = run_collect(&project, root, None).await;
    result.unwrap();
    assert!(progress.len() >= 150);
    let max_state = progress.iter().map(|p| p.state_operators["agg"].num_rows_total).max().unwrap();
    assert!(max_state <= 2 * 12, "state bounded by the 10-minute watermark: {max_state}");
    let cp = root.join("_checkpoints/counts");
    let offsets = std::fs::read_dir(cp.join("offsets")).unwrap().count();
    assert!(offsets <= 110, "old offsets purged: {offsets}");
    let commits = std::fs::read_dir(cp.join("commits")).unwrap().count();
    assert!(commits <= 110, "old commits purged: {commits}");
    let state_files = std::fs::read_dir(cp.join("state/agg")).unwrap().count();
    assert!(state_files <= 112, "old state versions purged: {state_files}");
    // and it restarts from the purged checkpoint without reading anything twice
    add_events(root, "landing/events", "z.json", &[("a", "14:00:00")]);
    let (result, _) = run_collect(&project, root, None).await;
    result.unwrap();
    let gold = root.join("gold/counts");
    // every event before 13:50 (the new watermark) is in a closed window, counted once
    assert_eq!(scalar_i64(&gold, "SELECT sum(n) FROM t").await, 300);
}
