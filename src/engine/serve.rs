//! `medallion serve`: the lakehouse catalog over the Postgres wire protocol, for BI tools,
//! psql and drivers. Built on `datafusion-postgres` (pg_catalog, type mapping, the query
//! handlers) and `pgwire`, with the gaps a server on a laptop must not have closed here:
//!
//! - **authentication**: SCRAM-SHA-256 for one user with the password from
//!   `MEDALLION_PASSWORD` (only its salt and salted hash are kept); without a password the
//!   server binds loopback only and says that anyone on this machine can connect;
//! - **read-only**: anything but a query, `EXPLAIN`, `SHOW` or a session statement is refused
//!   with SQLSTATE 25006 before it is planned, every plan is verified against
//!   [`read_only_options`], and the catalog cannot be written through;
//! - **TLS that fails closed**: a certificate or key that does not load stops the server;
//! - **isolation**: each connection has its own `SessionContext` over the shared catalog, so
//!   one client's `SET` never changes another's session;
//! - **limits**: a maximum number of connections and a statement timeout that also covers
//!   streaming the rows;
//! - **freshness**: every statement resolves its tables again (prepared statements too), so it
//!   sees the newest committed version.
//!
//! Knows nothing of the UI; the app starts and stops the same [`Server`] through the engine.

use std::fmt::Debug;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use datafusion::common::DataFusionError;
use datafusion::common::tree_node::{Transformed, TreeNodeRecursion};
use datafusion::execution::SessionState;
use datafusion::logical_expr::{LogicalPlan, TableScan};
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser;
use datafusion::sql::sqlparser::ast::{SetExpr, Statement};
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::context::EmptyContextProvider;
use datafusion_postgres::datafusion_pg_catalog::setup_pg_catalog;
use datafusion_postgres::datafusion_pg_catalog::sql::PostgresCompatibilityParser;
use datafusion_postgres::pgwire;
use datafusion_postgres::{DfSessionService, arrow_pg};
use futures::{Sink, StreamExt};
use pgwire::api::auth::noop::NoopStartupHandler;
use pgwire::api::auth::sasl::SASLAuthStartupHandler;
use pgwire::api::auth::sasl::scram::{ScramAuth, gen_salted_password};
use pgwire::api::auth::{
    AuthSource, DefaultServerParameterProvider, LoginInfo, Password, StartupHandler,
};
use pgwire::api::cancel::DefaultCancelHandler;
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::{QueryResponse, Response};
use pgwire::api::stmt::{QueryParser, StoredStatement};
use pgwire::api::store::PortalStore;
use pgwire::api::{
    ClientInfo, ClientPortalStore, ConnectionManager, ErrorHandler, PgWireServerHandlers, Type,
};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use pgwire::tokio::TlsAcceptor;
use pgwire::types::format::FormatOptions;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::catalog::{CATALOG, LakehouseCatalog, SCHEMAS};
use super::sql::{
    self, SqlError, check_read_only, classify_message, lakehouse_context, read_only_error,
    read_only_options, sql_error, sqlstate,
};

/// The environment variable the password comes from.
pub const PASSWORD_ENV: &str = "MEDALLION_PASSWORD";
/// Default port: next to a local Postgres' 5432.
pub const DEFAULT_PORT: u16 = 5433;

/// How to serve.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    pub root: PathBuf,
    pub host: String,
    pub port: u16,
    pub user: String,
    /// Required for any host but loopback.
    pub password: Option<String>,
    /// PEM certificate chain and private key.
    pub tls: Option<(PathBuf, PathBuf)>,
    pub max_connections: usize,
    /// `None`: statements may run for ever.
    pub statement_timeout: Option<Duration>,
}

impl ServeOptions {
    /// Loopback, port 5433, user `medallion`, the password from `MEDALLION_PASSWORD` if set,
    /// 64 connections, 5-minute statements.
    pub fn new(root: &Path) -> Self {
        Self {
            root: root.to_owned(),
            host: "127.0.0.1".into(),
            port: DEFAULT_PORT,
            user: CATALOG.into(),
            password: std::env::var(PASSWORD_ENV).ok().filter(|p| !p.is_empty()),
            tls: None,
            max_connections: 64,
            statement_timeout: Some(Duration::from_secs(300)),
        }
    }
}

