//! `EngineHandle`: how the UI talks to the engine. Commands go in over a bounded channel, events
//! come back over another; the engine's tokio runtime lives here, so the UI thread never
//! blocks. The UI drains events each frame and repaints when some arrived.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow::datatypes::SchemaRef;
use tokio::sync::{mpsc, watch};

use crate::model::{Diagnostic, NodeId, Project};

use super::checkpoint::{Checkpoint, CheckpointView};
use super::lakehouse::{HistoryEntry, TableInfo, VersionDiff, VersionPreview};
use super::stream::StreamProgress;
use super::{Preview, RunEvent, RunOptions, RunSummary};

/// What the UI asks of the engine. Each carries the project as it is now (a snapshot).
#[derive(Debug)]
pub enum Command {
    /// Plan every node of a pipeline: output schemas and diagnostics.
    Plan { request: u64, project: Arc<Project>, pipeline: String, root: PathBuf },
    /// Sample rows of a node's output (and, for a transform, of its first input).
    Preview {
        request: u64,
        project: Arc<Project>,
        pipeline: String,
        node: NodeId,
        root: PathBuf,
        limit: usize,
    },
    /// Run pipelines: batch ones once; streams with availableNow, or, when `continuous`,
    /// until stopped.
    Run {
        request: u64,
        project: Arc<Project>,
        pipeline: Option<String>,
        root: PathBuf,
        continuous: bool,
    },
    /// Asks running streams to stop after the batch in flight (all of them when `None`).
    Stop { pipeline: Option<String> },
    /// Cancels a preview or a run still in flight.
    Cancel { request: u64 },
    /// Every Delta table under the lakehouse root.
    Tables { request: u64, root: PathBuf },
    /// The versions of one table, newest first.
    History { request: u64, path: PathBuf },
    /// Time travel: rows of a table as of a version.
    TableAt { request: u64, path: PathBuf, version: i64 },
    /// Rows added and removed between two versions of a table.
    Compare { request: u64, path: PathBuf, from: i64, to: i64 },
    /// A table's health (files, small files, versions, last OPTIMIZE/VACUUM, unreferenced).
    Health { request: u64, path: PathBuf },
    /// OPTIMIZE or VACUUM (or VACUUM's dry run) from the Lakehouse panel.
    Upkeep { request: u64, path: PathBuf, op: super::lakehouse::UpkeepOp },
    /// Reads what was appended to the event logs since the tail's last read.
    LoadEvents { request: u64, tail: Box<super::eventlog::EventTail> },
    /// What a stream pipeline's checkpoint holds.
    Checkpoint { request: u64, project: Arc<Project>, pipeline: String, root: PathBuf },
    /// Deletes a stopped stream pipeline's checkpoint.
    ResetCheckpoint { request: u64, project: Arc<Project>, pipeline: String, root: PathBuf },
    /// Infers a files source's schema from a sample of its files, as DDL.
    InferSchema {
        request: u64,
        project: Arc<Project>,
        pipeline: String,
        node: NodeId,
        root: PathBuf,
    },
    /// The SQL console and the Postgres-wire server (Direct Query).
    DirectQuery(super::direct_query::DirectQueryCommand),
    /// Recorded pipeline tests: run, record, accept (the Tests tab).
    Tests(super::testing::handle::TestsCommand),
}

