//! Spark's JSON reading rules that arrow-json does not have, applied to the records that
//! need them (the slow path of `json_lines`): an object or array read into a STRING field
//! becomes its JSON text exactly as written in the record (PySpark 4.3 keeps the raw text:
//! `{"a": 1}` stays `{"a": 1}`, `2.50` stays `2.50`), a JSON integer read into a
//! TIMESTAMP field is seconds since the epoch; a number with a fraction or an exponent read
//! into an integer field, text into a number field (but for Spark's words for NaN and
//! infinity into a floating-point one) and a number into a DATE field make the record bad.
//!
//! A record is rewritten guided by the schema, byte by byte, without building a document
//! tree: fields outside the schema and values that need no change are copied as they are.

use arrow::datatypes::{DataType, Fields, Schema};

type Res<T> = std::result::Result<T, String>;

/// Rewrites one JSON record so arrow-json reads it the way Spark does.
pub fn normalize_record(line: &[u8], schema: &Schema) -> Res<Vec<u8>> {
    let mut out = Vec::with_capacity(line.len() + 16);
    let mut p = Parser { s: line, i: 0 };
    p.ws();
    if p.peek() == Some(b'{') {
        p.object(schema.fields(), &mut out)?;
    } else {
        // not an object: left for arrow-json to report
        return Ok(line.to_vec());
    }
    p.ws();
    if p.i != p.s.len() {
        return Err(format!("unexpected text after the record at byte {}", p.i + 1));
    }
    Ok(out)
}

