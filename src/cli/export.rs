//! `medallion export PROJECT --to pyspark|sdp [--out DIR] [--pipeline NAME]`.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use crate::export::{NodeSchemas, Target, export_project_with_schemas};
use crate::model::Project;

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// The project file (TOML).
    pub project: PathBuf,
    /// `pyspark` (a script) or `sdp` (Spark Declarative Pipelines).
    #[arg(long, default_value = "pyspark")]
    pub to: Target,
    /// Folder to write `<project name>.py` into (created if missing).
    #[arg(long, default_value = ".")]
    pub out: PathBuf,
    /// Export only this pipeline (repeatable).
    #[arg(long)]
    pub pipeline: Vec<String>,
    /// The lakehouse root, to plan the nodes' columns (SDP lists a Flatten's and a Join's
    /// columns; default: the project's `lakehouse`).
    #[arg(long)]
    pub lakehouse: Option<PathBuf>,
}

/// Writes the export; prints its path on stdout and each TODO on stderr.
pub async fn export_command(args: &ExportArgs) -> anyhow::Result<i32> {
    let project = Project::load(&args.project)?;
    let schemas = match args.to {
        Target::Sdp => {
            let root = project.lakehouse_root(&args.project, args.lakehouse.as_deref());
            crate::export::plan_schemas(&project, &root, &args.pipeline).await
        }
        Target::PySpark => NodeSchemas::new(),
    };
    let export = export_project_with_schemas(&project, args.to, &args.pipeline, &schemas)?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let path = args.out.join(&export.file_name);
    std::fs::write(&path, &export.code)
        .with_context(|| format!("cannot write {}", path.display()))?;
    for todo in &export.todos {
        eprintln!("TODO: {todo}");
    }
    println!(
        "wrote {} ({}, {} lines{})",
        path.display(),
        args.to.label(),
        export.code.lines().count(),
        match export.todos.len() {
            0 => String::new(),
            n => format!(", {n} TODO(s) listed on stderr"),
        }
    );
    Ok(0)
}
