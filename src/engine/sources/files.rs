//! Files source: JSON lines, CSV or Parquet files in a folder, like `spark.read.json(dir)`.
//! As a stream ([`FileStream`]), each micro-batch reads the complete files not read before.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{Schema, SchemaRef};
use datafusion::datasource::MemTable;
use datafusion::prelude::{
    CsvReadOptions, DataFrame, JsonReadOptions, ParquetReadOptions, SessionContext,
};
use tokio::sync::mpsc;

use crate::model::NodeId;
use crate::model::node::{FileFormat, FileSource, ParseMode, SchemaEvolutionMode};

use super::super::checkpoint::{FileEntry, SourceOffset};
use super::super::{EngineError, Result, schema};
use super::stream_source::{SourceData, empty, offset_mismatch};
use super::{csv_evolution, json_lines, schema_tracking};

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

/// A files source's state between batches.
pub(crate) struct FileStream {
    node: NodeId,
    cfg: FileSource,
    dir: PathBuf,
    schema: SchemaRef,
    /// Where the schema is tracked (no DDL schema), Auto Loader style.
    schema_dir: Option<PathBuf>,
    evolution: SchemaEvolutionMode,
    seen: HashSet<String>,
    /// availableNow: only the files present at start.
    bound: Option<HashSet<String>>,
    backlog: u64,
    _watcher: Option<notify::RecommendedWatcher>,
}

impl FileStream {
    /// The source reading `dir`, with the declared (or inferred) schema; in notification mode
    /// file events in `dir` wake the loop through `wake`.
    pub async fn try_new(
        ctx: &SessionContext,
        node: NodeId,
        cfg: &FileSource,
        dir: PathBuf,
        wake: &mpsc::Sender<()>,
        schema_dir: Option<PathBuf>,
    ) -> Result<Self> {
        let evolution = schema_tracking::evolution_mode(cfg);
        let declared = declared_schema(cfg)?;
        if declared.is_some() && evolution == SchemaEvolutionMode::AddNewColumns {
            return Err(EngineError::Config(
                "schema_evolution_mode = \"addNewColumns\" needs a tracked schema: remove `schema` (pin column types with schema_hints) or use \"rescue\", \"failOnNewColumns\" or \"none\"".into(),
            ));
        }
        if cfg.format == FileFormat::Parquet && evolution == SchemaEvolutionMode::Rescue {
            return Err(EngineError::Config(
                "schema_evolution_mode = \"rescue\" is not supported for Parquet files yet; use \"addNewColumns\", \"failOnNewColumns\" or \"none\"".into(),
            ));
        }
        let schema_dir = schema_dir.filter(|_| declared.is_none());
        let schema = match (declared, &schema_dir) {
            (Some(s), _) => s,
            (None, Some(sd)) => match schema_tracking::history(sd)?.pop() {
                Some(v) => schema::ddl_to_schema(&v.ddl)?,
                None => {
                    let inferred = infer_schema(ctx, &dir, cfg).await?;
                    let files = list_files(&dir, cfg)?.len().min(4);
                    schema_tracking::load_or_init(sd, cfg, &inferred, files)?
                }
            },
            (None, None) => infer_schema(ctx, &dir, cfg).await?,
        };
        let schema = if cfg.format == FileFormat::Parquet {
            Arc::new(schema)
        } else if evolution == SchemaEvolutionMode::Rescue {
            json_lines::output_schema(&strip_rescued(&schema), ParseMode::Permissive)
        } else {
            json_lines::output_schema(&schema, cfg.parse_mode)
        };
        let watcher =
            if cfg.use_notifications { Some(watch_folder(&dir, wake.clone())?) } else { None };
        Ok(Self {
            node,
            cfg: cfg.clone(),
            dir,
            schema,
            schema_dir,
            evolution,
            seen: HashSet::new(),
            bound: None,
            backlog: 0,
            _watcher: watcher,
        })
    }

    pub fn node(&self) -> &NodeId {
        &self.node
    }

    pub fn describe(&self) -> String {
        format!("files:{}:{}", self.cfg.format.as_str(), self.cfg.path)
    }

    /// The schema for the checkpoint's start-up check; a tracked schema is checked (and
    /// evolves) under its own location instead.
    pub fn schema_ddl(&self) -> Option<String> {
        self.schema_dir.is_none().then(|| schema::schema_to_ddl(&self.schema))
    }

