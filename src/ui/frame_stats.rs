//! Frame times of the real window, for measuring: with `MEDALLION_FRAME_STATS=<file>` the app
//! appends a line per frame to the file: eframe's CPU time for the frame (the app's UI code,
//! tessellation and the GL calls; not the wait for vsync) and the UI code's share, both in
//! milliseconds. `scripts/frame_time.sh` drives the window and reads the file.

use std::fs::File;
use std::io::{BufWriter, Write as _};
use std::time::Duration;

pub struct FrameStats {
    out: Option<BufWriter<File>>,
    /// The UI code's time in the previous frame (eframe reports a frame's CPU time one frame
    /// late, so the two are written together).
    last_ui: Option<Duration>,
}

impl FrameStats {
    /// Records only when `MEDALLION_FRAME_STATS` names a file that can be opened.
    pub fn from_env() -> Self {
        let out = std::env::var_os("MEDALLION_FRAME_STATS").and_then(|path| {
            let file = File::options().create(true).append(true).open(&path);
            match file {
                Ok(f) => Some(BufWriter::new(f)),
                Err(e) => {
                    eprintln!("MEDALLION_FRAME_STATS: cannot open {}: {e}", path.display());
                    None
                }
            }
        });
        Self { out, last_ui: None }
    }

    pub fn enabled(&self) -> bool {
        self.out.is_some()
    }

    /// Records the previous frame: eframe's CPU time for it and `ui`, this frame's UI time,
    /// kept for the next line.
    pub fn record(&mut self, frame: &eframe::Frame, ui: Duration) {
        let Some(out) = self.out.as_mut() else { return };
        if let (Some(cpu), Some(last_ui)) = (frame.info().cpu_usage, self.last_ui) {
            let ms = |s: f64| s * 1000.0;
            // flushed at once: the script reads the file while the app runs
            let _ = writeln!(out, "{:.3} {:.3}", ms(f64::from(cpu)), ms(last_ui.as_secs_f64()));
            let _ = out.flush();
        }
        self.last_ui = Some(ui);
    }
}
