//! One Medallion node → the PySpark lines that compute its DataFrame. Shared by both
//! targets: the script (`pyspark.rs`) and Spark Declarative Pipelines (`sdp.rs`).
//!
//! The `match` on [`NodeKind`] is exhaustive, so a new node kind does not compile until it
//! has its export (and `tests/it/export.rs` runs every kind on Spark).

use std::collections::{BTreeSet, HashMap, HashSet};

use crate::model::node::{
    DEFAULT_PORT, FileFormat, FileSource, JoinHow, NodeKind, OnViolation, ParseMode,
    RESCUED_DATA_COLUMN,
};
use crate::model::streaming::{LateRows, streaming_nodes};
use crate::model::{Node, NodeId, Pipeline, PipelineMode};
use arrow::datatypes::{DataType, Field, SchemaRef};

use super::Todo;
use super::python::{collapse_ws, comment, env_expr, ident, sql_lit, str_lit};

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
    pub uses_os: bool,
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
            uses_os: false,
            todos: Vec::new(),
            quarantine: Vec::new(),
            table_names,
            sdp,
            schemas: HashMap::new(),
        }
    }

    /// The output schema of the node feeding `id`'s `port`, if known.
    fn input_schema(&self, id: &NodeId, port: &str) -> Option<SchemaRef> {
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
        let (e, os) = env_expr(text);
        self.uses_os |= os;
        e
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
                self.lines.last_mut().map(|l| l.push(','));
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

    fn file_source(&mut self, node: &Node, src: &FileSource, v: &str, stream: bool) {
        let fmt = src.format.as_str();
        let tracking = src.schema_location.is_some()
            || src.schema_hints.is_some()
            || src.schema_evolution_mode.is_some();
        let auto_loader = stream && (src.use_notifications || tracking || src.schema.is_none());
        let parsed_mode = src.format != FileFormat::Parquet;
        let mut schema = src.schema.as_deref().map(collapse_ws).filter(|s| !s.is_empty());
        let rescued = parsed_mode && src.parse_mode != ParseMode::FailFast;
        if rescued && let Some(s) = schema.as_mut() {
            s.push_str(&format!(", {RESCUED_DATA_COLUMN} STRING"));
        }
        let target = if src.parse_mode == ParseMode::DropMalformed && parsed_mode {
            self.fresh(&format!("{v}_all"))
        } else {
            v.to_owned()
        };
        self.line(format!("{target} = ("));
        if auto_loader {
            self.line(format!(
                "    lake.read_files_stream(spark, {})  # Auto Loader (cloudFiles)",
                str_lit(fmt)
            ));
        } else if stream {
            self.line(format!("    spark.readStream.format({})", str_lit(fmt)));
        } else {
            self.line(format!("    spark.read.format({})", str_lit(fmt)));
        }
        if let Some(s) = &schema {
            self.line(format!("    .schema({})", str_lit(s)));
        }
        let mut opts: Vec<(String, String)> = Vec::new();
        if src.format == FileFormat::Csv {
            opts.push(("header".into(), str_lit(if src.header { "true" } else { "false" })));
        }
        if parsed_mode {
            match src.parse_mode {
                ParseMode::FailFast => opts.push(("mode".into(), str_lit("FAILFAST"))),
                _ => opts.push(("columnNameOfCorruptRecord".into(), str_lit(RESCUED_DATA_COLUMN))),
            }
        }
        if let Some(g) = &src.glob {
            opts.push(("pathGlobFilter".into(), str_lit(g)));
        }
        if stream {
            if let Some(m) = src.max_files_per_trigger {
                if auto_loader {
                    opts.push(("cloudFiles.maxFilesPerTrigger".into(), m.to_string()));
                }
                opts.push(("maxFilesPerTrigger".into(), m.to_string()));
            }
            if let Some(b) = src.max_bytes_per_trigger {
                opts.push(("cloudFiles.maxBytesPerTrigger".into(), b.to_string()));
            }
            if src.use_notifications {
                opts.push(("cloudFiles.useNotifications".into(), str_lit("true")));
            }
            if auto_loader {
                let loc = match &src.schema_location {
                    Some(l) => self.path(l),
                    None => self.path(&format!(
                        "{}/_schemas/{}",
                        checkpoint_rel(self.pipeline),
                        node.id
                    )),
                };
                if schema.is_none() || tracking {
                    opts.push(("cloudFiles.schemaLocation".into(), loc));
                }
                if let Some(h) = &src.schema_hints {
                    opts.push(("cloudFiles.schemaHints".into(), str_lit(&collapse_ws(h))));
                }
                if let Some(m) = src.schema_evolution_mode {
                    opts.push(("cloudFiles.schemaEvolutionMode".into(), str_lit(m.as_str())));
                }
            }
        }
        for (k, val) in &opts {
            self.line(format!("    .option({}, {val})", str_lit(k)));
        }
        let path = self.path(&src.path);
        self.line(format!("    .load({path})"));
        if src.parse_mode == ParseMode::DropMalformed && parsed_mode {
            // where a bad record came from, for the quarantine
            self.line("    .select(\"*\", F.col(\"_metadata.file_path\").alias(\"_source_file\"))");
            if !stream {
                // Spark refuses to query the corrupt-record column alone from raw files
                self.line("    .cache()");
            }
        }
        self.line(")");
        if stream && schema.is_none() {
            self.todo(
                node,
                "no DDL schema: Auto Loader infers and tracks it under cloudFiles.schemaLocation; open-source Spark's file stream needs .schema(...) (the verify profile cannot run without one)",
            );
        }
        if src.parse_mode == ParseMode::DropMalformed && parsed_mode {
            let bad = self.fresh(&format!("{v}_malformed"));
            self.line(format!(
                "{bad} = {target}.filter(F.col({r}).isNotNull()).select(",
                r = str_lit(RESCUED_DATA_COLUMN)
            ));
            self.line(format!("    F.lit({}).alias(\"source_node\"),", str_lit(node.id.as_str())));
            self.line("    F.col(\"_source_file\").alias(\"file\"),");
            self.line("    F.lit(None).cast(\"bigint\").alias(\"line\"),");
            // naming the other columns too: Spark refuses a query of the corrupt-record column alone
            self.line(format!(
                "    F.coalesce(F.col({}), F.to_json(F.struct(\"*\"))).alias(\"raw\"),",
                str_lit(RESCUED_DATA_COLUMN)
            ));
            self.line("    F.lit(\"malformed record\").alias(\"reason\"),");
            self.line(")");
            self.quarantine.push(QuarantineFeed { var: bad });
            self.line(format!(
                "{v} = {target}.filter(F.col({r}).isNull()).drop({r}, \"_source_file\")",
                r = str_lit(RESCUED_DATA_COLUMN)
            ));
        }
    }

    fn kafka_source(
        &mut self,
        _node: &Node,
        k: &crate::model::node::KafkaSource,
        v: &str,
        stream: bool,
    ) {
        self.helpers.insert(Helper::KafkaRecords);
        let servers = self.value(&k.bootstrap_servers);
        let mut opts: Vec<(String, String)> = vec![("kafka.bootstrap.servers".into(), servers)];
        if !k.subscribe.is_empty() {
            opts.push(("subscribe".into(), str_lit(&k.subscribe.join(","))));
        }
        if let Some(p) = &k.subscribe_pattern {
            opts.push(("subscribePattern".into(), str_lit(p)));
        }
        opts.push((
            "startingOffsets".into(),
            str_lit(k.starting_offsets.as_deref().unwrap_or("earliest")),
        ));
        if !stream {
            opts.push(("endingOffsets".into(), str_lit("latest")));
        }
        if stream && let Some(m) = k.max_offsets_per_trigger {
            opts.push(("maxOffsetsPerTrigger".into(), m.to_string()));
        }
        if !k.fail_on_data_loss {
            opts.push(("failOnDataLoss".into(), str_lit("false")));
        }
        for (key, val) in &k.options {
            let key = if key.starts_with("kafka.") { key.clone() } else { format!("kafka.{key}") };
            let val = self.value(val);
            opts.push((key, val));
        }
        self.line(
            "if lake.verify:  # no Kafka connector offline: the topic's records from JSON files",
        );
        self.line(format!(
            "    {v} = kafka_records(spark, lake, {}, stream={})",
            str_lit(_node.id.as_str()),
            if stream { "True" } else { "False" }
        ));
        self.line("else:");
        self.line(format!("    {v} = ("));
        self.line(format!(
            "        spark.{}.format(\"kafka\")",
            if stream { "readStream" } else { "read" }
        ));
        for (key, val) in &opts {
            self.line(format!("        .option({}, {val})", str_lit(key)));
        }
        self.line("        .load()");
        self.line("    )");
    }

    fn expectations(
        &mut self,
        node: &Node,
        e: &crate::model::node::Expectations,
        v: &str,
        input: &str,
    ) {
        let cond = |c: &str| format!("({})", collapse_ws(c));
        for r in e.rules.iter().filter(|r| r.on_violation == OnViolation::Warn) {
            self.line(format!(
                "# expect `{}` (warn): {} — rows are kept; Medallion counts the failures",
                r.name,
                comment(&r.condition)
            ));
        }
        let mut current = input.to_owned();
        let fails: Vec<_> =
            e.rules.iter().filter(|r| r.on_violation == OnViolation::Fail).collect();
        if !fails.is_empty() {
            let checked = self.fresh(&format!("{v}_checked"));
            self.line(
                "# expect_or_fail: the query stops at the first failing row, before it commits",
            );
            self.line(format!("{checked} = {current}.filter("));
            let asserts: Vec<String> = fails
                .iter()
                .map(|r| {
                    format!(
                        "F.assert_true(F.coalesce(F.expr({}), F.lit(False)), {}).isNull()",
                        str_lit(&cond(&r.condition)),
                        str_lit(&format!(
                            "expectation `{}` failed: {}",
                            r.name,
                            collapse_ws(&r.condition)
                        ))
                    )
                })
                .collect();
            if let [one] = asserts.as_slice() {
                self.line(format!("    {one}"));
            } else {
                for (i, a) in asserts.iter().enumerate() {
                    let sep = if i + 1 < asserts.len() { " &" } else { "" };
                    self.line(format!("    ({a}){sep}"));
                }
            }
            self.line(")");
            current = checked;
        }
        let drops: Vec<_> =
            e.rules.iter().filter(|r| r.on_violation == OnViolation::Drop).collect();
        if drops.is_empty() {
            self.line(format!("{v} = {current}"));
            return;
        }
        let all = drops.iter().map(|r| cond(&r.condition)).collect::<Vec<_>>().join(" AND ");
        let bad = self.fresh(&format!("{v}_dropped"));
        self.line(format!(
            "{bad} = {current}.filter(~F.coalesce(F.expr({}), F.lit(False))).select(",
            str_lit(&all)
        ));
        self.line(format!("    F.lit({}).alias(\"source_node\"),", str_lit(node.id.as_str())));
        self.line("    F.lit(None).cast(\"string\").alias(\"file\"),");
        self.line("    F.lit(None).cast(\"bigint\").alias(\"line\"),");
        self.line("    F.to_json(F.struct(\"*\")).alias(\"raw\"),");
        self.line("    F.concat(");
        self.line("        F.lit(\"expectations failed: \"),");
        self.line("        F.concat_ws(");
        self.line("            \", \",");
        for r in &drops {
            self.line(format!(
                "            F.when(~F.coalesce(F.expr({}), F.lit(False)), F.lit({})),",
                str_lit(&cond(&r.condition)),
                str_lit(&r.name)
            ));
        }
        self.line("        ),");
        self.line("    ).alias(\"reason\"),");
        self.line(")");
        self.quarantine.push(QuarantineFeed { var: bad });
        self.line(format!("{v} = {current}.filter({})  # expect_or_drop", str_lit(&all)));
    }

    /// SDP: the join's output columns listed from the inputs' known schemas (a query
    /// function may not ask a DataFrame for its columns).
    fn join_columns_sdp(&mut self, node: &Node, j: &crate::model::node::Join) {
        let (Some(l), Some(r)) =
            (self.input_schema(&node.id, "left"), self.input_schema(&node.id, "right"))
        else {
            self.todo(
                node,
                "the join's columns need the inputs' schemas (an SDP query function may not analyze a DataFrame): export from the CLI with the lakehouse (or the app)",
            );
            self.line("    \"*\",");
            return;
        };
        let same: Vec<&String> = j.on.iter().filter(|[a, b]| a == b).map(|[a, _]| a).collect();
        let q = |side: &str, c: &str| str_lit(&format!("{side}.`{}`", c.replace('`', "``")));
        for f in l.fields() {
            let c = f.name();
            let expr = match j.how {
                JoinHow::Right if same.contains(&c) => {
                    format!("F.col({}).alias({})", q("right", c), str_lit(c))
                }
                JoinHow::Full if same.contains(&c) => format!(
                    "F.coalesce(F.col({}), F.col({})).alias({})",
                    q("left", c),
                    q("right", c),
                    str_lit(c)
                ),
                _ => format!("F.col({})", q("left", c)),
            };
            self.line(format!("    {expr},"));
        }
        for f in r.fields().iter().filter(|f| !same.contains(&f.name())) {
            self.line(format!("    F.col({}),", q("right", f.name())));
        }
    }

    /// How a Delta source reads its table.
    fn table_read(&mut self, table: &str) -> TableRead {
        let named =
            if self.sdp { self.table_names.get(&normalize_table(table)).cloned() } else { None };
        let rel = self.value(table);
        TableRead { path: format!("lake.path({rel})"), rel, named }
    }
}

