//! Editing as in any editor (#11 items 1, 4, 6): pipelines renamed, duplicated, moved and
//! deleted with undo; shortcuts with a focused text field; one undo step per field typed in;
//! multibyte text in every message and name, cut at every position, never crashing the UI.

use eframe::egui::{FontId, Key, Modifiers};
use egui_kittest::kittest::Queryable as _;
use medallion::model::{Diagnostic, NodeId, PipelineMode, Project};
use medallion::ui::app::{BottomTab, Picker};

use crate::ui::harness;

/// The platform's Copy event (Ctrl+C in a real window), and the text it put on the clipboard.
fn copy(h: &mut egui_kittest::Harness<'_, medallion::ui::app::MedallionApp>) -> Option<String> {
    h.event(eframe::egui::Event::Copy);
    h.step();
    h.output().platform_output.commands.iter().find_map(|c| match c {
        eframe::egui::OutputCommand::CopyText(t) => Some(t.clone()),
        _ => None,
    })
}

fn names(p: &Project) -> Vec<String> {
    p.pipelines.iter().map(|p| p.name.clone()).collect()
}

/// Duplicate (a node's menu) adds a copy of the node beside it, with a fresh id.
#[test]
fn duplicate_adds_a_copy_of_the_node() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("users_batch.toml");
    std::fs::copy(crate::common::repo_path("projects/users_batch.toml"), &file).unwrap();
    let mut h = harness(Some(file));
    h.run_steps(5);
    // what the node menu's Duplicate runs (egui-snarl's menu does not open under kittest)
    h.state_mut().duplicate_node(&NodeId::new("raw_users"));
    h.run_steps(2);
    let p = &h.state().doc.project.pipelines[0];
    let original = p.node(&NodeId::new("raw_users")).unwrap().clone();
    let copies: Vec<_> = p.nodes.iter().filter(|n| n.id.as_str() != "raw_users").collect();
    let copy = copies.iter().find(|n| n.kind == original.kind).expect("a copy of raw_users");
    assert_eq!(p.nodes.len(), 3);
    assert_eq!((copy.pos.x, copy.pos.y), (original.pos.x + 40.0, original.pos.y + 40.0));
    // one undo step takes it away
    h.key_press_modifiers(Modifiers::COMMAND, Key::Z);
    h.run_steps(2);
    assert_eq!(h.state().doc.project.pipelines[0].nodes.len(), 2);
}

/// Recorded tests follow a renamed pipeline, and a name typed on the way that another pipeline
/// has does not take that pipeline's tests.
#[test]
fn recorded_tests_follow_a_rename_through_a_taken_name() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("users_batch.toml");
    std::fs::copy(crate::common::repo_path("projects/users_batch.toml"), &file).unwrap();
    let mut h = harness(Some(file));
    h.run_steps(3);
    h.state_mut().tab = 1; // silver_users
    h.run_steps(2);
    h.get_by_label("Pipeline name").focus();
    h.run_steps(1);
    h.key_press_modifiers(Modifiers::COMMAND, Key::A);
    h.get_by_label("Pipeline name").type_text("gold_users");
    h.run_steps(2);
    h.get_by_label("another pipeline is named `gold_users`");
    h.get_by_label("Pipeline name").type_text("_v2");
    h.run_steps(2);
    let p = &h.state().doc.project;
    assert_eq!(names(p), ["bronze_users", "gold_users_v2", "gold_users"]);
    let owner = |node: &str| {
        p.tests.iter().find(|t| t.node.as_str() == node).map(|t| t.pipeline.clone()).unwrap()
    };
    assert_eq!(owner("domain_columns"), "gold_users_v2");
    assert_eq!(owner("gold_users_by_title"), "gold_users");
}

