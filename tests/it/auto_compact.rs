//! Auto-compaction of streaming sinks: what each compaction rewrites, and what a stream's
//! commit reports while compactions commit beside it.

use std::collections::BTreeSet;

use medallion::engine::{self, lakehouse};

use crate::common::*;
use crate::upkeep::append_ids;

/// A stream's sink reads what its commit did from that commit, not from the table's newest:
/// a background compaction commits right after a stream's append, and the append's rows were
/// counted as 0 (session 5 took the short count for lost rows).
#[tokio::test]
async fn a_commit_reports_its_own_rows_when_another_commits_after_it() {
    let lake = tempfile::tempdir().unwrap();
    let path = lake.path().join("bronze/t");
    append_ids(&path, 0..3).await;
    let first = engine::delta::open(&path).await.unwrap();
    append_ids(&path, 3..8).await;
    let outcome = engine::delta::last_commit_outcome(&first).await.unwrap();
    assert_eq!((outcome.version, outcome.rows_added, outcome.files_added), (0, 3, 1));
    let snapshot = first.snapshot().unwrap();
    let sizes: u64 = snapshot.log_data().iter().map(|f| f.size() as u64).sum();
    assert_eq!(outcome.bytes_added, sizes, "the bytes of the files version 0 added");
}

/// Auto-compaction rewrites the files added since the last one and leaves an earlier, larger
/// output alone (its cost follows what arrived, not the table's size).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_compaction_rewrites_the_fresh_files_and_leaves_earlier_outputs() {
    let lake = tempfile::tempdir().unwrap();
    let path = lake.path().join("bronze/t");
    append_ids(&path, 0..20_000).await;
    for i in 0..12 {
        append_ids(&path, 100_000 + i * 10..100_000 + i * 10 + 10).await;
    }
    let files = |t: &deltalake::DeltaTable| -> BTreeSet<(String, i64)> {
        t.snapshot().unwrap().log_data().iter().map(|f| (f.path().to_string(), f.size())).collect()
    };
    let before = files(&engine::delta::open(&path).await.unwrap());
    let big = before.iter().max_by_key(|f| f.1).unwrap().clone();
    assert_eq!(before.len(), 13);

    let tables = engine::open_tables::OpenTables::default();
    let mut compactor = lakehouse::AutoCompactor::default();
    let meta = engine::delta::CommitMeta::tool("test");
    compactor.watch("sink", &path, meta, Some(Some(10)), None).await.unwrap();
    compactor.start_due(&tables).await;
    compactor.finish(&tables, true).await;
    let done = compactor.take_done();
    assert_eq!(done.len(), 1);
    let report = done[0].result.as_ref().unwrap().as_ref().unwrap();
    assert_eq!((report.files_removed, report.files_added), (12, 1), "{report:?}");

    let after = files(&engine::delta::open(&path).await.unwrap());
    assert!(after.contains(&big), "the earlier output stays: {after:?}");
    assert_eq!(after.len(), 2);
    assert_eq!(scalar_i64(&path, "SELECT count(*) FROM t").await, 20_120);
}
