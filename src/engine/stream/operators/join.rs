//! Stream-stream joins: both inputs buffered in state, as Spark's symmetric hash join.
//!
//! Each batch joins (left state + new left rows) with (right state + new right rows) and
//! emits the pairs that involve at least one new row, so every pair is emitted once. A row
//! remembers whether it ever matched. With watermarks on both sides and a time range in the
//! condition (`right.t BETWEEN left.t + lo AND left.t + hi`), each side's state is bounded:
//! a left row can no longer match once the watermark passes `left.t + hi`, a right row once
//! it passes `right.t - lo`. That is when an unmatched row of an outer side is emitted with
//! NULLs, and never earlier, so a row that matched never gets a NULL twin.
//!
//! State columns: the side's columns, then `__id` (a stable row id) and `__matched`.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BooleanArray, Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::datasource::MemTable;
use datafusion::sql::sqlparser::ast::{BinaryOperator, Expr as SqlExpr};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;

use crate::engine::{EngineError, Result};
use crate::model::graph::parse_duration_ms;
use crate::model::node::{Join, JoinHow};

use super::aggregate::sql_context;
use super::event_time::{self, micros};
use super::{Clock, StateOperatorProgress, count_rows, memory_bytes};

/// `right.<right_col> - left.<left_col>` lies in `[lo_us, hi_us]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimeRange {
    pub left_col: String,
    pub right_col: String,
    pub lo_us: i64,
    pub hi_us: i64,
}

/// A parsed stream-stream Join node.
#[derive(Clone, Debug, PartialEq)]
pub struct JoinPlan {
    pub cfg: Join,
    pub range: Option<TimeRange>,
    /// Whether each side has a watermark upstream.
    pub left_watermark: bool,
    pub right_watermark: bool,
}

/// What one step of a join produced: its output rows and both sides' new state.
#[derive(Debug)]
pub struct JoinStep {
    pub schema: SchemaRef,
    pub rows: Vec<RecordBatch>,
    pub left_state: Vec<RecordBatch>,
    pub right_state: Vec<RecordBatch>,
    pub left_state_schema: SchemaRef,
    pub right_state_schema: SchemaRef,
    pub late: Vec<RecordBatch>,
    pub late_right: Vec<RecordBatch>,
    pub metrics: StateOperatorProgress,
    /// When (µs of watermark) the next state row can be evicted.
    pub next_expiry_us: Option<i64>,
}

