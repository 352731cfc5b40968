//! Node kinds: one variant per source, transform and sink, each with its own config.
//!
//! Adding a kind means adding a variant here; the compiler then lists every place that must
//! handle it (ports below, planning in `engine::plan`, the inspector).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::graph::{NodeId, Pos};
pub use super::quality::{Expectations, OnViolation, Rule, SchemaEvolutionMode, SchemaMode};
pub use super::streaming::{LateRows, OutputMode, Watermark};

/// One box on the canvas.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Node {
    pub id: NodeId,
    /// Human-readable title; the id is shown when empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default)]
    pub pos: Pos,
    #[serde(flatten)]
    pub kind: NodeKind,
}

impl Node {
    pub fn new(id: impl Into<String>, kind: NodeKind) -> Self {
        Self { id: NodeId::new(id), name: String::new(), pos: Pos::default(), kind }
    }

    pub fn with_pos(mut self, x: f32, y: f32) -> Self {
        self.pos = Pos { x, y };
        self
    }

    /// The name to show: `name`, or the id when it has none.
    pub fn title(&self) -> &str {
        if self.name.is_empty() { self.id.as_str() } else { &self.name }
    }
}

/// What a node does, with its settings. Serialized with a `kind = "..."` tag.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum NodeKind {
    DeltaSource(DeltaSource),
    FileSource(FileSource),
    GeneratorSource(GeneratorSource),
    KafkaSource(KafkaSource),
    Select(Select),
    ParseJson(ParseJson),
    Flatten(Flatten),
    WithColumns(WithColumns),
    Filter(Filter),
    Sql(Sql),
    Join(Join),
    Distinct(Distinct),
    Deduplicate(Deduplicate),
    Aggregate(Aggregate),
    Watermark(Watermark),
    Expectations(Expectations),
    DeltaSink(DeltaSink),
    KafkaSink(KafkaSink),
}

/// Whether a node produces data, changes it, or writes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NodeRole {
    Source,
    Transform,
    Sink,
}

/// Medallion layer of a table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Layer {
    Landing,
    Bronze,
    Silver,
    Gold,
}

impl Layer {
    pub const ALL: [Layer; 4] = [Layer::Landing, Layer::Bronze, Layer::Silver, Layer::Gold];

    pub fn as_str(self) -> &'static str {
        match self {
            Layer::Landing => "landing",
            Layer::Bronze => "bronze",
            Layer::Silver => "silver",
            Layer::Gold => "gold",
        }
    }

    /// The layer a table path names by its first segment (`silver/users` is silver).
    pub fn from_table_path(path: &str) -> Option<Layer> {
        let first = path.trim_start_matches("./").split(['/', '\\']).next()?;
        Layer::ALL.into_iter().find(|l| l.as_str() == first)
    }
}

impl std::fmt::Display for Layer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `spark.read.format("delta").load(table)`, optionally time-travelled.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeltaSource {
    /// Table path, relative to the lakehouse root unless absolute.
    pub table: String,
    /// `versionAsOf`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<i64>,
    /// `timestampAsOf`, RFC 3339 (e.g. `2026-11-24T10:00:00Z`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
    /// Streams: read the whole table (its latest version) in every micro-batch instead of
    /// tailing new versions, for a stream-static join.
    #[serde(default, skip_serializing_if = "is_false")]
    pub static_table: bool,
    /// Streams: `skipChangeCommits`: ignore versions that remove or rewrite data instead of
    /// stopping the query.
    #[serde(default, skip_serializing_if = "is_false")]
    pub skip_change_commits: bool,
    /// Streams: `startingVersion`: the first version to read (default: the whole table).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starting_version: Option<i64>,
    /// Streams: at most about this many new data files per micro-batch (whole versions;
    /// Spark's `maxFilesPerTrigger`, default 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_files_per_trigger: Option<usize>,
}

/// What to do with a record that does not parse or does not fit the schema (Spark's `mode`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParseMode {
    /// Keep the row; its raw text and the reason go to `_rescued_data`.
    #[default]
    Permissive,
    /// Drop the row; the raw record, where it came from and why go to the quarantine table.
    DropMalformed,
    /// Stop the query with the file, line and reason.
    FailFast,
}

impl ParseMode {
    pub const ALL: [ParseMode; 3] =
        [ParseMode::Permissive, ParseMode::DropMalformed, ParseMode::FailFast];

    pub fn as_str(self) -> &'static str {
        match self {
            ParseMode::Permissive => "permissive",
            ParseMode::DropMalformed => "drop_malformed",
            ParseMode::FailFast => "fail_fast",
        }
    }
}

