//! Sources → readers: files (with Auto Loader for notifications and schema tracking, parse
//! modes as Spark's `mode` / `columnNameOfCorruptRecord`, the quarantine split for
//! `drop_malformed`), Kafka (and its verify-profile stand-in), and how a Delta table is read.

use crate::model::Node;
use crate::model::node::{FileFormat, FileSource, KafkaSource, ParseMode, RESCUED_DATA_COLUMN};

use super::nodes::{Emitter, Helper, QuarantineFeed, checkpoint_rel, normalize_table};
use super::python::{collapse_ws, str_lit};

impl Emitter<'_> {
    pub(super) fn file_source(&mut self, node: &Node, src: &FileSource, v: &str, stream: bool) {
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

    pub(super) fn kafka_source(&mut self, _node: &Node, k: &KafkaSource, v: &str, stream: bool) {
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
        if k.include_headers {
            opts.push(("includeHeaders".into(), str_lit("true")));
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
            "    {v} = kafka_records(spark, lake, {}, stream={}{})",
            str_lit(_node.id.as_str()),
            if stream { "True" } else { "False" },
            if k.include_headers { ", headers=True" } else { "" }
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

    /// How a Delta source reads its table.
    pub(super) fn table_read(&mut self, table: &str) -> TableRead {
        let named =
            if self.sdp { self.table_names.get(&normalize_table(table)).cloned() } else { None };
        let rel = self.value(table);
        TableRead { path: format!("lake.path({rel})"), rel, named }
    }
}

pub(super) struct TableRead {
    pub rel: String,
    pub path: String,
    /// SDP: the dataset name of a table this project writes.
    pub named: Option<String>,
}
