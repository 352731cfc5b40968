//! Recorded pipeline tests: what a node should output for fixed input rows, as stored in the
//! project file (`[[tests]]`), plus properties to assert (row count, no NULLs, a unique key,
//! SQL rules with the Expectations node's `{ name, condition }` syntax).
//!
//! The fixtures themselves are Parquet files under the test's `dir` (relative to the project
//! file): `batch_<i>/<source node>.parquet` for every source the replay needs and
//! `batch_<i>/expected.parquet` for the node's output after micro-batch `i`.

use serde::{Deserialize, Serialize};

use super::graph::NodeId;

/// One recorded test of one node.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineTest {
    pub name: String,
    pub pipeline: String,
    /// The node whose output is checked (a sink: what it would write).
    pub node: NodeId,
    /// Folder of the fixtures, relative to the project file.
    pub dir: String,
    /// Micro-batches replayed, each with its own input and expected output (1 for a batch
    /// pipeline).
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub batches: usize,
    /// Compare the output with `expected.parquet`; false to check only the assertions.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub compare_rows: bool,
    /// Compare row by row in order (the node sorts); otherwise as multisets.
    #[serde(default, skip_serializing_if = "is_false")]
    pub ordered: bool,
    /// Columns that identify a row, to pair a missing row with its changed version in diffs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub key: Vec<String>,
    /// Columns left out of the comparison: non-deterministic (`current_timestamp()`, `uuid()`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignore_columns: Vec<String>,
    /// Assertion: the node outputs exactly this many rows (over all batches).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row_count: Option<u64>,
    /// Assertion: these columns hold no NULL.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_null: Vec<String>,
    /// Assertion: these columns together are unique.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unique: Vec<String>,
    /// Assertion: every row satisfies each rule's SQL condition (a NULL result fails).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<Rule>,
}

/// A named SQL condition over the node's columns, as in the Expectations node:
/// `{ name = "valid_id", condition = "user_id IS NOT NULL" }`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub name: String,
    pub condition: String,
}

fn one() -> usize {
    1
}

fn is_one(v: &usize) -> bool {
    *v == 1
}

fn yes() -> bool {
    true
}

fn is_true(v: &bool) -> bool {
    *v
}

fn is_false(v: &bool) -> bool {
    !*v
}

impl PipelineTest {
    /// A test of `node` with its fixtures in `dir`, comparing rows, with no assertions.
    pub fn new(name: &str, pipeline: &str, node: NodeId, dir: String) -> Self {
        Self {
            name: name.to_owned(),
            pipeline: pipeline.to_owned(),
            node,
            dir,
            batches: 1,
            compare_rows: true,
            ordered: false,
            key: Vec::new(),
            ignore_columns: Vec::new(),
            row_count: None,
            not_null: Vec::new(),
            unique: Vec::new(),
            rules: Vec::new(),
        }
    }

    /// The default fixtures folder of a test: `tests/<project>/<test>`.
    pub fn default_dir(project: &str, name: &str) -> String {
        format!("tests/{}/{}", file_safe(project), file_safe(name))
    }

    /// Whether the test asserts any property besides the rows.
    pub fn has_assertions(&self) -> bool {
        self.row_count.is_some()
            || !self.not_null.is_empty()
            || !self.unique.is_empty()
            || !self.rules.is_empty()
    }
}

/// Warnings for tests that no longer fit the project: a duplicate name, or a pipeline or node
/// that is gone (`medallion test` reports those tests as failed).
pub fn validate_tests(project: &super::Project) -> Vec<super::Diagnostic> {
    let mut out = Vec::new();
    let mut names = std::collections::HashSet::new();
    for t in &project.tests {
        let warn = |msg: String| super::Diagnostic::warning(&t.pipeline, None, msg);
        if !names.insert(t.name.as_str()) {
            out.push(warn(format!("two tests are named `{}`; rename one", t.name)));
        }
        match project.pipeline(&t.pipeline) {
            None => out.push(warn(format!(
                "test `{}` is of pipeline `{}`, which does not exist; record it again or delete it",
                t.name, t.pipeline
            ))),
            Some(p) if p.node(&t.node).is_none() => out.push(warn(format!(
                "test `{}` checks node `{}`, which pipeline `{}` does not have; record it again or delete it",
                t.name, t.node, t.pipeline
            ))),
            Some(_) => {}
        }
    }
    out
}

/// A name as a folder name: letters, digits, `_`, `-` and `.` kept, the rest `_`.
pub fn file_safe(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() || "_-.".contains(c) { c } else { '_' })
        .collect()
}

