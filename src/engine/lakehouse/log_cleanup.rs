//! Expired log cleanup after a stream's log checkpoint, listing `_delta_log` only when a file
//! in it can have expired.
//!
//! Delta deletes log files older than `delta.logRetentionDuration` (30 days) "after checkpoint
//! operations". delta-rs's `cleanup_metadata` lists the whole `_delta_log` and reads each
//! file's time to decide, so a cleanup after every log checkpoint (every 10 commits) cost a
//! listing that grows with the table's age: 2,000 stats per checkpoint after 2,000 batches,
//! ~7% of the upkeep's CPU. Whether a file can be deleted depends on which files are older
//! than the cutoff (now − retention), which only changes when a kept file crosses it: one
//! listing tells when that next happens (the oldest file still kept, plus the retention), and
//! until then a cleanup has nothing to do. A new table lists once per process and then waits
//! 30 days; at most a day goes by without a listing (files another tool wrote with an old
//! time).

use chrono::Utc;
use deltalake::DeltaTable;
use deltalake::checkpoints::cleanup_expired_logs_for;
use deltalake::table::config::TablePropertiesExt as _;
use futures::TryStreamExt as _;

use super::super::Result;

/// Longest wait between two listings of a log, whatever its files' times say.
const LIST_AT_LEAST_EVERY_MS: i64 = 24 * 60 * 60 * 1000;

/// When a log's cleanup may next find something to delete (ms since the epoch); `None`: list
/// the log to know.
pub type NextCleanup = Option<i64>;

/// Deletes the table's expired log files unless none can have expired before `next` (a
/// previous call's answer). Returns the files deleted and when to look again.
pub async fn clean_expired_logs(
    table: &DeltaTable,
    next: NextCleanup,
) -> Result<(usize, NextCleanup)> {
    let snapshot = table.snapshot()?;
    let config = snapshot.table_config();
    if !config.enable_expired_log_cleanup() {
        return Ok((0, None));
    }
    let now = Utc::now().timestamp_millis();
    if next.is_some_and(|at| now < at) {
        return Ok((0, next));
    }
    let retention = i64::try_from(config.log_retention_duration().as_millis()).unwrap_or(i64::MAX);
    let cutoff = now.saturating_sub(retention);
    let log_store = table.log_store();
    let files: Vec<(String, i64)> = log_store
        .object_store(None)
        .list(Some(log_store.log_path()))
        .map_ok(|m| {
            (
                m.location.filename().unwrap_or_default().to_owned(),
                m.last_modified.timestamp_millis(),
            )
        })
        .try_collect()
        .await
        .map_err(deltalake::DeltaTableError::from)?;
    let (expired, next) = expiry(&files, cutoff, retention, now);
    let deleted = if expired {
        cleanup_expired_logs_for(snapshot.version(), log_store.as_ref(), cutoff, None).await?
    } else {
        0
    };
    Ok((deleted, Some(next)))
}

/// Whether a Delta log file (a commit or a checkpoint: a 20-digit version first) is among
/// `files` (names and times in ms) at or before `cutoff`, and when the next kept one reaches
/// it: the oldest time after the cutoff plus the retention (at most a day from `now`).
fn expiry(files: &[(String, i64)], cutoff: i64, retention: i64, now: i64) -> (bool, i64) {
    let log_file = |name: &str| {
        name.len() > 20
            && name.as_bytes()[..20].iter().all(u8::is_ascii_digit)
            && (name.ends_with(".json") || name.ends_with(".parquet"))
    };
    let times = files.iter().filter(|(n, _)| log_file(n)).map(|&(_, t)| t);
    let expired = times.clone().any(|t| t <= cutoff);
    let oldest_kept = times.filter(|&t| t > cutoff).min().unwrap_or(now);
    let next =
        oldest_kept.saturating_add(retention).min(now.saturating_add(LIST_AT_LEAST_EVERY_MS));
    (expired, next)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 24 * 60 * 60 * 1000;

    fn files(list: &[(&str, i64)]) -> Vec<(String, i64)> {
        list.iter().map(|&(n, t)| (n.to_owned(), t)).collect()
    }

    #[test]
    fn a_young_log_waits_for_its_oldest_file_to_expire() {
        let now = 100 * DAY;
        let log = files(&[
            ("00000000000000000000.json", now - 2 * DAY),
            ("00000000000000000009.checkpoint.parquet", now - DAY),
            ("00000000000000000010.json", now - DAY),
            ("_last_checkpoint", now),
        ]);
        // 30 days' retention: nothing expired; the first commit expires 28 days from now,
        // but a day is the longest wait
        assert_eq!(expiry(&log, now - 30 * DAY, 30 * DAY, now), (false, now + DAY));
        // 60 hours' retention: nothing expired, the first commit's turn comes in 12 hours
        let hours_60 = 60 * DAY / 24;
        assert_eq!(expiry(&log, now - hours_60, hours_60, now), (false, now + DAY / 2));
    }

    #[test]
    fn an_expired_file_asks_for_a_cleanup_and_the_next_kept_one_sets_the_time() {
        let now = 100 * DAY;
        let log = files(&[
            ("00000000000000000000.json", now - 40 * DAY),
            ("00000000000000000001.json", now - 29 * DAY - 20 * 60 * 60 * 1000),
            ("00000000000000000002.crc", now - 50 * DAY),
            ("_last_checkpoint", now - 45 * DAY),
        ]);
        let (expired, next) = expiry(&log, now - 30 * DAY, 30 * DAY, now);
        assert!(expired);
        assert_eq!(next, now + 4 * 60 * 60 * 1000, "commit 1 expires in 4 hours");
        // other files, however old, ask for nothing
        let others =
            files(&[("00000000000000000002.crc", 0), ("_last_checkpoint", 0), ("x.json", 0)]);
        assert_eq!(expiry(&others, now - 30 * DAY, 30 * DAY, now), (false, now + DAY));
    }

    #[test]
    fn no_retention_cleans_every_time() {
        let now = 100 * DAY;
        let log =
            files(&[("00000000000000000000.json", now - 5), ("00000000000000000001.json", now)]);
        assert_eq!(expiry(&log, now, 0, now), (true, now));
    }
}
