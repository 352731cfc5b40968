//! `medallion export`: the example projects and every node kind exported to PySpark, run on a
//! local Spark (one JVM for every case: scripts/spark_export_check.py), and compared with
//! Medallion's own tables and previews; the scripts pass `py_compile` and `ruff check`.

use std::path::{Path, PathBuf};
use std::process::Command;

use medallion::engine::{self, RunOptions};
use medallion::export::{Target, export_project};
use medallion::model::Project;
use serde_json::{Value, json};

use crate::common::*;
use crate::export_nodes;
use crate::kafka::{Broker, create_topic, music_events, produce};

fn venv_bin(name: &str) -> PathBuf {
    python().parent().unwrap().join(name)
}

fn write_export(project: &Project, dir: &Path) -> (PathBuf, String, Vec<String>) {
    let export = export_project(project, Target::PySpark, &[]).expect("exports");
    let path = dir.join(&export.file_name);
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(&path, &export.code).unwrap();
    (path, export.code, export.todos.iter().map(|t| t.to_string()).collect())
}

async fn run_available_now(project: &Project, root: &Path) {
    let opts = RunOptions { available_now: true, ..Default::default() };
    engine::run_project(project, root, &opts, &|_| {}).await.expect("medallion runs the project");
}

fn copy_dir(from: &Path, to: &Path) {
    let status = Command::new("cp").arg("-r").arg(from).arg(to).status().unwrap();
    assert!(status.success());
}

/// The records of `topic` as the verify profile reads them: JSON lines with the Kafka
/// source's columns (key and value as text). Read from offset 0 until the topic is idle
/// (tansu's reported high watermarks lag behind).
fn dump_topic(broker: &Broker, topic: &str, out: &Path) -> usize {
    use rdkafka::Message;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &broker.addr)
        .set("group.id", "export-dump")
        .set("enable.auto.commit", "false")
        .set("log_level", "3")
        .create()
        .unwrap();
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in 0..3 {
        tpl.add_partition_offset(topic, p, rdkafka::Offset::Beginning).unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut lines = Vec::new();
    let mut idle_since = std::time::Instant::now();
    while idle_since.elapsed() < std::time::Duration::from_secs(3) {
        let Some(Ok(m)) = consumer.poll(std::time::Duration::from_millis(200)) else { continue };
        idle_since = std::time::Instant::now();
        let text = |b: Option<&[u8]>| b.map(|b| String::from_utf8_lossy(b).into_owned());
        let (ts_type, millis) = match m.timestamp() {
            rdkafka::Timestamp::CreateTime(t) => (0, t),
            rdkafka::Timestamp::LogAppendTime(t) => (1, t),
            rdkafka::Timestamp::NotAvailable => (-1, 0),
        };
        let t = chrono::DateTime::from_timestamp_millis(millis).unwrap();
        lines.push(
            json!({
                "key": text(m.key()),
                "value": text(m.payload()),
                "topic": m.topic(),
                "partition": m.partition(),
                "offset": m.offset(),
                "timestamp": t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                "timestampType": ts_type,
            })
            .to_string(),
        );
    }
    std::fs::create_dir_all(out).unwrap();
    std::fs::write(out.join("part-00000.json"), lines.join("\n") + "\n").unwrap();
    lines.len()
}

fn table_cmp(name: &str, medallion: &Path, spark: &Path, ignore: &[&str]) -> Value {
    json!({
        "name": name,
        "expected": {"delta": medallion.join(name)},
        "actual": {"parquet": spark.join(name)},
        "ignore": ignore,
    })
}

/// A project run by Medallion in `med`, exported and run by Spark in `spark` over copies of
/// the same landing files and static tables.
fn project_case(name: &str, script: &Path, med: &Path, spark: &Path, tables: &[&str]) -> Value {
    json!({
        "name": name,
        "script": script,
        "args": [spark, "--verify"],
        "prepare": {
            "delta_to_parquet": [[med.join("bronze/ssn"), spark.join("bronze/ssn")]],
            "copy": [[med.join("landing"), spark.join("landing")]],
        },
        // event_time is current_timestamp() in both
        "compare": tables.iter().map(|t| table_cmp(t, med, spark, &["event_time"])).collect::<Vec<_>>(),
    })
}

