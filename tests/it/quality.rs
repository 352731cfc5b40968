//! Data quality and schemas (issue #13) on real Delta tables: expectations in batch and
//! stream, the quarantine table, schema enforcement and evolution on Delta writes, Auto
//! Loader schema tracking, batch parse modes, and JSON read the way Spark reads it.

use std::path::Path;

use medallion::engine::{self, RunEvent};
use medallion::model::Project;

use crate::common::*;

#[path = "quality_autoloader.rs"]
mod autoloader;

fn project(toml: &str) -> Project {
    Project::from_toml(toml, Path::new("quality.toml")).unwrap()
}

fn write_file(root: &Path, rel: &str, text: &str) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let tmp = path.with_file_name(format!(".{}", path.file_name().unwrap().to_string_lossy()));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(tmp, path).unwrap();
}

async fn run_all(p: &Project, root: &Path) -> (engine::Result<engine::RunSummary>, Vec<RunEvent>) {
    let events = std::sync::Mutex::new(Vec::new());
    let opts = engine::RunOptions { available_now: true, ..Default::default() };
    let r = engine::run_project(p, root, &opts, &|e| events.lock().unwrap().push(e)).await;
    (r, events.into_inner().unwrap())
}

async fn version(table: &Path) -> i64 {
    engine::delta::open(table).await.unwrap().version().unwrap() as i64
}

/// A pipeline: orders JSON → expectations → bronze/orders, in `mode`.
fn orders_project(mode: &str, rules: &str) -> String {
    format!(
        r#"
format_version = 1
name = "quality"

[[pipeline]]
name = "orders"
mode = "{mode}"
{trigger}

[[pipeline.nodes]]
id = "landing"
kind = "file_source"
path = "landing/orders"
schema = "id BIGINT, amount DOUBLE, customer STRING"
parse_mode = "drop_malformed"

[[pipeline.nodes]]
id = "checks"
kind = "expectations"
rules = [{rules}]

[[pipeline.nodes]]
id = "sink"
kind = "delta_sink"
table = "bronze/orders"

[[pipeline.edges]]
from = "landing"
to = "checks"

[[pipeline.edges]]
from = "checks"
to = "sink"
"#,
        trigger = if mode == "stream" { "trigger = \"available_now\"" } else { "" }
    )
}

const RULES: &str = r#"
  { name = "valid_id", condition = "id IS NOT NULL", on_violation = "drop" },
  { name = "valid_amount", condition = "amount >= 0", on_violation = "drop" },
  { name = "known_customer", condition = "customer <> 'unknown'", on_violation = "warn" },
"#;

const ORDERS: &str = "{\"id\": 1, \"amount\": 10.5, \"customer\": \"ada\"}\n\
{\"amount\": 3.0, \"customer\": \"bob\"}\n\
{\"id\": 3, \"amount\": -1, \"customer\": \"unknown\"}\n\
{\"id\": 4, \"amount\": 7, \"customer\": \"unknown\"}\n\
{not json\n\
{\"id\": 6, \"amount\": 0, \"customer\": \"eve\"}\n";

