//! Recorded pipeline tests (`medallion test`), run as a user runs them: the real binary on the
//! example projects and their checked-in fixtures, recordings from real demo data, a broken
//! transform whose diff names the column and the row, a stateful stream replayed batch by
//! batch against the real runtime's result, property assertions, and the app's Tests tab.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use medallion::engine::testing::fixtures;
use medallion::model::Project;

use crate::common::repo_path;

fn medallion(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_medallion")).args(args).output().expect("binary runs")
}

fn out(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

const EXAMPLES: [&str; 5] = ["ad_clicks", "demo", "music_kafka", "users_batch", "users_stream"];

/// Every file under `dir` (relative path, size), to prove a replay wrote nothing.
fn tree(dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((p.strip_prefix(dir).unwrap().to_owned(), e.metadata().unwrap().len()));
            }
        }
    }
    out.sort();
    out
}

/// Copies an example project and its fixtures into `dir` (same relative layout).
fn copy_example(name: &str, dir: &Path) -> PathBuf {
    let project = Project::load(&repo_path(&format!("projects/{name}.toml"))).unwrap();
    let file = dir.join(format!("{name}.toml"));
    std::fs::copy(repo_path(&format!("projects/{name}.toml")), &file).unwrap();
    for t in &project.tests {
        let from = repo_path("projects").join(&t.dir);
        let to = dir.join(&t.dir);
        for (rel, _) in tree(&from) {
            std::fs::create_dir_all(to.join(&rel).parent().unwrap()).unwrap();
            std::fs::copy(from.join(&rel), to.join(&rel)).unwrap();
        }
    }
    file
}

#[test]
fn every_example_ships_a_test_and_passes_it_without_touching_the_lakehouse() {
    let lake = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(lake.path().join("bronze")).unwrap();
    std::fs::write(lake.path().join("bronze/marker"), "x").unwrap();
    let before = tree(lake.path());
    for name in EXAMPLES {
        let file = repo_path(&format!("projects/{name}.toml"));
        let project = Project::load(&file).unwrap();
        assert!(!project.tests.is_empty(), "{name} ships no recorded test");
        let o = medallion(&[
            "test",
            file.to_str().unwrap(),
            "--lakehouse",
            lake.path().to_str().unwrap(),
        ]);
        let text = out(&o);
        assert_eq!(o.status.code(), Some(0), "{name}:\n{text}");
        let n = project.tests.len();
        assert!(text.contains(&format!("{n} passed, 0 failed")), "{name}:\n{text}");
        for t in &project.tests {
            assert!(text.contains(&format!("test {} (", t.name)), "{name}:\n{text}");
        }
    }
    // sources came from the fixtures and sinks were captured: the lakehouse is as it was
    assert_eq!(tree(lake.path()), before);
    // --name selects by glob; a glob that matches nothing is an error
    let file = repo_path("projects/ad_clicks.toml");
    let o = medallion(&["test", file.to_str().unwrap(), "--name", "gold_*"]);
    assert_eq!(o.status.code(), Some(0), "{}", out(&o));
    assert!(out(&o).contains("1 passed, 0 failed"), "{}", out(&o));
    let o = medallion(&["test", file.to_str().unwrap(), "--name", "nope*"]);
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    assert!(out(&o).contains("no test of project `ad_clicks` matches `nope*`"), "{}", out(&o));
}