/// Why the server did not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(
        "refusing to listen on {host} without a password: anyone who can reach it could read \
         the lakehouse. Set {PASSWORD_ENV} (clients then log in as `{user}`), or keep the \
         default host 127.0.0.1"
    )]
    PasswordRequired { host: String, user: String },
    #[error(
        "port {port} on {host} is already in use (another Postgres or `medallion serve`?); stop \
         it or choose another port with --port"
    )]
    PortInUse { host: String, port: u16 },
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: String, source: std::io::Error },
    #[error("TLS: {0}; the server did not start (it never falls back to unencrypted connections)")]
    Tls(String),
    #[error("cannot set up the Postgres catalog: {0}")]
    Setup(String),
}

/// A running server; stops when dropped.
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    opts: ServeOptions,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `postgresql://medallion@127.0.0.1:5433/medallion`, for a client to copy.
    pub fn connection_string(&self) -> String {
        let host = match self.addr.ip() {
            IpAddr::V6(ip) => format!("[{ip}]"),
            IpAddr::V4(ip) => ip.to_string(),
        };
        let ssl = if self.opts.tls.is_some() { "?sslmode=require" } else { "" };
        format!("postgresql://{}@{host}:{}/{CATALOG}{ssl}", self.opts.user, self.addr.port())
    }

    /// The start-up line: where, how to log in, and who can connect.
    pub fn banner(&self) -> String {
        let access = match &self.opts.password {
            Some(_) => format!(
                "user `{}` with the password from {PASSWORD_ENV} (SCRAM-SHA-256)",
                self.opts.user
            ),
            None => format!(
                "NO PASSWORD: anyone on this machine can connect (loopback only); set \
                 {PASSWORD_ENV} to require one"
            ),
        };
        let tls = if self.opts.tls.is_some() { "TLS" } else { "no TLS" };
        format!(
            "serving {} read-only at {} ({tls}; {access})",
            self.opts.root.display(),
            self.connection_string()
        )
    }

    /// Stops accepting connections and drops the open ones.
    pub fn stop(self) {
        self.task.abort();
    }

    /// Waits until the server stops (it runs until aborted).
    pub async fn wait(self) {
        let _ = (&mut { self }.task).await;
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Loads a PEM certificate chain and key (PKCS#8, PKCS#1 or SEC1); any failure is an error.
fn tls_acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, ServeError> {
    use pgwire::tokio::tokio_rustls::rustls;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<_, _>>())
        .map_err(|e| ServeError::Tls(format!("cannot read certificate {}: {e}", cert.display())))?;
    if certs.is_empty() {
        return Err(ServeError::Tls(format!("no certificate in {}", cert.display())));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| ServeError::Tls(format!("cannot read private key {}: {e}", key.display())))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ServeError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| ServeError::Tls(format!("certificate and key do not fit: {e}")))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Starts serving `catalog` (its root is `opts.root`); returns once the port is bound.
pub async fn start(
    opts: ServeOptions,
    catalog: Arc<LakehouseCatalog>,
) -> Result<Server, ServeError> {
    if !is_loopback(&opts.host) && opts.password.is_none() {
        return Err(ServeError::PasswordRequired { host: opts.host, user: opts.user });
    }
    let tls = match &opts.tls {
        Some((cert, key)) => Some(tls_acceptor(cert, key)?),
        None => None,
    };
    let listener = match TcpListener::bind((opts.host.as_str(), opts.port)).await {
        Ok(l) => l,
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            return Err(ServeError::PortInUse { host: opts.host, port: opts.port });
        }
        Err(source) => {
            return Err(ServeError::Bind { addr: format!("{}:{}", opts.host, opts.port), source });
        }
    };
    let addr = listener.local_addr().map_err(|source| ServeError::Bind {
        addr: format!("{}:{}", opts.host, opts.port),
        source,
    })?;
    let ctx = lakehouse_context(&catalog, true);
    setup_pg_catalog(&ctx, CATALOG, EmptyContextProvider)
        .map_err(|e| ServeError::Setup(e.to_string()))?;
    let shared = Arc::new(Shared {
        template: ctx.state(),
        catalog,
        scram: opts.password.as_deref().map(|p| Arc::new(ScramSource::new(&opts.user, p))),
        connections: Arc::new(ConnectionManager::new()),
        max_connections: opts.max_connections.max(1),
        statement_timeout: opts.statement_timeout,
    });
    let limit = Arc::new(Semaphore::new(shared.max_connections));
    let task = tokio::spawn(async move {
        loop {
            let socket = match listener.accept().await {
                Ok((socket, _peer)) => socket,
                Err(_) => {
                    // out of file descriptors and the like: wait instead of spinning
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let permit = limit.clone().try_acquire_owned().ok();
            let handlers = Arc::new(Connection::new(&shared, permit.is_none()));
            let tls = tls.clone();
            tokio::spawn(async move {
                let _permit = permit;
                // a client that goes away mid-protocol is not the server's problem
                let _ = pgwire::tokio::process_socket(socket, tls, handlers).await;
            });
        }
    });
    Ok(Server { addr, opts, task })
}

/// What every connection shares.
struct Shared {
    /// Session state every connection starts from (catalog, pg_catalog functions).
    template: SessionState,
    catalog: Arc<LakehouseCatalog>,
    scram: Option<Arc<ScramSource>>,
    /// Open connections, for cancel requests.
    connections: Arc<ConnectionManager>,
    max_connections: usize,
    statement_timeout: Option<Duration>,
}

/// The password as SCRAM keeps it: salt and salted hash only.
#[derive(Debug)]
struct ScramSource {
    user: String,
    salt: Vec<u8>,
    salted: Vec<u8>,
}

impl ScramSource {
    fn new(user: &str, password: &str) -> Self {
        let salt = uuid::Uuid::new_v4().as_bytes().to_vec();
        let salted = gen_salted_password(password, &salt, 4096);
        Self { user: user.to_owned(), salt, salted }
    }
}

#[async_trait]
impl AuthSource for ScramSource {
    async fn get_password(&self, login: &LoginInfo) -> PgWireResult<Password> {
        if login.user() == Some(self.user.as_str()) {
            return Ok(Password::new(Some(self.salt.clone()), self.salted.clone()));
        }
        // an unknown user gets a password no one knows: the same 28P01 as a wrong password
        let unknown = uuid::Uuid::new_v4().to_string();
        Ok(Password::new(Some(self.salt.clone()), gen_salted_password(&unknown, &self.salt, 4096)))
    }
}

fn fatal(code: &str, message: String) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new("FATAL".into(), code.into(), message)))
}

