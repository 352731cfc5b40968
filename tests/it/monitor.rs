//! The monitor driven by egui_kittest on a real generator stream: the demo project streams
//! into real Delta tables in a temp dir while the test clicks Start, the lakehouse panel, an
//! old version, the event log, the checkpoint view and Stop, as a user would.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use egui_kittest::Harness;
use egui_kittest::kittest::Queryable as _;
use medallion::engine::RunEvent;
use medallion::engine::checkpoint::{Checkpoint, Consumed, SourceOffset};
use medallion::model::node::{NodeKind, Select};
use medallion::model::{NodeId, Project, Trigger};
use medallion::ui::app::{BottomTab, MedallionApp};
use medallion::ui::monitor::RunStatus;

use crate::ui::wait_until;

fn harness(path: PathBuf) -> Harness<'static, MedallionApp> {
    harness_sized(path, [1500.0, 1000.0])
}

fn harness_sized(path: PathBuf, size: [f32; 2]) -> Harness<'static, MedallionApp> {
    Harness::builder()
        .with_size(size)
        .with_max_steps(50)
        .build_eframe(move |cc| MedallionApp::new(cc, Some(path)).expect("app starts"))
}

/// Keeps the app running for `d` (frames keep coming, as in a real window).
fn idle_for(h: &mut Harness<'static, MedallionApp>, d: Duration) {
    let until = Instant::now() + d;
    while Instant::now() < until {
        std::thread::sleep(Duration::from_millis(20));
        h.step();
    }
}

/// The demo as first launch writes it, with faster triggers so the test is short.
fn demo(trigger_ms: u64) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = medallion::ui::ensure_demo(dir.path()).unwrap();
    let mut project = Project::load(&path).unwrap();
    for p in &mut project.pipelines {
        if p.mode == medallion::model::PipelineMode::Stream {
            p.trigger = Some(Trigger::Interval { interval_ms: trigger_ms });
        }
    }
    project.save(&path).unwrap();
    (dir, path)
}

/// Rows of bronze/users at `version`, from the checkpoint alone: the generator's end offset
/// of the last batch whose commit put the table at or below that version.
fn bronze_rows_at(root: &Path, version: i64) -> u64 {
    let cp = Checkpoint::new(root.join("_checkpoints/bronze_users"));
    let mut rows = 0;
    for entry in cp.all_offsets().unwrap() {
        let Some(commit) = cp.commit(entry.batch_id).unwrap() else { continue };
        if commit.sinks["bronze_users"] <= version
            && let SourceOffset::Generator { end, .. } = entry.sources["users_generator"]
        {
            rows = rows.max(end);
        }
    }
    rows
}

fn table_version(path: &Path) -> i64 {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        medallion::engine::delta::open(path).await.unwrap().version().unwrap() as i64
    })
}

