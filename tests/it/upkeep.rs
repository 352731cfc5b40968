//! Lakehouse upkeep on real tables: OPTIMIZE and VACUUM through the CLI (read back by the
//! Python `deltalake` reader at the new and the old version) and the Lakehouse tab; the upkeep
//! of streams' sinks is in `stream_upkeep`.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use medallion::engine::{self, lakehouse};

use crate::common::*;
use crate::stream_upkeep::two_streams;

/// Appends `ids` as one commit (one small file) to the table at `path`.
pub(crate) async fn append_ids(path: &Path, ids: std::ops::Range<i64>) {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
    ]));
    let names: Vec<String> = ids.clone().map(|i| format!("são-{i}")).collect();
    let batch = RecordBatch::try_new(
        schema,
        vec![Arc::new(Int64Array::from_iter_values(ids)), Arc::new(StringArray::from(names))],
    )
    .unwrap();
    let table = engine::delta::open_for_write(path).await.unwrap();
    table.write(vec![batch]).await.unwrap();
}

/// `python -c SCRIPT ARGS…` with the venv's deltalake; stdout trimmed. The scripts end with
/// `os._exit(0)`: the deltalake wheel's native threads can abort the interpreter's shutdown
/// ("terminate called without an active exception") after the answer was printed.
fn py(script: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(python())
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("python runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Rows and sum(id) of the table at `path` (at `version` if given), read by Python deltalake.
pub(crate) fn py_rows(path: &Path, version: Option<i64>) -> (i64, i64) {
    let script = "import sys, deltalake\n\
        v = None if sys.argv[2] == '-' else int(sys.argv[2])\n\
        t = deltalake.DeltaTable(sys.argv[1], version=v).to_pyarrow_table()\n\
        ids = t.column('id').to_pylist()\n\
        print(len(ids), sum(ids), flush=True)\n\
        import os; os._exit(0)";
    let v = version.map_or("-".to_owned(), |v| v.to_string());
    let out = py(script, &[path.to_str().unwrap(), &v]);
    let mut it = out.split_whitespace().map(|n| n.parse::<i64>().unwrap());
    (it.next().unwrap(), it.next().unwrap())
}

pub(crate) fn data_files(path: &Path) -> BTreeSet<String> {
    fn walk(dir: &Path, prefix: &str, out: &mut BTreeSet<String>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('_') || name.starts_with('.') {
                continue;
            }
            let rel = if prefix.is_empty() { name.clone() } else { format!("{prefix}/{name}") };
            if e.file_type().unwrap().is_dir() {
                walk(&e.path(), &rel, out);
            } else {
                out.insert(rel);
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(path, "", &mut out);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn optimize_compacts_and_every_version_keeps_its_rows() {
    let lake = tempfile::tempdir().unwrap();
    let table = lake.path().join("silver/events");
    for i in 0..30 {
        append_ids(&table, i * 10..(i + 1) * 10).await;
    }
    let before = lakehouse::table_health(&table).await.unwrap();
    assert_eq!((before.files, before.small_files, before.version), (30, 30, 29));

    // by name through the project, as `medallion optimize silver.events --project p.toml`
    std::fs::write(
        lake.path().join("p.toml"),
        "format_version = 1\nname = \"upkeep\"\nlakehouse = \".\"\n[[pipeline]]\nname = \"p\"\n[[pipeline.nodes]]\nid = \"src\"\nkind = \"delta_source\"\ntable = \"silver/events\"\n[[pipeline.nodes]]\nid = \"out\"\nkind = \"delta_sink\"\ntable = \"silver/events\"\n[[pipeline.edges]]\nfrom = \"src\"\nto = \"out\"\n",
    )
    .unwrap();
    let p = lake.path().join("p.toml");
    let (code, out, err) =
        medallion_cli(&["optimize", "silver.events", "--project", p.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("optimized: 30 file(s)"), "{out}");
    assert!(out.contains("30 → 1 files; version 30"), "{out}");

    let after = lakehouse::table_health(&table).await.unwrap();
    assert_eq!((after.files, after.version), (1, 30));
    assert_eq!(after.last_optimize.map(|o| o.0), Some(30));
    assert_eq!(after.unreferenced_files, 30, "the old files stay for time travel until VACUUM");
    let history = lakehouse::history(&table, Some(1)).await.unwrap();
    assert_eq!(history[0].operation, "OPTIMIZE");
    assert_eq!(history[0].node.as_deref(), Some("medallion-cli"));
    assert_eq!(history[0].project.as_deref(), Some("upkeep"));

    // every row, at the new version and at the old one, by an independent reader
    let expected = (300, (0..300).sum::<i64>());
    assert_eq!(py_rows(&table, None), expected);
    assert_eq!(py_rows(&table, Some(29)), expected);
    assert_eq!(py_rows(&table, Some(9)), (100, (0..100).sum::<i64>()));

    // nothing left to do: no commit
    let (code, out, _) = medallion_cli(&["optimize", table.to_str().unwrap()]);
    assert_eq!(code, 0);
    assert!(out.contains("nothing to optimize"), "{out}");
    assert_eq!(lakehouse::table_health(&table).await.unwrap().version, 30);

    // --where takes partition columns only, and says so
    let (code, _, err) = medallion_cli(&["optimize", table.to_str().unwrap(), "--where", "id = 3"]);
    assert_ne!(code, 0);
    assert!(err.contains("may only use partition columns"), "{err}");
    assert!(err.contains("has no partition columns: leave --where out"), "{err}");
    let (code, _, err) =
        medallion_cli(&["optimize", table.to_str().unwrap(), "--zorder-by", "nope"]);
    assert_ne!(code, 0);
    assert!(err.contains("`nope` is not a column") && err.contains("id, name"), "{err}");
    let (code, _, err) =
        medallion_cli(&["optimize", lake.path().join("nothing").to_str().unwrap()]);
    assert_ne!(code, 0);
    assert!(err.contains("no Delta table at") && err.contains("--project"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn optimize_by_partition_and_zorder() {
    let lake = tempfile::tempdir().unwrap();
    let table = lake.path().join("gold/by_region");
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("region", DataType::Utf8, false),
    ]));
    for i in 0..8i64 {
        let region = if i % 2 == 0 { "são paulo" } else { "eu" };
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from_iter_values(i * 5..i * 5 + 5)),
                Arc::new(StringArray::from(vec![region; 5])),
            ],
        )
        .unwrap();
        let t = engine::delta::open_for_write(&table).await.unwrap();
        t.write(vec![batch]).with_partition_columns(["region"]).await.unwrap();
    }
    let (code, out, err) =
        medallion_cli(&["optimize", table.to_str().unwrap(), "--where", "region = 'são paulo'"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("optimized: 4 file(s)") && out.contains("8 → 5 files"), "{out}");
    let (code, out, err) =
        medallion_cli(&["optimize", table.to_str().unwrap(), "--zorder-by", "id"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(lakehouse::table_health(&table).await.unwrap().files, 2, "one file per region");
    assert_eq!(py_rows(&table, None), (40, (0..40).sum::<i64>()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vacuum_lists_exactly_the_unreferenced_files_and_respects_retention() {
    let lake = tempfile::tempdir().unwrap();
    let table = lake.path().join("bronze/t");
    for i in 0..5 {
        append_ids(&table, i * 10..(i + 1) * 10).await;
    }
    // an overwrite removes the five files; a crashed writer left a file no commit references
    let t = engine::delta::open(&table).await.unwrap();
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
    ]));
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from_iter_values(100..103)),
            Arc::new(StringArray::from(vec!["x", "y", "z"])),
        ],
    )
    .unwrap();
    t.write(vec![batch]).with_save_mode(deltalake::protocol::SaveMode::Overwrite).await.unwrap();
    let first = data_files(&table).into_iter().next().unwrap();
    std::fs::copy(table.join(&first), table.join("part-orphan-from-a-crash.parquet")).unwrap();
    // and a writer killed mid-upload left object_store's staging file (hidden from its listing)
    std::fs::write(table.join("part-killed-mid-upload.zstd.parquet#1"), b"PAR1 half").unwrap();
    let on_disk = data_files(&table);
    assert_eq!(on_disk.len(), 8);
    let live: BTreeSet<String> = {
        let t = engine::delta::open(&table).await.unwrap();
        t.snapshot().unwrap().log_data().iter().map(|f| f.path().to_string()).collect()
    };
    let unreferenced: BTreeSet<String> = on_disk.difference(&live).cloned().collect();
    assert_eq!(unreferenced.len(), 7);
    let health = lakehouse::table_health(&table).await.unwrap();
    assert_eq!(health.unreferenced_files, 7);

    let path = table.to_str().unwrap();
    // the default retention (7 days) keeps everything this young
    let (code, out, _) = medallion_cli(&["vacuum", path, "--dry-run"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("would delete 0 file(s)"), "{out}");
    // below the table's retention: refused, with the way out
    let (code, _, err) = medallion_cli(&["vacuum", path, "--retain-hours", "0", "--dry-run"]);
    assert_eq!(code, 1);
    assert!(err.contains("below") && err.contains("168 hours"), "{err}");
    assert!(err.contains("delta.deletedFileRetentionDuration") && err.contains("--force"), "{err}");
    // the dry run lists exactly the unreferenced files and deletes nothing
    let (code, out, err) =
        medallion_cli(&["vacuum", path, "--retain-hours", "0", "--dry-run", "--force"]);
    assert_eq!(code, 0, "{err}");
    let listed: BTreeSet<String> = out
        .lines()
        .filter_map(|l| l.strip_prefix("would delete "))
        .map(|l| l.split('\t').next().unwrap().to_owned())
        .collect();
    assert_eq!(listed, unreferenced);
    let sizes: u64 =
        unreferenced.iter().map(|f| std::fs::metadata(table.join(f)).unwrap().len()).sum();
    assert!(out.contains(&format!("would delete 7 file(s), {sizes} bytes")), "{out}");
    assert_eq!(data_files(&table), on_disk, "a dry run deletes nothing");
    let version = lakehouse::table_health(&table).await.unwrap().version;

    // the real thing
    let (code, out, err) = medallion_cli(&["vacuum", path, "--retain-hours", "0", "--force"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("deleted 7 file(s)"), "{out}");
    assert_eq!(data_files(&table), live);
    assert_eq!(py_rows(&table, None), (3, 303));
    let history = lakehouse::history(&table, Some(2)).await.unwrap();
    let ops: Vec<&str> = history.iter().map(|h| h.operation.as_str()).collect();
    assert_eq!(ops, ["VACUUM END", "VACUUM START"]);
    assert!(history[0].version > version);
    assert_eq!(history[0].node.as_deref(), Some("medallion-cli"));
    let health = lakehouse::table_health(&table).await.unwrap();
    assert_eq!(
        (health.unreferenced_files, health.last_vacuum.map(|v| v.0)),
        (0, Some(history[0].version))
    );
}

/// The Lakehouse tab as a user sees it: the health of a table with many small files, the
/// badge on the sink writing it, Optimize behind a confirmation listing the files, and Vacuum
/// whose dry-run list is confirmed before anything is deleted.
#[test]
fn lakehouse_panel_optimizes_and_vacuums_after_confirmation() {
    use egui_kittest::Harness;
    use egui_kittest::kittest::Queryable as _;
    use medallion::ui::app::MedallionApp;
    use medallion::ui::table_health::Dialog;

    let lake = tempfile::tempdir().unwrap();
    let root = lake.path();
    let table = root.join("bronze/events");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        for i in 0..55 {
            append_ids(&table, i * 2..i * 2 + 2).await;
        }
    });
    let text = two_streams("auto_compact = false")
        .replace("name = \"upkeep_streams\"", "name = \"upkeep_streams\"\nlakehouse = \".\"");
    let project = root.join("p.toml");
    std::fs::write(&project, text).unwrap();
    let mut h = Harness::builder()
        .with_size([1500.0, 1000.0])
        .with_max_steps(50)
        .build_eframe(move |cc| MedallionApp::new(cc, Some(project)).expect("app starts"));
    h.run_steps(3);
    h.get_by_label("Lakehouse").click();
    crate::ui::wait_until(&mut h, "the table list", |a| !a.tables.tables.is_empty());
    let info = h.state().tables.tables[0].clone();
    assert_eq!((info.name.as_str(), info.files, info.small_files), ("bronze/events", 55, 55));
    assert!(info.needs_compaction());
    assert!(h.query_by_label_contains("⚠ small files").is_some(), "the list flags the table");
    assert!(
        h.query_by_label_contains("⚠ 55 small files: optimize").is_some(),
        "the bronze sink's badge on the canvas"
    );

    h.get_by_label("bronze/events · v54").click();
    crate::ui::wait_until(&mut h, "the health", |a| matches!(&a.tables.upkeep.health, Some(Ok(_))));
    assert!(h.query_by_label_contains("55 files, 55 small").is_some());
    assert!(h.query_by_label_contains("last OPTIMIZE never").is_some());

    // Optimize… shows what it will rewrite, and does it only when confirmed
    h.get_by_label("Optimize…").click();
    h.run_steps(2);
    assert!(h.query_by_label_contains("55 small file(s) of 55 are rewritten").is_some());
    h.get_by_label("Cancel").click();
    h.run_steps(2);
    assert!(matches!(h.state().tables.upkeep.dialog, Dialog::Closed));
    h.get_by_label("Optimize…").click();
    h.run_steps(2);
    h.get_by_label("Optimize").click();
    crate::ui::wait_until(&mut h, "the optimize", |a| {
        matches!(a.tables.upkeep.dialog, Dialog::Done(_))
    });
    let Dialog::Done(Ok(done)) = &h.state().tables.upkeep.dialog else {
        panic!("{:?}", h.state().tables.upkeep.dialog)
    };
    assert!(done.contains("55 file(s)") && done.contains("version 55"), "{done}");
    crate::ui::wait_until(
        &mut h,
        "the new health",
        |a| matches!(&a.tables.upkeep.health, Some(Ok(h)) if h.version == 55),
    );
    let health = match &h.state().tables.upkeep.health {
        Some(Ok(h)) => h.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!((health.files, health.unreferenced_files), (1, 55));
    assert_eq!(py_rows(&table, None), (110, (0..110).sum::<i64>()));

    // Vacuum…: retention 0 needs force; the dry run lists the 55 files; confirm deletes them
    h.get_by_label("Vacuum…").click();
    h.run_steps(2);
    let field = "Keep files younger than (hours)";
    h.get_by_label(field).focus();
    h.run_steps(1);
    h.key_press_modifiers(eframe::egui::Modifiers::COMMAND, eframe::egui::Key::A);
    h.get_by_label(field).type_text("0");
    h.run_steps(2);
    assert!(h.query_by_label_contains("below the table's retention of 168 h").is_some());
    h.get_by_label("nothing reads or writes this table now (force)").click();
    h.run_steps(1);
    h.get_by_label("List files (dry run)").click();
    crate::ui::wait_until(&mut h, "the dry run", |a| {
        matches!(a.tables.upkeep.dialog, Dialog::ConfirmVacuum { .. })
    });
    assert_eq!(data_files(&table).len(), 56, "the dry run deleted nothing");
    let Dialog::ConfirmVacuum { plan, .. } = &h.state().tables.upkeep.dialog else {
        unreachable!()
    };
    assert_eq!(plan.files.len(), 55);
    assert!(h.query_by_label_contains("55 file(s),").is_some(), "the list and its bytes");
    h.get_by_label("Delete these files").click();
    crate::ui::wait_until(&mut h, "the vacuum", |a| {
        matches!(a.tables.upkeep.dialog, Dialog::Done(_))
    });
    assert!(
        matches!(&h.state().tables.upkeep.dialog, Dialog::Done(Ok(t)) if t.contains("deleted 55 file(s)"))
    );
    assert_eq!(data_files(&table).len(), 1);
    assert_eq!(py_rows(&table, None), (110, (0..110).sum::<i64>()));
}
