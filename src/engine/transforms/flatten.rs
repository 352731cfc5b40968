//! Flatten: every struct field becomes a top-level column `parent<sep>field`.
//!
//! Built from `get_field` expressions on the input schema, so camelCase names stay as they are
//! (no SQL identifier folding) and nothing runs row by row.

use arrow::datatypes::{DataType, Field};
use datafusion::common::Column;
use datafusion::functions::core::expr_fn::get_field;
use datafusion::prelude::{DataFrame, Expr, col};

use crate::model::node::Flatten;

use super::super::{EngineError, Result};

pub fn plan(df: DataFrame, cfg: &Flatten) -> Result<DataFrame> {
    let schema = df.schema().as_arrow().clone();
    for wanted in &cfg.columns {
        match schema.field_with_name(wanted) {
            Ok(f) if matches!(f.data_type(), DataType::Struct(_)) => {}
            Ok(f) => {
                return Err(EngineError::Config(format!(
                    "column `{wanted}` is {}, not a struct; remove it from the columns to flatten",
                    super::super::schema::type_ddl(f.data_type())
                )));
            }
            Err(_) => {
                return Err(EngineError::Config(format!(
                    "no column `{wanted}` to flatten; columns are: {}",
                    names(&schema)
                )));
            }
        }
    }
    let mut exprs = Vec::new();
    for field in schema.fields() {
        let base = col(Column::new_unqualified(field.name()));
        let chosen = cfg.columns.is_empty() || cfg.columns.iter().any(|c| c == field.name());
        if chosen && matches!(field.data_type(), DataType::Struct(_)) {
            expand(base, field, field.name(), cfg, &mut exprs);
        } else {
            exprs.push(base);
        }
    }
    let out = df.select(exprs)?;
    let mut seen = std::collections::HashSet::new();
    for f in out.schema().fields() {
        if !seen.insert(f.name().clone()) {
            return Err(EngineError::Config(format!(
                "flattening makes two columns named `{}`; pick another separator",
                f.name()
            )));
        }
    }
    Ok(out)
}

fn expand(base: Expr, field: &Field, prefix: &str, cfg: &Flatten, out: &mut Vec<Expr>) {
    let DataType::Struct(children) = field.data_type() else {
        out.push(base.alias(prefix));
        return;
    };
    for child in children {
        let name = format!("{prefix}{}{}", cfg.separator, child.name());
        let expr = get_field(base.clone(), child.name().as_str());
        if cfg.recursive && matches!(child.data_type(), DataType::Struct(_)) {
            expand(expr, child, &name, cfg, out);
        } else {
            out.push(expr.alias(name));
        }
    }
}

fn names(schema: &arrow::datatypes::Schema) -> String {
    schema.fields().iter().map(|f| f.name().as_str()).collect::<Vec<_>>().join(", ")
}
