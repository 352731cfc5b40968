//! Recording a test from a node's preview: the sample rows of every source the replay needs
//! (as the preview reads them), split into micro-batches for a stream, and the node's output
//! over exactly those rows as the expected result. Columns that are not deterministic
//! (`current_timestamp()`, `now()`, `uuid()`, `random()`) are found from the expressions
//! upstream and by replaying twice, and left out of the comparison.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use datafusion::datasource::MemTable;

use arrow::array::{Array, RecordBatch};
use arrow::datatypes::DataType;
use arrow::util::display::{ArrayFormatter, FormatOptions};

use crate::model::node::NodeKind;
use crate::model::{NodeId, Pipeline, PipelineMode, PipelineTest, Project};

use super::super::plan::{Planner, column};
use super::fixtures::{self, BatchInput, Rows};
use super::{EngineError, Result, TestError, needed_sources, replay, sorts, stateful};

/// What to record.
#[derive(Clone, Debug)]
pub struct RecordOptions {
    pub name: String,
    /// The node's pipeline, when its id is in several.
    pub pipeline: Option<String>,
    pub node: NodeId,
    /// Sample rows per source.
    pub limit: usize,
    /// Micro-batches to split the sample into (a stream; default 2 for a stateful stream,
    /// which also gets a final batch without data so the watermark closes windows).
    pub batches: Option<usize>,
}

/// A recorded test and what the recording found.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub test: PipelineTest,
    /// Which columns are ignored and why, one line each.
    pub notes: Vec<String>,
    /// Rows recorded per source, over all batches.
    pub sources: Vec<(NodeId, usize)>,
    /// Expected rows per batch.
    pub expected_rows: Vec<usize>,
}

/// Functions whose value changes from run to run.
const NON_DETERMINISTIC: &[&str] = &[
    "current_timestamp",
    "current_date",
    "current_time",
    "localtimestamp",
    "now",
    "uuid",
    "random",
    "rand",
    "randn",
    "unix_timestamp",
];

/// The first non-deterministic function called in `expr`, if any.
fn non_deterministic_call(expr: &str) -> Option<&'static str> {
    let lower = expr.to_ascii_lowercase();
    NON_DETERMINISTIC.iter().copied().find(|f| {
        lower.match_indices(f).any(|(i, _)| {
            let before = lower[..i].chars().next_back();
            let after = lower[i + f.len()..].trim_start();
            before.is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '_'))
                && after.starts_with('(')
        })
    })
}

/// The output name of a select item: its alias, else the expression.
fn select_name(item: &str) -> String {
    let lower = item.to_ascii_lowercase();
    match lower.rfind(" as ") {
        Some(i) => item[i + 4..].trim().trim_matches('"').trim_matches('`').to_owned(),
        None => item.trim().to_owned(),
    }
}

/// Columns that nodes at or upstream of `node` compute with a non-deterministic function:
/// (column, "node `x`: current_timestamp()").
fn static_non_deterministic(pipeline: &Pipeline, node: &NodeId) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for n in pipeline.nodes.iter().filter(|n| &n.id == node || pipeline.reaches(&n.id, node)) {
        let items: Vec<(String, &str)> = match &n.kind {
            NodeKind::WithColumns(w) => {
                w.columns.iter().map(|c| (c.name.clone(), c.expr.as_str())).collect()
            }
            NodeKind::Select(s) => s.columns.iter().map(|c| (select_name(c), c.as_str())).collect(),
            _ => Vec::new(),
        };
        for (column, expr) in items {
            if let Some(f) = non_deterministic_call(expr) {
                out.push((column, format!("node `{}` computes it with {f}()", n.id)));
            }
        }
    }
    out
}

/// Per column, its values over all batches as sorted text (to compare two replays).
fn column_values(outputs: &[Rows]) -> Result<HashMap<String, Vec<Option<String>>>> {
    let mut out: HashMap<String, Vec<Option<String>>> = HashMap::new();
    let opts = FormatOptions::default();
    for o in outputs {
        for b in &o.batches {
            for (f, a) in b.schema().fields().iter().zip(b.columns()) {
                let fmt = ArrayFormatter::try_new(a.as_ref(), &opts)?;
                let values = out.entry(f.name().clone()).or_default();
                values.extend(
                    (0..a.len()).map(|i| (!a.is_null(i)).then(|| fmt.value(i).to_string())),
                );
            }
        }
    }
    for v in out.values_mut() {
        v.sort();
    }
    Ok(out)
}

