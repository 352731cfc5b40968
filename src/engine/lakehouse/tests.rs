//! Unit tests of history, time travel and compare on real tables in temp dirs.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, Int32Array, Int64Array, ListBuilder, RecordBatch, StringArray, StringBuilder,
    StructArray,
};
use arrow::datatypes::{Field, Schema};
use datafusion::logical_expr::{col, lit};
use deltalake::protocol::SaveMode;

use super::versions::except_all;
use super::*;
use crate::engine::Preview;
use crate::engine::delta::CommitMeta;
use crate::engine::plan;
use arrow::array::AsArray;
use arrow::compute::cast;
use arrow::datatypes::{DataType, Int64Type};
use datafusion::common::Column;
use datafusion::logical_expr::Expr;
use serde_json::Value;

/// (id, name, user_skills, (city, zip))
type Row = (i64, Option<&'static str>, Option<&'static [&'static str]>, (&'static str, i32));

const ROWS: [Row; 6] = [
    (1, Some("ann"), Some(&["sql", "rust"]), ("Oslo", 100)),
    (2, None, None, ("Rome", 200)),
    (3, Some("cid"), Some(&[]), ("Lima", 300)),
    (4, Some("dan"), Some(&["go"]), ("Kyiv", 400)),
    (5, Some("eve"), Some(&["sql", "go"]), ("Oslo", 500)),
    (6, Some("fay"), Some(&["rust"]), ("Oslo", 100)),
];

fn batch(ids: &[i64]) -> RecordBatch {
    let rows: Vec<&Row> =
        ids.iter().map(|id| ROWS.iter().find(|r| r.0 == *id).expect("known id")).collect();
    let mut skills = ListBuilder::new(StringBuilder::new());
    for r in &rows {
        match r.2 {
            Some(list) => {
                for s in list {
                    skills.values().append_value(s);
                }
                skills.append(true);
            }
            None => skills.append(false),
        }
    }
    let address = StructArray::from(vec![
        (
            Arc::new(Field::new("city", DataType::Utf8, true)),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.3.0))) as ArrayRef,
        ),
        (
            Arc::new(Field::new("zip", DataType::Int32, true)),
            Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| r.3.1))) as ArrayRef,
        ),
    ]);
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))),
        Arc::new(StringArray::from_iter(rows.iter().map(|r| r.1))),
        Arc::new(skills.finish()),
        Arc::new(address),
    ];
    let schema = Schema::new(
        columns
            .iter()
            .zip(["id", "name", "user_skills", "address"])
            .map(|(c, n)| Field::new(n, c.data_type().clone(), n != "id"))
            .collect::<Vec<_>>(),
    );
    RecordBatch::try_new(Arc::new(schema), columns).expect("batch")
}

async fn overwrite(path: &Path, ids: &[i64]) {
    delta::overwrite_batches(path, vec![batch(ids)], &CommitMeta::tool("test"))
        .await
        .expect("overwrite");
}

async fn append(path: &Path, ids: &[i64]) {
    delta::open_for_write(path)
        .await
        .expect("open")
        .write(vec![batch(ids)])
        .with_save_mode(SaveMode::Append)
        .await
        .expect("append");
}

/// The ids of a preview's rows, sorted.
fn ids(preview: &Preview) -> Vec<i64> {
    let mut ids: Vec<i64> = preview
        .batches
        .iter()
        .flat_map(|b| {
            let c =
                cast(b.column_by_name("id").expect("id column"), &DataType::Int64).expect("cast");
            c.as_primitive::<Int64Type>().values().to_vec()
        })
        .collect();
    ids.sort_unstable();
    ids
}

fn counts(h: &[HistoryEntry]) -> Vec<(i64, Option<u64>, Option<u64>)> {
    h.iter().map(|e| (e.version, e.rows_added, e.rows_removed)).collect()
}

/// v0: 3 rows; v1: append 2; v2: overwrite with 2 of the first rows and a new one;
/// v3: overwrite with a duplicate of one row.
async fn four_versions() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path();
    overwrite(path, &[1, 2, 3]).await;
    append(path, &[4, 5]).await;
    overwrite(path, &[1, 2, 6]).await;
    overwrite(path, &[1, 1, 2, 6]).await;
    dir
}

#[tokio::test]
async fn history_counts_rows_added_and_removed() {
    let dir = four_versions().await;
    let h = history(dir.path(), None).await.expect("history");
    assert_eq!(
        counts(&h),
        vec![
            (3, Some(4), Some(3)),
            (2, Some(3), Some(5)),
            (1, Some(2), Some(0)),
            (0, Some(3), Some(0))
        ]
    );
    assert_eq!(h[1].operation, "WRITE");
    assert_eq!(h[1].parameters.get("mode").and_then(Value::as_str), Some("Overwrite"));
    assert_eq!(h[2].parameters.get("mode").and_then(Value::as_str), Some("Append"));
    assert_eq!(h[0].node.as_deref(), Some("test"));
    assert!(h[0].timestamp.is_some());

    // with a limit, the removed files are looked up in the version before the oldest
    let h = history(dir.path(), Some(2)).await.expect("history");
    assert_eq!(counts(&h), vec![(3, Some(4), Some(3)), (2, Some(3), Some(5))]);
}

