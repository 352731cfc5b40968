//! Direct Query with real clients: psql and psycopg 3 against `medallion serve` (in-process
//! on a free port, and the real binary for start-up errors), and the SQL console driven by
//! egui_kittest. Every test gets its own lakehouse, written by the batch example.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use deltalake::protocol::SaveMode;
use egui_kittest::kittest::Queryable as _;
use medallion::engine::catalog::LakehouseCatalog;
use medallion::engine::serve::{self, ServeOptions, Server};
use medallion::engine::sql;
use medallion::ui::app::BottomTab;
use serde_json::Value;

use crate::common::{USERS, demo_lakehouse, load_project, query, repo_path, run};

const PASSWORD: &str = "s3cret-for-tests";

/// A lakehouse with bronze/silver/gold written by `projects/users_batch.toml`.
async fn lake() -> tempfile::TempDir {
    let (dir, _) = demo_lakehouse().await;
    run(&load_project("projects/users_batch.toml"), dir.path()).await.expect("batch example runs");
    dir
}

/// A server on a free loopback port.
async fn server(root: &Path, password: Option<&str>) -> Server {
    let mut opts = ServeOptions::new(root);
    opts.port = 0;
    opts.password = password.map(str::to_owned);
    serve::start(opts, LakehouseCatalog::new(root)).await.expect("server starts")
}

