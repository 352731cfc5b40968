//! The desktop designer (eframe/egui, glow renderer). It reads the model and talks to the
//! engine only through `EngineHandle`; nothing here blocks the UI thread.

pub mod app;
pub mod canvas;
mod canvas_text;
mod canvas_view;
pub mod catch_up;
pub mod export;
mod fonts;
pub mod form;
pub mod frame_stats;
pub mod inspector;
pub mod monitor;
pub mod pipeline_settings;
pub mod preview;
pub mod quality;
pub mod sql;
pub mod state;
pub mod stateful;
pub mod table_health;
pub mod tables;
pub mod tests_tab;
pub mod theme;

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::engine::demo_data::{DemoDataOptions, write_demo_data};
use crate::model::Project;

/// The demo project, as shipped in `projects/`: a generator streaming into bronze and silver.
const DEMO_PROJECT: &str = include_str!("../../projects/demo.toml");

/// The demo project's file name in the demo directory.
pub const DEMO_FILE: &str = "demo.toml";

/// `~/.local/share/medallion/demo` on Linux (the platform's data directory elsewhere).
pub fn demo_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("MEDALLION_DEMO_DIR") {
        return PathBuf::from(dir);
    }
    directories::ProjectDirs::from("", "", "medallion")
        .map(|d| d.data_dir().join("demo"))
        .unwrap_or_else(|| std::env::temp_dir().join("medallion-demo"))
}

/// Writes the demo data set (the `bronze/ssn` table the stream joins with, and landing files)
/// and the demo project into `dir` on first use; returns the project file.
pub fn ensure_demo(dir: &Path) -> anyhow::Result<PathBuf> {
    Ok(ensure_demo_first(dir)?.0)
}

/// [`ensure_demo`], and whether this was the first time (the demo was written just now).
pub fn ensure_demo_first(dir: &Path) -> anyhow::Result<(PathBuf, bool)> {
    let project_file = dir.join(DEMO_FILE);
    let first = !project_file.exists();
    if !dir.join("landing/users").is_dir() || !dir.join("bronze/ssn/_delta_log").is_dir() {
        let runtime = tokio::runtime::Runtime::new()?;
        // ssn for the first 20,000 generated users: 100 s of the demo stream
        runtime
            .block_on(write_demo_data(
                dir,
                &DemoDataOptions { users: 20_000, files: 4, seed: 42, impressions: 2000 },
            ))
            .context("writing the demo data set")?;
    }
    if !project_file.exists() {
        let mut project = Project::from_toml(DEMO_PROJECT, Path::new(DEMO_FILE))?;
        project.lakehouse = ".".into();
        // the recorded tests' fixtures stay in the source tree's projects/tests
        project.tests.clear();
        project.save(&project_file)?;
    }
    Ok((project_file, first))
}

/// Opens the desktop app on `project`; without one, on the demo project. On the first launch
/// its streams are already running, so rows move within seconds; later launches open it
/// stopped (a demo left streaming forever would grow without bound), one click from running.
pub fn run(project: Option<PathBuf>) -> anyhow::Result<()> {
    let (path, demo) = match project {
        Some(p) => (p, false),
        None => ensure_demo_first(&demo_dir())?,
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
        Box::new(move |cc| {
            let mut app = app::MedallionApp::new(cc, Some(path))?;
            if demo {
                app.start_all_streams();
            }
            Ok(Box::new(app))
        }),
    )
    .map_err(|e| anyhow::anyhow!("the desktop app failed: {e}"))
}