#[tokio::test]
async fn time_travel_reads_an_old_version() {
    let dir = four_versions().await;
    let v1 = table_at_version(dir.path(), 1, 100).await.expect("version 1");
    assert_eq!((v1.version, v1.rows), (1, 5));
    assert_eq!(ids(&v1.preview), vec![1, 2, 3, 4, 5]);
    assert_eq!(v1.preview.schema.fields().len(), 4);

    let v2 = table_at_version(dir.path(), 2, 2).await.expect("version 2");
    assert_eq!(v2.rows, 3);
    assert_eq!(v2.preview.rows(), 2, "limited to 2 rows");

    let v3 = table_at_version(dir.path(), 3, 100).await.expect("version 3");
    assert_eq!((v3.rows, ids(&v3.preview)), (4, vec![1, 1, 2, 6]));
}

#[tokio::test]
async fn missing_versions_name_the_table() {
    let dir = four_versions().await;
    let shown = dir.path().display().to_string();
    for v in [4, 99, -1] {
        let err = table_at_version(dir.path(), v, 10).await.expect_err("no such version");
        let msg = err.to_string();
        assert!(msg.contains(&shown) && msg.contains(&format!("version {v}")), "{msg}");
        let err = compare_versions(dir.path(), 0, v, 10).await.expect_err("no such version");
        assert!(err.to_string().contains(&shown), "{err}");
    }
    assert!(
        table_at_version(dir.path(), 4, 10)
            .await
            .expect_err("")
            .to_string()
            .contains("latest version is 3")
    );

    // the log of version 0 cleaned up (no checkpoint): version 0 can no longer be read
    std::fs::remove_file(dir.path().join("_delta_log/00000000000000000000.json")).expect("remove");
    let err = table_at_version(dir.path(), 0, 10).await.expect_err("cleaned up");
    assert!(err.to_string().contains(&shown), "{err}");

    let none = dir.path().join("nothing");
    let err = table_at_version(&none, 0, 10).await.expect_err("no table");
    assert!(matches!(err, EngineError::TableNotFound { .. }), "{err}");
}

#[tokio::test]
async fn compare_finds_added_and_removed_rows() {
    let dir = four_versions().await;
    let diff = |from, to| compare_versions(dir.path(), from, to, 100);

    let d = diff(0, 1).await.expect("0 to 1");
    assert_eq!((d.from, d.to, d.rows_added, d.rows_removed), (0, 1, 2, 0));
    assert_eq!((ids(&d.added), ids(&d.removed)), (vec![4, 5], vec![]));
    assert_eq!(d.added.schema.fields().len(), 4);

    // rows 1 and 2 (with a list, a struct and NULLs) were rewritten but are unchanged
    let d = diff(1, 2).await.expect("1 to 2");
    assert_eq!((d.rows_added, d.rows_removed), (1, 3));
    assert_eq!((ids(&d.added), ids(&d.removed)), (vec![6], vec![3, 4, 5]));
    let shown = d.added.pretty().expect("pretty");
    assert!(shown.contains("fay") && shown.contains("rust"), "{shown}");

    let d = diff(2, 1).await.expect("2 to 1");
    assert_eq!((ids(&d.added), ids(&d.removed)), (vec![3, 4, 5], vec![6]));

    // multiset: a second copy of row 1 is one added row
    let d = diff(2, 3).await.expect("2 to 3");
    assert_eq!((d.rows_added, d.rows_removed), (1, 0));
    assert_eq!(ids(&d.added), vec![1]);
    let d = diff(3, 0).await.expect("3 to 0");
    assert_eq!((ids(&d.added), ids(&d.removed)), (vec![3], vec![1, 6]));

    let d = diff(2, 2).await.expect("same version");
    assert_eq!((d.rows_added, d.rows_removed), (0, 0));

    let d = compare_versions(dir.path(), 1, 2, 2).await.expect("limited");
    assert_eq!((d.rows_removed, d.removed.rows()), (3, 2));
}

