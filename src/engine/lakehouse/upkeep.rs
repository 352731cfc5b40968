//! Lakehouse upkeep: OPTIMIZE (bin-packing or Z-order) and VACUUM, with Delta Lake's rules —
//! VACUUM keeps files younger than the table's `delta.deletedFileRetentionDuration` (7 days)
//! unless forced, and a dry run lists what it would delete and deletes nothing. Both commit
//! with our commit metadata so the timeline shows who ran them.

use std::num::NonZeroU64;
use std::path::Path;

use deltalake::operations::optimize::OptimizeType;
use deltalake::operations::vacuum::VacuumMode;
use deltalake::table::config::TablePropertiesExt as _;
use deltalake::{DeltaTable, FilterOp, FilterValue};

use super::super::delta::{self, CommitMeta};
use super::super::{EngineError, Result};
use super::files::{decode_path, file_size, stale_staging_files};

/// How to OPTIMIZE a table.
#[derive(Clone, Debug, Default)]
pub struct OptimizeOptions {
    /// A predicate over partition columns (`date = '2026-11-30' AND region IN ('eu', 'us')`),
    /// as Delta's `OPTIMIZE … WHERE`: only those partitions are compacted.
    pub where_: Option<String>,
    /// Z-order by these columns instead of bin-packing.
    pub zorder_by: Vec<String>,
    /// Target file size in bytes (default: the table's `delta.targetFileSize`, else 100 MB).
    pub target_size: Option<u64>,
}

/// What an OPTIMIZE did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OptimizeReport {
    /// The commit it wrote; `None` when there was nothing to compact.
    pub version: Option<i64>,
    pub files_before: usize,
    pub files_after: usize,
    pub files_removed: u64,
    pub files_added: u64,
    pub bytes_removed: u64,
    pub bytes_added: u64,
    pub partitions_optimized: u64,
}

impl std::fmt::Display for OptimizeReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.version {
            Some(v) => write!(
                f,
                "optimized: {} file(s) ({} bytes) rewritten as {} file(s) ({} bytes) in {} partition(s); {} → {} files; version {v}",
                self.files_removed,
                self.bytes_removed,
                self.files_added,
                self.bytes_added,
                self.partitions_optimized,
                self.files_before,
                self.files_after
            ),
            None => {
                write!(f, "nothing to optimize: {} file(s), none to compact", self.files_before)
            }
        }
    }
}

/// A partition filter parsed from `--where`, owning its text.
#[derive(Clone, Debug, PartialEq)]
struct Filter {
    column: String,
    op: FilterOp,
    values: Vec<String>,
    set: bool,
}

/// Parses `col = 'v' AND col2 IN ('a', 'b') AND n >= 3` into partition filters. Delta's
/// OPTIMIZE WHERE takes partition columns only; the caller checks the columns.
fn parse_where(predicate: &str) -> Result<Vec<Filter>> {
    let bad = |why: &str| {
        EngineError::Config(format!(
            "--where `{predicate}`: {why}; write comparisons of partition columns joined by AND, e.g. date = '2026-11-30' AND region IN ('eu', 'us')"
        ))
    };
    let mut filters = Vec::new();
    // a space on each side so a leading or trailing AND leaves an empty condition
    for part in split_and(&format!(" {predicate} ")) {
        let part = part.trim();
        if part.is_empty() {
            return Err(bad("an empty condition"));
        }
        let col_end = part.find(|c: char| c.is_whitespace() || "=!<>".contains(c)).unwrap_or(0);
        if col_end == 0 {
            return Err(bad(&format!("`{part}` does not start with a column name")));
        }
        let column = part[..col_end].trim_matches('`').to_owned();
        let rest = part[col_end..].trim_start();
        let upper = rest.to_ascii_uppercase();
        let (op, set, value_text) = if upper.starts_with("NOT IN") {
            (FilterOp::NotIn, true, &rest[6..])
        } else if upper.starts_with("IN") {
            (FilterOp::In, true, &rest[2..])
        } else {
            let ops = [
                ("!=", FilterOp::Ne),
                ("<>", FilterOp::Ne),
                ("<=", FilterOp::Le),
                (">=", FilterOp::Ge),
                ("=", FilterOp::Eq),
                ("<", FilterOp::Lt),
                (">", FilterOp::Gt),
            ];
            let Some((sym, op)) = ops.iter().find(|(s, _)| rest.starts_with(s)) else {
                return Err(bad(&format!("`{part}` has no comparison (=, !=, <, <=, >, >=, IN)")));
            };
            (*op, false, &rest[sym.len()..])
        };
        let value_text = value_text.trim();
        let values = if set {
            let inner = value_text
                .strip_prefix('(')
                .and_then(|v| v.strip_suffix(')'))
                .ok_or_else(|| bad(&format!("`{part}`: IN needs a list in parentheses")))?;
            split_top(inner, ',').into_iter().map(|v| literal(v.trim())).collect::<Vec<_>>()
        } else {
            vec![literal(value_text)]
        };
        if values.iter().any(String::is_empty) && !value_text.contains("''") {
            return Err(bad(&format!("`{part}` has no value")));
        }
        filters.push(Filter { column, op, values, set });
    }
    Ok(filters)
}

