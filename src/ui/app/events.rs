//! Engine events into the app's state: plans, previews, runs, panels' replies.

use super::*;

impl MedallionApp {
    pub(super) fn handle(&mut self, event: Event) {
        match event {
            Event::Planned { request, pipeline, schemas, diagnostics } => {
                if self.plan_request == Some(request) {
                    self.plan_request = None;
                }
                self.schemas.retain(|(p, _), _| p != &pipeline);
                self.schemas.extend(schemas.into_iter().map(|(n, s)| ((pipeline.clone(), n), s)));
                self.diagnostics.retain(|d| d.pipeline != pipeline);
                self.diagnostics.extend(diagnostics);
            }
            Event::Previewed { request, node, output, inputs } => {
                if self.preview.request == Some(request) {
                    if let Err(e) = &output {
                        self.run.errors.insert(node.clone(), e.clone());
                    } else {
                        self.run.errors.remove(&node);
                    }
                    self.preview.request = None;
                    self.preview.output = Some(output);
                    self.preview.inputs = inputs;
                }
            }
            Event::Run(e) => {
                self.monitor.on_event(&e);
                self.quality.on_event(&e);
                if let RunEvent::PipelineFailed { node: Some(n), message, .. } = &e {
                    self.run.errors.insert(n.clone(), message.clone());
                }
                if let RunEvent::SinkCommitted { node, rows_added, rows_updated, .. } = &e {
                    *self.run.rows.entry(node.clone()).or_default() += rows_added + rows_updated;
                }
                if let RunEvent::NodeRows { pipeline, rows } = &e
                    && self.pipeline().is_some_and(|p| &p.name == pipeline)
                {
                    self.run.rows.extend(rows.iter().map(|(n, r)| (NodeId::new(n.clone()), *r)));
                }
                if let RunEvent::BatchCompleted(p) = &e {
                    for (n, r) in &p.rows_per_node {
                        *self.run.rows.entry(NodeId::new(n.clone())).or_default() += r;
                    }
                    for (n, s) in &p.sources {
                        *self.run.rows.entry(NodeId::new(n.clone())).or_default() += s.input_rows;
                    }
                }
                self.run.log.push(e.to_string());
                if self.run.log.len() > 2000 {
                    self.run.log.drain(..1000);
                }
            }
            Event::RunFinished { request, result, failed_node }
                if self.panels.streams.contains_key(&request) =>
            {
                let pipeline = self.panels.streams.remove(&request).unwrap_or_default();
                // the run is over whatever events got lost on the way
                let error = result.as_ref().err().map(|e| (failed_node.clone(), e.clone()));
                self.monitor.run_ended(&pipeline, error);
                match result {
                    Ok(_) => self.status = format!("{pipeline} stopped"),
                    Err(e) => {
                        self.status = format!("{pipeline}: {e}");
                        self.run.log.push(format!("FAILED: {e}"));
                        if let Some(n) = failed_node {
                            self.run.errors.insert(n, e);
                        }
                    }
                }
                self.schedule_plan(Duration::ZERO);
            }
            Event::RunFinished { request, result, failed_node } => {
                if self.run.request == Some(request) {
                    self.run.request = None;
                    match result {
                        Ok(s) => {
                            self.status = format!("run finished: {} rows written", s.rows_written);
                            self.run.log.push(self.status.clone());
                        }
                        Err(e) => {
                            self.notify(format!("The run failed: {e}"), true);
                            self.run.log.push(format!("FAILED: {e}"));
                            if let Some(n) = failed_node {
                                self.run.errors.insert(n, e);
                            }
                        }
                    }
                    // tables changed: schemas downstream may too
                    self.schedule_plan(Duration::ZERO);
                }
            }
            Event::Cancelled { request } => {
                if self.run.request == Some(request) {
                    self.run.request = None;
                }
            }
            Event::Tables { request, result } => {
                if self.panels.tables_request == Some(request) {
                    self.panels.tables_request = None;
                    match result {
                        Ok(t) => {
                            // a new version of the selected table: reload its timeline
                            let changed = self.tables.selected_table().map(|t| t.version)
                                != self.tables.selected.as_ref().and_then(|sel| {
                                    t.iter().find(|x| &x.path == sel).map(|x| x.version)
                                });
                            self.tables.tables = t;
                            self.tables.error = None;
                            if changed
                                && self.panels.history_request.is_none()
                                && let Some(sel) = self.tables.selected.clone()
                            {
                                self.request_history(sel);
                            }
                        }
                        Err(e) => self.tables.error = Some(e),
                    }
                }
            }
            Event::History { request, path, result } => {
                if self.panels.history_request == Some(request)
                    && self.tables.selected.as_ref() == Some(&path)
                {
                    self.panels.history_request = None;
                    match result {
                        Ok(h) => {
                            self.tables.history = h;
                            self.tables.history_error = None;
                        }
                        Err(e) => self.tables.history_error = Some(e),
                    }
                }
            }
            Event::TableAt { request, path, version, result } => {
                if self.tables.loading.is_some_and(|(r, _)| r == request) {
                    self.tables.loading = None;
                    if self.tables.selected.as_ref() == Some(&path) {
                        self.tables.shown = Some((version, result));
                    }
                }
            }
            Event::Compared { request, path, result } => {
                if self.tables.comparing == Some(request)
                    && self.tables.selected.as_ref() == Some(&path)
                {
                    self.tables.comparing = None;
                    self.tables.diff = Some(result.map(|d| *d));
                }
            }
            Event::Health { request, result, .. } => self.tables.upkeep.on_health(request, result),
            Event::Upkeep { request, path, result } => {
                if self.tables.upkeep.on_upkeep(request, result)
                    && self.tables.selected.as_ref() == Some(&path)
                {
                    self.refresh_panels(true);
                    self.request_history(path);
                }
            }
            Event::EventLog { request, result } => {
                if self.panels.events_request == Some(request) {
                    self.panels.events_request = None;
                    match result {
                        Ok((tail, changed)) => {
                            if changed || tail.events().len() != self.panels.events.len() {
                                self.panels.events = tail.events().to_vec();
                            }
                            self.panels.event_tail = Some(tail);
                        }
                        Err(e) => self.status = format!("cannot read the event log: {e}"),
                    }
                }
            }
            Event::Checkpoint { request, pipeline, result } => {
                if self.panels.checkpoint_request == Some(request) {
                    self.panels.checkpoint_request = None;
                    self.panels.checkpoint = Some((pipeline, result));
                }
            }
            Event::CheckpointReset { pipeline, result, .. } => {
                self.status = match result {
                    Ok(()) => format!("checkpoint of {pipeline} reset: the next start reprocesses"),
                    Err(e) => format!("cannot reset the checkpoint of {pipeline}: {e}"),
                };
                // a view read before the reset must not be shown after it
                self.panels.checkpoint = None;
                self.panels.checkpoint_request = None;
                self.refresh_panels(true);
            }
            Event::Inferred { node, result, .. } => match result {
                Ok(ddl) => {
                    self.before_edit();
                    if let Some(p) = self.pipeline_mut()
                        && let Some(n) = p.node_mut(&node)
                        && let NodeKind::FileSource(s) = &mut n.kind
                    {
                        s.schema = Some(ddl);
                    }
                    self.status = format!("schema of `{node}` inferred from a sample");
                }
                Err(e) => self.status = format!("cannot infer the schema of `{node}`: {e}"),
            },
            Event::DirectQuery(e) => self.sql.on_event(e),
            Event::Tests(e) => {
                if let Some(super::super::tests_tab::TestsOutcome::Recorded(rec)) =
                    self.tests.on_event(e)
                {
                    self.before_edit();
                    let tests = &mut self.doc.project.tests;
                    match tests.iter_mut().find(|t| t.name == rec.test.name) {
                        Some(t) => *t = rec.test,
                        None => tests.push(rec.test),
                    }
                    self.status = self.tests.message.clone();
                }
            }
        }
    }