    pub fn backlog(&self) -> u64 {
        self.backlog
    }

    /// Marks a batch's files as processed.
    pub fn advance(&mut self, offset: &SourceOffset) {
        if let SourceOffset::Files { files } = offset {
            self.seen.extend(files.iter().map(|f| f.path.clone()));
        }
    }

    /// availableNow: only the files listed now.
    pub fn bind_available_now(&mut self) -> Result<()> {
        let listed = list_with_sizes(&self.dir, &self.cfg)?;
        self.bound = Some(listed.into_iter().map(|f| f.name).collect());
        Ok(())
    }

    /// The complete files not read yet, up to `maxFilesPerTrigger` / `maxBytesPerTrigger`.
    pub fn plan_next(&mut self) -> Result<SourceOffset> {
        let cfg = &self.cfg;
        let listed: Vec<ListedFile> = list_with_sizes(&self.dir, cfg)?
            .into_iter()
            .filter(|f| !self.seen.contains(&f.name))
            .filter(|f| self.bound.as_ref().is_none_or(|b| b.contains(&f.name)))
            .filter(|f| looks_complete(&f.path, cfg.format, f.size))
            .collect();
        let max_files = cfg.max_files_per_trigger.unwrap_or(1000);
        let mut files = Vec::new();
        let mut bytes = 0u64;
        for f in &listed {
            if files.len() >= max_files {
                break;
            }
            if let Some(max) = cfg.max_bytes_per_trigger
                && !files.is_empty()
                && bytes + f.size > max
            {
                break;
            }
            bytes += f.size;
            files.push(FileEntry { path: f.name.clone(), size: f.size });
        }
        self.backlog = (listed.len() - files.len()) as u64;
        Ok(SourceOffset::Files { files })
    }

    /// Reads exactly the files of `offset`.
    pub async fn read(&self, ctx: &SessionContext, offset: &SourceOffset) -> Result<SourceData> {
        let SourceOffset::Files { files } = offset else {
            return Err(offset_mismatch(offset, &self.describe()));
        };
        let (cfg, schema) = (&self.cfg, &self.schema);
        let paths: Vec<PathBuf> = files.iter().map(|f| self.dir.join(&f.path)).collect();
        if cfg.format == FileFormat::Parquet {
            if self.schema_dir.is_some()
                && matches!(
                    self.evolution,
                    SchemaEvolutionMode::AddNewColumns | SchemaEvolutionMode::FailOnNewColumns
                )
            {
                self.check_parquet_columns(&paths)?;
            }
            let df = if paths.is_empty() {
                empty(ctx, schema.clone())?
            } else {
                read_files(ctx, &paths, &with_schema(cfg, schema)).await?
            };
            let rows = df.clone().count().await? as u64;
            return Ok(SourceData { df, rows, bad: Vec::new(), mode: cfg.parse_mode });
        }
        // a tracked CSV schema is matched by header names, whatever the evolution mode
        let csv_by_name = cfg.format == FileFormat::Csv && cfg.header && self.schema_dir.is_some();
        let json_evolving =
            cfg.format == FileFormat::Json && self.evolution != SchemaEvolutionMode::None;
        let decoded = if csv_by_name || json_evolving {
            self.decode_evolving(paths).await?
        } else {
            decode_files(paths, cfg, strip_rescued(schema)).await?
        };
        let rows = decoded.batches.iter().map(RecordBatch::num_rows).sum::<usize>() as u64;
        let table = MemTable::try_new(decoded.schema, vec![decoded.batches])?;
        Ok(SourceData {
            df: ctx.read_table(Arc::new(table))?,
            rows,
            bad: decoded.bad,
            mode: cfg.parse_mode,
        })
    }
}

