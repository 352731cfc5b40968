//! #11's acceptance test: `users_stream` authored from File → New through the UI only
//! (palette, inspector fields and input choices, the pipeline panel, the File menu), saved,
//! run by the CLI, and compared with the checked-in project's run on the same data.

use std::path::Path;

use eframe::egui::{self, Key, Modifiers};
use egui_kittest::Harness;
use egui_kittest::kittest::{NodeT as _, Queryable as _};
use medallion::model::node::NodeKind;
use medallion::model::{PipelineMode, Project, Trigger};
use medallion::ui::app::{MedallionApp, Picker};

use crate::common::{medallion_cli, pretty, query, repo_path};
use crate::ui::harness;

type H = Harness<'static, MedallionApp>;

/// Replaces the text of the field labelled `label` by typing, as a user would.
fn set_text(h: &mut H, label: &str, text: &str) {
    h.get_by_label(label).focus();
    h.run_steps(1);
    h.key_press_modifiers(Modifiers::COMMAND, Key::A);
    h.get_by_label(label).type_text(text);
    h.run_steps(2);
}

/// Types lines into the multi-line field labelled `label`, Enter between them.
fn type_lines(h: &mut H, label: &str, lines: &[&str]) {
    h.get_by_label(label).focus();
    h.run_steps(1);
    for (i, line) in lines.iter().enumerate() {
        if i > 0 {
            h.key_press(Key::Enter);
            h.run_steps(1);
        }
        h.get_by_label(label).type_text(line);
        h.run_steps(1);
    }
    h.run_steps(2);
}

/// Replaces the text of the field whose current value is `value`.
fn replace_value(h: &mut H, value: &str, text: &str) {
    fn field<'a>(h: &'a H, value: &'a str) -> egui_kittest::Node<'a> {
        let mut fields = h
            .get_all_by_value(value)
            .filter(|n| n.accesskit_node().role() == egui::accesskit::Role::TextInput);
        let f = fields.next().expect("a text field");
        assert!(fields.next().is_none(), "two text fields hold `{value}`");
        f
    }
    field(h, value).focus();
    h.run_steps(1);
    h.key_press_modifiers(Modifiers::COMMAND, Key::A);
    field(h, value).type_text(text);
    h.run_steps(2);
}

/// Clicks the widget labelled `label` that is not a plain label (a canvas caption may read
/// the same).
fn click(h: &mut H, label: &str) {
    let nodes: Vec<_> = h
        .get_all_by_label(label)
        .filter(|n| n.accesskit_node().role() != egui::accesskit::Role::Label)
        .collect();
    assert!(!nodes.is_empty(), "no widget `{label}`");
    nodes[nodes.len() - 1].click();
    h.run_steps(2);
}

fn choose(h: &mut H, combo: &str, option: &str) {
    h.get_by_label(combo).click();
    h.run_steps(2);
    click(h, option);
}

fn palette(h: &mut H, entry: &str) {
    h.get_by_label(entry).click();
    h.run_steps(2);
}

/// An optional number: tick its box, then type the value into the box beside it.
fn set_number(h: &mut H, label: &str, value: &str) {
    h.get_by_role_and_label(egui::accesskit::Role::CheckBox, label).click();
    h.run_steps(2);
    let spin = || egui::accesskit::Role::SpinButton;
    h.get_by_role_and_label(spin(), label).click();
    h.run_steps(2);
    h.key_press_modifiers(Modifiers::COMMAND, Key::A);
    h.get_by_role_and_label(spin(), label).type_text(value);
    h.key_press(Key::Enter);
    h.run_steps(2);
}

fn pipeline_panel(h: &mut H) {
    h.key_press(Key::Escape);
    h.run_steps(2);
}

