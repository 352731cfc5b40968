//! The Kafka source's reads against a real broker (tansu, see `kafka`): exact offset ranges
//! across kept assignments, topics whose partition numbers coincide, Spark's `headers` column,
//! and a consumer that takes messages a batch at a time (`poll_batch`, vendor/rdkafka) freeing
//! each one when it is dropped.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use medallion::engine;
use medallion::model::Project;

use crate::common::*;
use crate::kafka::{Broker, create_topic, music_events, produce};

/// The source's reads, with either reader: librdkafka keeps its assignment from batch to batch
/// (it fetches ahead and what a read polled past its range waits for the next one); the
/// protocol reader (`kafka_fetch`, plaintext brokers) keeps a connection per partition. Every
/// range still gets exactly its offsets, whether it continues the last read, goes back (a
/// replay) or skips ahead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_reads_get_exactly_their_ranges_across_kept_assignments() {
    let broker = Broker::start();
    create_topic(&broker, "carry").await;
    produce(&broker, "carry", &music_events(3_000, 7)).await;
    // no settings: the protocol reader; any librdkafka setting: librdkafka
    for (setting, native) in [(None, true), (Some(("kafka.fetch.wait.max.ms", "100")), false)] {
        reads_get_exactly_their_ranges(&broker, setting, native).await;
    }
}

async fn reads_get_exactly_their_ranges(
    broker: &Broker,
    setting: Option<(&str, &str)>,
    native: bool,
) {
    use arrow::array::AsArray;
    use arrow::datatypes::{Int32Type, Int64Type};
    use medallion::engine::sources::kafka::{KafkaClient, tp_key};
    use std::collections::BTreeMap;
    let cfg = medallion::model::node::KafkaSource {
        bootstrap_servers: broker.addr.clone(),
        subscribe: vec!["carry".into()],
        options: setting.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        ..Default::default()
    };
    let client = std::sync::Arc::new(KafkaClient::new(&cfg, "carry-test").unwrap());
    assert_eq!(client.reads_without_librdkafka(), native, "{setting:?}");
    let c = client.clone();
    let ends = tokio::task::spawn_blocking(move || c.end_offsets(&c.all_watermarks()?))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ends.values().sum::<i64>(), 3_000, "{ends:?}");
    // the offsets each read of `c` returned, per partition, sorted
    let read_of = |c: std::sync::Arc<KafkaClient>, ranges: BTreeMap<String, [i64; 2]>| async move {
        let batches = tokio::task::spawn_blocking(move || c.read(&ranges)).await.unwrap();
        let mut got: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
        for b in batches.unwrap() {
            let parts = b.column_by_name("partition").unwrap().as_primitive::<Int32Type>();
            let offs = b.column_by_name("offset").unwrap().as_primitive::<Int64Type>();
            for (p, o) in parts.values().iter().zip(offs.values()) {
                got.entry(*p).or_default().push(*o);
            }
        }
        got.values_mut().for_each(|v| v.sort());
        got
    };
    let read = |ranges: BTreeMap<String, [i64; 2]>| read_of(client.clone(), ranges);
    let ranges = |f: &dyn Fn(i64) -> [i64; 2]| -> BTreeMap<String, [i64; 2]> {
        (0..3).map(|p| (tp_key("carry", p), f(ends[&tp_key("carry", p)]))).collect()
    };
    let expect = |r: &BTreeMap<String, [i64; 2]>| -> BTreeMap<i32, Vec<i64>> {
        (0..3)
            .map(|p| {
                let [s, e] = r[&tp_key("carry", p)];
                (p, (s..e).collect())
            })
            .filter(|(_, v): &(i32, Vec<i64>)| !v.is_empty())
            .collect()
    };
    // availableNow's start: the partitions are assigned at their starts while the end offsets
    // are taken (`assign_ahead`), and the first read continues that assignment
    let ahead = |c: &std::sync::Arc<KafkaClient>, at: i64| {
        let (c, starts) = (c.clone(), (0..3).map(|p| (tp_key("carry", p), at)).collect());
        tokio::task::spawn_blocking(move || c.assign_ahead(&starts))
    };
    ahead(&client, 0).await.unwrap().unwrap();
    // continuing reads: [0, 10), [10, 200), [200, end/2)
    for r in [
        ranges(&|_| [0, 10]),
        ranges(&|_| [10, 200]),
        ranges(&|end| [200, end / 2]),
        // a replay goes back; then a read skips ahead of what was fetched
        ranges(&|_| [5, 50]),
        ranges(&|end| [end - 30, end]),
        ranges(&|_| [0, 10]),
    ] {
        assert_eq!(read(r.clone()).await, expect(&r), "read of {r:?} ({setting:?})");
    }
    // a read without partition 0 (it stays assigned, what it fetches is kept), then one
    // that continues every partition
    let mut r = ranges(&|_| [10, 20]);
    r.insert(tp_key("carry", 0), [10, 10]);
    assert_eq!(read(r.clone()).await, expect(&r), "read of {r:?}");
    let mut r = ranges(&|_| [20, 40]);
    r.insert(tp_key("carry", 0), [10, 40]);
    assert_eq!(read(r.clone()).await, expect(&r), "read of {r:?}");
    // an assignment ahead once reads have assigned is ignored: the next read still gets
    // exactly its range
    ahead(&client, 0).await.unwrap().unwrap();
    let r = ranges(&|_| [40, 60]);
    assert_eq!(read(r.clone()).await, expect(&r), "read of {r:?}");
    // a client assigned ahead where its first read does not start (a replay from the
    // checkpoint) assigns afresh; one assigned where it starts mid-topic reads from there
    for (at, r) in [(100, ranges(&|_| [0, 10])), (100, ranges(&|end| [100, end]))] {
        let other = std::sync::Arc::new(KafkaClient::new(&cfg, "carry-test-2").unwrap());
        ahead(&other, at).await.unwrap().unwrap();
        assert_eq!(read_of(other, r.clone()).await, expect(&r), "read of {r:?} after {at}");
    }
}

