//! Every example project loads, validates, round-trips and runs on the demo data.

use medallion::model::{Project, Severity, validate};

use crate::common::*;

fn example_projects() -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(repo_path("projects"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(!files.is_empty());
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_example_project_loads_validates_and_round_trips() {
    let (lake, _) = demo_lakehouse().await;
    for path in example_projects() {
        let project = Project::load(&path).unwrap();
        let diags = validate::validate_project(&project);
        assert!(
            diags.iter().all(|d| d.severity != Severity::Error),
            "{}: {diags:?}",
            path.display()
        );
        let engine_diags = medallion::engine::check_project(&project, lake.path()).await;
        assert!(engine_diags.is_empty(), "{}: {engine_diags:?}", path.display());
        let text = project.to_toml().unwrap();
        assert_eq!(Project::from_toml(&text, &path).unwrap(), project, "{}", path.display());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_batch_example_project_runs() {
    for path in example_projects() {
        let project = Project::load(&path).unwrap();
        if project.pipelines.iter().any(|p| p.mode != medallion::model::PipelineMode::Batch) {
            continue; // streams are run by the streaming tests
        }
        let (lake, _) = demo_lakehouse().await;
        let summary = run(&project, lake.path()).await.unwrap();
        assert_eq!(summary.pipelines, project.pipelines.len(), "{}", path.display());
        assert!(summary.rows_written > 0, "{}", path.display());
    }
}

/// The demo the app opens: with availableNow, the generator lands one second of users in
/// bronze, silver picks them up (joined with ssn), and gold aggregates them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_project_runs_bronze_silver_gold_available_now() {
    let project = load_project("projects/demo.toml");
    let (lake, _) = demo_lakehouse().await;
    let root = lake.path();
    let opts = medallion::engine::RunOptions { available_now: true, ..Default::default() };
    let summary = medallion::engine::run_project(&project, root, &opts, &|_| {}).await.unwrap();
    assert_eq!(summary.pipelines, 4);
    // rows_per_second = 200: availableNow takes one second's worth
    assert_eq!(scalar_i64(&root.join("bronze/users"), "SELECT count(*) FROM t").await, 200);
    let silver = root.join("silver/users");
    assert_eq!(scalar_i64(&silver, "SELECT count(DISTINCT user_id) FROM t").await, 200);
    // the generator's first USERS ids are the demo data's, so most of them have an ssn
    let with_ssn = scalar_i64(&silver, "SELECT count(ssn) FROM t").await;
    assert!(with_ssn > 150 && with_ssn < 200, "{with_ssn}");
    let gold = root.join("gold/users_by_title");
    assert_eq!(scalar_i64(&gold, "SELECT sum(users) FROM t").await, 200);
    // the windowed stream: one second of signups keeps its 30-second windows open (the
    // watermark is 10 s behind), so they are in state, and gold has none yet
    let state = root.join("_checkpoints/gold_signups/state/signups_per_title");
    assert!(state.join("1.state.arrow").exists(), "{}", state.display());
    let gold = root.join("gold/signups_per_title");
    assert_eq!(scalar_i64(&gold, "SELECT count(*) FROM t").await, 0);
}
