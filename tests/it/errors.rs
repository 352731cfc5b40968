//! Bad input gives a clear message that names the node (or the line), never a panic.

use medallion::engine;
use medallion::model::{Project, Severity, validate};

use crate::common::*;

fn with_edit(from: &str, to: &str) -> Project {
    let text = std::fs::read_to_string(repo_path("projects/users_batch.toml")).unwrap();
    assert!(text.contains(from), "fixture text `{from}` not found");
    Project::from_toml(&text.replace(from, to), std::path::Path::new("edited.toml")).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_column_is_pinned_on_its_node() {
    let (lake, _) = demo_lakehouse().await;
    let project = with_edit("\"gender\",\n", "\"gendre\",\n");
    let diags = engine::check_project(&project, lake.path()).await;
    let d = diags
        .iter()
        .find(|d| d.severity == Severity::Error)
        .unwrap_or_else(|| panic!("no error in {diags:?}"));
    assert_eq!(d.node.as_ref().map(|n| n.as_str()), Some("typed_users"), "{d}");
    assert!(d.message.contains("gendre"), "{d}");
    // downstream nodes do not repeat the error
    assert_eq!(diags.iter().filter(|d| d.severity == Severity::Error).count(), 1, "{diags:?}");

    let err = run(&project, lake.path()).await.unwrap_err();
    assert_eq!(err.node().map(|n| n.as_str()), Some("typed_users"));
    assert!(err.to_string().contains("node `typed_users`"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_table_names_node_and_fix() {
    let (lake, _) = demo_lakehouse().await;
    let project = with_edit("table = \"bronze/ssn\"", "table = \"bronze/ssn_missing\"");
    let diags = engine::check_project(&project, lake.path()).await;
    let d = diags.iter().find(|d| d.severity == Severity::Error).expect("an error");
    assert_eq!(d.node.as_ref().map(|n| n.as_str()), Some("ssn_in"), "{d}");
    assert!(d.message.contains("no Delta table at"), "{d}");
    assert!(d.message.contains("ssn_missing"), "{d}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_landing_folder_names_node() {
    let lake = tempfile::tempdir().unwrap();
    let project = load_project("projects/users_batch.toml");
    let err = run(&project, lake.path()).await.unwrap_err();
    assert_eq!(err.node().map(|n| n.as_str()), Some("raw_users"), "{err}");
    assert!(err.to_string().contains("demo-data"), "{err}");
}

#[test]
fn corrupt_project_file_names_line() {
    let text = std::fs::read_to_string(repo_path("projects/users_batch.toml")).unwrap();
    // a truncated file
    let at = text.find("[[pipeline.nodes]]\nid = \"typed_users\"").unwrap();
    let cut = &text[..at + 6];
    let err = Project::from_toml(cut, std::path::Path::new("cut.toml")).unwrap_err().to_string();
    assert!(err.starts_with("cut.toml: line "), "{err}");
    // an unknown node kind
    let bad = text.replacen("kind = \"flatten\"", "kind = \"flaten\"", 1);
    let err = Project::from_toml(&bad, std::path::Path::new("p.toml")).unwrap_err().to_string();
    assert!(err.contains("flaten") && err.contains("line "), "{err}");
    // an edge to a node that does not exist is a diagnostic on the edge's source
    let bad = text.replacen("to = \"typed_users\"", "to = \"typo_users\"", 1);
    let project = Project::from_toml(&bad, std::path::Path::new("p.toml")).unwrap();
    let diags = validate::validate_project(&project);
    assert!(
        diags.iter().any(|d| d.node.as_ref().is_some_and(|n| n.as_str() == "flatten_employment")
            && d.message.contains("typo_users")),
        "{diags:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_schema_ddl_names_node() {
    let (lake, _) = demo_lakehouse().await;
    let project = with_edit("uuid STRING, id BIGINT", "uuid STRING, id BIGNUM(");
    let diags = engine::check_project(&project, lake.path()).await;
    let d = diags.iter().find(|d| d.severity == Severity::Error).expect("an error");
    assert_eq!(d.node.as_ref().map(|n| n.as_str()), Some("raw_users"), "{d}");
    assert!(d.message.contains("schema"), "{d}");
}
