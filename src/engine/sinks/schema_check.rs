//! Delta's schema enforcement, checked before every write into an existing table, with
//! Spark's rules and names:
//! - a column the table does not have is refused unless `schema_mode = "merge"`
//!   (`mergeSchema`), which adds it (old rows read NULL);
//! - a column the input lacks is written as NULL (append, overwrite), as Delta does;
//! - a narrower input type is cast up to the table's (INT into BIGINT, FLOAT into DOUBLE, a
//!   DECIMAL that fits); any other type change is refused, naming both types;
//! - with `mode = "overwrite"` and `schema_mode = "overwrite"` (`overwriteSchema`) the table
//!   takes the input's schema as it is.
//!
//! Errors name the column, the table's type, the input's type and the option that would
//! allow the write; the caller pins them on the sink node.

use arrow::datatypes::{DataType, Schema};
use datafusion::common::ScalarValue;
use datafusion::prelude::{DataFrame, Expr, cast, lit};
use deltalake::DeltaTable;

use crate::model::node::{DeltaSink, SchemaMode, WriteMode};

use super::super::plan::column;
use super::super::schema::type_ddl;
use super::super::{EngineError, Result};

/// What the write must do: the input conformed to the table, and the schema mode to give
/// delta-rs (`Merge` when columns are added, `Overwrite` to replace the schema).
pub struct Enforced {
    pub df: DataFrame,
    pub schema_mode: Option<SchemaMode>,
}

/// Checks `df` against `table` (nothing to check when there is no table yet).
pub fn enforce(table: Option<&DeltaTable>, sink: &DeltaSink, df: DataFrame) -> Result<Enforced> {
    let Some(table) = table else {
        return Ok(Enforced { df, schema_mode: None });
    };
    let table_schema = table.snapshot()?.snapshot().arrow_schema();
    if sink.mode == WriteMode::Overwrite && sink.schema_mode == Some(SchemaMode::Overwrite) {
        return Ok(Enforced { df, schema_mode: Some(SchemaMode::Overwrite) });
    }
    let input = Schema::new(df.schema().fields().clone());
    let plan = conform(&table_schema, &input, sink)?;
    let df = if plan.identity { df } else { df.select(plan.exprs)? };
    let schema_mode = (!plan.added.is_empty()).then_some(SchemaMode::Merge);
    Ok(Enforced { df, schema_mode })
}

struct Conformed {
    exprs: Vec<Expr>,
    added: Vec<String>,
    identity: bool,
}

/// The select that makes `input` fit `table`, or the error that says why it cannot.
fn conform(table: &Schema, input: &Schema, sink: &DeltaSink) -> Result<Conformed> {
    let merge = sink.schema_mode == Some(SchemaMode::Merge);
    let columns =
        || table.fields().iter().map(|f| f.name().as_str()).collect::<Vec<_>>().join(", ");
    let mut exprs = Vec::new();
    let mut identity = table.fields().len() == input.fields().len();
    for (i, tf) in table.fields().iter().enumerate() {
        let Ok(inf) = input.field_with_name(tf.name()) else {
            if sink.mode == WriteMode::Merge {
                // MERGE leaves a column the source lacks as it is
                identity = false;
                continue;
            }
            if !tf.is_nullable() {
                return Err(EngineError::Schema(format!(
                    "column `{}` ({} NOT NULL in the table {}) is missing from the input; add it upstream",
                    tf.name(),
                    type_ddl(tf.data_type()),
                    sink.table
                )));
            }
            let null = ScalarValue::try_from(tf.data_type())?;
            exprs.push(lit(null).alias(tf.name()));
            identity = false;
            continue;
        };
        identity &= input.fields().get(i).is_some_and(|f| f.name() == tf.name());
        let (tt, it) = (tf.data_type(), inf.data_type());
        if tt == it || same_kind(tt, it) {
            exprs.push(column(tf.name()));
        } else if upcasts(it, tt) {
            exprs.push(cast(column(tf.name()), tt.clone()).alias(tf.name()));
            identity = false;
        } else if merge && matches!((tt, it), (DataType::Struct(_), DataType::Struct(_))) {
            // nested fields added: delta-rs merges structs
            exprs.push(column(tf.name()));
        } else {
            return Err(EngineError::Schema(format!(
                "column `{}` is {} in the table {} but {} in the input; add a Cast to {} upstream, \
                 or replace the table's schema with mode = \"overwrite\" and schema_mode = \"overwrite\" \
                 (Delta's overwriteSchema){}",
                tf.name(),
                type_ddl(tt),
                sink.table,
                type_ddl(it),
                type_ddl(tt),
                if merge {
                    "; schema_mode = \"merge\" adds columns and casts narrower input types up, but delta-rs cannot widen a table column's type"
                } else {
                    ""
                }
            )));
        }
    }
    let mut added = Vec::new();
    for f in input.fields() {
        if table.field_with_name(f.name()).is_ok() {
            continue;
        }
        if let Some(t) = table.fields().iter().find(|t| t.name().eq_ignore_ascii_case(f.name())) {
            return Err(EngineError::Schema(format!(
                "column `{}` of the input differs only in case from the table's `{}` ({}); rename it upstream",
                f.name(),
                t.name(),
                sink.table
            )));
        }
        if !merge {
            return Err(EngineError::Schema(format!(
                "column `{}` ({} in the input) is not in the table {} (columns: {}); set schema_mode = \"merge\" \
                 on this sink to add it (Delta's mergeSchema), or drop it upstream with a Select",
                f.name(),
                type_ddl(f.data_type()),
                sink.table,
                columns()
            )));
        }
        added.push(f.name().clone());
        exprs.push(column(f.name()));
        identity = false;
    }
    Ok(Conformed { exprs, added, identity })
}

