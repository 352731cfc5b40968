//! The queries of one connection: only reads get through (checked before planning and on the
//! plan), every statement and prepared statement sees the newest table versions, the statement
//! timeout covers streaming the rows, and errors carry a SQLSTATE, a position and a hint.

use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use datafusion::common::DataFusionError;
use datafusion::common::tree_node::{Transformed, TreeNodeRecursion};
use datafusion::logical_expr::{LogicalPlan, TableScan};
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser;
use datafusion::sql::sqlparser::ast::{SetExpr, Statement};
use datafusion_postgres::datafusion_pg_catalog::sql::PostgresCompatibilityParser;
use datafusion_postgres::pgwire;
use datafusion_postgres::{DfSessionService, arrow_pg};
use futures::{Sink, StreamExt};
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::{QueryResponse, Response};
use pgwire::api::stmt::{QueryParser, StoredStatement};
use pgwire::api::store::PortalStore;
use pgwire::api::{ClientInfo, ClientPortalStore, Type};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;
use pgwire::types::format::FormatOptions;
use tokio::time::Instant;

use super::super::catalog::{CATALOG, DEFAULT_SCHEMA, LakehouseCatalog, SCHEMAS};
use super::super::sql::{
    self, SqlError, check_read_only, read_only_error, read_only_options, sql_error, sqlstate,
};
use super::user_error;

/// Statements the query hooks of `datafusion-postgres` answer (they touch only the session).
fn is_session_statement(s: &Statement) -> bool {
    match s {
        Statement::Set(_)
        | Statement::ShowVariable { .. }
        | Statement::ShowStatus { .. }
        | Statement::ShowCatalogs { .. }
        | Statement::StartTransaction { .. }
        | Statement::Commit { .. }
        | Statement::Rollback { .. }
        | Statement::Fetch { .. }
        | Statement::Close { .. } => true,
        Statement::Declare { stmts } => {
            stmts.iter().all(|d| d.for_query.as_deref().is_none_or(query_is_read))
        }
        _ => false,
    }
}

fn query_is_read(q: &sqlparser::ast::Query) -> bool {
    fn body_is_read(b: &SetExpr) -> bool {
        match b {
            SetExpr::Insert(_) | SetExpr::Update(_) | SetExpr::Delete(_) | SetExpr::Merge(_) => {
                false
            }
            SetExpr::Query(q) => query_is_read(q),
            SetExpr::SetOperation { left, right, .. } => body_is_read(left) && body_is_read(right),
            _ => true,
        }
    }
    let ctes = q.with.as_ref().is_none_or(|w| w.cte_tables.iter().all(|c| query_is_read(&c.query)));
    ctes && body_is_read(&q.body)
}

/// Statements DataFusion plans that only read.
fn is_read_statement(s: &Statement) -> bool {
    match s {
        Statement::Query(q) => query_is_read(q),
        Statement::Explain { statement, .. } => is_read_statement(statement),
        Statement::ExplainTable { .. }
        | Statement::ShowTables { .. }
        | Statement::ShowColumns { .. }
        | Statement::ShowSchemas { .. }
        | Statement::ShowFunctions { .. } => true,
        _ => false,
    }
}

fn refused(s: &Statement) -> PgWireError {
    let keyword = s.to_string().split_whitespace().next().unwrap_or("").to_uppercase();
    user_error(&read_only_error(&format!("`{keyword}` statements")))
}

/// A syntax error with its position in `sql`: the Postgres-compatibility parser works on
/// rewritten tokens without positions, so the original text is parsed again to find it.
fn syntax_error(sql: &str, e: &dyn std::error::Error) -> PgWireError {
    let dialect = sqlparser::dialect::PostgreSqlDialect {};
    let message = match sqlparser::parser::Parser::parse_sql(&dialect, sql) {
        Err(original) => original.to_string(),
        Ok(_) => e.to_string(),
    };
    user_error(&sql::syntax_error(&message, sql))
}

fn timeout_error(timeout: Option<Duration>) -> PgWireError {
    let secs = timeout.map_or(0, |t| t.as_secs());
    user_error(&SqlError::new(
        sqlstate::CANCELED,
        format!("canceling statement due to statement timeout ({secs} s)"),
    ))
}

/// Where result rows are computed: a runtime of its own, so the server's timers (the
/// statement timeout) fire on time even while a query keeps every core busy.
fn executor() -> Option<&'static tokio::runtime::Runtime> {
    static EXECUTOR: std::sync::OnceLock<Option<tokio::runtime::Runtime>> =
        std::sync::OnceLock::new();
    EXECUTOR
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("medallion-sql-exec")
                .enable_all()
                .build()
                .ok()
        })
        .as_ref()
}

/// Polls a statement's future with the executor runtime entered, so the tasks DataFusion
/// spawns when a plan starts (the partition inputs of a `CoalescePartitionsExec` and the like,
/// where the work is done) run there and not on the server's runtime, whose timers (the
/// statement timeout) and connections (a freed slot) must answer while a query computes.
struct OnExecutor<F> {
    handle: Option<tokio::runtime::Handle>,
    fut: Pin<Box<F>>,
}