#[test]
fn pipelines_are_created_renamed_duplicated_moved_and_deleted_with_undo() {
    let mut h = harness(None);
    h.run_steps(3);
    h.get_by_label("+ pipeline").click();
    h.run_steps(2);
    h.get_by_label("Stream pipeline").click();
    h.run_steps(2);
    let p = &h.state().doc.project;
    assert_eq!(names(p), ["pipeline_1", "stream_pipeline"]);
    assert_eq!(p.pipelines[1].mode, PipelineMode::Stream);
    // rename by typing: one undo step for the whole name
    h.get_by_label("Pipeline name").focus();
    h.run_steps(1);
    h.key_press_modifiers(Modifiers::COMMAND, Key::A);
    h.get_by_label("Pipeline name").type_text("silver_régions");
    h.run_steps(2);
    assert_eq!(names(&h.state().doc.project)[1], "silver_régions");
    h.key_press(Key::Escape); // leaves the field: the next edit is another undo step
    h.run_steps(2);
    // a taken name is flagged in the panel and by validation
    h.get_by_label("Pipeline name").focus();
    h.key_press_modifiers(Modifiers::COMMAND, Key::A);
    h.get_by_label("Pipeline name").type_text("pipeline_1");
    h.run_steps(3);
    h.get_by_label("another pipeline is named `pipeline_1`");
    h.key_press(Key::Escape); // leaves the field
    h.run_steps(2);
    h.key_press_modifiers(Modifiers::COMMAND, Key::Z);
    h.run_steps(2);
    assert_eq!(names(&h.state().doc.project)[1], "silver_régions", "one undo per field edit");
    h.key_press_modifiers(Modifiers::COMMAND, Key::Z);
    h.run_steps(2);
    assert_eq!(names(&h.state().doc.project)[1], "stream_pipeline");
    h.key_press_modifiers(Modifiers::COMMAND, Key::Y);
    h.run_steps(2);
    assert_eq!(names(&h.state().doc.project)[1], "silver_régions", "Ctrl+Y redoes");
    // duplicate, move, delete, each undone
    h.get_by_label("Duplicate pipeline").click();
    h.run_steps(2);
    assert_eq!(
        names(&h.state().doc.project),
        ["pipeline_1", "silver_régions", "silver_régions_copy"]
    );
    assert_eq!(h.state().tab, 2);
    h.get_by_label("◀ Move left").click();
    h.run_steps(2);
    assert_eq!(
        names(&h.state().doc.project),
        ["pipeline_1", "silver_régions_copy", "silver_régions"]
    );
    h.get_by_label("Delete pipeline").click();
    h.run_steps(2);
    assert_eq!(names(&h.state().doc.project), ["pipeline_1", "silver_régions"]);
    for expected in [
        vec!["pipeline_1", "silver_régions_copy", "silver_régions"],
        vec!["pipeline_1", "silver_régions", "silver_régions_copy"],
        vec!["pipeline_1", "silver_régions"],
    ] {
        h.key_press_modifiers(Modifiers::COMMAND, Key::Z);
        h.run_steps(2);
        assert_eq!(names(&h.state().doc.project), expected);
    }
}

#[test]
fn file_shortcuts_work_while_a_text_field_has_focus() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("typed.toml");
    let mut h = harness(None);
    h.run_steps(3);
    h.state_mut().picker = Picker::Fixed(file.clone());
    h.get_by_label("Pipeline name").focus();
    h.run_steps(1);
    h.key_press_modifiers(Modifiers::COMMAND, Key::A);
    h.get_by_label("Pipeline name").type_text("bronze");
    h.run_steps(2);
    // Ctrl+S with the cursor still in the field saves (Save As the first time)
    h.key_press_modifiers(Modifiers::COMMAND, Key::S);
    h.run_steps(2);
    assert_eq!(names(&Project::load(&file).unwrap()), ["bronze"], "{}", h.state().status);
    assert!(!h.state().doc.dirty());
    // Ctrl+Z in a text field is the field's own undo, not the project's
    h.get_by_label("Pipeline name").type_text("_x");
    h.run_steps(2);
    h.key_press_modifiers(Modifiers::COMMAND, Key::Z);
    h.run_steps(2);
    assert_eq!(names(&h.state().doc.project), ["bronze"], "the field's undo took back `_x`");
    // Ctrl+N asks about an unsaved change first
    h.get_by_label("Pipeline name").type_text("_y");
    h.run_steps(2);
    h.key_press_modifiers(Modifiers::COMMAND, Key::N);
    h.run_steps(2);
    h.get_by_label("Unsaved changes");
}

