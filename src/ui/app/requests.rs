//! What the monitor's panels ask the engine for: tables, history, health and upkeep, time
//! travel, comparisons, the event log, checkpoints and their reset.

use super::*;

impl MedallionApp {
    /// Shows a bottom tab (and loads what it shows).
    pub fn show_tab(&mut self, tab: BottomTab) {
        self.bottom = tab;
        self.refresh_panels(true);
    }

    pub fn bottom_tab(&self) -> BottomTab {
        self.bottom
    }

    /// Asks the engine for a Delta table's rows as of `version` (time travel).
    pub fn show_version(&mut self, path: PathBuf, version: i64) {
        if let Some((old, _)) = self.tables.loading.take() {
            self.engine.send(Command::Cancel { request: old });
        }
        let request = self.engine.request_id();
        if self.engine.send(Command::TableAt { request, path, version }) {
            self.tables.loading = Some((request, version));
            self.tables.diff = None;
        }
    }

    /// Selects a table in the lakehouse panel and loads its versions.
    pub fn select_table(&mut self, path: PathBuf) {
        let old = std::mem::take(&mut self.tables);
        let in_flight = [old.loading.map(|(r, _)| r), old.comparing];
        for request in in_flight.into_iter().flatten() {
            self.engine.send(Command::Cancel { request });
        }
        // everything about the previous table goes; the list stays
        self.tables = TablesState {
            tables: old.tables,
            error: old.error,
            selected: Some(path.clone()),
            ..TablesState::default()
        };
        self.request_history(path);
    }

    /// "⚠ small files" on the sinks whose tables need compaction.
    pub(super) fn upkeep_badges(
        &self,
        pipeline: &crate::model::Pipeline,
    ) -> HashMap<NodeId, String> {
        let root = self.doc.lakehouse_root();
        pipeline
            .sinks()
            .filter_map(|n| {
                let NodeKind::DeltaSink(s) = &n.kind else { return None };
                let path = crate::engine::delta::resolve(
                    &root,
                    &crate::model::env::expand(&s.table).ok()?,
                );
                let t = self.tables.tables.iter().find(|t| t.path == path)?;
                t.needs_compaction()
                    .then(|| (n.id.clone(), format!("⚠ {} small files: optimize", t.small_files)))
            })
            .collect()
    }

    /// Health, OPTIMIZE and VACUUM requests of the Lakehouse panel.
    pub(super) fn table_upkeep(&mut self, action: UpkeepAction) {
        let request = self.engine.request_id();
        match action {
            UpkeepAction::Health(path) => {
                // a stream commits every trigger: one health read at a time is plenty
                if self.tables.upkeep.health_request.is_some() {
                    return;
                }
                if self.engine.send(Command::Health { request, path }) {
                    self.tables.upkeep.health_request = Some(request);
                }
            }
            UpkeepAction::Run(path, op) => {
                if self.engine.send(Command::Upkeep { request, path, op }) {
                    self.tables.upkeep.request = Some(request);
                } else {
                    self.tables.upkeep.dialog = table_health::Dialog::Done(Err(
                        "the engine is busy: try again in a moment".into(),
                    ));
                }
            }
        }
    }

    pub(super) fn request_history(&mut self, path: PathBuf) {
        self.table_upkeep(UpkeepAction::Health(path.clone()));
        let request = self.engine.request_id();
        if self.engine.send(Command::History { request, path }) {
            self.panels.history_request = Some(request);
        }
    }

    pub fn compare_versions(&mut self, path: PathBuf, from: i64, to: i64) {
        if let Some(old) = self.tables.comparing.take() {
            self.engine.send(Command::Cancel { request: old });
        }
        let request = self.engine.request_id();
        if self.engine.send(Command::Compare { request, path, from, to }) {
            self.tables.comparing = Some(request);
        }
    }

    /// Events loaded from the persisted log.
    pub fn logged_events(&self) -> &[LoggedEvent] {
        &self.panels.events
    }

    /// The checkpoint shown in the checkpoint view.
    pub fn checkpoint_info(&self) -> Option<&CheckpointInfo> {
        self.panels.checkpoint.as_ref().and_then(|(_, r)| r.as_deref().ok())
    }