#[test]
fn a_broken_transform_fails_with_a_diff_naming_the_column_and_the_row() {
    let dir = tempfile::tempdir().unwrap();
    let file = copy_example("users_batch", dir.path());
    let text = std::fs::read_to_string(&file).unwrap();
    // upper-case the last name of one user of the fixture, and change nothing else
    let project = Project::load(&file).unwrap();
    let silver = project.tests.iter().find(|t| t.node.as_str() == "domain_columns").unwrap();
    let expected =
        fixtures::read_parquet(&fixtures::test_dir(&file, silver).join("batch_0/expected.parquet"))
            .unwrap()
            .concat()
            .unwrap();
    let ids = expected.column_by_name("user_id").unwrap();
    let id = arrow::array::cast::AsArray::as_primitive::<arrow::datatypes::Int64Type>(ids).value(0);
    let broken = text.replace(
        "    \"last_name\",\n    \"CAST(date_of_birth",
        &format!("    \"CASE WHEN id = {id} THEN upper(last_name) ELSE last_name END AS last_name\",\n    \"CAST(date_of_birth"),
    );
    assert_ne!(broken, text, "the example changed: update this test's edit");
    std::fs::write(&file, broken).unwrap();
    let o = medallion(&["test", file.to_str().unwrap()]);
    let text = out(&o);
    assert_eq!(o.status.code(), Some(1), "{text}");
    assert!(text.contains("FAILED"), "{text}");
    assert!(text.contains("1 changed row(s)"), "{text}");
    let project = Project::load(&file).unwrap();
    let key = &project.tests.iter().find(|t| t.node.as_str() == "domain_columns").unwrap().key;
    assert_eq!(key, &["user_uid".to_owned()], "rows are named by their uid");
    let uids = expected.column_by_name("user_uid").unwrap();
    let uid = arrow::util::display::array_value_to_string(uids, 0).unwrap();
    assert!(text.contains(&format!("row user_uid={uid}:")), "the row is named by its key:\n{text}");
    let changed = text
        .lines()
        .find(|l| l.contains("column `last_name`: expected "))
        .unwrap_or_else(|| panic!("{text}"));
    let (exp, got) = changed.split_once(", got ").unwrap();
    let exp = exp.rsplit("expected ").next().unwrap();
    assert_eq!(got.trim(), exp.to_uppercase(), "{text}");
    assert!(text.lines().any(|l| l.ends_with("failed (") || l.contains(" failed (")), "{text}");
    assert!(text.contains("passed, ") && text.contains(" failed ("), "{text}");
    // a transform that drops a column: the schema change is named too
    let text2 = std::fs::read_to_string(&file).unwrap().replace("u.gender, ", "");
    std::fs::write(&file, text2).unwrap();
    let o = medallion(&["test", file.to_str().unwrap(), "--name", "silver_*"]);
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    assert!(out(&o).contains("column `gender` is missing"), "{}", out(&o));
}

