//! Auto Loader schema tracking for CSV and Parquet file streams (a submodule of `quality`):
//! CSV columns come from the header, Parquet columns from the file; a new column is a new
//! field under each evolution mode, including a restart.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_add_new_columns_stops_then_evolves() {
    let lake = tempfile::tempdir().unwrap();
    let root = lake.path();
    let p = tracked_project_in("csv", "");
    write_file(root, "landing/events/1.csv", "id,kind\n1,a\n");
    available_now(&p, root).await.unwrap();
    let table = root.join("bronze/events");
    let schemas = root.join("_checkpoints/events/_schemas/landing");
    let history = engine::sources::schema_tracking::history(&schemas).unwrap();
    assert_eq!(history.len(), 1);
    // inferred as STRING (Auto Loader without inferColumnTypes), the hint pins id
    assert_eq!(history[0].ddl, "id BIGINT, kind STRING");

    // a new column, in the middle: matched by header name, not position
    write_file(root, "landing/events/2.csv", "id,genre,kind\n2,5,b\n");
    let err = available_now(&p, root).await.unwrap_err().to_string();
    assert!(err.contains("new columns `genre` (STRING)"), "{err}");
    assert!(err.contains("Restart the stream"), "{err}");
    let history = engine::sources::schema_tracking::history(&schemas).unwrap();
    assert_eq!(history.last().unwrap().ddl, "id BIGINT, kind STRING, genre STRING");
    assert_eq!(scalar_i64(&table, "SELECT count(*) FROM t").await, 1);

    // the restart reads the evolved schema and the sink merges the column; a later file
    // without `genre` reads it as NULL
    write_file(root, "landing/events/3.csv", "kind,id\nc,3\n");
    available_now(&p, root).await.unwrap();
    assert_eq!(
        pretty(&query(&table, "SELECT id, kind, genre FROM t ORDER BY id").await),
        "+----+------+-------+\n| id | kind | genre |\n+----+------+-------+\n| 1  | a    |       |\n| 2  | b    | 5     |\n| 3  | c    |       |\n+----+------+-------+"
    );
    assert_eq!(engine::sources::schema_tracking::history(&schemas).unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_rescue_fail_and_none_modes() {
    for mode in ["rescue", "failOnNewColumns", "none"] {
        let lake = tempfile::tempdir().unwrap();
        let root = lake.path();
        let p = tracked_project_in("csv", &format!("schema_evolution_mode = \"{mode}\""));
        write_file(root, "landing/events/1.csv", "id,kind\n1,a\n");
        available_now(&p, root).await.unwrap();
        write_file(root, "landing/events/2.csv", "genre,id,kind\n5,2,b\n,3,c\n");
        let result = available_now(&p, root).await;
        let table = root.join("bronze/events");
        match mode {
            "rescue" => {
                result.unwrap();
                let rows = pretty(
                    &query(&table, "SELECT id, kind, _rescued_data FROM t ORDER BY id").await,
                );
                let file = root.join("landing/events/2.csv");
                let expect = format!(r#"{{"_file_path":"{}","genre":"5"}}"#, file.display());
                assert!(rows.contains(&expect), "{rows}");
                assert!(rows.contains("| 3  | c    |"), "{rows}");
                // rows without a value in the unknown column rescue nothing
                assert_eq!(
                    scalar_i64(&table, "SELECT count(*) FROM t WHERE _rescued_data IS NULL").await,
                    2
                );
                // the restart keeps the schema: nothing new to read, no new version
                available_now(&p, root).await.unwrap();
                assert_eq!(scalar_i64(&table, "SELECT count(*) FROM t").await, 3);
            }
            "failOnNewColumns" => {
                let err = result.unwrap_err().to_string();
                assert!(err.contains("failOnNewColumns"), "{err}");
                assert!(err.contains("`genre`"), "{err}");
                assert!(err.contains("2.csv"), "{err}");
                // a restart fails the same way: the schema did not change
                assert!(available_now(&p, root).await.is_err());
                assert_eq!(scalar_i64(&table, "SELECT count(*) FROM t").await, 1);
            }
            _ => {
                result.unwrap();
                let rows = pretty(&query(&table, "SELECT * FROM t ORDER BY id").await);
                assert!(!rows.contains("genre"), "{rows}");
                assert_eq!(
                    pretty(&query(&table, "SELECT id, kind FROM t ORDER BY id").await),
                    "+----+------+\n| id | kind |\n+----+------+\n| 1  | a    |\n| 2  | b    |\n| 3  | c    |\n+----+------+"
                );
                available_now(&p, root).await.unwrap();
                assert_eq!(scalar_i64(&table, "SELECT count(*) FROM t").await, 3);
            }
        }
    }
}

/// A Parquet file of `id BIGINT, kind STRING` rows, plus `genre INT` when `genre` is given.
fn write_parquet(root: &Path, rel: &str, id: i64, genre: Option<i32>) {
    use arrow::array::{ArrayRef, Int32Array, Int64Array, RecordBatch, StringArray};
    use std::sync::Arc;
    let mut cols: Vec<(&str, ArrayRef)> = vec![
        ("id", Arc::new(Int64Array::from(vec![id]))),
        ("kind", Arc::new(StringArray::from(vec!["p"]))),
    ];
    if let Some(g) = genre {
        cols.push(("genre", Arc::new(Int32Array::from(vec![g]))));
    }
    let batch = RecordBatch::try_from_iter(cols).unwrap();
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let tmp = path.with_file_name(format!(".{}", path.file_name().unwrap().to_string_lossy()));
    let file = std::fs::File::create(&tmp).unwrap();
    let mut w =
        datafusion::parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    std::fs::rename(tmp, path).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parquet_new_column_under_each_mode() {
    for mode in ["addNewColumns", "failOnNewColumns", "none", "rescue"] {
        let lake = tempfile::tempdir().unwrap();
        let root = lake.path();
        let p = tracked_project_in("parquet", &format!("schema_evolution_mode = \"{mode}\""));
        write_parquet(root, "landing/events/1.parquet", 1, None);
        let first = available_now(&p, root).await;
        if mode == "rescue" {
            let err = first.unwrap_err().to_string();
            assert!(err.contains("not supported for Parquet"), "{err}");
            continue;
        }
        first.unwrap();
        let schemas = root.join("_checkpoints/events/_schemas/landing");
        let history = engine::sources::schema_tracking::history(&schemas).unwrap();
        // the file's own types
        assert_eq!(history[0].ddl, "id BIGINT, kind STRING");
        write_parquet(root, "landing/events/2.parquet", 2, Some(5));
        let result = available_now(&p, root).await;
        let table = root.join("bronze/events");
        match mode {
            "addNewColumns" => {
                let err = result.unwrap_err().to_string();
                assert!(err.contains("new columns `genre` (INT)"), "{err}");
                assert!(err.contains("Restart the stream"), "{err}");
                assert_eq!(scalar_i64(&table, "SELECT count(*) FROM t").await, 1);
                available_now(&p, root).await.unwrap();
                assert_eq!(
                    pretty(&query(&table, "SELECT id, genre FROM t ORDER BY id").await),
                    "+----+-------+\n| id | genre |\n+----+-------+\n| 1  |       |\n| 2  | 5     |\n+----+-------+"
                );
            }
            "failOnNewColumns" => {
                let err = result.unwrap_err().to_string();
                assert!(err.contains("failOnNewColumns") && err.contains("`genre`"), "{err}");
                assert!(available_now(&p, root).await.is_err());
                assert_eq!(scalar_i64(&table, "SELECT count(*) FROM t").await, 1);
            }
            _ => {
                result.unwrap();
                let rows = pretty(&query(&table, "SELECT * FROM t ORDER BY id").await);
                assert!(!rows.contains("genre"), "{rows}");
                assert_eq!(scalar_i64(&table, "SELECT count(*) FROM t").await, 2);
            }
        }
    }
}
