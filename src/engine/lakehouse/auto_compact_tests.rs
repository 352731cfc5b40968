//! Auto-compaction's waits, its end of stream and its thread priority, with fake compactions
//! in flight where timing matters.

use super::*;

/// Appends one one-row file per id (the first creates the table).
async fn one_row_files(path: &std::path::Path, ids: std::ops::Range<i64>) {
    use std::sync::Arc;
    let schema = Arc::new(arrow::datatypes::Schema::new(vec![arrow::datatypes::Field::new(
        "id",
        arrow::datatypes::DataType::Int64,
        false,
    )]));
    for id in ids {
        let col = Arc::new(arrow::array::Int64Array::from(vec![id]));
        let batch = arrow::array::RecordBatch::try_new(schema.clone(), vec![col]).unwrap();
        let table = delta::open_for_write(path).await.unwrap();
        table
            .write(vec![batch])
            .with_save_mode(deltalake::protocol::SaveMode::Append)
            .await
            .unwrap();
    }
}

/// The stream's end with appends made while a compaction ran: `compact` (availableNow ran
/// out of input) compacts them at once; a stopped stream leaves them to its next run.
async fn end_with_a_compaction_due(compact: bool) -> (usize, Vec<Compacted>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t");
    one_row_files(&path, 0..1).await;
    let mut c = AutoCompactor::default();
    c.watch("sink", &path, CommitMeta::tool("test"), Some(Some(3)), None).await.unwrap();
    // a compaction in flight (it found nothing to do) while three appends commit
    in_flight(&mut c, std::thread::spawn(found_nothing));
    for id in 1..4 {
        append_and_count(&mut c, &path, id).await;
    }
    c.finish(&OpenTables::default(), compact).await;
    (super::super::table_health(&path).await.unwrap().files, c.take_done())
}

fn found_nothing() -> Done {
    Done {
        abandoned: false,
        compaction: Some(Ok(OptimizeReport::default())),
        caught_up: false,
        logs_cleaned: None,
        next_cleanup: None,
    }
}

/// Makes `thread` the sink's compaction in flight, which took every small file so far.
fn in_flight(c: &mut AutoCompactor, thread: std::thread::JoinHandle<Done>) {
    in_flight_told(c, |_| thread);
}

/// [`in_flight`], the thread made with the compaction's abandon signal.
fn in_flight_told(
    c: &mut AutoCompactor,
    thread: impl FnOnce(Arc<tokio::sync::Notify>) -> std::thread::JoinHandle<Done>,
) {
    let sink = c.sinks.get_mut("sink").unwrap();
    let compacts = Some((sink.small_files, sink.fresh_bytes));
    let abandon = Arc::new(tokio::sync::Notify::new());
    let thread = thread(Arc::clone(&abandon));
    sink.pending = Some(Pending { thread, compacts, checkpoints: false, idle: true, abandon });
    (sink.small_files, sink.fresh_bytes) = (0, 0);
}

/// Appends a one-row file as a stream's sink would, and counts it.
async fn append_and_count(c: &mut AutoCompactor, path: &std::path::Path, id: i64) {
    let before = super::super::table_health(path).await.unwrap().total_bytes;
    one_row_files(path, id..id + 1).await;
    let h = super::super::table_health(path).await.unwrap();
    let outcome = CommitOutcome {
        version: h.version,
        files_added: 1,
        bytes_added: h.total_bytes - before,
        ..CommitOutcome::default()
    };
    c.committed("sink", &outcome);
}

/// A table of `files` one-row files watched with a compaction due every 2 files, and a
/// starvation limit of 100 ms.
async fn starving(files: i64) -> (tempfile::TempDir, AutoCompactor) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t");
    one_row_files(&path, 0..files).await;
    let mut c = AutoCompactor {
        starved_after: Some(Duration::from_millis(100)),
        ..AutoCompactor::default()
    };
    c.watch("sink", &path, CommitMeta::tool("test"), Some(Some(2)), None).await.unwrap();
    (dir, c)
}

/// Each compaction that ran: the files it removed, and whether it ran to catch up.
fn runs(done: &[Compacted]) -> Vec<(u64, bool)> {
    done.iter()
        .filter_map(|d| Some((d.result.as_ref()?.as_ref().ok()?.files_removed, d.caught_up)))
        .collect()
}

