//! Round trip of meaning, node kind by node kind: a one-node-deep batch pipeline over small
//! fixtures, exported and run on Spark, must write what Medallion's preview of the node shows.
//! `every_node_kind_has_a_round_trip_case` fails when a kind has no case here.

use std::path::Path;

use medallion::model::node::*;
use medallion::model::{Node, NodeId, Pipeline, Project};

/// One kind's check: the project, the node whose preview is expected, how Spark's output is
/// read, and what the comparison leaves out.
pub struct NodeCase {
    pub name: String,
    pub project: Project,
    pub node: NodeId,
    /// Spark writes a Kafka sink's records as JSON `value`s instead of a table.
    pub kafka_sink: bool,
    pub ignore: Vec<String>,
    /// `_rescued_data` compared as present / absent (Spark keeps the raw record, Medallion
    /// the raw record and the reason).
    pub rescued_as_flag: bool,
    /// No faithful Spark equivalent: the export must carry a TODO (nothing is compared).
    pub expect_todo: bool,
    /// Compared with Medallion's run (its sink table) instead of its preview: a Kafka
    /// preview samples the broker's reported high watermarks, which tansu reports a record
    /// batch at a time.
    pub compare_run: bool,
}

pub const PEOPLE_DDL: &str = "id BIGINT, name STRING, dept STRING, amount DOUBLE, ts TIMESTAMP, info STRUCT<city: STRING, geo: STRUCT<lat: DOUBLE, lon: DOUBLE>>, tags ARRAY<STRING>";
pub const DEPTS_DDL: &str = "dept STRING, floor BIGINT, dept_name STRING";

/// The fixtures under `landing/` of a lakehouse.
pub fn write_fixtures(root: &Path) {
    let people = [
        r#"{"id": 1, "name": "Zoë", "dept": "eng", "amount": 10.5, "ts": "2026-01-01T10:00:00Z", "info": {"city": "Paris", "geo": {"lat": 48.85, "lon": 2.35}}, "tags": ["a", "b"]}"#,
        r#"{"id": 2, "name": "東京", "dept": "ops", "amount": 7.25, "ts": "2026-01-01T10:04:00Z", "info": {"city": "Tokyo", "geo": {"lat": 35.68, "lon": 139.69}}, "tags": []}"#,
        r#"{"id": 3, "name": "Ann", "dept": "eng", "amount": null, "ts": "2026-01-01T10:12:00Z", "info": null, "tags": null}"#,
        r#"{"id": 2, "name": "東京", "dept": "ops", "amount": 7.25, "ts": "2026-01-01T10:04:00Z", "info": {"city": "Tokyo", "geo": {"lat": 35.68, "lon": 139.69}}, "tags": []}"#,
        r#"{"id": 4, "name": "Bob", "dept": null, "amount": -3.0, "ts": "2026-01-01T10:31:00Z", "info": {"city": "Oslo", "geo": null}, "tags": ["c"]}"#,
        r#"{"id": 5, "name": "O'Brien \"Q\"", "dept": "hr", "amount": 100.0, "ts": "2026-01-01T11:02:00Z", "info": {"city": "Cork", "geo": {"lat": 51.9, "lon": -8.47}}, "tags": ["d", "e", "f"]}"#,
    ];
    write(root, "landing/people/part-00000.json", &people.join("\n"));
    // two files, one micro-batch each: the second changes groups the first wrote
    write(root, "landing/people_stream/part-00000.json", &people[..3].join("\n"));
    write(root, "landing/people_stream/part-00001.json", &people[3..].join("\n"));
    // a broken record (all NULL), one whose amount and latitude do not read: Spark keeps the
    // fields that do (its PERMISSIVE partial results, nested ones too), and one with a
    // fraction for its BIGINT id (bad in Spark; arrow-json alone reads 7)
    let partial = r#"{"id": 8, "name": "Ève", "dept": "ops", "amount": "n/a", "ts": "2026-01-01T12:00:00Z", "info": {"city": "Lyon", "geo": {"lat": "north", "lon": 4.8}}, "tags": ["g"]}"#;
    let bad = format!(
        "{}\n{{\"id\": 9, \"name\": broken\n{}\n{partial}\n{{\"id\": 7.5, \"name\": \"Half\"}}",
        people[0], people[4]
    );
    write(root, "landing/people_bad/part-00000.json", &bad);
    write(
        root,
        "landing/depts/part-00000.json",
        "{\"dept\": \"eng\", \"floor\": 3, \"dept_name\": \"Engineering\"}\n{\"dept\": \"ops\", \"floor\": 1, \"dept_name\": \"Opérations\"}\n{\"dept\": \"sales\", \"floor\": 2, \"dept_name\": \"Sales\"}",
    );
    write(
        root,
        "landing/events/part-00000.json",
        "{\"k\": 1, \"payload\": \"{\\\"a\\\": 1, \\\"b\\\": \\\"x\\\"}\"}\n{\"k\": 2, \"payload\": \"not json\"}\n{\"k\": 3, \"payload\": \"{\\\"a\\\": 3, \\\"b\\\": \\\"ü\\\"}\"}\n{\"k\": 4, \"payload\": \"{\\\"a\\\": \\\"x\\\", \\\"b\\\": \\\"ß\\\"}\"}",
    );
    write(
        root,
        "landing/scores/part-00000.csv",
        // a score that does not read, and a short line: malformed in Spark 4.3, each keeping
        // the fields that read
        "id,name,score\n1,Zoë,3.5\n2,\"Smith, J\",4\n3,Ann,\n4,\"Zed, Z\",oops\n5,Kim\n",
    );
}

fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    let text = if text.ends_with('\n') { text.to_owned() } else { format!("{text}\n") };
    std::fs::write(p, text).unwrap();
}

/// A JSON fixture in fail_fast mode (no `_rescued_data` column to carry through the node).
fn json_source(path: &str, ddl: &str) -> NodeKind {
    NodeKind::FileSource(FileSource {
        path: path.into(),
        schema: Some(ddl.into()),
        parse_mode: ParseMode::FailFast,
        ..FileSource::default()
    })
}

fn people() -> NodeKind {
    json_source("landing/people", PEOPLE_DDL)
}

fn depts() -> NodeKind {
    json_source("landing/depts", DEPTS_DDL)
}

fn sink(case: &str) -> NodeKind {
    NodeKind::DeltaSink(DeltaSink {
        table: format!("out/{case}"),
        mode: WriteMode::Overwrite,
        ..DeltaSink::default()
    })
}

/// `inputs` (id, kind, port into the node) → node `name` → a Delta sink `out/<name>`.
fn case_with(name: &str, inputs: Vec<(&str, NodeKind, &str)>, kind: NodeKind) -> NodeCase {
    let mut p = Pipeline::new(name);
    let node = NodeId::new(name);
    for (id, k, _) in &inputs {
        p.add_node(Node::new(*id, k.clone())).unwrap();
    }
    let is_sink = kind.role() == NodeRole::Sink;
    p.add_node(Node::new(name, kind)).unwrap();
    for (id, _, port) in &inputs {
        p.connect(&NodeId::new(*id), &node, port).unwrap();
    }
    if !is_sink {
        p.add_node(Node::new("out", sink(name))).unwrap();
        p.connect(&node, &NodeId::new("out"), DEFAULT_PORT).unwrap();
    }
    let mut project = Project::new(format!("node_{name}"));
    project.pipelines.push(p);
    NodeCase {
        name: name.into(),
        project,
        node,
        kafka_sink: false,
        ignore: Vec::new(),
        rescued_as_flag: false,
        expect_todo: false,
        compare_run: false,
    }
}

fn case(name: &str, kind: NodeKind) -> NodeCase {
    case_with(name, vec![("people", people(), DEFAULT_PORT)], kind)
}