async fn check_drop_and_warn(mode: &str) {
    let lake = tempfile::tempdir().unwrap();
    let root = lake.path();
    write_file(root, "landing/orders/a.json", ORDERS);
    let p = project(&orders_project(mode, RULES));
    let (r, events) = run_all(&p, root).await;
    r.unwrap();
    let bronze = root.join("bronze/orders");
    assert_eq!(
        pretty(&query(&bronze, "SELECT id, amount, customer FROM t ORDER BY id").await),
        "+----+--------+----------+\n| id | amount | customer |\n+----+--------+----------+\n| 1  | 10.5   | ada      |\n| 4  | 7.0    | unknown  |\n| 6  | 0.0    | eve      |\n+----+--------+----------+"
    );
    // one quarantine table for the malformed line and the expectation drops
    let q = root.join("bronze/orders_quarantine");
    assert_eq!(
        pretty(
            &query(&q, "SELECT raw, reason FROM t WHERE source_node = 'checks' ORDER BY raw").await
        ),
        "+---------------------------------------------+---------------------------------------------------+\n\
| raw                                         | reason                                            |\n\
+---------------------------------------------+---------------------------------------------------+\n\
| {\"amount\":3.0,\"customer\":\"bob\"}             | expectations failed: valid_id                     |\n\
| {\"id\":3,\"amount\":-1.0,\"customer\":\"unknown\"} | expectations failed: valid_amount, known_customer |\n\
+---------------------------------------------+---------------------------------------------------+"
    );
    assert_eq!(
        scalar_i64(&q, "SELECT count(*) FROM t WHERE source_node = 'landing' AND raw = '{not json' AND line = 5").await,
        1
    );
    // counts per rule, in the progress events (stream) or the expectations event (batch)
    let report = events
        .iter()
        .find_map(|e| match e {
            RunEvent::BatchCompleted(p) => p.expectations.get("checks").cloned(),
            RunEvent::ExpectationsChecked { report, .. } => Some(report.clone()),
            _ => None,
        })
        .expect("an expectations report");
    let counts: Vec<(&str, u64, u64)> =
        report.rules.iter().map(|r| (r.name.as_str(), r.passed, r.failed)).collect();
    assert_eq!(counts, [("valid_id", 4, 1), ("valid_amount", 4, 1), ("known_customer", 3, 2)]);
    assert_eq!((report.input_rows, report.output_rows, report.dropped_rows), (5, 3, 2));
    // and in the event log
    let log = std::fs::read_to_string(root.join("_events/orders.jsonl")).unwrap();
    assert!(log.contains("\"valid_amount\""), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expectations_drop_and_warn_in_batch() {
    check_drop_and_warn("batch").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expectations_drop_and_warn_in_stream() {
    check_drop_and_warn("stream").await;
}

async fn check_fail(mode: &str) {
    let lake = tempfile::tempdir().unwrap();
    let root = lake.path();
    let rules = r#"{ name = "positive", condition = "amount > 0", on_violation = "fail" }"#;
    let p = project(&orders_project(mode, rules));
    write_file(root, "landing/orders/a.json", "{\"id\": 1, \"amount\": 1}\n");
    run_all(&p, root).await.0.unwrap();
    let bronze = root.join("bronze/orders");
    let before = version(&bronze).await;
    write_file(
        root,
        "landing/orders/b.json",
        "{\"id\": 2, \"amount\": 2}\n{\"id\": 3, \"amount\": 0, \"customer\": \"zed\"}\n",
    );
    let err = run_all(&p, root).await.0.unwrap_err().to_string();
    assert!(err.contains("node `checks`"), "{err}");
    assert!(err.contains("expectation `positive`"), "{err}");
    assert!(err.contains("failed for 1 of "), "{err}");
    assert!(err.contains(r#"{"id":3,"amount":0.0,"customer":"zed"}"#), "{err}");
    assert_eq!(version(&bronze).await, before, "nothing committed");
    assert_eq!(scalar_i64(&bronze, "SELECT count(*) FROM t").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expectation_fail_stops_before_commit_in_batch() {
    check_fail("batch").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expectation_fail_stops_before_commit_in_stream() {
    check_fail("stream").await;
}

/// A batch pipeline landing/t (JSON, `schema`) → `table` with the sink's extra settings.
fn write_project(schema: &str, sink: &str) -> Project {
    project(&format!(
        r#"
format_version = 1
name = "schemas"

[[pipeline]]
name = "load"

[[pipeline.nodes]]
id = "src"
kind = "file_source"
path = "landing/t"
schema = "{schema}"
parse_mode = "drop_malformed"

[[pipeline.nodes]]
id = "silver_sink"
kind = "delta_sink"
table = "silver/t"
{sink}

[[pipeline.edges]]
from = "src"
to = "silver_sink"
"#
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_enforcement_merge_and_overwrite() {
    let lake = tempfile::tempdir().unwrap();
    let root = lake.path();
    let table = root.join("silver/t");
    write_file(root, "landing/t/a.json", "{\"id\": 1, \"name\": \"a\"}\n");
    run_all(&write_project("id BIGINT, name STRING", ""), root).await.0.unwrap();

    // a new column is refused, naming node, column, types and the option
    write_file(root, "landing/t/a.json", "{\"id\": 2, \"name\": \"b\", \"ssn\": 7}\n");
    let err = run_all(&write_project("id BIGINT, name STRING, ssn BIGINT", ""), root)
        .await
        .0
        .unwrap_err()
        .to_string();
    assert!(err.contains("node `silver_sink`"), "{err}");
    assert!(
        err.contains("column `ssn` (BIGINT in the input) is not in the table silver/t"),
        "{err}"
    );
    assert!(err.contains("schema_mode = \"merge\""), "{err}");
    assert_eq!(version(&table).await, 0);

    // a different type is refused with both types
    let err = run_all(&write_project("id STRING, name STRING", ""), root)
        .await
        .0
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("column `id` is BIGINT in the table silver/t but STRING in the input"),
        "{err}"
    );

    // merge adds the column; old rows read NULL
    run_all(&write_project("id BIGINT, name STRING, ssn BIGINT", "schema_mode = \"merge\""), root)
        .await
        .0
        .unwrap();
    assert_eq!(
        pretty(&query(&table, "SELECT id, name, ssn FROM t ORDER BY id").await),
        "+----+------+-----+\n| id | name | ssn |\n+----+------+-----+\n| 1  | a    |     |\n| 2  | b    | 7   |\n+----+------+-----+"
    );
    // delta-rs (Python) reads the merged table
    let py = std::process::Command::new(dirs_python())
        .arg(repo_path("scripts/interop_check.py"))
        .arg(&table)
        .output()
        .unwrap();
    assert!(py.status.success(), "{}", String::from_utf8_lossy(&py.stderr));
    let report: serde_json::Value = serde_json::from_slice(&py.stdout).unwrap();
    assert_eq!(report["rows"], 2);
    assert_eq!(report["null_ssn"], 1);
    assert_eq!(
        report["columns"],
        serde_json::json!([["id", "long"], ["name", "string"], ["ssn", "long"]])
    );

    // an input without a column writes NULL for it (Delta's rule), narrower types cast up
    write_file(root, "landing/t/a.json", "{\"id\": 3, \"name\": \"c\"}\n");
    run_all(&write_project("id INT, name STRING", ""), root).await.0.unwrap();
    assert_eq!(scalar_i64(&table, "SELECT count(*) FROM t WHERE id = 3 AND ssn IS NULL").await, 1);

    // overwrite with another schema is refused unless schema_mode = "overwrite"
    write_file(root, "landing/t/a.json", "{\"code\": \"x\"}\n");
    let err = run_all(&write_project("code STRING", "mode = \"overwrite\""), root)
        .await
        .0
        .unwrap_err()
        .to_string();
    assert!(err.contains("column `code` (STRING in the input) is not in the table"), "{err}");
    let v = version(&table).await;
    run_all(
        &write_project("code STRING", "mode = \"overwrite\"\nschema_mode = \"overwrite\""),
        root,
    )
    .await
    .0
    .unwrap();
    assert_eq!(version(&table).await, v + 1);
    assert_eq!(
        pretty(&query(&table, "SELECT * FROM t").await),
        "+------+\n| code |\n+------+\n| x    |\n+------+"
    );
}

fn dirs_python() -> String {
    let home = std::env::var("HOME").unwrap();
    format!("{home}/.cache/medallion/venv/bin/python")
}

/// A file stream with a tracked schema (no DDL) → bronze/events with `schema_mode = merge`.
fn tracked_project(evolution: &str) -> Project {
    tracked_project_in("json", evolution)
}

/// [`tracked_project`] for files of `format`.
fn tracked_project_in(format: &str, evolution: &str) -> Project {
    project(&format!(
        r#"
format_version = 1
name = "autoloader"

[[pipeline]]
name = "events"
mode = "stream"

[[pipeline.nodes]]
id = "landing"
kind = "file_source"
path = "landing/events"
format = "{format}"
schema_hints = "id BIGINT"
{evolution}

[[pipeline.nodes]]
id = "sink"
kind = "delta_sink"
table = "bronze/events"
schema_mode = "merge"

[[pipeline.edges]]
from = "landing"
to = "sink"
"#
    ))
}

async fn available_now(p: &Project, root: &Path) -> engine::Result<engine::RunSummary> {
    run_all(p, root).await.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_loader_add_new_columns_stops_then_evolves() {
    let lake = tempfile::tempdir().unwrap();
    let root = lake.path();
    let p = tracked_project("");
    write_file(root, "landing/events/1.json", "{\"id\": 1, \"kind\": \"a\"}\n");
    available_now(&p, root).await.unwrap();
    let table = root.join("bronze/events");
    let schemas = root.join("_checkpoints/events/_schemas/landing");
    let history = engine::sources::schema_tracking::history(&schemas).unwrap();
    assert_eq!(history.len(), 1);
    // inferred as STRING (Auto Loader), the hint pins id
    assert_eq!(history[0].ddl, "id BIGINT, kind STRING");

    write_file(root, "landing/events/2.json", "{\"id\": 2, \"kind\": \"b\", \"genre\": 5}\n");
    let err = available_now(&p, root).await.unwrap_err().to_string();
    assert!(err.contains("new columns `genre` (STRING)"), "{err}");
    assert!(err.contains("Restart the stream"), "{err}");
    let history = engine::sources::schema_tracking::history(&schemas).unwrap();
    assert_eq!(history.last().unwrap().ddl, "id BIGINT, kind STRING, genre STRING");
    assert_eq!(scalar_i64(&table, "SELECT count(*) FROM t").await, 1);

    // the restart reads the evolved schema and the sink merges the column
    available_now(&p, root).await.unwrap();
    assert_eq!(
        pretty(&query(&table, "SELECT id, kind, genre FROM t ORDER BY id").await),
        "+----+------+-------+\n| id | kind | genre |\n+----+------+-------+\n| 1  | a    |       |\n| 2  | b    | 5     |\n+----+------+-------+"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_loader_rescue_fail_and_none_modes() {
    for (mode, expect) in [("rescue", "rescued"), ("failOnNewColumns", "fail"), ("none", "ignored")]
    {
        let lake = tempfile::tempdir().unwrap();
        let root = lake.path();
        let p = tracked_project(&format!("schema_evolution_mode = \"{mode}\""));
        write_file(root, "landing/events/1.json", "{\"id\": 1, \"kind\": \"a\"}\n");
        available_now(&p, root).await.unwrap();
        write_file(root, "landing/events/2.json", "{\"id\": 2, \"kind\": \"b\", \"genre\": 5}\n");
        let result = available_now(&p, root).await;
        let table = root.join("bronze/events");
        match expect {
            "rescued" => {
                result.unwrap();
                let rescued =
                    pretty(&query(&table, "SELECT id, _rescued_data FROM t ORDER BY id").await);
                assert!(
                    rescued.contains(r#"{"_file_path":"#) && rescued.contains(r#""genre":5}"#),
                    "{rescued}"
                );
                assert_eq!(
                    scalar_i64(&table, "SELECT count(*) FROM t WHERE _rescued_data IS NULL").await,
                    1
                );
            }
            "fail" => {
                let err = result.unwrap_err().to_string();
                assert!(err.contains("failOnNewColumns"), "{err}");
                assert!(err.contains("`genre`"), "{err}");
                // a restart fails the same way: the schema did not change
                assert!(available_now(&p, root).await.is_err());
            }
            _ => {
                result.unwrap();
                let cols = pretty(&query(&table, "SELECT * FROM t ORDER BY id").await);
                assert!(!cols.contains("genre"), "{cols}");
                assert_eq!(scalar_i64(&table, "SELECT count(*) FROM t").await, 2);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_source_schema_changed_under_checkpoint_is_refused() {
    let lake = tempfile::tempdir().unwrap();
    let root = lake.path();
    let text = |ddl: &str| {
        format!(
            r#"
format_version = 1
name = "c"

[[pipeline]]
name = "raw"
mode = "stream"

[[pipeline.nodes]]
id = "landing"
kind = "file_source"
path = "landing/raw"
schema = "{ddl}"

[[pipeline.nodes]]
id = "sink"
kind = "delta_sink"
table = "bronze/raw"
schema_mode = "merge"

[[pipeline.edges]]
from = "landing"
to = "sink"
"#
        )
    };
    write_file(root, "landing/raw/1.json", "{\"a\": 1}\n");
    available_now(&project(&text("a BIGINT")), root).await.unwrap();
    let err =
        available_now(&project(&text("a STRING, b STRING")), root).await.unwrap_err().to_string();
    assert!(err.contains("the schema of source `landing` changed"), "{err}");
    assert!(err.contains("column `a` changed from BIGINT to STRING"), "{err}");
    assert!(err.contains("column `b` (STRING) was added"), "{err}");
}

/// A batch CSV or JSON source in `mode` → silver/x.
fn parse_mode_project(format: &str, mode: &str) -> Project {
    project(&format!(
        r#"
format_version = 1
name = "modes"

[[pipeline]]
name = "load"

[[pipeline.nodes]]
id = "src"
kind = "file_source"
path = "landing/x"
format = "{format}"
schema = "id BIGINT, amount DOUBLE"
parse_mode = "{mode}"

[[pipeline.nodes]]
id = "sink"
kind = "delta_sink"
table = "silver/x"
mode = "overwrite"

[[pipeline.edges]]
from = "src"
to = "sink"
"#
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_parse_modes_for_json_and_csv() {
    for (format, file, text) in [
        (
            "json",
            "a.json",
            "{\"id\": 1, \"amount\": 2.5}\n{\"id\": \"x\", \"amount\": 7.5}\n{broken\n{\"id\": 4, \"amount\": 1}\n",
        ),
        ("csv", "a.csv", "id,amount\n1,2.5\nx,1\n3,oops\n4,1\n"),
    ] {
        let lake = tempfile::tempdir().unwrap();
        let root = lake.path();
        write_file(root, &format!("landing/x/{file}"), text);
        let table = root.join("silver/x");

        run_all(&parse_mode_project(format, "drop_malformed"), root).await.0.unwrap();
        assert_eq!(scalar_i64(&table, "SELECT count(*) FROM t").await, 2, "{format}");
        let q = root.join("silver/x_quarantine");
        assert_eq!(
            scalar_i64(&q, "SELECT count(*) FROM t WHERE source_node = 'src'").await,
            2,
            "{format}"
        );
        assert_eq!(
            scalar_i64(&q, "SELECT min(line) FROM t").await,
            if format == "json" { 2 } else { 3 }
        );

        run_all(&parse_mode_project(format, "permissive"), root).await.0.unwrap_err();
        // permissive adds `_rescued_data`: the overwrite into the table without it is refused
        // by schema enforcement; a fresh table takes all four rows
        std::fs::remove_dir_all(&table).unwrap();
        run_all(&parse_mode_project(format, "permissive"), root).await.0.unwrap();
        assert_eq!(scalar_i64(&table, "SELECT count(*) FROM t").await, 4, "{format}");
        assert_eq!(
            scalar_i64(&table, "SELECT count(*) FROM t WHERE _rescued_data IS NOT NULL").await,
            2
        );
        // Spark's partial results: a bad record keeps the fields that read
        let kept = if format == "json" {
            "id IS NULL AND amount = 7.5"
        } else {
            "(id IS NULL AND amount = 1) OR (id = 3 AND amount IS NULL)"
        };
        let sql = format!("SELECT count(*) FROM t WHERE _rescued_data IS NOT NULL AND ({kept})");
        assert_eq!(
            scalar_i64(&table, &sql).await,
            if format == "json" { 1 } else { 2 },
            "{format}"
        );

        // fail_fast: the run stops at the source, before the sink writes anything
        let before = version(&table).await;
        let err = run_all(&parse_mode_project(format, "fail_fast"), root)
            .await
            .0
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("pipeline `load`, node `src`: malformed record in"), "{err}");
        assert!(err.contains(&format!("{file} line")) && err.contains("fail_fast"), "{err}");
        assert_eq!(version(&table).await, before, "{format}");
    }
}

/// The app: run a batch pipeline with expectations, see the badge on the node, open the
/// Quality tab and a rule's quarantined rows.
#[test]
fn quality_badge_tab_and_quarantined_rows_in_the_app() {
    use egui_kittest::Harness;
    use egui_kittest::kittest::Queryable as _;
    use medallion::ui::app::MedallionApp;

    let dir = tempfile::tempdir().unwrap();
    write_file(dir.path(), "landing/orders/a.json", ORDERS);
    let mut p = project(&orders_project("batch", RULES));
    p.lakehouse = ".".into();
    let path = dir.path().join("quality.toml");
    p.save(&path).unwrap();
    let mut h: Harness<'static, MedallionApp> = Harness::builder()
        .with_size([1400.0, 900.0])
        .with_max_steps(50)
        .build_eframe(move |cc| MedallionApp::new(cc, Some(path)).expect("app starts"));
    h.run_steps(3);
    h.get_by_label("▶ Run").click();
    h.run_steps(2);
    crate::ui::wait_until(&mut h, "the expectations report", |a| !a.quality.series.is_empty());
    // 2 of 5 rows passed every rule, 2 were dropped
    assert!(h.query_by_label_contains("✔ 40.0% · 2 dropped").is_some());
    h.get_by_label("Quality").click();
    h.run_steps(3);
    assert!(h.query_by_label("valid_amount").is_some());
    assert!(h.query_by_label("known_customer").is_some());
    // the first drop rule is valid_id: its quarantined rows in the SQL console
    h.get_all_by_label("quarantined rows").next().unwrap().click();
    h.run_steps(2);
    crate::ui::wait_until(&mut h, "the quarantined rows", |a| a.sql.shown_rows().is_some());
    assert_eq!(h.state().sql.shown_rows(), Some(1), "{:?}", h.state().sql.error());
    assert!(h.state().sql.text.contains("bronze.orders_quarantine"), "{}", h.state().sql.text);
}

/// The inspector of a tracked file source shows its schema versions.
#[test]
fn inspector_shows_the_tracked_schema_and_its_history() {
    use egui_kittest::Harness;
    use egui_kittest::kittest::Queryable as _;
    use medallion::model::NodeId;
    use medallion::ui::app::MedallionApp;

    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_owned();
    let mut p = tracked_project("");
    p.lakehouse = ".".into();
    write_file(&root, "landing/events/1.json", "{\"id\": 1, \"kind\": \"a\"}\n");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(available_now(&p, &root)).unwrap();
    write_file(&root, "landing/events/2.json", "{\"id\": 2, \"genre\": \"rock\"}\n");
    rt.block_on(available_now(&p, &root)).unwrap_err();
    let path = root.join("autoloader.toml");
    p.save(&path).unwrap();
    let mut h: Harness<'static, MedallionApp> = Harness::builder()
        .with_size([1400.0, 900.0])
        .with_max_steps(50)
        .build_eframe(move |cc| MedallionApp::new(cc, Some(path)).expect("app starts"));
    h.run_steps(3);
    h.state_mut().selected = Some(NodeId::new("landing"));
    h.run_steps(3);
    assert!(h.query_by_label("Tracked schema (Auto Loader)").is_some());
    assert!(h.query_by_label("id BIGINT, kind STRING, genre STRING").is_some());
    assert!(h.query_by_label("id BIGINT, kind STRING").is_some());
    assert!(h.query_by_label_contains("new columns `genre` (STRING)").is_some());
}

/// Validation plans the rules without reading rows: a bad condition or a bad setting is a
/// diagnostic on the Expectations node, naming the rule.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validation_names_the_rule_and_the_problem() {
    let lake = tempfile::tempdir().unwrap();
    let root = lake.path();
    write_file(root, "landing/orders/a.json", ORDERS);
    let rules = r#"{ name = "typo", condition = "amout >= 0", on_violation = "drop" },
                   { name = "typo", condition = "id IS NOT NULL" }"#;
    let p = project(&orders_project("batch", rules));
    let model = medallion::model::validate::validate_project(&p);
    assert!(model.iter().any(|d| d.message == "two rules are named `typo`"), "{model:?}");
    let rules = r#"{ name = "typo", condition = "amout >= 0", on_violation = "drop" }"#;
    let p = project(&orders_project("batch", rules));
    let diags = engine::check_project(&p, root).await;
    let d = diags
        .iter()
        .find(|d| d.node.as_ref().is_some_and(|n| n.as_str() == "checks"))
        .unwrap_or_else(|| panic!("{diags:?}"));
    assert!(d.message.contains("rule `typo`") && d.message.contains("amout"), "{}", d.message);
    assert!(!root.join("bronze/orders").exists(), "validation never writes");
}
