//! Spark's PERMISSIVE partial results for JSON: a bad record keeps the fields that read on
//! their own. As PySpark 4.3 reads `city STRING, amount DOUBLE` (its
//! `spark.sql.json.enablePartialResults` is on): `{"city":"São Paulo","amount":"abc"}` is
//! `São Paulo, NULL`, the record itself going to the corrupt-record column (ours:
//! `_rescued_data`); a struct keeps those of its own fields that read (`{NULL, 1}`); an array
//! with a bad element, a TIMESTAMP that does not parse and a number out of range are NULL; a
//! record that is not one whole JSON object (truncated, an array, text) is all NULL. Of a key
//! written twice, the last one counts, as in Spark.
//!
//! Only bad records come here: each field is decoded for all of them at once, and record by
//! record only when that fails.

use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, RecordBatchOptions, StructArray, new_null_array};
use arrow::datatypes::{DataType, FieldRef, Schema};

use super::super::Result;
use super::json_lines::{SparkRules, decode_rows};
use super::json_spark;

/// An object's keys and values, as written.
type Fields<'a> = Vec<(&'a [u8], &'a [u8])>;

/// One row per record in `schema`: the fields of each that read, NULL for the others.
pub fn partial_rows(schema: &Schema, records: &[&[u8]]) -> Result<RecordBatch> {
    let objects: Vec<Option<Fields<'_>>> =
        records.iter().map(|r| json_spark::object_fields(r)).collect();
    let mut columns = Vec::with_capacity(schema.fields().len());
    for field in schema.fields() {
        let values: Vec<Option<&[u8]>> = objects
            .iter()
            .map(|o| o.as_ref().and_then(|fields| value_of(fields, field.name())))
            .collect();
        columns.push(column(field, &values)?);
    }
    let options = RecordBatchOptions::new().with_row_count(Some(records.len()));
    Ok(RecordBatch::try_new_with_options(Arc::new(schema.clone()), columns, &options)?)
}

/// The value of the last key `name` (Spark: a key written twice keeps its last value).
fn value_of<'a>(fields: &[(&[u8], &'a [u8])], name: &str) -> Option<&'a [u8]> {
    fields.iter().rev().find(|(k, _)| *k == name.as_bytes()).map(|(_, v)| *v)
}

/// `field`'s column for these values (`None`: the key is absent, or the record is no object).
fn column(field: &FieldRef, values: &[Option<&[u8]>]) -> Result<ArrayRef> {
    let schema = Schema::new(vec![field.clone()]);
    let rules = SparkRules::new(&schema);
    if values.is_empty() {
        return Ok(new_null_array(field.data_type(), 0));
    }
    let key = serde_json::Value::from(field.name().as_str()).to_string();
    // each value as a record of its own, with Spark's rules applied (objects into STRING
    // fields as their text, integers into TIMESTAMP fields as seconds)
    let records: Vec<Option<Vec<u8>>> = values
        .iter()
        .map(|v| {
            let v = (*v)?;
            let record = [b"{".as_slice(), key.as_bytes(), b":", v, b"}"].concat();
            json_spark::normalize_record(&record, &rules.check).ok()
        })
        .collect();
    let joined: Vec<u8> = records
        .iter()
        .map(|r| r.as_deref().unwrap_or(b"{}".as_slice()))
        .collect::<Vec<_>>()
        .join(&b'\n');
    // a value Spark's rules refused reads on its own (a struct may keep some of its fields)
    let rules_took_all = values.iter().zip(&records).all(|(v, r)| v.is_none() || r.is_some());
    if rules_took_all
        && let Ok((Some(batch), bad)) = decode_rows(&rules, &joined, Some(values.len()), false)
        && bad.is_empty()
    {
        return Ok(batch.column(0).clone());
    }
    let mut parts = Vec::with_capacity(values.len());
    for (value, record) in values.iter().zip(&records) {
        parts.push(one(field, &rules, *value, record.as_deref())?);
    }
    let parts: Vec<&dyn arrow::array::Array> = parts.iter().map(AsRef::as_ref).collect();
    Ok(arrow::compute::concat(&parts)?)
}

