//! Direct Query's SQL front, shared by the console and the wire server: which statements are
//! allowed (read-only), running a console query over the lakehouse catalog, exporting its
//! result, and turning DataFusion's errors into messages a user can act on (a Postgres
//! SQLSTATE, the position in the query, and a hint).
//!
//! Read-only is enforced three times: [`check_read_only`] looks at the first keyword of every
//! statement (so even SQL the parser does not know, such as DataFusion's `CREATE EXTERNAL
//! TABLE` under the Postgres dialect, is refused as a write rather than as a syntax error);
//! every plan is verified with [`read_only_options`] (no DDL, DML, `COPY` or statements, also
//! inside `EXPLAIN ANALYZE`); and the catalog itself cannot be written through.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{Array, ArrayRef, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::common::DataFusionError;
use datafusion::dataframe::DataFrameWriteOptions;
use datafusion::execution::context::SQLOptions;
use datafusion::prelude::{DataFrame, SessionConfig, SessionContext};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
use futures::StreamExt;

use super::catalog::{CATALOG, DEFAULT_SCHEMA, LakehouseCatalog, LakehouseCatalogProvider};

/// Rows a console result keeps for display; the rest are counted, not kept.
pub const CONSOLE_DISPLAY_ROWS: usize = 10_000;

/// Postgres error codes (SQLSTATE) Direct Query reports.
pub mod sqlstate {
    pub const READ_ONLY: &str = "25006";
    pub const SYNTAX: &str = "42601";
    pub const UNDEFINED_TABLE: &str = "42P01";
    pub const UNDEFINED_SCHEMA: &str = "3F000";
    pub const UNDEFINED_COLUMN: &str = "42703";
    pub const UNDEFINED_FUNCTION: &str = "42883";
    pub const PLAN: &str = "42000";
    pub const FILE_MISSING: &str = "58P01";
    pub const CANCELED: &str = "57014";
    pub const NOT_SUPPORTED: &str = "0A000";
    pub const INTERNAL: &str = "XX000";
}

/// A failed statement, as a user reads it.
#[derive(Clone, Debug, PartialEq)]
pub struct SqlError {
    /// Postgres SQLSTATE (`42P01`, `25006`, …); see [`sqlstate`].
    pub code: &'static str,
    pub message: String,
    /// What to do about it.
    pub hint: Option<String>,
    /// 1-based character position in the query, when the error points at one.
    pub position: Option<usize>,
}

impl SqlError {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), hint: None, position: None }
    }

    fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Line and column (1-based) of [`Self::position`] in `sql`.
    pub fn line_column(&self, sql: &str) -> Option<(usize, usize)> {
        let pos = self.position?;
        let before: String = sql.chars().take(pos.saturating_sub(1)).collect();
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        Some((line, column))
    }
}

impl std::fmt::Display for SqlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.message)?;
        if let Some(h) = &self.hint {
            write!(f, "\nhint: {h}")?;
        }
        Ok(())
    }
}

impl std::error::Error for SqlError {}

/// What a statement does, judged by its leading keyword.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StatementKind {
    /// A query: `SELECT`, `WITH`, `VALUES`, `EXPLAIN <query>`, `SHOW`, `DESCRIBE`.
    Read,
    /// Changes only the session: `SET`, `RESET`, transactions, cursors.
    Session,
    /// A statement that writes or changes the catalog, with its keyword (`CREATE`, `COPY`, …).
    Write(String),
    /// A keyword this list does not know (a typo such as `SELEC`): the parser reports it, and
    /// anything it does parse must still pass the statement and plan checks.
    Unknown,
}

