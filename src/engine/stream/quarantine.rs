//! The quarantine table, one per pipeline (`<first sink table>_quarantine`): malformed
//! records dropped in `drop_malformed` mode, rows dropped by expectations (with the rules'
//! names) and late rows, with where they came from and why in `reason`, committed once per
//! batch (a stream's with its application transaction, so a replay does not add them twice).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use deltalake::kernel::Transaction;

use crate::model::{NodeId, Pipeline, Project};

use super::super::Result;
use super::super::delta::{self, CommitMeta};
use super::super::open_tables::OpenTables;
use super::super::sources::json_lines::BadRecord;
use super::checkpoint::Metadata;
use super::microbatch::committed_version;

/// The quarantine table: next to the first sink (`bronze/users_quarantine`).
pub(crate) fn quarantine_path(
    first_sink: Option<&Path>,
    root: &Path,
    pipeline: &Pipeline,
) -> PathBuf {
    match first_sink {
        Some(p) => {
            let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            p.with_file_name(format!("{name}_quarantine"))
        }
        None => root.join("_quarantine").join(&pipeline.name),
    }
}

/// The columns of the quarantine table.
pub fn quarantine_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("source_node", DataType::Utf8, false),
        Field::new("file", DataType::Utf8, true),
        Field::new("line", DataType::Int64, true),
        Field::new("raw", DataType::Utf8, true),
        Field::new("reason", DataType::Utf8, false),
        Field::new("batch_id", DataType::Int64, false),
        Field::new(
            "quarantined_at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
    ]))
}

/// A stream's batch, for its quarantine write: the query, its open tables, and whether the
/// batch is replayed (only then can its records be in the table already).
pub(crate) struct StreamBatch<'a> {
    pub meta: &'a Metadata,
    pub tables: &'a OpenTables,
    pub replayed: bool,
}

/// Appends `records`; `stream` is the stream's batch (`batch_id`), `None` for a batch run.
pub(crate) async fn write_quarantine(
    table: &Path,
    stream: Option<StreamBatch<'_>>,
    pipeline: &Pipeline,
    project: &Project,
    batch_id: u64,
    records: &[(NodeId, BadRecord)],
) -> Result<()> {
    let app_id = stream.as_ref().map(|s| format!("{}/quarantine", s.meta.id));
    if let (Some(app_id), Some(s)) = (&app_id, &stream)
        && s.replayed
        && committed_version(s.tables, table, app_id, batch_id).await?.is_some()
    {
        return Ok(());
    }
    let n = records.len();
    let now = chrono::Utc::now().timestamp_micros();
    let batch = RecordBatch::try_new(
        quarantine_schema(),
        vec![
            Arc::new(StringArray::from_iter_values(records.iter().map(|(n, _)| n.as_str()))),
            Arc::new(StringArray::from_iter(
                records.iter().map(|(_, r)| Some(r.file.as_str()).filter(|f| !f.is_empty())),
            )),
            Arc::new(Int64Array::from_iter(
                records.iter().map(|(_, r)| Some(r.line as i64).filter(|l| *l > 0)),
            )),
            Arc::new(StringArray::from_iter(records.iter().map(|(_, r)| Some(r.raw.as_str())))),
            Arc::new(StringArray::from_iter_values(records.iter().map(|(_, r)| r.reason.as_str()))),
            Arc::new(Int64Array::from(vec![batch_id as i64; n])),
            Arc::new(TimestampMicrosecondArray::from(vec![now; n]).with_timezone("UTC")),
        ],
    )?;
    let mut props = CommitMeta {
        project: project.name.clone(),
        pipeline: pipeline.name.clone(),
        node: "quarantine".into(),
    }
    .properties();
    if let Some(app_id) = &app_id {
        props = props.with_application_transaction(Transaction::new(app_id, batch_id as i64));
    }
    // a stream keeps the table open across batches (no log replay per batch)
    let open = match &stream {
        Some(s) => s.tables.latest(table).await?,
        None => None,
    };
    let t = match open {
        Some(t) => t,
        None => delta::open_for_write(table).await?,
    };
    let t = t
        .write(vec![batch])
        .with_save_mode(deltalake::protocol::SaveMode::Append)
        .with_commit_properties(props)
        .await?;
    if let Some(s) = &stream {
        s.tables.remember(table, t).await;
    }
    Ok(())
}
