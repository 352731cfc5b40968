//! Upkeep of streaming Delta sinks in the background, as Databricks does it:
//! - **auto-compaction** (`autoCompact`): after a commit, once at least
//!   [`COMPACT_MIN_FILES`] small files have been added, an OPTIMIZE runs on a thread of its
//!   own while the stream goes on;
//! - **log checkpoints and cleanup**: stream commits skip delta-rs's post-commit checkpoint
//!   and cleanup. Once a commit reaches a multiple of `delta.checkpointInterval`, the
//!   checkpoint is written in the background (a checkpoint is a function of the log up to its
//!   version, so anyone may write it at any time; written inline it made every 100th small
//!   batch 60–130 ms instead of ~20, all of the p99 of `bench upkeep`), then expired log files
//!   are deleted, as Delta does "after checkpoint operations" per `delta.logRetentionDuration`
//!   (delta-rs's per-commit cleanup lists the whole `_delta_log`, a cost that grows with it;
//!   ours lists it only when a file can have expired, `log_cleanup.rs`).
//!
//! Appends go on while a compaction runs: Delta lets a blind append and an OPTIMIZE commit in
//! either order (delta-rs checks the winning commit and retries at the next version), so the
//! batch after a compaction start no longer waits for it (p99 of 2,000 small batches ~620 ms →
//! see `bench upkeep` in the notes). MERGE and overwrite sinks still wait: they read the files a
//! compaction removes, and would fail on its commit. (Session 5 took a miscount for lost rows:
//! the sink read "the newest commit's" metrics, which were the compaction's; it now reads its
//! own version's.)
//! A compaction takes the files added since the last one and packs them with delta-rs's
//! planner at a target of twice their size: earlier outputs larger than that are skipped, so
//! each compaction's cost follows what arrived since the last one, not the table's size.
//! Exactly-once is untouched: a compaction's commit carries no stream transaction and adds
//! its files with `dataChange = false`, and a crash in the middle leaves only files no commit
//! references (VACUUM removes them); the stream's own batches are in the log already.
//! The small-file count is per table, not per partition: a table's partitions are compacted
//! together.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use deltalake::DeltaTable;
use deltalake::table::config::TablePropertiesExt as _;

use super::super::delta::{self, CommitMeta, CommitOutcome};
use super::super::open_tables::OpenTables;
use super::super::{EngineError, Result};
use super::health::{
    COMPACT_MIN_FILES, SMALL_FILE_FRACTION, SPARK_CHECKPOINT_INTERVAL, checkpoint_interval,
};
use super::log_cleanup::{NextCleanup, clean_expired_logs};
use super::upkeep::{OptimizeOptions, OptimizeReport, optimize_open};

/// What one background upkeep did.
#[derive(Debug)]
pub struct Compacted {
    pub sink: String,
    pub table: PathBuf,
    /// The compaction's outcome (`None` when only the log was checkpointed).
    pub result: Option<Result<OptimizeReport>>,
    /// Log files deleted after a log checkpoint, or why checkpointing or cleaning failed.
    pub logs_cleaned: Option<Result<usize>>,
    /// The compaction had fallen behind (see [`CATCH_UP`]) and ran at the normal priority.
    pub caught_up: bool,
}

struct Done {
    /// It was told to abandon and stopped before it ended.
    abandoned: bool,
    compaction: Option<Result<OptimizeReport>>,
    caught_up: bool,
    logs_cleaned: Option<Result<usize>>,
    next_cleanup: NextCleanup,
}

struct Sink {
    path: PathBuf,
    meta: CommitMeta,
    /// Small files added since the last compaction started (at the start: all small files),
    /// and their bytes.
    small_files: usize,
    fresh_bytes: u64,
    /// Compact once this many small files gathered; `None`: never (auto_compact = false).
    min_files: Option<usize>,
    /// delta.checkpointInterval: a log checkpoint is due once a commit reaches version
    /// k·interval − 1.
    checkpoint_interval: u64,
    /// (newest version seen + 1) / interval when the last checkpoint was due.
    checkpoints_seen: u64,
    checkpoint_due: bool,
    /// When the log's cleanup may next find an expired file (`log_cleanup.rs`).
    next_cleanup: NextCleanup,
    pending: Option<Pending>,
    /// A compaction was abandoned, starved at `SCHED_IDLE` ([`STARVED_AFTER`]): the next one
    /// runs at the normal priority.
    starved: bool,
}