const READ_KEYWORDS: &[&str] = &["SELECT", "WITH", "VALUES", "TABLE", "SHOW", "DESCRIBE", "DESC"];
const SESSION_KEYWORDS: &[&str] = &[
    "SET",
    "RESET",
    "BEGIN",
    "START",
    "COMMIT",
    "ROLLBACK",
    "END",
    "ABORT",
    "FETCH",
    "CLOSE",
    "MOVE",
    "DEALLOCATE",
    "DISCARD",
];
/// Keywords that start a statement, to find the statement inside `EXPLAIN …` / `DECLARE …`.
const STATEMENT_KEYWORDS: &[&str] = &[
    "SELECT", "WITH", "VALUES", "TABLE", "INSERT", "UPDATE", "DELETE", "MERGE", "COPY", "CREATE",
    "DROP", "ALTER", "TRUNCATE", "GRANT", "REVOKE", "PREPARE", "EXECUTE", "CALL", "LOAD", "VACUUM",
    "UNLOAD", "REPLACE", "UPSERT",
];
/// Keywords of statements that write files or tables or change the catalog.
const WRITE_KEYWORDS: &[&str] = &[
    "INSERT", "UPDATE", "DELETE", "MERGE", "UPSERT", "REPLACE", "COPY", "UNLOAD", "CREATE", "DROP",
    "ALTER", "TRUNCATE", "RENAME", "GRANT", "REVOKE", "COMMENT", "PREPARE", "EXECUTE", "CALL",
    "DO", "LOAD", "IMPORT", "INSTALL", "ATTACH", "DETACH", "VACUUM", "OPTIMIZE", "ANALYZE",
    "REINDEX", "CLUSTER", "REFRESH", "LOCK", "LISTEN", "NOTIFY", "SECURITY", "CACHE", "UNCACHE",
    "MSCK", "PRAGMA", "USE",
];

/// The kind of every statement in `sql` (split at `;`). Text that does not tokenize gives no
/// statements: the parser reports it as a syntax error afterwards.
pub fn classify(sql: &str) -> Vec<StatementKind> {
    let Ok(tokens) = Tokenizer::new(&PostgreSqlDialect {}, sql).tokenize() else {
        return Vec::new();
    };
    let words = |ts: &[Token]| -> Vec<String> {
        ts.iter()
            .filter_map(|t| match t {
                Token::Word(w) if w.quote_style.is_none() => Some(w.value.to_ascii_uppercase()),
                _ => None,
            })
            .collect()
    };
    tokens
        .split(|t| matches!(t, Token::SemiColon))
        .filter_map(|stmt| {
            let first = stmt
                .iter()
                .find(|t| !matches!(t, Token::Whitespace(_) | Token::LParen | Token::EOF))?;
            let Token::Word(w) = first else {
                return Some(StatementKind::Unknown);
            };
            let keyword = w.value.to_ascii_uppercase();
            let inner = || {
                // the statement EXPLAIN / DECLARE … FOR wraps
                let rest = words(stmt);
                match rest.iter().skip(1).find(|w| STATEMENT_KEYWORDS.contains(&w.as_str())) {
                    Some(k) if READ_KEYWORDS.contains(&k.as_str()) => StatementKind::Read,
                    Some(k) => StatementKind::Write(k.clone()),
                    None => StatementKind::Read,
                }
            };
            Some(match keyword.as_str() {
                k if READ_KEYWORDS.contains(&k) => StatementKind::Read,
                k if SESSION_KEYWORDS.contains(&k) => StatementKind::Session,
                "EXPLAIN" => inner(),
                "DECLARE" => match inner() {
                    StatementKind::Read => StatementKind::Session,
                    w => w,
                },
                k if WRITE_KEYWORDS.contains(&k) => StatementKind::Write(keyword),
                _ => StatementKind::Unknown,
            })
        })
        .collect()
}

/// Refuses anything but queries (and, when `allow_session`, session statements such as `SET`)
/// with SQLSTATE 25006.
pub fn check_read_only(sql: &str, allow_session: bool) -> Result<(), SqlError> {
    for kind in classify(sql) {
        let refused = match kind {
            StatementKind::Read | StatementKind::Unknown => continue,
            StatementKind::Session if allow_session => continue,
            StatementKind::Session => "session statements".to_owned(),
            StatementKind::Write(k) => format!("`{k}` statements"),
        };
        return Err(read_only_error(&refused));
    }
    Ok(())
}

/// The 25006 error for refused statements (`what`: "`CREATE` statements").
pub fn read_only_error(what: &str) -> SqlError {
    SqlError::new(sqlstate::READ_ONLY, format!("Direct Query is read-only: {what} are refused"))
        .with_hint(
            "query the tables with SELECT (or EXPLAIN / SHOW); pipelines write them. \
         Export a result from the SQL console to save it to a file.",
        )
}