#[test]
fn monitor_streams_the_demo_then_time_travels_and_stops() {
    let (dir, project) = demo(300);
    let root = dir.path();
    let mut h = harness(project);
    h.run_steps(3);

    // ---- run: both streams start from the toolbar ------------------------------------------
    h.get_by_label("▶ Start all streams").click();
    h.run_steps(2);
    assert_eq!(h.state().bottom_tab(), BottomTab::Monitor);
    wait_until(&mut h, "bronze batches", |a| {
        a.monitor.pipelines.get("bronze_users").is_some_and(|p| p.points.len() >= 3)
    });
    wait_until(&mut h, "silver batches", |a| {
        a.monitor.pipelines.get("silver_users").is_some_and(|p| p.rows > 0)
    });
    let app = h.state();
    assert!(app.monitor.status("bronze_users").is_active());
    // the plots have points with real figures
    let bronze = &app.monitor.pipelines["bronze_users"];
    assert!(bronze.points.iter().zip(bronze.points.iter().skip(1)).all(|(a, b)| a.t < b.t));
    assert!(
        bronze
            .points
            .iter()
            .zip(bronze.points.iter().skip(1))
            .all(|(a, b)| { a.batch_id + 1 == b.batch_id })
    );
    assert!(bronze.points.iter().any(|p| p.rows > 0 && p.processed_rows_per_sec > 0.0));
    assert!(
        bronze.points.iter().filter(|p| p.rows > 0).all(|p| p.write_ms > 0.0),
        "a Delta commit takes time"
    );
    // rows per second on the edges of the running graph, and on the canvas
    let silver_rates = app.monitor.edge_rates("silver_users");
    let into_flatten = silver_rates[&(NodeId::new("flatten_employment"), "in".to_owned())];
    assert!(into_flatten > 0.0, "{silver_rates:?}");
    assert!(silver_rates.contains_key(&(NodeId::new("join_ssn"), "right".to_owned())));
    assert!(app.monitor.slowest("silver_users").is_some());
    // the monitor tab shows the bronze stream with a stop button
    assert!(h.query_by_label("■ Stop bronze_users").is_some());

    // ---- stop really stops ---------------------------------------------------------------
    h.get_by_label("■ Stop all").click();
    wait_until(&mut h, "both streams to stop", |a| {
        a.monitor.status("bronze_users") == RunStatus::Stopped
            && a.monitor.status("silver_users") == RunStatus::Stopped
    });
    let bronze_path = root.join("bronze/users");
    let version = table_version(&bronze_path);
    let commits = Checkpoint::new(root.join("_checkpoints/bronze_users")).last_committed().unwrap();
    idle_for(&mut h, Duration::from_millis(1500));
    assert_eq!(table_version(&bronze_path), version, "no commit after Stop");
    assert_eq!(
        Checkpoint::new(root.join("_checkpoints/bronze_users")).last_committed().unwrap(),
        commits
    );
    assert!(version >= 2, "a few versions to travel through: {version}");

    // ---- lakehouse panel: tables by layer with versions ---------------------------------
    h.get_by_label("Lakehouse").click();
    wait_until(&mut h, "the table list", |a| a.tables.tables.len() >= 3);
    let names: Vec<String> = h.state().tables.tables.iter().map(|t| t.name.clone()).collect();
    // the windowed gold stream's table appears once its first batch committed
    assert_eq!(names[..3], ["bronze/ssn", "bronze/users", "silver/users"], "bronze before silver");
    assert!(names[3..].iter().all(|n| n == "gold/signups_per_title"), "{names:?}");
    let bronze_info = h.state().tables.tables[1].clone();
    assert_eq!(bronze_info.version, version);
    assert_eq!(bronze_info.rows, Some(bronze_rows_at(root, version)));
    assert!(h.query_by_label_contains("BRONZE").is_some());
    assert!(h.query_by_label_contains("SILVER").is_some());
    h.get_by_label(&format!("bronze/users · v{version}")).click();
    wait_until(&mut h, "the timeline", |a| a.tables.history.len() as i64 == version + 1);
    let h0 = h.state().tables.history.last().unwrap().clone();
    assert_eq!(h0.version, 0);
    assert_eq!(h0.pipeline.as_deref(), Some("bronze_users"), "written-by from commit metadata");
    assert_eq!(h0.rows_added, Some(bronze_rows_at(root, 0)));

    // ---- click an old version: time travel preview ---------------------------------------
    // the oldest version row on screen (the list is newest first and only draws what shows)
    // under load the list can still move between finding a row and clicking it (a history
    // refresh): click again until the clicked version is on show, as a user would
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let old = loop {
        let old = (1..version)
            .find(|v| h.query_by_label_contains(&format!("v{v}  ")).is_some())
            .expect("an old version on screen");
        h.get_by_label_contains(&format!("v{old}  ")).click();
        let clicked = std::time::Instant::now();
        while clicked.elapsed() < Duration::from_secs(10)
            && h.state().tables.shown_rows().is_none_or(|(v, _)| v != old)
        {
            std::thread::sleep(Duration::from_millis(20));
            h.step();
        }
        if h.state().tables.shown_rows().is_some_and(|(v, _)| v == old) {
            h.run_steps(2);
            break old;
        }
        assert!(std::time::Instant::now() < deadline, "version {old} never shown");
    };
    let expected = bronze_rows_at(root, old);
    let (v, preview_rows) = h.state().tables.shown_rows().unwrap();
    assert_eq!(v, old);
    assert_eq!(preview_rows as u64, expected.min(100));
    let Some((_, Ok(shown))) = &h.state().tables.shown else { panic!("no version shown") };
    assert_eq!(shown.rows, expected, "the row count as of that version, not today's");
    assert!(expected < bronze_rows_at(root, version));
    assert!(h.query_by_label_contains(&format!("as of version {old}")).is_some());

    // ---- compare two versions: rows added and removed ------------------------------------
    // pick the two versions in the combo boxes, as a user does
    h.get_by_label("older").click();
    h.run_steps(2);
    h.get_by_label(&format!("v{old}")).click();
    h.run_steps(2);
    h.get_by_label("newer").click();
    h.run_steps(2);
    h.get_by_label(&format!("v{version}")).click();
    h.run_steps(2);
    h.get_by_label("Compare").click();
    wait_until(&mut h, "the comparison", |a| a.tables.diff.is_some());
    let diff = h.state().tables.diff.clone().unwrap().unwrap();
    assert_eq!(diff.rows_added, bronze_rows_at(root, version) - expected);
    assert_eq!(diff.rows_removed, 0, "appends remove nothing");

    // ---- event log, read from disk ---------------------------------------------------------
    h.get_by_label("Event log").click();
    wait_until(&mut h, "the event log", |a| !a.logged_events().is_empty());
    let batches = h
        .state()
        .logged_events()
        .iter()
        .filter(|e| matches!(&e.event, RunEvent::BatchCompleted(p) if p.pipeline == "bronze_users"))
        .count() as u64;
    assert_eq!(Some(batches - 1), commits, "one progress event per committed batch");

    // ---- checkpoint view and reset ---------------------------------------------------------
    h.get_by_label("⏺ bronze_users").click(); // the pipeline's tab, with its status dot
    h.run_steps(2);
    h.get_by_label("Checkpoint").click();
    wait_until(&mut h, "the checkpoint", |a| a.checkpoint_info().is_some());
    let info = h.state().checkpoint_info().unwrap().clone();
    assert_eq!(info.view.last_committed, commits);
    assert_eq!(info.view.pending_replay(), None);
    assert_eq!(
        info.view.consumed["users_generator"],
        Consumed::Generator { rows: bronze_rows_at(root, version) }
    );
    h.get_by_label("Reset checkpoint…").click();
    h.run_steps(2);
    let lines = h.state().reset_pending().expect("a confirmation").join("\n");
    assert!(lines.contains("generates rows from 0 again"), "{lines}");
    assert!(lines.contains("bronze/users (append)"), "{lines}");
    assert!(root.join("_checkpoints/bronze_users").exists(), "nothing happens before confirming");
    h.get_by_label("Reset checkpoint").click();
    let cp = root.join("_checkpoints/bronze_users");
    wait_until(&mut h, "the reset", |_| !cp.exists());
    assert!(root.join("_checkpoints/silver_users").exists(), "only that pipeline's checkpoint");

    // ---- the history is still there after the app restarts ---------------------------------
    drop(h);
    let mut h = harness(root.join(medallion::ui::DEMO_FILE));
    h.run_steps(3);
    h.get_by_label("Event log").click();
    wait_until(&mut h, "the event log after a restart", |a| !a.logged_events().is_empty());
    assert!(h.state().logged_events().iter().any(|e| matches!(
        &e.event,
        RunEvent::PipelineFinished { pipeline, .. } if pipeline == "silver_users"
    )));
}