/// An upkeep in flight.
struct Pending {
    thread: std::thread::JoinHandle<Done>,
    /// The small files and bytes it compacts (`None`: it only checkpoints the log).
    compacts: Option<(usize, u64)>,
    /// Whether it writes a log checkpoint.
    checkpoints: bool,
    /// It runs at `SCHED_IDLE`, so other processes can starve it; one at the normal priority
    /// is never abandoned (a compaction that takes longer than [`STARVED_AFTER`] would be
    /// abandoned and restarted for ever).
    idle: bool,
    /// Tells it to stop where it is, without committing what it has not committed.
    abandon: Arc<tokio::sync::Notify>,
}

/// How long a stream waits for a compaction it must wait for (the next one is due) before it
/// stops waiting for idle time: at `SCHED_IDLE` the compaction runs only when a core is idle,
/// and other processes that keep both cores busy starved it — a stream of 45 one-file batches
/// compacting every 10 took 140 s instead of 0.8 with three CPU-bound processes beside it. The
/// compaction is then abandoned and started again at the normal priority after the next append
/// (an append and a compaction commit in either order).
const STARVED_AFTER: Duration = Duration::from_secs(2);

/// A compaction that starts with this many times its `min_files` small files has fallen
/// behind (streams kept both cores busy): it runs at the normal priority to catch up.
const CATCH_UP: usize = 4;

/// Runs this thread, and the threads it starts (its runtime's blocking pool, delta-kernel's
/// executor threads inherit it), at Linux's `SCHED_IDLE`: a stream thread that wakes takes
/// the core at once instead of waiting out the upkeep's time slice. Compaction keeps up on the
/// cores' idle time: a project of 4,000 batches of 200 rows back to back, three alternating
/// runs, batch p99 8–12 / 11–12 / 14–17 ms after 100 / 1,000 / 4,000 batches instead of
/// 10–14 / 13–16 / 17–19, the same 79 compactions (~5% more system time: more preemptions).
/// Best effort: where the policy cannot be set the upkeep runs as before.
fn yield_to_streams() {
    #[cfg(target_os = "linux")]
    {
        use thread_priority::{
            NormalThreadSchedulePolicy, ThreadPriority, ThreadSchedulePolicy,
            set_thread_priority_and_policy, thread_native_id,
        };
        let idle = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle);
        let _ = set_thread_priority_and_policy(thread_native_id(), ThreadPriority::Min, idle);
    }
}

/// Runs `upkeep` on this thread (made for it), on a one-thread runtime of its own. In the
/// stream's runtime, Parquet decoding and encoding in async tasks held its two workers and the
/// batches written meanwhile took 40–80 ms instead of ~12 (2 cores); here 25–33 ms. (At nice
/// 19 it fell behind: 100–160 files after 1,000–2,000 batches, and no better p99; at nice 10
/// too, 463 files and p99 68 ms after 2,000.)
/// Told to `abandon`, it drops the upkeep where it is (a compaction's files that no commit
/// references yet are left for VACUUM, as after a crash).
fn run_in_background(upkeep: impl Future<Output = Done>, abandon: &tokio::sync::Notify) -> Done {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .thread_name(UPKEEP_THREAD)
        .enable_all()
        .build();
    match runtime {
        Ok(rt) => rt.block_on(async {
            tokio::select! {
                done = upkeep => done,
                () = abandon.notified() => Done {
                    abandoned: true,
                    compaction: None,
                    caught_up: false,
                    logs_cleaned: None,
                    next_cleanup: None,
                },
            }
        }),
        Err(e) => Done {
            abandoned: false,
            compaction: Some(Err(EngineError::Config(format!(
                "auto-compaction could not start a runtime: {e}"
            )))),
            caught_up: false,
            logs_cleaned: None,
            next_cleanup: None,
        },
    }
}

impl Sink {
    /// A commit at `version` (the stream's or a compaction's): a log checkpoint is due once
    /// the versions reach the next multiple of the interval.
    fn saw_version(&mut self, version: i64) {
        let Ok(v) = u64::try_from(version) else { return };
        let reached = (v + 1) / self.checkpoint_interval;
        if reached > self.checkpoints_seen {
            self.checkpoints_seen = reached;
            self.checkpoint_due = true;
        }
    }
}

/// The background upkeep of one stream's Delta sinks.
#[derive(Default)]
pub struct AutoCompactor {
    sinks: BTreeMap<String, Sink>,
    done: Vec<Compacted>,
    /// [`STARVED_AFTER`], unless a test sets another.
    starved_after: Option<Duration>,
}

/// The name of upkeep's threads.
const UPKEEP_THREAD: &str = "medallion-upkeep";

/// At a stream's start, small files up to this many times the median small file count as
/// fresh (not yet compacted).
const FRESH_SIZE_SPREAD: i64 = 4;