/// One value of `field` (one row): as it reads, or a struct of those of its fields that read,
/// or NULL.
fn one(
    field: &FieldRef,
    rules: &SparkRules,
    value: Option<&[u8]>,
    record: Option<&[u8]>,
) -> Result<ArrayRef> {
    if let Some(record) = record
        && let Ok((Some(batch), bad)) = decode_rows(rules, record, Some(1), false)
        && bad.is_empty()
    {
        return Ok(batch.column(0).clone());
    }
    if let (DataType::Struct(children), Some(value)) = (field.data_type(), value)
        && json_spark::object_fields(value).is_some()
    {
        let inner = partial_rows(&Schema::new(children.clone()), &[value])?;
        return Ok(Arc::new(StructArray::from(inner)));
    }
    Ok(new_null_array(field.data_type(), 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::schema::ddl_to_schema;

    fn rows(ddl: &str, records: &[&str]) -> String {
        let schema = ddl_to_schema(ddl).unwrap();
        let records: Vec<&[u8]> = records.iter().map(|r| r.as_bytes()).collect();
        let batch = partial_rows(&schema, &records).unwrap();
        arrow::util::pretty::pretty_format_batches(&[batch]).unwrap().to_string()
    }

    /// What PySpark 4.3 makes of these records in PERMISSIVE mode (`spark.read.schema(…)
    /// .json(…)`, checked by hand on this machine): the fields that read keep their values.
    #[test]
    fn bad_records_keep_the_fields_that_read_as_in_spark() {
        let got = rows(
            "v STRING, e STRUCT<x: INT, y: INT>, l ARRAY<INT>, t TIMESTAMP, n BIGINT",
            &[
                r#"{"v":"a","e":{"x":"bad","y":1},"l":[1,"z",3],"t":"2026-01-02T03:04:05"}"#,
                r#"{"v":"b","e":{"x":2,"y":3},"l":[1,2],"t":"not a time"}"#,
                r#"{"v":"c","n":12345678901234567890}"#,
                r#"{"v":"d","n":1.5}"#,
                "[1,2]",
                r#"{"v":"Lyon","n":3"#,
                r#"{"v":"f","v":"São Paulo","n":"x"}"#,
            ],
        );
        // Spark: a, {NULL, 1}, NULL, 2026-01-02 03:04:05, NULL / b, {2, 3}, [1, 2], NULL, NULL /
        // c / d (`1.5` is no BIGINT) / all NULL for `[1,2]` and the cut record / the last `v`
        let want = "\
+-----------+--------------+--------+----------------------+---+
| v         | e            | l      | t                    | n |
+-----------+--------------+--------+----------------------+---+
| a         | {x: , y: 1}  |        | 2026-01-02T03:04:05Z |   |
| b         | {x: 2, y: 3} | [1, 2] |                      |   |
| c         |              |        |                      |   |
| d         |              |        |                      |   |
|           |              |        |                      |   |
|           |              |        |                      |   |
| São Paulo |              |        |                      |   |
+-----------+--------------+--------+----------------------+---+";
        assert_eq!(got, want);
    }

    /// A bad record's integer TIMESTAMP is seconds and its DATE text reads as Spark's
    /// (`2026` is 2026-01-01), as in a good record.
    #[test]
    fn times_in_a_bad_record_read_as_in_a_good_one() {
        let got =
            rows("t TIMESTAMP, d DATE, n INT", &[r#"{"t": 1767323045, "d": "2026", "n": "x"}"#]);
        assert!(got.contains("| 2026-01-02T03:04:05Z | 2026-01-01 |   |"), "{got}");
    }

    /// A STRING field takes an object's text; no records, no rows.
    #[test]
    fn spark_rules_apply_and_nothing_reads_nothing() {
        let got = rows("s STRING, i INT", &[r#"{"s":{"k": [1, 2]},"i":"7x"}"#]);
        assert!(got.contains(r#"| {"k": [1, 2]} |   |"#), "{got}");
        let schema = ddl_to_schema("s STRING").unwrap();
        assert_eq!(partial_rows(&schema, &[]).unwrap().num_rows(), 0);
    }
}