/// In a small window the monitor's row of streams wraps instead of running on under the
/// inspector (it did: with the demo's three streams the third's button sat behind it).
#[test]
fn the_monitor_fits_a_small_window() {
    let (_dir, project) = demo(1000);
    let mut h = harness_sized(project, [900.0, 640.0]);
    h.run_steps(3);
    h.state_mut().show_tab(BottomTab::Monitor);
    h.run_steps(3);
    let inspector_left = h.get_by_label("Pipeline name").rect().min.x;
    for name in ["bronze_users", "silver_users", "gold_signups"] {
        let button = h.get_by_label(&format!("▶ Start {name}")).rect();
        assert!(
            button.max.x <= inspector_left && button.max.y <= 640.0,
            "`{name}`'s button at {button:?}, the inspector from x = {inspector_left}"
        );
    }
}

#[test]
fn a_failing_stream_pins_its_error_on_the_node() {
    let (dir, project) = demo(200);
    // break silver's select: the failure happens while a batch runs
    let mut p = Project::load(&project).unwrap();
    let silver = p.pipelines.iter_mut().find(|p| p.name == "silver_users").unwrap();
    silver.node_mut(&NodeId::new("typed_users")).unwrap().kind =
        NodeKind::Select(Select { columns: vec!["uuid AS user_uid".into(), "gendre".into()] });
    p.save(&project).unwrap();
    let mut h = harness(project);
    h.run_steps(3);
    h.get_by_label("▶ Start all streams").click();
    wait_until(&mut h, "silver to fail", |a| a.monitor.status("silver_users") == RunStatus::Failed);
    let app = h.state();
    assert!(app.monitor.status("bronze_users").is_active(), "bronze goes on");
    let (node, message) = app.monitor.pipelines["silver_users"].error.clone().unwrap();
    assert_eq!(node, Some(NodeId::new("typed_users")));
    assert!(message.contains("gendre"), "{message}");
    let silver = app.doc.project.pipeline("silver_users").unwrap();
    let statuses = app.monitor.node_status(silver);
    assert_eq!(statuses[&NodeId::new("typed_users")], RunStatus::Failed);
    assert_eq!(statuses[&NodeId::new("flatten_employment")], RunStatus::Stopped);
    // the error is written in the log too
    let log = std::fs::read_to_string(dir.path().join("_events/silver_users.jsonl")).unwrap();
    assert!(log.contains("\"level\":\"error\"") && log.contains("gendre"), "{log}");
    h.get_by_label("■ Stop all").click();
    wait_until(&mut h, "bronze to stop", |a| {
        a.monitor.status("bronze_users") == RunStatus::Stopped
    });
}

