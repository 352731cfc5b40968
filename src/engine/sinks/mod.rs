//! Sinks: where a pipeline's data goes. One file per kind.

pub mod delta;
pub mod kafka;
pub mod schema_check;
