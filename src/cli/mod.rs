//! The command line: `medallion validate | run | preview | demo-data | tables | history |
//! optimize | vacuum | serve | test | export`.
//!
//! This is the contract other tools depend on (DESIGN.md); keep names and exit codes stable.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};

use crate::engine::{self, RunEvent, RunOptions};
use crate::model::{NodeId, Project, Severity, validate};

mod export;
mod pipeline_tests;
mod upkeep;

#[derive(Parser, Debug)]
#[command(name = "medallion", version, about = "Design, run and monitor lakehouse pipelines")]
pub struct Cli {
    /// Project to open in the desktop app (the demo project when absent).
    pub project: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Args, Debug, Clone)]
pub struct ProjectArgs {
    /// The project file (TOML).
    pub project: PathBuf,
    /// Root that relative table paths resolve against (default: the project's `lakehouse`).
    #[arg(long)]
    pub lakehouse: Option<PathBuf>,
}

/// A table for `optimize` / `vacuum`: a path, or with `--project` a name of one of the
/// project's tables (`silver/users`, `silver.users`, or the id of the sink writing it).
#[derive(Args, Debug, Clone)]
pub struct TableArgs {
    pub table: String,
    /// Resolve TABLE among this project's tables, under its lakehouse.
    #[arg(long)]
    pub project: Option<PathBuf>,
    /// The lakehouse root (default: the project's `lakehouse`).
    #[arg(long)]
    pub lakehouse: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Check a project; exit 1 with diagnostics if it is invalid.
    Validate {
        #[command(flatten)]
        project: ProjectArgs,
    },
    /// Run a project's pipelines (all of them, in dependency order, unless --pipeline).
    Run {
        #[command(flatten)]
        project: ProjectArgs,
        /// Run only this pipeline.
        #[arg(long)]
        pipeline: Option<String>,
        /// Streams: process all data available at start, then exit.
        #[arg(long)]
        available_now: bool,
        /// Count rows and time on every edge, as the app's monitor does (what the monitor
        /// costs: `scripts/bench.sh monitor`).
        #[arg(long)]
        meter_edges: bool,
    },
    /// Print sample rows of a node's output (never writes).
    Preview {
        #[command(flatten)]
        project: ProjectArgs,
        /// The node's id.
        #[arg(long)]
        node: String,
        #[arg(long)]
        pipeline: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Write the demo data set (users as JSON lines, an ssn Delta table).
    DemoData {
        dir: PathBuf,
        #[arg(long, default_value_t = 1000)]
        users: u64,
        #[arg(long, default_value_t = 4)]
        files: u32,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Ad impressions (with their clicks) for the stateful example `ad_clicks.toml`.
        #[arg(long, default_value_t = 2000)]
        impressions: u64,
        /// Also produce demo music events to this Kafka cluster (bootstrap servers).
        #[arg(long)]
        kafka: Option<String>,
        /// Topic for the music events.
        #[arg(long, default_value = "music_data_json")]
        topic: String,
        /// Number of music events to produce.
        #[arg(long, default_value_t = 10_000)]
        events: u64,
    },
    /// List the lakehouse's Delta tables with layer, version and rows.
    Tables {
        #[command(flatten)]
        project: ProjectArgs,
    },
    /// Benchmarks that print figures.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Serve the lakehouse read-only over the Postgres wire protocol (psql, BI tools, drivers):
    /// database `medallion`, schemas bronze / silver / gold / lakehouse. The password comes from
    /// MEDALLION_PASSWORD; without one only this machine can connect.
    Serve {
        #[command(flatten)]
        project: ProjectArgs,
        /// Address to listen on; anything but loopback needs MEDALLION_PASSWORD.
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
        #[arg(long, default_value_t = engine::serve::DEFAULT_PORT)]
        port: u16,
        /// The user clients log in as.
        #[arg(long, default_value = "medallion")]
        user: String,
        /// PEM certificate chain: clients can then use TLS (the server fails if it does not load).
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// PEM private key for --tls-cert.
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// Connections served at once; more are refused.
        #[arg(long, default_value_t = 64)]
        max_connections: usize,
        /// Seconds a statement may run, rows included (0: no limit).
        #[arg(long, default_value_t = 300)]
        statement_timeout: u64,
    },
    /// OPTIMIZE a Delta table: rewrite small files into large ones (bin-packing), or cluster
    /// them by columns (Z-order). Commits with dataChange=false: streams reading it go on.
    Optimize {
        #[command(flatten)]
        table: TableArgs,
        /// Only partitions matching this predicate over partition columns
        /// (`date = '2026-11-30' AND region IN ('eu', 'us')`).
        #[arg(long = "where")]
        where_: Option<String>,
        /// Z-order by these data columns (comma-separated) instead of bin-packing.
        #[arg(long, value_delimiter = ',')]
        zorder_by: Vec<String>,
        /// Target file size in bytes (default: delta.targetFileSize, else 100 MB).
        #[arg(long)]
        target_size: Option<u64>,
    },
    /// VACUUM a Delta table: delete data files no version within the retention references.
    Vacuum {
        #[command(flatten)]
        table: TableArgs,
        /// Keep unreferenced files younger than this many hours (default: the table's
        /// delta.deletedFileRetentionDuration, 168 = 7 days).
        #[arg(long)]
        retain_hours: Option<f64>,
        /// List the files that would be deleted, with their sizes; delete nothing.
        #[arg(long)]
        dry_run: bool,
        /// Allow a retention below the table's (Spark's retentionDurationCheck.enabled=false).
        #[arg(long)]
        force: bool,
    },
    /// Replay the project's recorded pipeline tests (`medallion test PROJECT [--name GLOB]`),
    /// or record one from a node's sample rows (`medallion test record PROJECT --node ID --name
    /// NAME`). Prints a diff per failing test and `N passed, M failed`; exits 1 on a failure.
    Test(TestArgs),
    /// Export the project to Spark: `OUT/<project>.py`, a PySpark script (`--to pyspark`, run
    /// as `python <project>.py LAKEHOUSE [PIPELINE...]`) or a Spark Declarative Pipelines
    /// source (`--to sdp`). Constructs without a faithful Spark equivalent are listed on stderr.
    Export(export::ExportArgs),
    /// Delta history of one table, newest first.
    History {
        table_path: PathBuf,
        #[arg(long)]
        limit: Option<usize>,
    },
}

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct TestArgs {
    #[command(subcommand)]
    pub record: Option<TestCommand>,
    /// The project file (TOML).
    #[arg(required = true)]
    pub project: Option<PathBuf>,
    /// Accepted for symmetry with the other commands: a replay never reads or writes the
    /// lakehouse (sources come from the fixtures, sinks are captured).
    #[arg(long)]
    pub lakehouse: Option<PathBuf>,
    /// Only the tests whose names match this glob (`silver_*`).
    #[arg(long)]
    pub name: Option<String>,
    /// Store each selected test's current output as its expected rows (after an intended
    /// change) instead of comparing.
    #[arg(long)]
    pub accept: bool,
}

#[derive(Subcommand, Debug)]
pub enum TestCommand {
    /// Record a test: the sample rows of the sources upstream of a node and its output over
    /// them become fixtures under `tests/` beside the project file, and a `[[tests]]` entry
    /// in the project file.
    Record {
        #[command(flatten)]
        project: ProjectArgs,
        /// The node whose output the test checks.
        #[arg(long)]
        node: String,
        /// The test's name.
        #[arg(long)]
        name: String,
        /// The node's pipeline, when its id is in several.
        #[arg(long)]
        pipeline: Option<String>,
        /// Sample rows per source.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Streams: micro-batches to split the sample into (default 2 for a stateful stream,
        /// plus a final batch without data).
        #[arg(long)]
        batches: Option<usize>,
    },
}

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Notification mode at a steady trickle: delay from a file's arrival to its rows being
    /// committed to bronze (p50/p99).
    StreamLatency {
        /// Scratch directory (a temp dir when absent).
        #[arg(long)]
        dir: Option<PathBuf>,
        #[arg(long, default_value_t = 100)]
        files: usize,
        #[arg(long, default_value_t = 100)]
        interval_ms: u64,
        #[arg(long, default_value_t = 10)]
        rows_per_file: usize,
    },
    /// Stateful streams at scale: events through a 1-minute tumbling count by key with a
    /// 10-minute watermark, and a stream-stream join of events/2 × events/2 rows, both
    /// availableNow from landing files (run under /usr/bin/time -v for CPU and peak RSS).
    Stateful {
        /// Scratch directory (a temp dir when absent).
        #[arg(long)]
        dir: Option<PathBuf>,
        #[arg(long, default_value_t = 1_000_000)]
        events: u64,
        /// Landing files per input (one per micro-batch).
        #[arg(long, default_value_t = 20)]
        files: usize,
        /// Only `window` or `join` (both when absent).
        #[arg(long)]
        only: Option<String>,
    },
    /// A long stream of small batches with auto-compaction and the bounded checkpoint: data
    /// files, checkpoint files, start-up time and RSS at each mark; then `count(*)` over a
    /// table of many small files before and after OPTIMIZE.
    Upkeep {
        /// Scratch directory (a temp dir when absent).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Batch counts to measure at (comma-separated, increasing).
        #[arg(long, value_delimiter = ',', default_value = "1000,20000")]
        batches: Vec<u64>,
        #[arg(long, default_value_t = 200)]
        rows_per_batch: u64,
        /// A trigger interval in ms, as the demo's streams run (default: availableNow, batches
        /// back to back: upkeep then shares the cores with them)
        #[arg(long)]
        trigger_ms: Option<u64>,
        /// Files of the small-files table (0 skips that part).
        #[arg(long, default_value_t = 10_000)]
        small_files: usize,
    },
    /// The ceiling for Kafka → bronze: a bare consumer that only counts a topic's messages,
    /// from earliest to the end offsets at start; prints `msg_per_s=N` last.
    KafkaConsume {
        #[arg(long)]
        bootstrap_servers: String,
        #[arg(long)]
        topic: String,
        /// `librdkafka`: a bare rdkafka consumer; `protocol`: the source's own reader
        /// (`kafka_fetch`), its Arrow batches counted and dropped.
        #[arg(long, default_value = "librdkafka", value_parser = ["librdkafka", "protocol"])]
        reader: String,
    },
    /// The cost of an Expectations node with five rules: a batch pipeline over `rows` JSON
    /// rows into Delta, with and without the node, as process CPU seconds.
    Quality {
        /// Scratch directory (a temp dir when absent).
        #[arg(long)]
        dir: Option<PathBuf>,
        #[arg(long, default_value_t = 1_000_000)]
        rows: u64,
        #[arg(long, default_value_t = 3)]
        rounds: usize,
    },
}