fn user_error(e: &SqlError) -> PgWireError {
    let mut info = ErrorInfo::new("ERROR".into(), e.code.into(), e.message.clone());
    info.hint = e.hint.clone();
    info.position = e.position.map(|p| p.to_string());
    PgWireError::UserError(Box::new(info))
}

/// The handlers of one connection: its own session, its own authentication state.
struct Connection {
    service: Arc<QueryService>,
    startup: Arc<Startup>,
    errors: Arc<FriendlyErrors>,
    cancel: Arc<DefaultCancelHandler>,
}

impl Connection {
    fn new(shared: &Shared, over_limit: bool) -> Self {
        let ctx = Arc::new(SessionContext::new_with_state(shared.template.clone()));
        let inner = DfSessionService::new(ctx.clone());
        let parser = Arc::new(GuardedParser {
            inner: inner.query_parser(),
            catalog: shared.catalog.clone(),
        });
        let refuse = over_limit.then(|| {
            format!(
                "too many connections: the server allows {} (--max-connections)",
                shared.max_connections
            )
        });
        let scram = shared.scram.as_ref().map(|source| {
            let mut params = DefaultServerParameterProvider::default();
            params.default_transaction_read_only = true;
            SASLAuthStartupHandler::new(Arc::new(params))
                .with_scram(ScramAuth::new(source.clone()))
                .with_connection_manager(shared.connections.clone())
        });
        Self {
            service: Arc::new(QueryService {
                inner,
                parser,
                ctx,
                sql_parser: PostgresCompatibilityParser::new(),
                catalog: shared.catalog.clone(),
                statement_timeout: shared.statement_timeout,
            }),
            startup: Arc::new(Startup {
                refuse,
                scram,
                open: OpenStartup { connections: shared.connections.clone() },
            }),
            errors: Arc::new(FriendlyErrors { catalog: shared.catalog.clone() }),
            cancel: Arc::new(DefaultCancelHandler::new(shared.connections.clone())),
        }
    }
}