/// Messages whose 80th byte (the old cut) falls at every offset of multibyte characters.
fn multibyte_messages() -> Vec<String> {
    let tail = "região preço ação 名前 🦀 données";
    (60..95)
        .map(|n| format!("{}{tail}\nsecond line {n}", "é".repeat(n / 2) + &"x".repeat(n % 2)))
        .collect()
}

/// Chinese, Japanese and Korean names and values are drawn as text, not boxes: egui's own
/// fonts have none of their glyphs, so the app adds the system's CJK font (scripts/setup.sh
/// installs `fonts-wqy-microhei`), after egui's own.
#[test]
fn chinese_japanese_and_korean_text_have_glyphs() {
    let mut h = harness(None);
    h.run_steps(2);
    // (no spaces or Latin letters: egui's `has_glyph` says no to them in its monospace font,
    // which draws them)
    for text in ["名前", "ひらがなカタカナ", "한국어"] {
        for font in [FontId::proportional(14.0), FontId::monospace(13.0)] {
            assert!(h.ctx.fonts_mut(|f| f.has_glyphs(&font, text)), "{text} in {font:?}");
        }
    }
}

#[test]
fn multibyte_text_at_every_cut_position_never_breaks_the_ui() {
    let mut h = harness(None);
    h.run_steps(3);
    h.get_by_label("filter  ·  transform").click();
    h.run_steps(2);
    let node = NodeId::new("filter");
    {
        let app = h.state_mut();
        let p = &mut app.doc.project.pipelines[0];
        p.name = "preços_região_名前".into();
        p.nodes[0].name = "coluna região não existe 🦀".repeat(3);
        p.description = "descrição com acentuação".into();
    }
    h.run_steps(3);
    let messages = multibyte_messages();
    for m in &messages {
        let d = Diagnostic::error("preços_região_名前", Some(&node), m.clone());
        h.state_mut().diagnostics.push(d);
    }
    // the canvas, the inspector (node selected) and the Problems tab all draw them
    h.run_steps(3);
    h.key_press(Key::Escape);
    h.run_steps(2);
    h.get_by_label_contains("Problems (").click();
    h.run_steps(3);
    for m in &messages {
        // the Problems tab shows each whole message, both lines
        let whole = format!("error: pipeline `preços_região_名前`, node `filter`: {m}");
        h.get_by_label(&whole);
    }
}

/// The demo's silver_users pipeline open in a window of `size` (its directory kept alive).
fn demo_silver(
    size: [f32; 2],
) -> (tempfile::TempDir, egui_kittest::Harness<'static, medallion::ui::app::MedallionApp>) {
    let dir = tempfile::tempdir().unwrap();
    let demo = dir.path().join("demo.toml");
    let mut project = crate::common::load_project("projects/demo.toml");
    project.lakehouse = ".".into();
    project.save(&demo).unwrap();
    let mut h = egui_kittest::Harness::builder()
        .with_size(size)
        .with_max_steps(50)
        .build_eframe(move |cc| medallion::ui::app::MedallionApp::new(cc, Some(demo)).unwrap());
    h.run_steps(3);
    h.get_by_label("silver_users").click();
    h.run_steps(5);
    assert_eq!(h.state().pipeline().unwrap().nodes.len(), 7);
    (dir, h)
}

/// Every node inside the canvas, and no node over another.
fn assert_all_shown_none_covered(canvas: &medallion::ui::canvas::Canvas) {
    let (view, rects) = canvas.on_screen().unwrap();
    assert_eq!(rects.len(), 7);
    for r in &rects {
        assert!(view.expand(1.0).contains_rect(*r), "node {r:?} outside the canvas {view:?}");
    }
    assert_none_covered(canvas);
}

fn assert_none_covered(canvas: &medallion::ui::canvas::Canvas) {
    let (_, rects) = canvas.on_screen().unwrap();
    for (i, a) in rects.iter().enumerate() {
        for b in &rects[i + 1..] {
            assert!(
                !a.shrink(0.5).intersects(b.shrink(0.5)),
                "nodes {a:?} and {b:?} overlap at zoom {:.2}",
                canvas.scale
            );
        }
    }
}