/// Column that holds a malformed record in `permissive` mode.
pub const RESCUED_DATA_COLUMN: &str = "_rescued_data";

/// `readStream.format("kafka")`, with Spark's option names. Offsets live in the checkpoint.
/// Columns: `key, value` (binary), `topic, partition, offset, timestamp, timestampType`, and
/// `headers` with `includeHeaders`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSource {
    /// `kafka.bootstrap.servers`; `${KAFKA_BOOTSTRAP_SERVERS:-localhost:9092}` keeps it out of
    /// the file.
    #[serde(rename = "kafka.bootstrap.servers")]
    pub bootstrap_servers: String,
    /// `subscribe`: topics to read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subscribe: Vec<String>,
    /// `subscribePattern`: a regex over topic names (instead of `subscribe`).
    #[serde(default, rename = "subscribePattern", skip_serializing_if = "Option::is_none")]
    pub subscribe_pattern: Option<String>,
    /// `startingOffsets`: `earliest` (default), `latest`, or JSON such as
    /// `{"topic": {"0": 23, "1": -2}}` (-2 = earliest, -1 = latest). Only for a new checkpoint.
    #[serde(default, rename = "startingOffsets", skip_serializing_if = "Option::is_none")]
    pub starting_offsets: Option<String>,
    /// `maxOffsetsPerTrigger`: at most this many messages per micro-batch.
    #[serde(default, rename = "maxOffsetsPerTrigger", skip_serializing_if = "Option::is_none")]
    pub max_offsets_per_trigger: Option<u64>,
    /// `failOnDataLoss`: stop when offsets to read were deleted (retention) or a partition
    /// vanished; when false, continue from the earliest available offset with a warning.
    #[serde(default = "default_true", rename = "failOnDataLoss", skip_serializing_if = "is_true")]
    pub fail_on_data_loss: bool,
    /// `includeHeaders`: add Spark's `headers` column (`array<struct<key: string, value:
    /// binary>>`); off by default, as in Spark, and reading headers costs ~3% of a read.
    #[serde(default, rename = "includeHeaders", skip_serializing_if = "is_false")]
    pub include_headers: bool,
    /// Any other `kafka.*` option, passed to librdkafka without the prefix
    /// (`"kafka.security.protocol" = "SASL_SSL"`, `"kafka.sasl.password" = "${KAFKA_PASSWORD}"`).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub options: std::collections::BTreeMap<String, String>,
}

impl Default for KafkaSource {
    /// The project file's defaults (`failOnDataLoss` is true, as in Spark).
    fn default() -> Self {
        Self {
            bootstrap_servers: String::new(),
            subscribe: Vec::new(),
            subscribe_pattern: None,
            starting_offsets: None,
            max_offsets_per_trigger: None,
            fail_on_data_loss: true,
            include_headers: false,
            options: BTreeMap::new(),
        }
    }
}

/// `from_json(col(column).cast("string"), schema)` then `select("data.*")`: the JSON in a
/// column becomes typed columns, with Spark's parse modes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParseJson {
    /// The column holding JSON text or bytes (`value` for Kafka).
    #[serde(default = "default_value_column")]
    pub column: String,
    /// Spark DDL of the JSON documents.
    pub schema: String,
    #[serde(default, skip_serializing_if = "is_default")]
    pub parse_mode: ParseMode,
    /// Input columns to keep next to the parsed ones (e.g. `topic`, `partition`, `offset`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keep: Vec<String>,
}

pub(super) fn default_value_column() -> String {
    "value".to_owned()
}

/// Rows to a Kafka topic: idempotent producer, at-least-once (a replayed batch is sent again).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSink {
    #[serde(rename = "kafka.bootstrap.servers")]
    pub bootstrap_servers: String,
    pub topic: String,
    /// Column sent as the message value; the whole row as JSON when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_column: Option<String>,
    /// Column sent as the message key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_column: Option<String>,
    /// Other `kafka.*` options for the producer, as for the source.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub options: std::collections::BTreeMap<String, String>,
}

/// Synthetic demo users at a steady rate, for demos and benchmarks (like Spark's `rate`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeneratorSource {
    pub rows_per_second: u64,
    /// Stop after this many rows (never, when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_rows: Option<u64>,
    #[serde(default)]
    pub seed: u64,
}