/// A source case: the source itself feeds the sink.
fn source_case(name: &str, kind: NodeKind) -> NodeCase {
    let mut p = Pipeline::new(name);
    p.add_node(Node::new(name, kind)).unwrap();
    p.add_node(Node::new("out", sink(name))).unwrap();
    p.connect(&NodeId::new(name), &NodeId::new("out"), DEFAULT_PORT).unwrap();
    let mut project = Project::new(format!("node_{name}"));
    project.pipelines.push(p);
    NodeCase {
        name: name.into(),
        project,
        node: NodeId::new(name),
        kafka_sink: false,
        ignore: Vec::new(),
        rescued_as_flag: false,
        expect_todo: false,
        compare_run: false,
    }
}

fn join(name: &str, how: JoinHow, condition: Option<&str>) -> NodeCase {
    case_with(
        name,
        vec![("people", people(), "left"), ("depts", depts(), "right")],
        NodeKind::Join(Join {
            how,
            on: vec![["dept".into(), "dept".into()]],
            condition: condition.map(str::to_owned),
        }),
    )
}

/// A stream: people → count per dept → a Delta sink in `mode` (update: foreachBatch + MERGE
/// on the grouping keys; complete: foreachBatch + overwrite), compared with Medallion's run.
fn stream_aggregate(name: &str, mode: OutputMode) -> NodeCase {
    let source = NodeKind::FileSource(FileSource {
        path: "landing/people_stream".into(),
        schema: Some(PEOPLE_DDL.into()),
        parse_mode: ParseMode::FailFast,
        max_files_per_trigger: Some(1),
        ..FileSource::default()
    });
    let mut c = case_with(
        name,
        vec![("people", source, DEFAULT_PORT)],
        NodeKind::Aggregate(Aggregate {
            group_by: vec!["dept".into()],
            aggregates: vec!["count(*) AS n".into(), "max(amount) AS top".into()],
        }),
    );
    let p = &mut c.project.pipelines[0];
    p.mode = medallion::model::PipelineMode::Stream;
    p.trigger = Some(medallion::model::Trigger::AvailableNow);
    for n in &mut p.nodes {
        if let NodeKind::DeltaSink(d) = &mut n.kind {
            d.mode = WriteMode::Append;
            d.output_mode = mode;
        }
    }
    c
}

fn with_sink_mode(mut c: NodeCase, mode: WriteMode) -> NodeCase {
    for n in &mut c.project.pipelines[0].nodes {
        if let NodeKind::DeltaSink(d) = &mut n.kind {
            d.mode = mode;
        }
    }
    c
}