#[test]
fn the_first_view_fits_every_node_of_the_demo_and_titles_are_readable() {
    let (_dir, mut h) = demo_silver([1400.0, 860.0]);
    let check = |h: &egui_kittest::Harness<'static, medallion::ui::app::MedallionApp>| {
        let canvas = h.state().canvas().unwrap();
        assert_all_shown_none_covered(canvas);
        let px = canvas.title_px(&h.ctx);
        assert!(px >= 11.0, "titles are {px:.1} px at zoom {:.2}", canvas.scale);
        canvas.scale
    };
    let fitted = check(&h);
    // zoom out twice, then Fit brings every node back at the same zoom
    h.get_by_label("−").click();
    h.run_steps(2);
    h.get_by_label("−").click();
    h.run_steps(2);
    assert!(h.state().canvas().unwrap().scale < fitted * 0.7);
    h.get_by_label("Fit").click();
    h.run_steps(4);
    assert!((check(&h) - fitted).abs() < 0.02);
}

/// In a small window the fit zooms far out (~30%) and node text grows to stay readable: a
/// node's text is cut before its neighbour instead of covering it, at that zoom and at the
/// zooms in between.
#[test]
fn zoomed_out_nodes_never_cover_their_neighbours() {
    let (_dir, mut h) = demo_silver([900.0, 640.0]);
    assert!(h.state().canvas().unwrap().scale < 0.5, "{}", h.state().canvas().unwrap().scale);
    assert_all_shown_none_covered(h.state().canvas().unwrap());
    for _ in 0..3 {
        h.get_by_label("+").click();
        h.run_steps(3);
        assert_none_covered(h.state().canvas().unwrap());
    }
}

#[test]
fn open_and_save_failures_are_notifications_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = harness(None);
    h.run_steps(3);
    // the in-app file dialog (the fallback when the system has none)
    h.get_by_label("File").click();
    h.run_steps(2);
    h.get_by_label("Open path…").click();
    h.run_steps(2);
    let missing = dir.path().join("nowhere/projet_données.toml");
    h.get_by_label("Project file path").focus();
    h.key_press_modifiers(Modifiers::COMMAND, Key::A);
    h.get_by_label("Project file path").type_text(missing.to_str().unwrap());
    h.run_steps(1);
    h.get_by_label("Open").click();
    h.run_steps(3);
    let notices = h.state().notices();
    assert_eq!(notices.len(), 1, "{notices:?}");
    assert!(notices[0].1, "an error");
    assert!(
        notices[0].0.contains("Cannot open the project")
            && notices[0].0.contains("projet_données.toml"),
        "{notices:?}"
    );
    let shown = notices[0].0.clone();
    h.get_by_label(&shown);
    // saving into a folder that does not exist says so too
    h.state_mut().picker = Picker::Fixed(dir.path().join("no/such/dir/p.toml"));
    h.key_press_modifiers(Modifiers::COMMAND | Modifiers::SHIFT, Key::S);
    h.run_steps(3);
    let notices = h.state().notices();
    assert!(
        notices.iter().any(|(t, e)| *e && t.contains("Cannot save the project")),
        "{notices:?}"
    );
    // dismissed with its ✕
    let before = h.state().notices().len();
    h.get_all_by_label("✕").last().unwrap().click();
    h.run_steps(2);
    assert_eq!(h.state().notices().len(), before - 1);
}

