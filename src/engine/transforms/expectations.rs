//! The Expectations node (DLT's `expect`, `expect_or_drop`, `expect_or_fail`): each rule's
//! condition is evaluated over whole batches as one DataFusion physical expression, giving
//! a boolean column per rule; counts, the drop filter and the failing rows come from Arrow
//! kernels over those columns. A row passes a rule when the condition is true; false and
//! NULL fail it (as a Delta CHECK constraint).

use std::sync::Arc;

use arrow::array::{Array, BooleanArray, RecordBatch, UInt32Array};
use arrow::compute::{and, filter_record_batch, not, prep_null_mask_filter};
use arrow::datatypes::{DataType, SchemaRef};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::prelude::{DataFrame, SessionContext};
use serde::{Deserialize, Serialize};

use crate::model::NodeId;
use crate::model::node::{Expectations, OnViolation};

use super::super::sources::json_lines::BadRecord;
use super::super::{EngineError, Result};

/// One rule's counts over a batch (or a batch run).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RuleCounts {
    pub name: String,
    pub on_violation: String,
    pub passed: u64,
    pub failed: u64,
}

/// What an Expectations node saw in one batch.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ExpectationReport {
    pub input_rows: u64,
    pub output_rows: u64,
    /// Rows that passed every rule.
    #[serde(default)]
    pub passed_rows: u64,
    /// Rows dropped by `drop` rules (each counted once, whatever the number of rules it failed).
    pub dropped_rows: u64,
    pub rules: Vec<RuleCounts>,
}

/// The node's output and what it found.
pub struct Checked {
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
    pub report: ExpectationReport,
    /// Dropped rows, for the quarantine table: the row as JSON, the failed rules' names.
    pub dropped: Vec<BadRecord>,
}

/// The rules as physical expressions over `df`'s schema (errors name the rule).
pub fn compile(
    ctx: &SessionContext,
    df: &DataFrame,
    cfg: &Expectations,
) -> Result<Vec<Arc<dyn PhysicalExpr>>> {
    cfg.rules
        .iter()
        .map(|r| {
            let bad = |e: &dyn std::fmt::Display| {
                EngineError::Config(format!(
                    "rule `{}`: condition `{}` does not plan: {e}",
                    r.name, r.condition
                ))
            };
            let expr = df.parse_sql_expr(&r.condition).map_err(|e| bad(&e))?;
            let phys = ctx.create_physical_expr(expr, df.schema()).map_err(|e| bad(&e))?;
            let t = phys.data_type(df.schema().as_arrow()).map_err(|e| bad(&e))?;
            if t != DataType::Boolean {
                return Err(EngineError::Config(format!(
                    "rule `{}`: condition `{}` is {}, not a boolean; write a comparison such as `amount >= 0`",
                    r.name,
                    r.condition,
                    super::super::schema::type_ddl(&t)
                )));
            }
            Ok(phys)
        })
        .collect()
}

/// Checks every rule on `df`'s rows. A `fail` rule with failures stops here, with the rule,
/// the count and one failing row, before anything downstream runs.
pub async fn check(ctx: &SessionContext, df: DataFrame, cfg: &Expectations) -> Result<Checked> {
    let exprs = compile(ctx, &df, cfg)?;
    let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
    let batches = df.collect().await?;
    check_batches(schema, &batches, cfg, &exprs)
}

/// [`check`] over collected batches.
pub fn check_batches(
    schema: SchemaRef,
    batches: &[RecordBatch],
    cfg: &Expectations,
    exprs: &[Arc<dyn PhysicalExpr>],
) -> Result<Checked> {
    let mut report = ExpectationReport {
        rules: cfg
            .rules
            .iter()
            .map(|r| RuleCounts {
                name: r.name.clone(),
                on_violation: r.on_violation.as_str().to_owned(),
                ..RuleCounts::default()
            })
            .collect(),
        ..ExpectationReport::default()
    };
    let mut out = Vec::with_capacity(batches.len());
    let mut dropped = Vec::new();
    for batch in batches {
        let n = batch.num_rows();
        report.input_rows += n as u64;
        let mut passes: Vec<BooleanArray> = Vec::with_capacity(exprs.len());
        for (i, e) in exprs.iter().enumerate() {
            let value = e.evaluate(batch)?.into_array(n)?;
            let value = value.as_any().downcast_ref::<BooleanArray>().ok_or_else(|| {
                EngineError::Config(format!("rule `{}` did not give booleans", cfg.rules[i].name))
            })?;
            // NULL fails the rule
            let pass = match value.nulls() {
                Some(_) => prep_null_mask_filter(value),
                None => value.clone(),
            };
            let passed = pass.true_count() as u64;
            report.rules[i].passed += passed;
            report.rules[i].failed += n as u64 - passed;
            passes.push(pass);
        }
        let mut all = passes.first().cloned();
        for p in passes.iter().skip(1) {
            all = all.map(|a| and(&a, p)).transpose()?;
        }
        report.passed_rows += all.map_or(n, |a| a.true_count()) as u64;
        for (i, rule) in cfg.rules.iter().enumerate() {
            let failed = n - passes[i].true_count();
            if rule.on_violation == OnViolation::Fail && failed > 0 {
                let row = (0..n).find(|&r| !passes[i].value(r)).unwrap_or(0);
                let sample = row_json(batch, row);
                return Err(EngineError::Config(format!(
                    "expectation `{}` (on_violation = \"fail\") failed for {failed} of {n} rows in this batch; \
                     first failing row: {sample}. Nothing was committed. Fix the data upstream, or make the rule \
                     \"drop\" (rows go to the quarantine table) or \"warn\"",
                    rule.name
                )));
            }
        }
        let mut keep: Option<BooleanArray> = None;
        for (i, rule) in cfg.rules.iter().enumerate() {
            if rule.on_violation == OnViolation::Drop {
                keep = Some(match keep {
                    Some(k) => and(&k, &passes[i])?,
                    None => passes[i].clone(),
                });
            }
        }
        let Some(keep) = keep.filter(|k| k.true_count() < n) else {
            out.push(batch.clone());
            continue;
        };
        let gone = not(&keep)?;
        let gone_rows = filter_record_batch(batch, &gone)?;
        let gone_idx: Vec<u32> = (0..n as u32).filter(|&r| gone.value(r as usize)).collect();
        let raw = rows_as_json(&gone_rows);
        for (k, &row) in gone_idx.iter().enumerate() {
            let failed: Vec<&str> = cfg
                .rules
                .iter()
                .zip(&passes)
                .filter(|(_, p)| !p.value(row as usize))
                .map(|(r, _)| r.name.as_str())
                .collect();
            dropped.push(BadRecord {
                file: String::new(),
                line: 0,
                raw: raw.get(k).cloned().unwrap_or_default(),
                reason: format!("expectations failed: {}", failed.join(", ")),
            });
        }
        report.dropped_rows += gone_idx.len() as u64;
        out.push(filter_record_batch(batch, &keep)?);
    }
    report.output_rows = out.iter().map(|b| b.num_rows() as u64).sum();
    Ok(Checked { schema, batches: out, report, dropped })
}