/// The options every plan is checked against: queries only.
pub fn read_only_options() -> SQLOptions {
    SQLOptions::new().with_allow_ddl(false).with_allow_dml(false).with_allow_statements(false)
}

/// A session over the lakehouse catalog: `bronze`, `silver`, `gold`, `lakehouse` schemas of
/// catalog `medallion`, `public` the (empty) default schema. `postgres` sessions fold unquoted
/// names to lower case, as Postgres does; the console keeps their case, as the pipelines' SQL
/// does (`employment_keySkills`).
pub fn lakehouse_context(catalog: &Arc<LakehouseCatalog>, postgres: bool) -> SessionContext {
    let mut config: SessionConfig =
        deltalake::delta_datafusion::DeltaSessionConfig::default().into();
    config = config
        .with_default_catalog_and_schema(CATALOG, DEFAULT_SCHEMA)
        .with_create_default_catalog_and_schema(false)
        .with_information_schema(true);
    let options = config.options_mut();
    options.sql_parser.enable_ident_normalization = postgres;
    options.sql_parser.collect_spans = true;
    // a cancel or a statement timeout stops a query at once, even deep in a join
    let state = datafusion::execution::SessionStateBuilder::new()
        .with_config(config)
        .with_default_features()
        .with_physical_optimizer_rule(Arc::new(super::cancellable::YieldingJoins))
        .build();
    let ctx = SessionContext::new_with_state(state);
    ctx.register_catalog(CATALOG, LakehouseCatalogProvider::new(catalog.clone()));
    ctx
}

/// A console query's result: the first rows, and how many there were in all.
#[derive(Clone, Debug)]
pub struct QueryResult {
    pub schema: SchemaRef,
    /// At most the display cap's rows.
    pub batches: Vec<RecordBatch>,
    pub total_rows: u64,
    pub elapsed_ms: u64,
}

impl QueryResult {
    pub fn shown_rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }

    /// Whether rows were left out of the display.
    pub fn truncated(&self) -> bool {
        (self.shown_rows() as u64) < self.total_rows
    }
}

async fn plan_query(catalog: &Arc<LakehouseCatalog>, sql: &str) -> Result<DataFrame, SqlError> {
    check_read_only(sql, false)?;
    let ctx = lakehouse_context(catalog, false);
    ctx.sql_with_options(sql, read_only_options()).await.map_err(|e| sql_error(&e, sql, catalog))
}

/// Runs one console query: keeps the first `display_rows` rows, counts the rest.
pub async fn run_console_query(
    catalog: &Arc<LakehouseCatalog>,
    sql: &str,
    display_rows: usize,
) -> Result<QueryResult, SqlError> {
    let started = Instant::now();
    let df = plan_query(catalog, sql).await?;
    let schema = Arc::new(df.schema().as_arrow().clone());
    let mut stream = df.execute_stream().await.map_err(|e| sql_error(&e, sql, catalog))?;
    let (mut batches, mut kept, mut total_rows) = (Vec::new(), 0usize, 0u64);
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(|e| sql_error(&e, sql, catalog))?;
        total_rows += batch.num_rows() as u64;
        if kept < display_rows {
            let take = batch.num_rows().min(display_rows - kept);
            kept += take;
            batches.push(batch.slice(0, take));
        }
    }
    let elapsed_ms = started.elapsed().as_millis() as u64;
    Ok(QueryResult { schema, batches, total_rows, elapsed_ms })
}

/// File formats a console result exports to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportFormat {
    Csv,
    Parquet,
}

impl ExportFormat {
    /// From a file name's extension (`.parquet`; anything else is CSV).
    pub fn for_path(path: &Path) -> Self {
        match path.extension().and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("parquet") => ExportFormat::Parquet,
            _ => ExportFormat::Csv,
        }
    }
}

/// Runs `sql` again and writes every row of its result to one file at `path`.
pub async fn export_query(
    catalog: &Arc<LakehouseCatalog>,
    sql: &str,
    path: &Path,
    format: ExportFormat,
) -> Result<u64, SqlError> {
    let df = plan_query(catalog, sql).await?;
    let written = match format {
        ExportFormat::Csv => write_csv(df, path).await,
        ExportFormat::Parquet => {
            let options = DataFrameWriteOptions::new().with_single_file_output(true);
            let target = path.to_string_lossy().into_owned();
            df.write_parquet(&target, options, None).await.map(|w| count_written(&w))
        }
    };
    written.map_err(|e| sql_error(&e, sql, catalog))
}

