//! Spark-style DDL (`id BIGINT, employment STRUCT<title: STRING, keySkills: ARRAY<STRING>>`)
//! to Arrow schemas and back, parsed with DataFusion's SQL parser (Spark dialect).
//!
//! Types follow Delta's: STRING is Utf8, TIMESTAMP is microseconds in UTC, TIMESTAMP_NTZ has
//! no zone. Field names keep their case (`keySkills`).

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Fields, Schema, TimeUnit};
use datafusion::sql::sqlparser::ast::{
    ArrayElemTypeDef, ColumnDef, ColumnOption, DataType as SqlType, ExactNumberInfo,
};
use datafusion::sql::sqlparser::dialect::SparkSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::Token;

use super::{EngineError, Result};

/// The Arrow type of Delta's TIMESTAMP.
pub fn delta_timestamp() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// Parses a DDL column list into an Arrow schema.
pub fn ddl_to_schema(ddl: &str) -> Result<Schema> {
    let dialect = SparkSqlDialect {};
    let bad = |e: &dyn std::fmt::Display| EngineError::Schema(format!("cannot parse `{ddl}`: {e}"));
    let mut parser = Parser::new(&dialect).try_with_sql(ddl).map_err(|e| bad(&e))?;
    let cols: Vec<ColumnDef> =
        parser.parse_comma_separated(Parser::parse_column_def).map_err(|e| bad(&e))?;
    parser.expect_token(&Token::EOF).map_err(|e| bad(&e))?;
    let mut names = std::collections::HashSet::new();
    let fields = cols
        .iter()
        .map(|c| {
            if !names.insert(c.name.value.to_lowercase()) {
                return Err(EngineError::Schema(format!(
                    "column `{}` appears twice",
                    c.name.value
                )));
            }
            let nullable = !c.options.iter().any(|o| matches!(o.option, ColumnOption::NotNull));
            Ok(Field::new(c.name.value.clone(), sql_to_arrow(&c.data_type)?, nullable))
        })
        .collect::<Result<Vec<_>>>()?;
    if fields.is_empty() {
        return Err(EngineError::Schema("the schema has no columns".into()));
    }
    Ok(Schema::new(fields))
}

fn sql_to_arrow(t: &SqlType) -> Result<DataType> {
    let list = |inner: &SqlType| -> Result<DataType> {
        Ok(DataType::List(Arc::new(Field::new("element", sql_to_arrow(inner)?, true))))
    };
    Ok(match t {
        SqlType::String(_) | SqlType::Varchar(_) | SqlType::Char(_) | SqlType::Text => {
            DataType::Utf8
        }
        SqlType::BigInt(_) => DataType::Int64,
        SqlType::Int(_) | SqlType::Integer(_) => DataType::Int32,
        SqlType::SmallInt(_) => DataType::Int16,
        SqlType::TinyInt(_) => DataType::Int8,
        SqlType::Double(_) | SqlType::DoublePrecision => DataType::Float64,
        SqlType::Float(_) | SqlType::Real => DataType::Float32,
        SqlType::Boolean | SqlType::Bool => DataType::Boolean,
        SqlType::Date => DataType::Date32,
        SqlType::Timestamp(_, _) => delta_timestamp(),
        SqlType::TimestampNtz(_) => DataType::Timestamp(TimeUnit::Microsecond, None),
        SqlType::Binary(_) => DataType::Binary,
        SqlType::Decimal(info) | SqlType::Numeric(info) => match *info {
            ExactNumberInfo::PrecisionAndScale(p, s) => DataType::Decimal128(p as u8, s as i8),
            ExactNumberInfo::Precision(p) => DataType::Decimal128(p as u8, 0),
            ExactNumberInfo::None => DataType::Decimal128(10, 0),
        },
        SqlType::Array(ArrayElemTypeDef::AngleBracket(inner))
        | SqlType::Array(ArrayElemTypeDef::SquareBracket(inner, _)) => list(inner)?,
        SqlType::Struct(fields, _) => DataType::Struct(Fields::from(
            fields
                .iter()
                .enumerate()
                .map(|(i, f)| {
                    let name = f
                        .field_name
                        .as_ref()
                        .map(|n| n.value.clone())
                        .unwrap_or_else(|| format!("col{}", i + 1));
                    Ok(Field::new(name, sql_to_arrow(&f.field_type)?, true))
                })
                .collect::<Result<Vec<_>>>()?,
        )),
        SqlType::Map(k, v) => DataType::Map(
            Arc::new(Field::new(
                "key_value",
                DataType::Struct(Fields::from(vec![
                    Field::new("key", sql_to_arrow(k)?, false),
                    Field::new("value", sql_to_arrow(v)?, true),
                ])),
                false,
            )),
            false,
        ),
        other => {
            return Err(EngineError::Schema(format!(
                "type `{other}` is not supported; use STRING, BIGINT, INT, DOUBLE, BOOLEAN, DATE, TIMESTAMP, DECIMAL(p,s), ARRAY<..>, STRUCT<..> or MAP<..>"
            )));
        }
    })
}

