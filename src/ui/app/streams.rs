//! Starting and stopping stream pipelines from the app, and stopping them when it closes.

use super::*;

/// How long closing the window waits for running streams to finish their batch in flight.
pub(super) const STOP_ON_EXIT: Duration = Duration::from_secs(15);

impl MedallionApp {
    /// Starts a stream pipeline until stopped (a batch pipeline runs once).
    pub fn start_pipeline(&mut self, name: &str) {
        if self.monitor.status(name).is_active() {
            return;
        }
        let request = self.engine.request_id();
        let cmd = Command::Run {
            request,
            project: Arc::new(self.doc.project.clone()),
            pipeline: Some(name.to_owned()),
            root: self.doc.lakehouse_root(),
            continuous: true,
        };
        if self.send_or_notify(cmd, "the start") {
            self.panels.streams.insert(request, name.to_owned());
            self.run.errors.clear();
            self.status = format!("started {name}");
        }
    }

    /// Starts every stream pipeline of the project, side by side.
    pub fn start_all_streams(&mut self) {
        let names: Vec<String> = self
            .doc
            .project
            .pipelines
            .iter()
            .filter(|p| p.mode == PipelineMode::Stream)
            .map(|p| p.name.clone())
            .collect();
        for n in names {
            self.start_pipeline(&n);
        }
        self.bottom = BottomTab::Monitor;
    }

    /// Stops a running stream after its batch in flight (all of them when `None`).
    pub fn stop_pipeline(&mut self, name: Option<&str>) {
        if !self.send_or_notify(Command::Stop { pipeline: name.map(str::to_owned) }, "Stop") {
            return;
        }
        self.status = match name {
            Some(n) => format!("stopping {n}…"),
            None => "stopping all streams…".into(),
        };
    }

    /// Stops every running stream after its batch in flight and waits (at most `within`) for
    /// them to finish, so that closing the window does not drop the engine's runtime under a
    /// Parquet write or a Delta commit (before, Quit while the demo streamed printed
    /// object_store's "Already shut down" panic and left the batch to be replayed). Returns
    /// whether every stream finished in time.
    pub fn stop_streams_before_exit(&mut self, within: Duration) -> bool {
        if self.panels.streams.is_empty() {
            return true;
        }
        if !self.engine.send(Command::Stop { pipeline: None }) {
            return false; // the engine's queue is full: it would not hear the Stop in time
        }
        let deadline = Instant::now() + within;
        while !self.panels.streams.is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
            for e in self.engine.drain() {
                self.handle(e);
            }
        }
        self.panels.streams.is_empty()
    }

    /// Stream pipelines started from the app and still running.
    pub fn running_streams(&self) -> Vec<String> {
        let mut names: Vec<String> = self.panels.streams.values().cloned().collect();
        names.sort();
        names
    }
}