/// Whether the rows of every batch are unique over `columns` and never NULL in them.
fn identifies(batches: &[RecordBatch], columns: &[String]) -> Result<bool> {
    let opts = FormatOptions::default();
    for b in batches {
        let mut arrays = Vec::new();
        for c in columns {
            let a = b.column(b.schema().index_of(c)?).clone();
            if a.null_count() > 0 {
                return Ok(false);
            }
            arrays.push(a);
        }
        let fmts = arrays
            .iter()
            .map(|a| ArrayFormatter::try_new(a.as_ref(), &opts))
            .collect::<Result<Vec<_>, _>>()?;
        let mut seen = std::collections::HashSet::new();
        for i in 0..b.num_rows() {
            let row: Vec<String> = fmts.iter().map(|f| f.value(i).to_string()).collect();
            if !seen.insert(row) {
                return Ok(false);
            }
        }
    }
    Ok(true)
}

/// Columns that identify the rows of every batch, to name rows in diffs: an id-like column
/// (`id`, `*_id`, `*uid`), else the shortest run of leading columns (an aggregate's group
/// keys), else any simple column that is unique.
fn detect_key(outputs: &[Rows], ignore: &[String]) -> Result<Vec<String>> {
    let Some(first) = outputs.first() else { return Ok(Vec::new()) };
    let batches: Vec<RecordBatch> = outputs.iter().map(Rows::concat).collect::<Result<_>>()?;
    if batches.iter().all(|b| b.num_rows() < 2) {
        return Ok(Vec::new());
    }
    let id_like = |n: &str| {
        let n = n.to_ascii_lowercase();
        n == "id" || n.ends_with("_id") || n.ends_with("uid") || n == "uuid"
    };
    let single = detect_single_key(outputs, ignore, &id_like)?;
    if !single.is_empty() {
        return Ok(single);
    }
    let names: Vec<String> = first
        .schema
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .filter(|n| !ignore.contains(n))
        .collect();
    for n in 1..=names.len().min(3) {
        if identifies(&batches, &names[..n])? {
            return Ok(names[..n].to_vec());
        }
    }
    detect_single_key(outputs, ignore, &|_| true)
}

/// A single column of a simple type whose name `fits`, unique and never NULL in every batch.
fn detect_single_key(
    outputs: &[Rows],
    ignore: &[String],
    fits: &dyn Fn(&str) -> bool,
) -> Result<Vec<String>> {
    let Some(first) = outputs.first() else { return Ok(Vec::new()) };
    let simple = |t: &DataType| {
        t.is_integer() || matches!(t, DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8)
    };
    let candidates: Vec<String> = first
        .schema
        .fields()
        .iter()
        .filter(|f| simple(f.data_type()) && !ignore.contains(f.name()) && fits(f.name()))
        .map(|f| f.name().clone())
        .collect();
    let batches: Vec<RecordBatch> = outputs.iter().map(Rows::concat).collect::<Result<_>>()?;
    for c in candidates {
        if identifies(&batches, std::slice::from_ref(&c))? {
            return Ok(vec![c]);
        }
    }
    Ok(Vec::new())
}