/// Runs a CLI command; returns the process exit code.
pub fn run(command: Command) -> anyhow::Result<i32> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("medallion-engine")
        .build()
        .context("cannot start the tokio runtime")?;
    runtime.block_on(run_async(command))
}

fn load(args: &ProjectArgs) -> anyhow::Result<(Project, PathBuf)> {
    let project = Project::load(&args.project)?;
    let root = project.lakehouse_root(&args.project, args.lakehouse.as_deref());
    Ok((project, root))
}

async fn run_async(command: Command) -> anyhow::Result<i32> {
    match command {
        Command::Validate { project } => {
            let (project, root) = load(&project)?;
            let mut diags = validate::validate_project(&project);
            if !diags.iter().any(|d| d.severity == Severity::Error) {
                diags.extend(engine::check_project(&project, &root).await);
            }
            for d in &diags {
                println!("{d}");
            }
            let errors = diags.iter().filter(|d| d.severity == Severity::Error).count();
            if errors > 0 {
                println!("{errors} error(s): project `{}` is not valid", project.name);
                Ok(1)
            } else {
                println!(
                    "project `{}` is valid ({} pipeline(s), {} warning(s))",
                    project.name,
                    project.pipelines.len(),
                    diags.len()
                );
                Ok(0)
            }
        }
        Command::Run { project, pipeline, available_now, meter_edges } => {
            let (project, root) = load(&project)?;
            let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
            tokio::spawn(async move {
                if tokio::signal::ctrl_c().await.is_ok() {
                    eprintln!(
                        "stopping after the batch in flight (Ctrl-C again to abandon it; the checkpoint replays it)"
                    );
                    let _ = stop_tx.send(true);
                    if tokio::signal::ctrl_c().await.is_ok() {
                        std::process::exit(130);
                    }
                }
            });
            let opts = RunOptions {
                pipeline,
                available_now,
                stop: Some(stop_rx),
                meter_edges,
                ..Default::default()
            };
            let started = Instant::now();
            let summary = engine::run_project(&project, &root, &opts, &|event| {
                println!("{}", event.line());
            })
            .await;
            match summary {
                Ok(summary) => {
                    println!(
                        "done: {} pipeline(s), {} rows written in {:.2} s",
                        summary.pipelines,
                        summary.rows_written,
                        started.elapsed().as_secs_f64()
                    );
                    Ok(0)
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    Ok(1)
                }
            }
        }
        Command::Preview { project, node, pipeline, limit } => {
            let (project, root) = load(&project)?;
            let (pipe, _) = project
                .find_node(&NodeId::new(node.clone()), pipeline.as_deref())
                .map_err(anyhow::Error::msg)?;
            let preview =
                engine::preview_node(&project, pipe, &NodeId::new(node), &root, limit).await?;
            println!("{}", preview.schema_line());
            println!("{}", preview.pretty()?);
            println!("({} row(s) shown, limit {limit})", preview.rows());
            Ok(0)
        }
        Command::DemoData { dir, users, files, seed, impressions, kafka, topic, events } => {
            if let Some(brokers) = kafka {
                let opts = engine::demo_data::MusicEventsOptions {
                    brokers: brokers.clone(),
                    topic: topic.clone(),
                    events,
                    partitions: 3,
                    seed,
                };
                let started = Instant::now();
                let sent = engine::demo_data::produce_music_events(&opts).await?;
                println!(
                    "produced {sent} music events to topic {topic} on {brokers} in {:.2} s",
                    started.elapsed().as_secs_f64()
                );
            }
            let opts = engine::demo_data::DemoDataOptions { users, files, seed, impressions };
            let started = Instant::now();
            let s = engine::demo_data::write_demo_data(&dir, &opts).await?;
            println!(
                "wrote {} users in {} file(s) under {} and {} rows to {} in {:.2} s",
                s.users,
                s.user_files.len(),
                dir.join("landing/users").display(),
                s.ssn_rows,
                s.ssn_table.display(),
                started.elapsed().as_secs_f64()
            );
            if impressions > 0 {
                println!(
                    "wrote {impressions} ad impressions and their clicks under {} and {}",
                    dir.join("landing/impressions").display(),
                    dir.join("landing/clicks").display()
                );
            }
            Ok(0)
        }
        Command::Bench(BenchCommand::StreamLatency { dir, files, interval_ms, rows_per_file }) => {
            let scratch = tempfile_dir(dir)?;
            let r =
                engine::bench::stream_latency(&scratch, files, interval_ms, rows_per_file).await?;
            println!(
                "stream latency, notification mode: {} files of {rows_per_file} rows, one every {interval_ms} ms, {} batches: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
                r.files, r.batches, r.p50_ms, r.p99_ms, r.max_ms
            );
            Ok(0)
        }
        Command::Bench(BenchCommand::Stateful { dir, events, files, only }) => {
            let scratch = tempfile_dir(dir)?;
            if only.as_deref().is_none_or(|o| o == "window") {
                let r =
                    engine::bench_stateful::windowed_count(&scratch.join("window"), events, files)
                        .await?;
                println!("{r}");
            }
            if only.as_deref().is_none_or(|o| o == "join") {
                let r =
                    engine::bench_stateful::stream_join(&scratch.join("join"), events / 2, files)
                        .await?;
                println!("{r}");
            }
            Ok(0)
        }
        Command::Bench(BenchCommand::Upkeep {
            dir,
            batches,
            rows_per_batch,
            trigger_ms,
            small_files,
        }) => {
            let scratch = tempfile_dir(dir)?;
            if !batches.is_empty() {
                let points = engine::bench_upkeep::long_stream(
                    &scratch.join("long"),
                    &batches,
                    rows_per_batch,
                    trigger_ms,
                )
                .await?;
                for p in points {
                    println!("{p}");
                }
            }
            if small_files > 0 {
                let r =
                    engine::bench_upkeep::small_files_query(&scratch.join("small"), small_files)
                        .await?;
                println!("{r}");
            }
            Ok(0)
        }
        Command::Bench(BenchCommand::KafkaConsume { bootstrap_servers, topic, reader }) => {
            let r = tokio::task::spawn_blocking(move || match reader.as_str() {
                "protocol" => engine::bench_kafka::consume_protocol(&bootstrap_servers, &topic),
                _ => engine::bench_kafka::consume(&bootstrap_servers, &topic),
            })
            .await??;
            println!("{r}");
            Ok(0)
        }
        Command::Bench(BenchCommand::Quality { dir, rows, rounds }) => {
            let scratch = tempfile_dir(dir)?;
            let runs = engine::bench_quality::expectations_cost(&scratch, rows, rounds).await?;
            let (mut without, mut with) = (0.0, 0.0);
            for (i, (a, b)) in runs.iter().enumerate() {
                println!(
                    "round {}: without {:.2} CPU-s ({:.2} s wall), with 5 expectations {:.2} CPU-s ({:.2} s wall): {:+.1}%",
                    i + 1,
                    a.cpu_s,
                    a.wall_s,
                    b.cpu_s,
                    b.wall_s,
                    (b.cpu_s / a.cpu_s - 1.0) * 100.0
                );
                without += a.cpu_s;
                with += b.cpu_s;
            }
            println!(
                "{rows} rows, {rounds} rounds: {without:.2} vs {with:.2} CPU-s, expectations cost {:+.1}%",
                (with / without - 1.0) * 100.0
            );
            Ok(0)
        }
        Command::Tables { project } => {
            let (_, root) = load(&project)?;
            print_tables(&root).await?;
            Ok(0)
        }
        Command::Serve {
            project,
            host,
            port,
            user,
            tls_cert,
            tls_key,
            max_connections,
            statement_timeout,
        } => {
            let (_, root) = load(&project)?;
            let mut opts = engine::serve::ServeOptions::new(&root);
            opts.host = host;
            opts.port = port;
            opts.user = user;
            opts.tls = tls_cert.zip(tls_key);
            opts.max_connections = max_connections;
            opts.statement_timeout =
                (statement_timeout > 0).then(|| std::time::Duration::from_secs(statement_timeout));
            let catalog = engine::catalog::LakehouseCatalog::new(&root);
            let server = engine::serve::start(opts, catalog).await?;
            println!("{}", server.banner());
            println!("psql \"{}\"   (Ctrl-C stops)", server.connection_string());
            tokio::signal::ctrl_c().await.context("waiting for Ctrl-C")?;
            server.stop();
            Ok(0)
        }
        Command::Optimize { table, where_, zorder_by, target_size } => {
            upkeep::optimize(&table, where_, zorder_by, target_size).await
        }
        Command::Vacuum { table, retain_hours, dry_run, force } => {
            upkeep::vacuum(&table, retain_hours, dry_run, force).await
        }
        Command::Test(args) => pipeline_tests::test_command(args).await,
        Command::Export(args) => export::export_command(&args).await,
        Command::History { table_path, limit } => {
            let entries = engine::lakehouse::history(&table_path, limit).await?;
            println!(
                "{:<8} {:<25} {:<12} {:<28} METRICS",
                "VERSION", "TIMESTAMP", "OPERATION", "WRITTEN BY"
            );
            for h in entries {
                println!(
                    "{:<8} {:<25} {:<12} {:<28} {}",
                    h.version,
                    h.timestamp
                        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                        .unwrap_or_default(),
                    h.operation,
                    h.written_by(),
                    h.metrics_summary()
                );
            }
            Ok(0)
        }
    }
}

