//! The tokens of JSON text for `json_plain`: a cursor that reads strict JSON (RFC 8259) and
//! answers `None` to anything else, so that the decoder gives the chunk to arrow-json.

/// A cursor over the chunk; every method returns `None` on what it does not accept.
pub(super) struct Parser<'a> {
    pub(super) b: &'a [u8],
    pub(super) i: usize,
}

impl<'a> Parser<'a> {
    pub(super) fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    pub(super) fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }

    pub(super) fn expect(&mut self, c: u8) -> Option<()> {
        (self.next()? == c).then_some(())
    }

    pub(super) fn skip_ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.b.get(self.i) {
            self.i += 1;
        }
    }

    /// The items of an object or array after its opening bracket, up to `close`: `item` reads
    /// each (at its first byte), the commas and whitespace between them are read here.
    pub(super) fn items(
        &mut self,
        close: u8,
        mut item: impl FnMut(&mut Self) -> Option<()>,
    ) -> Option<()> {
        self.skip_ws();
        if self.peek()? == close {
            self.i += 1;
            return Some(());
        }
        loop {
            item(self)?;
            self.skip_ws();
            match self.next()? {
                b',' => self.skip_ws(),
                c if c == close => return Some(()),
                _ => return None,
            }
        }
    }

    /// Whether the text after a key's opening quote is `key` and its closing quote; the cursor
    /// moves past them if so, and stays if not.
    pub(super) fn take_key(&mut self, key: &Key) -> bool {
        let quoted = &key.quoted;
        let found = key.plain
            && (self.b.get(self.i..self.i + quoted.len())).is_some_and(|at| same(at, quoted));
        if found {
            self.i += quoted.len();
        }
        found
    }

    /// The bytes of a string without escapes or control characters (a key, a TIMESTAMP), after
    /// its opening quote; the cursor ends past the closing quote.
    pub(super) fn plain_string(&mut self) -> Option<&'a [u8]> {
        let rest = &self.b[self.i..];
        let end = plain_run(rest)?;
        if rest[end] != b'"' {
            return None;
        }
        self.i += end + 1;
        Some(&rest[..end])
    }

    /// A string's text (escapes decoded) appended to `out` (read and dropped without it), after
    /// its opening quote.
    pub(super) fn string_into(&mut self, mut out: Option<&mut Vec<u8>>) -> Option<()> {
        loop {
            let rest = &self.b[self.i..];
            let end = plain_run(rest)?;
            if rest[end] < 0x20 {
                return None;
            }
            if let Some(out) = out.as_deref_mut() {
                out.extend_from_slice(&rest[..end]);
            }
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
            if let Some(out) = out.as_deref_mut() {
                out.extend_from_slice(c.encode_utf8(&mut [0u8; 4]).as_bytes());
            }
        }
    }

    fn hex4(&mut self) -> Option<u32> {
        let digits = self.b.get(self.i..self.i + 4)?;
        self.i += 4;
        digits.iter().try_fold(0u32, |acc, &d| Some(acc * 16 + (d as char).to_digit(16)?))
    }

    /// `-?(0|[1-9][0-9]*)` as i64 (`None` out of range); the cursor ends after it.
    pub(super) fn integer(&mut self) -> Option<i64> {
        let text = self.integer_text()?;
        let (negative, digits) = match text.split_first() {
            Some((b'-', d)) => (true, d),
            _ => (false, text),
        };
        digits.iter().try_fold(0i64, |n, &d| {
            let (n, d) = (n.checked_mul(10)?, i64::from(d - b'0'));
            if negative { n.checked_sub(d) } else { n.checked_add(d) }
        })
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
    pub(super) fn number_text(&mut self) -> Option<&'a [u8]> {
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
    pub(super) fn literal(&mut self) -> Option<Option<bool>> {
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
    pub(super) fn skip_scalar(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' => {
                self.i += 1;
                self.string_into(None)
            }
            b'-' | b'0'..=b'9' => self.number_text().map(|_| ()),
            _ => self.literal().map(|_| ()),
        }
    }
}

/// Where the plain run of a string's bytes ends: at a quote, a backslash or a control
/// character (which JSON does not allow in a string). Eight bytes at a time, in a `u64`
/// (memchr2 and a second scan for control characters cost twice a byte loop on the short
/// strings of records; by words, users_batch's bronze on 1M users 1.23 -> 1.12 CPU-s).
/// An object key expected at the cursor (the decoder predicts each record's keys from the
/// last one's order): checked in place by [`Parser::take_key`], 8 bytes at a time, instead of
/// scanned for its closing quote and then compared with `memcmp` (those were ~6% of
/// music_kafka's samples).
pub(super) struct Key {
    /// The key's bytes and its closing quote.
    quoted: Vec<u8>,
    /// No quote, backslash or control character in the key: its JSON text is its bytes.
    plain: bool,
}

impl Key {
    pub(super) fn new(name: &[u8]) -> Self {
        let mut quoted = name.to_vec();
        quoted.push(b'"');
        let plain = plain_run(&quoted) == Some(name.len());
        Self { quoted, plain }
    }