/// What the engine reports back.
#[derive(Debug)]
pub enum Event {
    Planned {
        request: u64,
        pipeline: String,
        schemas: HashMap<NodeId, SchemaRef>,
        diagnostics: Vec<Diagnostic>,
    },
    Previewed {
        request: u64,
        node: NodeId,
        output: Result<Preview, String>,
        /// Every input port that is connected, in port order, with its rows.
        inputs: Vec<(String, Result<Preview, String>)>,
    },
    Run(RunEvent),
    RunFinished {
        request: u64,
        result: Result<RunSummary, String>,
        failed_node: Option<NodeId>,
    },
    Cancelled {
        request: u64,
    },
    Inferred {
        request: u64,
        node: NodeId,
        result: Result<String, String>,
    },
    Tables {
        request: u64,
        result: Result<Vec<TableInfo>, String>,
    },
    Health {
        request: u64,
        path: PathBuf,
        result: Result<Box<super::lakehouse::TableHealth>, String>,
    },
    Upkeep {
        request: u64,
        path: PathBuf,
        result: Result<super::lakehouse::UpkeepDone, String>,
    },
    History {
        request: u64,
        path: PathBuf,
        result: Result<Vec<HistoryEntry>, String>,
    },
    TableAt {
        request: u64,
        path: PathBuf,
        version: i64,
        result: Result<VersionPreview, String>,
    },
    Compared {
        request: u64,
        path: PathBuf,
        result: Result<Box<VersionDiff>, String>,
    },
    /// The tail, read up to now, and whether it holds new events.
    EventLog {
        request: u64,
        result: Result<(Box<super::eventlog::EventTail>, bool), String>,
    },
    Checkpoint {
        request: u64,
        pipeline: String,
        result: Result<Box<CheckpointInfo>, String>,
    },
    CheckpointReset {
        request: u64,
        pipeline: String,
        result: Result<(), String>,
    },
    DirectQuery(super::direct_query::DirectQueryEvent),
    Tests(super::testing::handle::TestsEvent),
}

/// A checkpoint and the newest progress of its stream (for Kafka end offsets and backlog).
#[derive(Clone, Debug)]
pub struct CheckpointInfo {
    pub view: CheckpointView,
    pub last_progress: Option<StreamProgress>,
}

/// Versions a table's timeline shows at most (the newest): a stream commits often.
pub const TIMELINE_VERSIONS: usize = 1000;

/// Rows a table preview or comparison shows at most.
pub const TABLE_PREVIEW_ROWS: usize = 100;

async fn checkpoint_info(
    project: &Project,
    pipeline: &str,
    root: &Path,
) -> Result<CheckpointInfo, String> {
    let p = project.pipeline(pipeline).ok_or_else(|| format!("no pipeline `{pipeline}`"))?;
    let dir = super::stream::checkpoint_dir(p, root).map_err(|e| e.detail())?;
    let (root, name) = (root.to_owned(), pipeline.to_owned());
    // file IO (every offsets file, the log's tail): off the runtime's workers
    tokio::task::spawn_blocking(move || {
        let view = Checkpoint::new(dir).view().map_err(|e| e.detail())?;
        let query_id = view.metadata.as_ref().map(|m| m.id.clone());
        let last_progress =
            super::eventlog::read_recent_of(&root, &name, 5000).ok().and_then(|(events, _)| {
                events.into_iter().rev().find_map(|e| match e.event {
                    // this query's progress only: a reset starts a new query
                    RunEvent::BatchCompleted(p) if Some(&p.query_id) == query_id.as_ref() => {
                        Some(*p)
                    }
                    _ => None,
                })
            });
        Ok(CheckpointInfo { view, last_progress })
    })
    .await
    .unwrap_or_else(|e| Err(format!("reading the checkpoint failed: {e}")))
}

async fn infer(
    project: &Project,
    pipeline: &str,
    node: &NodeId,
    root: &std::path::Path,
) -> Result<String, String> {
    let p = project.pipeline(pipeline).ok_or("no such pipeline")?;
    let n = p.node(node).ok_or("no such node")?;
    let crate::model::node::NodeKind::FileSource(src) = &n.kind else {
        return Err("only a files source infers its schema".into());
    };
    let dir = super::delta::resolve(
        root,
        &crate::model::env::expand(&src.path).map_err(|e| e.to_string())?,
    );
    let ctx = super::plan::session_context();
    let schema =
        super::sources::files::infer_schema(&ctx, &dir, src).await.map_err(|e| e.to_string())?;
    Ok(super::schema::schema_to_ddl(&schema))
}

/// Aborts a task when dropped (a cancelled run takes its inner task with it).
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs `f` in a task of its own so that a panic becomes an error reply instead of a request
/// that never gets one.
async fn guarded<T: Send + 'static>(
    f: impl std::future::Future<Output = Result<T, String>> + Send + 'static,
) -> Result<T, String> {
    tokio::spawn(f).await.unwrap_or_else(|e| Err(format!("the engine task failed: {e}")))
}

