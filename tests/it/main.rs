//! Integration tests: one binary, real pipelines on real Delta tables in temp dirs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod auto_compact;
mod batch;
mod cli;
mod common;
mod direct_query;
mod errors;
mod export;
mod export_nodes;
mod interop;
mod kafka;
mod kafka_reads;
mod kinds;
mod monitor;
mod pipeline_tests;
mod projects;
mod quality;
mod stateful;
mod stateful_example;
mod stream;
mod stream_upkeep;
mod trigger_once;
mod ui;
mod ui_authoring;
mod ui_editing;
mod upkeep;