/// Figure for the notes, not a test: how long the engine takes to stream a fixed 3,000,000
/// generated users into bronze (availableNow, 15 batches of 200,000 rows, flat out) headless,
/// and with the app open on the monitor tab drawing frames (egui layout on the CPU, as in the
/// other frame-time figure), plus the app's frame times meanwhile. Frames come at 20 Hz, the
/// app's own cadence while a run is busy (it asks for a repaint every 50 ms), and at 60 Hz, a
/// worst case (a user moving the mouse the whole time); two rounds each.
/// `cargo test --test it monitor::monitor_cost -- --ignored --nocapture`
#[test]
#[ignore]
fn monitor_cost_figure() {
    const ROWS: u64 = 3_000_000;
    fn project_in(dir: &Path) -> PathBuf {
        let path = medallion::ui::ensure_demo(dir).unwrap();
        let mut p = Project::load(&path).unwrap();
        p.pipelines.retain(|p| p.name == "bronze_users");
        let b = &mut p.pipelines[0];
        if let NodeKind::GeneratorSource(g) =
            &mut b.node_mut(&NodeId::new("users_generator")).unwrap().kind
        {
            // availableNow takes max_rows, in batches of ten seconds' worth: 200,000 rows
            g.rows_per_second = 20_000;
            g.max_rows = Some(ROWS);
        }
        p.save(&path).unwrap();
        path
    }
    // CPU time of the whole process (all threads, finished ones too), from /proc
    let ticks: f64 = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0);
    let cpu_secs = || -> f64 {
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
        let after_name = &stat[stat.rfind(')').unwrap() + 2..];
        let f: Vec<&str> = after_name.split(' ').collect();
        // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name
        (f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap()) / ticks
    };
    let mut report = Vec::new();
    for (round, hz) in [(1, 20), (1, 60), (2, 20), (2, 60)] {
        // headless, as `medallion run --available-now` does it
        let dir = tempfile::tempdir().unwrap();
        let project = Project::load(&project_in(dir.path())).unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let opts = medallion::engine::RunOptions { available_now: true, ..Default::default() };
        let started = Instant::now();
        let cpu_before = cpu_secs();
        let summary = rt
            .block_on(medallion::engine::run_project(&project, dir.path(), &opts, &|_| {}))
            .unwrap();
        let headless = started.elapsed().as_secs_f64();
        let headless_cpu = cpu_secs() - cpu_before;
        assert_eq!(summary.rows_written, ROWS);
        drop(rt);

        // the same run started from the app, with the monitor open
        let dir = tempfile::tempdir().unwrap();
        let mut h = harness(project_in(dir.path()));
        h.run_steps(3);
        let started = Instant::now();
        let cpu_before = cpu_secs();
        h.state_mut().request_run(false);
        h.state_mut().show_tab(BottomTab::Monitor);
        let mut frames = Vec::new();
        while h.state().is_busy() {
            let t = Instant::now();
            h.step();
            frames.push(t.elapsed().as_secs_f64() * 1000.0);
            // between frames the UI thread is idle
            std::thread::sleep(Duration::from_micros(1_000_000 / hz).saturating_sub(t.elapsed()));
        }
        let with_app = started.elapsed().as_secs_f64();
        let app_cpu = cpu_secs() - cpu_before;
        let ui_cpu = frames.iter().sum::<f64>() / 1000.0;
        let points = h.state().monitor.pipelines["bronze_users"].points.len();
        frames.sort_by(f64::total_cmp);
        let pct = |q: f64| frames[((frames.len() - 1) as f64 * q) as usize];
        report.push(format!(
            "round {round}, {hz} Hz: headless {headless:.2} s ({:.0} rows/s, {headless_cpu:.2} CPU-s); \
             with the app {with_app:.2} s ({:.0} rows/s, {:+.1}%; {app_cpu:.2} CPU-s of which \
             UI frames {ui_cpu:.2}: engine {:.2} CPU-s, {:+.1}% vs headless); {} frames: p50 {:.2} ms, \
             p99 {:.2} ms, max {:.2} ms; {points} batches plotted",
            ROWS as f64 / headless,
            ROWS as f64 / with_app,
            (headless / with_app - 1.0) * 100.0,
            app_cpu - ui_cpu,
            ((app_cpu - ui_cpu) / headless_cpu - 1.0) * 100.0,
            frames.len(),
            pct(0.5),
            pct(0.99),
            frames.last().unwrap(),
        ));
    }
    for line in report {
        println!("{line}");
    }
}