fn write_ipc(path: &Path, preview: &engine::Preview) {
    let file = std::fs::File::create(path).unwrap();
    let mut w = arrow::ipc::writer::FileWriter::try_new(file, &preview.schema).unwrap();
    for b in &preview.batches {
        w.write(b).unwrap();
    }
    w.finish().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exported_projects_and_every_node_kind_compute_the_same_rows_on_spark() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    println!("work dir {}", w.display());
    let scripts = w.join("scripts");
    let (demo, _) = demo_lakehouse().await;

    // the example projects, each in its own lakehouse
    let mut cases = Vec::new();
    let mut todos_seen = Vec::new();
    for (name, tables) in [
        ("users_batch", vec!["bronze/users", "silver/users", "gold/users_by_title"]),
        ("users_stream", vec!["bronze/users", "silver/users"]),
        ("ad_clicks", vec!["silver/ad_clicks", "gold/clicks_per_ad"]),
    ] {
        let project = load_project(&format!("projects/{name}.toml"));
        let med = w.join(format!("medallion_{name}"));
        copy_dir(demo.path(), &med);
        run_available_now(&project, &med).await;
        let (script, _, todos) = write_export(&project, &scripts);
        todos_seen.extend(todos);
        // the SDP source of the same project must be good code too (run below for users_batch)
        let sdp = export_project(&project, Target::Sdp, &[]).unwrap();
        std::fs::create_dir_all(scripts.join("sdp")).unwrap();
        std::fs::write(scripts.join("sdp").join(&sdp.file_name), &sdp.code).unwrap();
        assert!(sdp.code.contains("from pyspark import pipelines as dp"));
        cases.push(project_case(name, &script, &med, &w.join(format!("spark_{name}")), &tables));
    }

    // users_batch as Spark Declarative Pipelines: `spark-pipelines run` over the same inputs
    // (bronze/ssn as Parquet: no Delta connector), its datasets in its spark-warehouse
    {
        let project = load_project("projects/users_batch.toml");
        let med = w.join("medallion_users_batch");
        let sdp_dir = w.join("sdp_users_batch");
        let lake = sdp_dir.join("lake");
        let schemas = medallion::export::plan_schemas(&project, &med, &[]).await;
        let sdp =
            medallion::export::export_project_with_schemas(&project, Target::Sdp, &[], &schemas)
                .unwrap();
        assert!(sdp.todos.is_empty(), "{:?}", sdp.todos);
        std::fs::create_dir_all(&sdp_dir).unwrap();
        std::fs::write(sdp_dir.join(&sdp.file_name), &sdp.code).unwrap();
        let spec = format!(
            "name: users_batch\nstorage: file://{}\nlibraries:\n  - glob:\n      include: {}\nconfiguration:\n  medallion.lakehouse: {}\n  medallion.verify: \"true\"\n",
            sdp_dir.join("storage").display(),
            sdp.file_name,
            lake.display()
        );
        std::fs::write(sdp_dir.join("spark-pipeline.yml"), spec).unwrap();
        let warehouse = sdp_dir.join("spark-warehouse");
        let compare: Vec<Value> = [
            ("bronze/users", "bronze_users"),
            ("silver/users", "silver_users"),
            ("gold/users_by_title", "gold_users_by_title"),
        ]
        .iter()
        .map(|(t, d)| {
            json!({
                "name": format!("{t} (SDP)"),
                "expected": {"delta": med.join(t)},
                "actual": {"parquet": warehouse.join(d)},
                "ignore": ["event_time"],
            })
        })
        .collect();
        cases.push(json!({
            "name": "users_batch (SDP)",
            "command": [venv_bin("spark-pipelines"), "run", "--spec", "spark-pipeline.yml"],
            "cwd": sdp_dir,
            "prepare": {
                "delta_to_parquet": [[med.join("bronze/ssn"), lake.join("bronze/ssn")]],
                "copy": [[med.join("landing"), lake.join("landing")]],
            },
            "compare": compare,
        }));
    }

    // music_kafka: a real broker for Medallion; Spark reads the same records from JSON
    let broker = Broker::start();
    let topic = "music_data_json";
    create_topic(&broker, topic).await;
    let mut values = music_events(150, 3);
    values.insert(40, "{\"user_id\": 1, \"track_id\": broken".into());
    produce(&broker, topic, &values).await;
    let mut music = load_project("projects/music_kafka.toml");
    let (script, _, _) = write_export(&music, &scripts);
    for n in &mut music.pipelines[0].nodes {
        if let medallion::model::NodeKind::KafkaSource(k) = &mut n.kind {
            k.bootstrap_servers = broker.addr.clone();
        }
    }
    let med = w.join("medallion_music");
    std::fs::create_dir_all(&med).unwrap();
    run_available_now(&music, &med).await;
    assert_eq!(scalar_i64(&med.join("bronze/music"), "SELECT count(*) FROM t").await, 150);
    let spark_music = w.join("spark_music");
    assert_eq!(dump_topic(&broker, topic, &spark_music.join("_verify/kafka/music_topic")), 151);
    cases.push(json!({
        "name": "music_kafka",
        "script": script,
        "args": [spark_music, "--verify"],
        "compare": [table_cmp("bronze/music", &med, &spark_music, &[])],
    }));

    // every node kind, one node deep, against Medallion's preview of that node
    let med_nodes = w.join("medallion_nodes");
    let spark_nodes = w.join("spark_nodes");
    export_nodes::write_fixtures(&med_nodes);
    let people_table = {
        let mut p = Project::new("fixture");
        let mut pipe = medallion::model::Pipeline::new("people_table");
        let src = export_nodes::cases(&broker.addr, topic)
            .into_iter()
            .find(|c| c.name == "select")
            .unwrap()
            .project
            .pipelines[0]
            .node(&"people".into())
            .unwrap()
            .clone();
        pipe.add_node(src).unwrap();
        pipe.add_node(medallion::model::Node::new(
            "t",
            medallion::model::NodeKind::DeltaSink(medallion::model::node::DeltaSink {
                table: "tables/people".into(),
                ..Default::default()
            }),
        ))
        .unwrap();
        pipe.connect(&"people".into(), &"t".into(), "in").unwrap();
        p.pipelines.push(pipe);
        p
    };
    run(&people_table, &med_nodes).await.unwrap();
    dump_topic(&broker, topic, &spark_nodes.join("_verify/kafka/kafka_source"));
    let expected_dir = w.join("expected");
    std::fs::create_dir_all(&expected_dir).unwrap();
    let mut todo_cases = Vec::new();
    for (i, c) in export_nodes::cases(&broker.addr, topic).into_iter().enumerate() {
        let (script, code, todos) = write_export(&c.project, &scripts.join("nodes"));
        if c.expect_todo {
            assert!(code.contains("# TODO(medallion)"), "{}: no TODO in the export", c.name);
            assert!(!todos.is_empty(), "{}: no TODO listed", c.name);
            todo_cases.push(c.name.clone());
            continue;
        }
        assert!(todos.is_empty(), "{}: unexpected TODOs {todos:?}", c.name);
        let pipe = &c.project.pipelines[0];
        let expected = if c.compare_run {
            run_available_now(&c.project, &med_nodes).await;
            json!({"delta": med_nodes.join(format!("out/{}", c.name))})
        } else {
            let preview = engine::preview_node(&c.project, pipe, &c.node, &med_nodes, 100_000)
                .await
                .unwrap_or_else(|e| panic!("{}: Medallion's preview fails: {e}", c.name));
            let ipc = expected_dir.join(format!("{}.arrow", c.name));
            write_ipc(&ipc, &preview);
            json!({"ipc": ipc})
        };
        let actual = if c.kafka_sink {
            json!({"json_values": spark_nodes.join(format!("_verify/kafka_out/{}", c.node))})
        } else {
            json!({"parquet": spark_nodes.join(format!("out/{}", c.name))})
        };
        let mut prepare = json!({});
        if i == 0 {
            prepare = json!({
                "copy": [[med_nodes.join("landing"), spark_nodes.join("landing")]],
                "delta_to_parquet": [[med_nodes.join("tables/people"), spark_nodes.join("tables/people")]],
            });
        }
        cases.push(json!({
            "name": format!("node {}", c.name),
            "script": script,
            "args": [spark_nodes, "--verify"],
            "prepare": prepare,
            "compare": [{
                "name": c.name,
                "expected": expected,
                "actual": actual,
                "ignore": c.ignore,
                "rescued_as_flag": c.rescued_as_flag,
            }],
        }));
    }
    assert_eq!(todo_cases, ["generator_source"]);

    // good code: it compiles and the linter has nothing to say
    let out = Command::new(venv_bin("ruff"))
        .args(["check", "--no-cache", "--quiet"])
        .arg(&scripts)
        .output()
        .expect("ruff runs (scripts/setup.sh installs it)");
    assert!(out.status.success(), "ruff check:\n{}", String::from_utf8_lossy(&out.stdout));
    let mut py_files: Vec<PathBuf> =
        std::fs::read_dir(&scripts).unwrap().map(|e| e.unwrap().path()).collect();
    for sub in ["nodes", "sdp"] {
        py_files.extend(std::fs::read_dir(scripts.join(sub)).unwrap().map(|e| e.unwrap().path()));
    }
    py_files.retain(|p| p.extension().is_some_and(|e| e == "py"));
    let out = Command::new(python()).args(["-m", "py_compile"]).args(&py_files).output().unwrap();
    assert!(out.status.success(), "py_compile: {}", String::from_utf8_lossy(&out.stderr));

    // one Spark session runs every case
    let manifest = w.join("manifest.json");
    let results = w.join("results.json");
    std::fs::write(&manifest, json!({"cases": cases, "results": results}).to_string()).unwrap();
    let out = Command::new(python())
        .arg(repo_path("scripts/spark_export_check.py"))
        .arg(&manifest)
        .env("PYSPARK_PYTHON", python())
        .output()
        .expect("the Spark check runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let text = std::fs::read_to_string(&results).unwrap_or_else(|_| {
        panic!(
            "no results from the Spark check:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
                .chars()
                .rev()
                .take(4000)
                .collect::<String>()
                .chars()
                .rev()
                .collect::<String>()
        )
    });
    let results: Value = serde_json::from_str(&text).unwrap();
    println!("Spark check: JVM start {} s, total {} s", results["jvm_start_s"], results["total_s"]);
    let mut failures = Vec::new();
    for (name, r) in results["cases"].as_object().unwrap() {
        println!("{name}: {} in {} s", if r["ok"] == true { "ok" } else { "FAILED" }, r["seconds"]);
        for (t, x) in r["tables"].as_object().unwrap() {
            println!("    {t}: {}", x["detail"]);
        }
        if r["ok"] != true {
            failures.push(format!("{name}: {} {}", r["error"], r["tables"]));
        }
    }
    assert_eq!(results["cases"].as_object().unwrap().len(), cases.len());
    assert!(failures.is_empty(), "cases that differ on Spark:\n{}", failures.join("\n"));
    assert!(
        todos_seen.iter().any(|t| t.contains("clicks_watermark") && t.contains("late_rows")),
        "{todos_seen:?}"
    );

    // MEDALLION_KEEP_EXPORT_TEST=1 keeps the scripts, lakehouses and results for a look
    let keep = std::env::var_os("MEDALLION_KEEP_EXPORT_TEST").is_some();
    let w = if keep { work.keep() } else { w.to_owned() };

    // the batch example on Sail: the script unchanged (real Delta, through SPARK_REMOTE), the
    // tables read back by the Python deltalake package
    let sail_lake = w.join("sail_users_batch");
    copy_dir(demo.path(), &sail_lake);
    let out = Command::new(sail_python())
        .arg(repo_path("scripts/sail_export_check.py"))
        .arg(scripts.join("users_batch.py"))
        .arg(&sail_lake)
        .arg(w.join("medallion_users_batch"))
        .args(["bronze/users", "silver/users", "gold/users_by_title", "--ignore", "event_time"])
        .output()
        .expect("the Sail check runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "Sail: {stdout}\n{}",
        tail(&String::from_utf8_lossy(&out.stderr))
    );
    for t in [
        "bronze/users: 300 rows equal",
        "silver/users: 300 rows equal",
        "gold/users_by_title: 8 rows equal",
    ] {
        assert!(stdout.contains(t), "{stdout}");
    }
}