impl PgWireServerHandlers for Connection {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        self.service.clone()
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        self.service.clone()
    }

    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        self.startup.clone()
    }

    fn error_handler(&self) -> Arc<impl ErrorHandler> {
        self.errors.clone()
    }

    fn cancel_handler(&self) -> Arc<impl pgwire::api::cancel::CancelHandler> {
        self.cancel.clone()
    }
}

/// Checks the connection limit and the database name, then authenticates (SCRAM when a
/// password is set, nothing otherwise).
struct Startup {
    refuse: Option<String>,
    scram: Option<SASLAuthStartupHandler<DefaultServerParameterProvider>>,
    open: OpenStartup,
}

struct OpenStartup {
    connections: Arc<ConnectionManager>,
}

impl NoopStartupHandler for OpenStartup {
    fn connection_manager(&self) -> Option<Arc<ConnectionManager>> {
        Some(self.connections.clone())
    }
}

#[async_trait]
impl StartupHandler for Startup {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if let PgWireFrontendMessage::Startup(startup) = &message {
            if let Some(why) = &self.refuse {
                return Err(fatal("53300", why.clone()));
            }
            let params = &startup.parameters;
            let database = params.get("database").or_else(|| params.get("user"));
            if database.map(String::as_str) != Some(CATALOG) {
                let name = database.map_or("", String::as_str);
                return Err(fatal(
                    "3D000",
                    format!("database \"{name}\" does not exist; connect to database {CATALOG}"),
                ));
            }
        }
        match &self.scram {
            Some(scram) => scram.on_startup(client, message).await,
            None => self.open.on_startup(client, message).await,
        }
    }
}

/// Rewrites the errors that reach the client without a message of ours.
struct FriendlyErrors {
    catalog: Arc<LakehouseCatalog>,
}

impl ErrorHandler for FriendlyErrors {
    fn on_error<C: ClientInfo>(&self, _client: &C, error: &mut PgWireError) {
        if let PgWireError::ApiError(e) = error {
            let friendly = match e.downcast_ref::<DataFusionError>() {
                Some(df) => sql_error(df, "", &self.catalog),
                None => classify_message(&e.to_string(), &self.catalog),
            };
            *error = user_error(&friendly);
        }
    }
}

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

/// Ends a result's row stream with a timeout error once `deadline` passes.
fn rows_until(resp: Response, deadline: Option<Instant>, timeout: Option<Duration>) -> Response {
    let Some(deadline) = deadline else { return resp };
    let query = match resp {
        Response::Query(q) => q,
        other => return other,
    };
    let (fields, tag) = (query.row_schema(), query.command_tag().to_owned());
    let stream = futures::stream::unfold(Some(query.data_rows), move |rows| async move {
        let mut rows = rows?;
        match tokio::time::timeout_at(deadline, rows.next()).await {
            Ok(Some(row)) => Some((row, Some(rows))),
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
struct QueryService {
    inner: DfSessionService,
    parser: Arc<GuardedParser>,
    ctx: Arc<SessionContext>,
    sql_parser: PostgresCompatibilityParser,
    catalog: Arc<LakehouseCatalog>,
    statement_timeout: Option<Duration>,
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
            let run = self.read(client, statement, query);
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
        let run = ExtendedQueryHandler::do_query(&self.inner, client, portal, max_rows);
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
            let r = scan.table_name.clone().resolve(CATALOG, super::catalog::DEFAULT_SCHEMA);
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
    inner: Arc<datafusion_postgres::Parser>,
    catalog: Arc<LakehouseCatalog>,
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
