//! Fixture files of a recorded test: Parquet with the Arrow schema embedded, so every type
//! comes back exactly as it was recorded (timestamps with their time zone, structs, arrays).
//!
//! Layout under the test's folder: `batch_<i>/<source node>.parquet` and
//! `batch_<i>/expected.parquet`.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::model::{NodeId, PipelineTest};

use super::TestError;

/// Rows with their schema (a fixture may hold no rows and still knows its columns).
#[derive(Clone, Debug)]
pub struct Rows {
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
}

impl Rows {
    pub fn count(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }

    /// All rows in one batch.
    pub fn concat(&self) -> Result<RecordBatch, TestError> {
        Ok(arrow::compute::concat_batches(&self.schema, &self.batches)?)
    }
}

/// The input of one micro-batch: each source's rows.
pub type BatchInput = BTreeMap<NodeId, Rows>;

pub const EXPECTED_FILE: &str = "expected.parquet";

/// The folder of batch `i` of a test whose fixtures are in `dir`.
pub fn batch_dir(dir: &Path, i: usize) -> PathBuf {
    dir.join(format!("batch_{i}"))
}

/// The test's fixtures folder: its `dir`, relative to the project file.
pub fn test_dir(project_file: &Path, test: &PipelineTest) -> PathBuf {
    let dir = Path::new(&test.dir);
    if dir.is_absolute() {
        return dir.to_owned();
    }
    project_file.parent().unwrap_or(Path::new(".")).join(dir)
}

pub fn write_parquet(path: &Path, rows: &Rows) -> Result<(), TestError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|source| TestError::Io { path: parent.to_owned(), source })?;
    }
    let file =
        File::create(path).map_err(|source| TestError::Io { path: path.to_owned(), source })?;
    let mut writer = ArrowWriter::try_new(file, rows.schema.clone(), None)?;
    for b in &rows.batches {
        writer.write(b)?;
    }
    writer.close()?;
    Ok(())
}

pub fn read_parquet(path: &Path) -> Result<Rows, TestError> {
    let file = File::open(path).map_err(|source| TestError::Fixture {
        path: path.to_owned(),
        message: source.to_string(),
    })?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| TestError::Fixture { path: path.to_owned(), message: e.to_string() })?;
    let schema = builder.schema().clone();
    let reader = builder
        .build()
        .map_err(|e| TestError::Fixture { path: path.to_owned(), message: e.to_string() })?;
    let batches = reader
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TestError::Fixture { path: path.to_owned(), message: e.to_string() })?;
    Ok(Rows { schema, batches })
}

/// Reads the input of every batch for `sources`.
pub fn read_inputs(
    dir: &Path,
    batches: usize,
    sources: &[NodeId],
) -> Result<Vec<BatchInput>, TestError> {
    (0..batches)
        .map(|i| {
            sources
                .iter()
                .map(|s| {
                    let path = batch_dir(dir, i).join(format!("{s}.parquet"));
                    Ok((s.clone(), read_parquet(&path)?))
                })
                .collect()
        })
        .collect()
}

/// Reads the expected output of every batch.
pub fn read_expected(dir: &Path, batches: usize) -> Result<Vec<Rows>, TestError> {
    (0..batches).map(|i| read_parquet(&batch_dir(dir, i).join(EXPECTED_FILE))).collect()
}

/// Writes the expected output of every batch (a recording, or "accept new output").
pub fn write_expected(dir: &Path, outputs: &[Rows]) -> Result<(), TestError> {
    for (i, rows) in outputs.iter().enumerate() {
        write_parquet(&batch_dir(dir, i).join(EXPECTED_FILE), rows)?;
    }
    Ok(())
}

/// Deletes the `batch_<i>` folders of an earlier recording (and nothing else).
pub fn clear_batches(dir: &Path) -> Result<(), TestError> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Ok(()) };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let numbered = name.strip_prefix("batch_").is_some_and(|n| n.parse::<usize>().is_ok());
        if numbered && e.path().is_dir() {
            std::fs::remove_dir_all(e.path())
                .map_err(|source| TestError::Io { path: e.path(), source })?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{
        Array, ArrayRef, Int64Array, ListBuilder, StringBuilder, StructArray,
        TimestampMicrosecondArray,
    };
    use arrow::datatypes::{DataType, Field, Schema, TimeUnit};

    use super::*;

    #[test]
    fn parquet_fixtures_round_trip_zoned_timestamps_structs_and_arrays() {
        let mut skills = ListBuilder::new(StringBuilder::new());
        skills.values().append_value("rust");
        skills.values().append_value("sql");
        skills.append(true);
        skills.append(false);
        let skills: ArrayRef = Arc::new(skills.finish());
        let title: ArrayRef = Arc::new(arrow::array::StringArray::from(vec![Some("dev"), None]));
        let employment = StructArray::from(vec![
            (Arc::new(Field::new("title", DataType::Utf8, true)), title),
            (Arc::new(Field::new("keySkills", skills.data_type().clone(), true)), skills),
        ]);
        let ts = TimestampMicrosecondArray::from(vec![Some(1_700_000_000_000_000), None])
            .with_timezone("Europe/Paris");
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new(
                "at",
                DataType::Timestamp(TimeUnit::Microsecond, Some("Europe/Paris".into())),
                true,
            ),
            Field::new("employment", employment.data_type().clone(), true),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(Int64Array::from(vec![1, 2])), Arc::new(ts), Arc::new(employment)],
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("batch_0/src.parquet");
        write_parquet(&path, &Rows { schema: schema.clone(), batches: vec![batch.clone()] })
            .unwrap();
        let back = read_parquet(&path).unwrap();
        assert_eq!(back.schema, schema);
        assert_eq!(back.concat().unwrap(), batch);
        let empty = dir.path().join("batch_1/src.parquet");
        write_parquet(&empty, &Rows { schema: schema.clone(), batches: vec![] }).unwrap();
        let back = read_parquet(&empty).unwrap();
        assert_eq!((back.count(), back.schema), (0, schema));
        clear_batches(dir.path()).unwrap();
        assert!(!dir.path().join("batch_0").exists());
    }
}
