//! Streaming in the style of Spark's StreamTest: add data, process, check the answer; stop and
//! start; crash at each step boundary; kill the real process at random moments.

use std::path::{Path, PathBuf};

use medallion::engine::stream::{CrashPoint, StreamOptions, run_stream};
use medallion::engine::{self, EngineError};
use medallion::model::Project;

use crate::common::*;

/// users_stream.toml with test-friendly settings.
fn stream_project(edit: impl Fn(String) -> String) -> Project {
    let text = std::fs::read_to_string(repo_path("projects/users_stream.toml")).unwrap();
    let text = text.replace("use_notifications = true", "use_notifications = false");
    Project::from_toml(&edit(text), Path::new("users_stream.toml")).unwrap()
}

/// Writes users `ids` as a JSON-lines file (atomically: hidden name, then rename).
fn add_users_file(root: &Path, name: &str, ids: std::ops::Range<i64>) {
    let dir = root.join("landing/users");
    std::fs::create_dir_all(&dir).unwrap();
    let mut text = String::new();
    for id in ids {
        text.push_str(&format!(
            "{{\"uuid\":\"u{id}\",\"id\":{id},\"first_name\":\"F{id}\",\"last_name\":\"L\",\"date_of_birth\":\"1990-01-02\",\"gender\":\"x\",\"email\":\"e\",\"employment\":{{\"title\":\"T\",\"keySkills\":[\"SQL\"]}}}}\n"
        ));
    }
    let tmp = dir.join(format!(".{name}"));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(tmp, dir.join(name)).unwrap();
}

async fn ids(table: &Path) -> Vec<i64> {
    if !table.join("_delta_log").exists() {
        return Vec::new();
    }
    let col = if table.ends_with("silver/users") { "user_id" } else { "id" };
    let batches = query(table, &format!("SELECT {col} FROM t ORDER BY {col}")).await;
    batches
        .iter()
        .flat_map(|b| {
            b.column(0)
                .as_any()
                .downcast_ref::<arrow::array::Int64Array>()
                .unwrap()
                .values()
                .to_vec()
        })
        .collect()
}

async fn available_now(project: &Project, root: &Path) -> engine::Result<engine::RunSummary> {
    let opts = engine::RunOptions { available_now: true, ..Default::default() };
    engine::run_project(project, root, &opts, &|_| {}).await
}

async fn with_ssn(root: &Path) {
    // the static side of the join
    medallion::engine::demo_data::write_demo_data(
        &root.join("ssn_source"),
        &medallion::engine::demo_data::DemoDataOptions {
            users: 10,
            files: 1,
            seed: 1,
            impressions: 0,
        },
    )
    .await
    .unwrap();
    std::fs::rename(root.join("ssn_source/bronze/ssn"), root.join("bronze_ssn_tmp")).unwrap();
    std::fs::create_dir_all(root.join("bronze")).unwrap();
    std::fs::rename(root.join("bronze_ssn_tmp"), root.join("bronze/ssn")).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_data_process_check_answer_stop_and_start() {
    let lake = tempfile::tempdir().unwrap();
    let root = lake.path();
    with_ssn(root).await;
    let project = stream_project(|t| t);
    add_users_file(root, "a.json", 0..10);
    add_users_file(root, "b.json", 10..20);
    available_now(&project, root).await.unwrap();
    let expected: Vec<i64> = (0..20).collect();
    assert_eq!(ids(&root.join("bronze/users")).await, expected);
    assert_eq!(ids(&root.join("silver/users")).await, expected);

    // nothing new: nothing written, no new version
    available_now(&project, root).await.unwrap();
    assert_eq!(engine::delta::open(&root.join("bronze/users")).await.unwrap().version(), Some(0));

    // new data after a restart: only the new file is read
    add_users_file(root, "c.json", 20..25);
    available_now(&project, root).await.unwrap();
    let expected: Vec<i64> = (0..25).collect();
    assert_eq!(ids(&root.join("bronze/users")).await, expected);
    assert_eq!(ids(&root.join("silver/users")).await, expected);
    // a processed file that changes is not read again (files are remembered by name)
    add_users_file(root, "a.json", 100..101);
    available_now(&project, root).await.unwrap();
    assert_eq!(ids(&root.join("bronze/users")).await, expected);

    // silver: full_name and the stream-static join
    let silver = root.join("silver/users");
    let rows = pretty(
        &query(&silver, "SELECT full_name, ssn IS NOT NULL AS has_ssn FROM t WHERE user_id = 3")
            .await,
    );
    assert!(rows.contains("F3 L"), "{rows}");
    // checkpoint: offsets and commits for batches 0..=2 of bronze
    let cp = root.join("_checkpoints/bronze_users_stream");
    for n in 0..2 {
        assert!(
            cp.join(format!("offsets/{n}")).exists() && cp.join(format!("commits/{n}")).exists()
        );
    }
    assert!(!cp.join("offsets/2").exists(), "runs without new data plan no batch");
    // the event log (outside the checkpoint): one progress event per batch, Spark's fields
    let log = std::fs::read_to_string(root.join("_events/bronze_users_stream.jsonl")).unwrap();
    let progress: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e["event"]["type"] == "batch_completed")
        .map(|e| e["event"].clone())
        .collect();
    assert_eq!(progress.len(), 2);
    let last = progress.last().unwrap();
    assert_eq!(last["batch_id"], 1);
    assert_eq!(last["num_input_rows"], 5);
    assert_eq!(last["sinks"]["bronze_users"], 1);
    assert_eq!(last["sources"]["landing_users"]["offset"]["files"][0]["path"], "c.json");
}

