//! Stateful streaming in the style of Spark's StreamTest: event-time files added batch by
//! batch, exact expected rows, crashes at every step boundary, SIGKILL loops, restarts with a
//! changed pipeline. Real Delta tables, real checkpoints.

use std::path::Path;
use std::sync::{Arc, Mutex};

use medallion::engine::stream::{CrashPoint, StreamOptions, StreamProgress, run_stream};
use medallion::engine::{self, EngineError, RunEvent};
use medallion::model::{Project, Severity, validate};

use crate::common::*;

/// Writes events `(key, "HH:MM:SS")` on 2026-01-01 as one JSON-lines file (hidden, renamed).
fn add_events(root: &Path, folder: &str, name: &str, rows: &[(&str, &str)]) {
    let dir = root.join(folder);
    std::fs::create_dir_all(&dir).unwrap();
    let text: String = rows
        .iter()
        .map(|(k, t)| format!("{{\"k\":\"{k}\",\"t\":\"2026-01-01T{t}Z\"}}\n"))
        .collect();
    let tmp = dir.join(format!(".{name}"));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(tmp, dir.join(name)).unwrap();
}

/// A stream: landing/events (one file per batch) → Watermark(t, 10 minutes) → Aggregate →
/// gold/counts, with the given group-by, output mode and extra node settings.
fn window_project(group_by: &str, output_mode: &str, late_rows: &str) -> Project {
    let text = format!(
        r#"
format_version = 1
name = "windows"
[[pipeline]]
name = "counts"
mode = "stream"
trigger = "100ms"
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
delay = "10 minutes"
late_rows = "{late_rows}"
[[pipeline.nodes]]
id = "agg"
kind = "aggregate"
group_by = [{group_by}]
aggregates = ["count(*) AS n"]
[[pipeline.nodes]]
id = "sink"
kind = "delta_sink"
table = "gold/counts"
output_mode = "{output_mode}"
[[pipeline.edges]]
from = "events"
to = "wm"
[[pipeline.edges]]
from = "wm"
to = "agg"
[[pipeline.edges]]
from = "agg"
to = "sink"
"#
    );
    let project = Project::from_toml(&text, Path::new("windows.toml")).unwrap();
    let errors: Vec<_> = validate::validate_project(&project)
        .into_iter()
        .filter(|d| d.severity == Severity::Error)
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
    project
}

/// Runs the project's only pipeline with availableNow, collecting its progress events.
async fn run_collect(
    project: &Project,
    root: &Path,
    crash: Option<(CrashPoint, u64)>,
) -> (engine::Result<()>, Vec<StreamProgress>) {
    let events: Arc<Mutex<Vec<StreamProgress>>> = Arc::default();
    let sink = events.clone();
    let mut opts = StreamOptions::new(true);
    opts.crash_at = crash;
    let p = &project.pipelines[0];
    let result = run_stream(project, p, root, &opts, &move |e| {
        if let RunEvent::BatchCompleted(p) = e {
            sink.lock().unwrap().push(*p);
        }
    })
    .await
    .map(|_| ());
    let got = events.lock().unwrap().clone();
    (result, got)
}

/// Every row of `sql` over the table, rendered and sorted.
async fn rows(table: &Path, sql: &str) -> Vec<String> {
    if !table.join("_delta_log").exists() {
        return Vec::new();
    }
    let batches = query(table, sql).await;
    let mut out = Vec::new();
    for b in &batches {
        let formatters: Vec<_> = b
            .columns()
            .iter()
            .map(|c| {
                arrow::util::display::ArrayFormatter::try_new(
                    c.as_ref(),
                    &arrow::util::display::FormatOptions::default(),
                )
                .unwrap()
            })
            .collect();
        for r in 0..b.num_rows() {
            out.push(
                formatters.iter().map(|f| f.value(r).to_string()).collect::<Vec<_>>().join(" | "),
            );
        }
    }
    out.sort();
    out
}

const COUNTS: &str = "SELECT k, \"window\", n FROM t";