impl<F: Future> OnExecutor<F> {
    fn new(fut: F) -> Self {
        Self { handle: executor().map(|rt| rt.handle().clone()), fut: Box::pin(fut) }
    }
}

impl<F: Future> Future for OnExecutor<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.get_mut();
        let _entered = this.handle.as_ref().map(tokio::runtime::Handle::enter);
        this.fut.as_mut().poll(cx)
    }
}

/// Produces a result's rows on the executor runtime, handed over through a bounded channel,
/// and ends the stream with a timeout error once `deadline` passes (if there is one): the
/// channel is then dropped, which stops (and cancels) the producer.
fn rows_until(resp: Response, deadline: Option<Instant>, timeout: Option<Duration>) -> Response {
    let query = match resp {
        Response::Query(q) => q,
        other => return other,
    };
    let (fields, tag) = (query.row_schema(), query.command_tag().to_owned());
    let mut rows = query.data_rows;
    let (tx, rx) = tokio::sync::mpsc::channel(256);
    let produce = async move {
        let watch = tx.clone();
        let rows_out = async {
            while let Some(row) = rows.next().await {
                if tx.send(row).await.is_err() {
                    break;
                }
            }
        };
        // the statement timed out (the client side is gone): stop computing at once, even
        // when no row is due yet (an aggregate over a huge join): dropping the plan's stream
        // cancels its work
        tokio::select! {
            () = rows_out => {}
            () = watch.closed() => {}
        }
    };
    match executor() {
        Some(rt) => drop(rt.spawn(produce)),
        None => drop(tokio::spawn(produce)),
    }
    let stream = futures::stream::unfold(Some(rx), move |rx| async move {
        let mut rx: tokio::sync::mpsc::Receiver<PgWireResult<_>> = rx?;
        let next = match deadline {
            Some(deadline) => tokio::time::timeout_at(deadline, rx.recv()).await,
            None => Ok(rx.recv().await),
        };
        match next {
            Ok(Some(row)) => Some((row, Some(rx))),
            Ok(None) => None,
            Err(_) => Some((Err(timeout_error(timeout)), None)),
        }
    });
    let mut out = QueryResponse::new(fields, stream);
    out.set_command_tag(&tag);
    Response::Query(out)
}

/// One connection's queries: the `datafusion-postgres` service for the protocol, wrapped so
/// that only reads get through, every statement sees the newest table versions, and the
/// statement timeout covers the rows too.
pub(super) struct QueryService {
    pub(super) inner: DfSessionService,
    pub(super) parser: Arc<GuardedParser>,
    pub(super) ctx: Arc<SessionContext>,
    pub(super) sql_parser: PostgresCompatibilityParser,
    pub(super) catalog: Arc<LakehouseCatalog>,
    pub(super) statement_timeout: Option<Duration>,
}

impl QueryService {
    fn deadline(&self) -> Option<Instant> {
        self.statement_timeout.map(|t| Instant::now() + t)
    }

    fn error(&self, e: &DataFusionError, sql: &str) -> PgWireError {
        user_error(&sql_error(e, sql, &self.catalog))
    }

    /// Plans, verifies and starts one read statement.
    async fn read<C: ClientInfo>(
        &self,
        client: &C,
        statement: Statement,
        sql: &str,
    ) -> PgWireResult<Response> {
        let state = self.ctx.state();
        let plan = state
            .statement_to_plan(DfStatement::Statement(Box::new(statement)))
            .await
            .map_err(|e| self.error(&e, sql))?;
        read_only_options().verify_plan(&plan).map_err(|_| refused_plan())?;
        let df = self.ctx.execute_logical_plan(plan).await.map_err(|e| self.error(&e, sql))?;
        let format = Arc::new(FormatOptions::from_client_metadata(client.metadata()));
        let resp =
            arrow_pg::datatypes::df::encode_dataframe(df, &Format::UnifiedText, Some(format))
                .await?;
        Ok(Response::Query(resp))
    }
}

fn refused_plan() -> PgWireError {
    user_error(&read_only_error("statements that write or change the catalog"))
}

#[async_trait]
impl SimpleQueryHandler for QueryService {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        check_read_only(query, true).map_err(|e| user_error(&e))?;
        let statements = self.sql_parser.parse(query).map_err(|e| syntax_error(query, &e))?;
        if statements.is_empty() {
            return Ok(vec![Response::EmptyQuery]);
        }
        let deadline = self.deadline();
        let mut out = Vec::with_capacity(statements.len());
        for statement in statements {
            if is_session_statement(&statement) {
                // SET, SHOW, transactions and cursors: the crate's hooks answer them
                let mut r =
                    SimpleQueryHandler::do_query(&self.inner, client, &statement.to_string())
                        .await?;
                out.append(&mut r);
                continue;
            }
            if !is_read_statement(&statement) {
                return Err(refused(&statement));
            }
            let run = OnExecutor::new(self.read(client, statement, query));
            let resp = match deadline {
                Some(d) => tokio::time::timeout_at(d, run)
                    .await
                    .map_err(|_| timeout_error(self.statement_timeout))??,
                None => run.await?,
            };
            out.push(rows_until(resp, deadline, self.statement_timeout));
        }
        Ok(out)
    }
}

