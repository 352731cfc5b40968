//! Thin helpers over delta-rs: open tables by local path, write with commit metadata, and
//! read back what a commit did. Sinks and the lakehouse view build on these.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::RecordBatch;
use datafusion::prelude::DataFrame;
use deltalake::kernel::transaction::CommitProperties;
use deltalake::protocol::SaveMode;
use deltalake::{DeltaTable, DeltaTableError};
use serde_json::{Value, json};

use super::{EngineError, Result};

/// Who wrote a commit: kept in every commit's metadata, shown by `history` and the monitor.
#[derive(Clone, Debug, Default)]
pub struct CommitMeta {
    pub project: String,
    pub pipeline: String,
    pub node: String,
}

impl CommitMeta {
    /// Metadata for writes by a Medallion tool rather than a pipeline (e.g. `demo-data`).
    pub fn tool(name: &str) -> Self {
        Self { project: String::new(), pipeline: String::new(), node: name.to_owned() }
    }

    fn to_map(&self) -> HashMap<String, Value> {
        let mut m = HashMap::from([("medallion.node".to_owned(), json!(self.node))]);
        if !self.project.is_empty() {
            m.insert("medallion.project".into(), json!(self.project));
        }
        if !self.pipeline.is_empty() {
            m.insert("medallion.pipeline".into(), json!(self.pipeline));
        }
        m.insert("engineInfo".into(), json!(format!("medallion/{}", env!("CARGO_PKG_VERSION"))));
        m
    }

    pub fn properties(&self) -> CommitProperties {
        CommitProperties::default().with_metadata(self.to_map())
    }
}

/// The `file://` URL of a local table directory (made absolute).
pub fn table_url(path: &Path) -> Result<url::Url> {
    // every table is opened by its URL: local logs list in time that does not grow with them
    super::log_listing::install();
    let abs = std::path::absolute(path).map_err(|e| EngineError::io(path, e))?;
    url::Url::from_directory_path(&abs)
        .map_err(|()| EngineError::Config(format!("{} is not a valid table path", abs.display())))
}

