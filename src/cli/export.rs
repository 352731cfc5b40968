//! `medallion export PROJECT --to pyspark|sdp [--out DIR] [--pipeline NAME]`.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use crate::export::{Target, export_project};
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
}

/// Writes the export; prints its path on stdout and each TODO on stderr.
pub fn export_command(args: &ExportArgs) -> anyhow::Result<i32> {
    let project = Project::load(&args.project)?;
    let export = export_project(&project, args.to, &args.pipeline)?;
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