fn author_users_stream(h: &mut H) {
    click(h, "File");
    click(h, "New");
    // bronze: the file stream into bronze/users
    set_text(h, "Pipeline name", "bronze_users_stream");
    click(h, "stream");
    set_text(h, "Trigger interval", "0.5 s");
    palette(h, "file source  ·  source");
    set_text(h, "Name", "landing/users (new files)");
    set_text(h, "Path", "landing/users");
    set_text(
        h,
        "Schema (DDL; inferred when empty)",
        "uuid STRING, id BIGINT, first_name STRING, last_name STRING, date_of_birth STRING, \
         gender STRING, email STRING, employment STRUCT<title: STRING, keySkills: ARRAY<STRING>>",
    );
    choose(h, "Parse mode", "drop_malformed");
    set_number(h, "Max files per trigger", "10");
    click(h, "Notification mode (file events)");
    palette(h, "delta sink  ·  sink");
    set_text(h, "Name", "bronze/users");
    set_text(h, "Table", "bronze/users");
    choose(h, "Input from", "← file_source");
    // silver: tail bronze, flatten, rename, join the static ssn table, domain columns
    click(h, "+ pipeline");
    click(h, "Stream pipeline");
    set_text(h, "Pipeline name", "silver_users_stream");
    palette(h, "delta source  ·  source");
    set_text(h, "Name", "bronze/users (new versions)");
    set_text(h, "Table", "bronze/users");
    palette(h, "flatten  ·  transform");
    choose(h, "Input from", "← delta_source");
    palette(h, "select  ·  transform");
    choose(h, "Input from", "← flatten");
    type_lines(
        h,
        "Columns (one expression per line)",
        &[
            "uuid AS user_uid",
            "id AS user_id",
            "first_name",
            "last_name",
            "concat_ws(' ', first_name, last_name) AS full_name",
            "CAST(date_of_birth AS TIMESTAMP) AS user_birth_date",
            "gender",
            "employment_title AS user_title",
            "employment_keySkills AS user_skills",
        ],
    );
    palette(h, "delta source  ·  source");
    set_text(h, "Name", "bronze/ssn (static)");
    set_text(h, "Table", "bronze/ssn");
    click(h, "Static table (stream-static join)");
    palette(h, "join  ·  transform");
    choose(h, "How", "left");
    type_lines(h, "Keys (left = right, one pair per line)", &["user_id = user_id"]);
    choose(h, "Input `left` from", "← select");
    choose(h, "Input `right` from", "← delta_source_2");
    palette(h, "with columns  ·  transform");
    choose(h, "Input from", "← join");
    for (i, (name, expr)) in
        [("source_system", "'mongo'"), ("event_time", "current_timestamp()"), ("is_active", "true")]
            .into_iter()
            .enumerate()
    {
        click(h, "Add column");
        replace_value(h, &format!("col{}", i + 1), name);
        replace_value(h, "NULL", expr);
    }
    palette(h, "delta sink  ·  sink");
    set_text(h, "Table", "silver/users");
    choose(h, "Input from", "← with_columns");
    pipeline_panel(h);
}

fn run_cli(project: &Path, lake: &Path) {
    let (code, out, err) = medallion_cli(&[
        "run",
        project.to_str().unwrap(),
        "--lakehouse",
        lake.to_str().unwrap(),
        "--available-now",
    ]);
    assert_eq!(code, 0, "{}\n{out}\n{err}", project.display());
}

async fn rows(lake: &Path, table: &str, order: &str) -> String {
    let sql = format!("SELECT * EXCEPT (event_time) FROM t ORDER BY {order}");
    let sql =
        if table == "bronze/users" { format!("SELECT * FROM t ORDER BY {order}") } else { sql };
    pretty(&query(&lake.join(table), &sql).await)
}

#[test]
fn users_stream_authored_in_the_app_runs_like_the_checked_in_project() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = harness(None);
    h.run_steps(3);
    author_users_stream(&mut h);
    let file = dir.path().join("authored.toml");
    h.state_mut().picker = Picker::Fixed(file.clone());
    click(&mut h, "File");
    click(&mut h, "Save As…");
    assert!(!h.state().doc.dirty(), "{}", h.state().status);

    let saved = Project::load(&file).unwrap();
    let names: Vec<_> = saved.pipelines.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["bronze_users_stream", "silver_users_stream"]);
    for p in &saved.pipelines {
        assert_eq!(p.mode, PipelineMode::Stream, "{}", p.name);
    }
    assert_eq!(saved.pipelines[0].trigger, Some(Trigger::Interval { interval_ms: 500 }));
    let silver = &saved.pipelines[1];
    assert_eq!(silver.nodes.len(), 7);
    assert_eq!(silver.edges.len(), 6);
    let NodeKind::FileSource(f) = &saved.pipelines[0].nodes[0].kind else { panic!() };
    assert_eq!((f.max_files_per_trigger, f.use_notifications), (Some(10), true));
    assert!(medallion::model::validate::validate_project(&saved).is_empty());

    // the same demo data in two lakehouses: the authored project in one, the shipped in the other
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (authored, shipped) = (dir.path().join("a"), dir.path().join("b"));
    let opts = medallion::engine::demo_data::DemoDataOptions {
        users: 400,
        files: 3,
        seed: 11,
        impressions: 0,
    };
    for lake in [&authored, &shipped] {
        rt.block_on(medallion::engine::demo_data::write_demo_data(lake, &opts)).unwrap();
    }
    run_cli(&file, &authored);
    run_cli(&repo_path("projects/users_stream.toml"), &shipped);
    for (table, order) in [("bronze/users", "uuid"), ("silver/users", "user_uid")] {
        let (a, b) = rt.block_on(async {
            (rows(&authored, table, order).await, rows(&shipped, table, order).await)
        });
        assert!(a.lines().count() > 400, "{table}: {a}");
        assert_eq!(a, b, "{table} differs");
    }
}