#[test]
fn nodes_copied_in_one_window_paste_into_another_through_the_clipboard() {
    use eframe::egui::Event;
    use medallion::model::node::NodeKind;
    let mut a = harness(None);
    a.run_steps(3);
    a.get_by_label("filter  ·  transform").click();
    a.run_steps(2);
    a.get_by_label("Condition").focus();
    a.get_by_label("Condition").type_text("preço > 10 AND região = 'Sé'");
    a.run_steps(2);
    a.key_press(Key::Escape); // out of the field; the node stays selected
    a.run_steps(2);
    // the platform's Copy event (Ctrl+C in a real window) puts the nodes on the clipboard
    let copied = copy(&mut a).expect("the node went to the clipboard");
    // a second window receives the clipboard's text as the platform's Paste event (Ctrl+V)
    let mut b = harness(None);
    b.run_steps(3);
    b.event(Event::Paste(copied));
    b.run_steps(2);
    let nodes = &b.state().pipeline().unwrap().nodes;
    assert_eq!(nodes.len(), 1);
    let NodeKind::Filter(f) = &nodes[0].kind else { panic!("{:?}", nodes[0].kind) };
    assert_eq!(f.condition, "preço > 10 AND região = 'Sé'");
    assert!(b.state().history.can_undo(), "a paste is one undo step");
}

#[test]
fn escape_deselects_and_delete_or_backspace_remove_the_node() {
    let mut h = harness(None);
    h.run_steps(3);
    for entry in ["filter  ·  transform", "select  ·  transform"] {
        h.get_by_label(entry).click();
        h.run_steps(2);
    }
    assert_eq!(h.state().selected, Some(NodeId::new("select")));
    // Escape inside a field only leaves the field; the node stays in the inspector
    h.get_by_label("Name").focus();
    h.run_steps(1);
    h.key_press(Key::Escape);
    h.run_steps(2);
    assert_eq!(h.state().selected, Some(NodeId::new("select")));
    // Backspace in a field edits the text, on the canvas it deletes the node
    h.get_by_label("Name").focus();
    h.get_by_label("Name").type_text("x");
    h.key_press(Key::Backspace);
    h.run_steps(2);
    assert_eq!(h.state().pipeline().unwrap().nodes.len(), 2);
    h.key_press(Key::Escape);
    h.run_steps(2);
    h.key_press(Key::Backspace);
    h.run_steps(2);
    let ids: Vec<_> = h.state().pipeline().unwrap().nodes.iter().map(|n| n.id.clone()).collect();
    assert_eq!(ids, [NodeId::new("filter")]);
    // Escape on the canvas deselects: the inspector shows the pipeline
    h.state_mut().selected = Some(NodeId::new("filter"));
    h.run_steps(2);
    h.key_press(Key::Escape);
    h.run_steps(2);
    assert_eq!(h.state().selected, None);
    h.get_by_label("Pipeline name");
    h.state_mut().selected = Some(NodeId::new("filter"));
    h.run_steps(2);
    h.key_press(Key::Delete);
    h.run_steps(2);
    assert!(h.state().pipeline().unwrap().nodes.is_empty());
}

#[test]
fn the_preview_of_a_join_shows_both_inputs_beside_the_output() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let opts = medallion::engine::demo_data::DemoDataOptions {
        users: 300,
        files: 2,
        seed: 5,
        impressions: 0,
    };
    rt.block_on(medallion::engine::demo_data::write_demo_data(dir.path(), &opts)).unwrap();
    let text = r#"
format_version = 1
name = "join_preview"
lakehouse = "."
[[pipeline]]
name = "users_ssn"
[[pipeline.nodes]]
id = "users"
kind = "file_source"
path = "landing/users"
schema = "uuid STRING, id BIGINT, first_name STRING"
[[pipeline.nodes]]
id = "ssn"
kind = "delta_source"
table = "bronze/ssn"
[[pipeline.nodes]]
id = "joined"
kind = "join"
how = "left"
on = [["id", "user_id"]]
[[pipeline.edges]]
from = "users"
to = "joined"
port = "left"
[[pipeline.edges]]
from = "ssn"
to = "joined"
port = "right"
"#;
    let file = dir.path().join("join.toml");
    std::fs::write(&file, text).unwrap();
    let mut h = harness(Some(file));
    h.run_steps(3);
    h.state_mut().selected = Some(NodeId::new("joined"));
    h.run_steps(3);
    h.get_by_label("Preview rows").click();
    h.run_steps(2);
    crate::ui::wait_until(&mut h, "the preview", |a| {
        a.preview_rows().is_some() || a.preview_error().is_some()
    });
    assert_eq!(h.state().preview_rows(), Some(100), "{:?}", h.state().preview_error());
    let inputs = h.state().preview_inputs();
    let ports: Vec<&str> = inputs.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(ports, ["left", "right"]);
    for (port, rows) in &inputs {
        assert_eq!(rows.as_ref().ok(), Some(&100), "{port}: {rows:?}");
    }
    h.get_by_label("input `left`");
    h.get_by_label("input `right`");
    h.get_by_label("output");
}