/// The table at `path` as a watched sink starts: its small files and their bytes, its
/// checkpoint interval and version.
struct TableState {
    small_files: usize,
    small_bytes: u64,
    interval: u64,
    version: u64,
}

async fn table_state(path: &Path) -> Result<TableState> {
    let Some(table) = delta::try_open(path).await? else {
        let interval = SPARK_CHECKPOINT_INTERVAL;
        return Ok(TableState { small_files: 0, small_bytes: 0, interval, version: 0 });
    };
    let snapshot = table.snapshot()?;
    let config = snapshot.table_config();
    // the files a stream adds are alike; an earlier compaction's outputs are many times their
    // size and are not counted as fresh (else the first compaction after a restart rewrote
    // them all)
    let limit = (config.target_file_size().get() / SMALL_FILE_FRACTION) as i64;
    let mut small: Vec<i64> =
        snapshot.log_data().iter().map(|f| f.size()).filter(|&s| s < limit).collect();
    small.sort_unstable();
    let typical = small.get(small.len() / 2).copied().unwrap_or_default();
    small.retain(|&s| s <= typical.saturating_mul(FRESH_SIZE_SPREAD));
    Ok(TableState {
        small_files: small.len(),
        small_bytes: small.iter().map(|&s| s as u64).sum(),
        interval: checkpoint_interval(snapshot),
        version: table.version().unwrap_or_default(),
    })
}

/// The table a sink's upkeep found gone.
fn no_table(path: &Path) -> EngineError {
    EngineError::Config(format!("{}: the table is gone (no Delta log)", path.display()))
}

/// The OPTIMIZE target for a compaction of `fresh_bytes` added since the last one: twice
/// that (at most the table's `delta.targetFileSize`). delta-rs's planner skips files larger
/// than the target and packs the rest, newest first, into bins up to it: the fresh files go
/// into one, an earlier output joins them until it outgrows the target, then stays as it is.
/// Rewriting every small file each time cost 86 → 610 ms per compaction over 2,000 small
/// batches, growing with the table; this keeps each compaction near the fresh files' size.
fn fresh_target(table: &DeltaTable, fresh_bytes: u64) -> Result<u64> {
    let table_target = table.snapshot()?.table_config().target_file_size().get();
    Ok((2 * fresh_bytes).clamp(1, table_target))
}

/// Writes a log checkpoint of the table at `path` at its newest version, then deletes the
/// expired log files (up to that checkpoint) unless the table turned
/// `delta.enableExpiredLogCleanup` off or none can have expired before `next`.
async fn checkpoint_and_clean(
    tables: &OpenTables,
    path: &Path,
    next: NextCleanup,
) -> Result<(usize, NextCleanup)> {
    let table = tables.latest(path).await?.ok_or_else(|| no_table(path))?;
    deltalake::checkpoints::create_checkpoint(&table, None).await?;
    clean_expired_logs(&table, next).await
}

impl AutoCompactor {
    /// Watches the sink `id` writing to `path`. `min_files` small files start a compaction
    /// (`Some(None)`: the default [`COMPACT_MIN_FILES`]; `None`: no compaction, only log
    /// cleanup). `interval` is the sink's `delta.checkpointInterval` for a table it creates.
    pub async fn watch(
        &mut self,
        id: &str,
        path: &Path,
        meta: CommitMeta,
        min_files: Option<Option<usize>>,
        interval: Option<u64>,
    ) -> Result<()> {
        let state = table_state(path).await?;
        let checkpoint_interval = interval.unwrap_or(state.interval).max(1);
        self.sinks.insert(
            id.to_owned(),
            Sink {
                path: path.to_owned(),
                meta,
                small_files: state.small_files,
                fresh_bytes: state.small_bytes,
                min_files: min_files.map(|m| m.unwrap_or(COMPACT_MIN_FILES).max(2)),
                checkpoint_interval,
                checkpoints_seen: (state.version + 1) / checkpoint_interval,
                checkpoint_due: false,
                next_cleanup: None,
                pending: None,
                starved: false,
            },
        );
        Ok(())
    }

