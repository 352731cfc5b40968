//! A table at one version (time travel) and the rows two versions differ by.

use std::collections::HashSet;
use std::path::Path;

use arrow::array::{Array, AsArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Int64Type};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::common::Column;
use datafusion::functions_window::expr_fn::row_number;
use datafusion::logical_expr::{Expr, ExprFunctionExt};
use datafusion::prelude::{DataFrame, SessionContext};
use deltalake::DeltaTable;
use futures::TryStreamExt;

use super::super::{EngineError, Preview, Result, delta, plan};
use super::history::commit_versions;

/// One data file of a snapshot.
#[derive(Debug)]
pub(super) struct SnapshotFile {
    /// The path as written in the log (URL-encoded, usually relative to the table root), which
    /// is what a file selection of the table provider matches.
    pub(super) path: String,
    /// The file's deletion vector, printed (`None` without one): the same path with another
    /// deletion vector holds other rows.
    pub(super) deletion_vector: Option<String>,
    /// `numRecords` of the statistics: rows in the file, deleted or not.
    pub(super) num_records: Option<u64>,
    /// Rows that the deletion vector marks deleted.
    pub(super) deleted_by_dv: u64,
}

/// The data files of the table's loaded snapshot.
pub(super) fn snapshot_files(table: &DeltaTable) -> Result<Vec<SnapshotFile>> {
    let mut out = Vec::new();
    for batch in table.snapshot()?.add_actions_batches(false)? {
        let column = |name: &str| {
            batch.column_by_name(name).cloned().ok_or_else(|| {
                EngineError::Config(format!("the table's file list has no `{name}` column"))
            })
        };
        let paths = cast(&column("path")?, &DataType::Utf8)?;
        let paths = paths.as_string::<i32>();
        let records = cast(&column("num_records")?, &DataType::Int64)?;
        let records = records.as_primitive::<Int64Type>();
        let dv = batch.column_by_name("deletion_vector").and_then(|c| c.as_struct_opt());
        let dv_text = dv.map(|dv| ArrayFormatter::try_new(dv, &FormatOptions::default()));
        let dv_text = dv_text.transpose()?;
        let cardinality = match dv.and_then(|dv| dv.column_by_name("cardinality")) {
            Some(c) => Some(cast(c, &DataType::Int64)?),
            None => None,
        };
        let cardinality = cardinality.as_ref().map(|c| c.as_primitive::<Int64Type>());
        for i in 0..batch.num_rows() {
            let has_dv = dv.is_some_and(|dv| dv.is_valid(i));
            out.push(SnapshotFile {
                path: paths.value(i).to_owned(),
                deletion_vector: match &dv_text {
                    Some(f) if has_dv => Some(f.value(i).to_string()),
                    _ => None,
                },
                num_records: records.is_valid(i).then(|| records.value(i).max(0) as u64),
                deleted_by_dv: match cardinality {
                    Some(c) if has_dv && c.is_valid(i) => c.value(i).max(0) as u64,
                    _ => 0,
                },
            });
        }
    }
    Ok(out)
}

/// Rows of the files according to their statistics (minus deletion vectors); `None` when a
/// file has no statistics.
fn stats_rows(files: &[SnapshotFile]) -> Option<u64> {
    files.iter().map(|f| f.num_records.map(|n| n.saturating_sub(f.deleted_by_dv))).sum()
}

/// Opens the table at `path` as it was at `version`, with a message naming the table and the
/// version when that version does not exist or can no longer be read.
pub(crate) async fn open_version(path: &Path, version: i64) -> Result<DeltaTable> {
    if !path.join("_delta_log").is_dir() {
        return Err(EngineError::TableNotFound { path: path.to_owned() });
    }
    let missing =
        |why: String| EngineError::Config(format!("version {version} of {} {why}", path.display()));
    let v = u64::try_from(version)
        .map_err(|_| missing("does not exist: versions start at 0".to_owned()))?;
    let log = path.join("_delta_log");
    if let Some(latest) = commit_versions(&log).await?.into_iter().max()
        && version > latest
    {
        return Err(missing(format!("does not exist: the latest version is {latest}")));
    }
    deltalake::open_table_with_version(delta::table_url(path)?, v).await.map_err(|e| {
        missing(format!("cannot be read; its log may have been cleaned up (log retention): {e}"))
    })
}

/// A table as it was at one version.
#[derive(Clone, Debug)]
pub struct VersionPreview {
    pub version: i64,
    /// All rows of that version: from the file statistics (minus rows that deletion vectors
    /// delete), or counted by a scan when a file has no statistics.
    pub rows: u64,
    /// The first rows of that version.
    pub preview: Preview,
}

/// Time travel: the table at `path` as it was at `version`, its row count and its first
/// `limit` rows. A version that does not exist or whose log was cleaned up is an error that
/// names the table and the version.
pub async fn table_at_version(path: &Path, version: i64, limit: usize) -> Result<VersionPreview> {
    let table = open_version(path, version).await?;
    let unreadable = |e: datafusion::error::DataFusionError| {
        EngineError::Config(format!(
            "cannot read version {version} of {}; its data files may have been vacuumed: {e}",
            path.display()
        ))
    };
    let ctx = plan::session_context();
    let df = ctx.read_table(delta::scan_in(&table, &ctx).await?)?;
    let rows = match stats_rows(&snapshot_files(&table)?) {
        Some(n) => n,
        None => df.clone().count().await.map_err(unreadable)? as u64,
    };
    let schema = plan::arrow_schema(&df);
    let batches = df.limit(0, Some(limit))?.collect().await.map_err(unreadable)?;
    Ok(VersionPreview { version, rows, preview: Preview { schema, batches } })
}

