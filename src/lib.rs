//! Medallion: design, run and monitor lakehouse pipelines on one machine.
//!
//! A project (`model`) is plain data: pipelines of source, transform and sink nodes, saved as
//! TOML. The `engine` turns each pipeline into DataFusion plans, reads files and Delta tables,
//! writes Delta tables with delta-rs, and reports what it did as events. The `cli` is a thin
//! layer over both. `model` depends on nothing else here; `engine` never depends on a UI.

pub mod cli;
pub mod engine;
pub mod export;
pub mod model;
pub mod ui;