    /// Call before writing to the sink's table: a write that only appends (`appends`) goes
    /// ahead of an upkeep in flight, any other waits for it. So does an append once the next
    /// compaction is due while one runs: a compaction that cannot keep up holds the stream
    /// back instead of letting small files pile up (a busy machine saw 100 after 1,200 tiny
    /// batches). A log checkpoint in flight does not (it ends within a few batches, and the
    /// compaction starts after it): waiting for one made ~1 in 300 batches 4–5 ms slower.
    /// Every wait lasts [`STARVED_AFTER`] at most: then the upkeep is told to abandon. An
    /// append goes on at once (its thread ends alone when it next gets a core); a MERGE, an
    /// overwrite and the stream's end wait for it to stop (a MERGE would conflict with a
    /// compaction that committed after all; stopping takes it a few ms of CPU).
    pub async fn before_write(&mut self, id: &str, appends: bool) {
        let Some(sink) = self.sinks.get_mut(id) else { return };
        let Some(pending) = &sink.pending else { return };
        let running = !pending.thread.is_finished();
        let next_due = sink.min_files.is_some_and(|m| sink.small_files >= m);
        if appends && running {
            if !(next_due && pending.compacts.is_some()) {
                return;
            }
            if !self.finishes_in_time(id).await {
                // its thread goes on alone until it sees this, and is not joined
                if let Some(p) = self.sinks.get_mut(id).and_then(|s| s.pending.take()) {
                    p.abandon.notify_one();
                    self.abandoned(id, p.compacts, p.checkpoints);
                }
                return;
            }
        }
        self.wait(id).await;
    }