#[test]
fn record_from_demo_data_then_replay_and_accept() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let lake_s = lake.to_str().unwrap();
    let o = medallion(&["demo-data", lake_s, "--users", "60", "--files", "2", "--seed", "5"]);
    assert!(o.status.success(), "{}", out(&o));
    let file = dir.path().join("users_batch.toml");
    std::fs::copy(repo_path("projects/users_batch.toml"), &file).unwrap();
    // a fresh project: drop the shipped tests, keep the header comment
    let text = std::fs::read_to_string(&file).unwrap();
    let cut = text.find("\n[[tests]]").unwrap_or(text.len());
    std::fs::write(&file, &text[..cut]).unwrap();
    let f = file.to_str().unwrap();
    let o = medallion(&["run", f, "--lakehouse", lake_s]);
    assert!(o.status.success(), "{}", out(&o));
    let tables_before = tree(&lake);
    let o = medallion(&[
        "test",
        "record",
        f,
        "--lakehouse",
        lake_s,
        "--node",
        "domain_columns",
        "--name",
        "silver_sample",
        "--limit",
        "8",
    ]);
    let text = out(&o);
    assert_eq!(o.status.code(), Some(0), "{text}");
    assert!(
        text.contains("`event_time` is not compared: node `domain_columns` computes it with current_timestamp()"),
        "{text}"
    );
    assert!(text.contains("fixture: 8 row(s) of source `bronze_users_in`"), "{text}");
    assert!(text.contains("expected output: 8 row(s)"), "{text}");
    let saved = std::fs::read_to_string(&file).unwrap();
    assert!(saved.starts_with("# The classic batch medallion pipeline"), "comments kept");
    assert!(saved.contains("[[tests]]\n# `event_time` is not compared"), "{saved}");
    let project = Project::load(&file).unwrap();
    let t = &project.tests[0];
    assert_eq!(
        (t.name.as_str(), t.node.as_str(), t.batches),
        ("silver_sample", "domain_columns", 1)
    );
    assert_eq!(t.ignore_columns, ["event_time"]);
    let folder = fixtures::test_dir(&file, t);
    assert!(folder.ends_with("tests/users_batch/silver_sample"), "{}", folder.display());
    // nested and zoned types come back exactly as the node produced them
    let expected = fixtures::read_parquet(&folder.join("batch_0/expected.parquet")).unwrap();
    assert_eq!(expected.count(), 8);
    let skills = expected.schema.field_with_name("user_skills").unwrap();
    assert!(matches!(skills.data_type(), arrow::datatypes::DataType::List(_)), "{skills:?}");
    let bronze = fixtures::read_parquet(&folder.join("batch_0/bronze_users_in.parquet")).unwrap();
    assert!(matches!(
        bronze.schema.field_with_name("employment").unwrap().data_type(),
        arrow::datatypes::DataType::Struct(_)
    ));
    // the lookup table is trimmed to the ssn rows of the sampled users, not its first rows
    let ssn =
        fixtures::read_parquet(&folder.join("batch_0/ssn_in.parquet")).unwrap().concat().unwrap();
    let ids = |b: &arrow::array::RecordBatch, c: &str| -> Vec<i64> {
        let a = b.column_by_name(c).unwrap();
        arrow::array::cast::AsArray::as_primitive::<arrow::datatypes::Int64Type>(a)
            .values()
            .to_vec()
    };
    let users = ids(&bronze.concat().unwrap(), "id");
    let ssn_ids = ids(&ssn, "user_id");
    assert!(
        !ssn_ids.is_empty() && ssn_ids.iter().all(|i| users.contains(i)),
        "{ssn_ids:?} {users:?}"
    );
    assert!(
        text.contains(&format!("fixture: {} row(s) of source `ssn_in`", ssn_ids.len())),
        "{text}"
    );
    // replay: passes, and no table of the lakehouse changed
    let o = medallion(&["test", f]);
    assert_eq!(o.status.code(), Some(0), "{}", out(&o));
    assert!(out(&o).contains("1 passed, 0 failed"), "{}", out(&o));
    assert_eq!(tree(&lake), tables_before, "a replay writes no table");
    // an intended change fails, is accepted, then passes; recording again replaces the entry
    let changed = std::fs::read_to_string(&file).unwrap().replace("'mongo'", "'mongodb'");
    std::fs::write(&file, changed).unwrap();
    let o = medallion(&["test", f]);
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    assert!(out(&o).contains("column `source_system`: expected mongo, got mongodb"), "{}", out(&o));
    let o = medallion(&["test", f, "--name", "silver_sample", "--accept"]);
    assert_eq!(o.status.code(), Some(0), "{}", out(&o));
    let o = medallion(&["test", f]);
    assert_eq!(o.status.code(), Some(0), "{}", out(&o));
    let o = medallion(&[
        "test",
        "record",
        f,
        "--lakehouse",
        lake_s,
        "--node",
        "domain_columns",
        "--name",
        "silver_sample",
        "--limit",
        "5",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", out(&o));
    let project = Project::load(&file).unwrap();
    assert_eq!(project.tests.len(), 1, "re-recording replaces the entry");
    assert_eq!(
        fixtures::read_parquet(&folder.join("batch_0/expected.parquet")).unwrap().count(),
        5
    );
}

/// Writes events `(key, "HH:MM:SS")` on 2026-01-01 as one JSON-lines file.
fn add_events(dir: &Path, name: &str, rows: &[(&str, &str)]) {
    std::fs::create_dir_all(dir).unwrap();
    let text: String = rows
        .iter()
        .map(|(k, t)| format!("{{\"k\":\"{k}\",\"t\":\"2026-01-01T{t}Z\"}}\n"))
        .collect();
    std::fs::write(dir.join(name), text).unwrap();
}

const WINDOWS: &str = r#"format_version = 1
name = "windows"
lakehouse = "lake"

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

[[pipeline.nodes]]
id = "agg"
kind = "aggregate"
group_by = ["k", "window(t, '1 minute')"]
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
to = "agg"

[[pipeline.edges]]
from = "agg"
to = "sink"
"#;

#[test]
fn a_windowed_stream_is_replayed_batch_by_batch_as_the_runtime_runs_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("windows.toml");
    std::fs::write(&file, WINDOWS).unwrap();
    let landing = dir.path().join("lake/landing/events");
    add_events(&landing, "b0.json", &[("a", "12:00:10"), ("a", "12:00:50")]);
    add_events(&landing, "b1.json", &[("a", "12:01:30"), ("a", "12:12:00")]);
    let f = file.to_str().unwrap();
    let o = medallion(&["test", "record", f, "--node", "sink", "--name", "closed_windows"]);
    let text = out(&o);
    assert_eq!(o.status.code(), Some(0), "{text}");
    // two batches of data (2 + 2 rows), then a batch without data once the watermark moved
    assert!(text.contains("in 3 micro-batch(es)"), "{text}");
    assert!(text.contains("expected output: 0 + 0 + 2 row(s)"), "{text}");
    let o = medallion(&["test", f]);
    assert_eq!(o.status.code(), Some(0), "{}", out(&o));
    // the same rows through the real runtime (one file per micro-batch) give the same table
    let o = medallion(&["run", f, "--available-now"]);
    assert!(o.status.success(), "{}", out(&o));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let table = rt.block_on(crate::common::query(
        &dir.path().join("lake/gold/counts"),
        "SELECT k, \"window\", n FROM t ORDER BY \"window\"",
    ));
    let project = Project::load(&file).unwrap();
    let folder = fixtures::test_dir(&file, &project.tests[0]);
    let expected = fixtures::read_parquet(&folder.join("batch_2/expected.parquet")).unwrap();
    let lines = |t: String| {
        let mut l: Vec<String> = t.lines().map(str::to_owned).collect();
        l.sort();
        l
    };
    assert_eq!(
        lines(crate::common::pretty(&table)),
        lines(crate::common::pretty(&expected.batches))
    );
    assert!(
        crate::common::pretty(&table)
            .contains("| a | {start: 2026-01-01T12:00:00Z, end: 2026-01-01T12:01:00Z} | 2 |")
    );
    // a changed aggregate fails in the batch that emits, naming the column
    std::fs::write(
        &file,
        std::fs::read_to_string(&file).unwrap().replace("count(*) AS n", "sum(2) AS n"),
    )
    .unwrap();
    let o = medallion(&["test", f]);
    let text = out(&o);
    assert_eq!(o.status.code(), Some(1), "{text}");
    assert!(text.contains("micro-batch 2:"), "{text}");
    assert!(text.contains("column `n`: expected 2, got 4"), "{text}");
    assert!(!text.contains("micro-batch 0:"), "batch 0 outputs nothing either way: {text}");
}