/// One read of two topics whose partition numbers coincide: every message lands in its own
/// topic's range, under its own topic's name (the read finds a message's slot by partition
/// alone only when one topic is assigned). And `bench kafka-consume` counts exactly its topic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_of_two_topics_keeps_their_partitions_apart() {
    use arrow::array::AsArray;
    use arrow::datatypes::{Int32Type, Int64Type};
    use medallion::engine::sources::kafka::KafkaClient;
    use std::collections::BTreeMap;
    let broker = Broker::start();
    create_topic(&broker, "left").await;
    create_topic(&broker, "right").await;
    let (left, right) = (music_events(300, 1), music_events(200, 2));
    produce(&broker, "left", &left).await;
    produce(&broker, "right", &right).await;
    let cfg = medallion::model::node::KafkaSource {
        bootstrap_servers: broker.addr.clone(),
        subscribe: vec!["left".into(), "right".into()],
        ..Default::default()
    };
    let client = std::sync::Arc::new(KafkaClient::new(&cfg, "two-topics").unwrap());
    let c = client.clone();
    let batches = tokio::task::spawn_blocking(move || {
        let ends = c.end_offsets(&c.all_watermarks()?)?;
        let ranges: BTreeMap<String, [i64; 2]> =
            ends.into_iter().map(|(tp, end)| (tp, [0, end])).collect();
        c.read(&ranges)
    })
    .await
    .unwrap()
    .unwrap();
    let mut got: BTreeMap<(String, i32), Vec<i64>> = BTreeMap::new();
    for b in &batches {
        let topics = b.column_by_name("topic").unwrap().as_string::<i32>();
        let parts = b.column_by_name("partition").unwrap().as_primitive::<Int32Type>();
        let offs = b.column_by_name("offset").unwrap().as_primitive::<Int64Type>();
        for i in 0..b.num_rows() {
            got.entry((topics.value(i).to_owned(), parts.value(i)))
                .or_default()
                .push(offs.value(i));
        }
    }
    for (topic, n) in [("left", 300), ("right", 200)] {
        let mut total = 0;
        for ((t, p), offsets) in got.iter_mut().filter(|((t, _), _)| t == topic) {
            offsets.sort();
            let want: Vec<i64> = (0..offsets.len() as i64).collect();
            assert_eq!(*offsets, want, "{t}:{p} holds each of its offsets once");
            total += offsets.len();
        }
        assert_eq!(total, n, "{topic}: {got:?}");
    }
    assert_eq!(got.len(), 6, "3 partitions of each topic: {:?}", got.keys());
    drop(client);

    let bytes: usize = left.iter().map(String::len).sum();
    let addr = broker.addr.clone();
    let report = tokio::task::spawn_blocking(move || engine::bench_kafka::consume(&addr, "left"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((report.messages, report.bytes), (300, bytes as u64), "{report}");
}

/// Spark's Kafka columns: `headers` only with `includeHeaders = true`, and then each record's
/// headers in order (non-ASCII keys and values too), NULL for a record sent without any.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_are_a_column_only_with_include_headers() {
    use rdkafka::message::{Header, OwnedHeaders};
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let broker = Broker::start();
    create_topic(&broker, "with_headers").await;
    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &broker.addr)
        .set("log_level", "3")
        .create()
        .unwrap();
    let two = OwnedHeaders::new()
        .insert(Header { key: "trace", value: Some("t-1") })
        .insert(Header { key: "région", value: Some("Zürich ✓") });
    let sends = [
        FutureRecord::to("with_headers").partition(0).payload("a").key("0").headers(two),
        FutureRecord::to("with_headers").partition(0).payload("b").key("1"),
    ];
    for record in sends {
        producer.send(record, Duration::from_secs(30)).await.map_err(|(e, _)| e).unwrap();
    }
    let lake = tempfile::tempdir().unwrap();
    let project = |headers: bool, table: &str| {
        let text = format!(
            r#"
format_version = 1
name = "headers"
[[pipeline]]
name = "{table}"
mode = "stream"
[[pipeline.nodes]]
id = "topic"
kind = "kafka_source"
"kafka.bootstrap.servers" = "{}"
subscribe = ["with_headers"]
includeHeaders = {headers}
[[pipeline.nodes]]
id = "sink"
kind = "delta_sink"
table = "bronze/{table}"
[[pipeline.edges]]
from = "topic"
to = "sink"
"#,
            broker.addr
        );
        Project::from_toml(&text, Path::new("h.toml")).unwrap()
    };
    let opts = engine::RunOptions { available_now: true, ..Default::default() };
    for (headers, table) in [(false, "plain"), (true, "headed")] {
        engine::run_project(&project(headers, table), lake.path(), &opts, &|_| {}).await.unwrap();
    }
    let columns = |batches: &[arrow::array::RecordBatch]| -> Vec<String> {
        batches[0].schema().fields().iter().map(|f| f.name().clone()).collect()
    };
    let spark = ["key", "value", "topic", "partition", "offset", "timestamp", "timestampType"];
    let plain = query(&lake.path().join("bronze/plain"), "SELECT * FROM t").await;
    assert_eq!(columns(&plain), spark, "Spark's columns without includeHeaders");
    let headed = lake.path().join("bronze/headed");
    let all = query(&headed, "SELECT * FROM t").await;
    assert_eq!(columns(&all), [&spark[..], &["headers"]].concat());
    let rows = query(
        &headed,
        "SELECT CAST(value AS VARCHAR), array_length(headers), headers[1]['key'], \
         CAST(headers[1]['value'] AS VARCHAR), headers[2]['key'], \
         CAST(headers[2]['value'] AS VARCHAR) FROM t ORDER BY \"offset\"",
    )
    .await;
    let text = arrow::util::pretty::pretty_format_batches(&rows).unwrap().to_string();
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with("| ")).skip(1).collect();
    let cells = |l: &str| -> Vec<String> { l.split('|').map(|c| c.trim().to_owned()).collect() };
    assert_eq!(cells(lines[0])[1..7], ["a", "2", "trace", "t-1", "région", "Zürich ✓"]);
    assert_eq!(cells(lines[1])[1..7], ["b", "", "", "", "", ""], "no headers: NULL");
}

