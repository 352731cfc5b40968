//! The PySpark script: a docstring saying how to run it, imports, the `Lakehouse`, the
//! helpers the nodes use, one function per pipeline, and `main` running them in dependency
//! order (`python <project>.py LAKEHOUSE [PIPELINE...] [--available-now] [--verify]`).

use std::collections::{BTreeSet, HashMap};

use crate::model::{Pipeline, PipelineMode, Project, WatermarkPolicy};

use super::Todo;
use super::helpers::push_support_code;
use super::nodes::{Emitter, Helper};
use super::python::{comment, escape_doc, ident, str_lit};

/// The script's text and its TODOs.
pub fn script(project: &Project, pipelines: &[&Pipeline]) -> (String, Vec<Todo>) {
    let no_tables = HashMap::new();
    let mut helpers: BTreeSet<Helper> = BTreeSet::new();
    let mut todos = Vec::new();
    let mut functions = Vec::new();
    let mut fn_names = std::collections::HashSet::new();
    let mut entries = Vec::new();
    for p in pipelines {
        let (name, body, e_helpers, e_todos) = pipeline_function(p, &no_tables, &mut fn_names);
        helpers.extend(e_helpers);
        todos.extend(e_todos);
        functions.push(body);
        entries.push(format!("    {}: {name},", str_lit(&p.name)));
    }
    let body = functions.join("\n\n");
    let mut out = String::new();
    out.push_str(&docstring(project, pipelines));
    let any_stream = pipelines.iter().any(|p| p.mode == PipelineMode::Stream);
    out.push_str("import argparse\nimport os\n\n");
    let streaming: &[&str] =
        if any_stream { &["from pyspark.sql.streaming import StreamingQuery"] } else { &[] };
    push_support_code(&mut out, &helpers, &body, streaming);
    out.push_str("\n\n");
    out.push_str(&body);
    out.push_str("\n\n# The pipelines in the order they run: a pipeline that reads a table another writes\n# comes after it.\nPIPELINES = {\n");
    out.push_str(&entries.join("\n"));
    out.push_str("\n}\n\n\n");
    out.push_str(&main_function(project));
    (out, todos)
}

fn docstring(project: &Project, pipelines: &[&Pipeline]) -> String {
    let mut s = format!("\"\"\"{}", escape_doc(&project.name));
    if !project.description.is_empty() {
        s.push_str(&format!(": {}", escape_doc(&comment(&project.description))));
    }
    s.push_str(
        "\n\nExported from the Medallion project by `medallion export --to pyspark`. Run it with\n",
    );
    s.push_str("spark-submit, on Databricks, or over Spark Connect (SPARK_REMOTE):\n\n");
    s.push_str(&format!(
        "    python {}.py LAKEHOUSE [PIPELINE ...] [--available-now] [--verify]\n\n",
        super::file_stem(&project.name)
    ));
    s.push_str("LAKEHOUSE is the root that table paths are relative to. Pipelines:\n");
    for p in pipelines {
        let mode = match p.mode {
            PipelineMode::Batch => "batch".to_owned(),
            PipelineMode::Stream => {
                format!("stream, trigger {}", String::from(p.trigger.unwrap_or_default()))
            }
        };
        s.push_str(&format!("- {} ({mode})", p.name));
        if !p.description.is_empty() {
            s.push_str(&format!(": {}", escape_doc(&comment(&p.description))));
        }
        s.push('\n');
    }
    s.push_str("\"\"\"\n\n");
    s
}

/// One pipeline as a function: its name, text, helpers and TODOs.
fn pipeline_function(
    p: &Pipeline,
    table_names: &HashMap<String, String>,
    fn_names: &mut std::collections::HashSet<String>,
) -> (String, String, BTreeSet<Helper>, Vec<Todo>) {
    let name = ident(&p.name, fn_names);
    let mut e = Emitter::new(p, table_names, false);
    let stream = p.mode == PipelineMode::Stream;
    if stream {
        if let Some(n) = p.min_batches_to_retain {
            e.line(format!("spark.conf.set(\"spark.sql.streaming.minBatchesToRetain\", {n})"));
        }
        if p.watermark_policy == WatermarkPolicy::Max {
            e.line("spark.conf.set(\"spark.sql.streaming.multipleWatermarkPolicy\", \"max\")");
        }
        e.line("queries = []");
    }
    for id in super::exported_nodes(p) {
        let Some(node) = p.node(&id) else { continue };
        if node.kind.role() == crate::model::node::NodeRole::Sink {
            e.sink(node);
        } else {
            e.node(node);
        }
    }
    e.quarantine_write();
    if stream {
        e.line("return queries");
    }
    let mut text = String::new();
    let ret = if stream { "list[StreamingQuery]" } else { "None" };
    text.push_str(&format!("def {name}(spark: SparkSession, lake: Lakehouse) -> {ret}:\n"));
    let doc = if p.description.is_empty() {
        format!("Pipeline `{}` ({}).", p.name, if stream { "stream" } else { "batch" })
    } else {
        format!("Pipeline `{}`: {}", p.name, comment(&p.description))
    };
    text.push_str(&format!("    \"\"\"{}\"\"\"\n", escape_doc(&doc)));
    for l in &e.lines {
        if l.is_empty() {
            text.push('\n');
        } else {
            text.push_str("    ");
            text.push_str(l);
            text.push('\n');
        }
    }
    (name, text, e.helpers, e.todos)
}

fn main_function(project: &Project) -> String {
    format!(
        r#"def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lakehouse", help="the lakehouse root; table paths are relative to it")
    parser.add_argument(
        "pipelines", nargs="*", metavar="PIPELINE", help="pipelines to run (default: all)"
    )
    parser.add_argument(
        "--available-now",
        action="store_true",
        help="streams process the data there at start, then stop",
    )
    parser.add_argument(
        "--verify",
        action="store_true",
        help="Parquet for Delta and JSON files for Kafka (no connector jars), availableNow",
    )
    args = parser.parse_args(argv)
    unknown = [p for p in args.pipelines if p not in PIPELINES]
    if unknown:
        parser.error(f"no pipeline {{', '.join(unknown)}}; pipelines are: {{', '.join(PIPELINES)}}")
    spark = SparkSession.builder.appName({app}).getOrCreate()
    lake = Lakehouse(args.lakehouse, verify=args.verify, available_now=args.available_now)
    running = []
    for name, pipeline in PIPELINES.items():
        if args.pipelines and name not in args.pipelines:
            continue
        for query in pipeline(spark, lake) or []:
            if lake.available_now:
                query.awaitTermination()
            else:
                # a pipeline reading this one's tables starts once they are caught up
                query.processAllAvailable()
                running.append(query)
    if running:
        spark.streams.awaitAnyTermination()


if __name__ == "__main__":
    main()
"#,
        app = str_lit(&project.name)
    )
}
