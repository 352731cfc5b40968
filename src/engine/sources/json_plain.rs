//! A one-pass decoder for the common case of JSON lines: objects whose fields are BIGINT,
//! INT, DOUBLE, BOOLEAN, STRING, TIMESTAMP, DATE, or STRUCT and ARRAY of those (no TIMESTAMP
//! or DATE inside them), written the plain way (a number into a number field, text into a text
//! field, TIMESTAMP as `yyyy-MM-dd'T'HH:mm:ss[.S{1,6}][Z]`, DATE as Spark reads it).
//!
//! It writes the values straight into the columns, where arrow-json first builds a tape of
//! every token, then copies each value from the tape into the columns, and the TIMESTAMP text
//! is read into a column of its own before conversion. music_kafka on 1M messages: the JSON
//! decode fell from 34% to ~20% of the run's CPU samples, the run from 1.6 to 1.35 CPU-s.
//! It gives up — `None`, and the chunk goes to arrow-json and Spark's rules as before — on
//! anything else: invalid UTF-8 or JSON, an object or array in a field the schema does not
//! have, a field twice, a key with an escape, a string into a number field or the reverse, a
//! number out of range, a TIMESTAMP in another form. So what it accepts is exactly what the
//! other path accepts, read the same way (the unit tests compare them).

use std::sync::Arc;

use arrow::array::builder::NullBufferBuilder;
use arrow::array::{
    Array, ArrayRef, BinaryArray, BooleanArray, BooleanBufferBuilder, Date32Array, Float64Array,
    Int32Array, Int64Array, ListArray, RecordBatch, StringArray, StructArray,
    TimestampMicrosecondArray,
};
use arrow::buffer::{OffsetBuffer, ScalarBuffer};
use arrow::datatypes::{DataType, FieldRef, Fields, SchemaRef, TimeUnit};

use super::json_tokens::{Key, Parser};
use super::timestamps::{spark_date, utc_micros};

/// A decoder for one target schema; `None` from [`PlainDecoder::new`] when a field's type is
/// not one it reads.
pub struct PlainDecoder {
    target: SchemaRef,
}

impl PlainDecoder {
    pub fn new(target: &SchemaRef) -> Option<Self> {
        object_type(target.fields(), true).then(|| Self { target: target.clone() })
    }

    /// The records of `bytes` (JSON objects separated by whitespace) as one batch, or `None`
    /// when the chunk needs arrow-json and Spark's rules.
    pub fn decode(&self, bytes: &[u8]) -> Option<RecordBatch> {
        // arrow-json fails a chunk with invalid UTF-8 anywhere (in a string it keeps or not);
        // SIMD validation (music_kafka: 1.2% of samples with std's, 0.8%)
        simdutf8::basic::from_utf8(bytes).ok()?;
        let mut out = Object::new(self.target.fields(), bytes.len());
        let mut rows = 0;
        let mut p = Parser { b: bytes, i: 0 };
        loop {
            p.skip_ws();
            if p.i == p.b.len() {
                break;
            }
            p.expect(b'{')?;
            out.read(&mut p)?;
            rows += 1;
        }
        self.finish(out, rows)
    }

    /// One row per document (each exactly one object, no NULL documents), or `None`. Reading
    /// the documents where they are saves copying them into lines first.
    pub fn decode_documents(&self, docs: &BinaryArray) -> Option<RecordBatch> {
        if docs.null_count() > 0 {
            return None;
        }
        let offsets = docs.value_offsets();
        let (first, last) = (offsets[0] as usize, offsets[docs.len()] as usize);
        let all = &docs.value_data()[first..last];
        // whole: a document that is not valid UTF-8 on its own ends or starts outside an
        // object, which the grammar refuses anyway
        simdutf8::basic::from_utf8(all).ok()?;
        let mut out = Object::new(self.target.fields(), all.len());
        for doc in docs.iter().flatten() {
            let mut p = Parser { b: doc, i: 0 };
            p.skip_ws();
            p.expect(b'{')?;
            out.read(&mut p)?;
            p.skip_ws();
            if p.i != doc.len() {
                return None;
            }
        }
        self.finish(out, docs.len())
    }