impl FileStream {
    /// JSON files under a schema evolution mode, or CSV files with a tracked schema (read by
    /// header names): each file is checked for top-level fields the schema lacks. addNewColumns writes the next schema version and stops (the next
    /// start reads them); failOnNewColumns stops; rescue puts them into `_rescued_data`.
    async fn decode_evolving(&self, paths: Vec<PathBuf>) -> Result<DecodedFiles> {
        let base = strip_rescued(&self.schema);
        let (mode, evolution) = (self.cfg.parse_mode, self.evolution);
        let hints = self.cfg.schema_hints.clone();
        let out_schema = self.schema.clone();
        let schema_in = base.clone();
        let csv = self.cfg.format == FileFormat::Csv;
        let stops = matches!(
            evolution,
            SchemaEvolutionMode::AddNewColumns | SchemaEvolutionMode::FailOnNewColumns
        );
        let found = tokio::task::spawn_blocking(move || -> Result<_> {
            let mut batches = Vec::new();
            let mut bad = Vec::new();
            for path in &paths {
                let bytes = std::fs::read(path).map_err(|e| EngineError::io(path, e))?;
                let name = path.to_string_lossy().into_owned();
                if csv {
                    let header = csv_evolution::header(&name, &bytes)?;
                    let new = csv_evolution::new_fields(&header, &schema_in, hints.as_deref())?;
                    if !new.is_empty() && stops {
                        return Ok(Err((name, new)));
                    }
                    let rescue = evolution == SchemaEvolutionMode::Rescue;
                    let d = csv_evolution::decode(
                        &name,
                        &bytes,
                        &header,
                        &schema_in,
                        mode,
                        rescue,
                        &out_schema,
                    )?;
                    batches.extend(d.batches);
                    bad.extend(d.bad);
                    continue;
                }
                let new = schema_tracking::new_fields(&bytes, &schema_in, hints.as_deref())?;
                if !new.is_empty() && evolution != SchemaEvolutionMode::Rescue {
                    return Ok(Err((name, new)));
                }
                let d = json_lines::decode(&name, &bytes, &schema_in, mode)?;
                let mut good = d.batches;
                if evolution == SchemaEvolutionMode::Rescue {
                    if mode != ParseMode::Permissive {
                        good = good
                            .into_iter()
                            .map(|b| {
                                let mut cols = b.columns().to_vec();
                                cols.push(arrow::array::new_null_array(
                                    &arrow::datatypes::DataType::Utf8,
                                    b.num_rows(),
                                ));
                                RecordBatch::try_new(out_schema.clone(), cols)
                            })
                            .collect::<std::result::Result<_, _>>()?;
                    }
                    if !new.is_empty() {
                        let bad_lines: HashSet<u64> = d.bad.iter().map(|b| b.line).collect();
                        let rescued: Vec<Option<String>> =
                            schema_tracking::rescued_fields(&bytes, &schema_in, &name)
                                .into_iter()
                                .filter(|(line, _)| !bad_lines.contains(line))
                                .map(|(_, r)| r)
                                .collect();
                        good = schema_tracking::fill_rescued(good, &rescued)?;
                    }
                }
                batches.extend(good);
                bad.extend(d.bad);
            }
            Ok(Ok((batches, bad)))
        })
        .await
        .map_err(|e| EngineError::Config(format!("reader task failed: {e}")))??;
        let (file, new) = match found {
            Ok((batches, bad)) => {
                return Ok(DecodedFiles { schema: self.schema.clone(), batches, bad });
            }
            Err(found) => found,
        };
        Err(self.new_columns(&file, new, &base)?)
    }

    /// Parquet files under addNewColumns / failOnNewColumns: a file whose own schema (its
    /// footer, no rows read) has columns the tracked schema lacks stops the stream as JSON
    /// and CSV files do; the new columns keep their Parquet types.
    fn check_parquet_columns(&self, paths: &[PathBuf]) -> Result<()> {
        use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
        for path in paths {
            let f = std::fs::File::open(path).map_err(|e| EngineError::io(path, e))?;
            let own = ParquetRecordBatchReaderBuilder::try_new(f)
                .map_err(|e| {
                    EngineError::Config(format!("{}: not a Parquet file: {e}", path.display()))
                })?
                .schema()
                .clone();
            let new: Vec<arrow::datatypes::Field> = own
                .fields()
                .iter()
                .filter(|f| self.schema.field_with_name(f.name()).is_err())
                .map(|f| f.as_ref().clone().with_nullable(true))
                .collect();
            if !new.is_empty() {
                let file = path.to_string_lossy();
                return Err(self.new_columns(&file, new, &self.schema)?);
            }
        }
        Ok(())
    }

