//! Auto Loader's schema tracking for file streams without a DDL schema: the schema is
//! inferred from the first files (JSON and CSV columns as STRING, as Auto Loader does
//! without `inferColumnTypes`), `schema_hints` pin some columns' types, and every version is
//! kept under the schema location (`<checkpoint>/_schemas/<node>/<n>.json` unless
//! `schema_location` says otherwise). New top-level JSON fields are found per file and
//! handled by `schema_evolution_mode`: addNewColumns (add them to a new schema version,
//! stop; the next start reads them), rescue (into `_rescued_data`), failOnNewColumns
//! (stop), none (ignore).

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Fields, Schema};
use serde::{Deserialize, Serialize};

use crate::model::node::{FileFormat, FileSource, RESCUED_DATA_COLUMN, SchemaEvolutionMode};
use crate::model::{NodeId, Pipeline};

use super::super::{EngineError, Result, delta, schema};

/// One version of a tracked schema.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SchemaVersion {
    pub version: u32,
    /// The schema as DDL.
    pub ddl: String,
    /// RFC 3339.
    pub created_at: String,
    /// Why it was written: inferred from which files, or which new columns in which file.
    pub reason: String,
}

/// Where the schema of file source `node` is tracked.
pub fn schema_dir(
    pipeline: &Pipeline,
    root: &Path,
    node: &NodeId,
    cfg: &FileSource,
) -> Result<PathBuf> {
    match &cfg.schema_location {
        Some(loc) => Ok(delta::resolve(root, &crate::model::env::expand(loc)?)),
        None => Ok(super::super::stream::checkpoint_dir(pipeline, root)?
            .join("_schemas")
            .join(node.as_str())),
    }
}

/// Whether the source's schema is tracked: a stream file source without a DDL schema.
pub fn is_tracked(cfg: &FileSource) -> bool {
    cfg.schema.as_deref().is_none_or(|s| s.trim().is_empty())
}

/// The evolution mode in force: the source's, or addNewColumns when tracked, none otherwise.
pub fn evolution_mode(cfg: &FileSource) -> SchemaEvolutionMode {
    cfg.schema_evolution_mode.unwrap_or(if is_tracked(cfg) {
        SchemaEvolutionMode::AddNewColumns
    } else {
        SchemaEvolutionMode::None
    })
}

/// Every version under `dir`, oldest first (none when nothing was tracked yet).
pub fn history(dir: &Path) -> Result<Vec<SchemaVersion>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(EngineError::io(dir, e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| EngineError::io(dir, e))?.path();
        if path.extension().is_some_and(|e| e == "json") {
            let bytes = std::fs::read(&path).map_err(|e| EngineError::io(&path, e))?;
            let v: SchemaVersion = serde_json::from_slice(&bytes).map_err(|e| {
                EngineError::Config(format!("{}: not a schema version: {e}", path.display()))
            })?;
            out.push(v);
        }
    }
    out.sort_by_key(|v| v.version);
    Ok(out)
}

/// Writes the next version (atomically: temp file, then rename).
pub fn append(dir: &Path, schema: &Schema, reason: String) -> Result<SchemaVersion> {
    std::fs::create_dir_all(dir).map_err(|e| EngineError::io(dir, e))?;
    let version = history(dir)?.last().map_or(0, |v| v.version + 1);
    let v = SchemaVersion {
        version,
        ddl: schema::schema_to_ddl(schema),
        created_at: chrono::Utc::now().to_rfc3339(),
        reason,
    };
    let path = dir.join(format!("{version}.json"));
    let tmp = dir.join(format!(".{version}.json.tmp"));
    let text = serde_json::to_vec_pretty(&v)
        .map_err(|e| EngineError::Config(format!("cannot write the schema version: {e}")))?;
    std::fs::write(&tmp, text).map_err(|e| EngineError::io(&tmp, e))?;
    std::fs::rename(&tmp, &path).map_err(|e| EngineError::io(&path, e))?;
    Ok(v)
}

/// Auto Loader's inference for formats without types: every leaf is STRING (structs and
/// arrays keep their shape). Parquet keeps its types.
pub fn as_strings(t: &DataType) -> DataType {
    match t {
        DataType::Struct(fields) => DataType::Struct(Fields::from(
            fields
                .iter()
                .map(|f| f.as_ref().clone().with_data_type(as_strings(f.data_type())))
                .collect::<Vec<_>>(),
        )),
        DataType::List(f) => {
            DataType::List(Arc::new(f.as_ref().clone().with_data_type(as_strings(f.data_type()))))
        }
        _ => DataType::Utf8,
    }
}

/// `schema` with `hints` (DDL) applied: a hinted column takes the hint's type; a hinted
/// column not in the schema is added.
pub fn apply_hints(schema: &Schema, hints: Option<&str>) -> Result<Schema> {
    let Some(hints) = hints.filter(|h| !h.trim().is_empty()) else { return Ok(schema.clone()) };
    let hints = schema::ddl_to_schema(hints)
        .map_err(|e| EngineError::Config(format!("schema_hints: {e}")))?;
    let mut fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| match hints.field_with_name(f.name()) {
            Ok(h) => f.as_ref().clone().with_data_type(h.data_type().clone()),
            Err(_) => f.as_ref().clone(),
        })
        .collect();
    for h in hints.fields() {
        if schema.field_with_name(h.name()).is_err() {
            fields.push(h.as_ref().clone());
        }
    }
    Ok(Schema::new(fields))
}

