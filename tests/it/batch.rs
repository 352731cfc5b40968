//! The users bronze → silver → gold batch pipeline, end to end.

use arrow::datatypes::DataType;
use medallion::engine::{self, delta, schema};
use medallion::model::node::{DeltaSink, DeltaSource, NodeKind, WriteMode};
use medallion::model::{Node, Pipeline, Project};

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_batch_builds_bronze_silver_gold() {
    let (lake, demo) = demo_lakehouse().await;
    let root = lake.path();
    let project = load_project("projects/users_batch.toml");
    let summary = run(&project, root).await.expect("run");
    assert_eq!(summary.pipelines, 3);

    // bronze: every raw record
    let bronze = root.join("bronze/users");
    assert_eq!(scalar_i64(&bronze, "SELECT count(*) FROM t").await, USERS as i64);

    // silver: the exact columns and types of the seed
    let silver = root.join("silver/users");
    let table = delta::open(&silver).await.unwrap();
    let arrow_schema = table.snapshot().unwrap().snapshot().arrow_schema();
    let cols: Vec<(String, String)> = arrow_schema
        .fields()
        .iter()
        .map(|f| (f.name().clone(), schema::type_ddl(f.data_type())))
        .collect();
    let expected = [
        ("user_uid", "STRING"),
        ("user_id", "BIGINT"),
        ("first_name", "STRING"),
        ("last_name", "STRING"),
        ("user_birth_date", "TIMESTAMP"),
        ("gender", "STRING"),
        ("user_title", "STRING"),
        ("user_skills", "ARRAY<STRING>"),
        ("ssn", "STRING"),
        ("source_system", "STRING"),
        ("event_time", "TIMESTAMP"),
        ("is_active", "BOOLEAN"),
    ];
    let expected: Vec<(String, String)> =
        expected.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
    assert_eq!(cols, expected);

    // one row per distinct user; users without an ssn are kept with a null ssn
    assert_eq!(scalar_i64(&silver, "SELECT count(*) FROM t").await, USERS as i64);
    assert_eq!(scalar_i64(&silver, "SELECT count(DISTINCT user_id) FROM t").await, USERS as i64);
    let without_ssn = USERS as i64 - demo.ssn_rows as i64;
    assert!(without_ssn > 0, "the demo data leaves some users without ssn");
    assert_eq!(scalar_i64(&silver, "SELECT count(*) FROM t WHERE ssn IS NULL").await, without_ssn);
    assert_eq!(
        scalar_i64(&silver, "SELECT count(*) FROM t WHERE source_system = 'mongo' AND is_active")
            .await,
        USERS as i64
    );
    // date_of_birth strings became timestamps at midnight UTC
    let first =
        query(&silver, "SELECT CAST(user_birth_date AS VARCHAR) AS b FROM t WHERE user_id = 1000")
            .await;
    assert!(pretty(&first).contains("T00:00:00"), "{}", pretty(&first));

    // gold: counts add up to silver
    let gold = root.join("gold/users_by_title");
    assert_eq!(scalar_i64(&gold, "SELECT sum(users) FROM t").await, USERS as i64);
    assert_eq!(scalar_i64(&gold, "SELECT sum(users_with_ssn) FROM t").await, demo.ssn_rows as i64);

    // commit metadata names project, pipeline and node
    let hist = engine::lakehouse::history(&silver, None).await.unwrap();
    assert_eq!(hist[0].version, 0);
    assert_eq!(hist[0].pipeline.as_deref(), Some("silver_users"));
    assert_eq!(hist[0].node.as_deref(), Some("silver_users"));
    assert_eq!(hist[0].project.as_deref(), Some("users_batch"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicates_are_removed_and_overwrite_replaces_rows() {
    let (lake, _) = demo_lakehouse().await;
    let root = lake.path();
    let project = load_project("projects/users_batch.toml");
    run(&project, root).await.expect("first run");

    // the same records arrive again in another file
    let landing = root.join("landing/users");
    std::fs::copy(landing.join("part-00000.json"), landing.join("part-00009.json")).unwrap();
    run(&project, root).await.expect("second run");

    let bronze = root.join("bronze/users");
    let silver = root.join("silver/users");
    let bronze_rows = scalar_i64(&bronze, "SELECT count(*) FROM t").await;
    assert!(bronze_rows > USERS as i64, "bronze keeps raw duplicates: {bronze_rows}");
    // overwrite made version 1 whose rows replace version 0's
    assert_eq!(delta::open(&silver).await.unwrap().version(), Some(1));
    assert_eq!(scalar_i64(&silver, "SELECT count(*) FROM t").await, USERS as i64);
    let hist = engine::lakehouse::history(&silver, None).await.unwrap();
    assert_eq!(hist.len(), 2);
    assert_eq!(hist[0].version, 1);
    assert_eq!(hist[0].operation, "WRITE");
    assert_eq!(hist[0].parameters.get("mode").and_then(|m| m.as_str()), Some("Overwrite"));
}

/// A pipeline that merges `source` into `target` by `id`.
fn merge_project(root: &std::path::Path) -> Project {
    let mut p = Pipeline::new("upsert");
    p.add_node(Node::new(
        "changes",
        NodeKind::DeltaSource(DeltaSource { table: "bronze/changes".into(), ..Default::default() }),
    ))
    .unwrap();
    p.add_node(Node::new(
        "target",
        NodeKind::DeltaSink(DeltaSink {
            table: "silver/target".into(),
            mode: WriteMode::Merge,
            merge_keys: vec!["id".into()],
            ..Default::default()
        }),
    ))
    .unwrap();
    p.connect(&"changes".into(), &"target".into(), "in").unwrap();
    let mut project = Project::new("merge_test");
    project.lakehouse = root.display().to_string();
    project.pipelines.push(p);
    project
}

async fn write_changes(root: &std::path::Path, rows: &[(i64, &str)]) {
    use arrow::array::{Int64Array, RecordBatch, StringArray};
    use arrow::datatypes::{Field, Schema};
    use std::sync::Arc;
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
    ]));
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(rows.iter().map(|r| r.0).collect::<Vec<_>>())),
            Arc::new(StringArray::from(rows.iter().map(|r| r.1).collect::<Vec<_>>())),
        ],
    )
    .unwrap();
    delta::overwrite_batches(
        &root.join("bronze/changes"),
        vec![batch],
        &delta::CommitMeta::tool("test"),
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merge_updates_matched_rows_and_inserts_new_ones() {
    let lake = tempfile::tempdir().unwrap();
    let root = lake.path();
    let project = merge_project(root);
    write_changes(root, &[(1, "ada"), (2, "grace"), (3, "alan")]).await;
    run(&project, root).await.expect("first merge creates the table");
    write_changes(root, &[(2, "grace hopper"), (4, "edsger")]).await;
    let events = std::sync::Mutex::new(Vec::new());
    engine::run_project(&project, root, &Default::default(), &|e| events.lock().unwrap().push(e))
        .await
        .expect("second merge");
    let events = events.into_inner().unwrap();

    let target = root.join("silver/target");
    let rows = pretty(&query(&target, "SELECT id, name FROM t ORDER BY id").await);
    let expected = "\
+----+--------------+
| id | name         |
+----+--------------+
| 1  | ada          |
| 2  | grace hopper |
| 3  | alan         |
| 4  | edsger       |
+----+--------------+";
    assert_eq!(rows, expected);
    let committed = events
        .iter()
        .find_map(|e| match e {
            engine::RunEvent::SinkCommitted { version, rows_added, rows_updated, .. } => {
                Some((*version, *rows_added, *rows_updated))
            }
            _ => None,
        })
        .expect("a commit event");
    assert_eq!(committed, (1, 1, 1), "version 1: one row inserted, one updated");
    let hist = engine::lakehouse::history(&target, None).await.unwrap();
    assert_eq!(hist[0].operation, "MERGE");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preview_never_writes() {
    let (lake, _) = demo_lakehouse().await;
    let root = lake.path();
    let project = load_project("projects/users_batch.toml");
    let pipeline = project.pipeline("bronze_users").unwrap();
    let preview =
        engine::preview_node(&project, pipeline, &"bronze_users".into(), root, 5).await.unwrap();
    assert_eq!(preview.rows(), 5);
    assert!(!root.join("bronze/users/_delta_log").exists(), "a preview must not write");
    // a silver node previews before bronze exists: planned from what bronze will hold
    let silver = project.pipeline("silver_users").unwrap();
    let p = engine::preview_node(&project, silver, &"typed_users".into(), root, 5).await.unwrap();
    assert_eq!(p.schema.field(0).name(), "user_uid");
    assert_eq!(p.rows(), 0);
    assert!(!root.join("bronze/users/_delta_log").exists());
}

/// `MEDALLION_MEMORY_LIMIT` caps DataFusion's operators. On 200,000 users a 4 MB cap holds
/// neither the ssn join's build side (~4 MB per partition, plus its hash table: the run failed
/// with "Resources exhausted" before the Grace join) nor the dedupe's keys in one piece: both
/// split into spill files by key hash, and silver holds the same rows as without a cap. A cap
/// too small for even one part's hash table fails the run naming the pool, silver unwritten.
#[test]
fn memory_limit_caps_the_plans() {
    let lake = tempfile::tempdir().unwrap();
    let root = lake.path().to_str().unwrap();
    let (code, out, err) = medallion_cli(&["demo-data", root, "--users", "200000", "--files", "4"]);
    assert_eq!(code, 0, "{out}{err}");
    let project = repo_path("projects/users_batch.toml");
    let run = |limit: Option<&str>| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_medallion"));
        cmd.args(["run", project.to_str().unwrap(), "--lakehouse", root]);
        if let Some(limit) = limit {
            cmd.env("MEDALLION_MEMORY_LIMIT", limit);
        }
        let out = cmd.output().expect("medallion runs");
        (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (ok, err) = run(Some("64k"));
    assert!(!ok && err.contains("Resources exhausted") && err.contains("pool_size"), "{err}");
    assert!(!lake.path().join("silver/users/_delta_log").exists(), "silver not written");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let silver = lake.path().join("silver/users");
    // every column of every row, as one figure per column (200,000 rows would not print);
    // `id_ssn` ties each ssn to its user: a join that matched the wrong rows changes it
    let fingerprint = || {
        let sql = "SELECT count(*) AS n, count(DISTINCT user_uid) AS uids, sum(user_id) AS ids, \
                   count(ssn) AS ssns, \
                   sum(user_id * CAST(replace(ssn, '-', '') AS BIGINT) % 1000003) AS id_ssn, \
                   count(DISTINCT concat_ws('|', user_uid, \
                   CAST(user_id AS STRING), first_name, last_name, \
                   CAST(user_birth_date AS STRING), gender, user_title, \
                   array_to_string(user_skills, ','), ssn)) AS whole_rows FROM t";
        pretty(&rt.block_on(query(&silver, sql)))
    };
    let (ok, err) = run(None);
    assert!(ok, "{err}");
    let whole = fingerprint();
    assert!(whole.contains("| 200000 | 200000 |"), "{whole}");
    let (ok, err) = run(Some("4m"));
    assert!(ok, "{err}");
    assert_eq!(fingerprint(), whole, "the same rows under a 4 MB cap");
}
