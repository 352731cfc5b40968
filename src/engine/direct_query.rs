//! Direct Query from the app: the SQL console's queries, catalog and exports, and the
//! "Serve to BI tools" server, as engine commands. `EngineHandle` forwards
//! [`DirectQueryCommand`]s here and sends [`DirectQueryEvent`]s back; one catalog per lakehouse
//! root stays open between queries, so a query only reads the commits made since the last.

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::datatypes::SchemaRef;

use super::catalog::{CatalogTable, LakehouseCatalog};
use super::handle::Event;
use super::serve::{ServeOptions, Server};
use super::sql::{self, ExportFormat, QueryResult, SqlError};

/// What the console asks of the engine.
#[derive(Debug)]
pub enum DirectQueryCommand {
    /// Runs one query; the reply keeps `display_rows` rows at most.
    Query {
        request: u64,
        root: PathBuf,
        sql: String,
        display_rows: usize,
    },
    /// The catalog's tables and their columns.
    Catalog {
        request: u64,
        root: PathBuf,
    },
    /// Runs `sql` again and writes its whole result to `path` (CSV, or Parquet by extension).
    Export {
        request: u64,
        root: PathBuf,
        sql: String,
        path: PathBuf,
    },
    /// Starts the Postgres-wire server (one at a time).
    StartServer {
        request: u64,
        options: Box<ServeOptions>,
    },
    StopServer,
}

/// What the engine replies.
#[derive(Debug)]
pub enum DirectQueryEvent {
    Queried { request: u64, result: Result<QueryResult, SqlError> },
    Catalog { request: u64, result: Result<Vec<TableColumns>, String> },
    Exported { request: u64, path: PathBuf, result: Result<u64, SqlError> },
    ServerStarted { request: u64, result: Result<ServerInfo, String> },
    ServerStopped,
}

/// A table of the catalog with its columns (name, SQL type).
#[derive(Clone, Debug)]
pub struct TableColumns {
    pub table: CatalogTable,
    pub columns: Vec<(String, String)>,
    /// Why the columns are missing, when the table cannot be read.
    pub error: Option<String>,
}

/// How to reach a running server.
#[derive(Clone, Debug)]
pub struct ServerInfo {
    pub connection_string: String,
    pub banner: String,
}

/// The Direct Query state the engine keeps between commands.
#[derive(Default)]
pub struct DirectQuery {
    catalogs: HashMap<PathBuf, Arc<LakehouseCatalog>>,
    server: Option<Server>,
}

/// Every table with its columns, in catalog order.
pub async fn describe(catalog: &LakehouseCatalog) -> Vec<TableColumns> {
    let mut out = Vec::new();
    for table in catalog.tables(true) {
        let (columns, error) = match catalog.table_schema(&table).await {
            Ok(Some(schema)) => (columns_of(&schema), None),
            Ok(None) => (Vec::new(), Some("the table is gone".to_owned())),
            Err(e) => (Vec::new(), Some(e.to_string())),
        };
        out.push(TableColumns { table, columns, error });
    }
    out
}

fn columns_of(schema: &SchemaRef) -> Vec<(String, String)> {
    schema
        .fields()
        .iter()
        .map(|f| (f.name().clone(), super::schema::type_ddl(f.data_type())))
        .collect()
}

impl DirectQuery {
    fn catalog(&mut self, root: &Path) -> Arc<LakehouseCatalog> {
        self.catalogs.entry(root.to_owned()).or_insert_with(|| LakehouseCatalog::new(root)).clone()
    }

    /// Handles one command; returns the task to abort when the request is cancelled.
    pub async fn handle<S, F>(
        &mut self,
        cmd: DirectQueryCommand,
        rt: &tokio::runtime::Handle,
        send: S,
    ) -> Option<(u64, tokio::task::AbortHandle)>
    where
        S: Fn(Event) -> F + Send + Sync + 'static,
        F: Future<Output = ()> + Send,
    {
        let reply = move |e: DirectQueryEvent| send(Event::DirectQuery(e));
        match cmd {
            DirectQueryCommand::Query { request, root, sql, display_rows } => {
                let catalog = self.catalog(&root);
                let task = rt.spawn(async move {
                    let result = tokio::spawn(async move {
                        sql::run_console_query(&catalog, &sql, display_rows).await
                    })
                    .await
                    .unwrap_or_else(|e| Err(SqlError::new(sql::sqlstate::INTERNAL, e.to_string())));
                    reply(DirectQueryEvent::Queried { request, result }).await;
                });
                Some((request, task.abort_handle()))
            }
            DirectQueryCommand::Catalog { request, root } => {
                let catalog = self.catalog(&root);
                let task = rt.spawn(async move {
                    let result = tokio::spawn(async move { describe(&catalog).await })
                        .await
                        .map_err(|e| format!("listing the tables failed: {e}"));
                    reply(DirectQueryEvent::Catalog { request, result }).await;
                });
                Some((request, task.abort_handle()))
            }
            DirectQueryCommand::Export { request, root, sql, path } => {
                let catalog = self.catalog(&root);
                let task = rt.spawn(async move {
                    let format = ExportFormat::for_path(&path);
                    let target = path.clone();
                    let result = tokio::spawn(async move {
                        sql::export_query(&catalog, &sql, &target, format).await
                    })
                    .await
                    .unwrap_or_else(|e| Err(SqlError::new(sql::sqlstate::INTERNAL, e.to_string())));
                    reply(DirectQueryEvent::Exported { request, path, result }).await;
                });
                Some((request, task.abort_handle()))
            }
            DirectQueryCommand::StartServer { request, options } => {
                // one server at a time: a new start replaces the old one
                self.server = None;
                let catalog = self.catalog(&options.root);
                let result = super::serve::start(*options, catalog).await.map(|server| {
                    let info = ServerInfo {
                        connection_string: server.connection_string(),
                        banner: server.banner(),
                    };
                    self.server = Some(server);
                    info
                });
                let result = result.map_err(|e| e.to_string());
                reply(DirectQueryEvent::ServerStarted { request, result }).await;
                None
            }
            DirectQueryCommand::StopServer => {
                if let Some(server) = self.server.take() {
                    server.stop();
                }
                reply(DirectQueryEvent::ServerStopped).await;
                None
            }
        }
    }
}