/// Whether `name` matches a shell-style glob (`*` any run, `?` one character).
pub fn glob_matches(pattern: &str, name: &str) -> bool {
    fn go(p: &[char], n: &[char]) -> bool {
        match (p.first(), n.first()) {
            (None, None) => true,
            (Some('*'), _) => go(&p[1..], n) || (!n.is_empty() && go(p, &n[1..])),
            (Some('?'), Some(_)) => go(&p[1..], &n[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &n[1..]),
            _ => false,
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    go(&p, &n)
}

/// The project file's text with the `[[tests]]` block named `test.name` replaced by `test`
/// (or `test` appended), leaving every other line, comments included, as it was. `notes`
/// become comment lines inside the block (which columns the recording ignores and why).
pub fn upsert_test_block(
    text: &str,
    test: &PipelineTest,
    notes: &[String],
) -> Result<String, String> {
    #[derive(Serialize)]
    struct One<'a> {
        tests: [&'a PipelineTest; 1],
    }
    let body = toml::to_string(&One { tests: [test] }).map_err(|e| e.to_string())?;
    let mut block: Vec<String> = Vec::new();
    for (i, line) in body.lines().enumerate() {
        block.push(line.to_owned());
        if i == 0 {
            block.extend(notes.iter().map(|n| format!("# {n}")));
        }
    }
    let lines: Vec<&str> = text.lines().collect();
    let blocks = test_blocks(&lines);
    let hit = blocks.into_iter().find(|(start, end)| {
        lines[*start..*end].iter().any(|l| {
            let t = l.trim();
            t.strip_prefix("name")
                .map(str::trim_start)
                .and_then(|r| r.strip_prefix('='))
                .and_then(|v| toml::from_str::<toml::Value>(&format!("v = {}", v.trim())).ok())
                .and_then(|v| v.get("v").and_then(|s| s.as_str().map(str::to_owned)))
                .is_some_and(|n| n == test.name)
        })
    });
    let mut out: Vec<String> = Vec::new();
    match hit {
        Some((start, end)) => {
            out.extend(lines[..start].iter().map(|l| (*l).to_owned()));
            out.extend(block);
            if end < lines.len() {
                out.push(String::new());
            }
            out.extend(lines[end..].iter().map(|l| (*l).to_owned()));
        }
        None => {
            out.extend(lines.iter().map(|l| (*l).to_owned()));
            while out.last().is_some_and(|l| l.trim().is_empty()) {
                out.pop();
            }
            out.push(String::new());
            out.extend(block);
        }
    }
    let mut joined = out.join("\n");
    joined.push('\n');
    Ok(joined)
}

/// Line ranges `[start, end)` of each `[[tests]]` block (its sub-tables included, trailing
/// blank lines excluded).
fn test_blocks(lines: &[&str]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if lines[i].trim() != "[[tests]]" {
            i += 1;
            continue;
        }
        let start = i;
        i += 1;
        while i < lines.len() {
            let t = lines[i].trim();
            if t.starts_with('[') && !t.starts_with("[[tests.") && !t.starts_with("[tests.") {
                break;
            }
            i += 1;
        }
        let mut end = i;
        while end > start + 1 && lines[end - 1].trim().is_empty() {
            end -= 1;
        }
        out.push((start, end));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_like_a_shell() {
        assert!(glob_matches("silver_*", "silver_users"));
        assert!(glob_matches("*", "x"));
        assert!(glob_matches("a?c", "abc"));
        assert!(!glob_matches("silver_*", "gold_users"));
        assert!(!glob_matches("a?c", "ac"));
    }

    #[test]
    fn upsert_appends_then_replaces_keeping_comments_and_other_tests() {
        let text = "# my project\nformat_version = 1\nname = \"p\"\n\n[[pipeline]]\nname = \"a\"\n";
        let mut t = PipelineTest::new("t1", "a", NodeId::new("n"), "tests/p/t1".into());
        let once = upsert_test_block(text, &t, &["event_time: ignored".into()]).unwrap();
        assert!(once.starts_with("# my project\n"), "{once}");
        assert!(once.contains("[[tests]]\n# event_time: ignored\nname = \"t1\""), "{once}");
        let other = PipelineTest::new("t2", "a", NodeId::new("m"), "tests/p/t2".into());
        let twice = upsert_test_block(&once, &other, &[]).unwrap();
        t.rules.push(Rule { name: "r".into(), condition: "x > 0".into() });
        let thrice = upsert_test_block(&twice, &t, &[]).unwrap();
        assert_eq!(thrice.matches("[[tests]]").count(), 2, "{thrice}");
        assert!(!thrice.contains("# event_time"), "the old block's notes went with it: {thrice}");
        let parsed: toml::Value = toml::from_str(&thrice).unwrap();
        let tests = parsed["tests"].as_array().unwrap();
        let names: Vec<&str> = tests.iter().map(|t| t["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["t1", "t2"]);
        assert_eq!(tests[0]["rules"][0]["condition"].as_str(), Some("x > 0"));
    }
}