    fn finish(&self, out: Object, rows: usize) -> Option<RecordBatch> {
        let columns = out.finish()?;
        let options = arrow::array::RecordBatchOptions::new().with_row_count(Some(rows));
        RecordBatch::try_new_with_options(self.target.clone(), columns, &options).ok()
    }
}

/// Whether the decoder reads objects of `fields` (up to 64, all nullable; TIMESTAMP at the top
/// only: arrow-json reads a nested one itself, after Spark's rules rewrote it).
fn object_type(fields: &Fields, top: bool) -> bool {
    !fields.is_empty()
        && fields.len() <= 64
        && fields.iter().all(|f| f.is_nullable() && value_type(f.data_type(), top))
}

fn value_type(t: &DataType, top: bool) -> bool {
    match t {
        DataType::Int64 | DataType::Int32 | DataType::Float64 | DataType::Boolean => true,
        DataType::Utf8 => true,
        DataType::Timestamp(TimeUnit::Microsecond, Some(tz)) => top && tz.as_ref() == "UTC",
        DataType::Date32 => top,
        DataType::Struct(fields) => object_type(fields, false),
        DataType::List(f) => f.is_nullable() && value_type(f.data_type(), false),
        _ => false,
    }
}

/// The fields of an object being read: their columns, and the order the last record wrote
/// its keys in (producers keep one order, so a key is usually compared once).
struct Object {
    fields: Fields,
    keys: Vec<Key>,
    cols: Vec<Column>,
    order: Vec<usize>,
}

impl Object {
    fn new(fields: &Fields, bytes: usize) -> Self {
        Self {
            fields: fields.clone(),
            keys: fields.iter().map(|f| Key::new(f.name().as_bytes())).collect(),
            cols: fields.iter().map(|f| Column::new(f.data_type(), bytes)).collect(),
            order: Vec::new(),
        }
    }

    /// The object after its `{` as one row of the columns.
    fn read(&mut self, p: &mut Parser<'_>) -> Option<()> {
        let mut seen: u64 = 0;
        let mut pos = 0;
        p.items(b'}', |p| {
            p.expect(b'"')?;
            let field = match self.order.get(pos) {
                Some(&f) if p.take_key(&self.keys[f]) => Some(f),
                _ => {
                    let key = p.plain_string()?;
                    self.keys.iter().position(|k| k.name() == key)
                }
            };
            p.skip_ws();
            p.expect(b':')?;
            p.skip_ws();
            pos += 1;
            let Some(f) = field else { return p.skip_scalar() };
            if seen & (1 << f) != 0 {
                return None;
            }
            seen |= 1 << f;
            match self.order.get_mut(pos - 1) {
                Some(o) => *o = f,
                None => self.order.push(f),
            }
            self.cols[f].read(p)
        })?;
        // a field the record does not have is NULL
        if seen.count_ones() as usize != self.cols.len() {
            for (f, col) in self.cols.iter_mut().enumerate() {
                if seen & (1 << f) == 0 {
                    col.push_null();
                }
            }
        }
        Some(())
    }

    fn push_null(&mut self) {
        self.cols.iter_mut().for_each(Column::push_null);
    }

    fn finish(self) -> Option<Vec<ArrayRef>> {
        self.cols.into_iter().map(Column::finish).collect()
    }
}

/// One column being built: its values, and which rows are NULL.
struct Column {
    values: Values,
    nulls: NullBufferBuilder,
}

enum Values {
    Int64(Vec<i64>),
    Int32(Vec<i32>),
    Float64(Vec<f64>),
    Boolean(BooleanBufferBuilder),
    Utf8 {
        offsets: Vec<i32>,
        bytes: Vec<u8>,
    },
    /// Microseconds in UTC, read from text by [`utc_micros`].
    Timestamp(Vec<i64>),
    /// Days since 1970, read from text by [`spark_date`].
    Date(Vec<i32>),
    Struct(Box<Object>),
    List {
        field: FieldRef,
        offsets: Vec<i32>,
        items: Box<Column>,
    },
}

