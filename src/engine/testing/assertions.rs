//! Properties a test asserts instead of (or besides) exact rows: a row count, no NULLs in a
//! column, a unique key, and SQL rules in the Expectations node's `{ name, condition }`
//! syntax. Each runs as a DataFusion query over the node's output of every batch together
//! (what its sink would have received); a rule fails on rows where its condition is false or
//! NULL.

use std::sync::Arc;

use arrow::array::{Array, Int64Array, RecordBatch};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;

use crate::model::PipelineTest;

use super::fixtures::Rows;
use super::{AssertionFailure, Result};

/// Rows shown for a violated rule or key.
const EXAMPLES: usize = 3;

fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

async fn count(ctx: &SessionContext, sql: &str) -> std::result::Result<i64, String> {
    let batches = ctx
        .sql(sql)
        .await
        .map_err(|e| e.to_string())?
        .collect()
        .await
        .map_err(|e| e.to_string())?;
    Ok(batches
        .first()
        .and_then(|b| b.column(0).as_any().downcast_ref::<Int64Array>().map(|a| a.value(0)))
        .unwrap_or(0))
}

async fn examples(ctx: &SessionContext, sql: &str) -> String {
    let Ok(df) = ctx.sql(sql).await else { return String::new() };
    let Ok(batches) = df.collect().await else { return String::new() };
    arrow::util::pretty::pretty_format_batches(&batches).map(|t| t.to_string()).unwrap_or_default()
}

/// Checks every assertion of `test` over the outputs of all its batches.
pub async fn check(test: &PipelineTest, outputs: &[Rows]) -> Result<Vec<AssertionFailure>> {
    if !test.has_assertions() {
        return Ok(Vec::new());
    }
    let Some(schema) = outputs.first().map(|o| o.schema.clone()) else { return Ok(Vec::new()) };
    let batches: Vec<RecordBatch> = outputs.iter().flat_map(|o| o.batches.clone()).collect();
    let total: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let ctx = super::super::plan::session_context();
    ctx.register_table("output", Arc::new(MemTable::try_new(schema.clone(), vec![batches])?))?;
    let mut out = Vec::new();
    let fail = |assertion: String, message: String| AssertionFailure { assertion, message };
    if let Some(want) = test.row_count
        && want != total as u64
    {
        out.push(fail(format!("row_count = {want}"), format!("the node output {total} row(s)")));
    }
    for c in &test.not_null {
        let name = format!("not_null `{c}`");
        if schema.index_of(c).is_err() {
            out.push(fail(name, format!("the output has no column `{c}`")));
            continue;
        }
        match count(&ctx, &format!("SELECT count(*) FROM output WHERE {} IS NULL", quoted(c))).await
        {
            Ok(0) => {}
            Ok(n) => out.push(fail(name, format!("{n} row(s) have NULL in `{c}`"))),
            Err(e) => out.push(fail(name, e)),
        }
    }
    if !test.unique.is_empty() {
        let name = format!("unique ({})", test.unique.join(", "));
        if let Some(c) = test.unique.iter().find(|c| schema.index_of(c).is_err()) {
            out.push(fail(name, format!("the output has no column `{c}`")));
        } else {
            let cols = test.unique.iter().map(|c| quoted(c)).collect::<Vec<_>>().join(", ");
            let dupes = format!(
                "SELECT {cols}, count(*) AS rows FROM output GROUP BY {cols} HAVING count(*) > 1"
            );
            match count(&ctx, &format!("SELECT count(*) FROM ({dupes})")).await {
                Ok(0) => {}
                Ok(n) => {
                    let shown = examples(&ctx, &format!("{dupes} LIMIT {EXAMPLES}")).await;
                    out.push(fail(name, format!("{n} key(s) occur more than once:\n{shown}")));
                }
                Err(e) => out.push(fail(name, e)),
            }
        }
    }
    for rule in &test.rules {
        let name = format!("rule `{}` ({})", rule.name, rule.condition);
        let violating =
            format!("SELECT * FROM output WHERE NOT coalesce(({}), false)", rule.condition);
        match count(&ctx, &format!("SELECT count(*) FROM ({violating})")).await {
            Ok(0) => {}
            Ok(n) => {
                let shown = examples(&ctx, &format!("{violating} LIMIT {EXAMPLES}")).await;
                out.push(fail(name, format!("{n} row(s) violate it:\n{shown}")));
            }
            Err(e) => out.push(fail(name, format!("the condition does not run: {e}"))),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use arrow::array::{ArrayRef, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;
    use crate::model::{NodeId, Rule};

    fn output() -> Vec<Rows> {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
        ]));
        let cols: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(vec![Some(1), Some(1), None])),
            Arc::new(StringArray::from(vec![Some("a"), Some("b"), Some("c")])),
        ];
        vec![Rows {
            schema: schema.clone(),
            batches: vec![RecordBatch::try_new(schema, cols).unwrap()],
        }]
    }

    #[tokio::test]
    async fn each_assertion_fails_on_what_it_names() {
        let mut t = PipelineTest::new("t", "p", NodeId::new("n"), "d".into());
        t.row_count = Some(2);
        t.not_null = vec!["id".into(), "name".into(), "nope".into()];
        t.unique = vec!["id".into()];
        t.rules = vec![
            Rule { name: "positive".into(), condition: "id > 0".into() },
            Rule { name: "named".into(), condition: "name IS NOT NULL".into() },
            Rule { name: "broken".into(), condition: "no_such_column = 1".into() },
        ];
        let failures = check(&t, &output()).await.unwrap();
        let names: Vec<&str> = failures.iter().map(|f| f.assertion.as_str()).collect();
        assert_eq!(
            names,
            [
                "row_count = 2",
                "not_null `id`",
                "not_null `nope`",
                "unique (id)",
                "rule `positive` (id > 0)",
                "rule `broken` (no_such_column = 1)"
            ]
        );
        assert_eq!(failures[0].message, "the node output 3 row(s)");
        assert!(failures[3].message.starts_with("1 key(s)"), "{}", failures[3].message);
        assert!(failures[4].message.starts_with("1 row(s) violate it"), "a NULL id fails too");
    }
}