type PgStatement = <DfSessionService as ExtendedQueryHandler>::Statement;

#[async_trait]
impl ExtendedQueryHandler for QueryService {
    type Statement = PgStatement;
    type QueryParser = GuardedParser;

    fn query_parser(&self) -> Arc<GuardedParser> {
        self.parser.clone()
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<PgStatement>,
        max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = PgStatement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let deadline = self.deadline();
        let sql = portal.statement.statement.0.clone();
        // a prepared statement keeps its plan: bring its tables to their newest versions
        let refreshed;
        let portal = match &portal.statement.statement.1 {
            Some((statement, plan)) if !is_session_statement(statement) => {
                let plan =
                    refresh_tables(plan, &self.catalog).await.map_err(|e| self.error(&e, &sql))?;
                let stored = StoredStatement::new(
                    portal.statement.id.clone(),
                    (sql.clone(), Some((statement.clone(), plan))),
                    portal.statement.parameter_types.clone(),
                );
                let mut p = Portal::new_cursor(portal.name.clone(), Arc::new(stored));
                p.parameter_format = portal.parameter_format.clone();
                p.parameters = portal.parameters.clone();
                p.result_column_format = portal.result_column_format.clone();
                p.state = portal.state.clone();
                refreshed = p;
                &refreshed
            }
            _ => portal,
        };
        let run =
            OnExecutor::new(ExtendedQueryHandler::do_query(&self.inner, client, portal, max_rows));
        let resp = match deadline {
            Some(d) => tokio::time::timeout_at(d, run)
                .await
                .map_err(|_| timeout_error(self.statement_timeout))??,
            None => run.await?,
        };
        Ok(rows_until(resp, deadline, self.statement_timeout))
    }
}

/// Replaces every lakehouse table scan in `plan` with a scan of the table's newest version.
async fn refresh_tables(
    plan: &LogicalPlan,
    catalog: &LakehouseCatalog,
) -> Result<LogicalPlan, DataFusionError> {
    let mut names = Vec::new();
    plan.apply_with_subqueries(|p| {
        if let LogicalPlan::TableScan(scan) = p {
            let r = scan.table_name.clone().resolve(CATALOG, DEFAULT_SCHEMA);
            if r.catalog.as_ref() == CATALOG && SCHEMAS.contains(&r.schema.as_ref()) {
                names.push((scan.table_name.clone(), r.schema.to_string(), r.table.to_string()));
            }
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    if names.is_empty() {
        return Ok(plan.clone());
    }
    let mut fresh = Vec::with_capacity(names.len());
    for (reference, schema, table) in names {
        if let Some(p) = catalog.provider(&schema, &table).await? {
            fresh.push((reference, p));
        }
    }
    let refreshed = plan.clone().transform_up_with_subqueries(|p| match p {
        LogicalPlan::TableScan(scan) => match fresh.iter().find(|(r, _)| *r == scan.table_name) {
            Some((_, provider)) if provider.schema() == scan.source.schema() => {
                let source = datafusion::datasource::provider_as_source(provider.clone());
                Ok(Transformed::yes(LogicalPlan::TableScan(TableScan { source, ..scan })))
            }
            _ => Ok(Transformed::no(LogicalPlan::TableScan(scan))),
        },
        other => Ok(Transformed::no(other)),
    })?;
    Ok(refreshed.data)
}

/// Parses for the extended protocol (psycopg, JDBC): refuses writes before planning, and
/// verifies the plan.
pub struct GuardedParser {
    pub(super) inner: Arc<datafusion_postgres::Parser>,
    pub(super) catalog: Arc<LakehouseCatalog>,
}

#[async_trait]
impl QueryParser for GuardedParser {
    type Statement = PgStatement;

    async fn parse_sql<C>(
        &self,
        client: &C,
        sql: &str,
        types: &[Option<Type>],
    ) -> PgWireResult<Option<PgStatement>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        check_read_only(sql, true).map_err(|e| user_error(&e))?;
        let parsed = self.inner.parse_sql(client, sql, types).await.map_err(|e| match e {
            PgWireError::ApiError(e) => match e.downcast_ref::<DataFusionError>() {
                Some(df) => user_error(&sql_error(df, sql, &self.catalog)),
                None => syntax_error(sql, e.as_ref()),
            },
            other => other,
        })?;
        if let Some((_, Some((statement, plan)))) = &parsed
            && !is_session_statement(statement)
        {
            if !is_read_statement(statement) {
                return Err(refused(statement));
            }
            read_only_options().verify_plan(plan).map_err(|_| refused_plan())?;
        }
        Ok(parsed)
    }

    fn get_parameter_types(&self, stmt: &PgStatement) -> PgWireResult<Vec<Type>> {
        self.inner.get_parameter_types(stmt)
    }

    fn get_result_schema(
        &self,
        stmt: &PgStatement,
        column_format: Option<&Format>,
    ) -> PgWireResult<Vec<pgwire::api::results::FieldInfo>> {
        self.inner.get_result_schema(stmt, column_format)
    }
}