/// psql in a child process (off the runtime's workers), verbose errors, never prompting.
async fn psql(port: u16, password: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = Command::new("psql");
    cmd.args(["-X", "-w", "-h", "127.0.0.1", "-p", &port.to_string(), "-U", "medallion"])
        .args(["-d", "medallion", "-v", "VERBOSITY=verbose"])
        .args(args)
        .env("PGCONNECT_TIMEOUT", "10")
        .env_remove("PGPASSWORD");
    if let Some(p) = password {
        cmd.env("PGPASSWORD", p);
    }
    tokio::task::spawn_blocking(move || cmd.output().expect("psql runs (scripts/setup.sh)"))
        .await
        .expect("psql task")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn python() -> PathBuf {
    let venv = std::env::var("MEDALLION_VENV").map(PathBuf::from).unwrap_or_else(|_| {
        PathBuf::from(std::env::var("HOME").expect("HOME")).join(".cache/medallion/venv")
    });
    venv.join("bin/python")
}

fn client(mode: &str, port: u16, extra: &[&str]) -> Command {
    let mut cmd = Command::new(python());
    cmd.arg(repo_path("scripts/pg_client_check.py"))
        .arg(mode)
        .arg(port.to_string())
        .args(extra)
        .env("MEDALLION_PASSWORD", PASSWORD);
    cmd
}

/// Runs a pg_client_check.py mode to the end and parses its one JSON line.
async fn client_json(mode: &str, port: u16, extra: &[&str]) -> Value {
    let mut cmd = client(mode, port, extra);
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("python runs"))
        .await
        .expect("python task");
    assert!(out.status.success(), "{mode}: {}{}", text(&out.stdout), text(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("one JSON line")
}

/// Appends `n` rows (copies of existing ones) to the table: a new Delta version.
async fn append_copies(path: &Path, n: usize) {
    let batches = query(path, &format!("SELECT * FROM t LIMIT {n}")).await;
    let table = medallion::engine::delta::open(path).await.unwrap();
    table.write(batches).with_save_mode(SaveMode::Append).await.expect("append");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_lists_schemas_tables_and_columns_and_queries() {
    let lake = lake().await;
    let s = server(lake.path(), None).await;
    let port = s.local_addr().port();
    assert!(s.banner().contains("anyone on this machine can connect"), "{}", s.banner());

    let o = psql(port, None, &["-c", r"\dn"]).await;
    let out = text(&o.stdout);
    assert!(o.status.success(), "{out}{}", text(&o.stderr));
    for schema in ["bronze", "silver", "gold", "lakehouse"] {
        assert!(out.contains(schema), "\\dn lists {schema}:\n{out}");
    }

    let o = psql(port, None, &["-c", r"\dt"]).await;
    let out = text(&o.stdout);
    assert!(o.status.success(), "{out}{}", text(&o.stderr));
    for table in ["users", "ssn", "users_by_title"] {
        assert!(out.contains(table), "\\dt lists {table}:\n{out}");
    }

    let o = psql(port, None, &["-c", r"\d silver.users"]).await;
    let out = text(&o.stdout);
    assert!(o.status.success(), "{out}{}", text(&o.stderr));
    let column_type = |name: &str| {
        out.lines()
            .find(|l| l.split('|').next().is_some_and(|c| c.trim() == name))
            .and_then(|l| l.split('|').nth(1))
            .map(|t| t.trim().to_owned())
            .unwrap_or_else(|| panic!("no column {name} in:\n{out}"))
    };
    assert_eq!(column_type("user_id"), "bigint");
    assert_eq!(column_type("first_name"), "text");
    assert!(column_type("user_birth_date").starts_with("timestamp"), "{out}");
    assert!(column_type("user_skills").ends_with("[]"), "{out}");
    assert_eq!(column_type("is_active"), "boolean");

    let o = psql(port, None, &["-At", "-c", "SELECT count(*) FROM silver.users"]).await;
    assert_eq!(text(&o.stdout).trim(), USERS.to_string(), "{}", text(&o.stderr));
    let sql = "SELECT user_title, count(*) FROM silver.users GROUP BY 1 ORDER BY 2 DESC LIMIT 3";
    let o = psql(port, None, &["-At", "-c", sql]).await;
    assert_eq!(text(&o.stdout).lines().count(), 3, "{}{}", text(&o.stdout), text(&o.stderr));
    // time travel: the first version of bronze/users
    let o = psql(port, None, &["-At", "-c", r#"SELECT count(*) FROM bronze."users@v0""#]).await;
    assert_eq!(text(&o.stdout).trim(), USERS.to_string(), "{}", text(&o.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psycopg_parameters_binary_results_and_freshness() {
    let lake = lake().await;
    let s = server(lake.path(), Some(PASSWORD)).await;
    let port = s.local_addr().port();

    let v = client_json("params", port, &[]).await;
    let text_rows = v["text_rows"].as_array().unwrap();
    assert_eq!(text_rows.len(), 5, "{v}");
    assert!(text_rows[0][0].as_i64().is_some() && text_rows[0][1].is_string(), "{v}");
    let (names, types) = (&v["binary"][0], &v["binary"][1]);
    assert_eq!(names, &serde_json::json!(["n", "top", "born"]), "{v}");
    assert_eq!(types, &serde_json::json!(["int", "int", "datetime"]), "{v}");
    assert!(v["binary"][2][0].as_i64().unwrap() > 0, "{v}");

    // freshness: the same connection sees a new commit on its next query
    let mut child =
        client("fresh", port, &[]).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(first["before"], USERS, "{first}");
    assert_eq!(first["prepared_before"], USERS, "{first}");
    append_copies(&lake.path().join("silver/users"), 7).await;
    writeln!(child.stdin.as_mut().unwrap(), "go").unwrap();
    let second: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(second["after"], USERS + 7, "{second}");
    assert_eq!(second["prepared_after"], USERS + 7, "a prepared statement sees it too: {second}");
    assert!(child.wait().unwrap().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_write_is_refused_with_25006_and_writes_nothing() {
    let lake = lake().await;
    let scratch = tempfile::tempdir().unwrap();
    let scratch_s = scratch.path().to_str().unwrap();
    let silver = lake.path().join("silver/users");
    let log_files = || std::fs::read_dir(silver.join("_delta_log")).unwrap().count();
    let logs_before = log_files();
    let s = server(lake.path(), None).await;
    let port = s.local_addr().port();

    // simple protocol (psql)
    let statements = [
        format!("CREATE EXTERNAL TABLE leak STORED AS CSV LOCATION '{scratch_s}/x.csv'"),
        "CREATE TABLE t AS SELECT 1 AS a".to_owned(),
        "INSERT INTO silver.users (user_id) VALUES (1)".to_owned(),
        format!("COPY (SELECT 1) TO '{scratch_s}/copy.csv'"),
        "DROP TABLE silver.users".to_owned(),
        "DELETE FROM silver.users".to_owned(),
        "UPDATE silver.users SET gender = 'X'".to_owned(),
        format!("EXPLAIN ANALYZE COPY (SELECT 1) TO '{scratch_s}/explain.csv'"),
        format!("SELECT 1; COPY (SELECT 2) TO '{scratch_s}/second.csv'"),
    ];
    for sql in &statements {
        let o = psql(port, None, &["-c", sql]).await;
        let err = text(&o.stderr);
        assert!(!o.status.success(), "{sql} was accepted: {}", text(&o.stdout));
        assert!(err.contains("25006"), "{sql}: {err}");
        assert!(err.contains("read-only"), "{sql}: {err}");
    }
    // extended protocol (psycopg)
    let v = client_json("refused", port, &[scratch_s]).await;
    for (sql, code) in v.as_object().unwrap() {
        if sql == "after" {
            assert_eq!(code, 1, "the connection keeps serving: {v}");
        } else {
            assert_eq!(code, "25006", "{sql}: {v}");
        }
    }
    // nothing written anywhere
    let left: Vec<_> = std::fs::read_dir(scratch.path()).unwrap().collect();
    assert!(left.is_empty(), "files were created: {left:?}");
    assert_eq!(log_files(), logs_before, "silver/users got a commit");
    let o = psql(port, None, &["-At", "-c", "SELECT count(*) FROM silver.users"]).await;
    assert_eq!(text(&o.stdout).trim(), USERS.to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_are_checked_with_scram() {
    let lake = lake().await;
    let s = server(lake.path(), Some(PASSWORD)).await;
    let port = s.local_addr().port();
    assert!(s.banner().contains("SCRAM-SHA-256"), "{}", s.banner());

    let o = psql(port, Some(PASSWORD), &["-At", "-c", "SELECT 1"]).await;
    assert_eq!(text(&o.stdout).trim(), "1", "{}", text(&o.stderr));
    let o = psql(port, Some("wrong"), &["-At", "-c", "SELECT 1"]).await;
    assert!(!o.status.success());
    assert!(text(&o.stderr).to_lowercase().contains("password"), "{}", text(&o.stderr));
    let o = psql(port, None, &["-At", "-c", "SELECT 1"]).await;
    assert!(!o.status.success(), "no password, no entry");
    // a wrong proof, at the wire level: SQLSTATE 28P01
    let v = client_json("bad-proof", port, &[]).await;
    assert_eq!(v["kind"], "E", "{v}");
    assert_eq!(v["code"], "28P01", "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_say_what_to_do_and_the_server_keeps_serving() {
    let lake = lake().await;
    let s = server(lake.path(), None).await;
    let port = s.local_addr().port();

    let o = psql(port, None, &["-c", "SELECT * FROM silver.userz"]).await;
    let err = text(&o.stderr);
    assert!(err.contains("42P01"), "{err}");
    assert!(err.contains("silver.users") && err.contains("gold.users_by_title"), "{err}");

    let o = psql(port, None, &["-c", "SELEC 1"]).await;
    assert!(text(&o.stderr).contains("42601"), "a typo is a syntax error: {}", text(&o.stderr));
    let o = psql(port, None, &["-c", "SELECT user_id FORM silver.users"]).await;
    let err = text(&o.stderr);
    assert!(err.contains("42601"), "{err}");
    // psql draws a caret under the position the server gave
    assert!(err.contains("LINE 1:") && err.contains('^'), "{err}");

    // files vanish under a table (a careless vacuum): a clear message, no crash
    let gold = lake.path().join("gold/users_by_title");
    for f in std::fs::read_dir(&gold).unwrap().flatten() {
        if f.path().extension().is_some_and(|e| e == "parquet") {
            std::fs::remove_file(f.path()).unwrap();
        }
    }
    let o = psql(port, None, &["-c", "SELECT * FROM gold.users_by_title"]).await;
    let err = text(&o.stderr);
    assert!(err.contains("58P01") && err.contains("missing"), "{err}");

    let o = psql(port, None, &["-At", "-c", "SELECT count(*) FROM silver.users"]).await;
    assert_eq!(text(&o.stdout).trim(), USERS.to_string(), "still serving: {}", text(&o.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_sessions_set_does_not_change_another() {
    let lake = lake().await;
    let s = server(lake.path(), Some(PASSWORD)).await;
    let v = client_json("sessions", s.local_addr().port(), &[]).await;
    let value = |k: &str| v[k][0].as_array().unwrap().last().unwrap().as_str().unwrap().to_owned();
    assert_eq!(value("a"), "7", "{v}");
    assert_ne!(value("b"), "7", "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_limit_and_statement_timeout() {
    let lake = lake().await;
    let mut opts = ServeOptions::new(lake.path());
    opts.port = 0;
    opts.password = Some(PASSWORD.into());
    opts.max_connections = 1;
    opts.statement_timeout = Some(std::time::Duration::from_secs(1));
    let s = serve::start(opts, LakehouseCatalog::new(lake.path())).await.unwrap();
    let port = s.local_addr().port();

    let v = client_json("limit", port, &[]).await;
    let refused = v["second"].as_str().unwrap_or_default();
    assert!(refused.contains("too many connections"), "{v}");
    assert_eq!(v["first_still"], 2, "{v}");
    // the server frees the slot when it has read the client's goodbye
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    // 300^4 rows to add up: far more than a second's work, cancelled after one
    let slow = "SELECT max(a.user_id + b.user_id + c.user_id + d.user_id) \
                FROM silver.users a, silver.users b, silver.users c, silver.users d";
    let started = std::time::Instant::now();
    let o = psql(port, Some(PASSWORD), &["-c", slow]).await;
    let err = text(&o.stderr);
    assert!(err.contains("57014") && err.contains("statement timeout"), "{err}");
    println!("cancelled after {} ms", started.elapsed().as_millis());
    // the cancelled statement's connection gives its slot back once the server has read
    // psql's goodbye, which (as with Postgres's backends) may come just after psql exits
    let mut o = psql(port, Some(PASSWORD), &["-At", "-c", "SELECT 1"]).await;
    for _ in 0..20 {
        if !text(&o.stderr).contains("too many connections") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        o = psql(port, Some(PASSWORD), &["-At", "-c", "SELECT 1"]).await;
    }
    assert_eq!(text(&o.stdout).trim(), "1", "{}", text(&o.stderr));

    // stopping the server ends the connections it has open, and accepts no more
    let addr = s.local_addr();
    let mut open = std::net::TcpStream::connect(addr).unwrap();
    open.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    s.stop();
    let read = tokio::task::spawn_blocking(move || {
        use std::io::Read as _;
        open.read(&mut [0u8; 16])
    });
    assert_eq!(read.await.unwrap().unwrap_or(0), 0, "the open connection was closed");
    assert!(std::net::TcpStream::connect(addr).is_err(), "nothing listens any more");
}

fn medallion_serve(lake: &Path, args: &[&str]) -> Output {
    let project = repo_path("projects/users_batch.toml");
    Command::new(env!("CARGO_BIN_EXE_medallion"))
        .args(["serve", project.to_str().unwrap(), "--lakehouse", lake.to_str().unwrap()])
        .args(args)
        .env_remove("MEDALLION_PASSWORD")
        .output()
        .expect("binary runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_refuses_to_start_unsafely_or_on_a_busy_port() {
    let lake = lake().await;
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port().to_string();
    let o = medallion_serve(lake.path(), &["--port", &port]);
    assert!(!o.status.success());
    let err = text(&o.stderr);
    assert!(err.contains(&format!("port {port} on 127.0.0.1 is already in use")), "{err}");

    let o = medallion_serve(lake.path(), &["--host", "0.0.0.0", "--port", "0"]);
    assert!(!o.status.success());
    assert!(text(&o.stderr).contains("without a password"), "{}", text(&o.stderr));

    let bogus = lake.path().join("cert.pem");
    std::fs::write(&bogus, "not a certificate").unwrap();
    let bogus = bogus.to_str().unwrap();
    let o = medallion_serve(lake.path(), &["--port", "0", "--tls-cert", bogus, "--tls-key", bogus]);
    assert!(!o.status.success(), "a bad certificate must stop the server");
    let err = text(&o.stderr);
    assert!(err.contains("TLS") && err.contains("never falls back"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn medallion_serve_binary_answers_psql() {
    let lake = lake().await;
    let project = repo_path("projects/users_batch.toml");
    let mut child = Command::new(env!("CARGO_BIN_EXE_medallion"))
        .args(["serve", project.to_str().unwrap(), "--lakehouse"])
        .arg(lake.path())
        .args(["--port", "0"])
        .env_remove("MEDALLION_PASSWORD")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let banner = lines.next().unwrap().unwrap();
    assert!(banner.contains("anyone on this machine can connect"), "{banner}");
    let port: u16 = banner
        .split("@127.0.0.1:")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {banner}"));
    let o = psql(port, None, &["-At", "-c", "SELECT count(*) FROM gold.users_by_title"]).await;
    let _ = child.kill();
    let _ = child.wait();
    assert!(text(&o.stdout).trim().parse::<u64>().unwrap() > 0, "{}", text(&o.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_query_caps_the_display_and_exports_everything() {
    let lake = lake().await;
    let catalog = LakehouseCatalog::new(lake.path());
    let sql = "SELECT * FROM silver.users ORDER BY user_id";
    let r = sql::run_console_query(&catalog, sql, 50).await.unwrap();
    assert_eq!((r.shown_rows(), r.total_rows, r.truncated()), (50, USERS, true));
    let out = tempfile::tempdir().unwrap();
    let csv = out.path().join("users.csv");
    let rows = sql::export_query(&catalog, sql, &csv, sql::ExportFormat::for_path(&csv)).await;
    assert_eq!(rows.unwrap(), USERS);
    assert_eq!(std::fs::read_to_string(&csv).unwrap().lines().count() as u64, USERS + 1);
    let parquet = out.path().join("users.parquet");
    let format = sql::ExportFormat::for_path(&parquet);
    assert_eq!(sql::export_query(&catalog, sql, &parquet, format).await.unwrap(), USERS);
    // the console is read-only too
    let e = sql::run_console_query(&catalog, "DROP TABLE silver.users", 10).await.unwrap_err();
    assert_eq!(e.code, sql::sqlstate::READ_ONLY);
    let e =
        sql::run_console_query(&catalog, "SELECT\n  x FORM silver.users", 10).await.unwrap_err();
    assert_eq!((e.code, e.line_column("SELECT\n  x FORM silver.users")), ("42601", Some((2, 10))));
}

#[test]
fn console_tab_runs_a_query_and_shows_errors_in_place() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let lake = rt.block_on(lake());
    let mut project = load_project("projects/users_batch.toml");
    project.lakehouse = ".".into();
    let path = lake.path().join("users_batch.toml");
    project.save(&path).unwrap();
    let mut h = egui_kittest::Harness::builder()
        .with_size([1400.0, 900.0])
        .with_max_steps(50)
        .build_eframe(move |cc| {
            medallion::ui::app::MedallionApp::new(cc, Some(path)).expect("app starts")
        });
    h.run_steps(3);
    h.state_mut().show_tab(BottomTab::Sql);
    h.run_steps(3);
    crate::ui::wait_until(&mut h, "the catalog", |a| !a.sql.catalog().is_empty());
    assert!(h.query_by_label("users_by_title").is_some(), "the catalog tree lists gold");

    h.state_mut().sql.text.clear();
    h.run_steps(1);
    let editor = "SQL (Ctrl+Enter runs; tables are schema.table, e.g. silver.users)";
    h.get_by_label(editor).focus();
    h.run_steps(1);
    h.get_by_label(editor)
        .type_text("SELECT user_id, first_name FROM silver.users ORDER BY user_id LIMIT 3");
    h.run_steps(2);
    h.key_press_modifiers(eframe::egui::Modifiers::COMMAND, eframe::egui::Key::Enter);
    h.run_steps(1);
    crate::ui::wait_until(&mut h, "the result", |a| a.sql.shown_rows().is_some());
    assert_eq!(h.state().sql.shown_rows(), Some(3));
    assert!(h.query_all_by_label_contains("3 rows").next().is_some());
    assert!(h.query_by_label("first_name").is_some(), "the grid's header");
    assert!(!h.state().sql.text.contains('\n'), "Ctrl+Enter ran instead of adding a line");

    // one row is "1 row", in the summary and above the grid
    h.state_mut().sql.text = "SELECT count(*) AS n FROM silver.users".into();
    h.get_by_label("▶ Run query").click();
    h.run_steps(1);
    crate::ui::wait_until(&mut h, "the count", |a| a.sql.shown_rows() == Some(1));
    assert!(h.query_all_by_label_contains("1 row · ").next().is_some(), "the summary");
    assert!(h.query_by_label("1 row × 1 column").is_some(), "the grid's size");
    assert!(h.query_all_by_label_contains("1 rows").next().is_none());

    h.state_mut().sql.text = "SELECT * FROM silver.nope".into();
    h.get_by_label("▶ Run query").click();
    h.run_steps(1);
    crate::ui::wait_until(&mut h, "the error", |a| a.sql.error().is_some());
    assert!(h.query_by_label_contains("ERROR 42P01").is_some(), "the error shows in place");
    let message = &h.state().sql.error().unwrap().message;
    assert!(message.contains("silver.users"), "the tables that exist: {message}");
    assert!(h.state().sql.history.len() >= 2, "queries go to the history");

    // "Serve to BI tools": the same catalog over the wire, and its connection string
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    h.state_mut().sql.server_port = free.local_addr().unwrap().port();
    drop(free);
    h.get_by_label("Serve to BI tools").click();
    h.run_steps(1);
    crate::ui::wait_until(&mut h, "the server", |a| {
        a.sql.server.is_some() || a.sql.server_error.is_some()
    });
    let url = h.state().sql.server.as_ref().expect("serving").connection_string.clone();
    assert!(h.query_by_label(&url).is_some(), "the connection string shows: {url}");
    let port: u16 = url.rsplit(':').next().unwrap().split('/').next().unwrap().parse().unwrap();
    let o = rt.block_on(psql(port, None, &["-At", "-c", "SELECT count(*) FROM silver.users"]));
    assert_eq!(text(&o.stdout).trim(), USERS.to_string(), "{}", text(&o.stderr));
    h.get_by_label("Stop serving").click();
    h.run_steps(1);
    crate::ui::wait_until(&mut h, "the server to stop", |a| a.sql.server.is_none());
}

/// Figures for the note (not a test of speed): a GROUP BY over a 1M-row silver table through
/// the console path, psql (wire) and, when `DUCKDB_PYTHON` names a Python with duckdb, DuckDB's
/// `read_parquet` over the same files. The lakehouse comes from `MEDALLION_FIGURES_LAKE`
/// (`medallion demo-data DIR --users 1000000` then `medallion run projects/users_batch.toml
/// --lakehouse DIR`):
/// `cargo test --test it direct_query::figures -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn figures() {
    use std::time::Instant;
    let Ok(root) = std::env::var("MEDALLION_FIGURES_LAKE") else {
        println!("set MEDALLION_FIGURES_LAKE to a lakehouse with a 1M-row silver/users");
        return;
    };
    let root = PathBuf::from(root);
    let sql = "SELECT gender, count(*), avg(user_id) FROM silver.users GROUP BY gender ORDER BY 1";
    let catalog = LakehouseCatalog::new(&root);
    for round in 0..3 {
        let t = Instant::now();
        let r = sql::run_console_query(&catalog, sql, 10_000).await.unwrap();
        println!("console round {round}: {} ms ({} rows)", t.elapsed().as_millis(), r.total_rows);
    }
    let s = server(&root, None).await;
    for round in 0..3 {
        let t = Instant::now();
        let o = psql(s.local_addr().port(), None, &["-At", "-c", sql]).await;
        let out = text(&o.stdout).replace('\n', "; ");
        println!("psql round {round}: {} ms: {out}", t.elapsed().as_millis());
    }
    if let Ok(py) = std::env::var("DUCKDB_PYTHON") {
        let files = root.join("silver/users/*.parquet");
        let duck = format!(
            "import duckdb,time\nfor i in range(3):\n t=time.time(); r=duckdb.sql(\"SELECT gender, \
             count(*), avg(user_id) FROM read_parquet('{}') GROUP BY gender ORDER BY 1\").fetchall(); \
             print('duckdb round', i, int((time.time()-t)*1000), 'ms', r)",
            files.display()
        );
        let o = Command::new(py).args(["-c", &duck]).output().unwrap();
        println!("{}{}", text(&o.stdout), text(&o.stderr));
    }
}