fn tempfile_dir(dir: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let dir = dir.unwrap_or_else(|| {
        std::env::temp_dir().join(format!("medallion-bench-{}", uuid::Uuid::new_v4()))
    });
    if dir.exists() {
        bail!("{} exists; give a new directory", dir.display());
    }
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Prints the lakehouse's tables; shared by `tables` and `run`.
pub async fn print_tables(root: &Path) -> anyhow::Result<()> {
    if !root.exists() {
        bail!(
            "lakehouse {} does not exist; run a pipeline or `medallion demo-data` first",
            root.display()
        );
    }
    let tables = engine::lakehouse::list_tables(root).await?;
    println!("{:<8} {:<28} {:>8} {:>10} {:>6}", "LAYER", "TABLE", "VERSION", "ROWS", "FILES");
    for t in tables {
        println!(
            "{:<8} {:<28} {:>8} {:>10} {:>6}",
            t.layer.map(|l| l.as_str()).unwrap_or("-"),
            t.name,
            t.version,
            t.rows.map(|r| r.to_string()).unwrap_or_else(|| "?".into()),
            t.files
        );
    }
    Ok(())
}

/// `RunEvent` lines as printed by `run`.
impl RunEvent {
    pub fn line(&self) -> String {
        self.to_string()
    }
}