async fn run_with_crash(
    project: &Project,
    pipeline: &str,
    root: &Path,
    crash: Option<(CrashPoint, u64)>,
) -> engine::Result<()> {
    let p = project.pipeline(pipeline).unwrap();
    let mut opts = StreamOptions::new(true);
    opts.crash_at = crash;
    run_stream(project, p, root, &opts, &|_| {}).await.map(|_| ())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_at_each_step_boundary_is_exactly_once() {
    for point in [CrashPoint::AfterOffsets, CrashPoint::AfterSinkCommit] {
        let lake = tempfile::tempdir().unwrap();
        let root = lake.path();
        with_ssn(root).await;
        let project = stream_project(|t| {
            t.replace("max_files_per_trigger = 10", "max_files_per_trigger = 1").replace(
                "table = \"bronze/users\"\n\n",
                "table = \"bronze/users\"\nmax_files_per_trigger = 1\n\n",
            )
        });
        for (i, name) in ["a.json", "b.json", "c.json"].iter().enumerate() {
            let start = i as i64 * 10;
            add_users_file(root, name, start..start + 10);
        }
        for pipeline in ["bronze_users_stream", "silver_users_stream"] {
            // crash in batch 1 (the second file), then restart to the end
            let err = run_with_crash(&project, pipeline, root, Some((point, 1))).await.unwrap_err();
            assert!(matches!(err, EngineError::InjectedCrash(_)), "{err}");
            run_with_crash(&project, pipeline, root, None).await.unwrap();
        }
        let expected: Vec<i64> = (0..30).collect();
        assert_eq!(ids(&root.join("bronze/users")).await, expected, "{point:?}");
        assert_eq!(ids(&root.join("silver/users")).await, expected, "{point:?}");
        // after a crash between the Delta commit and commits/N, the replay wrote nothing new
        let bronze_versions =
            engine::delta::open(&root.join("bronze/users")).await.unwrap().version().unwrap();
        assert_eq!(bronze_versions, 2, "{point:?}: one version per file, none twice");
    }
}

fn bad_lines_file(root: &Path) -> PathBuf {
    add_users_file(root, "good.json", 0..3);
    let dir = root.join("landing/users");
    let path = dir.join("mixed.json");
    std::fs::write(
        &path,
        "{\"uuid\":\"u7\",\"id\":7}\n{\"uuid\":\"u8\",\"id\":\"eight\"}\nnot json at all\n{\"uuid\":\"u9\",\"id\":9}\n",
    )
    .unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_lines_in_each_parse_mode() {
    // drop_malformed: good rows land, bad ones go to the quarantine table with file and line
    let lake = tempfile::tempdir().unwrap();
    let root = lake.path();
    with_ssn(root).await;
    bad_lines_file(root);
    let project = stream_project(|t| t);
    available_now(&project, root).await.unwrap();
    assert_eq!(ids(&root.join("bronze/users")).await, [0, 1, 2, 7, 9]);
    let q = root.join("bronze/users_quarantine");
    let rows = pretty(&query(&q, "SELECT source_node, file, line, raw FROM t ORDER BY line").await);
    assert!(rows.contains("| landing_users | ") && rows.contains("mixed.json"), "{rows}");
    assert!(rows.contains("| 2    | {\"uuid\":\"u8\",\"id\":\"eight\"}"), "{rows}");
    assert!(rows.contains("| 3    | not json at all"), "{rows}");

    // a crash after the batch's writes, before its commit: the replay writes its quarantined
    // records once (the quarantine write is idempotent per batch, like the sink's)
    let lake = tempfile::tempdir().unwrap();
    let root = lake.path();
    with_ssn(root).await;
    bad_lines_file(root);
    let project = stream_project(|t| t);
    let crash = Some((CrashPoint::AfterSinkCommit, 0));
    let err = run_with_crash(&project, "bronze_users_stream", root, crash).await.unwrap_err();
    assert!(matches!(err, EngineError::InjectedCrash(_)));
    run_with_crash(&project, "bronze_users_stream", root, None).await.unwrap();
    let q = root.join("bronze/users_quarantine");
    assert_eq!(scalar_i64(&q, "SELECT count(*) FROM t").await, 2, "quarantined once");
    assert_eq!(ids(&root.join("bronze/users")).await, [0, 1, 2, 7, 9]);

    // permissive: every row kept, the bad ones with _rescued_data
    let lake = tempfile::tempdir().unwrap();
    let root = lake.path();
    with_ssn(root).await;
    bad_lines_file(root);
    let project = stream_project(|t| {
        t.replace("parse_mode = \"drop_malformed\"", "parse_mode = \"permissive\"")
    });
    available_now(&project, root).await.unwrap();
    let bronze = root.join("bronze/users");
    assert_eq!(scalar_i64(&bronze, "SELECT count(*) FROM t").await, 7);
    assert_eq!(
        scalar_i64(&bronze, "SELECT count(*) FROM t WHERE _rescued_data IS NOT NULL").await,
        2
    );
    let rescued = pretty(
        &query(&bronze, "SELECT _rescued_data FROM t WHERE _rescued_data LIKE '%eight%'").await,
    );
    assert!(rescued.contains("\"_line\":2") && rescued.contains("mixed.json"), "{rescued}");
    assert!(!root.join("bronze/users_quarantine").exists());

    // fail_fast: the query stops naming file and line, and commits nothing
    let lake = tempfile::tempdir().unwrap();
    let root = lake.path();
    with_ssn(root).await;
    bad_lines_file(root);
    let project = stream_project(|t| {
        t.replace("parse_mode = \"drop_malformed\"", "parse_mode = \"fail_fast\"")
    });
    let err = available_now(&project, root).await.unwrap_err().to_string();
    assert!(err.contains("node `landing_users`") && err.contains("mixed.json line 2"), "{err}");
    assert!(!root.join("bronze/users/_delta_log").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_written_file_waits_until_complete() {
    let lake = tempfile::tempdir().unwrap();
    let root = lake.path();
    with_ssn(root).await;
    add_users_file(root, "a.json", 0..5);
    let half = root.join("landing/users/b.json");
    std::fs::write(&half, "{\"uuid\":\"u5\",\"id\":5}\n{\"uuid\":\"u6\",\"id\"").unwrap();
    let project = stream_project(|t| t);
    available_now(&project, root).await.unwrap();
    assert_eq!(ids(&root.join("bronze/users")).await, [0, 1, 2, 3, 4]);
    assert!(!root.join("bronze/users_quarantine").exists(), "a half file is not malformed");
    std::fs::write(&half, "{\"uuid\":\"u5\",\"id\":5}\n{\"uuid\":\"u6\",\"id\":6}\n").unwrap();
    available_now(&project, root).await.unwrap();
    assert_eq!(ids(&root.join("bronze/users")).await, [0, 1, 2, 3, 4, 5, 6]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delta_stream_stops_on_change_commits_unless_skipped() {
    let lake = tempfile::tempdir().unwrap();
    let root = lake.path();
    with_ssn(root).await;
    let project = stream_project(|t| t);
    add_users_file(root, "a.json", 0..5);
    available_now(&project, root).await.unwrap();
    // someone overwrites bronze
    let batch = query(&root.join("bronze/users"), "SELECT * FROM t WHERE id < 2").await;
    engine::delta::overwrite_batches(
        &root.join("bronze/users"),
        batch,
        &engine::delta::CommitMeta::tool("test"),
    )
    .await
    .unwrap();
    let err =
        run_with_crash(&project, "silver_users_stream", root, None).await.unwrap_err().to_string();
    assert!(
        err.contains("removes or rewrites data") && err.contains("skip_change_commits"),
        "{err}"
    );
    let skipping = stream_project(|t| {
        t.replace(
            "table = \"bronze/users\"\n\n",
            "table = \"bronze/users\"\nskip_change_commits = true\n\n",
        )
    });
    run_with_crash(&skipping, "silver_users_stream", root, None).await.unwrap();
    assert_eq!(ids(&root.join("silver/users")).await, [0, 1, 2, 3, 4]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changed_source_is_detected_with_how_to_reset() {
    let lake = tempfile::tempdir().unwrap();
    let root = lake.path();
    with_ssn(root).await;
    add_users_file(root, "a.json", 0..5);
    available_now(&stream_project(|t| t), root).await.unwrap();
    let moved =
        stream_project(|t| t.replace("path = \"landing/users\"", "path = \"landing/people\""));
    std::fs::create_dir_all(root.join("landing/people")).unwrap();
    let err = available_now(&moved, root).await.unwrap_err().to_string();
    assert!(err.contains("landing/users") && err.contains("landing/people"), "{err}");
    assert!(err.contains("delete that folder"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generator_once_and_continuous_stop() {
    let lake = tempfile::tempdir().unwrap();
    let root = lake.path();
    let text = r#"
format_version = 1
name = "gen"
[[pipeline]]
name = "gen_bronze"
mode = "stream"
trigger = "100ms"
[[pipeline.nodes]]
id = "gen"
kind = "generator_source"
rows_per_second = 2000
max_rows = 500
seed = 3
[[pipeline.nodes]]
id = "out"
kind = "delta_sink"
table = "bronze/generated"
[[pipeline.edges]]
from = "gen"
to = "out"
"#;
    let project = Project::from_toml(text, Path::new("gen.toml")).unwrap();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let opts = engine::RunOptions { stop: Some(stop_rx), ..Default::default() };
    let run = engine::run_project(&project, root, &opts, &|_| {});
    let stopper = async {
        // runs continuously until stopped; by then all 500 rows are generated
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        stop_tx.send(true).unwrap();
    };
    let (result, ()) = tokio::join!(run, stopper);
    result.unwrap();
    let table = root.join("bronze/generated");
    assert_eq!(scalar_i64(&table, "SELECT count(DISTINCT id) FROM t").await, 500);
    assert_eq!(scalar_i64(&table, "SELECT count(*) FROM t").await, 500);
}

/// Kills `medallion run --available-now` at random moments, restarts it, and checks that
/// bronze and silver end up with every id exactly once.
#[test]
fn sigkill_crash_loop_is_exactly_once() {
    use rand::{Rng, SeedableRng};
    let lake = tempfile::tempdir().unwrap();
    let root = lake.path();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(with_ssn(root));
    let files = 60;
    for f in 0..files {
        add_users_file(root, &format!("part-{f:04}.json"), f * 20..f * 20 + 20);
    }
    let text = std::fs::read_to_string(repo_path("projects/users_stream.toml"))
        .unwrap()
        .replace("max_files_per_trigger = 10", "max_files_per_trigger = 2")
        .replace("use_notifications = true", "use_notifications = false");
    let project = root.join("project.toml");
    std::fs::write(&project, text).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let run = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_medallion"))
            .args([
                "run",
                project.to_str().unwrap(),
                "--lakehouse",
                root.to_str().unwrap(),
                "--available-now",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut kills = 0;
    let mut finished_early = 0;
    let mut next_file = files;
    while kills < 20 {
        let mut child = run();
        std::thread::sleep(std::time::Duration::from_millis(rng.random_range(30..400)));
        match child.try_wait().unwrap() {
            None => {
                child.kill().unwrap(); // SIGKILL
                child.wait().unwrap();
                kills += 1;
            }
            Some(status) => {
                assert!(status.success(), "run failed: {status}");
                finished_early += 1;
                assert!(finished_early < 200, "never got to kill it");
                // more data for the next rounds
                let f = next_file;
                next_file += 1;
                add_users_file(root, &format!("part-{f:04}.json"), f * 20..f * 20 + 20);
            }
        }
    }
    let out = run().wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let total = next_file * 20;
    rt.block_on(async {
        for table in ["bronze/users", "silver/users"] {
            let got = ids(&root.join(table)).await;
            let distinct: std::collections::BTreeSet<i64> = got.iter().copied().collect();
            assert_eq!(got.len() as i64, total, "{table}: rows after {kills} kills");
            assert_eq!(distinct.len() as i64, total, "{table}: duplicates after {kills} kills");
            assert!(
                distinct.iter().copied().eq(0..total),
                "{table}: missing ids after {kills} kills"
            );
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notification_mode_picks_up_a_new_file_before_the_next_interval() {
    let lake = tempfile::tempdir().unwrap();
    let root = lake.path();
    with_ssn(root).await;
    add_users_file(root, "a.json", 0..5);
    // a 60 s trigger: only a file event can start the second batch in time
    let project = stream_project(|t| {
        t.replace("use_notifications = false", "use_notifications = true").replacen(
            "trigger = \"500ms\"",
            "trigger = \"60s\"",
            1,
        )
    });
    let bronze_only =
        engine::RunOptions { pipeline: Some("bronze_users_stream".into()), ..Default::default() };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let opts = engine::RunOptions { stop: Some(stop_rx), ..bronze_only };
    let run = engine::run_project(&project, root, &opts, &|_| {});
    let driver = async {
        let bronze = root.join("bronze/users");
        let wait_for = |n: usize| {
            let bronze = bronze.clone();
            async move {
                for _ in 0..200 {
                    if ids(&bronze).await.len() >= n {
                        return true;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
                false
            }
        };
        assert!(wait_for(5).await, "first batch");
        add_users_file(root, "b.json", 5..9);
        let seen = wait_for(9).await;
        stop_tx.send(true).unwrap();
        seen
    };
    let (result, seen) = tokio::join!(run, driver);
    result.unwrap();
    assert!(seen, "the new file was not picked up from its file event");
    assert_eq!(ids(&root.join("bronze/users")).await, (0..9).collect::<Vec<i64>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merge_sink_in_a_stream_is_idempotent_on_replay() {
    let lake = tempfile::tempdir().unwrap();
    let root = lake.path();
    with_ssn(root).await;
    let project = stream_project(|t| {
        t.replace("max_files_per_trigger = 10", "max_files_per_trigger = 1").replace(
            "table = \"bronze/users\"\nmode = \"append\"",
            "table = \"bronze/users\"\nmode = \"merge\"\nmerge_keys = [\"id\"]",
        )
    });
    add_users_file(root, "a.json", 0..10);
    // the same ids again with other names: updates, not new rows
    let dir = root.join("landing/users");
    let text = std::fs::read_to_string(dir.join("a.json")).unwrap().replace("\"F", "\"G");
    std::fs::write(dir.join("b.json"), text).unwrap();
    let err = run_with_crash(
        &project,
        "bronze_users_stream",
        root,
        Some((CrashPoint::AfterSinkCommit, 1)),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, EngineError::InjectedCrash(_)));
    run_with_crash(&project, "bronze_users_stream", root, None).await.unwrap();
    let bronze = root.join("bronze/users");
    assert_eq!(ids(&bronze).await, (0..10).collect::<Vec<i64>>());
    assert_eq!(scalar_i64(&bronze, "SELECT count(*) FROM t WHERE first_name LIKE 'G%'").await, 10);
    let hist = engine::lakehouse::history(&bronze, None).await.unwrap();
    assert_eq!(hist.len(), 2, "the replayed merge was skipped, not applied twice");
    assert_eq!(hist[0].operation, "MERGE");
}
