//! A consumer that takes messages a batch at a time (`poll_batch`, vendor/rdkafka) frees each
//! one when it is dropped: its memory is bounded by librdkafka's fetch queue, not by the topic.

use std::process::Command;

use crate::kafka::{Broker, create_topic, produce};

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
