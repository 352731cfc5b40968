//! The Tests tab's commands to the engine and their replies: run tests, record one from a
//! preview, accept new output. Each runs as a task of the engine's runtime that the UI can
//! cancel by its request id (`Command::Cancel`), so a background re-run after an edit never
//! blocks the UI and a newer edit cancels the one in flight.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use crate::model::Project;

use super::super::handle::Event;
use super::{RecordOptions, Recorded, TestResult};

#[derive(Debug)]
pub enum TestsCommand {
    /// Replays the tests named (all when `names` is `None`).
    Run { request: u64, project: Arc<Project>, project_file: PathBuf, names: Option<Vec<String>> },
    /// Records a test from a node's sample rows.
    Record {
        request: u64,
        project: Arc<Project>,
        project_file: PathBuf,
        root: PathBuf,
        options: RecordOptions,
    },
    /// Stores a test's current output as its expected rows.
    Accept { request: u64, project: Arc<Project>, project_file: PathBuf, name: String },
}

#[derive(Debug)]
pub enum TestsEvent {
    Ran { request: u64, results: Vec<TestResult> },
    Recorded { request: u64, result: Result<Box<Recorded>, String> },
    Accepted { request: u64, name: String, result: Result<usize, String> },
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Starts the command's task; returns its request and abort handle.
pub fn handle<S, F>(
    cmd: TestsCommand,
    rt: &tokio::runtime::Handle,
    send: S,
) -> (u64, tokio::task::AbortHandle)
where
    S: Fn(Event) -> F + Send + Sync + 'static,
    F: Future<Output = ()> + Send,
{
    let reply = move |e: TestsEvent| send(Event::Tests(e));
    match cmd {
        TestsCommand::Run { request, project, project_file, names } => {
            let task = rt.spawn(async move {
                let wanted: Vec<_> = project
                    .tests
                    .iter()
                    .filter(|t| names.as_ref().is_none_or(|n| n.contains(&t.name)))
                    .cloned()
                    .collect();
                // in a task of its own, so a panic still ends in a reply; cancelled with this one
                let inner = {
                    let wanted = wanted.clone();
                    tokio::spawn(async move {
                        let mut results = Vec::new();
                        for t in &wanted {
                            results.push(super::run_test(&project, &project_file, t).await);
                        }
                        results
                    })
                };
                let _cancel_with_this_task = AbortOnDrop(inner.abort_handle());
                let results = inner.await.unwrap_or_else(|e| {
                    wanted
                        .iter()
                        .map(|t| {
                            super::TestResult::errored(
                                t,
                                format!("the test run failed: {e}"),
                                std::time::Instant::now(),
                            )
                        })
                        .collect()
                });
                reply(TestsEvent::Ran { request, results }).await;
            });
            (request, task.abort_handle())
        }
        TestsCommand::Record { request, project, project_file, root, options } => {
            let task = rt.spawn(async move {
                let result = tokio::spawn(async move {
                    super::record(&project, &project_file, &root, &options)
                        .await
                        .map(Box::new)
                        .map_err(|e| e.detail())
                })
                .await
                .unwrap_or_else(|e| Err(format!("recording failed: {e}")));
                reply(TestsEvent::Recorded { request, result }).await;
            });
            (request, task.abort_handle())
        }
        TestsCommand::Accept { request, project, project_file, name } => {
            let task = rt.spawn(async move {
                let n = name.clone();
                let result = tokio::spawn(async move {
                    super::accept(&project, &project_file, &n).await.map_err(|e| e.detail())
                })
                .await
                .unwrap_or_else(|e| Err(format!("accepting failed: {e}")));
                reply(TestsEvent::Accepted { request, name, result }).await;
            });
            (request, task.abort_handle())
        }
    }
}