/// Every case; `kafka` is the broker's address (the Kafka source case reads `topic`).
pub fn cases(kafka: &str, topic: &str) -> Vec<NodeCase> {
    let parse = |mode| {
        NodeKind::ParseJson(ParseJson {
            column: "payload".into(),
            schema: "a BIGINT, b STRING".into(),
            parse_mode: mode,
            keep: vec!["k".into()],
        })
    };
    let events = || json_source("landing/events", "k BIGINT, payload STRING");
    let mut out = vec![
        source_case(
            "file_source_json_drop_malformed",
            NodeKind::FileSource(FileSource {
                path: "landing/people_bad".into(),
                schema: Some(PEOPLE_DDL.into()),
                parse_mode: ParseMode::DropMalformed,
                ..FileSource::default()
            }),
        ),
        NodeCase {
            rescued_as_flag: true,
            ..source_case(
                "file_source_json_permissive",
                NodeKind::FileSource(FileSource {
                    path: "landing/people_bad".into(),
                    schema: Some(PEOPLE_DDL.into()),
                    ..FileSource::default()
                }),
            )
        },
        NodeCase {
            rescued_as_flag: true,
            ..source_case(
                "file_source_csv",
                NodeKind::FileSource(FileSource {
                    path: "landing/scores".into(),
                    format: FileFormat::Csv,
                    header: true,
                    schema: Some("id BIGINT, name STRING, score DOUBLE".into()),
                    ..FileSource::default()
                }),
            )
        },
        source_case(
            "delta_source",
            NodeKind::DeltaSource(DeltaSource { table: "tables/people".into(), ..DeltaSource::default() }),
        ),
        NodeCase {
            expect_todo: true,
            ..source_case(
                "generator_source",
                NodeKind::GeneratorSource(GeneratorSource { max_rows: Some(10), ..GeneratorSource::default() }),
            )
        },
        NodeCase {
            compare_run: true,
            ..source_case(
                "kafka_source",
                NodeKind::KafkaSource(KafkaSource {
                    bootstrap_servers: kafka.into(),
                    subscribe: vec![topic.into()],
                    fail_on_data_loss: true,
                    ..KafkaSource::default()
                }),
            )
        },
        case_with(
            "parse_json_drop_malformed",
            vec![("events", events(), DEFAULT_PORT)],
            parse(ParseMode::DropMalformed),
        ),
        NodeCase {
            rescued_as_flag: true,
            ..case_with(
                "parse_json_permissive",
                vec![("events", events(), DEFAULT_PORT)],
                parse(ParseMode::Permissive),
            )
        },
        case(
            "select",
            NodeKind::Select(Select {
                columns: vec![
                    "id".into(),
                    "upper(name) AS name_upper".into(),
                    "amount * 2 AS double_amount".into(),
                    "concat_ws('-', dept, name) AS label".into(),
                ],
            }),
        ),
        case("flatten", NodeKind::Flatten(Flatten::default())),
        case(
            "with_columns",
            NodeKind::WithColumns(WithColumns {
                columns: vec![
                    ColumnExpr { name: "amount".into(), expr: "amount + 1".into() },
                    ColumnExpr { name: "big".into(), expr: "amount > 10".into() },
                    ColumnExpr { name: "source_system".into(), expr: "'mongo'".into() },
                ],
            }),
        ),
        case("filter", NodeKind::Filter(Filter { condition: "amount > 5 OR dept IS NULL".into() })),
        case_with(
            "sql",
            vec![("people", people(), "people"), ("depts", depts(), "depts")],
            NodeKind::Sql(Sql {
                inputs: vec!["people".into(), "depts".into()],
                query: "SELECT p.id, p.name, d.dept_name\nFROM people p\nJOIN depts d ON p.dept = d.dept\nWHERE p.amount > 0".into(),
            }),
        ),
        join("join_left", JoinHow::Left, None),
        join("join_full", JoinHow::Full, None),
        join("join_inner_condition", JoinHow::Inner, Some("right.floor >= 3 AND left.amount > 0")),
        join("join_left_anti", JoinHow::LeftAnti, None),
        case("distinct", NodeKind::Distinct(Distinct {})),
        case(
            "deduplicate",
            NodeKind::Deduplicate(Deduplicate { keys: vec!["id".into()], within_watermark: false }),
        ),
        case(
            "aggregate",
            NodeKind::Aggregate(Aggregate {
                group_by: vec!["dept".into()],
                aggregates: vec![
                    "count(*) AS n".into(),
                    "sum(amount) AS total".into(),
                    "min(ts) AS first_ts".into(),
                ],
            }),
        ),
        case(
            "aggregate_window",
            NodeKind::Aggregate(Aggregate {
                group_by: vec!["window(ts, '30 minutes')".into(), "dept".into()],
                aggregates: vec!["count(*) AS n".into(), "max(amount) AS top".into()],
            }),
        ),
        NodeCase { compare_run: true, ..stream_aggregate("aggregate_update_stream", OutputMode::Update) },
        // update into an overwrite sink: the engine MERGEs on the keys, so must the export
        NodeCase {
            compare_run: true,
            ..with_sink_mode(
                stream_aggregate("aggregate_update_overwrite_stream", OutputMode::Update),
                WriteMode::Overwrite,
            )
        },
        NodeCase {
            compare_run: true,
            ..stream_aggregate("aggregate_complete_stream", OutputMode::Complete)
        },
        case(
            "watermark",
            NodeKind::Watermark(Watermark {
                column: "ts".into(),
                delay: "10 minutes".into(),
                ..Watermark::default()
            }),
        ),
        case(
            "expectations",
            NodeKind::Expectations(Expectations {
                rules: vec![
                    Rule {
                        name: "positive_amount".into(),
                        condition: "amount > 0".into(),
                        on_violation: OnViolation::Drop,
                    },
                    Rule {
                        name: "named".into(),
                        condition: "name IS NOT NULL".into(),
                        on_violation: OnViolation::Warn,
                    },
                    Rule {
                        name: "has_id".into(),
                        condition: "id IS NOT NULL".into(),
                        on_violation: OnViolation::Fail,
                    },
                ],
            }),
        ),
        case_with(
            "delta_sink",
            vec![("depts", depts(), DEFAULT_PORT)],
            NodeKind::DeltaSink(DeltaSink {
                table: "out/delta_sink".into(),
                mode: WriteMode::Merge,
                merge_keys: vec!["dept".into()],
                ..DeltaSink::default()
            }),
        ),
        NodeCase {
            kafka_sink: true,
            ..case_with(
                "kafka_sink",
                vec![("depts", depts(), DEFAULT_PORT)],
                NodeKind::KafkaSink(KafkaSink {
                    bootstrap_servers: "${KAFKA_BOOTSTRAP_SERVERS:-localhost:9092}".into(),
                    topic: "depts_out".into(),
                    ..KafkaSink::default()
                }),
            )
        },
    ];
    for c in &mut out {
        c.project.lakehouse = ".".into();
        if c.name == "generator_source" || c.name == "kafka_source" {
            // these sources only run in a stream
            c.project.pipelines[0].mode = medallion::model::PipelineMode::Stream;
        }
    }
    out
}