/// The fields of a JSON object as written: each key's text (between its quotes, escapes as
/// they are) and its value's bytes, in order; `None` when `record` is not one whole object.
/// (What `json_partial` reads a bad record's fields from.)
pub fn object_fields(record: &[u8]) -> Option<Vec<(&[u8], &[u8])>> {
    let mut p = Parser { s: record, i: 0 };
    p.expect(b'{').ok()?;
    let mut fields = Vec::new();
    p.ws();
    if p.peek() == Some(b'}') {
        p.i += 1;
    } else {
        loop {
            p.ws();
            if p.peek() != Some(b'"') {
                return None;
            }
            let key = p.string().ok()?;
            p.expect(b':').ok()?;
            let value = p.value_span().ok()?;
            fields.push((&key[1..key.len() - 1], value));
            p.ws();
            match p.peek() {
                Some(b',') => p.i += 1,
                Some(b'}') => {
                    p.i += 1;
                    break;
                }
                _ => return None,
            }
        }
    }
    p.ws();
    (p.i == p.s.len()).then_some(fields)
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn ws(&mut self) {
        while self.peek().is_some_and(|b| b.is_ascii_whitespace()) {
            self.i += 1;
        }
    }

    fn expect(&mut self, b: u8) -> Res<()> {
        self.ws();
        if self.peek() == Some(b) {
            self.i += 1;
            Ok(())
        } else {
            Err(format!("expected `{}` at byte {}", b as char, self.i + 1))
        }
    }

    /// The extent of the string starting at `self.i` (a `"`), quotes included.
    fn string(&mut self) -> Res<&'a [u8]> {
        let start = self.i;
        self.i += 1;
        while let Some(b) = self.peek() {
            self.i += 1;
            match b {
                b'\\' => self.i += 1,
                b'"' => return Ok(&self.s[start..self.i]),
                _ => {}
            }
        }
        Err("unterminated string".into())
    }

    /// Skips one value, returning its bytes.
    fn value_span(&mut self) -> Res<&'a [u8]> {
        self.ws();
        let start = self.i;
        match self.peek() {
            Some(b'"') => {
                self.string()?;
            }
            Some(b'{') | Some(b'[') => {
                let mut depth = 0usize;
                while let Some(b) = self.peek() {
                    match b {
                        b'"' => {
                            self.string()?;
                            continue;
                        }
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => {
                            depth -= 1;
                            if depth == 0 {
                                self.i += 1;
                                return Ok(&self.s[start..self.i]);
                            }
                        }
                        _ => {}
                    }
                    self.i += 1;
                }
                return Err("unterminated object or array".into());
            }
            Some(_) => {
                while self
                    .peek()
                    .is_some_and(|b| !matches!(b, b',' | b'}' | b']') && !b.is_ascii_whitespace())
                {
                    self.i += 1;
                }
                if self.i == start {
                    return Err(format!("expected a value at byte {}", start + 1));
                }
            }
            None => return Err("the record ends where a value should be".into()),
        }
        Ok(&self.s[start..self.i])
    }

    fn object(&mut self, fields: &Fields, out: &mut Vec<u8>) -> Res<()> {
        self.expect(b'{')?;
        out.push(b'{');
        self.ws();
        if self.peek() == Some(b'}') {
            self.i += 1;
            out.push(b'}');
            return Ok(());
        }
        loop {
            self.ws();
            if self.peek() != Some(b'"') {
                return Err(format!("expected a field name at byte {}", self.i + 1));
            }
            let key = self.string()?;
            out.extend_from_slice(key);
            let name = std::str::from_utf8(&key[1..key.len() - 1]).unwrap_or_default();
            let field = fields.iter().find(|f| f.name() == name).map(|f| f.data_type().clone());
            self.expect(b':')?;
            out.push(b':');
            self.value(field.as_ref(), out)?;
            self.ws();
            match self.peek() {
                Some(b',') => {
                    self.i += 1;
                    out.push(b',');
                }
                Some(b'}') => {
                    self.i += 1;
                    out.push(b'}');
                    return Ok(());
                }
                _ => return Err(format!("expected `,` or `}}` at byte {}", self.i + 1)),
            }
        }
    }

    fn array(&mut self, item: &DataType, out: &mut Vec<u8>) -> Res<()> {
        self.expect(b'[')?;
        out.push(b'[');
        self.ws();
        if self.peek() == Some(b']') {
            self.i += 1;
            out.push(b']');
            return Ok(());
        }
        loop {
            self.value(Some(item), out)?;
            self.ws();
            match self.peek() {
                Some(b',') => {
                    self.i += 1;
                    out.push(b',');
                }
                Some(b']') => {
                    self.i += 1;
                    out.push(b']');
                    return Ok(());
                }
                _ => return Err(format!("expected `,` or `]` at byte {}", self.i + 1)),
            }
        }
    }

    fn value(&mut self, t: Option<&DataType>, out: &mut Vec<u8>) -> Res<()> {
        self.ws();
        let next = self.peek();
        match (t, next) {
            (Some(DataType::Struct(fields)), Some(b'{')) => self.object(fields, out),
            (Some(DataType::List(f) | DataType::LargeList(f)), Some(b'[')) => {
                self.array(f.data_type(), out)
            }
            (
                Some(DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View),
                Some(b'{' | b'['),
            ) => {
                let span = self.value_span()?;
                write_json_string(span, out);
                Ok(())
            }
            (Some(DataType::Timestamp(_, _)), Some(b'-' | b'0'..=b'9')) => {
                let span = self.value_span()?;
                let text = std::str::from_utf8(span).unwrap_or_default();
                match text.parse::<i64>() {
                    // Spark: a JSON integer into a TIMESTAMP is seconds since the epoch; written
                    // as ISO text, which both readers take (digits would be microseconds to
                    // arrow-json, and at the top a string of digits, which Spark reads as a
                    // date: `"2026"` is 2026-01-01)
                    Ok(secs) => {
                        let at = chrono::DateTime::from_timestamp(secs, 0).ok_or_else(|| {
                            format!("{secs} seconds is out of range for a TIMESTAMP")
                        })?;
                        write_json_string(
                            at.format("%Y-%m-%dT%H:%M:%SZ").to_string().as_bytes(),
                            out,
                        );
                        Ok(())
                    }
                    Err(_) => Err(format!("cannot read {text} as a TIMESTAMP")),
                }
            }
            // Spark reads no text into an integer and only its words for NaN and infinity
            // into a floating-point number (arrow-json would read "5" as 5)
            (Some(t), Some(b'"')) if t.is_integer() || t.is_floating() => {
                let span = self.value_span()?;
                let word = match &span[1..span.len() - 1] {
                    b"NaN" | b"+NaN" | b"-NaN" => "NaN",
                    b"Infinity" | b"+Infinity" | b"INF" | b"+INF" => "Infinity",
                    b"-Infinity" | b"-INF" => "-Infinity",
                    _ => "",
                };
                if word.is_empty() || t.is_integer() {
                    return Err(format!(
                        "cannot read {} as {}",
                        String::from_utf8_lossy(span),
                        crate::engine::schema::type_ddl(t)
                    ));
                }
                write_json_string(word.as_bytes(), out);
                Ok(())
            }
            // a JSON number is no DATE in Spark (arrow-json reads it as days since 1970)
            (Some(DataType::Date32), Some(b'-' | b'0'..=b'9')) => {
                let span = self.value_span()?;
                Err(format!("cannot read {} as DATE", String::from_utf8_lossy(span)))
            }
            (Some(t), Some(b'-' | b'0'..=b'9')) if t.is_integer() => {
                let span = self.value_span()?;
                // Spark reads only a JSON integer into an integer field: `1.5`, `1.0` and
                // `1e3` make the record bad (arrow-json would read `1.5` as 1)
                if span.iter().any(|b| matches!(b, b'.' | b'e' | b'E')) {
                    return Err(format!(
                        "cannot read {} as {}",
                        String::from_utf8_lossy(span),
                        crate::engine::schema::type_ddl(t)
                    ));
                }
                out.extend_from_slice(span);
                Ok(())
            }
            _ => {
                let span = self.value_span()?;
                out.extend_from_slice(span);
                Ok(())
            }
        }
    }
}

