//! Delta sink: append, overwrite, or MERGE (upsert by key) into a table.

use std::path::Path;

use arrow::datatypes::DataType;
use datafusion::common::Column;
use datafusion::functions::core::expr_fn::get_field;
use datafusion::prelude::{DataFrame, Expr, col};
use deltalake::DeltaTable;
use deltalake::kernel::transaction::CommitProperties;
use deltalake::protocol::SaveMode;

use crate::model::node::{DeltaSink, OutputMode, SchemaMode, WriteMode};

use super::super::delta::{self, CommitOutcome};
use super::super::{EngineError, Result};

/// How a stream's output mode writes a stateful result: update is a MERGE on the grouping
/// keys (`keys`, unless the sink names its own), complete an overwrite.
pub fn for_output_mode(sink: &DeltaSink, mode: OutputMode, keys: Option<Vec<String>>) -> DeltaSink {
    match mode {
        OutputMode::Append => sink.clone(),
        // without an aggregation, rows never change: update is append (as in Spark)
        OutputMode::Update if keys.is_none() && sink.mode != WriteMode::Merge => sink.clone(),
        OutputMode::Update => DeltaSink {
            mode: WriteMode::Merge,
            merge_keys: if sink.mode == WriteMode::Merge && !sink.merge_keys.is_empty() {
                sink.merge_keys.clone()
            } else {
                keys.unwrap_or_default()
            },
            ..sink.clone()
        },
        OutputMode::Complete => DeltaSink { mode: WriteMode::Overwrite, ..sink.clone() },
    }
}

/// Writes `df` (already conformed to Delta types) to the sink's table at `path`, enforcing
/// the table's schema first (see `schema_check`). `table` is the table as open now (`None`
/// while there is none: the write creates it). Returns what the commit did and the table at
/// the new version, for the next write to start from.
pub async fn write(
    table: Option<DeltaTable>,
    path: &Path,
    sink: &DeltaSink,
    df: DataFrame,
    props: CommitProperties,
) -> Result<(CommitOutcome, DeltaTable)> {
    let enforced = super::schema_check::enforce(table.as_ref(), sink, df)?;
    let (df, schema_mode) = (enforced.df, enforced.schema_mode.map(delta_schema_mode));
    let save_mode = match sink.mode {
        WriteMode::Append => SaveMode::Append,
        WriteMode::Overwrite => SaveMode::Overwrite,
        WriteMode::Merge => {
            return merge(table, path, sink, df, schema_mode.is_some(), props).await;
        }
    };
    let table = match table {
        Some(t) => t,
        None => delta::open_for_write(path).await?,
    };
    delta::write_dataframe(
        table,
        df,
        save_mode,
        &sink.partition_by,
        &sink.properties,
        schema_mode,
        props,
    )
    .await
}

fn delta_schema_mode(mode: SchemaMode) -> deltalake::operations::write::SchemaMode {
    match mode {
        SchemaMode::Merge => deltalake::operations::write::SchemaMode::Merge,
        SchemaMode::Overwrite => deltalake::operations::write::SchemaMode::Overwrite,
    }
}

/// MERGE INTO target USING source ON keys WHEN MATCHED UPDATE SET * WHEN NOT MATCHED INSERT *.
/// The first write creates the table.
async fn merge(
    table: Option<DeltaTable>,
    path: &Path,
    sink: &DeltaSink,
    source: DataFrame,
    merge_schema: bool,
    props: CommitProperties,
) -> Result<(CommitOutcome, DeltaTable)> {
    let names: Vec<String> = source.schema().fields().iter().map(|f| f.name().clone()).collect();
    for k in &sink.merge_keys {
        if !names.contains(k) {
            return Err(EngineError::Config(format!(
                "merge key `{k}` is not a column of the input; columns are: {}",
                names.join(", ")
            )));
        }
    }
    let Some(table) = table else {
        return delta::write_dataframe(
            delta::open_for_write(path).await?,
            source,
            SaveMode::Append,
            &sink.partition_by,
            &sink.properties,
            None,
            props,
        )
        .await;
    };
    let src = |c: &str| col(Column::new(Some("source"), c));
    let tgt = |c: &str| col(Column::new(Some("target"), c));
    // a time window (`STRUCT<start, end>`) is identified by its start
    let is_window = |k: &str| {
        matches!(
            source.schema().field_with_unqualified_name(k).map(|f| f.data_type().clone()),
            Ok(DataType::Struct(fields)) if fields.iter().any(|f| f.name() == "start")
        )
    };
    let predicate = sink
        .merge_keys
        .iter()
        .map(|k| {
            if is_window(k) {
                get_field(tgt(k), "start").eq(get_field(src(k), "start"))
            } else {
                tgt(k).eq(src(k))
            }
        })
        .reduce(Expr::and)
        .ok_or_else(|| EngineError::Config("merge mode needs merge_keys".into()))?;
    let (table, _metrics) = table
        .merge(source, predicate)
        .with_source_alias("source")
        .with_target_alias("target")
        .with_commit_properties(props)
        .with_writer_properties(crate::engine::delta::writer_properties())
        .with_merge_schema(merge_schema)
        .when_matched_update(|u| {
            names.iter().fold(u, |u, c| u.update(Column::new_unqualified(c.as_str()), src(c)))
        })?
        .when_not_matched_insert(|i| {
            names.iter().fold(i, |i, c| i.set(Column::new_unqualified(c.as_str()), src(c)))
        })?
        .await?;
    Ok((delta::last_commit_outcome(&table).await?, table))
}
