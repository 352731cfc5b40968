//! One Medallion node → the PySpark lines that compute its DataFrame. Shared by both
//! targets: the script (`pyspark.rs`) and Spark Declarative Pipelines (`sdp.rs`).
//!
//! The `match` on [`NodeKind`] is exhaustive, so a new node kind does not compile until it
//! has its export (and `tests/it/export.rs` runs every kind on Spark).

use std::collections::{BTreeSet, HashMap, HashSet};

use arrow::datatypes::{DataType, SchemaRef};

use crate::model::node::{DEFAULT_PORT, JoinHow, NodeKind, ParseMode, RESCUED_DATA_COLUMN};
use crate::model::streaming::{LateRows, streaming_nodes};
use crate::model::{Node, NodeId, Pipeline, PipelineMode};

use super::Todo;
use super::python::{collapse_ws, comment, env_expr, ident, sql_lit, str_lit};
use super::transforms::{flatten_fields, sql_with_frame_args};

/// Helpers a script defines only when a node uses them (no dead code).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Helper {
    Flatten,
    MergeInto,
    OverwriteTable,
    Quarantine,
    KafkaRecords,
}

/// Rows a node sends to the pipeline's quarantine table: a DataFrame already in the
/// quarantine's columns (without `batch_id` and `quarantined_at`).
pub struct QuarantineFeed {
    pub var: String,
}

/// The state of one pipeline's export: variable names, helpers, TODOs, quarantine feeds.
pub struct Emitter<'a> {
    pub pipeline: &'a Pipeline,
    pub streaming: HashSet<NodeId>,
    pub vars: HashMap<NodeId, String>,
    pub taken: HashSet<String>,
    pub lines: Vec<String>,
    pub helpers: BTreeSet<Helper>,
    pub todos: Vec<Todo>,
    pub quarantine: Vec<QuarantineFeed>,
    /// Tables written by this project's sinks (SDP reads them by name).
    pub table_names: &'a HashMap<String, String>,
    pub sdp: bool,
    /// Output schemas of this pipeline's nodes, when the caller planned them (SDP query
    /// functions may not analyze a DataFrame, so its Flatten and Join need them).
    pub schemas: HashMap<NodeId, SchemaRef>,
}

impl<'a> Emitter<'a> {
    pub fn new(
        pipeline: &'a Pipeline,
        table_names: &'a HashMap<String, String>,
        sdp: bool,
    ) -> Self {
        let mut taken = HashSet::new();
        // node ids keep their own names where they can: helper variables get suffixes
        let mut vars = HashMap::new();
        for n in &pipeline.nodes {
            vars.insert(n.id.clone(), ident(n.id.as_str(), &mut taken));
        }
        Self {
            pipeline,
            streaming: streaming_nodes(pipeline),
            vars,
            taken,
            lines: Vec::new(),
            helpers: BTreeSet::new(),
            todos: Vec::new(),
            quarantine: Vec::new(),
            table_names,
            sdp,
            schemas: HashMap::new(),
        }
    }

    /// The output schema of the node feeding `id`'s `port`, if known.
    pub(super) fn input_schema(&self, id: &NodeId, port: &str) -> Option<SchemaRef> {
        self.pipeline.input_of(id, port).and_then(|from| self.schemas.get(from)).cloned()
    }

    pub fn is_stream(&self, id: &NodeId) -> bool {
        self.pipeline.mode == PipelineMode::Stream && self.streaming.contains(id)
    }

    pub fn line(&mut self, s: impl Into<String>) {
        self.lines.push(s.into());
    }

    pub fn todo(&mut self, node: &Node, message: impl Into<String>) {
        let message = message.into();
        self.line(format!("# TODO(medallion): {}", comment(&message)));
        self.todos.push(Todo {
            pipeline: self.pipeline.name.clone(),
            node: Some(node.id.clone()),
            message,
        });
    }

    /// A setting as Python (env references become `os.environ` reads).
    pub fn value(&mut self, text: &str) -> String {
        env_expr(text).0
    }

