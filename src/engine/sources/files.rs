//! Files source: JSON lines, CSV or Parquet files in a folder, like `spark.read.json(dir)`.

use std::path::{Path, PathBuf};

use arrow::datatypes::Schema;
use datafusion::prelude::{
    CsvReadOptions, DataFrame, JsonReadOptions, ParquetReadOptions, SessionContext,
};

use crate::model::node::{FileFormat, FileSource};

use super::super::{EngineError, Result, schema};

/// Files under `dir` matching the source's glob, sorted by name (the order they are read).
pub fn list_files(dir: &Path, source: &FileSource) -> Result<Vec<PathBuf>> {
    if dir.is_file() {
        return Ok(vec![dir.to_owned()]);
    }
    if !dir.is_dir() {
        return Err(EngineError::Config(format!(
            "folder {} does not exist; create it or fix the path (run `medallion demo-data` for the demo)",
            dir.display()
        )));
    }
    let pattern = source.glob.as_deref().unwrap_or(source.format.default_glob());
    let matcher = glob::Pattern::new(pattern)
        .map_err(|e| EngineError::Config(format!("bad glob `{pattern}`: {e}")))?;
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| EngineError::io(dir, e))? {
        let entry = entry.map_err(|e| EngineError::io(dir, e))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        // Hidden and temporary files are being written: never read them (Spark skips `_`/`.` too).
        if name.starts_with('.') || name.starts_with('_') {
            continue;
        }
        if entry.file_type().map_err(|e| EngineError::io(dir, e))?.is_file()
            && matcher.matches(&name)
        {
            files.push(entry.path());
        }
    }
    files.sort();
    Ok(files)
}

/// The schema the source declares, if it declares one.
pub fn declared_schema(source: &FileSource) -> Result<Option<Schema>> {
    source.schema.as_deref().filter(|s| !s.trim().is_empty()).map(schema::ddl_to_schema).transpose()
}

/// Reads exactly `files` as one DataFrame.
pub async fn read_files(
    ctx: &SessionContext,
    files: &[PathBuf],
    source: &FileSource,
) -> Result<DataFrame> {
    let paths: Vec<String> = files.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    let declared = declared_schema(source)?;
    let df = match source.format {
        FileFormat::Json => {
            let mut opts = JsonReadOptions::default().file_extension("");
            if let Some(s) = &declared {
                opts = opts.schema(s);
            }
            ctx.read_json(paths, opts).await?
        }
        FileFormat::Csv => {
            let mut opts = CsvReadOptions::new().has_header(source.header).file_extension("");
            if let Some(s) = &declared {
                opts = opts.schema(s);
            }
            ctx.read_csv(paths, opts).await?
        }
        FileFormat::Parquet => {
            let mut opts = ParquetReadOptions::default().file_extension("");
            if let Some(s) = &declared {
                opts = opts.schema(s);
            }
            ctx.read_parquet(paths, opts).await?
        }
    };
    Ok(df)
}

/// Infers a schema from the first files, for "infer from sample" and sources without DDL.
pub async fn infer_schema(ctx: &SessionContext, dir: &Path, source: &FileSource) -> Result<Schema> {
    let files = list_files(dir, source)?;
    let sample: Vec<PathBuf> = files.into_iter().take(4).collect();
    if sample.is_empty() {
        return Err(EngineError::NoFiles {
            path: dir.to_owned(),
            glob: source.glob.clone().unwrap_or_else(|| source.format.default_glob().into()),
        });
    }
    let inferred = FileSource { schema: None, ..source.clone() };
    let df = read_files(ctx, &sample, &inferred).await?;
    Ok(df.schema().as_arrow().clone())
}

/// Whether a file is complete enough to read in a stream. The rule, stated for users:
/// write files under a hidden name (`.name` or `_name`) and rename them into the folder when
/// done (atomic on POSIX; hidden files are never listed). As a safety net for writers that do
/// not, a JSON or CSV file that is empty or does not end with a newline is still being written
/// and is left for a later trigger.
pub fn looks_complete(path: &Path, format: FileFormat, size: u64) -> bool {
    if size == 0 {
        return false;
    }
    match format {
        FileFormat::Parquet => true,
        FileFormat::Json | FileFormat::Csv => {
            use std::io::{Read, Seek, SeekFrom};
            let Ok(mut f) = std::fs::File::open(path) else { return false };
            let mut last = [0u8; 1];
            f.seek(SeekFrom::End(-1)).is_ok() && f.read_exact(&mut last).is_ok() && last[0] == b'\n'
        }
    }
}

/// A file of the listing with its size.
#[derive(Clone, Debug)]
pub struct ListedFile {
    pub path: PathBuf,
    /// Path relative to the source folder, as stored in the checkpoint.
    pub name: String,
    pub size: u64,
}

/// Lists the source folder with sizes; names are relative to `dir`.
pub fn list_with_sizes(dir: &Path, source: &FileSource) -> Result<Vec<ListedFile>> {
    let files = list_files(dir, source)?;
    let mut out = Vec::with_capacity(files.len());
    for path in files {
        let Ok(meta) = std::fs::metadata(&path) else { continue }; // removed since listing
        let name = path
            .strip_prefix(dir)
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_else(|_| path.to_string_lossy().into_owned());
        out.push(ListedFile { path, name, size: meta.len() });
    }
    Ok(out)
}