fn row_json(batch: &RecordBatch, row: usize) -> String {
    let one = arrow::compute::take_record_batch(batch, &UInt32Array::from(vec![row as u32]));
    one.map(|b| rows_as_json(&b).pop().unwrap_or_default()).unwrap_or_default()
}

/// Rows as JSON objects, one string per row.
pub fn rows_as_json(batch: &RecordBatch) -> Vec<String> {
    let mut buf = Vec::new();
    {
        let mut w = arrow::json::LineDelimitedWriter::new(&mut buf);
        if w.write(batch).is_err() {
            return Vec::new();
        }
        let _ = w.finish();
    }
    String::from_utf8_lossy(&buf).lines().map(str::to_owned).collect()
}

/// A node's report, as carried in progress events.
pub type NodeReports = std::collections::BTreeMap<String, ExpectationReport>;

/// Adds `report` for `node` into `reports` (a batch run can check a node once; a stream once
/// per micro-batch).
pub fn add_report(reports: &mut NodeReports, node: &NodeId, report: ExpectationReport) {
    reports.insert(node.to_string(), report);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::node::Rule;
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{Field, Schema};

    fn rule(name: &str, condition: &str, on: OnViolation) -> Rule {
        Rule { name: name.into(), condition: condition.into(), on_violation: on }
    }

    async fn run(cfg: &Expectations) -> Result<Checked> {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("amount", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(vec![Some(1), None, Some(3), Some(4)])),
                Arc::new(Int64Array::from(vec![Some(10), Some(5), Some(-1), None])),
                Arc::new(StringArray::from(vec!["a", "b", "c", "d"])),
            ],
        )
        .unwrap();
        let ctx = crate::engine::plan::session_context();
        let df = ctx.read_batch(batch).unwrap();
        check(&ctx, df, cfg).await
    }

    #[tokio::test]
    async fn counts_drops_and_names_the_failed_rules() {
        let cfg = Expectations {
            rules: vec![
                rule("valid_id", "id IS NOT NULL", OnViolation::Drop),
                rule("valid_amount", "amount >= 0", OnViolation::Drop),
                rule("has_name", "name <> 'c'", OnViolation::Warn),
            ],
        };
        let c = run(&cfg).await.unwrap();
        let counts: Vec<(u64, u64)> = c.report.rules.iter().map(|r| (r.passed, r.failed)).collect();
        // amount NULL fails `amount >= 0`
        assert_eq!(counts, [(3, 1), (2, 2), (3, 1)]);
        assert_eq!((c.report.input_rows, c.report.output_rows, c.report.dropped_rows), (4, 1, 3));
        assert_eq!(c.report.passed_rows, 1);
        let reasons: Vec<&str> = c.dropped.iter().map(|d| d.reason.as_str()).collect();
        assert_eq!(
            reasons,
            [
                "expectations failed: valid_id",
                "expectations failed: valid_amount, has_name",
                "expectations failed: valid_amount"
            ]
        );
        assert_eq!(c.dropped[0].raw, r#"{"amount":5,"name":"b"}"#);
    }

    #[tokio::test]
    async fn fail_names_the_rule_the_count_and_a_row() {
        let cfg = Expectations { rules: vec![rule("positive", "amount > 0", OnViolation::Fail)] };
        let err = run(&cfg).await.err().unwrap().to_string();
        assert!(err.contains("expectation `positive`"), "{err}");
        assert!(err.contains("failed for 2 of 4 rows"), "{err}");
        assert!(err.contains(r#"{"id":3,"amount":-1,"name":"c"}"#), "{err}");
        let bad = Expectations { rules: vec![rule("typo", "amount + 1", OnViolation::Warn)] };
        let err = run(&bad).await.err().unwrap().to_string();
        assert!(err.contains("rule `typo`") && err.contains("not a boolean"), "{err}");
    }
}
