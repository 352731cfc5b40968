//! The node kinds that the example projects do not use, on small real files and tables.

use medallion::engine;
use medallion::model::Project;

use crate::common::*;

const PROJECT: &str = r#"
format_version = 1
name = "kinds"

[[pipeline]]
name = "orders"

[[pipeline.nodes]]
id = "orders_csv"
kind = "file_source"
path = "landing/orders"
format = "csv"
schema = "order_id BIGINT, customer STRING, amount DOUBLE, day STRING"

[[pipeline.nodes]]
id = "customers_parquet"
kind = "file_source"
path = "landing/customers"
format = "parquet"

[[pipeline.nodes]]
id = "big_orders"
kind = "filter"
condition = "amount >= 10"

[[pipeline.nodes]]
id = "latest_per_order"
kind = "deduplicate"
keys = ["order_id"]

[[pipeline.nodes]]
id = "with_customer"
kind = "join"
how = "left"
on = [["customer", "customer"]]

[[pipeline.nodes]]
id = "orders_out"
kind = "delta_sink"
table = "silver/orders"
mode = "append"
partition_by = ["day"]

[[pipeline.edges]]
from = "orders_csv"
to = "big_orders"

[[pipeline.edges]]
from = "big_orders"
to = "latest_per_order"

[[pipeline.edges]]
from = "latest_per_order"
to = "with_customer"
port = "left"

[[pipeline.edges]]
from = "customers_parquet"
to = "with_customer"
port = "right"

[[pipeline.edges]]
from = "with_customer"
to = "orders_out"
"#;

async fn write_inputs(root: &std::path::Path) {
    let orders = root.join("landing/orders");
    std::fs::create_dir_all(&orders).unwrap();
    std::fs::write(
        orders.join("a.csv"),
        "order_id,customer,amount,day\n1,ada,12.5,2026-11-01\n2,alan,3.0,2026-11-01\n1,ada,12.5,2026-11-01\n3,zed,40,2026-11-02\n",
    )
    .unwrap();
    // a half-written temp file is never read
    std::fs::write(orders.join(".b.csv.tmp"), "order_id,customer\n9,").unwrap();
    // customers as Parquet, written through DataFusion
    let ctx = engine::plan::session_context();
    let df = ctx
        .sql("SELECT * FROM (VALUES ('ada', 'UK'), ('alan', 'UK'), ('grace', 'US')) AS c(customer, country)")
        .await
        .unwrap();
    let dir = root.join("landing/customers");
    std::fs::create_dir_all(&dir).unwrap();
    df.write_parquet(
        dir.join("part-0.parquet").to_str().unwrap(),
        datafusion::dataframe::DataFrameWriteOptions::new(),
        None,
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_parquet_filter_dedupe_join_partition_and_time_travel() {
    let lake = tempfile::tempdir().unwrap();
    let root = lake.path();
    write_inputs(root).await;
    let project = Project::from_toml(PROJECT, std::path::Path::new("kinds.toml")).unwrap();
    assert!(engine::check_project(&project, root).await.is_empty());

    run(&project, root).await.unwrap();
    let table = root.join("silver/orders");
    let rows = pretty(
        &query(&table, "SELECT order_id, customer, amount, day, country FROM t ORDER BY order_id")
            .await,
    );
    let expected = "\
+----------+----------+--------+------------+---------+
| order_id | customer | amount | day        | country |
+----------+----------+--------+------------+---------+
| 1        | ada      | 12.5   | 2026-11-01 | UK      |
| 3        | zed      | 40.0   | 2026-11-02 |         |
+----------+----------+--------+------------+---------+";
    assert_eq!(rows, expected);
    // partitioned by day: one folder per value
    assert!(table.join("day=2026-11-01").is_dir() && table.join("day=2026-11-02").is_dir());

    // append again: version 1 holds twice the rows; version 0 still reads as before
    run(&project, root).await.unwrap();
    assert_eq!(scalar_i64(&table, "SELECT count(*) FROM t").await, 4);
    let travel = PROJECT.replace(
        "[[pipeline.nodes]]\nid = \"orders_csv\"",
        "[[pipeline.nodes]]\nid = \"v0\"\nkind = \"delta_source\"\ntable = \"silver/orders\"\nversion = 0\n\n[[pipeline.nodes]]\nid = \"orders_csv\"",
    );
    let travel = Project::from_toml(&travel, std::path::Path::new("t.toml")).unwrap();
    let p = &travel.pipelines[0];
    let preview = engine::preview_node(&travel, p, &"v0".into(), root, 100).await.unwrap();
    assert_eq!(preview.rows(), 2, "version 0 had two rows");
    let latest = Project::from_toml(
        &PROJECT.replace(
            "[[pipeline.nodes]]\nid = \"orders_csv\"",
            "[[pipeline.nodes]]\nid = \"now\"\nkind = \"delta_source\"\ntable = \"silver/orders\"\n\n[[pipeline.nodes]]\nid = \"orders_csv\"",
        ),
        std::path::Path::new("t.toml"),
    )
    .unwrap();
    let preview = engine::preview_node(&latest, &latest.pipelines[0], &"now".into(), root, 100)
        .await
        .unwrap();
    assert_eq!(preview.rows(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_is_inferred_when_not_declared() {
    let (lake, _) = demo_lakehouse().await;
    let text = std::fs::read_to_string(repo_path("projects/users_batch.toml")).unwrap();
    let start = text.find("schema = \"\"\"").unwrap();
    let end = start + text[start..].find("\"\"\"\n\n").unwrap() + 4;
    let inferred = format!("{}{}", &text[..start], &text[end..]);
    let project = Project::from_toml(&inferred, std::path::Path::new("p.toml")).unwrap();
    let p = project.pipeline("bronze_users").unwrap();
    let preview =
        engine::preview_node(&project, p, &"raw_users".into(), lake.path(), 3).await.unwrap();
    let employment = preview.schema.field_with_name("employment").unwrap();
    assert_eq!(
        engine::schema::type_ddl(employment.data_type()),
        "STRUCT<keySkills: ARRAY<STRING>, title: STRING>"
    );
    assert_eq!(preview.rows(), 3);
}