    /// The error that stops the stream for `new` columns in `file` (addNewColumns first
    /// writes the next schema version with them).
    fn new_columns(
        &self,
        file: &str,
        new: Vec<arrow::datatypes::Field>,
        base: &Schema,
    ) -> Result<EngineError> {
        let evolution = self.evolution;
        let names = new
            .iter()
            .map(|f| format!("`{}` ({})", f.name(), schema::type_ddl(f.data_type())))
            .collect::<Vec<_>>()
            .join(", ");
        if evolution == SchemaEvolutionMode::FailOnNewColumns {
            return Ok(EngineError::Schema(format!(
                "file {file} has new columns {names}; schema_evolution_mode = \"failOnNewColumns\" stops the stream. \
                 Add them to the schema, or use \"addNewColumns\" (evolve) or \"rescue\" (keep them in `_rescued_data`)"
            )));
        }
        let Some(dir) = &self.schema_dir else {
            return Ok(EngineError::Schema(format!(
                "file {file} has new columns {names}, and the schema is fixed by DDL; add them to `schema`"
            )));
        };
        let mut fields: Vec<arrow::datatypes::Field> =
            base.fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.extend(new);
        let evolved = Schema::new(fields);
        let v = schema_tracking::append(dir, &evolved, format!("new columns {names} in {file}"))?;
        Ok(EngineError::Schema(format!(
            "file {file} has new columns {names}: the tracked schema at {} is now version {} with them. \
             Restart the stream to read them (Auto Loader's addNewColumns); the Delta sink needs \
             schema_mode = \"merge\" to add them to its table",
            dir.display(),
            v.version
        )))
    }
}

/// JSON or CSV files decoded with the source's parse mode.
pub struct DecodedFiles {
    /// The schema with `_rescued_data` in permissive mode.
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
    pub bad: Vec<json_lines::BadRecord>,
}

/// Decodes JSON or CSV `paths` with `schema` (without `_rescued_data`) and the source's parse
/// mode, off the async workers. Batch and stream reads share it.
pub async fn decode_files(
    paths: Vec<PathBuf>,
    cfg: &FileSource,
    schema: Schema,
) -> Result<DecodedFiles> {
    let (format, mode, header) = (cfg.format, cfg.parse_mode, cfg.header);
    let out_schema = json_lines::output_schema(&schema, mode);
    let (batches, bad) = tokio::task::spawn_blocking(move || -> Result<_> {
        let mut batches = Vec::new();
        let mut bad = Vec::new();
        for path in &paths {
            let d = decode_file(path, format, &schema, header, mode)?;
            batches.extend(d.batches);
            bad.extend(d.bad);
        }
        Ok((batches, bad))
    })
    .await
    .map_err(|e| EngineError::Config(format!("reader task failed: {e}")))??;
    Ok(DecodedFiles { schema: out_schema, batches, bad })
}

/// Decodes one whole JSON Lines or CSV file (`header`: CSV's first line names the columns).
pub(crate) fn decode_file(
    path: &Path,
    format: FileFormat,
    schema: &Schema,
    header: bool,
    mode: ParseMode,
) -> Result<json_lines::Decoded> {
    let bytes = std::fs::read(path).map_err(|e| EngineError::io(path, e))?;
    let name = path.to_string_lossy();
    match format {
        FileFormat::Csv => super::csv_lines::decode(&name, &bytes, schema, header, mode),
        _ => json_lines::decode(&name, &bytes, schema, mode),
    }
}

/// Wakes the loop on file events in `dir` (notification mode).
fn watch_folder(dir: &Path, wake: mpsc::Sender<()>) -> Result<notify::RecommendedWatcher> {
    use notify::Watcher;
    std::fs::create_dir_all(dir).map_err(|e| EngineError::io(dir, e))?;
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if event.is_ok() {
            let _ = wake.try_send(()); // a full channel already holds a wake-up
        }
    })
    .map_err(|e| EngineError::Config(format!("cannot watch {}: {e}", dir.display())))?;
    watcher
        .watch(dir, notify::RecursiveMode::NonRecursive)
        .map_err(|e| EngineError::Config(format!("cannot watch {}: {e}", dir.display())))?;
    Ok(watcher)
}

pub(crate) fn strip_rescued(schema: &Schema) -> Schema {
    Schema::new(
        schema
            .fields()
            .iter()
            .filter(|f| f.name() != crate::model::node::RESCUED_DATA_COLUMN)
            .cloned()
            .collect::<Vec<_>>(),
    )
}

fn with_schema(cfg: &FileSource, schema: &SchemaRef) -> FileSource {
    FileSource { schema: Some(schema::schema_to_ddl(schema)), ..cfg.clone() }
}