/// The schema to start with: the newest tracked version, or one inferred from `inferred`
/// (what the first files hold) and stored as version 0.
pub fn load_or_init(
    dir: &Path,
    cfg: &FileSource,
    inferred: &Schema,
    files: usize,
) -> Result<Schema> {
    if let Some(v) = history(dir)?.pop() {
        return schema::ddl_to_schema(&v.ddl);
    }
    let base = if cfg.format == FileFormat::Parquet {
        inferred.clone()
    } else {
        Schema::new(
            inferred
                .fields()
                .iter()
                .filter(|f| f.name() != RESCUED_DATA_COLUMN)
                .map(|f| f.as_ref().clone().with_data_type(as_strings(f.data_type())))
                .collect::<Vec<_>>(),
        )
    };
    let schema = apply_hints(&base, cfg.schema_hints.as_deref())?;
    append(dir, &schema, format!("inferred from the first {files} file(s)"))?;
    Ok(schema)
}

/// Top-level fields of a JSON-lines file that `schema` does not have, typed as Auto Loader
/// would add them (STRING leaves, hints applied). A strict decode (a fast Arrow pass) rules
/// most files out; only a file that fails it is inferred.
pub fn new_fields(bytes: &[u8], schema: &Schema, hints: Option<&str>) -> Result<Vec<Field>> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let strict = arrow::json::ReaderBuilder::new(Arc::new(schema.clone()))
        .with_strict_mode(true)
        .with_coerce_primitive(true)
        .build(Cursor::new(bytes))
        .and_then(|r| r.collect::<std::result::Result<Vec<_>, _>>());
    if strict.is_ok() {
        return Ok(Vec::new());
    }
    let Ok((found, _)) = arrow::json::reader::infer_json_schema(Cursor::new(bytes), None) else {
        return Ok(Vec::new()); // malformed records: the parse mode deals with them
    };
    let new: Vec<Field> = found
        .fields()
        .iter()
        .filter(|f| schema.field_with_name(f.name()).is_err())
        .map(|f| Field::new(f.name(), as_strings(f.data_type()), true))
        .collect();
    let hinted = apply_hints(&Schema::new(new.clone()), hints)?;
    Ok(hinted
        .fields()
        .iter()
        .filter(|f| new.iter().any(|n| n.name() == f.name()))
        .map(|f| f.as_ref().clone())
        .collect())
}

/// Per non-blank line of a JSON-lines file (with its 1-based line number): the top-level
/// fields `schema` lacks, as a JSON object with `_file_path` (Auto Loader's
/// `_rescued_data`), or NULL.
pub fn rescued_fields(bytes: &[u8], schema: &Schema, file: &str) -> Vec<(u64, Option<String>)> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    bytes
        .split(|&b| b == b'\n')
        .enumerate()
        .filter(|(_, l)| !l.iter().all(u8::is_ascii_whitespace))
        .map(|(i, line)| (i as u64 + 1, rescue_line(line, schema, file)))
        .collect()
}

fn rescue_line(line: &[u8], schema: &Schema, file: &str) -> Option<String> {
    let Ok(serde_json::Value::Object(obj)) = serde_json::from_slice(line) else {
        return None;
    };
    let mut extra: serde_json::Map<String, serde_json::Value> =
        obj.into_iter().filter(|(k, _)| schema.field_with_name(k).is_err()).collect();
    if extra.is_empty() {
        return None;
    }
    extra.insert("_file_path".into(), serde_json::Value::String(file.to_owned()));
    Some(serde_json::Value::Object(extra).to_string())
}

/// Puts `rescued` (one per good row, in order) into the `_rescued_data` column of `batches`
/// where that column is NULL (a malformed record's own rescue wins).
pub fn fill_rescued(
    batches: Vec<RecordBatch>,
    rescued: &[Option<String>],
) -> Result<Vec<RecordBatch>> {
    let mut out = Vec::with_capacity(batches.len());
    let mut at = 0;
    for b in batches {
        let Ok(i) = b.schema().index_of(RESCUED_DATA_COLUMN) else {
            out.push(b);
            continue;
        };
        let n = b.num_rows();
        let current = b.column(i).as_any().downcast_ref::<StringArray>().cloned();
        let values: StringArray = (0..n)
            .map(|r| match &current {
                Some(c) if c.is_valid(r) => Some(c.value(r).to_owned()),
                _ => rescued.get(at + r).cloned().flatten(),
            })
            .collect();
        at += n;
        let mut cols: Vec<ArrayRef> = b.columns().to_vec();
        cols[i] = Arc::new(values);
        out.push(RecordBatch::try_new(b.schema(), cols)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_hints_and_new_fields() {
        let dir = tempfile::tempdir().unwrap();
        let inferred = schema::ddl_to_schema("id BIGINT, e STRUCT<t: BIGINT>").unwrap();
        let cfg = FileSource { schema_hints: Some("id BIGINT".into()), ..FileSource::default() };
        let s = load_or_init(dir.path(), &cfg, &inferred, 2).unwrap();
        assert_eq!(schema::schema_to_ddl(&s), "id BIGINT, e STRUCT<t: STRING>");
        assert_eq!(history(dir.path()).unwrap()[0].reason, "inferred from the first 2 file(s)");
        let new = new_fields(b"{\"id\": 1, \"genre\": 5}\n", &s, None).unwrap();
        assert_eq!(new, [Field::new("genre", DataType::Utf8, true)]);
        assert!(new_fields(b"{\"id\": 1}\n", &s, None).unwrap().is_empty());
        let rescued = rescued_fields(b"{\"id\": 1, \"genre\": 5}\n\n{\"id\": 2}\n", &s, "f.json");
        assert_eq!(
            rescued,
            [(1, Some(r#"{"_file_path":"f.json","genre":5}"#.to_owned())), (3, None)]
        );
    }
}