/// `music_kafka` authored the same way: the saved pipeline equals the shipped one but for the
/// node ids the palette chose and the positions, and `medallion run` runs the saved file
/// against a real broker (the malformed record dropped, every good one landed once).
#[test]
fn music_kafka_authored_in_the_app_equals_the_checked_in_pipeline() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = harness(None);
    h.run_steps(3);
    click(&mut h, "File");
    click(&mut h, "New");
    let h = &mut h;
    set_text(h, "Pipeline name", "bronze_music");
    click(h, "stream");
    set_text(h, "Trigger interval", "1 second");
    palette(h, "kafka source  ·  source");
    set_text(h, "Name", "Kafka music_data_json");
    type_lines(h, "subscribe (one topic per line)", &["music_data_json"]);
    set_text(h, "startingOffsets", "earliest");
    set_number(h, "maxOffsetsPerTrigger", "200000");
    palette(h, "parse json  ·  transform");
    set_text(h, "Name", "from_json(value)");
    choose(h, "Input from", "← kafka_source");
    set_text(
        h,
        "Schema (DDL)",
        "user_id BIGINT, track_id STRING, artist STRING, title STRING, genre STRING, \
         duration_ms BIGINT, played_at TIMESTAMP",
    );
    choose(h, "Parse mode", "drop_malformed");
    type_lines(h, "Keep columns (one per line)", &["topic", "partition", "offset", "timestamp"]);
    palette(h, "delta sink  ·  sink");
    set_text(h, "Name", "bronze/music");
    set_text(h, "Table", "bronze/music");
    choose(h, "Input from", "← parse_json");
    let file = dir.path().join("music.toml");
    h.state_mut().picker = Picker::Fixed(file.clone());
    click(h, "File");
    click(h, "Save As…");
    assert!(!h.state().doc.dirty(), "{}", h.state().status);

    let mut authored = Project::load(&file).unwrap().pipelines.remove(0);
    let shipped = Project::load(&repo_path("projects/music_kafka.toml")).unwrap();
    let mut shipped = shipped.pipelines[0].clone();
    let ids = [
        ("kafka_source", "music_topic"),
        ("parse_json", "from_json"),
        ("delta_sink", "bronze_music"),
    ];
    let rename = |id: &mut medallion::model::NodeId| {
        if let Some((_, to)) = ids.iter().find(|(from, _)| id.as_str() == *from) {
            *id = medallion::model::NodeId::new(*to);
        }
    };
    for n in &mut authored.nodes {
        rename(&mut n.id);
    }
    for e in &mut authored.edges {
        rename(&mut e.from);
        rename(&mut e.to);
    }
    for p in [&mut authored, &mut shipped] {
        for n in &mut p.nodes {
            n.pos = Default::default();
        }
    }
    assert_eq!(authored, shipped);

    // and the saved file runs: a real broker, 300 events and a malformed one, availableNow
    let broker = crate::kafka::Broker::start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut events = crate::kafka::music_events(300, 4);
    events.push("{not json".into());
    rt.block_on(async {
        crate::kafka::create_topic(&broker, "music_data_json").await;
        crate::kafka::produce(&broker, "music_data_json", &events).await;
    });
    let text = std::fs::read_to_string(&file).unwrap();
    let text = text.replace("${KAFKA_BOOTSTRAP_SERVERS:-localhost:9092}", &broker.addr);
    assert!(text.contains(&broker.addr), "the saved file names the brokers as the shipped one");
    std::fs::write(&file, text).unwrap();
    let lake = dir.path().join("lake");
    run_cli(&file, &lake);
    let rows = rt.block_on(query(
        &lake.join("bronze/music"),
        "SELECT count(*) AS n, count(DISTINCT \"offset\" * 10 + partition) AS d FROM t",
    ));
    let shown = pretty(&rows);
    assert!(shown.contains("| 300 | 300 |"), "{shown}");
}