fn q(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `left.x` / `right.x` → (side, column).
fn side_column(e: &SqlExpr) -> Option<(String, String)> {
    match e {
        SqlExpr::CompoundIdentifier(parts) if parts.len() == 2 => {
            Some((parts[0].value.to_ascii_lowercase(), parts[1].value.clone()))
        }
        SqlExpr::Nested(inner) => side_column(inner),
        _ => None,
    }
}

/// `left.t`, `left.t + INTERVAL '1 hour'`, `left.t - INTERVAL '5 minutes'` → (side, col, µs).
fn offset_term(e: &SqlExpr) -> Option<(String, String, i64)> {
    if let Some((side, c)) = side_column(e) {
        return Some((side, c, 0));
    }
    let SqlExpr::BinaryOp { left, op, right } = e else {
        return match e {
            SqlExpr::Nested(inner) => offset_term(inner),
            _ => None,
        };
    };
    let (side, c, base) = offset_term(left)?;
    let SqlExpr::Interval(iv) = right.as_ref() else { return None };
    let mut text = iv.value.to_string().trim_matches('\'').to_owned();
    if let Some(unit) = &iv.leading_field {
        text = format!("{text} {unit}").to_ascii_lowercase();
    }
    let us = parse_duration_ms(&text.to_ascii_lowercase())? as i64 * 1000;
    match op {
        BinaryOperator::Plus => Some((side, c, base + us)),
        BinaryOperator::Minus => Some((side, c, base - us)),
        _ => None,
    }
}

/// Finds `right.t BETWEEN left.t + a AND left.t + b` (or the same with `>=`/`<=`, and with
/// the sides swapped) in a join condition.
pub fn parse_range(condition: &str) -> std::result::Result<Option<TimeRange>, String> {
    let expr = Parser::new(&GenericDialect {})
        .try_with_sql(condition)
        .and_then(|mut p| p.parse_expr())
        .map_err(|e| format!("join condition `{condition}`: {e}"))?;
    let mut bounds = Vec::new();
    collect_bounds(&expr, &mut bounds);
    // (subject side, subject column, other column, offset) per lower/upper bound
    let mut found: Vec<(bool, String, String, String, i64)> = Vec::new();
    for (subject, op_is_lower, bound) in bounds {
        let Some((side, col)) = side_column(&subject) else { continue };
        let Some((bside, bcol, off)) = offset_term(&bound) else { continue };
        if side == bside || (side != "left" && side != "right") {
            continue;
        }
        found.push((op_is_lower, side, col, bcol, off));
    }
    // the same comparison seen from either side: prefer bounds on the right side's column
    for subject in ["right", "left"] {
        let lo = found.iter().find(|f| f.0 && f.1 == subject);
        let hi = found
            .iter()
            .find(|f| !f.0 && f.1 == subject && lo.is_some_and(|l| l.2 == f.2 && l.3 == f.3));
        let (Some(lo), Some(hi)) = (lo, hi) else { continue };
        return Ok(Some(if subject == "right" {
            TimeRange { left_col: lo.3.clone(), right_col: lo.2.clone(), lo_us: lo.4, hi_us: hi.4 }
        } else {
            // left.t BETWEEN right.t + a AND right.t + b  ⇔  right.t - left.t in [-b, -a]
            TimeRange {
                left_col: lo.2.clone(),
                right_col: lo.3.clone(),
                lo_us: -hi.4,
                hi_us: -lo.4,
            }
        }));
    }
    Ok(None)
}

/// (subject, is lower bound, bound) for every BETWEEN and `>=`/`<=`/`>`/`<` in an AND tree.
fn collect_bounds(e: &SqlExpr, out: &mut Vec<(SqlExpr, bool, SqlExpr)>) {
    match e {
        SqlExpr::BinaryOp { left, op: BinaryOperator::And, right } => {
            collect_bounds(left, out);
            collect_bounds(right, out);
        }
        SqlExpr::Nested(inner) => collect_bounds(inner, out),
        SqlExpr::Between { expr, negated: false, low, high } => {
            out.push((expr.as_ref().clone(), true, low.as_ref().clone()));
            out.push((expr.as_ref().clone(), false, high.as_ref().clone()));
        }
        SqlExpr::BinaryOp { left, op, right } => match op {
            BinaryOperator::GtEq | BinaryOperator::Gt => {
                out.push((left.as_ref().clone(), true, right.as_ref().clone()));
                out.push((right.as_ref().clone(), false, left.as_ref().clone()));
            }
            BinaryOperator::LtEq | BinaryOperator::Lt => {
                out.push((left.as_ref().clone(), false, right.as_ref().clone()));
                out.push((right.as_ref().clone(), true, left.as_ref().clone()));
            }
            _ => {}
        },
        _ => {}
    }
}

/// The user's condition over `left.`/`right.` as SQL over the step's table aliases.
fn aliased(condition: &str) -> String {
    let re_l = regex::Regex::new(r"(?i)\bleft\s*\.").expect("static regex");
    let re_r = regex::Regex::new(r"(?i)\bright\s*\.").expect("static regex");
    let c = re_l.replace_all(condition, "\"__l\".");
    re_r.replace_all(&c, "\"__r\".").into_owned()
}

impl JoinPlan {
    pub fn try_new(
        cfg: &Join,
        left_watermark: bool,
        right_watermark: bool,
    ) -> std::result::Result<Self, String> {
        let range = match &cfg.condition {
            Some(c) if !c.trim().is_empty() => parse_range(c)?,
            _ => None,
        };
        Ok(Self { cfg: cfg.clone(), range, left_watermark, right_watermark })
    }

    /// Whether both sides' state is bounded by watermarks.
    pub fn is_bounded(&self) -> bool {
        self.range.is_some() && self.left_watermark && self.right_watermark
    }

    pub fn fingerprint(&self) -> String {
        format!(
            "join {} on {:?} condition {:?}",
            self.cfg.how.as_str(),
            self.cfg.on,
            self.cfg.condition.as_deref().unwrap_or("")
        )
    }

    /// The output columns as the batch join names them (same-name keys once).
    fn projection(&self, left: &SchemaRef, right: &SchemaRef) -> Result<Vec<String>> {
        let same_keys: Vec<&String> =
            self.cfg.on.iter().filter(|[l, r]| l == r).map(|[l, _]| l).collect();
        let mut exprs = Vec::new();
        for f in left.fields() {
            let n = f.name();
            let e = if same_keys.contains(&n) && self.cfg.how == JoinHow::Right {
                format!("\"__r\".{} AS {}", q(n), q(n))
            } else if same_keys.contains(&n) && self.cfg.how == JoinHow::Full {
                format!("coalesce(\"__l\".{n}, \"__r\".{n}) AS {n}", n = q(n))
            } else {
                format!("\"__l\".{} AS {}", q(n), q(n))
            };
            exprs.push(e);
        }
        for f in right.fields() {
            let n = f.name();
            if same_keys.contains(&n) {
                continue;
            }
            if left.index_of(n).is_ok() {
                return Err(EngineError::Config(format!(
                    "column `{n}` is on both sides of the join; rename it on one side (Select ... AS ...) first"
                )));
            }
            exprs.push(format!("\"__r\".{} AS {}", q(n), q(n)));
        }
        Ok(exprs)
    }

    /// One micro-batch of a stream-stream join.
    #[allow(clippy::too_many_arguments)]
    pub async fn step(
        &self,
        batch_id: u64,
        left: (&[RecordBatch], &SchemaRef),
        right: (&[RecordBatch], &SchemaRef),
        left_state: Vec<RecordBatch>,
        right_state: Vec<RecordBatch>,
        clock: Clock,
    ) -> Result<JoinStep> {
        if !matches!(self.cfg.how, JoinHow::Inner | JoinHow::Left | JoinHow::Right | JoinHow::Full)
        {
            return Err(EngineError::Config(format!(
                "a {} join of two streams is not supported; use inner, left, right or full",
                self.cfg.how.as_str()
            )));
        }
        let (lschema, rschema) = (left.1, right.1);
        for [l, r] in &self.cfg.on {
            if lschema.index_of(l).is_err() {
                return Err(EngineError::Config(format!("left input has no column `{l}`")));
            }
            if rschema.index_of(r).is_err() {
                return Err(EngineError::Config(format!("right input has no column `{r}`")));
            }
        }
        // late rows: below the side's state watermark, as Spark's join drops them
        let (lbound, rbound) = self.bounds(clock.late_us);
        let (lkept, llate) = match (&self.range, lbound) {
            (Some(r), Some(b)) => event_time::split_late(left.0, &r.left_col, Some(b))?,
            _ => (left.0.to_vec(), Vec::new()),
        };
        let (rkept, rlate) = match (&self.range, rbound) {
            (Some(r), Some(b)) => event_time::split_late(right.0, &r.right_col, Some(b))?,
            _ => (right.0.to_vec(), Vec::new()),
        };
        let lstate_schema = with_flags(lschema);
        let rstate_schema = with_flags(rschema);
        let lall = tagged(&lkept, &lstate_schema, left_state, batch_id, 0)?;
        let rall = tagged(&rkept, &rstate_schema, right_state, batch_id, 1)?;
        let ctx = sql_context();
        let lall_schema = Arc::new(with_new(&lstate_schema));
        let rall_schema = Arc::new(with_new(&rstate_schema));
        ctx.register_table("__l", Arc::new(MemTable::try_new(lall_schema.clone(), vec![lall])?))?;
        ctx.register_table("__r", Arc::new(MemTable::try_new(rall_schema.clone(), vec![rall])?))?;
        let mut on: Vec<String> = self
            .cfg
            .on
            .iter()
            .map(|[l, r]| format!("\"__l\".{} = \"__r\".{}", q(l), q(r)))
            .collect();
        if let Some(c) = self.cfg.condition.as_deref().filter(|c| !c.trim().is_empty()) {
            on.push(format!("({})", aliased(c)));
        }
        let on = if on.is_empty() { "true".to_owned() } else { on.join(" AND ") };
        let proj = self.projection(lschema, rschema)?;
        let pairs_sql = format!(
            "SELECT {}, \"__l\".\"__id\" AS \"__lid\", \"__r\".\"__id\" AS \"__rid\" FROM \"__l\" JOIN \"__r\" ON {on} WHERE \"__l\".\"__new\" OR \"__r\".\"__new\"",
            proj.join(", ")
        );
        let pairs_df =
            ctx.sql(&pairs_sql).await.map_err(|e| EngineError::Config(format!("join: {e}")))?;
        let pairs_schema = Arc::new(Schema::new(pairs_df.schema().fields().clone()));
        let pairs = pairs_df.collect().await?;
        let n_out = pairs_schema.fields().len() - 2;
        let out_schema = Arc::new(pairs_schema.project(&(0..n_out).collect::<Vec<_>>())?);
        let mut rows: Vec<RecordBatch> = pairs
            .iter()
            .map(|b| b.project(&(0..n_out).collect::<Vec<_>>()))
            .collect::<std::result::Result<_, _>>()?;
        ctx.register_table("__pairs", Arc::new(MemTable::try_new(pairs_schema, vec![pairs])?))?;
        // matched flags, then eviction
        let (levict, revict) = self.bounds(clock.evict_us);
        let mut removed = 0u64;
        let side_out = |side: &str,
                        id: &str,
                        schema: &SchemaRef,
                        time_col: Option<&str>,
                        bound: Option<i64>,
                        outer: bool| {
            let cols: Vec<String> = schema
                .fields()
                .iter()
                .filter(|f| f.name() != "__matched")
                .map(|f| format!("s.{}", q(f.name())))
                .collect();
            let sql = format!(
                "SELECT {}, (s.\"__matched\" OR m.\"{id}\" IS NOT NULL) AS \"__matched\" FROM \"{side}\" s LEFT JOIN (SELECT DISTINCT \"{id}\" FROM \"__pairs\") m ON s.\"__id\" = m.\"{id}\"",
                cols.join(", ")
            );
            (sql, time_col.map(str::to_owned), bound, outer)
        };
        let louter = matches!(self.cfg.how, JoinHow::Left | JoinHow::Full);
        let router = matches!(self.cfg.how, JoinHow::Right | JoinHow::Full);
        let lplan = side_out(
            "__l",
            "__lid",
            &lall_schema,
            self.range.as_ref().map(|r| r.left_col.as_str()),
            levict,
            louter,
        );
        let rplan = side_out(
            "__r",
            "__rid",
            &rall_schema,
            self.range.as_ref().map(|r| r.right_col.as_str()),
            revict,
            router,
        );
        let mut states = Vec::new();
        let mut unmatched_sides = Vec::new();
        for (sql, time_col, bound, outer) in [lplan, rplan] {
            let flagged = ctx.sql(&sql).await?.collect().await?;
            let mut keep = Vec::new();
            let mut gone_unmatched = Vec::new();
            for b in &flagged {
                let evicted = match (&time_col, bound) {
                    (Some(c), Some(wm)) => event_time::at_or_below(&micros(b, c)?, wm)?,
                    _ => BooleanArray::from(vec![false; b.num_rows()]),
                };
                removed += evicted.true_count() as u64;
                let (k, g) = event_time::split(b, &evicted)?;
                if k.num_rows() > 0 {
                    keep.push(k);
                }
                if outer && g.num_rows() > 0 {
                    let matched = g
                        .column(g.num_columns() - 1)
                        .as_any()
                        .downcast_ref::<BooleanArray>()
                        .cloned()
                        .map(event_time::without_nulls)
                        .ok_or_else(|| EngineError::Config("matched flag is not BOOLEAN".into()))?;
                    let (unmatched, _) = event_time::split(&g, &matched)?;
                    if unmatched.num_rows() > 0 {
                        gone_unmatched.push(unmatched);
                    }
                }
            }
            states.push(keep);
            unmatched_sides.push(gone_unmatched);
        }
        // NULL rows for the evicted unmatched rows of an outer side
        for (i, unmatched) in unmatched_sides.into_iter().enumerate() {
            if unmatched.is_empty() {
                continue;
            }
            let (this, other, other_schema) = if i == 0 {
                ("__l", "__r", rall_schema.clone())
            } else {
                ("__r", "__l", lall_schema.clone())
            };
            let this_schema = unmatched[0].schema();
            let octx = sql_context();
            octx.register_table(this, Arc::new(MemTable::try_new(this_schema, vec![unmatched])?))?;
            octx.register_table(other, Arc::new(MemTable::try_new(other_schema, vec![vec![]])?))?;
            let join = if i == 0 { "LEFT JOIN" } else { "RIGHT JOIN" };
            let sql = format!("SELECT {} FROM \"__l\" {join} \"__r\" ON {on}", proj.join(", "));
            let nulls = octx.sql(&sql).await?.collect().await?;
            for b in nulls {
                rows.push(RecordBatch::try_new(out_schema.clone(), b.columns().to_vec())?);
            }
        }
        let rstate = states.pop().unwrap_or_default();
        let lstate = states.pop().unwrap_or_default();
        let lstate = strip_new(&lstate, &lstate_schema)?;
        let rstate = strip_new(&rstate, &rstate_schema)?;
        let next_expiry_us = match &self.range {
            Some(r) if self.left_watermark && self.right_watermark => {
                let l = lstate_schema
                    .index_of(&r.left_col)
                    .ok()
                    .and_then(|i| super::min_i64(&lstate, i))
                    .map(|t| t + r.hi_us + 1);
                let rr = rstate_schema
                    .index_of(&r.right_col)
                    .ok()
                    .and_then(|i| super::min_i64(&rstate, i))
                    .map(|t| t - r.lo_us + 1);
                [l, rr].into_iter().flatten().min()
            }
            _ => None,
        };
        let metrics = StateOperatorProgress {
            operator_name: "symmetricHashJoin".into(),
            num_rows_total: count_rows(&lstate) + count_rows(&rstate),
            num_rows_updated: count_rows(&lkept) + count_rows(&rkept),
            num_rows_removed: removed,
            num_rows_dropped_by_watermark: count_rows(&llate) + count_rows(&rlate),
            memory_used_bytes: memory_bytes(&lstate) + memory_bytes(&rstate),
            ..StateOperatorProgress::default()
        };
        Ok(JoinStep {
            schema: out_schema,
            rows,
            left_state: lstate,
            right_state: rstate,
            left_state_schema: lstate_schema,
            right_state_schema: rstate_schema,
            late: llate,
            late_right: rlate,
            metrics,
            next_expiry_us,
        })
    }

    /// Each side's state watermark for a global watermark `wm` (µs): a left row strictly
    /// below `wm - hi` cannot match a future right row; a right row strictly below
    /// `wm + lo` cannot match a future left row. Strictly, as Spark (checked on PySpark
    /// 4.3: with the watermark exactly at `shown_at + 1 hour` the NULL row is not emitted
    /// yet), hence the 1 µs.
    fn bounds(&self, wm: Option<i64>) -> (Option<i64>, Option<i64>) {
        match (&self.range, wm) {
            (Some(r), Some(wm)) if self.left_watermark && self.right_watermark => {
                (Some(wm - r.hi_us - 1), Some(wm + r.lo_us - 1))
            }
            _ => (None, None),
        }
    }
}

fn with_flags(schema: &SchemaRef) -> SchemaRef {
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.push(Field::new("__id", DataType::Int64, false));
    fields.push(Field::new("__matched", DataType::Boolean, false));
    Arc::new(Schema::new(fields))
}

fn with_new(schema: &SchemaRef) -> Schema {
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.push(Field::new("__new", DataType::Boolean, false));
    Schema::new(fields)
}

/// State rows (`__new` false) and this batch's rows (new ids, unmatched, `__new` true).
fn tagged(
    new_rows: &[RecordBatch],
    state_schema: &SchemaRef,
    state: Vec<RecordBatch>,
    batch_id: u64,
    side: i64,
) -> Result<Vec<RecordBatch>> {
    let all_schema = Arc::new(with_new(state_schema));
    let mut out = Vec::new();
    for b in state {
        let mut cols = b.columns().to_vec();
        cols.push(Arc::new(BooleanArray::from(vec![false; b.num_rows()])));
        out.push(RecordBatch::try_new(all_schema.clone(), cols)?);
    }
    // ids: batch id in the high bits, side and row below, so a replay assigns the same ones
    let mut row = 0i64;
    for b in new_rows {
        let n = b.num_rows();
        let base = ((batch_id as i64) << 33) | (side << 32);
        let ids: ArrayRef =
            Arc::new(Int64Array::from_iter_values((0..n as i64).map(|i| base | (row + i))));
        row += n as i64;
        let mut cols = b.columns().to_vec();
        cols.push(ids);
        cols.push(Arc::new(BooleanArray::from(vec![false; n])));
        cols.push(Arc::new(BooleanArray::from(vec![true; n])));
        out.push(RecordBatch::try_new(all_schema.clone(), cols)?);
    }
    Ok(out)
}

fn strip_new(batches: &[RecordBatch], state_schema: &SchemaRef) -> Result<Vec<RecordBatch>> {
    batches
        .iter()
        .map(|b| {
            // columns: data.., __id, __new, __matched (from the flag query) → data.., __id, __matched
            let n = b.num_columns();
            let mut cols: Vec<ArrayRef> = b.columns()[..n - 1].to_vec();
            let id_pos = state_schema.fields().len() - 2;
            let matched = b.column(n - 1).clone();
            cols.truncate(id_pos + 1);
            cols.push(matched);
            Ok(RecordBatch::try_new(state_schema.clone(), cols)?)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::StringArray;
    use arrow::util::pretty::pretty_format_batches;

    fn ts(s: &str) -> i64 {
        chrono::DateTime::parse_from_rfc3339(s).unwrap().timestamp_micros()
    }

    fn side(key: &str, time: &str, data: &[(&str, &str)]) -> (SchemaRef, Vec<RecordBatch>) {
        let schema = Arc::new(Schema::new(vec![
            Field::new(key, DataType::Utf8, true),
            Field::new(time, event_time::micros_type(), true),
        ]));
        let k: Vec<&str> = data.iter().map(|r| r.0).collect();
        let t: Vec<Option<i64>> = data.iter().map(|r| Some(ts(r.1))).collect();
        let b = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(StringArray::from(k)), event_time::timestamps(t)],
        )
        .unwrap();
        (schema, vec![b])
    }

    #[test]
    fn ranges_are_found_in_both_spellings() {
        let r = parse_range(
            "right.click_time BETWEEN left.shown_at AND left.shown_at + INTERVAL '1 hour'",
        )
        .unwrap()
        .unwrap();
        assert_eq!(r.left_col, "shown_at");
        assert_eq!(r.right_col, "click_time");
        assert_eq!((r.lo_us, r.hi_us), (0, 3_600_000_000));
        let r = parse_range("right.c >= left.s - INTERVAL '5 minutes' AND right.c <= left.s")
            .unwrap()
            .unwrap();
        assert_eq!((r.lo_us, r.hi_us), (-300_000_000, 0));
        assert_eq!(parse_range("left.a = right.b").unwrap(), None);
    }

    #[tokio::test]
    async fn left_outer_emits_null_rows_only_after_the_watermark_and_never_for_matched_rows() {
        let cfg = Join {
            how: JoinHow::Left,
            on: vec![["ad".into(), "click_ad".into()]],
            condition: Some(
                "right.click_time BETWEEN left.shown_at AND left.shown_at + INTERVAL '1 hour'"
                    .into(),
            ),
        };
        let p = JoinPlan::try_new(&cfg, true, true).unwrap();
        let (ls, l) = side(
            "ad",
            "shown_at",
            &[("a1", "2026-01-01T12:00:00Z"), ("a2", "2026-01-01T12:00:00Z")],
        );
        let (rs, r) = side("click_ad", "click_time", &[("a1", "2026-01-01T12:10:00Z")]);
        let s0 = p.step(0, (&l, &ls), (&r, &rs), vec![], vec![], Clock::none()).await.unwrap();
        assert_eq!(count_rows(&s0.rows), 1, "{}", pretty_format_batches(&s0.rows).unwrap());
        // a second click on a1 in a later batch matches the buffered impression
        let (_, r1) = side("click_ad", "click_time", &[("a1", "2026-01-01T12:20:00Z")]);
        let s1 = p
            .step(1, (&[], &ls), (&r1, &rs), s0.left_state, s0.right_state, Clock::none())
            .await
            .unwrap();
        assert_eq!(count_rows(&s1.rows), 1);
        // watermark 12:59: nothing evicted yet
        let wm = ts("2026-01-01T12:59:00Z");
        let s2 = p
            .step(
                2,
                (&[], &ls),
                (&[], &rs),
                s1.left_state,
                s1.right_state,
                Clock { late_us: Some(wm), evict_us: Some(wm) },
            )
            .await
            .unwrap();
        assert_eq!(count_rows(&s2.rows), 0);
        // watermark exactly 13:00: not yet (Spark needs the watermark past shown_at + 1 h)
        let wm = ts("2026-01-01T13:00:00Z");
        let s2 = p
            .step(
                2,
                (&[], &ls),
                (&[], &rs),
                s2.left_state,
                s2.right_state,
                Clock { late_us: Some(wm), evict_us: Some(wm) },
            )
            .await
            .unwrap();
        assert_eq!(count_rows(&s2.rows), 0);
        // watermark 13:00:01: a2 (never matched) gets its NULL row, a1 does not
        let wm = ts("2026-01-01T13:00:01Z");
        let s3 = p
            .step(
                3,
                (&[], &ls),
                (&[], &rs),
                s2.left_state,
                s2.right_state,
                Clock { late_us: Some(wm), evict_us: Some(wm) },
            )
            .await
            .unwrap();
        let text = pretty_format_batches(&s3.rows).unwrap().to_string();
        assert_eq!(count_rows(&s3.rows), 1, "{text}");
        assert!(text.contains("a2") && !text.contains("a1"), "{text}");
        assert_eq!(count_rows(&s3.left_state), 0);
    }
}
