//! Lakehouse upkeep on real tables: OPTIMIZE and VACUUM through the CLI (read back by the
//! Python `deltalake` reader at the new and the old version), streams that keep going
//! exactly-once across an OPTIMIZE of their source and sink, auto-compaction (also under
//! SIGKILL), Delta log cleanup, and a long stream's bounded checkpoint.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use medallion::engine::{self, RunEvent, RunOptions, lakehouse};
use medallion::model::Project;

use crate::common::*;

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
fn py_rows(path: &Path, version: Option<i64>) -> (i64, i64) {
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

fn data_files(path: &Path) -> BTreeSet<String> {
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

/// landing JSON files → bronze (file stream) → silver (Delta stream), no auto-compaction.
fn two_streams(auto_compact: &str) -> String {
    format!(
        r#"
format_version = 1
name = "upkeep_streams"
[[pipeline]]
name = "bronze"
mode = "stream"
trigger = "available_now"
[[pipeline.nodes]]
id = "landing"
kind = "file_source"
path = "landing/events"
schema = "id BIGINT, name STRING"
max_files_per_trigger = 1
[[pipeline.nodes]]
id = "bronze_sink"
kind = "delta_sink"
table = "bronze/events"
{auto_compact}
[[pipeline.edges]]
from = "landing"
to = "bronze_sink"

[[pipeline]]
name = "silver"
mode = "stream"
trigger = "available_now"
[[pipeline.nodes]]
id = "bronze_src"
kind = "delta_source"
table = "bronze/events"
max_files_per_trigger = 1
[[pipeline.nodes]]
id = "silver_sink"
kind = "delta_sink"
table = "silver/events"
{auto_compact}
[[pipeline.edges]]
from = "bronze_src"
to = "silver_sink"
"#
    )
}

fn landing_files(root: &Path, files: std::ops::Range<i64>, rows: i64) {
    let dir = root.join("landing/events");
    std::fs::create_dir_all(&dir).unwrap();
    for f in files {
        let text: String = (f * rows..(f + 1) * rows)
            .map(|i| format!("{{\"id\": {i}, \"name\": \"são {i}\"}}\n"))
            .collect();
        std::fs::write(dir.join(format!("part-{f:05}.json")), text).unwrap();
    }
}

async fn count_distinct(table: &Path) -> (i64, i64) {
    (
        scalar_i64(table, "SELECT count(*) FROM t").await,
        scalar_i64(table, "SELECT count(DISTINCT id) FROM t").await,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_keep_going_exactly_once_across_an_optimize_of_source_and_sink() {
    let lake = tempfile::tempdir().unwrap();
    let root = lake.path();
    let project =
        Project::from_toml(&two_streams("auto_compact = false"), Path::new("p.toml")).unwrap();
    landing_files(root, 0..8, 5);
    run(&project, root).await.unwrap();
    let (bronze, silver) = (root.join("bronze/events"), root.join("silver/events"));
    assert_eq!(count_distinct(&silver).await, (40, 40));
    let meta = engine::delta::CommitMeta::tool("test");
    for t in [&bronze, &silver] {
        let r = lakehouse::optimize(t, &Default::default(), &meta).await.unwrap();
        assert_eq!((r.files_removed, r.files_added), (8, 1), "{}", t.display());
    }
    // more data: silver follows bronze past the OPTIMIZE commit (dataChange = false)
    landing_files(root, 8..14, 5);
    run(&project, root).await.unwrap();
    assert_eq!(count_distinct(&bronze).await, (70, 70));
    assert_eq!(count_distinct(&silver).await, (70, 70), "every row once, none twice");
    // and once more after optimizing again, with nothing new: nothing changes
    lakehouse::optimize(&silver, &Default::default(), &meta).await.unwrap();
    run(&project, root).await.unwrap();
    assert_eq!(count_distinct(&silver).await, (70, 70));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_compaction_bounds_small_files_without_losing_a_row() {
    let lake = tempfile::tempdir().unwrap();
    let root = lake.path();
    let project =
        Project::from_toml(&two_streams("auto_compact_min_files = 10"), Path::new("p.toml"))
            .unwrap();
    landing_files(root, 0..45, 4);
    let events = std::sync::Mutex::new(Vec::new());
    let summary = engine::run_project(&project, root, &RunOptions::default(), &|e| {
        if let RunEvent::Compacted { node, files_removed, version, .. } = e {
            events.lock().unwrap().push((node.to_string(), files_removed, version));
        }
    })
    .await
    .unwrap();
    assert!(summary.rows_written >= 180);
    let compactions = events.into_inner().unwrap();
    let bronze_runs: Vec<_> = compactions.iter().filter(|c| c.0 == "bronze_sink").collect();
    assert!(bronze_runs.len() >= 4, "45 one-file batches, compacted every 10: {compactions:?}");
    assert!(bronze_runs.iter().all(|c| c.1 >= 10 && c.2.is_some()), "{compactions:?}");
    let (bronze, silver) = (root.join("bronze/events"), root.join("silver/events"));
    for t in [&bronze, &silver] {
        assert_eq!(count_distinct(t).await, (180, 180), "{}", t.display());
        let h = lakehouse::table_health(t).await.unwrap();
        assert!(h.files <= 11, "{}: {} files", t.display(), h.files);
    }
    // silver read bronze's (compacted) snapshot: fewer, larger inputs
    assert!(lakehouse::table_health(&bronze).await.unwrap().last_optimize.is_some());
    // the compaction commits name the sink that asked for them
    let history = lakehouse::history(&bronze, None).await.unwrap();
    let optimizes: Vec<_> = history.iter().filter(|h| h.operation == "OPTIMIZE").collect();
    assert!(optimizes.iter().all(
        |h| h.node.as_deref() == Some("bronze_sink") && h.pipeline.as_deref() == Some("bronze")
    ));
    assert_eq!(py_rows(&silver, None), (180, (0..180).sum::<i64>()));
    // a batch pipeline's sink never auto-compacts (only streams)
    assert!(!auto_compacts_in_batch().await);
}

/// Whether a batch run of many appends compacts (it must not: batch sinks write big files).
async fn auto_compacts_in_batch() -> bool {
    let lake = tempfile::tempdir().unwrap();
    let root = lake.path();
    landing_files(root, 0..3, 2);
    let text = two_streams("auto_compact_min_files = 2")
        .replace("mode = \"stream\"\ntrigger = \"available_now\"", "mode = \"batch\"")
        .replace("max_files_per_trigger = 1\n", "");
    let project = Project::from_toml(&text, Path::new("p.toml")).unwrap();
    let compacted = std::sync::atomic::AtomicBool::new(false);
    for _ in 0..3 {
        engine::run_project(&project, root, &RunOptions::default(), &|e| {
            if matches!(e, RunEvent::Compacted { .. }) {
                compacted.store(true, std::sync::atomic::Ordering::SeqCst);
            }
        })
        .await
        .unwrap();
    }
    compacted.into_inner()
}

/// SIGKILL at random moments of a stream that compacts every other batch: the table stays
/// readable, every row is there exactly once, and VACUUM then reclaims the orphans.
#[test]
fn sigkill_during_auto_compaction_keeps_the_table_valid_and_exactly_once() {
    use rand::{Rng, SeedableRng};
    let lake = tempfile::tempdir().unwrap();
    let root = lake.path();
    let text = two_streams("auto_compact_min_files = 2");
    std::fs::write(root.join("p.toml"), &text).unwrap();
    let mut files = 40;
    landing_files(root, 0..files, 3);
    let run = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_medallion"))
            .args([
                "run",
                root.join("p.toml").to_str().unwrap(),
                "--lakehouse",
                root.to_str().unwrap(),
                "--pipeline",
                "bronze",
            ])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let (mut kills, mut finished) = (0, 0);
    while kills < 15 {
        let mut child = run();
        std::thread::sleep(std::time::Duration::from_millis(rng.random_range(30..400)));
        match child.try_wait().unwrap() {
            None => {
                child.kill().unwrap();
                child.wait().unwrap();
                kills += 1;
            }
            Some(status) => {
                let out = child.wait_with_output().unwrap();
                assert!(status.success(), "{}", String::from_utf8_lossy(&out.stderr));
                finished += 1;
                assert!(finished < 100, "never got to kill it");
                landing_files(root, files..files + 6, 3);
                files += 6;
            }
        }
    }
    let out = run().wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let bronze = root.join("bronze/events");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let n = files * 3;
    assert_eq!(rt.block_on(count_distinct(&bronze)), (n, n), "after {kills} kills\n{stdout}");
    assert_eq!(py_rows(&bronze, None), (n, (0..n).sum::<i64>()));
    let history = rt.block_on(lakehouse::history(&bronze, None)).unwrap();
    assert!(history.iter().filter(|h| h.operation == "OPTIMIZE").count() >= 3);
    // orphans of killed compactions (and the removed small files) go with VACUUM
    let (code, out, err) =
        medallion_cli(&["vacuum", bronze.to_str().unwrap(), "--retain-hours", "0", "--force"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("deleted"), "{out}");
    let live: BTreeSet<String> = rt.block_on(async {
        let t = engine::delta::open(&bronze).await.unwrap();
        t.snapshot().unwrap().log_data().iter().map(|f| f.path().to_string()).collect()
    });
    assert_eq!(data_files(&bronze), live, "only referenced files are left");
    assert_eq!(py_rows(&bronze, None), (n, (0..n).sum::<i64>()));
}

/// A lake where [`two_streams`] (with `sink_options`) ran over landing files `files`.
async fn streams_over(files: std::ops::Range<i64>, sink_options: &str) -> tempfile::TempDir {
    let lake = tempfile::tempdir().unwrap();
    let project = Project::from_toml(&two_streams(sink_options), Path::new("p.toml")).unwrap();
    landing_files(lake.path(), files, 2);
    run(&project, lake.path()).await.unwrap();
    lake
}

/// A stream's sink whose table sets no `delta.checkpointInterval` checkpoints its log every 10
/// commits, as Spark does (delta-rs's own default is 100); one that sets it keeps its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_sink_checkpoints_its_log_every_ten_commits_as_spark() {
    let lake = streams_over(0..25, "auto_compact = false").await;
    let root = lake.path();
    let checkpoints = |table: &Path| -> Vec<u64> {
        let mut v: Vec<u64> = std::fs::read_dir(table.join("_delta_log"))
            .unwrap()
            .filter_map(|e| {
                let name = e.unwrap().file_name().to_string_lossy().into_owned();
                name.strip_suffix(".checkpoint.parquet").map(|v| v.parse().unwrap())
            })
            .collect();
        v.sort_unstable();
        v
    };
    let bronze = root.join("bronze/events");
    let health = lakehouse::table_health(&bronze).await.unwrap();
    assert!(health.version >= 24, "one commit per file: {}", health.version);
    assert_eq!(health.checkpoint_interval, 10);
    let written = checkpoints(&bronze);
    assert!(written.len() >= 2 && written.iter().all(|&v| v >= 9), "{written:?}");
    assert_eq!(py_rows(&bronze, None), (50, (0..50).sum::<i64>()));
    // a table that sets its interval keeps it
    let props = "auto_compact = false\nproperties = { \"delta.checkpointInterval\" = \"100\" }";
    let lake = streams_over(0..25, props).await;
    let bronze = lake.path().join("bronze/events");
    assert_eq!(lakehouse::table_health(&bronze).await.unwrap().checkpoint_interval, 100);
    assert!(checkpoints(&bronze).is_empty(), "{:?}", checkpoints(&bronze));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_log_files_are_cleaned_and_the_stream_restarts_exactly_once() {
    let lake = tempfile::tempdir().unwrap();
    let root = lake.path();
    let props = "auto_compact = false\nproperties = { \"delta.checkpointInterval\" = \"10\", \"delta.logRetentionDuration\" = \"interval 0 seconds\" }";
    let project = Project::from_toml(&two_streams(props), Path::new("p.toml")).unwrap();
    landing_files(root, 0..35, 2);
    run(&project, root).await.unwrap();
    let bronze = root.join("bronze/events");
    let log: Vec<String> = std::fs::read_dir(bronze.join("_delta_log"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let commits = log.iter().filter(|f| f.ends_with(".json")).count();
    assert!(log.iter().any(|f| f.ends_with(".checkpoint.parquet")), "{log:?}");
    assert!(commits < 12, "commits before the last checkpoint are cleaned: {log:?}");
    // the table and its stream transactions survive: a restart re-commits nothing
    assert_eq!(py_rows(&bronze, None), (70, (0..70).sum::<i64>()));
    let version = lakehouse::table_health(&bronze).await.unwrap().version;
    std::fs::remove_dir_all(root.join("_checkpoints/bronze/commits")).unwrap();
    std::fs::create_dir_all(root.join("_checkpoints/bronze/commits")).unwrap();
    // every batch's commits/N lost: the batches replay, each found in the table by its txn
    let replay = engine::run_project(
        &project,
        root,
        &RunOptions { pipeline: Some("bronze".into()), ..Default::default() },
        &|_| {},
    )
    .await;
    replay.unwrap();
    assert_eq!(count_distinct(&bronze).await, (70, 70));
    assert_eq!(
        lakehouse::table_health(&bronze).await.unwrap().version,
        version,
        "nothing re-committed"
    );
}

/// Many tiny batches (10 rows each): the checkpoint keeps at most ~110 offsets and commits,
/// the table's small files are compacted as they gather, every row lands once.
async fn tiny_batches_stay_bounded(batches: u64) {
    let lake = tempfile::tempdir().unwrap();
    let root = lake.path();
    let text = format!(
        r#"
format_version = 1
name = "long"
[[pipeline]]
name = "tiny"
mode = "stream"
trigger = "available_now"
[[pipeline.nodes]]
id = "gen"
kind = "generator_source"
rows_per_second = 1
max_rows = {}
[[pipeline.nodes]]
id = "sink"
kind = "delta_sink"
table = "bronze/tiny"
[[pipeline.edges]]
from = "gen"
to = "sink"
"#,
        batches * 10
    );
    let project = Project::from_toml(&text, Path::new("p.toml")).unwrap();
    let summary = run(&project, root).await.unwrap();
    assert_eq!(summary.rows_written, batches * 10);
    let cp = root.join("_checkpoints/tiny");
    let count = |d: &str| std::fs::read_dir(cp.join(d)).unwrap().count();
    assert!(count("offsets") <= 110, "offsets: {}", count("offsets"));
    assert!(count("commits") <= 110, "commits: {}", count("commits"));
    let newest_commit = std::fs::read_dir(cp.join("commits"))
        .unwrap()
        .filter_map(|e| e.unwrap().file_name().to_string_lossy().parse::<u64>().ok())
        .max();
    assert_eq!(newest_commit, Some(batches - 1), "{batches} batches of 10 rows");
    let table = root.join("bronze/tiny");
    let h = lakehouse::table_health(&table).await.unwrap();
    // below the 50 that start a compaction, plus at most one output per compaction (appends
    // go ahead of a compaction, and wait once the next one is due)
    let bound = 50 + batches as usize / 50;
    assert!(h.files <= bound, "small files compacted as they gather: {} files", h.files);
    assert!(h.last_optimize.is_some());
    let rows = (batches * 10) as i64;
    assert_eq!(scalar_i64(&table, "SELECT count(*) FROM t").await, rows);
    assert_eq!(scalar_i64(&table, "SELECT count(DISTINCT id) FROM t").await, rows);
    let (files, bytes) = engine::stream::checkpoint::disk_usage(&cp);
    assert!(files <= 240, "checkpoint files: {files} ({bytes} bytes)");
    // the log is cleaned after each log checkpoint only when its retention allows; the
    // per-commit cleanup that lists the whole log is off for stream commits
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twelve_hundred_tiny_batches_keep_the_checkpoint_and_the_table_bounded() {
    // 12 times minBatchesToRetain: enough purges to show the bound
    tiny_batches_stay_bounded(1_200).await;
}

/// The issue's 10,000 batches: ~20 min on a busy 2-core machine in a dev build, so it runs
/// on demand (`cargo test --test it ten_thousand -- --ignored`), and 1,200 in every run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long: 10,000 batches"]
async fn ten_thousand_tiny_batches_keep_the_checkpoint_and_the_table_bounded() {
    tiny_batches_stay_bounded(10_000).await;
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