#[test]
fn ctrl_a_selects_every_node_for_copy_and_delete() {
    let mut h = harness(None);
    h.run_steps(3);
    for entry in ["filter  ·  transform", "select  ·  transform", "distinct  ·  transform"] {
        h.get_by_label(entry).click();
        h.run_steps(2);
    }
    h.key_press(Key::Escape);
    h.run_steps(2);
    h.key_press_modifiers(Modifiers::COMMAND, Key::A);
    h.run_steps(2);
    assert!(h.state().all_selected);
    let copied = copy(&mut h).unwrap();
    assert_eq!(copied.matches("[[nodes]]").count(), 3, "{copied}");
    h.key_press(Key::Delete);
    h.run_steps(2);
    assert!(h.state().pipeline().unwrap().nodes.is_empty());
    h.key_press_modifiers(Modifiers::COMMAND, Key::Z);
    h.run_steps(2);
    assert_eq!(h.state().pipeline().unwrap().nodes.len(), 3, "one undo brings all back");
}

/// A window too small for the side and bottom panels shows the canvas with its least room
/// (240 x 140): the palette goes first, then the inspector, the bottom panel by height, and
/// each comes back when the window grows, still ticked in View. Before, a 360 x 260 window
/// squeezed the canvas to ~40 px and the inspector ran off the window.
#[test]
fn a_small_window_leaves_the_canvas_its_room() {
    let (_dir, mut h) = demo_silver([360.0, 260.0]);
    let canvas = |h: &egui_kittest::Harness<'static, medallion::ui::app::MedallionApp>| {
        h.state().canvas().unwrap().on_screen().unwrap().0
    };
    let view = canvas(&h);
    assert!(view.width() >= 320.0 && view.height() >= 140.0, "the canvas alone: {view:?}");
    assert!(h.query_by_label("Nodes").is_none(), "no palette");
    assert!(h.query_by_label("Monitor").is_none(), "no bottom panel");
    assert_eq!(h.state().panels_shown, [true; 3], "View still ticks every panel");

    h.set_size(eframe::egui::vec2(600.0, 640.0));
    h.run_steps(4);
    let view = canvas(&h);
    assert!(h.query_by_label("Nodes").is_none(), "the palette goes first");
    assert!(view.width() >= 240.0 && view.width() <= 360.0, "beside the inspector: {view:?}");
    assert!(view.height() >= 140.0, "above the bottom panel: {view:?}");
    assert!(h.query_by_label("Monitor").is_some(), "the bottom panel fits");
    // too narrow for the whole graph even at the smallest zoom: the fit shows its start (the
    // sources, top left) whole instead of cutting both ends
    let (view, rects) = h.state().canvas().unwrap().on_screen().unwrap();
    let left = rects.iter().map(|r| r.left()).fold(f32::INFINITY, f32::min);
    let top = rects.iter().map(|r| r.top()).fold(f32::INFINITY, f32::min);
    let right = rects.iter().map(|r| r.right()).fold(f32::NEG_INFINITY, f32::max);
    assert!(right > view.right(), "the graph does not fit: {rects:?} in {view:?}");
    assert!(left >= view.left() && top >= view.top(), "its start is cut: {rects:?} in {view:?}");

    h.set_size(eframe::egui::vec2(1400.0, 860.0));
    h.run_steps(4);
    let view = canvas(&h);
    assert!(h.query_by_label("Nodes").is_some(), "the palette is back");
    assert!(view.width() < 1400.0 - 400.0, "beside palette and inspector: {view:?}");
}

