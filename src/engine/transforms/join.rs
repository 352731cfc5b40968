//! Join two inputs on key pairs. Keys with the same name on both sides appear once (as with
//! Spark's `join(other, "id")`); any other name on both sides must be renamed first.

use datafusion::common::{Column, JoinType};
use datafusion::prelude::{DataFrame, Expr, col, lit};

use crate::model::node::{Join, JoinHow};

use super::super::{EngineError, Result};

pub fn plan(left: DataFrame, right: DataFrame, cfg: &Join) -> Result<DataFrame> {
    let left_names: Vec<String> = left.schema().fields().iter().map(|f| f.name().clone()).collect();
    let right_names: Vec<String> =
        right.schema().fields().iter().map(|f| f.name().clone()).collect();
    for [l, r] in &cfg.on {
        if !left_names.contains(l) {
            return Err(EngineError::Config(format!(
                "left input has no column `{l}`; its columns are: {}",
                left_names.join(", ")
            )));
        }
        if !right_names.contains(r) {
            return Err(EngineError::Config(format!(
                "right input has no column `{r}`; its columns are: {}",
                right_names.join(", ")
            )));
        }
    }
    let how = match cfg.how {
        JoinHow::Inner => JoinType::Inner,
        JoinHow::Left => JoinType::Left,
        JoinHow::Right => JoinType::Right,
        JoinHow::Full => JoinType::Full,
        JoinHow::LeftSemi => JoinType::LeftSemi,
        JoinHow::LeftAnti => JoinType::LeftAnti,
    };
    let left = left.alias("l")?;
    let right = right.alias("r")?;
    let lcol = |c: &str| col(Column::new(Some("l"), c));
    let rcol = |c: &str| col(Column::new(Some("r"), c));
    let mut on: Vec<Expr> = cfg.on.iter().map(|[l, r]| lcol(l).eq(rcol(r))).collect();
    if let Some(condition) = cfg.condition.as_deref().filter(|c| !c.trim().is_empty()) {
        // `left.x` / `right.x` in the user's SQL are the aliased inputs; parsed against both
        let both = left.clone().join_on(right.clone(), JoinType::Inner, vec![lit(true)])?;
        let expr = both
            .parse_sql_expr(&qualify(condition))
            .map_err(|e| EngineError::Config(format!("join condition `{condition}`: {e}")))?;
        on.push(expr);
    }
    let joined = left.join_on(right, how, on)?;
    if matches!(cfg.how, JoinHow::LeftSemi | JoinHow::LeftAnti) {
        return Ok(joined.select(left_names.iter().map(|n| lcol(n).alias(n)).collect::<Vec<_>>())?);
    }
    let same_keys: Vec<&String> = cfg.on.iter().filter(|[l, r]| l == r).map(|[l, _]| l).collect();
    let mut exprs = Vec::new();
    for n in &left_names {
        if same_keys.contains(&n) && matches!(cfg.how, JoinHow::Right) {
            exprs.push(rcol(n).alias(n));
        } else if same_keys.contains(&n) && matches!(cfg.how, JoinHow::Full) {
            exprs.push(datafusion::functions::expr_fn::coalesce(vec![lcol(n), rcol(n)]).alias(n));
        } else {
            exprs.push(lcol(n).alias(n));
        }
    }
    for n in &right_names {
        if same_keys.contains(&n) {
            continue;
        }
        if left_names.contains(n) {
            return Err(EngineError::Config(format!(
                "column `{n}` is on both sides of the join; rename it on one side (Select ... AS ...) first"
            )));
        }
        exprs.push(rcol(n).alias(n));
    }
    Ok(joined.select(exprs)?)
}

/// `left.x` → `l.x`, `right.x` → `r.x`: the condition's sides as the join's aliases.
fn qualify(condition: &str) -> String {
    let left = regex::Regex::new(r"(?i)\bleft\s*\.").expect("static regex");
    let right = regex::Regex::new(r"(?i)\bright\s*\.").expect("static regex");
    let c = left.replace_all(condition, "l.");
    right.replace_all(&c, "r.").into_owned()
}