/// Opens the table at `path`, or `None` when there is no table there yet.
pub async fn try_open(path: &Path) -> Result<Option<DeltaTable>> {
    if !path.join("_delta_log").is_dir() {
        return Ok(None);
    }
    match deltalake::open_table(table_url(path)?).await {
        Ok(t) => Ok(Some(t)),
        Err(DeltaTableError::NotATable(_) | DeltaTableError::InvalidTableLocation(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Opens the table at `path`, failing with a message that says how to create it.
pub async fn open(path: &Path) -> Result<DeltaTable> {
    try_open(path).await?.ok_or_else(|| EngineError::TableNotFound { path: path.to_owned() })
}

/// A table handle to write to: the existing table, or an uninitialized one that the first
/// write creates.
pub async fn open_for_write(path: &Path) -> Result<DeltaTable> {
    std::fs::create_dir_all(path).map_err(|e| EngineError::io(path, e))?;
    Ok(DeltaTable::try_from_url(table_url(path)?).await?)
}

/// Replaces the table at `path` with `batches` (creating it if needed).
pub async fn overwrite_batches(
    path: &Path,
    batches: Vec<RecordBatch>,
    meta: &CommitMeta,
) -> Result<DeltaTable> {
    let table = open_for_write(path).await?;
    Ok(table
        .write(batches)
        .with_save_mode(SaveMode::Overwrite)
        .with_schema_mode(deltalake::operations::write::SchemaMode::Overwrite)
        .with_commit_properties(meta.properties())
        .await?)
}

/// Parquet codec of our Delta writes: Snappy, Spark's and delta-rs's default. LZ4_RAW, ZSTD(1),
/// no dictionary, even no compression were each within noise of it on users_batch over 1M users
/// (sessions 5 and 9), so the files stay what any Delta reader expects.
const PARQUET_CODEC: datafusion::parquet::basic::Compression =
    datafusion::parquet::basic::Compression::SNAPPY;

/// Rows per Parquet row group (parquet-rs's default is 1M). A table read back splits across
/// both cores only by row group: users_batch's silver read bronze's one 1M-row group on one
/// core. Smaller groups also shrink what the writer buffers (silver's peak −30 MB on 1M users,
/// session 9); users_stream's 100k-row files gain nothing (its CPU was within noise, +5%).
pub const ROW_GROUP_ROWS: usize = 128 * 1024;

/// A column's dictionary may grow to this many bytes per row group before its values are written
/// plain (parquet-rs's and parquet-mr's default is 1 MiB). Interning a unique column (an id, a
/// uuid, an email) costs a hash and a compare per value until the limit, then is thrown away;
/// at 128 KiB that waste stops ~8× sooner, while names, titles and other repeated values still
/// fit. users_batch 5.1 -> 4.3 CPU-s and users_stream 4.1 -> 3.4 on 1M users (alternating runs,
/// session 9), files the same size (58 / 57 MB).
pub const DICTIONARY_PAGE_BYTES: usize = 128 * 1024;

/// How our Delta writes encode Parquet (one place for the settings that trade speed for size).
/// Statistics stay on (Delta's per-file stats and the page index come from them); their cost is
/// cut in `vendor/parquet` (a dictionary page's min and max from its keys): users_batch 2.76 ->
/// 2.58 CPU-s on 1M users, session 36.
pub fn writer_properties() -> datafusion::parquet::file::properties::WriterProperties {
    datafusion::parquet::file::properties::WriterProperties::builder()
        .set_created_by(format!("medallion {}", env!("CARGO_PKG_VERSION")))
        .set_compression(PARQUET_CODEC)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_dictionary_page_size_limit(DICTIONARY_PAGE_BYTES)
        .build()
}

/// What one commit did, read from its commit info.
#[derive(Clone, Debug, Default)]
pub struct CommitOutcome {
    pub version: i64,
    pub rows_added: u64,
    pub rows_updated: u64,
    pub rows_deleted: u64,
    /// Data files the commit added, and their bytes (what auto-compaction counts).
    pub files_added: u64,
    pub bytes_added: u64,
}

/// Streams `df` into `table` (an open table, or [`open_for_write`]'s handle for a new one) with
/// the given save mode (and schema mode: the caller has checked the schema, see
/// `sinks::schema_check`); returns the new version and rows, and the table at that version.
#[allow(clippy::too_many_arguments)]
pub async fn write_dataframe(
    table: DeltaTable,
    df: DataFrame,
    mode: SaveMode,
    partition_by: &[String],
    properties: &BTreeMap<String, String>,
    schema_mode: Option<deltalake::operations::write::SchemaMode>,
    props: CommitProperties,
) -> Result<(CommitOutcome, DeltaTable)> {
    let creates = table.version().is_none();
    let (state, plan) = df.into_parts();
    let mut builder = table
        .write(Vec::<RecordBatch>::new())
        .with_input_plan(plan)
        .with_session_state(Arc::new(state))
        .with_save_mode(mode)
        .with_writer_properties(writer_properties())
        .with_commit_properties(props);
    if !partition_by.is_empty() {
        builder = builder.with_partition_columns(partition_by.iter().cloned());
    }
    if creates && !properties.is_empty() {
        builder = builder
            .with_configuration(properties.iter().map(|(k, v)| (k.clone(), Some(v.clone()))));
    }
    if let Some(schema_mode) = schema_mode {
        builder = builder.with_schema_mode(schema_mode);
    }
    let table = builder.await?;
    Ok((last_commit_outcome(&table).await?, table))
}

/// The version and row metrics of the commit `table` was just written at. Read from that
/// version's own log entry: the newest commit may be someone else's by now (a background
/// compaction commits right after a stream batch), and reading one file costs no log listing.
pub async fn last_commit_outcome(table: &DeltaTable) -> Result<CommitOutcome> {
    let Some(version) = table.version() else {
        return Ok(CommitOutcome { version: -1, ..Default::default() });
    };
    let entry = table.log_store().read_commit_entry(version).await?;
    let (mut info, mut bytes_added) = (None, 0);
    for line in entry.as_deref().unwrap_or_default().split(|&b| b == b'\n') {
        let Ok(mut action) = serde_json::from_slice::<Value>(line) else { continue };
        if let Some(size) = action.get("add").and_then(|a| a.get("size")).and_then(Value::as_u64) {
            bytes_added += size;
        } else if let Some(i) = action.get_mut("commitInfo") {
            info = Some(i.take());
        }
    }
    let metrics = info.as_ref().and_then(|c| c.get("operationMetrics"));
    let get = |k: &str| metrics.and_then(|m| m.get(k)).and_then(Value::as_u64).unwrap_or(0);
    Ok(CommitOutcome {
        version: version as i64,
        rows_added: get("num_added_rows") + get("num_target_rows_inserted"),
        rows_updated: get("num_target_rows_updated"),
        rows_deleted: get("num_target_rows_deleted"),
        files_added: get("num_added_files") + get("num_target_files_added"),
        bytes_added,
    })
}

/// A scan of `table` with `ctx`'s settings (plain strings, see `plan::session_context`);
/// delta-rs's own default reads strings as views.
pub fn scan_in(
    table: &DeltaTable,
    ctx: &datafusion::prelude::SessionContext,
) -> deltalake::delta_datafusion::TableProviderBuilder {
    table.table_provider().with_session(Arc::new(ctx.state()))
}

/// Resolves a table path against the lakehouse root.
pub fn resolve(root: &Path, table: &str) -> PathBuf {
    let p = Path::new(table);
    if p.is_absolute() { p.to_owned() } else { root.join(p) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{ListBuilder, StringBuilder, StructArray};
    use arrow::datatypes::{DataType, Field, Schema};

    /// A table read in our session keeps strings plain, at the top and inside structs and
    /// lists: read as views, each string was cast to a view and back at the next write.
    #[tokio::test]
    async fn scans_read_strings_as_plain_utf8() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t");
        let mut skills = ListBuilder::new(StringBuilder::new());
        skills.values().append_value("Zürich");
        skills.append(true);
        let title = Field::new("title", DataType::Utf8, true);
        let employment = StructArray::from(vec![(
            Arc::new(title),
            Arc::new(arrow::array::StringArray::from(vec!["é"])) as arrow::array::ArrayRef,
        )]);
        let batch = RecordBatch::try_from_iter(vec![
            ("name", Arc::new(arrow::array::StringArray::from(vec!["ñ"])) as _),
            ("employment", Arc::new(employment) as _),
            ("skills", Arc::new(skills.finish()) as _),
        ])
        .unwrap();
        overwrite_batches(&path, vec![batch], &CommitMeta::default()).await.unwrap();
        let ctx = super::super::plan::session_context();
        let table = open(&path).await.unwrap();
        let df = ctx.read_table(scan_in(&table, &ctx).await.unwrap()).unwrap();
        let batches = df.collect().await.unwrap();
        let schema: &Schema = batches[0].schema_ref();
        assert_eq!(schema.field(0).data_type(), &DataType::Utf8);
        let DataType::Struct(fields) = schema.field(1).data_type() else { panic!("{schema}") };
        assert_eq!(fields[0].data_type(), &DataType::Utf8);
        let DataType::List(item) = schema.field(2).data_type() else { panic!("{schema}") };
        assert_eq!(item.data_type(), &DataType::Utf8);
        let names = batches[0].column(0).as_any().downcast_ref::<arrow::array::StringArray>();
        assert_eq!(names.map(|n| n.value(0)), Some("ñ"));
    }

    /// The Parquet statistics of our writes are each page's and each chunk's true min and max:
    /// a dictionary page takes them from the keys it uses (vendor/parquet), a column past its
    /// dictionary limit from every value, and both must agree with the data, page by page, for
    /// strings that share their first 8 bytes, are shorter than 8, empty or not ASCII.
    #[test]
    fn parquet_statistics_are_each_pages_true_min_and_max() {
        use datafusion::parquet::arrow::ArrowWriter;
        use datafusion::parquet::arrow::arrow_reader::{
            ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
        };
        use datafusion::parquet::basic::Encoding;
        use datafusion::parquet::file::metadata::PageIndexPolicy;
        use datafusion::parquet::file::page_index::column_index::ColumnIndexMetaData;

        fn min_max(values: &[Option<String>]) -> Option<(&[u8], &[u8])> {
            let mut present = values.iter().flatten().map(String::as_bytes);
            let first = present.next()?;
            Some(present.fold((first, first), |(lo, hi), v| (lo.min(v), hi.max(v))))
        }

        const ROWS: usize = 6000;
        let words = ["Zoë", "Ángel", "a", "", "prefix__x", "prefix__y", "prefix__", "名前", "zz"];
        // a sliding window of 3 words: pages of 300 rows see different words
        let names: Vec<Option<String>> = (0..ROWS)
            .map(|i| (i % 13 != 0).then(|| words[(i / 400 + i % 3) % words.len()].to_string()))
            .collect();
        // unique and ~50 bytes: past the 128 KiB dictionary limit midway, then written plain
        let uids: Vec<Option<String>> =
            (0..ROWS).map(|i| Some(format!("{:040}-ü{}", (i * 7919) % ROWS, i % 7))).collect();
        let batch = RecordBatch::try_from_iter(vec![
            ("name", Arc::new(arrow::array::StringArray::from(names.clone())) as _),
            ("uid", Arc::new(arrow::array::StringArray::from(uids.clone())) as _),
        ])
        .unwrap();
        let props = writer_properties()
            .into_builder()
            .set_data_page_row_count_limit(300)
            .set_write_batch_size(100)
            .build();
        let mut file = Vec::new();
        let mut writer = ArrowWriter::try_new(&mut file, batch.schema(), Some(props)).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();

        let options = ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Required);
        let reader = ParquetRecordBatchReaderBuilder::try_new_with_options(
            bytes::Bytes::from(file),
            options,
        )
        .unwrap();
        let meta = reader.metadata();
        for (column, values) in [names, uids].iter().enumerate() {
            let chunk = meta.row_group(0).column(column);
            let stats = chunk.statistics().unwrap();
            let (lo, hi) = min_max(values).unwrap();
            assert_eq!((stats.min_bytes_opt(), stats.max_bytes_opt()), (Some(lo), Some(hi)));
            let locations = meta.offset_index().unwrap()[0][column].page_locations();
            assert!(locations.len() >= 10, "{} pages", locations.len());
            let ColumnIndexMetaData::BYTE_ARRAY(index) = &meta.column_index().unwrap()[0][column]
            else {
                panic!("column {column} has no byte-array page index");
            };
            for (page, location) in locations.iter().enumerate() {
                let start = location.first_row_index as usize;
                let end = locations.get(page + 1).map_or(ROWS, |l| l.first_row_index as usize);
                let (lo, hi) = min_max(&values[start..end]).unwrap();
                let seen = (index.min_value(page), index.max_value(page));
                assert_eq!(seen, (Some(lo), Some(hi)), "column {column}, page {page}");
            }
        }
        // the uid column did pass its dictionary limit (otherwise the plain path is untested)
        let encodings = meta.row_group(0).column(1).encodings().collect::<Vec<_>>();
        assert!(encodings.contains(&Encoding::PLAIN), "{encodings:?}");
    }
}