    pub(super) fn name(&self) -> &[u8] {
        &self.quoted[..self.quoted.len() - 1]
    }
}

/// Whether `a` and `b` (of one length) hold the same bytes: words, then a short tail (a key
/// is a few bytes: a call to `memcmp` costs more than the compare).
fn same(a: &[u8], b: &[u8]) -> bool {
    let (mut a, mut b) = (a, b);
    while let (Some((x, ra)), Some((y, rb))) =
        (a.split_first_chunk::<8>(), b.split_first_chunk::<8>())
    {
        if x != y {
            return false;
        }
        (a, b) = (ra, rb);
    }
    a.iter().zip(b).all(|(x, y)| x == y)
}

fn plain_run(s: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_le_bytes([1; 8]);
    const HIGH: u64 = u64::from_le_bytes([0x80; 8]);
    // the high bit of each byte that is below `n` (`n` ≤ 0x80); a borrow can flag a byte above
    // a flagged one, never below: the lowest flag is exact
    let below = |x: u64, n: u8| x.wrapping_sub(ONES * u64::from(n)) & !x & HIGH;
    let mut at = 0;
    while let Some(word) = s.get(at..at + 8) {
        let x = u64::from_le_bytes(word.try_into().ok()?);
        let flags = below(x ^ (ONES * u64::from(b'"')), 1)
            | below(x ^ (ONES * u64::from(b'\\')), 1)
            | below(x, 0x20);
        if flags != 0 {
            return Some(at + flags.trailing_zeros() as usize / 8);
        }
        at += 8;
    }
    let tail = s[at..].iter().position(|&c| c == b'"' || c == b'\\' || c < 0x20)?;
    Some(at + tail)
}

#[cfg(test)]
mod tests {
    /// The first quote, backslash or control character, byte by byte.
    fn first_stop(s: &[u8]) -> Option<usize> {
        s.iter().position(|&c| c == b'"' || c == b'\\' || c < 0x20)
    }

    /// A predicted key is taken only when the text is exactly its bytes and closing quote.
    #[test]
    fn a_key_is_taken_only_where_it_is_whole() {
        let key = |name: &str| super::Key::new(name.as_bytes());
        let take = |text: &str, name: &str| {
            let mut p = super::Parser { b: text.as_bytes(), i: 0 };
            let taken = p.take_key(&key(name));
            (taken, p.i)
        };
        assert_eq!(take("played_at\": 1", "played_at"), (true, 10));
        assert_eq!(take("ünïcødé_ключ\":1", "ünïcødé_ключ"), (true, "ünïcødé_ключ".len() + 1));
        assert_eq!(take("a_key_of_16bytes\"", "a_key_of_16bytes"), (true, 17));
        assert_eq!(take("\"", ""), (true, 1));
        for (text, name) in [
            ("played_at_2\": 1", "played_at"), // longer
            ("played\": 1", "played_at"),      // shorter
            ("played_at", "played_at"),        // cut short
            ("played_ax\"", "played_at"),      // one byte off, in the tail
            ("plbyed_at\"", "played_at"),      // one byte off, in the first word
            ("i\\u0064\"", "id"),              // escaped
        ] {
            assert_eq!(take(text, name), (false, 0), "{text} as {name}");
        }
        // a name whose JSON text is not its bytes is never taken
        assert!(!key("a\"b").plain && !key("a\\b").plain && !key("a\tb").plain);
        assert_eq!(take("a\"b\"", "a\"b"), (false, 0));
    }

    #[test]
    fn a_plain_run_stops_where_a_byte_loop_stops() {
        // every stop byte at every offset of words and tails, after plain ASCII and UTF-8
        // (bytes ≥ 0x80, which a borrow must not flag), and strings with no stop at all
        let fillers: [&[u8]; 3] =
            [b"abcdefghijklmnopqrstuvwxyz0123", "é✓日本語ü€ñ".as_bytes(), b"\x7f !#[]^_`{}~"];
        for filler in fillers {
            for len in 0..filler.len() {
                let plain = &filler[..len];
                let plain: Vec<u8> =
                    plain.iter().map(|&c| if c == b'\\' { b'a' } else { c }).collect();
                assert_eq!(super::plain_run(&plain), first_stop(&plain), "{plain:?}");
                for stop in [b'"', b'\\', 0x00, 0x0a, 0x1f] {
                    for later in [None, Some(b'"'), Some(0x01)] {
                        let mut s = plain.clone();
                        s.push(stop);
                        s.extend(later);
                        s.extend_from_slice(b"tail");
                        assert_eq!(super::plain_run(&s), Some(len), "{s:?}");
                    }
                }
            }
        }
        // 0x20 and 0x7f..=0xff are plain
        let plain: Vec<u8> = (0x20..=0xffu8).filter(|&c| c != b'"' && c != b'\\').collect();
        assert_eq!(super::plain_run(&plain), None);
    }
}
