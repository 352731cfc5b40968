//! Every option of every node kind has an editor in the inspector, and every pipeline
//! setting one in the pipeline panel: the keys each struct deserializes (read from serde
//! itself, so a new field is seen without touching this test) must all be drawn.

use std::collections::BTreeSet;

use eframe::egui;
use serde::Deserialize as _;
use serde::de::{self, DeserializeOwned, Visitor};

use crate::model::node::*;
use crate::model::{Node, Pipeline, PipelineMode};

use crate::ui::form::keys_drawn;
use crate::ui::inspector::inspector_ui;

/// The field list serde gives `deserialize_struct`, returned as the error.
#[derive(Debug)]
struct Fields(Vec<&'static str>);

impl std::fmt::Display for Fields {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl std::error::Error for Fields {}

impl de::Error for Fields {
    fn custom<T: std::fmt::Display>(_: T) -> Self {
        Fields(Vec::new())
    }
}

struct FieldsOf;

impl<'de> de::Deserializer<'de> for FieldsOf {
    type Error = Fields;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Fields> {
        Err(Fields(Vec::new()))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Fields> {
        Err(Fields(fields.to_vec()))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

fn fields<T: DeserializeOwned>() -> BTreeSet<&'static str> {
    match T::deserialize(FieldsOf) {
        Err(Fields(f)) => f.into_iter().collect(),
        Ok(_) => panic!("not a struct"),
    }
}

/// The project-file keys of a kind's settings (a new kind fails to compile here).
fn keys_of(kind: &NodeKind) -> BTreeSet<&'static str> {
    match kind {
        NodeKind::DeltaSource(_) => fields::<DeltaSource>(),
        NodeKind::FileSource(_) => fields::<FileSource>(),
        NodeKind::GeneratorSource(_) => fields::<GeneratorSource>(),
        NodeKind::KafkaSource(_) => fields::<KafkaSource>(),
        NodeKind::Select(_) => fields::<Select>(),
        NodeKind::ParseJson(_) => fields::<ParseJson>(),
        NodeKind::Flatten(_) => fields::<Flatten>(),
        NodeKind::WithColumns(_) => fields::<WithColumns>(),
        NodeKind::Filter(_) => fields::<Filter>(),
        NodeKind::Sql(_) => fields::<Sql>(),
        NodeKind::Join(_) => fields::<Join>(),
        NodeKind::Distinct(_) => fields::<Distinct>(),
        NodeKind::Deduplicate(_) => fields::<Deduplicate>(),
        NodeKind::Aggregate(_) => fields::<Aggregate>(),
        NodeKind::Watermark(_) => fields::<Watermark>(),
        NodeKind::Expectations(_) => fields::<Expectations>(),
        NodeKind::DeltaSink(_) => fields::<DeltaSink>(),
        NodeKind::KafkaSink(_) => fields::<KafkaSink>(),
    }
}

/// Settings that show more editors (CSV's header line, merge keys) besides the defaults.
fn variants(kind: &NodeKind) -> Vec<NodeKind> {
    let mut out = vec![kind.clone()];
    match kind {
        NodeKind::FileSource(f) => {
            out.push(NodeKind::FileSource(FileSource { format: FileFormat::Csv, ..f.clone() }))
        }
        NodeKind::DeltaSink(s) => {
            out.push(NodeKind::DeltaSink(DeltaSink { mode: WriteMode::Merge, ..s.clone() }))
        }
        _ => {}
    }
    out
}

fn drawn(draw: impl FnMut(&mut egui::Ui)) -> BTreeSet<&'static str> {
    let ctx = egui::Context::default();
    let mut draw = draw;
    // two frames: some widgets lay out on the second
    keys_drawn(|| {
        for _ in 0..2 {
            let mut out = ctx.run_ui(egui::RawInput::default(), &mut draw);
            out.textures_delta.clear();
        }
    })
}

#[test]
fn every_option_of_every_node_kind_has_an_editor() {
    let mut missing = Vec::new();
    for kind in NodeKind::palette() {
        let expected = keys_of(&kind);
        let mut seen = BTreeSet::new();
        for v in variants(&kind) {
            let mut node = Node::new("n", v);
            seen.extend(drawn(|ui| {
                inspector_ui(ui, &mut node, None, &[]);
            }));
        }
        for key in &expected {
            if !seen.contains(key) {
                missing.push(format!("{}.{key}", kind.tag()));
            }
        }
        // an editor registered under a key the file does not have is a typo
        for key in &seen {
            assert!(
                expected.contains(key) || *key == "name",
                "{}: editor for unknown key `{key}`",
                kind.tag()
            );
        }
    }
    assert!(missing.is_empty(), "options without an editor in the inspector: {missing:?}");
}

#[test]
fn every_pipeline_setting_has_an_editor() {
    let expected = fields::<Pipeline>();
    let mut p = Pipeline::new("p");
    p.mode = PipelineMode::Stream;
    let cx = crate::ui::pipeline_settings::PipelineContext {
        others: &[],
        diagnostics: &[],
        index: 0,
        count: 1,
    };
    let mut text = String::new();
    let seen = drawn(|ui| {
        let _ = crate::ui::pipeline_settings::pipeline_settings_ui(ui, &mut p, &mut text, &cx);
    });
    // nodes and edges are edited on the canvas
    let missing: Vec<_> =
        expected.iter().filter(|k| !seen.contains(*k) && !["nodes", "edges"].contains(k)).collect();
    assert!(missing.is_empty(), "pipeline settings without an editor: {missing:?}");
    // an editor registered under a key the file does not have is a typo
    for key in &seen {
        assert!(expected.contains(key), "pipeline settings: editor for unknown key `{key}`");
    }
}

/// A node added from the palette starts with the project file's defaults: dropping any
/// optional key from its TOML reads back the same settings (a derived `Default` once gave a
/// new Kafka source `failOnDataLoss = false` and a CSV source no header line).
#[test]
fn palette_nodes_start_with_the_project_files_defaults() {
    for kind in NodeKind::palette() {
        let toml::Value::Table(table) = toml::Value::try_from(&kind).unwrap() else { panic!() };
        for key in table.keys().filter(|k| *k != "kind") {
            let mut without = table.clone();
            without.remove(key);
            if let Ok(read) = NodeKind::deserialize(toml::Value::Table(without)) {
                assert_eq!(
                    read,
                    kind,
                    "{}: `{key}` differs from its default in the file",
                    kind.tag()
                );
            }
        }
    }
}
