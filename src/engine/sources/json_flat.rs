//! A one-pass decoder for the common case of JSON lines: flat objects whose fields are
//! BIGINT, INT, DOUBLE, BOOLEAN, STRING or TIMESTAMP, written the plain way (a number into a
//! number field, text into a text field, TIMESTAMP as `yyyy-MM-dd'T'HH:mm:ss[.S{1,6}][Z]`).
//!
//! It writes the values straight into the columns, where arrow-json first builds a tape of
//! every token, then copies each value from the tape into the columns, and the TIMESTAMP text
//! is read into a column of its own before conversion. music_kafka on 1M messages: the JSON
//! decode fell from 34% to ~20% of the run's CPU samples, the run from 1.6 to 1.35 CPU-s.
//! It gives up — `None`, and the chunk goes to arrow-json and Spark's rules as before — on anything else: invalid UTF-8 or
//! JSON, a nested value, a field twice, a key with an escape, a string into a number field
//! or the reverse, a number out of range, a TIMESTAMP in another form. So what it accepts is
//! exactly what the other path accepts, read the same way (a unit test compares them).

use std::sync::Arc;

use arrow::array::builder::NullBufferBuilder;
use arrow::array::{
    Array, ArrayRef, BinaryArray, BooleanArray, BooleanBufferBuilder, Float64Array, Int32Array,
    Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use arrow::buffer::{NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow::datatypes::{DataType, SchemaRef, TimeUnit};

use super::timestamps::utc_micros;

/// One column being built.
enum Column {
    Int64(Vec<i64>),
    Int32(Vec<i32>),
    Float64(Vec<f64>),
    Boolean(BooleanBufferBuilder),
    Utf8 {
        offsets: Vec<i32>,
        values: Vec<u8>,
    },
    /// Microseconds in UTC, read from text by [`utc_micros`].
    Timestamp(Vec<i64>),
}

/// A decoder for one target schema; `None` from [`FlatDecoder::new`] when a field's type is
/// not one it reads.
pub struct FlatDecoder {
    target: SchemaRef,
    names: Vec<Vec<u8>>,
}

impl FlatDecoder {
    pub fn new(target: &SchemaRef) -> Option<Self> {
        if target.fields().is_empty() || target.fields().len() > 64 {
            return None;
        }
        for f in target.fields() {
            match f.data_type() {
                DataType::Int64 | DataType::Int32 | DataType::Float64 | DataType::Boolean => {}
                DataType::Utf8 => {}
                DataType::Timestamp(TimeUnit::Microsecond, Some(tz)) if tz.as_ref() == "UTC" => {}
                _ => return None,
            }
            if !f.is_nullable() {
                return None;
            }
        }
        let names = target.fields().iter().map(|f| f.name().as_bytes().to_vec()).collect();
        Some(Self { target: target.clone(), names })
    }

    /// The records of `bytes` (JSON objects separated by whitespace) as one batch, or `None`
    /// when the chunk needs arrow-json and Spark's rules.
    pub fn decode(&self, bytes: &[u8]) -> Option<RecordBatch> {
        // arrow-json fails a chunk with invalid UTF-8 anywhere (in a string it keeps or not)
        std::str::from_utf8(bytes).ok()?;
        let mut out = Columns::new(&self.target, bytes.len());
        let mut p = Parser { b: bytes, i: 0 };
        loop {
            p.skip_ws();
            if p.i == p.b.len() {
                break;
            }
            self.record(&mut p, &mut out)?;
        }
        out.finish(&self.target)
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
        // object, which the grammar below refuses anyway
        std::str::from_utf8(all).ok()?;
        let mut out = Columns::new(&self.target, all.len());
        for doc in docs.iter().flatten() {
            let mut p = Parser { b: doc, i: 0 };
            p.skip_ws();
            self.record(&mut p, &mut out)?;
            p.skip_ws();
            if p.i != doc.len() {
                return None;
            }
        }
        out.finish(&self.target)
    }

    /// The object at the cursor as a row of `out`.
    fn record(&self, p: &mut Parser<'_>, out: &mut Columns) -> Option<()> {
        let Columns { cols, nulls, order, rows } = out;
        p.expect(b'{')?;
        let mut seen: u64 = 0;
        p.skip_ws();
        if p.peek()? == b'}' {
            p.i += 1;
        } else {
            let mut pos = 0;
            loop {
                p.expect(b'"')?;
                let key = p.plain_key()?;
                let field = match order.get(pos) {
                    Some(&f) if self.names[f] == key => Some(f),
                    _ => self.names.iter().position(|n| n == key),
                };
                p.skip_ws();
                p.expect(b':')?;
                p.skip_ws();
                match field {
                    None => p.skip_scalar()?,
                    Some(f) => {
                        if seen & (1 << f) != 0 {
                            return None;
                        }
                        seen |= 1 << f;
                        if pos < order.len() {
                            order[pos] = f;
                        } else {
                            order.push(f);
                        }
                        let is_null = p.value(&mut cols[f])?;
                        nulls[f].append(!is_null);
                    }
                }
                pos += 1;
                p.skip_ws();
                match p.next()? {
                    b',' => p.skip_ws(),
                    b'}' => break,
                    _ => return None,
                }
            }
        }
        // a field the record does not have is NULL
        if seen.count_ones() as usize != cols.len() {
            for (f, col) in cols.iter_mut().enumerate() {
                if seen & (1 << f) == 0 {
                    col.push_null();
                    nulls[f].append_null();
                }
            }
        }
        *rows += 1;
        Some(())
    }
}

/// The columns being built, and what the records so far taught.
struct Columns {
    cols: Vec<Column>,
    nulls: Vec<NullBufferBuilder>,
    /// The field seen at each position of the record before: producers write their keys in
    /// one order, so a key is usually compared once.
    order: Vec<usize>,
    rows: usize,
}

impl Columns {
    fn new(target: &SchemaRef, bytes: usize) -> Self {
        // a guess that spares most regrowth (records of the demo's size: ~160 bytes)
        let rows = bytes / 64 + 16;
        let cols: Vec<Column> = (target.fields().iter())
            .map(|f| match f.data_type() {
                DataType::Int64 => Column::Int64(Vec::with_capacity(rows)),
                DataType::Int32 => Column::Int32(Vec::with_capacity(rows)),
                DataType::Float64 => Column::Float64(Vec::with_capacity(rows)),
                DataType::Boolean => Column::Boolean(BooleanBufferBuilder::new(rows)),
                DataType::Utf8 => {
                    let mut offsets = Vec::with_capacity(rows + 1);
                    offsets.push(0);
                    Column::Utf8 { offsets, values: Vec::with_capacity(bytes / 8) }
                }
                _ => Column::Timestamp(Vec::with_capacity(rows)),
            })
            .collect();
        let nulls = cols.iter().map(|_| NullBufferBuilder::new(rows)).collect();
        Self { cols, nulls, order: Vec::new(), rows: 0 }
    }

    fn finish(mut self, target: &SchemaRef) -> Option<RecordBatch> {
        let arrays = (self.cols.into_iter().zip(self.nulls.iter_mut()))
            .map(|(c, n)| c.finish(n.finish()))
            .collect::<Option<Vec<ArrayRef>>>()?;
        let options = arrow::array::RecordBatchOptions::new().with_row_count(Some(self.rows));
        RecordBatch::try_new_with_options(target.clone(), arrays, &options).ok()
    }
}

impl Column {
    fn push_null(&mut self) {
        match self {
            Column::Int64(v) | Column::Timestamp(v) => v.push(0),
            Column::Int32(v) => v.push(0),
            Column::Float64(v) => v.push(0.0),
            Column::Boolean(b) => b.append(false),
            Column::Utf8 { offsets, values } => offsets.push(values.len() as i32),
        }
    }

    fn finish(self, nulls: Option<NullBuffer>) -> Option<ArrayRef> {
        Some(match self {
            Column::Int64(v) => Arc::new(Int64Array::new(v.into(), nulls)),
            Column::Int32(v) => Arc::new(Int32Array::new(v.into(), nulls)),
            Column::Float64(v) => Arc::new(Float64Array::new(v.into(), nulls)),
            Column::Boolean(mut b) => Arc::new(BooleanArray::new(b.finish(), nulls)),
            Column::Utf8 { offsets, values } => {
                let offsets = OffsetBuffer::new(ScalarBuffer::from(offsets));
                Arc::new(StringArray::try_new(offsets, values.into(), nulls).ok()?)
            }
            Column::Timestamp(v) => {
                Arc::new(TimestampMicrosecondArray::new(v.into(), nulls).with_timezone("UTC"))
            }
        })
    }
}

/// A cursor over the chunk; every method returns `None` on what it does not accept.
struct Parser<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }

    fn expect(&mut self, c: u8) -> Option<()> {
        (self.next()? == c).then_some(())
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.b.get(self.i) {
            self.i += 1;
        }
    }

    /// The bytes of a string without escapes or control characters, after its opening quote;
    /// the cursor ends past the closing quote.
    fn plain_key(&mut self) -> Option<&'a [u8]> {
        let rest = &self.b[self.i..];
        let end = memchr::memchr2(b'"', b'\\', rest)?;
        if rest[end] != b'"' || rest[..end].iter().any(|&c| c < 0x20) {
            return None;
        }
        self.i += end + 1;
        Some(&rest[..end])
    }

    /// A string's text (escapes decoded) appended to `out`, after its opening quote.
    fn string_into(&mut self, out: &mut Vec<u8>) -> Option<()> {
        loop {
            let rest = &self.b[self.i..];
            let end = memchr::memchr2(b'"', b'\\', rest)?;
            let plain = &rest[..end];
            if plain.iter().any(|&c| c < 0x20) {
                return None;
            }
            out.extend_from_slice(plain);
            self.i += end + 1;
            if rest[end] == b'"' {
                return Some(());
            }
            let c = match self.next()? {
                b'"' => '"',
                b'\\' => '\\',
                b'/' => '/',
                b'b' => '\u{8}',
                b'f' => '\u{c}',
                b'n' => '\n',
                b'r' => '\r',
                b't' => '\t',
                b'u' => {
                    let hi = self.hex4()?;
                    let code = if (0xD800..0xDC00).contains(&hi) {
                        // a surrogate pair; a lone half goes to the other path
                        (self.next()? == b'\\' && self.next()? == b'u').then_some(())?;
                        let lo = self.hex4()?;
                        if !(0xDC00..0xE000).contains(&lo) {
                            return None;
                        }
                        0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                    } else {
                        hi
                    };
                    char::from_u32(code)?
                }
                _ => return None,
            };
            let mut utf8 = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
        }
    }

    fn hex4(&mut self) -> Option<u32> {
        let digits = self.b.get(self.i..self.i + 4)?;
        self.i += 4;
        digits.iter().try_fold(0u32, |acc, &d| Some(acc * 16 + (d as char).to_digit(16)?))
    }

    /// `-?(0|[1-9][0-9]*)`, as text; the cursor ends after it.
    fn integer_text(&mut self) -> Option<&'a [u8]> {
        let start = self.i;
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        let digits = self.b[self.i..].iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 || (digits > 1 && self.b[self.i] == b'0') {
            return None;
        }
        self.i += digits;
        Some(&self.b[start..self.i])
    }

    /// A JSON number's text (integer, fraction, exponent); the cursor ends after it.
    fn number_text(&mut self) -> Option<&'a [u8]> {
        let start = self.i;
        self.integer_text()?;
        if self.peek() == Some(b'.') {
            self.i += 1;
            let digits = self.b[self.i..].iter().take_while(|c| c.is_ascii_digit()).count();
            if digits == 0 {
                return None;
            }
            self.i += digits;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.i += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.i += 1;
            }
            let digits = self.b[self.i..].iter().take_while(|c| c.is_ascii_digit()).count();
            if digits == 0 {
                return None;
            }
            self.i += digits;
        }
        Some(&self.b[start..self.i])
    }

    /// `null`, `true` or `false`, if the cursor is at one of them.
    fn literal(&mut self) -> Option<Option<bool>> {
        let rest = &self.b[self.i..];
        let (value, len) = if rest.starts_with(b"null") {
            (None, 4)
        } else if rest.starts_with(b"true") {
            (Some(true), 4)
        } else if rest.starts_with(b"false") {
            (Some(false), 5)
        } else {
            return None;
        };
        self.i += len;
        Some(value)
    }

    /// A value of a field the schema does not have: a string, number or literal (nested
    /// values go to the other path).
    fn skip_scalar(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' => {
                self.i += 1;
                self.string_into(&mut Vec::new())
            }
            b'-' | b'0'..=b'9' => self.number_text().map(|_| ()),
            _ => self.literal().map(|_| ()),
        }
    }

    /// The value at the cursor appended to `col`; `Some(true)` when it was `null`.
    fn value(&mut self, col: &mut Column) -> Option<bool> {
        if self.peek()? == b'n' {
            self.literal()?.is_none().then_some(())?;
            col.push_null();
            return Some(true);
        }
        match col {
            Column::Int64(v) => v.push(parse_int(self.integer_text()?)?),
            Column::Int32(v) => v.push(i32::try_from(parse_int(self.integer_text()?)?).ok()?),
            Column::Float64(v) => {
                let text = self.number_text()?;
                let x = std::str::from_utf8(text).ok()?.parse::<f64>().ok()?;
                v.push(x.is_finite().then_some(x)?);
            }
            Column::Boolean(b) => b.append(self.literal()??),
            Column::Utf8 { offsets, values } => {
                self.expect(b'"')?;
                self.string_into(values)?;
                offsets.push(i32::try_from(values.len()).ok()?);
            }
            Column::Timestamp(v) => {
                self.expect(b'"')?;
                let text = self.plain_key()?;
                v.push(utc_micros(text)?);
            }
        }
        Some(false)
    }
}

