//! Frame times of the real window, for measuring: with `MEDALLION_FRAME_STATS=<file>` the app
//! appends a line per frame to the file, in milliseconds: eframe's frame time (wall clock: the
//! app's UI code, tessellation and the GL calls, not the wait for vsync), the UI thread's CPU
//! time over the whole frame (the same work, without the time other threads took the core),
//! and the UI code's CPU time alone. `scripts/frame_time.sh` drives the window and reads it.

use std::fs::File;
use std::io::{BufWriter, Write as _};
use std::time::Duration;

pub struct FrameStats {
    out: Option<BufWriter<File>>,
    /// The thread's CPU clock when the previous frame's UI code started, and that code's CPU
    /// time (eframe reports a frame's time one frame late, so they are written together).
    last: Option<(Duration, Duration)>,
}

/// The calling thread's CPU time.
pub fn thread_cpu() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(t.tv_sec.max(0) as u64, t.tv_nsec.clamp(0, 999_999_999) as u32)
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
        Self { out, last: None }
    }

    pub fn off() -> Self {
        Self { out: None, last: None }
    }

    pub fn enabled(&self) -> bool {
        self.out.is_some()
    }

    /// Runs this frame's UI code `f` and records the previous frame.
    pub fn measure(&mut self, frame: &eframe::Frame, f: impl FnOnce()) {
        let started = thread_cpu();
        f();
        let ui = thread_cpu().saturating_sub(started);
        let Some(out) = self.out.as_mut() else { return };
        if let (Some(wall), Some((last_start, last_ui))) = (frame.info().cpu_usage, self.last) {
            let whole = started.saturating_sub(last_start);
            let ms = |d: Duration| d.as_secs_f64() * 1000.0;
            // flushed at once: the script reads the file while the app runs
            let _ = writeln!(
                out,
                "{:.3} {:.3} {:.3}",
                f64::from(wall) * 1000.0,
                ms(whole),
                ms(last_ui)
            );
            let _ = out.flush();
        }
        self.last = Some((started, ui));
    }
}