/// A SQL literal's text: `'it''s'` → `it's`, `42` → `42`.
fn literal(v: &str) -> String {
    match v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')) {
        Some(inner) => inner.replace("''", "'"),
        None => v.to_owned(),
    }
}

/// Splits on ` AND ` (any case) outside quotes.
fn split_and(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' {
            quoted = !quoted;
        }
        let ahead: String = chars[i..chars.len().min(i + 5)].iter().collect();
        if !quoted && ahead.len() == 5 && ahead.eq_ignore_ascii_case(" AND ") {
            out.push(std::mem::take(&mut cur));
            i += 5;
            continue;
        }
        cur.push(c);
        i += 1;
    }
    out.push(cur);
    out
}

/// Splits on `sep` outside quotes.
fn split_top(s: &str, sep: char) -> Vec<&str> {
    let mut out = Vec::new();
    let mut quoted = false;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        if c == '\'' {
            quoted = !quoted;
        } else if c == sep && !quoted {
            out.push(&s[start..i]);
            start = i + c.len_utf8();
        }
    }
    out.push(&s[start..]);
    out
}

/// OPTIMIZE the table at `path`: small files of each partition are rewritten into files of
/// about the target size (or Z-ordered). The new files are `dataChange = false`, so a stream
/// reading the table skips the commit, as Spark's Delta source does.
pub async fn optimize(
    path: &Path,
    opts: &OptimizeOptions,
    meta: &CommitMeta,
) -> Result<OptimizeReport> {
    Ok(optimize_open(delta::open(path).await?, path, opts, meta.properties()).await?.0)
}

/// [`optimize`] of a table already open (a stream's sink: no log replay), committed with
/// `props`, returning the table at the OPTIMIZE's version too.
pub async fn optimize_open(
    table: DeltaTable,
    path: &Path,
    opts: &OptimizeOptions,
    props: deltalake::kernel::transaction::CommitProperties,
) -> Result<(OptimizeReport, DeltaTable)> {
    let before = table.snapshot()?.log_data().num_files();
    let before_version = table.version().map_or(-1, |v| v as i64);
    let partition_columns = table.snapshot()?.metadata().partition_columns().to_vec();
    let filters = match &opts.where_ {
        Some(w) => parse_where(w)?,
        None => Vec::new(),
    };
    for f in &filters {
        if !partition_columns.contains(&f.column) {
            return Err(EngineError::Config(if partition_columns.is_empty() {
                format!(
                    "--where may only use partition columns (as Delta's OPTIMIZE WHERE), and {} has no partition columns: leave --where out",
                    path.display()
                )
            } else {
                format!(
                    "--where may only use partition columns (as Delta's OPTIMIZE WHERE); `{}` is not one of {}",
                    f.column,
                    partition_columns.join(", ")
                )
            }));
        }
    }
    let literals: Vec<deltalake::FilterLiteral<'_>> = filters
        .iter()
        .map(|f| {
            let value = if f.set {
                FilterValue::Set(f.values.iter().map(String::as_str).collect())
            } else {
                FilterValue::Scalar(f.values.first().map(String::as_str).unwrap_or_default())
            };
            (f.column.as_str(), f.op, value)
        })
        .collect();
    let schema_columns: Vec<String> =
        table.snapshot()?.schema().fields().map(|f| f.name().clone()).collect();
    for c in &opts.zorder_by {
        if !schema_columns.contains(c) {
            return Err(EngineError::Config(format!(
                "--zorder-by `{c}` is not a column of {}; columns are: {}",
                path.display(),
                schema_columns.join(", ")
            )));
        }
        if partition_columns.contains(c) {
            return Err(EngineError::Config(format!(
                "--zorder-by `{c}` is a partition column: Z-order by data columns (partitions are already grouped)"
            )));
        }
    }
    let mut builder = table
        .optimize()
        .with_filters(&literals)
        .with_commit_properties(props)
        .with_writer_properties(crate::engine::delta::writer_properties())
        .with_type(if opts.zorder_by.is_empty() {
            OptimizeType::Compact
        } else {
            OptimizeType::ZOrder(opts.zorder_by.clone())
        });
    if let Some(size) = opts.target_size.and_then(NonZeroU64::new) {
        builder = builder.with_target_size(size);
    }
    let (table, metrics) = builder.await?;
    let version = table.version().map_or(-1, |v| v as i64);
    let report = OptimizeReport {
        version: (version > before_version).then_some(version),
        files_before: before,
        files_after: table.snapshot()?.log_data().num_files(),
        files_removed: metrics.num_files_removed,
        files_added: metrics.num_files_added,
        bytes_removed: metrics.files_removed.total_size.max(0) as u64,
        bytes_added: metrics.files_added.total_size.max(0) as u64,
        partitions_optimized: metrics.partitions_optimized,
    };
    Ok((report, table))
}

