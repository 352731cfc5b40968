//! Shared set-up: a temp lakehouse with the demo data, project loading, table reading.

use std::path::{Path, PathBuf};

use arrow::array::RecordBatch;
use medallion::engine::demo_data::{DemoDataOptions, write_demo_data};
use medallion::engine::{self, RunOptions, RunSummary};
use medallion::model::Project;

pub const USERS: u64 = 300;

/// The clone the tests run from: cargo sets CARGO_MANIFEST_DIR when it runs them, and that
/// beats the path baked in at compile time when a shared target dir was built from another clone.
pub fn repo_path(rel: &str) -> PathBuf {
    let root = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    root.join(rel)
}

pub fn load_project(rel: &str) -> Project {
    Project::load(&repo_path(rel)).expect("project loads")
}

/// A temp dir with the demo data set (USERS users, 3 files, seed 7).
pub async fn demo_lakehouse() -> (tempfile::TempDir, medallion::engine::demo_data::DemoDataSummary)
{
    let dir = tempfile::tempdir().expect("tempdir");
    let summary = write_demo_data(
        dir.path(),
        &DemoDataOptions { users: USERS, files: 3, seed: 7, impressions: 2000 },
    )
    .await
    .expect("demo data");
    (dir, summary)
}

pub async fn run(project: &Project, root: &Path) -> engine::Result<RunSummary> {
    engine::run_project(project, root, &RunOptions::default(), &|_| {}).await
}

/// Runs SQL over the Delta table at `path` (registered as `t`), returning all batches.
pub async fn query(path: &Path, sql: &str) -> Vec<RecordBatch> {
    let ctx = engine::plan::session_context();
    let table = engine::delta::open(path).await.expect("table opens");
    ctx.register_table("t", table.table_provider().await.expect("provider")).expect("register");
    ctx.sql(sql).await.expect("sql").collect().await.expect("collect")
}

/// A single i64 from `SELECT count(*) ...`-style SQL.
pub async fn scalar_i64(path: &Path, sql: &str) -> i64 {
    let batches = query(path, sql).await;
    let col = batches[0].column(0);
    arrow::compute::cast(col, &arrow::datatypes::DataType::Int64)
        .expect("cast")
        .as_any()
        .downcast_ref::<arrow::array::Int64Array>()
        .expect("i64")
        .value(0)
}

pub fn pretty(batches: &[RecordBatch]) -> String {
    arrow::util::pretty::pretty_format_batches(batches).expect("pretty").to_string()
}

/// The venv's Python, with the independent `deltalake` reader (installed by scripts/setup.sh).
pub fn python() -> PathBuf {
    let venv = std::env::var("MEDALLION_VENV").map(PathBuf::from).unwrap_or_else(|_| {
        PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/medallion/venv")
    });
    let py = venv.join("bin/python");
    assert!(
        py.exists(),
        "{} is missing: run scripts/setup.sh (it installs the Python deltalake reader)",
        py.display()
    );
    py
}

/// Runs the `medallion` binary; returns (exit code, stdout, stderr).
pub fn medallion_cli(args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_medallion"))
        .args(args)
        .output()
        .expect("medallion runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