/// A compaction starved of CPU (other processes keep the cores busy; it runs at
/// SCHED_IDLE) holds an append back for [`STARVED_AFTER`] at most: then it is abandoned and
/// the next compaction, of its files and the new ones, runs at the normal priority.
#[tokio::test]
async fn a_starved_compaction_does_not_hold_the_stream_back() {
    let (dir, mut c) = starving(2).await;
    let path = dir.path().join("t");
    // the compaction of the first two files never gets a core
    let (release, starved) = std::sync::mpsc::channel::<()>();
    in_flight(
        &mut c,
        std::thread::spawn(move || {
            let _ = starved.recv();
            found_nothing()
        }),
    );
    let tables = OpenTables::default();
    for id in 2..4 {
        c.before_write("sink", true).await;
        append_and_count(&mut c, &path, id).await;
        c.start_due(&tables).await;
    }
    // the next compaction is due while the starved one runs: waited for, then given up
    let waited = std::time::Instant::now();
    tokio::time::timeout(Duration::from_secs(20), c.before_write("sink", true))
        .await
        .expect("an append waits for a starved compaction for ever");
    assert!(waited.elapsed() >= Duration::from_millis(100));
    append_and_count(&mut c, &path, 4).await;
    c.start_due(&tables).await;
    c.finish(&tables, false).await;
    let _ = release.send(());
    let done = c.take_done();
    // every file, the starved compaction's two among them, at the normal priority
    assert_eq!(runs(&done), [(5, true)], "{done:?}");
    assert_eq!(super::super::table_health(&path).await.unwrap().files, 1);
}

#[tokio::test]
async fn a_stream_that_ran_out_of_input_ends_compacted() {
    let (files, done) = end_with_a_compaction_due(true).await;
    let removed: Vec<u64> = done
        .iter()
        .filter_map(|d| d.result.as_ref()?.as_ref().ok())
        .map(|r| r.files_removed)
        .collect();
    // the in-flight one, then the one due: the three appends (and the first file) in one
    assert_eq!(removed, [0, 4], "{done:?}");
    assert_eq!(files, 1);
    let (files, done) = end_with_a_compaction_due(false).await;
    assert_eq!((files, done.len()), (4, 1), "a stopped stream does not wait: {done:?}");
}

/// A MERGE (or the stream's end) waits for a starved compaction [`STARVED_AFTER`], then
/// until it has stopped, and the next compaction takes its files at the normal priority.
#[tokio::test]
async fn a_merge_stops_a_starved_compaction_before_it_writes() {
    let (_dir, mut c) = starving(3).await;
    // starved until told to abandon: then it stops as the upkeep's runtime would
    in_flight_told(&mut c, |abandon| {
        std::thread::spawn(move || {
            futures::executor::block_on(abandon.notified());
            Done { abandoned: true, ..found_nothing() }
        })
    });
    tokio::time::timeout(Duration::from_secs(20), c.before_write("sink", false))
        .await
        .expect("a MERGE waits for a starved compaction for ever");
    assert!(c.sinks["sink"].pending.is_none(), "stopped before the MERGE writes");
    assert!(c.take_done().is_empty(), "an abandoned compaction did nothing");
    c.start_due(&OpenTables::default()).await;
    c.finish(&OpenTables::default(), false).await;
    let done = c.take_done();
    assert_eq!(runs(&done), [(3, true)], "{done:?}");
}

/// A compaction at the normal priority (the restarted one, one that caught up, the stream's
/// last) is never abandoned: one longer than the limit would be abandoned and restarted for
/// ever.
#[tokio::test]
async fn a_compaction_at_the_normal_priority_is_waited_for_however_long() {
    let (_dir, mut c) = starving(3).await;
    // 400 ms of work, or less if told to abandon
    in_flight_told(&mut c, |abandon| {
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
            rt.block_on(async {
                tokio::select! {
                    () = abandon.notified() => Done { abandoned: true, ..found_nothing() },
                    () = tokio::time::sleep(Duration::from_millis(400)) => found_nothing(),
                }
            })
        })
    });
    c.sinks.get_mut("sink").unwrap().pending.as_mut().unwrap().idle = false;
    let waited = std::time::Instant::now();
    c.before_write("sink", false).await;
    assert!(waited.elapsed() >= Duration::from_millis(400), "waited for it to end");
    assert_eq!(c.take_done().len(), 1, "it ended and was kept, not abandoned");
    assert_eq!(c.sinks["sink"].small_files, 0, "its files are not handed to another");
}

/// An upkeep thread, and the threads it starts, run at SCHED_IDLE; other threads do not.
#[cfg(target_os = "linux")]
#[test]
fn upkeep_threads_yield_to_streams() {
    use thread_priority::{
        NormalThreadSchedulePolicy, ThreadSchedulePolicy, thread_schedule_policy,
    };
    let idle = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle);
    let (own, started) = std::thread::spawn(|| {
        super::yield_to_streams();
        let started = std::thread::spawn(|| thread_schedule_policy().unwrap());
        (thread_schedule_policy().unwrap(), started.join().unwrap())
    })
    .join()
    .unwrap();
    assert_eq!((own, started), (idle, idle));
    assert_ne!(thread_schedule_policy().unwrap(), idle);
}
