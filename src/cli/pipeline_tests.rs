//! `medallion test` and `medallion test record`: recorded pipeline tests from the command line.

use std::time::Instant;

use anyhow::{Context, bail};

use crate::engine;
use crate::model::{NodeId, Project};

use super::{TestArgs, TestCommand, load};

/// `medallion test`: replay (or accept) the recorded tests, or `test record`.
pub(super) async fn test_command(args: TestArgs) -> anyhow::Result<i32> {
    use engine::testing;
    if let Some(TestCommand::Record { project: p, node, name, pipeline, limit, batches }) =
        args.record
    {
        let (project, root) = load(&p)?;
        let opts = testing::RecordOptions {
            name: name.clone(),
            pipeline,
            node: NodeId::new(node),
            limit,
            batches,
        };
        let recorded = testing::record(&project, &p.project, &root, &opts)
            .await
            .map_err(|e| anyhow::anyhow!(e.detail()))?;
        let t = &recorded.test;
        println!(
            "recorded test `{name}` of node `{}` (pipeline `{}`) in {} micro-batch(es)",
            t.node, t.pipeline, t.batches
        );
        for (source, rows) in &recorded.sources {
            println!("  fixture: {rows} row(s) of source `{source}`");
        }
        let expected: Vec<String> = recorded.expected_rows.iter().map(usize::to_string).collect();
        println!("  expected output: {} row(s) (per batch)", expected.join(" + "));
        for n in &recorded.notes {
            println!("  {n}");
        }
        if !t.key.is_empty() {
            println!("  rows are named by `{}` in diffs", t.key.join(", "));
        }
        if t.ordered {
            println!("  the node sorts: rows compare in order");
        }
        let text = std::fs::read_to_string(&p.project)
            .with_context(|| format!("reading {}", p.project.display()))?;
        let updated = crate::model::pipeline_test::upsert_test_block(&text, t, &recorded.notes)
            .map_err(anyhow::Error::msg)?;
        // the project must still load with the new entry before it replaces the file
        Project::from_toml(&updated, &p.project)?;
        let tmp = p.project.with_extension("toml.tmp");
        std::fs::write(&tmp, updated).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &p.project)
            .with_context(|| format!("writing {}", p.project.display()))?;
        println!(
            "wrote the fixtures to {} and the [[tests]] entry to {}",
            testing::fixtures::test_dir(&p.project, t).display(),
            p.project.display()
        );
        return Ok(0);
    }
    let Some(file) = args.project else { bail!("give the project file: medallion test PROJECT") };
    let project = Project::load(&file)?;
    let selected = testing::select(&project, args.name.as_deref());
    if selected.is_empty() {
        match &args.name {
            Some(glob) => {
                println!(
                    "no test of project `{}` matches `{glob}`; tests are: {}",
                    project.name,
                    project.tests.iter().map(|t| t.name.as_str()).collect::<Vec<_>>().join(", ")
                );
                return Ok(1);
            }
            None => {
                println!(
                    "project `{}` has no tests; record one with `medallion test record`",
                    project.name
                );
                println!("0 passed, 0 failed");
                return Ok(0);
            }
        }
    }
    if args.accept {
        for t in selected {
            let rows = testing::accept(&project, &file, &t.name)
                .await
                .map_err(|e| anyhow::anyhow!("test `{}`: {}", t.name, e.detail()))?;
            println!("accepted the current output of `{}` as expected ({rows} row(s))", t.name);
        }
        return Ok(0);
    }
    let started = Instant::now();
    let mut results = Vec::new();
    for t in selected {
        let r = testing::run_test(&project, &file, t).await;
        let verdict = if r.passed() { "ok" } else { "FAILED" };
        println!(
            "test {} ({} / {}) ... {verdict} ({} ms)",
            r.name, r.pipeline, r.node, r.duration_ms
        );
        print!("{}", r.failure_text());
        results.push(r);
    }
    println!("{} ({:.2} s)", testing::summary_line(&results), started.elapsed().as_secs_f64());
    Ok(if results.iter().all(testing::TestResult::passed) { 0 } else { 1 })
}