/// How to VACUUM a table.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct VacuumOptions {
    /// Keep unreferenced files younger than this (default: the table's
    /// `delta.deletedFileRetentionDuration`, 7 days).
    pub retain_hours: Option<f64>,
    /// List what would be deleted; delete nothing.
    pub dry_run: bool,
    /// Allow a retention below the table's (Spark's
    /// `spark.databricks.delta.retentionDurationCheck.enabled = false`).
    pub force: bool,
}

/// What a VACUUM deleted (or, in a dry run, would delete).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct VacuumReport {
    pub dry_run: bool,
    /// Paths relative to the table root, with their sizes in bytes.
    pub files: Vec<(String, u64)>,
    pub bytes: u64,
    pub retain_hours: f64,
    /// The VACUUM END commit (`None` in a dry run or when nothing was deleted).
    pub version: Option<i64>,
}

impl std::fmt::Display for VacuumReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = if self.dry_run { "would delete" } else { "deleted" };
        write!(
            f,
            "vacuum {what} {} file(s), {} bytes (unreferenced and older than {} hours)",
            self.files.len(),
            self.bytes,
            self.retain_hours
        )?;
        if let Some(v) = self.version {
            write!(f, "; version {v}")?;
        }
        Ok(())
    }
}

/// VACUUM the table at `path`: delete data files that no version within the retention needs
/// and that are older than the retention — the files that the log removed and files no
/// commit ever added (a crashed writer's), as Spark's VACUUM does.
pub async fn vacuum(path: &Path, opts: &VacuumOptions, meta: &CommitMeta) -> Result<VacuumReport> {
    let table = delta::open(path).await?;
    let before_version = table.version().map_or(-1, |v| v as i64);
    let table_retention = table.snapshot()?.table_config().deleted_file_retention_duration();
    let table_hours = table_retention.as_secs_f64() / 3600.0;
    let retain_hours = opts.retain_hours.unwrap_or(table_hours);
    if !retain_hours.is_finite() || retain_hours < 0.0 {
        return Err(EngineError::Config(format!(
            "--retain-hours {retain_hours}: give a number of hours ≥ 0"
        )));
    }
    if retain_hours < table_hours && !opts.force {
        return Err(EngineError::Config(format!(
            "vacuum with a retention of {retain_hours} hours is below {}'s retention of {table_hours} hours (delta.deletedFileRetentionDuration): a reader or stream still using an older version could lose its files. If nothing reads or writes the table now, pass --force (Spark: spark.databricks.delta.retentionDurationCheck.enabled = false)",
            path.display()
        )));
    }
    let retention = chrono::Duration::milliseconds((retain_hours * 3_600_000.0) as i64);
    let run = |table: deltalake::DeltaTable, dry_run: bool| {
        table
            .vacuum()
            .with_mode(VacuumMode::Full)
            .with_retention_period(retention)
            .with_enforce_retention_duration(false)
            .with_dry_run(dry_run)
            .with_commit_properties(meta.properties())
    };
    // the dry run first, to know each file's size before it is gone
    let (table, planned) = run(table, true).await?;
    let sizes: std::collections::HashMap<String, u64> = planned
        .files_deleted
        .iter()
        .map(|f| {
            let rel = decode_path(f);
            let size = file_size(&path.join(&rel));
            (f.clone(), size)
        })
        .collect();
    // upload staging files of killed writers: object_store's listing hides them from delta-rs
    let age = std::time::Duration::from_secs_f64(retain_hours * 3600.0);
    let staging = stale_staging_files(path, age);
    let (table, metrics) = if opts.dry_run { (table, planned) } else { run(table, false).await? };
    let mut files: Vec<(String, u64)> = metrics
        .files_deleted
        .iter()
        .map(|f| (decode_path(f), sizes.get(f).copied().unwrap_or(0)))
        .collect();
    for (rel, size) in staging {
        if opts.dry_run {
            files.push((rel, size));
            continue;
        }
        match std::fs::remove_file(path.join(&rel)) {
            Ok(()) => files.push((rel, size)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(EngineError::Io { path: path.join(&rel), source }),
        }
    }
    files.sort();
    let version = table.version().map_or(-1, |v| v as i64);
    Ok(VacuumReport {
        dry_run: opts.dry_run,
        bytes: files.iter().map(|f| f.1).sum(),
        files,
        retain_hours,
        version: (version > before_version).then_some(version),
    })
}

/// OPTIMIZE or VACUUM as the Lakehouse panel asks for it.
#[derive(Clone, Debug, PartialEq)]
pub enum UpkeepOp {
    Optimize,
    /// VACUUM's dry run: what would be deleted.
    VacuumPlan(VacuumOptions),
    Vacuum(VacuumOptions),
}

/// What an [`UpkeepOp`] did.
#[derive(Clone, Debug, PartialEq)]
pub enum UpkeepDone {
    Optimized(OptimizeReport),
    Vacuumed(VacuumReport),
}

/// Runs `op` on the table at `path`, with the app's commit metadata.
pub async fn run_upkeep(path: &Path, op: UpkeepOp) -> Result<UpkeepDone> {
    let meta = CommitMeta::tool("medallion-app");
    Ok(match op {
        UpkeepOp::Optimize => {
            UpkeepDone::Optimized(optimize(path, &OptimizeOptions::default(), &meta).await?)
        }
        UpkeepOp::VacuumPlan(o) => {
            UpkeepDone::Vacuumed(vacuum(path, &VacuumOptions { dry_run: true, ..o }, &meta).await?)
        }
        UpkeepOp::Vacuum(o) => {
            UpkeepDone::Vacuumed(vacuum(path, &VacuumOptions { dry_run: false, ..o }, &meta).await?)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn where_parses_partition_comparisons() {
        let f = parse_where("date = '2026-11-30' AND region IN ('eu', 'it''s') and n >= 3")
            .expect("parses");
        assert_eq!(f.len(), 3);
        assert_eq!(
            (f[0].column.as_str(), f[0].op, f[0].values.clone()),
            ("date", FilterOp::Eq, vec!["2026-11-30".to_owned()])
        );
        assert_eq!(f[1].op, FilterOp::In);
        assert_eq!(f[1].values, vec!["eu".to_owned(), "it's".to_owned()]);
        assert!(f[1].set);
        assert_eq!((f[2].op, f[2].values.clone()), (FilterOp::Ge, vec!["3".to_owned()]));
        let f = parse_where("região <> 'são paulo AND rio'").expect("parses");
        assert_eq!(f[0].column, "região");
        assert_eq!(
            (f[0].op, f[0].values.clone()),
            (FilterOp::Ne, vec!["são paulo AND rio".to_owned()])
        );
    }

    #[test]
    fn where_rejects_what_it_cannot_read() {
        for bad in ["", "= 3", "date", "date LIKE 'x'", "date IN 'a'", "a = 1 AND"] {
            let e = parse_where(bad).expect_err(bad).to_string();
            assert!(e.contains("partition columns joined by AND"), "{bad}: {e}");
        }
    }
}