/// The same Delta type: string and binary flavours, timestamp units, and list element names
/// and nullability are what the Delta writer stores alike; struct fields match by name.
fn same_kind(table: &DataType, input: &DataType) -> bool {
    use DataType::*;
    match (table, input) {
        (Utf8 | LargeUtf8 | Utf8View, Utf8 | LargeUtf8 | Utf8View)
        | (Binary | LargeBinary | BinaryView, Binary | LargeBinary | BinaryView) => true,
        (Timestamp(_, a), Timestamp(_, b)) => a.is_some() == b.is_some(),
        (List(a) | LargeList(a), List(b) | LargeList(b)) => same_kind(a.data_type(), b.data_type()),
        (Map(a, _), Map(b, _)) => same_kind(a.data_type(), b.data_type()),
        (Struct(a), Struct(b)) => {
            a.len() == b.len()
                && a.iter().all(|f| {
                    b.iter()
                        .any(|g| g.name() == f.name() && same_kind(f.data_type(), g.data_type()))
                })
        }
        _ => table == input,
    }
}

/// Whether `input` converts to `table` without loss (Spark's safe up-cast).
fn upcasts(input: &DataType, table: &DataType) -> bool {
    use DataType::*;
    match (input, table) {
        (Null, _) => true,
        (Int8, Int16 | Int32 | Int64 | Float64) => true,
        (Int16, Int32 | Int64 | Float64) => true,
        (Int32, Int64 | Float64) => true,
        (Float32, Float64) => true,
        (Date32, Timestamp(_, None)) => true,
        (Decimal128(p, s), Decimal128(tp, ts)) => {
            ts >= s && (*tp as i16 - *ts as i16) >= (*p as i16 - *s as i16)
        }
        (Int32, Decimal128(p, s)) => (*p as i16 - *s as i16) >= 10,
        (Int64, Decimal128(p, s)) => (*p as i16 - *s as i16) >= 20,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::schema::ddl_to_schema;

    fn sink(schema_mode: Option<SchemaMode>) -> DeltaSink {
        DeltaSink { table: "silver/t".into(), schema_mode, ..DeltaSink::default() }
    }

    #[test]
    fn new_columns_need_merge_and_types_must_fit() {
        let table = ddl_to_schema("id BIGINT, name STRING").unwrap();
        let input = ddl_to_schema("id BIGINT, name STRING, ssn STRING").unwrap();
        let err = conform(&table, &input, &sink(None)).err().unwrap().to_string();
        assert!(
            err.contains("column `ssn` (STRING in the input) is not in the table silver/t"),
            "{err}"
        );
        assert!(err.contains("schema_mode = \"merge\""), "{err}");
        let ok = conform(&table, &input, &sink(Some(SchemaMode::Merge))).unwrap();
        assert_eq!(ok.added, ["ssn"]);
        let narrower = ddl_to_schema("id INT").unwrap();
        let ok = conform(&table, &narrower, &sink(None)).unwrap();
        assert!(!ok.identity);
        let other = ddl_to_schema("id STRING, name STRING").unwrap();
        let err = conform(&table, &other, &sink(None)).err().unwrap().to_string();
        assert!(
            err.contains("column `id` is BIGINT in the table silver/t but STRING in the input"),
            "{err}"
        );
        assert!(err.contains("schema_mode = \"overwrite\""), "{err}");
        let same = conform(&table, &table, &sink(None)).unwrap();
        assert!(same.identity && same.added.is_empty());
        // list element names and nullability do not make another type
        let list = |name: &str, nullable: bool| {
            Schema::new(vec![arrow::datatypes::Field::new(
                "skills",
                DataType::List(std::sync::Arc::new(arrow::datatypes::Field::new(
                    name,
                    DataType::Utf8,
                    nullable,
                ))),
                true,
            )])
        };
        assert!(
            conform(&list("element", true), &list("item", false), &sink(None)).unwrap().identity
        );
    }
}
