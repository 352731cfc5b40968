//! The CLI contract, run as a user runs it: the real binary in a child process.

use std::process::{Command, Output};

use crate::common::repo_path;

fn medallion(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_medallion")).args(args).output().expect("binary runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn demo_data_run_tables_history_preview() {
    let lake = tempfile::tempdir().unwrap();
    let lake_s = lake.path().to_str().unwrap();
    let project = repo_path("projects/users_batch.toml");
    let project = project.to_str().unwrap();

    let o = medallion(&["demo-data", lake_s, "--users", "120", "--files", "2", "--seed", "3"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("wrote 120 users in 2 file(s)"), "{}", stdout(&o));

    let o = medallion(&["validate", project, "--lakehouse", lake_s]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("is valid"), "{}", stdout(&o));

    let o = medallion(&["run", project, "--lakehouse", lake_s]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{out}{}", stderr(&o));
    assert!(
        out.contains(
            "[bronze_users] node `bronze_users`: 120 rows added to bronze/users (Delta version 0)"
        ),
        "{out}"
    );
    assert!(
        out.contains(
            "[silver_users] node `silver_users`: 120 rows added to silver/users (Delta version 0)"
        ),
        "{out}"
    );
    assert!(out.contains("rows/s"), "{out}");

    let o = medallion(&["tables", project, "--lakehouse", lake_s]);
    let out = stdout(&o);
    assert!(o.status.success(), "{}", stderr(&o));
    let line = |name: &str| out.lines().find(|l| l.contains(name)).unwrap_or_default().to_owned();
    let words = |l: String| l.split_whitespace().map(str::to_owned).collect::<Vec<_>>();
    assert_eq!(words(line("silver/users")), ["silver", "silver/users", "0", "120", "1"], "{out}");
    assert_eq!(words(line("bronze/users"))[..4], ["bronze", "bronze/users", "0", "120"], "{out}");
    assert!(line("gold/users_by_title").starts_with("gold"), "{out}");
    assert!(line("bronze/ssn").starts_with("bronze"), "{out}");

    let silver = lake.path().join("silver/users");
    let o = medallion(&["history", silver.to_str().unwrap()]);
    let out = stdout(&o);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(out.contains("WRITE") && out.contains("silver_users/silver_users"), "{out}");
    assert!(out.contains("120 rows added"), "{out}");

    let o = medallion(&[
        "preview",
        project,
        "--lakehouse",
        lake_s,
        "--node",
        "join_ssn",
        "--limit",
        "3",
    ]);
    let out = stdout(&o);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(out.contains("schema: user_uid STRING, user_id BIGINT"), "{out}");
    assert!(out.contains("(3 row(s) shown, limit 3)"), "{out}");

    // the rows the app's monitor counts on every edge, from the CLI (what bench.sh monitor
    // measures); a plain run counts none
    let o = medallion(&["run", project, "--lakehouse", lake_s, "--pipeline", "bronze_users"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stdout(&o).contains("rows per node"), "{}", stdout(&o));
    let o = medallion(&[
        "run",
        project,
        "--lakehouse",
        lake_s,
        "--pipeline",
        "bronze_users",
        "--meter-edges",
    ]);
    let out = stdout(&o);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(out.contains("[bronze_users] rows per node: bronze_users 120, raw_users 120"), "{out}");
}

#[test]
fn failures_exit_non_zero_with_the_node() {
    let lake = tempfile::tempdir().unwrap();
    let lake_s = lake.path().to_str().unwrap();
    let project = repo_path("projects/users_batch.toml");
    let project = project.to_str().unwrap();

    // no landing data: the file source node is named, and the fix
    let o = medallion(&["run", project, "--lakehouse", lake_s]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains("node `raw_users`") && err.contains("demo-data"), "{err}");

    let o = medallion(&["validate", project, "--lakehouse", lake_s]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("node `raw_users`"), "{}", stdout(&o));

    // a corrupt project file
    let bad = lake.path().join("bad.toml");
    std::fs::write(&bad, "format_version = 1\nname = \"x\"\n[[pipeline]]\nname = 3\n").unwrap();
    let o = medallion(&["validate", bad.to_str().unwrap()]);
    assert_ne!(o.status.code(), Some(0));
    assert!(stderr(&o).contains("line 4"), "{}", stderr(&o));

    // an unknown node for preview
    let o = medallion(&["preview", project, "--lakehouse", lake_s, "--node", "nope"]);
    assert_ne!(o.status.code(), Some(0));
    assert!(stderr(&o).contains("no node `nope`"), "{}", stderr(&o));

    // history of a path that is not a table
    let o = medallion(&["history", lake_s]);
    assert_ne!(o.status.code(), Some(0));
    assert!(stderr(&o).contains("no Delta table at"), "{}", stderr(&o));
}