fn tail(s: &str) -> String {
    s.chars().rev().take(4000).collect::<String>().chars().rev().collect()
}

/// The Sail venv's Python (scripts/setup.sh: pysail and a Spark Connect client it accepts).
fn sail_python() -> PathBuf {
    let venv = std::env::var("MEDALLION_SAIL_VENV").map(PathBuf::from).unwrap_or_else(|_| {
        PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/medallion/venv-sail")
    });
    let py = venv.join("bin/python");
    assert!(py.exists(), "{} is missing: run scripts/setup.sh (it installs pysail)", py.display());
    py
}

#[test]
fn cli_export_writes_the_script_and_lists_todos_on_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    let (code, stdout, stderr) = medallion_cli(&[
        "export",
        repo_path("projects/demo.toml").to_str().unwrap(),
        "--to",
        "pyspark",
        "--out",
        out,
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("medallion_demo.py"), "{stdout}");
    assert!(stderr.contains("node `users_generator`"), "{stderr}");
    let script = std::fs::read_to_string(dir.path().join("medallion_demo.py")).unwrap();
    assert!(script.contains("SparkSession.builder.appName(\"medallion_demo\").getOrCreate()"));
    assert!(script.contains("\"gold_users\": gold_users,"));
    // secrets stay in the environment: a ${VAR} becomes an os.environ read
    let (code, _, stderr) = medallion_cli(&[
        "export",
        repo_path("projects/music_kafka.toml").to_str().unwrap(),
        "--out",
        out,
        "--pipeline",
        "bronze_music",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let script = std::fs::read_to_string(dir.path().join("music_kafka.py")).unwrap();
    assert!(
        script.contains(
            ".option(\"kafka.bootstrap.servers\", os.environ.get(\"KAFKA_BOOTSTRAP_SERVERS\", \"localhost:9092\"))"
        ),
        "{script}"
    );
    let (code, _, stderr) = medallion_cli(&[
        "export",
        repo_path("projects/users_batch.toml").to_str().unwrap(),
        "--out",
        out,
        "--pipeline",
        "platinum",
    ]);
    assert_ne!(code, 0);
    assert!(stderr.contains("no pipeline `platinum`"), "{stderr}");
    assert!(stderr.contains("bronze_users, silver_users, gold_users"), "{stderr}");
    let (code, _, stderr) = medallion_cli(&[
        "export",
        repo_path("projects/users_batch.toml").to_str().unwrap(),
        "--to",
        "flink",
    ]);
    assert_ne!(code, 0);
    assert!(stderr.contains("use pyspark or sdp"), "{stderr}");
}

#[test]
fn app_file_export_shows_the_code_and_copies_it() {
    use egui_kittest::Harness;
    use egui_kittest::kittest::Queryable as _;
    let path = repo_path("projects/users_stream.toml");
    let mut h =
        Harness::builder().with_size([1400.0, 900.0]).with_max_steps(50).build_eframe(move |cc| {
            medallion::ui::app::MedallionApp::new(cc, Some(path)).expect("app starts")
        });
    h.run_steps(3);
    h.get_by_label("File").click();
    h.run_steps(2);
    h.get_by_label_contains("Export").click();
    h.run_steps(2);
    h.get_by_label("PySpark…").click();
    h.run_steps(3);
    assert!(h.state().export.open);
    h.get_by_label("users_stream.py").hover();
    let code = match &h.state().export.result {
        Some(Ok(e)) => e.code.clone(),
        other => panic!("no export: {:?}", other.as_ref().map(|r| r.as_ref().err())),
    };
    assert!(code.contains("def silver_users_stream(spark: SparkSession, lake: Lakehouse)"));
    h.get_by_label("Copy").click();
    h.run_steps(2);
    assert_eq!(h.state().export.note, "copied users_stream.py to the clipboard");
    // the other target
    h.get_by_label("Spark Declarative Pipelines").click();
    h.run_steps(3);
    match &h.state().export.result {
        Some(Ok(e)) => assert!(e.code.contains("@dp.table(name=\"silver_users\"")),
        other => panic!("no SDP export: {:?}", other.as_ref().map(|r| r.as_ref().err())),
    }
    // an edit while the window is open shows in the code
    for p in &mut h.state_mut().doc.project.pipelines {
        for n in &mut p.nodes {
            if let medallion::model::node::NodeKind::DeltaSink(d) = &mut n.kind
                && d.table == "silver/users"
            {
                d.table = "silver/users_v2".into();
            }
        }
    }
    h.run_steps(2);
    match &h.state().export.result {
        Some(Ok(e)) => assert!(e.code.contains("@dp.table(name=\"silver_users_v2\""), "{}", e.code),
        other => panic!("no SDP export: {:?}", other.as_ref().map(|r| r.as_ref().err())),
    }
}
