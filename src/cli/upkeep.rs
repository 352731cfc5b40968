//! `medallion optimize` and `medallion vacuum`: the table by path or by its name in a project,
//! and the report printed.

use std::path::PathBuf;

use anyhow::{Context, bail};

use crate::engine;
use crate::model::Project;

use super::TableArgs;

pub(super) async fn optimize(
    table: &TableArgs,
    where_: Option<String>,
    zorder_by: Vec<String>,
    target_size: Option<u64>,
) -> anyhow::Result<i32> {
    let (path, meta) = resolve_table(table)?;
    let opts = engine::lakehouse::OptimizeOptions { where_, zorder_by, target_size };
    let report = engine::lakehouse::optimize(&path, &opts, &meta)
        .await
        .with_context(|| format!("optimize {}", path.display()))?;
    println!("{}: {report}", path.display());
    Ok(0)
}

pub(super) async fn vacuum(
    table: &TableArgs,
    retain_hours: Option<f64>,
    dry_run: bool,
    force: bool,
) -> anyhow::Result<i32> {
    let (path, meta) = resolve_table(table)?;
    let opts = engine::lakehouse::VacuumOptions { retain_hours, dry_run, force };
    let report = match engine::lakehouse::vacuum(&path, &opts, &meta).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(1);
        }
    };
    for (file, bytes) in &report.files {
        println!("{}{file}\t{bytes}", if dry_run { "would delete " } else { "deleted " });
    }
    println!("{}: {report}", path.display());
    Ok(0)
}

/// The table `optimize` / `vacuum` work on, and the commit metadata that names the command.
fn resolve_table(args: &TableArgs) -> anyhow::Result<(PathBuf, engine::delta::CommitMeta)> {
    let mut meta = engine::delta::CommitMeta::tool("medallion-cli");
    let path = match &args.project {
        None => PathBuf::from(&args.table),
        Some(file) => {
            let project = Project::load(file)?;
            let root = project.lakehouse_root(file, args.lakehouse.as_deref());
            meta.project = project.name.clone();
            let dotted = args.table.replacen('.', "/", 1);
            let sink =
                project.pipelines.iter().flat_map(|p| p.sinks()).find_map(|n| match &n.kind {
                    crate::model::node::NodeKind::DeltaSink(s)
                        if n.id.as_str() == args.table
                            || s.table == args.table
                            || s.table == dotted =>
                    {
                        Some(s.table.clone())
                    }
                    _ => None,
                });
            let table = match sink {
                Some(t) => crate::model::env::expand(&t)?,
                None if root.join(&dotted).join("_delta_log").is_dir() => dotted,
                None => args.table.clone(),
            };
            engine::delta::resolve(&root, &table)
        }
    };
    if !path.join("_delta_log").is_dir() {
        bail!(
            "no Delta table at {} (no _delta_log folder); give a table path, or a table of a project with --project PROJECT (silver/users, silver.users or the sink's id)",
            path.display()
        );
    }
    Ok((path, meta))
}