    /// Reloads what the visible monitor tab shows: at once when `now`, else at most every 2 s
    /// while streams run.
    pub(super) fn refresh_panels(&mut self, now: bool) {
        let due = self.panels.last_refresh.is_none_or(|t| t.elapsed() >= Duration::from_secs(2));
        let streaming_refresh = due && self.monitor.any_active();
        if !(now || streaming_refresh) {
            return;
        }
        self.panels.last_refresh = Some(Instant::now());
        let root = self.doc.lakehouse_root();
        // the sink nodes' small-files badges need the table list even when another tab is
        // open: every 10 s while streams run
        let badges_due =
            self.panels.tables_listed.is_none_or(|t| t.elapsed() >= Duration::from_secs(10));
        if self.bottom != BottomTab::Lakehouse && badges_due && self.panels.tables_request.is_none()
        {
            let request = self.engine.request_id();
            if self.engine.send(Command::Tables { request, root: root.clone() }) {
                self.panels.tables_request = Some(request);
                self.panels.tables_listed = Some(Instant::now());
            }
        }
        match self.bottom {
            BottomTab::Lakehouse if self.panels.tables_request.is_none() => {
                let request = self.engine.request_id();
                if self.engine.send(Command::Tables { request, root }) {
                    self.panels.tables_request = Some(request);
                }
            }
            BottomTab::Events if self.panels.events_request.is_none() => {
                let request = self.engine.request_id();
                // the tail travels to the engine and back: only appended bytes are read
                let tail = match self.panels.event_tail.take() {
                    Some(t) if t.root() == root => t,
                    _ => Box::new(EventTail::new(&root, 5000)),
                };
                if self.engine.send(Command::LoadEvents { request, tail }) {
                    self.panels.events_request = Some(request);
                }
            }
            BottomTab::Checkpoint if self.panels.checkpoint_request.is_none() => {
                let Some(p) = self.pipeline().filter(|p| p.mode == PipelineMode::Stream) else {
                    self.panels.checkpoint = None;
                    return;
                };
                let request = self.engine.request_id();
                let cmd = Command::Checkpoint {
                    request,
                    project: Arc::new(self.doc.project.clone()),
                    pipeline: p.name.clone(),
                    root,
                };
                if self.engine.send(cmd) {
                    self.panels.checkpoint_request = Some(request);
                }
            }
            _ => {}
        }
    }

    /// Asks to reset a stopped stream's checkpoint; a modal says what will be reprocessed.
    pub fn ask_reset_checkpoint(&mut self) {
        let Some((name, Ok(info))) = &self.panels.checkpoint else { return };
        let Some(p) = self.doc.project.pipeline(name) else { return };
        let lines = monitor::reset_consequences(info, p);
        self.panels.confirm_reset = Some((name.clone(), lines));
    }

    /// Resets the checkpoint the confirmation was about.
    pub fn confirm_reset_checkpoint(&mut self) {
        let Some((pipeline, _)) = self.panels.confirm_reset.take() else { return };
        let request = self.engine.request_id();
        let sent = self.engine.send(Command::ResetCheckpoint {
            request,
            project: Arc::new(self.doc.project.clone()),
            pipeline,
            root: self.doc.lakehouse_root(),
        });
        if !sent {
            self.status = "the engine is busy: the reset was not sent, try again".into();
        }
    }

    pub fn reset_pending(&self) -> Option<&[String]> {
        self.panels.confirm_reset.as_ref().map(|(_, l)| l.as_slice())
    }

    pub fn is_busy(&self) -> bool {
        self.preview.request.is_some() || self.run.request.is_some() || self.plan_request.is_some()
    }

    pub fn preview_rows(&self) -> Option<usize> {
        self.preview.output.as_ref().and_then(|o| o.as_ref().ok()).map(Preview::rows)
    }

    /// The preview's inputs: port and rows (or the error).
    pub fn preview_inputs(&self) -> Vec<(String, Result<usize, String>)> {
        let rows =
            |r: &Result<Preview, String>| r.as_ref().map(Preview::rows).map_err(Clone::clone);
        self.preview.inputs.iter().map(|(port, r)| (port.clone(), rows(r))).collect()
    }

    pub fn preview_error(&self) -> Option<&str> {
        self.preview.output.as_ref().and_then(|o| o.as_ref().err()).map(String::as_str)
    }

    pub fn run_rows(&self) -> &HashMap<NodeId, u64> {
        &self.run.rows
    }
}