struct TableRead {
    rel: String,
    path: String,
    /// SDP: the dataset name of a table this project writes.
    named: Option<String>,
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

/// The output column names of an Aggregate's grouping items (update mode's MERGE keys).
pub fn group_key_names(group_by: &[String]) -> Vec<String> {
    group_by
        .iter()
        .map(|g| {
            let t = g.trim();
            let lower = t.to_ascii_lowercase();
            if let Some(pos) = lower.rfind(" as ") {
                return t[pos + 4..].trim().trim_matches('`').to_owned();
            }
            if lower.starts_with("session_window") {
                "session_window".to_owned()
            } else if lower.starts_with("window") {
                "window".to_owned()
            } else {
                t.trim_matches('`').to_owned()
            }
        })
        .collect()
}

/// SDP Flatten: `F.col("`s`").getField("f").alias("s_f")` for every field of a struct.
fn flatten_fields(
    base: &str,
    field: &Field,
    prefix: &str,
    f: &crate::model::node::Flatten,
    out: &mut Vec<String>,
) {
    let DataType::Struct(children) = field.data_type() else {
        out.push(format!("    {base}.alias({}),", str_lit(prefix)));
        return;
    };
    for child in children {
        let name = format!("{prefix}{}{}", f.separator, child.name());
        let expr = format!("{base}.getField({})", str_lit(child.name()));
        if f.recursive && matches!(child.data_type(), DataType::Struct(_)) {
            flatten_fields(&expr, child, &name, f, out);
        } else {
            out.push(format!("    {expr}.alias({}),", str_lit(&name)));
        }
    }
}

/// `FROM users u JOIN ssn s` → `FROM {users} u JOIN {ssn} s`: the ports as `spark.sql`'s
/// DataFrame arguments (other braces doubled, as `str.format` reads them).
pub fn sql_with_frame_args(query: &str, ports: &[String]) -> String {
    let mut q = query.replace('{', "{{").replace('}', "}}");
    for port in ports {
        let re = regex::Regex::new(&format!(r"(?i)\b(FROM|JOIN)(\s+){}\b", regex::escape(port)));
        if let Ok(re) = re {
            q = re.replace_all(&q, format!("${{1}}${{2}}{{{port}}}").as_str()).into_owned();
        }
    }
    q
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sql_ports_become_dataframe_arguments() {
        let q = "SELECT u.a, '{x}' FROM users u\nLEFT JOIN ssn s ON u.id = s.id JOIN users_old o ON 1 = 1";
        assert_eq!(
            sql_with_frame_args(q, &["users".into(), "ssn".into()]),
            "SELECT u.a, '{{x}}' FROM {users} u\nLEFT JOIN {ssn} s ON u.id = s.id JOIN users_old o ON 1 = 1"
        );
        assert_eq!(
            group_key_names(&["window(t, '1 minute')".into(), "a AS b".into(), "c".into()]),
            ["window", "b", "c"]
        );
    }
}