impl Column {
    /// An empty column of type `t` (one of [`value_type`]'s), sized for `bytes` of input.
    fn new(t: &DataType, bytes: usize) -> Self {
        // a guess that spares most regrowth (records of the demo's size: 160-260 bytes)
        let rows = bytes / 64 + 16;
        let values = match t {
            DataType::Int64 => Values::Int64(Vec::with_capacity(rows)),
            DataType::Int32 => Values::Int32(Vec::with_capacity(rows)),
            DataType::Float64 => Values::Float64(Vec::with_capacity(rows)),
            DataType::Boolean => Values::Boolean(BooleanBufferBuilder::new(rows)),
            DataType::Utf8 => {
                let mut offsets = Vec::with_capacity(rows + 1);
                offsets.push(0);
                Values::Utf8 { offsets, bytes: Vec::with_capacity(bytes / 8) }
            }
            DataType::Struct(fields) => Values::Struct(Box::new(Object::new(fields, bytes))),
            DataType::List(field) => {
                let mut offsets = Vec::with_capacity(rows + 1);
                offsets.push(0);
                let items = Box::new(Column::new(field.data_type(), bytes));
                Values::List { field: field.clone(), offsets, items }
            }
            DataType::Date32 => Values::Date(Vec::with_capacity(rows)),
            _ => Values::Timestamp(Vec::with_capacity(rows)),
        };
        Self { values, nulls: NullBufferBuilder::new(rows) }
    }

    fn push_null(&mut self) {
        match &mut self.values {
            Values::Int64(v) | Values::Timestamp(v) => v.push(0),
            Values::Int32(v) | Values::Date(v) => v.push(0),
            Values::Float64(v) => v.push(0.0),
            Values::Boolean(b) => b.append(false),
            Values::Utf8 { offsets, bytes } => offsets.push(bytes.len() as i32),
            // as arrow-json: the fields of a NULL struct are NULL
            Values::Struct(object) => object.push_null(),
            Values::List { offsets, .. } => offsets.push(offsets[offsets.len() - 1]),
        }
        self.nulls.append_null();
    }

    /// The value at the cursor as the column's next row.
    fn read(&mut self, p: &mut Parser<'_>) -> Option<()> {
        if p.peek()? == b'n' {
            p.literal()?.is_none().then_some(())?;
            self.push_null();
            return Some(());
        }
        match &mut self.values {
            Values::Int64(v) => v.push(p.integer()?),
            Values::Int32(v) => v.push(i32::try_from(p.integer()?).ok()?),
            Values::Float64(v) => {
                let x = std::str::from_utf8(p.number_text()?).ok()?.parse::<f64>().ok()?;
                v.push(x.is_finite().then_some(x)?);
            }
            Values::Boolean(b) => b.append(p.literal()??),
            Values::Utf8 { offsets, bytes } => {
                p.expect(b'"')?;
                p.string_into(Some(bytes))?;
                offsets.push(i32::try_from(bytes.len()).ok()?);
            }
            Values::Timestamp(v) => {
                p.expect(b'"')?;
                v.push(utc_micros(p.plain_string()?)?);
            }
            Values::Date(v) => {
                p.expect(b'"')?;
                v.push(spark_date(std::str::from_utf8(p.plain_string()?).ok()?)?);
            }
            Values::Struct(object) => {
                p.expect(b'{')?;
                object.read(p)?;
            }
            Values::List { offsets, items, .. } => {
                p.expect(b'[')?;
                let mut n = 0;
                p.items(b']', |p| {
                    n += 1;
                    items.read(p)
                })?;
                offsets.push(offsets[offsets.len() - 1].checked_add(n)?);
            }
        }
        self.nulls.append_non_null();
        Some(())
    }