/// A view fitted and not moved since fits again when the canvas changes size (the window
/// resized, the UI zoomed, a panel shown or hidden): before, shrinking the window left nodes
/// off the view. Once the user zooms, the view stays as they left it.
#[test]
fn a_fitted_view_fits_again_when_the_window_changes_size() {
    let (_dir, mut h) = demo_silver([1400.0, 860.0]);
    assert_all_shown_none_covered(h.state().canvas().unwrap());
    h.set_size(eframe::egui::vec2(900.0, 640.0));
    h.run_steps(6);
    assert_all_shown_none_covered(h.state().canvas().unwrap());
    h.set_size(eframe::egui::vec2(1400.0, 860.0));
    h.run_steps(6);
    assert_all_shown_none_covered(h.state().canvas().unwrap());

    h.get_by_label("−").click();
    h.run_steps(2);
    let zoomed = h.state().canvas().unwrap().scale;
    h.set_size(eframe::egui::vec2(900.0, 640.0));
    h.run_steps(6);
    let scale = h.state().canvas().unwrap().scale;
    assert!((scale - zoomed).abs() < 1e-3, "zoomed by the user to {zoomed}, then {scale}");
}

/// A node that grows past a fitted view fits the view again: on first launch the monitor's
/// figures (rows/s, the slowest batch, the table) widened the running sink after the first
/// fit, and the view stayed cut through it. Here the right-most node gets a long name.
#[test]
fn a_fitted_view_fits_again_when_a_node_grows_past_it() {
    let (_dir, mut h) = demo_silver([1400.0, 860.0]);
    assert_all_shown_none_covered(h.state().canvas().unwrap());
    let before = h.state().canvas().unwrap().scale;
    let app = h.state_mut();
    let tab = app.tab;
    let right = app.doc.project.pipelines[tab]
        .nodes
        .iter_mut()
        .max_by(|a, b| a.pos.x.total_cmp(&b.pos.x))
        .unwrap();
    right.name =
        "silver/users — 銀のユーザー表、名前がとても長いノード (merged, typed, joined)".into();
    h.run_steps(8);
    assert_all_shown_none_covered(h.state().canvas().unwrap());
    let after = h.state().canvas().unwrap().scale;
    assert!(after < before - 0.01, "the view fitted the wider node: {before} -> {after}");
}

/// The bottom panel follows a drag of its top edge and keeps the height it was dragged to,
/// whichever tab shows.
#[test]
fn the_bottom_panel_keeps_the_height_it_is_dragged_to() {
    use eframe::egui::{Event, PointerButton, Pos2};
    let (_dir, mut h) = demo_silver([1400.0, 860.0]);
    let tabs_top = |h: &egui_kittest::Harness<'static, medallion::ui::app::MedallionApp>| {
        h.get_by_label("Event log").rect().top()
    };
    for (from, to) in [(0.0, -150.0), (0.0, -100.0), (0.0, 120.0)] {
        let top = tabs_top(&h);
        // the panel's edge is a few px above its tab bar
        let edge = Pos2::new(620.0, top - 3.0 + from);
        let drag = |h: &mut egui_kittest::Harness<'static, medallion::ui::app::MedallionApp>,
                    e: Event| {
            h.event(e);
            h.run_steps(1);
        };
        drag(&mut h, Event::PointerMoved(edge));
        let press = |pressed| Event::PointerButton {
            pos: edge + eframe::egui::vec2(0.0, if pressed { 0.0 } else { to }),
            button: PointerButton::Primary,
            pressed,
            modifiers: Modifiers::NONE,
        };
        drag(&mut h, press(true));
        for step in 1..=5 {
            drag(
                &mut h,
                Event::PointerMoved(edge + eframe::egui::vec2(0.0, to * step as f32 / 5.0)),
            );
        }
        drag(&mut h, press(false));
        h.run_steps(4);
        let now = tabs_top(&h);
        assert!((now - (top + to)).abs() < 4.0, "dragged by {to}: {top} -> {now}");
    }
    let dragged = tabs_top(&h);
    for tab in [BottomTab::Lakehouse, BottomTab::Sql, BottomTab::Problems, BottomTab::Preview] {
        h.state_mut().show_tab(tab);
        h.run_steps(4);
        assert_eq!(tabs_top(&h), dragged, "{tab:?}");
    }
}
