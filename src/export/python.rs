//! Python text: string literals, `${ENV}` references as `os.environ` reads, identifiers
//! from node ids, and Spark's interval words for Medallion's durations.

use std::collections::HashSet;

/// A Python string literal: double quotes, escapes for `\`, `"` and control characters;
/// non-ASCII text stays as it is (Python 3 source is UTF-8).
pub fn str_lit(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A triple-quoted literal for SQL text (readable over several lines); falls back to
/// `str_lit` when the text would not survive it.
pub fn sql_lit(s: &str) -> String {
    let t = s.trim();
    if !t.contains('\n') || t.contains("\"\"\"") || t.contains('\\') || t.ends_with('"') {
        return str_lit(&collapse_ws(t));
    }
    format!("\"\"\"\n{t}\n\"\"\"")
}

/// Runs of whitespace (newlines in TOML DDL blocks) as one space.
pub fn collapse_ws(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A setting as a Python expression: a literal, or `os.environ` reads for its `${NAME}` /
/// `${NAME:-default}` references (the value is never written out), joined with `+`.
/// The second value says whether `os` is needed.
pub fn env_expr(text: &str) -> (String, bool) {
    let mut parts: Vec<String> = Vec::new();
    let mut literal = String::new();
    let mut uses_env = false;
    let mut rest = text;
    while let Some(start) = rest.find('$') {
        literal.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        if let Some(stripped) = after.strip_prefix('$') {
            literal.push('$');
            rest = stripped;
        } else if let Some(body) = after.strip_prefix('{')
            && let Some(end) = body.find('}')
        {
            if !literal.is_empty() {
                parts.push(str_lit(&literal));
                literal.clear();
            }
            let inner = &body[..end];
            let read = match inner.split_once(":-") {
                Some((name, default)) => {
                    format!("os.environ.get({}, {})", str_lit(name), str_lit(default))
                }
                None => format!("os.environ[{}]", str_lit(inner)),
            };
            parts.push(read);
            uses_env = true;
            rest = &body[end + 1..];
        } else {
            literal.push('$');
            rest = after;
        }
    }
    literal.push_str(rest);
    if !literal.is_empty() || parts.is_empty() {
        parts.push(str_lit(&literal));
    }
    (parts.join(" + "), uses_env)
}

/// Python keywords and the names the generated script defines or imports: a node id that is
/// one of them gets a `_df` suffix.
const RESERVED: &[&str] = &[
    "False",
    "None",
    "True",
    "and",
    "as",
    "assert",
    "async",
    "await",
    "break",
    "class",
    "continue",
    "def",
    "del",
    "elif",
    "else",
    "except",
    "finally",
    "for",
    "from",
    "global",
    "if",
    "import",
    "in",
    "is",
    "lambda",
    "nonlocal",
    "not",
    "or",
    "pass",
    "raise",
    "return",
    "try",
    "while",
    "with",
    "yield",
    "match",
    "case",
    "type",
    "F",
    "os",
    "sys",
    "argparse",
    "spark",
    "lake",
    "trigger",
    "checkpoint",
    "queries",
    "query",
    "batch",
    "batch_id",
    "main",
    "Lakehouse",
    "DataFrame",
    "SparkSession",
    "StructType",
    "flatten",
    "merge_into",
    "overwrite_table",
    "quarantine",
    "write_quarantine",
    "dp",
    "filter",
    "map",
    "list",
    "dict",
    "set",
    "str",
    "int",
    "len",
    "print",
    "sum",
    "min",
    "max",
    "id",
    "input",
    "format",
    "PIPELINES",
    "KAFKA_RECORDS",
    "left",
    "right",
];

/// A Python identifier for a node id, unique among `taken` (which it joins).
pub fn ident(id: &str, taken: &mut HashSet<String>) -> String {
    let mut s: String =
        id.chars().map(|c| if c.is_alphanumeric() || c == '_' { c } else { '_' }).collect();
    if s.is_empty() || s.starts_with(|c: char| c.is_ascii_digit()) {
        s.insert(0, '_');
    }
    if RESERVED.contains(&s.as_str()) {
        s.push_str("_df");
    }
    let mut name = s.clone();
    let mut n = 2;
    while taken.contains(&name) {
        name = format!("{s}_{n}");
        n += 1;
    }
    taken.insert(name.clone());
    name
}

/// Medallion's `500ms`, `2s`, `1 minute` as Spark's interval text (`500 milliseconds`).
pub fn interval_text(ms: u64) -> String {
    let plural = |n: u64, unit: &str| format!("{n} {unit}{}", if n == 1 { "" } else { "s" });
    if ms.is_multiple_of(3_600_000) && ms > 0 {
        plural(ms / 3_600_000, "hour")
    } else if ms.is_multiple_of(60_000) && ms > 0 {
        plural(ms / 60_000, "minute")
    } else if ms.is_multiple_of(1000) && ms > 0 {
        plural(ms / 1000, "second")
    } else {
        plural(ms, "millisecond")
    }
}

/// A comment line's text: one line, no trailing spaces.
pub fn comment(s: &str) -> String {
    collapse_ws(s)
}

/// Text inside a `"""` docstring: backslashes and triple quotes escaped.
pub fn escape_doc(s: &str) -> String {
    s.replace('\\', "\\\\").replace("\"\"\"", "\\\"\\\"\\\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_references_become_environ_reads() {
        assert_eq!(env_expr("plain").0, "\"plain\"");
        assert_eq!(
            env_expr("${KAFKA:-localhost:9092}").0,
            "os.environ.get(\"KAFKA\", \"localhost:9092\")"
        );
        let (e, uses) = env_expr("user=${USER} pw=${KAFKA_PASSWORD}");
        assert!(uses);
        assert_eq!(
            e,
            "\"user=\" + os.environ[\"USER\"] + \" pw=\" + os.environ[\"KAFKA_PASSWORD\"]"
        );
        assert_eq!(env_expr("a$$b").0, "\"a$b\"");
    }

    #[test]
    fn identifiers_are_valid_and_unique() {
        let mut taken = HashSet::new();
        assert_eq!(ident("bronze-users", &mut taken), "bronze_users");
        assert_eq!(ident("bronze_users", &mut taken), "bronze_users_2");
        assert_eq!(ident("flatten", &mut taken), "flatten_df");
        assert_eq!(ident("9lives", &mut taken), "_9lives");
        assert_eq!(ident("données", &mut taken), "données");
    }

    #[test]
    fn literals_escape_and_intervals_read_as_spark() {
        assert_eq!(str_lit("a\"b\\c\nd"), "\"a\\\"b\\\\c\\nd\"");
        assert_eq!(interval_text(500), "500 milliseconds");
        assert_eq!(interval_text(2000), "2 seconds");
        assert_eq!(interval_text(60_000), "1 minute");
    }
}
