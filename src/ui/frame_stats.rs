//! Frame times of the real window, for measuring: with `MEDALLION_FRAME_STATS=<file>` the app
//! appends each frame's CPU time in milliseconds to the file, a line per frame. The time is
//! eframe's: the app's UI code, tessellation and the GL calls, without the wait for vsync.
//! `scripts/frame_time.sh` drives the window and reads the file.

use std::fs::File;
use std::io::{BufWriter, Write as _};

pub struct FrameStats {
    out: Option<BufWriter<File>>,
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
        Self { out }
    }

    /// Records the previous frame's CPU time (eframe reports it one frame late).
    pub fn record(&mut self, frame: &eframe::Frame) {
        let Some(out) = self.out.as_mut() else { return };
        let Some(seconds) = frame.info().cpu_usage else { return };
        // flushed at once: the script reads the file while the app runs (a write per frame
        // costs microseconds, and only when measuring)
        let _ = writeln!(out, "{:.3}", f64::from(seconds) * 1000.0);
        let _ = out.flush();
    }
}