/// The cases that check a kind; the `match` is exhaustive, so a new kind does not compile
/// until it is listed here (and a case with that name must exist).
pub fn cases_for(kind: &NodeKind) -> &'static [&'static str] {
    match kind {
        NodeKind::DeltaSource(_) => &["delta_source"],
        NodeKind::FileSource(_) => {
            &["file_source_json_drop_malformed", "file_source_json_permissive", "file_source_csv"]
        }
        NodeKind::GeneratorSource(_) => &["generator_source"],
        NodeKind::KafkaSource(_) => &["kafka_source"],
        NodeKind::Select(_) => &["select"],
        NodeKind::ParseJson(_) => &["parse_json_drop_malformed", "parse_json_permissive"],
        NodeKind::Flatten(_) => &["flatten"],
        NodeKind::WithColumns(_) => &["with_columns"],
        NodeKind::Filter(_) => &["filter"],
        NodeKind::Sql(_) => &["sql"],
        NodeKind::Join(_) => &["join_left", "join_full", "join_inner_condition", "join_left_anti"],
        NodeKind::Distinct(_) => &["distinct"],
        NodeKind::Deduplicate(_) => &["deduplicate"],
        NodeKind::Aggregate(_) => &[
            "aggregate",
            "aggregate_window",
            "aggregate_update_stream",
            "aggregate_update_overwrite_stream",
            "aggregate_complete_stream",
        ],
        NodeKind::Watermark(_) => &["watermark"],
        NodeKind::Expectations(_) => &["expectations"],
        NodeKind::DeltaSink(_) => &["delta_sink"],
        NodeKind::KafkaSink(_) => &["kafka_sink"],
    }
}

#[test]
fn every_node_kind_has_a_round_trip_case() {
    let names: Vec<String> = cases("localhost:9092", "t").into_iter().map(|c| c.name).collect();
    for kind in NodeKind::palette() {
        let wanted = cases_for(&kind);
        assert!(!wanted.is_empty(), "node kind `{}` has no round-trip case", kind.tag());
        for w in wanted {
            assert!(names.iter().any(|n| n == w), "kind `{}`: no case named `{w}`", kind.tag());
        }
        // and the exporter handles it: a one-node pipeline exports and names the node
        let case = cases("localhost:9092", "t").into_iter().find(|c| c.name == wanted[0]).unwrap();
        let export = medallion::export::export_project(
            &case.project,
            medallion::export::Target::PySpark,
            &[],
        )
        .unwrap();
        assert!(
            export.code.contains(&format!("# node {}", case.node)),
            "kind `{}`: the export does not name node `{}`",
            kind.tag(),
            case.node
        );
    }
}
