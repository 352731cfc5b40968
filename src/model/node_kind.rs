//! What each node kind is: its name in project files, its role, its ports and how it reads
//! in the palette (the option structs are in `node.rs`).

#[allow(unused_imports)]
use super::node::*;

impl NodeKind {
    /// Every kind with default settings, in palette order.
    pub fn palette() -> Vec<NodeKind> {
        vec![
            NodeKind::FileSource(FileSource::default()),
            NodeKind::DeltaSource(DeltaSource::default()),
            NodeKind::GeneratorSource(GeneratorSource::default()),
            NodeKind::KafkaSource(KafkaSource {
                bootstrap_servers: "${KAFKA_BOOTSTRAP_SERVERS:-localhost:9092}".into(),
                ..KafkaSource::default()
            }),
            NodeKind::ParseJson(ParseJson {
                column: default_value_column(),
                ..ParseJson::default()
            }),
            NodeKind::Select(Select::default()),
            NodeKind::Flatten(Flatten::default()),
            NodeKind::WithColumns(WithColumns::default()),
            NodeKind::Filter(Filter::default()),
            NodeKind::Sql(Sql { inputs: vec!["input".to_owned()], query: String::new() }),
            NodeKind::Join(Join::default()),
            NodeKind::Distinct(Distinct::default()),
            NodeKind::Deduplicate(Deduplicate::default()),
            NodeKind::Aggregate(Aggregate::default()),
            NodeKind::Watermark(Watermark { delay: "10 minutes".into(), ..Watermark::default() }),
            NodeKind::Expectations(Expectations::default()),
            NodeKind::DeltaSink(DeltaSink::default()),
            NodeKind::KafkaSink(KafkaSink {
                bootstrap_servers: "${KAFKA_BOOTSTRAP_SERVERS:-localhost:9092}".into(),
                ..KafkaSink::default()
            }),
        ]
    }

    /// The `kind` tag as written in project files.
    pub fn tag(&self) -> &'static str {
        match self {
            NodeKind::DeltaSource(_) => "delta_source",
            NodeKind::FileSource(_) => "file_source",
            NodeKind::GeneratorSource(_) => "generator_source",
            NodeKind::KafkaSource(_) => "kafka_source",
            NodeKind::ParseJson(_) => "parse_json",
            NodeKind::KafkaSink(_) => "kafka_sink",
            NodeKind::Select(_) => "select",
            NodeKind::Flatten(_) => "flatten",
            NodeKind::WithColumns(_) => "with_columns",
            NodeKind::Filter(_) => "filter",
            NodeKind::Sql(_) => "sql",
            NodeKind::Join(_) => "join",
            NodeKind::Distinct(_) => "distinct",
            NodeKind::Deduplicate(_) => "deduplicate",
            NodeKind::Aggregate(_) => "aggregate",
            NodeKind::Watermark(_) => "watermark",
            NodeKind::Expectations(_) => "expectations",
            NodeKind::DeltaSink(_) => "delta_sink",
        }
    }

    pub fn role(&self) -> NodeRole {
        match self {
            NodeKind::DeltaSource(_)
            | NodeKind::FileSource(_)
            | NodeKind::GeneratorSource(_)
            | NodeKind::KafkaSource(_) => NodeRole::Source,
            NodeKind::ParseJson(_) => NodeRole::Transform,
            NodeKind::KafkaSink(_) => NodeRole::Sink,
            NodeKind::Select(_)
            | NodeKind::Flatten(_)
            | NodeKind::WithColumns(_)
            | NodeKind::Filter(_)
            | NodeKind::Sql(_)
            | NodeKind::Join(_)
            | NodeKind::Distinct(_)
            | NodeKind::Deduplicate(_)
            | NodeKind::Aggregate(_)
            | NodeKind::Watermark(_)
            | NodeKind::Expectations(_) => NodeRole::Transform,
            NodeKind::DeltaSink(_) => NodeRole::Sink,
        }
    }

    /// Names of the input ports, in order.
    pub fn input_ports(&self) -> Vec<String> {
        match self {
            NodeKind::DeltaSource(_)
            | NodeKind::FileSource(_)
            | NodeKind::GeneratorSource(_)
            | NodeKind::KafkaSource(_) => Vec::new(),
            NodeKind::ParseJson(_) | NodeKind::KafkaSink(_) => vec![DEFAULT_PORT.to_owned()],
            NodeKind::Join(_) => vec!["left".to_owned(), "right".to_owned()],
            NodeKind::Sql(sql) => sql.inputs.clone(),
            NodeKind::Select(_)
            | NodeKind::Flatten(_)
            | NodeKind::WithColumns(_)
            | NodeKind::Filter(_)
            | NodeKind::Distinct(_)
            | NodeKind::Deduplicate(_)
            | NodeKind::Aggregate(_)
            | NodeKind::Watermark(_)
            | NodeKind::Expectations(_)
            | NodeKind::DeltaSink(_) => vec![DEFAULT_PORT.to_owned()],
        }
    }

    /// Whether the node has an output port.
    pub fn has_output(&self) -> bool {
        self.role() != NodeRole::Sink
    }

    /// The layer this node reads or writes, for colouring on the canvas.
    pub fn layer(&self) -> Option<Layer> {
        match self {
            NodeKind::DeltaSource(s) => Layer::from_table_path(&s.table),
            NodeKind::FileSource(s) => Layer::from_table_path(&s.path),
            NodeKind::DeltaSink(s) => s.layer(),
            _ => None,
        }
    }
}