/// 4,000 messages of 100 KB (400 MB) read by `medallion bench kafka-consume`: a message that
/// was never freed would keep its fetch buffer, and the process would hold the whole topic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_polling_batches_frees_what_it_read() {
    let broker = Broker::start();
    create_topic(&broker, "big").await;
    let pad = "é".repeat(50 * 1024);
    let values: Vec<String> =
        (0..4_000).map(|i| format!("{{\"i\":{i},\"pad\":\"{pad}\"}}")).collect();
    produce(&broker, "big", &values).await;
    drop(values);
    let out = Command::new("/usr/bin/time")
        .args(["-f", "maxrss_kb=%M", env!("CARGO_BIN_EXE_medallion"), "bench", "kafka-consume"])
        .args(["--bootstrap-servers", &broker.addr, "--topic", "big"])
        .output()
        .expect("/usr/bin/time runs (scripts/setup.sh installs it)");
    let (stdout, stderr) =
        (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("messages=4000 "), "every message counted once: {stdout}");
    let rss_kb: u64 = stderr
        .lines()
        .find_map(|l| l.strip_prefix("maxrss_kb="))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no peak RSS in: {stderr}"));
    // librdkafka queues at most 64 MB (`queued.max.messages.kbytes`) plus a fetch in flight
    // (`fetch.max.bytes`, 50 MB); the binary itself is ~40 MB
    assert!(rss_kb < 250 * 1024, "peak RSS {} MB for a 400 MB topic: {stdout}", rss_kb / 1024);
}