/// The Spark DDL name of an Arrow type, as shown in schemas and previews.
pub fn type_ddl(t: &DataType) -> String {
    match t {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "STRING".into(),
        DataType::Int64 => "BIGINT".into(),
        DataType::Int32 => "INT".into(),
        DataType::Int16 => "SMALLINT".into(),
        DataType::Int8 => "TINYINT".into(),
        DataType::UInt64 => "BIGINT UNSIGNED".into(),
        DataType::UInt32 => "INT UNSIGNED".into(),
        DataType::Float64 => "DOUBLE".into(),
        DataType::Float32 => "FLOAT".into(),
        DataType::Boolean => "BOOLEAN".into(),
        DataType::Date32 | DataType::Date64 => "DATE".into(),
        DataType::Timestamp(_, Some(_)) => "TIMESTAMP".into(),
        DataType::Timestamp(_, None) => "TIMESTAMP_NTZ".into(),
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => "BINARY".into(),
        DataType::Decimal128(p, s) | DataType::Decimal256(p, s) => format!("DECIMAL({p},{s})"),
        DataType::List(f) | DataType::LargeList(f) | DataType::ListView(f) => {
            format!("ARRAY<{}>", type_ddl(f.data_type()))
        }
        DataType::Struct(fields) => format!(
            "STRUCT<{}>",
            fields
                .iter()
                .map(|f| format!("{}: {}", f.name(), type_ddl(f.data_type())))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        DataType::Map(entry, _) => match entry.data_type() {
            DataType::Struct(kv) if kv.len() == 2 => {
                format!("MAP<{}, {}>", type_ddl(kv[0].data_type()), type_ddl(kv[1].data_type()))
            }
            other => format!("MAP<{other}>"),
        },
        other => other.to_string().to_uppercase(),
    }
}

/// A schema as a DDL column list, e.g. for "infer from sample".
pub fn schema_to_ddl(schema: &Schema) -> String {
    schema
        .fields()
        .iter()
        .map(|f| format!("{} {}", quote_ident(f.name()), type_ddl(f.data_type())))
        .collect::<Vec<_>>()
        .join(", ")
}

fn quote_ident(name: &str) -> String {
    let plain = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if plain { name.to_owned() } else { format!("`{}`", name.replace('`', "``")) }
}

#[cfg(test)]
mod tests {
    use super::*;

    const USERS: &str = "uuid STRING, id BIGINT, first_name STRING, date_of_birth STRING, \
        employment STRUCT<title: STRING, keySkills: ARRAY<STRING>>";

    #[test]
    fn parses_nested_ddl_keeping_case() {
        let s = ddl_to_schema(USERS).unwrap();
        assert_eq!(s.field(1).data_type(), &DataType::Int64);
        let DataType::Struct(fields) = s.field(4).data_type() else { panic!() };
        assert_eq!(fields[1].name(), "keySkills");
        assert!(matches!(fields[1].data_type(), DataType::List(_)));
    }

    #[test]
    fn round_trips_through_ddl() {
        let s = ddl_to_schema(USERS).unwrap();
        let again = ddl_to_schema(&schema_to_ddl(&s)).unwrap();
        assert_eq!(s, again);
        let t = ddl_to_schema("ts TIMESTAMP, d DECIMAL(10,2), m MAP<STRING, INT>").unwrap();
        assert_eq!(t.field(0).data_type(), &delta_timestamp());
        assert_eq!(ddl_to_schema(&schema_to_ddl(&t)).unwrap(), t);
    }

    #[test]
    fn bad_ddl_says_what_is_wrong() {
        let err = ddl_to_schema("id BIGINT, name").unwrap_err().to_string();
        assert!(err.contains("cannot parse"), "{err}");
        let err = ddl_to_schema("id BIGINT, id STRING").unwrap_err().to_string();
        assert!(err.contains("appears twice"), "{err}");
        let err = ddl_to_schema("g GEOMETRY").unwrap_err().to_string();
        assert!(err.contains("not supported") || err.contains("cannot parse"), "{err}");
    }
}
