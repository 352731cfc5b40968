//! Interop: an independent Delta reader (the Python `deltalake` package, installed by
//! scripts/setup.sh into a venv) reads what Medallion wrote and agrees with it.

use std::process::Command;

use medallion::engine;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_deltalake_reads_silver_users() {
    let (lake, demo) = demo_lakehouse().await;
    let root = lake.path();
    run(&load_project("projects/users_batch.toml"), root).await.unwrap();
    let silver = root.join("silver/users");

    let out = Command::new(python())
        .arg(repo_path("scripts/interop_check.py"))
        .arg(&silver)
        .output()
        .expect("python runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json report");

    let tables = engine::lakehouse::list_tables(root).await.unwrap();
    let ours = tables.iter().find(|t| t.name == "silver/users").unwrap();
    assert_eq!(report["version"], ours.version);
    assert_eq!(report["rows"], ours.rows.unwrap());
    assert_eq!(report["rows"], USERS);
    assert_eq!(report["distinct_user_id"], USERS);
    assert_eq!(report["null_ssn"], USERS - demo.ssn_rows);

    let table = engine::delta::open(&silver).await.unwrap();
    let schema = table.snapshot().unwrap().snapshot().arrow_schema();
    let our_columns: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    let their_columns: Vec<&str> =
        report["columns"].as_array().unwrap().iter().map(|c| c[0].as_str().unwrap()).collect();
    assert_eq!(their_columns, our_columns);
    let their_type = |name: &str| {
        report["columns"].as_array().unwrap().iter().find(|c| c[0] == name).unwrap()[1]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(their_type("user_birth_date"), "timestamp");
    assert_eq!(their_type("user_id"), "long");
    assert_eq!(their_type("user_skills"), "array<string>");
}
