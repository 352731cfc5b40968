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
use datafusion::execution::SessionState;
use datafusion::prelude::SessionContext;
use datafusion_postgres::DfSessionService;
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::context::EmptyContextProvider;
use datafusion_postgres::datafusion_pg_catalog::setup_pg_catalog;
use datafusion_postgres::datafusion_pg_catalog::sql::PostgresCompatibilityParser;
use datafusion_postgres::pgwire;
use futures::Sink;
use pgwire::api::auth::noop::NoopStartupHandler;
use pgwire::api::auth::sasl::SASLAuthStartupHandler;
use pgwire::api::auth::sasl::scram::{ScramAuth, gen_salted_password};
use pgwire::api::auth::{
    AuthSource, DefaultServerParameterProvider, LoginInfo, Password, StartupHandler,
};
use pgwire::api::cancel::DefaultCancelHandler;
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::{ClientInfo, ConnectionManager, ErrorHandler, PgWireServerHandlers};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use pgwire::tokio::TlsAcceptor;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

mod query;

use query::{GuardedParser, QueryService};

use super::catalog::{CATALOG, LakehouseCatalog};
use super::sql::{SqlError, classify_message, lakehouse_context, sql_error};

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
        // the connections live in this set: stopping the server (aborting this task) ends them
        let mut connections = tokio::task::JoinSet::new();
        loop {
            while connections.try_join_next().is_some() {}
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
            connections.spawn(async move {
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
