//! Transforms that need more than one Spark call: Expectations (drop / fail / warn, with the
//! quarantine of dropped rows), the SDP forms of Join and Flatten (columns listed from planned
//! schemas) and SQL with DataFrame arguments.

use arrow::datatypes::{DataType, Field};

use crate::model::Node;
use crate::model::node::{Expectations, Flatten, Join, JoinHow, OnViolation};

use super::nodes::{Emitter, QuarantineFeed};
use super::python::{collapse_ws, comment, str_lit};

impl Emitter<'_> {
    pub(super) fn expectations(&mut self, node: &Node, e: &Expectations, v: &str, input: &str) {
        let cond = |c: &str| format!("({})", collapse_ws(c));
        for r in e.rules.iter().filter(|r| r.on_violation == OnViolation::Warn) {
            self.line(format!(
                "# expect `{}` (warn): {} — rows are kept; Medallion counts the failures",
                r.name,
                comment(&r.condition)
            ));
        }
        let mut current = input.to_owned();
        let fails: Vec<_> =
            e.rules.iter().filter(|r| r.on_violation == OnViolation::Fail).collect();
        if !fails.is_empty() {
            let checked = self.fresh(&format!("{v}_checked"));
            self.line(
                "# expect_or_fail: the query stops at the first failing row, before it commits",
            );
            self.line(format!("{checked} = {current}.filter("));
            let asserts: Vec<String> = fails
                .iter()
                .map(|r| {
                    format!(
                        "F.assert_true(F.coalesce(F.expr({}), F.lit(False)), {}).isNull()",
                        str_lit(&cond(&r.condition)),
                        str_lit(&format!(
                            "expectation `{}` failed: {}",
                            r.name,
                            collapse_ws(&r.condition)
                        ))
                    )
                })
                .collect();
            if let [one] = asserts.as_slice() {
                self.line(format!("    {one}"));
            } else {
                for (i, a) in asserts.iter().enumerate() {
                    let sep = if i + 1 < asserts.len() { " &" } else { "" };
                    self.line(format!("    ({a}){sep}"));
                }
            }
            self.line(")");
            current = checked;
        }
        let drops: Vec<_> =
            e.rules.iter().filter(|r| r.on_violation == OnViolation::Drop).collect();
        if drops.is_empty() {
            self.line(format!("{v} = {current}"));
            return;
        }
        let all = drops.iter().map(|r| cond(&r.condition)).collect::<Vec<_>>().join(" AND ");
        let bad = self.fresh(&format!("{v}_dropped"));
        self.line(format!(
            "{bad} = {current}.filter(~F.coalesce(F.expr({}), F.lit(False))).select(",
            str_lit(&all)
        ));
        self.line(format!("    F.lit({}).alias(\"source_node\"),", str_lit(node.id.as_str())));
        self.line("    F.lit(None).cast(\"string\").alias(\"file\"),");
        self.line("    F.lit(None).cast(\"bigint\").alias(\"line\"),");
        self.line("    F.to_json(F.struct(\"*\")).alias(\"raw\"),");
        self.line("    F.concat(");
        self.line("        F.lit(\"expectations failed: \"),");
        self.line("        F.concat_ws(");
        self.line("            \", \",");
        for r in &drops {
            self.line(format!(
                "            F.when(~F.coalesce(F.expr({}), F.lit(False)), F.lit({})),",
                str_lit(&cond(&r.condition)),
                str_lit(&r.name)
            ));
        }
        self.line("        ),");
        self.line("    ).alias(\"reason\"),");
        self.line(")");
        self.quarantine.push(QuarantineFeed { var: bad });
        self.line(format!("{v} = {current}.filter({})  # expect_or_drop", str_lit(&all)));
    }

    /// SDP: the join's output columns listed from the inputs' known schemas (a query
    /// function may not ask a DataFrame for its columns).
    pub(super) fn join_columns_sdp(&mut self, node: &Node, j: &Join) {
        let (Some(l), Some(r)) =
            (self.input_schema(&node.id, "left"), self.input_schema(&node.id, "right"))
        else {
            self.todo(
                node,
                "the join's columns need the inputs' schemas (an SDP query function may not analyze a DataFrame): export from the CLI with the lakehouse (or the app)",
            );
            self.line("    \"*\",");
            return;
        };
        let same: Vec<&String> = j.on.iter().filter(|[a, b]| a == b).map(|[a, _]| a).collect();
        let q = |side: &str, c: &str| str_lit(&format!("{side}.`{}`", c.replace('`', "``")));
        for f in l.fields() {
            let c = f.name();
            let expr = match j.how {
                JoinHow::Right if same.contains(&c) => {
                    format!("F.col({}).alias({})", q("right", c), str_lit(c))
                }
                JoinHow::Full if same.contains(&c) => format!(
                    "F.coalesce(F.col({}), F.col({})).alias({})",
                    q("left", c),
                    q("right", c),
                    str_lit(c)
                ),
                _ => format!("F.col({})", q("left", c)),
            };
            self.line(format!("    {expr},"));
        }
        for f in r.fields().iter().filter(|f| !same.contains(&f.name())) {
            self.line(format!("    F.col({}),", q("right", f.name())));
        }
    }
}

/// SDP Flatten: `F.col("`s`").getField("f").alias("s_f")` for every field of a struct.
pub(super) fn flatten_fields(
    base: &str,
    field: &Field,
    prefix: &str,
    f: &Flatten,
    out: &mut Vec<String>,
) {
    let DataType::Struct(children) = field.data_type() else {
        out.push(format!("    {base}.alias({}),", str_lit(prefix)));
        return;
    };
    for child in children {
        let name = format!("{prefix}{}{}", f.separator, child.name());
        let expr = format!("{base}.getField({})", str_lit(child.name()));
        if f.recursive && matches!(child.data_type(), DataType::Struct(_)) {
            flatten_fields(&expr, child, &name, f, out);
        } else {
            out.push(format!("    {expr}.alias({}),", str_lit(&name)));
        }
    }
}

/// `FROM users u JOIN ssn s` → `FROM {users} u JOIN {ssn} s`: the ports as `spark.sql`'s
/// DataFrame arguments (other braces doubled, as `str.format` reads them).
pub fn sql_with_frame_args(query: &str, ports: &[String]) -> String {
    let mut q = query.replace('{', "{{").replace('}', "}}");
    for port in ports {
        let re = regex::Regex::new(&format!(r"(?i)\b(FROM|JOIN)(\s+){}\b", regex::escape(port)));
        if let Ok(re) = re {
            q = re.replace_all(&q, format!("${{1}}${{2}}{{{port}}}").as_str()).into_owned();
        }
    }
    q
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sql_ports_become_dataframe_arguments() {
        let q = "SELECT u.a, '{x}' FROM users u\nLEFT JOIN ssn s ON u.id = s.id JOIN users_old o ON 1 = 1";
        assert_eq!(
            sql_with_frame_args(q, &["users".into(), "ssn".into()]),
            "SELECT u.a, '{{x}}' FROM {users} u\nLEFT JOIN {ssn} s ON u.id = s.id JOIN users_old o ON 1 = 1"
        );
    }
}
