//! The desktop designer (eframe/egui, glow renderer). It reads the model and talks to the
//! engine only through `EngineHandle`; nothing here blocks the UI thread.

pub mod app;
pub mod canvas;
pub mod inspector;
pub mod preview;
pub mod state;
pub mod theme;

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::engine::demo_data::{DemoDataOptions, write_demo_data};
use crate::model::Project;

/// The demo project, as shipped in `projects/`.
const DEMO_PROJECT: &str = include_str!("../../projects/users_batch.toml");

/// `~/.local/share/medallion/demo` on Linux (the platform's data directory elsewhere).
pub fn demo_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("MEDALLION_DEMO_DIR") {
        return PathBuf::from(dir);
    }
    directories::ProjectDirs::from("", "", "medallion")
        .map(|d| d.data_dir().join("demo"))
        .unwrap_or_else(|| std::env::temp_dir().join("medallion-demo"))
}

/// Writes the demo data set and project into `dir` on first use; returns the project file.
pub fn ensure_demo(dir: &Path) -> anyhow::Result<PathBuf> {
    let project_file = dir.join("users_batch.toml");
    if !dir.join("landing/users").is_dir() || !dir.join("bronze/ssn/_delta_log").is_dir() {
        let runtime = tokio::runtime::Runtime::new()?;
        runtime
            .block_on(write_demo_data(dir, &DemoDataOptions { users: 5000, files: 4, seed: 42 }))
            .context("writing the demo data set")?;
    }
    if !project_file.exists() {
        let mut project = Project::from_toml(DEMO_PROJECT, Path::new("users_batch.toml"))?;
        project.lakehouse = ".".into();
        project.save(&project_file)?;
    }
    Ok(project_file)
}

/// Opens the desktop app on `project` (the demo project when `None`).
pub fn run(project: Option<PathBuf>) -> anyhow::Result<()> {
    let path = match project {
        Some(p) => p,
        None => ensure_demo(&demo_dir())?,
    };
    let options = eframe::NativeOptions {
        viewport: eframe::egui::ViewportBuilder::default()
            .with_title("Medallion")
            .with_app_id("medallion")
            .with_inner_size([1400.0, 860.0])
            .with_min_inner_size([800.0, 500.0]),
        renderer: eframe::Renderer::Glow,
        ..Default::default()
    };
    eframe::run_native(
        "medallion",
        options,
        Box::new(move |cc| Ok(Box::new(app::MedallionApp::new(cc, Some(path))?))),
    )
    .map_err(|e| anyhow::anyhow!("the desktop app failed: {e}"))
}
