//! Sinks → writes: Delta (append, overwrite, MERGE, the stream output modes), Kafka, and the
//! pipeline's quarantine table. Batch pipelines write once; streams start one query per sink,
//! each with its own folder under the pipeline's `checkpointLocation`.

use crate::model::node::{DeltaSink, KafkaSink, NodeKind, SchemaMode, WriteMode};
use crate::model::{Node, NodeId, Trigger};

use super::nodes::{Emitter, Helper, checkpoint_rel};
use super::python::{comment, interval_text, str_lit};
use crate::engine::sinks::delta::for_output_mode;
use crate::engine::stream::operators::aggregate::AggPlan;

/// How a stream's Delta sink writes, after its output mode (as `engine::sinks::delta`).
enum StreamWrite {
    Append,
    Overwrite,
    Merge(Vec<String>),
}

impl Emitter<'_> {
    /// `lake.trigger(processingTime="500 milliseconds")`: the pipeline's trigger, or
    /// availableNow when the script runs with `--available-now` / `--verify`.
    pub fn trigger(&self) -> String {
        match self.pipeline.trigger.unwrap_or_default() {
            Trigger::Interval { interval_ms } => {
                format!("lake.trigger(processingTime={})", str_lit(&interval_text(interval_ms)))
            }
            Trigger::AvailableNow => "lake.trigger(availableNow=True)".to_owned(),
            Trigger::Once => "lake.trigger(once=True)".to_owned(),
        }
    }

    fn checkpoint(&mut self, query: &str) -> String {
        let rel = format!("{}/{query}", checkpoint_rel(self.pipeline));
        self.path(&rel)
    }

    /// Emits the write of a sink node.
    pub fn sink(&mut self, node: &Node) {
        let title = if node.name.is_empty() { String::new() } else { format!(": {}", node.name) };
        self.line(format!("# node {}{} ({})", node.id, comment(&title), node.kind.tag()));
        let input = self.input(&node.id, crate::model::node::DEFAULT_PORT);
        let stream = self.is_stream(&node.id);
        match &node.kind {
            NodeKind::DeltaSink(d) if stream => self.delta_stream(node, d, &input),
            NodeKind::DeltaSink(d) => self.delta_batch(node, d, &input),
            NodeKind::KafkaSink(k) => self.kafka_sink(node, k, &input, stream),
            _ => {}
        }
    }

    fn properties_todo(&mut self, node: &Node, d: &DeltaSink) {
        if d.properties.is_empty() {
            return;
        }
        let props: Vec<String> =
            d.properties.iter().map(|(k, v)| format!("'{k}' = '{v}'")).collect();
        self.todo(
            node,
            format!(
                "table properties: run ALTER TABLE delta.`<path of {}>` SET TBLPROPERTIES ({}) once the table exists (Medallion sets them when it creates the table)",
                d.table,
                props.join(", ")
            ),
        );
    }

    fn delta_batch(&mut self, node: &Node, d: &DeltaSink, input: &str) {
        self.properties_todo(node, d);
        if d.mode == WriteMode::Merge {
            self.helpers.insert(Helper::MergeInto);
            let keys: Vec<String> = d.merge_keys.iter().map(|k| str_lit(k)).collect();
            self.line(format!(
                "merge_into(spark, lake, {input}, {}, [{}])",
                str_lit(&d.table),
                keys.join(", ")
            ));
            return;
        }
        let path = self.path(&d.table);
        self.line("(");
        self.line(format!("    {input}.write.format(lake.table_format)"));
        self.line(format!("    .mode({})", str_lit(d.mode.as_str())));
        self.schema_mode_option(d);
        self.partition_by(d);
        self.line(format!("    .save({path})"));
        self.line(")");
    }

    fn schema_mode_option(&mut self, d: &DeltaSink) {
        match d.schema_mode {
            Some(SchemaMode::Merge) => self.line("    .option(\"mergeSchema\", \"true\")"),
            Some(SchemaMode::Overwrite) => self.line("    .option(\"overwriteSchema\", \"true\")"),
            None => {}
        }
    }

    fn partition_by(&mut self, d: &DeltaSink) {
        if !d.partition_by.is_empty() {
            let cols: Vec<String> = d.partition_by.iter().map(|c| str_lit(c)).collect();
            self.line(format!("    .partitionBy({})", cols.join(", ")));
        }
    }

    /// The grouping keys of the last Aggregate upstream of `id` (update mode's MERGE keys), as
    /// the engine names them.
    fn upstream_group_keys(&self, id: &NodeId) -> Option<Vec<String>> {
        let order = self.pipeline.topological_order()?;
        order
            .iter()
            .filter(|n| self.pipeline.reaches(n, id))
            .filter_map(|n| match &self.pipeline.node(n)?.kind {
                NodeKind::Aggregate(a) => AggPlan::parse(a, None).ok().map(|p| p.key_columns()),
                _ => None,
            })
            .next_back()
    }

    fn delta_stream(&mut self, node: &Node, d: &DeltaSink, input: &str) {
        self.properties_todo(node, d);
        let keys = self.upstream_group_keys(&node.id);
        // the engine's rule: update is a MERGE on the grouping keys, complete an overwrite
        let effective = for_output_mode(d, d.output_mode, keys);
        let write = match effective.mode {
            WriteMode::Overwrite => StreamWrite::Overwrite,
            WriteMode::Merge => StreamWrite::Merge(effective.merge_keys),
            _ => StreamWrite::Append,
        };
        let checkpoint = self.checkpoint(node.id.as_str());
        let trigger = self.trigger();
        let table = str_lit(&d.table);
        self.line("queries.append(");
        match write {
            StreamWrite::Append => {
                self.line(format!("    {input}.writeStream.format(lake.table_format)"));
                self.line("    .outputMode(\"append\")");
                self.schema_mode_option(d);
                self.partition_by(d);
                self.line(format!("    .option(\"checkpointLocation\", {checkpoint})"));
                self.line(format!("    .trigger(**{trigger})"));
                let path = self.path(&d.table);
                self.line(format!("    .start({path})"));
            }
            StreamWrite::Overwrite => {
                self.helpers.insert(Helper::OverwriteTable);
                self.line("    # Delta's complete mode rewrites the table each batch: the same as foreachBatch + overwrite");
                self.line(format!(
                    "    {input}.writeStream.outputMode({})",
                    str_lit(d.output_mode.as_str())
                ));
                self.line(format!(
                    "    .foreachBatch(lambda batch, _: overwrite_table(lake, batch, {table}))"
                ));
                self.line(format!("    .option(\"checkpointLocation\", {checkpoint})"));
                self.line(format!("    .trigger(**{trigger})"));
                self.line("    .start()");
            }
            StreamWrite::Merge(keys) => {
                self.helpers.insert(Helper::MergeInto);
                let keys: Vec<String> = keys.iter().map(|k| str_lit(k)).collect();
                self.line("    # Spark's Delta sink has no update mode: each micro-batch is MERGEd on the keys");
                self.line(format!(
                    "    {input}.writeStream.outputMode({})",
                    str_lit(d.output_mode.as_str())
                ));
                self.line(format!(
                    "    .foreachBatch(lambda batch, batch_id: merge_into(spark, lake, batch, {table}, [{}]))",
                    keys.join(", ")
                ));
                self.line(format!("    .option(\"checkpointLocation\", {checkpoint})"));
                self.line(format!("    .trigger(**{trigger})"));
                self.line("    .start()");
            }
        }
        self.line(")");
    }

    /// The records a Kafka sink sends: `key` (if set) and `value` columns as strings.
    pub fn kafka_records(k: &KafkaSink) -> String {
        let mut cols = Vec::new();
        if let Some(key) = &k.key_column {
            cols.push(format!("F.col({}).cast(\"string\").alias(\"key\")", str_lit(key)));
        }
        match &k.value_column {
            Some(v) => {
                cols.push(format!("F.col({}).cast(\"string\").alias(\"value\")", str_lit(v)))
            }
            None => cols.push("F.to_json(F.struct(\"*\")).alias(\"value\")".to_owned()),
        }
        cols.join(", ")
    }

    /// A Kafka sink's options for Spark's Kafka writer: servers, topic, and the sink's own
    /// options under `kafka.`.
    pub fn kafka_options(&mut self, k: &KafkaSink) -> Vec<(String, String)> {
        let servers = self.value(&k.bootstrap_servers);
        let mut opts = vec![
            ("kafka.bootstrap.servers".to_owned(), servers),
            ("topic".to_owned(), str_lit(&k.topic)),
        ];
        for (key, val) in &k.options {
            let key = if key.starts_with("kafka.") { key.clone() } else { format!("kafka.{key}") };
            let val = self.value(val);
            opts.push((key, val));
        }
        opts
    }

    fn kafka_sink(&mut self, node: &Node, k: &KafkaSink, input: &str, stream: bool) {
        let records = self.fresh(&format!("{}_records", node.id));
        self.line(format!("{records} = {input}.select({})", Self::kafka_records(k)));
        let opts = self.kafka_options(k);
        let verify_path = self.path(&format!("_verify/kafka_out/{}", node.id));
        if stream {
            let checkpoint = self.checkpoint(node.id.as_str());
            let trigger = self.trigger();
            self.line(format!("writer = {records}.writeStream.option(\"checkpointLocation\", {checkpoint}).trigger(**{trigger})"));
            self.line("if lake.verify:  # no Kafka connector offline: the records as JSON files");
            self.line(format!("    queries.append(writer.format(\"json\").start({verify_path}))"));
            self.line("else:");
            self.line("    queries.append(");
            self.line("        writer.format(\"kafka\")");
            for (key, val) in &opts {
                self.line(format!("        .option({}, {val})", str_lit(key)));
            }
            self.line("        .start()");
            self.line("    )");
        } else {
            self.line("if lake.verify:  # no Kafka connector offline: the records as JSON files");
            self.line(format!("    {records}.write.mode(\"append\").json({verify_path})"));
            self.line("else:");
            self.line("    (");
            self.line(format!("        {records}.write.format(\"kafka\")"));
            for (key, val) in &opts {
                self.line(format!("        .option({}, {val})", str_lit(key)));
            }
            self.line("        .save()");
            self.line("    )");
        }
    }

    /// The quarantine table's write: everything the pipeline's nodes set aside.
    pub fn quarantine_write(&mut self) {
        if self.quarantine.is_empty() {
            return;
        }
        self.helpers.insert(Helper::Quarantine);
        let table = quarantine_table(self.pipeline);
        let vars: Vec<String> = self.quarantine.iter().map(|q| q.var.clone()).collect();
        let mut union = vars[0].clone();
        for v in &vars[1..] {
            union = format!("{union}.unionByName({v})");
        }
        self.line(format!("# the pipeline's quarantine table ({table}): malformed records and expectation drops, with the reason"));
        if self.pipeline.mode == crate::model::PipelineMode::Stream {
            let checkpoint = self.checkpoint("_quarantine");
            let trigger = self.trigger();
            self.line("queries.append(");
            self.line(format!("    {union}.writeStream.foreachBatch("));
            self.line(format!(
                "        lambda batch, batch_id: write_quarantine(lake, batch, {}, batch_id)",
                str_lit(&table)
            ));
            self.line("    )");
            self.line(format!("    .option(\"checkpointLocation\", {checkpoint})"));
            self.line(format!("    .trigger(**{trigger})"));
            self.line("    .start()");
            self.line(")");
        } else {
            self.line(format!("write_quarantine(lake, {union}, {}, 0)", str_lit(&table)));
        }
    }
}

/// `<first sink table>_quarantine`, as the engine names it.
pub fn quarantine_table(p: &crate::model::Pipeline) -> String {
    let first = p.sinks().find_map(|s| match &s.kind {
        NodeKind::DeltaSink(d) => Some(super::nodes::normalize_table(&d.table)),
        _ => None,
    });
    match first {
        Some(t) => format!("{t}_quarantine"),
        None => format!("_quarantine/{}", p.name),
    }
}
