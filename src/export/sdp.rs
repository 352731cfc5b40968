//! The project as a Spark Declarative Pipelines source (`pyspark.pipelines`, Spark 4.1+):
//! each Delta sink becomes a dataset named after its table path (`silver/users` →
//! `silver_users`): a streaming table for a stream, a materialized view for a batch; a Kafka
//! sink becomes `dp.create_sink` + an append flow. A pipeline's nodes are built by one plain
//! function that the dataset functions call; a Delta source reading a table this project
//! writes reads the dataset by name, so SDP sees the dependency.

use std::collections::{BTreeSet, HashMap};

use crate::model::node::{NodeKind, NodeRole, OutputMode, WriteMode};
use crate::model::{Pipeline, PipelineMode, Project};

use super::Todo;
use super::helpers::push_support_code;
use super::nodes::{Emitter, Helper, normalize_table};
use super::python::{comment, escape_doc, ident, str_lit};
use super::sinks::quarantine_table;

/// `silver/users` → `silver_users`.
fn dataset_name(table: &str) -> String {
    normalize_table(table)
        .chars()
        .map(|c| if c.is_alphanumeric() || c == '_' { c } else { '_' })
        .collect()
}

pub fn source(
    project: &Project,
    pipelines: &[&Pipeline],
    schemas: &super::NodeSchemas,
) -> (String, Vec<Todo>) {
    let mut table_names: HashMap<String, String> = HashMap::new();
    for p in pipelines {
        for s in p.sinks() {
            if let NodeKind::DeltaSink(d) = &s.kind {
                table_names.insert(normalize_table(&d.table), dataset_name(&d.table));
            }
        }
    }
    let mut helpers: BTreeSet<Helper> = BTreeSet::new();
    let mut todos = Vec::new();
    let mut blocks = Vec::new();
    let mut names = std::collections::HashSet::new();
    for p in pipelines {
        let (block, h, t) = pipeline_block(p, &table_names, &mut names, schemas);
        blocks.push(block);
        helpers.extend(h);
        todos.extend(t);
    }
    helpers.remove(&Helper::MergeInto);
    helpers.remove(&Helper::OverwriteTable);
    helpers.remove(&Helper::Quarantine);
    let body = blocks.join("\n\n");
    let stem = super::file_stem(&project.name);
    let mut out = format!("\"\"\"{}", escape_doc(&project.name));
    if !project.description.is_empty() {
        out.push_str(&format!(": {}", escape_doc(&comment(&project.description))));
    }
    out.push_str(&format!(
        r#"

Exported from the Medallion project by `medallion export --to sdp`: a Spark Declarative
Pipelines source. Run it with `spark-pipelines run` and a spec beside it
(spark-pipeline.yml):

    name: {stem}
    libraries:
      - glob:
          include: {stem}.py
    configuration:
      medallion.lakehouse: /path/to/lakehouse
      medallion.verify: "false"   # "true": Parquet for Delta, JSON files for Kafka

Tables this project writes are datasets named after their paths (silver/users is
silver_users); tables it only reads are read by path under medallion.lakehouse.
"""

"#
    ));
    out.push_str("import os\n\nfrom pyspark import pipelines as dp\n");
    push_support_code(&mut out, &helpers, &body, &[]);
    out.push_str("\n\nspark = SparkSession.active()\nlake = Lakehouse(\n    spark.conf.get(\"medallion.lakehouse\", \"lakehouse\"),\n    verify=spark.conf.get(\"medallion.verify\", \"false\") == \"true\",\n)\n\n\n");
    out.push_str(&body);
    (out, todos)
}

fn pipeline_block(
    p: &Pipeline,
    table_names: &HashMap<String, String>,
    names: &mut std::collections::HashSet<String>,
    schemas: &super::NodeSchemas,
) -> (String, BTreeSet<Helper>, Vec<Todo>) {
    let mut e = Emitter::new(p, table_names, true);
    e.schemas = schemas
        .iter()
        .filter(|((pipeline, _), _)| pipeline == &p.name)
        .map(|((_, id), s)| (id.clone(), s.clone()))
        .collect();
    let stream = p.mode == PipelineMode::Stream;
    let mut outputs: Vec<(String, String)> = Vec::new();
    for id in super::exported_nodes(p) {
        let Some(node) = p.node(&id) else { continue };
        if node.kind.role() == NodeRole::Sink {
            let input = e.input(&node.id, crate::model::node::DEFAULT_PORT);
            outputs.push((node.id.to_string(), input));
        } else {
            e.node(node);
        }
    }
    if !e.quarantine.is_empty() {
        let vars: Vec<String> = e.quarantine.iter().map(|q| q.var.clone()).collect();
        let union = vars.join(".unionByName(").to_string() + &")".repeat(vars.len() - 1);
        e.line(format!(
            "quarantined = {union}.withColumn(\"batch_id\", F.lit(None).cast(\"bigint\")).withColumn(\"quarantined_at\", F.current_timestamp())"
        ));
        outputs.push(("_quarantine".into(), "quarantined".into()));
    }
    let fn_name = ident(&format!("{}_nodes", p.name), names);
    let mut text = format!(
        "# pipeline {} ({}){}\ndef {fn_name}() -> dict:\n    \"\"\"The DataFrames of pipeline `{}`'s outputs.\"\"\"\n",
        p.name,
        if stream { "stream" } else { "batch" },
        if p.description.is_empty() {
            String::new()
        } else {
            format!(": {}", comment(&p.description))
        },
        p.name
    );
    for l in &e.lines {
        text.push_str(&format!("    {l}\n"));
    }
    let dict: Vec<String> = outputs.iter().map(|(k, v)| format!("{}: {v}", str_lit(k))).collect();
    text.push_str(&format!("    return {{{}}}\n", dict.join(", ")));
    for (out_id, _) in &outputs {
        text.push_str("\n\n");
        if out_id == "_quarantine" {
            let q = dataset_name(&quarantine_table(p));
            let f = ident(&q, names);
            text.push_str(&format!(
                "@dp.table(name={}, comment=\"malformed records and expectation drops, with the reason\")\ndef {f}():\n    return {fn_name}()[\"_quarantine\"]\n",
                str_lit(&q)
            ));
            continue;
        }
        let Some(node) = p.node(&out_id.as_str().into()) else { continue };
        let title = comment(if node.name.is_empty() { node.id.as_str() } else { &node.name });
        match &node.kind {
            NodeKind::DeltaSink(d) => {
                let name = dataset_name(&d.table);
                let f = ident(&name, names);
                let mut args = vec![format!("name={}", str_lit(&name))];
                args.push(format!("comment={}", str_lit(&format!("node {}: {title}", node.id))));
                if !d.partition_by.is_empty() {
                    let cols: Vec<String> = d.partition_by.iter().map(|c| str_lit(c)).collect();
                    args.push(format!("partition_cols=[{}]", cols.join(", ")));
                }
                if !d.properties.is_empty() {
                    let props: Vec<String> = d
                        .properties
                        .iter()
                        .map(|(k, v)| format!("{}: {}", str_lit(k), str_lit(v)))
                        .collect();
                    args.push(format!("table_properties={{{}}}", props.join(", ")));
                }
                let upserts =
                    d.mode == WriteMode::Merge || (stream && d.output_mode != OutputMode::Append);
                if upserts {
                    let msg = format!(
                        "node `{}` ({} / output mode {}): SDP has no MERGE of each micro-batch; use dp.create_auto_cdc_flow(target={name:?}, source=..., keys=[...], sequence_by=...) or a materialized view; exported as a table that appends",
                        node.id,
                        d.mode.as_str(),
                        d.output_mode.as_str()
                    );
                    text.push_str(&format!("# TODO(medallion): {msg}\n"));
                    e.todos.push(Todo {
                        pipeline: p.name.clone(),
                        node: Some(node.id.clone()),
                        message: msg,
                    });
                }
                let decorator = if stream { "table" } else { "materialized_view" };
                text.push_str(&format!(
                    "@dp.{decorator}({})\ndef {f}():\n    return {fn_name}()[{}]\n",
                    args.join(", "),
                    str_lit(out_id)
                ));
            }
            NodeKind::KafkaSink(k) => {
                let sink_name = ident(&format!("{}_sink", node.id), names);
                let options: Vec<String> = (e.kafka_options(k).into_iter())
                    .map(|(key, val)| format!("{}: {val}", str_lit(&key)))
                    .collect();
                text.push_str(&format!(
                    "dp.create_sink({}, \"kafka\", {{{}}})\n\n\n",
                    str_lit(&sink_name),
                    options.join(", ")
                ));
                let f = ident(&format!("{}_flow", node.id), names);
                text.push_str(&format!(
                    "@dp.append_flow(target={})\ndef {f}():\n    return {fn_name}()[{}].select({})\n",
                    str_lit(&sink_name),
                    str_lit(out_id),
                    Emitter::kafka_records(k)
                ));
            }
            _ => {}
        }
    }
    (text, e.helpers, e.todos)
}

#[cfg(test)]
mod tests {
    use crate::export::{Target, export_project};
    use crate::model::Project;

    #[test]
    fn a_kafka_sink_keeps_its_key_and_options() {
        let toml = r#"
format_version = 1
name = "k"

[[pipeline]]
name = "out"

[[pipeline.nodes]]
id = "src"
kind = "delta_source"
table = "silver/users"

[[pipeline.nodes]]
id = "to_kafka"
kind = "kafka_sink"
"kafka.bootstrap.servers" = "localhost:9092"
topic = "users"
key_column = "user_id"
options = { "kafka.acks" = "all", "kafka.linger.ms" = "5" }

[[pipeline.edges]]
from = "src"
to = "to_kafka"
"#;
        let project = Project::from_toml(toml, std::path::Path::new("k.toml")).unwrap();
        let code = export_project(&project, Target::Sdp, &[]).unwrap().code;
        let sink = code.lines().find(|l| l.starts_with("dp.create_sink(")).unwrap();
        assert!(sink.contains(r#""kafka.bootstrap.servers": "localhost:9092""#), "{sink}");
        assert!(sink.contains(r#""topic": "users""#), "{sink}");
        assert!(sink.contains(r#""kafka.acks": "all""#), "{sink}");
        assert!(sink.contains(r#""kafka.linger.ms": "5""#), "{sink}");
        assert!(code.contains(r#"F.col("user_id").cast("string").alias("key")"#), "{code}");
    }
}