impl Default for GeneratorSource {
    fn default() -> Self {
        Self { rows_per_second: 100, max_rows: None, seed: 0 }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileFormat {
    /// JSON lines (Spark's `json` reader default).
    #[default]
    Json,
    Csv,
    Parquet,
}

impl FileFormat {
    pub const ALL: [FileFormat; 3] = [FileFormat::Json, FileFormat::Csv, FileFormat::Parquet];

    pub fn as_str(self) -> &'static str {
        match self {
            FileFormat::Json => "json",
            FileFormat::Csv => "csv",
            FileFormat::Parquet => "parquet",
        }
    }

    /// File name ending a listing picks up by default.
    pub fn default_glob(self) -> &'static str {
        match self {
            FileFormat::Json => "*.json",
            FileFormat::Csv => "*.csv",
            FileFormat::Parquet => "*.parquet",
        }
    }
}

/// `spark.read.schema(s).json(dir)`: files in a folder.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSource {
    /// Folder (or single file), relative to the lakehouse root unless absolute.
    pub path: String,
    #[serde(default)]
    pub format: FileFormat,
    /// File-name pattern inside the folder; defaults to `*.json` / `*.csv` / `*.parquet`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub glob: Option<String>,
    /// Spark-style DDL (`id BIGINT, e STRUCT<t: STRING>`); inferred from a sample when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// CSV only: first line holds column names.
    #[serde(default = "default_true", skip_serializing_if = "is_true")]
    pub header: bool,
    /// JSON and CSV: what to do with malformed records.
    #[serde(default, skip_serializing_if = "is_default")]
    pub parse_mode: ParseMode,
    /// Streams without a DDL schema: where the inferred schema and its versions are kept
    /// (Auto Loader's `cloudFiles.schemaLocation`); `<checkpoint>/_schemas/<node>` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_location: Option<String>,
    /// DDL pinning some inferred columns' types (`cloudFiles.schemaHints`): `id BIGINT`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_hints: Option<String>,
    /// `cloudFiles.schemaEvolutionMode`; addNewColumns without a DDL schema, none with one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_evolution_mode: Option<SchemaEvolutionMode>,
    /// Streams: at most this many new files per micro-batch (Spark's `maxFilesPerTrigger`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_files_per_trigger: Option<usize>,
    /// Streams: at most about this many bytes of new files per micro-batch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_bytes_per_trigger: Option<u64>,
    /// Streams: find new files from OS file events (Auto Loader's notification mode), with a
    /// listing at every trigger as a safety net. Listing mode when false.
    #[serde(default, skip_serializing_if = "is_false")]
    pub use_notifications: bool,
}

impl Default for FileSource {
    /// The project file's defaults (a CSV file has a header line unless `header = false`).
    fn default() -> Self {
        Self {
            path: String::new(),
            format: FileFormat::default(),
            glob: None,
            schema: None,
            header: true,
            parse_mode: ParseMode::default(),
            schema_location: None,
            schema_hints: None,
            schema_evolution_mode: None,
            max_files_per_trigger: None,
            max_bytes_per_trigger: None,
            use_notifications: false,
        }
    }
}

/// `select(expr.alias(..), ...)`: SQL expressions, each optionally `AS alias`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Select {
    pub columns: Vec<String>,
}

/// Every struct field to a top-level column named `parent<sep>field`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Flatten {
    #[serde(default = "default_separator")]
    pub separator: String,
    /// Flatten only these struct columns (all struct columns when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<String>,
    /// Flatten structs nested in structs too.
    #[serde(default = "default_true", skip_serializing_if = "is_true")]
    pub recursive: bool,
}

impl Default for Flatten {
    fn default() -> Self {
        Self { separator: default_separator(), columns: Vec::new(), recursive: true }
    }
}

/// `withColumn(name, expr)` for each entry, in order; an existing column is replaced.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WithColumns {
    pub columns: Vec<ColumnExpr>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnExpr {
    pub name: String,
    /// SQL expression: `'mongo'`, `current_timestamp()`, `concat_ws(' ', a, b)`.
    pub expr: String,
}

/// `filter(condition)`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    pub condition: String,
}

/// `createOrReplaceTempView` + `spark.sql`: each input port is a view named by the port.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sql {
    /// View names, one input port each.
    pub inputs: Vec<String>,
    pub query: String,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JoinHow {
    #[default]
    Inner,
    Left,
    Right,
    Full,
    LeftSemi,
    LeftAnti,
}