/// CSV has no lists or structs: those columns are written as the grid shows them
/// (`[a, b]`, `{x: 1}`).
async fn write_csv(df: DataFrame, path: &Path) -> Result<u64, DataFusionError> {
    let io = |e: std::io::Error| DataFusionError::External(Box::new(e));
    let mut stream = df.execute_stream().await?;
    let file = std::io::BufWriter::new(std::fs::File::create(path).map_err(io)?);
    let mut writer = arrow::csv::WriterBuilder::new().with_header(true).build(file);
    let mut rows = 0u64;
    while let Some(batch) = stream.next().await {
        let batch = flat_for_csv(&batch?)?;
        rows += batch.num_rows() as u64;
        writer.write(&batch)?;
    }
    writer.into_inner().into_inner().map_err(|e| io(e.into_error()))?.sync_all().map_err(io)?;
    Ok(rows)
}

fn flat_for_csv(batch: &RecordBatch) -> Result<RecordBatch, DataFusionError> {
    let nested = |t: &DataType| t.is_nested();
    if !batch.schema().fields().iter().any(|f| nested(f.data_type())) {
        return Ok(batch.clone());
    }
    let options = FormatOptions::default();
    let mut fields = Vec::new();
    let mut columns: Vec<ArrayRef> = Vec::new();
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        if nested(field.data_type()) {
            let formatter = ArrayFormatter::try_new(column.as_ref(), &options)?;
            let text: StringArray = (0..column.len())
                .map(|i| column.is_valid(i).then(|| formatter.value(i).to_string()))
                .collect();
            fields.push(Field::new(field.name(), DataType::Utf8, true));
            columns.push(Arc::new(text));
        } else {
            fields.push(field.as_ref().clone());
            columns.push(column.clone());
        }
    }
    Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?)
}

fn count_written(batches: &[RecordBatch]) -> u64 {
    batches
        .first()
        .and_then(|b| b.column(0).as_any().downcast_ref::<arrow::array::UInt64Array>())
        .map_or(0, |a| a.value(0))
}

/// `Line: 1, Column: 8` in a parser message → 1-based character position in `sql`.
fn parser_position(message: &str, sql: &str) -> Option<usize> {
    let re = regex::Regex::new(r"Line: (\d+), Column: (\d+)").ok()?;
    let caps = re.captures(message)?;
    let line: usize = caps[1].parse().ok()?;
    let column: usize = caps[2].parse().ok()?;
    position_of(sql, line, column)
}

fn position_of(sql: &str, line: usize, column: usize) -> Option<usize> {
    if line == 0 {
        return None;
    }
    let before: usize = sql.split('\n').take(line - 1).map(|l| l.chars().count() + 1).sum();
    Some(before + column)
}

/// A parser error, with the position its `Line: …, Column: …` points at.
pub fn syntax_error(message: &str, sql: &str) -> SqlError {
    let message = message.trim_start_matches("sql parser error: ");
    let mut err = SqlError::new(sqlstate::SYNTAX, format!("syntax error: {message}"));
    err.position = parser_position(message, sql);
    err
}

/// Turns a DataFusion error into a message a user can act on.
pub fn sql_error(e: &DataFusionError, sql: &str, catalog: &LakehouseCatalog) -> SqlError {
    let position = e
        .diagnostic()
        .and_then(|d| d.span)
        .and_then(|s| position_of(sql, s.start.line as usize, s.start.column as usize));
    let root = e.find_root();
    let text = root.strip_backtrace();
    let mut err = match root {
        DataFusionError::SQL(p, _) => syntax_error(&p.to_string(), sql),
        DataFusionError::NotImplemented(m) => {
            SqlError::new(sqlstate::NOT_SUPPORTED, format!("not supported: {m}"))
        }
        _ => classify_message(&text, catalog),
    };
    if err.position.is_none() {
        err.position = position;
    }
    err
}