    /// `lake.path("bronze/users")`.
    pub fn path(&mut self, rel: &str) -> String {
        format!("lake.path({})", self.value(rel))
    }

    pub fn fresh(&mut self, base: &str) -> String {
        ident(base, &mut self.taken)
    }

    pub fn var(&mut self, id: &NodeId) -> String {
        if let Some(v) = self.vars.get(id) {
            return v.clone();
        }
        let v = ident(id.as_str(), &mut self.taken);
        self.vars.insert(id.clone(), v.clone());
        v
    }

    /// The variable of the node feeding `id`'s input `port`.
    pub fn input(&mut self, id: &NodeId, port: &str) -> String {
        match self.pipeline.input_of(id, port).cloned() {
            Some(from) => self.var(&from),
            None => "None".to_owned(),
        }
    }

    /// Emits the lines computing `node`'s DataFrame (not for sinks).
    pub fn node(&mut self, node: &Node) {
        let title = if node.name.is_empty() { String::new() } else { format!(": {}", node.name) };
        self.line(format!("# node {}{} ({})", node.id, comment(&title), node.kind.tag()));
        let v = self.var(&node.id);
        let stream = self.is_stream(&node.id);
        let input = self.input(&node.id, crate::model::node::DEFAULT_PORT);
        match &node.kind {
            NodeKind::FileSource(src) => self.file_source(node, src, &v, stream),
            NodeKind::DeltaSource(src) => {
                let table = self.table_read(&src.table);
                let mut opts: Vec<(String, String)> = Vec::new();
                if stream {
                    if let Some(sv) = src.starting_version {
                        opts.push(("startingVersion".into(), sv.to_string()));
                    }
                    if src.skip_change_commits {
                        opts.push(("skipChangeCommits".into(), str_lit("true")));
                    }
                    if let Some(m) = src.max_files_per_trigger {
                        opts.push(("maxFilesPerTrigger".into(), m.to_string()));
                    }
                    if let Some(name) = table.named {
                        self.line(format!("{v} = spark.readStream.table({})", str_lit(&name)));
                        return;
                    }
                    self.line(format!("{v} = ("));
                    self.line(format!("    lake.read_stream(spark, {})", table.rel));
                    for (k, val) in &opts {
                        self.line(format!("    .option({}, {val})", str_lit(k)));
                    }
                    self.line(format!("    .load({})", table.path));
                    self.line(")");
                } else {
                    if let Some(ver) = src.version {
                        opts.push(("versionAsOf".into(), ver.to_string()));
                    }
                    if let Some(ts) = &src.timestamp {
                        opts.push(("timestampAsOf".into(), str_lit(ts)));
                    }
                    if !opts.is_empty() {
                        self.line("# time travel is Delta's: the verify profile's Parquet reads the latest files");
                    }
                    if let Some(name) = table.named {
                        self.line(format!("{v} = spark.read.table({})", str_lit(&name)));
                        return;
                    }
                    let mut call = "spark.read.format(lake.table_format)".to_owned();
                    for (k, val) in &opts {
                        call.push_str(&format!(".option({}, {val})", str_lit(k)));
                    }
                    self.line(format!("{v} = {call}.load({})", table.path));
                }
            }
            NodeKind::GeneratorSource(g) => {
                self.todo(
                    node,
                    format!(
                        "Medallion's generator writes synthetic demo users (seed {}); Spark has no such source: the `rate` source stands in, replace it with your data",
                        g.seed
                    ),
                );
                if stream {
                    self.line(format!(
                        "{v} = spark.readStream.format(\"rate\").option(\"rowsPerSecond\", {}).load()",
                        g.rows_per_second
                    ));
                } else {
                    self.line(format!("{v} = spark.range({})", g.max_rows.unwrap_or(100)));
                }
            }
            NodeKind::KafkaSource(k) => self.kafka_source(node, k, &v, stream),
            NodeKind::ParseJson(cfg) => {
                let mut schema = collapse_ws(&cfg.schema);
                let options = match cfg.parse_mode {
                    ParseMode::FailFast => "{\"mode\": \"FAILFAST\"}".to_owned(),
                    _ => {
                        schema.push_str(&format!(", {RESCUED_DATA_COLUMN} STRING"));
                        format!(
                            "{{\"mode\": \"PERMISSIVE\", \"columnNameOfCorruptRecord\": {}}}",
                            str_lit(RESCUED_DATA_COLUMN)
                        )
                    }
                };
                let keep: Vec<String> = cfg.keep.iter().map(|k| col_ref(k)).collect();
                let parsed = self.fresh(&format!("{v}_parsed"));
                self.line(format!("{parsed} = {input}.withColumn("));
                self.line("    \"_data\",");
                self.line(format!(
                    "    F.from_json(F.col({}).cast(\"string\"), {}, {options}),",
                    str_lit(&cfg.column),
                    str_lit(&schema)
                ));
                self.line(")");
                let mut select = keep.clone();
                select.push("\"_data.*\"".into());
                let select = select.join(", ");
                if cfg.parse_mode == ParseMode::DropMalformed {
                    let bad = self.fresh(&format!("{v}_malformed"));
                    let from_kafka = self
                        .pipeline
                        .input_of(&node.id, crate::model::node::DEFAULT_PORT)
                        .and_then(|f| self.pipeline.node(f))
                        .is_some_and(|n| matches!(n.kind, NodeKind::KafkaSource(_)));
                    let origin = if from_kafka {
                        "F.format_string(\"%s:%d@%d\", \"topic\", \"partition\", \"offset\")"
                    } else {
                        "F.lit(None).cast(\"string\")"
                    };
                    self.line(format!("{bad} = {parsed}.filter(F.col(\"_data._rescued_data\").isNotNull()).select("));
                    self.line(format!(
                        "    F.lit({}).alias(\"source_node\"),",
                        str_lit(node.id.as_str())
                    ));
                    self.line(format!("    {origin}.alias(\"file\"),"));
                    self.line("    F.lit(None).cast(\"bigint\").alias(\"line\"),");
                    self.line(format!(
                        "    F.col({}).cast(\"string\").alias(\"raw\"),",
                        str_lit(&cfg.column)
                    ));
                    self.line("    F.lit(\"malformed record\").alias(\"reason\"),");
                    self.line(")");
                    self.quarantine.push(QuarantineFeed { var: bad });
                    self.line(format!(
                        "{v} = {parsed}.filter(F.col(\"_data._rescued_data\").isNull()).select({select}).drop({})",
                        str_lit(RESCUED_DATA_COLUMN)
                    ));
                } else {
                    self.line(format!("{v} = {parsed}.select({select})"));
                }
            }
            NodeKind::Select(s) => {
                self.line(format!("{v} = {input}.selectExpr("));
                for c in &s.columns {
                    self.line(format!("    {},", str_lit(&collapse_ws(c))));
                }
                self.line(")");
            }
            NodeKind::Flatten(f) if self.sdp => match self.input_schema(&node.id, DEFAULT_PORT) {
                Some(schema) => {
                    self.line(format!("{v} = {input}.select("));
                    for field in schema.fields() {
                        let chosen = f.columns.is_empty() || f.columns.contains(field.name());
                        let base = format!(
                            "F.col({})",
                            str_lit(&format!("`{}`", field.name().replace('`', "``")))
                        );
                        if chosen && matches!(field.data_type(), DataType::Struct(_)) {
                            flatten_fields(&base, field, field.name(), f, &mut self.lines);
                        } else {
                            self.line(format!("    {base},"));
                        }
                    }
                    self.line(")");
                }
                None => {
                    self.todo(
                        node,
                        "Flatten needs the input's columns and an SDP query function may not analyze a DataFrame: export from the CLI with the lakehouse (or the app) so the columns are known, or list them in a select",
                    );
                    self.line(format!("{v} = {input}"));
                }
            },
            NodeKind::Flatten(f) => {
                self.helpers.insert(Helper::Flatten);
                let cols: Vec<String> = f.columns.iter().map(|c| str_lit(c)).collect();
                self.line(format!(
                    "{v} = flatten({input}, separator={}, columns=[{}], recursive={})",
                    str_lit(&f.separator),
                    cols.join(", "),
                    if f.recursive { "True" } else { "False" }
                ));
            }
            NodeKind::WithColumns(w) => {
                if w.columns.is_empty() {
                    self.line(format!("{v} = {input}"));
                } else {
                    self.line(format!("{v} = ("));
                    self.line(format!("    {input}"));
                    for c in &w.columns {
                        self.line(format!(
                            "    .withColumn({}, F.expr({}))",
                            str_lit(&c.name),
                            str_lit(&collapse_ws(&c.expr))
                        ));
                    }
                    self.line(")");
                }
            }
            NodeKind::Filter(f) => {
                self.line(format!("{v} = {input}.filter({})", str_lit(&collapse_ws(&f.condition))));
            }
            NodeKind::Sql(s) if self.sdp => {
                // SDP forbids temp views in query functions: DataFrames as named arguments
                self.line(format!("{v} = spark.sql("));
                for l in sql_lit(&sql_with_frame_args(&s.query, &s.inputs)).lines() {
                    if l.is_empty() {
                        self.line("");
                    } else {
                        self.line(format!("    {l}"));
                    }
                }
                if let Some(l) = self.lines.last_mut() {
                    l.push(',');
                }
                for port in &s.inputs {
                    let from = self.input(&node.id, port);
                    self.line(format!("    {port}={from},"));
                }
                self.line(")");
            }
            NodeKind::Sql(s) => {
                for port in &s.inputs {
                    let from = self.input(&node.id, port);
                    self.line(format!("{from}.createOrReplaceTempView({})", str_lit(port)));
                }
                self.line(format!("{v} = spark.sql("));
                for l in sql_lit(&s.query).lines() {
                    if l.is_empty() {
                        self.line("");
                    } else {
                        self.line(format!("    {l}"));
                    }
                }
                self.line(")");
            }
            NodeKind::Join(j) => {
                let left = self.input(&node.id, "left");
                let right = self.input(&node.id, "right");
                let mut conds: Vec<String> =
                    j.on.iter()
                        .map(|[l, r]| format!("left.{} = right.{}", sql_ident(l), sql_ident(r)))
                        .collect();
                if let Some(c) = j.condition.as_deref().filter(|c| !c.trim().is_empty()) {
                    conds.push(format!("({})", collapse_ws(c)));
                }
                let cond = if conds.is_empty() { "true".to_owned() } else { conds.join(" AND ") };
                let how = j.how.as_str();
                self.line(format!("{v} = {left}.alias(\"left\").join("));
                self.line(format!(
                    "    {right}.alias(\"right\"), F.expr({}), {}",
                    str_lit(&cond),
                    str_lit(how)
                ));
                match j.how {
                    JoinHow::LeftSemi | JoinHow::LeftAnti => self.line(")"),
                    _ => {
                        let same: Vec<String> =
                            j.on.iter().filter(|[l, r]| l == r).map(|[l, _]| str_lit(l)).collect();
                        let keys = format!("{{{}}}", same.join(", "));
                        let keys = if same.is_empty() { "set()".to_owned() } else { keys };
                        self.line(").select(");
                        if self.sdp {
                            self.join_columns_sdp(node, j);
                            self.line(")");
                            return;
                        }
                        match j.how {
                            JoinHow::Right => self.line(format!(
                                "    *[F.col(f\"right.`{{c}}`\" if c in {keys} else f\"left.`{{c}}`\").alias(c) for c in {left}.columns],"
                            )),
                            JoinHow::Full if !same.is_empty() => self.line(format!(
                                "    *[F.coalesce(F.col(f\"left.`{{c}}`\"), F.col(f\"right.`{{c}}`\")).alias(c) if c in {keys} else F.col(f\"left.`{{c}}`\") for c in {left}.columns],"
                            )),
                            _ => self.line(format!("    *[F.col(f\"left.`{{c}}`\") for c in {left}.columns],")),
                        }
                        if same.is_empty() {
                            self.line(format!(
                                "    *[F.col(f\"right.`{{c}}`\") for c in {right}.columns],"
                            ));
                        } else {
                            self.line(format!(
                                "    *[F.col(f\"right.`{{c}}`\") for c in {right}.columns if c not in {keys}],"
                            ));
                        }
                        self.line(")");
                    }
                }
            }
            NodeKind::Distinct(_) => {
                // a stream's distinct is dropDuplicates() over every column (state kept for ever)
                let call = if stream { "dropDuplicates()" } else { "distinct()" };
                self.line(format!("{v} = {input}.{call}"));
            }
            NodeKind::Deduplicate(d) => {
                let keys: Vec<String> = d.keys.iter().map(|k| str_lit(k)).collect();
                let call = if stream && d.within_watermark {
                    "dropDuplicatesWithinWatermark"
                } else {
                    "dropDuplicates"
                };
                self.line(format!("{v} = {input}.{call}([{}])", keys.join(", ")));
            }
            NodeKind::Aggregate(a) => {
                let aggs: Vec<String> = a
                    .aggregates
                    .iter()
                    .map(|e| format!("F.expr({})", str_lit(&collapse_ws(e))))
                    .collect();
                if a.group_by.is_empty() {
                    self.line(format!("{v} = {input}.agg({})", aggs.join(", ")));
                } else {
                    let groups: Vec<String> = a
                        .group_by
                        .iter()
                        .map(|e| format!("F.expr({})", str_lit(&collapse_ws(e))))
                        .collect();
                    self.line(format!("{v} = {input}.groupBy({}).agg(", groups.join(", ")));
                    for a in aggs {
                        self.line(format!("    {a},"));
                    }
                    self.line(")");
                }
            }
            NodeKind::Watermark(w) => {
                if w.late_rows == LateRows::Quarantine {
                    self.todo(
                        node,
                        "late_rows = \"quarantine\": Spark drops late rows without handing them out, so they cannot be written to the quarantine table (count them from StreamingQueryProgress.stateOperators[].numRowsDroppedByWatermark)",
                    );
                }
                self.line(format!(
                    "{v} = {input}.withWatermark({}, {})",
                    str_lit(&w.column),
                    str_lit(&w.delay)
                ));
            }
            NodeKind::Expectations(e) => self.expectations(node, e, &v, &input),
            NodeKind::DeltaSink(_) | NodeKind::KafkaSink(_) => {
                self.line(format!("{v} = {input}"));
            }
        }
    }
}

/// `bronze/users`, `./bronze/users/` → `bronze/users`: table paths compared across pipelines.
pub fn normalize_table(t: &str) -> String {
    t.trim().trim_start_matches("./").trim_end_matches('/').to_owned()
}

/// The pipeline's checkpoint folder, relative to the lakehouse (Medallion's default).
pub fn checkpoint_rel(p: &Pipeline) -> String {
    p.checkpoint.clone().unwrap_or_else(|| format!("_checkpoints/{}", p.name))
}

/// A column name as a `select` argument: the plain string, or a backquoted `F.col` when
/// the name has characters Spark would read as a path.
pub fn col_ref(name: &str) -> String {
    if name.chars().all(|c| c.is_alphanumeric() || c == '_') {
        str_lit(name)
    } else {
        format!("F.col({})", str_lit(&format!("`{}`", name.replace('`', "``"))))
    }
}

/// A column name inside SQL text.
pub fn sql_ident(name: &str) -> String {
    if name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit())
    {
        name.to_owned()
    } else {
        format!("`{}`", name.replace('`', "``"))
    }
}