    fn finish(mut self) -> Option<ArrayRef> {
        let nulls = self.nulls.finish();
        Some(match self.values {
            Values::Int64(v) => Arc::new(Int64Array::new(v.into(), nulls)),
            Values::Int32(v) => Arc::new(Int32Array::new(v.into(), nulls)),
            Values::Float64(v) => Arc::new(Float64Array::new(v.into(), nulls)),
            Values::Boolean(mut b) => Arc::new(BooleanArray::new(b.finish(), nulls)),
            Values::Utf8 { offsets, bytes } => {
                let offsets = OffsetBuffer::new(ScalarBuffer::from(offsets));
                Arc::new(StringArray::try_new(offsets, bytes.into(), nulls).ok()?)
            }
            Values::Timestamp(v) => {
                Arc::new(TimestampMicrosecondArray::new(v.into(), nulls).with_timezone("UTC"))
            }
            Values::Date(v) => Arc::new(Date32Array::new(v.into(), nulls)),
            Values::Struct(object) => {
                let fields = object.fields.clone();
                Arc::new(StructArray::try_new(fields, object.finish()?, nulls).ok()?)
            }
            Values::List { field, offsets, items } => {
                let offsets = OffsetBuffer::new(ScalarBuffer::from(offsets));
                Arc::new(ListArray::try_new(field, offsets, items.finish()?, nulls).ok()?)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::schema::ddl_to_schema;
    use crate::engine::sources::json_lines::rows_without_plain;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    const DDL: &str = "id BIGINT, n INT, x DOUBLE, ok BOOLEAN, name STRING, at TIMESTAMP, \
        job STRUCT<title: STRING, skills: ARRAY<STRING>, level STRUCT<n: INT>>, xs ARRAY<BIGINT>";

    fn decoder() -> (SchemaRef, PlainDecoder) {
        let schema = Arc::new(ddl_to_schema(DDL).unwrap());
        let plain = PlainDecoder::new(&schema).unwrap();
        (schema, plain)
    }

    /// A top-level DATE reads as Spark's (`timestamps::spark_date`) on both paths; text of
    /// digits alone (days in Spark's JSON reader) is left to the other path.
    #[test]
    fn dates_read_the_same_on_both_paths() {
        let schema = Arc::new(ddl_to_schema("k BIGINT, d DATE").unwrap());
        let plain = PlainDecoder::new(&schema).unwrap();
        let text = "{\"k\":1,\"d\":\"2026\"}\n{\"k\":2,\"d\":\"2026-1-2\"}\n\
            {\"k\":3,\"d\":\"2026-01-02 junk\"}\n{\"k\":4,\"d\":null}\n{\"k\":5}\n";
        let ours = plain.decode(text.as_bytes()).unwrap();
        assert_eq!(Some(ours.clone()), rows_without_plain(&schema, text.as_bytes()).unwrap());
        let days = ours.column(1).as_any().downcast_ref::<Date32Array>().unwrap();
        assert_eq!(days.value(0), 20454); // 2026-01-01
        assert_eq!(days.value(2), 20455);
        assert!(plain.decode(b"{\"k\":1,\"d\":\"20260102\"}").is_none());
    }

    /// What the one-pass decoder accepts, it reads as arrow-json and Spark's rules do.
    fn assert_same(text: &str) {
        let (schema, plain) = decoder();
        let ours = plain.decode(text.as_bytes()).unwrap_or_else(|| panic!("gave up on {text}"));
        let theirs = rows_without_plain(&schema, text.as_bytes()).unwrap();
        match theirs {
            Some(theirs) => assert_eq!(ours, theirs, "{text}"),
            None => assert_eq!(ours.num_rows(), 0, "{text}"),
        }
    }

    #[test]
    fn plain_records_read_as_arrow_json_reads_them() {
        let cases = [
            r#"{"id": 1, "n": 2, "x": 0.5, "ok": true, "name": "a", "at": "2026-01-02T03:04:05Z"}"#,
            // any key order, missing fields, nulls, an empty object, blank lines
            "{\"name\":\"b\",\"id\":-9223372036854775808}\n\n{}\n{\"n\":null,\"ok\":false}\n",
            r#"{"id": 9223372036854775807, "n": -2147483648, "x": -1.25e-3, "at": "2024-02-29 23:59:59.123456"}"#,
            r#"{"x": 5, "at": "1970-01-01T00:00:00.1", "ok": null, "name": null}"#,
            // escapes, non-ASCII text, a pair of surrogates
            r#"{"name": "q\"uote\\back\/slash\b\f\n\r\t \u00e9\u6771 \ud83d\ude00 Ünïcødé 東京"}"#,
            // fields the schema does not have are skipped
            r#"{"extra": "x\"}", "id": 3, "more": -1.5e7, "t": true, "f": false, "z": null}"#,
            "  \t{ \"id\" : 7 ,\r\n \"name\" : \"\" }  \n{\"id\":8}{\"id\":9}",
            // nested: structs and arrays, NULL and empty ones, NULL items, missing fields
            r#"{"job": {"title": "Data Engineer", "skills": ["Spark", "Kafka"], "level": {"n": 3}}}"#,
            r#"{"job": {"skills": [], "level": null, "extra": 1}, "xs": [1, null, -3]}"#,
            r#"{"job": null, "xs": []}"#,
            "{\"job\": {}, \"xs\": null}\n{\"job\": { \"skills\" : [ null , \"ü\" ] }, \"xs\": [ 7 ]}",
            // a key where the last record had another (keys are predicted from its order): a
            // longer key that starts with the predicted one, a shorter one, one that is not a field
            "{\"n\":1,\"name\":\"a\"}\n{\"name\":\"b\",\"n\":2}\n{\"nam\":0,\"n\":3}\n{\"n\":4,\"na\":5}",
            "",
        ];
        for c in cases {
            assert_same(c);
        }
    }

    #[test]
    fn generated_records_read_as_arrow_json_reads_them() {
        let mut rng = StdRng::seed_from_u64(7);
        let mut text = String::new();
        for i in 0..5_000 {
            let mut fields = vec![
                format!("\"id\": {}", rng.random::<i64>()),
                format!("\"n\": {}", rng.random::<i32>()),
                format!("\"x\": {:e}", rng.random::<f64>() * 1e6 - 5e5),
                format!("\"ok\": {}", rng.random::<bool>()),
                format!(
                    "\"name\": {}",
                    serde_json::json!(format!("näme {i} \"{}\"", rng.random::<u16>()))
                ),
                format!(
                    "\"at\": \"20{:02}-0{}-1{}T0{}:3{}:0{}.{}Z\"",
                    rng.random_range(0..99),
                    rng.random_range(1..10),
                    rng.random_range(0..10),
                    rng.random_range(0..10),
                    rng.random_range(0..10),
                    rng.random_range(0..10),
                    rng.random_range(0..1_000_000)
                ),
                "\"other\": \"x\"".to_owned(),
                format!(
                    "\"job\": {{\"skills\": {}, \"title\": \"t{i}\"}}",
                    serde_json::json!(vec!["s"; rng.random_range(0..4)])
                ),
                format!("\"xs\": {}", serde_json::json!(vec![i; rng.random_range(0..3)])),
            ];
            // drop one, shuffle some: producers differ
            fields.swap_remove(rng.random_range(0..fields.len()));
            let k = rng.random_range(0..fields.len());
            fields.swap(0, k);
            text.push_str(&format!("{{{}}}\n", fields.join(", ")));
        }
        assert_same(&text);
        // the demo's music events, as Kafka values
        let schema = Arc::new(ddl_to_schema(crate::engine::demo_data::MUSIC_DDL).unwrap());
        let events: Vec<String> =
            (0..2_000).map(|n| crate::engine::demo_data::music_event_json(&mut rng, n)).collect();
        let docs = BinaryArray::from_iter_values(events.iter().map(String::as_bytes));
        let ours = PlainDecoder::new(&schema).unwrap().decode_documents(&docs).unwrap();
        assert_eq!(ours.num_rows(), 2_000);
        assert_eq!(Some(ours), rows_without_plain(&schema, events.join("\n").as_bytes()).unwrap());
        // the demo's users, as the landing files hold them
        let schema = Arc::new(ddl_to_schema(crate::engine::demo_data::USERS_DDL).unwrap());
        let users: Vec<String> = (0..2_000)
            .map(|n| {
                let user = crate::engine::demo_data::random_user(&mut rng, n);
                serde_json::to_string(&user).unwrap()
            })
            .collect();
        let lines = users.join("\n");
        let ours = PlainDecoder::new(&schema).unwrap().decode(lines.as_bytes()).unwrap();
        assert_eq!(ours.num_rows(), 2_000);
        assert_eq!(Some(ours), rows_without_plain(&schema, lines.as_bytes()).unwrap());
    }

    /// Documents (Kafka values) are read where they are, one row each, as their lines are.
    #[test]
    fn documents_read_as_their_lines() {
        let (schema, plain) = decoder();
        let docs = [
            r#"{"id": 1, "name": "Zoë"}"#,
            "\n { \"at\": \"2026-01-02 03:04:05\",\r\n \"x\": 2.5 } \t",
            "{}",
            r#"{"ok": true, "n": 3}"#,
        ];
        let array = BinaryArray::from_iter_values(docs.iter().map(|d| d.as_bytes()));
        let ours = plain.decode_documents(&array).unwrap();
        let lines = docs.map(|d| d.replace(['\n', '\r'], " ")).join("\n");
        assert_eq!(Some(ours), rows_without_plain(&schema, lines.as_bytes()).unwrap());
        // a document that is not exactly one object, a NULL document
        for bad in [&[r#"{"id": 1} {"id": 2}"#][..], &[r#"{"id": 1} x"#], &["  "]] {
            let array = BinaryArray::from_iter_values(bad.iter().map(|d| d.as_bytes()));
            assert!(plain.decode_documents(&array).is_none(), "{bad:?}");
        }
        let with_null = BinaryArray::from(vec![Some(&b"{}"[..]), None]);
        assert!(plain.decode_documents(&with_null).is_none());
    }

    #[test]
    fn anything_else_goes_to_arrow_json_and_sparks_rules() {
        let (_, plain) = decoder();
        let cases: &[&[u8]] = &[
            br#"{"id": "1"}"#,                         // text into BIGINT
            br#"{"name": 1}"#,        // a number into STRING (Spark keeps its text)
            br#"{"name": {"a": 1}}"#, // an object into STRING
            br#"{"extra": [1, 2], "id": 1}"#, // a nested value in a field it skips
            br#"{"id": 1, "id": 2}"#, // a field twice
            br#"{"id": 9223372036854775808}"#, // out of range
            br#"{"n": 2147483648}"#,  // out of INT's range
            br#"{"id": 1.0}"#,        // a fraction into BIGINT
            br#"{"id": 01}"#,         // not JSON
            br#"{"x": 1e400}"#,       // not finite
            br#"{"name": "\ud83d"}"#, // a lone surrogate
            b"{\"name\": \"tab\there\"}", // a control character
            b"{\"name\": \"\xff\"}",  // not UTF-8
            br#"{"at": "2026-01-02T03:04:05+02:00"}"#, // another TIMESTAMP form
            br#"{"at": 1700000000}"#, // epoch seconds
            br#"{"at": "2026-02-30T00:00:00"}"#, // no such day
            br#"{"id": 1"#,           // truncated
            br#"{"id": 1,}"#,         // a trailing comma
            br#"{"i\u0064": 1}"#,     // an escaped key
            b"{\"id\": 1}\n{\"i\\u0064\": 2}", // one where the last record's order predicts `id`
            b"{\"id\": 1}\n{\"id",    // a key cut short where one is predicted
            b"null",                  // not an object
            br#"{"ok": "true"}"#,     // text into BOOLEAN
            br#"{"id": nul}"#,
            br#"{"job": "engineer"}"#,          // text into a STRUCT
            br#"{"job": {"skills": "Spark"}}"#, // text into an ARRAY
            br#"{"xs": [1, "2"]}"#,             // text into an ARRAY<BIGINT>
            br#"{"xs": [1,]}"#,                 // not JSON
            br#"{"job": {"title": "a", "title": "b"}}"#, // a nested field twice
            br#"{"job": {"other": {"a": 1}}}"#, // a nested value in a nested field it skips
        ];
        for c in cases {
            assert!(plain.decode(c).is_none(), "{}", String::from_utf8_lossy(c));
        }
        // types the decoder does not read (a TIMESTAMP in a STRUCT: Spark's rules rewrite it)
        for ddl in
            ["a STRUCT<t: TIMESTAMP>", "m MAP<STRING, INT>", "d DECIMAL(10,2)", "a STRUCT<d: DATE>"]
        {
            let schema = Arc::new(ddl_to_schema(ddl).unwrap());
            assert!(PlainDecoder::new(&schema).is_none(), "{ddl}");
        }
    }
}