/// The bottom panel keeps its height whatever its tab shows: the gold stream's monitor (a
/// second row of plots for its watermark and state) used to grow the panel, so the tab bar
/// jumped under the pointer between two clicks and the canvas refitted.
#[test]
fn the_bottom_panel_keeps_its_height_when_a_tab_shows_more() {
    let (_dir, project) = demo(200);
    let mut h = harness_sized(project, [1100.0, 720.0]);
    h.run_steps(3);
    let tabs_top = |h: &Harness<'static, MedallionApp>| h.get_by_label("Event log").rect().top();
    let before = tabs_top(&h);
    h.get_by_label("▶ Start all streams").click();
    wait_until(&mut h, "gold's state", |a| {
        a.monitor.pipelines.get("gold_signups").is_some_and(medallion::ui::stateful::has_state)
    });
    let gold = h.state().doc.project.pipelines.iter().position(|p| p.name == "gold_signups");
    h.state_mut().tab = gold.unwrap();
    h.state_mut().show_tab(BottomTab::Monitor);
    idle_for(&mut h, Duration::from_millis(300));
    // gold's monitor draws its second row, the state plots (the watermark line above them
    // only when the last batch had rows: not asserted)
    let gold = &h.state().monitor.pipelines["gold_signups"];
    assert!(medallion::ui::stateful::has_state(gold), "gold's state plots");
    assert_eq!(tabs_top(&h), before, "the monitor's tab bar");
    for tab in [BottomTab::Lakehouse, BottomTab::Checkpoint, BottomTab::Events, BottomTab::Run] {
        h.state_mut().show_tab(tab);
        idle_for(&mut h, Duration::from_millis(300));
        assert_eq!(tabs_top(&h), before, "{tab:?}'s tab bar");
    }
    h.get_by_label("■ Stop all").click();
    wait_until(&mut h, "the streams to stop", |a| {
        ["bronze_users", "silver_users", "gold_signups"]
            .iter()
            .all(|p| !a.monitor.status(p).is_active())
    });
    // the tabs' table and checkpoint reads finish before the app (and its runtime) goes
    idle_for(&mut h, Duration::from_millis(500));
}

/// Closing the window stops the running streams after their batch in flight before the
/// engine goes: every batch planned in a checkpoint is committed (before, Quit dropped the
/// runtime under a Parquet write and object_store panicked "Already shut down").
#[test]
fn closing_the_app_lets_every_stream_finish_its_batch() {
    let (dir, project) = demo(200);
    let mut h = harness(project);
    h.run_steps(3);
    h.get_by_label("▶ Start all streams").click();
    wait_until(&mut h, "a few batches of gold", |a| {
        a.monitor.pipelines.get("gold_signups").is_some_and(|p| p.batches >= 2)
    });
    assert_eq!(h.state().running_streams(), ["bronze_users", "gold_signups", "silver_users"]);
    assert!(h.state_mut().stop_streams_before_exit(Duration::from_secs(60)), "stopped in time");
    assert!(h.state().running_streams().is_empty());
    for p in ["bronze_users", "silver_users", "gold_signups"] {
        assert!(!h.state().monitor.status(p).is_active(), "{p} stopped");
        let cp = dir.path().join("_checkpoints").join(p);
        let last = |sub: &str| {
            std::fs::read_dir(cp.join(sub))
                .unwrap()
                .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u64>().ok())
                .max()
        };
        let planned = last("offsets");
        assert!(planned.is_some(), "{p} ran");
        assert_eq!(last("commits"), planned, "{p}'s last batch is committed");
    }
}