    /// Engine events and due work; called every frame (and by tests between steps).
    pub fn poll(&mut self) {
        for e in self.engine.drain() {
            self.handle(e);
        }
        let ops: Vec<FileOp> = match self.file_ops.lock() {
            Ok(mut ops) => ops.drain(..).collect(),
            Err(_) => Vec::new(),
        };
        for op in ops {
            match op {
                FileOp::Open(p) => self.open_path(p),
                FileOp::SaveAs(p) => self.save_to(p),
                FileOp::NoDialog { save } => {
                    self.notify(
                        "The system file dialog did not open (no xdg-desktop-portal?): type the path here instead.",
                        true,
                    );
                    self.open_path_dialog(save);
                }
            }
        }
        if let Some(due) = self.plan_due
            && Instant::now() >= due
        {
            self.plan_due = None;
            self.send_plan();
        }
        self.refresh_panels(false);
        self.tests.poll(&self.engine, &self.doc, &self.ctx);
        if self.is_busy() {
            self.ctx.request_repaint_after(Duration::from_millis(50));
        } else if self.monitor.any_active() {
            // edge rates decay and panels refresh even between batches
            self.ctx.request_repaint_after(Duration::from_millis(500));
        }
    }

    // ---- drawing ---------------------------------------------------------------------------
}