/// Errors known by their message (DataFusion's planner reports most as plain text).
pub fn classify_message(text: &str, catalog: &LakehouseCatalog) -> SqlError {
    let unknown_table = regex::Regex::new(r"table '([^']+)' not found").ok();
    if let Some(caps) = unknown_table.as_ref().and_then(|re| re.captures(text)) {
        let name = caps[1].trim_start_matches(&format!("{CATALOG}.")).to_owned();
        let name = name.strip_prefix(&format!("{DEFAULT_SCHEMA}.")).unwrap_or(&name).to_owned();
        return SqlError::new(
            sqlstate::UNDEFINED_TABLE,
            format!("table `{name}` does not exist; {}", catalog.table_list()),
        )
        .with_hint("name tables by layer, e.g. silver.users; new tables show up by themselves");
    }
    if text.contains("failed to resolve schema") || text.contains("Schema not found") {
        return SqlError::new(
            sqlstate::UNDEFINED_SCHEMA,
            format!("{text}; the schemas are bronze, silver, gold and lakehouse"),
        );
    }
    if text.contains("No field named") || text.contains("Schema error: No field") {
        return SqlError::new(
            sqlstate::UNDEFINED_COLUMN,
            text.trim_start_matches("Schema error: "),
        )
        .with_hint("names with capitals need double quotes in Postgres clients");
    }
    if text.contains("Invalid function") || text.contains("No function matches") {
        return SqlError::new(sqlstate::UNDEFINED_FUNCTION, text);
    }
    let missing_file = ["Object at location", "No such file or directory", "NotFound"]
        .iter()
        .any(|m| text.contains(m));
    if missing_file {
        return SqlError::new(
            sqlstate::FILE_MISSING,
            format!("a data file of the table is missing: {text}"),
        )
        .with_hint(
            "if the table was just vacuumed or overwritten, run the query again (it reads the \
             newest version); if files were deleted by hand, restore them or rewrite the table",
        );
    }
    let code = if text.starts_with("Error during planning") || text.starts_with("Schema error") {
        sqlstate::PLAN
    } else {
        sqlstate::INTERNAL
    };
    SqlError::new(code, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_are_classified_by_their_keyword() {
        use StatementKind::*;
        let kinds = classify(
            "select 1; WITH a AS (SELECT 1) SELECT * FROM a; (select 2); explain analyze select 1;
             show tables; set datestyle = 'ISO'; begin; commit",
        );
        assert_eq!(kinds, [Read, Read, Read, Read, Read, Session, Session, Session]);
        let writes = [
            ("CREATE EXTERNAL TABLE t STORED AS CSV LOCATION '/etc/passwd'", "CREATE"),
            ("create table t as select 1", "CREATE"),
            ("insert into silver.users values (1)", "INSERT"),
            ("COPY (SELECT 1) TO '/tmp/x.csv'", "COPY"),
            ("drop table silver.users", "DROP"),
            ("delete from silver.users", "DELETE"),
            ("update silver.users set a = 1", "UPDATE"),
            ("EXPLAIN ANALYZE COPY (SELECT 1) TO '/tmp/x'", "COPY"),
            ("explain insert into t values (1)", "INSERT"),
        ];
        for (sql, keyword) in writes {
            assert_eq!(classify(sql), [Write(keyword.into())], "{sql}");
            let err = check_read_only(sql, true).unwrap_err();
            assert_eq!(err.code, sqlstate::READ_ONLY, "{sql}");
        }
        assert_eq!(check_read_only("SET x = 1", false).unwrap_err().code, sqlstate::READ_ONLY);
        assert!(check_read_only("SET x = 1; select 1", true).is_ok());
        assert_eq!(classify("DECLARE c CURSOR FOR SELECT 1"), [Session]);
        assert_eq!(classify("-- just a comment"), Vec::<StatementKind>::new());
        // a typo is the parser's to report (as a syntax error), not a refused write
        assert_eq!(classify("SELEC 1"), [Unknown]);
        assert!(check_read_only("SELEC 1", false).is_ok());
    }

    #[test]
    fn positions_are_characters_from_one() {
        let sql = "SELECT 1\nFORM x";
        assert_eq!(position_of(sql, 2, 1), Some(10));
        let e = SqlError { position: Some(10), ..SqlError::new("42601", "x") };
        assert_eq!(e.line_column(sql), Some((2, 1)));
    }
}
