//! Generator source: synthetic demo users at a steady rate (like Spark's `rate` source).
//!
//! Row `n` depends only on the seed and `n`, so any offset range can be generated again: the
//! source is replayable, as exactly-once needs. Columns are built as Arrow arrays directly.

use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, ListBuilder, RecordBatch, StringBuilder, StructArray};
use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef};
use rand::SeedableRng;
use rand::rngs::StdRng;

use super::super::Result;
use super::super::demo_data::{random_user, user_id};

pub fn schema() -> SchemaRef {
    let skills = DataType::List(Arc::new(Field::new("element", DataType::Utf8, true)));
    Arc::new(Schema::new(vec![
        Field::new("uuid", DataType::Utf8, true),
        Field::new("id", DataType::Int64, true),
        Field::new("first_name", DataType::Utf8, true),
        Field::new("last_name", DataType::Utf8, true),
        Field::new("date_of_birth", DataType::Utf8, true),
        Field::new("gender", DataType::Utf8, true),
        Field::new("email", DataType::Utf8, true),
        Field::new(
            "employment",
            DataType::Struct(Fields::from(vec![
                Field::new("title", DataType::Utf8, true),
                Field::new("keySkills", skills, true),
            ])),
            true,
        ),
    ]))
}

/// Rows `start..end` as batches of at most `batch_rows`.
pub fn generate(seed: u64, start: u64, end: u64, batch_rows: usize) -> Result<Vec<RecordBatch>> {
    let mut out = Vec::new();
    let mut n = start;
    while n < end {
        let stop = end.min(n + batch_rows as u64);
        out.push(generate_batch(seed, n, stop)?);
        n = stop;
    }
    Ok(out)
}

fn generate_batch(seed: u64, start: u64, end: u64) -> Result<RecordBatch> {
    let schema = schema();
    let mut uuid = StringBuilder::new();
    let mut ids = Vec::with_capacity((end - start) as usize);
    let mut first = StringBuilder::new();
    let mut last = StringBuilder::new();
    let mut dob = StringBuilder::new();
    let mut gender = StringBuilder::new();
    let mut email = StringBuilder::new();
    let mut title = StringBuilder::new();
    let mut skills = ListBuilder::new(StringBuilder::new()).with_field(Arc::new(Field::new(
        "element",
        DataType::Utf8,
        true,
    )));
    for n in start..end {
        let mut rng = StdRng::seed_from_u64(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ n);
        let u = random_user(&mut rng, n);
        debug_assert_eq!(u.id, user_id(n));
        uuid.append_value(&u.uuid);
        ids.push(u.id);
        first.append_value(u.first_name);
        last.append_value(u.last_name);
        dob.append_value(&u.date_of_birth);
        gender.append_value(u.gender);
        email.append_value(&u.email);
        title.append_value(u.employment.title);
        for s in &u.employment.key_skills {
            skills.values().append_value(s);
        }
        skills.append(true);
    }
    let DataType::Struct(emp_fields) = schema.field(7).data_type().clone() else {
        unreachable!("employment is a struct")
    };
    let skills: ArrayRef = Arc::new(skills.finish());
    let employment = StructArray::try_new(
        emp_fields.clone(),
        vec![Arc::new(title.finish()) as ArrayRef, skills],
        None,
    )?;
    Ok(RecordBatch::try_new(
        schema,
        vec![
            Arc::new(uuid.finish()),
            Arc::new(Int64Array::from(ids)),
            Arc::new(first.finish()),
            Arc::new(last.finish()),
            Arc::new(dob.finish()),
            Arc::new(gender.finish()),
            Arc::new(email.finish()),
            Arc::new(employment),
        ],
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_replayable() {
        let a = generate(7, 0, 100, 30).unwrap();
        assert_eq!(a.iter().map(RecordBatch::num_rows).collect::<Vec<_>>(), [30, 30, 30, 10]);
        let b = generate(7, 60, 70, 100).unwrap();
        assert_eq!(b[0], a[2].slice(0, 10));
    }
}