impl JoinHow {
    pub const ALL: [JoinHow; 6] = [
        JoinHow::Inner,
        JoinHow::Left,
        JoinHow::Right,
        JoinHow::Full,
        JoinHow::LeftSemi,
        JoinHow::LeftAnti,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JoinHow::Inner => "inner",
            JoinHow::Left => "left",
            JoinHow::Right => "right",
            JoinHow::Full => "full",
            JoinHow::LeftSemi => "left_semi",
            JoinHow::LeftAnti => "left_anti",
        }
    }
}

/// `left.join(right, left.a == right.b, how)`, ports `left` and `right`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Join {
    #[serde(default)]
    pub how: JoinHow,
    /// Key pairs `[left_column, right_column]`.
    pub on: Vec<[String; 2]>,
    /// Extra join condition in SQL over `left.` and `right.` columns; for a stream-stream join
    /// the time range that bounds its state, e.g.
    /// `right.click_time BETWEEN left.shown_at AND left.shown_at + INTERVAL '1 hour'`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
}

/// `distinct()`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Distinct {}

/// `dropDuplicates(keys)`: the first row of each key. In a stream the keys seen are kept in
/// state across batches (evicted by the watermark when an event-time column is a key);
/// `within_watermark` is `dropDuplicatesWithinWatermark(keys)`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Deduplicate {
    pub keys: Vec<String>,
    /// Streams: `dropDuplicatesWithinWatermark`: a key is remembered until the watermark
    /// passes its event time + the watermark delay (needs a Watermark upstream).
    #[serde(default, skip_serializing_if = "is_false")]
    pub within_watermark: bool,
}

/// `groupBy(..).agg(..)`: SQL expressions, aggregates with `AS alias`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Aggregate {
    #[serde(default)]
    pub group_by: Vec<String>,
    pub aggregates: Vec<String>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WriteMode {
    #[default]
    Append,
    Overwrite,
    /// Upsert by `merge_keys`: update matched rows, insert new ones.
    Merge,
}

impl WriteMode {
    pub const ALL: [WriteMode; 3] = [WriteMode::Append, WriteMode::Overwrite, WriteMode::Merge];

    pub fn as_str(self) -> &'static str {
        match self {
            WriteMode::Append => "append",
            WriteMode::Overwrite => "overwrite",
            WriteMode::Merge => "merge",
        }
    }
}

/// `write.format("delta").mode(..)` or MERGE into a table.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeltaSink {
    /// Table path, relative to the lakehouse root unless absolute.
    pub table: String,
    #[serde(default)]
    pub mode: WriteMode,
    /// Merge mode: the columns that identify a row.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub merge_keys: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub partition_by: Vec<String>,
    /// Layer tag; taken from the table path's first segment when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer: Option<Layer>,
    /// Streams: Spark's `outputMode` for stateful pipelines (append, update, complete).
    #[serde(default, skip_serializing_if = "is_default")]
    pub output_mode: OutputMode,
    /// Compact small files after a commit once enough have gathered (Databricks'
    /// `delta.autoOptimize.autoCompact`); on for streams unless `false`, off in batch runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_compact: Option<bool>,
    /// Small files that start an auto-compaction (Databricks'
    /// `spark.databricks.delta.autoCompact.minNumFiles`, default 50).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_compact_min_files: Option<usize>,
    /// Delta table properties given to the table when this sink creates it
    /// (`delta.logRetentionDuration`, `delta.deletedFileRetentionDuration`,
    /// `delta.targetFileSize`, `delta.checkpointInterval`, ...), as `TBLPROPERTIES`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub properties: BTreeMap<String, String>,
    /// `mergeSchema` / `overwriteSchema`; a different schema is refused without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_mode: Option<SchemaMode>,
}

impl DeltaSink {
    pub fn layer(&self) -> Option<Layer> {
        self.layer.or_else(|| Layer::from_table_path(&self.table))
    }
}

fn is_false(v: &bool) -> bool {
    !*v
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

fn default_true() -> bool {
    true
}

fn is_true(v: &bool) -> bool {
    *v
}

fn default_separator() -> String {
    "_".to_owned()
}

/// Port name of single-input nodes.
pub const DEFAULT_PORT: &str = "in";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_comes_from_the_first_path_segment() {
        assert_eq!(Layer::from_table_path("silver/users"), Some(Layer::Silver));
        assert_eq!(Layer::from_table_path("./bronze/ssn"), Some(Layer::Bronze));
        assert_eq!(Layer::from_table_path("tables/x"), None);
    }

    #[test]
    fn every_palette_kind_has_a_distinct_tag() {
        let tags: std::collections::HashSet<_> =
            NodeKind::palette().iter().map(NodeKind::tag).collect();
        assert_eq!(tags.len(), NodeKind::palette().len());
    }
}