    /// Whether the sink's upkeep in flight ends within [`STARVED_AFTER`] (one at the normal
    /// priority: whenever it ends).
    async fn finishes_in_time(&self, id: &str) -> bool {
        let limit = self.starved_after.unwrap_or(STARVED_AFTER);
        let Some(pending) = self.sinks.get(id).and_then(|s| s.pending.as_ref()) else {
            return true;
        };
        if !pending.idle {
            return true;
        }
        let finished = async {
            while !pending.thread.is_finished() {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        };
        tokio::time::timeout(limit, finished).await.is_ok()
    }

    /// What an abandoned upkeep was doing (`compacts`, `checkpoints`: see [`Pending`]) is the
    /// next one's, a compaction at the normal priority.
    fn abandoned(&mut self, id: &str, compacts: Option<(usize, u64)>, checkpoints: bool) {
        let Some(sink) = self.sinks.get_mut(id) else { return };
        if let Some((files, bytes)) = compacts {
            sink.small_files += files;
            sink.fresh_bytes += bytes;
            sink.starved = true;
        }
        sink.checkpoint_due |= checkpoints;
    }

    /// Waits for the sink's upkeep in flight, if any, and keeps what it did; a starved one
    /// ([`STARVED_AFTER`]) is told to abandon and waited for until it stops.
    async fn wait(&mut self, id: &str) {
        let in_time = self.finishes_in_time(id).await;
        let Some(sink) = self.sinks.get_mut(id) else { return };
        let Some(pending) = sink.pending.take() else { return };
        if !in_time {
            pending.abandon.notify_one();
        }
        let (compacts, checkpoints) = (pending.compacts, pending.checkpoints);
        let done = super::super::threads::join(pending.thread).await.unwrap_or_else(|| Done {
            abandoned: false,
            compaction: Some(Err(EngineError::Config("auto-compaction stopped".to_owned()))),
            caught_up: false,
            logs_cleaned: None,
            next_cleanup: None,
        });
        if done.abandoned {
            self.abandoned(id, compacts, checkpoints);
            return;
        }
        let Some(sink) = self.sinks.get_mut(id) else { return };
        sink.next_cleanup = done.next_cleanup;
        if let Some(Ok(OptimizeReport { version: Some(v), .. })) = &done.compaction {
            sink.saw_version(*v);
        }
        self.done.push(Compacted {
            sink: id.to_owned(),
            table: sink.path.clone(),
            result: done.compaction,
            logs_cleaned: done.logs_cleaned,
            caught_up: done.caught_up,
        });
    }

    /// Counts what a commit of the sink added, at `version`.
    pub fn committed(&mut self, id: &str, outcome: &CommitOutcome) {
        if let Some(sink) = self.sinks.get_mut(id) {
            let version = outcome.version;
            sink.small_files += outcome.files_added as usize;
            sink.fresh_bytes += outcome.bytes_added;
            sink.saw_version(version);
        }
    }

    /// Starts the upkeep that is due: compaction of tables with enough small files, log
    /// cleanup after a checkpoint.
    pub async fn start_due(&mut self, tables: &OpenTables) {
        self.start(tables, true, false).await;
    }

    /// Starts the log checkpoints that are due and, with `compactions`, the compactions; with
    /// `last` (no stream batch will follow) at the normal priority.
    async fn start(&mut self, tables: &OpenTables, compactions: bool, last: bool) {
        let finished: Vec<String> = self
            .sinks
            .iter()
            .filter(|(_, s)| s.pending.as_ref().is_some_and(|p| p.thread.is_finished()))
            .map(|(id, _)| id.clone())
            .collect();
        for id in finished {
            self.wait(&id).await;
        }
        for (id, sink) in self.sinks.iter_mut() {
            let compact = compactions && sink.min_files.is_some_and(|m| sink.small_files >= m);
            if sink.pending.is_some() || !(compact || sink.checkpoint_due) {
                continue;
            }
            let (path, meta, checkpoint) =
                (sink.path.clone(), sink.meta.clone(), sink.checkpoint_due);
            let (fresh, next_cleanup) = (sink.fresh_bytes, sink.next_cleanup);
            let behind = compact
                && (sink.starved
                    || sink.min_files.is_some_and(|m| sink.small_files >= CATCH_UP * m));
            let tables = tables.clone();
            let upkeep = async move {
                let mut done = Done {
                    abandoned: false,
                    compaction: None,
                    caught_up: behind,
                    logs_cleaned: None,
                    next_cleanup,
                };
                if compact {
                    // the stream's open table: no log replay (its cost grows with the log)
                    let compacted = async {
                        let table = tables.latest(&path).await?.ok_or_else(|| no_table(&path))?;
                        // delta-rs would list the whole `_delta_log` after the commit to clean
                        // it (a cost that grows with the log): cleaned below, after log
                        // checkpoints only
                        let props = meta
                            .properties()
                            .with_cleanup_expired_logs(Some(false))
                            .with_create_checkpoint(false);
                        let opts = OptimizeOptions {
                            target_size: Some(fresh_target(&table, fresh)?),
                            ..OptimizeOptions::default()
                        };
                        let (report, table) = optimize_open(table, &path, &opts, props).await?;
                        tables.remember(&path, table).await;
                        Ok(report)
                    }
                    .await;
                    done.compaction = Some(compacted);
                }
                if checkpoint {
                    let cleaned = checkpoint_and_clean(&tables, &path, next_cleanup).await;
                    done.next_cleanup = cleaned.as_ref().ok().and_then(|&(_, next)| next);
                    done.logs_cleaned = Some(cleaned.map(|(deleted, _)| deleted));
                }
                done
            };
            // named, so `top -H` and `perf` tell upkeep from the stream's own work
            let thread = std::thread::Builder::new().name(UPKEEP_THREAD.to_owned());
            let abandon = Arc::new(tokio::sync::Notify::new());
            let told = Arc::clone(&abandon);
            let idle = !(behind || last);
            match thread.spawn(move || {
                if idle {
                    yield_to_streams();
                }
                run_in_background(upkeep, &told)
            }) {
                Ok(thread) => {
                    let compacts = compact.then_some((sink.small_files, sink.fresh_bytes));
                    let checkpoints = checkpoint;
                    sink.pending = Some(Pending { thread, compacts, checkpoints, idle, abandon });
                }
                Err(e) => {
                    self.done.push(Compacted {
                        sink: id.clone(),
                        table: sink.path.clone(),
                        result: Some(Err(EngineError::Config(format!(
                            "the background upkeep could not start a thread: {e}"
                        )))),
                        logs_cleaned: None,
                        caught_up: false,
                    });
                    continue;
                }
            }
            if compact {
                // what commits add from now on is the next compaction's
                (sink.small_files, sink.fresh_bytes, sink.starved) = (0, 0, false);
            }
            sink.checkpoint_due = false;
        }
    }

    /// Waits for every upkeep in flight (the stream is ending), then writes the log checkpoints
    /// that came due while an upkeep was busy, so a stream's end leaves its log checkpointed.
    /// With `compact` (the stream ran out of input: availableNow, once) a compaction that came
    /// due while another ran runs too, as Databricks' auto compaction runs after the write that
    /// made it due; a stopped stream leaves it to its next run (a stop must not wait for one).
    /// Before, up to `min_files` appends made during the last compaction stayed small at the
    /// end (a loaded CI machine saw 14 files where 11 were expected).
    pub async fn finish(&mut self, tables: &OpenTables, compact: bool) {
        self.wait_all().await;
        self.start(tables, compact, true).await;
        self.wait_all().await;
    }

    async fn wait_all(&mut self) {
        let ids: Vec<String> = self.sinks.keys().cloned().collect();
        for id in ids {
            self.wait(&id).await;
        }
    }

    /// The upkeep that ended since the last call.
    pub fn take_done(&mut self) -> Vec<Compacted> {
        std::mem::take(&mut self.done)
    }
}

#[cfg(test)]
#[path = "auto_compact_tests.rs"]
mod tests;
