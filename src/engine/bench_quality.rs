//! `medallion bench quality`: the cost of an Expectations node with five rules on a batch
//! pipeline (JSON files → Delta), as process CPU seconds with and without the node, the
//! two variants alternating so both see the same machine. Prints figures; tests never
//! assert on them.

use std::io::Write as _;
use std::path::Path;
use std::time::Instant;

use crate::model::Project;

use super::{EngineError, Result, RunOptions};

const RULES: &str = r#"rules = [
  { name = "valid_id", condition = "id IS NOT NULL", on_violation = "drop" },
  { name = "valid_amount", condition = "amount >= 0", on_violation = "drop" },
  { name = "known_country", condition = "country IN ('DE', 'FR', 'US', 'BR', 'JP')", on_violation = "warn" },
  { name = "email_like", condition = "email LIKE '%@%'", on_violation = "warn" },
  { name = "recent", condition = "ts >= TIMESTAMP '2020-01-01 00:00:00'", on_violation = "warn" },
]"#;

fn project(with_expectations: bool) -> Result<Project> {
    let (checks, edges) = if with_expectations {
        (
            format!("[[pipeline.nodes]]\nid = \"checks\"\nkind = \"expectations\"\n{RULES}\n"),
            "[[pipeline.edges]]\nfrom = \"landing\"\nto = \"checks\"\n\n[[pipeline.edges]]\nfrom = \"checks\"\nto = \"sink\"\n",
        )
    } else {
        (String::new(), "[[pipeline.edges]]\nfrom = \"landing\"\nto = \"sink\"\n")
    };
    let text = format!(
        r#"format_version = 1
name = "bench_quality"

[[pipeline]]
name = "orders"

[[pipeline.nodes]]
id = "landing"
kind = "file_source"
path = "landing/orders"
schema = "id BIGINT, amount DOUBLE, country STRING, email STRING, ts TIMESTAMP"
parse_mode = "drop_malformed"

{checks}
[[pipeline.nodes]]
id = "sink"
kind = "delta_sink"
table = "bronze/orders"
mode = "overwrite"

{edges}"#
    );
    Project::from_toml(&text, Path::new("bench_quality.toml"))
        .map_err(|e| EngineError::Config(e.to_string()))
}

/// CPU seconds (user + system) this process has used, from `/proc/self/stat`.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return f64::NAN };
    // fields after the command name (which may hold spaces) start after the last ')'
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(f64::NAN);
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after the name
    (ticks(11) + ticks(12)) / 100.0
}

fn write_rows(dir: &Path, rows: u64, files: u64) -> Result<()> {
    let landing = dir.join("landing/orders");
    std::fs::create_dir_all(&landing).map_err(|e| EngineError::io(&landing, e))?;
    let countries = ["DE", "FR", "US", "BR", "JP", "XX"];
    let per_file = rows.div_ceil(files);
    for f in 0..files {
        let path = landing.join(format!("part-{f:05}.json"));
        let file = std::fs::File::create(&path).map_err(|e| EngineError::io(&path, e))?;
        let mut w = std::io::BufWriter::new(file);
        for i in f * per_file..((f + 1) * per_file).min(rows) {
            let id = if i % 97 == 0 { "null".to_owned() } else { i.to_string() };
            let amount = if i % 89 == 0 { -1.0 } else { (i % 1000) as f64 / 10.0 };
            writeln!(
                w,
                r#"{{"id": {id}, "amount": {amount}, "country": "{}", "email": "u{i}@x.org", "ts": "2026-01-01T00:{:02}:{:02}Z"}}"#,
                countries[(i % 6) as usize],
                (i / 60) % 60,
                i % 60
            )
            .map_err(|e| EngineError::io(&path, e))?;
        }
        w.flush().map_err(|e| EngineError::io(&path, e))?;
    }
    Ok(())
}

/// One variant's figures.
#[derive(Clone, Debug, Default)]
pub struct Run {
    pub cpu_s: f64,
    pub wall_s: f64,
}

/// Runs both variants `rounds` times over `rows` rows; returns (without, with) per round.
pub async fn expectations_cost(dir: &Path, rows: u64, rounds: usize) -> Result<Vec<(Run, Run)>> {
    write_rows(dir, rows, 10)?;
    let plain = project(false)?;
    let checked = project(true)?;
    let opts = RunOptions::default();
    let mut out = Vec::new();
    for _ in 0..rounds {
        let mut pair = (Run::default(), Run::default());
        for (with, p) in [(false, &plain), (true, &checked)] {
            let (cpu, wall) = (cpu_seconds(), Instant::now());
            super::run_project(p, dir, &opts, &|_| {}).await?;
            let run = Run { cpu_s: cpu_seconds() - cpu, wall_s: wall.elapsed().as_secs_f64() };
            if with {
                pair.1 = run;
            } else {
                pair.0 = run;
            }
        }
        out.push(pair);
    }
    Ok(out)
}