/// An integer's text as i64 (`None` out of range).
fn parse_int(text: &[u8]) -> Option<i64> {
    let (negative, digits) = match text.split_first() {
        Some((b'-', d)) => (true, d),
        _ => (false, text),
    };
    let mut n: i64 = 0;
    for &d in digits {
        let d = i64::from(d - b'0');
        n = n.checked_mul(10)?;
        n = if negative { n.checked_sub(d)? } else { n.checked_add(d)? };
    }
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::schema::ddl_to_schema;
    use crate::engine::sources::json_lines::rows_without_flat;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    const DDL: &str = "id BIGINT, n INT, x DOUBLE, ok BOOLEAN, name STRING, at TIMESTAMP";

    fn decoder() -> (SchemaRef, FlatDecoder) {
        let schema = Arc::new(ddl_to_schema(DDL).unwrap());
        let flat = FlatDecoder::new(&schema).unwrap();
        (schema, flat)
    }

    /// What the one-pass decoder accepts, it reads as arrow-json and Spark's rules do.
    fn assert_same(text: &str) {
        let (schema, flat) = decoder();
        let ours = flat.decode(text.as_bytes()).unwrap_or_else(|| panic!("gave up on {text}"));
        let theirs = rows_without_flat(&schema, text.as_bytes()).unwrap();
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
        let ours = FlatDecoder::new(&schema).unwrap().decode_documents(&docs).unwrap();
        assert_eq!(ours.num_rows(), 2_000);
        assert_eq!(Some(ours), rows_without_flat(&schema, events.join("\n").as_bytes()).unwrap());
    }

    /// Documents (Kafka values) are read where they are, one row each, as their lines are.
    #[test]
    fn documents_read_as_their_lines() {
        let (schema, flat) = decoder();
        let docs = [
            r#"{"id": 1, "name": "Zoë"}"#,
            "\n { \"at\": \"2026-01-02 03:04:05\",\r\n \"x\": 2.5 } \t",
            "{}",
            r#"{"ok": true, "n": 3}"#,
        ];
        let array = BinaryArray::from_iter_values(docs.iter().map(|d| d.as_bytes()));
        let ours = flat.decode_documents(&array).unwrap();
        let lines = docs.map(|d| d.replace(['\n', '\r'], " ")).join("\n");
        assert_eq!(Some(ours), rows_without_flat(&schema, lines.as_bytes()).unwrap());
        // a document that is not exactly one object, a NULL document
        for bad in [&[r#"{"id": 1} {"id": 2}"#][..], &[r#"{"id": 1} x"#], &["  "]] {
            let array = BinaryArray::from_iter_values(bad.iter().map(|d| d.as_bytes()));
            assert!(flat.decode_documents(&array).is_none(), "{bad:?}");
        }
        let with_null = BinaryArray::from(vec![Some(&b"{}"[..]), None]);
        assert!(flat.decode_documents(&with_null).is_none());
    }

    #[test]
    fn anything_else_goes_to_arrow_json_and_sparks_rules() {
        let (_, flat) = decoder();
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
            b"null",                  // not an object
            br#"{"ok": "true"}"#,     // text into BOOLEAN
            br#"{"id": nul}"#,
        ];
        for c in cases {
            assert!(flat.decode(c).is_none(), "{}", String::from_utf8_lossy(c));
        }
        // a type the decoder does not read
        let nested = Arc::new(ddl_to_schema("a STRUCT<b: INT>").unwrap());
        assert!(FlatDecoder::new(&nested).is_none());
    }
}