/// A source that feeds a join directly (a lookup table such as `bronze/ssn`, on the right of a
/// Join or on a later input of a SQL node) is sampled again: only the rows whose key occurs
/// in the sample on the other side, rather than its first rows, so the recorded join matches
/// what it matches on the whole table. The key is the Join's first `on` pair; for SQL, a
/// column both sides have (an id-like one first).
async fn trim_lookups(
    project: &Project,
    pipeline: &Pipeline,
    root: &Path,
    samples: &mut BTreeMap<NodeId, Rows>,
    limit: usize,
) -> Result<()> {
    use datafusion::prelude::lit;
    for consumer in &pipeline.nodes {
        let ports = consumer.kind.input_ports();
        let (Some(first_port), true) = (ports.first(), ports.len() > 1) else { continue };
        for port in &ports[1..] {
            let Some(source) = pipeline.input_of(&consumer.id, port) else { continue };
            let is_source = pipeline
                .node(source)
                .is_some_and(|n| n.kind.role() == crate::model::NodeRole::Source);
            let Some(source_rows) = samples.get(source).filter(|_| is_source) else { continue };
            // the other side over the sample
            let mut planner = Planner::new(project, pipeline, root);
            for (id, rows) in samples.iter() {
                let table = MemTable::try_new(rows.schema.clone(), vec![rows.batches.clone()])
                    .map_err(EngineError::from)?;
                let df = planner.ctx.read_table(Arc::new(table)).map_err(EngineError::from)?;
                planner.set_frame(id.clone(), df);
            }
            let other = planner.input_frame(&consumer.id, first_port).await?;
            let keys = match &consumer.kind {
                NodeKind::Join(cfg) => cfg.on.first().map(|[l, r]| (l.clone(), r.clone())),
                _ => {
                    let theirs = other.schema();
                    let mut common: Vec<String> = source_rows
                        .schema
                        .fields()
                        .iter()
                        .map(|f| f.name().clone())
                        .filter(|n| theirs.field_with_unqualified_name(n).is_ok())
                        .collect();
                    common.sort_by_key(|n| !n.to_ascii_lowercase().ends_with("id"));
                    common.first().map(|c| (c.clone(), c.clone()))
                }
            };
            let Some((other_key, source_key)) = keys else { continue };
            let Ok(selected) = other.select(vec![column(&other_key)]).and_then(|df| df.distinct())
            else {
                continue;
            };
            let keys = selected.collect().await.map_err(EngineError::from)?;
            let mut values = Vec::new();
            for b in &keys {
                for i in 0..b.num_rows() {
                    let v = datafusion::common::ScalarValue::try_from_array(b.column(0), i)
                        .map_err(EngineError::from)?;
                    if !v.is_null() {
                        values.push(lit(v));
                    }
                }
            }
            let mut lookup = super::super::planner_for(project, pipeline, root).await;
            let df = lookup.node_frame(source).await?;
            let schema = super::super::plan::arrow_schema(&df);
            let batches = df
                .filter(column(&source_key).in_list(values, false))
                .and_then(|df| df.limit(0, Some(limit)))
                .map_err(|e| EngineError::from(e).at_node(&pipeline.name, &consumer.id))?
                .collect()
                .await
                .map_err(|e| EngineError::from(e).at_node(&pipeline.name, source))?;
            samples.insert(source.clone(), Rows { schema, batches });
        }
    }
    Ok(())
}

/// A stream source's sample sorted by the event time a Watermark downstream reads, so the
/// micro-batches it is split into arrive as a stream would deliver them.
fn in_event_time_order(pipeline: &Pipeline, source: &NodeId, rows: &Rows) -> Result<Rows> {
    let column = pipeline.nodes.iter().find_map(|n| match &n.kind {
        NodeKind::Watermark(w)
            if pipeline.reaches(source, &n.id) && rows.schema.index_of(&w.column).is_ok() =>
        {
            Some(w.column.clone())
        }
        _ => None,
    });
    let Some(column) = column else { return Ok(rows.clone()) };
    let all = rows.concat()?;
    let idx =
        arrow::compute::sort_to_indices(all.column(all.schema().index_of(&column)?), None, None)?;
    let sorted = arrow::compute::take_record_batch(&all, &idx)?;
    Ok(Rows { schema: rows.schema.clone(), batches: vec![sorted] })
}

/// Splits each source's rows into `n` micro-batches of consecutive rows.
fn split(samples: &BTreeMap<NodeId, Rows>, n: usize) -> Result<Vec<BatchInput>> {
    let mut out: Vec<BatchInput> = (0..n).map(|_| BatchInput::new()).collect();
    for (id, rows) in samples {
        let all = rows.concat()?;
        let per = all.num_rows().div_ceil(n.max(1));
        for (i, input) in out.iter_mut().enumerate() {
            let start = (i * per).min(all.num_rows());
            let len = per.min(all.num_rows() - start);
            input.insert(
                id.clone(),
                Rows { schema: rows.schema.clone(), batches: vec![all.slice(start, len)] },
            );
        }
    }
    Ok(out)
}