/// How the rows of two versions of a table differ.
#[derive(Clone, Debug)]
pub struct VersionDiff {
    pub from: i64,
    pub to: i64,
    /// Rows in `to` that are not in `from`, counting duplicates (`to EXCEPT ALL from`).
    pub rows_added: u64,
    /// Rows in `from` that are not in `to`, counting duplicates (`from EXCEPT ALL to`).
    pub rows_removed: u64,
    /// Up to `limit` of the added rows, in no particular order.
    pub added: Preview,
    /// Up to `limit` of the removed rows, in no particular order.
    pub removed: Preview,
}

/// Compares versions `from` and `to` of the table at `path` row by row, as multisets: a row
/// that `to` holds twice and `from` once is one added row. An updated row is one removed
/// row (its old value) and one added row (its new value).
///
/// Only the data files that differ between the two snapshots are read: a file in both (same
/// path, same deletion vector) holds the same rows in both, so it cancels out. The rows of
/// the files only in `to` are compared with those of the files only in `from`, each side read
/// through its version's Delta table provider restricted to those files (so partition values
/// and deletion vectors are applied as in a normal read). The cost is that of reading (and
/// sorting) the differing files, not the table.
///
/// Nested columns (structs, lists, maps) compare by value, as is, and NULL equals NULL. When
/// the two versions have different columns (names or types), a row of one cannot equal a
/// row of the other: every row of the differing files counts.
pub async fn compare_versions(
    path: &Path,
    from: i64,
    to: i64,
    limit: usize,
) -> Result<VersionDiff> {
    let old = open_version(path, from).await?;
    let new = open_version(path, to).await?;
    let old_files = snapshot_files(&old)?;
    let new_files = snapshot_files(&new)?;
    let only_in = |files: &[SnapshotFile], other: &[SnapshotFile]| -> Vec<String> {
        let other: HashSet<(&str, Option<&str>)> =
            other.iter().map(|f| (f.path.as_str(), f.deletion_vector.as_deref())).collect();
        files
            .iter()
            .filter(|f| !other.contains(&(f.path.as_str(), f.deletion_vector.as_deref())))
            .map(|f| f.path.clone())
            .collect()
    };
    let only_new = only_in(&new_files, &old_files);
    let only_old = only_in(&old_files, &new_files);

    let ctx = plan::session_context();
    let added_side = files_frame(&ctx, &new, &only_new).await?;
    let removed_side = files_frame(&ctx, &old, &only_old).await?;
    let comparable = same_columns(&added_side, &removed_side);
    let unreadable = |e: EngineError| {
        EngineError::Config(format!(
            "cannot compare versions {from} and {to} of {}: {e}",
            path.display()
        ))
    };
    let (rows_added, added) = except_all(
        added_side.clone(),
        (comparable && !only_old.is_empty()).then(|| removed_side.clone()),
        limit,
    )
    .await
    .map_err(unreadable)?;
    let (rows_removed, removed) =
        except_all(removed_side, (comparable && !only_new.is_empty()).then_some(added_side), limit)
            .await
            .map_err(unreadable)?;
    Ok(VersionDiff { from, to, rows_added, rows_removed, added, removed })
}

/// The rows of exactly `files` (log paths) of the table's loaded version.
async fn files_frame(
    ctx: &SessionContext,
    table: &DeltaTable,
    files: &[String],
) -> Result<DataFrame> {
    let provider = delta::scan_in(table, ctx).with_file_paths(files.iter().cloned()).await?;
    Ok(ctx.read_table(provider)?)
}

/// Whether two frames have the same column names and types (in order).
fn same_columns(a: &DataFrame, b: &DataFrame) -> bool {
    let (a, b) = (a.schema().fields(), b.schema().fields());
    a.len() == b.len()
        && a.iter()
            .zip(b.iter())
            .all(|(x, y)| x.name() == y.name() && x.data_type() == y.data_type())
}

/// Name of the column that numbers equal rows while comparing.
const OCCURRENCE: &str = "__medallion_occurrence";

/// `left EXCEPT ALL right` with multiset semantics (all of `left` without `right`): the number
/// of rows and the first `limit` of them.
///
/// DataFusion's `EXCEPT ALL` is an anti join, which drops every copy of a row that the right
/// side holds once; numbering the copies of each distinct row on both sides (`row_number()`
/// over all columns) and anti-joining on the columns and that number keeps `n - m` copies of
/// a row held `n` times on the left and `m` times on the right. The join treats NULLs as equal.
pub(super) async fn except_all(
    left: DataFrame,
    right: Option<DataFrame>,
    limit: usize,
) -> Result<(u64, Preview)> {
    let diff = match right {
        None => left,
        Some(right) => {
            let columns: Vec<Expr> = left
                .schema()
                .fields()
                .iter()
                .map(|f| Expr::Column(Column::from_name(f.name())))
                .collect();
            numbered(left)?.except(numbered(right)?)?.select(columns)?
        }
    };
    let mut stream = diff.execute_stream().await?;
    let schema = stream.schema();
    let mut rows = 0u64;
    let mut batches = Vec::new();
    let mut kept = 0usize;
    while let Some(batch) = stream.try_next().await? {
        if kept < limit && batch.num_rows() > 0 {
            let take = (limit - kept).min(batch.num_rows());
            batches.push(batch.slice(0, take));
            kept += take;
        }
        rows += batch.num_rows() as u64;
    }
    Ok((rows, Preview { schema, batches }))
}

/// `df` with a column numbering the copies of each distinct row (1, 2, ...).
fn numbered(df: DataFrame) -> Result<DataFrame> {
    let columns: Vec<Expr> =
        df.schema().fields().iter().map(|f| Expr::Column(Column::from_name(f.name()))).collect();
    let number = row_number().partition_by(columns).build()?.alias(OCCURRENCE);
    Ok(df.window(vec![number])?)
}