/// `text` as a JSON string literal.
fn write_json_string(text: &[u8], out: &mut Vec<u8>) {
    out.push(b'"');
    for &b in text {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            _ => out.push(b),
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::schema::ddl_to_schema;

    fn norm(line: &str, ddl: &str) -> String {
        String::from_utf8(normalize_record(line.as_bytes(), &ddl_to_schema(ddl).unwrap()).unwrap())
            .unwrap()
    }

    #[test]
    fn objects_and_arrays_into_strings_become_their_json_text() {
        assert_eq!(
            norm(
                r#"{"track_id": 0, "o": {"a": 1, "b": [1, 2]}, "x": {"k": 1}}"#,
                "track_id STRING, o STRING"
            ),
            r#"{"track_id":0,"o":"{\"a\": 1, \"b\": [1, 2]}","x":{"k": 1}}"#
        );
        assert_eq!(
            norm(r#"{"o": ["a b", "c\"d"]}"#, "o STRING"),
            r#"{"o":"[\"a b\", \"c\\\"d\"]"}"#
        );
        assert_eq!(
            norm(r#"{"s": {"inner": {"z": true}}}"#, "s STRUCT<inner: STRING>"),
            r#"{"s":{"inner":"{\"z\": true}"}}"#
        );
        assert_eq!(norm(r#"{"l": [{"a": 1}]}"#, "l ARRAY<STRING>"), r#"{"l":["{\"a\": 1}"]}"#);
    }

    #[test]
    fn integer_timestamps_are_seconds() {
        assert_eq!(
            norm(r#"{"ts": 1700000000}"#, "ts TIMESTAMP"),
            r#"{"ts":"2023-11-14T22:13:20Z"}"#
        );
        assert!(
            normalize_record(b"{\"ts\": 1.5}", &ddl_to_schema("ts TIMESTAMP").unwrap()).is_err()
        );
    }

    #[test]
    fn broken_records_say_where() {
        let s = ddl_to_schema("a STRING").unwrap();
        assert!(normalize_record(b"{\"a\": {\"b\": 1", &s).unwrap_err().contains("unterminated"));
        assert!(normalize_record(b"{\"a\": {\"b\": 1}", &s).unwrap_err().contains("expected `,`"));
        assert!(normalize_record(b"{\"a\" 1}", &s).unwrap_err().contains("expected `:`"));
    }
}
