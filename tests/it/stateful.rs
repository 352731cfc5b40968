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
pub(crate) fn add_events(root: &Path, folder: &str, name: &str, rows: &[(&str, &str)]) {
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
pub(crate) fn window_project(group_by: &str, output_mode: &str, late_rows: &str) -> Project {
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
pub(crate) async fn run_collect(
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
pub(crate) async fn rows(table: &Path, sql: &str) -> Vec<String> {
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

pub(crate) fn win(start: &str, end: &str) -> String {
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