/// Records test `opts.name` of `opts.node`: writes its fixtures under the test's folder and
/// returns the `[[tests]]` entry (an existing test of that name keeps its folder and
/// assertions). The caller stores the entry in the project.
pub async fn record(
    project: &Project,
    project_file: &Path,
    root: &Path,
    opts: &RecordOptions,
) -> Result<Recorded> {
    let (pipeline, _) =
        project.find_node(&opts.node, opts.pipeline.as_deref()).map_err(TestError::Config)?;
    if opts.name.trim().is_empty() {
        return Err(TestError::Config("a test needs a name".into()));
    }
    let node = &opts.node;
    // the sample rows of each source, as the preview reads them
    let mut planner = super::super::planner_for(project, pipeline, root).await.with_live_samples();
    let mut samples = BTreeMap::new();
    for s in needed_sources(pipeline, node) {
        let df = planner.node_frame(&s).await?;
        let schema = super::super::plan::arrow_schema(&df);
        let batches = df
            .limit(0, Some(opts.limit))
            .map_err(EngineError::from)?
            .collect()
            .await
            .map_err(|e| EngineError::from(e).at_node(&pipeline.name, &s))?;
        samples.insert(s, Rows { schema, batches });
    }
    let stateful = stateful(pipeline);
    if !stateful {
        trim_lookups(project, pipeline, root, &mut samples, opts.limit).await?;
    }
    if pipeline.mode == PipelineMode::Stream {
        for (id, rows) in samples.iter_mut() {
            *rows = in_event_time_order(pipeline, id, rows)?;
        }
    }
    let data_batches = match (pipeline.mode, opts.batches) {
        (PipelineMode::Batch, _) => 1,
        (PipelineMode::Stream, Some(n)) => n.max(1),
        (PipelineMode::Stream, None) if stateful => 2,
        (PipelineMode::Stream, None) => 1,
    };
    let mut inputs = split(&samples, data_batches)?;
    if stateful {
        // a batch without data: the watermark the data moved closes windows and joins
        let empty = samples
            .iter()
            .map(|(id, r)| (id.clone(), Rows { schema: r.schema.clone(), batches: Vec::new() }))
            .collect();
        inputs.push(empty);
    }
    let outputs = replay(project, pipeline, node, &inputs).await?;
    // non-deterministic columns: from the expressions, and whatever differs in a second replay
    let again = replay(project, pipeline, node, &inputs).await?;
    let (first, second) = (column_values(&outputs)?, column_values(&again)?);
    let mut ignored: Vec<(String, String)> = static_non_deterministic(pipeline, node)
        .into_iter()
        .filter(|(c, _)| first.contains_key(c))
        .collect();
    let differing: Vec<String> = outputs
        .first()
        .map(|o| o.schema.fields().iter().map(|f| f.name().clone()).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .filter(|c| first.get(c) != second.get(c))
        .collect();
    let all_columns = first.len();
    let mut notes = Vec::new();
    if !differing.is_empty() && differing.len() == all_columns && all_columns > 1 {
        notes.push(format!(
            "warning: every column of `{node}` differs between two replays of the same input (a random filter or sample?); the comparison will fail until the node is deterministic"
        ));
    } else {
        for c in differing {
            if !ignored.iter().any(|(i, _)| i == &c) {
                ignored.push((c, "its values differ between two replays of the same input".into()));
            }
        }
    }
    for (c, why) in &ignored {
        notes.insert(0, format!("`{c}` is not compared: {why}"));
    }
    let dir = project
        .tests
        .iter()
        .find(|t| t.name == opts.name)
        .map(|t| t.dir.clone())
        .unwrap_or_else(|| PipelineTest::default_dir(&project.name, &opts.name));
    let mut test =
        project.tests.iter().find(|t| t.name == opts.name).cloned().unwrap_or_else(|| {
            PipelineTest::new(&opts.name, &pipeline.name, node.clone(), dir.clone())
        });
    test.pipeline = pipeline.name.clone();
    test.node = node.clone();
    test.batches = inputs.len();
    test.ignore_columns = ignored.iter().map(|(c, _)| c.clone()).collect();
    test.ordered = match inputs.first() {
        Some(first) if pipeline.mode == PipelineMode::Batch => {
            sorts(project, pipeline, node, first).await
        }
        _ => false,
    };
    test.key = detect_key(&outputs, &test.ignore_columns)?;
    let folder = fixtures::test_dir(project_file, &test);
    fixtures::clear_batches(&folder)?;
    for (i, input) in inputs.iter().enumerate() {
        for (id, rows) in input {
            fixtures::write_parquet(
                &fixtures::batch_dir(&folder, i).join(format!("{id}.parquet")),
                rows,
            )?;
        }
    }
    fixtures::write_expected(&folder, &outputs)?;
    Ok(Recorded {
        test,
        notes,
        sources: samples.iter().map(|(id, r)| (id.clone(), r.count())).collect(),
        expected_rows: outputs.iter().map(Rows::count).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_non_deterministic_calls_by_name() {
        assert_eq!(non_deterministic_call("current_timestamp()"), Some("current_timestamp"));
        assert_eq!(non_deterministic_call("CAST(NOW () AS DATE)"), Some("now"));
        assert_eq!(non_deterministic_call("concat(uuid(), 'x')"), Some("uuid"));
        assert_eq!(non_deterministic_call("known_uuid"), None);
        assert_eq!(non_deterministic_call("'now'"), None);
        assert_eq!(non_deterministic_call("my_random(1)"), None);
        assert_eq!(select_name("CAST(x AS TIMESTAMP) AS user_birth_date"), "user_birth_date");
        assert_eq!(select_name("first_name"), "first_name");
    }
}