/// A partitioned table changed by MERGE, DELETE and UPDATE.
#[tokio::test]
async fn merge_delete_update_and_partitions() {
    // a partition value that the log path must escape
    const SE: &str = "S E:1%/x";
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path();
    let people = |rows: &[(i64, &str, &str)]| {
        RecordBatch::try_from_iter(vec![
            ("id", Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))) as ArrayRef),
            ("name", Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.1)))),
            ("country", Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.2)))),
        ])
        .expect("batch")
    };
    // v0
    delta::open_for_write(path)
        .await
        .expect("open")
        .write(vec![people(&[(1, "ann", "NO"), (2, "bob", "NO"), (3, "cid", SE), (4, "dan", SE)])])
        .with_partition_columns(["country"])
        .await
        .expect("write");
    // v1: merge updates 2 and inserts 5
    let ctx = plan::session_context();
    let source = ctx.read_batch(people(&[(2, "bo", "NO"), (5, "eve", "DK")])).expect("source");
    let src = |c: &str| Expr::Column(Column::new(Some("source"), c));
    let tgt = |c: &str| Expr::Column(Column::new(Some("target"), c));
    let names = ["id", "name", "country"];
    delta::open(path)
        .await
        .expect("open")
        .merge(source, tgt("id").eq(src("id")))
        .with_source_alias("source")
        .with_target_alias("target")
        .when_matched_update(|u| {
            names.iter().fold(u, |u, c| u.update(Column::new_unqualified(*c), src(c)))
        })
        .expect("update clause")
        .when_not_matched_insert(|i| {
            names.iter().fold(i, |i, c| i.set(Column::new_unqualified(*c), src(c)))
        })
        .expect("insert clause")
        .await
        .expect("merge");
    // v2: delete one row (rewrites a file of the SE partition)
    delta::open(path)
        .await
        .expect("open")
        .delete()
        .with_predicate(col("id").eq(lit(3i64)))
        .await
        .expect("delete");
    // v3: update one row
    delta::open(path)
        .await
        .expect("open")
        .update()
        .with_predicate(col("id").eq(lit(1i64)))
        .with_update("name", lit("anne"))
        .await
        .expect("update");
    // v4: delete a whole partition (whole files, no rewrite)
    delta::open(path)
        .await
        .expect("open")
        .delete()
        .with_predicate(col("country").eq(lit(SE)))
        .await
        .expect("delete");

    let h = history(path, None).await.expect("history");
    let ops: Vec<&str> = h.iter().map(|e| e.operation.as_str()).collect();
    assert_eq!(ops, ["DELETE", "UPDATE", "DELETE", "MERGE", "WRITE"]);
    assert_eq!(
        counts(&h),
        vec![
            (4, Some(0), Some(1)),
            (3, Some(1), Some(1)),
            (2, Some(0), Some(1)),
            (1, Some(2), Some(1)),
            (0, Some(4), Some(0)),
        ]
    );

    let v1 = table_at_version(path, 1, 100).await.expect("version 1");
    assert_eq!((v1.rows, ids(&v1.preview)), (5, vec![1, 2, 3, 4, 5]));

    // partition values come back for the differing files
    let d = compare_versions(path, 0, 3, 100).await.expect("0 to 3");
    assert_eq!((ids(&d.added), ids(&d.removed)), (vec![1, 2, 5], vec![1, 2, 3]));
    let added = d.added.pretty().expect("pretty");
    assert!(added.contains("anne") && added.contains("DK") && added.contains("NO"), "{added}");
    let removed = d.removed.pretty().expect("pretty");
    assert!(removed.contains(SE), "{removed}");
    let d = compare_versions(path, 3, 4, 100).await.expect("3 to 4");
    assert_eq!((d.rows_added, ids(&d.removed)), (0, vec![4]));
}

/// Versions with other columns: no row of one equals a row of the other.
#[tokio::test]
async fn compare_across_a_schema_change() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path();
    let ids = |ids: &[i64]| {
        RecordBatch::try_from_iter(vec![(
            "id",
            Arc::new(Int64Array::from_iter_values(ids.iter().copied())) as ArrayRef,
        )])
        .expect("batch")
    };
    delta::overwrite_batches(path, vec![ids(&[1, 2])], &CommitMeta::tool("test"))
        .await
        .expect("v0");
    overwrite(path, &[1, 3]).await;
    let d = compare_versions(path, 0, 1, 10).await.expect("0 to 1");
    assert_eq!((d.rows_added, d.rows_removed), (2, 2));
    assert_eq!((d.added.schema.fields().len(), d.removed.schema.fields().len()), (4, 1));
    let h = history(path, None).await.expect("history");
    assert_eq!(counts(&h), vec![(1, Some(2), Some(2)), (0, Some(2), Some(0))]);
}

/// Multiset difference with NULLs and a MAP column, on in-memory frames.
#[tokio::test]
async fn except_all_keeps_extra_copies() {
    use arrow::array::MapBuilder;
    let frame = |rows: &[(i64, Option<&str>)]| {
        let mut m = MapBuilder::new(None, StringBuilder::new(), StringBuilder::new());
        for (id, _) in rows {
            m.keys().append_value("k");
            m.values().append_value(id.to_string());
            m.append(true).expect("map");
        }
        let batch = RecordBatch::try_from_iter(vec![
            ("id", Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))) as ArrayRef),
            ("name", Arc::new(StringArray::from_iter(rows.iter().map(|r| r.1)))),
            ("m", Arc::new(m.finish())),
        ])
        .expect("batch");
        plan::session_context().read_batch(batch).expect("frame")
    };
    let left = frame(&[(1, None), (1, None), (1, None), (2, Some("b")), (3, Some("c"))]);
    let right = frame(&[(1, None), (3, Some("c")), (3, Some("c")), (4, None)]);
    let (n, preview) = except_all(left, Some(right), 10).await.expect("except all");
    assert_eq!((n, ids(&preview)), (3, vec![1, 1, 2]));
    assert_eq!(preview.schema.fields().len(), 3, "the numbering column is dropped");
}
