//! What an Aggregate node's settings mean for the streaming operator: `window(...)` and
//! `session_window(...)` in `group_by`, and the aggregates that can keep partial state
//! (count, sum, min, max, avg), parsed with DataFusion's SQL parser.

use datafusion::sql::sqlparser::ast::{
    DuplicateTreatment, Expr as SqlExpr, FunctionArg, FunctionArgExpr, FunctionArguments,
    SelectItem, Value,
};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;

use crate::model::graph::parse_duration_ms;

/// A time window in `group_by`.
#[derive(Clone, Debug, PartialEq)]
pub enum WindowSpec {
    /// `window(col, '1 minute')`.
    Tumbling { column: String, size_us: i64 },
    /// `window(col, '10 minutes', '5 minutes')`.
    Sliding { column: String, size_us: i64, slide_us: i64 },
    /// `session_window(col, '5 minutes')`.
    Session { column: String, gap_us: i64 },
}

impl WindowSpec {
    pub fn column(&self) -> &str {
        match self {
            WindowSpec::Tumbling { column, .. }
            | WindowSpec::Sliding { column, .. }
            | WindowSpec::Session { column, .. } => column,
        }
    }

    /// The output column's name, as Spark names it.
    pub fn output_name(&self) -> &'static str {
        match self {
            WindowSpec::Session { .. } => "session_window",
            _ => "window",
        }
    }

    pub fn is_session(&self) -> bool {
        matches!(self, WindowSpec::Session { .. })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum AggFunc {
    Count,
    Sum,
    Min,
    Max,
    Avg,
}

#[derive(Clone, Debug, PartialEq)]
pub(super) struct AggItem {
    pub(super) func: AggFunc,
    /// SQL of the argument; `None` for `count(*)`.
    pub(super) arg: Option<String>,
    pub(super) name: String,
}

#[derive(Clone, Debug, PartialEq)]
pub(super) enum GroupItem {
    Key { sql: String, name: String },
    Window(WindowSpec),
}

pub(super) fn parse_sql_expr(text: &str) -> std::result::Result<SqlExpr, String> {
    Parser::new(&GenericDialect {})
        .try_with_sql(text)
        .and_then(|mut p| p.parse_expr())
        .map_err(|e| format!("`{text}`: {e}"))
}

fn string_arg(arg: &FunctionArg) -> Option<String> {
    match arg {
        FunctionArg::Unnamed(FunctionArgExpr::Expr(SqlExpr::Value(v))) => match &v.value {
            Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => Some(s.clone()),
            _ => None,
        },
        _ => None,
    }
}

fn column_arg(arg: &FunctionArg) -> Option<String> {
    match arg {
        FunctionArg::Unnamed(FunctionArgExpr::Expr(SqlExpr::Identifier(i))) => {
            Some(i.value.clone())
        }
        _ => None,
    }
}

fn duration_us(text: &str, what: &str) -> std::result::Result<i64, String> {
    let t = text.trim().trim_start_matches("interval").trim();
    match parse_duration_ms(t) {
        Some(ms) if ms > 0 => Ok(ms as i64 * 1000),
        _ => Err(format!("{what} `{text}` is not a duration such as '1 minute' or '30 seconds'")),
    }
}

/// `window(...)` / `session_window(...)` in a group-by item, if it is one.
pub fn parse_window(item: &str) -> std::result::Result<Option<WindowSpec>, String> {
    let expr = parse_sql_expr(item)?;
    let SqlExpr::Function(f) = &expr else { return Ok(None) };
    let name = f.name.to_string().to_ascii_lowercase();
    if name != "window" && name != "session_window" {
        return Ok(None);
    }
    let FunctionArguments::List(list) = &f.args else {
        return Err(format!("`{item}`: {name}() needs a column and a duration"));
    };
    let args = &list.args;
    let column = args
        .first()
        .and_then(column_arg)
        .ok_or_else(|| format!("`{item}`: the first argument of {name}() must be a column name"))?;
    let durations: Vec<String> = args[1..].iter().filter_map(string_arg).collect();
    if durations.len() != args.len() - 1 {
        return Err(format!("`{item}`: durations are quoted, e.g. {name}({column}, '1 minute')"));
    }
    match (name.as_str(), durations.as_slice()) {
        ("session_window", [gap]) => {
            Ok(Some(WindowSpec::Session { column, gap_us: duration_us(gap, "gap")? }))
        }
        ("window", [size]) => {
            Ok(Some(WindowSpec::Tumbling { column, size_us: duration_us(size, "window size")? }))
        }
        ("window", [size, slide]) => {
            let (size_us, slide_us) =
                (duration_us(size, "window size")?, duration_us(slide, "slide")?);
            if slide_us > size_us {
                return Err(format!("`{item}`: the slide must not be longer than the window"));
            }
            if slide_us == size_us {
                return Ok(Some(WindowSpec::Tumbling { column, size_us }));
            }
            Ok(Some(WindowSpec::Sliding { column, size_us, slide_us }))
        }
        _ => Err(format!(
            "`{item}`: use window(col, 'size'), window(col, 'size', 'slide') or session_window(col, 'gap')"
        )),
    }
}

pub(super) fn parse_agg(item: &str) -> std::result::Result<AggItem, String> {
    let select = Parser::new(&GenericDialect {})
        .try_with_sql(item)
        .and_then(|mut p| p.parse_select_item())
        .map_err(|e| format!("`{item}`: {e}"))?;
    let (expr, alias) = match select {
        SelectItem::UnnamedExpr(e) => (e, None),
        SelectItem::ExprWithAlias { expr, alias } => (expr, Some(alias.value)),
        _ => return Err(format!("`{item}` is not an aggregate expression")),
    };
    let unsupported = || {
        format!(
            "`{item}`: a streaming aggregate keeps its state across batches and supports count, sum, min, max and avg (mean) of an expression; compute others in a batch pipeline"
        )
    };
    let SqlExpr::Function(f) = &expr else { return Err(unsupported()) };
    let func = match f.name.to_string().to_ascii_lowercase().as_str() {
        "count" => AggFunc::Count,
        "sum" => AggFunc::Sum,
        "min" => AggFunc::Min,
        "max" => AggFunc::Max,
        "avg" | "mean" => AggFunc::Avg,
        _ => return Err(unsupported()),
    };
    let FunctionArguments::List(list) = &f.args else { return Err(unsupported()) };
    if list.duplicate_treatment == Some(DuplicateTreatment::Distinct) || f.filter.is_some() {
        return Err(unsupported());
    }
    let arg = match list.args.as_slice() {
        [FunctionArg::Unnamed(FunctionArgExpr::Wildcard)] if func == AggFunc::Count => None,
        [FunctionArg::Unnamed(FunctionArgExpr::Expr(e))] => Some(e.to_string()),
        _ => return Err(unsupported()),
    };
    Ok(AggItem { func, arg, name: alias.unwrap_or_else(|| expr.to_string()) })
}