/// The engine, from the UI's side.
pub struct EngineHandle {
    commands: mpsc::Sender<Command>,
    events: mpsc::Receiver<Event>,
    next_request: AtomicU64,
    _runtime: Arc<tokio::runtime::Runtime>,
}

const CHANNEL_CAPACITY: usize = 256;

impl EngineHandle {
    /// Starts the engine runtime; `wake` is called whenever an event is ready (the UI passes
    /// `ctx.request_repaint`).
    pub fn start(wake: impl Fn() + Send + Sync + 'static) -> std::io::Result<Self> {
        let runtime = Arc::new(
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("medallion-engine")
                .enable_all()
                .build()?,
        );
        let (cmd_tx, mut cmd_rx) = mpsc::channel::<Command>(CHANNEL_CAPACITY);
        let (ev_tx, ev_rx) = mpsc::channel::<Event>(CHANNEL_CAPACITY);
        let wake = Arc::new(wake);
        // a Handle, not the Runtime: the runtime must never be dropped from its own task
        let rt = runtime.handle().clone();
        runtime.spawn(async move {
            let mut tasks: HashMap<u64, tokio::task::AbortHandle> = HashMap::new();
            // stop switch per running pipeline; closed once its run has ended
            let mut running: HashMap<String, watch::Sender<bool>> = HashMap::new();
            let mut direct_query = super::direct_query::DirectQuery::default();
            while let Some(cmd) = cmd_rx.recv().await {
                tasks.retain(|_, t| !t.is_finished());
                running.retain(|_, s| !s.is_closed());
                let (tx, wake) = (ev_tx.clone(), wake.clone());
                let send = move |e: Event| {
                    let (tx, wake) = (tx.clone(), wake.clone());
                    async move {
                        let _ = tx.send(e).await;
                        wake();
                    }
                };
                match cmd {
                    Command::DirectQuery(cmd) => {
                        if let Some((request, task)) = direct_query.handle(cmd, &rt, send).await {
                            tasks.insert(request, task);
                        }
                    }
                    Command::Tests(cmd) => {
                        let (request, task) = super::testing::handle::handle(cmd, &rt, send);
                        tasks.insert(request, task);
                    }
                    Command::Cancel { request } => {
                        if let Some(t) = tasks.remove(&request) {
                            t.abort();
                            send(Event::Cancelled { request }).await;
                        }
                    }
                    Command::Plan { request, project, pipeline, root } => {
                        let task = rt.spawn(async move {
                            let Some(p) = project.pipeline(&pipeline) else { return };
                            let (schemas, mut diagnostics) =
                                super::plan_schemas(&project, p, &root).await;
                            let mut model = crate::model::validate::validate_pipeline(p);
                            model.append(&mut diagnostics);
                            send(Event::Planned { request, pipeline, schemas, diagnostics: model })
                                .await;
                        });
                        tasks.insert(request, task.abort_handle());
                    }
                    Command::Preview { request, project, pipeline, node, root, limit } => {
                        let task = rt.spawn(async move {
                            let Some(p) = project.pipeline(&pipeline) else { return };
                            // every input beside the output (a join's left and right)
                            let (output, inputs) =
                                super::preview_with_inputs(&project, p, &node, &root, limit).await;
                            let output = output.map_err(|e| e.detail());
                            let inputs = (inputs.into_iter())
                                .map(|(port, rows)| (port, rows.map_err(|e| e.detail())))
                                .collect();
                            send(Event::Previewed { request, node, output, inputs }).await;
                        });
                        tasks.insert(request, task.abort_handle());
                    }
                    Command::InferSchema { request, project, pipeline, node, root } => {
                        let task = rt.spawn(async move {
                            let result = infer(&project, &pipeline, &node, &root).await;
                            send(Event::Inferred { request, node, result }).await;
                        });
                        tasks.insert(request, task.abort_handle());
                    }
                    Command::Stop { pipeline } => {
                        for (name, stop) in &running {
                            if pipeline.as_ref().is_none_or(|p| p == name) {
                                let _ = stop.send(true);
                            }
                        }
                    }
                    Command::Tables { request, root } => {
                        rt.spawn(async move {
                            let result = guarded(async move {
                                super::lakehouse::list_tables(&root).await.map_err(|e| e.detail())
                            })
                            .await;
                            send(Event::Tables { request, result }).await;
                        });
                    }
                    Command::Health { request, path } => {
                        rt.spawn(async move {
                            let p = path.clone();
                            let result = guarded(async move {
                                super::lakehouse::table_health(&p)
                                    .await
                                    .map(Box::new)
                                    .map_err(|e| e.detail())
                            })
                            .await;
                            send(Event::Health { request, path, result }).await;
                        });
                    }
                    Command::Upkeep { request, path, op } => {
                        rt.spawn(async move {
                            let p = path.clone();
                            let result = guarded(async move {
                                super::lakehouse::run_upkeep(&p, op).await.map_err(|e| e.detail())
                            })
                            .await;
                            send(Event::Upkeep { request, path, result }).await;
                        });
                    }
                    Command::History { request, path } => {
                        rt.spawn(async move {
                            let p = path.clone();
                            let result = guarded(async move {
                                super::lakehouse::history(&p, Some(TIMELINE_VERSIONS))
                                    .await
                                    .map_err(|e| e.detail())
                            })
                            .await;
                            send(Event::History { request, path, result }).await;
                        });
                    }
                    Command::TableAt { request, path, version } => {
                        let task = rt.spawn(async move {
                            let p = path.clone();
                            let result = guarded(async move {
                                super::lakehouse::table_at_version(&p, version, TABLE_PREVIEW_ROWS)
                                    .await
                                    .map_err(|e| e.detail())
                            })
                            .await;
                            send(Event::TableAt { request, path, version, result }).await;
                        });
                        tasks.insert(request, task.abort_handle());
                    }
                    Command::Compare { request, path, from, to } => {
                        let task = rt.spawn(async move {
                            let p = path.clone();
                            let result = guarded(async move {
                                super::lakehouse::compare_versions(&p, from, to, TABLE_PREVIEW_ROWS)
                                    .await
                                    .map(Box::new)
                                    .map_err(|e| e.detail())
                            })
                            .await;
                            send(Event::Compared { request, path, result }).await;
                        });
                        tasks.insert(request, task.abort_handle());
                    }
                    Command::LoadEvents { request, mut tail } => {
                        rt.spawn(async move {
                            let result = tokio::task::spawn_blocking(move || {
                                match tail.refresh() {
                                    Ok(changed) => Ok((tail, changed)),
                                    Err(e) => Err(e.detail()),
                                }
                            })
                            .await
                            .unwrap_or_else(|e| Err(e.to_string()));
                            send(Event::EventLog { request, result }).await;
                        });
                    }
                    Command::Checkpoint { request, project, pipeline, root } => {
                        rt.spawn(async move {
                            let name = pipeline.clone();
                            let result = guarded(async move {
                                checkpoint_info(&project, &name, &root).await.map(Box::new)
                            })
                            .await;
                            send(Event::Checkpoint { request, pipeline, result }).await;
                        });
                    }
                    Command::ResetCheckpoint { request, project, pipeline, root } => {
                        if running.contains_key(&pipeline) {
                            let result = Err(format!(
                                "pipeline `{pipeline}` is running; stop it before resetting its checkpoint"
                            ));
                            send(Event::CheckpointReset { request, pipeline, result }).await;
                            continue;
                        }
                        // the pipeline counts as busy until the reset is done: no start races it
                        let (busy, busy_rx) = watch::channel(false);
                        running.insert(pipeline.clone(), busy);
                        rt.spawn(async move {
                            let dir = project
                                .pipeline(&pipeline)
                                .ok_or_else(|| format!("no pipeline `{pipeline}`"))
                                .and_then(|p| {
                                    super::stream::checkpoint_dir(p, &root).map_err(|e| e.detail())
                                });
                            let result = match dir {
                                Err(e) => Err(e),
                                Ok(dir) if root.starts_with(&dir) => Err(format!(
                                    "the checkpoint folder {} holds the lakehouse; refusing to reset it",
                                    dir.display()
                                )),
                                Ok(dir) => tokio::task::spawn_blocking(move || {
                                    Checkpoint::new(dir).reset().map_err(|e| e.detail())
                                })
                                .await
                                .unwrap_or_else(|e| Err(format!("the reset failed: {e}"))),
                            };
                            drop(busy_rx);
                            send(Event::CheckpointReset { request, pipeline, result }).await;
                        });
                    }
                    Command::Run { request, project, pipeline, root, continuous } => {
                        let names: Vec<String> = project
                            .pipelines
                            .iter()
                            .filter(|p| pipeline.as_ref().is_none_or(|n| n == &p.name))
                            .map(|p| p.name.clone())
                            .collect();
                        if let Some(busy) = names.iter().find(|n| running.contains_key(*n)) {
                            let result = Err(format!(
                                "pipeline `{busy}` is already running; stop it first"
                            ));
                            send(Event::RunFinished { request, result, failed_node: None }).await;
                            continue;
                        }
                        let mut pipeline_stops = HashMap::new();
                        for name in names {
                            let (tx, rx) = watch::channel(false);
                            running.insert(name.clone(), tx);
                            pipeline_stops.insert(name, rx);
                        }
                        let task = rt.spawn(async move {
                            let opts = RunOptions {
                                pipeline: pipeline.clone(),
                                available_now: !continuous,
                                stop: None,
                                pipeline_stops,
                                meter_edges: true,
                            };
                            let (etx, mut erx) = mpsc::channel::<RunEvent>(CHANNEL_CAPACITY);
                            let forward = {
                                let send = send.clone();
                                tokio::spawn(async move {
                                    while let Some(e) = erx.recv().await {
                                        send(Event::Run(e)).await;
                                    }
                                })
                            };
                            // the run in a task of its own: a panic still ends in RunFinished, and
                            // its stop switches close as soon as it returns
                            let run = {
                                let (project, root) = (project.clone(), root.clone());
                                tokio::spawn(async move {
                                    super::run_project(&project, &root, &opts, &|e| {
                                        // progress is advisory: never block the engine on the UI
                                        let _ = etx.try_send(e);
                                    })
                                    .await
                                })
                            };
                            let _abort_run_with_this_task = AbortOnDrop(run.abort_handle());
                            let result = run.await.unwrap_or_else(|e| {
                                Err(super::EngineError::Config(format!(
                                    "the run stopped unexpectedly: {e}"
                                )))
                            });
                            // rows per node came with the run (RunEvent::NodeRows)
                            let _ = forward.await;
                            let failed_node = result.as_ref().err().and_then(|e| e.node().cloned());
                            send(Event::RunFinished {
                                request,
                                result: result.map_err(|e| e.detail()),
                                failed_node,
                            })
                            .await;
                        });
                        tasks.insert(request, task.abort_handle());
                    }
                }
            }
        });
        Ok(Self {
            commands: cmd_tx,
            events: ev_rx,
            next_request: AtomicU64::new(1),
            _runtime: runtime,
        })
    }

    /// A fresh request id.
    pub fn request_id(&self) -> u64 {
        self.next_request.fetch_add(1, Ordering::Relaxed)
    }

    /// Sends a command without blocking; returns false if the engine is busy (queue full).
    pub fn send(&self, cmd: Command) -> bool {
        self.commands.try_send(cmd).is_ok()
    }

    /// Every event that arrived since the last call.
    pub fn drain(&mut self) -> Vec<Event> {
        let mut out = Vec::new();
        while let Ok(e) = self.events.try_recv() {
            out.push(e);
        }
        out
    }

    /// Runs a future on the engine's runtime (file dialogs, saves), off the UI thread.
    pub fn spawn<F: std::future::Future<Output = ()> + Send + 'static>(&self, f: F) {
        self._runtime.spawn(f);
    }
}
