//! Data quality and schema change in the model: the Expectations node (DLT's `expect`,
//! `expect_or_drop`, `expect_or_fail`), the Delta sink's `schema_mode` (Delta's
//! `mergeSchema` / `overwriteSchema`) and the file source's Auto Loader schema evolution
//! modes. Pure settings; the engine runs them (`engine::transforms::expectations`,
//! `engine::sinks::schema_check`, `engine::sources::schema_tracking`).

use serde::{Deserialize, Serialize};

/// `kind = "expectations"`: rules checked on every row; the output schema is the input's.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expectations {
    #[serde(default)]
    pub rules: Vec<Rule>,
}

/// One expectation: a name, a SQL boolean condition over the input's columns, and what a
/// failing row does.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub name: String,
    /// `amount IS NOT NULL AND amount >= 0`. A row passes when it is true; false fails it,
    /// and so does NULL (as a Delta CHECK constraint rejects it).
    pub condition: String,
    #[serde(default)]
    pub on_violation: OnViolation,
}

/// What a row that fails a rule does.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnViolation {
    /// `expect`: kept, counted.
    #[default]
    Warn,
    /// `expect_or_drop`: counted, dropped, and written to the quarantine table with the
    /// names of the rules it failed.
    Drop,
    /// `expect_or_fail`: the query stops before anything is committed, with the rule, the
    /// count and one failing row.
    Fail,
}

impl OnViolation {
    pub const ALL: [OnViolation; 3] = [OnViolation::Warn, OnViolation::Drop, OnViolation::Fail];

    pub fn as_str(self) -> &'static str {
        match self {
            OnViolation::Warn => "warn",
            OnViolation::Drop => "drop",
            OnViolation::Fail => "fail",
        }
    }
}

/// A Delta sink's schema change policy. Without it, a write whose schema differs from the
/// table's is refused (Delta's schema enforcement).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SchemaMode {
    /// `mergeSchema`: new columns are added to the table (old rows read NULL).
    Merge,
    /// `overwriteSchema`: with `mode = "overwrite"`, the table takes the input's schema.
    Overwrite,
}

impl SchemaMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SchemaMode::Merge => "merge",
            SchemaMode::Overwrite => "overwrite",
        }
    }
}

/// Auto Loader's `cloudFiles.schemaEvolutionMode`, on a file source whose schema is tracked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SchemaEvolutionMode {
    /// A new field stops the stream once, after adding the field to the tracked schema; the
    /// next start reads it (the default without a DDL schema).
    #[serde(rename = "addNewColumns")]
    AddNewColumns,
    /// New fields go to `_rescued_data`; the schema never changes.
    #[serde(rename = "rescue")]
    Rescue,
    /// A new field stops the stream; the schema is not changed.
    #[serde(rename = "failOnNewColumns")]
    FailOnNewColumns,
    /// New fields are ignored (the default with a DDL schema).
    #[serde(rename = "none")]
    None,
}

impl SchemaEvolutionMode {
    pub const ALL: [SchemaEvolutionMode; 4] = [
        SchemaEvolutionMode::AddNewColumns,
        SchemaEvolutionMode::Rescue,
        SchemaEvolutionMode::FailOnNewColumns,
        SchemaEvolutionMode::None,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SchemaEvolutionMode::AddNewColumns => "addNewColumns",
            SchemaEvolutionMode::Rescue => "rescue",
            SchemaEvolutionMode::FailOnNewColumns => "failOnNewColumns",
            SchemaEvolutionMode::None => "none",
        }
    }
}

/// Problems with an Expectations node's settings, for validation.
pub fn expectation_problems(e: &Expectations) -> Vec<String> {
    let mut out = Vec::new();
    if e.rules.is_empty() {
        out.push("add at least one rule".to_owned());
    }
    let mut names = std::collections::HashSet::new();
    for (i, r) in e.rules.iter().enumerate() {
        if r.name.trim().is_empty() {
            out.push(format!("rule {} has no name", i + 1));
        } else if !names.insert(r.name.as_str()) {
            out.push(format!("two rules are named `{}`", r.name));
        }
        if r.condition.trim().is_empty() {
            out.push(format!("rule `{}` has no condition", r.name));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_read_from_toml_and_problems_are_named() {
        let e: Expectations = toml::from_str(
            r#"rules = [{ name = "valid_id", condition = "id IS NOT NULL", on_violation = "drop" },
                        { name = "valid_id", condition = "" }]"#,
        )
        .unwrap();
        assert_eq!(e.rules[0].on_violation, OnViolation::Drop);
        assert_eq!(e.rules[1].on_violation, OnViolation::Warn);
        let p = expectation_problems(&e);
        assert!(p.contains(&"two rules are named `valid_id`".to_owned()), "{p:?}");
        assert!(p.contains(&"rule `valid_id` has no condition".to_owned()), "{p:?}");
    }
}