#[test]
fn property_assertions_fail_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let file = copy_example("users_batch", dir.path());
    let text = std::fs::read_to_string(&file).unwrap();
    let project = Project::load(&file).unwrap();
    let t = project.tests.iter().find(|t| t.node.as_str() == "domain_columns").unwrap();
    let mut with_rules = t.clone();
    with_rules.compare_rows = false;
    with_rules.row_count = Some(999);
    with_rules.not_null = vec!["user_uid".into()];
    with_rules.unique = vec!["source_system".into()];
    with_rules.rules = vec![
        medallion::model::Rule { name: "valid_id".into(), condition: "user_id IS NOT NULL".into() },
        medallion::model::Rule { name: "adults".into(), condition: "user_id > 1000000".into() },
    ];
    let text = medallion::model::pipeline_test::upsert_test_block(&text, &with_rules, &[]).unwrap();
    std::fs::write(&file, text).unwrap();
    let o = medallion(&["test", file.to_str().unwrap(), "--name", &t.name]);
    let text = out(&o);
    assert_eq!(o.status.code(), Some(1), "{text}");
    assert!(text.contains("assertion row_count = 999: the node output"), "{text}");
    assert!(
        text.contains("assertion unique (source_system): 1 key(s) occur more than once"),
        "{text}"
    );
    assert!(text.contains("assertion rule `adults` (user_id > 1000000):"), "{text}");
    assert!(!text.contains("rule `valid_id`"), "a rule that holds is not listed: {text}");
    assert!(!text.contains("not_null"), "{text}");
}

