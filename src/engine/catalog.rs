//! The lakehouse as a DataFusion catalog, for Direct Query (the SQL console and `serve`).
//!
//! Every Delta table under the lakehouse root is a table in the schema of its layer:
//! `bronze/users` is `bronze.users`, `gold/users_by_title` is `gold.users_by_title`, and a table
//! outside a layer folder (`landing/x`, `other/t`) is in schema `lakehouse`, named by its whole
//! path (`lakehouse.landing_x`). Names are lowercased, and anything but letters, digits and `_`
//! becomes `_`, so they need no quoting in Postgres clients.
//!
//! Freshness: DataFusion resolves each table once per statement through
//! [`SchemaProvider::table`]; that call brings the open `DeltaTable` up to the newest commit
//! (`update_incremental`, which only reads the log files written since) and builds a scan
//! pinned to that snapshot. So each statement sees the newest committed version of every table
//! it names, and is consistent with itself while a stream keeps committing. Tables that appear
//! later are found by listing the root again (at most once a second, and at once when a
//! statement names a table the last listing did not have).
//!
//! Time travel: `silver."users@v3"` is version 3 of `silver.users`, and
//! `silver."users@2026-12-01T10:00:00Z"` the version current at that instant (RFC 3339). The
//! quotes are needed because `@` is not allowed in a bare SQL name.
//!
//! The catalog is read-only: schemas and tables cannot be created in it, and every table is
//! wrapped so that `INSERT` into it fails even if a plan got that far (the SQL front ends refuse
//! such statements before planning; this is the second lock on the door).
//!
//! Depends on the engine's Delta helpers only; knows nothing of the UI or the wire protocol.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use datafusion::catalog::{CatalogProvider, SchemaProvider, Session, TableProvider};
use datafusion::common::{Constraints, DataFusionError, Statistics};
use datafusion::datasource::TableType;
use datafusion::logical_expr::dml::InsertOp;
use datafusion::logical_expr::{Expr, LogicalPlan, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use deltalake::DeltaTable;

use crate::model::node::Layer;

use super::{EngineError, delta, lakehouse};

/// The catalog's name: the database Postgres clients connect to.
pub const CATALOG: &str = "medallion";
/// The schema of tables outside the bronze / silver / gold folders.
pub const OTHER_SCHEMA: &str = "lakehouse";
/// The lakehouse schemas, in the order they are listed.
pub const SCHEMAS: [&str; 4] = ["bronze", "silver", "gold", OTHER_SCHEMA];
/// An empty, read-only default schema (Postgres clients expect `public`).
pub const DEFAULT_SCHEMA: &str = "public";

/// How long a listing of the root is reused before tables that appeared are looked for again.
const RELIST_AFTER: Duration = Duration::from_secs(1);

type DfResult<T> = std::result::Result<T, DataFusionError>;

/// Where the table at `relative` (`silver/users`, `/` separators) lives in the catalog:
/// `(schema, table)`.
pub fn table_name(relative: &str) -> (String, String) {
    let layer = Layer::from_table_path(relative).filter(|l| *l != Layer::Landing);
    match layer {
        Some(l) => {
            let rest = relative.trim_start_matches("./").split_once('/').map_or("", |(_, r)| r);
            (l.as_str().to_owned(), sanitize(rest))
        }
        None => (OTHER_SCHEMA.to_owned(), sanitize(relative)),
    }
}

fn sanitize(name: &str) -> String {
    name.trim_matches('/')
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' })
        .collect()
}

/// A time-travel suffix on a table name.
#[derive(Clone, Debug, PartialEq)]
pub enum AsOf {
    Version(i64),
    Timestamp(DateTime<Utc>),
}

/// Splits `users@v3` into `("users", Some(Version(3)))`; a name without `@` has no suffix.
pub fn parse_as_of(name: &str) -> DfResult<(&str, Option<AsOf>)> {
    let Some((base, suffix)) = name.rsplit_once('@') else {
        return Ok((name, None));
    };
    let bad = || {
        DataFusionError::Plan(format!(
            "`{name}`: after `@` write a version (`{base}@v3`) or an RFC 3339 timestamp \
             (`{base}@2026-12-01T10:00:00Z`)"
        ))
    };
    if let Some(v) = suffix.strip_prefix(['v', 'V']) {
        return v.parse::<i64>().map(|v| (base, Some(AsOf::Version(v)))).map_err(|_| bad());
    }
    let ts = DateTime::parse_from_rfc3339(suffix).map_err(|_| bad())?;
    Ok((base, Some(AsOf::Timestamp(ts.with_timezone(&Utc)))))
}

/// One table of the catalog.
#[derive(Clone, Debug, PartialEq)]
pub struct CatalogTable {
    pub schema: String,
    pub name: String,
    pub path: PathBuf,
}

impl CatalogTable {
    /// `schema.name`, as written in SQL.
    pub fn qualified(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }
}

/// The tables found under the root at the last listing.
#[derive(Debug, Default)]
struct Listing {
    at: Option<Instant>,
    /// (schema, name) → table directory
    tables: BTreeMap<(String, String), PathBuf>,
}

/// The lakehouse root as a catalog, shared by every session that queries it. Cheap to clone
/// handles to (`Arc`); opened tables are kept so that a refresh only reads new commits.
#[derive(Debug)]
pub struct LakehouseCatalog {
    root: PathBuf,
    listing: Mutex<Listing>,
    /// Open tables by directory, each behind its own lock so one slow refresh doesn't hold
    /// up the others.
    open: Mutex<HashMap<PathBuf, Arc<tokio::sync::Mutex<Option<DeltaTable>>>>>,
}

impl LakehouseCatalog {
    pub fn new(root: &Path) -> Arc<Self> {
        Arc::new(Self { root: root.to_owned(), listing: Mutex::default(), open: Mutex::default() })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Every table, sorted by schema (bronze, silver, gold, lakehouse) then name. Lists the
    /// root again when `fresh`, or when the last listing is older than a second.
    pub fn tables(&self, fresh: bool) -> Vec<CatalogTable> {
        let mut listing = self.listing.lock().unwrap_or_else(PoisonError::into_inner);
        if fresh || listing.at.is_none_or(|t| t.elapsed() >= RELIST_AFTER) {
            let mut dirs = Vec::new();
            // an unreadable folder leaves the previous listing in place
            if lakehouse::find_tables(&self.root, 0, &mut dirs).is_ok() {
                listing.tables = dirs
                    .into_iter()
                    .map(|dir| {
                        let rel = relative_name(&self.root, &dir);
                        (table_name(&rel), dir)
                    })
                    .collect();
                listing.at = Some(Instant::now());
            }
        }
        let mut out: Vec<CatalogTable> = listing
            .tables
            .iter()
            .map(|((schema, name), path)| CatalogTable {
                schema: schema.clone(),
                name: name.clone(),
                path: path.clone(),
            })
            .collect();
        let rank = |s: &str| SCHEMAS.iter().position(|x| *x == s).unwrap_or(SCHEMAS.len());
        out.sort_by(|a, b| (rank(&a.schema), &a.name).cmp(&(rank(&b.schema), &b.name)));
        out
    }

    /// The directory of `schema.name`, listing again once if it is not known yet.
    fn find(&self, schema: &str, name: &str) -> Option<PathBuf> {
        let look = |tables: Vec<CatalogTable>| {
            tables.into_iter().find(|t| t.schema == schema && t.name == name).map(|t| t.path)
        };
        look(self.tables(false)).or_else(|| look(self.tables(true)))
    }

    /// The names a user can write, for error messages: `bronze.users, silver.users, …`.
    pub fn table_list(&self) -> String {
        let names: Vec<String> = self.tables(false).iter().map(CatalogTable::qualified).collect();
        if names.is_empty() {
            format!("there are no Delta tables under {} yet", self.root.display())
        } else {
            format!("the tables are {}", names.join(", "))
        }
    }

    /// The newest version of the table in `dir` (opened once, then refreshed incrementally).
    async fn latest(&self, dir: &Path) -> Result<Option<DeltaTable>, EngineError> {
        let slot = {
            let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
            open.entry(dir.to_owned()).or_default().clone()
        };
        let mut slot = slot.lock().await;
        match slot.as_mut() {
            Some(table) => {
                if let Err(e) = table.update_incremental(None).await {
                    // the table may have been deleted or rewritten: open it afresh next time
                    *slot = None;
                    return if dir.join("_delta_log").is_dir() { Err(e.into()) } else { Ok(None) };
                }
            }
            None => *slot = delta::try_open(dir).await?,
        }
        Ok(slot.clone())
    }

    /// A scan of `schema.name` (with an optional `@v3` / `@timestamp` suffix) at its newest
    /// version, or at the version the suffix names.
    pub async fn provider(
        &self,
        schema: &str,
        name: &str,
    ) -> DfResult<Option<Arc<dyn TableProvider>>> {
        let (base, as_of) = parse_as_of(name)?;
        let Some(dir) = self.find(schema, base) else { return Ok(None) };
        let plan_err = |e: EngineError| DataFusionError::Plan(format!("{schema}.{base}: {e}"));
        let table = match as_of {
            None => match self.latest(&dir).await.map_err(plan_err)? {
                Some(t) => t,
                None => return Ok(None),
            },
            Some(AsOf::Version(v)) => lakehouse::open_version(&dir, v).await.map_err(plan_err)?,
            Some(AsOf::Timestamp(ts)) => {
                let mut t = delta::open(&dir).await.map_err(plan_err)?;
                t.load_with_datetime(ts).await.map_err(|e| {
                    DataFusionError::Plan(format!(
                        "{schema}.{base} has no version at {ts}: {e} (the first commit is later, \
                         or the log was cleaned up)"
                    ))
                })?;
                t
            }
        };
        let provider = table.table_provider().await?;
        Ok(Some(Arc::new(ReadOnlyTable(provider))))
    }

    /// The schema of `table` at its newest version.
    pub async fn table_schema(&self, table: &CatalogTable) -> DfResult<Option<SchemaRef>> {
        Ok(self.provider(&table.schema, &table.name).await?.map(|p| p.schema()))
    }
}

fn relative_name(root: &Path, dir: &Path) -> String {
    dir.strip_prefix(root)
        .unwrap_or(dir)
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

/// The catalog as DataFusion sees it: the layer schemas, the empty `public` schema, and the
/// wire server's `pg_catalog`.
#[derive(Debug)]
pub struct LakehouseCatalogProvider {
    lakehouse: Arc<LakehouseCatalog>,
    /// Schemas registered by the wire server (`pg_catalog`).
    extra: Mutex<HashMap<String, Arc<dyn SchemaProvider>>>,
}

impl LakehouseCatalogProvider {
    pub fn new(lakehouse: Arc<LakehouseCatalog>) -> Arc<Self> {
        Arc::new(Self { lakehouse, extra: Mutex::default() })
    }
}

impl CatalogProvider for LakehouseCatalogProvider {
    fn schema_names(&self) -> Vec<String> {
        let mut names: Vec<String> =
            SCHEMAS.iter().chain([&DEFAULT_SCHEMA]).map(|s| (*s).to_owned()).collect();
        names.extend(self.extra.lock().unwrap_or_else(PoisonError::into_inner).keys().cloned());
        names
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        if let Some(s) = self.extra.lock().unwrap_or_else(PoisonError::into_inner).get(name) {
            return Some(s.clone());
        }
        let known = SCHEMAS.contains(&name) || name == DEFAULT_SCHEMA;
        known.then(|| {
            Arc::new(LayerSchema { name: name.to_owned(), lakehouse: self.lakehouse.clone() })
                as Arc<dyn SchemaProvider>
        })
    }

    /// Only the wire server's `pg_catalog` may be added; users cannot create schemas.
    fn register_schema(
        &self,
        name: &str,
        schema: Arc<dyn SchemaProvider>,
    ) -> DfResult<Option<Arc<dyn SchemaProvider>>> {
        if name != "pg_catalog" {
            return Err(DataFusionError::Plan(format!(
                "cannot create schema `{name}`: the lakehouse catalog is read-only"
            )));
        }
        let mut extra = self.extra.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(extra.insert(name.to_owned(), schema))
    }
}

/// One schema: the tables of a layer (or of `lakehouse`; `public` is always empty).
#[derive(Debug)]
struct LayerSchema {
    name: String,
    lakehouse: Arc<LakehouseCatalog>,
}

#[async_trait]
impl SchemaProvider for LayerSchema {
    fn table_names(&self) -> Vec<String> {
        let tables = self.lakehouse.tables(false);
        tables.into_iter().filter(|t| t.schema == self.name).map(|t| t.name).collect()
    }

    async fn table(&self, name: &str) -> DfResult<Option<Arc<dyn TableProvider>>> {
        self.lakehouse.provider(&self.name, name).await
    }

    fn table_exist(&self, name: &str) -> bool {
        let base = parse_as_of(name).map_or(name, |(b, _)| b);
        self.lakehouse.find(&self.name, base).is_some()
    }

    fn register_table(
        &self,
        name: String,
        _table: Arc<dyn TableProvider>,
    ) -> DfResult<Option<Arc<dyn TableProvider>>> {
        Err(DataFusionError::Plan(format!(
            "cannot create table `{}.{name}`: the lakehouse is read-only here; pipelines write \
             its tables",
            self.name
        )))
    }
}

/// A table scan that cannot be written through (`INSERT` fails even if it got planned).
#[derive(Debug)]
struct ReadOnlyTable(Arc<dyn TableProvider>);

#[async_trait]
impl TableProvider for ReadOnlyTable {
    fn schema(&self) -> SchemaRef {
        self.0.schema()
    }

    fn constraints(&self) -> Option<&Constraints> {
        self.0.constraints()
    }

    fn table_type(&self) -> TableType {
        self.0.table_type()
    }

    fn get_logical_plan(&self) -> Option<Cow<'_, LogicalPlan>> {
        self.0.get_logical_plan()
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        self.0.scan(state, projection, filters, limit).await
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        self.0.supports_filters_pushdown(filters)
    }

    fn statistics(&self) -> Option<Statistics> {
        self.0.statistics()
    }

    async fn insert_into(
        &self,
        _state: &dyn Session,
        _input: Arc<dyn ExecutionPlan>,
        _insert_op: InsertOp,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        Err(DataFusionError::Plan(
            "the lakehouse is read-only here: pipelines write its tables".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_named_by_layer() {
        let name = |p: &str| table_name(p);
        assert_eq!(name("silver/users"), ("silver".into(), "users".into()));
        assert_eq!(name("gold/users_by_title"), ("gold".into(), "users_by_title".into()));
        assert_eq!(name("bronze/eu/Users-2"), ("bronze".into(), "eu_users_2".into()));
        assert_eq!(name("landing/raw"), ("lakehouse".into(), "landing_raw".into()));
        assert_eq!(name("scratch"), ("lakehouse".into(), "scratch".into()));
    }

    #[test]
    fn time_travel_suffixes() {
        assert_eq!(parse_as_of("users").unwrap(), ("users", None));
        assert_eq!(parse_as_of("users@v3").unwrap(), ("users", Some(AsOf::Version(3))));
        let (base, ts) = parse_as_of("users@2026-12-01T10:00:00Z").unwrap();
        assert_eq!(base, "users");
        assert!(matches!(ts, Some(AsOf::Timestamp(t)) if t.to_rfc3339().starts_with("2026-12-01")));
        let err = parse_as_of("users@yesterday").unwrap_err().to_string();
        assert!(err.contains("users@v3"), "{err}");
    }

    #[tokio::test]
    async fn newest_version_and_time_travel() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("silver/users");
        let batch = |n: i64| {
            let ids = arrow::array::Int64Array::from_iter_values(0..n);
            arrow::array::RecordBatch::try_from_iter([("id", Arc::new(ids) as _)]).unwrap()
        };
        let meta = delta::CommitMeta::tool("test");
        delta::overwrite_batches(&path, vec![batch(3)], &meta).await.unwrap();
        let catalog = LakehouseCatalog::new(dir.path());
        let count = |t: Arc<dyn TableProvider>| async move {
            let ctx = datafusion::prelude::SessionContext::new();
            ctx.read_table(t).unwrap().count().await.unwrap()
        };
        let latest = catalog.provider("silver", "users").await.unwrap().unwrap();
        assert_eq!(count(latest).await, 3);
        delta::overwrite_batches(&path, vec![batch(5)], &meta).await.unwrap();
        let latest = catalog.provider("silver", "users").await.unwrap().unwrap();
        assert_eq!(count(latest).await, 5, "a new commit shows on the next lookup");
        let v0 = catalog.provider("silver", "users@v0").await.unwrap().unwrap();
        assert_eq!(count(v0).await, 3);
        let err = catalog.provider("silver", "users@v9").await.unwrap_err().to_string();
        assert!(err.contains("latest version is 1"), "{err}");
        assert!(catalog.provider("silver", "nope").await.unwrap().is_none());
        // a table that appears later is found without waiting for the next listing
        delta::overwrite_batches(&dir.path().join("gold/t"), vec![batch(1)], &meta).await.unwrap();
        assert!(catalog.provider("gold", "t").await.unwrap().is_some());
        assert_eq!(catalog.table_list(), "the tables are silver.users, gold.t");
    }
}
