//! Sources: where a pipeline's data comes from. One file per kind.

pub mod delta;
pub mod files;
pub mod generator;
pub mod json_lines;
pub mod kafka;