fn win(start: &str, end: &str) -> String {
    format!("{{start: 2026-01-01T{start}Z, end: 2026-01-01T{end}Z}}")
}

/// STATEFUL.md's acceptance test 1: B0 a@12:00:10, 12:00:50, 12:01:30; B1 a@12:12:00; the
/// no-data batch emits both windows; in B3 a@12:01:59 is late and a@12:02:00 is kept.
async fn tumbling_scenario(root: &Path, crash: Option<(CrashPoint, u64)>) -> Vec<StreamProgress> {
    let project = window_project("\"k\", \"window(t, '1 minute')\"", "append", "drop");
    add_events(
        root,
        "landing/events",
        "b0.json",
        &[("a", "12:00:10"), ("a", "12:00:50"), ("a", "12:01:30")],
    );
    add_events(root, "landing/events", "b1.json", &[("a", "12:12:00")]);
    let mut progress = Vec::new();
    if let Some(c) = crash {
        let (result, p) = run_collect(&project, root, Some(c)).await;
        assert!(matches!(result, Err(EngineError::InjectedCrash(_))), "{result:?}");
        progress.extend(p);
    }
    let (result, p) = run_collect(&project, root, None).await;
    result.unwrap();
    progress.extend(p);
    let gold = root.join("gold/counts");
    assert_eq!(
        rows(&gold, COUNTS).await,
        vec![
            format!("a | {} | 2", win("12:00:00", "12:01:00")),
            format!("a | {} | 1", win("12:01:00", "12:02:00"))
        ],
        "crash at {crash:?}"
    );
    add_events(root, "landing/events", "b3.json", &[("a", "12:01:59"), ("a", "12:02:00")]);
    let (result, p) = run_collect(&project, root, None).await;
    result.unwrap();
    progress.extend(p);
    progress
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tumbling_append_emits_each_closed_window_once_and_counts_late_rows() {
    let lake = tempfile::tempdir().unwrap();
    let progress = tumbling_scenario(lake.path(), None).await;
    // batches: 0 and 1 with data, 2 the no-data batch that closed both windows, 3 the late row
    let ids: Vec<u64> = progress.iter().map(|p| p.batch_id).collect();
    assert_eq!(ids, [0, 1, 2, 3], "{progress:#?}");
    assert_eq!(progress[2].num_input_rows, 0, "batch 2 is the no-data batch");
    let agg = &progress[3].state_operators["agg"];
    assert_eq!(agg.num_rows_dropped_by_watermark, 1, "12:01:59 ends at the watermark 12:02");
    assert_eq!(agg.num_rows_total, 2, "[12:02,12:03) and [12:12,12:13) still open");
    let et = progress[1].event_time.as_ref().unwrap();
    assert_eq!(et.max, "2026-01-01T12:12:00.000Z");
    assert_eq!(et.watermark, "2026-01-01T11:51:30.000Z", "batch 1 runs with 12:01:30 - 10 min");
    assert_eq!(progress[2].event_time.as_ref().unwrap().watermark, "2026-01-01T12:02:00.000Z");
    // the state is versioned under the checkpoint
    let state = lake.path().join("_checkpoints/counts/state/agg");
    assert!(state.join("4.state.arrow").exists() && state.join("_metadata.json").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_at_any_step_boundary_gives_the_same_table() {
    for crash in [
        (CrashPoint::AfterOffsets, 0),
        (CrashPoint::AfterStateWrite, 1),
        (CrashPoint::AfterSinkCommit, 2),
        (CrashPoint::AfterOffsets, 2),
        (CrashPoint::AfterStateWrite, 2),
    ] {
        let lake = tempfile::tempdir().unwrap();
        let progress = tumbling_scenario(lake.path(), Some(crash)).await;
        let last = progress.last().unwrap();
        assert_eq!(last.state_operators["agg"].num_rows_total, 2, "crash at {crash:?}");
        let gold = lake.path().join("gold/counts");
        assert_eq!(scalar_i64(&gold, "SELECT count(*) FROM t").await, 2, "crash at {crash:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_mode_merges_changed_windows_and_complete_rewrites_everything() {
    let lake = tempfile::tempdir().unwrap();
    let root = lake.path();
    let project = window_project("\"window(t, '10 minutes', '5 minutes')\"", "update", "drop");
    add_events(root, "landing/events", "b0.json", &[("a", "12:07:00")]);
    run_collect(&project, root, None).await.0.unwrap();
    let gold = root.join("gold/counts");
    let q = "SELECT \"window\", n FROM t";
    assert_eq!(
        rows(&gold, q).await,
        vec![
            format!("{} | 1", win("12:00:00", "12:10:00")),
            format!("{} | 1", win("12:05:00", "12:15:00"))
        ]
    );
    // 12:22 moves the watermark to 12:12 (a no-data batch applies it); a row at 12:09 in a
    // later batch is then late for [12:00,12:10) only
    add_events(root, "landing/events", "b1.json", &[("a", "12:22:00")]);
    run_collect(&project, root, None).await.0.unwrap();
    add_events(root, "landing/events", "b2.json", &[("a", "12:09:00")]);
    let (result, progress) = run_collect(&project, root, None).await;
    result.unwrap();
    assert_eq!(progress.last().unwrap().state_operators["agg"].num_rows_dropped_by_watermark, 1);
    let got = rows(&gold, q).await;
    assert!(got.contains(&format!("{} | 1", win("12:00:00", "12:10:00"))), "{got:?}");
    assert!(got.contains(&format!("{} | 2", win("12:05:00", "12:15:00"))), "{got:?}");
    assert!(got.contains(&format!("{} | 1", win("12:20:00", "12:30:00"))), "{got:?}");
    assert_eq!(got.len(), 4, "MERGE updated the window in place: {got:?}");

    let lake = tempfile::tempdir().unwrap();
    let root = lake.path();
    let project = window_project("\"k\"", "complete", "drop");
    add_events(root, "landing/events", "b0.json", &[("a", "12:00:00"), ("b", "12:00:00")]);
    add_events(root, "landing/events", "b1.json", &[("a", "12:01:00")]);
    run_collect(&project, root, None).await.0.unwrap();
    assert_eq!(rows(&root.join("gold/counts"), "SELECT k, n FROM t").await, ["a | 2", "b | 1"]);
}

/// Tumbling windows in update mode (each batch MERGEs the windows it changed) and sliding
/// windows in append mode (each window once, when closed), with exact rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tumbling_update_and_sliding_append_write_exact_rows() {
    let lake = tempfile::tempdir().unwrap();
    let root = lake.path();
    let project = window_project("\"k\", \"window(t, '1 minute')\"", "update", "drop");
    add_events(root, "landing/events", "b0.json", &[("a", "12:00:10"), ("b", "12:00:20")]);
    add_events(root, "landing/events", "b1.json", &[("a", "12:00:40"), ("a", "12:05:00")]);
    run_collect(&project, root, None).await.0.unwrap();
    assert_eq!(
        rows(&root.join("gold/counts"), COUNTS).await,
        vec![
            format!("a | {} | 2", win("12:00:00", "12:01:00")),
            format!("a | {} | 1", win("12:05:00", "12:06:00")),
            format!("b | {} | 1", win("12:00:00", "12:01:00")),
        ]
    );

    let lake = tempfile::tempdir().unwrap();
    let root = lake.path();
    let project = window_project("\"window(t, '10 minutes', '5 minutes')\"", "append", "drop");
    add_events(root, "landing/events", "b0.json", &[("a", "12:07:00")]);
    add_events(root, "landing/events", "b1.json", &[("a", "12:31:00")]);
    run_collect(&project, root, None).await.0.unwrap();
    // watermark 12:21: [12:00,12:10) and [12:05,12:15) are closed; the 12:31 windows are not
    assert_eq!(
        rows(&root.join("gold/counts"), "SELECT \"window\", n FROM t").await,
        vec![
            format!("{} | 1", win("12:00:00", "12:10:00")),
            format!("{} | 1", win("12:05:00", "12:15:00"))
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_windows_merge_across_batches() {
    let lake = tempfile::tempdir().unwrap();
    let root = lake.path();
    // STATEFUL.md test 3, in append mode: the merged session is written once it closes
    let project = window_project("\"k\", \"session_window(t, '5 minutes')\"", "append", "drop");
    add_events(root, "landing/events", "b0.json", &[("u1", "12:00:00"), ("u1", "12:08:00")]);
    add_events(root, "landing/events", "b1.json", &[("u1", "12:04:00")]);
    add_events(root, "landing/events", "b2.json", &[("u2", "12:40:00")]);
    run_collect(&project, root, None).await.0.unwrap();
    let q = "SELECT k, \"session_window\", n FROM t";
    assert_eq!(
        rows(&root.join("gold/counts"), q).await,
        vec![format!("u1 | {} | 3", win("12:00:00", "12:13:00"))]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_rows_go_to_quarantine_when_asked() {
    let lake = tempfile::tempdir().unwrap();
    let root = lake.path();
    let project = window_project("\"k\", \"window(t, '1 minute')\"", "append", "quarantine");
    // late in batch 2: at or below batch 1's watermark (12:30 - 10 minutes)
    add_events(root, "landing/events", "b0.json", &[("a", "12:30:00")]);
    add_events(root, "landing/events", "b1.json", &[("a", "12:31:00")]);
    add_events(root, "landing/events", "b2.json", &[("late", "12:00:00"), ("a", "12:31:30")]);
    let (result, progress) = run_collect(&project, root, None).await;
    result.unwrap();
    assert_eq!(progress[1].state_operators["agg"].num_rows_dropped_by_watermark, 0);
    assert_eq!(progress[2].state_operators["agg"].num_rows_dropped_by_watermark, 1);
    let quarantine = root.join("gold/counts_quarantine");
    let got = rows(&quarantine, "SELECT source_node, raw, reason FROM t").await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(got[0].starts_with("wm | {\"k\":\"late\""), "{got:?}");
    assert!(got[0].contains("late row") && got[0].contains("12:20:00"), "{got:?}");
}

/// dedup (keys with the event time) → 1-minute window: duplicates across batches are dropped
/// before counting; chained stateful nodes lose nothing (Spark 3.4+).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chained_dedup_then_window_and_dedup_within_watermark() {
    let lake = tempfile::tempdir().unwrap();
    let root = lake.path();
    let project = Project::from_toml(
        r#"
format_version = 1
name = "dedup"
[[pipeline]]
name = "dedup_counts"
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
delay = "10 minutes"
[[pipeline.nodes]]
id = "dedup"
kind = "deduplicate"
keys = ["k"]
within_watermark = true
[[pipeline.nodes]]
id = "agg"
kind = "aggregate"
group_by = ["window(t, '1 minute')"]
aggregates = ["count(*) AS n"]
[[pipeline.nodes]]
id = "sink"
kind = "delta_sink"
table = "gold/counts"
[[pipeline.edges]]
from = "events"
to = "wm"
[[pipeline.edges]]
from = "wm"
to = "dedup"
[[pipeline.edges]]
from = "dedup"
to = "agg"
[[pipeline.edges]]
from = "agg"
to = "sink"
"#,
        Path::new("dedup.toml"),
    )
    .unwrap();
    // id1 at 12:00 counts; its copy at 12:05 (next batch) is a duplicate; once the watermark
    // passes 12:10 (12:00 + delay) id1 is new again at 12:25
    add_events(root, "landing/events", "b0.json", &[("id1", "12:00:00"), ("id2", "12:00:30")]);
    add_events(root, "landing/events", "b1.json", &[("id1", "12:05:00"), ("id2", "12:00:40")]);
    add_events(root, "landing/events", "b2.json", &[("x", "12:21:00")]);
    let (result, mut progress) = run_collect(&project, root, None).await;
    result.unwrap();
    add_events(root, "landing/events", "b3.json", &[("id1", "12:25:00"), ("y", "12:40:00")]);
    let (result, more) = run_collect(&project, root, None).await;
    result.unwrap();
    progress.extend(more);
    let dropped: u64 =
        progress.iter().map(|p| p.state_operators["dedup"].num_dropped_duplicate_rows).sum();
    assert_eq!(dropped, 2);
    let got = rows(&root.join("gold/counts"), "SELECT \"window\", n FROM t").await;
    assert_eq!(
        got,
        vec![
            format!("{} | 2", win("12:00:00", "12:01:00")),
            format!("{} | 1", win("12:21:00", "12:22:00")),
            format!("{} | 1", win("12:25:00", "12:26:00")),
        ]
    );
}

/// Two inputs, one idle: under `min` the global watermark waits for the idle one and no
/// window closes; under `max` it follows the busy one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_input_holds_the_min_watermark_and_the_policy_is_fixed_at_first_start() {
    let project_text = |policy: &str| {
        format!(
            r#"
format_version = 1
name = "two"
[[pipeline]]
name = "two_inputs"
mode = "stream"
watermark_policy = "{policy}"
[[pipeline.nodes]]
id = "a"
kind = "file_source"
path = "landing/a"
schema = "k STRING, t TIMESTAMP"
[[pipeline.nodes]]
id = "b"
kind = "file_source"
path = "landing/b"
schema = "k STRING, t TIMESTAMP"
[[pipeline.nodes]]
id = "wa"
kind = "watermark"
column = "t"
delay = "1 minute"
[[pipeline.nodes]]
id = "wb"
kind = "watermark"
column = "t"
delay = "1 minute"
[[pipeline.nodes]]
id = "both"
kind = "sql"
inputs = ["a", "b"]
query = "SELECT * FROM a UNION ALL SELECT * FROM b"
[[pipeline.nodes]]
id = "agg"
kind = "aggregate"
group_by = ["window(t, '1 minute')"]
aggregates = ["count(*) AS n"]
[[pipeline.nodes]]
id = "sink"
kind = "delta_sink"
table = "gold/counts"
[[pipeline.edges]]
from = "a"
to = "wa"
[[pipeline.edges]]
from = "b"
to = "wb"
[[pipeline.edges]]
from = "wa"
to = "both"
port = "a"
[[pipeline.edges]]
from = "wb"
to = "both"
port = "b"
[[pipeline.edges]]
from = "both"
to = "agg"
[[pipeline.edges]]
from = "agg"
to = "sink"
"#
        )
    };
    for (policy, expect_rows) in [("min", 0), ("max", 1)] {
        let lake = tempfile::tempdir().unwrap();
        let root = lake.path();
        std::fs::create_dir_all(root.join("landing/b")).unwrap();
        add_events(root, "landing/a", "a0.json", &[("x", "12:00:00"), ("x", "12:30:00")]);
        let project = Project::from_toml(&project_text(policy), Path::new("two.toml")).unwrap();
        run_collect(&project, root, None).await.0.unwrap();
        let got = rows(&root.join("gold/counts"), "SELECT n FROM t").await;
        assert_eq!(got.len(), expect_rows, "{policy}: {got:?}");
        // restarting with the other policy keeps the stored one
        let other = if policy == "min" { "max" } else { "min" };
        add_events(root, "landing/a", "a1.json", &[("x", "12:50:00")]);
        let project = Project::from_toml(&project_text(other), Path::new("two.toml")).unwrap();
        run_collect(&project, root, None).await.0.unwrap();
        let got = rows(&root.join("gold/counts"), "SELECT n FROM t").await;
        assert_eq!(got.len(), expect_rows * 2, "{policy} kept after restart: {got:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_aggregate_is_refused_at_restart_naming_the_node() {
    let lake = tempfile::tempdir().unwrap();
    let root = lake.path();
    add_events(root, "landing/events", "b0.json", &[("a", "12:00:00")]);
    let project = window_project("\"k\", \"window(t, '1 minute')\"", "append", "drop");
    run_collect(&project, root, None).await.0.unwrap();
    let changed = window_project("\"k\", \"window(t, '5 minutes')\"", "append", "drop");
    add_events(root, "landing/events", "b1.json", &[("a", "12:01:00")]);
    let err = run_collect(&changed, root, None).await.0.unwrap_err().to_string();
    assert!(err.contains("node `agg` changed"), "{err}");
    assert!(err.contains("reset the checkpoint"), "{err}");
}

#[test]
fn rejected_plans_name_the_node_and_the_fix() {
    let base = |group_by: &str, mode: &str, watermark: bool| {
        let wm = if watermark { "wm" } else { "events" };
        format!(
            r#"
format_version = 1
name = "bad"
[[pipeline]]
name = "p"
mode = "stream"
[[pipeline.nodes]]
id = "events"
kind = "file_source"
path = "landing/events"
schema = "k STRING, t TIMESTAMP"
[[pipeline.nodes]]
id = "wm"
kind = "watermark"
column = "t"
delay = "10 minutes"
[[pipeline.nodes]]
id = "agg"
kind = "aggregate"
group_by = [{group_by}]
aggregates = ["count(*) AS n"]
[[pipeline.nodes]]
id = "sink"
kind = "delta_sink"
table = "gold/counts"
output_mode = "{mode}"
[[pipeline.edges]]
from = "events"
to = "wm"
[[pipeline.edges]]
from = "{wm}"
to = "agg"
[[pipeline.edges]]
from = "agg"
to = "sink"
"#
        )
    };
    let errors = |text: String| -> Vec<String> {
        let p = Project::from_toml(&text, Path::new("bad.toml")).unwrap();
        validate::validate_project(&p)
            .into_iter()
            .filter(|d| d.severity == Severity::Error)
            .map(|d| d.to_string())
            .collect()
    };
    let e = errors(base("\"window(t, '1 minute')\"", "append", false));
    assert!(
        e.iter().any(|m| m.contains("node `agg`") && m.contains("add a Watermark node")),
        "{e:?}"
    );
    let e = errors(base("\"k\", \"session_window(t, '5 minutes')\"", "update", true));
    assert!(e.iter().any(|m| m.contains("session windows do not support update")), "{e:?}");
    assert!(errors(base("\"k\", \"window(t, '1 minute')\"", "append", true)).is_empty());
    let ads = std::fs::read_to_string(repo_path("projects/ad_clicks.toml")).unwrap();
    let e = errors(ads.replace("condition = \"right.clicked_at BETWEEN left.shown_at AND left.shown_at + INTERVAL '1 hour'\"\n", ""));
    assert!(e.iter().any(|m| m.contains("left outer join of two streams needs")), "{e:?}");
    // an update-mode aggregate may not feed another stateful node
    let chained = base("\"k\"", "update", true).replace(
        "[[pipeline.nodes]]\nid = \"sink\"",
        "[[pipeline.nodes]]\nid = \"again\"\nkind = \"deduplicate\"\nkeys = [\"k\"]\n\n[[pipeline.nodes]]\nid = \"sink\"",
    )
    .replace("from = \"agg\"\nto = \"sink\"", "from = \"agg\"\nto = \"again\"\n[[pipeline.edges]]\nfrom = \"again\"\nto = \"sink\"");
    let e = errors(chained);
    assert!(
        e.iter()
            .any(|m| m.contains("node `agg`") && m.contains("cannot feed another stateful node")),
        "{e:?}"
    );
    let e = errors(ads.replacen(
        "table = \"silver/ad_clicks\"",
        "table = \"silver/ad_clicks\"\noutput_mode = \"update\"",
        1,
    ));
    assert!(e.iter().any(|m| m.contains("append mode only")), "{e:?}");
}

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