mod app {
    use std::path::PathBuf;

    use egui_kittest::Harness;
    use egui_kittest::kittest::Queryable as _;
    use medallion::model::NodeId;
    use medallion::model::node::NodeKind;
    use medallion::ui::app::{BottomTab, MedallionApp};

    use super::*;
    use crate::ui::wait_until;

    fn harness(path: PathBuf) -> Harness<'static, MedallionApp> {
        Harness::builder()
            .with_size([1400.0, 900.0])
            .with_max_steps(50)
            .build_eframe(move |cc| MedallionApp::new(cc, Some(path)).expect("app starts"))
    }

    fn passed(app: &MedallionApp, name: &str) -> Option<bool> {
        app.tests.results.get(name).map(|r| r.passed())
    }

    #[test]
    fn tests_tab_reruns_after_an_edit_shows_the_diff_accepts_and_records_from_a_preview() {
        let dir = tempfile::tempdir().unwrap();
        let file = copy_example("users_batch", dir.path());
        let text = std::fs::read_to_string(&file).unwrap();
        std::fs::write(&file, text.replace("lakehouse = \"../lakehouse\"", "lakehouse = \"lake\""))
            .unwrap();
        let lake = dir.path().join("lake");
        let o = medallion(&["demo-data", lake.to_str().unwrap(), "--users", "40", "--files", "1"]);
        assert!(o.status.success(), "{}", out(&o));
        let o = medallion(&["run", file.to_str().unwrap()]);
        assert!(o.status.success(), "{}", out(&o));
        let project = Project::load(&file).unwrap();
        let silver = project.tests.iter().find(|t| t.node.as_str() == "domain_columns").unwrap();
        let name = silver.name.clone();

        let mut h = harness(file.clone());
        // the tests run in the background once the project is open
        wait_until(&mut h, "the first test run", |a| a.tests.runs_finished >= 1);
        assert_eq!(passed(h.state(), &name), Some(true), "{}", h.state().tests.message);
        h.state_mut().tab = 1; // silver_users
        h.run_steps(3);
        h.get_by_label("✔ 1 test");
        // an edit re-runs them (debounced); the badge turns red
        let p = h
            .state_mut()
            .doc
            .project
            .pipelines
            .iter_mut()
            .find(|p| p.name == "silver_users")
            .unwrap();
        let node = p.nodes.iter_mut().find(|n| n.id.as_str() == "domain_columns").unwrap();
        let NodeKind::WithColumns(w) = &mut node.kind else { panic!("with_columns") };
        w.columns[0].expr = "'mongodb'".into();
        wait_until(&mut h, "the re-run after the edit", |a| a.tests.runs_finished >= 2);
        assert_eq!(passed(h.state(), &name), Some(false));
        h.get_by_label("✖ 1 of 1 test failing");
        // the Tests tab shows the changed cell; accepting makes it pass again
        h.state_mut().show_tab(BottomTab::Tests);
        h.state_mut().tests.selected = Some(name.clone());
        h.run_steps(3);
        assert!(h.query_all_by_label("source_system").count() >= 1);
        assert!(h.query_all_by_label("mongodb").count() >= 1, "the changed cell is shown");
        h.get_by_label("Accept new output").click();
        wait_until(&mut h, "the run after accepting", |a| {
            a.tests.runs_finished >= 3 && passed(a, &name) == Some(true)
        });
        // record a test from a preview of the gold aggregate
        h.state_mut().tab = 2; // gold_users
        h.state_mut().request_preview(NodeId::new("by_title"));
        wait_until(&mut h, "the preview", |a| a.preview_rows().is_some());
        h.get_by_label("⏺ Record test").click();
        wait_until(&mut h, "the recording", |a| {
            a.doc.project.tests.iter().any(|t| t.name == "by_title")
        });
        wait_until(&mut h, "the new test's run", |a| passed(a, "by_title") == Some(true));
        assert!(dir.path().join("tests/users_batch/by_title/batch_0/expected.parquet").is_file());
        assert!(h.state().doc.dirty(), "the new [[tests]] entry waits for Save");
    }
}
